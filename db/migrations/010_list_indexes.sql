-- An index for every filter of the lists GET /cooperations and GET /projects (make bench, 100,000
-- cooperations: tests/test_list_indexes.py checks each plan with EXPLAIN).
--
-- liaison_officer: in paging order, like the stage index (001). q: a substring search on
-- search_text (LIKE '%…%') needs trigrams; pg_trgm is a trusted extension, so the database owner
-- who migrates may create it, and its trigrams cover Chinese text (multibyte characters hash into
-- trigrams under any UTF-8 ctype). Projects: by status, and the unfiltered list, in its order.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE INDEX cooperations_officer ON cooperations (liaison_officer, created_at DESC, id DESC);
CREATE INDEX cooperations_search ON cooperations USING gin (search_text gin_trgm_ops);
CREATE INDEX projects_status ON projects (status, created_at, id);
CREATE INDEX projects_page ON projects (created_at, id);
