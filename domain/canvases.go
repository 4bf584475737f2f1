package domain

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
)

// CanvasWithRole is a canvas and the actor's effective role in its project.
type CanvasWithRole struct {
	*Canvas
	Role Role
}

// canvasLock is how canvasAccess reads the canvas row.
type canvasLock int

const (
	noLock        canvasLock = iota // CanvasByID
	sharedLock                      // LockCanvas(exclusive false)
	exclusiveLock                   // LockCanvas(exclusive true)
)

// canvasAccess loads a canvas, its project and user's effective role in
// the project. A missing canvas gives nils and role "", which authorize
// turns into ENotFound.
func canvasAccess(ctx context.Context, tx Tx, id, user uuid.UUID, lock canvasLock) (*Canvas, *Project, Role, error) {
	var c *Canvas
	var err error
	if lock == noLock {
		c, err = tx.CanvasByID(ctx, id)
	} else {
		c, err = tx.LockCanvas(ctx, id, lock == exclusiveLock)
	}
	if ErrorCode(err) == ENotFound {
		return nil, nil, "", nil
	}
	if err != nil {
		return nil, nil, "", err
	}
	p, role, err := projectAccess(ctx, tx, c.ProjectID, user)
	if err != nil || p == nil {
		return nil, nil, "", err
	}
	return c, p, role, nil
}

// canvasAudit builds the audit event of an action on a canvas.
func (s *Service) canvasAudit(ctx context.Context, actor uuid.UUID, action, targetType, targetID string, p *Project) *AuditEvent {
	ev := s.audit(ctx, actor, action, targetType, targetID)
	ev.WorkspaceID, ev.ProjectID = p.WorkspaceID, p.ID
	return ev
}

