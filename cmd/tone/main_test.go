package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/crdt"
	"github.com/tone-ai/tone/domain"
	"github.com/tone-ai/tone/domain/postgres/pgtest"
	"github.com/tone-ai/tone/migrations"
	"github.com/tone-ai/tone/realtime"
	"github.com/tone-ai/tone/realtime/rtclient"
)

// syncBuffer is a bytes.Buffer safe for the server's logger and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServer runs `tone serve` with args on a free loopback port and
// returns its base URL and a function that stops it and returns its error.
func startServer(t *testing.T, args ...string) (string, func() error, *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	urls := make(chan string, 1)
	done := make(chan error, 1)
	logs := &syncBuffer{}
	args = append([]string{"--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--log-format", "json"}, args...)
	go func() { done <- serve(ctx, args, io.Discard, logs, func(u string) { urls <- u }) }()
	var stopped bool
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Second):
			return fmt.Errorf("server did not stop")
		}
	}
	t.Cleanup(func() { stop() })
	select {
	case u := <-urls:
		return u, stop, logs
	case err := <-done:
		t.Fatalf("serve: %v\n%s", err, logs)
	case <-time.After(30 * time.Second):
		t.Fatal("server did not start")
	}
	return "", nil, nil
}

// client talks JSON to a running server.
type client struct {
	t     *testing.T
	base  string
	token string
}

