package realtime

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// RedisBroker is the Broker and Presence of a cluster of nodes sharing one
// Redis server. Each channel's history is a Redis stream whose entry ids
// are the publications' offsets, next to a small hash holding the stream's
// epoch and top offset; a Lua script appends a publication and PUBLISHes it
// on the channel's pub/sub channel in one step, so pub/sub carries a
// channel's publications in offset order.
//
// A node SUBSCRIBEs only the channels its clients use, spread over
// RedisConfig.Shards pub/sub connections by a hash of the channel name:
// every shard delivers on a goroutine of its own, so one hot channel keeps
// its order without holding up the channels of other shards. A shard keeps
// the last offset it delivered of each channel: a publication that skips
// offsets (a pub/sub message lost, a reconnect) is preceded by the missing
// ones read back from the stream, and a periodic position check compares
// every channel's top with what was delivered, catching a lost last
// message. What the stream no longer holds is reported to the handler (see
// LossHandler), never skipped silently.
//
// When Redis is unreachable, Publish, Subscribe and History fail, Ready
// reports the error, and the shards reconnect with backoff; on their return
// they resubscribe and deliver what was published meanwhile from the
// streams (or report the loss when a stream was lost: its epoch changed).
//
// Presence is a hash per channel (client id -> state) beside a sorted set of
// expiry times; entries not refreshed within their TTL are dropped, so the
// clients of a node that died disappear.
//
// A RedisBroker is safe for concurrent use. Close releases its connections.
type RedisBroker struct {
	cfg    RedisConfig
	rdb    *redis.Client
	log    *slog.Logger
	shards []*redisShard

	pubq      chan *redisPubReq
	stop      chan struct{}
	closeOnce sync.Once
	workers   sync.WaitGroup

	mu      sync.Mutex
	handler BrokerHandler

	repaired prometheus.Counter // publications delivered from a stream after a gap
	losses   prometheus.Counter // times a channel's missed publications were gone
	shardsUp prometheus.Gauge   // pub/sub connections serving
}

var (
	_ Broker   = (*RedisBroker)(nil)
	_ Presence = (*RedisBroker)(nil)
)

// RedisConfig holds a RedisBroker's settings. Zero fields take defaults.
type RedisConfig struct {
	// Options says how to reach Redis (see redis.ParseURL).
	Options *redis.Options
	// Prefix starts every key and pub/sub channel name the broker uses,
	// so that several clusters (or tests) can share one Redis. Default "tone".
	Prefix string
	// HistorySize is how many publications each channel keeps (0: all).
	HistorySize int
	// HistoryTTL is how long a stream lives after its last publication
	// (0: for ever). A node subscribed to a channel keeps its epoch and
	// offset alive meanwhile; only the publications age out.
	HistoryTTL time.Duration
	// Shards is the number of pub/sub connections (default 8).
	Shards int
	// CheckInterval is how often each channel's top is compared with what
	// was delivered (default 2 s, at most a third of HistoryTTL).
	CheckInterval time.Duration
	// PublishWorkers is how many pipelines of publications may be in flight
	// at once (default 4); each carries up to 128 publications.
	PublishWorkers int
	Logger         *slog.Logger
	// Registerer, if set, registers the broker's metrics:
	// tone_redis_broker_repaired_total, tone_redis_broker_losses_total and
	// tone_redis_broker_shards_up.
	Registerer prometheus.Registerer
}

// LossHandler may be implemented by a BrokerHandler to hear that a broker
// could not deliver some publications of ch, neither live nor from the
// channel's history (the stream was trimmed, or lost with a new epoch).
// Delivery goes on from top; everything before it is gone for this node.
// Calls are serialised with the channel's deliveries.
type LossHandler interface {
	HandleLoss(ch string, top Position)
}

// maxPipeline is the most publications sent to Redis in one round trip.
const maxPipeline = 128

