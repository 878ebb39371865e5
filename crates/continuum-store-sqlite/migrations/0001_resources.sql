-- Resources: one row per resource (current version pointer), one row per version with the JSON body, and one
-- index table per search-parameter type. Instants are microseconds since the Unix epoch (UTC).

CREATE TABLE resource (
    pk           INTEGER PRIMARY KEY,
    type         TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    version      INTEGER NOT NULL,
    last_updated INTEGER NOT NULL,
    deleted      INTEGER NOT NULL,
    current_vpk  INTEGER NOT NULL
);
CREATE UNIQUE INDEX resource_type_id ON resource (type, id);
CREATE INDEX resource_type_updated ON resource (type, last_updated);

CREATE TABLE resource_version (
    vpk          INTEGER PRIMARY KEY,
    res_pk       INTEGER NOT NULL,
    type         TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    version      INTEGER NOT NULL,
    last_updated INTEGER NOT NULL,
    deleted      INTEGER NOT NULL,
    method       TEXT    NOT NULL,
    body         BLOB    NOT NULL
);
CREATE UNIQUE INDEX resource_version_res ON resource_version (res_pk, version);
CREATE INDEX resource_version_type_id ON resource_version (type, id, version);
CREATE INDEX resource_version_updated ON resource_version (last_updated);

CREATE TABLE idx_string (
    res_pk INTEGER NOT NULL,
    pid    INTEGER NOT NULL,
    norm   TEXT    NOT NULL,
    exact  TEXT    NOT NULL
);
CREATE INDEX idx_string_value ON idx_string (pid, norm, res_pk);
CREATE INDEX idx_string_res ON idx_string (res_pk);

CREATE TABLE idx_token (
    res_pk        INTEGER NOT NULL,
    pid           INTEGER NOT NULL,
    sys_code_hash INTEGER NOT NULL,
    code_hash     INTEGER NOT NULL,
    system        TEXT,
    code          TEXT    NOT NULL,
    text          TEXT
);
CREATE INDEX idx_token_sys_code ON idx_token (pid, sys_code_hash, res_pk);
CREATE INDEX idx_token_code ON idx_token (pid, code_hash, res_pk);
CREATE INDEX idx_token_res ON idx_token (res_pk);

CREATE TABLE idx_reference (
    res_pk      INTEGER NOT NULL,
    pid         INTEGER NOT NULL,
    target_type TEXT,
    target_id   TEXT,
    url         TEXT
);
CREATE INDEX idx_reference_target ON idx_reference (pid, target_id, target_type, res_pk);
CREATE INDEX idx_reference_compartment ON idx_reference (target_id, target_type, pid, res_pk);
CREATE INDEX idx_reference_res ON idx_reference (res_pk);

CREATE TABLE idx_date (
    res_pk INTEGER NOT NULL,
    pid    INTEGER NOT NULL,
    low    INTEGER NOT NULL,
    high   INTEGER NOT NULL
);
CREATE INDEX idx_date_low ON idx_date (pid, low, high, res_pk);
CREATE INDEX idx_date_high ON idx_date (pid, high, res_pk);
CREATE INDEX idx_date_res ON idx_date (res_pk);

CREATE TABLE idx_number (
    res_pk INTEGER NOT NULL,
    pid    INTEGER NOT NULL,
    value  REAL    NOT NULL,
    low    REAL    NOT NULL,
    high   REAL    NOT NULL
);
CREATE INDEX idx_number_value ON idx_number (pid, low, high, res_pk);
CREATE INDEX idx_number_res ON idx_number (res_pk);

CREATE TABLE idx_quantity (
    res_pk INTEGER NOT NULL,
    pid    INTEGER NOT NULL,
    system TEXT,
    code   TEXT,
    unit   TEXT,
    value  REAL    NOT NULL,
    low    REAL    NOT NULL,
    high   REAL    NOT NULL
);
CREATE INDEX idx_quantity_value ON idx_quantity (pid, code, low, high, res_pk);
CREATE INDEX idx_quantity_res ON idx_quantity (res_pk);

CREATE TABLE idx_uri (
    res_pk INTEGER NOT NULL,
    pid    INTEGER NOT NULL,
    value  TEXT    NOT NULL
);
CREATE INDEX idx_uri_value ON idx_uri (pid, value, res_pk);
CREATE INDEX idx_uri_res ON idx_uri (res_pk);
