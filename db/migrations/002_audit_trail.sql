-- The audit trail: append-only, hash-chained, partitioned by month.
-- The application role may read and insert; UPDATE, DELETE and TRUNCATE are refused
-- by grants and, for every role including the owner, by triggers.

DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'accord_app') THEN
        CREATE ROLE accord_app NOLOGIN;
    END IF;
END $$;

CREATE TABLE audit_events (
    seq              bigint NOT NULL,          -- position in the chain: 1, 2, 3 ... without gaps
    event_id         uuid NOT NULL,
    recorded_at      timestamptz NOT NULL,     -- the database clock, microseconds
    occurred_at      timestamptz NOT NULL,     -- when the action took effect (workflow clock)
    actor_id         text NOT NULL,
    actor_name       text NOT NULL,
    actor_role       text NOT NULL,
    actor_department text,
    auth_method      text NOT NULL,
    source_ip        text,
    user_agent       text,
    request_id       text,
    action           text NOT NULL,
    entity_type      text NOT NULL,
    entity_id        text NOT NULL,
    cooperation_id   text,
    project_id       text,
    before           jsonb NOT NULL,
    after            jsonb NOT NULL,
    comment          text,
    outcome          text NOT NULL CHECK (outcome IN ('succeeded', 'refused', 'failed')),
    error            text,
    workflow_id      text,
    run_id           text,
    event_seq        integer,
    state            jsonb,                    -- the record's whole state after the event: as-of queries
    prev_hash        bytea NOT NULL,
    hash             bytea NOT NULL,
    PRIMARY KEY (seq, recorded_at)
) PARTITION BY RANGE (recorded_at);

-- Catches any month whose partition was not created in time: an insert never fails for that.
CREATE TABLE audit_events_default PARTITION OF audit_events DEFAULT;

CREATE INDEX audit_events_workflow ON audit_events (workflow_id, event_seq) WHERE workflow_id IS NOT NULL;
CREATE INDEX audit_events_newest ON audit_events (seq DESC);
CREATE INDEX audit_events_cooperation ON audit_events (cooperation_id, seq DESC);
CREATE INDEX audit_events_project ON audit_events (project_id, seq DESC);
CREATE INDEX audit_events_actor ON audit_events (actor_id, seq DESC);
CREATE INDEX audit_events_action ON audit_events (action, seq DESC);
CREATE INDEX audit_events_entity ON audit_events (entity_type, entity_id, seq DESC);
CREATE INDEX audit_events_time ON audit_events (recorded_at);

-- One row: the last seq and hash. Appends lock it, which serialises the chain.
CREATE TABLE audit_chain_head (
    id   boolean PRIMARY KEY DEFAULT true CHECK (id),
    seq  bigint NOT NULL,
    hash bytea NOT NULL
);
INSERT INTO audit_chain_head (seq, hash) VALUES (0, '\x0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE audit_checkpoints (
    seq        bigint PRIMARY KEY,
    hash       bytea NOT NULL,
    key_id     text NOT NULL,
    signature  bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Months archived (exported, verified) and dropped: verification resumes after them.
CREATE TABLE audit_archives (
    month         date PRIMARY KEY,
    first_seq     bigint NOT NULL,
    last_seq      bigint NOT NULL,
    last_hash     bytea NOT NULL,
    events        bigint NOT NULL,
    export_sha256 text NOT NULL,
    archived_by   text NOT NULL,
    archived_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_events_default_no_truncate BEFORE TRUNCATE ON audit_events_default
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_archives_append_only BEFORE UPDATE OR DELETE ON audit_archives
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_archives_no_truncate BEFORE TRUNCATE ON audit_archives
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();

-- Creates the partition of one month, with its own TRUNCATE guard (TRUNCATE triggers
-- are not inherited by partitions). Called by migrations and `accord audit partitions`.
CREATE FUNCTION audit_ensure_partition(month date) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    first date := date_trunc('month', month)::date;
    name text := 'audit_events_' || to_char(first, 'YYYY_MM');
BEGIN
    IF to_regclass(name) IS NULL THEN
        EXECUTE format('CREATE TABLE %I PARTITION OF audit_events FOR VALUES FROM (%L) TO (%L)',
                       name, first, (first + interval '1 month')::date);
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()',
                       name || '_no_truncate', name);
        EXECUTE format('GRANT SELECT, INSERT ON %I TO accord_app', name);
    END IF;
    RETURN name;
END $$;

SELECT audit_ensure_partition((date_trunc('month', now()) + make_interval(months => m))::date)
FROM generate_series(-1, 24) AS m;

-- The application role: everything it needs on the read model, only SELECT and INSERT
-- on the audit trail (plus moving the chain head).
GRANT USAGE ON SCHEMA public TO accord_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON users, api_tokens, organizations, people, cooperations,
    negotiation_events, agreements, signatures, projects, milestones, investments, idempotency_keys TO accord_app;
GRANT SELECT ON schema_migrations TO accord_app;
GRANT SELECT, INSERT ON audit_events, audit_events_default, audit_checkpoints, audit_archives TO accord_app;
GRANT SELECT, UPDATE ON audit_chain_head TO accord_app;
