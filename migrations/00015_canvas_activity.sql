-- Canvas activity samples, for the realtime analytics of a project.
--
-- Every node records, once per sampling interval, each canvas it has
-- loaded: how many realtime connections watch it (viewers) and which users
-- edited it since the last sample (editors). A sample belongs to the
-- canvas's project, so that row-level security lets the project's members
-- read it (tone_can_access_project, as for canvases). Nodes record as
-- nobody: tone_record_canvas_activity (SECURITY DEFINER) looks the
-- projects up and inserts the rows; tone_app may not insert, change or
-- delete samples itself. Samples of a deleted canvas go with it.

-- +goose Up
CREATE TABLE canvas_activity (
    at         timestamptz NOT NULL,
    node       text NOT NULL,
    canvas_id  uuid NOT NULL REFERENCES canvases (id) ON DELETE CASCADE,
    project_id uuid NOT NULL,
    viewers    integer NOT NULL,
    editors    uuid[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (canvas_id, node, at),
    CONSTRAINT canvas_activity_viewers_check CHECK (viewers >= 0)
);
CREATE INDEX canvas_activity_project_idx ON canvas_activity (project_id, at);

ALTER TABLE canvas_activity ENABLE ROW LEVEL SECURITY;
ALTER TABLE canvas_activity FORCE ROW LEVEL SECURITY;
CREATE POLICY canvas_activity_select ON canvas_activity FOR SELECT
    USING (public.tone_can_access_project(project_id));

-- tone_record_canvas_activity records one sample of node at time at_time:
-- canvases[i] had viewers[i] connections and was edited by the users in
-- editors[i] (a JSON array of user ids). Canvases that no longer exist are
-- skipped.
CREATE FUNCTION public.tone_record_canvas_activity(node_name text, at_time timestamptz,
                                                   canvases uuid[], viewers integer[], editors jsonb[])
    RETURNS void
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = ''
AS $$
    INSERT INTO public.canvas_activity (at, node, canvas_id, project_id, viewers, editors)
    SELECT at_time, node_name, s.canvas, c.project_id, s.viewers,
           ARRAY(SELECT pg_catalog.jsonb_array_elements_text(s.editors)::uuid)
    FROM unnest(canvases, viewers, editors) AS s (canvas, viewers, editors)
    JOIN public.canvases c ON c.id = s.canvas
    ON CONFLICT DO NOTHING
$$;

REVOKE ALL ON FUNCTION public.tone_record_canvas_activity(text, timestamptz, uuid[], integer[], jsonb[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.tone_record_canvas_activity(text, timestamptz, uuid[], integer[], jsonb[]) TO tone_app;
GRANT SELECT ON canvas_activity TO tone_app;

-- +goose Down
DROP FUNCTION public.tone_record_canvas_activity(text, timestamptz, uuid[], integer[], jsonb[]);
DROP TABLE canvas_activity;
