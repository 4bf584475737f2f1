package realtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The settings every broker under the shared suite must be made with: it
// keeps the last suiteHistorySize publications of a channel, and drops a
// stream idle for longer than suiteHistoryTTL.
const (
	suiteHistorySize = 10
	suiteHistoryTTL  = 200 * time.Millisecond
)

// runBrokerSuite checks the guarantees documented on Broker and Presence.
// It is written only against the interfaces, so that every implementation
// runs it unchanged. newBroker returns a new broker (and its presence) made
// with suiteHistorySize and suiteHistoryTTL; the suite runs it (Run) with
// its own handler and stops it at the end of each subtest. Channel names
// are unique to each run, so brokers sharing a server (Redis) need no
// cleanup between runs.
func runBrokerSuite(t *testing.T, newBroker func(t *testing.T) (Broker, Presence)) {
	run := func(name string, fn func(t *testing.T, e *suiteEnv)) {
		t.Run(name, func(t *testing.T) { fn(t, startSuiteBroker(t, newBroker)) })
	}

	run("Publish/OffsetsFromOneContiguous", func(t *testing.T, e *suiteEnv) {
		a, b := e.ch("a"), e.ch("b")
		var epoch string
		for i := 1; i <= 5; i++ {
			pub := &Publication{Data: payload(i), Client: "c1", User: "u1"}
			pos, err := e.b.Publish(t.Context(), a, pub)
			require.NoError(t, err)
			require.Equal(t, uint64(i), pos.Offset, "offset of publication %d", i)
			require.Equal(t, pos.Offset, pub.Offset, "Publish sets pub.Offset to the returned offset")
			require.NotEmpty(t, pos.Epoch)
			if i == 1 {
				epoch = pos.Epoch
			}
			require.Equal(t, epoch, pos.Epoch, "one epoch while the stream lives")
		}
		// Another channel has its own numbering.
		pos, err := e.b.Publish(t.Context(), b, &Publication{Data: payload(1)})
		require.NoError(t, err)
		assert.Equal(t, uint64(1), pos.Offset)
		// The position returned is the stream's top.
		_, top, err := e.b.History(t.Context(), a, Position{}, 0)
		require.NoError(t, err)
		assert.Equal(t, Position{Offset: 5, Epoch: epoch}, top)
	})

	run("Delivery/InOffsetOrder", func(t *testing.T, e *suiteEnv) {
		ch := e.ch("a")
		e.subscribe(t, ch)
		const n = 50
		var last Position
		for i := 1; i <= n; i++ {
			last = e.publish(t, ch, &Publication{Data: payload(i), Client: "c" + strconv.Itoa(i), User: "u1"})
		}
		got := e.h.waitPubs(t, ch, n)
		for i, p := range got {
			require.Equal(t, uint64(i+1), p.pub.Offset, "delivery %d", i)
			require.Equal(t, last.Epoch, p.epoch, "delivery %d", i)
			require.Equal(t, payload(i+1), p.pub.Data, "delivery %d", i)
			require.Equal(t, "c"+strconv.Itoa(i+1), p.pub.Client, "delivery %d", i)
			require.Equal(t, "u1", p.pub.User, "delivery %d", i)
		}
		e.h.settle(t)
		assert.Len(t, e.h.pubsOf(ch), n, "each publication is delivered once")
		assert.Empty(t, e.h.violations())
	})

	run("Delivery/ConcurrentPublishersOneChannel", func(t *testing.T, e *suiteEnv) {
		ch := e.ch("a")
		e.subscribe(t, ch)
		const publishers, each = 4, 50
		positions := make([][]uint64, publishers)
		var wg sync.WaitGroup
		for p := range publishers {
			wg.Go(func() {
				for i := range each {
					pos, err := e.b.Publish(t.Context(), ch, &Publication{Data: []byte(fmt.Sprintf("%d/%d", p, i))})
					if !assert.NoError(t, err) {
						return
					}
					positions[p] = append(positions[p], pos.Offset)
				}
			})
		}
		wg.Wait()
		// Each publisher's own publications get increasing offsets, and
		// together they number 1..n with no gap or repeat.
		var all []uint64
		for p := range publishers {
			require.True(t, slices.IsSorted(positions[p]), "publisher %d got offsets %v", p, positions[p])
			all = append(all, positions[p]...)
		}
		slices.Sort(all)
		for i, o := range all {
			require.Equal(t, uint64(i+1), o, "offsets returned by Publish")
		}
		got := e.h.waitPubs(t, ch, publishers*each)
		seen := map[string]bool{}
		next := make([]int, publishers)
		for i, d := range got {
			require.Equal(t, uint64(i+1), d.pub.Offset, "delivery %d", i)
			require.Equal(t, got[0].epoch, d.epoch)
			s := string(d.pub.Data)
			require.False(t, seen[s], "%s delivered twice", s)
			seen[s] = true
			var p, k int
			_, err := fmt.Sscanf(s, "%d/%d", &p, &k)
			require.NoError(t, err)
			require.Equal(t, next[p], k, "publisher %d's publications out of order", p)
			next[p]++
		}
		assert.Empty(t, e.h.violations())
	})

	run("Delivery/InterleavedChannels", func(t *testing.T, e *suiteEnv) {
		chans := []string{e.ch("a"), e.ch("b"), e.ch("c")}
		for _, ch := range chans {
			e.subscribe(t, ch)
		}
		const each = 40
		var wg sync.WaitGroup
		// Two publishers, each writing to every channel in turn.
		for w := range 2 {
			wg.Go(func() {
				for i := range each / 2 {
					for _, ch := range chans {
						_, err := e.b.Publish(t.Context(), ch, &Publication{Data: []byte(fmt.Sprintf("%s %d/%d", ch, w, i))})
						if !assert.NoError(t, err) {
							return
						}
					}
				}
			})
		}
		wg.Wait()
		for _, ch := range chans {
			got := e.h.waitPubs(t, ch, each)
			for i, d := range got {
				require.Equal(t, uint64(i+1), d.pub.Offset, "%s delivery %d", ch, i)
				require.Equal(t, ch, string(d.pub.Data[:len(ch)]), "publication of another channel delivered on %s", ch)
			}
		}
		e.h.settle(t)
		for _, ch := range chans {
			assert.Len(t, e.h.pubsOf(ch), each, ch)
		}
		assert.Empty(t, e.h.violations())
	})

	run("Delivery/UnsubscribedChannelNotDelivered", func(t *testing.T, e *suiteEnv) {
		on, never, left, marker := e.ch("on"), e.ch("never"), e.ch("left"), e.ch("marker")
		e.subscribe(t, on)
		e.subscribe(t, marker)
		// Subscribe is idempotent: one Unsubscribe undoes two Subscribes.
		e.subscribe(t, left)
		e.subscribe(t, left)
		require.NoError(t, e.b.Unsubscribe(t.Context(), left))
		require.NoError(t, e.b.Unsubscribe(t.Context(), left), "Unsubscribe is idempotent")
		require.NoError(t, e.b.Unsubscribe(t.Context(), never), "Unsubscribe of a channel never subscribed")

		e.publish(t, never, &Publication{Data: payload(1)})
		e.publish(t, left, &Publication{Data: payload(1)})
		e.publish(t, on, &Publication{Data: payload(1)})
		e.publish(t, marker, &Publication{Data: payload(1)})
		e.h.waitPubs(t, on, 1)
		e.h.waitPubs(t, marker, 1)
		e.h.settle(t)
		assert.Empty(t, e.h.pubsOf(never), "publication on a channel never subscribed")
		assert.Empty(t, e.h.pubsOf(left), "publication on an unsubscribed channel")

		// What was not delivered is still in the history.
		pubs, _, err := e.b.History(t.Context(), left, Position{Epoch: e.top(t, left).Epoch}, 0)
		require.NoError(t, err)
		require.Len(t, pubs, 1)
		assert.Equal(t, payload(1), pubs[0].Data)
	})

	run("Broadcast/SubscribedNodesOnlyNoOffset", func(t *testing.T, e *suiteEnv) {
		on, off, marker := e.ch("on"), e.ch("off"), e.ch("marker")
		e.subscribe(t, on)
		e.subscribe(t, marker)
		before := e.publish(t, on, &Publication{Data: payload(1)})
		e.h.waitPubs(t, on, 1)

		require.NoError(t, e.b.Broadcast(t.Context(), on, []byte("hello")))
		require.NoError(t, e.b.Broadcast(t.Context(), on, []byte("again")))
		require.NoError(t, e.b.Broadcast(t.Context(), off, []byte("nobody")))
		require.NoError(t, e.b.Broadcast(t.Context(), marker, []byte("marker")))
		got := e.h.waitEphemeral(t, on, 2)
		e.h.waitEphemeral(t, marker, 1)
		e.h.settle(t)
		assert.Equal(t, [][]byte{[]byte("hello"), []byte("again")}, got, "broadcasts of a channel in order")
		assert.Empty(t, e.h.ephemeralOf(off), "broadcast on an unsubscribed channel")
		assert.Len(t, e.h.pubsOf(on), 1, "a broadcast is not a publication")
		assert.Equal(t, before, e.top(t, on), "a broadcast takes no offset")
		after := e.publish(t, on, &Publication{Data: payload(2)})
		assert.Equal(t, Position{Offset: 2, Epoch: before.Epoch}, after)
	})

	run("History/AfterSince", func(t *testing.T, e *suiteEnv) {
		ch := e.ch("a")
		top := e.publishN(t, ch, 5)
		for since := uint64(0); since <= 5; since++ {
			pubs, gotTop, err := e.b.History(t.Context(), ch, Position{Offset: since, Epoch: top.Epoch}, 0)
			require.NoError(t, err, "since %d", since)
			assert.Equal(t, top, gotTop, "since %d", since)
			requireRun(t, pubs, since+1, 5)
			for i, p := range pubs {
				assert.Equal(t, payload(int(since)+1+i), p.Data, "since %d: data of publication %d", since, p.Offset)
			}
		}
	})

	run("History/Limit", func(t *testing.T, e *suiteEnv) {
		ch := e.ch("a")
		top := e.publishN(t, ch, 5)
		for _, test := range []struct {
			since     uint64
			limit     int
			wantFirst uint64
			wantLast  uint64
		}{
			{1, 2, 2, 3},
			{0, 1, 1, 1},
			{3, 2, 4, 5},
			{3, 10, 4, 5},
			{4, 1, 5, 5},
			{2, -1, 3, 5},
			{5, 1, 6, 5}, // at the top: nothing
		} {
			pubs, gotTop, err := e.b.History(t.Context(), ch, Position{Offset: test.since, Epoch: top.Epoch}, test.limit)
			require.NoError(t, err, "since %d limit %d", test.since, test.limit)
			assert.Equal(t, top, gotTop, "the top, whatever the limit")
			requireRun(t, pubs, test.wantFirst, test.wantLast)
		}
	})

	run("History/ZeroPositionTopOnly", func(t *testing.T, e *suiteEnv) {
		ch := e.ch("a")
		top := e.publishN(t, ch, 5)
		pubs, gotTop, err := e.b.History(t.Context(), ch, Position{}, 0)
		require.NoError(t, err)
		assert.Empty(t, pubs)
		assert.Equal(t, top, gotTop)
		pubs, _, err = e.b.History(t.Context(), ch, Position{}, 3)
		require.NoError(t, err)
		assert.Empty(t, pubs)
	})

	run("History/EmptyChannel", func(t *testing.T, e *suiteEnv) {
		// A subscriber to a channel without publications takes its top, and
		// must then receive the first publication in that same epoch, or
		// it would be told to resubscribe for nothing.
		ch := e.ch("a")
		pubs, top, err := e.b.History(t.Context(), ch, Position{}, 0)
		require.NoError(t, err)
		assert.Empty(t, pubs)
		assert.Equal(t, uint64(0), top.Offset)
		pubs, top2, err := e.b.History(t.Context(), ch, top, 0)
		require.NoError(t, err, "since the top of an empty stream")
		assert.Empty(t, pubs)
		assert.Equal(t, top, top2)
		pos := e.publish(t, ch, &Publication{Data: payload(1)})
		assert.Equal(t, Position{Offset: 1, Epoch: top.Epoch}, pos, "first publication after History of an empty channel")
		pubs, _, err = e.b.History(t.Context(), ch, top, 0)
		require.NoError(t, err)
		requireRun(t, pubs, 1, 1)
	})

	run("History/Unavailable", func(t *testing.T, e *suiteEnv) {
		ch := e.ch("a")
		top := e.publishN(t, ch, 5)
		for _, test := range []struct {
			name  string
			since Position
		}{
			{"wrong epoch", Position{Offset: 2, Epoch: top.Epoch + "x"}},
			{"wrong epoch at offset 0", Position{Offset: 0, Epoch: "nope"}},
			{"an offset without an epoch", Position{Offset: 3}},
			{"beyond the top", Position{Offset: 6, Epoch: top.Epoch}},
			{"far beyond the top", Position{Offset: 1 << 62, Epoch: top.Epoch}},
		} {
			pubs, gotTop, err := e.b.History(t.Context(), ch, test.since, 0)
			require.ErrorIs(t, err, ErrHistoryUnavailable, test.name)
			assert.Empty(t, pubs, test.name)
			assert.Equal(t, top, gotTop, "%s: the error comes with the current top", test.name)
		}
	})

	run("History/SizeCap", func(t *testing.T, e *suiteEnv) {
		ch := e.ch("a")
		const n = 3*suiteHistorySize + 5
		top := e.publishN(t, ch, n)
		oldest := uint64(n - suiteHistorySize + 1) // the oldest publication kept
		pubs, gotTop, err := e.b.History(t.Context(), ch, Position{Offset: oldest - 1, Epoch: top.Epoch}, 0)
		require.NoError(t, err, "the last %d publications are kept", suiteHistorySize)
		assert.Equal(t, top, gotTop)
		requireRun(t, pubs, oldest, n)
		pubs, _, err = e.b.History(t.Context(), ch, Position{Offset: oldest - 1, Epoch: top.Epoch}, 3)
		require.NoError(t, err)
		requireRun(t, pubs, oldest, oldest+2)
		for _, since := range []uint64{0, 1, oldest - 2} {
			pubs, gotTop, err := e.b.History(t.Context(), ch, Position{Offset: since, Epoch: top.Epoch}, 0)
			require.ErrorIs(t, err, ErrHistoryUnavailable, "since %d: publication %d was trimmed", since, since+1)
			assert.Empty(t, pubs)
			assert.Equal(t, top, gotTop)
			_, _, err = e.b.History(t.Context(), ch, Position{Offset: since, Epoch: top.Epoch}, 1)
			require.ErrorIs(t, err, ErrHistoryUnavailable, "since %d with a limit", since)
		}
	})

	run("History/NeverAHole", func(t *testing.T, e *suiteEnv) {
		// Every since and limit, across trimming: either exactly the run
		// after since, or ErrHistoryUnavailable when (and only when) part
		// of it was dropped.
		ch := e.ch("a")
		for n := uint64(1); n <= 2*suiteHistorySize+3; n++ {
			top := e.publish(t, ch, &Publication{Data: payload(int(n))})
			for since := uint64(0); since <= n+1; since++ {
				for _, limit := range []int{0, 1, 3, suiteHistorySize + 1} {
					pubs, gotTop, err := e.b.History(t.Context(), ch, Position{Offset: since, Epoch: top.Epoch}, limit)
					require.Equal(t, top, gotTop)
					trimmed := n > suiteHistorySize && since < n-suiteHistorySize
					if since > n || trimmed {
						require.ErrorIs(t, err, ErrHistoryUnavailable, "top %d since %d limit %d", n, since, limit)
						continue
					}
					require.NoError(t, err, "top %d since %d limit %d", n, since, limit)
					last := n
					if limit > 0 {
						last = min(n, since+uint64(limit))
					}
					requireRun(t, pubs, since+1, last)
				}
			}
		}
	})

	run("History/ConcurrentWithPublish", func(t *testing.T, e *suiteEnv) {
		ch := e.ch("a")
		first := e.publish(t, ch, &Publication{Data: payload(1)})
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					_, err := e.b.Publish(t.Context(), ch, &Publication{Data: []byte("x")})
					if !assert.NoError(t, err) {
						return
					}
				}
			})
		}
		for i := 0; i < 300; i++ {
			top := e.top(t, ch)
			require.Equal(t, first.Epoch, top.Epoch)
			since := top.Offset - min(top.Offset, uint64(i%(suiteHistorySize/2)))
			pubs, gotTop, err := e.b.History(t.Context(), ch, Position{Offset: since, Epoch: first.Epoch}, 0)
			if errors.Is(err, ErrHistoryUnavailable) {
				// Publishers may have trimmed it meanwhile.
				require.Greater(t, gotTop.Offset, since+suiteHistorySize-1, "unavailable though within the size")
				continue
			}
			require.NoError(t, err)
			require.GreaterOrEqual(t, gotTop.Offset, top.Offset)
			requireRun(t, pubs, since+1, gotTop.Offset)
		}
		close(stop)
		wg.Wait()
	})

	run("HistoryTTL/IdleStreamStartsNewEpoch", func(t *testing.T, e *suiteEnv) {
		ch := e.ch("a")
		e.publishN(t, ch, 2)
		start := time.Now()
		old := e.publish(t, ch, &Publication{Data: payload(3)})
		var top Position
		waitFor(t, suiteHistoryTTL+3*time.Second, "the idle stream to expire", func() bool {
			_, gotTop, err := e.b.History(t.Context(), ch, old, 0)
			if errors.Is(err, ErrHistoryUnavailable) {
				top = gotTop
				return true
			}
			require.NoError(t, err)
			require.Equal(t, old, gotTop)
			return false
		})
		idle := time.Since(start)
		assert.GreaterOrEqual(t, idle, suiteHistoryTTL*95/100, "the stream expired before its TTL")
		assert.NotEqual(t, old.Epoch, top.Epoch, "an expired stream has a new epoch")
		assert.Equal(t, uint64(0), top.Offset, "a new stream starts empty")
		for _, since := range []Position{{Offset: 0, Epoch: old.Epoch}, {Offset: 2, Epoch: old.Epoch}, old} {
			_, _, err := e.b.History(t.Context(), ch, since, 0)
			require.ErrorIs(t, err, ErrHistoryUnavailable, "since %v of the old epoch", since)
		}
		pos := e.publish(t, ch, &Publication{Data: payload(1)})
		assert.Equal(t, Position{Offset: 1, Epoch: top.Epoch}, pos, "the new epoch counts from 1")
		pubs, _, err := e.b.History(t.Context(), ch, Position{Epoch: pos.Epoch}, 0)
		require.NoError(t, err)
		requireRun(t, pubs, 1, 1)
	})

	run("HistoryTTL/PublishingKeepsStreamAlive", func(t *testing.T, e *suiteEnv) {
		ch := e.ch("a")
		first := e.publish(t, ch, &Publication{Data: payload(1)})
		last := time.Now()
		deadline := last.Add(suiteHistoryTTL * 5 / 2)
		for i := 2; time.Now().Before(deadline); i++ {
			time.Sleep(suiteHistoryTTL / 5)
			gap := time.Since(last)
			pos := e.publish(t, ch, &Publication{Data: payload(i)})
			last = time.Now()
			if gap > suiteHistoryTTL*3/4 {
				// A loaded machine slept past the TTL: the stream may
				// rightly be gone, so this round proves nothing.
				t.Logf("publication %d came %s after the last; starting over", i, gap)
				first, i = pos, int(pos.Offset)
				continue
			}
			require.Equal(t, Position{Offset: uint64(i), Epoch: first.Epoch}, pos, "a stream published to within its TTL lives on")
		}
	})

	run("HistoryTTL/ChannelsExpireIndependently", func(t *testing.T, e *suiteEnv) {
		idle, busy := e.ch("idle"), e.ch("busy")
		oldIdle := e.publish(t, idle, &Publication{Data: payload(1)})
		oldBusy := e.publish(t, busy, &Publication{Data: payload(1)})
		last, gap := time.Now(), time.Duration(0)
		waitFor(t, suiteHistoryTTL+3*time.Second, "the idle stream to expire", func() bool {
			gap = max(gap, time.Since(last))
			_, err := e.b.Publish(t.Context(), busy, &Publication{Data: payload(2)})
			require.NoError(t, err)
			last = time.Now()
			_, _, err = e.b.History(t.Context(), idle, oldIdle, 0)
			return errors.Is(err, ErrHistoryUnavailable)
		})
		if gap > suiteHistoryTTL*3/4 {
			t.Logf("the busy channel went %s without a publication (loaded machine): its epoch is not checked", gap)
			return
		}
		assert.Equal(t, oldBusy.Epoch, e.top(t, busy).Epoch, "a busy channel keeps its epoch")
	})

	run("Presence/SetListOrderedByClient", func(t *testing.T, e *suiteEnv) {
		ch, other := e.ch("a"), e.ch("b")
		for _, c := range []string{"c3", "c1", "c10", "c2"} {
			require.NoError(t, e.p.SetPresence(t.Context(), ch, PresenceInfo{Client: c, User: "u-" + c, State: state(c)}, time.Minute))
		}
		require.NoError(t, e.p.SetPresence(t.Context(), other, PresenceInfo{Client: "c9", User: "u9"}, time.Minute))
		list, err := e.p.Presence(t.Context(), ch)
		require.NoError(t, err)
		assert.Equal(t, []PresenceInfo{
			{Client: "c1", User: "u-c1", State: state("c1")},
			{Client: "c10", User: "u-c10", State: state("c10")},
			{Client: "c2", User: "u-c2", State: state("c2")},
			{Client: "c3", User: "u-c3", State: state("c3")},
		}, list)
		list, err = e.p.Presence(t.Context(), other)
		require.NoError(t, err)
		assert.Equal(t, []PresenceInfo{{Client: "c9", User: "u9"}}, normPresence(list), "a state-less presence")
		list, err = e.p.Presence(t.Context(), e.ch("empty"))
		require.NoError(t, err)
		assert.Empty(t, list)
	})

	run("Presence/SetReplaces", func(t *testing.T, e *suiteEnv) {
		ch := e.ch("a")
		require.NoError(t, e.p.SetPresence(t.Context(), ch, PresenceInfo{Client: "c1", User: "u1", State: state("first")}, time.Minute))
		require.NoError(t, e.p.SetPresence(t.Context(), ch, PresenceInfo{Client: "c2", User: "u2", State: state("other")}, time.Minute))
		require.NoError(t, e.p.SetPresence(t.Context(), ch, PresenceInfo{Client: "c1", User: "u1", State: state("second")}, time.Minute))
		list, err := e.p.Presence(t.Context(), ch)
		require.NoError(t, err)
		assert.Equal(t, []PresenceInfo{
			{Client: "c1", User: "u1", State: state("second")},
			{Client: "c2", User: "u2", State: state("other")},
		}, list)
	})

	run("Presence/Remove", func(t *testing.T, e *suiteEnv) {
		ch := e.ch("a")
		for _, c := range []string{"c1", "c2", "c3"} {
			require.NoError(t, e.p.SetPresence(t.Context(), ch, PresenceInfo{Client: c, User: "u"}, time.Minute))
		}
		require.NoError(t, e.p.RemovePresence(t.Context(), ch, "c2"))
		require.NoError(t, e.p.RemovePresence(t.Context(), ch, "c2"), "removing twice")
		require.NoError(t, e.p.RemovePresence(t.Context(), ch, "nobody"))
		require.NoError(t, e.p.RemovePresence(t.Context(), e.ch("empty"), "c1"), "removing from an empty channel")
		list, err := e.p.Presence(t.Context(), ch)
		require.NoError(t, err)
		assert.Equal(t, []string{"c1", "c3"}, presenceClients(list))
		require.NoError(t, e.p.RemovePresence(t.Context(), ch, "c1"))
		require.NoError(t, e.p.RemovePresence(t.Context(), ch, "c3"))
		list, err = e.p.Presence(t.Context(), ch)
		require.NoError(t, err)
		assert.Empty(t, list)
		// A removed client may join again.
		require.NoError(t, e.p.SetPresence(t.Context(), ch, PresenceInfo{Client: "c1", User: "u"}, time.Minute))
		list, err = e.p.Presence(t.Context(), ch)
		require.NoError(t, err)
		assert.Equal(t, []string{"c1"}, presenceClients(list))
	})

	run("Presence/ExpiresWithoutRefresh", func(t *testing.T, e *suiteEnv) {
		ch := e.ch("a")
		const ttl = 150 * time.Millisecond
		start := time.Now()
		require.NoError(t, e.p.SetPresence(t.Context(), ch, PresenceInfo{Client: "short", User: "u"}, ttl))
		require.NoError(t, e.p.SetPresence(t.Context(), ch, PresenceInfo{Client: "long", User: "u"}, time.Minute))
		waitFor(t, ttl+3*time.Second, "the presence to expire", func() bool {
			list, err := e.p.Presence(t.Context(), ch)
			require.NoError(t, err)
			return slices.Equal(presenceClients(list), []string{"long"})
		})
		assert.GreaterOrEqual(t, time.Since(start), ttl*95/100, "presence expired before its ttl")
	})

	run("Presence/RefreshKeepsIt", func(t *testing.T, e *suiteEnv) {
		ch := e.ch("a")
		const ttl = 200 * time.Millisecond
		set := func(st string) {
			require.NoError(t, e.p.SetPresence(t.Context(), ch, PresenceInfo{Client: "c1", User: "u", State: state(st)}, ttl))
		}
		set("0")
		last := time.Now()
		deadline := last.Add(3 * ttl)
		for i := 1; time.Now().Before(deadline); i++ {
			time.Sleep(ttl / 4)
			list, err := e.p.Presence(t.Context(), ch)
			require.NoError(t, err)
			// On a loaded machine the sleep may outlast the TTL, and then
			// the presence rightly expired: only a timely check counts.
			if time.Since(last) < ttl*3/4 {
				require.Equal(t, []string{"c1"}, presenceClients(list), "a refreshed presence stays")
			}
			set(strconv.Itoa(i))
			last = time.Now()
		}
		waitFor(t, ttl+3*time.Second, "the presence to expire once no longer refreshed", func() bool {
			list, err := e.p.Presence(t.Context(), ch)
			require.NoError(t, err)
			return len(list) == 0
		})
	})

	t.Run("Run/StopsWhenContextDone", func(t *testing.T) {
		b, _ := newBroker(t)
		h := newRecordingHandler()
		c, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- b.Run(c, h) }()
		ch := "suite:" + runID + ":" + t.Name()
		require.NoError(t, b.Subscribe(t.Context(), ch))
		waitReady(t, b, h, ch)
		cancel()
		select {
		case err := <-done:
			if err != nil {
				assert.ErrorIs(t, err, context.Canceled)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return after its context was done")
		}
		// Run no longer delivers once it returned.
		before := len(h.ephemeralOf(ch))
		_, err := b.Publish(t.Context(), ch, &Publication{Data: payload(1)})
		require.NoError(t, err)
		require.NoError(t, b.Broadcast(t.Context(), ch, []byte("late")))
		h.settle(t)
		assert.Empty(t, h.pubsOf(ch), "publication delivered after Run returned")
		assert.Len(t, h.ephemeralOf(ch), before, "broadcast delivered after Run returned")
	})
}

