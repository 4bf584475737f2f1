package realtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"sync"
	"time"
)

// MemoryBroker is the in-process Broker and Presence of a single node: the
// embedded default. Each channel keeps its last HistorySize publications,
// and a stream idle for longer than HistoryTTL is dropped (its next
// publication starts a new epoch).
type MemoryBroker struct {
	HistorySize int
	HistoryTTL  time.Duration
	now         func() time.Time

	mu       sync.Mutex
	streams  map[string]*memStream
	subs     map[string]bool
	presence map[string]map[string]memPresence
	handler  BrokerHandler
	// delivery serialises delivery so that one channel's publications
	// reach the handler in offset order.
	delivery sync.Mutex
}

var (
	_ Broker   = (*MemoryBroker)(nil)
	_ Presence = (*MemoryBroker)(nil)
)

type memStream struct {
	epoch string
	top   uint64
	pubs  []*Publication // the last HistorySize publications, oldest first
	touch time.Time
}

type memPresence struct {
	info    PresenceInfo
	expires time.Time
}

// NewMemoryBroker returns a broker keeping size publications per channel
// for at most ttl after the channel's last publication.
func NewMemoryBroker(size int, ttl time.Duration) *MemoryBroker {
	return &MemoryBroker{
		HistorySize: size, HistoryTTL: ttl, now: time.Now,
		streams:  map[string]*memStream{},
		subs:     map[string]bool{},
		presence: map[string]map[string]memPresence{},
	}
}

func newEpoch() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Run records h and drops expired streams and presence until ctx is done.
func (b *MemoryBroker) Run(ctx context.Context, h BrokerHandler) error {
	b.mu.Lock()
	b.handler = h
	b.mu.Unlock()
	defer func() {
		// No delivery once Run has returned (none is under way either).
		b.delivery.Lock()
		b.mu.Lock()
		b.handler = nil
		b.mu.Unlock()
		b.delivery.Unlock()
	}()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			b.expire()
		}
	}
}

func (b *MemoryBroker) expire() {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	for ch, s := range b.streams {
		if b.subs[ch] {
			// Someone here is listening: keep the stream's epoch and
			// offset, so their subscriptions stay in place however quiet
			// the channel is; only its history ages out.
			if b.HistoryTTL > 0 && now.Sub(s.touch) > b.HistoryTTL {
				s.pubs = nil
			}
			continue
		}
		if b.HistoryTTL > 0 && now.Sub(s.touch) > b.HistoryTTL {
			delete(b.streams, ch)
		}
	}
	for ch, m := range b.presence {
		for c, p := range m {
			if now.After(p.expires) {
				delete(m, c)
			}
		}
		if len(m) == 0 {
			delete(b.presence, ch)
		}
	}
}

// stream returns ch's live stream, making a new one (a new epoch) if it has
// none or its history expired. b.mu must be held.
func (b *MemoryBroker) stream(ch string) *memStream {
	s := b.streams[ch]
	now := b.now()
	if s == nil || (b.HistoryTTL > 0 && now.Sub(s.touch) > b.HistoryTTL && !b.subs[ch]) {
		s = &memStream{epoch: newEpoch(), touch: now}
		b.streams[ch] = s
	}
	return s
}

// Subscribe makes this node receive ch.
func (b *MemoryBroker) Subscribe(_ context.Context, ch string) error {
	b.mu.Lock()
	b.subs[ch] = true
	b.mu.Unlock()
	return nil
}

// Unsubscribe stops delivery of ch.
func (b *MemoryBroker) Unsubscribe(_ context.Context, ch string) error {
	b.mu.Lock()
	delete(b.subs, ch)
	b.mu.Unlock()
	return nil
}

// Publish appends pub to ch's history and hands it to the node.
func (b *MemoryBroker) Publish(_ context.Context, ch string, pub *Publication) (Position, error) {
	b.delivery.Lock()
	defer b.delivery.Unlock()
	b.mu.Lock()
	s := b.stream(ch)
	s.top++
	pub.Offset = s.top
	s.touch = b.now()
	s.pubs = append(s.pubs, pub)
	if b.HistorySize > 0 && len(s.pubs) > b.HistorySize {
		s.pubs = slices.Delete(s.pubs, 0, len(s.pubs)-b.HistorySize)
	}
	pos := Position{Offset: s.top, Epoch: s.epoch}
	h, subscribed := b.handler, b.subs[ch]
	b.mu.Unlock()
	if h != nil && subscribed {
		h.HandlePublication(ch, pos.Epoch, pub)
	}
	return pos, nil
}

// Broadcast hands data to the node if it subscribes to ch.
func (b *MemoryBroker) Broadcast(_ context.Context, ch string, data []byte) error {
	b.delivery.Lock()
	defer b.delivery.Unlock()
	b.mu.Lock()
	h, subscribed := b.handler, b.subs[ch]
	b.mu.Unlock()
	if h != nil && subscribed {
		h.HandleEphemeral(ch, data)
	}
	return nil
}

// History returns ch's publications after since.
func (b *MemoryBroker) History(_ context.Context, ch string, since Position, limit int) ([]*Publication, Position, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.stream(ch)
	top := Position{Offset: s.top, Epoch: s.epoch}
	if since == (Position{}) {
		return nil, top, nil
	}
	if since.Epoch != s.epoch || since.Offset > s.top {
		return nil, top, ErrHistoryUnavailable
	}
	if since.Offset == s.top {
		return nil, top, nil
	}
	oldest := s.top - uint64(len(s.pubs)) + 1 // offset of s.pubs[0]
	if len(s.pubs) == 0 || since.Offset+1 < oldest {
		return nil, top, ErrHistoryUnavailable
	}
	out := s.pubs[since.Offset+1-oldest:]
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return slices.Clone(out), top, nil
}

// SetPresence adds or replaces a client's presence.
func (b *MemoryBroker) SetPresence(_ context.Context, ch string, info PresenceInfo, ttl time.Duration) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.presence[ch]
	if m == nil {
		m = map[string]memPresence{}
		b.presence[ch] = m
	}
	m[info.Client] = memPresence{info: info, expires: b.now().Add(ttl)}
	return nil
}

// RemovePresence removes a client's presence.
func (b *MemoryBroker) RemovePresence(_ context.Context, ch string, client string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if m := b.presence[ch]; m != nil {
		delete(m, client)
		if len(m) == 0 {
			delete(b.presence, ch)
		}
	}
	return nil
}

// Presence lists ch's unexpired clients by client id.
func (b *MemoryBroker) Presence(_ context.Context, ch string) ([]PresenceInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	var out []PresenceInfo
	for _, p := range b.presence[ch] {
		if !now.After(p.expires) {
			out = append(out, p.info)
		}
	}
	slices.SortFunc(out, func(a, b PresenceInfo) int {
		switch {
		case a.Client < b.Client:
			return -1
		case a.Client > b.Client:
			return 1
		}
		return 0
	})
	return out, nil
}
