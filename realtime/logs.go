package realtime

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/tone-ai/tone/domain"
)

// logsKind is the namespace of deployment log channels:
// "logs:<deployment id>".
const logsKind = "logs"

// LogEpoch is the epoch of every logs channel: its offsets are the lines'
// sequence numbers, kept by the store, so the stream never starts over.
const LogEpoch = "log"

// LogSource is what live log tails need from the domain; domain.Service
// implements it.
type LogSource interface {
	AuthorizeDeployment(ctx context.Context, actor, id uuid.UUID, a domain.Action) error
	ReadLogs(ctx context.Context, actor, id uuid.UUID, after uint64, max int) (*domain.LogPage, error)
}

// LogsConfig tunes live log tails.
type LogsConfig struct {
	// ReplayLimit is the most lines a subscribe replays; a client further
	// behind gets rec:false and reads the rest over REST. Default 5000.
	ReplayLimit int
	// FrameLines is the most lines in one msg frame. Default 1000.
	FrameLines int
}

// Log frames. The d of every msg frame on a logs channel is a map whose k
// says what it holds: "lines" (l: an array of [seq, step, line, text]
// arrays, in order; the frame's o is the seq of the last) or "end" (the
// deployment finished: state and results, and last_seq, the seq of its
// last line; o is last_seq too). docs/protocol.md documents both.
type logLinesFrame struct {
	K     string  `msgpack:"k"`
	Lines [][]any `msgpack:"l"`
}

type logEndFrame struct {
	K string `msgpack:"k"`
	logEnd
}

// logEnd is the end of a deployment's log, as the deployment.finished
// event and the end frame carry it.
type logEnd struct {
	State      string           `msgpack:"state"`
	Reason     string           `msgpack:"reason"`
	URL        string           `msgpack:"url"`
	Metrics    map[string]int64 `msgpack:"metrics"`
	DurationMS int64            `msgpack:"duration_ms"`
	LastSeq    uint64           `msgpack:"last_seq"`
}

func (e *logEnd) frame(ch string) Frame {
	d, _ := marshal(&logEndFrame{K: "end", logEnd: *e})
	return Frame{Type: TypeMessage, Channel: ch, Offset: e.LastSeq, Data: d}
}

func endOf(d *domain.Deployment, last uint64) *logEnd {
	return &logEnd{State: string(d.State), Reason: d.Reason, URL: d.URL, Metrics: d.Metrics, DurationMS: d.Duration().Milliseconds(), LastSeq: last}
}

// linesFrames encodes lines as msg frames of at most max lines each.
func linesFrames(ch string, lines []domain.LogLine, max int) []Frame {
	var out []Frame
	for len(lines) > 0 {
		n := min(len(lines), max)
		part := lines[:n]
		lines = lines[n:]
		arr := make([][]any, len(part))
		for i, l := range part {
			arr[i] = []any{l.Seq, l.Step, l.Line, l.Text}
		}
		d, _ := marshal(&logLinesFrame{K: "lines", Lines: arr})
		out = append(out, Frame{Type: TypeMessage, Channel: ch, Offset: part[n-1].Seq, Data: d})
	}
	return out
}

// logsNamespace authorises logs channels: whoever can see the deployment
// reads; only the server writes.
type logsNamespace struct{ src LogSource }

func (ns logsNamespace) Authorize(ctx context.Context, user uuid.UUID, id string, write bool) error {
	did, err := uuid.Parse(id)
	if err != nil {
		return domain.Errorf(domain.ENotFound, "Deployment not found.")
	}
	if err := ns.src.AuthorizeDeployment(ctx, user, did, domain.ActDeploymentRead); err != nil {
		return err
	}
	if write {
		return domain.Errorf(domain.EForbidden, "Only the server publishes on logs channels.")
	}
	return nil
}

