package loadtest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Scenarios lists the scenarios Run knows.
var Scenarios = []string{"canvas", "fanout", "idle"}

// Config describes a load test.
type Config struct {
	URL             string        // base URL of the server, http://127.0.0.1:8080; must be loopback
	Scenario        string        // canvas, fanout or idle
	Duration        time.Duration // how long load is sent (canvas, fanout) or connections held (idle)
	Drain           time.Duration // after the window, how long to wait for replies and deliveries in flight
	Procs           int           // worker processes the connections are spread over
	SourceIPs       []string      // loopback source addresses connections are spread over; none: the system's choice
	Users           int           // accounts the connections are spread over
	DialConcurrency int           // connections being opened at once, per worker

	Editors  int     // canvas: editors, each with its own connection and replica
	Canvases int     // canvas: canvases the editors are spread over
	Rate     float64 // canvas: updates per second per editor; fanout: publications per second

	Subscribers int // fanout: subscribers of the project channel
	// SubscriberURLs (fanout) are the base URLs of the nodes the
	// subscribers are spread over, in turn; none: URL. The publisher and
	// the fixture's REST calls use URL.
	SubscriberURLs []string
	Publishers     int // fanout: connections the publisher spreads its rate over; 0: enough for the server's command limit

	Conns  int           // idle: connections
	Settle time.Duration // idle: wait after the last connection opened before reading the server's metrics
	// WaitGC (idle), if positive, is how long to wait after the settle
	// period for the server's next garbage collection before each reading,
	// so that its heap holds no garbage (an idle Go program collects at
	// least every two minutes: 130s is enough).
	WaitGC time.Duration

	// Progress receives a progress line every second and setup notes
	// (nil: discarded).
	Progress io.Writer
	// Spawn starts the workers; nil runs them in this process.
	Spawn Spawner
}

// DefaultConfig returns the defaults of every field.
func DefaultConfig() Config {
	return Config{
		URL: "http://127.0.0.1:8080", Duration: 30 * time.Second, Drain: 3 * time.Second, Procs: 1, Users: 100,
		DialConcurrency: 64, Editors: 1000, Canvases: 100, Rate: 5, Subscribers: 1000, Conns: 19000, Settle: 10 * time.Second,
	}
}

// commandRatePerConn is the rate one publisher connection stays under: the
// server allows 100 commands per second per connection by default.
const commandRatePerConn = 80

// Worker is a started worker: the parent writes the plan and commands to
// Stdin and reads JSON lines from Stdout.
type Worker struct {
	Stdin  io.WriteCloser
	Stdout io.Reader
	Wait   func() error // returns once the worker has exited
}

// Spawner starts worker i.
type Spawner func(ctx context.Context, i int) (*Worker, error)

// InProcess runs workers as goroutines of this process.
func InProcess() Spawner {
	return func(ctx context.Context, i int) (*Worker, error) {
		inR, inW := io.Pipe()
		outR, outW := io.Pipe()
		done := make(chan error, 1)
		go func() {
			err := RunWorker(ctx, inR, outW)
			inR.CloseWithError(io.EOF)
			outW.Close()
			done <- err
		}()
		return &Worker{Stdin: inW, Stdout: outR, Wait: func() error { return <-done }}, nil
	}
}

// Exec runs workers as child processes: path with args (`tone loadtest
// worker`), their standard error joined to this process's.
func Exec(path string, args ...string) Spawner {
	return func(ctx context.Context, i int) (*Worker, error) {
		cmd := exec.CommandContext(ctx, path, args...)
		cmd.Stderr = os.Stderr
		cmd.WaitDelay = 5 * time.Second
		setParentDeath(cmd)
		in, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("starting worker %d: %w", i, err)
		}
		return &Worker{Stdin: in, Stdout: out, Wait: cmd.Wait}, nil
	}
}

