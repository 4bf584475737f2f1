-- SDK keys: credentials with which applications evaluate the flags of one
-- project environment, and read its changes, without a user.
--
-- sdk_keys is a tenant table: members of the project see and create its
-- keys (who may, admins, is the domain's rule). A key is stored as the
-- SHA-256 of its secret, never the secret. A request made with a key is
-- authenticated before anyone is known, so the lookup by hash goes through
-- tone_sdk_key_by_hash (SECURITY DEFINER, search path pinned), which
-- returns at most the one row whose hash matches.
--
-- An SDK client acts with tone.user_id set to the id of its key, as runners
-- do with deploy tokens. tone_sdk_scope() returns the project and
-- environment of that key, and the flag tables' SELECT policies let such a
-- client read that environment's version, flags, config values and history,
-- and the project's segments: nothing else. Whether a key is revoked is
-- checked by the domain when a request authenticates; the database draws
-- the boundary.
--
-- Keys are revoked, never deleted; deleting the project removes them.

-- +goose Up
CREATE TABLE sdk_keys (
    id          uuid PRIMARY KEY, -- UUIDv7
    project_id  uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    environment text NOT NULL,
    name        text NOT NULL,
    hash        bytea NOT NULL,
    created_by  uuid NOT NULL, -- history: no foreign key
    created_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    CONSTRAINT sdk_keys_hash_key UNIQUE (hash),
    CONSTRAINT sdk_keys_hash_check CHECK (octet_length(hash) = 32)
);
CREATE INDEX sdk_keys_project_id_idx ON sdk_keys (project_id, id);

-- tone_sdk_key_by_hash returns the SDK key whose secret hashes to h.
CREATE FUNCTION public.tone_sdk_key_by_hash(h bytea) RETURNS SETOF public.sdk_keys
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
AS $$
    SELECT k.* FROM public.sdk_keys k WHERE k.hash = h
$$;

-- tone_sdk_scope returns the project and environment of the SDK key the
-- current transaction acts for: no row when it acts for a user or nobody.
CREATE FUNCTION public.tone_sdk_scope() RETURNS TABLE (project_id uuid, environment text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
AS $$
    SELECT k.project_id, k.environment FROM public.sdk_keys k
    WHERE k.id = public.tone_user_id()
$$;

REVOKE ALL ON FUNCTION public.tone_sdk_key_by_hash(bytea), public.tone_sdk_scope() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.tone_sdk_key_by_hash(bytea), public.tone_sdk_scope() TO tone_app;

ALTER TABLE sdk_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE sdk_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY sdk_keys_select ON sdk_keys FOR SELECT
    USING (public.tone_can_access_project(project_id));
CREATE POLICY sdk_keys_insert ON sdk_keys FOR INSERT
    WITH CHECK (public.tone_can_access_project(project_id));
CREATE POLICY sdk_keys_update ON sdk_keys FOR UPDATE
    USING (public.tone_can_access_project(project_id))
    WITH CHECK (public.tone_can_access_project(project_id));

GRANT SELECT, INSERT ON sdk_keys TO tone_app;
GRANT UPDATE (revoked_at) ON sdk_keys TO tone_app;

-- SDK clients read their environment (and the project's segments, which
-- live in environment '').
DROP POLICY flag_environments_select ON flag_environments;
CREATE POLICY flag_environments_select ON flag_environments FOR SELECT
    USING (public.tone_can_access_project(project_id)
           OR (project_id, name) IN (SELECT s.project_id, s.environment FROM public.tone_sdk_scope() s)
           OR (name = '' AND project_id IN (SELECT s.project_id FROM public.tone_sdk_scope() s)));
DROP POLICY flag_items_select ON flag_items;
CREATE POLICY flag_items_select ON flag_items FOR SELECT
    USING (public.tone_can_access_project(project_id)
           OR (project_id, environment) IN (SELECT s.project_id, s.environment FROM public.tone_sdk_scope() s)
           OR (environment = '' AND project_id IN (SELECT s.project_id FROM public.tone_sdk_scope() s)));
DROP POLICY flag_changes_select ON flag_changes;
CREATE POLICY flag_changes_select ON flag_changes FOR SELECT
    USING (public.tone_can_access_project(project_id)
           OR (project_id, environment) IN (SELECT s.project_id, s.environment FROM public.tone_sdk_scope() s));

-- +goose Down
DROP POLICY flag_changes_select ON flag_changes;
CREATE POLICY flag_changes_select ON flag_changes FOR SELECT
    USING (public.tone_can_access_project(project_id));
DROP POLICY flag_items_select ON flag_items;
CREATE POLICY flag_items_select ON flag_items FOR SELECT
    USING (public.tone_can_access_project(project_id));
DROP POLICY flag_environments_select ON flag_environments;
CREATE POLICY flag_environments_select ON flag_environments FOR SELECT
    USING (public.tone_can_access_project(project_id));
DROP FUNCTION public.tone_sdk_scope();
DROP FUNCTION public.tone_sdk_key_by_hash(bytea);
DROP TABLE sdk_keys;
