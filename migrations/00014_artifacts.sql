-- Artifacts: the metadata of files deployments produced, with row-level
-- security. The content is a blob of the server's blob store (on disk by
-- default), named by its SHA-256 digest; equal contents share one blob.
--
-- artifacts is a tenant table (see 00001 and 00003). The current user sees,
-- adds and deletes the artifacts of projects they can see
-- (tone_can_access_project); a runner (tone.user_id is its deploy token, see
-- 00008_deployments) those of its token's project (tone_runner_project). Who
-- may upload (editors, runners) and delete (admins) is the domain's rule.
--
-- An artifact references its deployment together with the project, so the
-- two always agree; deleting a project removes its deployments and with them
-- their artifacts (ON DELETE CASCADE). Their blobs stay until the garbage
-- collector finds no artifact refers to them: it acts for nobody, so
-- tone_unreferenced_digests (SECURITY DEFINER, search path pinned) answers
-- which of the digests it asks about no artifact of any project refers to,
-- and nothing else.
--
-- Artifacts never change; the application role gets SELECT, INSERT and
-- DELETE only.

-- +goose Up
CREATE TABLE artifacts (
    id            uuid PRIMARY KEY, -- UUIDv7
    project_id    uuid NOT NULL,
    deployment_id uuid NOT NULL,
    name          text NOT NULL,
    size          bigint NOT NULL,
    digest        text NOT NULL, -- SHA-256, lower-case hex
    content_type  text NOT NULL,
    created_by    uuid NOT NULL, -- a user or a deploy token; no foreign key (history)
    created_at    timestamptz NOT NULL,
    CONSTRAINT artifacts_deployment_fkey FOREIGN KEY (deployment_id, project_id)
        REFERENCES deployments (id, project_id) ON DELETE CASCADE,
    CONSTRAINT artifacts_name_key UNIQUE (deployment_id, name),
    CONSTRAINT artifacts_size_check CHECK (size >= 0),
    CONSTRAINT artifacts_digest_check CHECK (digest ~ '^[0-9a-f]{64}$')
);
-- Listing a deployment's artifacts in id order.
CREATE INDEX artifacts_deployment_id_idx ON artifacts (deployment_id, id);
-- The garbage collector's question.
CREATE INDEX artifacts_digest_idx ON artifacts (digest);

-- tone_unreferenced_digests returns those of digests no artifact refers to.
CREATE FUNCTION public.tone_unreferenced_digests(digests text[]) RETURNS SETOF text
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
AS $$
    SELECT DISTINCT d FROM unnest(digests) AS d
    WHERE NOT EXISTS (SELECT FROM public.artifacts a WHERE a.digest = d)
$$;
REVOKE ALL ON FUNCTION public.tone_unreferenced_digests(text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.tone_unreferenced_digests(text[]) TO tone_app;

ALTER TABLE artifacts ENABLE ROW LEVEL SECURITY;
ALTER TABLE artifacts FORCE ROW LEVEL SECURITY;
CREATE POLICY artifacts_select ON artifacts FOR SELECT
    USING (public.tone_can_access_project(project_id) OR project_id = (SELECT public.tone_runner_project()));
CREATE POLICY artifacts_insert ON artifacts FOR INSERT
    WITH CHECK (public.tone_can_access_project(project_id) OR project_id = (SELECT public.tone_runner_project()));
CREATE POLICY artifacts_delete ON artifacts FOR DELETE
    USING (public.tone_can_access_project(project_id) OR project_id = (SELECT public.tone_runner_project()));

GRANT SELECT, INSERT, DELETE ON artifacts TO tone_app;

-- +goose Down
DROP TABLE artifacts;
DROP FUNCTION public.tone_unreferenced_digests(text[]);
