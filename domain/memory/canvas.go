package memory

import (
	"bytes"
	"context"
	"maps"
	"slices"

	"github.com/google/uuid"

	"github.com/tone-ai/tone/domain"
)

// replicaKey names a replica of a canvas.
type replicaKey struct {
	canvas  uuid.UUID
	replica uint64
}

// updateKey names an op log entry: (canvas, replica, first).
type updateKey struct {
	canvas  uuid.UUID
	replica uint64
	first   uint64
}

// canvasData is the part of the store holding canvases.
//
// Logs and snapshot lists only ever grow by append or are replaced by new
// slices: no element below a slice's length is overwritten. So the undo log
// can restore an earlier, shorter slice header even though appends may have
// written past its length into the same array.
type canvasData struct {
	canvases  map[uuid.UUID]*domain.Canvas
	replicas  map[replicaKey]uuid.UUID               // claims: the user of each replica
	logs      map[uuid.UUID][]*domain.CanvasUpdate   // per canvas, in append order
	logKeys   map[updateKey]bool                     // the entries of every log
	snapshots map[uuid.UUID][]*domain.CanvasSnapshot // per canvas, in storage order
	snapIDs   map[uuid.UUID]uuid.UUID                // snapshot id to canvas id
}

func newCanvasData() canvasData {
	return canvasData{
		canvases:  map[uuid.UUID]*domain.Canvas{},
		replicas:  map[replicaKey]uuid.UUID{},
		logs:      map[uuid.UUID][]*domain.CanvasUpdate{},
		logKeys:   map[updateKey]bool{},
		snapshots: map[uuid.UUID][]*domain.CanvasSnapshot{},
		snapIDs:   map[uuid.UUID]uuid.UUID{},
	}
}

// normVersion returns a copy of v without zero entries, never nil.
func normVersion(v domain.CanvasVersion) domain.CanvasVersion {
	out := domain.CanvasVersion{}
	for r, s := range v {
		if s > 0 {
			out[r] = s
		}
	}
	return out
}

func cloneUpdate(u *domain.CanvasUpdate) *domain.CanvasUpdate {
	c := clone(u)
	c.Data = bytes.Clone(u.Data)
	return c
}

// cloneSnapshot copies s, with its Data only if withData.
func cloneSnapshot(s *domain.CanvasSnapshot, withData bool) *domain.CanvasSnapshot {
	c := clone(s)
	c.Version = maps.Clone(s.Version)
	c.Data = nil
	if withData {
		c.Data = bytes.Clone(s.Data)
	}
	return c
}

func (t *tx) CreateCanvas(_ context.Context, c *domain.Canvas) error {
	if _, ok := t.s.projects[c.ProjectID]; !ok {
		return notFound("Project")
	}
	if _, ok := t.s.canvases[c.ID]; ok {
		return domain.Errorf(domain.EConflict, "Canvas exists.")
	}
	set(t, t.s.canvases, c.ID, clone(c))
	return nil
}

func (t *tx) CanvasByID(_ context.Context, id uuid.UUID) (*domain.Canvas, error) {
	c, ok := t.s.canvases[id]
	if !ok {
		return nil, notFound("Canvas")
	}
	return clone(c), nil
}

// LockCanvas is CanvasByID: transactions are serialised already.
func (t *tx) LockCanvas(ctx context.Context, id uuid.UUID, _ bool) (*domain.Canvas, error) {
	return t.CanvasByID(ctx, id)
}

func (t *tx) ListCanvases(_ context.Context, project uuid.UUID, p domain.Page) ([]*domain.Canvas, error) {
	var out []*domain.Canvas
	for _, c := range t.s.canvases {
		if c.ProjectID == project {
			out = append(out, clone(c))
		}
	}
	return page(out, func(c *domain.Canvas) uuid.UUID { return c.ID }, p), nil
}

func (t *tx) UpdateCanvas(_ context.Context, c *domain.Canvas) error {
	old, ok := t.s.canvases[c.ID]
	if !ok {
		return notFound("Canvas")
	}
	n := clone(old)
	n.Name, n.UpdatedAt = c.Name, c.UpdatedAt
	set(t, t.s.canvases, c.ID, n)
	return nil
}

func (t *tx) DeleteCanvas(_ context.Context, id uuid.UUID) error {
	if _, ok := t.s.canvases[id]; !ok {
		return notFound("Canvas")
	}
	for k := range t.s.replicas {
		if k.canvas == id {
			del(t, t.s.replicas, k)
		}
	}
	for _, u := range t.s.logs[id] {
		del(t, t.s.logKeys, updateKey{id, u.Replica, u.First})
	}
	del(t, t.s.logs, id)
	for _, s := range t.s.snapshots[id] {
		del(t, t.s.snapIDs, s.ID)
	}
	del(t, t.s.snapshots, id)
	del(t, t.s.canvases, id)
	return nil
}