// logTails holds the live tails of the logs channels this node's clients
// subscribe to.
//
// Lines reach a node by broker broadcast (no history, at most once, in any
// order across batches), and the end of a log by an ordinary publication
// (the deployment.finished event). A tail puts them in sequence order: it
// delivers only contiguous lines, and when a batch arrives past a hole it
// reads the hole from the store first. The store has every line a
// broadcast could carry (batches are numbered in commit order), so no line
// is ever skipped, and none is sent twice to a subscriber (each
// subscription remembers the last seq it got).
type logTails struct {
	node *Node
	src  LogSource
	cfg  LogsConfig

	mu    sync.Mutex
	tails map[string]*logTail
}

// logTail is one deployment's log as this node delivers it.
type logTail struct {
	ch string
	id uuid.UUID

	mu sync.Mutex
	// top is the seq up to which lines were delivered; known is false
	// until the first subscriber's read from the store set it.
	top   uint64
	known bool
	// pending holds batches that arrived past a hole, by first seq.
	pending map[uint64][]domain.LogLine
	filling bool
	end     *logEnd // the end of the log, once known
}

// EnableLogs serves "logs:<deployment id>" channels: live tails backed by
// the store, with src.
func (n *Node) EnableLogs(src LogSource, cfg LogsConfig) {
	if cfg.ReplayLimit <= 0 {
		cfg.ReplayLimit = 5000
	}
	if cfg.FrameLines <= 0 {
		cfg.FrameLines = 1000
	}
	n.logs = &logTails{node: n, src: src, cfg: cfg, tails: map[string]*logTail{}}
	n.Register(logsKind, logsNamespace{src})
}

// BroadcastLogs ships lines just stored to every node with subscribers of
// the deployment's logs channel. It implements http.LogBroadcaster.
func (n *Node) BroadcastLogs(ctx context.Context, deploymentID uuid.UUID, lines []domain.LogLine) {
	if len(lines) == 0 {
		return
	}
	arr := make([][]any, len(lines))
	for i, l := range lines {
		arr[i] = []any{l.Seq, l.Step, l.Line, l.Text}
	}
	data, err := marshal(arr)
	if err == nil {
		err = n.broker.Broadcast(ctx, logsKind+":"+deploymentID.String(), data)
	}
	if err != nil {
		// Not lost: tails fill holes from the store when the next batch
		// or the end of the log arrives.
		n.log.WarnContext(ctx, "log broadcast failed", "deployment_id", deploymentID, "err", err)
	}
}

func decodeLines(data []byte) ([]domain.LogLine, bool) {
	var arr []struct {
		_msgpack struct{} `msgpack:",as_array"`
		Seq      uint64
		Step     string
		Line     uint64
		Text     string
	}
	if err := msgpack.Unmarshal(data, &arr); err != nil || len(arr) == 0 {
		return nil, false
	}
	out := make([]domain.LogLine, len(arr))
	for i, a := range arr {
		out[i] = domain.LogLine{Seq: a.Seq, Step: a.Step, Line: a.Line, Text: a.Text}
		if i > 0 && a.Seq != out[i-1].Seq+1 {
			return nil, false
		}
	}
	return out, true
}

// tail returns the tail of ch, creating it for a subscriber.
func (m *logTails) tail(ch string, create bool) *logTail {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.tails[ch]
	if t == nil && create {
		id, _ := uuid.Parse(strings.TrimPrefix(ch, logsKind+":"))
		t = &logTail{ch: ch, id: id, pending: map[uint64][]domain.LogLine{}}
		m.tails[ch] = t
	}
	return t
}

// drop forgets the tail of a channel without local subscribers.
func (m *logTails) drop(ch string) {
	if m.node.hub.count(ch) > 0 {
		return
	}
	m.mu.Lock()
	delete(m.tails, ch)
	m.mu.Unlock()
}

// broadcast handles a batch of lines from the broker.
func (m *logTails) broadcast(ch string, data []byte) {
	lines, ok := decodeLines(data)
	t := m.tail(ch, false)
	if !ok || t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pending[lines[0].Seq] = lines
	m.advance(t)
}

