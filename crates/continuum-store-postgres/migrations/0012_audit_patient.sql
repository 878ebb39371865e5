-- Accesses by patient ("who viewed my record"), filed by the sealer as it chains rows, in batches sorted by
-- patient, instead of an index on audit_event (patient, seq) kept by every append (one random index leaf per
-- row of every read's audit commit). Rows the sealer has not reached yet are found by scanning the short
-- unsealed end of the log (`AuditStore::audit_search`). Same table as the SQLite tree (there in the audit file).
CREATE TABLE audit_patient (
    patient TEXT   NOT NULL,
    seq     BIGINT NOT NULL,
    PRIMARY KEY (patient, seq)
);
INSERT INTO audit_patient (patient, seq)
    SELECT e.patient, e.seq FROM audit_event e JOIN audit_chain c ON c.seq = e.seq
    WHERE e.patient IS NOT NULL ORDER BY e.patient, e.seq;
DROP INDEX audit_event_patient;
CREATE TRIGGER audit_patient_no_update BEFORE UPDATE ON audit_patient
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_patient_no_delete BEFORE DELETE ON audit_patient
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_patient_no_truncate BEFORE TRUNCATE ON audit_patient
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
