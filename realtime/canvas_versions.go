package realtime

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/google/uuid"

	"github.com/tone-ai/tone/crdt"
	"github.com/tone-ai/tone/domain"
)

// SaveCanvasVersion saves the current document of a canvas as a named
// version (editors and up). The canvas is loaded if nobody has it open.
func (n *Node) SaveCanvasVersion(ctx context.Context, actor, canvasID uuid.UUID, name string) (*domain.CanvasSnapshot, error) {
	m, err := n.canvasManager()
	if err != nil {
		return nil, err
	}
	s, err := m.acquire(ctx, actor, canvasID)
	if err != nil {
		return nil, err
	}
	defer m.release(s)
	s.waitFlushed(ctx)
	s.mu.Lock()
	data, vv := s.doc.Snapshot(), vvToDomain(s.doc.Version())
	s.mu.Unlock()
	return m.store.SaveCanvasVersion(ctx, actor, canvasID, name, vv, data)
}

// RestoreCanvasVersion makes a canvas look as it did in a named version, by
// new forward operations (made for actor under a fresh replica id), so that
// everyone's history is kept and the restore itself can be undone or
// restored away. Editors and up.
func (n *Node) RestoreCanvasVersion(ctx context.Context, actor, canvasID, versionID uuid.UUID) error {
	m, err := n.canvasManager()
	if err != nil {
		return err
	}
	_, role, err := m.store.CanvasAccess(ctx, actor, canvasID)
	if err != nil {
		return err
	}
	if !role.Can(domain.ActCanvasWrite) {
		return domain.Errorf(domain.EForbidden, "Your role (%s) may not edit this canvas.", role)
	}
	v, err := m.store.CanvasVersionByID(ctx, actor, canvasID, versionID)
	if err != nil {
		return err
	}
	target, err := crdt.Load(serverReplica, m.cfg.Schema, v.Data)
	if err != nil {
		return fmt.Errorf("canvas %s: version %s: %w", canvasID, versionID, err)
	}
	s, err := m.acquire(ctx, actor, canvasID)
	if err != nil {
		return err
	}
	defer m.release(s)

	replica := newReplicaID()
	if err := m.store.ClaimCanvasReplica(ctx, actor, canvasID, replica); err != nil {
		return err
	}
	s.mu.Lock()
	current := s.doc.Snapshot()
	s.mu.Unlock()
	work, err := crdt.Load(crdt.ReplicaID(replica), m.cfg.Schema, current)
	if err != nil {
		return fmt.Errorf("canvas %s: copy: %w", canvasID, err)
	}
	updates, err := revert(work, target)
	if err != nil {
		return fmt.Errorf("canvas %s: restore %s: %w", canvasID, versionID, err)
	}
	if len(updates) > 0 {
		merged, err := crdt.MergeUpdates(updates...)
		if err != nil {
			return fmt.Errorf("canvas %s: restore %s: %w", canvasID, versionID, err)
		}
		if err := s.submit(ctx, actor, "", replica, merged); err != nil {
			return err
		}
	}
	return m.store.RecordCanvasRestore(ctx, actor, canvasID, versionID)
}

// DropCanvas forgets a deleted canvas: its session is discarded without a
// final snapshot, and its subscribers are reset (subscribing again answers
// not_found).
func (n *Node) DropCanvas(canvasID uuid.UUID) {
	if n.canvas == nil {
		return
	}
	m := n.canvas
	m.mu.Lock()
	s := m.sessions[canvasID]
	delete(m.sessions, canvasID)
	m.mu.Unlock()
	if s != nil {
		s.mu.Lock()
		s.broken, s.deleted = true, true // no more writes, no final snapshot
		if s.idle != nil {
			s.idle.Stop()
		}
		loaded := s.doc != nil
		s.mu.Unlock()
		if loaded {
			n.metrics.canvases.Dec()
		}
	}
	ch := canvasKind + ":" + canvasID.String()
	n.hub.each(ch, func(sub *subscription) { n.resetSub(sub, "canvas deleted") })
}

