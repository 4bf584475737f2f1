-- Workspaces, projects and their members, with row-level security.
--
-- These are tenant tables: ENABLE and FORCE ROW LEVEL SECURITY, with one
-- policy per command, keyed on tone_user_id() (see 00001). The current user
-- sees and changes
--
--   - workspaces they are a member of, and the members of those;
--   - a workspace they created that has no members yet (the moment between
--     inserting it and inserting its first owner);
--   - the projects of their workspaces, plus projects they are a direct
--     project member of, and the members of all those projects.
--
-- A workspace may only be inserted with created_by = the current user. Its
-- first membership may be inserted by its creator, for themselves as owner,
-- while it has no members; after that only members of the workspace may add
-- members. The policies draw tenant boundaries; roles (who may rename, delete,
-- invite) are the domain's business rules and are checked there.
--
-- Membership lookups go through SECURITY DEFINER functions owned by the
-- migrating role (a superuser or BYPASSRLS, checked in 00001), so that a
-- policy on workspace_members does not recurse into itself. Their search_path
-- is pinned to nothing and every name in them is schema-qualified. The
-- array-returning helpers are called as (SELECT f()) so that each statement
-- evaluates them once, not once per row.
--
-- Foreign key checks and ON DELETE CASCADE actions run as the table owner and
-- bypass row-level security, so deleting a workspace removes its projects and
-- memberships whoever asked.

-- +goose Up
CREATE TABLE workspaces (
    id         uuid PRIMARY KEY,
    name       text NOT NULL,
    created_by uuid NOT NULL, -- history: no foreign key, so that it outlives the account
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE workspace_members (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role         text NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, user_id),
    CONSTRAINT workspace_members_role_check CHECK (role IN ('owner', 'admin', 'editor', 'viewer'))
);
CREATE INDEX workspace_members_user_id_idx ON workspace_members (user_id);

CREATE TABLE projects (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name         text NOT NULL,
    description  text NOT NULL DEFAULT '',
    created_by   uuid NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);
CREATE INDEX projects_workspace_id_idx ON projects (workspace_id, id);

CREATE TABLE project_members (
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       text NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (project_id, user_id),
    CONSTRAINT project_members_role_check CHECK (role IN ('owner', 'admin', 'editor', 'viewer'))
);
CREATE INDEX project_members_user_id_idx ON project_members (user_id);

-- tone_workspace_ids returns the workspaces the current user is a member of.
CREATE FUNCTION public.tone_workspace_ids() RETURNS uuid[]
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
AS $$
    SELECT COALESCE(pg_catalog.array_agg(m.workspace_id), '{}')
    FROM public.workspace_members m
    WHERE m.user_id = public.tone_user_id()
$$;

-- tone_project_ids returns the projects the current user is a direct member of.
CREATE FUNCTION public.tone_project_ids() RETURNS uuid[]
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
AS $$
    SELECT COALESCE(pg_catalog.array_agg(m.project_id), '{}')
    FROM public.project_members m
    WHERE m.user_id = public.tone_user_id()
$$;

-- tone_can_access_project reports whether the current user is a member of
-- project p or of its workspace.
CREATE FUNCTION public.tone_can_access_project(p uuid) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
AS $$
    SELECT EXISTS (SELECT FROM public.project_members m
                   WHERE m.project_id = p AND m.user_id = public.tone_user_id())
        OR EXISTS (SELECT FROM public.projects pr
                   JOIN public.workspace_members m ON m.workspace_id = pr.workspace_id
                   WHERE pr.id = p AND m.user_id = public.tone_user_id())
$$;

-- tone_workspace_unclaimed reports whether workspace ws was created by the
-- current user and has no members yet.
CREATE FUNCTION public.tone_workspace_unclaimed(ws uuid) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
AS $$
    SELECT EXISTS (SELECT FROM public.workspaces w
                   WHERE w.id = ws AND w.created_by = public.tone_user_id())
       AND NOT EXISTS (SELECT FROM public.workspace_members m WHERE m.workspace_id = ws)
$$;

