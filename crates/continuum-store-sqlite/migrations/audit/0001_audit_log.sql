-- The audit log in a file of its own, beside the database (`<database>-audit`; see `migrate::audit_path`).
-- Why a file of its own: every read of health information appends a row, and each commit to a SQLite file
-- makes every other connection to that file drop its page cache before its next read. With the log in the
-- clinical file, each search's audit record emptied the caches of the searches beside it; now only clinical
-- writes do. The store's writer connection has this file as `main` and the clinical file attached, so a
-- write's audit row commits first (SQLite commits the files of a transaction in order): a crash in between
-- can leave a record of a write that did not happen, never a write without its record.
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
