package realtime_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/tone-ai/tone/domain"
	"github.com/tone-ai/tone/domain/memory"
	"github.com/tone-ai/tone/realtime"
	"github.com/tone-ai/tone/realtime/rtclient"
)

// env is a realtime node over the in-memory store, served on loopback.
type env struct {
	t      *testing.T
	svc    *domain.Service
	broker *realtime.MemoryBroker
	node   *realtime.Node
	url    string // ws://.../api/v1/realtime
}

type envOption func(*realtime.Config, *domain.Config, *realtime.MemoryBroker)

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	rcfg := realtime.Config{NodeID: "n1", PingInterval: time.Second, PongTimeout: time.Second}
	dcfg := domain.Config{Password: domain.PasswordParams{Memory: 64, Time: 1, Threads: 1}}
	broker := realtime.NewMemoryBroker(100, time.Minute)
	for _, o := range opts {
		o(&rcfg, &dcfg, broker)
	}
	svc, err := domain.NewService(memory.New(), dcfg)
	require.NoError(t, err)
	node := realtime.NewNode(rcfg, svc, broker, broker, nil)
	node.Register("project", realtime.ProjectNamespace{Auth: svc})
	node.Register("flags", realtime.ServerOnlyProjectNamespace{Auth: svc})
	node.Register("notifications", realtime.UserNamespace{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { node.Run(ctx); close(done) }()
	mux := http.NewServeMux()
	mux.Handle("/api/v1/realtime", node)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		node.Shutdown(sctx)
		srv.Close()
		cancel()
		<-done
	})
	return &env{t: t, svc: svc, broker: broker, node: node, url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/api/v1/realtime"}
}

var ctx = context.Background()

// user registers and logs in a user, returning its id and access token.
func (e *env) user(name string) (uuid.UUID, string) {
	e.t.Helper()
	email := fmt.Sprintf("%s-%s@example.com", name, uuid.NewString()[:8])
	require.NoError(e.t, e.svc.Register(ctx, domain.Registration{Email: email, Password: "password-" + name}))
	tok, err := e.svc.Login(ctx, email, "password-"+name)
	require.NoError(e.t, err)
	return tok.UserID, tok.AccessToken
}

// project makes a workspace and project owned by owner, with the given
// extra members, and returns the project id.
func (e *env) project(owner uuid.UUID, members map[uuid.UUID]domain.Role) uuid.UUID {
	e.t.Helper()
	ws, err := e.svc.CreateWorkspace(ctx, owner, "W")
	require.NoError(e.t, err)
	name := "P"
	p, err := e.svc.CreateProject(ctx, owner, ws.ID, domain.ProjectInput{Name: &name})
	require.NoError(e.t, err)
	for uid, role := range members {
		u, err := e.svc.Me(ctx, uid)
		require.NoError(e.t, err)
		_, err = e.svc.AddProjectMember(ctx, owner, p.ID, u.Email, string(role))
		require.NoError(e.t, err)
	}
	return p.ID
}

func (e *env) dial(token string, opts ...func(*rtclient.Options)) *rtclient.Conn {
	e.t.Helper()
	var o rtclient.Options
	for _, f := range opts {
		f(&o)
	}
	c, err := rtclient.Dial(ctx, e.url, token, o)
	require.NoError(e.t, err)
	e.t.Cleanup(func() { c.CloseNow() })
	return c
}

func (e *env) publish(ch string, v any) realtime.Position {
	e.t.Helper()
	pos, err := e.node.Publish(ctx, ch, v)
	require.NoError(e.t, err)
	return pos
}

