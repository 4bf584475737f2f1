package realtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/tone-ai/tone/domain"
)

// Config holds a node's settings. Zero fields take the defaults of
// DefaultConfig.
type Config struct {
	NodeID                string        // name of this node in connected frames and logs; default random
	PingInterval          time.Duration // between server pings
	PongTimeout           time.Duration // how long after a ping a silent client is closed
	ConnectTimeout        time.Duration // how long a new connection may take to send connect
	MaxMessageBytes       int64         // largest inbound WebSocket message
	OutboundQueueBytes    int           // a client's unsent bytes beyond which it is cut off
	CommandRate           float64       // client commands per second, sustained
	CommandBurst          int           // client commands in a burst
	MaxSubscriptions      int           // per connection
	MaxConnectionsPerUser int           // per node
	PresenceTTL           time.Duration // presence of a silent node's clients expires after this
	PresenceInterval      time.Duration // presence state changes go out at most this often per client and channel
	RecoveryLimit         int           // most publications replayed on subscribe
	OriginPatterns        []string      // extra allowed browser origins (host patterns)
	Logger                *slog.Logger
}

// DefaultConfig returns the settings used when nothing is configured.
func DefaultConfig() Config {
	return Config{
		PingInterval:          25 * time.Second,
		PongTimeout:           10 * time.Second,
		ConnectTimeout:        10 * time.Second,
		MaxMessageBytes:       256 << 10,
		OutboundQueueBytes:    1 << 20,
		CommandRate:           100,
		CommandBurst:          200,
		MaxSubscriptions:      256,
		MaxConnectionsPerUser: 64,
		PresenceTTL:           60 * time.Second,
		PresenceInterval:      50 * time.Millisecond,
		RecoveryLimit:         1000,
	}
}

func (c *Config) fill() {
	d := DefaultConfig()
	if c.NodeID == "" {
		var b [6]byte
		rand.Read(b[:])
		c.NodeID = hex.EncodeToString(b[:])
	}
	set := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	set(&c.PingInterval, d.PingInterval)
	set(&c.PongTimeout, d.PongTimeout)
	set(&c.ConnectTimeout, d.ConnectTimeout)
	set(&c.PresenceTTL, d.PresenceTTL)
	set(&c.PresenceInterval, d.PresenceInterval)
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = d.MaxMessageBytes
	}
	if c.OutboundQueueBytes == 0 {
		c.OutboundQueueBytes = d.OutboundQueueBytes
	}
	if c.CommandRate == 0 {
		c.CommandRate = d.CommandRate
	}
	if c.CommandBurst == 0 {
		c.CommandBurst = d.CommandBurst
	}
	if c.MaxSubscriptions == 0 {
		c.MaxSubscriptions = d.MaxSubscriptions
	}
	if c.MaxConnectionsPerUser == 0 {
		c.MaxConnectionsPerUser = d.MaxConnectionsPerUser
	}
	if c.RecoveryLimit == 0 {
		c.RecoveryLimit = d.RecoveryLimit
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Authenticator turns an access token into the user it speaks for.
// domain.Service implements it.
type Authenticator interface {
	Authenticate(token string) (*domain.Principal, error)
}

// Namespace authorises the channels of one kind, named "<kind>:<id>".
type Namespace interface {
	// Authorize returns nil if user may read the channel with this id
	// (write false: subscribe, history, presence) or write to it (write
	// true: publish). Errors carry domain codes (ENotFound for channels the
	// user cannot see, EForbidden for a role too weak).
	Authorize(ctx context.Context, user uuid.UUID, id string, write bool) error
}

// Node is one realtime server: it accepts WebSocket connections on
// /api/v1/realtime, keeps their subscriptions, and moves publications
// between its clients and the broker. A Node is safe for concurrent use.
type Node struct {
	cfg        Config
	log        *slog.Logger
	auth       Authenticator
	broker     Broker
	presence   Presence
	namespaces map[string]Namespace
	canvas     *canvasSessions
	logs       *logTails
	hub        *hub
	metrics    *Metrics

	mu      sync.Mutex
	clients map[*Client]struct{}
	perUser map[uuid.UUID]int
	closing bool

	pmu    sync.Mutex
	pdirty map[*Client]struct{} // clients with presence changes to send or store

	nextClient atomic.Uint64
	done       chan struct{}
	stopOnce   sync.Once
	wg         sync.WaitGroup
}

// NewNode returns a node over broker and presence. Call Run to start its
// background work, and Shutdown to stop it.
func NewNode(cfg Config, auth Authenticator, broker Broker, presence Presence, metrics *Metrics) *Node {
	cfg.fill()
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	return &Node{
		cfg: cfg, log: cfg.Logger.With("node", cfg.NodeID), auth: auth, broker: broker, presence: presence,
		namespaces: map[string]Namespace{}, hub: newHub(), metrics: metrics,
		clients: map[*Client]struct{}{}, perUser: map[uuid.UUID]int{}, pdirty: map[*Client]struct{}{},
		done: make(chan struct{}),
	}
}

// ID returns the node's name.
func (n *Node) ID() string { return n.cfg.NodeID }

// Register makes channels "<kind>:<id>" available, authorised by ns.
// Register every namespace before serving.
func (n *Node) Register(kind string, ns Namespace) { n.namespaces[kind] = ns }

// Run starts the broker and the node's timers and returns when ctx is done
// or the broker fails.
func (n *Node) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go n.tick(ctx)
	err := n.broker.Run(ctx, n)
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("realtime: broker: %w", err)
	}
	return nil
}

