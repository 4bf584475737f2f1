-- Deployment logs: chunks of lines, per-deployment and per-step counters,
-- secret values to mask, and per-project retention, with row-level
-- security.
--
-- A runner appends a batch of lines of one step at a time; each batch is
-- one row of log_chunks (never a row per line), holding the lines as a
-- text[] with their line index: the step's line numbers first_line to
-- last_line, and the deployment-wide sequence numbers first_seq to last_seq
-- (the offsets of the realtime channel logs:<deployment id>).
-- deployment_logs holds the next sequence number and what is stored; its
-- row lock serialises the batches of one deployment. deployment_log_steps
-- holds each step's next line number.
--
-- Row-level security: every log table is visible exactly when its
-- deployment is (see 00008), so a runner reaches the logs of its project's
-- deployments. log_secrets and project_log_settings are visible to the
-- project's members and to the project's runners (which mask with the
-- secrets); the application never sends a secret's value back.
--
-- The pruner acts for nobody: tone_prune_deploy_logs (SECURITY DEFINER)
-- deletes the chunks older than their project's retention.

-- +goose Up
CREATE TABLE deployment_logs (
    deployment_id    uuid PRIMARY KEY REFERENCES deployments (id) ON DELETE CASCADE,
    next_seq         bigint NOT NULL DEFAULT 1,
    lines            bigint NOT NULL DEFAULT 0, -- lines stored (after the cap dropped some)
    bytes            bigint NOT NULL DEFAULT 0,
    truncated_before bigint NOT NULL DEFAULT 0, -- the cap dropped every line below this seq; 0: none
    CONSTRAINT deployment_logs_counts_check CHECK (next_seq >= 1 AND lines >= 0 AND bytes >= 0 AND truncated_before >= 0)
);

CREATE TABLE deployment_log_steps (
    deployment_id uuid NOT NULL REFERENCES deployment_logs (deployment_id) ON DELETE CASCADE,
    step          text NOT NULL,
    next_line     bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (deployment_id, step),
    CONSTRAINT deployment_log_steps_next_check CHECK (next_line >= 1)
);

CREATE TABLE log_chunks (
    deployment_id uuid NOT NULL REFERENCES deployment_logs (deployment_id) ON DELETE CASCADE,
    first_seq     bigint NOT NULL,
    last_seq      bigint NOT NULL,
    step          text NOT NULL,
    first_line    bigint NOT NULL,
    last_line     bigint NOT NULL,
    lines         text[] NOT NULL,
    bytes         bigint NOT NULL,
    created_at    timestamptz NOT NULL,
    PRIMARY KEY (deployment_id, first_seq),
    CONSTRAINT log_chunks_range_check CHECK (
        first_seq >= 1 AND last_seq >= first_seq AND first_line >= 1
        AND last_line - first_line = last_seq - first_seq
        AND cardinality(lines) = last_seq - first_seq + 1)
);
-- Reading a step by line number, and the pruner by age.
CREATE INDEX log_chunks_step_idx ON log_chunks (deployment_id, step, first_line);
CREATE INDEX log_chunks_created_at_idx ON log_chunks (created_at);

CREATE TABLE log_secrets (
    id         uuid PRIMARY KEY, -- UUIDv7
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name       text NOT NULL,
    value      text NOT NULL,
    created_by uuid NOT NULL,
    created_at timestamptz NOT NULL,
    CONSTRAINT log_secrets_name_key UNIQUE (project_id, name)
);

CREATE TABLE project_log_settings (
    project_id     uuid PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
    retention_days integer NOT NULL,
    updated_at     timestamptz NOT NULL,
    CONSTRAINT project_log_settings_retention_check CHECK (retention_days BETWEEN 1 AND 3650)
);

-- tone_prune_deploy_logs deletes up to max_rows log chunks stored before at
-- minus their project's retention (default_days for projects without a
-- setting), oldest first, and returns how many it deleted.
CREATE FUNCTION public.tone_prune_deploy_logs(at timestamptz, default_days integer, max_rows integer) RETURNS bigint
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = ''
AS $$
    WITH old AS (
        SELECT c.deployment_id, c.first_seq
        FROM public.log_chunks c
        JOIN public.deployments d ON d.id = c.deployment_id
        LEFT JOIN public.project_log_settings s ON s.project_id = d.project_id
        WHERE c.created_at < at - pg_catalog.make_interval(days => COALESCE(s.retention_days, default_days))
        ORDER BY c.created_at
        LIMIT max_rows
    ), gone AS (
        DELETE FROM public.log_chunks c USING old
        WHERE c.deployment_id = old.deployment_id AND c.first_seq = old.first_seq
        RETURNING c.deployment_id, c.last_seq - c.first_seq + 1 AS lines, c.bytes
    ), counts AS (
        UPDATE public.deployment_logs l
        SET lines = l.lines - g.lines, bytes = l.bytes - g.bytes
        FROM (SELECT deployment_id, sum(lines) AS lines, sum(bytes) AS bytes FROM gone GROUP BY deployment_id) g
        WHERE l.deployment_id = g.deployment_id
    )
    SELECT count(*) FROM gone
