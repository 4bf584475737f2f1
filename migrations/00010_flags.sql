-- Feature flags, config values and segments, their per-environment versions
-- and change history, with row-level security.
--
-- flag_environments holds the version counter of each environment of a
-- project (name '' counts the project's segment changes). A writer bumps its
-- environment's counter first (INSERT ... ON CONFLICT DO UPDATE), which locks
-- the row until the transaction ends: the writers of one environment are
-- serialised and its versions commit in order, so a reader that saw version
-- v has seen every change up to v.
--
-- flag_items holds the current definitions (jsonb documents of package
-- domain/flag or config values) by (project, environment, kind, key);
-- segments have environment ''. flag_changes is the history of each
-- environment: one row per version, the item as it became (data NULL: it was
-- deleted). The application trims old history; deleting the project removes
-- everything (ON DELETE CASCADE through flag_environments).
--
-- These are tenant tables: every policy asks tone_can_access_project, as
-- canvases do. Who may write (editors) is the domain's rule.

-- +goose Up
CREATE TABLE flag_environments (
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name       text NOT NULL,
    version    bigint NOT NULL,
    PRIMARY KEY (project_id, name),
    CONSTRAINT flag_environments_version_check CHECK (version > 0)
);

CREATE TABLE flag_items (
    project_id  uuid NOT NULL,
    environment text NOT NULL,
    kind        text NOT NULL,
    key         text NOT NULL,
    data        jsonb NOT NULL,
    version     bigint NOT NULL,
    updated_by  uuid NOT NULL, -- history: no foreign key
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (project_id, environment, kind, key),
    CONSTRAINT flag_items_environment_fkey FOREIGN KEY (project_id, environment)
        REFERENCES flag_environments (project_id, name) ON DELETE CASCADE,
    CONSTRAINT flag_items_kind_check CHECK (kind IN ('flag', 'config', 'segment')),
    CONSTRAINT flag_items_segment_check CHECK ((kind = 'segment') = (environment = ''))
);

CREATE TABLE flag_changes (
    project_id  uuid NOT NULL,
    environment text NOT NULL,
    version     bigint NOT NULL,
    kind        text NOT NULL,
    key         text NOT NULL,
    data        jsonb, -- NULL: deleted
    actor_id    uuid NOT NULL,
    at          timestamptz NOT NULL,
    PRIMARY KEY (project_id, environment, version),
    CONSTRAINT flag_changes_environment_fkey FOREIGN KEY (project_id, environment)
        REFERENCES flag_environments (project_id, name) ON DELETE CASCADE,
    CONSTRAINT flag_changes_kind_check CHECK (kind IN ('flag', 'config', 'segment'))
);

ALTER TABLE flag_environments ENABLE ROW LEVEL SECURITY;
ALTER TABLE flag_environments FORCE ROW LEVEL SECURITY;
CREATE POLICY flag_environments_select ON flag_environments FOR SELECT
    USING (public.tone_can_access_project(project_id));
CREATE POLICY flag_environments_insert ON flag_environments FOR INSERT
    WITH CHECK (public.tone_can_access_project(project_id));
CREATE POLICY flag_environments_update ON flag_environments FOR UPDATE
    USING (public.tone_can_access_project(project_id))
    WITH CHECK (public.tone_can_access_project(project_id));

ALTER TABLE flag_items ENABLE ROW LEVEL SECURITY;
ALTER TABLE flag_items FORCE ROW LEVEL SECURITY;
CREATE POLICY flag_items_select ON flag_items FOR SELECT
    USING (public.tone_can_access_project(project_id));
CREATE POLICY flag_items_insert ON flag_items FOR INSERT
    WITH CHECK (public.tone_can_access_project(project_id));
CREATE POLICY flag_items_update ON flag_items FOR UPDATE
    USING (public.tone_can_access_project(project_id))
    WITH CHECK (public.tone_can_access_project(project_id));
CREATE POLICY flag_items_delete ON flag_items FOR DELETE
    USING (public.tone_can_access_project(project_id));

ALTER TABLE flag_changes ENABLE ROW LEVEL SECURITY;
ALTER TABLE flag_changes FORCE ROW LEVEL SECURITY;
CREATE POLICY flag_changes_select ON flag_changes FOR SELECT
    USING (public.tone_can_access_project(project_id));
CREATE POLICY flag_changes_insert ON flag_changes FOR INSERT
    WITH CHECK (public.tone_can_access_project(project_id));
CREATE POLICY flag_changes_delete ON flag_changes FOR DELETE
    USING (public.tone_can_access_project(project_id));

-- Environments are never renamed or deleted on their own; history rows never
-- change.
GRANT SELECT, INSERT ON flag_environments TO tone_app;
GRANT UPDATE (version) ON flag_environments TO tone_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON flag_items TO tone_app;
GRANT SELECT, INSERT, DELETE ON flag_changes TO tone_app;

-- +goose Down
DROP TABLE flag_changes;
DROP TABLE flag_items;
DROP TABLE flag_environments;
