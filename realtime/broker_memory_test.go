package realtime

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMemoryBroker(t *testing.T) {
	runBrokerSuite(t, func(t *testing.T) (Broker, Presence) {
		b := NewMemoryBroker(suiteHistorySize, suiteHistoryTTL)
		return b, b
	})
}

// fakeClock is a settable clock for the memory broker's now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClockedMemoryBroker(size int, ttl time.Duration) (*MemoryBroker, *fakeClock) {
	clock := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	b := NewMemoryBroker(size, ttl)
	b.now = clock.now
	return b, clock
}

func TestMemoryBrokerDeliversBeforePublishReturns(t *testing.T) {
	// The node's own tests rely on this: a publication has reached the
	// handler by the time Publish returns.
	b := NewMemoryBroker(10, time.Minute)
	h := newRecordingHandler()
	c, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.Run(c, h)
	require.NoError(t, b.Subscribe(t.Context(), "x:1"))
	waitReady(t, b, h, "x:1")
	for i := 1; i <= 20; i++ {
		_, err := b.Publish(t.Context(), "x:1", &Publication{Data: payload(i)})
		require.NoError(t, err)
		require.Len(t, h.pubsOf("x:1"), i)
	}
	require.NoError(t, b.Broadcast(t.Context(), "x:1", []byte("e")))
	assert.Equal(t, []byte("e"), h.ephemeralOf("x:1")[len(h.ephemeralOf("x:1"))-1])
}

func TestMemoryBrokerWithoutRun(t *testing.T) {
	// Before Run there is no handler: publications are kept, not delivered.
	b := NewMemoryBroker(10, time.Minute)
	require.NoError(t, b.Subscribe(t.Context(), "x:1"))
	pos, err := b.Publish(t.Context(), "x:1", &Publication{Data: payload(1)})
	require.NoError(t, err)
	require.NoError(t, b.Broadcast(t.Context(), "x:1", []byte("e")))
	pubs, top, err := b.History(t.Context(), "x:1", Position{Epoch: pos.Epoch}, 0)
	require.NoError(t, err)
	assert.Equal(t, pos, top)
	requireRun(t, pubs, 1, 1)
}

func TestMemoryBrokerTTLBoundary(t *testing.T) {
	b, clock := newClockedMemoryBroker(10, time.Minute)
	pos, err := b.Publish(t.Context(), "x:1", &Publication{Data: payload(1)})
	require.NoError(t, err)
	clock.add(time.Minute) // idle exactly the TTL: still there
	_, top, err := b.History(t.Context(), "x:1", pos, 0)
	require.NoError(t, err)
	assert.Equal(t, pos, top)
	// A publication renews the stream: the TTL counts from the last one.
	pos, err = b.Publish(t.Context(), "x:1", &Publication{Data: payload(2)})
	require.NoError(t, err)
	assert.Equal(t, uint64(2), pos.Offset)
	clock.add(time.Minute - time.Nanosecond)
	_, _, err = b.History(t.Context(), "x:1", pos, 0)
	require.NoError(t, err)
	clock.add(2 * time.Nanosecond)
	_, top, err = b.History(t.Context(), "x:1", pos, 0)
	require.ErrorIs(t, err, ErrHistoryUnavailable)
	assert.NotEqual(t, pos.Epoch, top.Epoch)
	// Reading History does not renew a stream.
	clock.add(30 * time.Second)
	_, _, err = b.History(t.Context(), "x:1", Position{}, 0)
	require.NoError(t, err)
	clock.add(30*time.Second + time.Nanosecond)
	pos2, err := b.Publish(t.Context(), "x:1", &Publication{Data: payload(1)})
	require.NoError(t, err)
	assert.Equal(t, uint64(1), pos2.Offset)
}

func TestMemoryBrokerNoLimits(t *testing.T) {
	// Size 0 keeps every publication; TTL 0 keeps a stream forever.
	b, clock := newClockedMemoryBroker(0, 0)
	var first Position
	for i := 1; i <= 500; i++ {
		pos, err := b.Publish(t.Context(), "x:1", &Publication{Data: payload(i)})
		require.NoError(t, err)
		if i == 1 {
			first = pos
		}
	}
	clock.add(1000 * time.Hour)
	b.expire()
	pubs, top, err := b.History(t.Context(), "x:1", Position{Epoch: first.Epoch}, 0)
	require.NoError(t, err)
	assert.Equal(t, Position{Offset: 500, Epoch: first.Epoch}, top)
	requireRun(t, pubs, 1, 500)
}

