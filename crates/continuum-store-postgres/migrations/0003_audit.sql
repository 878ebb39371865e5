-- The audit log: one row per access to health information (and per login, logout, refusal), append-only, and a
-- SHA-256 hash chain over the rows built by a sealer (`AuditStore::seal_audit`) in a separate, also append-only,
-- table. Same tables, columns and indexes as the SQLite schema (a test compares them).
-- Instants are microseconds since the Unix epoch (UTC).

-- seq is drawn from a sequence: increasing in the order rows are inserted, though concurrent transactions can
-- commit out of that order (the chain orders by pos, in the order the sealer sees rows).
CREATE TABLE audit_event (
    seq      BIGSERIAL PRIMARY KEY,
    recorded BIGINT NOT NULL,
    agent    TEXT   NOT NULL,
    patient  TEXT,
    action   TEXT   NOT NULL,
    subtype  TEXT   NOT NULL,
    outcome  TEXT   NOT NULL,
    body     BYTEA  NOT NULL
);
CREATE INDEX audit_event_patient ON audit_event (patient, seq);
CREATE INDEX audit_event_agent ON audit_event (agent, seq);
CREATE INDEX audit_event_recorded ON audit_event (recorded);

-- pos: position in the chain, 1, 2, 3... without gaps; prev_hash of pos 1 is 64 zeros.
CREATE TABLE audit_chain (
    pos       BIGINT PRIMARY KEY,
    seq       BIGINT NOT NULL,
    prev_hash TEXT   NOT NULL,
    hash      TEXT   NOT NULL
);
CREATE UNIQUE INDEX audit_chain_seq ON audit_chain (seq);

-- Append-only: the application can insert, never change or remove. Statement-level triggers, so even an UPDATE
-- or DELETE matching no row is refused, and TRUNCATE (which fires no row trigger) too.
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only (% refused)', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_chain_no_update BEFORE UPDATE ON audit_chain
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_chain_no_delete BEFORE DELETE ON audit_chain
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_chain_no_truncate BEFORE TRUNCATE ON audit_chain
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
