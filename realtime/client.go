package realtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/vmihailenco/msgpack/v5"
	"golang.org/x/time/rate"

	"github.com/tone-ai/tone/domain"
)

// Client is one WebSocket connection. Its reader runs on the HTTP handler's
// goroutine; a writer goroutine runs only while there is something to send,
// so an idle connection costs one goroutine.
type Client struct {
	node    *Node
	conn    *websocket.Conn
	id      string
	ip      string
	limiter *rate.Limiter

	// Set once by connect, then read-only except expires (refresh).
	user    uuid.UUID
	name    string
	expires atomic.Int64 // access token expiry, Unix seconds

	lastSeen atomic.Int64 // Unix nanoseconds of the last frame received

	mu       sync.Mutex
	subs     map[string]*subscription
	presence map[string]*presenceState

	// The outbound queue, bounded by bytes.
	qmu     sync.Mutex
	queue   [][]byte
	qbytes  int // bytes of the queued frames, but for a big one
	qbig    int // big frames queued (0 or 1)
	writing bool
	closed  bool

	closeOnce sync.Once
	done      chan struct{} // closed when the client starts closing
	closed2   chan struct{} // closed when the close handshake is over
}

// presenceState is the client's presence in one channel.
type presenceState struct {
	state    msgpack.RawMessage
	unstored bool      // changed since last written to the presence store
	dirty    bool      // changed since last sent
	lastSent time.Time // when a state frame last went out
	stored   time.Time // when it was last written to the presence store
}

func newClient(n *Node, conn *websocket.Conn, r *http.Request) *Client {
	c := &Client{
		node: n, conn: conn,
		id:       n.cfg.NodeID + "-" + strconv.FormatUint(n.nextClient.Add(1), 36),
		ip:       r.RemoteAddr,
		limiter:  rate.NewLimiter(rate.Limit(n.cfg.CommandRate), n.cfg.CommandBurst),
		subs:     map[string]*subscription{},
		presence: map[string]*presenceState{},
		done:     make(chan struct{}),
		closed2:  make(chan struct{}),
	}
	c.lastSeen.Store(time.Now().UnixNano())
	return c
}

// serve runs the connection: connect handshake, then commands until the
// connection ends.
func (c *Client) serve(ctx context.Context) {
	if !c.handshake(ctx) {
		c.cleanup()
		return
	}
	// Authenticating the connect frame grew this goroutine's stack, and an
	// idle connection keeps its reader's stack for hours: the commands are
	// read on a fresh goroutine, whose stack stays as small as reading
	// needs.
	c.node.wg.Add(1)
	go func() {
		defer c.node.wg.Done()
		defer c.cleanup()
		c.readCommands(ctx)
	}()
}

// readCommands reads and handles commands until the connection ends.
func (c *Client) readCommands(ctx context.Context) {
	for {
		typ, msg, err := c.conn.Read(ctx)
		if err != nil {
			c.readFailed(err)
			return
		}
		if typ != websocket.MessageBinary {
			c.close(CloseProtocolError, "binary msgpack messages only")
			return
		}
		c.touch(len(msg))
		frames, err := DecodeMessage(msg)
		if err != nil {
			c.close(CloseProtocolError, err.Error())
			return
		}
		for i := range frames {
			if !c.handle(ctx, &frames[i]) {
				return
			}
		}
	}
}

func (c *Client) touch(n int) {
	c.lastSeen.Store(time.Now().UnixNano())
	c.node.metrics.bytesIn.Add(float64(n))
}

func (c *Client) readFailed(err error) {
	switch {
	case errors.Is(err, websocket.ErrMessageTooBig):
		c.node.metrics.disconnects.WithLabelValues(strconv.Itoa(int(websocket.StatusMessageTooBig))).Inc()
	case websocket.CloseStatus(err) != -1:
		// The client closed the connection.
	default:
		c.node.log.Debug("realtime read", "client", c.id, "err", err)
	}
	c.close(websocket.StatusNormalClosure, "")
}

