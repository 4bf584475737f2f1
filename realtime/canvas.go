package realtime

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/tone-ai/tone/crdt"
	"github.com/tone-ai/tone/domain"
)

// canvasKind is the namespace of canvas channels: "canvas:<canvas id>".
const canvasKind = "canvas"

// CanvasStore is what canvas sessions need from the domain; domain.Service
// implements it.
type CanvasStore interface {
	CanvasAccess(ctx context.Context, actor, id uuid.UUID) (*domain.Canvas, domain.Role, error)
	LoadCanvas(ctx context.Context, actor, id uuid.UUID) (*domain.CanvasSnapshot, []*domain.CanvasUpdate, error)
	AppendCanvasUpdates(ctx context.Context, canvasID uuid.UUID, us []*domain.CanvasUpdate) error
	SaveCanvasSnapshot(ctx context.Context, actor, canvasID uuid.UUID, v domain.CanvasVersion, data []byte) error
	SaveCanvasVersion(ctx context.Context, actor, canvasID uuid.UUID, name string, v domain.CanvasVersion, data []byte) (*domain.CanvasSnapshot, error)
	CanvasVersionByID(ctx context.Context, actor, canvasID, versionID uuid.UUID) (*domain.CanvasSnapshot, error)
	ClaimCanvasReplica(ctx context.Context, actor, canvasID uuid.UUID, replica uint64) error
	RecordCanvasRestore(ctx context.Context, actor, canvasID, versionID uuid.UUID) error
}

// CanvasConfig tunes canvas sessions.
type CanvasConfig struct {
	Schema        *crdt.Schema  // element types and properties; default crdt.DefaultSchema()
	IdleTimeout   time.Duration // a canvas with no subscribers is unloaded after this; default 1 minute
	SnapshotEvery int           // updates between periodic snapshots; default 500
	// MentionDelay is how long a text must be left alone before its new
	// @mentions are notified (when the store is a MentionNotifier);
	// default 2 seconds.
	MentionDelay time.Duration
}

// canvasSessions holds the canvas documents loaded on this node.
type canvasSessions struct {
	node  *Node
	store CanvasStore
	cfg   CanvasConfig
	// notifier is store as a MentionNotifier, or nil.
	notifier MentionNotifier

	mu       sync.Mutex
	sessions map[uuid.UUID]*canvasSession
}

// EnableCanvas serves "canvas:<id>" channels, with documents loaded from and
// persisted to store.
func (n *Node) EnableCanvas(store CanvasStore, cfg CanvasConfig) {
	if cfg.Schema == nil {
		cfg.Schema = crdt.DefaultSchema()
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = time.Minute
	}
	if cfg.SnapshotEvery == 0 {
		cfg.SnapshotEvery = 500
	}
	if cfg.MentionDelay == 0 {
		cfg.MentionDelay = 2 * time.Second
	}
	n.canvas = &canvasSessions{node: n, store: store, cfg: cfg, sessions: map[uuid.UUID]*canvasSession{}}
	n.canvas.notifier, _ = store.(MentionNotifier)
	n.Register(canvasKind, canvasNamespace{store})
}

// canvasNamespace authorises canvas channels: members read; edits come as
// canvas frames, checked by the session, never as publications.
type canvasNamespace struct{ store CanvasStore }

func (ns canvasNamespace) Authorize(ctx context.Context, user uuid.UUID, id string, write bool) error {
	cid, err := uuid.Parse(id)
	if err != nil {
		return domain.Errorf(domain.ENotFound, "Canvas not found.")
	}
	_, role, err := ns.store.CanvasAccess(ctx, user, cid)
	if err != nil {
		return err
	}
	if write {
		return domain.Errorf(domain.EForbidden, "Canvas channels take canvas frames, not publications.")
	}
	if !role.Can(domain.ActCanvasRead) {
		return domain.Errorf(domain.EForbidden, "Your role (%s) may not read this canvas.", role)
	}
	return nil
}

