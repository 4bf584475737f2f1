package realtime

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/tone-ai/tone/domain"
)

// MaxPresenceState is the largest presence state a client may set, in bytes.
const MaxPresenceState = 2048

// presenceStoreInterval is how often a changing presence state is written to
// the presence store (state frames go out more often, up to the node's
// presence interval).
const presenceStoreInterval = time.Second

func boolp(b bool) *bool { return &b }

// subscribe handles a sub frame: authorise, register, replay what the
// client missed, then go live with no gap and no duplicate.
func (c *Client) subscribe(ctx context.Context, f *Frame) error {
	kind, id, ns, err := c.node.parseChannel(f.Channel)
	if err != nil {
		return err
	}
	// Everything is checked before the subscription is registered, so a
	// refused subscribe leaves an existing one as it was.
	var role domain.Role
	var canvasID uuid.UUID
	if kind == canvasKind {
		if canvasID, err = uuid.Parse(id); err != nil {
			return domain.Errorf(domain.ENotFound, "Canvas not found.")
		}
		if role, err = c.node.canvas.authorize(ctx, c, canvasID, f.Replica); err != nil {
			return err
		}
	} else if err := ns.Authorize(ctx, c.user, id, false); err != nil {
		return err
	}
	s := &subscription{ch: f.Channel, client: c, presence: true, canvas: kind == canvasKind}
	if err := c.register(ctx, s); err != nil {
		return err
	}
	if s.canvas {
		return c.node.canvas.subscribe(ctx, c, s, canvasID, role, f)
	}
	if kind == logsKind && c.node.logs != nil {
		return c.node.logs.subscribe(ctx, c, s, f)
	}

	reply := &Frame{Type: TypeOK, ID: f.ID}
	since := Position{}
	if f.Since != nil && *f.Since == (Position{}) {
		f.Since = nil // "from the beginning of nothing": a plain subscribe
	}
	if f.Since != nil {
		since = *f.Since
	}
	pubs, top, err := c.node.broker.History(ctx, f.Channel, since, c.node.cfg.RecoveryLimit+1)
	switch {
	case errors.Is(err, ErrHistoryUnavailable), err == nil && len(pubs) > c.node.cfg.RecoveryLimit:
		reply.Recovered = boolp(false)
		s.epoch, s.offset = top.Epoch, top.Offset
	case err != nil:
		c.dropSub(ctx, f.Channel)
		return domain.Errorf(domain.EUnavailable, "Could not read the channel's history; try again.")
	default:
		s.epoch, s.offset = top.Epoch, top.Offset
		if f.Since != nil {
			reply.Recovered = boolp(true)
			s.offset = since.Offset
			for _, p := range pubs {
				reply.Pubs = append(reply.Pubs, Frame{Type: TypeMessage, Channel: f.Channel, Offset: p.Offset, Data: p.Data, Client: p.Client, User: p.User})
				s.offset = p.Offset
			}
		}
	}
	reply.Pos = &Position{Offset: s.offset, Epoch: s.epoch}
	c.goLive(s, reply)
	return nil
}

// register adds s to the client and the hub, and returns once the broker
// delivers the channel to this node. A second subscription to a channel
// replaces the first (that is how a client recovers after a reset).
func (c *Client) register(ctx context.Context, s *subscription) error {
	c.mu.Lock()
	old, again := c.subs[s.ch]
	if !again && len(c.subs) >= c.node.cfg.MaxSubscriptions {
		c.mu.Unlock()
		return domain.Errorf(domain.EInvalid, "At most %d subscriptions per connection.", c.node.cfg.MaxSubscriptions)
	}
	c.subs[s.ch] = s
	c.mu.Unlock()
	if !again {
		c.node.metrics.subscriptions.Inc()
	} else if old.canvasSession != nil {
		c.node.canvas.release(old.canvasSession)
	}
	// Every subscriber, not only the node's first of the channel, waits
	// until the broker delivers the channel: what the subscribe reads
	// next (history, a canvas from the store) must not miss a publication
	// that the broker was not yet delivering.
	c.node.hub.add(s)
	if err := c.node.broker.Subscribe(ctx, s.ch); err != nil {
		c.dropSub(ctx, s.ch)
		return domain.Errorf(domain.EUnavailable, "Could not subscribe: the broker is unavailable.")
	}
	return nil
}

// goLive sends the subscribe reply, delivers what arrived during the
// replay, and makes s live.
func (c *Client) goLive(s *subscription, reply *Frame) {
	c.node.hub.goLive(s, func() { c.send(reply) }, func(s *subscription, epoch string, p *Publication) {
		c.node.deliver(s, epoch, p, func() []byte {
			b, _ := EncodeFrame(&Frame{Type: TypeMessage, Channel: s.ch, Offset: p.Offset, Data: p.Data, Client: p.Client, User: p.User})
			return b
		})
	})
}