// next returns the next push of the given type, skipping others.
func next(t *testing.T, c *rtclient.Conn, typ string) *realtime.Frame {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		f, err := c.Next(tctx)
		require.NoError(t, err, "waiting for a %s frame", typ)
		if f.Type == typ {
			return f
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func decodeData(t *testing.T, f *realtime.Frame) any {
	t.Helper()
	var v any
	require.NoError(t, msgpack.Unmarshal(f.Data, &v))
	return v
}

func code(t *testing.T, err error) string {
	t.Helper()
	var e *rtclient.Error
	require.ErrorAs(t, err, &e)
	return e.Code
}

// waitClosed waits for the server to close c and returns the close code.
func waitClosed(t *testing.T, c *rtclient.Conn) websocket.StatusCode {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("connection not closed")
	}
	return c.CloseStatus()
}

func TestConnect(t *testing.T) {
	e := newEnv(t)
	uid, tok := e.user("ann")
	c := e.dial(tok)
	assert.Equal(t, realtime.TypeConnected, c.Connected.Type)
	assert.Equal(t, "n1", c.Connected.Node)
	assert.Equal(t, uid.String(), c.Connected.User)
	assert.Equal(t, 1, c.Connected.Ping)
	assert.NotEmpty(t, c.Connected.Client)
	_, err := c.Request(ctx, &realtime.Frame{Type: realtime.TypePing})
	require.NoError(t, err)

	_, err = rtclient.Dial(ctx, e.url, "not-a-token", rtclient.Options{})
	require.Error(t, err)
	assert.Equal(t, realtime.CloseUnauthenticated, websocket.CloseStatus(err))
}

// rawDial opens a WebSocket without the connect handshake.
func rawDial(t *testing.T, e *env, subprotocol string) *websocket.Conn {
	t.Helper()
	opts := &websocket.DialOptions{}
	if subprotocol != "" {
		opts.Subprotocols = []string{subprotocol}
	}
	ws, _, err := websocket.Dial(ctx, e.url, opts)
	require.NoError(t, err)
	ws.SetReadLimit(16 << 20)
	t.Cleanup(func() { ws.CloseNow() })
	return ws
}

func readClose(t *testing.T, ws *websocket.Conn) websocket.StatusCode {
	t.Helper()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		if _, _, err := ws.Read(rctx); err != nil {
			return websocket.CloseStatus(err)
		}
	}
}

func encode(t *testing.T, f *realtime.Frame) []byte {
	b, err := realtime.EncodeFrame(f)
	require.NoError(t, err)
	return b
}

// TestBadFrames: garbage, wrong types and protocol violations get an error
// frame or a final close code, never a panic or a hang.
func TestBadFrames(t *testing.T) {
	e := newEnv(t, func(c *realtime.Config, _ *domain.Config, _ *realtime.MemoryBroker) {
		c.ConnectTimeout = 300 * time.Millisecond
		c.MaxMessageBytes = 4096
	})
	_, tok := e.user("bad")
	connect := encode(t, &realtime.Frame{Type: realtime.TypeConnect, ID: 1, Token: tok})
	for _, test := range []struct {
		name string
		msgs [][]byte
		text bool
		want websocket.StatusCode
	}{
		{"garbage first", [][]byte{{0xc1, 0x00, 0xff}}, false, realtime.CloseProtocolError},
		{"not connect first", [][]byte{encode(t, &realtime.Frame{Type: realtime.TypePing, ID: 1})}, false, realtime.CloseProtocolError},
		{"connect without id", [][]byte{encode(t, &realtime.Frame{Type: realtime.TypeConnect, Token: tok})}, false, realtime.CloseProtocolError},
		{"garbage after connect", [][]byte{connect, []byte("\x92\x01")}, false, realtime.CloseProtocolError},
		{"text message", [][]byte{connect, []byte(`{"t":"ping"}`)}, true, realtime.CloseProtocolError},
		{"wrong field type", [][]byte{connect, {0x82, 0xa1, 't', 0xa4, 'p', 'i', 'n', 'g', 0xa2, 'i', 'd', 0xa1, 'x'}}, false, realtime.CloseProtocolError},
		{"unknown field", [][]byte{connect, {0x83, 0xa1, 't', 0xa4, 'p', 'i', 'n', 'g', 0xa2, 'i', 'd', 0x01, 0xa3, 'z', 'z', 'z', 0x01}}, false, realtime.CloseProtocolError},
		{"command without id", [][]byte{connect, encode(t, &realtime.Frame{Type: realtime.TypeSubscribe, Channel: "project:x"})}, false, realtime.CloseProtocolError},
		{"oversized", [][]byte{connect, encode(t, &realtime.Frame{Type: realtime.TypePing, ID: 2, Token: strings.Repeat("x", 5000)})}, false, websocket.StatusMessageTooBig},
		{"no connect in time", nil, false, realtime.CloseConnectTimeout},
	} {
		t.Run(test.name, func(t *testing.T) {
			ws := rawDial(t, e, realtime.Subprotocol)
			for i, m := range test.msgs {
				typ := websocket.MessageBinary
				if test.text && i > 0 {
					typ = websocket.MessageText
				}
				if err := ws.Write(ctx, typ, m); err != nil {
					break
				}
			}
			assert.Equal(t, test.want, readClose(t, ws))
		})
	}

	t.Run("no subprotocol", func(t *testing.T) {
		ws := rawDial(t, e, "")
		assert.Equal(t, realtime.CloseProtocolError, readClose(t, ws))
	})

	t.Run("errors that keep the connection", func(t *testing.T) {
		c := e.dial(tok)
		for _, f := range []*realtime.Frame{
			{Type: "frobnicate"},
			{Type: realtime.TypeConnect, Token: tok},
			{Type: realtime.TypeSubscribe, Channel: "nochannel"},
			{Type: realtime.TypeSubscribe, Channel: "weird:1"},
			{Type: realtime.TypeSubscribe, Channel: "project:not-a-uuid"},
			{Type: realtime.TypeUnsubscribe, Channel: "project:" + uuid.NewString()},
			{Type: realtime.TypePresence, Channel: "project:" + uuid.NewString()},
			{Type: realtime.TypePublish, Channel: "project:" + uuid.NewString()},
		} {
			_, err := c.Request(ctx, f)
			assert.Error(t, err, "%+v", f)
		}
		_, err := c.Request(ctx, &realtime.Frame{Type: realtime.TypePing})
		assert.NoError(t, err, "the connection survives")
	})
}