// canvasSession is one loaded canvas document and the writes on their way
// to the op log.
type canvasSession struct {
	id  uuid.UUID
	ch  string
	mgr *canvasSessions

	ready chan struct{} // closed once loaded (or failed: err)
	err   error

	mu            sync.Mutex
	doc           *crdt.Doc
	owners        map[uint64]uuid.UUID // replica -> user, as learned from writes
	subs          int
	idle          *time.Timer
	sinceSnapshot int
	lastWriter    uuid.UUID
	loader        uuid.UUID // the user the document was loaded for, who may read it
	broken        bool      // a write failed or the canvas was deleted: the session is being unloaded
	deleted       bool      // the canvas was deleted
	early         [][]byte  // remote updates that arrived while loading
	mentions      mentionTracker
	editors       map[uuid.UUID]struct{} // who wrote since the last activity sample

	pmu      sync.Mutex
	pending  []*persistReq
	flushing bool
	flushed  chan struct{} // closed and replaced when the queue empties
}

type persistReq struct {
	upd    *domain.CanvasUpdate
	client string
	done   chan error
}

func vvToDomain(v crdt.VersionVector) domain.CanvasVersion {
	out := make(domain.CanvasVersion, len(v))
	for r, s := range v {
		out[uint64(r)] = s
	}
	return out
}

func vvFromWire(v map[uint64]uint64) crdt.VersionVector {
	out := make(crdt.VersionVector, len(v))
	for r, s := range v {
		out[crdt.ReplicaID(r)] = s
	}
	return out
}

// acquire returns the loaded session of canvas id, loading it on first use,
// and counts one more subscriber.
func (m *canvasSessions) acquire(ctx context.Context, user, id uuid.UUID) (*canvasSession, error) {
	m.mu.Lock()
	s := m.sessions[id]
	if s == nil {
		s = &canvasSession{id: id, ch: canvasKind + ":" + id.String(), mgr: m, ready: make(chan struct{}),
			owners: map[uint64]uuid.UUID{}, flushed: make(chan struct{})}
		m.sessions[id] = s
		go s.load(context.WithoutCancel(ctx), user)
	}
	s.mu.Lock()
	s.subs++
	if s.idle != nil {
		s.idle.Stop()
		s.idle = nil
	}
	s.mu.Unlock()
	m.mu.Unlock()
	select {
	case <-s.ready:
	case <-ctx.Done():
		m.release(s)
		return nil, ctx.Err()
	}
	if s.err != nil {
		m.release(s)
		return nil, s.err
	}
	return s, nil
}

// load reads the latest snapshot and the later op log entries.
func (s *canvasSession) load(ctx context.Context, user uuid.UUID) {
	defer close(s.ready)
	start := time.Now()
	s.loader = user
	snap, updates, err := s.mgr.store.LoadCanvas(ctx, user, s.id)
	if err != nil {
		s.fail(err)
		return
	}
	schema := s.mgr.cfg.Schema
	var doc *crdt.Doc
	if snap != nil {
		doc, err = crdt.Load(serverReplica, schema, snap.Data)
		if err != nil {
			s.fail(fmt.Errorf("canvas %s: snapshot %s: %w", s.id, snap.ID, err))
			return
		}
	} else {
		doc = crdt.NewDoc(serverReplica, schema)
	}
	for _, u := range updates {
		if err := doc.Apply(u.Data); err != nil {
			s.fail(fmt.Errorf("canvas %s: op log entry %d/%d: %w", s.id, u.Replica, u.First, err))
			return
		}
		s.owners[u.Replica] = u.ActorID
	}
	s.mu.Lock()
	for _, u := range s.early {
		if err := doc.Apply(u); err != nil {
			s.mgr.node.log.Error("canvas remote update rejected", "canvas_id", s.id, "err", err)
		}
	}
	s.early = nil
	s.doc = doc
	s.sinceSnapshot = len(updates)
	s.mu.Unlock()
	s.mgr.node.metrics.canvases.Inc()
	s.mgr.node.log.Info("canvas loaded", "canvas_id", s.id, "ops", len(updates), "snapshot", snap != nil, "took", time.Since(start))
}

