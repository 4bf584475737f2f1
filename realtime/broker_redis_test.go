package realtime

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/realtime/redistest"
)

// newTestRedisBroker returns a broker on the shared Redis under a key
// prefix of the test's own, closed when the test ends.
func newTestRedisBroker(t *testing.T, size int, ttl time.Duration) *RedisBroker {
	t.Helper()
	opts, prefix := redistest.Shared(t)
	b := NewRedisBroker(RedisConfig{Options: opts, Prefix: prefix, HistorySize: size, HistoryTTL: ttl})
	t.Cleanup(func() { b.Close() })
	return b
}

func TestRedisBroker(t *testing.T) {
	runBrokerSuite(t, func(t *testing.T) (Broker, Presence) {
		b := newTestRedisBroker(t, suiteHistorySize, suiteHistoryTTL)
		return b, b
	})
}

// lossRecorder is a recordingHandler that also records reported losses.
type lossRecorder struct {
	*recordingHandler
	mu     sync.Mutex
	losses map[string][]Position
}

func newLossRecorder() *lossRecorder {
	return &lossRecorder{recordingHandler: newRecordingHandler(), losses: map[string][]Position{}}
}

func (h *lossRecorder) HandleLoss(ch string, top Position) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.losses[ch] = append(h.losses[ch], top)
}

func (h *lossRecorder) lossesOf(ch string) []Position {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.losses[ch])
}

// runRedisBroker runs b with h until the test ends.
func runRedisBroker(t *testing.T, b *RedisBroker, h BrokerHandler) {
	t.Helper()
	c, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(c, h); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func TestRedisBrokerTwoNodes(t *testing.T) {
	opts, prefix := redistest.Shared(t)
	newNode := func() (*RedisBroker, *lossRecorder) {
		b := NewRedisBroker(RedisConfig{Options: opts, Prefix: prefix, HistorySize: 100, HistoryTTL: time.Minute})
		t.Cleanup(func() { b.Close() })
		h := newLossRecorder()
		runRedisBroker(t, b, h)
		return b, h
	}
	a, _ := newNode()
	b, hb := newNode()
	ch := "project:" + runID + ":" + t.Name()
	require.NoError(t, b.Subscribe(ctx(t), ch))
	const n = 300
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			for i := range n / 3 {
				_, err := a.Publish(ctx(t), ch, &Publication{Data: []byte(fmt.Sprintf("%d/%d", w, i)), Client: "a-1", User: "u"})
				assert.NoError(t, err)
			}
		})
	}
	wg.Wait()
	got := hb.waitPubs(t, ch, n)
	next := map[int]int{}
	for i, d := range got {
		require.Equal(t, uint64(i+1), d.pub.Offset)
		var w, k int
		_, err := fmt.Sscanf(string(d.pub.Data), "%d/%d", &w, &k)
		require.NoError(t, err)
		require.Equal(t, next[w], k, "publisher %d out of order", w)
		next[w]++
		require.Equal(t, "a-1", d.pub.Client)
	}
	hb.settle(t)
	assert.Len(t, hb.pubsOf(ch), n)
	assert.Empty(t, hb.lossesOf(ch))
	assert.Empty(t, hb.violations())
}

// appendSilently appends a publication to ch's stream the way Publish
// does, but without the pub/sub message: a message lost on its way.
func appendSilently(t *testing.T, b *RedisBroker, ch string, data string) {
	t.Helper()
	rdb := redis.NewClient(b.cfg.Options)
	defer rdb.Close()
	top, err := rdb.HIncrBy(ctx(t), b.metaKey(ch), "t", 1).Result()
	require.NoError(t, err)
	require.NoError(t, rdb.XAdd(ctx(t), &redis.XAddArgs{Stream: b.streamKey(ch), ID: fmt.Sprintf("%d-0", top),
		Values: []string{"p", string(encodePub(&Publication{Data: []byte(data)}))}}).Err())
}

func TestRedisBrokerRepairsLostMessages(t *testing.T) {
	b := newTestRedisBroker(t, 100, time.Minute)
	b.cfg.CheckInterval = 100 * time.Millisecond
	h := newLossRecorder()
	runRedisBroker(t, b, h)
	ch := "project:" + runID + ":" + t.Name()
	require.NoError(t, b.Subscribe(ctx(t), ch))
	_, err := b.Publish(ctx(t), ch, &Publication{Data: []byte("1")})
	require.NoError(t, err)

	t.Run("gap before a publication", func(t *testing.T) {
		appendSilently(t, b, ch, "2")
		appendSilently(t, b, ch, "3")
		_, err := b.Publish(ctx(t), ch, &Publication{Data: []byte("4")})
		require.NoError(t, err)
		got := h.waitPubs(t, ch, 4)
		for i, d := range got {
			require.Equal(t, uint64(i+1), d.pub.Offset)
			require.Equal(t, strconv.Itoa(i+1), string(d.pub.Data))
		}
	})
	t.Run("lost last message", func(t *testing.T) {
		appendSilently(t, b, ch, "5")
		got := h.waitPubs(t, ch, 5) // found by the position check
		require.Equal(t, "5", string(got[4].pub.Data))
	})
	h.settle(t)
	assert.Len(t, h.pubsOf(ch), 5)
	assert.Empty(t, h.lossesOf(ch))
	assert.Equal(t, 4.0, testutil.ToFloat64(b.repaired), "2, 3 and 4 after the gap, then 5")
	waitFor(t, 5*time.Second, "every shard connected", func() bool { return testutil.ToFloat64(b.shardsUp) == 8 })

	t.Run("history lost", func(t *testing.T) {
		appendSilently(t, b, ch, "6")
		rdb := redis.NewClient(b.cfg.Options)
		defer rdb.Close()
		require.NoError(t, rdb.XTrimMaxLen(ctx(t), b.streamKey(ch), 0).Err())
		pos, err := b.Publish(ctx(t), ch, &Publication{Data: []byte("7")})
		require.NoError(t, err)
		waitFor(t, 5*time.Second, "the loss to be reported", func() bool { return len(h.lossesOf(ch)) > 0 })
		assert.Equal(t, []Position{pos}, h.lossesOf(ch))
		assert.Equal(t, 1.0, testutil.ToFloat64(b.losses))
		// Delivery goes on from there.
		pos, err = b.Publish(ctx(t), ch, &Publication{Data: []byte("8")})
		require.NoError(t, err)
		got := h.waitPubs(t, ch, 6)
		assert.Equal(t, pos.Offset, got[5].pub.Offset)
	})
}

