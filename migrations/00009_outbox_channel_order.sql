-- Relays on several nodes publish a channel's events in id order.
--
-- tone_claim_outbox_ordered locks the oldest events no other transaction
-- holds (FOR UPDATE SKIP LOCKED), like tone_claim_outbox, but returns only
-- those that have no older event of their channel outside its own claim.
-- An older event that another relay holds is being published by it; the
-- newer ones of that channel wait (locked by this transaction until it
-- ends; the caller does not see them) and are claimed in a later round,
-- once the other relay has deleted the older one. Events of other channels
-- go out at once. tone_claim_outbox stays for nodes of the previous version
-- during a rolling upgrade. The index serves the search for older events.

-- +goose Up
CREATE INDEX outbox_channel_id ON outbox (channel, id);

CREATE FUNCTION public.tone_claim_outbox_ordered(max_events integer) RETURNS SETOF public.outbox
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = ''
AS $$
    WITH claimed AS (
        SELECT o.* FROM public.outbox o ORDER BY o.id LIMIT max_events FOR UPDATE SKIP LOCKED
    )
    SELECT c.* FROM claimed c
    WHERE NOT EXISTS (
        SELECT 1 FROM public.outbox older
        WHERE older.channel = c.channel AND older.id < c.id
          AND older.id NOT IN (SELECT id FROM claimed)
    )
    ORDER BY c.id
$$;

REVOKE ALL ON FUNCTION public.tone_claim_outbox_ordered(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.tone_claim_outbox_ordered(integer) TO tone_app;

-- +goose Down
DROP FUNCTION public.tone_claim_outbox_ordered(integer);
DROP INDEX outbox_channel_id;
