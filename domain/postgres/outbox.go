package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/tone-ai/tone/domain"
)

// outboxLockClass is the first key of the transaction-level advisory locks
// that AppendOutbox takes on channels (the second is the hash of the
// channel name). Two-key advisory locks live apart from the one-key ones
// that goose's migration lock uses.
const outboxLockClass = 0x746f6e65 // "tone"

// AppendOutbox locks e's channel for the rest of the transaction, then
// inserts e. The lock makes a channel's events take ids in commit order: a
// second transaction appending to the channel waits until the first ends,
// so it cannot take a lower id and commit later. Transactions that append
// to several channels lock them in the order they append; the domain
// always appends to a project's channel before a user's notifications.
// Channels whose names hash alike share a lock, which costs only waiting.
func (t *tx) AppendOutbox(ctx context.Context, e *domain.OutboxEvent) (err error) {
	defer wrap(&err, "postgres: append outbox event %s on %s", e.Type, e.Channel)
	if _, err := t.tx.Exec(ctx, `SELECT pg_catalog.pg_advisory_xact_lock($1, pg_catalog.hashtext($2))`,
		int32(outboxLockClass), e.Channel); err != nil {
		return err
	}
	return t.tx.QueryRow(ctx, `
		INSERT INTO outbox (channel, type, payload, correlation_id, created_at)
		VALUES ($1, $2, $3, $4, $5)
		RETURNING id`,
		e.Channel, e.Type, []byte(e.Payload), e.CorrelationID, e.CreatedAt).Scan(&e.ID)
}

func scanOutbox(row pgx.Row) (*domain.OutboxEvent, error) {
	var e domain.OutboxEvent
	if err := row.Scan(&e.ID, &e.Channel, &e.Type, &e.Payload, &e.CorrelationID, &e.CreatedAt); err != nil {
		return nil, err
	}
	e.CreatedAt = e.CreatedAt.UTC()
	return &e, nil
}

// ClaimOutbox locks the oldest events that no other transaction holds
// (SELECT ... FOR UPDATE SKIP LOCKED, in tone_claim_outbox_ordered: the
// application role has no UPDATE privilege on outbox) and returns those
// with no older event of their channel held elsewhere.
func (t *tx) ClaimOutbox(ctx context.Context, limit int) (_ []*domain.OutboxEvent, err error) {
	defer wrap(&err, "postgres: claim outbox")
	var n *int
	if limit > 0 {
		n = &limit
	}
	rows, err := t.tx.Query(ctx, `
		SELECT id, channel, type, payload, correlation_id, created_at
		FROM public.tone_claim_outbox_ordered($1) ORDER BY id`, n)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanOutbox)
}

func (t *tx) DeleteOutbox(ctx context.Context, ids []int64) (err error) {
	defer wrap(&err, "postgres: delete outbox events")
	if len(ids) == 0 {
		return nil
	}
	_, err = t.tx.Exec(ctx, `DELETE FROM outbox WHERE id = ANY ($1)`, ids)
	return err
}