// runID keeps the channels of one test process apart from those of another
// sharing a broker server.
var runID = func() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}()

// suiteEnv is one running broker of the suite.
type suiteEnv struct {
	t *testing.T
	b Broker
	p Presence
	h *recordingHandler
}

// startSuiteBroker makes a broker, runs it with a recording handler until
// the test ends, and waits until it delivers.
func startSuiteBroker(t *testing.T, newBroker func(t *testing.T) (Broker, Presence)) *suiteEnv {
	t.Helper()
	b, p := newBroker(t)
	h := newRecordingHandler()
	c, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(c, h) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after its context was done")
		}
	})
	e := &suiteEnv{t: t, b: b, p: p, h: h}
	ready := e.ch("ready")
	e.subscribe(t, ready)
	waitReady(t, b, h, ready)
	return e
}

// waitReady broadcasts on ch, which the broker's node subscribes to, until
// the handler receives it: Run may need a moment to start delivering.
func waitReady(t *testing.T, b Broker, h *recordingHandler, ch string) {
	t.Helper()
	waitFor(t, 5*time.Second, "the broker to deliver", func() bool {
		require.NoError(t, b.Broadcast(t.Context(), ch, []byte("ready")))
		time.Sleep(time.Millisecond)
		return len(h.ephemeralOf(ch)) > 0
	})
}

