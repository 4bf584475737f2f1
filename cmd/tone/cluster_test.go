package main

// Multi-node tests: real `tone serve` processes on loopback ports sharing a
// PostgreSQL database, a signing key and a Redis, killed and restarted
// under load. The binary is built once per test process (TestMain removes
// it).

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/tone-ai/tone/crdt"
	"github.com/tone-ai/tone/domain"
	"github.com/tone-ai/tone/domain/postgres/pgtest"
	"github.com/tone-ai/tone/loadtest"
	"github.com/tone-ai/tone/realtime"
	"github.com/tone-ai/tone/realtime/redistest"
	"github.com/tone-ai/tone/realtime/rtclient"
)

// binDir holds the tone binary the cluster tests run.
var (
	binDir   string
	binOnce  sync.Once
	binPath  string
	binError error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tone-cluster-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// toneBinary builds cmd/tone once (without the race detector: the nodes
// are the system under test, the test process checks them).
func toneBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binPath = filepath.Join(binDir, "tone")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binError = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binError != nil {
		t.Fatal(binError)
	}
	return binPath
}

// cluster is a set of nodes sharing a database, a signing key and a Redis.
type cluster struct {
	t        *testing.T
	dbURL    string   // as tone_app
	redisURL string   // the broker
	prefix   string   // Redis key prefix
	extra    []string // more flags for every node
	keyFile  string
	nodes    []*toneProc
}

// toneProc is one `tone serve` process.
type toneProc struct {
	name string
	base string // http://127.0.0.1:port
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan struct{}
}