// dropSub removes the client's subscription to ch everywhere: hub, broker
// (when it was the node's last), presence and canvas session.
func (c *Client) dropSub(ctx context.Context, ch string) bool {
	c.mu.Lock()
	s := c.subs[ch]
	delete(c.subs, ch)
	ps, joined := c.presence[ch]
	delete(c.presence, ch)
	c.mu.Unlock()
	found, last := c.node.hub.remove(ch, c)
	if s != nil || found {
		c.node.metrics.subscriptions.Dec()
	}
	if last {
		if err := c.node.broker.Unsubscribe(ctx, ch); err != nil {
			c.node.log.Warn("broker unsubscribe", "channel", ch, "err", err)
		}
		if c.node.logs != nil && strings.HasPrefix(ch, logsKind+":") {
			c.node.logs.drop(ch)
		}
	}
	if joined && ps != nil {
		c.leave(ctx, ch)
	}
	if s != nil && s.canvasSession != nil {
		c.node.canvas.release(s.canvasSession)
	}
	return s != nil || found
}

func (c *Client) unsubscribe(ctx context.Context, f *Frame) error {
	if !c.dropSub(ctx, f.Channel) {
		return domain.Errorf(domain.ENotFound, "Not subscribed to %q.", truncate(f.Channel, 64))
	}
	c.send(&Frame{Type: TypeOK, ID: f.ID})
	return nil
}

// publish handles a pub frame on a channel that allows client publishing.
func (c *Client) publish(ctx context.Context, f *Frame) error {
	_, id, ns, err := c.node.parseChannel(f.Channel)
	if err != nil {
		return err
	}
	if len(f.Data) == 0 {
		return domain.Errorf(domain.EInvalid, "pub needs data (d).")
	}
	if err := ns.Authorize(ctx, c.user, id, true); err != nil {
		return err
	}
	pos, err := c.node.publish(ctx, f.Channel, &Publication{Data: f.Data, Client: c.id, User: c.user.String()})
	if err != nil {
		return err
	}
	c.send(&Frame{Type: TypeOK, ID: f.ID, Pos: &pos})
	return nil
}

// history handles a history frame: the publications after since.
func (c *Client) history(ctx context.Context, f *Frame) error {
	kind, id, ns, err := c.node.parseChannel(f.Channel)
	if err != nil {
		return err
	}
	if err := ns.Authorize(ctx, c.user, id, false); err != nil {
		return err
	}
	if kind == logsKind && c.node.logs != nil {
		return c.node.logs.history(ctx, c, f)
	}
	limit := f.Limit
	if limit <= 0 || limit > c.node.cfg.RecoveryLimit {
		limit = c.node.cfg.RecoveryLimit
	}
	since := Position{}
	if f.Since != nil {
		since = *f.Since
	}
	pubs, top, err := c.node.broker.History(ctx, f.Channel, since, limit+1)
	if errors.Is(err, ErrHistoryUnavailable) {
		return domain.Errorf(domain.ENotFound, "History after that position is no longer available; reload.").WithDetail("pos", top)
	}
	if err != nil {
		return domain.Errorf(domain.EUnavailable, "Could not read the channel's history; try again.")
	}
	reply := &Frame{Type: TypeOK, ID: f.ID, Pos: &top}
	if len(pubs) > limit {
		pubs, reply.More = pubs[:limit], true
	}
	for _, p := range pubs {
		reply.Pubs = append(reply.Pubs, Frame{Type: TypeMessage, Channel: f.Channel, Offset: p.Offset, Data: p.Data, Client: p.Client, User: p.User})
	}
	c.send(reply)
	return nil
}