// maxPending bounds the operations a document may hold for dependencies
// that have not arrived (an op naming an element nobody created waits
// forever), so that clients cannot fill a node's memory with them.
const maxPending = 10000

// serverReplica is the replica id of the documents a node holds: they only
// merge what clients made and never edit, so it never takes a sequence
// number and cannot collide with a client's.
const serverReplica crdt.ReplicaID = 1

func (s *canvasSession) fail(err error) {
	s.err = err
	s.mgr.mu.Lock()
	if s.mgr.sessions[s.id] == s {
		delete(s.mgr.sessions, s.id)
	}
	s.mgr.mu.Unlock()
	if domain.ErrorCode(err) == domain.EInternal {
		s.mgr.node.log.Error("canvas load failed", "canvas_id", s.id, "err", err)
	}
}

// release counts one subscriber less, and schedules the unload of a canvas
// nobody watches.
func (m *canvasSessions) release(s *canvasSession) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subs--
	if s.subs == 0 && s.err == nil {
		s.idle = time.AfterFunc(m.cfg.IdleTimeout, func() { m.unloadIdle(s) })
	}
}

func (m *canvasSessions) unloadIdle(s *canvasSession) {
	m.mu.Lock()
	s.mu.Lock()
	idle := s.subs == 0 && m.sessions[s.id] == s
	if idle {
		delete(m.sessions, s.id)
	}
	s.mu.Unlock()
	m.mu.Unlock()
	if idle {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s.close(ctx)
	}
}

// close waits for queued writes, takes a final snapshot if anything changed
// since the last one, and forgets the document.
func (s *canvasSession) close(ctx context.Context) error {
	s.waitFlushed(ctx)
	s.flushMentions()
	err := s.snapshot(ctx, true)
	s.mgr.node.metrics.canvases.Dec()
	s.mgr.node.log.Info("canvas unloaded", "canvas_id", s.id)
	return err
}

func (m *canvasSessions) closeAll(ctx context.Context) error {
	m.mu.Lock()
	all := make([]*canvasSession, 0, len(m.sessions))
	for id, s := range m.sessions {
		select {
		case <-s.ready:
			if s.err == nil {
				all = append(all, s)
			}
		default:
		}
		delete(m.sessions, id)
	}
	m.mu.Unlock()
	var errs []error
	for _, s := range all {
		s.mu.Lock()
		if s.idle != nil {
			s.idle.Stop()
		}
		s.mu.Unlock()
		errs = append(errs, s.close(ctx))
	}
	return errors.Join(errs...)
}

// authorize checks that the client may subscribe to canvas id with the
// given replica (0: read only), and claims the replica for the client's
// user, so that nobody else can write under it. It returns the user's role.
func (m *canvasSessions) authorize(ctx context.Context, c *Client, id uuid.UUID, replica uint64) (domain.Role, error) {
	_, role, err := m.store.CanvasAccess(ctx, c.user, id)
	if err != nil {
		return "", err
	}
	if replica == 0 || !role.Can(domain.ActCanvasWrite) {
		return role, nil
	}
	if replica <= uint64(serverReplica) || replica >= 1<<53 {
		return "", domain.Errorf(domain.EInvalid, "replica must be between 2 and 2^53-1.").WithDetail("field", "replica")
	}
	if err := m.store.ClaimCanvasReplica(ctx, c.user, id, replica); err != nil {
		if domain.ErrorCode(err) == domain.EConflict {
			return "", domain.Errorf(domain.EConflict, "Replica %d belongs to another user; pick a new random replica id.", replica)
		}
		return "", err
	}
	return role, nil
}

