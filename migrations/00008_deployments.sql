-- Deployments: deploy tokens, deployments and their steps, with row-level
-- security.
--
-- These are tenant tables (see 00001 and 00003). The current user sees and
-- changes the deploy tokens, deployments and steps of projects they can see
-- (tone_can_access_project). A runner acts with tone.user_id set to the id
-- of its deploy token: tone_runner_project() returns that token's project,
-- and the deployment policies let it see and change that project's
-- deployments and steps, and nothing else (it sees no project, member or
-- canvas). Whether a token is revoked is checked by the domain when a
-- request authenticates; the database draws the project boundary.
--
-- A deploy token is stored as the SHA-256 of its secret, never the secret.
-- A runner's request is authenticated before anyone is known, so the lookup
-- by hash goes through tone_deploy_token_by_hash (SECURITY DEFINER, search
-- path pinned), which returns at most the one row whose hash matches.
--
-- The reaper that fails deployments whose runner went silent acts for
-- nobody; tone_expired_deployments (SECURITY DEFINER) lists the
-- deployments whose lease ran out, with the token that held it, and the
-- reaper then acts as that token for each.
--
-- deployments has UNIQUE (id, project_id) so that other tables (artifacts)
-- can reference a deployment together with its project.
--
-- The application role may change only the columns the state machine,
-- the lease and the results need; ids, projects and triggers never change.
-- Deleting a project removes its tokens, deployments and steps (ON DELETE
-- CASCADE runs as the table owner).

-- +goose Up
CREATE TABLE deploy_tokens (
    id           uuid PRIMARY KEY, -- UUIDv7
    project_id   uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    workspace_id uuid NOT NULL, -- the project's workspace, for audit events of runners
    name         text NOT NULL,
    hash         bytea NOT NULL, -- SHA-256 of the secret
    created_by   uuid NOT NULL,
    created_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    CONSTRAINT deploy_tokens_hash_key UNIQUE (hash),
    CONSTRAINT deploy_tokens_hash_check CHECK (octet_length(hash) = 32)
);
CREATE INDEX deploy_tokens_project_id_idx ON deploy_tokens (project_id, id);

CREATE TABLE deployments (
    id               uuid PRIMARY KEY, -- UUIDv7: ids sort by creation time
    project_id       uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    environment      text NOT NULL,
    git_ref          text NOT NULL DEFAULT '',
    commit_sha       text NOT NULL DEFAULT '',
    triggered_by     uuid NOT NULL, -- a user id or a deploy token id; no foreign key (history)
    trigger_kind     text NOT NULL,
    state            text NOT NULL,
    reason           text NOT NULL DEFAULT '',
    runner_id        uuid, -- the deploy token holding the lease
    lease_expires_at timestamptz,
    url              text NOT NULL DEFAULT '',
    metrics          jsonb NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL,
    started_at       timestamptz,
    finished_at      timestamptz,
    updated_at       timestamptz NOT NULL,
    CONSTRAINT deployments_id_project_key UNIQUE (id, project_id),
    CONSTRAINT deployments_state_check CHECK (state IN ('queued', 'building', 'deploying', 'ready', 'failed', 'canceled')),
    CONSTRAINT deployments_trigger_check CHECK (trigger_kind IN ('user', 'token')),
    CONSTRAINT deployments_metrics_object CHECK (jsonb_typeof(metrics) = 'object')
);
CREATE INDEX deployments_project_id_idx ON deployments (project_id, id);
-- The reaper looks for live deployments whose lease ran out.
CREATE INDEX deployments_lease_idx ON deployments (lease_expires_at)
    WHERE state IN ('building', 'deploying') AND lease_expires_at IS NOT NULL;

CREATE TABLE deployment_steps (
    deployment_id uuid NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    name          text NOT NULL,
    position      integer NOT NULL, -- order of first report
    state         text NOT NULL,
    started_at    timestamptz,
    finished_at   timestamptz,
    exit_code     integer,
    PRIMARY KEY (deployment_id, name),
    CONSTRAINT deployment_steps_state_check CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'skipped'))
);

-- tone_runner_project returns the project of the deploy token the current
-- transaction acts for, or NULL when it acts for a user or for nobody.
CREATE FUNCTION public.tone_runner_project() RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
AS $$
    SELECT t.project_id FROM public.deploy_tokens t WHERE t.id = public.tone_user_id()
$$;

