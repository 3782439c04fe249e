-- Accounts and access: a department tree, several roles per user, passwords, sessions,
-- login throttling, and scoped API tokens.

-- Departments are named as the rest of the data names them (cooperations.department,
-- projects.responsible_department); `parent` makes the tree a leader reads down.
CREATE TABLE departments (
    name        text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 200),
    parent      text REFERENCES departments(name) ON UPDATE CASCADE,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (parent IS NULL OR parent <> name)
);
INSERT INTO departments (name, created_by)
SELECT DISTINCT department, 'migration 004' FROM users WHERE department IS NOT NULL
ON CONFLICT (name) DO NOTHING;
ALTER TABLE users
    ADD CONSTRAINT users_department_fk FOREIGN KEY (department) REFERENCES departments(name) ON UPDATE CASCADE;

CREATE TABLE user_roles (
    user_id     text NOT NULL REFERENCES users(id),
    role        text NOT NULL CHECK (role IN ('liaison_officer', 'reviewer', 'leader', 'auditor', 'admin')),
    granted_by  text NOT NULL,
    granted_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, role)
);
INSERT INTO user_roles (user_id, role, granted_by)
SELECT id, role, 'migration 004' FROM users
WHERE role IN ('liaison_officer', 'reviewer', 'leader', 'auditor', 'admin');
CREATE INDEX user_roles_role ON user_roles (role);

-- Passwords are argon2id hashes (PHC strings); NULL: no password (token-only accounts).
ALTER TABLE users
    ADD COLUMN password_hash       text,
    ADD COLUMN password_changed_at timestamptz,
    ADD COLUMN disabled_at         timestamptz;

-- Failed sign-ins, per account and per source address: throttling and temporary lockout
-- count the recent rows. Old rows are pruned by the login code.
CREATE TABLE login_failures (
    id         bigserial PRIMARY KEY,
    username   text NOT NULL,
    source_ip  text,
    at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_failures_username ON login_failures (lower(username), at);
CREATE INDEX login_failures_source ON login_failures (source_ip, at);

-- Server-side sessions: the cookie holds a random id, the table its SHA-256, so a database
-- leak does not leak live sessions. Revoking is setting revoked_at.
CREATE TABLE sessions (
    id_hash       bytea PRIMARY KEY,
    user_id       text NOT NULL REFERENCES users(id),
    csrf_token    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,   -- the absolute timeout
    revoked_at    timestamptz,
    source_ip     text,
    user_agent    text
);
CREATE INDEX sessions_user ON sessions (user_id) WHERE revoked_at IS NULL;

ALTER TABLE api_tokens
    ADD COLUMN scope text NOT NULL DEFAULT 'read_write' CHECK (scope IN ('read', 'read_write'));

GRANT SELECT, INSERT, UPDATE, DELETE ON departments, user_roles, sessions, login_failures TO accord_app;
GRANT USAGE ON SEQUENCE login_failures_id_seq TO accord_app;
