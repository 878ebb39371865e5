-- Accesses by patient ("who viewed my record"), filed by the sealer as it chains rows, in batches sorted by
-- patient, instead of an index on audit_event (patient, seq) kept by every append. That index took one random
-- leaf per row of every read's audit commit (a search over a clinic's month of encounters appends one row per
-- patient it shows): on SQLite a whole page of WAL per row, a third of such a search's time. Filed in sorted
-- batches, rows of the same patient share leaves. Rows the sealer has not reached yet are found by scanning
-- the short unsealed end of the log (`AuditStore::audit_search`). In the one numbering shared with the
-- PostgreSQL tree; SQLite applies it to the audit file.
CREATE TABLE audit_patient (
    patient TEXT    NOT NULL,
    seq     INTEGER NOT NULL,
    PRIMARY KEY (patient, seq)
) WITHOUT ROWID;
INSERT INTO audit_patient (patient, seq)
    SELECT e.patient, e.seq FROM audit_event e JOIN audit_chain c ON c.seq = e.seq
    WHERE e.patient IS NOT NULL ORDER BY e.patient, e.seq;
DROP INDEX audit_event_patient;
CREATE TRIGGER audit_patient_no_update BEFORE UPDATE ON audit_patient
BEGIN SELECT RAISE(ABORT, 'audit_patient is append-only'); END;
CREATE TRIGGER audit_patient_no_delete BEFORE DELETE ON audit_patient
BEGIN SELECT RAISE(ABORT, 'audit_patient is append-only'); END;
