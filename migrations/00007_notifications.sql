-- Notification inboxes and per-type preferences.
--
-- notifications holds each user's inbox: one row per notification, or per
-- digest (count > 1: similar notifications of one project within a window,
-- grouped by group_key). seen_at, read_at and archived_at are separate
-- moments, NULL until they happen.
--
-- Row-level security: a user sees and changes only their own notifications
-- and preferences. Notifications are written by the use case that causes
-- them, which acts for someone else (the admin who added you, a deployment
-- runner), so anyone may insert a notification: the domain picks the
-- recipients. Grouping into another user's digest, reading the counts and
-- preferences of the recipients and finding a project's members (for a
-- runner, who cannot see projects) go through SECURITY DEFINER functions
-- that return only ids, names, counts and on/off settings, never the
-- contents of someone else's inbox.
--
-- The application role may update only the state columns of its own rows
-- (and the digest function updates count, data, actor and time).

-- +goose Up
CREATE TABLE notifications (
    id           uuid PRIMARY KEY, -- UUIDv7: ids sort by creation
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type         text NOT NULL,
    workspace_id uuid,
    project_id   uuid,
    actor_id     uuid,
    group_key    text NOT NULL DEFAULT '',
    count        integer NOT NULL DEFAULT 1,
    data         jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    seen_at      timestamptz,
    read_at      timestamptz,
    archived_at  timestamptz,
    CONSTRAINT notifications_type_check CHECK (type <> ''),
    CONSTRAINT notifications_count_check CHECK (count >= 1),
    CONSTRAINT notifications_data_object CHECK (jsonb_typeof(data) = 'object')
);
CREATE INDEX notifications_user_id_idx ON notifications (user_id, id);
CREATE INDEX notifications_unread_idx ON notifications (user_id) WHERE read_at IS NULL AND archived_at IS NULL;
CREATE INDEX notifications_group_idx ON notifications (user_id, group_key, updated_at)
    WHERE group_key <> '' AND read_at IS NULL AND archived_at IS NULL;

CREATE TABLE notification_preferences (
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type       text NOT NULL,
    enabled    boolean NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, type)
);

ALTER TABLE notifications ENABLE ROW LEVEL SECURITY;
ALTER TABLE notifications FORCE ROW LEVEL SECURITY;
CREATE POLICY notifications_select ON notifications FOR SELECT
    USING (user_id = (SELECT public.tone_user_id()));
CREATE POLICY notifications_insert ON notifications FOR INSERT
    WITH CHECK (true);
CREATE POLICY notifications_update ON notifications FOR UPDATE
    USING (user_id = (SELECT public.tone_user_id()))
    WITH CHECK (user_id = (SELECT public.tone_user_id()));

ALTER TABLE notification_preferences ENABLE ROW LEVEL SECURITY;
ALTER TABLE notification_preferences FORCE ROW LEVEL SECURITY;
CREATE POLICY notification_preferences_all ON notification_preferences FOR ALL
    USING (user_id = (SELECT public.tone_user_id()))
    WITH CHECK (user_id = (SELECT public.tone_user_id()));

-- tone_digest_notifications folds a new notification into each listed
-- user's newest unread, unarchived notification with the same group key
-- updated at or after since: count goes up by one, data, actor and
-- updated_at become the new ones, and seen_at is cleared so the digest
-- shows as new. It returns the rows it changed.
CREATE FUNCTION public.tone_digest_notifications(users uuid[], key text, since timestamptz,
                                                 new_data jsonb, actor uuid, at_time timestamptz)
    RETURNS TABLE (id uuid, user_id uuid, count integer, created_at timestamptz)
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = ''
AS $$
    WITH target AS (
        SELECT DISTINCT ON (n.user_id) n.id
        FROM public.notifications n
        WHERE n.user_id = ANY (users) AND n.group_key = key AND key <> ''
          AND n.read_at IS NULL AND n.archived_at IS NULL AND n.updated_at >= since
        ORDER BY n.user_id, n.updated_at DESC, n.id DESC
    )
    UPDATE public.notifications n
    SET count = n.count + 1, data = new_data, actor_id = actor, updated_at = at_time, seen_at = NULL
    FROM target WHERE n.id = target.id
    RETURNING n.id, n.user_id, n.count, n.created_at
$$;

-- tone_notification_counts returns the unseen and unread counts of the
-- listed users' inboxes (archived notifications do not count).
CREATE FUNCTION public.tone_notification_counts(users uuid[])
    RETURNS TABLE (user_id uuid, unseen bigint, unread bigint)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
AS $$
    SELECT u.id,
           (SELECT pg_catalog.count(*) FROM public.notifications n
            WHERE n.user_id = u.id AND n.seen_at IS NULL AND n.archived_at IS NULL),
           (SELECT pg_catalog.count(*) FROM public.notifications n
            WHERE n.user_id = u.id AND n.read_at IS NULL AND n.archived_at IS NULL)
    FROM pg_catalog.unnest(users) AS u(id)
$$;

-- tone_notification_settings returns the listed users' explicit setting for
-- notification type typ (users without one are left out).
CREATE FUNCTION public.tone_notification_settings(typ text, users uuid[])
    RETURNS TABLE (user_id uuid, enabled boolean)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
AS $$
    SELECT p.user_id, p.enabled FROM public.notification_preferences p
    WHERE p.type = typ AND p.user_id = ANY (users)
$$;

-- tone_project_audience returns a project's workspace, name and the users
-- with a role in it (its own members and its workspace's), for notifying
-- them from a transaction that cannot see the project (a deployment
-- runner's). No row if the project does not exist.
CREATE FUNCTION public.tone_project_audience(p uuid)
    RETURNS TABLE (workspace_id uuid, name text, users uuid[])
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
AS $$
    SELECT pr.workspace_id, pr.name,
           ARRAY(SELECT m.user_id FROM public.workspace_members m WHERE m.workspace_id = pr.workspace_id
                 UNION
                 SELECT m.user_id FROM public.project_members m WHERE m.project_id = pr.id)
    FROM public.projects pr WHERE pr.id = p
$$;

REVOKE ALL ON FUNCTION public.tone_digest_notifications(uuid[], text, timestamptz, jsonb, uuid, timestamptz),
    public.tone_notification_counts(uuid[]), public.tone_notification_settings(text, uuid[]),
    public.tone_project_audience(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.tone_digest_notifications(uuid[], text, timestamptz, jsonb, uuid, timestamptz),
    public.tone_notification_counts(uuid[]), public.tone_notification_settings(text, uuid[]),
    public.tone_project_audience(uuid) TO tone_app;

GRANT SELECT, INSERT ON notifications TO tone_app;
GRANT UPDATE (seen_at, read_at, archived_at) ON notifications TO tone_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON notification_preferences TO tone_app;

-- +goose Down
DROP FUNCTION public.tone_project_audience(uuid);
DROP FUNCTION public.tone_notification_settings(text, uuid[]);
DROP FUNCTION public.tone_notification_counts(uuid[]);
DROP FUNCTION public.tone_digest_notifications(uuid[], text, timestamptz, jsonb, uuid, timestamptz);
DROP TABLE notification_preferences;
DROP TABLE notifications;
