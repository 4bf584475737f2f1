package postgres

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tone-ai/tone/domain"
)

// outboxLockClass is the first key of the transaction-level advisory locks
// that AppendOutbox takes on channels (the second is the channel's
// bucket). Two-key advisory locks live apart from the one-key ones that
// goose's migration lock uses.
const outboxLockClass = 0x746f6e65 // "tone"

// outboxLockBuckets is how many locks the channels share: a channel's lock
// is its bucket's (FNV-1a of its name modulo this). A transaction holds at
// most this many, however many channels it appends to, which keeps a
// notification to ten thousand users within PostgreSQL's lock table
// (max_locks_per_transaction is 64 per connection by default).
const outboxLockBuckets = 1024

func outboxBucket(channel string) int32 {
	h := fnv.New32a()
	h.Write([]byte(channel))
	return int32(h.Sum32() % outboxLockBuckets)
}

// AppendOutbox appends e alone; see AppendOutboxEvents.
func (t *tx) AppendOutbox(ctx context.Context, e *domain.OutboxEvent) error {
	return t.AppendOutboxEvents(ctx, []*domain.OutboxEvent{e})
}

// AppendOutboxEvents locks the buckets of the events' channels for the
// rest of the transaction, in ascending order and skipping those it holds
// already, then inserts the events with one statement. The lock makes a
// channel's events take ids in commit order: a second transaction
// appending to the channel waits until the first ends, so it cannot take a
// lower id and commit later. Channels sharing a bucket share a lock, which
// costs only waiting. Taking every lock of a transaction at once in
// ascending order (the domain appends its events at the end of each use
// case) means two transactions never wait for each other in a circle.
func (t *tx) AppendOutboxEvents(ctx context.Context, es []*domain.OutboxEvent) (err error) {
	defer wrap(&err, "postgres: append %d outbox events", len(es))
	if len(es) == 0 {
		return nil
	}
	var buckets []int32
	channels := make([]string, len(es))
	types := make([]string, len(es))
	payloads := make([]string, len(es))
	corrs := make([]string, len(es))
	times := make([]time.Time, len(es))
	for i, e := range es {
		if e.Channel == "" || e.Type == "" {
			return fmt.Errorf("outbox event needs a channel and a type")
		}
		b := outboxBucket(e.Channel)
		if !t.outboxLocks[b] {
			buckets = append(buckets, b)
		}
		channels[i], types[i], payloads[i], corrs[i], times[i] = e.Channel, e.Type, string(e.Payload), e.CorrelationID, e.CreatedAt
	}
	slices.Sort(buckets)
	buckets = slices.Compact(buckets)
	if len(buckets) > 0 {
		if _, err := t.tx.Exec(ctx, `SELECT pg_catalog.pg_advisory_xact_lock($1, b) FROM unnest($2::int[]) AS b`,
			int32(outboxLockClass), buckets); err != nil {
			return err
		}
		if t.outboxLocks == nil {
			t.outboxLocks = map[int32]bool{}
		}
		for _, b := range buckets {
			t.outboxLocks[b] = true
		}
	}
	rows, err := t.tx.Query(ctx, `
		INSERT INTO outbox (channel, type, payload, correlation_id, created_at)
		SELECT e.channel, e.type, e.payload, e.correlation_id, e.created_at
		FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::text[], $5::timestamptz[]) WITH ORDINALITY
			AS e (channel, type, payload, correlation_id, created_at, n)
		ORDER BY e.n
		RETURNING id`, channels, types, payloads, corrs, times)
	if err != nil {
		return err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return err
	}
	if len(ids) != len(es) {
		return fmt.Errorf("inserted %d of %d events", len(ids), len(es))
	}
	// Identity values are taken in insertion order, which is es's order.
	slices.Sort(ids)
	for i, e := range es {
		e.ID = ids[i]
	}
	return nil
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