// publication handles a publication on a logs channel: the
// deployment.finished event.
func (m *logTails) publication(ch string, pub *Publication) {
	var ev struct {
		Type string `msgpack:"type"`
		Data logEnd `msgpack:"data"`
	}
	if err := msgpack.Unmarshal(pub.Data, &ev); err != nil || ev.Type != domain.EventDeploymentFinished {
		return
	}
	t := m.tail(ch, false)
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.end == nil {
		t.end = &ev.Data
	}
	m.advance(t)
}

// advance delivers what is contiguous after top, then the end if it is
// due; on a hole, it starts a fill. It runs under t.mu.
func (m *logTails) advance(t *logTail) {
	if !t.known {
		return // the first subscriber's read sets top, then advances
	}
	for {
		var next []domain.LogLine
		for first, lines := range t.pending {
			last := lines[len(lines)-1].Seq
			switch {
			case last <= t.top:
				delete(t.pending, first) // had it
			case first <= t.top+1:
				next = lines
			}
		}
		if next == nil {
			break
		}
		delete(t.pending, next[0].Seq)
		m.deliver(t, next)
	}
	holes := len(t.pending) > 0 || t.end != nil && t.end.LastSeq > t.top
	if holes && !t.filling {
		// Holes are read with the rights of a current subscriber.
		reader := uuid.Nil
		m.node.hub.each(t.ch, func(s *subscription) {
			if reader == uuid.Nil && s.live && !s.dead {
				reader = s.client.user
			}
		})
		if reader != uuid.Nil {
			t.filling = true
			go m.fill(t, reader)
		}
	}
	if t.end != nil && t.end.LastSeq <= t.top {
		f := t.end.frame(t.ch)
		frame, err := EncodeFrame(&f)
		if err != nil {
			return
		}
		m.node.hub.each(t.ch, func(s *subscription) {
			if s.live && !s.dead && !s.logEnded && s.offset >= t.end.LastSeq {
				s.logEnded = true
				s.client.enqueue(frame)
			}
		})
	}
}

// deliver sends lines (contiguous, starting at top+1 unless read from the
// store past deleted lines) to every live subscription, skipping what each
// has, and moves top. Runs under t.mu.
func (m *logTails) deliver(t *logTail, lines []domain.LogLine) {
	var whole [][]byte // the frames of all the lines, encoded once
	m.node.hub.each(t.ch, func(s *subscription) {
		if !s.live || s.dead {
			return
		}
		switch {
		case s.offset >= lines[len(lines)-1].Seq:
			return
		case s.offset < lines[0].Seq:
			// Usually s.offset+1 == lines[0].Seq. A jump comes only from
			// the store, past lines its cap or retention deleted (a read
			// from before the cap's cut starts with the marker line).
			if whole == nil {
				for _, f := range linesFrames(t.ch, lines, m.cfg.FrameLines) {
					b, err := EncodeFrame(&f)
					if err != nil {
						return
					}
					whole = append(whole, b)
				}
			}
			for _, b := range whole {
				s.client.enqueue(b)
			}
		default:
			for _, f := range linesFrames(t.ch, lines[s.offset+1-lines[0].Seq:], m.cfg.FrameLines) {
				s.client.send(&f)
			}
		}
		s.offset = lines[len(lines)-1].Seq
	})
	t.top = max(t.top, lines[len(lines)-1].Seq)
}

// fill reads the lines after top from the store and delivers them, until
// no hole is left.
func (m *logTails) fill(t *logTail, reader uuid.UUID) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		t.mu.Lock()
		after := t.top
		want := len(t.pending) > 0 || t.end != nil && t.end.LastSeq > t.top
		if !want {
			t.filling = false
			t.mu.Unlock()
			return
		}
		t.mu.Unlock()
		page, err := m.src.ReadLogs(ctx, reader, t.id, after, m.cfg.ReplayLimit)
		t.mu.Lock()
		if err != nil || len(page.Lines) == 0 {
			// Nothing to read (yet) or no longer allowed: give up until
			// the next batch or subscriber tries again.
			if err != nil {
				m.node.log.Warn("log tail fill failed", "channel", t.ch, "err", err)
			}
			t.filling = false
			t.mu.Unlock()
			return
		}
		if t.top == after {
			m.deliver(t, page.Lines)
		}
		m.advance(t)
		t.mu.Unlock()
	}
}