// presenceCmd sets the client's presence state in a channel it subscribes
// to (with st), or lists the channel's presence (without).
func (c *Client) presenceCmd(ctx context.Context, f *Frame) error {
	c.mu.Lock()
	_, subscribed := c.subs[f.Channel]
	c.mu.Unlock()
	if !subscribed {
		return domain.Errorf(domain.EInvalid, "Subscribe to %q before using its presence.", truncate(f.Channel, 64))
	}
	if f.State == nil {
		list, err := c.node.presence.Presence(ctx, f.Channel)
		if err != nil {
			return domain.Errorf(domain.EUnavailable, "Could not read presence; try again.")
		}
		if list == nil {
			list = []PresenceInfo{}
		}
		c.send(&Frame{Type: TypeOK, ID: f.ID, Presence: list})
		return nil
	}
	if len(f.State) > MaxPresenceState {
		return domain.Errorf(domain.EInvalid, "Presence state is larger than %d bytes.", MaxPresenceState)
	}
	if err := checkMsgpack(f.State); err != nil {
		return domain.Errorf(domain.EInvalid, "Presence state is not a valid msgpack value.")
	}
	now := time.Now()
	c.mu.Lock()
	ps, joined := c.presence[f.Channel]
	if !joined {
		ps = &presenceState{lastSent: now, stored: now}
		c.presence[f.Channel] = ps
	}
	ps.state = f.State
	ps.dirty = joined
	ps.unstored = joined
	c.mu.Unlock()
	if joined {
		c.node.presenceChanged(c)
	}
	if !joined {
		info := PresenceInfo{Client: c.id, User: c.user.String(), State: f.State}
		if err := c.node.presence.SetPresence(ctx, f.Channel, info, c.node.cfg.PresenceTTL); err != nil {
			c.mu.Lock()
			delete(c.presence, f.Channel)
			c.mu.Unlock()
			return domain.Errorf(domain.EUnavailable, "Could not join presence; try again.")
		}
		c.broadcastPresence(ctx, f.Channel, TypeJoin, f.State)
	}
	c.send(&Frame{Type: TypeOK, ID: f.ID})
	return nil
}

// checkMsgpack reports whether b is exactly one msgpack value.
func checkMsgpack(b []byte) error {
	var v any
	return msgpack.Unmarshal(b, &v)
}

// broadcastPresence sends a join, state or leave frame about this client to
// the channel's other subscribers, on every node.
func (c *Client) broadcastPresence(ctx context.Context, ch, typ string, state msgpack.RawMessage) {
	frame, err := EncodeFrame(&Frame{Type: typ, Channel: ch, Client: c.id, User: c.user.String(), State: state})
	if err != nil {
		return
	}
	if err := c.node.broker.Broadcast(ctx, ch, joinEphemeral(c.id, frame)); err != nil {
		c.node.log.Warn("presence broadcast", "channel", ch, "err", err)
	}
}

// flushPresence sends the coalesced presence states that changed, at most
// one per presence interval per channel, and reports whether something is
// still waiting (to be sent or stored).
func (c *Client) flushPresence(ctx context.Context) (more bool) {
	type out struct {
		ch        string
		state     msgpack.RawMessage
		broadcast bool
		store     bool
	}
	var todo []out
	now := time.Now()
	c.mu.Lock()
	for ch, ps := range c.presence {
		o := out{ch: ch, state: ps.state}
		send := ps.dirty && now.Sub(ps.lastSent) >= c.node.cfg.PresenceInterval
		if send {
			ps.dirty, ps.lastSent = false, now
		}
		// The store gets the latest state at most once a second, and
		// always eventually, also after a burst has ended.
		if ps.unstored && now.Sub(ps.stored) >= presenceStoreInterval {
			ps.unstored, ps.stored, o.store = false, now, true
		}
		if send || o.store {
			o.broadcast = send
			todo = append(todo, o)
		}
		more = more || ps.dirty || ps.unstored
	}
	c.mu.Unlock()
	for _, o := range todo {
		if o.broadcast {
			c.broadcastPresence(ctx, o.ch, TypeState, o.state)
		}
		if o.store {
			info := PresenceInfo{Client: c.id, User: c.user.String(), State: o.state}
			if err := c.node.presence.SetPresence(ctx, o.ch, info, c.node.cfg.PresenceTTL); err != nil {
				c.node.log.Warn("presence store", "channel", o.ch, "err", err)
			}
		}
	}
	return more
}

// refreshPresence renews the client's presence entries before they expire.
func (c *Client) refreshPresence(ctx context.Context) {
	c.mu.Lock()
	infos := make(map[string]PresenceInfo, len(c.presence))
	for ch, ps := range c.presence {
		infos[ch] = PresenceInfo{Client: c.id, User: c.user.String(), State: ps.state}
		ps.stored = time.Now()
	}
	c.mu.Unlock()
	for ch, info := range infos {
		if err := c.node.presence.SetPresence(ctx, ch, info, c.node.cfg.PresenceTTL); err != nil {
			c.node.log.Warn("presence refresh", "channel", ch, "err", err)
		}
	}
}

// leave removes the client from a channel's presence and tells the others.
func (c *Client) leave(ctx context.Context, ch string) {
	if err := c.node.presence.RemovePresence(ctx, ch, c.id); err != nil {
		c.node.log.Warn("presence leave", "channel", ch, "err", err)
	}
	c.broadcastPresence(ctx, ch, TypeLeave, nil)
}