-- tone_are_co_members reports whether users a and b share a workspace or a
-- project (as project members, or one through the project's workspace). It
-- answers only for the current user (a or b must be them) and is false
-- otherwise, so it cannot be used to probe other people's memberships.
CREATE FUNCTION public.tone_are_co_members(a uuid, b uuid) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
AS $$
    WITH me AS (SELECT public.tone_user_id() AS id),
    reach AS (
        -- every (user, project) a or b reaches, directly or through the workspace
        SELECT m.user_id, m.project_id FROM public.project_members m WHERE m.user_id IN (a, b)
        UNION
        SELECT m.user_id, p.id FROM public.workspace_members m
        JOIN public.projects p ON p.workspace_id = m.workspace_id
        WHERE m.user_id IN (a, b)
    )
    SELECT COALESCE((SELECT id FROM me) IN (a, b), false) AND (
        EXISTS (SELECT FROM public.workspace_members x
                JOIN public.workspace_members y ON y.workspace_id = x.workspace_id
                WHERE x.user_id = a AND y.user_id = b)
        OR EXISTS (SELECT FROM reach x JOIN reach y ON y.project_id = x.project_id
                   WHERE x.user_id = a AND y.user_id = b))
$$;

REVOKE ALL ON FUNCTION public.tone_workspace_ids(), public.tone_project_ids(),
    public.tone_can_access_project(uuid), public.tone_workspace_unclaimed(uuid),
    public.tone_are_co_members(uuid, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.tone_workspace_ids(), public.tone_project_ids(),
    public.tone_can_access_project(uuid), public.tone_workspace_unclaimed(uuid),
    public.tone_are_co_members(uuid, uuid) TO tone_app;

ALTER TABLE workspaces ENABLE ROW LEVEL SECURITY;
ALTER TABLE workspaces FORCE ROW LEVEL SECURITY;
CREATE POLICY workspaces_select ON workspaces FOR SELECT
    USING (id = ANY ((SELECT public.tone_workspace_ids())::uuid[])
           OR (created_by = (SELECT public.tone_user_id()) AND public.tone_workspace_unclaimed(id)));
CREATE POLICY workspaces_insert ON workspaces FOR INSERT
    WITH CHECK (created_by = (SELECT public.tone_user_id()));
CREATE POLICY workspaces_update ON workspaces FOR UPDATE
    USING (id = ANY ((SELECT public.tone_workspace_ids())::uuid[]))
    WITH CHECK (id = ANY ((SELECT public.tone_workspace_ids())::uuid[]));
CREATE POLICY workspaces_delete ON workspaces FOR DELETE
    USING (id = ANY ((SELECT public.tone_workspace_ids())::uuid[]));

ALTER TABLE workspace_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE workspace_members FORCE ROW LEVEL SECURITY;
CREATE POLICY workspace_members_select ON workspace_members FOR SELECT
    USING (workspace_id = ANY ((SELECT public.tone_workspace_ids())::uuid[]));
CREATE POLICY workspace_members_insert ON workspace_members FOR INSERT
    WITH CHECK (workspace_id = ANY ((SELECT public.tone_workspace_ids())::uuid[])
                OR (user_id = (SELECT public.tone_user_id()) AND role = 'owner'
                    AND public.tone_workspace_unclaimed(workspace_id)));
CREATE POLICY workspace_members_update ON workspace_members FOR UPDATE
    USING (workspace_id = ANY ((SELECT public.tone_workspace_ids())::uuid[]))
    WITH CHECK (workspace_id = ANY ((SELECT public.tone_workspace_ids())::uuid[]));
CREATE POLICY workspace_members_delete ON workspace_members FOR DELETE
    USING (workspace_id = ANY ((SELECT public.tone_workspace_ids())::uuid[]));

ALTER TABLE projects ENABLE ROW LEVEL SECURITY;
ALTER TABLE projects FORCE ROW LEVEL SECURITY;
CREATE POLICY projects_select ON projects FOR SELECT
    USING (workspace_id = ANY ((SELECT public.tone_workspace_ids())::uuid[])
           OR id = ANY ((SELECT public.tone_project_ids())::uuid[]));
CREATE POLICY projects_insert ON projects FOR INSERT
    WITH CHECK (workspace_id = ANY ((SELECT public.tone_workspace_ids())::uuid[]));
CREATE POLICY projects_update ON projects FOR UPDATE
    USING (workspace_id = ANY ((SELECT public.tone_workspace_ids())::uuid[])
           OR id = ANY ((SELECT public.tone_project_ids())::uuid[]))
    WITH CHECK (workspace_id = ANY ((SELECT public.tone_workspace_ids())::uuid[])
                OR id = ANY ((SELECT public.tone_project_ids())::uuid[]));
CREATE POLICY projects_delete ON projects FOR DELETE
    USING (workspace_id = ANY ((SELECT public.tone_workspace_ids())::uuid[])
           OR id = ANY ((SELECT public.tone_project_ids())::uuid[]));

ALTER TABLE project_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE project_members FORCE ROW LEVEL SECURITY;
CREATE POLICY project_members_select ON project_members FOR SELECT
    USING (public.tone_can_access_project(project_id));
CREATE POLICY project_members_insert ON project_members FOR INSERT
    WITH CHECK (public.tone_can_access_project(project_id));
CREATE POLICY project_members_update ON project_members FOR UPDATE
    USING (public.tone_can_access_project(project_id))
    WITH CHECK (public.tone_can_access_project(project_id));
CREATE POLICY project_members_delete ON project_members FOR DELETE
    USING (public.tone_can_access_project(project_id));

-- The application never moves a project or a membership to another
-- workspace, project or user: it may update only these columns.
GRANT SELECT, INSERT, DELETE ON workspaces, workspace_members, projects, project_members TO tone_app;
GRANT UPDATE (name, updated_at) ON workspaces TO tone_app;
GRANT UPDATE (name, description, updated_at) ON projects TO tone_app;
GRANT UPDATE (role, updated_at) ON workspace_members, project_members TO tone_app;

-- +goose Down
DROP TABLE project_members;
DROP TABLE projects;
DROP TABLE workspace_members;
DROP TABLE workspaces;
DROP FUNCTION public.tone_are_co_members(uuid, uuid);
DROP FUNCTION public.tone_workspace_unclaimed(uuid);
DROP FUNCTION public.tone_can_access_project(uuid);
DROP FUNCTION public.tone_project_ids();
DROP FUNCTION public.tone_workspace_ids();