// subscribe syncs a client to a canvas: it sends what the client's version
// vector lacks (or a full snapshot), then the client goes live. The
// subscription is registered (and authorised) already.
func (m *canvasSessions) subscribe(ctx context.Context, c *Client, sub *subscription, cid uuid.UUID, role domain.Role, f *Frame) error {
	s, err := m.acquire(ctx, c.user, cid)
	if err != nil {
		c.dropSub(ctx, f.Channel)
		return err
	}
	replica := f.Replica
	if !role.Can(domain.ActCanvasWrite) {
		replica = 0 // viewers read only
	}
	c.mu.Lock()
	sub.canvasSession, sub.role, sub.replica = s, role, replica
	c.mu.Unlock()

	reply := &Frame{Type: TypeOK, ID: f.ID, Replica: replica}
	s.mu.Lock()
	if replica != 0 {
		s.owners[replica] = c.user
	}
	if len(f.Version) > 0 {
		reply.Update, err = s.doc.DiffSince(vvFromWire(f.Version))
	}
	if len(f.Version) == 0 || errors.Is(err, crdt.ErrSnapshotRequired) {
		reply.Update, reply.Snapshot, err = s.doc.Snapshot(), true, nil
	}
	reply.Version = vvToWire(s.doc.Version())
	s.mu.Unlock()
	if err != nil {
		c.dropSub(ctx, f.Channel)
		return fmt.Errorf("canvas %s: diff: %w", cid, err)
	}
	c.goLive(sub, reply)
	return nil
}

func vvToWire(v crdt.VersionVector) map[uint64]uint64 {
	out := make(map[uint64]uint64, len(v))
	for r, s := range v {
		out[uint64(r)] = s
	}
	return out
}

// canvasCmd handles a canvas frame: validate a client's update against the
// schema and the client's role, apply it, make it durable, acknowledge it,
// then broadcast it.
func (c *Client) canvasCmd(ctx context.Context, f *Frame) error {
	c.mu.Lock()
	sub := c.subs[f.Channel]
	c.mu.Unlock()
	if sub == nil || sub.canvasSession == nil {
		return domain.Errorf(domain.EInvalid, "Subscribe to %q before editing it.", truncate(f.Channel, 64))
	}
	if !sub.role.Can(domain.ActCanvasWrite) {
		return domain.Errorf(domain.EForbidden, "Your role (%s) may not edit this canvas.", sub.role)
	}
	if sub.replica == 0 {
		return domain.Errorf(domain.EInvalid, "Subscribe with a replica id to edit.")
	}
	return sub.canvasSession.write(ctx, c, sub.replica, f)
}

func (s *canvasSession) write(ctx context.Context, c *Client, replica uint64, f *Frame) error {
	if err := s.submit(ctx, c.user, c.id, replica, f.Update); err != nil {
		return err
	}
	c.send(&Frame{Type: TypeOK, ID: f.ID})
	return nil
}