$$;

REVOKE ALL ON FUNCTION public.tone_prune_deploy_logs(timestamptz, integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.tone_prune_deploy_logs(timestamptz, integer, integer) TO tone_app;

ALTER TABLE deployment_logs ENABLE ROW LEVEL SECURITY;
ALTER TABLE deployment_logs FORCE ROW LEVEL SECURITY;
CREATE POLICY deployment_logs_select ON deployment_logs FOR SELECT
    USING (EXISTS (SELECT FROM public.deployments d WHERE d.id = deployment_logs.deployment_id));
CREATE POLICY deployment_logs_insert ON deployment_logs FOR INSERT
    WITH CHECK (EXISTS (SELECT FROM public.deployments d WHERE d.id = deployment_logs.deployment_id));
CREATE POLICY deployment_logs_update ON deployment_logs FOR UPDATE
    USING (EXISTS (SELECT FROM public.deployments d WHERE d.id = deployment_logs.deployment_id))
    WITH CHECK (EXISTS (SELECT FROM public.deployments d WHERE d.id = deployment_logs.deployment_id));

ALTER TABLE deployment_log_steps ENABLE ROW LEVEL SECURITY;
ALTER TABLE deployment_log_steps FORCE ROW LEVEL SECURITY;
CREATE POLICY deployment_log_steps_select ON deployment_log_steps FOR SELECT
    USING (EXISTS (SELECT FROM public.deployments d WHERE d.id = deployment_log_steps.deployment_id));
CREATE POLICY deployment_log_steps_insert ON deployment_log_steps FOR INSERT
    WITH CHECK (EXISTS (SELECT FROM public.deployments d WHERE d.id = deployment_log_steps.deployment_id));
CREATE POLICY deployment_log_steps_update ON deployment_log_steps FOR UPDATE
    USING (EXISTS (SELECT FROM public.deployments d WHERE d.id = deployment_log_steps.deployment_id))
    WITH CHECK (EXISTS (SELECT FROM public.deployments d WHERE d.id = deployment_log_steps.deployment_id));

ALTER TABLE log_chunks ENABLE ROW LEVEL SECURITY;
ALTER TABLE log_chunks FORCE ROW LEVEL SECURITY;
CREATE POLICY log_chunks_select ON log_chunks FOR SELECT
    USING (EXISTS (SELECT FROM public.deployments d WHERE d.id = log_chunks.deployment_id));
CREATE POLICY log_chunks_insert ON log_chunks FOR INSERT
    WITH CHECK (EXISTS (SELECT FROM public.deployments d WHERE d.id = log_chunks.deployment_id));
CREATE POLICY log_chunks_delete ON log_chunks FOR DELETE
    USING (EXISTS (SELECT FROM public.deployments d WHERE d.id = log_chunks.deployment_id));

ALTER TABLE log_secrets ENABLE ROW LEVEL SECURITY;
ALTER TABLE log_secrets FORCE ROW LEVEL SECURITY;
CREATE POLICY log_secrets_select ON log_secrets FOR SELECT
    USING (public.tone_can_access_project(project_id) OR project_id = (SELECT public.tone_runner_project()));
CREATE POLICY log_secrets_insert ON log_secrets FOR INSERT
    WITH CHECK (public.tone_can_access_project(project_id));
CREATE POLICY log_secrets_delete ON log_secrets FOR DELETE
    USING (public.tone_can_access_project(project_id));

ALTER TABLE project_log_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE project_log_settings FORCE ROW LEVEL SECURITY;
CREATE POLICY project_log_settings_select ON project_log_settings FOR SELECT
    USING (public.tone_can_access_project(project_id) OR project_id = (SELECT public.tone_runner_project()));
CREATE POLICY project_log_settings_insert ON project_log_settings FOR INSERT
    WITH CHECK (public.tone_can_access_project(project_id));
CREATE POLICY project_log_settings_update ON project_log_settings FOR UPDATE
    USING (public.tone_can_access_project(project_id))
    WITH CHECK (public.tone_can_access_project(project_id));

-- Chunks are never changed, only appended and deleted (the cap, the
-- pruner); counters only move forward.
GRANT SELECT, INSERT ON deployment_logs, deployment_log_steps TO tone_app;
GRANT UPDATE (next_seq, lines, bytes, truncated_before) ON deployment_logs TO tone_app;
GRANT UPDATE (next_line) ON deployment_log_steps TO tone_app;
GRANT SELECT, INSERT, DELETE ON log_chunks, log_secrets TO tone_app;
GRANT SELECT, INSERT ON project_log_settings TO tone_app;
GRANT UPDATE (retention_days, updated_at) ON project_log_settings TO tone_app;

-- +goose Down
DROP FUNCTION public.tone_prune_deploy_logs(timestamptz, integer, integer);
DROP TABLE project_log_settings;
DROP TABLE log_secrets;
DROP TABLE log_chunks;
DROP TABLE deployment_log_steps;
DROP TABLE deployment_logs;
