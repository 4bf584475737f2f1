-- Canvases: document metadata, replica claims, the op log and snapshots,
-- with row-level security.
--
-- These are tenant tables (see 00001 and 00003): ENABLE and FORCE ROW LEVEL
-- SECURITY, one policy per command the application role may run. The
-- current user sees and changes
--
--   - the canvases of projects they can see (members of the project or of its
--     workspace), through tone_can_access_project, as project_members does;
--   - the replica claims, op log entries and snapshots of those canvases:
--     their policies ask whether the canvas row is visible, so the canvases
--     policy decides for all four tables.
--
-- Who may write (editors) and delete (admins) is the domain's business rule,
-- checked there; the policies draw only the tenant boundary. In particular an
-- op log entry or a replica claim may be written for another user of the
-- project: the realtime canvas session commits the updates of several users
-- in one transaction, run as one of them.
--
-- Replica ids and sequence numbers are uint64 in the application and bigint
-- here; the stores refuse values above 2^63-1 before they reach SQL, and the
-- CHECKs refuse zero and negative ones (replica 0 is reserved by the crdt,
-- and sequence numbers start at 1).
--
-- canvas_updates.pos and canvas_snapshots.pos are identity columns that
-- record the order rows were stored in: the op log is read back in that
-- order, and the latest periodic snapshot is the one stored last, not the one
-- with the greatest timestamp (nodes' clocks may disagree). Every op log
-- entry references the claim of its (canvas, replica, actor), so the
-- database itself guarantees that nobody writes under someone else's
-- replica id.
--
-- Deleting a canvas, or its project, removes its claims, op log and
-- snapshots (ON DELETE CASCADE runs as the table owner, whoever asked).
-- Claims are never deleted otherwise: a replica id stays with its user for
-- the life of the canvas. Op log entries are deleted when a snapshot covers
-- them (compaction) and never updated; snapshots are neither updated nor
-- deleted by the application.

-- +goose Up
CREATE TABLE canvases (
    id         uuid PRIMARY KEY, -- UUIDv7
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name       text NOT NULL,
    created_by uuid NOT NULL, -- history: no foreign key, so that it outlives the account
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX canvases_project_id_idx ON canvases (project_id, id);

CREATE TABLE canvas_replicas (
    canvas_id uuid NOT NULL REFERENCES canvases (id) ON DELETE CASCADE,
    replica   bigint NOT NULL,
    user_id   uuid NOT NULL, -- no foreign key: a replica id is never handed to anyone else
    PRIMARY KEY (canvas_id, replica),
    CONSTRAINT canvas_replicas_owner_key UNIQUE (canvas_id, replica, user_id), -- target of canvas_updates' key
    CONSTRAINT canvas_replicas_replica_check CHECK (replica > 0)
);

CREATE TABLE canvas_updates (
    canvas_id uuid NOT NULL,
    replica   bigint NOT NULL,
    first_seq bigint NOT NULL,
    last_seq  bigint NOT NULL,
    data      bytea NOT NULL,  -- an encoded crdt update
    actor_id  uuid NOT NULL,   -- who sent it: the user the replica is claimed by
    at        timestamptz NOT NULL,
    pos       bigint GENERATED ALWAYS AS IDENTITY, -- append order
    PRIMARY KEY (canvas_id, replica, first_seq),
    CONSTRAINT canvas_updates_claim_fkey FOREIGN KEY (canvas_id, replica, actor_id)
        REFERENCES canvas_replicas (canvas_id, replica, user_id) ON DELETE CASCADE,
    CONSTRAINT canvas_updates_seq_check CHECK (replica > 0 AND first_seq > 0 AND last_seq >= first_seq)
);
-- Loading reads a canvas's log in append order.
CREATE INDEX canvas_updates_canvas_id_pos_idx ON canvas_updates (canvas_id, pos);

CREATE TABLE canvas_snapshots (
    id               uuid PRIMARY KEY, -- UUIDv7
    canvas_id        uuid NOT NULL REFERENCES canvases (id) ON DELETE CASCADE,
    name             text NOT NULL DEFAULT '', -- '' for periodic snapshots, else a named version
    -- The version vector, sorted by replica, without zero entries.
    version_replicas bigint[] NOT NULL,
    version_seqs     bigint[] NOT NULL,
    data             bytea NOT NULL, -- an encoded crdt document
    created_by       uuid NOT NULL,
    created_at       timestamptz NOT NULL,
    pos              bigint GENERATED ALWAYS AS IDENTITY, -- storage order
    CONSTRAINT canvas_snapshots_version_check CHECK (cardinality(version_replicas) = cardinality(version_seqs))
);
-- The latest periodic snapshot, and the named versions a page at a time.
CREATE INDEX canvas_snapshots_periodic_idx ON canvas_snapshots (canvas_id, pos DESC) WHERE name = '';
CREATE INDEX canvas_snapshots_named_idx ON canvas_snapshots (canvas_id, id) WHERE name <> '';

ALTER TABLE canvases ENABLE ROW LEVEL SECURITY;
ALTER TABLE canvases FORCE ROW LEVEL SECURITY;
CREATE POLICY canvases_select ON canvases FOR SELECT
    USING (public.tone_can_access_project(project_id));
CREATE POLICY canvases_insert ON canvases FOR INSERT
    WITH CHECK (public.tone_can_access_project(project_id));
CREATE POLICY canvases_update ON canvases FOR UPDATE
    USING (public.tone_can_access_project(project_id))
    WITH CHECK (public.tone_can_access_project(project_id));
CREATE POLICY canvases_delete ON canvases FOR DELETE
    USING (public.tone_can_access_project(project_id));

-- The child tables' policies look the canvas up in canvases, whose own
-- policy then applies: a child row is visible exactly when its canvas is.
ALTER TABLE canvas_replicas ENABLE ROW LEVEL SECURITY;
ALTER TABLE canvas_replicas FORCE ROW LEVEL SECURITY;
CREATE POLICY canvas_replicas_select ON canvas_replicas FOR SELECT
    USING (EXISTS (SELECT FROM public.canvases c WHERE c.id = canvas_replicas.canvas_id));
CREATE POLICY canvas_replicas_insert ON canvas_replicas FOR INSERT
    WITH CHECK (EXISTS (SELECT FROM public.canvases c WHERE c.id = canvas_replicas.canvas_id));

ALTER TABLE canvas_updates ENABLE ROW LEVEL SECURITY;
ALTER TABLE canvas_updates FORCE ROW LEVEL SECURITY;
CREATE POLICY canvas_updates_select ON canvas_updates FOR SELECT
    USING (EXISTS (SELECT FROM public.canvases c WHERE c.id = canvas_updates.canvas_id));
CREATE POLICY canvas_updates_insert ON canvas_updates FOR INSERT
    WITH CHECK (EXISTS (SELECT FROM public.canvases c WHERE c.id = canvas_updates.canvas_id));
CREATE POLICY canvas_updates_delete ON canvas_updates FOR DELETE
    USING (EXISTS (SELECT FROM public.canvases c WHERE c.id = canvas_updates.canvas_id));

ALTER TABLE canvas_snapshots ENABLE ROW LEVEL SECURITY;
ALTER TABLE canvas_snapshots FORCE ROW LEVEL SECURITY;
CREATE POLICY canvas_snapshots_select ON canvas_snapshots FOR SELECT
    USING (EXISTS (SELECT FROM public.canvases c WHERE c.id = canvas_snapshots.canvas_id));
CREATE POLICY canvas_snapshots_insert ON canvas_snapshots FOR INSERT
    WITH CHECK (EXISTS (SELECT FROM public.canvases c WHERE c.id = canvas_snapshots.canvas_id));
-- No UPDATE policies (and no DELETE on claims and snapshots), and no such
-- privileges below.

-- A canvas never moves to another project; claims, entries and snapshots
-- never change. The UPDATE privilege on canvases also lets LockCanvas take
-- row locks (SELECT ... FOR SHARE / FOR NO KEY UPDATE).
GRANT SELECT, INSERT, DELETE ON canvases TO tone_app;
GRANT UPDATE (name, updated_at) ON canvases TO tone_app;
GRANT SELECT, INSERT ON canvas_replicas, canvas_snapshots TO tone_app;
GRANT SELECT, INSERT, DELETE ON canvas_updates TO tone_app;

-- +goose Down
DROP TABLE canvas_snapshots;
DROP TABLE canvas_updates;
DROP TABLE canvas_replicas;
DROP TABLE canvases;
