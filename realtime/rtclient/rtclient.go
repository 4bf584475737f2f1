// Package rtclient is a Go client of Tone's realtime protocol (tone.v1): it
// dials /api/v1/realtime, sends connect, matches replies to requests by id,
// answers server pings, and hands every push (msg, join, leave, state,
// reset) to the caller. Tests and the load generator use it; it is also a
// compact reference for client writers beside docs/protocol.md.
//
// A Conn is safe for concurrent use.
package rtclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/coder/websocket"

	"github.com/tone-ai/tone/realtime"
)

// Error is an err frame answering a request.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// Options tune a connection.
type Options struct {
	// OnPush, if set, receives every push frame on the reader goroutine
	// (it must not block for long); otherwise pushes queue for Next.
	OnPush func(*realtime.Frame)
	// NoPong stops the client from answering server pings (to test timeouts).
	NoPong bool
	// Name is sent in the connect frame.
	Name string
	// HTTPClient dials the WebSocket (nil: http.DefaultClient).
	HTTPClient *http.Client
	// Header is sent with the upgrade request.
	Header http.Header
}

// Conn is a connected client.
type Conn struct {
	ws        *websocket.Conn
	opts      Options
	nextID    atomic.Uint64
	mu        sync.Mutex
	pending   map[uint64]chan *realtime.Frame
	pushes    chan *realtime.Frame
	done      chan struct{}
	err       error
	Connected *realtime.Frame // the connected frame
}

// Dial connects to url (ws://host/api/v1/realtime) and authenticates with
// token. It returns the close error if the server refuses the connection.
func Dial(ctx context.Context, url, token string, opts Options) (*Conn, error) {
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		Subprotocols: []string{realtime.Subprotocol},
		HTTPClient:   opts.HTTPClient,
		HTTPHeader:   opts.Header,
	})
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(16 << 20)
	c := &Conn{ws: ws, opts: opts, pending: map[uint64]chan *realtime.Frame{}, done: make(chan struct{})}
	if opts.OnPush == nil {
		c.pushes = make(chan *realtime.Frame, 4096)
	}
	go c.read()
	reply, err := c.Request(ctx, &realtime.Frame{Type: realtime.TypeConnect, Token: token, Name: opts.Name})
	if err != nil {
		c.ws.CloseNow()
		return nil, err
	}
	c.Connected = reply
	return c, nil
}

func (c *Conn) read() {
	defer close(c.done)
	ctx := context.Background()
	for {
		_, msg, err := c.ws.Read(ctx)
		if err != nil {
			c.mu.Lock()
			c.err = err
			for id, ch := range c.pending {
				close(ch)
				delete(c.pending, id)
			}
			c.mu.Unlock()
			if c.pushes != nil {
				close(c.pushes)
			}
			return
		}
		frames, err := realtime.DecodeServerMessage(msg)
		if err != nil {
			c.ws.Close(realtime.CloseProtocolError, "bad message from server")
			continue
		}
		for i := range frames {
			f := &frames[i]
			switch {
			case f.Type == realtime.TypePing:
				if !c.opts.NoPong {
					c.Send(ctx, &realtime.Frame{Type: realtime.TypePong})
				}
			case f.ID != 0 && (f.Type == realtime.TypeOK || f.Type == realtime.TypeError || f.Type == realtime.TypeConnected):
				c.mu.Lock()
				ch := c.pending[f.ID]
				delete(c.pending, f.ID)
				c.mu.Unlock()
				switch {
				case ch != nil:
					ch <- f
				case c.opts.OnPush != nil:
					c.opts.OnPush(f) // a reply to a frame sent with Send
				default:
					c.pushes <- f
				}
			case c.opts.OnPush != nil:
				c.opts.OnPush(f)
			default:
				c.pushes <- f
			}
		}
	}
}

// Send sends frames as one message (a batch when there are several),
// without waiting for replies. Frames that need ids must have them.
func (c *Conn) Send(ctx context.Context, frames ...*realtime.Frame) error {
	var msg []byte
	if len(frames) > 1 {
		msg = append(msg, 0xdc, byte(len(frames)>>8), byte(len(frames))) // array 16
	}
	for _, f := range frames {
		b, err := realtime.EncodeFrame(f)
		if err != nil {
			return err
		}
		msg = append(msg, b...)
	}
	return c.ws.Write(ctx, websocket.MessageBinary, msg)
}

// NewID returns a fresh request id.
func (c *Conn) NewID() uint64 { return c.nextID.Add(1) }

// Request sends f with a new id and waits for its reply. An err frame comes
// back as *Error.
func (c *Conn) Request(ctx context.Context, f *realtime.Frame) (*realtime.Frame, error) {
	ch, err := c.Start(ctx, f)
	if err != nil {
		return nil, err
	}
	return c.Wait(ctx, ch)
}

// Start sends f with a new id and returns where its reply will arrive.
func (c *Conn) Start(ctx context.Context, f *realtime.Frame) (<-chan *realtime.Frame, error) {
	f.ID = c.NewID()
	ch := make(chan *realtime.Frame, 1)
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, c.err
	}
	c.pending[f.ID] = ch
	c.mu.Unlock()
	if err := c.Send(ctx, f); err != nil {
		c.mu.Lock()
		delete(c.pending, f.ID)
		c.mu.Unlock()
		return nil, err
	}
	return ch, nil
}

// Wait waits for a reply started with Start.
func (c *Conn) Wait(ctx context.Context, ch <-chan *realtime.Frame) (*realtime.Frame, error) {
	select {
	case r, ok := <-ch:
		if !ok {
			return nil, c.Err()
		}
		if r.Type == realtime.TypeError {
			return r, &Error{Code: r.Code, Message: r.Message}
		}
		return r, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Next returns the next push frame. It returns the connection's error once
// the connection is closed and every push was read.
func (c *Conn) Next(ctx context.Context) (*realtime.Frame, error) {
	if c.pushes == nil {
		return nil, errors.New("rtclient: pushes go to OnPush")
	}
	select {
	case f, ok := <-c.pushes:
		if !ok {
			return nil, c.Err()
		}
		return f, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Err returns why the connection ended, or nil while it is open.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// CloseStatus returns the close code the server sent, or -1.
func (c *Conn) CloseStatus() websocket.StatusCode { return websocket.CloseStatus(c.Err()) }

// Done is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Close closes the connection normally.
func (c *Conn) Close() error { return c.ws.Close(websocket.StatusNormalClosure, "") }

// CloseNow drops the connection without a close handshake.
func (c *Conn) CloseNow() error { return c.ws.CloseNow() }