// NewRedisBroker returns a broker over the Redis that cfg.Options names.
// It does not connect until used; call Ready to check the connection.
func NewRedisBroker(cfg RedisConfig) *RedisBroker {
	if cfg.Prefix == "" {
		cfg.Prefix = "tone"
	}
	if cfg.Shards <= 0 {
		cfg.Shards = 8
	}
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = 2 * time.Second
	}
	if cfg.HistoryTTL > 0 && cfg.CheckInterval > cfg.HistoryTTL/3 {
		cfg.CheckInterval = max(cfg.HistoryTTL/3, 10*time.Millisecond)
	}
	if cfg.PublishWorkers <= 0 {
		cfg.PublishWorkers = 4
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	opts := *cfg.Options
	// Publications wait for a pipeline; a dead server must fail them
	// promptly rather than after the library's default retries.
	if opts.MaxRetries == 0 {
		opts.MaxRetries = 1
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = 2 * time.Second
	}
	if opts.PoolSize == 0 {
		opts.PoolSize = 2*cfg.PublishWorkers + 8
	}
	b := &RedisBroker{
		cfg: cfg, rdb: redis.NewClient(&opts), log: cfg.Logger,
		pubq: make(chan *redisPubReq, 4*maxPipeline), stop: make(chan struct{}),
		repaired: prometheus.NewCounter(prometheus.CounterOpts{Name: "tone_redis_broker_repaired_total",
			Help: "Publications delivered from a channel's stream after pub/sub skipped offsets (the missing ones and those after them)."}),
		losses: prometheus.NewCounter(prometheus.CounterOpts{Name: "tone_redis_broker_losses_total",
			Help: "Times a channel's missed publications were no longer in its stream (subscribers reset)."}),
		shardsUp: prometheus.NewGauge(prometheus.GaugeOpts{Name: "tone_redis_broker_shards_up",
			Help: "Pub/sub connections to Redis that are serving."}),
	}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(b.repaired, b.losses, b.shardsUp)
	}
	for i := range cfg.Shards {
		b.shards = append(b.shards, &redisShard{
			b: b, id: i, ps: b.rdb.Subscribe(context.Background()),
			subs: map[string]bool{}, waiters: map[string][]chan struct{}{}, state: map[string]*redisChanState{},
		})
	}
	for range cfg.PublishWorkers {
		b.workers.Add(1)
		go b.publishLoop()
	}
	return b
}

// Close stops the publish workers and closes every connection. Call it
// after Run has returned.
func (b *RedisBroker) Close() error {
	var err error
	b.closeOnce.Do(func() {
		close(b.stop)
		b.workers.Wait()
		for _, s := range b.shards {
			err = errors.Join(err, s.ps.Close())
		}
		err = errors.Join(err, b.rdb.Close())
	})
	return err
}

// Ready returns nil if Redis answers a PING within ctx.
func (b *RedisBroker) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := b.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}

// Keys of a channel. The hash tag keeps a channel's keys in one slot.
func (b *RedisBroker) metaKey(ch string) string     { return b.cfg.Prefix + ":m:{" + ch + "}" }
func (b *RedisBroker) streamKey(ch string) string   { return b.cfg.Prefix + ":s:{" + ch + "}" }
func (b *RedisBroker) pubsubName(ch string) string  { return b.cfg.Prefix + ":c:" + ch }
func (b *RedisBroker) presenceKey(ch string) string { return b.cfg.Prefix + ":p:{" + ch + "}" }
func (b *RedisBroker) expiryKey(ch string) string   { return b.cfg.Prefix + ":pe:{" + ch + "}" }

func (b *RedisBroker) ttlMillis() int64 { return b.cfg.HistoryTTL.Milliseconds() }

// publishScript appends a publication to a channel's stream and publishes
// it. KEYS: meta, stream. ARGV: epoch for a new stream, TTL in ms (0: none),
// max length (0: none), the encoded publication, pub/sub channel. A stream
// without its meta hash (lost, expired) is dropped first, so offsets restart
// at 1 under the new epoch. The pub/sub message is "p<offset> <epoch> <pub>".
var publishScript = redis.NewScript(`
local e = redis.call('HGET', KEYS[1], 'e')
if not e then
  e = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', e, 't', 0)
end
local t = redis.call('HINCRBY', KEYS[1], 't', 1)
if tonumber(ARGV[3]) > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], t .. '-0', 'p', ARGV[4])
else
  redis.call('XADD', KEYS[2], t .. '-0', 'p', ARGV[4])
end
if tonumber(ARGV[2]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
redis.call('PUBLISH', ARGV[5], 'p' .. t .. ' ' .. e .. ' ' .. ARGV[4])
return {t, e}
`)