// parseChannel splits "<kind>:<id>" and finds its namespace.
func (n *Node) parseChannel(ch string) (string, string, Namespace, error) {
	kind, id, ok := strings.Cut(ch, ":")
	ns := n.namespaces[kind]
	if !ok || ns == nil || id == "" || len(ch) > 200 {
		return "", "", nil, domain.Errorf(domain.EInvalid, "Unknown channel %q; channels are <kind>:<id>.", truncate(ch, 64))
	}
	return kind, id, ns, nil
}

// canonical returns the one spelling of a channel name under which it is
// published: ids that are UUIDs in their lower-case hyphenated form.
func canonical(ch string) string {
	kind, id, ok := strings.Cut(ch, ":")
	if !ok {
		return ch
	}
	if u, err := uuid.Parse(id); err == nil {
		return kind + ":" + u.String()
	}
	return ch
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// ServeHTTP upgrades a request to a WebSocket connection with subprotocol
// tone.v1 and serves it until it closes.
func (n *Node) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n.mu.Lock()
	closing := n.closing
	n.mu.Unlock()
	if closing {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "node shutting down", http.StatusServiceUnavailable)
		return
	}
	conn, err := websocket.Accept(smallBuffers{w}, r, &websocket.AcceptOptions{
		Subprotocols:   []string{Subprotocol},
		OriginPatterns: n.cfg.OriginPatterns,
	})
	if err != nil {
		n.log.DebugContext(r.Context(), "websocket accept failed", "err", err)
		return
	}
	if conn.Subprotocol() != Subprotocol {
		conn.Close(CloseProtocolError, "subprotocol "+Subprotocol+" required")
		return
	}
	conn.SetReadLimit(n.cfg.MaxMessageBytes)
	c := newClient(n, conn, r)
	// The connection is served on a goroutine of its own, so that neither
	// the request nor the handler's deep stack stays alive with it.
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		c.serve(context.Background())
	}()
}

// addClient counts a connected client; it returns a close code if the node
// is closing or the user has too many connections.
func (n *Node) addClient(c *Client) (CloseCode, string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closing {
		return CloseShutdown, "node shutting down"
	}
	if n.perUser[c.user] >= n.cfg.MaxConnectionsPerUser {
		return CloseTooManyConnections, "too many connections for this user"
	}
	n.perUser[c.user]++
	n.clients[c] = struct{}{}
	n.metrics.connections.Inc()
	return 0, ""
}

