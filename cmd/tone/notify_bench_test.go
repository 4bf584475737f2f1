package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/tone-ai/tone/domain"
	"github.com/tone-ai/tone/domain/postgres/pgtest"
	"github.com/tone-ai/tone/realtime"
	"github.com/tone-ai/tone/realtime/rtclient"
)

// benchEnvInt reads a positive integer from the environment, or def.
func benchEnvInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// benchJSON sends one JSON request and decodes the answer, failing b on an
// unexpected status.
func benchJSON(b testing.TB, method, url, token string, body any, want int) map[string]any {
	b.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		b.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		b.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, raw)
	}
	out := map[string]any{}
	if len(raw) > 0 {
		_ = json.Unmarshal(raw, &out)
	}
	return out
}

// BenchmarkNotifyFanout measures one deployment failure notifying every
// member of a project who opted in: TONE_BENCH_USERS workspace members
// (default 10,000), of whom TONE_BENCH_SUBSCRIBERS (default all) hold a
// WebSocket subscribed to their notifications channel. A `tone serve`
// process on PostgreSQL (in-process broker) serves them; this process is
// the runner and the subscribers. Each iteration creates a deployment and
// reports it failed: durable is the report's response time (its
// transaction stored one inbox row per member, or grew their digest, and
// one outbox event per member), delivered is from sending the report to
// each subscriber receiving its event. The first iteration inserts rows,
// later ones (within the digest window) update them.
//
//	go test ./cmd/tone -run '^$' -bench NotifyFanout -benchtime 3x
func BenchmarkNotifyFanout(b *testing.B) {
	users := benchEnvInt("TONE_BENCH_USERS", 10000)
	subs := min(benchEnvInt("TONE_BENCH_SUBSCRIBERS", users), users)
	ctx := context.Background()
	db := pgtest.NewDB(b)
	owner := db.OwnerPool(b)

	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	pemBytes, _ := domain.EncodePrivateKeyPEM(priv)
	dir := b.TempDir()
	keyFile := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(keyFile, pemBytes, 0o600); err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(dir, "tone")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	logs := &syncBuffer{}
	cmd := exec.Command(bin, "serve", "--addr", addr, "--database-url", db.AppURL, "--signing-key-file", keyFile,
		"--data-dir", dir, "--log-format", "json", "--log-level", "warn", "--rate-ip", "1000000/1m", "--rate-user", "1000000/1m")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if b.Failed() {
			b.Logf("server logs:\n%s", tail(logs.String(), 4000))
		}
	}()
	base := "http://" + addr
	for deadline := time.Now().Add(30 * time.Second); ready(base) != 200; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("server not ready:\n%s", logs)
		}
	}
	api := base + "/api/v1"

	// The owner over REST; the members straight into the database.
	benchJSON(b, "POST", api+"/auth/register", "", map[string]string{"email": "owner@example.com", "password": "correct horse battery"}, 202)
	ownerTok := benchJSON(b, "POST", api+"/auth/login", "", map[string]string{"email": "owner@example.com", "password": "correct horse battery"}, 200)["access_token"].(string)
	ws := benchJSON(b, "POST", api+"/workspaces", ownerTok, map[string]string{"name": "Big"}, 201)["id"].(string)
	project := benchJSON(b, "POST", api+"/workspaces/"+ws+"/projects", ownerTok, map[string]string{"name": "Site"}, 201)["id"].(string)
	runner := benchJSON(b, "POST", api+"/projects/"+project+"/deploy-tokens", ownerTok, map[string]string{"name": "ci"}, 201)["token"].(string)
	ids := make([]uuid.UUID, users)
	for i := range ids {
		ids[i] = uuid.Must(uuid.NewV7())
	}
	for _, q := range []string{
		`INSERT INTO users (id, email, password_hash, display_name, created_at, updated_at)
		 SELECT id, 'member-' || id || '@example.com', 'x', 'member', now(), now() FROM unnest($1::uuid[]) id`,
		`INSERT INTO workspace_members (workspace_id, user_id, role, created_at, updated_at)
		 SELECT $2, id, 'viewer', now(), now() FROM unnest($1::uuid[]) id`,
		`INSERT INTO notification_preferences (user_id, type, enabled, updated_at)
		 SELECT id, 'deployment.failed', true, now() FROM unnest($1::uuid[]) id`,
	} {
		args := []any{ids}
		if bytes.Contains([]byte(q), []byte("$2")) {
			args = append(args, ws)
		}
		if _, err := owner.Exec(ctx, q, args...); err != nil {
			b.Fatal(err)
		}
	}

	// The subscribers, with access tokens signed by the server's key.
	keys := domain.NewKeyring(priv)
	type sub struct {
		conn *rtclient.Conn
		got  atomic.Int64 // Unix nanoseconds of the last notification
	}
	ss := make([]*sub, subs)
	var wg sync.WaitGroup
	var dialErrs atomic.Int64
	sem := make(chan struct{}, 64)
	start := time.Now()
	for i := range ss {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s := &sub{}
			tok, _, err := keys.Sign(ids[i], uuid.New(), time.Now(), time.Hour)
			if err != nil {
				dialErrs.Add(1)
				return
			}
			s.conn, err = rtclient.Dial(ctx, wsURL(base), tok, rtclient.Options{OnPush: func(f *realtime.Frame) {
				if f.Type == realtime.TypeMessage {
					var ev struct {
						Type string `msgpack:"type"`
					}
					if msgpack.Unmarshal(f.Data, &ev) == nil && ev.Type == domain.NotifyDeploymentFailed {
						s.got.Store(time.Now().UnixNano())
					}
				}
			}})
			if err != nil {
				dialErrs.Add(1)
				return
			}
			if _, err := s.conn.Request(ctx, &realtime.Frame{Type: realtime.TypeSubscribe, Channel: domain.NotificationsChannel(ids[i])}); err != nil {
				dialErrs.Add(1)
				return
			}
			ss[i] = s
		}()
	}
	wg.Wait()
	if n := dialErrs.Load(); n > 0 {
		b.Fatalf("%d of %d subscribers failed to connect", n, subs)
	}
	defer func() {
		for _, s := range ss {
			s.conn.CloseNow()
		}
	}()
	b.Logf("%d members, %d subscribers connected in %s", users, subs, time.Since(start).Round(time.Millisecond))

	var durable, deliveredAll []time.Duration
	b.ResetTimer()
	for i := range b.N {
		d := benchJSON(b, "POST", api+"/runner/deployments", runner,
			map[string]string{"environment": "production", "git_ref": "main", "commit_sha": "abcdef1"}, 201)["id"].(string)
		for _, s := range ss {
			s.got.Store(0)
		}
		t0 := time.Now()
		benchJSON(b, "POST", api+"/runner/deployments/"+d+"/report", runner, map[string]string{"state": "failed", "reason": "tests failed"}, 200)
		durable = append(durable, time.Since(t0))
		lat := make([]time.Duration, 0, len(ss))
		deadline := time.Now().Add(2 * time.Minute)
		for len(lat) < len(ss) && time.Now().Before(deadline) {
			lat = lat[:0]
			for _, s := range ss {
				if at := s.got.Load(); at != 0 {
					lat = append(lat, time.Duration(at-t0.UnixNano()))
				}
			}
			if len(lat) < len(ss) {
				time.Sleep(5 * time.Millisecond)
			}
		}
		if len(lat) < len(ss) {
			b.Fatalf("iteration %d: %d of %d subscribers got the notification within 2 minutes", i, len(lat), len(ss))
		}
		slices.Sort(lat)
		deliveredAll = append(deliveredAll, lat[len(lat)-1])
		b.Logf("iteration %d: durable %s, delivered p50 %s p99 %s all %s", i, durable[i].Round(time.Millisecond),
			lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)*99/100].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
	}
	b.StopTimer()
	median := func(ds []time.Duration) float64 {
		ds = slices.Clone(ds)
		slices.Sort(ds)
		return float64(ds[len(ds)/2]) / float64(time.Millisecond)
	}
	b.ReportMetric(median(durable), "durable-ms")
	b.ReportMetric(median(deliveredAll), "delivered-all-ms")
	b.ReportMetric(float64(users), "members")
	b.ReportMetric(float64(subs), "subscribers")
	var n int
	if err := owner.QueryRow(ctx, `SELECT count(*) FROM notifications WHERE type = 'deployment.failed'`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	if n != users {
		b.Fatalf("%d inbox rows, want one per member (%d)", n, users)
	}
}
