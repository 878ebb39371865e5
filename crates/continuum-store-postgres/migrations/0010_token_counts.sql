-- How many live resources carry each token, kept by every write (continuum-store's sql.rs: `count_keys`,
-- `count_deltas`), so a count of one code over the population (`Observation?code=X&_summary=count`) reads one
-- row instead of every index row of that code: flat from thousands to millions of resources. `kind` 0 counts by
-- `sys_code_hash` (`system|code`), 1 by `code_hash` (a code in any system); a resource counts once per key
-- however many of its rows share it. `shard` spreads concurrent PostgreSQL writers; SQLite uses shard 0.
CREATE TABLE token_count (
    pid   BIGINT NOT NULL,
    kind  BIGINT NOT NULL,
    hash  BIGINT NOT NULL,
    shard BIGINT NOT NULL,
    n     BIGINT NOT NULL,
    PRIMARY KEY (pid, kind, hash, shard)
);
INSERT INTO token_count (pid, kind, hash, shard, n)
    SELECT pid, 0, sys_code_hash, 0, COUNT(DISTINCT res_pk) FROM idx_token GROUP BY pid, sys_code_hash;
INSERT INTO token_count (pid, kind, hash, shard, n)
    SELECT pid, 1, code_hash, 0, COUNT(DISTINCT res_pk) FROM idx_token GROUP BY pid, code_hash;