func TestRedisBrokerRedisRestart(t *testing.T) {
	srv := redistest.Start(t)
	b := NewRedisBroker(RedisConfig{Options: srv.Options(), HistorySize: 100, HistoryTTL: time.Minute, CheckInterval: 100 * time.Millisecond})
	t.Cleanup(func() { b.Close() })
	h := newLossRecorder()
	runRedisBroker(t, b, h)
	ch := "project:" + t.Name()
	require.NoError(t, b.Subscribe(ctx(t), ch))
	first, err := b.Publish(ctx(t), ch, &Publication{Data: []byte("1")})
	require.NoError(t, err)
	h.waitPubs(t, ch, 1)
	require.NoError(t, b.Ready(ctx(t)))

	srv.Kill()
	require.Error(t, b.Ready(ctx(t)), "not ready while Redis is down")
	waitFor(t, 5*time.Second, "the shards to notice", func() bool { return testutil.ToFloat64(b.shardsUp) == 0 })
	_, err = b.Publish(ctx(t), ch, &Publication{Data: []byte("lost")})
	require.Error(t, err, "publishing while Redis is down")
	_, _, err = b.History(ctx(t), ch, first, 0)
	require.Error(t, err)

	srv.Restart(t)
	waitFor(t, 10*time.Second, "the broker to be ready again", func() bool { return b.Ready(ctx(t)) == nil })
	// The restarted Redis lost the stream: the broker reports it once it
	// has resubscribed, and delivers the new epoch.
	waitFor(t, 10*time.Second, "the loss to be reported", func() bool { return len(h.lossesOf(ch)) > 0 })
	loss := h.lossesOf(ch)[0]
	assert.NotEqual(t, first.Epoch, loss.Epoch)
	pos, err := b.Publish(ctx(t), ch, &Publication{Data: []byte("2")})
	require.NoError(t, err)
	assert.Equal(t, Position{Offset: 1, Epoch: loss.Epoch}, pos)
	got := h.waitPubs(t, ch, 2)
	assert.Equal(t, pos.Epoch, got[1].epoch)
	assert.Equal(t, "2", string(got[1].pub.Data))
}

// BenchmarkRedisBrokerPublish measures Publish on the shared Redis, one
// publisher at a time (a round trip each) and many at once (pipelined).
func BenchmarkRedisBrokerPublish(b *testing.B) {
	opts, prefix := redistest.Shared(b)
	br := NewRedisBroker(RedisConfig{Options: opts, Prefix: prefix, HistorySize: 1000, HistoryTTL: time.Minute})
	b.Cleanup(func() { br.Close() })
	data := make([]byte, 100)
	b.Run("Serial", func(b *testing.B) {
		ctx := context.Background()
		for b.Loop() {
			if _, err := br.Publish(ctx, "bench:serial", &Publication{Data: data}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Parallel64", func(b *testing.B) {
		ctx := context.Background()
		b.SetParallelism(32) // 64 goroutines on 2 cores
		var n atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			ch := "bench:parallel:" + strconv.FormatInt(n.Add(1)%8, 10)
			for pb.Next() {
				if _, err := br.Publish(ctx, ch, &Publication{Data: data}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// TestRedisBrokerSubscribeAgain: a channel unsubscribed and subscribed
// again starts afresh from its top: what was published meanwhile (trimmed
// from the history here) is not reported lost.
func TestRedisBrokerSubscribeAgain(t *testing.T) {
	b := newTestRedisBroker(t, 10, time.Minute)
	h := newLossRecorder()
	runRedisBroker(t, b, h)
	ch := "project:" + runID + ":" + t.Name()
	require.NoError(t, b.Subscribe(ctx(t), ch))
	_, err := b.Publish(ctx(t), ch, &Publication{Data: []byte("1")})
	require.NoError(t, err)
	h.waitPubs(t, ch, 1)
	require.NoError(t, b.Unsubscribe(ctx(t), ch))
	for range 30 {
		_, err := b.Publish(ctx(t), ch, &Publication{Data: []byte("x")})
		require.NoError(t, err)
	}
	require.NoError(t, b.Subscribe(ctx(t), ch))
	pos, err := b.Publish(ctx(t), ch, &Publication{Data: []byte("32")})
	require.NoError(t, err)
	got := h.waitPubs(t, ch, 2)
	assert.Equal(t, pos.Offset, got[1].pub.Offset)
	h.settle(t)
	assert.Len(t, h.pubsOf(ch), 2)
	assert.Empty(t, h.lossesOf(ch))
}
