-- Audit events: append-only, tenant-scoped, surviving what they describe.
--
-- audit_events has no foreign keys: the event of deleting a workspace, a
-- project or (later) an account must outlive it. NULL stands for "none" in
-- actor_id (nobody signed in), workspace_id and project_id.
--
-- Row-level security (see 00001 and 00003): the current user sees the events
-- of their workspaces, of projects they are a direct member of, and their own
-- events outside any workspace. They may insert an event only as its actor,
-- so an anonymous transaction (tone.user_id empty) can insert none: every
-- use case that audits runs as the user it acts for.
--
-- The application role gets SELECT and INSERT only: it can neither change nor
-- delete an event, whatever the policies say.

-- +goose Up
CREATE TABLE audit_events (
    id             uuid PRIMARY KEY, -- UUIDv7: ids sort by time
    time           timestamptz NOT NULL,
    actor_id       uuid,
    action         text NOT NULL,
    target_type    text NOT NULL DEFAULT '',
    target_id      text NOT NULL DEFAULT '',
    workspace_id   uuid,
    project_id     uuid,
    correlation_id text NOT NULL DEFAULT '',
    ip             text NOT NULL DEFAULT '',
    user_agent     text NOT NULL DEFAULT '',
    result         text NOT NULL,
    details        jsonb NOT NULL DEFAULT '{}',
    CONSTRAINT audit_events_result_check CHECK (result IN ('success', 'failure')),
    CONSTRAINT audit_events_details_object CHECK (jsonb_typeof(details) = 'object')
);
CREATE INDEX audit_events_workspace_id_idx ON audit_events (workspace_id, id) WHERE workspace_id IS NOT NULL;
CREATE INDEX audit_events_project_id_idx ON audit_events (project_id, id) WHERE project_id IS NOT NULL;
CREATE INDEX audit_events_actor_id_idx ON audit_events (actor_id, id) WHERE actor_id IS NOT NULL;

ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_events FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_events_select ON audit_events FOR SELECT
    USING (workspace_id = ANY ((SELECT public.tone_workspace_ids())::uuid[])
           OR project_id = ANY ((SELECT public.tone_project_ids())::uuid[])
           OR (workspace_id IS NULL AND actor_id = (SELECT public.tone_user_id())));
CREATE POLICY audit_events_insert ON audit_events FOR INSERT
    WITH CHECK (actor_id = (SELECT public.tone_user_id()));
-- No UPDATE or DELETE policies, and no such privileges: events are never changed.

GRANT SELECT, INSERT ON audit_events TO tone_app;

-- +goose Down
DROP TABLE audit_events;
