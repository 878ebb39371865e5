-- Store-wide settings by key: which search-index definitions the index rows were built with, and the
-- progress of a running `continuum reindex` (so an interrupted one resumes where it stopped).
-- Same table in both schemas (a test compares them).
CREATE TABLE store_setting (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
