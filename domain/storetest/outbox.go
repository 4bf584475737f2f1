package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain"
)

// outboxTests are the OutboxStore contract tests, run by Run.
var outboxTests = []struct {
	name string
	fn   func(t *testing.T, s domain.Store)
}{
	{"OutboxAppendClaim", testOutboxAppendClaim},
	{"OutboxDelete", testOutboxDelete},
	{"OutboxRollback", testOutboxRollback},
	{"OutboxInvalid", testOutboxInvalid},
	{"OutboxConcurrentClaims", testOutboxConcurrentClaims},
	{"OutboxAppendMany", testOutboxAppendMany},
	{"OutboxChannelOrderAcrossClaims", testOutboxChannelOrderAcrossClaims},
}

func outboxEvent(ch, typ string, n int) *domain.OutboxEvent {
	return &domain.OutboxEvent{
		Channel: ch, Type: typ, Payload: fmt.Appendf(nil, `{"n": %d, "name": "x"}`, n),
		CorrelationID: fmt.Sprintf("corr-%d", n), CreatedAt: now.Add(time.Duration(n) * time.Second),
	}
}

func appendOutbox(t *testing.T, s domain.Store, actor uuid.UUID, evs ...*domain.OutboxEvent) {
	t.Helper()
	inTx(t, s, actor, func(tx domain.Tx) error {
		for _, e := range evs {
			if err := tx.AppendOutbox(ctx, e); err != nil {
				return err
			}
		}
		return nil
	})
}

// claimAll returns every event in the outbox, in a transaction acting for
// nobody, as the relay's.
func claimAll(t *testing.T, s domain.Store) []*domain.OutboxEvent {
	t.Helper()
	var evs []*domain.OutboxEvent
	inTx(t, s, uuid.Nil, func(tx domain.Tx) (err error) { evs, err = tx.ClaimOutbox(ctx, 0); return })
	return evs
}

func outboxIDs(evs []*domain.OutboxEvent) []int64 {
	ids := []int64{}
	for _, e := range evs {
		ids = append(ids, e.ID)
	}
	return ids
}

func testOutboxAppendClaim(t *testing.T, s domain.Store) {
	u := newUser(t, s, "emitter")
	a, b, c := outboxEvent("project:a", "project.updated", 1), outboxEvent("notifications:b", "project.member.added", 2), outboxEvent("project:a", "project.deleted", 3)
	appendOutbox(t, s, u.ID, a, b)
	appendOutbox(t, s, uuid.Nil, c) // the outbox belongs to no tenant
	assert.Positive(t, a.ID)
	assert.Less(t, a.ID, b.ID, "ids grow within a transaction")
	assert.Less(t, b.ID, c.ID, "and from one transaction to the next")

	var got []*domain.OutboxEvent
	inTx(t, s, uuid.Nil, func(tx domain.Tx) (err error) { got, err = tx.ClaimOutbox(ctx, 2); return })
	require.Equal(t, []int64{a.ID, b.ID}, outboxIDs(got), "the oldest first, at most limit")
	assert.Equal(t, a.Channel, got[0].Channel)
	assert.Equal(t, a.Type, got[0].Type)
	assert.JSONEq(t, string(a.Payload), string(got[0].Payload))
	assert.Equal(t, "corr-1", got[0].CorrelationID)
	assert.True(t, a.CreatedAt.Equal(got[0].CreatedAt), "%s != %s", a.CreatedAt, got[0].CreatedAt)
	assert.Equal(t, time.UTC, got[0].CreatedAt.Location())
	assert.Equal(t, "notifications:b", got[1].Channel)

	assert.Equal(t, []int64{a.ID, b.ID, c.ID}, outboxIDs(claimAll(t, s)), "claiming deletes nothing")
	inTx(t, s, u.ID, func(tx domain.Tx) (err error) { got, err = tx.ClaimOutbox(ctx, 10); return })
	assert.Equal(t, []int64{a.ID, b.ID, c.ID}, outboxIDs(got), "any transaction sees every event")

	// A returned event is a copy.
	got[0].Payload[0] = ' '
	got[0].Channel = "changed"
	assert.Equal(t, "project:a", claimAll(t, s)[0].Channel)
	assert.JSONEq(t, string(a.Payload), string(claimAll(t, s)[0].Payload))
}