func TestBatchedFrames(t *testing.T) {
	e := newEnv(t)
	_, tok := e.user("batch")
	c := e.dial(tok)
	var frames []*realtime.Frame
	for range 5 {
		f := &realtime.Frame{Type: realtime.TypePing, ID: c.NewID()}
		frames = append(frames, f)
	}
	// Frames sent with Send (here as one batch message) get their replies
	// as pushes.
	require.NoError(t, c.Send(ctx, frames...))
	seen := map[uint64]bool{}
	for len(seen) < 5 {
		f := next(t, c, realtime.TypeOK)
		seen[f.ID] = true
	}
	for _, f := range frames {
		assert.True(t, seen[f.ID])
	}
}

func TestSubscribeAuthorisation(t *testing.T) {
	e := newEnv(t)
	owner, ownerTok := e.user("owner")
	viewer, viewerTok := e.user("viewer")
	_, strangerTok := e.user("stranger")
	pid := e.project(owner, map[uuid.UUID]domain.Role{viewer: domain.RoleViewer})

	for _, test := range []struct {
		name  string
		token string
		ch    string
		want  string // "" for success, else the error code
	}{
		{"owner project", ownerTok, "project:" + pid.String(), ""},
		{"viewer project", viewerTok, "project:" + pid.String(), ""},
		{"viewer flags", viewerTok, "flags:" + pid.String(), ""},
		{"stranger project", strangerTok, "project:" + pid.String(), domain.ENotFound},
		{"stranger flags", strangerTok, "flags:" + pid.String(), domain.ENotFound},
		{"own notifications", viewerTok, "notifications:" + viewer.String(), ""},
		{"someone else's notifications", viewerTok, "notifications:" + owner.String(), domain.ENotFound},
	} {
		t.Run(test.name, func(t *testing.T) {
			c := e.dial(test.token)
			_, err := c.Request(ctx, &realtime.Frame{Type: realtime.TypeSubscribe, Channel: test.ch})
			if test.want == "" {
				assert.NoError(t, err)
			} else {
				assert.Equal(t, test.want, code(t, err))
			}
		})
	}

	t.Run("publish", func(t *testing.T) {
		vc := e.dial(viewerTok)
		_, err := vc.Request(ctx, &realtime.Frame{Type: realtime.TypePublish, Channel: "project:" + pid.String(), Data: []byte{0x01}})
		assert.Equal(t, domain.EForbidden, code(t, err), "viewers do not publish")
		_, err = vc.Request(ctx, &realtime.Frame{Type: realtime.TypePublish, Channel: "flags:" + pid.String(), Data: []byte{0x01}})
		assert.Equal(t, domain.EForbidden, code(t, err), "flags are server-only")

		oc := e.dial(ownerTok)
		_, err = oc.Request(ctx, &realtime.Frame{Type: realtime.TypeSubscribe, Channel: "project:" + pid.String()})
		require.NoError(t, err)
		r, err := oc.Request(ctx, &realtime.Frame{Type: realtime.TypePublish, Channel: "project:" + pid.String(), Data: []byte{0xa2, 'h', 'i'}})
		require.NoError(t, err)
		assert.Equal(t, uint64(1), r.Pos.Offset)
		m := next(t, oc, realtime.TypeMessage)
		assert.Equal(t, "hi", decodeData(t, m))
		assert.Equal(t, owner.String(), m.User, "client publications name their user")
		_, err = oc.Request(ctx, &realtime.Frame{Type: realtime.TypePublish, Channel: "project:" + pid.String()})
		assert.Equal(t, domain.EInvalid, code(t, err), "no data")
	})
}