func (n *Node) canvasManager() (*canvasSessions, error) {
	if n.canvas == nil {
		return nil, domain.Errorf(domain.EUnavailable, "Canvases are not served by this node.")
	}
	return n.canvas, nil
}

// newReplicaID returns a random replica id in [2^32, 2^53), a range clients
// are asked to draw from too, so collisions are negligible.
func newReplicaID() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return 1<<32 + binary.LittleEndian.Uint64(b[:])%(1<<53-1<<32)
}

// revertTexts makes the collaborative texts of element id read as in want
// (a missing entry is an empty text), appending the updates to updates.
func revertTexts(work *crdt.Doc, id crdt.ID, have, want map[string]string, updates [][]byte) ([][]byte, error) {
	props := make([]string, 0, len(have)+len(want))
	for p := range want {
		props = append(props, p)
	}
	for p := range have {
		if _, ok := want[p]; !ok {
			props = append(props, p)
		}
	}
	slices.Sort(props)
	for _, p := range props {
		if have[p] == want[p] {
			continue
		}
		u, err := work.ReplaceText(id, p, want[p])
		if err != nil {
			return nil, err
		}
		updates = append(updates, u)
	}
	return updates, nil
}

// revert edits work until its visible tree equals target's, and returns the
// updates of those edits. It walks target's tree from the root, parents
// before children, so every parent is in place before its children move in.
func revert(work, target *crdt.Doc) ([][]byte, error) {
	var updates [][]byte
	keep := map[crdt.ID]bool{}
	rename := map[crdt.ID]crdt.ID{} // target elements recreated under new ids
	queue := []crdt.ID{crdt.Root}
	for len(queue) > 0 {
		parent := queue[0]
		queue = queue[1:]
		for _, id := range target.Children(parent) {
			queue = append(queue, id)
			want, _ := target.Element(id)
			wantParent := want.Parent
			if r, ok := rename[wantParent]; ok {
				wantParent = r
			}
			have, ok := work.Element(id)
			if !ok {
				// Collected from the current document: recreate it.
				nid, u, err := work.Create(want.Type, wantParent, want.Key, want.Props)
				if err != nil {
					return nil, err
				}
				rename[id] = nid
				keep[nid] = true
				updates = append(updates, u)
				if updates, err = revertTexts(work, nid, nil, want.Texts, updates); err != nil {
					return nil, err
				}
				continue
			}
			keep[id] = true
			if have.Deleted {
				u, err := work.Restore(id)
				if err != nil {
					return nil, err
				}
				updates = append(updates, u)
			}
			if have.Parent != wantParent || have.Key != want.Key {
				u, err := work.Move(id, wantParent, want.Key)
				if err != nil {
					return nil, err
				}
				updates = append(updates, u)
			}
			changes := crdt.Props{}
			for k, v := range want.Props {
				if hv, ok := have.Props[k]; !ok || !hv.Equal(v) {
					changes[k] = v
				}
			}
			for k := range have.Props {
				if _, ok := want.Props[k]; !ok {
					changes[k] = crdt.Null
				}
			}
			if len(changes) > 0 {
				u, err := work.Set(id, changes)
				if err != nil {
					return nil, err
				}
				updates = append(updates, u)
			}
			var err error
			if updates, err = revertTexts(work, id, have.Texts, want.Texts, updates); err != nil {
				return nil, err
			}
		}
	}
	// Whatever is still shown but not in the target goes. Deleting a
	// container hides what is left inside it, so only the topmost extra
	// elements need a delete.
	var extra []crdt.ID
	queue = []crdt.ID{crdt.Root}
	for len(queue) > 0 {
		parent := queue[0]
		queue = queue[1:]
		for _, id := range work.Children(parent) {
			if keep[id] {
				queue = append(queue, id)
			} else {
				extra = append(extra, id)
			}
		}
	}
	for _, id := range extra {
		u, err := work.Delete(id)
		if err != nil {
			return nil, err
		}
		updates = append(updates, u)
	}
	return updates, nil
}