func (c *Config) check() error {
	def := DefaultConfig()
	if c.URL == "" {
		c.URL = def.URL
	}
	c.URL = strings.TrimRight(c.URL, "/")
	if c.Procs <= 0 {
		c.Procs = 1
	}
	if c.Users <= 0 {
		c.Users = 1
	}
	if c.DialConcurrency <= 0 {
		c.DialConcurrency = def.DialConcurrency
	}
	if c.Drain <= 0 {
		c.Drain = def.Drain
	}
	if c.Duration <= 0 {
		return errors.New("--duration must be positive: every load test stops by itself")
	}
	if c.Duration > 24*time.Hour {
		return errors.New("--duration is at most 24h")
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	switch c.Scenario {
	case "canvas":
		if c.Editors < 1 || c.Canvases < 1 || c.Rate <= 0 {
			return errors.New("canvas needs --editors, --canvases and --rate above zero")
		}
		c.Canvases = min(c.Canvases, c.Editors)
		c.Procs = min(c.Procs, c.Canvases) // a canvas's editors share a worker
	case "fanout":
		if c.Subscribers < 1 || c.Rate <= 0 {
			return errors.New("fanout needs --subscribers and --rate above zero")
		}
		if c.Publishers <= 0 {
			c.Publishers = int((c.Rate + commandRatePerConn - 1) / commandRatePerConn)
		}
	case "idle":
		if c.Conns < 1 {
			return errors.New("idle needs --conns above zero")
		}
		if c.Settle >= c.Duration {
			return fmt.Errorf("--settle (%s) must be shorter than --duration (%s)", c.Settle, c.Duration)
		}
	default:
		return fmt.Errorf("unknown scenario %q: want one of %s", c.Scenario, strings.Join(Scenarios, ", "))
	}
	return nil
}

// connections returns how many connections the test opens.
func (c *Config) connections() int {
	switch c.Scenario {
	case "canvas":
		return c.Editors
	case "fanout":
		return c.Subscribers + c.Publishers
	}
	return c.Conns
}

// ServerFlags returns the `tone serve` flags the configured test needs.
func (c *Config) ServerFlags() string {
	users := max(min(c.Users, c.connections()), 1)
	perUser := (c.connections() + users - 1) / users
	if c.Scenario == "fanout" {
		perUser = max(perUser, c.Publishers+1) // the publisher also holds a subscriber
	}
	return RelaxedServerFlags(perUser)
}

// Run runs a load test against a server on this machine and returns its
// summary. It refuses any target that is not a loopback address.
func Run(ctx context.Context, cfg Config) (*Summary, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if err := CheckLoopback(ctx, cfg.URL); err != nil {
		return nil, err
	}
	for _, u := range cfg.SubscriberURLs {
		if err := CheckLoopback(ctx, u); err != nil {
			return nil, err
		}
	}
	if _, err := parseSourceIPs(cfg.SourceIPs); err != nil {
		return nil, err
	}
	RaiseFileLimit()
	logf := func(format string, args ...any) { fmt.Fprintf(cfg.Progress, format+"\n", args...) }
	logf("%s: %d connections over %d users in %d worker(s); the server needs: tone serve %s",
		cfg.Scenario, cfg.connections(), min(cfg.Users, cfg.connections()), cfg.Procs, cfg.ServerFlags())
	if per := cfg.connections() / cfg.Procs; per > fileLimit()-200 {
		logf("warning: %d connections per worker, above this process's open-file limit (%d): use more --procs", per, fileLimit())
	}

	rest := &restClient{base: cfg.URL, http: newHTTPClient(nil, 16)}
	users := max(min(cfg.Users, cfg.connections()), 1)
	canvases := 0
	if cfg.Scenario == "canvas" {
		canvases = cfg.Canvases
	}
	fx, err := setup(ctx, rest, users, canvases, logf)
	if err != nil {
		if errors.Is(err, errRateLimited) {
			return nil, fmt.Errorf("setup: %w: start the server with relaxed limits: tone serve %s", err, cfg.ServerFlags())
		}
		return nil, fmt.Errorf("setup: %w", err)
	}
	var before ServerReading
	if cfg.Scenario == "idle" {
		if before, err = settleAndRead(ctx, &Config{WaitGC: cfg.WaitGC}, rest, "before", logf); err != nil {
			return nil, err
		}
	}

	plans := makePlans(&cfg, fx)
	spawn := cfg.Spawn
	if spawn == nil {
		spawn = InProcess()
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ws := make([]*workerHandle, len(plans))
	defer func() {
		for _, w := range ws {
			if w != nil {
				w.close()
			}
		}
	}()
	for i, p := range plans {
		w, err := spawn(wctx, i)
		if err != nil {
			return nil, err
		}
		ws[i] = newWorkerHandle(i, w)
		if err := ws[i].send(p); err != nil {
			return nil, fmt.Errorf("worker %d: sending the plan: %w", i, err)
		}
	}

	started := time.Now()
	// Phase 1: connect.
	ready := NewStats()
	for _, w := range ws {
		s, err := w.waitReady(ctx, &cfg, ws, started)
		if err != nil {
			return nil, err
		}
		ready.Merge(s)
	}
	logf("ready: %d connections in %s", ready.Conns, time.Since(started).Round(time.Millisecond))
	if len(ready.DialErrors) > 0 || len(ready.ErrReplies) > 0 {
		logf("warning: setup errors: dial %v, replies %v%s", ready.DialErrors, ready.ErrReplies, hint(ready, &cfg))
	}
	if ready.Conns == 0 {
		return nil, fmt.Errorf("no connection could be opened%s", hint(ready, &cfg))
	}

	// Phase 2: the measured window.
	var mid ServerReading
	if cfg.Scenario == "idle" {
		// The first half is open: settle, then read the server.
		if mid, err = settleAndRead(ctx, &cfg, rest, "half open", logf); err != nil {
			return nil, err
		}
	}
	for _, w := range ws {
		if err := w.command(cmdStart); err != nil {
			return nil, fmt.Errorf("worker %d: %w", w.i, err)
		}
	}
	windowStart := time.Now()
	cpuStart, cpuErr := readMetricsOnce(ctx, rest)
	var usage *ServerUsage
	var usageErr error
	usageDone := make(chan struct{})
	uctx, cancelUsage := context.WithCancel(wctx)
	if cfg.Scenario == "idle" {
		go func() {
			defer close(usageDone)
			usage, usageErr = measureIdle(uctx, &cfg, rest, ws, before, mid, logf)
		}()
	} else {
		close(usageDone)
	}

	total := NewStats()
	defer cancelUsage()
	for _, w := range ws {
		s, err := w.waitResult(ctx, &cfg, ws, windowStart, cfg.Duration+cfg.Drain+time.Minute)
		if err != nil {
			return nil, err
		}
		total.Merge(s)
	}
	cpuEnd, cpuEndErr := readMetricsOnce(ctx, rest)
	wall := time.Since(windowStart)
	cancelUsage()
	<-usageDone
	if usageErr != nil {
		return nil, fmt.Errorf("reading the server's metrics: %w", usageErr)
	}
	for _, w := range ws {
		w.close()
	}

	sum := summarize(total, cfg.Duration.Seconds(), wall.Seconds())
	sum.Scenario, sum.URL, sum.Started, sum.Procs = cfg.Scenario, cfg.URL, windowStart.UTC(), len(plans)
	sum.Params = params(&cfg, users)
	sum.Server = usage
	if cpuErr == nil && cpuEndErr == nil {
		sum.CPU = newCPUUsage(wall, cpuEnd.CPUSeconds-cpuStart.CPUSeconds, total.CPUSeconds, total.Deliveries)
	}
	if cfg.Scenario == "fanout" {
		subs := total.Conns - int64(cfg.Publishers)
		sum.Expected = total.Acked * subs
		if miss := sum.Expected - total.Deliveries; miss > 0 {
			sum.Errors.Missing = miss
			sum.Errors.Total += miss
		}
	}
	return sum, nil
}

// settleAndRead waits for the settle period, then reads the server's
// metrics.
func settleAndRead(ctx context.Context, cfg *Config, rest *restClient, what string, logf func(string, ...any)) (ServerReading, error) {
	select {
	case <-time.After(cfg.Settle):
	case <-ctx.Done():
		return ServerReading{}, ctx.Err()
	}
	if cfg.WaitGC > 0 {
		start := time.Now()
		ok, err := waitGC(ctx, rest, cfg.WaitGC)
		if err != nil {
			return ServerReading{}, err
		}
		if !ok {
			logf("warning: the server did not collect garbage within %s; its heap may hold garbage", cfg.WaitGC)
		} else {
			logf("server collected garbage after %s", time.Since(start).Round(time.Second))
		}
	}
	r, err := readMetrics(ctx, rest, 3)
	if err != nil {
		return r, err
	}
	logf("server %s: rss=%.1fMiB heap_inuse=%.1fMiB stack_inuse=%.1fMiB goroutines=%.0f connections=%.0f",
		what, r.RSSBytes/(1<<20), r.HeapInuse/(1<<20), r.StackInuse/(1<<20), r.Goroutines, r.Connections)
	return r, nil
}

// measureIdle waits until the workers have opened every connection, lets
// the server settle, and reads it.
func measureIdle(ctx context.Context, cfg *Config, rest *restClient, ws []*workerHandle, before, mid ServerReading, logf func(string, ...any)) (*ServerUsage, error) {
	var conns int64
	waitUntil(ctx, func() bool {
		cur := NewStats()
		for _, w := range ws {
			cur.Merge(w.progress())
		}
		var failed int64
		for _, n := range cur.DialErrors {
			failed += n
		}
		conns = cur.Conns
		return cur.Conns+failed >= int64(cfg.Conns)
	})
	if ctx.Err() != nil {
		return nil, fmt.Errorf("the connections did not all open within --duration: %w", ctx.Err())
	}
	after, err := settleAndRead(ctx, cfg, rest, "all open", logf)
	if err != nil {
		return nil, fmt.Errorf("%w (make --duration longer than the time to connect plus --settle)", err)
	}
	u := newServerUsage(before, mid, after, conns)
	logf("server per connection: %.0f B rss, %.0f B heap, %.0f B stack, %.2f goroutines (from the last %d connections: %.0f B rss, %.0f B heap, %.0f B stack)",
		u.PerConn.RSSBytes, u.PerConn.HeapInuseBytes, u.PerConn.StackInuseBytes, u.PerConn.Goroutines,
		int64(after.Connections-mid.Connections), u.Marginal.RSSBytes, u.Marginal.HeapInuseBytes, u.Marginal.StackInuseBytes)
	return u, nil
}

func params(cfg *Config, users int) map[string]any {
	p := map[string]any{"duration_s": cfg.Duration.Seconds(), "users": users}
	if len(cfg.SourceIPs) > 0 {
		p["source_ips"] = cfg.SourceIPs
	}
	switch cfg.Scenario {
	case "canvas":
		p["editors"], p["canvases"], p["rate_per_editor"] = cfg.Editors, cfg.Canvases, cfg.Rate
	case "fanout":
		p["subscribers"], p["rate"], p["publisher_conns"] = cfg.Subscribers, cfg.Rate, cfg.Publishers
	case "idle":
		p["conns"], p["settle_s"], p["wait_gc_s"] = cfg.Conns, cfg.Settle.Seconds(), cfg.WaitGC.Seconds()
	}
	return p
}

// hint explains the setup errors that come from the server's limits.
func hint(s *Stats, cfg *Config) string {
	for k := range s.DialErrors {
		switch k {
		case "4006":
			return fmt.Sprintf(" (4006: too many connections per user: raise --max-connections-per-user; tone serve %s)", cfg.ServerFlags())
		case "4501":
			return " (4501: token refused: the server restarted with an ephemeral signing key?)"
		}
	}
	for k := range s.ErrReplies {
		if strings.Contains(k, "rate_limited") {
			return fmt.Sprintf(" (rate limited: tone serve %s)", cfg.ServerFlags())
		}
	}
	return ""
}

// makePlans splits the test over the workers.
func makePlans(cfg *Config, fx *fixture) []*plan {
	tokens := make([]string, len(fx.Users))
	for i, u := range fx.Users {
		tokens[i] = u.Token
	}
	ws := "ws" + strings.TrimPrefix(cfg.URL, "http") + "/api/v1/realtime"
	var subWS []string
	for _, u := range cfg.SubscriberURLs {
		subWS = append(subWS, "ws"+strings.TrimPrefix(strings.TrimRight(u, "/"), "http")+"/api/v1/realtime")
	}
	plans := make([]*plan, cfg.Procs)
	for i := range plans {
		plans[i] = &plan{Scenario: cfg.Scenario, Worker: i, WSURL: ws, SourceIPs: cfg.SourceIPs, Duration: cfg.Duration,
			Drain: cfg.Drain, DialConcurrency: cfg.DialConcurrency, Tokens: tokens, Rate: cfg.Rate}
	}
	user := func(i int) int { return i % len(tokens) }
	switch cfg.Scenario {
	case "canvas":
		cps := make([]canvasPlan, len(fx.Canvases))
		for i, id := range fx.Canvases {
			cps[i].ID = id
		}
		for e := range cfg.Editors {
			cp := &cps[e%len(cps)]
			// A random replica in [2^32, 2^53).
			cp.Editors = append(cp.Editors, editorPlan{Token: user(e), Replica: 1<<32 + rand.Uint64N(1<<53-1<<32)})
		}
		for i, cp := range cps {
			p := plans[i%len(plans)]
			p.Canvases = append(p.Canvases, cp)
		}
	case "fanout":
		for _, p := range plans {
			p.Channel = "project:" + fx.Project
			p.SubscriberWSURLs = subWS
		}
		for s := range cfg.Subscribers {
			p := plans[s%len(plans)]
			p.Subscribers = append(p.Subscribers, user(s))
		}
		for range cfg.Publishers {
			plans[0].Publishers = append(plans[0].Publishers, 0) // the owner
		}
	case "idle":
		// Half the connections open before the window, half in it, so
		// that the server can be read at both steps.
		for c := range cfg.Conns {
			p := plans[c%len(plans)]
			if c < cfg.Conns/2 {
				p.Idle = append(p.Idle, user(c))
			} else {
				p.IdleLater = append(p.IdleLater, user(c))
			}
		}
	}
	return plans
}

// workerHandle is the parent's side of one worker.
type workerHandle struct {
	i    int
	w    *Worker
	msgs chan *message
	mu   sync.Mutex
	last *Stats // latest progress

	closeOnce sync.Once
}

func newWorkerHandle(i int, w *Worker) *workerHandle {
	h := &workerHandle{i: i, w: w, msgs: make(chan *message, 16)}
	go func() {
		defer close(h.msgs)
		sc := bufio.NewScanner(w.Stdout)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			m := &message{}
			if err := json.Unmarshal(sc.Bytes(), m); err != nil {
				m.Error = fmt.Sprintf("bad line from worker: %v", err)
			}
			if m.Progress != nil {
				h.mu.Lock()
				h.last = m.Progress
				h.mu.Unlock()
				continue
			}
			h.msgs <- m
		}
	}()
	return h
}

func (h *workerHandle) send(p *plan) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	_, err = h.w.Stdin.Write(append(b, '\n'))
	return err
}