// TestRecovery: a client that reconnects with since gets exactly what it
// missed, then the live stream, with no gap and no duplicate.
func TestRecovery(t *testing.T) {
	e := newEnv(t)
	uid, tok := e.user("rec")
	ch := "notifications:" + uid.String()
	c := e.dial(tok)
	r, err := c.Request(ctx, &realtime.Frame{Type: realtime.TypeSubscribe, Channel: ch})
	require.NoError(t, err)
	assert.Nil(t, r.Recovered, "no since, no recovery")
	assert.Equal(t, uint64(0), r.Pos.Offset)
	epoch := r.Pos.Epoch

	for i := 1; i <= 3; i++ {
		e.publish(ch, i)
	}
	var last realtime.Position
	for i := 1; i <= 3; i++ {
		m := next(t, c, realtime.TypeMessage)
		assert.Equal(t, uint64(i), m.Offset)
		assert.EqualValues(t, i, decodeData(t, m))
		last = realtime.Position{Offset: m.Offset, Epoch: epoch}
	}
	c.CloseNow()

	for i := 4; i <= 8; i++ {
		e.publish(ch, i)
	}
	c2 := e.dial(tok)
	r, err = c2.Request(ctx, &realtime.Frame{Type: realtime.TypeSubscribe, Channel: ch, Since: &last})
	require.NoError(t, err)
	require.NotNil(t, r.Recovered)
	assert.True(t, *r.Recovered)
	var got []uint64
	for _, p := range r.Pubs {
		got = append(got, p.Offset)
	}
	assert.Equal(t, []uint64{4, 5, 6, 7, 8}, got, "exactly the missed messages")
	assert.Equal(t, uint64(8), r.Pos.Offset)

	e.publish(ch, 9)
	m := next(t, c2, realtime.TypeMessage)
	assert.Equal(t, uint64(9), m.Offset, "then live, with no gap or duplicate")

	// A position from another epoch, or too old for the history, cannot be
	// recovered: the client is told to reload.
	c3 := e.dial(tok)
	r, err = c3.Request(ctx, &realtime.Frame{Type: realtime.TypeSubscribe, Channel: ch, Since: &realtime.Position{Offset: 2, Epoch: "other"}})
	require.NoError(t, err)
	require.NotNil(t, r.Recovered)
	assert.False(t, *r.Recovered)
	assert.Empty(t, r.Pubs)
	assert.Equal(t, realtime.Position{Offset: 9, Epoch: epoch}, *r.Pos)
}