// submit validates an update of one replica made for user, applies it,
// and returns once it is durable (it is broadcast right after). A resend of
// what the document has already is accepted, changes nothing, and is
// written and broadcast again.
func (s *canvasSession) submit(ctx context.Context, user uuid.UUID, client string, replica uint64, update []byte) error {
	start := time.Now()
	u, err := crdt.DecodeUpdate(update)
	if err != nil || len(u.Ops) == 0 {
		return domain.Errorf(domain.EInvalid, "Not a valid canvas update: %v", errOr(err, "no operations"))
	}
	first, last := u.Ops[0].ID.Seq, uint64(0)
	for i := range u.Ops {
		op := &u.Ops[i]
		if uint64(op.ID.Replica) != replica {
			return domain.Errorf(domain.EForbidden, "An update may hold only the operations of your replica (%d).", replica)
		}
		if op.Kind == crdt.OpCollect {
			// A collect drops what it lists on every replica; only the
			// document's owner may collect, and clients never do.
			return domain.Errorf(domain.EForbidden, "Clients may not send collect operations.")
		}
		if last != 0 && op.ID.Seq != last+1 {
			return domain.Errorf(domain.EInvalid, "The operations of an update must take consecutive sequence numbers.")
		}
		last = op.ID.Seq + op.Span() - 1
	}

	s.mu.Lock()
	if s.deleted {
		s.mu.Unlock()
		return domain.Errorf(domain.ENotFound, "Canvas not found.")
	}
	if s.broken {
		s.mu.Unlock()
		return domain.Errorf(domain.EUnavailable, "The canvas is reloading; subscribe again.")
	}
	if owner, ok := s.owners[replica]; ok && owner != user {
		s.mu.Unlock()
		return domain.Errorf(domain.EConflict, "Replica %d belongs to another user.", replica)
	}
	if s.doc.Pending() > maxPending {
		s.mu.Unlock()
		s.mgr.node.log.Error("canvas holds too many pending operations", "canvas_id", s.id, "pending", s.doc.Pending())
		return domain.Errorf(domain.EUnavailable, "The canvas holds too many operations waiting for others; try again later.")
	}
	// A resend of what the document has already changes nothing in it, but
	// is written and broadcast once more: the first attempt may have
	// reached the op log without its broadcast (a commit whose answer was
	// lost), or still be on its way there. Both are idempotent.
	have := s.doc.Version()[crdt.ReplicaID(replica)]
	if resend := last <= have; !resend {
		if first != have+1 {
			s.mu.Unlock()
			return domain.Errorf(domain.EConflict, "Out of order: the canvas has your operations up to %d; send from %d.", have, have+1).
				WithDetail("expected_seq", have+1)
		}
		texts := s.beforeApply(u)
		if err := s.doc.ApplyUpdate(u); err != nil {
			s.mu.Unlock()
			return domain.Errorf(domain.EInvalid, "Update rejected: %v", err)
		}
		s.afterApply(texts, user)
		s.noteEditor(user)
		s.owners[replica] = user
		s.sinceSnapshot++
		s.lastWriter = user
		s.mgr.node.metrics.opApply.Observe(time.Since(start).Seconds())
	}
	req := &persistReq{
		upd: &domain.CanvasUpdate{CanvasID: s.id, Replica: replica, First: first, Last: last,
			Data: update, ActorID: user, At: time.Now().UTC()},
		client: client,
		done:   make(chan error, 1),
	}
	s.enqueue(req)
	s.mu.Unlock()

	select {
	case err = <-req.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if err != nil {
		return err
	}
	s.mgr.node.metrics.opPersist.Observe(time.Since(start).Seconds())
	return nil
}

func errOr(err error, s string) string {
	if err != nil {
		return err.Error()
	}
	return s
}

// enqueue adds a write to the persistence queue, starting the flusher if
// it is idle. Called with s.mu held, so the queue is in apply order.
func (s *canvasSession) enqueue(r *persistReq) {
	s.pmu.Lock()
	s.pending = append(s.pending, r)
	start := !s.flushing
	s.flushing = true
	s.pmu.Unlock()
	if start {
		go s.flush()
	}
}

// flush writes queued updates to the op log in batches (group commit):
// while one batch is being written, the next accumulates. After each batch
// it acknowledges the writers and publishes the updates in order.
func (s *canvasSession) flush() {
	ctx := context.Background()
	for {
		s.pmu.Lock()
		batch := s.pending
		s.pending = nil
		if len(batch) == 0 {
			s.flushing = false
			close(s.flushed)
			s.flushed = make(chan struct{})
			s.pmu.Unlock()
			s.maybeSnapshot(ctx)
			return
		}
		s.pmu.Unlock()

		ups := make([]*domain.CanvasUpdate, len(batch))
		for i, r := range batch {
			ups[i] = r.upd
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := s.mgr.store.AppendCanvasUpdates(wctx, s.id, ups)
		cancel()
		if err != nil {
			s.broke(err, batch)
			continue
		}
		for _, r := range batch {
			r.done <- nil
		}
		for i, r := range batch {
			data, _ := marshal(r.upd.Data)
			pub := &Publication{Data: data, Client: r.client, User: r.upd.ActorID.String()}
			if _, err := s.mgr.node.publish(ctx, s.ch, pub); err != nil {
				// The updates are durable but their broadcast failed: every
				// local subscriber resyncs by version vector, and the
				// broadcast is retried until the broker takes it, for the
				// other nodes holding the canvas.
				s.mgr.node.log.Error("canvas broadcast", "canvas_id", s.id, "err", err)
				s.mgr.node.hub.each(s.ch, func(sub *subscription) { s.mgr.node.resetSub(sub, "a canvas update could not be broadcast") })
				s.republish(batch[i:])
				break
			}
		}
	}
}

// republish retries, with backoff and in the background, the broadcast of
// durable updates the broker refused, until it takes them or the node
// stops. Applying an update twice is harmless, so a node that already
// merged it from the op log loses nothing.
func (s *canvasSession) republish(rs []*persistReq) {
	pubs := make([]*Publication, len(rs))
	for i, r := range rs {
		data, _ := marshal(r.upd.Data)
		pubs[i] = &Publication{Data: data, Client: r.client, User: r.upd.ActorID.String()}
	}
	node := s.mgr.node
	node.wg.Add(1)
	go func() {
		defer node.wg.Done()
		backoff := 100 * time.Millisecond
		for len(pubs) > 0 {
			select {
			case <-node.done:
				node.log.Warn("canvas broadcasts dropped at shutdown (the op log has them)", "canvas_id", s.id, "updates", len(pubs))
				return
			case <-time.After(backoff):
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := node.broker.Publish(ctx, s.ch, pubs[0])
			cancel()
			if err != nil {
				backoff = min(2*backoff, 5*time.Second)
				continue
			}
			node.metrics.publications.Inc()
			pubs, backoff = pubs[1:], 100*time.Millisecond
		}
		node.log.Info("canvas broadcasts sent after a broker failure", "canvas_id", s.id, "updates", len(rs))
	}()
}

// broke handles a failed write: the document holds updates the op log does
// not, so the session is dropped and every subscriber is told to resync
// (a reload from the store follows on the next subscribe). The writers get
// the error and resend.
func (s *canvasSession) broke(err error, batch []*persistReq) {
	code := domain.ErrorCode(err)
	if code == domain.EInternal {
		s.mgr.node.log.Error("canvas write failed", "canvas_id", s.id, "err", err)
		err = domain.Errorf(domain.EUnavailable, "Could not save the update; resend it after resubscribing.")
	}
	s.mu.Lock()
	s.broken = true
	s.mu.Unlock()
	for _, r := range batch {
		r.done <- err
	}
	s.pmu.Lock()
	rest := s.pending
	s.pending = nil
	s.pmu.Unlock()
	for _, r := range rest {
		r.done <- domain.Errorf(domain.EUnavailable, "Could not save the update; resend it after resubscribing.")
	}
	s.mgr.mu.Lock()
	if s.mgr.sessions[s.id] == s {
		delete(s.mgr.sessions, s.id)
		s.mgr.node.metrics.canvases.Dec()
	}
	s.mgr.mu.Unlock()
	s.mgr.node.hub.each(s.ch, func(sub *subscription) { s.mgr.node.resetSub(sub, "canvas reloading after a failed write") })
}

func (s *canvasSession) waitFlushed(ctx context.Context) {
	s.pmu.Lock()
	busy, ch := s.flushing, s.flushed
	s.pmu.Unlock()
	if !busy {
		return
	}
	select {
	case <-ch:
	case <-ctx.Done():
	}
}

// maybeSnapshot takes a periodic snapshot once enough updates accumulated.
func (s *canvasSession) maybeSnapshot(ctx context.Context) {
	s.mu.Lock()
	due := s.sinceSnapshot >= s.mgr.cfg.SnapshotEvery
	s.mu.Unlock()
	if due {
		if err := s.snapshot(ctx, false); err != nil {
			s.mgr.node.log.Warn("canvas snapshot", "canvas_id", s.id, "err", err)
		}
	}
}

// snapshot stores the document and compacts the op log below it. It is
// taken only when every applied update is durable (no write is queued), so
// a snapshot never holds an update the op log lost.
func (s *canvasSession) snapshot(ctx context.Context, final bool) error {
	s.mu.Lock()
	s.pmu.Lock()
	queued := len(s.pending) > 0 || (s.flushing && !final)
	s.pmu.Unlock()
	if s.broken || s.sinceSnapshot == 0 || (queued && !final) || s.lastWriter == uuid.Nil {
		s.mu.Unlock()
		return nil
	}
	data, vv, actor := s.doc.Snapshot(), vvToDomain(s.doc.Version()), s.lastWriter
	n := s.sinceSnapshot
	s.sinceSnapshot = 0
	s.mu.Unlock()
	start := time.Now()
	err := s.mgr.store.SaveCanvasSnapshot(ctx, actor, s.id, vv, data)
	if domain.ErrorCode(err) == domain.EConflict {
		// Another node stored a snapshot with updates this one has not seen
		// (they may be compacted away already): merge it, then save again.
		if err = s.catchUp(ctx, actor); err == nil {
			s.mu.Lock()
			data, vv = s.doc.Snapshot(), vvToDomain(s.doc.Version())
			s.mu.Unlock()
			err = s.mgr.store.SaveCanvasSnapshot(ctx, actor, s.id, vv, data)
		}
	}
	if err != nil {
		s.mu.Lock()
		s.sinceSnapshot += n
		s.mu.Unlock()
		return err
	}
	s.mgr.node.log.Info("canvas snapshot", "canvas_id", s.id, "bytes", len(data), "updates", n, "took", time.Since(start))
	return nil
}

// catchUp merges the latest stored snapshot and the op log after it into
// the live document.
func (s *canvasSession) catchUp(ctx context.Context, actor uuid.UUID) error {
	snap, updates, err := s.mgr.store.LoadCanvas(ctx, actor, s.id)
	if err != nil {
		return err
	}
	var other *crdt.Doc
	if snap != nil {
		if other, err = crdt.Load(serverReplica, s.mgr.cfg.Schema, snap.Data); err != nil {
			return fmt.Errorf("canvas %s: snapshot %s: %w", s.id, snap.ID, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if other != nil {
		if err := s.doc.Merge(other); err != nil {
			return fmt.Errorf("canvas %s: merge snapshot: %w", s.id, err)
		}
	}
	for _, u := range updates {
		if err := s.doc.Apply(u.Data); err != nil {
			return fmt.Errorf("canvas %s: op log entry %d/%d: %w", s.id, u.Replica, u.First, err)
		}
	}
	return nil
}

// lost handles the loss of canvas ch's publications from other nodes: a
// loaded document merges the op log (which has every update they carried)
// in the background, then reset runs so that its subscribers resync. It
// returns false, without calling reset, when no document is loaded here.
func (m *canvasSessions) lost(ch string, reset func()) bool {
	id, err := uuid.Parse(ch[len(canvasKind)+1:])
	if err != nil {
		return false
	}
	m.mu.Lock()
	s := m.sessions[id]
	m.mu.Unlock()
	if s == nil {
		return false
	}
	m.node.wg.Add(1)
	go func() {
		defer m.node.wg.Done()
		<-s.ready
		if s.err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := s.catchUp(ctx, s.loader)
			cancel()
			if err != nil {
				// Subscribers resync from what the document has; the
				// next loss or reload brings the rest.
				m.node.log.Error("canvas catch-up after lost publications", "canvas_id", id, "err", err)
			}
		}
		reset()
	}()
	return true
}

// remote applies an update that another node accepted and persisted.
func (m *canvasSessions) remote(ch string, pub *Publication) {
	id, err := uuid.Parse(ch[len(canvasKind)+1:])
	if err != nil {
		return
	}
	m.mu.Lock()
	s := m.sessions[id]
	m.mu.Unlock()
	if s == nil {
		return
	}
	var data []byte
	if err := unmarshal(pub.Data, &data); err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken {
		return
	}
	if s.doc == nil {
		// Still loading: the op log read may or may not include it.
		s.early = append(s.early, data)
		return
	}
	if err := s.doc.Apply(data); err != nil {
		m.node.log.Error("canvas remote update rejected", "canvas_id", id, "err", err)
	}
}
