-- The audit log: one row per access to health information (and per login, logout, refusal), append-only, and a
-- SHA-256 hash chain over the rows built by a sealer (`AuditStore::seal_audit`) in a separate, also append-only,
-- table. Same tables, columns and indexes as the PostgreSQL schema (a test compares them).
-- Instants are microseconds since the Unix epoch (UTC).

-- AUTOINCREMENT: a seq is never handed out twice, even if the newest row were removed behind the
-- application's back (a reused seq would pair a new row with the removed row's link).
CREATE TABLE audit_event (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    recorded INTEGER NOT NULL,
    agent    TEXT    NOT NULL,
    patient  TEXT,
    action   TEXT    NOT NULL,
    subtype  TEXT    NOT NULL,
    outcome  TEXT    NOT NULL,
    body     BLOB    NOT NULL
);
CREATE INDEX audit_event_patient ON audit_event (patient, seq);
CREATE INDEX audit_event_agent ON audit_event (agent, seq);
CREATE INDEX audit_event_recorded ON audit_event (recorded);

-- pos: position in the chain, 1, 2, 3... without gaps; prev_hash of pos 1 is 64 zeros.
CREATE TABLE audit_chain (
    pos       INTEGER PRIMARY KEY,
    seq       INTEGER NOT NULL,
    prev_hash TEXT    NOT NULL,
    hash      TEXT    NOT NULL
);
CREATE UNIQUE INDEX audit_chain_seq ON audit_chain (seq);

-- Append-only: the application can insert, never change or remove.
CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event
BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END;
CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event
BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END;
CREATE TRIGGER audit_chain_no_update BEFORE UPDATE ON audit_chain
BEGIN SELECT RAISE(ABORT, 'audit_chain is append-only'); END;
CREATE TRIGGER audit_chain_no_delete BEFORE DELETE ON audit_chain
BEGIN SELECT RAISE(ABORT, 'audit_chain is append-only'); END;
