package loadtest

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/tone-ai/tone/crdt"
	"github.com/tone-ai/tone/realtime"
	"github.com/tone-ai/tone/realtime/rtclient"
)

// canvasWorker runs the editors of the canvases in its plan. Every editor
// of a canvas runs in the same worker, so one map per canvas knows when
// each update was sent.
type canvasWorker struct {
	w     *worker
	rooms []*room
}

// room is one canvas and the updates its editors sent that the other
// editors have not all received yet.
type room struct {
	ch      string
	editors []*editor

	mu   sync.Mutex
	sent map[opKey]*inFlight
}

// opKey names an update by the replica that made it and its last
// sequence number.
type opKey struct{ replica, seq uint64 }

type inFlight struct {
	at   time.Time
	left int // editors that have not received it yet
}

// editor is one connection editing one canvas with its own document.
type editor struct {
	w       *worker
	room    *room
	token   string
	replica uint64
	conn    *rtclient.Conn
	doc     *crdt.Doc
	elem    crdt.ID
	acks    acks
}

func newCanvasWorker(w *worker) *canvasWorker {
	cw := &canvasWorker{w: w}
	for _, cp := range w.plan.Canvases {
		r := &room{ch: "canvas:" + cp.ID, sent: map[opKey]*inFlight{}}
		for _, ep := range cp.Editors {
			r.editors = append(r.editors, &editor{w: w, room: r, token: w.plan.Tokens[ep.Token], replica: ep.Replica,
				doc: crdt.NewDoc(crdt.ReplicaID(ep.Replica), crdt.DefaultSchema())})
		}
		cw.rooms = append(cw.rooms, r)
	}
	return cw
}

func (cw *canvasWorker) all() []*editor {
	var out []*editor
	for _, r := range cw.rooms {
		out = append(out, r.editors...)
	}
	return out
}

// prepare connects every editor, subscribes it to its canvas with its
// version vector and replica, and creates its element.
func (cw *canvasWorker) prepare(ctx context.Context) error {
	eds := cw.all()
	cw.w.forEach(ctx, len(eds), func(i int) { eds[i].start(ctx) })
	return ctx.Err()
}