// handshake waits for the connect frame and authenticates it.
func (c *Client) handshake(ctx context.Context) bool {
	// A Read cancelled by its context drops the connection without a close
	// frame, so the timeout closes the connection properly instead.
	timer := time.AfterFunc(c.node.cfg.ConnectTimeout, func() { c.close(CloseConnectTimeout, "send connect first") })
	typ, msg, err := c.conn.Read(ctx)
	timer.Stop()
	if err != nil {
		c.readFailed(err)
		return false
	}
	c.touch(len(msg))
	frames, err := DecodeMessage(msg)
	if err != nil || typ != websocket.MessageBinary {
		c.close(CloseProtocolError, "first message must be a connect frame")
		return false
	}
	f := &frames[0]
	if f.Type != TypeConnect || f.ID == 0 {
		c.close(CloseProtocolError, "first frame must be connect with an id")
		return false
	}
	p, err := c.node.auth.Authenticate(f.Token)
	if err != nil {
		c.close(CloseUnauthenticated, domain.ErrorMessage(err))
		return false
	}
	c.user, c.name = p.UserID, strings.ToValidUTF8(truncate(f.Name, 64), "")
	c.expires.Store(p.ExpiresAt.Unix())
	if code, why := c.node.addClient(c); code != 0 {
		c.close(code, why)
		return false
	}
	c.send(&Frame{Type: TypeConnected, ID: f.ID, Client: c.id, Node: c.node.cfg.NodeID, User: c.user.String(),
		Ping: int(c.node.cfg.PingInterval / time.Second), Expires: p.ExpiresAt.Unix()})
	for i := range frames[1:] {
		if !c.handle(ctx, &frames[1+i]) {
			return false
		}
	}
	return true
}

// handle runs one frame and reports whether the connection goes on.
func (c *Client) handle(ctx context.Context, f *Frame) bool {
	c.node.metrics.framesIn.Inc()
	if f.Type == TypePong {
		return true
	}
	if f.ID == 0 {
		c.close(CloseProtocolError, fmt.Sprintf("%s frame without an id", truncate(f.Type, 16)))
		return false
	}
	if f.Channel != "" {
		f.Channel = canonical(f.Channel)
	}
	if !c.limiter.Allow() {
		c.replyError(f.ID, domain.Errorf(domain.ERateLimited, "Too many commands; slow down."))
		return true
	}
	var err error
	switch f.Type {
	case TypePing:
		c.send(&Frame{Type: TypeOK, ID: f.ID})
	case TypeRefresh:
		err = c.refresh(f)
	case TypeSubscribe:
		err = c.subscribe(ctx, f)
	case TypeUnsubscribe:
		err = c.unsubscribe(ctx, f)
	case TypePublish:
		err = c.publish(ctx, f)
	case TypePresence:
		err = c.presenceCmd(ctx, f)
	case TypeHistory:
		err = c.history(ctx, f)
	case TypeCanvas:
		err = c.canvasCmd(ctx, f)
	case TypeConnect:
		err = domain.Errorf(domain.EInvalid, "Already connected.")
	default:
		err = domain.Errorf(domain.EInvalid, "Unknown frame type %q.", truncate(f.Type, 16))
	}
	if err != nil {
		var ce closeErr
		if errors.As(err, &ce) {
			c.close(ce.code, ce.reason)
			return false
		}
		c.replyError(f.ID, err)
	}
	return true
}

// closeErr asks handle to close the connection.
type closeErr struct {
	code   CloseCode
	reason string
}

func (e closeErr) Error() string { return e.reason }

func (c *Client) replyError(id uint64, err error) {
	code := domain.ErrorCode(err)
	if code == domain.EInternal {
		c.node.log.Error("realtime command failed", "client", c.id, "name", c.name, "user", c.user, "err", err)
	}
	c.send(&Frame{Type: TypeError, ID: id, Code: code, Message: domain.ErrorMessage(err), Details: domain.ErrorDetails(err)})
}

func (c *Client) refresh(f *Frame) error {
	p, err := c.node.auth.Authenticate(f.Token)
	if err != nil {
		return err
	}
	if p.UserID != c.user {
		return closeErr{CloseForbidden, "refreshed token is for another user"}
	}
	c.expires.Store(p.ExpiresAt.Unix())
	c.send(&Frame{Type: TypeOK, ID: f.ID, Expires: p.ExpiresAt.Unix()})
	return nil
}

// checkExpiry closes the client once its access token has expired.
func (c *Client) checkExpiry(now time.Time) bool {
	if now.Unix() >= c.expires.Load() {
		c.close(CloseTokenExpired, "access token expired: refresh it and reconnect")
		return true
	}
	return false
}

// heartbeat sends a ping, and closes the client if it has been silent for
// longer than a ping interval and the pong timeout, or if its token expired.
func (c *Client) heartbeat(now time.Time) {
	if c.checkExpiry(now) {
		return
	}
	silent := now.Sub(time.Unix(0, c.lastSeen.Load()))
	if silent > c.node.cfg.PingInterval+c.node.cfg.PongTimeout {
		c.close(CloseNoPong, "no pong")
		return
	}
	c.send(&Frame{Type: TypePing})
}

// send encodes f and queues it.
func (c *Client) send(f *Frame) {
	b, err := EncodeFrame(f)
	if err != nil {
		c.node.log.Error("encode frame", "type", f.Type, "err", err)
		return
	}
	c.enqueue(b)
}

