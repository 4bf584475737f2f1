package http

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain"
	"github.com/tone-ai/tone/realtime"
	"github.com/tone-ai/tone/realtime/rtclient"
)

// newRealtimeTestAPI is newTestAPI with a realtime node wired the way
// cmd/tone wires it: canvas channels, the WebSocket endpoint mounted at
// /api/v1/realtime through ExtraRoutes, and the node as Config.Canvases for
// the version endpoints. The node is shut down when the test ends.
func newRealtimeTestAPI(t *testing.T, cfg Config, dcfg domain.Config) *testAPI {
	t.Helper()
	svc := newTestService(t, dcfg)
	broker := realtime.NewMemoryBroker(100, time.Minute)
	node := realtime.NewNode(realtime.Config{NodeID: "test", Logger: slog.New(slog.DiscardHandler)}, svc, broker, broker, nil)
	node.EnableCanvas(svc, realtime.CanvasConfig{})
	node.EnableLogs(svc, realtime.LogsConfig{})
	cfg.Canvases = node
	cfg.Logs = node
	cfg.ExtraRoutes = func(r chi.Router) { r.Get("/realtime", node.ServeHTTP) }
	a := startTestAPI(t, svc, cfg)
	a.node = node
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { node.Run(ctx); close(done) }()
	// Registered after the server's cleanup, so it runs first.
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		if err := node.Shutdown(sctx); err != nil {
			t.Logf("realtime node shutdown: %v", err)
		}
		cancel()
		<-done
	})
	return a
}

// realtimeURL is the ws:// address of the server's realtime endpoint.
func (a *testAPI) realtimeURL() string {
	return "ws" + strings.TrimPrefix(a.srv.URL, "http") + "/api/v1/realtime"
}

// dial opens a realtime connection as u; it is closed when the test ends.
func (a *testAPI) dial(u *testUser) *rtclient.Conn {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := rtclient.Dial(ctx, a.realtimeURL(), u.Access, rtclient.Options{})
	require.NoError(a.t, err)
	a.t.Cleanup(func() { c.CloseNow() })
	return c
}

// TestRealtimeHandshake checks what openapi.yaml says about GET
// /api/v1/realtime against the real node: the upgrade needs no bearer
// token (the first frame authenticates), and the handshake errors are the
// documented statuses, as text/plain.
func TestRealtimeHandshake(t *testing.T) {
	a := newRealtimeTestAPI(t, Config{}, testDomainConfig())
	u := a.signUp("rt")
	upgrade := []string{"Connection", "Upgrade", "Upgrade", "websocket", "Sec-WebSocket-Version", "13",
		"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Protocol", realtime.Subprotocol}

	t.Run("switching protocols", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ws, resp, err := websocket.Dial(ctx, a.realtimeURL(), &websocket.DialOptions{
			Subprotocols: []string{realtime.Subprotocol},
			HTTPHeader:   http.Header{RequestIDHeader: {"ws-handshake-1"}},
		})
		require.NoError(t, err)
		defer ws.CloseNow()
		assert.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
		assert.Equal(t, realtime.Subprotocol, resp.Header.Get("Sec-WebSocket-Protocol"))
		assert.Equal(t, "ws-handshake-1", resp.Header.Get(RequestIDHeader))
		// No body can be read from a 101; check its status and headers.
		checkDocumented(t, a.doc, a.api.router, "GET", "/api/v1/realtime", &response{Status: resp.StatusCode, Header: resp.Header})
	})
	t.Run("authentication is the first frame", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := rtclient.Dial(ctx, a.realtimeURL(), "not a token", rtclient.Options{})
		require.Error(t, err)
		assert.Equal(t, realtime.CloseUnauthenticated, websocket.CloseStatus(err), "%v", err)
		c := a.sub(t).dial(u)
		assert.Equal(t, realtime.TypeConnected, c.Connected.Type)
		assert.Equal(t, u.ID.String(), c.Connected.User)
	})
	for _, test := range []struct {
		name    string
		headers []string
		status  int
		header  string // a header the answer must carry
	}{
		{"plain GET", nil, http.StatusUpgradeRequired, "Upgrade"},
		{"old protocol version", append(append([]string{}, upgrade...), "Sec-WebSocket-Version", "8"), http.StatusBadRequest, "Sec-WebSocket-Version"},
		{"no key", append(append([]string{}, upgrade...), "Sec-WebSocket-Key", ""), http.StatusBadRequest, ""},
		{"foreign origin", append(append([]string{}, upgrade...), "Origin", "https://evil.example"), http.StatusForbidden, ""},
	} {
		t.Run(test.name, func(t *testing.T) {
			a := a.sub(t)
			resp := a.do("GET", "/api/v1/realtime", "", nil, test.headers...)
			require.Equal(t, test.status, resp.Status, resp.String())
			assert.Equal(t, "GET /api/v1/realtime", a.lastRoute())
			assert.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain"), resp.Header.Get("Content-Type"))
			if test.header != "" {
				assert.NotEmpty(t, resp.Header.Get(test.header))
			}
		})
	}
	t.Run("node shutting down", func(t *testing.T) {
		b := newRealtimeTestAPI(t, Config{}, testDomainConfig())
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, b.node.Shutdown(ctx))
		resp := b.do("GET", "/api/v1/realtime", "", nil, upgrade...)
		require.Equal(t, http.StatusServiceUnavailable, resp.Status, resp.String())
		assert.Equal(t, "1", resp.Header.Get("Retry-After"))
	})
	t.Run("other methods", func(t *testing.T) {
		resp := a.sub(t).do("POST", "/api/v1/realtime", "", nil)
		assert.Equal(t, http.StatusMethodNotAllowed, resp.Status, resp.String())
	})
}
