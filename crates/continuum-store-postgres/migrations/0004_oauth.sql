-- OAuth 2 / SMART clients and the authorization server's keys: the state of continuum-auth's OAuth service
-- (never FHIR resources). Same tables, columns and indexes as the SQLite schema (a test compares them).
-- Instants are microseconds since the Unix epoch (UTC). Codes, refresh tokens and used assertion ids are rows
-- of auth_token (0002). client_id uses the "C" collation so paging order is byte order, as in SQLite.

-- body is the auth crate's JSON document (name, redirect URIs, scopes, authentication, revoked).
CREATE TABLE oauth_client (
    client_id TEXT COLLATE "C" PRIMARY KEY,
    created   BIGINT NOT NULL,
    updated   BIGINT NOT NULL,
    body      BYTEA  NOT NULL
);

-- The server's own keys by name (the access-token signing key); body holds the private key.
CREATE TABLE server_key (
    name    TEXT   PRIMARY KEY,
    created BIGINT NOT NULL,
    body    BYTEA  NOT NULL
);