// ch returns a channel name unique to the test.
func (e *suiteEnv) ch(name string) string {
	return "suite:" + runID + ":" + e.t.Name() + ":" + name
}

func (e *suiteEnv) subscribe(t *testing.T, ch string) {
	t.Helper()
	require.NoError(t, e.b.Subscribe(t.Context(), ch))
}

func (e *suiteEnv) publish(t *testing.T, ch string, pub *Publication) Position {
	t.Helper()
	pos, err := e.b.Publish(t.Context(), ch, pub)
	require.NoError(t, err)
	return pos
}

// publishN publishes payloads 1..n on ch and returns the last position.
func (e *suiteEnv) publishN(t *testing.T, ch string, n int) Position {
	t.Helper()
	var pos Position
	for i := 1; i <= n; i++ {
		pos = e.publish(t, ch, &Publication{Data: payload(i)})
	}
	require.Equal(t, uint64(n), pos.Offset)
	return pos
}

// top returns ch's current position.
func (e *suiteEnv) top(t *testing.T, ch string) Position {
	t.Helper()
	_, top, err := e.b.History(t.Context(), ch, Position{}, 0)
	require.NoError(t, err)
	return top
}

// requireRun checks that pubs are exactly the publications first..last
// (none when last < first), in order.
func requireRun(t *testing.T, pubs []*Publication, first, last uint64) {
	t.Helper()
	want := 0
	if last >= first {
		want = int(last - first + 1)
	}
	offsets := make([]uint64, len(pubs))
	for i, p := range pubs {
		offsets[i] = p.Offset
	}
	require.Len(t, pubs, want, "want offsets %d..%d, got %v", first, last, offsets)
	for i, p := range pubs {
		require.Equal(t, first+uint64(i), p.Offset, "want offsets %d..%d, got %v", first, last, offsets)
	}
}

