package loadtest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/tone-ai/tone/realtime"
	"github.com/tone-ai/tone/realtime/rtclient"
)

// plan is one worker's share of a load test: the parent sends it as the
// first line of the worker's standard input. Tokens are access tokens;
// the rest refers to them by index, so a token travels once.
type plan struct {
	Scenario        string        `json:"scenario"`
	Worker          int           `json:"worker"`
	WSURL           string        `json:"ws_url"`
	SourceIPs       []string      `json:"source_ips,omitempty"`
	Duration        time.Duration `json:"duration"`
	Drain           time.Duration `json:"drain"`
	DialConcurrency int           `json:"dial_concurrency"`
	Tokens          []string      `json:"tokens"`

	Rate     float64      `json:"rate,omitempty"`     // canvas: ops/s per editor; fanout: msg/s over all publishers
	Canvases []canvasPlan `json:"canvases,omitempty"` // canvas

	Channel     string `json:"channel,omitempty"`     // fanout
	Subscribers []int  `json:"subscribers,omitempty"` // fanout: token index per subscriber
	// SubscriberWSURLs (fanout): the realtime endpoints subscribers are
	// spread over, in turn; none: WSURL.
	SubscriberWSURLs []string `json:"subscriber_ws_urls,omitempty"`
	Publishers       []int    `json:"publishers,omitempty"` // fanout: token index per publisher connection

	Idle      []int `json:"idle,omitempty"`       // idle: token index per connection opened before "start"
	IdleLater []int `json:"idle_later,omitempty"` // idle: token index per connection opened after "start"
}

type canvasPlan struct {
	ID      string       `json:"id"`
	Editors []editorPlan `json:"editors"`
}

type editorPlan struct {
	Token   int    `json:"token"`
	Replica uint64 `json:"replica"`
}

// message is one line a worker writes to its standard output.
type message struct {
	Ready    *Stats `json:"ready,omitempty"`    // connected and subscribed; waiting for "start"
	Progress *Stats `json:"progress,omitempty"` // once a second; latency of the last second only
	Result   *Stats `json:"result,omitempty"`   // the final stats; the worker then exits
	Error    string `json:"error,omitempty"`    // the worker failed
}

// Commands the parent writes to a worker's standard input after the plan.
const (
	cmdStart = "start"
	cmdStop  = "stop"
)

// scenarioWorker is the part of a worker specific to a scenario.
type scenarioWorker interface {
	// prepare opens the connections and subscribes.
	prepare(ctx context.Context) error
	// run sends load until stop is closed.
	run(ctx context.Context, stop <-chan struct{})
	// drain waits, at most until ctx ends, for replies and deliveries in
	// flight, then counts what is still missing.
	drain(ctx context.Context)
}

// worker runs one plan.
type worker struct {
	plan    *plan
	stats   *live
	dialers *dialers
	running atomic.Bool // the measured window has started: count deliveries
	closing atomic.Bool // the worker is closing its connections on purpose

	mu    sync.Mutex
	conns []*rtclient.Conn
	ended []bool // conns[i] was seen closed and counted
}

// RunWorker runs one worker of a load test: it reads its plan from in,
// connects, reports ready, waits for "start", runs, and writes its stats
// to out as JSON lines (see message). It ends early when in closes, so a
// worker never outlives its parent. `tone loadtest worker` calls it.
func RunWorker(ctx context.Context, in io.Reader, out io.Writer) error {
	RaiseFileLimit()
	var outMu sync.Mutex
	enc := json.NewEncoder(out)
	send := func(m *message) {
		outMu.Lock()
		defer outMu.Unlock()
		enc.Encode(m)
	}
	err := runWorker(ctx, bufio.NewReaderSize(in, 1<<20), send)
	if err != nil {
		send(&message{Error: err.Error()})
	}
	return err
}

func runWorker(ctx context.Context, in *bufio.Reader, send func(*message)) error {
	line, err := in.ReadBytes('\n')
	if err != nil && len(line) == 0 {
		return fmt.Errorf("worker: reading the plan: %w", err)
	}
	p := &plan{}
	if err := json.Unmarshal(line, p); err != nil {
		return fmt.Errorf("worker: bad plan: %w", err)
	}
	// However the parent behaves, a worker stops on its own.
	ctx, cancel := context.WithTimeout(ctx, 15*time.Minute+p.Duration+p.Drain)
	defer cancel()
	start, stop := make(chan struct{}), make(chan struct{})
	go func() {
		var started, stopped bool
		for {
			line, err := in.ReadString('\n')
			switch strings.TrimSpace(line) {
			case cmdStart:
				if !started {
					started = true
					close(start)
				}
			case cmdStop:
				if !stopped {
					stopped = true
					close(stop)
				}
			}
			if err != nil {
				cancel() // the parent is gone
				return
			}
		}
	}()

	sources, err := parseSourceIPs(p.SourceIPs)
	if err != nil {
		return err
	}
	w := &worker{plan: p, stats: newLive(), dialers: newDialers(sources)}
	var sw scenarioWorker
	switch p.Scenario {
	case "canvas":
		sw = newCanvasWorker(w)
	case "fanout":
		sw = newFanoutWorker(w)
	case "idle":
		sw = &idleWorker{w: w}
	default:
		return fmt.Errorf("worker: unknown scenario %q", p.Scenario)
	}
	defer w.closeAll()

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	progressDone := make(chan struct{})
	defer close(progressDone)
	go func() {
		for {
			select {
			case <-progressDone:
				return
			case <-tick.C:
				w.scanDisconnects()
				send(&message{Progress: w.stats.progress()})
			}
		}
	}()

	if err := sw.prepare(ctx); err != nil {
		return err
	}
	w.scanDisconnects()
	send(&message{Ready: w.stats.snapshot()})
	select {
	case <-start:
	case <-ctx.Done():
		return fmt.Errorf("worker: no start: %w", ctx.Err())
	}

	w.running.Store(true)
	cpu0 := cpuTime()
	runStop := make(chan struct{})
	timer := time.AfterFunc(p.Duration, func() { close(runStop) })
	go func() {
		select {
		case <-stop:
			if timer.Stop() {
				close(runStop)
			}
		case <-runStop:
		}
	}()
	sw.run(ctx, runStop)
	dctx, dcancel := context.WithTimeout(ctx, p.Drain)
	sw.drain(dctx)
	dcancel()
	w.scanDisconnects()
	w.closing.Store(true)
	res := w.stats.snapshot()
	res.CPUSeconds = (cpuTime() - cpu0).Seconds()
	send(&message{Result: res})
	return nil
}

