-- Accord read model, users and tokens (the audit trail is in 002).
-- Temporal holds the lifecycle; these tables hold what is read and what must last.

CREATE TABLE users (
    id            text PRIMARY KEY,
    username      text NOT NULL UNIQUE,
    display_name  text NOT NULL,
    role          text NOT NULL,
    department    text,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- API tokens are stored as SHA-256 of a 256-bit random secret: the secret is shown once.
CREATE TABLE api_tokens (
    id            text PRIMARY KEY,
    user_id       text NOT NULL REFERENCES users(id),
    token_hash    bytea NOT NULL UNIQUE,
    name          text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    revoked_at    timestamptz
);

CREATE TABLE organizations (
    id            text PRIMARY KEY,
    name          text NOT NULL,
    kind          text NOT NULL,
    region        text,
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX organizations_name ON organizations (lower(name));

CREATE TABLE people (
    id              text PRIMARY KEY,
    organization_id text NOT NULL REFERENCES organizations(id),
    name            text NOT NULL,
    title           text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX people_organization ON people (organization_id);

CREATE TABLE cooperations (
    id                      text PRIMARY KEY,
    workflow_id             text NOT NULL,
    title                   text NOT NULL,
    stage                   text NOT NULL,
    lead_organization_id    text NOT NULL REFERENCES organizations(id),
    lead_organization_name  text NOT NULL,
    partner_organization_id text NOT NULL REFERENCES organizations(id),
    partner_organization_name text NOT NULL,
    areas                   text[] NOT NULL,
    liaison_officer         text NOT NULL,
    department              text,
    started_on              date,
    target_signing_date     date,
    description             text NOT NULL,
    termination_reason      text,
    -- Lower-cased title, parties, areas and officer: substring search works on Chinese text.
    search_text             text NOT NULL,
    version                 integer NOT NULL,
    created_by              text NOT NULL,
    created_at              timestamptz NOT NULL,
    updated_at              timestamptz NOT NULL
);
CREATE INDEX cooperations_page ON cooperations (created_at DESC, id DESC);
CREATE INDEX cooperations_stage ON cooperations (stage, created_at DESC, id DESC);
CREATE INDEX cooperations_partner ON cooperations (partner_organization_id);

CREATE TABLE negotiation_events (
    cooperation_id text NOT NULL REFERENCES cooperations(id),
    id             text NOT NULL,
    kind           text NOT NULL,
    occurred_on    date NOT NULL,
    ends_on        date,
    place          text,
    participants   text[] NOT NULL,
    summary        text NOT NULL,
    recorded_by    text NOT NULL,
    PRIMARY KEY (cooperation_id, id)
);

-- Agreement ids are unique within their cooperation (the workflow's own rule).
CREATE TABLE agreements (
    cooperation_id text NOT NULL REFERENCES cooperations(id),
    id             text NOT NULL,
    kind           text NOT NULL,
    title          text NOT NULL,
    status         text NOT NULL,
    parties        jsonb NOT NULL,
    review_steps   jsonb NOT NULL,
    review_log     jsonb NOT NULL,
    signed_on      date,
    revision       integer NOT NULL,
    PRIMARY KEY (cooperation_id, id)
);

CREATE TABLE signatures (
    cooperation_id  text NOT NULL,
    agreement_id    text NOT NULL,
    organization_id text NOT NULL,
    signatory_name  text NOT NULL,
    signatory_title text NOT NULL,
    signed_on       date NOT NULL,
    recorded_by     text NOT NULL,
    PRIMARY KEY (cooperation_id, agreement_id, organization_id),
    FOREIGN KEY (cooperation_id, agreement_id) REFERENCES agreements (cooperation_id, id)
);

CREATE TABLE projects (
    id                     text PRIMARY KEY,
    cooperation_id         text NOT NULL REFERENCES cooperations(id),
    agreement_id           text NOT NULL,
    workflow_id            text NOT NULL,
    title                  text NOT NULL,
    site                   text,
    committed_investment   numeric(16, 2) NOT NULL,
    realized_investment    numeric(16, 2) NOT NULL,
    responsible_department text NOT NULL,
    responsible_officer    text NOT NULL,
    status                 text NOT NULL,
    status_reason          text,
    version                integer NOT NULL,
    created_at             timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL,
    FOREIGN KEY (cooperation_id, agreement_id) REFERENCES agreements (cooperation_id, id)
);
CREATE INDEX projects_cooperation ON projects (cooperation_id);

CREATE TABLE milestones (
    project_id     text NOT NULL REFERENCES projects(id),
    id             text NOT NULL,
    cooperation_id text NOT NULL,
    position       integer NOT NULL,
    name           text NOT NULL,
    due_date       date NOT NULL,
    owner          text,
    status         text NOT NULL,
    completed_on   date,
    evidence       text,
    completed_by   text,
    moves          jsonb NOT NULL,
    PRIMARY KEY (project_id, id)
);
CREATE INDEX milestones_open_due ON milestones (due_date) WHERE status = 'open';
CREATE INDEX milestones_cooperation ON milestones (cooperation_id);

CREATE TABLE investments (
    project_id     text NOT NULL REFERENCES projects(id),
    id             text NOT NULL,
    cooperation_id text NOT NULL,
    received_on    date NOT NULL,
    amount         numeric(16, 2) NOT NULL,
    source_note    text NOT NULL,
    recorded_by    text NOT NULL,
    PRIMARY KEY (project_id, id)
);

-- Idempotency-Key: a retried POST returns the stored answer instead of acting twice.
CREATE TABLE idempotency_keys (
    user_id       text NOT NULL,
    key           text NOT NULL,
    request_hash  bytea NOT NULL,
    status_code   integer,
    response_body bytea,
    content_type  text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
