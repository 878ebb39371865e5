-- Resources: one row per resource (current version pointer), one row per version with the JSON body, and one
-- index table per search-parameter type. Instants are microseconds since the Unix epoch (UTC).
-- Same tables, columns and indexes as the SQLite schema (a test compares them). Text columns that are
-- range-compared use the "C" collation so prefix ranges behave as in SQLite.

CREATE TABLE resource (
    pk           BIGSERIAL PRIMARY KEY,
    type         TEXT     NOT NULL,
    id           TEXT     NOT NULL,
    version      BIGINT   NOT NULL,
    last_updated BIGINT   NOT NULL,
    deleted      SMALLINT NOT NULL,
    current_vpk  BIGINT   NOT NULL
);
CREATE UNIQUE INDEX resource_type_id ON resource (type, id);
CREATE INDEX resource_type_updated ON resource (type, last_updated);

CREATE TABLE resource_version (
    vpk          BIGSERIAL PRIMARY KEY,
    res_pk       BIGINT   NOT NULL,
    type         TEXT     NOT NULL,
    id           TEXT     NOT NULL,
    version      BIGINT   NOT NULL,
    last_updated BIGINT   NOT NULL,
    deleted      SMALLINT NOT NULL,
    method       TEXT     NOT NULL,
    body         BYTEA    NOT NULL
);
CREATE UNIQUE INDEX resource_version_res ON resource_version (res_pk, version);
CREATE INDEX resource_version_type_id ON resource_version (type, id, version);
CREATE INDEX resource_version_updated ON resource_version (last_updated);

CREATE TABLE idx_string (
    res_pk BIGINT NOT NULL,
    pid    BIGINT NOT NULL,
    norm   TEXT COLLATE "C" NOT NULL,
    exact  TEXT COLLATE "C" NOT NULL
);
CREATE INDEX idx_string_value ON idx_string (pid, norm, res_pk);
CREATE INDEX idx_string_res ON idx_string (res_pk);

CREATE TABLE idx_token (
    res_pk        BIGINT NOT NULL,
    pid           BIGINT NOT NULL,
    sys_code_hash BIGINT NOT NULL,
    code_hash     BIGINT NOT NULL,
    system        TEXT COLLATE "C",
    code          TEXT COLLATE "C" NOT NULL,
    text          TEXT
);
CREATE INDEX idx_token_sys_code ON idx_token (pid, sys_code_hash, res_pk);
CREATE INDEX idx_token_code ON idx_token (pid, code_hash, res_pk);
CREATE INDEX idx_token_res ON idx_token (res_pk);

CREATE TABLE idx_reference (
    res_pk      BIGINT NOT NULL,
    pid         BIGINT NOT NULL,
    target_type TEXT COLLATE "C",
    target_id   TEXT COLLATE "C",
    url         TEXT COLLATE "C"
);
CREATE INDEX idx_reference_target ON idx_reference (pid, target_id, target_type, res_pk);
CREATE INDEX idx_reference_compartment ON idx_reference (target_id, target_type, pid, res_pk);
CREATE INDEX idx_reference_res ON idx_reference (res_pk);

CREATE TABLE idx_date (
    res_pk BIGINT NOT NULL,
    pid    BIGINT NOT NULL,
    low    BIGINT NOT NULL,
    high   BIGINT NOT NULL
);
CREATE INDEX idx_date_low ON idx_date (pid, low, high, res_pk);
CREATE INDEX idx_date_high ON idx_date (pid, high, res_pk);
CREATE INDEX idx_date_res ON idx_date (res_pk);

CREATE TABLE idx_number (
    res_pk BIGINT NOT NULL,
    pid    BIGINT NOT NULL,
    value  DOUBLE PRECISION NOT NULL,
    low    DOUBLE PRECISION NOT NULL,
    high   DOUBLE PRECISION NOT NULL
);
CREATE INDEX idx_number_value ON idx_number (pid, low, high, res_pk);
CREATE INDEX idx_number_res ON idx_number (res_pk);

CREATE TABLE idx_quantity (
    res_pk BIGINT NOT NULL,
    pid    BIGINT NOT NULL,
    system TEXT COLLATE "C",
    code   TEXT COLLATE "C",
    unit   TEXT,
    value  DOUBLE PRECISION NOT NULL,
    low    DOUBLE PRECISION NOT NULL,
    high   DOUBLE PRECISION NOT NULL
);
CREATE INDEX idx_quantity_value ON idx_quantity (pid, code, low, high, res_pk);
CREATE INDEX idx_quantity_res ON idx_quantity (res_pk);

CREATE TABLE idx_uri (
    res_pk BIGINT NOT NULL,
    pid    BIGINT NOT NULL,
    value  TEXT COLLATE "C" NOT NULL
);
CREATE INDEX idx_uri_value ON idx_uri (pid, value, res_pk);
CREATE INDEX idx_uri_res ON idx_uri (res_pk);