// CreateCanvas creates an empty canvas in a project (editors and up).
func (s *Service) CreateCanvas(ctx context.Context, actor, projectID uuid.UUID, name string) (*Canvas, error) {
	name, err := checkName("name", name)
	if err != nil {
		return nil, err
	}
	now := s.now()
	c := &Canvas{ID: newID(), ProjectID: projectID, Name: name, CreatedBy: actor, CreatedAt: now, UpdatedAt: now}
	err = s.inTx(ctx, actor, func(tx Tx) error {
		p, role, err := projectAccess(ctx, tx, projectID, actor)
		if err != nil {
			return err
		}
		if err := authorize(role, ActCanvasWrite, "Project"); err != nil {
			return err
		}
		if err := tx.CreateCanvas(ctx, c); err != nil {
			return err
		}
		if err := s.emit(ctx, tx, actor, ProjectChannel(projectID), EventCanvasCreated, map[string]any{
			"canvas_id": c.ID, "project_id": projectID, "name": name,
		}); err != nil {
			return err
		}
		ev := s.canvasAudit(ctx, actor, "canvas.create", "canvas", c.ID.String(), p)
		ev.Details = map[string]any{"name": name}
		return tx.AppendAudit(ctx, ev)
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// ListCanvases lists a project's canvases (anyone who can see the project),
// a page at a time, and the cursor of the next page ("" at the end).
func (s *Service) ListCanvases(ctx context.Context, actor, projectID uuid.UUID, opt ListOptions) ([]*Canvas, string, error) {
	pg, limit, err := opt.page()
	if err != nil {
		return nil, "", err
	}
	var cs []*Canvas
	err = s.store.InTx(ctx, actor, func(tx Tx) error {
		_, role, err := projectAccess(ctx, tx, projectID, actor)
		if err != nil {
			return err
		}
		if err := authorize(role, ActCanvasRead, "Project"); err != nil {
			return err
		}
		cs, err = tx.ListCanvases(ctx, projectID, pg)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	cs, next := nextCursor(cs, limit, func(c *Canvas) uuid.UUID { return c.ID })
	return cs, next, nil
}

// GetCanvas returns a canvas's metadata and the actor's effective role in
// its project. Returns ENotFound if it does not exist or the actor cannot
// see its project.
func (s *Service) GetCanvas(ctx context.Context, actor, id uuid.UUID) (*CanvasWithRole, error) {
	var out *CanvasWithRole
	err := s.store.InTx(ctx, actor, func(tx Tx) error {
		c, _, role, err := canvasAccess(ctx, tx, id, actor, noLock)
		if err != nil {
			return err
		}
		if err := authorize(role, ActCanvasRead, "Canvas"); err != nil {
			return err
		}
		out = &CanvasWithRole{Canvas: c, Role: role}
		return nil
	})
	return out, err
}

// CanvasAccess returns a canvas and the actor's effective role in its
// project, for the realtime layer to authorise a subscription (reading
// needs any role, writing ActCanvasWrite). Returns ENotFound if the canvas
// does not exist or the actor cannot see it.
func (s *Service) CanvasAccess(ctx context.Context, actor, id uuid.UUID) (*Canvas, Role, error) {
	c, err := s.GetCanvas(ctx, actor, id)
	if err != nil {
		return nil, "", err
	}
	return c.Canvas, c.Role, nil
}

// RenameCanvas changes a canvas's name (editors and up).
func (s *Service) RenameCanvas(ctx context.Context, actor, id uuid.UUID, name string) (*Canvas, error) {
	name, err := checkName("name", name)
	if err != nil {
		return nil, err
	}
	var c *Canvas
	err = s.inTx(ctx, actor, func(tx Tx) error {
		var p *Project
		var role Role
		c, p, role, err = canvasAccess(ctx, tx, id, actor, noLock)
		if err != nil {
			return err
		}
		if err := authorize(role, ActCanvasWrite, "Canvas"); err != nil {
			return err
		}
		old := c.Name
		c.Name, c.UpdatedAt = name, s.now()
		if err := tx.UpdateCanvas(ctx, c); err != nil {
			return err
		}
		if err := s.emit(ctx, tx, actor, ProjectChannel(p.ID), EventCanvasRenamed, map[string]any{
			"canvas_id": id, "project_id": p.ID, "name": name, "previous_name": old,
		}); err != nil {
			return err
		}
		ev := s.canvasAudit(ctx, actor, "canvas.update", "canvas", id.String(), p)
		ev.Details = map[string]any{"fields": []string{"name"}, "from": old, "to": name}
		return tx.AppendAudit(ctx, ev)
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// DeleteCanvas deletes a canvas with its content and versions (admins and
// up).
func (s *Service) DeleteCanvas(ctx context.Context, actor, id uuid.UUID) error {
	return s.inTx(ctx, actor, func(tx Tx) error {
		c, p, role, err := canvasAccess(ctx, tx, id, actor, noLock)
		if err != nil {
			return err
		}
		if err := authorize(role, ActCanvasDelete, "Canvas"); err != nil {
			return err
		}
		if err := tx.DeleteCanvas(ctx, id); err != nil {
			return err
		}
		if err := s.emit(ctx, tx, actor, ProjectChannel(p.ID), EventCanvasDeleted, map[string]any{
			"canvas_id": id, "project_id": p.ID, "name": c.Name,
		}); err != nil {
			return err
		}
		ev := s.canvasAudit(ctx, actor, "canvas.delete", "canvas", id.String(), p)
		ev.Details = map[string]any{"name": c.Name}
		return tx.AppendAudit(ctx, ev)
	})
}

// LoadCanvas returns what a replica needs to build a canvas's current
// document (anyone who can see it): the latest periodic snapshot, nil if
// there is none, and the op log entries it does not cover, in append order.
// The two are read consistently: no snapshot can be saved, and the log
// compacted, between them.
func (s *Service) LoadCanvas(ctx context.Context, actor, id uuid.UUID) (*CanvasSnapshot, []*CanvasUpdate, error) {
	var snap *CanvasSnapshot
	var us []*CanvasUpdate
	err := s.store.InTx(ctx, actor, func(tx Tx) error {
		_, _, role, err := canvasAccess(ctx, tx, id, actor, sharedLock)
		if err != nil {
			return err
		}
		if err := authorize(role, ActCanvasRead, "Canvas"); err != nil {
			return err
		}
		snap, err = tx.LatestCanvasSnapshot(ctx, id)
		var since CanvasVersion
		switch {
		case ErrorCode(err) == ENotFound:
			snap = nil
		case err != nil:
			return err
		default:
			since = snap.Version
		}
		us, err = tx.CanvasUpdatesSince(ctx, id, since)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return snap, us, nil
}

// AppendCanvasUpdates durably appends a batch of op log entries to a
// canvas: the group commit of the realtime canvas session, which acks the
// updates once it returns nil. Entries may come from several users (each
// entry's ActorID, who must not be uuid.Nil). All or nothing is written:
//
//   - every entry must belong to canvasID and name a valid, non-empty range
//     (EInvalid);
//   - every distinct actor must currently have ActCanvasWrite on the canvas
//     (ENotFound if they cannot see it, EForbidden if they may only read);
//   - each entry's replica is claimed for its actor, and a replica claimed
//     by another user is EConflict.
//
// Entries already in the log (a double write by another node) are skipped.
// An entry with a zero At gets the current time.
//
// The claims and entries are written in one transaction run as the first
// entry's actor; the row-level security of the op log is per project, so
// any authorised actor may write the others' entries. Each other actor's
// permission is checked in a transaction of their own first, because what
// the first actor may see does not always include the other actor's roles
// (a project-only member cannot see the workspace's members). No audit
// event is written: updates are far too many, and the op log records who
// sent each one.
func (s *Service) AppendCanvasUpdates(ctx context.Context, canvasID uuid.UUID, us []*CanvasUpdate) error {
	if len(us) == 0 {
		return nil
	}
	type claim struct {
		replica uint64
		actor   uuid.UUID
	}
	entries := make([]*CanvasUpdate, len(us))
	var actors []uuid.UUID
	var claims []claim
	seenActor, seenClaim := map[uuid.UUID]bool{}, map[claim]bool{}
	now := s.now()
	for i, u := range us {
		switch {
		case u.CanvasID != canvasID:
			return Errorf(EInvalid, "Every update of a batch must belong to canvas %s.", canvasID).WithDetail("field", "canvas_id")
		case u.ActorID == uuid.Nil:
			return Errorf(EInvalid, "Every canvas update needs an actor.").WithDetail("field", "actor_id")
		case len(u.Data) == 0:
			return Errorf(EInvalid, "A canvas update may not be empty.").WithDetail("field", "data")
		}
		if err := u.Validate(); err != nil {
			return err
		}
		e := *u
		if e.At.IsZero() {
			e.At = now
		}
		e.At = e.At.UTC()
		entries[i] = &e
		if !seenActor[u.ActorID] {
			seenActor[u.ActorID] = true
			actors = append(actors, u.ActorID)
		}
		if c := (claim{u.Replica, u.ActorID}); !seenClaim[c] {
			seenClaim[c] = true
			claims = append(claims, c)
		}
	}
	mayWrite := func(tx Tx, actor uuid.UUID) error {
		_, _, role, err := canvasAccess(ctx, tx, canvasID, actor, noLock)
		if err != nil {
			return err
		}
		return authorize(role, ActCanvasWrite, "Canvas")
	}
	// An editor's right to write is checked at most once per
	// canvasWriterTTL, and a replica claimed once stays claimed, so a busy
	// canvas's batches cost one statement each, not one per writer.
	var check []uuid.UUID
	for _, a := range actors {
		if !s.writers.fresh(canvasWriter{canvasID, a}, now) {
			check = append(check, a)
		}
	}
	var unclaimed []claim
	for _, c := range claims {
		if _, ok := s.claims.Load(canvasClaim{canvasID, c.replica, c.actor}); !ok {
			unclaimed = append(unclaimed, c)
		}
	}
	for _, a := range check {
		if a == actors[0] {
			continue // checked inside the write's own transaction
		}
		if err := s.store.InTx(ctx, a, func(tx Tx) error { return mayWrite(tx, a) }); err != nil {
			return err
		}
	}
	err := s.store.InTx(ctx, actors[0], func(tx Tx) error {
		if slices.Contains(check, actors[0]) {
			if err := mayWrite(tx, actors[0]); err != nil {
				return err
			}
		}
		for _, c := range unclaimed {
			if err := tx.ClaimCanvasReplica(ctx, canvasID, c.replica, c.actor); err != nil {
				return err
			}
		}
		return tx.AppendCanvasUpdates(ctx, entries)
	})
	if err != nil {
		return err
	}
	for _, a := range check {
		s.writers.put(canvasWriter{canvasID, a}, now.Add(canvasWriterTTL))
	}
	for _, c := range unclaimed {
		s.claims.Store(canvasClaim{canvasID, c.replica, c.actor}, struct{}{})
	}
	return nil
}

// canvasWriterTTL is how long a checked right to write a canvas is trusted
// by AppendCanvasUpdates: a role taken away stops a live session's writes
// within this time.
const canvasWriterTTL = 10 * time.Second

type canvasWriter struct{ canvas, actor uuid.UUID }

type canvasClaim struct {
	canvas  uuid.UUID
	replica uint64
	actor   uuid.UUID
}

// expiringSet remembers keys until a deadline. It is safe for concurrent use.
type expiringSet[K comparable] struct {
	mu sync.Mutex
	m  map[K]time.Time
}

func (e *expiringSet[K]) fresh(k K, now time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	until, ok := e.m[k]
	return ok && now.Before(until)
}

func (e *expiringSet[K]) put(k K, until time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m == nil {
		e.m = map[K]time.Time{}
	}
	if len(e.m) > 100000 { // forget everything rather than grow without bound
		clear(e.m)
	}
	e.m[k] = until
}

// ClaimCanvasReplica reserves a replica id of a canvas for the actor, who
// must be allowed to edit it (editors and up). Claiming one's own replica
// again is a no-op; a replica another user claimed is EConflict.
func (s *Service) ClaimCanvasReplica(ctx context.Context, actor, canvasID uuid.UUID, replica uint64) error {
	return s.store.InTx(ctx, actor, func(tx Tx) error {
		_, _, role, err := canvasAccess(ctx, tx, canvasID, actor, noLock)
		if err != nil {
			return err
		}
		if err := authorize(role, ActCanvasWrite, "Canvas"); err != nil {
			return err
		}
		return tx.ClaimCanvasReplica(ctx, canvasID, replica, actor)
	})
}

// RecordCanvasRestore writes the audit event of restoring a named version
// (editors and up). The restore itself is a canvas update: the realtime
// node makes it durable through AppendCanvasUpdates first.
func (s *Service) RecordCanvasRestore(ctx context.Context, actor, canvasID, versionID uuid.UUID) error {
	return s.store.InTx(ctx, actor, func(tx Tx) error {
		_, p, role, err := canvasAccess(ctx, tx, canvasID, actor, noLock)
		if err != nil {
			return err
		}
		if err := authorize(role, ActCanvasWrite, "Canvas"); err != nil {
			return err
		}
		ev := s.canvasAudit(ctx, actor, "canvas.version.restore", "canvas_version", versionID.String(), p)
		ev.Details = map[string]any{"canvas_id": canvasID.String()}
		return tx.AppendAudit(ctx, ev)
	})
}

// SaveCanvasSnapshot stores a periodic snapshot of a canvas's document at
// version v and deletes the op log entries it covers, in one transaction
// (editors and up; the realtime session calls it as its last writer). v
// must cover the latest periodic snapshot's version: otherwise it is
// EConflict, since making it the latest would hide updates that only the
// older snapshot holds (another node saved meanwhile); load, merge and save
// again. No audit event is written: the session saves often, on its own.
func (s *Service) SaveCanvasSnapshot(ctx context.Context, actor, canvasID uuid.UUID, v CanvasVersion, data []byte) error {
	if err := v.Validate(); err != nil {
		return err
	}
	if len(data) == 0 {
		return Errorf(EInvalid, "A canvas snapshot may not be empty.").WithDetail("field", "data")
	}
	return s.store.InTx(ctx, actor, func(tx Tx) error {
		// The exclusive lock serialises snapshot writers of the canvas, and
		// keeps loaders from reading the log half compacted.
		_, _, role, err := canvasAccess(ctx, tx, canvasID, actor, exclusiveLock)
		if err != nil {
			return err
		}
		if err := authorize(role, ActCanvasWrite, "Canvas"); err != nil {
			return err
		}
		latest, err := tx.LatestCanvasSnapshot(ctx, canvasID)
		switch {
		case ErrorCode(err) == ENotFound:
		case err != nil:
			return err
		case !v.Covers(latest.Version):
			return Errorf(EConflict, "The canvas has a newer snapshot than this one; load it, merge and save again.")
		}
		snap := &CanvasSnapshot{ID: newID(), CanvasID: canvasID, Version: v, Data: data, CreatedBy: actor, CreatedAt: s.now()}
		if err := tx.PutCanvasSnapshot(ctx, snap); err != nil {
			return err
		}
		return tx.CompactCanvasUpdates(ctx, canvasID, v)
	})
}

// SaveCanvasVersion saves a named version of a canvas: its document at
// version v (editors and up). Named versions are kept until the canvas is
// deleted and never compact the op log.
func (s *Service) SaveCanvasVersion(ctx context.Context, actor, canvasID uuid.UUID, name string, v CanvasVersion, data []byte) (*CanvasSnapshot, error) {
	name, err := checkName("name", name)
	if err != nil {
		return nil, err
	}
	if err := v.Validate(); err != nil {
		return nil, err
	}
	if len(data) == 0 {
		return nil, Errorf(EInvalid, "A canvas version may not be empty.").WithDetail("field", "data")
	}
	snap := &CanvasSnapshot{ID: newID(), CanvasID: canvasID, Name: name, Version: v, Data: data, CreatedBy: actor, CreatedAt: s.now()}
	err = s.store.InTx(ctx, actor, func(tx Tx) error {
		_, p, role, err := canvasAccess(ctx, tx, canvasID, actor, noLock)
		if err != nil {
			return err
		}
		if err := authorize(role, ActCanvasWrite, "Canvas"); err != nil {
			return err
		}
		if err := tx.PutCanvasSnapshot(ctx, snap); err != nil {
			return err
		}
		ev := s.canvasAudit(ctx, actor, "canvas.version.save", "canvas_version", snap.ID.String(), p)
		ev.Details = map[string]any{"canvas_id": canvasID.String(), "name": name}
		return tx.AppendAudit(ctx, ev)
	})
	if err != nil {
		return nil, err
	}
	return snap, nil
}

// ListCanvasVersions lists a canvas's named versions in id order (UUIDv7:
// the order they were saved in), without their documents (anyone who can
// see the canvas).
func (s *Service) ListCanvasVersions(ctx context.Context, actor, canvasID uuid.UUID, opt ListOptions) ([]*CanvasSnapshot, string, error) {
	pg, limit, err := opt.page()
	if err != nil {
		return nil, "", err
	}
	var vs []*CanvasSnapshot
	err = s.store.InTx(ctx, actor, func(tx Tx) error {
		_, _, role, err := canvasAccess(ctx, tx, canvasID, actor, noLock)
		if err != nil {
			return err
		}
		if err := authorize(role, ActCanvasRead, "Canvas"); err != nil {
			return err
		}
		vs, err = tx.ListCanvasVersions(ctx, canvasID, pg)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	vs, next := nextCursor(vs, limit, func(v *CanvasSnapshot) uuid.UUID { return v.ID })
	return vs, next, nil
}

// CanvasVersionByID returns a named version of a canvas with its document
// (anyone who can see the canvas). Returns ENotFound if there is no such
// version of that canvas.
func (s *Service) CanvasVersionByID(ctx context.Context, actor, canvasID, versionID uuid.UUID) (*CanvasSnapshot, error) {
	var v *CanvasSnapshot
	err := s.store.InTx(ctx, actor, func(tx Tx) error {
		_, _, role, err := canvasAccess(ctx, tx, canvasID, actor, noLock)
		if err != nil {
			return err
		}
		if err := authorize(role, ActCanvasRead, "Canvas"); err != nil {
			return err
		}
		v, err = tx.CanvasVersionByID(ctx, canvasID, versionID)
		return err
	})
	return v, err
}