func TestRecoveryBeyondHistory(t *testing.T) {
	e := newEnv(t, func(_ *realtime.Config, _ *domain.Config, b *realtime.MemoryBroker) { b.HistorySize = 5 })
	uid, tok := e.user("old")
	ch := "notifications:" + uid.String()
	var first realtime.Position
	for i := 1; i <= 20; i++ {
		pos := e.publish(ch, i)
		if i == 1 {
			first = pos
		}
	}
	c := e.dial(tok)
	r, err := c.Request(ctx, &realtime.Frame{Type: realtime.TypeSubscribe, Channel: ch, Since: &first})
	require.NoError(t, err)
	assert.False(t, *r.Recovered)

	h, err := c.Request(ctx, &realtime.Frame{Type: realtime.TypeHistory, Channel: ch, Since: &realtime.Position{Offset: 16, Epoch: first.Epoch}, Limit: 2})
	require.NoError(t, err)
	require.Len(t, h.Pubs, 2)
	assert.Equal(t, uint64(17), h.Pubs[0].Offset)
	assert.True(t, h.More)
	_, err = c.Request(ctx, &realtime.Frame{Type: realtime.TypeHistory, Channel: ch, Since: &first})
	assert.Equal(t, domain.ENotFound, code(t, err))
}

// TestReplayRace publishes continuously while clients subscribe with since:
// every client must see a gapless, duplicate-free sequence.
func TestReplayRace(t *testing.T) {
	e := newEnv(t, func(_ *realtime.Config, _ *domain.Config, b *realtime.MemoryBroker) { b.HistorySize = 10000 })
	uid, tok := e.user("race")
	ch := "notifications:" + uid.String()
	first := e.publish(ch, 0)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			e.node.Publish(ctx, ch, i)
			if i%5 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	for range 5 {
		c := e.dial(tok)
		r, err := c.Request(ctx, &realtime.Frame{Type: realtime.TypeSubscribe, Channel: ch, Since: &first})
		require.NoError(t, err)
		require.True(t, *r.Recovered)
		want := first.Offset + 1
		for _, p := range r.Pubs {
			require.Equal(t, want, p.Offset)
			want++
		}
		for range 100 {
			m := next(t, c, realtime.TypeMessage)
			require.Equal(t, want, m.Offset)
			want++
		}
		c.CloseNow()
	}
	close(stop)
	wg.Wait()
}

// TestSlowClient: a client that stops reading is cut off with the slow
// consumer code, while the others keep receiving promptly.
func TestSlowClient(t *testing.T) {
	e := newEnv(t, func(c *realtime.Config, _ *domain.Config, _ *realtime.MemoryBroker) {
		c.OutboundQueueBytes = 64 << 10
		// The slow client never reads, so it never answers pings either:
		// pings must not close it before its queue does, however long a
		// loaded machine takes over the publications.
		c.PingInterval = time.Minute
	})
	uid, tok := e.user("slow")
	ch := "notifications:" + uid.String()

	// The slow client: connects and subscribes, then never reads again. Its
	// socket's receive buffer is small, so the kernel cannot absorb the
	// publications on its behalf and the server's queue for it fills.
	ws, _, err := websocket.Dial(ctx, e.url, &websocket.DialOptions{
		Subprotocols: []string{realtime.Subprotocol},
		HTTPClient:   &http.Client{Transport: &http.Transport{DialContext: smallReceiveBuffer}},
	})
	require.NoError(t, err)
	ws.SetReadLimit(16 << 20)
	t.Cleanup(func() { ws.CloseNow() })
	require.NoError(t, ws.Write(ctx, websocket.MessageBinary, encode(t, &realtime.Frame{Type: realtime.TypeConnect, ID: 1, Token: tok})))
	require.NoError(t, ws.Write(ctx, websocket.MessageBinary, encode(t, &realtime.Frame{Type: realtime.TypeSubscribe, ID: 2, Channel: ch})))

	fast := e.dial(tok)
	_, err = fast.Request(ctx, &realtime.Frame{Type: realtime.TypeSubscribe, Channel: ch})
	require.NoError(t, err)

	payload := strings.Repeat("x", 8<<10)
	var worst time.Duration
	for i := 1; i <= 400; i++ {
		start := time.Now()
		e.publish(ch, payload)
		m := next(t, fast, realtime.TypeMessage)
		require.Equal(t, uint64(i), m.Offset)
		worst = max(worst, time.Since(start))
	}
	assert.Less(t, worst, 2*time.Second, "the fast client is never held up")
	assert.Equal(t, realtime.CloseSlowConsumer, readClose(t, ws))
	assert.True(t, realtime.Reconnect(realtime.CloseSlowConsumer))
}