func checkSeq(n uint64) error {
	if n == 0 || n > domain.MaxCanvasSeq {
		return domain.Errorf(domain.EInvalid, "Replica ids must be between 1 and %d.", uint64(domain.MaxCanvasSeq))
	}
	return nil
}

func (t *tx) ClaimCanvasReplica(_ context.Context, canvas uuid.UUID, replica uint64, user uuid.UUID) error {
	if err := checkSeq(replica); err != nil {
		return err
	}
	if _, ok := t.s.canvases[canvas]; !ok {
		return notFound("Canvas")
	}
	k := replicaKey{canvas, replica}
	if owner, ok := t.s.replicas[k]; ok {
		if owner != user {
			return domain.Errorf(domain.EConflict, "Replica %d of this canvas belongs to another user.", replica)
		}
		return nil
	}
	set(t, t.s.replicas, k, user)
	return nil
}

func (t *tx) AppendCanvasUpdates(_ context.Context, us []*domain.CanvasUpdate) error {
	// Check everything first, so that a refused batch writes nothing.
	for _, u := range us {
		if err := u.Validate(); err != nil {
			return err
		}
		if _, ok := t.s.canvases[u.CanvasID]; !ok {
			return notFound("Canvas")
		}
		if owner, ok := t.s.replicas[replicaKey{u.CanvasID, u.Replica}]; !ok || owner != u.ActorID {
			return domain.Errorf(domain.EConflict, "Replica %d of this canvas is not claimed by the update's actor.", u.Replica)
		}
	}
	for _, u := range us {
		k := updateKey{u.CanvasID, u.Replica, u.First}
		if t.s.logKeys[k] {
			continue
		}
		set(t, t.s.logKeys, k, true)
		set(t, t.s.logs, u.CanvasID, append(t.s.logs[u.CanvasID], cloneUpdate(u)))
	}
	return nil
}

func (t *tx) CanvasUpdatesSince(_ context.Context, canvas uuid.UUID, v domain.CanvasVersion) ([]*domain.CanvasUpdate, error) {
	if err := v.Validate(); err != nil {
		return nil, err
	}
	var out []*domain.CanvasUpdate
	for _, u := range t.s.logs[canvas] {
		if u.Last > v[u.Replica] {
			out = append(out, cloneUpdate(u))
		}
	}
	return out, nil
}

func (t *tx) CompactCanvasUpdates(_ context.Context, canvas uuid.UUID, v domain.CanvasVersion) error {
	if err := v.Validate(); err != nil {
		return err
	}
	log := t.s.logs[canvas]
	keep := make([]*domain.CanvasUpdate, 0, len(log))
	for _, u := range log {
		if u.Last > v[u.Replica] {
			keep = append(keep, u)
		} else {
			del(t, t.s.logKeys, updateKey{canvas, u.Replica, u.First})
		}
	}
	if len(keep) < len(log) {
		set(t, t.s.logs, canvas, keep)
	}
	return nil
}

func (t *tx) PutCanvasSnapshot(_ context.Context, s *domain.CanvasSnapshot) error {
	if err := s.Version.Validate(); err != nil {
		return err
	}
	if _, ok := t.s.canvases[s.CanvasID]; !ok {
		return notFound("Canvas")
	}
	if _, ok := t.s.snapIDs[s.ID]; ok {
		return domain.Errorf(domain.EConflict, "Canvas snapshot exists.")
	}
	c := cloneSnapshot(s, true)
	c.Version = normVersion(s.Version)
	set(t, t.s.snapIDs, s.ID, s.CanvasID)
	set(t, t.s.snapshots, s.CanvasID, append(t.s.snapshots[s.CanvasID], c))
	return nil
}

func (t *tx) LatestCanvasSnapshot(_ context.Context, canvas uuid.UUID) (*domain.CanvasSnapshot, error) {
	list := t.s.snapshots[canvas]
	for i := len(list) - 1; i >= 0; i-- {
		if list[i].Name == "" {
			return cloneSnapshot(list[i], true), nil
		}
	}
	return nil, notFound("Canvas snapshot")
}

func (t *tx) ListCanvasVersions(_ context.Context, canvas uuid.UUID, p domain.Page) ([]*domain.CanvasSnapshot, error) {
	var out []*domain.CanvasSnapshot
	for _, s := range t.s.snapshots[canvas] {
		if s.Name != "" {
			out = append(out, cloneSnapshot(s, false))
		}
	}
	return page(out, func(s *domain.CanvasSnapshot) uuid.UUID { return s.ID }, p), nil
}

func (t *tx) CanvasVersionByID(_ context.Context, canvas, id uuid.UUID) (*domain.CanvasSnapshot, error) {
	if t.s.snapIDs[id] == canvas {
		i := slices.IndexFunc(t.s.snapshots[canvas], func(s *domain.CanvasSnapshot) bool { return s.ID == id })
		if i >= 0 && t.s.snapshots[canvas][i].Name != "" {
			return cloneSnapshot(t.s.snapshots[canvas][i], true), nil
		}
	}
	return nil, notFound("Version")
}