// newCluster prepares a cluster on a fresh database and the shared Redis
// (under a prefix of the test's own); redisURL, when not empty, names
// another Redis.
func newCluster(t *testing.T, dbURL, redisURL string, extra ...string) *cluster {
	t.Helper()
	prefix := "tone"
	if redisURL == "" {
		_, prefix = redistest.Shared(t)
		redisURL = redistest.URL()
	}
	if dbURL == "" {
		dbURL = pgtest.NewDB(t).AppURL
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	pemBytes, err := domain.EncodePrivateKeyPEM(priv)
	require.NoError(t, err)
	keyFile := filepath.Join(t.TempDir(), "key.pem")
	require.NoError(t, os.WriteFile(keyFile, pemBytes, 0o600))
	return &cluster{t: t, dbURL: dbURL, redisURL: redisURL, prefix: prefix, extra: extra, keyFile: keyFile}
}

// start starts n more nodes and waits until they serve.
func (c *cluster) start(n int) {
	c.t.Helper()
	bin := toneBinary(c.t)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(c.t, err)
		addr := l.Addr().String()
		l.Close()
		p := &toneProc{name: "node" + strconv.Itoa(len(c.nodes)+1), base: "http://" + addr, logs: &syncBuffer{}, done: make(chan struct{})}
		args := append([]string{"serve", "--addr", addr, "--node-id", p.name, "--data-dir", c.t.TempDir(),
			"--database-url", c.dbURL, "--signing-key-file", c.keyFile, "--log-format", "json",
			"--redis-url", c.redisURL, "--redis-prefix", c.prefix}, c.extra...)
		p.cmd = exec.Command(bin, args...)
		p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
		require.NoError(c.t, p.cmd.Start())
		go func() { p.cmd.Wait(); close(p.done) }()
		c.nodes = append(c.nodes, p)
		c.t.Cleanup(func() {
			p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				p.cmd.Process.Kill()
				<-p.done
			}
			if c.t.Failed() {
				c.t.Logf("logs of %s (requests left out):\n%s", p.name, tail(withoutRequests(p.logs.String()), 8000))
			}
		})
	}
	for _, p := range c.nodes {
		c.waitReady(p)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// waitReady waits until p answers /readyz with 200.
func (c *cluster) waitReady(p *toneProc) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-p.done:
			c.t.Fatalf("%s exited: %v\n%s", p.name, p.cmd.ProcessState, p.logs)
		default:
		}
		if ready(p.base) == 200 {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s not ready\n%s", p.name, p.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ready returns the status of GET /readyz (0 if it did not answer).
func ready(base string) int {
	cl := http.Client{Timeout: 3 * time.Second}
	resp, err := cl.Get(base + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// kill stops p with SIGKILL, as a crash would.
func (p *toneProc) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// setup registers ann and bob on the first node, makes a workspace with a
// project and a canvas, and returns ann, bob's client, the project and the
// canvas.
func (c *cluster) setup() (ann, bob *client, project, canvas string) {
	c.t.Helper()
	base := c.nodes[0].base
	ws, ann := walkThrough(c.t, base)
	anon := &client{t: c.t, base: base}
	bob = &client{t: c.t, base: base, token: anon.do("POST", "/auth/login",
		map[string]string{"email": "bob@example.com", "password": "another good one"}, 200)["access_token"].(string)}
	project = ann.do("GET", "/workspaces/"+ws+"/projects", nil, 200)["items"].([]any)[0].(map[string]any)["id"].(string)
	canvas = ann.do("POST", "/projects/"+project+"/canvases", map[string]string{"name": "Board"}, 201)["id"].(string)
	return ann, bob, project, canvas
}

// editor is a canvas client that keeps its document across reconnects, as
// a browser does: it resubscribes with its version vector and resends the
// updates not yet acknowledged, to whichever node is up.
type editor struct {
	t       *testing.T
	name    string
	token   string
	ch      string
	replica uint64
	bases   func() []string // the nodes it may use, first choice first

	mu      sync.Mutex
	doc     *crdt.Doc
	conn    *rtclient.Conn
	live    bool     // subscribed and not reset
	pending [][]byte // sent, not acknowledged
	acked   []string // texts of the elements whose creation was acknowledged
	sent    []string
	moves   int // reconnects to another node or resubscribes
}

func newEditor(t *testing.T, name, token, canvas string, replica uint64, bases func() []string) *editor {
	doc := crdt.NewDoc(crdt.ReplicaID(replica), crdt.DefaultSchema())
	return &editor{t: t, name: name, token: token, ch: "canvas:" + canvas, replica: replica, bases: bases, doc: doc}
}

// push applies other editors' updates and notes resets. It runs on the
// connection's reader goroutine; updates may come before the subscribe
// reply's diff is applied, which a CRDT does not mind.
func (e *editor) push(f *realtime.Frame) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch f.Type {
	case realtime.TypeMessage:
		var u []byte
		if msgpack.Unmarshal(f.Data, &u) == nil {
			if err := e.doc.Apply(u); err != nil {
				e.t.Errorf("%s: apply: %v", e.name, err)
			}
		}
	case realtime.TypeReset:
		e.live = false
	}
}

// connect (re)connects and (re)subscribes, trying the nodes in turn until
// ctx ends, then resends what is pending.
func (e *editor) connect(ctx context.Context) error {
	backoff := 50 * time.Millisecond
	for attempt := 0; ; attempt++ {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := e.tryConnect(ctx, attempt); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

func (e *editor) tryConnect(ctx context.Context, attempt int) error {
	e.mu.Lock()
	conn := e.conn
	e.mu.Unlock()
	if conn == nil || conn.Err() != nil {
		bases := e.bases()
		base := bases[attempt%len(bases)]
		dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		c, err := rtclient.Dial(dctx, wsURL(base), e.token, rtclient.Options{OnPush: e.push})
		cancel()
		if err != nil {
			return err
		}
		if conn != nil {
			conn.CloseNow()
		}
		conn = c
	}
	e.mu.Lock()
	e.conn = conn
	vv := e.doc.Version()
	e.mu.Unlock()
	wire := map[uint64]uint64{}
	for r, s := range vv {
		wire[uint64(r)] = s
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	r, err := conn.Request(rctx, &realtime.Frame{Type: realtime.TypeSubscribe, Channel: e.ch, Replica: e.replica, Version: wire})
	if err != nil {
		if conn.Err() != nil {
			conn.CloseNow()
		}
		return err
	}
	e.mu.Lock()
	if r.Snapshot {
		if len(e.doc.Version()) == 0 {
			d, err := crdt.Load(crdt.ReplicaID(e.replica), crdt.DefaultSchema(), r.Update)
			if err != nil {
				e.mu.Unlock()
				return err
			}
			e.doc = d
		} else {
			other, err := crdt.Load(crdt.ReplicaID(e.replica)+1, crdt.DefaultSchema(), r.Update)
			if err == nil {
				err = e.doc.Merge(other)
			}
			if err != nil {
				e.mu.Unlock()
				return err
			}
		}
	} else if len(r.Update) > 0 {
		if err := e.doc.Apply(r.Update); err != nil {
			e.mu.Unlock()
			return err
		}
	}
	e.live = true
	e.moves++
	pending := slices.Clone(e.pending)
	e.mu.Unlock()
	for _, u := range pending {
		if err := e.send(ctx, conn, u); err != nil {
			return err
		}
	}
	return nil
}

// send sends one update and waits for its acknowledgement.
func (e *editor) send(ctx context.Context, conn *rtclient.Conn, u []byte) error {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := conn.Request(rctx, &realtime.Frame{Type: realtime.TypeCanvas, Channel: e.ch, Update: u})
	if err != nil {
		return err
	}
	e.mu.Lock()
	if i := slices.IndexFunc(e.pending, func(p []byte) bool { return string(p) == string(u) }); i >= 0 {
		e.pending = slices.Delete(e.pending, i, i+1)
	}
	e.mu.Unlock()
	return nil
}

// edit creates one sticky note named "<editor>-<k>", and returns once the
// creation is acknowledged (reconnecting as often as needed) or ctx ends.
func (e *editor) edit(ctx context.Context, k int) error {
	text := e.name + "-" + strconv.Itoa(k)
	e.mu.Lock()
	key, err := crdt.KeyBetween("", "")
	if err != nil {
		e.mu.Unlock()
		return err
	}
	_, u, err := e.doc.Create("sticky", crdt.Root, key, crdt.Props{"text": crdt.String(text), "x": crdt.Number(float64(k))})
	if err != nil {
		e.mu.Unlock()
		return err
	}
	e.pending = append(e.pending, u)
	e.sent = append(e.sent, text)
	e.mu.Unlock()
	for {
		e.mu.Lock()
		conn, live := e.conn, e.live
		still := slices.ContainsFunc(e.pending, func(p []byte) bool { return string(p) == string(u) })
		e.mu.Unlock()
		if !still {
			break
		}
		if conn == nil || !live || conn.Err() != nil {
			if err := e.connect(ctx); err != nil {
				return err
			}
			continue
		}
		if err := e.send(ctx, conn, u); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			e.mu.Lock()
			e.live = false // resubscribe, then resend
			e.mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}
	e.mu.Lock()
	e.acked = append(e.acked, text)
	e.mu.Unlock()
	return nil
}

// ensureLive resubscribes if the subscription was reset or lost.
func (e *editor) ensureLive(ctx context.Context) error {
	e.mu.Lock()
	ok := e.conn != nil && e.live && e.conn.Err() == nil
	e.mu.Unlock()
	if ok {
		return nil
	}
	return e.connect(ctx)
}

func (e *editor) close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.conn != nil {
		e.conn.CloseNow()
	}
}

// stickyTexts returns the texts of every live sticky note of doc.
func stickyTexts(t *testing.T, doc *crdt.Doc) []string {
	t.Helper()
	var out []string
	for _, id := range doc.Children(crdt.Root) {
		v, ok := doc.Get(id, "text")
		if ok {
			out = append(out, v.Str())
		}
	}
	slices.Sort(out)
	return out
}

// runEditors makes every editor create notes at about rate per second until
// ctx ends, then returns the first error other than ctx's end.
func runEditors(ctx context.Context, editors []*editor, rate float64) error {
	var wg sync.WaitGroup
	errs := make(chan error, len(editors))
	for _, e := range editors {
		wg.Go(func() {
			tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
			defer tick.Stop()
			for k := 0; ; k++ {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				if err := e.edit(ctx, k); err != nil {
					if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
						errs <- fmt.Errorf("%s: %w", e.name, err)
					}
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// settleEditors finishes what the editors have pending, then waits until
// every editor's document and the document every live node serves are the
// same, and checks that every acknowledged note is there exactly once and
// nothing else but notes that were sent.
func settleEditors(t *testing.T, c *cluster, editors []*editor, token, canvas string, live []*toneProc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, e := range editors {
		for {
			e.mu.Lock()
			pending := len(e.pending)
			e.mu.Unlock()
			require.NoError(t, e.ensureLive(ctx), e.name)
			if pending == 0 {
				break
			}
			require.NoError(t, e.connect(ctx), e.name) // resends
		}
	}
	var acked, sent []string
	for _, e := range editors {
		e.mu.Lock()
		acked = append(acked, e.acked...)
		sent = append(sent, e.sent...)
		e.mu.Unlock()
	}
	var docs [][]byte
	var versions []string // who holds what, logged if they never agree
	waitUntil(t, 30*time.Second, "every editor and node to converge", func() bool {
		docs, versions = docs[:0], versions[:0]
		for _, e := range editors {
			// A subscription reset meanwhile (lost publications) resyncs.
			require.NoError(t, e.ensureLive(ctx), e.name)
			e.mu.Lock()
			docs = append(docs, e.doc.Snapshot())
			versions = append(versions, fmt.Sprintf("editor %s (live %v, %d pending): %v", e.name, e.live, len(e.pending), e.doc.Version()))
			e.mu.Unlock()
		}
		for _, p := range live {
			d := loadCanvas(t, p.base, token, canvas)
			docs = append(docs, d.Snapshot())
			versions = append(versions, fmt.Sprintf("node %s: %v", p.name, d.Version()))
		}
		for _, d := range docs[1:] {
			if string(d) != string(docs[0]) {
				return false
			}
		}
		return true
	}, func() { t.Logf("versions at the deadline:\n%s", strings.Join(versions, "\n")) })
	doc, err := crdt.Load(1<<40+9, crdt.DefaultSchema(), docs[0])
	require.NoError(t, err)
	texts := stickyTexts(t, doc)
	assert.Len(t, slices.Compact(slices.Clone(texts)), len(texts), "a note appears twice")
	for _, a := range acked {
		_, found := slices.BinarySearch(texts, a)
		assert.True(t, found, "acknowledged note %s is missing", a)
	}
	slices.Sort(sent)
	for _, x := range texts {
		_, found := slices.BinarySearch(sent, x)
		assert.True(t, found, "note %s was never sent", x)
	}
	t.Logf("notes: %d acknowledged, %d sent, %d in the document", len(acked), len(sent), len(texts))
}

// waitUntil polls cond until it holds, or fails the test after timeout.
// Each explain runs before the failure is reported.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool, explain ...func()) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			for _, f := range explain {
				f()
			}
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// bases returns the base URLs of the nodes not in dead, in order.
func (c *cluster) bases(from int) func() []string {
	return func() []string {
		var out []string
		for i := range c.nodes {
			p := c.nodes[(from+i)%len(c.nodes)]
			select {
			case <-p.done:
				continue
			default:
			}
			out = append(out, p.base)
		}
		return out
	}
}

// TestClusterCanvasConverges: three nodes, editors on each of them, one
// canvas: every editor and every node ends with the same document holding
// every acknowledged note.
func TestClusterCanvasConverges(t *testing.T) {
	c := newCluster(t, "", "")
	c.start(3)
	ann, _, _, canvas := c.setup()
	var editors []*editor
	for i := range 6 {
		e := newEditor(t, "e"+strconv.Itoa(i), ann.token, canvas, uint64(1000+i), c.bases(i%3))
		t.Cleanup(e.close)
		require.NoError(t, e.connect(context.Background()))
		editors = append(editors, e)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	require.NoError(t, runEditors(ctx, editors, 20))
	settleEditors(t, c, editors, ann.token, canvas, c.nodes)
}

// follower follows a channel of server events across nodes: when its node
// goes away it subscribes on another with its last position, and records
// the name carried by each project.updated event.
type follower struct {
	t     *testing.T
	token string
	ch    string
	bases func() []string

	mu        sync.Mutex
	pos       *realtime.Position
	names     []string
	recovered int // resubscribes answered rec: true
}

func (f *follower) record(m *realtime.Frame) error {
	var ev struct {
		Type string         `msgpack:"type"`
		Data map[string]any `msgpack:"data"`
	}
	if err := msgpack.Unmarshal(m.Data, &ev); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pos != nil && m.Offset != f.pos.Offset+1 {
		return fmt.Errorf("offset %d after %d", m.Offset, f.pos.Offset)
	}
	f.pos.Offset = m.Offset
	if ev.Type == "project.updated" {
		name, _ := ev.Data["name"].(string)
		f.names = append(f.names, name)
	}
	return nil
}

// run follows until ctx ends; it returns the first error that is not a
// node going away.
func (f *follower) run(ctx context.Context, ready chan<- struct{}) error {
	for attempt := 0; ctx.Err() == nil; attempt++ {
		bases := f.bases()
		conn, err := rtclient.Dial(ctx, wsURL(bases[attempt%len(bases)]), f.token, rtclient.Options{})
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		f.mu.Lock()
		sub := &realtime.Frame{Type: realtime.TypeSubscribe, Channel: f.ch}
		if f.pos != nil {
			since := *f.pos
			sub.Since = &since
		}
		f.mu.Unlock()
		r, err := conn.Request(ctx, sub)
		if err != nil {
			conn.CloseNow()
			continue
		}
		if sub.Since != nil {
			if r.Recovered == nil || !*r.Recovered {
				conn.CloseNow()
				return fmt.Errorf("resubscribe with %v not recovered", *sub.Since)
			}
			f.mu.Lock()
			f.recovered++
			f.mu.Unlock()
			for i := range r.Pubs {
				if err := f.record(&r.Pubs[i]); err != nil {
					conn.CloseNow()
					return err
				}
			}
		} else {
			f.mu.Lock()
			f.pos = r.Pos
			f.mu.Unlock()
		}
		if ready != nil {
			close(ready)
			ready = nil
		}
		for {
			m, err := conn.Next(ctx)
			if err != nil {
				conn.CloseNow()
				break
			}
			if m.Type == realtime.TypeReset {
				conn.CloseNow()
				return fmt.Errorf("reset: %s", m.Message)
			}
			if m.Type != realtime.TypeMessage {
				continue
			}
			if err := f.record(m); err != nil {
				conn.CloseNow()
				return err
			}
		}
	}
	return nil
}

func (f *follower) got() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.names)
}

// startFollower runs a follower until the test ends and waits until it is
// subscribed.
func startFollower(t *testing.T, token, ch string, bases func() []string) (*follower, func() error) {
	f := &follower{t: t, token: token, ch: ch, bases: bases}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- f.run(ctx, ready) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("follower: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("follower did not subscribe")
	}
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { stop() })
	return f, stop
}

// TestClusterProjectEvents: changes made through every node reach the
// subscribers of every node, in commit order, with contiguous offsets.
func TestClusterProjectEvents(t *testing.T) {
	c := newCluster(t, "", "")
	c.start(3)
	ann, bob, project, _ := c.setup()
	var followers []*follower
	for i := 1; i < 3; i++ {
		f, _ := startFollower(t, bob.token, "project:"+project, c.bases(i))
		followers = append(followers, f)
	}
	var want []string
	for i := range 30 {
		name := "name " + strconv.Itoa(i)
		ann.base = c.nodes[i%3].base
		ann.patch("/projects/"+project, "cluster-"+strconv.Itoa(i), map[string]string{"name": name})
		want = append(want, name)
	}
	for i, f := range followers {
		waitUntil(t, 10*time.Second, "every event on follower "+strconv.Itoa(i), func() bool { return len(f.got()) >= len(want) })
		assert.Equal(t, want, f.got(), "follower %d", i)
	}

	// A notification caused on one node reaches its user on another.
	bobID := bob.do("GET", "/me", nil, 200)["id"].(string)
	ws := ann.do("GET", "/workspaces", nil, 200)["items"].([]any)[0].(map[string]any)["id"].(string)
	bob.base = c.nodes[2].base
	notes := subscribe(t, bob.base, bob.token, "notifications:"+bobID)
	ann.base = c.nodes[0].base
	ann.patch("/workspaces/"+ws+"/members/"+bobID, "cluster-role", map[string]string{"role": "admin"})
	for {
		_, ev := nextEvent(t, notes)
		if ev["type"] == "workspace.member.role_changed" {
			assert.Equal(t, "cluster-role", ev["correlation_id"])
			break
		}
	}
}

// TestClusterKillNode: under canvas and event load, one node of three is
// killed with SIGKILL. Its clients reconnect to the others and recover by
// offset (events) and version vector (canvas); no acknowledged note and no
// event is missing or repeated.
func TestClusterKillNode(t *testing.T) {
	c := newCluster(t, "", "", "--presence-ttl", "2s")
	c.start(3)
	ann, bob, project, canvas := c.setup()
	var editors []*editor
	for i := range 6 {
		e := newEditor(t, "e"+strconv.Itoa(i), ann.token, canvas, uint64(2000+i), c.bases(i%3))
		t.Cleanup(e.close)
		require.NoError(t, e.connect(context.Background()))
		editors = append(editors, e)
	}
	f, stopFollower := startFollower(t, bob.token, "project:"+project, c.bases(2))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var want []string
	patched := make(chan struct{})
	go func() {
		defer close(patched)
		writer := &client{t: t, base: c.nodes[0].base, token: ann.token}
		for i := 0; ctx.Err() == nil; i++ {
			name := "name " + strconv.Itoa(i)
			writer.patch("/projects/"+project, "kill-"+strconv.Itoa(i), map[string]string{"name": name})
			want = append(want, name)
			time.Sleep(30 * time.Millisecond)
		}
	}()
	time.AfterFunc(700*time.Millisecond, c.nodes[2].kill)
	require.NoError(t, runEditors(ctx, editors, 10))
	<-patched

	settleEditors(t, c, editors, ann.token, canvas, c.nodes[:2])
	waitUntil(t, 10*time.Second, "every event", func() bool { return len(f.got()) >= len(want) })
	require.NoError(t, stopFollower())
	assert.Equal(t, want, f.got(), "events, in order, each once")
	assert.Positive(t, f.recovered, "the follower recovered by offset on another node")
	for _, e := range []*editor{editors[2], editors[5]} { // on the killed node
		assert.Greater(t, e.moves, 1, "%s reconnected", e.name)
	}
}

// TestClusterPresenceOfDeadNode: the presence of a killed node's clients
// expires within the presence TTL.
func TestClusterPresenceOfDeadNode(t *testing.T) {
	const ttl = 1500 * time.Millisecond
	c := newCluster(t, "", "", "--presence-ttl", ttl.String())
	c.start(2)
	_, bob, project, _ := c.setup()
	ch := "project:" + project
	ctx := context.Background()
	join := func(base, name string) *rtclient.Conn {
		conn, err := rtclient.Dial(ctx, wsURL(base), bob.token, rtclient.Options{})
		require.NoError(t, err)
		t.Cleanup(func() { conn.CloseNow() })
		_, err = conn.Request(ctx, &realtime.Frame{Type: realtime.TypeSubscribe, Channel: ch})
		require.NoError(t, err)
		st, err := msgpack.Marshal(map[string]string{"name": name})
		require.NoError(t, err)
		_, err = conn.Request(ctx, &realtime.Frame{Type: realtime.TypePresence, Channel: ch, State: st})
		require.NoError(t, err)
		return conn
	}
	watcher := join(c.nodes[0].base, "watcher")
	doomed := join(c.nodes[1].base, "doomed")
	list := func() []string {
		r, err := watcher.Request(ctx, &realtime.Frame{Type: realtime.TypePresence, Channel: ch})
		require.NoError(t, err)
		var out []string
		for _, p := range r.Presence {
			out = append(out, p.Client)
		}
		return out
	}
	waitUntil(t, 5*time.Second, "both clients present", func() bool { return len(list()) == 2 })
	require.Contains(t, list(), doomed.Connected.Client)
	// Past a refresh or two, the entry is still there.
	time.Sleep(ttl)
	require.Contains(t, list(), doomed.Connected.Client, "presence refreshed by its live node")

	c.nodes[1].kill()
	killed := time.Now()
	waitUntil(t, ttl+3*time.Second, "the dead node's client to expire", func() bool {
		return !slices.Contains(list(), doomed.Connected.Client)
	})
	// Expired within the TTL, plus the polling and a loaded machine's delay
	// in answering the list.
	assert.LessOrEqual(t, time.Since(killed), ttl+time.Second, "expired within the TTL")
	assert.Equal(t, []string{watcher.Connected.Client}, list())
}

// loadAndOutage runs editors on every node of c for 2.5 s and calls
// outage after 0.7 s; then it checks that every acknowledged note is on every node
// and every editor, once.
func loadAndOutage(t *testing.T, c *cluster, outage func()) {
	ann, _, _, canvas := c.setup()
	var editors []*editor
	for i := range 4 {
		e := newEditor(t, "e"+strconv.Itoa(i), ann.token, canvas, uint64(3000+i), c.bases(i%len(c.nodes)))
		t.Cleanup(e.close)
		require.NoError(t, e.connect(context.Background()))
		editors = append(editors, e)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	done := make(chan struct{})
	time.AfterFunc(700*time.Millisecond, func() { defer close(done); outage() })
	require.NoError(t, runEditors(ctx, editors, 10))
	<-done
	for _, p := range c.nodes {
		c.waitReady(p)
	}
	settleEditors(t, c, editors, ann.token, canvas, c.nodes)
}

// TestClusterRedisRestart: Redis is killed under load and comes back empty.
// Meanwhile the nodes report not ready and keep serving their editors;
// afterwards everything converges and no acknowledged note is lost.
func TestClusterRedisRestart(t *testing.T) {
	srv := redistest.Start(t)
	c := newCluster(t, "", srv.URL())
	c.start(2)
	loadAndOutage(t, c, func() {
		srv.Kill()
		for _, p := range c.nodes {
			assert.Equal(t, 503, ready(p.base), "%s ready without Redis", p.name)
		}
		time.Sleep(500 * time.Millisecond)
		srv.Restart(t)
	})
}

// TestClusterPostgresRestart: PostgreSQL stops (immediately, as in a crash)
// under load and starts again. Writes fail meanwhile and are resent by the
// editors; nothing acknowledged is lost.
func TestClusterPostgresRestart(t *testing.T) {
	pg := pgtest.StartServer(t)
	c := newCluster(t, pg.AppURL(), "")
	c.start(2)
	loadAndOutage(t, c, func() {
		pg.Stop(t)
		for _, p := range c.nodes {
			assert.Equal(t, 503, ready(p.base), "%s ready without PostgreSQL", p.name)
		}
		time.Sleep(500 * time.Millisecond)
		pg.Start(t)
	})
}

// TestClusterLoadtestFanout: `tone loadtest fanout --subscriber-urls`
// publishes on one node and counts every delivery on the others.
func TestClusterLoadtestFanout(t *testing.T) {
	c := newCluster(t, "", "", strings.Fields(loadtest.RelaxedServerFlags(64))...)
	c.start(3)
	cfg := loadtest.DefaultConfig()
	cfg.Scenario, cfg.URL = "fanout", c.nodes[0].base
	cfg.SubscriberURLs = []string{c.nodes[1].base, c.nodes[2].base}
	cfg.Subscribers, cfg.Rate, cfg.Users = 20, 50, 5
	cfg.Duration, cfg.Drain = time.Second, time.Second
	sum, err := loadtest.Run(context.Background(), cfg)
	require.NoError(t, err)
	assert.Equal(t, int64(0), sum.Errors.Total, "%+v", sum.Errors)
	assert.Positive(t, sum.Acked)
	assert.Equal(t, 20*sum.Acked, sum.Deliveries, "every publication reached every subscriber on the other nodes")
	assert.Equal(t, sum.Expected, sum.Deliveries)
}

// logDashboard follows a deployment's log across nodes until its end
// frame: when its node goes away it subscribes on another with the seq of
// the last line it has.
type logDashboard struct {
	token, ch string
	bases     func() []string

	mu     sync.Mutex
	last   uint64
	lines  []string // "seq step:line text", in arrival order
	end    bool
	resubs int
	err    error
}

func (d *logDashboard) take(f *realtime.Frame) error {
	var m struct {
		K     string `msgpack:"k"`
		Lines []struct {
			_msgpack struct{} `msgpack:",as_array"`
			Seq      uint64
			Step     string
			Line     uint64
			Text     string
		} `msgpack:"l"`
	}
	if err := msgpack.Unmarshal(f.Data, &m); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if m.K == "end" {
		d.end = true
		return nil
	}
	for _, l := range m.Lines {
		if l.Seq != d.last+1 {
			return fmt.Errorf("line %d after %d", l.Seq, d.last)
		}
		d.last = l.Seq
		d.lines = append(d.lines, fmt.Sprintf("%d %s:%d %s", l.Seq, l.Step, l.Line, l.Text))
	}
	return nil
}

// run follows the log until its end or ctx's; subscribed is closed once
// the first subscription is in place.
func (d *logDashboard) run(ctx context.Context, subscribed chan<- struct{}) error {
	for attempt := 0; ctx.Err() == nil; attempt++ {
		bases := d.bases()
		conn, err := rtclient.Dial(ctx, wsURL(bases[attempt%len(bases)]), d.token, rtclient.Options{})
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		d.mu.Lock()
		since := realtime.Position{Offset: d.last, Epoch: realtime.LogEpoch}
		d.mu.Unlock()
		r, err := conn.Request(ctx, &realtime.Frame{Type: realtime.TypeSubscribe, Channel: d.ch, Since: &since})
		if err != nil {
			conn.CloseNow()
			continue
		}
		if subscribed != nil {
			close(subscribed)
			subscribed = nil
		}
		d.mu.Lock()
		d.resubs++
		d.mu.Unlock()
		if r.Recovered == nil || !*r.Recovered {
			conn.CloseNow()
			return fmt.Errorf("subscribe since %d: not recovered", since.Offset)
		}
		for i := range r.Pubs {
			if err := d.take(&r.Pubs[i]); err != nil {
				conn.CloseNow()
				return err
			}
		}
		for !d.ended() {
			f, err := conn.Next(ctx)
			if err != nil {
				break
			}
			if f.Type != realtime.TypeMessage {
				continue
			}
			if err := d.take(f); err != nil {
				conn.CloseNow()
				return err
			}
		}
		conn.CloseNow()
		if d.ended() {
			return nil
		}
	}
	return ctx.Err()
}

func (d *logDashboard) ended() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.end
}

// runDeployment makes a deployment as a runner on node base, starts
// dashboards (one per bases function), sends total lines over two steps in
// batches, calling midway after half of them, reports it ready, and
// checks that every dashboard got every line once, in order, then the end.
func runDeployment(t *testing.T, c *cluster, runnerBase string, dashboards []func() []string, midway func()) []*logDashboard {
	ann, _, project, _ := c.setup()
	ann.base = runnerBase
	tok := ann.do("POST", "/projects/"+project+"/deploy-tokens", map[string]string{"name": "ci"}, 201)["token"].(string)
	runner := &client{t: t, base: runnerBase, token: tok}
	dep := runner.do("POST", "/runner/deployments", map[string]string{"environment": "production"}, 201)["id"].(string)
	runner.do("POST", "/runner/deployments/"+dep+"/report", map[string]string{"state": "building"}, 200)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var ds []*logDashboard
	errs := make(chan error, len(dashboards))
	for _, bases := range dashboards {
		d := &logDashboard{token: ann.token, ch: "logs:" + dep, bases: bases}
		subscribed := make(chan struct{})
		go func() { errs <- d.run(ctx, subscribed) }()
		select {
		case <-subscribed:
		case <-time.After(10 * time.Second):
			t.Fatal("a dashboard did not subscribe")
		}
		ds = append(ds, d)
	}

	const total = 600
	var want []string
	next := map[string]int{"install": 1, "build": 1}
	for seq := 1; seq <= total; {
		step := []string{"install", "build"}[seq%3%2]
		n := min(1+seq%17, total-seq+1)
		var lines []string
		first := next[step]
		for range n {
			text := fmt.Sprintf("%s line %d", step, next[step])
			lines = append(lines, text)
			want = append(want, fmt.Sprintf("%d %s:%d %s", seq, step, next[step], text))
			next[step]++
			seq++
		}
		runner.do("POST", "/runner/deployments/"+dep+"/logs", map[string]any{"step": step, "first_line": first, "lines": lines}, 200)
		if midway != nil && seq > total/2 {
			midway()
			midway = nil
		}
		time.Sleep(2 * time.Millisecond)
	}
	runner.do("POST", "/runner/deployments/"+dep+"/report", map[string]string{"state": "deploying"}, 200)
	runner.do("POST", "/runner/deployments/"+dep+"/report", map[string]any{"state": "ready", "url": "https://site.example"}, 200)
	for range ds {
		select {
		case err := <-errs:
			require.NoError(t, err)
		case <-ctx.Done():
			t.Fatal("a dashboard never saw the end of the log")
		}
	}
	for i, d := range ds {
		assert.Equal(t, want, d.lines, "dashboard %d: every line once, in order", i)
	}
	return ds
}

// TestClusterLogTail: a deployment's log fed through node 1 reaches
// dashboards on nodes 2 and 3, every line in order.
func TestClusterLogTail(t *testing.T) {
	c := newCluster(t, "", "")
	c.start(3)
	runDeployment(t, c, c.nodes[0].base, []func() []string{c.bases(1), c.bases(2)}, nil)
}

// TestClusterLogTailKillNode: the node of a dashboard is killed mid-build;
// the dashboard resumes on another node from its last line and ends with
// every line once.
func TestClusterLogTailKillNode(t *testing.T) {
	c := newCluster(t, "", "")
	c.start(3)
	ds := runDeployment(t, c, c.nodes[0].base, []func() []string{c.bases(2)}, c.nodes[2].kill)
	assert.Greater(t, ds[0].resubs, 1, "the dashboard moved to another node")
}

// withoutRequests drops the access log lines from a node's log, so that
// what went wrong fits in a failed test's output.
func withoutRequests(log string) string {
	var b strings.Builder
	for line := range strings.Lines(log) {
		if !strings.Contains(line, `"msg":"request"`) {
			b.WriteString(line)
		}
	}
	return b.String()
}