func (c *client) do(method, path string, body any, wantStatus int) map[string]any {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(c.t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+"/api/v1"+path, rd)
	require.NoError(c.t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	require.Equal(c.t, wantStatus, resp.StatusCode, "%s %s: %s", method, path, raw)
	out := map[string]any{}
	if len(raw) > 0 {
		require.NoError(c.t, json.Unmarshal(raw, &out), "%s", raw)
	}
	return out
}

// walkThrough is the README's curl session: register, log in, create a
// workspace and a project, add a member. It returns the workspace id.
func walkThrough(t *testing.T, base string) (ws string, ann *client) {
	anon := &client{t: t, base: base}
	anon.do("POST", "/auth/register", map[string]string{"email": "ann@example.com", "password": "correct horse battery"}, 202)
	anon.do("POST", "/auth/register", map[string]string{"email": "bob@example.com", "password": "another good one"}, 202)
	tok := anon.do("POST", "/auth/login", map[string]string{"email": "ann@example.com", "password": "correct horse battery"}, 200)
	ann = &client{t: t, base: base, token: tok["access_token"].(string)}
	ws = ann.do("POST", "/workspaces", map[string]string{"name": "Acme"}, 201)["id"].(string)
	ann.do("POST", "/workspaces/"+ws+"/projects", map[string]string{"name": "Website"}, 201)
	ann.do("POST", "/workspaces/"+ws+"/members", map[string]string{"email": "bob@example.com", "role": "editor"}, 201)
	members := ann.do("GET", "/workspaces/"+ws+"/members", nil, 200)["items"].([]any)
	require.Len(t, members, 2)
	return ws, ann
}

func TestServeInMemory(t *testing.T) {
	base, stop, logs := startServer(t)
	walkThrough(t, base)
	resp, err := http.Get(base + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)

	// A realtime connection shows on /metrics.
	tok := (&client{t: t, base: base}).do("POST", "/auth/login", map[string]string{"email": "bob@example.com", "password": "another good one"}, 200)["access_token"].(string)
	rc, err := rtclient.Dial(context.Background(), wsURL(base), tok, rtclient.Options{})
	require.NoError(t, err)
	defer rc.Close()
	resp, err = http.Get(base + "/metrics")
	require.NoError(t, err)
	metrics, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	assert.Contains(t, string(metrics), "tone_realtime_connections 1")
	assert.Contains(t, string(metrics), `tone_http_requests_total{method="POST",route="/api/v1/auth/login",status="200"}`)
	require.NoError(t, stop())
	out := logs.String()
	assert.Contains(t, out, "signing key is ephemeral")
	assert.Contains(t, out, "URL signing key is ephemeral")
	assert.Contains(t, out, "in-memory store")
	assert.Contains(t, out, `"msg":"stopped"`)
	assert.NotContains(t, out, "correct horse", "passwords never reach the log")
}

// TestServePostgresRestart: data written through one server process is
// there for the next, and tokens survive with a signing key file.
func TestServePostgresRestart(t *testing.T) {
	db := pgtest.NewEmptyDB(t)
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	pemBytes, err := domain.EncodePrivateKeyPEM(priv)
	require.NoError(t, err)
	keyFile := filepath.Join(t.TempDir(), "key.pem")
	require.NoError(t, os.WriteFile(keyFile, pemBytes, 0o600))
	urlKeyFile := filepath.Join(t.TempDir(), "url.key")
	require.NoError(t, os.WriteFile(urlKeyFile, bytes.Repeat([]byte("k"), 32), 0o600))
	args := []string{"--database-url", db.AppURL, "--migrate-database-url", db.OwnerURL, "--migrate", "--signing-key-file", keyFile,
		"--url-signing-key-file", urlKeyFile}

	base, stop, _ := startServer(t, args...)
	ws, ann := walkThrough(t, base)
	projects := ann.do("GET", "/workspaces/"+ws+"/projects", nil, 200)["items"].([]any)
	pid := projects[0].(map[string]any)["id"].(string)
	cid := ann.do("POST", "/projects/"+pid+"/canvases", map[string]string{"name": "Board"}, 201)["id"].(string)
	elem, want := editCanvas(t, base, ann.token, cid)
	version := ann.do("POST", "/canvases/"+cid+"/versions", map[string]string{"name": "first draft"}, 201)["id"].(string)
	require.NoError(t, stop())

	base, stop, logs := startServer(t, args...)
	ann.base = base
	got := ann.do("GET", "/workspaces/"+ws, nil, 200)
	assert.Equal(t, "Acme", got["name"])
	assert.Equal(t, "owner", got["role"])
	projects = ann.do("GET", "/workspaces/"+ws+"/projects", nil, 200)["items"].([]any)
	require.Len(t, projects, 1)
	doc := loadCanvas(t, base, ann.token, cid)
	assert.Equal(t, want.Snapshot(), doc.Snapshot(), "the canvas is intact after a restart")
	fill, _ := doc.Get(elem, "fill")
	assert.Equal(t, "#123456", fill.Str())
	ann.do("POST", "/canvases/"+cid+"/versions/"+version+"/restore", nil, 204)
	assert.Equal(t, want.Snapshot(), loadCanvas(t, base, ann.token, cid).Snapshot(), "restoring the saved version changes nothing")
	require.NoError(t, stop())
	assert.NotContains(t, logs.String(), "ephemeral")
}

func wsURL(base string) string { return "ws" + strings.TrimPrefix(base, "http") + "/api/v1/realtime" }

// editCanvas connects to the realtime endpoint, makes a few acknowledged
// edits to a canvas, and returns an element and the editor's document.
func editCanvas(t *testing.T, base, token, canvas string) (crdt.ID, *crdt.Doc) {
	t.Helper()
	ctx := context.Background()
	c, err := rtclient.Dial(ctx, wsURL(base), token, rtclient.Options{})
	require.NoError(t, err)
	defer c.Close()
	const replica = 1<<40 + 7
	r, err := c.Request(ctx, &realtime.Frame{Type: realtime.TypeSubscribe, Channel: "canvas:" + canvas, Replica: replica})
	require.NoError(t, err)
	doc, err := crdt.Load(replica, crdt.DefaultSchema(), r.Update)
	require.NoError(t, err)
	send := func(u []byte, err error) {
		require.NoError(t, err)
		_, err = c.Request(ctx, &realtime.Frame{Type: realtime.TypeCanvas, Channel: "canvas:" + canvas, Update: u})
		require.NoError(t, err)
	}
	key, err := crdt.KeyBetween("", "")
	require.NoError(t, err)
	id, u, err := doc.Create("sticky", crdt.Root, key, crdt.Props{"text": crdt.String("ship it")})
	send(u, err)
	for i := range 3 {
		send(doc.Set(id, crdt.Props{"x": crdt.Number(float64(i * 10))}))
	}
	send(doc.Set(id, crdt.Props{"fill": crdt.String("#123456")}))
	return id, doc
}

// loadCanvas returns the document a new subscriber gets.
func loadCanvas(t *testing.T, base, token, canvas string) *crdt.Doc {
	t.Helper()
	ctx := context.Background()
	c, err := rtclient.Dial(ctx, wsURL(base), token, rtclient.Options{})
	require.NoError(t, err)
	defer c.Close()
	r, err := c.Request(ctx, &realtime.Frame{Type: realtime.TypeSubscribe, Channel: "canvas:" + canvas})
	require.NoError(t, err)
	require.True(t, r.Snapshot)
	doc, err := crdt.Load(1<<40+8, crdt.DefaultSchema(), r.Update)
	require.NoError(t, err)
	return doc
}

func TestMigrateCommand(t *testing.T) {
	db := pgtest.NewEmptyDB(t)
	ctx := context.Background()
	var out bytes.Buffer
	version := func() (cur, latest int) {
		t.Helper()
		_, err := fmt.Sscanf(out.String(), "schema version %d (latest %d)", &cur, &latest)
		require.NoError(t, err, "%q", out.String())
		return cur, latest
	}
	require.NoError(t, run(ctx, []string{"migrate", "--database-url", db.OwnerURL, "up"}, &out, io.Discard))
	cur, latest := version()
	assert.Equal(t, latest, cur)
	assert.Positive(t, latest)
	out.Reset()
	require.NoError(t, run(ctx, []string{"migrate", "--database-url", db.OwnerURL, "status"}, &out, io.Discard))
	files, err := fs.Glob(migrations.FS, "*.sql")
	require.NoError(t, err)
	for _, f := range files {
		assert.Contains(t, out.String(), f)
	}
	assert.NotContains(t, out.String(), "pending")
	out.Reset()
	require.NoError(t, run(ctx, []string{"migrate", "--database-url", db.OwnerURL, "down"}, &out, io.Discard))
	cur, _ = version()
	assert.Equal(t, latest-1, cur)

	err = run(ctx, []string{"migrate", "sideways"}, io.Discard, io.Discard)
	assert.Error(t, err)
	err = run(ctx, []string{"migrate", "--database-url", db.OwnerURL, "sideways"}, io.Discard, io.Discard)
	assert.ErrorContains(t, err, "unknown action")
}

func TestEnvTwins(t *testing.T) {
	newFS := func() (*flag.FlagSet, *serveConfig) {
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var c serveConfig
		c.flags(fs)
		return fs, &c
	}
	t.Setenv("TONE_ADDR", "127.0.0.1:9999")
	t.Setenv("TONE_LOGIN_RATE_ACCOUNT", "3/10s")
	t.Setenv("TONE_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.0.0/16")
	fs, c := newFS()
	require.NoError(t, fs.Parse([]string{"--addr", "127.0.0.1:7777"}))
	require.NoError(t, applyEnv(fs))
	assert.Equal(t, "127.0.0.1:7777", c.Addr, "a flag beats its environment twin")
	assert.Equal(t, 3, c.LoginRateAccount.N)
	assert.Equal(t, 10*time.Second, c.LoginRateAccount.Window)
	assert.Equal(t, []string{"10.0.0.0/8", "192.168.0.0/16"}, c.TrustedProxies)

	t.Setenv("TONE_ACCESS_TOKEN_TTL", "fifteen minutes")
	fs, _ = newFS()
	require.NoError(t, fs.Parse(nil))
	assert.ErrorContains(t, applyEnv(fs), "TONE_ACCESS_TOKEN_TTL")
}

// TestREADMEConfiguration keeps the README's configuration table true: every
// flag of `tone serve` is listed with its environment twin and default.
func TestREADMEConfiguration(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var c serveConfig
	c.flags(fs)
	rows := map[string]string{}
	for _, line := range strings.Split(string(readme), "\n") {
		if strings.HasPrefix(line, "| `--") {
			name := strings.Trim(strings.Split(line, "|")[1], " `-")
			rows[name] = line
		}
	}
	fs.VisitAll(func(f *flag.Flag) {
		row, ok := rows[f.Name]
		if !assert.True(t, ok, "README lacks --%s", f.Name) {
			return
		}
		assert.Contains(t, row, "`"+envName(f.Name)+"`")
		def := f.DefValue
		if def == "" {
			def = "empty"
		} else {
			def = "`" + def + "`"
		}
		assert.Contains(t, row, def, "default of --%s", f.Name)
		delete(rows, f.Name)
	})
	assert.Empty(t, rows, "README documents flags that do not exist")
}

func TestVersionAndUsage(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"version"}, &out, io.Discard))
	assert.True(t, strings.HasPrefix(out.String(), "tone "))
	assert.Error(t, run(context.Background(), nil, io.Discard, io.Discard))
	assert.Error(t, run(context.Background(), []string{"frobnicate"}, io.Discard, io.Discard))
	var help bytes.Buffer
	err := run(context.Background(), []string{"serve", "--help"}, io.Discard, &help)
	assert.ErrorIs(t, err, flag.ErrHelp)
	assert.Contains(t, help.String(), "TONE_DATABASE_URL")
}