// smallReceiveBuffer dials TCP with a 4 KB receive buffer, set before the
// connection opens so that the window the peer sees stays small.
func smallReceiveBuffer(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4<<10)
		})
		return errors.Join(err, serr)
	}}
	return d.DialContext(ctx, network, addr)
}

func TestPresence(t *testing.T) {
	e := newEnv(t, func(c *realtime.Config, _ *domain.Config, _ *realtime.MemoryBroker) {
		c.PresenceInterval = 50 * time.Millisecond
	})
	a, aTok := e.user("a")
	b, bTok := e.user("b")
	pid := e.project(a, map[uuid.UUID]domain.Role{b: domain.RoleEditor})
	ch := "project:" + pid.String()
	ca, cb := e.dial(aTok), e.dial(bTok)
	for _, c := range []*rtclient.Conn{ca, cb} {
		_, err := c.Request(ctx, &realtime.Frame{Type: realtime.TypeSubscribe, Channel: ch})
		require.NoError(t, err)
	}
	state := func(x int) []byte {
		b, err := msgpack.Marshal(map[string]any{"cursor": []int{x, x}, "name": "A", "color": "#ff0000"})
		require.NoError(t, err)
		return b
	}
	_, err := ca.Request(ctx, &realtime.Frame{Type: realtime.TypePresence, Channel: ch, State: state(0)})
	require.NoError(t, err)
	j := next(t, cb, realtime.TypeJoin)
	assert.Equal(t, a.String(), j.User)
	assert.Equal(t, ca.Connected.Client, j.Client)

	list, err := cb.Request(ctx, &realtime.Frame{Type: realtime.TypePresence, Channel: ch})
	require.NoError(t, err)
	require.Len(t, list.Presence, 1)
	assert.Equal(t, a.String(), list.Presence[0].User)

	// 100 cursor moves in a burst are coalesced: at most about 20 per
	// second reach the others, and the last one always arrives.
	start := time.Now()
	for i := 1; i <= 100; i++ {
		require.NoError(t, ca.Send(ctx, &realtime.Frame{Type: realtime.TypePresence, ID: ca.NewID(), Channel: ch, State: state(i)}))
	}
	var states int
	deadline := time.After(3 * time.Second)
	for {
		select {
		case <-deadline:
			t.Fatalf("the last cursor never arrived; got %d states", states)
		default:
		}
		f := next(t, cb, realtime.TypeState)
		states++
		var st struct {
			Cursor []int `msgpack:"cursor"`
		}
		require.NoError(t, msgpack.Unmarshal(f.State, &st))
		if st.Cursor[0] == 100 {
			break
		}
	}
	elapsed := time.Since(start)
	assert.LessOrEqual(t, states, int(elapsed/(50*time.Millisecond))+2, "coalesced: %d states in %s", states, elapsed)
	assert.Less(t, states, 100)

	ca.Close()
	l := next(t, cb, realtime.TypeLeave)
	assert.Equal(t, ca.Connected.Client, l.Client)
	list, err = cb.Request(ctx, &realtime.Frame{Type: realtime.TypePresence, Channel: ch})
	require.NoError(t, err)
	assert.Empty(t, list.Presence)

	_, err = cb.Request(ctx, &realtime.Frame{Type: realtime.TypePresence, Channel: ch, State: must(msgpack.Marshal(strings.Repeat("x", realtime.MaxPresenceState)))})
	assert.Equal(t, domain.EInvalid, code(t, err))
}