func (n *Node) removeClient(c *Client) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.clients[c]; !ok {
		return
	}
	delete(n.clients, c)
	if n.perUser[c.user]--; n.perUser[c.user] <= 0 {
		delete(n.perUser, c.user)
	}
	n.metrics.connections.Dec()
}

func (n *Node) snapshotClients() []*Client {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]*Client, 0, len(n.clients))
	for c := range n.clients {
		out = append(out, c)
	}
	return out
}

// tick pings clients, closes silent ones and those whose token expired,
// refreshes presence and flushes coalesced presence states.
func (n *Node) tick(ctx context.Context) {
	ping := time.NewTicker(n.cfg.PingInterval)
	expiry := time.NewTicker(time.Second)
	defer expiry.Stop()
	presence := time.NewTicker(n.cfg.PresenceInterval)
	refresh := time.NewTicker(n.cfg.PresenceTTL / 3)
	defer ping.Stop()
	defer presence.Stop()
	defer refresh.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-ping.C:
			for _, c := range n.snapshotClients() {
				c.heartbeat(now)
			}
		case now := <-expiry.C:
			for _, c := range n.snapshotClients() {
				c.checkExpiry(now)
			}
		case <-presence.C:
			n.pmu.Lock()
			dirty := n.pdirty
			n.pdirty = map[*Client]struct{}{}
			n.pmu.Unlock()
			for c := range dirty {
				if c.flushPresence(ctx) {
					n.presenceChanged(c)
				}
			}
		case <-refresh.C:
			for _, c := range n.snapshotClients() {
				c.refreshPresence(ctx)
			}
		}
	}
}

// presenceChanged marks c as having presence to flush on the next tick.
func (n *Node) presenceChanged(c *Client) {
	n.pmu.Lock()
	n.pdirty[c] = struct{}{}
	n.pmu.Unlock()
}

// HandlePublication sends a publication to the local subscribers of ch.
func (n *Node) HandlePublication(ch string, epoch string, pub *Publication) {
	var frame []byte
	encode := func() []byte {
		if frame == nil {
			var err error
			frame, err = EncodeFrame(&Frame{Type: TypeMessage, Channel: ch, Offset: pub.Offset, Data: pub.Data, Client: pub.Client, User: pub.User})
			if err != nil {
				n.log.Error("encode publication", "channel", ch, "err", err)
			}
		}
		return frame
	}
	if n.logs != nil && strings.HasPrefix(ch, logsKind+":") {
		n.logs.publication(ch, pub) // the end of a log, delivered in line order
		return
	}
	if n.canvas != nil && strings.HasPrefix(ch, canvasKind+":") && !strings.HasPrefix(pub.Client, n.cfg.NodeID+"-") {
		n.canvas.remote(ch, pub)
	}
	n.hub.each(ch, func(s *subscription) { n.deliver(s, epoch, pub, encode) })
}

// HandleLoss handles publications of ch that the broker lost for good:
// every local subscription is reset, so that its client resubscribes and
// recovers (recovered:false, or a canvas sync by version vector). A canvas
// document held here first merges the op log, which has every update the
// lost publications carried.
func (n *Node) HandleLoss(ch string, top Position) {
	reset := func() {
		n.hub.each(ch, func(s *subscription) { n.resetSub(s, "publications lost by the broker") })
	}
	if n.canvas != nil && strings.HasPrefix(ch, canvasKind+":") && n.canvas.lost(ch, reset) {
		return
	}
	reset()
}

// deliver sends pub to one subscription, or buffers it during a replay.
// It runs under the channel's shard lock.
func (n *Node) deliver(s *subscription, epoch string, pub *Publication, encode func() []byte) {
	switch {
	case s.dead:
		return // reset: the client must subscribe again
	case !s.live:
		s.buf = append(s.buf, bufferedPub{epoch: epoch, pub: pub})
		return
	case s.epoch == "" && s.canvas:
		// A canvas subscription synced by version vector takes the stream
		// from wherever it is.
		s.epoch = epoch
	case s.epoch != epoch:
		n.resetSub(s, "stream epoch changed")
		return
	case pub.Offset <= s.offset:
		return // sent already (by the replay)
	case s.canvas && pub.Client == s.client.id:
		// The author of a canvas update has it already (and got its ok).
		s.offset = pub.Offset
		return
	case s.offset != 0 && pub.Offset != s.offset+1:
		n.resetSub(s, fmt.Sprintf("missed offsets %d to %d", s.offset+1, pub.Offset-1))
		return
	}
	s.offset = pub.Offset
	if f := encode(); f != nil {
		s.client.enqueue(f)
	}
}