// payload is the data of the i-th publication.
func payload(i int) []byte { return []byte("p" + strconv.Itoa(i)) }

// state is a msgpack presence state (a string).
func state(s string) []byte {
	b, err := marshal(s)
	if err != nil {
		panic(err)
	}
	return b
}

func presenceClients(list []PresenceInfo) []string {
	out := []string{}
	for _, p := range list {
		out = append(out, p.Client)
	}
	return out
}

// normPresence makes an empty state nil, so that a broker that stores "no
// state" as an empty value compares equal.
func normPresence(list []PresenceInfo) []PresenceInfo {
	for i := range list {
		if len(list[i].State) == 0 {
			list[i].State = nil
		}
	}
	return list
}

// ctx returns a context for one broker call in a test.
func ctx(t *testing.T) context.Context { return t.Context() }

// waitFor polls cond every few milliseconds until it holds, or fails the
// test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// delivered is one publication a recordingHandler received.
type delivered struct {
	epoch string
	pub   Publication // a copy of what the handler was given
}

// recordingHandler is a BrokerHandler that records every call, and notes
// calls for one channel that overlap (a broken ordering guarantee).
type recordingHandler struct {
	mu        sync.Mutex
	pubs      map[string][]delivered
	ephemeral map[string][][]byte
	inflight  map[string]int
	problems  []string
}