func (h *workerHandle) command(c string) error {
	_, err := io.WriteString(h.w.Stdin, c+"\n")
	return err
}

func (h *workerHandle) progress() *Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last
}

// close closes the worker's input, which ends it, and waits for it.
func (h *workerHandle) close() {
	h.closeOnce.Do(func() {
		h.w.Stdin.Close()
		h.w.Wait()
	})
}

// next waits for the worker's next message, printing progress of all
// workers once a second meanwhile.
func (h *workerHandle) next(ctx context.Context, cfg *Config, all []*workerHandle, phase string, since time.Time, timeout time.Duration) (*message, error) {
	deadline := time.After(timeout)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var prev *Stats
	prevAt := time.Now()
	for {
		select {
		case m, ok := <-h.msgs:
			if !ok {
				return nil, fmt.Errorf("worker %d ended early (%v)", h.i, h.w.Wait())
			}
			if m.Error != "" {
				return nil, fmt.Errorf("worker %d: %s", h.i, m.Error)
			}
			return m, nil
		case <-tick.C:
			cur := NewStats()
			for _, o := range all {
				cur.Merge(o.progress())
			}
			now := time.Now()
			fmt.Fprintln(cfg.Progress, progressLine(cfg.Scenario, now.Sub(since), phase, cur, prev, now.Sub(prevAt)))
			prev, prevAt = cur, now
		case <-deadline:
			return nil, fmt.Errorf("worker %d: no answer in %s", h.i, timeout)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (h *workerHandle) waitReady(ctx context.Context, cfg *Config, all []*workerHandle, since time.Time) (*Stats, error) {
	m, err := h.next(ctx, cfg, all, "connect", since, 15*time.Minute)
	if err != nil {
		return nil, err
	}
	if m.Ready == nil {
		return nil, fmt.Errorf("worker %d: expected ready", h.i)
	}
	return m.Ready, nil
}

func (h *workerHandle) waitResult(ctx context.Context, cfg *Config, all []*workerHandle, since time.Time, timeout time.Duration) (*Stats, error) {
	m, err := h.next(ctx, cfg, all, "run", since, timeout)
	if err != nil {
		return nil, err
	}
	if m.Result == nil {
		return nil, fmt.Errorf("worker %d: expected a result", h.i)
	}
	return m.Result, nil
}
