package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain"
	"github.com/tone-ai/tone/domain/postgres"
	"github.com/tone-ai/tone/domain/postgres/pgtest"
)

func outboxEvent(ch string) *domain.OutboxEvent {
	return &domain.OutboxEvent{Channel: ch, Type: "test.event", Payload: []byte(`{}`), CreatedAt: now}
}

// holdTx runs fn in a transaction of s on its own goroutine and keeps the
// transaction open until release is called; release returns InTx's error.
func holdTx(t *testing.T, s domain.Store, fn func(tx domain.Tx) error) (release func() error) {
	t.Helper()
	ready, proceed, done := make(chan error, 1), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- s.InTx(ctx, uuid.Nil, func(tx domain.Tx) error {
			err := fn(tx)
			ready <- err
			if err != nil {
				return err
			}
			<-proceed
			return nil
		})
	}()
	require.NoError(t, <-ready)
	var released bool
	release = func() error {
		if !released {
			released = true
			close(proceed)
		}
		return <-done
	}
	t.Cleanup(func() {
		if !released {
			release()
		}
	})
	return release
}

// TestOutboxSkipLocked: a relay's claim skips the events another relay's
// open transaction holds, without waiting for it, and the later events of
// their channels too, so that each channel is published in order.
func TestOutboxSkipLocked(t *testing.T) {
	s := postgres.New(pgtest.New(t))
	var ids []int64
	require.NoError(t, s.InTx(ctx, uuid.Nil, func(tx domain.Tx) error {
		for _, ch := range []string{"project:a", "project:b", "project:a", "project:b", "project:c", "project:c"} {
			e := outboxEvent(ch)
			if err := tx.AppendOutbox(ctx, e); err != nil {
				return err
			}
			ids = append(ids, e.ID)
		}
		return nil
	}))

	var first []*domain.OutboxEvent
	release := holdTx(t, s, func(tx domain.Tx) (err error) { first, err = tx.ClaimOutbox(ctx, 2); return })
	require.Len(t, first, 2)
	assert.Equal(t, ids[:2], []int64{first[0].ID, first[1].ID})

	// While the first claim is held, a second one gets, at once, the
	// events of the channel the first holds none of; those of a and b wait
	// for their older events.
	tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var second []*domain.OutboxEvent
	require.NoError(t, s.InTx(tctx, uuid.Nil, func(tx domain.Tx) (err error) { second, err = tx.ClaimOutbox(tctx, 10); return }),
		"the second claim must not wait for the first")
	require.Len(t, second, 2)
	assert.Equal(t, ids[4:], []int64{second[0].ID, second[1].ID})

	require.NoError(t, release())
	var all []*domain.OutboxEvent
	require.NoError(t, s.InTx(ctx, uuid.Nil, func(tx domain.Tx) (err error) { all, err = tx.ClaimOutbox(ctx, 0); return }))
	assert.Len(t, all, 6, "events held by a transaction that ended are claimable again")
}

// TestOutboxChannelOrder: a transaction appending to a channel waits for
// another that appended to it first, so the channel's ids follow commit
// order; other channels do not wait.
func TestOutboxChannelOrder(t *testing.T) {
	s := postgres.New(pgtest.New(t))
	first := outboxEvent("project:a")
	release := holdTx(t, s, func(tx domain.Tx) error { return tx.AppendOutbox(ctx, first) })

	other := outboxEvent("project:b")
	tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	require.NoError(t, s.InTx(tctx, uuid.Nil, func(tx domain.Tx) error { return tx.AppendOutbox(tctx, other) }),
		"another channel does not wait")

	second := outboxEvent("project:a")
	done := make(chan error, 1)
	go func() {
		done <- s.InTx(ctx, uuid.Nil, func(tx domain.Tx) error { return tx.AppendOutbox(ctx, second) })
	}()
	select {
	case err := <-done:
		t.Fatalf("the second append to the channel did not wait for the first transaction (err %v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	require.NoError(t, release())
	require.NoError(t, <-done)
	assert.Greater(t, second.ID, first.ID)
	assert.Greater(t, second.ID, other.ID, "the waiting append took its id after the wait")
}

// TestOutboxPrivileges: the outbox has no row-level security, and the
// application role may read, insert and delete events but not change them;
// it claims through tone_claim_outbox_ordered.
func TestOutboxPrivileges(t *testing.T) {
	db := pgtest.NewDB(t)
	owner, app := db.OwnerPool(t), db.AppPool(t)
	for priv, want := range map[string]bool{"SELECT": true, "INSERT": true, "DELETE": true, "UPDATE": false, "TRUNCATE": false, "REFERENCES": false, "TRIGGER": false} {
		var has bool
		require.NoError(t, owner.QueryRow(ctx, `SELECT has_table_privilege('tone_app', 'outbox', $1)`, priv).Scan(&has))
		assert.Equal(t, want, has, "tone_app %s on outbox", priv)
	}
	var exec, rls bool
	require.NoError(t, owner.QueryRow(ctx, `SELECT has_function_privilege('tone_app', 'public.tone_claim_outbox_ordered(integer)', 'EXECUTE')`).Scan(&exec))
	assert.True(t, exec)
	require.NoError(t, owner.QueryRow(ctx, `SELECT relrowsecurity FROM pg_class WHERE oid = 'public.outbox'::regclass`).Scan(&rls))
	assert.False(t, rls, "the outbox is not a tenant table")

	s := postgres.New(app)
	e := outboxEvent("project:a")
	require.NoError(t, s.InTx(ctx, uuid.Nil, func(tx domain.Tx) error { return tx.AppendOutbox(ctx, e) }))
	for _, q := range []string{
		`UPDATE outbox SET channel = 'project:b'`,
		`UPDATE outbox SET id = DEFAULT`,
		`SELECT id FROM outbox FOR UPDATE`,
	} {
		_, err := app.Exec(ctx, q)
		var pgErr *pgconn.PgError
		if assert.True(t, errors.As(err, &pgErr), "%s: %v", q, err) {
			assert.Equal(t, "42501", pgErr.Code, "%s: %v", q, err) // insufficient_privilege
		}
	}
}
