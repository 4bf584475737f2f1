package http

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/tone-ai/tone/domain"
	"github.com/tone-ai/tone/domain/memory"
	"github.com/tone-ai/tone/domain/postgres"
	"github.com/tone-ai/tone/domain/postgres/pgtest"
	"github.com/tone-ai/tone/realtime"
	"github.com/tone-ai/tone/realtime/rtclient"
)

// nodePublisher publishes outbox events on a node, as cmd/tone does.
type nodePublisher struct{ node *realtime.Node }

func (p nodePublisher) PublishEvent(ctx context.Context, ch string, e *domain.Event) error {
	_, err := p.node.Publish(ctx, ch, e)
	return err
}

// newLogsTestAPI serves store with a realtime node and the outbox relay,
// as tone serve does.
func newLogsTestAPI(t *testing.T, store domain.Store, lcfg realtime.LogsConfig, wrap func(LogBroadcaster) LogBroadcaster) *testAPI {
	t.Helper()
	dcfg := testDomainConfig()
	svc, err := domain.NewService(store, dcfg)
	require.NoError(t, err)
	broker := realtime.NewMemoryBroker(100, time.Minute)
	node := realtime.NewNode(realtime.Config{NodeID: "test", Logger: slog.New(slog.DiscardHandler)}, svc, broker, broker, nil)
	node.Register("project", realtime.ProjectNamespace{Auth: svc})
	node.Register("notifications", realtime.UserNamespace{})
	node.EnableLogs(svc, lcfg)
	var logs LogBroadcaster = node
	if wrap != nil {
		logs = wrap(node)
	}
	a := startTestAPI(t, svc, Config{Logs: logs, ExtraRoutes: func(r chi.Router) { r.Get("/realtime", node.ServeHTTP) }})
	a.node = node
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); node.Run(ctx) }()
	go func() { defer wg.Done(); svc.RunOutbox(ctx, nodePublisher{node}) }()
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		node.Shutdown(sctx)
		cancel()
		wg.Wait()
	})
	return a
}

// lossy drops every third batch and holds every other one back until the
// next, so that batches arrive late, out of order or never.
type lossy struct {
	to   LogBroadcaster
	mu   sync.Mutex
	n    int
	held []domain.LogLine
}

func (l *lossy) BroadcastLogs(ctx context.Context, id uuid.UUID, lines []domain.LogLine) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n++
	switch {
	case l.n%3 == 0:
		return
	case l.n%2 == 0:
		l.held = lines
		return
	}
	l.to.BroadcastLogs(ctx, id, lines)
	if l.held != nil {
		l.to.BroadcastLogs(ctx, id, l.held)
		l.held = nil
	}
}

// logMsg is the d of a msg frame on a logs channel.
type logMsg struct {
	K     string `msgpack:"k"`
	Lines []struct {
		_msgpack struct{} `msgpack:",as_array"`
		Seq      uint64
		Step     string
		Line     uint64
		Text     string
	} `msgpack:"l"`
	State   string `msgpack:"state"`
	URL     string `msgpack:"url"`
	LastSeq uint64 `msgpack:"last_seq"`
}

// tailResult is what a dashboard saw: every line as "seq step:line text",
// in arrival order, and the end frame.
type tailResult struct {
	lines []string
	end   *logMsg
	rec   *bool
}

// watch subscribes to a deployment's log (from after since, or from the
// start when since is nil), closes subscribed (if not nil) once the
// subscription is confirmed, and collects frames until the end frame.
func watch(t *testing.T, c *rtclient.Conn, deployment uuid.UUID, since *uint64, subscribed chan<- struct{}) *tailResult {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ch := domain.LogsChannel(deployment)
	sub := &realtime.Frame{Type: realtime.TypeSubscribe, Channel: ch}
	if since != nil {
		sub.Since = &realtime.Position{Offset: *since, Epoch: realtime.LogEpoch}
	}
	reply, err := c.Request(ctx, sub)
	require.NoError(t, err)
	if subscribed != nil {
		close(subscribed)
	}
	res := &tailResult{rec: reply.Recovered}
	var last uint64
	take := func(f *realtime.Frame) bool {
		require.Equal(t, realtime.TypeMessage, f.Type, "%+v", f)
		require.Equal(t, ch, f.Channel)
		var m logMsg
		require.NoError(t, msgpack.Unmarshal(f.Data, &m))
		if m.K == "end" {
			res.end = &m
			assert.Equal(t, m.LastSeq, f.Offset)
			return true
		}
		require.Equal(t, "lines", m.K)
		for _, l := range m.Lines {
			res.lines = append(res.lines, fmt.Sprintf("%d %s:%d %s", l.Seq, l.Step, l.Line, l.Text))
			last = l.Seq
		}
		assert.Equal(t, last, f.Offset, "a frame's offset is the seq of its last line")
		return false
	}
	for i := range reply.Pubs {
		if take(&reply.Pubs[i]) {
			return res
		}
	}
	for {
		f, err := c.Next(ctx)
		require.NoError(t, err)
		if f.Type == realtime.TypeJoin || f.Type == realtime.TypeLeave || f.Type == realtime.TypeState {
			continue
		}
		if take(f) {
			return res
		}
	}
}

