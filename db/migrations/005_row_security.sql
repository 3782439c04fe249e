-- Row-level security on department-scoped tables: a third line behind domain/access.py (the
-- API's checks) and the workflows' validators.
--
-- What the API reads with `accord_app` on behalf of a person runs in a transaction that sets
-- `accord.view` to the departments that person sees (newline-separated), or '*' for someone
-- who sees every department (auditors, reviewers). Rows of other departments are then
-- invisible to SELECT even if a query forgot its own filter. The worker and the API's own
-- bookkeeping read with the role's default, '*'.
--
-- Writes are not restricted here: every write comes from a workflow activity or an audited
-- API path that already checked the rules, and the read model must be able to move forward.

CREATE FUNCTION accord_sees(department text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(current_setting('accord.view', true), '*') = '*'
        OR department = ANY (string_to_array(current_setting('accord.view', true), E'\n'))
$$;

CREATE FUNCTION accord_sees_cooperation(cooperation_id text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(current_setting('accord.view', true), '*') = '*'
        OR EXISTS (SELECT 1 FROM cooperations c WHERE c.id = cooperation_id AND accord_sees(c.department))
$$;

CREATE FUNCTION accord_sees_project(project_id text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(current_setting('accord.view', true), '*') = '*'
        OR EXISTS (SELECT 1 FROM projects p WHERE p.id = project_id
                   AND (accord_sees(p.responsible_department) OR accord_sees_cooperation(p.cooperation_id)))
$$;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['cooperations', 'negotiation_events', 'agreements', 'signatures', 'projects',
                             'milestones', 'investments']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY %I ON %I FOR INSERT TO accord_app WITH CHECK (true)', t || '_insert', t);
        EXECUTE format('CREATE POLICY %I ON %I FOR UPDATE TO accord_app USING (true) WITH CHECK (true)',
                       t || '_update', t);
        EXECUTE format('CREATE POLICY %I ON %I FOR DELETE TO accord_app USING (true)', t || '_delete', t);
    END LOOP;
END
$$;

CREATE POLICY cooperations_select ON cooperations FOR SELECT TO accord_app USING (accord_sees(department));
CREATE POLICY negotiation_events_select ON negotiation_events FOR SELECT TO accord_app
    USING (accord_sees_cooperation(cooperation_id));
CREATE POLICY agreements_select ON agreements FOR SELECT TO accord_app USING (accord_sees_cooperation(cooperation_id));
CREATE POLICY signatures_select ON signatures FOR SELECT TO accord_app USING (accord_sees_cooperation(cooperation_id));
CREATE POLICY projects_select ON projects FOR SELECT TO accord_app
    USING (accord_sees(responsible_department) OR accord_sees_cooperation(cooperation_id));
CREATE POLICY milestones_select ON milestones FOR SELECT TO accord_app USING (accord_sees_project(project_id));
CREATE POLICY investments_select ON investments FOR SELECT TO accord_app USING (accord_sees_project(project_id));

ALTER ROLE accord_app SET accord.view = '*';
