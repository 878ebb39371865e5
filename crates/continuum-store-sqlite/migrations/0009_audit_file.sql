-- The audit log moved to a file of its own (`migrate::AUDIT_MIGRATIONS` says why). Before this runs,
-- `migrate::apply` copies every row and link into that file in a transaction of its own; dropping the tables
-- here is then safe, and a crash between the two repeats the (idempotent) copy. Tables dropped with their
-- indexes and triggers.
DROP TABLE audit_chain;
DROP TABLE audit_event;