func testOutboxDelete(t *testing.T, s domain.Store) {
	evs := []*domain.OutboxEvent{outboxEvent("project:a", "x", 1), outboxEvent("project:b", "x", 2), outboxEvent("project:a", "x", 3)}
	appendOutbox(t, s, uuid.Nil, evs...)
	inTx(t, s, uuid.Nil, func(tx domain.Tx) error { return tx.DeleteOutbox(ctx, []int64{evs[0].ID, evs[2].ID, evs[2].ID + 1000}) })
	assert.Equal(t, []int64{evs[1].ID}, outboxIDs(claimAll(t, s)), "unknown ids are ignored")
	inTx(t, s, uuid.Nil, func(tx domain.Tx) error { return tx.DeleteOutbox(ctx, nil) })
	inTx(t, s, uuid.Nil, func(tx domain.Tx) error { return tx.DeleteOutbox(ctx, []int64{evs[1].ID}) })
	assert.Empty(t, claimAll(t, s))

	later := outboxEvent("project:a", "x", 4)
	appendOutbox(t, s, uuid.Nil, later)
	assert.Greater(t, later.ID, evs[2].ID, "ids are not reused")
}

func testOutboxRollback(t *testing.T, s domain.Store) {
	u := newUser(t, s, "rollback")
	boom := errors.New("boom")
	doomed := outboxEvent("project:a", "x", 1)
	err := s.InTx(ctx, u.ID, func(tx domain.Tx) error {
		require.NoError(t, tx.AppendOutbox(ctx, doomed))
		return boom
	})
	require.ErrorIs(t, err, boom)
	assert.Empty(t, claimAll(t, s), "an event of a rolled back transaction is gone")

	kept := outboxEvent("project:a", "x", 2)
	appendOutbox(t, s, u.ID, kept)
	err = s.InTx(ctx, uuid.Nil, func(tx domain.Tx) error {
		evs, err := tx.ClaimOutbox(ctx, 10)
		require.NoError(t, err)
		require.Len(t, evs, 1)
		require.NoError(t, tx.DeleteOutbox(ctx, []int64{evs[0].ID}))
		return boom // the publish failed
	})
	require.ErrorIs(t, err, boom)
	assert.Equal(t, []int64{kept.ID}, outboxIDs(claimAll(t, s)), "a rolled back delete keeps the event")
}

func testOutboxInvalid(t *testing.T, s domain.Store) {
	for _, test := range []struct {
		name string
		e    *domain.OutboxEvent
	}{
		{"no channel", &domain.OutboxEvent{Type: "x", Payload: []byte(`{}`), CreatedAt: now}},
		{"no type", &domain.OutboxEvent{Channel: "project:a", Payload: []byte(`{}`), CreatedAt: now}},
		{"array payload", &domain.OutboxEvent{Channel: "project:a", Type: "x", Payload: []byte(`[1]`), CreatedAt: now}},
		{"bad payload", &domain.OutboxEvent{Channel: "project:a", Type: "x", Payload: []byte(`{"a":`), CreatedAt: now}},
		{"no payload", &domain.OutboxEvent{Channel: "project:a", Type: "x", CreatedAt: now}},
	} {
		err := s.InTx(ctx, uuid.Nil, func(tx domain.Tx) error { return tx.AppendOutbox(ctx, test.e) })
		assert.Error(t, err, test.name)
	}
	assert.Empty(t, claimAll(t, s))
}