-- tone_deploy_token_by_hash returns the deploy token whose secret hashes to h.
CREATE FUNCTION public.tone_deploy_token_by_hash(h bytea) RETURNS SETOF public.deploy_tokens
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
AS $$
    SELECT t.* FROM public.deploy_tokens t WHERE t.hash = h
$$;

-- tone_expired_deployments returns up to max_rows live deployments whose
-- lease ended before at, oldest lease first, with the token that held it.
CREATE FUNCTION public.tone_expired_deployments(at timestamptz, max_rows integer)
    RETURNS TABLE (id uuid, runner_id uuid)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
AS $$
    SELECT d.id, d.runner_id FROM public.deployments d
    WHERE d.state IN ('building', 'deploying') AND d.lease_expires_at < at AND d.runner_id IS NOT NULL
    ORDER BY d.lease_expires_at LIMIT max_rows
$$;

REVOKE ALL ON FUNCTION public.tone_runner_project(), public.tone_deploy_token_by_hash(bytea),
    public.tone_expired_deployments(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.tone_runner_project(), public.tone_deploy_token_by_hash(bytea),
    public.tone_expired_deployments(timestamptz, integer) TO tone_app;

ALTER TABLE deploy_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE deploy_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY deploy_tokens_select ON deploy_tokens FOR SELECT
    USING (public.tone_can_access_project(project_id) OR id = (SELECT public.tone_user_id()));
CREATE POLICY deploy_tokens_insert ON deploy_tokens FOR INSERT
    WITH CHECK (public.tone_can_access_project(project_id));
CREATE POLICY deploy_tokens_update ON deploy_tokens FOR UPDATE
    USING (public.tone_can_access_project(project_id))
    WITH CHECK (public.tone_can_access_project(project_id));

ALTER TABLE deployments ENABLE ROW LEVEL SECURITY;
ALTER TABLE deployments FORCE ROW LEVEL SECURITY;
CREATE POLICY deployments_select ON deployments FOR SELECT
    USING (public.tone_can_access_project(project_id) OR project_id = (SELECT public.tone_runner_project()));
CREATE POLICY deployments_insert ON deployments FOR INSERT
    WITH CHECK (public.tone_can_access_project(project_id) OR project_id = (SELECT public.tone_runner_project()));
CREATE POLICY deployments_update ON deployments FOR UPDATE
    USING (public.tone_can_access_project(project_id) OR project_id = (SELECT public.tone_runner_project()))
    WITH CHECK (public.tone_can_access_project(project_id) OR project_id = (SELECT public.tone_runner_project()));

-- A step is visible exactly when its deployment is.
ALTER TABLE deployment_steps ENABLE ROW LEVEL SECURITY;
ALTER TABLE deployment_steps FORCE ROW LEVEL SECURITY;
CREATE POLICY deployment_steps_select ON deployment_steps FOR SELECT
    USING (EXISTS (SELECT FROM public.deployments d WHERE d.id = deployment_steps.deployment_id));
CREATE POLICY deployment_steps_insert ON deployment_steps FOR INSERT
    WITH CHECK (EXISTS (SELECT FROM public.deployments d WHERE d.id = deployment_steps.deployment_id));
CREATE POLICY deployment_steps_update ON deployment_steps FOR UPDATE
    USING (EXISTS (SELECT FROM public.deployments d WHERE d.id = deployment_steps.deployment_id))
    WITH CHECK (EXISTS (SELECT FROM public.deployments d WHERE d.id = deployment_steps.deployment_id));

-- No DELETE policies or privileges: deployments and tokens are history
-- (a token is revoked, not deleted); only a project's deletion removes them.
-- The UPDATE privilege on deployments also lets LockDeployment take a row
-- lock (SELECT ... FOR NO KEY UPDATE).
GRANT SELECT, INSERT ON deploy_tokens, deployments, deployment_steps TO tone_app;
GRANT UPDATE (revoked_at) ON deploy_tokens TO tone_app;
GRANT UPDATE (state, reason, runner_id, lease_expires_at, url, metrics, started_at, finished_at, updated_at)
    ON deployments TO tone_app;
GRANT UPDATE (state, started_at, finished_at, exit_code) ON deployment_steps TO tone_app;

-- +goose Down
DROP TABLE deployment_steps;
DROP TABLE deployments;
DROP FUNCTION public.tone_expired_deployments(timestamptz, integer);
DROP FUNCTION public.tone_deploy_token_by_hash(bytea);
DROP FUNCTION public.tone_runner_project();
DROP TABLE deploy_tokens;