var _ BrokerHandler = (*recordingHandler)(nil)

func newRecordingHandler() *recordingHandler {
	return &recordingHandler{pubs: map[string][]delivered{}, ephemeral: map[string][][]byte{}, inflight: map[string]int{}}
}

// enter and leave bracket a call for ch; a call that overlaps another for
// the same channel is recorded as a violation.
func (h *recordingHandler) enter(ch string) {
	h.mu.Lock()
	h.inflight[ch]++
	if h.inflight[ch] > 1 {
		h.problems = append(h.problems, "concurrent handler calls for "+ch)
	}
	h.mu.Unlock()
	runtime.Gosched() // give an overlapping call a chance to show
}

func (h *recordingHandler) leave(ch string) {
	h.mu.Lock()
	h.inflight[ch]--
	h.mu.Unlock()
}

func (h *recordingHandler) HandlePublication(ch string, epoch string, pub *Publication) {
	h.enter(ch)
	defer h.leave(ch)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pubs[ch] = append(h.pubs[ch], delivered{epoch: epoch, pub: *pub})
}

func (h *recordingHandler) HandleEphemeral(ch string, data []byte) {
	h.enter(ch)
	defer h.leave(ch)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ephemeral[ch] = append(h.ephemeral[ch], slices.Clone(data))
}

func (h *recordingHandler) pubsOf(ch string) []delivered {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.pubs[ch])
}

func (h *recordingHandler) ephemeralOf(ch string) [][]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.ephemeral[ch])
}

func (h *recordingHandler) violations() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.problems)
}

// waitPubs waits until ch has at least n deliveries and returns them.
func (h *recordingHandler) waitPubs(t *testing.T, ch string, n int) []delivered {
	t.Helper()
	waitFor(t, 5*time.Second, fmt.Sprintf("%d publications on %s", n, ch), func() bool { return len(h.pubsOf(ch)) >= n })
	return h.pubsOf(ch)
}

// waitEphemeral waits until ch has at least n broadcasts and returns them.
func (h *recordingHandler) waitEphemeral(t *testing.T, ch string, n int) [][]byte {
	t.Helper()
	waitFor(t, 5*time.Second, fmt.Sprintf("%d broadcasts on %s", n, ch), func() bool { return len(h.ephemeralOf(ch)) >= n })
	return h.ephemeralOf(ch)
}

// settle gives a broker that delivers asynchronously a moment to deliver
// what it should not, before a test checks that it did not.
func (h *recordingHandler) settle(t *testing.T) {
	t.Helper()
	time.Sleep(20 * time.Millisecond)
}