func (e *editor) start(ctx context.Context) {
	c := e.w.dial(ctx, e.token, e.onPush)
	if c == nil {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := c.Request(rctx, &realtime.Frame{Type: realtime.TypeSubscribe, Channel: e.room.ch,
		Version: vvToWire(e.doc.Version()), Replica: e.replica})
	if err != nil {
		e.w.stats.count(e.w.stats.errReplies, "subscribe: "+errCode(err))
		return
	}
	id, upd, err := e.doc.Create("rect", crdt.Root, "", crdt.Props{
		"x": crdt.Number(rand.Float64() * 1000), "y": crdt.Number(rand.Float64() * 1000),
		"w": crdt.Number(100), "h": crdt.Number(60), "fill": crdt.String("#3366ff"),
	})
	if err != nil {
		e.w.stats.count(e.w.stats.errReplies, "create: "+err.Error())
		return
	}
	if _, err := c.Request(rctx, &realtime.Frame{Type: realtime.TypeCanvas, Channel: e.room.ch, Update: upd}); err != nil {
		e.w.stats.count(e.w.stats.errReplies, "create: "+errCode(err))
		return
	}
	e.elem, e.conn = id, c
}

func vvToWire(v crdt.VersionVector) map[uint64]uint64 {
	out := make(map[uint64]uint64, len(v))
	for r, s := range v {
		out[uint64(r)] = s
	}
	return out
}

func errCode(err error) string {
	if e, ok := err.(*rtclient.Error); ok {
		return e.Code
	}
	return dialReason(err)
}

// onPush runs on the connection's reader goroutine.
func (e *editor) onPush(f *realtime.Frame) {
	l := e.w.stats
	switch {
	case f.Type == realtime.TypeMessage:
		if e.w.running.Load() {
			e.room.delivered(l, e.replica, f, time.Now())
		}
	case f.ID != 0 && (f.Type == realtime.TypeOK || f.Type == realtime.TypeError):
		e.acks.reply(l, f)
	default:
		e.w.handleCommon(f)
	}
}

// delivered matches a canvas msg to the update it carries and records the
// time since it was sent.
func (r *room) delivered(l *live, self uint64, f *realtime.Frame, now time.Time) {
	var upd []byte
	if err := msgpack.Unmarshal(f.Data, &upd); err != nil {
		l.unmatched.Add(1)
		return
	}
	u, err := crdt.DecodeUpdate(upd)
	if err != nil || len(u.Ops) == 0 {
		l.unmatched.Add(1)
		return
	}
	op := &u.Ops[len(u.Ops)-1]
	k := opKey{uint64(op.ID.Replica), op.ID.Seq + op.Span() - 1}
	if k.replica == self {
		l.echoes.Add(1)
		return
	}
	r.mu.Lock()
	sent := r.sent[k]
	if sent != nil {
		if sent.left--; sent.left <= 0 {
			delete(r.sent, k)
		}
	}
	r.mu.Unlock()
	if sent == nil {
		l.unmatched.Add(1)
		return
	}
	l.deliveries.Add(1)
	l.observe(self, now.Sub(sent.at))
}

// run makes every editor send updates at the plan's rate until stop.
func (cw *canvasWorker) run(ctx context.Context, stop <-chan struct{}) {
	interval := time.Duration(float64(time.Second) / cw.w.plan.Rate)
	var wg sync.WaitGroup
	for _, e := range cw.all() {
		if e.conn == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			pace(stop, interval, rand.N(interval), func() { e.edit(ctx) })
		}()
	}
	wg.Wait()
}

// edit moves the editor's element and sends the update.
func (e *editor) edit(ctx context.Context) {
	upd, err := e.doc.Set(e.elem, crdt.Props{"x": crdt.Number(rand.Float64() * 1000)})
	if err != nil {
		e.w.stats.count(e.w.stats.errReplies, "edit: "+err.Error())
		return
	}
	seq := e.doc.Version()[crdt.ReplicaID(e.replica)]
	id := e.conn.NewID()
	now := time.Now()
	if others := e.room.live() - 1; others > 0 {
		e.room.mu.Lock()
		e.room.sent[opKey{e.replica, seq}] = &inFlight{at: now, left: others}
		e.room.mu.Unlock()
	}
	e.acks.add(id, now)
	e.w.stats.sent.Add(1)
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := e.conn.Send(sctx, &realtime.Frame{Type: realtime.TypeCanvas, ID: id, Channel: e.room.ch, Update: upd}); err != nil {
		e.acks.forget(id)
		e.w.stats.count(e.w.stats.errReplies, "send: "+dialReason(err))
	}
}

// live returns how many of the room's editors are connected and ready.
func (r *room) live() int {
	n := 0
	for _, e := range r.editors {
		if e.conn != nil {
			n++
		}
	}
	return n
}

// drain waits for acks and deliveries in flight, then counts the
// deliveries that never came.
func (cw *canvasWorker) drain(ctx context.Context) {
	waitUntil(ctx, func() bool {
		for _, r := range cw.rooms {
			r.mu.Lock()
			n := len(r.sent)
			r.mu.Unlock()
			if n > 0 {
				return false
			}
			for _, e := range r.editors {
				if e.acks.pending() > 0 {
					return false
				}
			}
		}
		return true
	})
	var missing int64
	for _, r := range cw.rooms {
		r.mu.Lock()
		for _, s := range r.sent {
			missing += int64(s.left)
		}
		r.mu.Unlock()
		for _, e := range r.editors {
			cw.w.stats.add(cw.w.stats.errReplies, "no reply", int64(e.acks.pending()))
		}
	}
	cw.w.stats.missing.Add(missing)
}
