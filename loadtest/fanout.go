package loadtest

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/tone-ai/tone/realtime"
	"github.com/tone-ai/tone/realtime/rtclient"
)

// fanoutWorker runs subscribers of one channel and, in one worker,
// the publisher's connections.
type fanoutWorker struct {
	w    *worker
	pubs []*publisher
	seq  atomic.Uint64
}

// publisher is one connection of the publishing user. The publisher
// spreads its rate over several connections because the server limits
// commands per connection (100/s by default).
type publisher struct {
	conn *rtclient.Conn
	acks acks
}

// fanoutData is the payload of a publication: its send time.
type fanoutData struct {
	SentAt int64  `msgpack:"t"` // Unix nanoseconds
	Seq    uint64 `msgpack:"n"`
}

func newFanoutWorker(w *worker) *fanoutWorker { return &fanoutWorker{w: w} }

func (fw *fanoutWorker) prepare(ctx context.Context) error {
	p := fw.w.plan
	fw.w.forEach(ctx, len(p.Subscribers), func(i int) {
		url := p.WSURL
		if n := len(p.SubscriberWSURLs); n > 0 {
			url = p.SubscriberWSURLs[i%n]
		}
		c := fw.w.dialURL(ctx, url, p.Tokens[p.Subscribers[i]], func(f *realtime.Frame) { fw.onMessage(uint64(i), f) })
		if c == nil {
			return
		}
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if _, err := c.Request(rctx, &realtime.Frame{Type: realtime.TypeSubscribe, Channel: p.Channel}); err != nil {
			fw.w.stats.count(fw.w.stats.errReplies, "subscribe: "+errCode(err))
		}
	})
	for _, t := range p.Publishers {
		pub := &publisher{}
		if pub.conn = fw.w.dial(ctx, p.Tokens[t], func(f *realtime.Frame) { fw.onReply(pub, f) }); pub.conn != nil {
			fw.pubs = append(fw.pubs, pub)
		}
	}
	return ctx.Err()
}

// onMessage runs on a subscriber's reader goroutine.
func (fw *fanoutWorker) onMessage(sub uint64, f *realtime.Frame) {
	if f.Type != realtime.TypeMessage {
		fw.w.handleCommon(f)
		return
	}
	now := time.Now()
	if !fw.w.running.Load() {
		return
	}
	var d fanoutData
	if err := msgpack.Unmarshal(f.Data, &d); err != nil || d.SentAt == 0 {
		fw.w.stats.unmatched.Add(1)
		return
	}
	fw.w.stats.deliveries.Add(1)
	fw.w.stats.observe(sub, now.Sub(time.Unix(0, d.SentAt)))
}

func (fw *fanoutWorker) onReply(p *publisher, f *realtime.Frame) {
	if f.ID != 0 && (f.Type == realtime.TypeOK || f.Type == realtime.TypeError) {
		p.acks.reply(fw.w.stats, f)
		return
	}
	fw.w.handleCommon(f)
}

// run publishes at the plan's rate, spread evenly over the publisher's
// connections.
func (fw *fanoutWorker) run(ctx context.Context, stop <-chan struct{}) {
	if len(fw.pubs) == 0 {
		<-stop
		return
	}
	interval := time.Duration(float64(time.Second) * float64(len(fw.pubs)) / fw.w.plan.Rate)
	var wg sync.WaitGroup
	for i, p := range fw.pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			phase := interval * time.Duration(i) / time.Duration(len(fw.pubs))
			pace(stop, interval, phase+rand.N(time.Millisecond), func() { fw.publish(ctx, p) })
		}()
	}
	wg.Wait()
}

func (fw *fanoutWorker) publish(ctx context.Context, p *publisher) {
	now := time.Now()
	data, err := msgpack.Marshal(&fanoutData{SentAt: now.UnixNano(), Seq: fw.seq.Add(1)})
	if err != nil {
		return
	}
	id := p.conn.NewID()
	p.acks.add(id, now)
	fw.w.stats.sent.Add(1)
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.conn.Send(sctx, &realtime.Frame{Type: realtime.TypePublish, ID: id, Channel: fw.w.plan.Channel, Data: data}); err != nil {
		p.acks.forget(id)
		fw.w.stats.count(fw.w.stats.errReplies, "send: "+dialReason(err))
	}
}

// drain waits for the publisher's acks and until deliveries stop coming
// for a while; deliveries still missing are counted by the parent, which
// knows every subscriber.
func (fw *fanoutWorker) drain(ctx context.Context) {
	last, since := fw.w.stats.deliveries.Load(), time.Now()
	waitUntil(ctx, func() bool {
		for _, p := range fw.pubs {
			if p.acks.pending() > 0 {
				return false
			}
		}
		if n := fw.w.stats.deliveries.Load(); n != last {
			last, since = n, time.Now()
		}
		return time.Since(since) > 300*time.Millisecond
	})
	for _, p := range fw.pubs {
		fw.w.stats.add(fw.w.stats.errReplies, "no reply", int64(p.acks.pending()))
	}
}