// dial opens one connection with token and counts it, or counts why it
// failed and returns nil.
func (w *worker) dial(ctx context.Context, token string, onPush func(*realtime.Frame)) *rtclient.Conn {
	return w.dialURL(ctx, w.plan.WSURL, token, onPush)
}

// dialURL is dial to another realtime endpoint than the plan's.
func (w *worker) dialURL(ctx context.Context, url, token string, onPush func(*realtime.Frame)) *rtclient.Conn {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := rtclient.Dial(dctx, url, token, rtclient.Options{OnPush: onPush, Name: "loadtest", HTTPClient: w.dialers.pick()})
	if err != nil {
		w.stats.count(w.stats.dialErrors, dialReason(err))
		return nil
	}
	w.mu.Lock()
	w.conns = append(w.conns, c)
	w.ended = append(w.ended, false)
	w.mu.Unlock()
	w.stats.conns.Add(1)
	return c
}

// dialReason names why a dial failed: the close code the server sent, or
// the last part of the error.
func dialReason(err error) string {
	if code := websocket.CloseStatus(err); code != -1 {
		return strconv.Itoa(int(code))
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return truncate(s, 60)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// scanDisconnects counts the connections that ended since the last scan,
// by the close code the server sent.
func (w *worker) scanDisconnects() {
	if w.closing.Load() {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, c := range w.conns {
		if w.ended[i] {
			continue
		}
		select {
		case <-c.Done():
			w.ended[i] = true
			w.stats.disconnectsMu(strconv.Itoa(int(c.CloseStatus())))
		default:
		}
	}
}

func (l *live) disconnectsMu(code string) { l.count(l.disconnects, code) }

// closeAll closes every connection, a few at a time.
func (w *worker) closeAll() {
	w.closing.Store(true)
	w.mu.Lock()
	conns := w.conns
	w.conns, w.ended = nil, nil
	w.mu.Unlock()
	sem := make(chan struct{}, 256)
	var wg sync.WaitGroup
	for _, c := range conns {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			done := make(chan struct{})
			go func() { c.Close(); close(done) }()
			select {
			case <-done:
			case <-time.After(2 * time.Second):
				c.CloseNow()
			}
		}()
	}
	wg.Wait()
}

// forEach runs fn for i in [0, n) with at most the plan's dial
// concurrency at once.
func (w *worker) forEach(ctx context.Context, n int, fn func(i int)) {
	sem := make(chan struct{}, max(w.plan.DialConcurrency, 1))
	var wg sync.WaitGroup
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn(i)
		}()
	}
	wg.Wait()
}

// handleCommon counts the pushes every scenario treats alike and reports
// whether f was one of them.
func (w *worker) handleCommon(f *realtime.Frame) bool {
	switch {
	case f.Type == realtime.TypeReset:
		w.stats.resets.Add(1)
	case f.Type == realtime.TypeError && f.ID == 0:
		w.stats.connErrors.Add(1)
	default:
		return false
	}
	return true
}

// acks matches replies to frames sent with Send, by request id.
type acks struct {
	mu   sync.Mutex
	sent map[uint64]time.Time
}

func (a *acks) add(id uint64, t time.Time) {
	a.mu.Lock()
	if a.sent == nil {
		a.sent = map[uint64]time.Time{}
	}
	a.sent[id] = t
	a.mu.Unlock()
}

func (a *acks) forget(id uint64) {
	a.mu.Lock()
	delete(a.sent, id)
	a.mu.Unlock()
}

// reply handles an ok or err frame answering a frame sent with Send.
func (a *acks) reply(l *live, f *realtime.Frame) {
	a.mu.Lock()
	t, ok := a.sent[f.ID]
	delete(a.sent, f.ID)
	a.mu.Unlock()
	if !ok {
		return
	}
	if f.Type == realtime.TypeError {
		l.count(l.errReplies, f.Code)
		return
	}
	l.acked.Add(1)
	l.ackLatency.Record(time.Since(t))
}

func (a *acks) pending() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.sent)
}

// waitUntil polls cond every 10ms until it is true or ctx ends.
func waitUntil(ctx context.Context, cond func() bool) {
	for !cond() {
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// pace calls fn every interval, from a random phase within the first
// interval, until stop is closed. Ticks missed while fn runs are dropped.
func pace(stop <-chan struct{}, interval, phase time.Duration, fn func()) {
	select {
	case <-stop:
		return
	case <-time.After(phase):
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		fn()
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}