// testOutboxConcurrentClaims runs several relays at once, each claiming a
// few events, "publishing" and deleting them per transaction: together they
// see every event exactly once.
func testOutboxConcurrentClaims(t *testing.T, s domain.Store) {
	var evs []*domain.OutboxEvent
	for i := range 40 {
		evs = append(evs, outboxEvent(fmt.Sprintf("project:%d", i%3), "x", i))
	}
	appendOutbox(t, s, uuid.Nil, evs...)
	var mu sync.Mutex
	var seen []int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for idle := 0; idle < 20; {
				var n int
				err := s.InTx(ctx, uuid.Nil, func(tx domain.Tx) error {
					got, err := tx.ClaimOutbox(ctx, 3)
					if err != nil {
						return err
					}
					n = len(got)
					ids := outboxIDs(got)
					if !slices.IsSorted(ids) {
						return fmt.Errorf("claimed out of order: %v", ids)
					}
					time.Sleep(time.Millisecond) // publishing
					mu.Lock()
					seen = append(seen, ids...)
					mu.Unlock()
					return tx.DeleteOutbox(ctx, ids)
				})
				if !assert.NoError(t, err) {
					return
				}
				if n == 0 {
					idle++ // others may hold the events left, or their channels' older ones
					time.Sleep(time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	slices.Sort(seen)
	assert.Equal(t, outboxIDs(evs), seen, "every event claimed exactly once")
	assert.Empty(t, claimAll(t, s))
}

// testOutboxChannelOrderAcrossClaims runs several relays at once, as on
// several nodes, and checks that each channel's events are "published" in
// id order: a relay never takes a channel's event while another holds an
// older one of that channel.
func testOutboxChannelOrderAcrossClaims(t *testing.T, s domain.Store) {
	var evs []*domain.OutboxEvent
	for i := range 60 {
		evs = append(evs, outboxEvent(fmt.Sprintf("project:%d", i%4), "x", i))
	}
	appendOutbox(t, s, uuid.Nil, evs...)
	channel := map[int64]string{}
	for _, e := range evs {
		channel[e.ID] = e.Channel
	}
	var mu sync.Mutex
	published := map[string][]int64{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for idle := 0; idle < 20; {
				var n int
				err := s.InTx(ctx, uuid.Nil, func(tx domain.Tx) error {
					got, err := tx.ClaimOutbox(ctx, 5)
					if err != nil {
						return err
					}
					n = len(got)
					for _, e := range got {
						mu.Lock()
						published[e.Channel] = append(published[e.Channel], e.ID)
						mu.Unlock()
						time.Sleep(200 * time.Microsecond) // publishing
					}
					return tx.DeleteOutbox(ctx, outboxIDs(got))
				})
				if !assert.NoError(t, err) {
					return
				}
				if n == 0 {
					idle++ // others may hold the events left
					time.Sleep(time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	total := 0
	for ch, ids := range published {
		assert.True(t, slices.IsSorted(ids), "events of %s published out of order: %v", ch, ids)
		total += len(ids)
	}
	assert.Equal(t, len(evs), total, "every event published exactly once")
	assert.Empty(t, claimAll(t, s))
}

// testOutboxAppendMany appends one event to each of 10,000 channels in one
// transaction (a notification to 10,000 users): they get ids in order, and
// the store does not run out of locks.
func testOutboxAppendMany(t *testing.T, s domain.Store) {
	const n = 10000
	evs := make([]*domain.OutboxEvent, n)
	for i := range evs {
		evs[i] = outboxEvent(fmt.Sprintf("notifications:%d", i), "project.member.added", i)
	}
	inTx(t, s, uuid.Nil, func(tx domain.Tx) error {
		if err := tx.AppendOutboxEvents(ctx, evs[:1]); err != nil {
			return err
		}
		return tx.AppendOutboxEvents(ctx, evs[1:])
	})
	for i := 1; i < n; i++ {
		require.Greater(t, evs[i].ID, evs[i-1].ID, "ids follow the order of appending")
	}
	got := claimAll(t, s)
	require.Len(t, got, n)
	for i, e := range got {
		require.Equal(t, evs[i].ID, e.ID)
		require.Equal(t, evs[i].Channel, e.Channel)
		require.JSONEq(t, string(evs[i].Payload), string(e.Payload))
	}
}