// resetSub tells a client that its subscription lost its place: it stops
// receiving and must subscribe again with since (or its version vector) to
// recover. It runs under the channel's shard lock.
func (n *Node) resetSub(s *subscription, why string) {
	if s.dead {
		return
	}
	f, err := EncodeFrame(&Frame{Type: TypeReset, Channel: s.ch, Pos: &Position{Offset: s.offset, Epoch: s.epoch}, Message: why})
	s.dead, s.live, s.buf = true, false, nil
	n.metrics.resets.Inc()
	n.log.Warn("subscription reset", "channel", s.ch, "client", s.client.id, "why", why)
	if err == nil {
		s.client.enqueue(f)
	}
}

// HandleEphemeral sends a presence event to the local subscribers of ch,
// except the client it is about.
func (n *Node) HandleEphemeral(ch string, data []byte) {
	if n.logs != nil && strings.HasPrefix(ch, logsKind+":") {
		n.logs.broadcast(ch, data)
		return
	}
	from, frame, ok := splitEphemeral(data)
	if !ok {
		return
	}
	n.hub.each(ch, func(s *subscription) {
		if s.live && s.presence && s.client.id != from {
			s.client.enqueue(frame)
		}
	})
}

// ephemeral messages are a client id (one length byte, then the id) and an
// encoded frame about that client.
func joinEphemeral(client string, frame []byte) []byte {
	out := make([]byte, 0, 1+len(client)+len(frame))
	out = append(out, byte(len(client)))
	out = append(out, client...)
	return append(out, frame...)
}

func splitEphemeral(b []byte) (string, []byte, bool) {
	if len(b) < 1 || len(b) < 1+int(b[0]) {
		return "", nil, false
	}
	n := int(b[0])
	return string(b[1 : 1+n]), b[1+n:], true
}

// Publish publishes data (any value msgpack can encode) on ch from the
// server, and returns its position. Services use it, through
// domain.Publisher, to push events after their transaction commits.
func (n *Node) Publish(ctx context.Context, ch string, data any) (Position, error) {
	ch = canonical(ch)
	if _, _, _, err := n.parseChannel(ch); err != nil {
		return Position{}, err
	}
	raw, err := marshal(data)
	if err != nil {
		return Position{}, err
	}
	return n.publish(ctx, ch, &Publication{Data: raw})
}

func (n *Node) publish(ctx context.Context, ch string, pub *Publication) (Position, error) {
	pos, err := n.broker.Publish(ctx, ch, pub)
	if err != nil {
		return Position{}, domain.Errorf(domain.EUnavailable, "Could not publish: the broker is unavailable.")
	}
	n.metrics.publications.Inc()
	return pos, nil
}

// Shutdown stops accepting connections, tells every client to reconnect
// elsewhere (close code 4001), flushes canvas sessions, and returns when
// all that is done or ctx ends.
func (n *Node) Shutdown(ctx context.Context) error {
	n.mu.Lock()
	n.closing = true
	n.mu.Unlock()
	clients := n.snapshotClients()
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for _, c := range clients {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			c.close(CloseShutdown, "node shutting down, reconnect")
		}()
	}
	wg.Wait()
	var err error
	if n.canvas != nil {
		err = n.canvas.closeAll(ctx)
	}
	n.stopOnce.Do(func() { close(n.done) })
	waited := make(chan struct{})
	go func() { n.wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-ctx.Done():
		return errors.Join(err, ctx.Err())
	}
	return err
}
