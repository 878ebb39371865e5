-- The resources of one type in key order, for a first try at an unsorted page that walks them and checks each
-- one (`compile_walk` in continuum-store's sql.rs: a chained search whose matches are many). Same index in
-- both schemas (PostgreSQL's planner is free to use it or not).
CREATE INDEX resource_type_pk ON resource (type, pk);
