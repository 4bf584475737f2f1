-- Tamper evidence for audit events: a hash chain per workspace.
--
-- Each event belongs to one chain: its workspace's, or for events outside
-- any workspace, its actor's. Within a chain events are numbered (seq, from
-- 1, gap-free) and each stores the hash of the previous event (prev_hash;
-- empty for seq 1) and its own hash, SHA-256 over a canonical encoding of
-- all its fields and prev_hash (computed by the application; see
-- domain.AuditEvent.ComputeHash). audit_heads holds each chain's last seq
-- and hash, so that deleting the newest events shows too.
--
-- Appends to a chain are serialised: tone_audit_head(chain) creates the
-- head row if needed, locks it FOR UPDATE until the transaction ends and
-- returns it; the application then inserts the event with seq = head + 1
-- and prev_hash = the head's hash. A trigger (as the owner, after the
-- row-level security checks) refuses an event that does not extend its
-- chain's head and advances the head. The
-- application role has no privileges on audit_heads and, as before, only
-- SELECT and INSERT on audit_events: it can neither edit nor delete an
-- event, nor move a head. Events written before this migration have no
-- seq and stand outside the chains.

-- +goose Up
ALTER TABLE audit_events
    ADD COLUMN chain     uuid,
    ADD COLUMN seq       bigint,
    ADD COLUMN prev_hash bytea,
    ADD COLUMN hash      bytea,
    ADD CONSTRAINT audit_events_chain_check
        CHECK ((seq IS NULL) = (chain IS NULL) AND (seq IS NULL) = (hash IS NULL) AND (seq IS NULL) = (prev_hash IS NULL));
CREATE UNIQUE INDEX audit_events_chain_seq_idx ON audit_events (chain, seq) WHERE seq IS NOT NULL;
CREATE INDEX audit_events_target_idx ON audit_events (target_type, target_id, id);

CREATE TABLE audit_heads (
    chain uuid PRIMARY KEY,
    seq   bigint NOT NULL,
    hash  bytea NOT NULL
);
ALTER TABLE audit_heads ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_heads FORCE ROW LEVEL SECURITY;
-- No policies and no privileges for tone_app: only the functions below
-- (SECURITY DEFINER, as the owner) read or move heads.

-- tone_audit_head creates chain c's head if it has none, locks it until the
-- calling transaction ends, and returns it.
-- +goose StatementBegin
CREATE FUNCTION public.tone_audit_head(c uuid) RETURNS TABLE (seq bigint, hash bytea)
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = ''
AS $$
    INSERT INTO public.audit_heads (chain, seq, hash) VALUES (c, 0, '\x') ON CONFLICT (chain) DO NOTHING;
    SELECT h.seq, h.hash FROM public.audit_heads h WHERE h.chain = c FOR UPDATE;
$$;
-- +goose StatementEnd

-- tone_audit_chain_head returns chain c's head without locking it, if the
-- current user may read the chain (a member of the workspace, or the actor
-- of a personal chain).
CREATE FUNCTION public.tone_audit_chain_head(c uuid) RETURNS TABLE (seq bigint, hash bytea)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
AS $$
    SELECT h.seq, h.hash FROM public.audit_heads h
    WHERE h.chain = c AND (c = ANY (public.tone_workspace_ids()) OR c = public.tone_user_id())
$$;

-- tone_audit_extend_chain refuses an event that does not extend its
-- chain's head and moves the head to it.
-- +goose StatementBegin
CREATE FUNCTION public.tone_audit_extend_chain() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = ''
AS $$
DECLARE
    h public.audit_heads;
BEGIN
    IF NEW.seq IS NULL THEN
        RAISE EXCEPTION 'audit event % has no place in a chain', NEW.id;
    END IF;
    SELECT * INTO h FROM public.audit_heads WHERE chain = NEW.chain FOR UPDATE;
    IF NOT FOUND OR NEW.seq <> h.seq + 1 OR NEW.prev_hash <> h.hash THEN
        RAISE EXCEPTION 'audit event % does not extend the head of chain %', NEW.id, NEW.chain;
    END IF;
    UPDATE public.audit_heads SET seq = NEW.seq, hash = NEW.hash WHERE chain = NEW.chain;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER audit_events_extend_chain AFTER INSERT ON audit_events
    FOR EACH ROW EXECUTE FUNCTION public.tone_audit_extend_chain();

REVOKE ALL ON FUNCTION public.tone_audit_head(uuid), public.tone_audit_chain_head(uuid),
    public.tone_audit_extend_chain() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.tone_audit_head(uuid), public.tone_audit_chain_head(uuid) TO tone_app;

-- +goose Down
DROP TRIGGER audit_events_extend_chain ON audit_events;
DROP FUNCTION public.tone_audit_extend_chain();
DROP FUNCTION public.tone_audit_chain_head(uuid);
DROP FUNCTION public.tone_audit_head(uuid);
DROP TABLE audit_heads;
DROP INDEX audit_events_target_idx;
DROP INDEX audit_events_chain_seq_idx;
ALTER TABLE audit_events DROP CONSTRAINT audit_events_chain_check,
    DROP COLUMN hash, DROP COLUMN prev_hash, DROP COLUMN seq, DROP COLUMN chain;