// TestLogTail runs a build whose runner sends batches of two steps, some
// twice, some out of order, while dashboards watch over real WebSocket
// connections: one from before the first line, one joining mid-build, one
// resuming from an offset mid-build, one after the build. Each must see
// exactly the lines after where it started, in order, then the end frame.
func TestLogTail(t *testing.T) {
	for _, s := range []struct {
		name  string
		store func(t *testing.T) domain.Store
		wrap  func(LogBroadcaster) LogBroadcaster
	}{
		{"memory", func(*testing.T) domain.Store { return memory.New() }, nil},
		{"postgres", func(t *testing.T) domain.Store { return postgres.New(pgtest.New(t)) }, nil},
		// Between nodes, batches travel by pub/sub: at most once and in any
		// order. Tails fill what is lost from the store.
		{"lossy broadcast", func(*testing.T) domain.Store { return memory.New() }, func(b LogBroadcaster) LogBroadcaster { return &lossy{to: b} }},
		{"lossy broadcast on postgres", func(t *testing.T) domain.Store { return postgres.New(pgtest.New(t)) }, func(b LogBroadcaster) LogBroadcaster { return &lossy{to: b} }},
	} {
		t.Run(s.name, func(t *testing.T) {
			a := newLogsTestAPI(t, s.store(t), realtime.LogsConfig{FrameLines: 50}, s.wrap)
			owner, viewer := a.signUp("owner"), a.signUp("viewer")
			ws := a.createWorkspace(owner, "Acme")
			project := a.createProject(owner, ws, "Site")
			a.addMember(owner, "projects", project, viewer, domain.RoleViewer)
			var tok deployTokenJSON
			a.do("POST", "/api/v1/projects/"+project.String()+"/deploy-tokens", owner.Access, map[string]string{"name": "ci"}).decode(t, &tok)
			var d deploymentJSON
			a.do("POST", "/api/v1/runner/deployments", tok.Token, map[string]string{"environment": "production"}).decode(t, &d)
			run := "/api/v1/runner/deployments/" + d.ID.String()
			require.Equal(t, http.StatusOK, a.do("POST", run+"/report", tok.Token, map[string]string{"state": "building"}).Status)

			// The lines each step will send, and the log the server must keep.
			const total = 1200
			steps := map[string][]string{}
			var want []string
			rng := rand.New(rand.NewPCG(1, 2))
			type batch struct {
				step  string
				first int
				lines []string
			}
			var plan []batch
			next := map[string]int{"install": 1, "build": 1}
			for seq := 1; seq <= total; {
				step := []string{"install", "build"}[rng.IntN(2)]
				n := min(1+rng.IntN(60), total-seq+1)
				b := batch{step: step, first: next[step]}
				for range n {
					text := fmt.Sprintf("\x1b[3%dm%s line %d\x1b[0m", seq%8, step, next[step])
					b.lines = append(b.lines, text)
					steps[step] = append(steps[step], text)
					want = append(want, fmt.Sprintf("%d %s:%d %s", seq, step, next[step], text))
					next[step]++
					seq++
				}
				plan = append(plan, b)
			}

			before := a.dial(viewer)
			results := make(chan *tailResult, 4)
			subscribed := make(chan struct{})
			go func() { results <- watch(t, before, d.ID, nil, subscribed) }()
			<-subscribed

			send := func(b batch) {
				resp := a.do("POST", run+"/logs", tok.Token, map[string]any{"step": b.step, "first_line": b.first, "lines": b.lines})
				require.Equal(t, http.StatusOK, resp.Status, resp.String())
			}
			var sent int
			var midSince uint64
			for i, b := range plan {
				if i > 0 && rng.IntN(4) == 0 {
					send(plan[i-1]) // a resend
				}
				if i+1 < len(plan) && plan[i+1].step == b.step && rng.IntN(5) == 0 {
					// The next batch of the step first: a gap, answered 416.
					nb := plan[i+1]
					resp := a.do("POST", run+"/logs", tok.Token, map[string]any{"step": nb.step, "first_line": nb.first, "lines": nb.lines})
					require.Equal(t, http.StatusRequestedRangeNotSatisfiable, resp.Status, resp.String())
					assert.Equal(t, float64(b.first), resp.errDetails()["expected_line"])
				}
				send(b)
				sent += len(b.lines)
				if i == len(plan)/3 {
					go func() { results <- watch(t, a.dial(viewer), d.ID, nil, nil) }()
				}
				if i == len(plan)/2 {
					midSince = uint64(sent / 2)
					go func() { results <- watch(t, a.dial(viewer), d.ID, &midSince, nil) }()
				}
			}
			require.Equal(t, http.StatusOK, a.do("POST", run+"/report", tok.Token, map[string]string{"state": "deploying"}).Status)
			require.Equal(t, http.StatusOK, a.do("POST", run+"/report", tok.Token, map[string]any{"state": "ready", "url": "https://site.example"}).Status)

			var got []*tailResult
			for range 3 {
				select {
				case r := <-results:
					got = append(got, r)
				case <-time.After(60 * time.Second):
					t.Fatal("a dashboard never saw the end of the log")
				}
			}
			got = append(got, watch(t, a.dial(viewer), d.ID, nil, nil)) // after the build
			var fromStart, fromMid int
			for _, r := range got {
				require.NotNil(t, r.end)
				assert.Equal(t, "ready", r.end.State)
				assert.Equal(t, "https://site.example", r.end.URL)
				assert.Equal(t, uint64(total), r.end.LastSeq)
				switch len(r.lines) {
				case total:
					fromStart++
					assert.Equal(t, want, r.lines, "exactly lines 1..N, in order")
				default:
					fromMid++
					assert.Equal(t, want[midSince:], r.lines, "exactly the lines after since, in order")
					assert.Equal(t, true, *r.rec)
				}
			}
			assert.Equal(t, 3, fromStart)
			assert.Equal(t, 1, fromMid)
		})
	}
}
