-- Milestone reminders: versioned policies and calendars, delivery records, the inbox,
-- webhooks and calendar feeds.

-- Where a user's notices go: the inbox always, email when an address is known.
ALTER TABLE users
    ADD COLUMN email    text,
    ADD COLUMN language text NOT NULL DEFAULT 'zh' CHECK (language IN ('zh', 'en'));

-- A policy is never edited in place: every change is a new version, so a notice can name
-- "policy X version N" and that version still exists. `active = false` removes an
-- override at that version (the next scope up applies again).
CREATE TABLE reminder_policies (
    scope       text NOT NULL CHECK (scope IN ('organization', 'project', 'milestone')),
    scope_id    text NOT NULL,  -- organization id, project id, or "<project id>/<milestone id>"
    version     integer NOT NULL CHECK (version >= 1),
    active      boolean NOT NULL,
    policy      jsonb,
    note        text,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, scope_id, version),
    CHECK (active = (policy IS NOT NULL))
);

-- Working-day calendars, versioned the same way (version 1 is the chinesecalendar table).
CREATE TABLE working_calendars (
    name        text NOT NULL,
    version     integer NOT NULL CHECK (version >= 1),
    calendar    jsonb NOT NULL,
    note        text,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version)
);

-- One row per notice, recipient and channel. The id is derived from the business facts
-- (notice key = project/milestone/due-date version/kind, then recipient and channel), so a
-- retried activity, a crashed worker or a duplicate wake-up finds the row instead of adding one.
CREATE TABLE notice_deliveries (
    delivery_id     text PRIMARY KEY,
    notice_key      text NOT NULL,
    project_id      text NOT NULL,
    milestone_id    text NOT NULL,
    recipient_role  text NOT NULL,
    recipient_id    text,           -- a user id, a webhook id, or NULL when nobody holds the role
    recipient_name  text,
    channel         text NOT NULL CHECK (channel IN ('inbox', 'email', 'webhook', 'none')),
    status          text NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    planned_for     timestamptz NOT NULL,   -- when the rule placed the notice (lateness is measured from here)
    scheduled_for   timestamptz NOT NULL,   -- when it was due to go out (later for a caught-up notice)
    dispatched_at   timestamptz NOT NULL,   -- workflow time when the workflow handed it over
    delivered_at    timestamptz,            -- wall clock when the channel accepted it
    attempts        integer NOT NULL DEFAULT 0,
    claimed_until   timestamptz,            -- one sender at a time: a lease taken before each attempt
    last_error      text,
    message_id      text,
    notice          jsonb NOT NULL,         -- provenance: rule, policy, calendar and due-date versions
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notice_deliveries_project ON notice_deliveries (project_id, scheduled_for);
CREATE INDEX notice_deliveries_notice ON notice_deliveries (notice_key);
CREATE INDEX notice_deliveries_recipient ON notice_deliveries (recipient_id, scheduled_for);

-- The in-app inbox. A notice's inbox message has the delivery's id, so it exists once.
CREATE TABLE inbox_messages (
    id          text PRIMARY KEY,
    user_id     text NOT NULL REFERENCES users(id),
    kind        text NOT NULL CHECK (kind IN ('notice', 'delivery_failed')),
    project_id  text,
    notice_key  text,
    subject     text NOT NULL,
    body        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    read_at     timestamptz
);
CREATE INDEX inbox_messages_user ON inbox_messages (user_id, created_at DESC);

-- Chat-robot webhooks per department. The secret signs each request (HMAC-SHA256), so it
-- is stored as it is; it is never returned after creation.
CREATE TABLE webhooks (
    id          text PRIMARY KEY,
    department  text NOT NULL,
    url         text NOT NULL,
    secret      text NOT NULL,
    description text,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX webhooks_department ON webhooks (department) WHERE revoked_at IS NULL;

-- iCalendar feeds behind a secret URL: only the SHA-256 of the secret is stored.
CREATE TABLE calendar_feeds (
    id          text PRIMARY KEY,
    secret_hash bytea NOT NULL UNIQUE,
    user_id     text REFERENCES users(id),
    department  text,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    CHECK ((user_id IS NULL) <> (department IS NULL))
);

GRANT SELECT, INSERT ON reminder_policies, working_calendars TO accord_app;
GRANT SELECT, INSERT, UPDATE ON notice_deliveries, inbox_messages, webhooks, calendar_feeds TO accord_app;