func TestTokenRefreshAndExpiry(t *testing.T) {
	e := newEnv(t, func(_ *realtime.Config, d *domain.Config, _ *realtime.MemoryBroker) { d.AccessTTL = 3 * time.Second })
	_, tok := e.user("exp")
	_, otherTok := e.user("other")
	c := e.dial(tok)
	c2 := e.dial(otherTok)
	first := c.Connected.Expires

	// Refreshing with a newer token of the same user extends the connection.
	u, err := e.svc.Authenticate(tok)
	require.NoError(t, err)
	time.Sleep(1100 * time.Millisecond)
	me, err := e.svc.Me(ctx, u.UserID)
	require.NoError(t, err)
	tok2, err := e.svc.Login(ctx, me.Email, "password-exp")
	require.NoError(t, err)
	r, err := c.Request(ctx, &realtime.Frame{Type: realtime.TypeRefresh, Token: tok2.AccessToken})
	require.NoError(t, err)
	assert.Greater(t, r.Expires, first)
	_, err = c.Request(ctx, &realtime.Frame{Type: realtime.TypeRefresh, Token: "garbage"})
	assert.Equal(t, domain.EUnauthenticated, code(t, err))

	// A token of another user on a live connection is refused for good.
	_, err = c2.Request(ctx, &realtime.Frame{Type: realtime.TypeRefresh, Token: tok2.AccessToken})
	require.Error(t, err)
	assert.Equal(t, realtime.CloseForbidden, waitClosed(t, c2))

	// Without another refresh the connection ends when the token expires.
	assert.Equal(t, realtime.CloseTokenExpired, waitClosed(t, c))
}

func TestPingTimeout(t *testing.T) {
	e := newEnv(t)
	_, tok := e.user("quiet")
	c := e.dial(tok, func(o *rtclient.Options) { o.NoPong = true })
	assert.Equal(t, realtime.CloseNoPong, waitClosed(t, c))

	talker := e.dial(tok)
	time.Sleep(3 * time.Second)
	_, err := talker.Request(ctx, &realtime.Frame{Type: realtime.TypePing})
	assert.NoError(t, err, "a client that answers pings stays")
}

func TestLimits(t *testing.T) {
	e := newEnv(t, func(c *realtime.Config, _ *domain.Config, _ *realtime.MemoryBroker) {
		c.MaxSubscriptions = 2
		c.MaxConnectionsPerUser = 2
		c.CommandRate, c.CommandBurst = 5, 5
	})
	uid, tok := e.user("limits")
	owner, _ := e.user("owner")
	pid := e.project(owner, map[uuid.UUID]domain.Role{uid: domain.RoleViewer})
	c := e.dial(tok)
	_, err := c.Request(ctx, &realtime.Frame{Type: realtime.TypeSubscribe, Channel: "notifications:" + uid.String()})
	require.NoError(t, err)
	_, err = c.Request(ctx, &realtime.Frame{Type: realtime.TypeSubscribe, Channel: "project:" + pid.String()})
	require.NoError(t, err)
	_, err = c.Request(ctx, &realtime.Frame{Type: realtime.TypeSubscribe, Channel: "flags:" + pid.String()})
	assert.Equal(t, domain.EInvalid, code(t, err), "third subscription")

	var limited bool
	for range 10 {
		if _, err := c.Request(ctx, &realtime.Frame{Type: realtime.TypePing}); err != nil {
			assert.Equal(t, domain.ERateLimited, code(t, err))
			limited = true
		}
	}
	assert.True(t, limited, "commands over the rate are refused")

	e.dial(tok)
	_, err = rtclient.Dial(ctx, e.url, tok, rtclient.Options{})
	require.Error(t, err)
	assert.Equal(t, realtime.CloseTooManyConnections, websocket.CloseStatus(err))
}

func TestShutdown(t *testing.T) {
	e := newEnv(t)
	_, tok := e.user("bye")
	c := e.dial(tok)
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	require.NoError(t, e.node.Shutdown(sctx))
	assert.Equal(t, realtime.CloseShutdown, waitClosed(t, c))
	assert.True(t, realtime.Reconnect(realtime.CloseShutdown))
	_, err := rtclient.Dial(ctx, e.url, tok, rtclient.Options{})
	assert.Error(t, err, "no new connections while shutting down")
}
