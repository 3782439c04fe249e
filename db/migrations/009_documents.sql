-- Agreement documents (documents/, api/routes/documents.py): draft versions, review comments,
-- signed originals and negotiation material, kept as content-addressed blobs.
--
-- `document_blobs` names each stored content once, by its SHA-256 (the storage key).
-- `documents` is one logical file of a cooperation: an agreement's draft, its review comments,
-- its signed original, or negotiation material. `document_versions` is append-only: every upload
-- is a new version; nothing through the application overwrites or deletes one (the trigger
-- refuses it even to the application's own role).

CREATE TABLE document_blobs (
    sha256       text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size_bytes   bigint NOT NULL CHECK (size_bytes >= 0),
    content_type text NOT NULL,
    stored_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE documents (
    id                   text PRIMARY KEY,
    cooperation_id       text NOT NULL REFERENCES cooperations(id),
    agreement_id         text,
    negotiation_event_id text,
    kind                 text NOT NULL CHECK (kind IN ('draft', 'review_comments', 'signed_original', 'material')),
    title                text NOT NULL,
    created_by           text NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    latest_version       integer NOT NULL DEFAULT 0,
    FOREIGN KEY (cooperation_id, agreement_id) REFERENCES agreements (cooperation_id, id)
);
CREATE INDEX documents_cooperation ON documents (cooperation_id, created_at);
-- An agreement has one draft document and one signed-original document, each with its versions.
CREATE UNIQUE INDEX documents_one_per_agreement_kind ON documents (cooperation_id, agreement_id, kind)
    WHERE kind IN ('draft', 'signed_original');

CREATE TABLE document_versions (
    document_id     text NOT NULL REFERENCES documents(id),
    version         integer NOT NULL CHECK (version >= 1),
    cooperation_id  text NOT NULL,
    sha256          text NOT NULL REFERENCES document_blobs(sha256),
    size_bytes      bigint NOT NULL,
    content_type    text NOT NULL,
    file_name       text NOT NULL,
    note            text NOT NULL DEFAULT '',
    comments_on     integer,           -- review comments: the draft version they comment on
    uploaded_by     text NOT NULL,     -- user id
    uploader_name   text NOT NULL,     -- the uploader's name as it was then
    uploaded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (document_id, version)
);
CREATE INDEX document_versions_sha256 ON document_versions (sha256);

CREATE FUNCTION document_versions_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'document versions are append-only: % is refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER document_versions_append_only BEFORE UPDATE OR DELETE ON document_versions
    FOR EACH ROW EXECUTE FUNCTION document_versions_refuse_change();
CREATE TRIGGER document_versions_no_truncate BEFORE TRUNCATE ON document_versions
    FOR EACH STATEMENT EXECUTE FUNCTION document_versions_refuse_change();

-- What the workflow sealed, in the read model: the signed original of an agreement, and the
-- document each signature was given on.
ALTER TABLE agreements ADD COLUMN signed_document jsonb;
ALTER TABLE signatures ADD COLUMN document jsonb;

GRANT SELECT, INSERT ON document_blobs, document_versions TO accord_app;
GRANT SELECT, INSERT, UPDATE ON documents TO accord_app;

-- Row-level security as on the other department-scoped tables (migration 005).
ALTER TABLE documents ENABLE ROW LEVEL SECURITY;
ALTER TABLE document_versions ENABLE ROW LEVEL SECURITY;
CREATE POLICY documents_select ON documents FOR SELECT TO accord_app USING (accord_sees_cooperation(cooperation_id));
CREATE POLICY documents_insert ON documents FOR INSERT TO accord_app WITH CHECK (true);
CREATE POLICY documents_update ON documents FOR UPDATE TO accord_app USING (true) WITH CHECK (true);
CREATE POLICY document_versions_select ON document_versions FOR SELECT TO accord_app
    USING (accord_sees_cooperation(cooperation_id));
CREATE POLICY document_versions_insert ON document_versions FOR INSERT TO accord_app WITH CHECK (true);
