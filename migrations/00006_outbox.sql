-- The transactional outbox: events waiting to be published to the broker.
--
-- outbox is not a tenant table and has no row-level security: use cases
-- append events inside their own transactions, as their user, and the relay
-- that publishes and deletes them acts for nobody (tone.user_id empty). An
-- event holds a channel name ("project:<id>", "notifications:<user id>") and
-- the public fields of a change (ids, names, roles), never secrets; the
-- realtime layer decides who may subscribe to each channel.
--
-- id is an identity column: events are published in id order. The store
-- takes a transaction-level advisory lock on an event's channel before
-- inserting it, so that the events of one channel get ids in commit order
-- (a transaction that took a lower id cannot commit after a higher one of
-- the same channel has been published).
--
-- The application role gets SELECT, INSERT and DELETE only: it cannot change
-- an event once inserted. Claiming events for the relay takes row
-- locks (SELECT ... FOR UPDATE SKIP LOCKED, so that the relays of several
-- nodes skip each other's events instead of publishing them twice), and
-- PostgreSQL allows FOR UPDATE only with the UPDATE privilege; so
-- tone_claim_outbox does it as the owner (SECURITY DEFINER, search_path
-- pinned to nothing). The locks it takes last until the caller's
-- transaction ends.

-- +goose Up
CREATE TABLE outbox (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel        text NOT NULL,
    type           text NOT NULL,
    payload        jsonb NOT NULL,
    correlation_id text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL,
    CONSTRAINT outbox_channel_check CHECK (channel <> ''),
    CONSTRAINT outbox_type_check CHECK (type <> ''),
    CONSTRAINT outbox_payload_object CHECK (jsonb_typeof(payload) = 'object')
);

-- tone_claim_outbox returns the oldest events not held by another
-- transaction, at most max_events of them (NULL: all), in id order, and
-- holds them until the calling transaction ends.
CREATE FUNCTION public.tone_claim_outbox(max_events integer) RETURNS SETOF public.outbox
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = ''
AS $$
    SELECT o.* FROM public.outbox o ORDER BY o.id LIMIT max_events FOR UPDATE SKIP LOCKED
$$;

REVOKE ALL ON FUNCTION public.tone_claim_outbox(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.tone_claim_outbox(integer) TO tone_app;
GRANT SELECT, INSERT, DELETE ON outbox TO tone_app;

-- +goose Down
DROP FUNCTION public.tone_claim_outbox(integer);
DROP TABLE outbox;
