-- The web pages' lists (db/dashboard.py): a department's cooperations and projects, the
-- cooperation list sorted by last change.

CREATE INDEX cooperations_department ON cooperations (department, updated_at DESC, id DESC);
CREATE INDEX cooperations_changed ON cooperations (updated_at DESC, id DESC);
CREATE INDEX projects_department ON projects (responsible_department);