func TestMemoryBrokerExpireFreesMemory(t *testing.T) {
	// Run's sweep drops idle streams and expired presence, so channels no
	// longer used cost nothing.
	b, clock := newClockedMemoryBroker(10, time.Minute)
	_, err := b.Publish(t.Context(), "idle:1", &Publication{Data: payload(1)})
	require.NoError(t, err)
	require.NoError(t, b.SetPresence(t.Context(), "p:1", PresenceInfo{Client: "a"}, time.Second))
	require.NoError(t, b.SetPresence(t.Context(), "p:2", PresenceInfo{Client: "a"}, time.Second))
	require.NoError(t, b.SetPresence(t.Context(), "p:2", PresenceInfo{Client: "b"}, time.Hour))
	clock.add(30 * time.Second)
	_, err = b.Publish(t.Context(), "busy:1", &Publication{Data: payload(1)})
	require.NoError(t, err)
	clock.add(31 * time.Second)
	b.expire()

	b.mu.Lock()
	defer b.mu.Unlock()
	assert.NotContains(t, b.streams, "idle:1")
	assert.Contains(t, b.streams, "busy:1")
	assert.NotContains(t, b.presence, "p:1", "a channel whose presence all expired is dropped")
	require.Contains(t, b.presence, "p:2")
	assert.Len(t, b.presence["p:2"], 1)
	assert.Contains(t, b.presence["p:2"], "b")
}

func TestMemoryBrokerRemoveLastPresenceFreesChannel(t *testing.T) {
	b := NewMemoryBroker(10, time.Minute)
	require.NoError(t, b.SetPresence(t.Context(), "p:1", PresenceInfo{Client: "a"}, time.Minute))
	require.NoError(t, b.RemovePresence(t.Context(), "p:1", "a"))
	b.mu.Lock()
	defer b.mu.Unlock()
	assert.Empty(t, b.presence)
}

func TestMemoryBrokerPresenceExpiryBoundary(t *testing.T) {
	b, clock := newClockedMemoryBroker(10, time.Minute)
	require.NoError(t, b.SetPresence(t.Context(), "p:1", PresenceInfo{Client: "a", User: "u"}, time.Second))
	clock.add(time.Second)
	list, err := b.Presence(t.Context(), "p:1")
	require.NoError(t, err)
	assert.Len(t, list, 1, "listed until its ttl has passed")
	clock.add(time.Nanosecond)
	list, err = b.Presence(t.Context(), "p:1")
	require.NoError(t, err)
	assert.Empty(t, list)
}

// TestMemoryBrokerQuietSubscribedChannel: a channel this node listens to
// keeps its epoch and offsets however long it stays quiet, so live
// subscriptions are not reset; only its history ages out.
func TestMemoryBrokerQuietSubscribedChannel(t *testing.T) {
	b, clock := newClockedMemoryBroker(10, time.Minute)
	ctx := context.Background()
	require.NoError(t, b.Subscribe(ctx, "q"))
	first, err := b.Publish(ctx, "q", &Publication{Data: []byte{1}})
	require.NoError(t, err)
	clock.add(time.Hour)
	b.expire()

	_, top, err := b.History(ctx, "q", Position{Offset: 0, Epoch: first.Epoch}, 0)
	assert.ErrorIs(t, err, ErrHistoryUnavailable, "the history itself is gone")
	assert.Equal(t, first, top, "the position is kept")
	pubs, _, err := b.History(ctx, "q", first, 0)
	require.NoError(t, err, "a subscriber at the top has missed nothing")
	assert.Empty(t, pubs)
	next, err := b.Publish(ctx, "q", &Publication{Data: []byte{2}})
	require.NoError(t, err)
	assert.Equal(t, Position{Offset: 2, Epoch: first.Epoch}, next, "same epoch, next offset")

	// Once nobody listens, an idle stream is forgotten as before.
	require.NoError(t, b.Unsubscribe(ctx, "q"))
	clock.add(time.Hour)
	b.expire()
	_, top, _ = b.History(ctx, "q", Position{}, 0)
	assert.NotEqual(t, first.Epoch, top.Epoch)
}
