package realtime

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/time/rate"

	"github.com/tone-ai/tone/domain"
)

// benchData is a typical publication payload: a small msgpack map.
var benchData = func() []byte {
	b, err := marshal(map[string]any{"kind": "task.updated", "id": uuid.NewString(), "title": "Write the benchmarks", "done": true})
	if err != nil {
		panic(err)
	}
	return b
}()

func BenchmarkEncodeFrame(b *testing.B) {
	f := &Frame{Type: TypeMessage, Channel: "project:" + uuid.NewString(), Offset: 123456, Data: benchData, Client: "n1-42", User: uuid.NewString()}
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		out, err := EncodeFrame(f)
		if err != nil {
			b.Fatal(err)
		}
		n = len(out)
	}
	b.SetBytes(int64(n))
}

func BenchmarkDecodeMessage(b *testing.B) {
	frame := func(id uint64) []byte {
		out, err := EncodeFrame(&Frame{Type: TypePublish, ID: id, Channel: "project:" + uuid.NewString(), Data: benchData})
		if err != nil {
			b.Fatal(err)
		}
		return out
	}
	var ten [][]byte
	for i := range 10 {
		ten = append(ten, frame(uint64(i+1)))
	}
	for _, bench := range []struct {
		name   string
		msg    []byte
		frames int
	}{
		{"Single", frame(1), 1},
		{"Batch10", appendBatch(nil, ten), 10},
	} {
		b.Run(bench.name, func(b *testing.B) {
			b.SetBytes(int64(len(bench.msg)))
			b.ReportAllocs()
			for b.Loop() {
				frames, err := DecodeMessage(bench.msg)
				if err != nil || len(frames) != bench.frames {
					b.Fatal(len(frames), err)
				}
			}
		})
	}
}

func BenchmarkHubBroadcast_1000Subs(b *testing.B)  { benchmarkHubBroadcast(b, 1000) }
func BenchmarkHubBroadcast_10000Subs(b *testing.B) { benchmarkHubBroadcast(b, 10000) }

// benchAuth accepts any token as one user.
type benchAuth struct{ user uuid.UUID }

func (a benchAuth) Authenticate(string) (*domain.Principal, error) {
	return &domain.Principal{UserID: a.user, ExpiresAt: time.Now().Add(time.Hour)}, nil
}

// newBenchClient makes a client as newClient does, without a connection:
// its writing flag is set, so enqueue queues frames and starts no writer
// (which would write to the missing connection); the benchmark drains the
// queue itself.
func newBenchClient(n *Node) *Client {
	c := &Client{
		node:     n,
		id:       n.cfg.NodeID + "-" + strconv.FormatUint(n.nextClient.Add(1), 36),
		ip:       "127.0.0.1:1",
		limiter:  rate.NewLimiter(rate.Limit(n.cfg.CommandRate), n.cfg.CommandBurst),
		subs:     map[string]*subscription{},
		presence: map[string]*presenceState{},
		done:     make(chan struct{}),
		writing:  true,
	}
	c.lastSeen.Store(time.Now().UnixNano())
	return c
}

// drainForBench empties c's outbound queue, keeping its memory, and returns how
// many frames it held.
func (c *Client) drainForBench() int {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	n := len(c.queue)
	clear(c.queue)
	c.queue, c.qbytes, c.qbig = c.queue[:0], 0, 0
	return n
}

// benchmarkHubBroadcast measures Node.HandlePublication fanning one
// publication out to subs live subscribers of a channel on this node: one
// encoding, then a non-blocking enqueue per subscriber.
func benchmarkHubBroadcast(b *testing.B, subs int) {
	broker := NewMemoryBroker(100, time.Minute)
	node := NewNode(Config{NodeID: "bench", Logger: slog.New(slog.DiscardHandler), OutboundQueueBytes: 1 << 30},
		benchAuth{user: uuid.New()}, broker, broker, nil)
	const ch, epoch = "project:bench", "e1"
	const drainEvery = 64 // publications between drains of the queues
	clients := make([]*Client, subs)
	for i := range clients {
		c := newBenchClient(node)
		c.queue = make([][]byte, 0, drainEvery) // a queue in use has room: measure the fan-out, not its growth
		s := &subscription{ch: ch, client: c, presence: true, live: true, epoch: epoch}
		c.subs[ch] = s
		node.hub.add(s)
		clients[i] = c
	}
	pub := &Publication{Data: benchData, Client: "other-1", User: uuid.NewString()}
	offset := uint64(0)
	publish := func() {
		offset++
		pub.Offset = offset
		node.HandlePublication(ch, epoch, pub)
	}
	// Every subscriber gets the publication, once.
	publish()
	for i, c := range clients {
		if n := c.drainForBench(); n != 1 {
			b.Fatalf("client %d queued %d frames, want 1", i, n)
		}
	}

	b.ReportAllocs()
	i := 0
	for b.Loop() {
		publish()
		if i++; i%drainEvery == 0 {
			b.StopTimer()
			for _, c := range clients {
				if n := c.drainForBench(); n != drainEvery {
					b.Fatalf("queued %d frames, want %d", n, drainEvery)
				}
			}
			b.StartTimer()
		}
	}
	b.StopTimer()
	for _, c := range clients {
		if n := c.drainForBench(); n != i%drainEvery {
			b.Fatalf("queued %d frames, want %d", n, i%drainEvery)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(subs), "ns/sub")
}

// nopHandler is a BrokerHandler that drops everything.
type nopHandler struct{}

func (nopHandler) HandlePublication(string, string, *Publication) {}
func (nopHandler) HandleEphemeral(string, []byte)                 {}

func BenchmarkMemoryBrokerPublish(b *testing.B) {
	for _, size := range []int{100, 1000} {
		for _, subscribed := range []bool{false, true} {
			b.Run(fmt.Sprintf("History%d/Subscribed=%v", size, subscribed), func(b *testing.B) {
				broker := NewMemoryBroker(size, time.Minute)
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan struct{})
				go func() { broker.Run(ctx, nopHandler{}); close(done) }()
				defer func() { cancel(); <-done }()
				for ready := false; !ready; time.Sleep(time.Millisecond) {
					broker.mu.Lock()
					ready = broker.handler != nil
					broker.mu.Unlock()
				}
				if subscribed {
					if err := broker.Subscribe(ctx, "project:bench"); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportAllocs()
				for b.Loop() {
					if _, err := broker.Publish(ctx, "project:bench", &Publication{Data: benchData}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
