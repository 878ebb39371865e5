-- How many live resources each type has, kept by every write like `token_count` (0010), so a count of a whole
-- type (`Observation?_summary=count`) reads at most 16 rows instead of every resource of the type. `shard`
-- spreads concurrent PostgreSQL writers; SQLite uses shard 0.
CREATE TABLE type_count (
    type  TEXT    NOT NULL,
    shard INTEGER NOT NULL,
    n     INTEGER NOT NULL,
    PRIMARY KEY (type, shard)
) WITHOUT ROWID;
INSERT INTO type_count (type, shard, n) SELECT type, 0, COUNT(*) FROM resource WHERE deleted = 0 GROUP BY type;
