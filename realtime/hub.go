package realtime

import (
	"hash/maphash"
	"sync"

	"github.com/tone-ai/tone/domain"
)

// hubShards is the number of independently locked parts of the hub index.
const hubShards = 64

// hub indexes subscriptions by channel. It is sharded by channel name so
// that busy channels do not contend on one lock.
type hub struct {
	seed   maphash.Seed
	shards [hubShards]hubShard
}

type hubShard struct {
	mu   sync.RWMutex
	subs map[string]map[*Client]*subscription
}

// subscription is one client's subscription to one channel. Its fields are
// guarded by the channel's shard lock.
type subscription struct {
	ch       string
	client   *Client
	presence bool // the client receives join, leave and state frames
	// live is false while the subscription replays history: publications
	// arriving then are kept in buf and sent after the replay.
	live bool
	buf  []bufferedPub
	// dead is set by a reset: nothing more is sent until the client
	// subscribes again.
	dead bool
	// epoch and offset are the last position sent to the client, so that
	// a publication out of place is noticed, never skipped.
	epoch  string
	offset uint64
	// canvas is set for canvas channels: the client syncs by version
	// vector, not by replaying history. The canvas fields are set once the
	// document is loaded, under the client's lock.
	canvas        bool
	canvasSession *canvasSession
	role          domain.Role
	replica       uint64
	// logEnded is set on a logs channel once the end of the log was sent.
	logEnded bool
}

// bufferedPub is a publication that arrived while its subscription replayed.
type bufferedPub struct {
	epoch string
	pub   *Publication
}

func newHub() *hub {
	h := &hub{seed: maphash.MakeSeed()}
	for i := range h.shards {
		h.shards[i].subs = map[string]map[*Client]*subscription{}
	}
	return h
}

func (h *hub) shard(ch string) *hubShard {
	return &h.shards[maphash.String(h.seed, ch)%hubShards]
}

// add registers s.
func (h *hub) add(s *subscription) {
	sh := h.shard(s.ch)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	m := sh.subs[s.ch]
	if m == nil {
		m = map[*Client]*subscription{}
		sh.subs[s.ch] = m
	}
	m[s.client] = s
}

// remove drops c's subscription to ch and reports whether it was there and
// whether the channel has no local subscriptions left.
func (h *hub) remove(ch string, c *Client) (found, last bool) {
	sh := h.shard(ch)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	m := sh.subs[ch]
	if _, found = m[c]; !found {
		return false, false
	}
	delete(m, c)
	if len(m) == 0 {
		delete(sh.subs, ch)
		return true, true
	}
	return true, false
}

// count returns the number of local subscriptions to ch.
func (h *hub) count(ch string) int {
	sh := h.shard(ch)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return len(sh.subs[ch])
}

// channels returns the number of channels with local subscribers.
func (h *hub) channels() int {
	n := 0
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.RLock()
		n += len(sh.subs)
		sh.mu.RUnlock()
	}
	return n
}

// each calls fn for every subscription of ch under the shard's write lock
// (fn may change the subscription but must not block).
func (h *hub) each(ch string, fn func(*subscription)) {
	sh := h.shard(ch)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for _, s := range sh.subs[ch] {
		fn(s)
	}
}

// goLive ends s's replay: it runs reply (which queues the subscribe reply),
// delivers the publications that arrived during the replay (deliver skips
// those the replay already sent), and marks s live, all under the shard
// lock, so that the client sees the reply before any live frame and no
// publication is lost or repeated. It returns false if s is no longer
// registered.
func (h *hub) goLive(s *subscription, reply func(), deliver func(s *subscription, epoch string, p *Publication)) bool {
	sh := h.shard(s.ch)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	reply()
	if sh.subs[s.ch][s.client] != s {
		return false
	}
	s.live = true
	buf := s.buf
	s.buf = nil
	for _, b := range buf {
		deliver(s, b.epoch, b.pub)
	}
	return true
}