// historyScript returns a channel's epoch and top and, when asked, the
// stream entries from an offset on. KEYS: meta, stream. ARGV: epoch for a
// new stream, TTL in ms, the caller's epoch ("" for the top only), the
// first offset wanted, the most entries (0: all). A missing meta hash is
// created (an empty stream has an epoch, which its first publication keeps).
var historyScript = redis.NewScript(`
local e = redis.call('HGET', KEYS[1], 'e')
if not e then
  e = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', e, 't', 0)
  if tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
end
local t = redis.call('HGET', KEYS[1], 't')
if ARGV[3] == '' or ARGV[3] ~= e or tonumber(ARGV[4]) > tonumber(t) then
  return {t, e}
end
local r
if tonumber(ARGV[5]) > 0 then
  r = redis.call('XRANGE', KEYS[2], ARGV[4], '+', 'COUNT', ARGV[5])
else
  r = redis.call('XRANGE', KEYS[2], ARGV[4], '+')
end
return {t, e, r}
`)

// topScript returns the epoch and top of each channel whose meta key is
// given (false for a channel without one) and keeps those keys alive for
// ARGV[1] more milliseconds: a node subscribed to a channel keeps its
// position, like the in-process broker does.
var topScript = redis.NewScript(`
local out = {}
for i, k in ipairs(KEYS) do
  local v = redis.call('HMGET', k, 'e', 't')
  if v[1] then
    out[i] = {v[1], v[2]}
    if tonumber(ARGV[1]) > 0 then redis.call('PEXPIRE', k, ARGV[1]) end
  else
    out[i] = false
  end
end
return out
`)

// encodePub encodes the client, user and data of a publication.
func encodePub(p *Publication) []byte {
	out := make([]byte, 0, 4+len(p.Client)+len(p.User)+len(p.Data))
	out = binary.AppendUvarint(out, uint64(len(p.Client)))
	out = append(out, p.Client...)
	out = binary.AppendUvarint(out, uint64(len(p.User)))
	out = append(out, p.User...)
	return append(out, p.Data...)
}

func decodePub(b []byte, offset uint64) (*Publication, error) {
	field := func() (string, error) {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return "", errors.New("redis broker: malformed publication")
		}
		s := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return s, nil
	}
	client, err := field()
	if err != nil {
		return nil, err
	}
	user, err := field()
	if err != nil {
		return nil, err
	}
	return &Publication{Offset: offset, Client: client, User: user, Data: slices.Clone(b)}, nil
}

// redisPubReq is one publication waiting for a pipeline.
type redisPubReq struct {
	ctx  context.Context
	ch   string
	pub  *Publication
	pos  Position
	err  error
	done chan struct{}
}

// Publish appends pub to ch's stream and publishes it to the nodes
// subscribed to ch. Concurrent publications travel together in pipelines.
func (b *RedisBroker) Publish(ctx context.Context, ch string, pub *Publication) (Position, error) {
	r := &redisPubReq{ctx: ctx, ch: ch, pub: pub, done: make(chan struct{})}
	select {
	case b.pubq <- r:
	case <-ctx.Done():
		return Position{}, ctx.Err()
	case <-b.stop:
		return Position{}, errors.New("redis broker closed")
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		// The publication may still happen; the caller treats it as failed.
		return Position{}, ctx.Err()
	}
	if r.err != nil {
		return Position{}, r.err
	}
	pub.Offset = r.pos.Offset
	return r.pos, nil
}