// subscribe replays a log from the store after since and makes s live, with
// no gap and no repeat between the replay and the live lines. s is
// registered (and authorised) already, so every batch stored from now on
// reaches the tail.
func (m *logTails) subscribe(ctx context.Context, c *Client, s *subscription, f *Frame) error {
	t := m.tail(f.Channel, true)
	var since uint64
	if f.Since != nil {
		since = f.Since.Offset
	}
	reply := &Frame{Type: TypeOK, ID: f.ID}
	if f.Since != nil {
		reply.Recovered = boolp(true)
	}
	behind := func() { // too far behind to replay: the client reads up to pos.o over REST
		reply.Recovered = boolp(false)
	}
	page, err := m.src.ReadLogs(ctx, c.user, t.id, since, m.cfg.ReplayLimit+1)
	if err != nil {
		c.dropSub(ctx, f.Channel)
		return err
	}
	dep, top := page.Deployment, page.Top
	offset, pubs := since, page.Lines
	if len(pubs) > m.cfg.ReplayLimit {
		behind()
		offset, pubs = top, nil
	} else if len(pubs) > 0 {
		offset = pubs[len(pubs)-1].Seq
	}
	for {
		t.mu.Lock()
		if !t.known {
			t.known, t.top = true, top
		}
		if t.top <= offset {
			break // holding t.mu: nothing is delivered until s is live
		}
		// The node delivered lines up to t.top to others meanwhile.
		need := t.top - offset
		if reply.Recovered != nil && !*reply.Recovered || uint64(len(pubs))+need > uint64(m.cfg.ReplayLimit) {
			behind()
			offset, pubs = t.top, nil
			break
		}
		t.mu.Unlock()
		more, err := m.src.ReadLogs(ctx, c.user, t.id, offset, int(need))
		if err != nil {
			c.dropSub(ctx, f.Channel)
			return err
		}
		if len(more.Lines) == 0 {
			t.mu.Lock()
			behind()
			offset, pubs = max(offset, t.top), nil
			break
		}
		pubs = append(pubs, more.Lines...)
		offset = more.Lines[len(more.Lines)-1].Seq
	}
	defer t.mu.Unlock()
	if dep.State.Final() && t.end == nil {
		t.end = endOf(dep, top)
	}
	reply.Pubs = linesFrames(f.Channel, pubs, m.cfg.FrameLines)
	ended := t.end != nil && offset >= t.end.LastSeq
	if ended {
		reply.Pubs = append(reply.Pubs, t.end.frame(f.Channel))
	}
	reply.Pos = &Position{Offset: offset, Epoch: LogEpoch}
	m.node.hub.goLive(s, func() {
		s.offset, s.epoch, s.logEnded = offset, LogEpoch, ended
		c.send(reply)
	}, func(*subscription, string, *Publication) {})
	m.advance(t)
	return nil
}

// history serves a history command on a logs channel from the store.
func (m *logTails) history(ctx context.Context, c *Client, f *Frame) error {
	t := m.tail(f.Channel, false)
	id := uuid.Nil
	if t != nil {
		id = t.id
	} else if parsed, err := uuid.Parse(strings.TrimPrefix(f.Channel, logsKind+":")); err == nil {
		id = parsed
	}
	limit := f.Limit
	if limit <= 0 || limit > m.cfg.ReplayLimit {
		limit = m.cfg.ReplayLimit
	}
	var since uint64
	if f.Since != nil {
		since = f.Since.Offset
	}
	page, err := m.src.ReadLogs(ctx, c.user, id, since, limit+1)
	if err != nil {
		return err
	}
	reply := &Frame{Type: TypeOK, ID: f.ID, Pos: &Position{Offset: page.Top, Epoch: LogEpoch}}
	lines := page.Lines
	if len(lines) > limit {
		lines, reply.More = lines[:limit], true
	}
	reply.Pubs = linesFrames(f.Channel, lines, m.cfg.FrameLines)
	c.send(reply)
	return nil
}
