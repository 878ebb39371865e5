-- Accounts, tokens, login counters and the mail outbox: the state of continuum-auth (never FHIR resources).
-- Same tables, columns and indexes as the PostgreSQL schema (a test compares them). Instants are microseconds
-- since the Unix epoch (UTC).

-- body is the auth crate's JSON document; the columns are what must be looked up or updated atomically.
-- username is stored lower-cased.
CREATE TABLE account (
    id           TEXT    PRIMARY KEY,
    username     TEXT    NOT NULL,
    cert_id      TEXT,
    locked_until INTEGER,
    body         BLOB    NOT NULL
);
CREATE UNIQUE INDEX account_username ON account (username);
CREATE UNIQUE INDEX account_cert ON account (cert_id);

-- Counted login attempts (failures until a success clears them); rows older than the window are pruned.
CREATE TABLE login_attempt (
    account_id TEXT    NOT NULL,
    at         INTEGER NOT NULL
);
CREATE INDEX login_attempt_account ON login_attempt (account_id, at);

-- Per-key rate limiting (e.g. client addresses); rows older than the window are pruned.
CREATE TABLE throttle (
    key TEXT    NOT NULL,
    at  INTEGER NOT NULL
);
CREATE INDEX throttle_key ON throttle (key, at);

-- Tokens by the hex SHA-256 of their secret; kind tells sessions, API tokens, reset tokens... apart.
CREATE TABLE auth_token (
    hash       TEXT    PRIMARY KEY,
    kind       TEXT    NOT NULL,
    account_id TEXT    NOT NULL,
    created    INTEGER NOT NULL,
    last_used  INTEGER NOT NULL,
    expires    INTEGER NOT NULL,
    data       BLOB    NOT NULL
);
CREATE INDEX auth_token_account ON auth_token (account_id, kind);

-- Mail waiting for delivery; sent is set once delivered.
CREATE TABLE outbox (
    seq       INTEGER PRIMARY KEY,
    created   INTEGER NOT NULL,
    recipient TEXT    NOT NULL,
    subject   TEXT    NOT NULL,
    body      TEXT    NOT NULL,
    sent      INTEGER
);
CREATE INDEX outbox_pending ON outbox (seq) WHERE sent IS NULL;