// enqueue queues an encoded frame without blocking. A client whose unsent
// bytes exceed the budget is disconnected with CloseSlowConsumer; it
// recovers by reconnecting and subscribing with since.
func (c *Client) enqueue(frame []byte) {
	c.qmu.Lock()
	if c.closed {
		c.qmu.Unlock()
		return
	}
	// A frame of more than half the budget (a large canvas snapshot) is let
	// through on its own account, one at a time; the budget applies to the
	// frames piling up around it.
	big := len(frame) > c.node.cfg.OutboundQueueBytes/2
	if big && c.qbig == 0 {
		c.qbig++
	} else if big || c.qbytes+len(frame) > c.node.cfg.OutboundQueueBytes {
		c.closed = true
		c.queue, c.qbytes = nil, 0
		c.qmu.Unlock()
		go c.close(CloseSlowConsumer, "too slow: reconnect and recover")
		return
	}
	c.queue = append(c.queue, frame)
	if !big {
		c.qbytes += len(frame)
	}
	start := !c.writing
	c.writing = true
	c.qmu.Unlock()
	if start {
		c.node.wg.Add(1)
		go c.writeLoop()
	}
}

// maxOutMessage caps how many bytes of frames one outbound message batches.
const maxOutMessage = 64 << 10

// writeLoop sends queued frames, batching those waiting into one message,
// and exits when the queue is empty.
func (c *Client) writeLoop() {
	defer c.node.wg.Done()
	var buf []byte
	for {
		c.qmu.Lock()
		if len(c.queue) == 0 || c.closed {
			c.writing = false
			c.qmu.Unlock()
			return
		}
		n, size := 0, 0
		for n < len(c.queue) && n < 1<<15 && (n == 0 || size+len(c.queue[n]) <= maxOutMessage) {
			f := c.queue[n]
			size += len(f)
			if len(f) > c.node.cfg.OutboundQueueBytes/2 {
				c.qbig--
			} else {
				c.qbytes -= len(f)
			}
			n++
		}
		batch := c.queue[:n:n]
		c.queue = c.queue[n:]
		c.qmu.Unlock()

		buf = appendBatch(buf[:0], batch)
		// No deadline per write: it would cost a timer and a context per
		// message, and a write stuck on a client that stopped reading ends
		// anyway when that client is closed, for going silent past the
		// ping interval or for the replies and deliveries piling up over
		// its queue budget behind the stuck write.
		err := c.conn.Write(context.Background(), websocket.MessageBinary, buf)
		if err != nil {
			c.qmu.Lock()
			c.writing = false
			c.qmu.Unlock()
			c.close(CloseSlowConsumer, "write failed")
			return
		}
		c.node.metrics.framesOut.Add(float64(n))
		c.node.metrics.bytesOut.Add(float64(len(buf)))
		if cap(buf) > maxOutMessage*2 {
			buf = nil
		}
	}
}

// close closes the connection with code, once. Frames already queued are
// sent first when the close is orderly (shutdown), within a short time.
func (c *Client) close(code CloseCode, reason string) {
	c.closeOnce.Do(func() {
		if code != websocket.StatusNormalClosure {
			c.node.metrics.disconnects.WithLabelValues(strconv.Itoa(int(code))).Inc()
		}
		if code == CloseShutdown {
			c.drain(2 * time.Second)
		}
		c.qmu.Lock()
		c.closed = true
		c.qmu.Unlock()
		if len(reason) > 120 {
			reason = reason[:120]
		}
		go func() {
			// Close waits for the peer's close frame; don't hold the caller.
			c.conn.Close(code, reason)
			close(c.closed2)
		}()
		close(c.done)
	})
}

// drain waits up to d for the outbound queue to empty.
func (c *Client) drain(d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		c.qmu.Lock()
		idle := len(c.queue) == 0 && !c.writing
		c.qmu.Unlock()
		if idle {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// cleanup removes every trace of the client once its reader stops.
func (c *Client) cleanup() {
	c.close(websocket.StatusNormalClosure, "")
	c.mu.Lock()
	chs := make([]string, 0, len(c.subs))
	for ch := range c.subs {
		chs = append(chs, ch)
	}
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, ch := range chs {
		c.dropSub(ctx, ch)
	}
	c.node.removeClient(c)
	select {
	case <-c.closed2:
	case <-time.After(6 * time.Second):
		c.conn.CloseNow()
	}
}

// unmarshal decodes msgpack b into v.
func unmarshal(b []byte, v any) error { return msgpack.Unmarshal(b, v) }

// marshal encodes v as msgpack.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	enc.SetSortMapKeys(true)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
