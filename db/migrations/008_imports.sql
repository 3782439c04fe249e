-- Imports of existing project lists (imports/, api/routes/imports.py): one batch per uploaded file.
-- A batch is previewed (parsed and validated, nothing else written) and then confirmed, when each
-- valid row goes through the normal workflow actions; `results` records what each row became.
-- `sha256` finds an earlier upload of the same file (the same bytes), whoever uploaded it.

CREATE TABLE import_batches (
    id           text PRIMARY KEY,
    uploaded_by  text NOT NULL,
    uploader     text NOT NULL,             -- the uploader's name as it was then
    department   text,
    file_name    text NOT NULL,
    size_bytes   integer NOT NULL,
    sha256       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    status       text NOT NULL CHECK (status IN ('previewed', 'confirmed')),
    headers      jsonb NOT NULL,            -- column key → the header the file used
    rows         jsonb NOT NULL,            -- [{row, status, values, result?}]
    errors       jsonb NOT NULL,            -- [{row, column, reason, params, message}]
    counts       jsonb NOT NULL,
    results      jsonb NOT NULL DEFAULT '[]',  -- [{row, outcome, cooperation_id, project_id, detail?}]
    confirmed_by text,
    confirmed_at timestamptz
);
CREATE INDEX import_batches_sha256 ON import_batches (sha256, created_at);
CREATE INDEX import_batches_uploader ON import_batches (uploaded_by, created_at DESC);

GRANT SELECT, INSERT, UPDATE ON import_batches TO accord_app;