// publishLoop sends queued publications in pipelines of up to maxPipeline.
func (b *RedisBroker) publishLoop() {
	defer b.workers.Done()
	batch := make([]*redisPubReq, 0, maxPipeline)
	for {
		batch = batch[:0]
		select {
		case r := <-b.pubq:
			batch = append(batch, r)
		case <-b.stop:
			return
		}
	fill:
		for len(batch) < maxPipeline {
			select {
			case r := <-b.pubq:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		b.publishBatch(batch)
	}
}

func (b *RedisBroker) publishBatch(batch []*redisPubReq) {
	live := batch[:0:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.err = err
			close(r.done)
			continue
		}
		live = append(live, r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for attempt := 0; len(live) > 0; attempt++ {
		pipe := b.rdb.Pipeline()
		cmds := make([]*redis.Cmd, len(live))
		for i, r := range live {
			cmds[i] = publishScript.EvalSha(ctx, pipe, []string{b.metaKey(r.ch), b.streamKey(r.ch)},
				newEpoch(), b.ttlMillis(), b.cfg.HistorySize, encodePub(r.pub), b.pubsubName(r.ch))
		}
		_, _ = pipe.Exec(ctx)
		var again []*redisPubReq
		for i, r := range live {
			res, err := cmds[i].Slice()
			if err != nil && attempt == 0 && redis.HasErrorPrefix(err, "NOSCRIPT") {
				again = append(again, r) // not run: safe to send again
				continue
			}
			if err == nil {
				r.pos, err = parsePosition(res)
			}
			r.err = err
			close(r.done)
		}
		if len(again) > 0 {
			if err := publishScript.Load(ctx, b.rdb).Err(); err != nil {
				for _, r := range again {
					r.err = err
					close(r.done)
				}
				return
			}
		}
		live = again
	}
}

// parsePosition reads the {top, epoch} replies of the scripts.
func parsePosition(res []any) (Position, error) {
	if len(res) < 2 {
		return Position{}, fmt.Errorf("redis broker: unexpected reply %v", res)
	}
	var top uint64
	switch v := res[0].(type) {
	case int64:
		top = uint64(v)
	case string:
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return Position{}, fmt.Errorf("redis broker: bad top %q", v)
		}
		top = n
	default:
		return Position{}, fmt.Errorf("redis broker: unexpected top %v", res[0])
	}
	epoch, ok := res[1].(string)
	if !ok {
		return Position{}, fmt.Errorf("redis broker: unexpected epoch %v", res[1])
	}
	return Position{Offset: top, Epoch: epoch}, nil
}

// Broadcast publishes data to the nodes subscribed to ch, without history.
func (b *RedisBroker) Broadcast(ctx context.Context, ch string, data []byte) error {
	msg := make([]byte, 0, 1+len(data))
	msg = append(append(msg, 'b'), data...)
	return b.rdb.Publish(ctx, b.pubsubName(ch), msg).Err()
}

// History returns ch's publications after since (see Broker).
func (b *RedisBroker) History(ctx context.Context, ch string, since Position, limit int) ([]*Publication, Position, error) {
	wantEpoch := since.Epoch
	if since == (Position{}) {
		wantEpoch = ""
	}
	res, err := historyScript.Run(ctx, b.rdb, []string{b.metaKey(ch), b.streamKey(ch)},
		newEpoch(), b.ttlMillis(), wantEpoch, strconv.FormatUint(since.Offset+1, 10), max(limit, 0)).Slice()
	if err != nil {
		return nil, Position{}, err
	}
	top, err := parsePosition(res)
	if err != nil {
		return nil, Position{}, err
	}
	switch {
	case since == (Position{}):
		return nil, top, nil
	case since.Epoch != top.Epoch || since.Offset > top.Offset:
		return nil, top, ErrHistoryUnavailable
	case since.Offset == top.Offset:
		return nil, top, nil
	}
	// The stream is trimmed approximately; the size cap applies exactly.
	if size := uint64(b.cfg.HistorySize); size > 0 && top.Offset-since.Offset > size {
		return nil, top, ErrHistoryUnavailable
	}
	if len(res) < 3 {
		return nil, top, ErrHistoryUnavailable
	}
	entries, ok := res[2].([]any)
	if !ok {
		return nil, top, fmt.Errorf("redis broker: unexpected entries %T", res[2])
	}
	pubs := make([]*Publication, 0, len(entries))
	for i, e := range entries {
		p, err := parseEntry(e)
		if err != nil {
			return nil, top, err
		}
		if p.Offset != since.Offset+1+uint64(i) {
			// The first ones were trimmed or expired.
			return nil, top, ErrHistoryUnavailable
		}
		pubs = append(pubs, p)
	}
	if len(pubs) == 0 {
		return nil, top, ErrHistoryUnavailable
	}
	return pubs, top, nil
}

// parseEntry reads one XRANGE entry: [id, [field, value]].
func parseEntry(e any) (*Publication, error) {
	kv, ok := e.([]any)
	if !ok || len(kv) != 2 {
		return nil, fmt.Errorf("redis broker: unexpected entry %v", e)
	}
	id, _ := kv[0].(string)
	ms, _, _ := strings.Cut(id, "-")
	offset, err := strconv.ParseUint(ms, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("redis broker: bad entry id %q", id)
	}
	fields, ok := kv[1].([]any)
	if !ok || len(fields) != 2 {
		return nil, fmt.Errorf("redis broker: unexpected entry fields %v", kv[1])
	}
	body, _ := fields[1].(string)
	return decodePub([]byte(body), offset)
}

// Subscribe makes this node receive ch. While Run runs, it returns once
// the subscription is in place, so everything published after it returns
// is delivered.
func (b *RedisBroker) Subscribe(ctx context.Context, ch string) error {
	return b.shard(ch).subscribe(ctx, ch)
}

// Unsubscribe stops delivery of ch to this node.
func (b *RedisBroker) Unsubscribe(ctx context.Context, ch string) error {
	return b.shard(ch).unsubscribe(ctx, ch)
}

func (b *RedisBroker) shard(ch string) *redisShard {
	h := fnv.New32a()
	h.Write([]byte(ch))
	return b.shards[h.Sum32()%uint32(len(b.shards))]
}

// Run delivers to h until ctx is done. Lost connections are retried with
// backoff; Run itself only returns when ctx is done.
func (b *RedisBroker) Run(ctx context.Context, h BrokerHandler) error {
	b.mu.Lock()
	b.handler = h
	b.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range b.shards {
		wg.Go(func() { s.run(ctx, h) })
	}
	wg.Wait()
	b.mu.Lock()
	b.handler = nil
	b.mu.Unlock()
	return nil
}

func (b *RedisBroker) running() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.handler != nil
}

// redisShard is one pub/sub connection and the channels hashed to it.
type redisShard struct {
	b  *RedisBroker
	id int
	ps *redis.PubSub

	mu      sync.Mutex
	subs    map[string]bool            // channels this node wants
	waiters map[string][]chan struct{} // Subscribe calls waiting for their channel to be in place
	up      atomic.Bool                // the connection is serving

	// state is owned by the goroutine running run.
	state map[string]*redisChanState
}

// redisChanState is where delivery of one channel stands.
type redisChanState struct {
	pos     Position // last delivered
	prevTop uint64   // the top the previous position check saw
}

func (s *redisShard) subscribe(ctx context.Context, ch string) error {
	wait := make(chan struct{})
	s.mu.Lock()
	already := s.subs[ch]
	// Another call subscribed ch and still waits for Redis to confirm it:
	// this one waits too, so that no caller goes on (say, to read a
	// canvas from the store) while publications of ch can still pass by.
	confirming := already && len(s.waiters[ch]) > 0
	s.subs[ch] = true
	if !already || confirming {
		s.waiters[ch] = append(s.waiters[ch], wait)
	}
	s.mu.Unlock()
	if confirming {
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		select {
		case <-wait:
			return nil
		case <-tctx.Done():
			s.mu.Lock()
			s.waiters[ch] = slices.DeleteFunc(s.waiters[ch], func(w chan struct{}) bool { return w == wait })
			s.mu.Unlock()
			return fmt.Errorf("redis subscribe: %w", tctx.Err())
		}
	}
	if already {
		return nil
	}
	fail := func(err error) error {
		s.mu.Lock()
		delete(s.subs, ch)
		s.waiters[ch] = slices.DeleteFunc(s.waiters[ch], func(w chan struct{}) bool { return w == wait })
		if len(s.waiters[ch]) == 0 {
			delete(s.waiters, ch)
		}
		s.mu.Unlock()
		_ = s.ps.Unsubscribe(context.WithoutCancel(ctx), s.b.pubsubName(ch))
		return err
	}
	if err := s.ps.Subscribe(ctx, s.b.pubsubName(ch)); err != nil {
		return fail(fmt.Errorf("redis subscribe: %w", err))
	}
	if !s.b.running() {
		return nil // in place once Run reads the confirmation
	}
	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	select {
	case <-wait:
		return nil
	case <-tctx.Done():
		return fail(fmt.Errorf("redis subscribe: %w", tctx.Err()))
	}
}

func (s *redisShard) unsubscribe(ctx context.Context, ch string) error {
	s.mu.Lock()
	was := s.subs[ch]
	delete(s.subs, ch)
	s.mu.Unlock()
	if !was {
		return nil
	}
	return s.ps.Unsubscribe(ctx, s.b.pubsubName(ch))
}

func (s *redisShard) wanted(ch string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.subs[ch]
}

// run reads the shard's pub/sub connection until ctx is done, delivering
// to h and checking positions every CheckInterval.
func (s *redisShard) run(ctx context.Context, h BrokerHandler) {
	prefix := s.b.cfg.Prefix + ":c:"
	interval := s.b.cfg.CheckInterval
	nextCheck := time.Now().Add(interval)
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		msg, err := s.ps.ReceiveTimeout(ctx, min(interval, 250*time.Millisecond))
		if ctx.Err() != nil {
			return
		}
		if time.Now().After(nextCheck) && s.up.Load() {
			s.check(ctx, h)
			nextCheck = time.Now().Add(interval)
		}
		if err != nil {
			var ne net.Error
			var op *net.OpError
			if errors.As(err, &ne) && ne.Timeout() && !(errors.As(err, &op) && op.Op == "dial") {
				s.markUp() // a read timed out on a live connection
				continue
			}
			if s.up.Swap(false) {
				s.b.shardsUp.Dec()
				s.b.log.Warn("redis pub/sub connection lost; reconnecting", "shard", s.id, "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				s.markUp()
				s.subscribed(ctx, h, strings.TrimPrefix(m.Channel, prefix))
			}
		case *redis.Message:
			ch := strings.TrimPrefix(m.Channel, prefix)
			s.markUp()
			s.message(ctx, h, ch, m.Payload)
		case *redis.Pong:
		}
	}
}

// markUp notes that the shard's connection serves.
func (s *redisShard) markUp() {
	if !s.up.Swap(true) {
		s.b.shardsUp.Inc()
		s.b.log.Info("redis pub/sub connected", "shard", s.id)
	}
}

// subscribed handles the confirmation of a SUBSCRIBE: a new channel starts
// from its current top; a channel resubscribed after a reconnect catches up
// on what it missed. Then the Subscribe calls waiting for it return.
func (s *redisShard) subscribed(ctx context.Context, h BrokerHandler, ch string) {
	s.mu.Lock()
	wanted, fresh := s.subs[ch], len(s.waiters[ch]) > 0
	s.mu.Unlock()
	if !wanted {
		return
	}
	// A Subscribe call waiting means the node had no subscriber of ch
	// until now: nothing to catch up on, whatever was delivered before.
	if st := s.state[ch]; st != nil && !fresh {
		s.repair(ctx, h, ch, st)
	} else {
		_, top, err := s.b.History(ctx, ch, Position{}, 0)
		if err != nil {
			// Left without a state: the next publication sets it, and the
			// node's own History call fails the same way.
			s.b.log.Warn("redis broker: read channel top", "channel", ch, "err", err)
		} else {
			s.state[ch] = &redisChanState{pos: top, prevTop: top.Offset}
		}
	}
	s.mu.Lock()
	for _, w := range s.waiters[ch] {
		close(w)
	}
	delete(s.waiters, ch)
	s.mu.Unlock()
}

// message handles one pub/sub message of ch.
func (s *redisShard) message(ctx context.Context, h BrokerHandler, ch, payload string) {
	if !s.wanted(ch) {
		delete(s.state, ch)
		return
	}
	if len(payload) == 0 {
		return
	}
	if payload[0] == 'b' {
		h.HandleEphemeral(ch, []byte(payload[1:]))
		return
	}
	head, rest, ok1 := strings.Cut(payload[1:], " ")
	epoch, body, ok2 := strings.Cut(rest, " ")
	offset, err := strconv.ParseUint(head, 10, 64)
	if payload[0] != 'p' || !ok1 || !ok2 || err != nil {
		s.b.log.Error("redis broker: malformed pub/sub message", "channel", ch)
		return
	}
	pub, err := decodePub([]byte(body), offset)
	if err != nil {
		s.b.log.Error("redis broker: malformed publication", "channel", ch, "err", err)
		return
	}
	st := s.state[ch]
	switch {
	case st == nil:
		// The channel's top could not be read when it was subscribed.
		st = &redisChanState{pos: Position{Offset: offset - 1, Epoch: epoch}}
		s.state[ch] = st
	case epoch == st.pos.Epoch && offset <= st.pos.Offset:
		return // delivered already (by a repair)
	case epoch != st.pos.Epoch || offset != st.pos.Offset+1:
		s.repair(ctx, h, ch, st)
		return
	}
	st.pos.Offset = offset
	h.HandlePublication(ch, epoch, pub)
}

// repair delivers what ch published after the last delivered position,
// from the stream. When the stream no longer has it, the handler hears of
// the loss and delivery goes on from the top. When Redis cannot be read,
// nothing changes: the next publication or position check tries again.
func (s *redisShard) repair(ctx context.Context, h BrokerHandler, ch string, st *redisChanState) {
	pubs, top, err := s.b.History(ctx, ch, st.pos, 0)
	switch {
	case errors.Is(err, ErrHistoryUnavailable):
		s.b.log.Warn("redis broker: publications lost", "channel", ch, "from", st.pos, "top", top)
		s.b.losses.Inc()
		st.pos = top
		if lh, ok := h.(LossHandler); ok {
			lh.HandleLoss(ch, top)
		}
	case err != nil:
		s.b.log.Warn("redis broker: repair from history", "channel", ch, "err", err)
	default:
		for _, p := range pubs {
			st.pos.Offset = p.Offset
			h.HandlePublication(ch, top.Epoch, p)
		}
		s.b.repaired.Add(float64(len(pubs)))
	}
}

// check compares the top of every channel of the shard with what was
// delivered, repairing a channel whose publications stayed undelivered for
// a whole interval (a lost last message), and keeps the positions of the
// channels alive in Redis.
func (s *redisShard) check(ctx context.Context, h BrokerHandler) {
	if len(s.state) == 0 {
		return
	}
	chans := make([]string, 0, len(s.state))
	keys := make([]string, 0, len(s.state))
	for ch := range s.state {
		if !s.wanted(ch) {
			delete(s.state, ch)
			continue
		}
		chans = append(chans, ch)
		keys = append(keys, s.b.metaKey(ch))
	}
	if len(keys) == 0 {
		return
	}
	res, err := topScript.Run(ctx, s.b.rdb, keys, s.b.ttlMillis()).Slice()
	if err != nil {
		s.b.log.Warn("redis broker: position check", "shard", s.id, "err", err)
		return
	}
	for i, ch := range chans {
		st := s.state[ch]
		v, ok := res[i].([]any)
		if !ok {
			continue // no stream: the next publication starts a new epoch
		}
		top, err := parsePosition([]any{v[1], v[0]})
		if err != nil {
			continue
		}
		if top.Epoch != st.pos.Epoch || (st.pos.Offset < top.Offset && st.pos.Offset < st.prevTop) {
			s.repair(ctx, h, ch, st)
		}
		st.prevTop = top.Offset
	}
}

// SetPresence adds or replaces a client's presence in ch for ttl.
func (b *RedisBroker) SetPresence(ctx context.Context, ch string, info PresenceInfo, ttl time.Duration) error {
	data, err := marshal(info)
	if err != nil {
		return err
	}
	return setPresenceScript.Run(ctx, b.rdb, []string{b.presenceKey(ch), b.expiryKey(ch)},
		info.Client, data, max(ttl.Milliseconds(), 1)).Err()
}

// RemovePresence removes a client from ch's presence.
func (b *RedisBroker) RemovePresence(ctx context.Context, ch string, client string) error {
	pipe := b.rdb.TxPipeline()
	pipe.HDel(ctx, b.presenceKey(ch), client)
	pipe.ZRem(ctx, b.expiryKey(ch), client)
	_, err := pipe.Exec(ctx)
	return err
}

// Presence lists the unexpired clients of ch by client id.
func (b *RedisBroker) Presence(ctx context.Context, ch string) ([]PresenceInfo, error) {
	res, err := presenceScript.Run(ctx, b.rdb, []string{b.presenceKey(ch), b.expiryKey(ch)}).Slice()
	if err != nil {
		return nil, err
	}
	out := make([]PresenceInfo, 0, len(res))
	for _, v := range res {
		s, _ := v.(string)
		var info PresenceInfo
		if err := unmarshal([]byte(s), &info); err != nil {
			return nil, fmt.Errorf("redis broker: presence entry: %w", err)
		}
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b PresenceInfo) int { return strings.Compare(a.Client, b.Client) })
	return out, nil
}

// setPresenceScript stores a presence entry with its expiry time (Redis
// server time, so that the nodes' clocks do not matter) and keeps both keys
// for at least the entry's TTL. KEYS: hash, expiry set. ARGV: client,
// state, TTL in ms.
var setPresenceScript = redis.NewScript(`
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ms + ttl, ARGV[1])
for _, k in ipairs(KEYS) do
  if redis.call('PTTL', k) < ttl then redis.call('PEXPIRE', k, ttl) end
end
return 1
`)

// presenceScript drops expired entries and returns the others' states.
var presenceScript = redis.NewScript(`
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ms)
if #gone > 0 then
  redis.call('HDEL', KEYS[1], unpack(gone))
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ms)
end
return redis.call('HVALS', KEYS[1])
`)
