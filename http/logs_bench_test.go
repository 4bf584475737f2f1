package http

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/tone-ai/tone/domain"
	"github.com/tone-ai/tone/domain/postgres"
	"github.com/tone-ai/tone/domain/postgres/pgtest"
	"github.com/tone-ai/tone/realtime"
	"github.com/tone-ai/tone/realtime/rtclient"
)

// benchViewer is one dashboard of BenchmarkLogTail100Viewers.
type benchViewer struct {
	mu  sync.Mutex
	top uint64          // the last seq received
	lat []time.Duration // one per frame received
}

// BenchmarkLogTail100Viewers measures a live tail end to end on loopback,
// everything in this process: a runner appends batches of 200 lines to
// one deployment over REST, one after the other, into PostgreSQL (a pool
// of postgres.DefaultMaxConns connections as tone_app), while 100
// dashboards watch logs:<deployment> over WebSocket. Each op is one batch.
// A frame's delivery latency runs from just before the runner's request
// to a dashboard decoding the frame; the percentiles are over every frame
// every dashboard received.
func BenchmarkLogTail100Viewers(b *testing.B) {
	const viewers, per = 100, 200
	ctx := context.Background()
	fail := func(err error) {
		b.Helper()
		if err != nil {
			b.Fatal(err)
		}
	}
	db := pgtest.NewDB(b)
	pool, err := postgres.Open(ctx, db.AppURL)
	fail(err)
	defer pool.Close()
	svc, err := domain.NewService(postgres.New(pool), testDomainConfig())
	fail(err)
	broker := realtime.NewMemoryBroker(100, time.Minute)
	node := realtime.NewNode(realtime.Config{NodeID: "bench", Logger: slog.New(slog.DiscardHandler)}, svc, broker, broker, nil)
	node.Register("project", realtime.ProjectNamespace{Auth: svc})
	node.Register("notifications", realtime.UserNamespace{})
	node.EnableLogs(svc, realtime.LogsConfig{})
	nctx, stop := context.WithCancel(ctx)
	defer stop()
	go node.Run(nctx)
	go svc.RunOutbox(nctx, nodePublisher{node})
	unlimited := Rate{N: 1 << 30, Window: time.Minute}
	api := NewServer(svc, Config{Logger: slog.New(slog.DiscardHandler), RequestsPerIP: unlimited, RequestsPerUser: unlimited,
		RequestsPerRunner: unlimited, Logs: node, ExtraRoutes: func(r chi.Router) { r.Get("/realtime", node.ServeHTTP) }})
	srv := httptest.NewServer(api)
	defer srv.Close()

	// A project, a deploy token, a deployment, and 4 viewers (a node
	// allows 64 connections per user).
	fail(svc.Register(ctx, domain.Registration{Email: "owner@example.com", Password: "bench password"}))
	owner, err := svc.Login(ctx, "owner@example.com", "bench password")
	fail(err)
	ws, err := svc.CreateWorkspace(ctx, owner.UserID, "Bench")
	fail(err)
	name := "Site"
	p, err := svc.CreateProject(ctx, owner.UserID, ws.ID, domain.ProjectInput{Name: &name})
	fail(err)
	_, secret, err := svc.CreateDeployToken(ctx, owner.UserID, p.ID, "ci")
	fail(err)
	runner, err := svc.AuthenticateRunner(ctx, secret)
	fail(err)
	d, err := svc.RunnerCreateDeployment(ctx, runner, domain.DeploymentInput{Environment: "production"})
	fail(err)
	var tokens []string
	for i := range 4 {
		email := fmt.Sprintf("viewer%d@example.com", i)
		fail(svc.Register(ctx, domain.Registration{Email: email, Password: "bench password"}))
		tok, err := svc.Login(ctx, email, "bench password")
		fail(err)
		_, err = svc.AddProjectMember(ctx, owner.UserID, p.ID, email, "viewer")
		fail(err)
		tokens = append(tokens, tok.AccessToken)
	}
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/api/v1/realtime"
	vs := make([]*benchViewer, viewers)
	for i := range vs {
		v := &benchViewer{}
		vs[i] = v
		c, err := rtclient.Dial(ctx, url, tokens[i%len(tokens)], rtclient.Options{OnPush: func(f *realtime.Frame) {
			now := time.Now()
			// Only the first line (its send time) and the frame's offset
			// are decoded, so that the dashboards, which share the
			// process and its two cores with the server, cost it less.
			var m struct {
				K     string               `msgpack:"k"`
				Lines []msgpack.RawMessage `msgpack:"l"`
			}
			var line struct {
				_msgpack struct{} `msgpack:",as_array"`
				Seq      uint64
				Step     string
				Line     uint64
				Text     string
			}
			if f.Type != realtime.TypeMessage || msgpack.Unmarshal(f.Data, &m) != nil || m.K != "lines" || len(m.Lines) == 0 ||
				msgpack.Unmarshal(m.Lines[0], &line) != nil {
				return
			}
			sent, _ := strconv.ParseInt(strings.Fields(line.Text)[0], 10, 64)
			v.mu.Lock()
			v.lat = append(v.lat, now.Sub(time.Unix(0, sent)))
			v.top = f.Offset
			v.mu.Unlock()
		}})
		fail(err)
		defer c.CloseNow()
		_, err = c.Request(ctx, &realtime.Frame{Type: realtime.TypeSubscribe, Channel: domain.LogsChannel(d.ID)})
		fail(err)
	}

	client := srv.Client()
	path := srv.URL + "/api/v1/runner/deployments/" + d.ID.String() + "/logs"
	lines := make([]string, per)
	next := 1
	var inRequests time.Duration // time spent in the runner's requests
	start := time.Now()
	for b.Loop() {
		sent := time.Now().UnixNano()
		for i := range lines {
			lines[i] = fmt.Sprintf("%d \x1b[36m[webpack]\x1b[0m chunk %06d emitted: vendors~main.js 148.2 KiB", sent, next+i)
		}
		body, _ := json.Marshal(map[string]any{"step": "build", "first_line": next, "lines": lines})
		req, _ := http.NewRequest("POST", path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+secret)
		req.Header.Set("Content-Type", "application/json")
		t0 := time.Now()
		resp, err := client.Do(req)
		fail(err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		inRequests += time.Since(t0)
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("append: %d", resp.StatusCode)
		}
		next += per
	}
	elapsed := time.Since(start)
	// Wait for every dashboard to have every line.
	total := uint64(next - 1)
	deadline := time.Now().Add(30 * time.Second)
	for _, v := range vs {
		for {
			v.mu.Lock()
			top := v.top
			v.mu.Unlock()
			if top == total {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("a dashboard stopped at line %d of %d", top, total)
			}
			time.Sleep(time.Millisecond)
		}
	}
	var all []time.Duration
	for _, v := range vs {
		all = append(all, v.lat...)
	}
	slices.Sort(all)
	q := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))]) / float64(time.Millisecond) }
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(total)/elapsed.Seconds(), "lines/s")
	b.ReportMetric(float64(inRequests)/float64(time.Millisecond)/float64(b.N), "append-ms")
}
