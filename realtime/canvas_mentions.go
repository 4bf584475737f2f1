package realtime

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/tone-ai/tone/crdt"
	"github.com/tone-ai/tone/domain"
)

// MentionNotifier is the optional ability of a CanvasStore to notify the
// people an edit mentions. The domain Service has it.
type MentionNotifier interface {
	// NotifyCanvasMentions notifies the project members that handles
	// name that actor mentioned them in element's text on a canvas.
	NotifyCanvasMentions(ctx context.Context, actor, canvasID uuid.UUID, element string, handles []string) error
}

// textKey names one text property of one element.
type textKey struct {
	elem crdt.ID
	prop string
}

// mentionTracker finds the @mentions that edits add to a canvas's texts.
// A text edited by a client of this node is looked at once it has been
// left alone for the session's mention delay, so that typing "@bobby" does
// not mention bob on the way; only handles that were not in the text
// before (when the session first saw it) are new. Edits that arrive
// from other nodes are theirs to notify.
type mentionTracker struct {
	mu    sync.Mutex
	known map[textKey][]string  // handles in each text as last looked at
	dirty map[textKey]uuid.UUID // texts edited since, and by whom last
	timer *time.Timer
}

// textKeys lists the texts u edits.
func textKeys(u *crdt.Update) []textKey {
	var out []textKey
	for i := range u.Ops {
		op := &u.Ops[i]
		if op.Kind == crdt.OpTextInsert {
			k := textKey{op.Elem, op.TextProp}
			if !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	return out
}

// beforeApply records the handles of the texts u edits that the tracker
// has not seen yet, as they are before u. Called with s.mu held.
func (s *canvasSession) beforeApply(u *crdt.Update) []textKey {
	if s.mgr.notifier == nil {
		return nil
	}
	keys := textKeys(u)
	if len(keys) == 0 {
		return nil
	}
	m := &s.mentions
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.known == nil {
		m.known, m.dirty = map[textKey][]string{}, map[textKey]uuid.UUID{}
	}
	for _, k := range keys {
		if _, ok := m.known[k]; !ok {
			m.known[k] = domain.MentionHandles(s.doc.Text(k.elem, k.prop))
		}
	}
	return keys
}

// afterApply marks the texts user edited and (re)starts the delay.
func (s *canvasSession) afterApply(keys []textKey, user uuid.UUID) {
	if len(keys) == 0 {
		return
	}
	m := &s.mentions
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keys {
		m.dirty[k] = user
	}
	if m.timer == nil {
		m.timer = time.AfterFunc(s.mgr.cfg.MentionDelay, s.checkMentions)
	} else {
		m.timer.Reset(s.mgr.cfg.MentionDelay)
	}
}

// flushMentions notifies what is pending at once (the session is being
// unloaded).
func (s *canvasSession) flushMentions() {
	m := &s.mentions
	m.mu.Lock()
	pending := m.timer != nil && m.timer.Stop()
	m.mu.Unlock()
	if pending {
		s.checkMentions()
	}
}

// checkMentions looks at the texts edited since the last look and
// notifies who they newly mention.
func (s *canvasSession) checkMentions() {
	type found struct {
		key     textKey
		by      uuid.UUID
		handles []string
	}
	var todo []found
	s.mu.Lock()
	m := &s.mentions
	m.mu.Lock()
	for k, by := range m.dirty {
		now := domain.MentionHandles(s.doc.Text(k.elem, k.prop))
		var added []string
		for _, h := range now {
			if !slices.Contains(m.known[k], h) {
				added = append(added, h)
			}
		}
		m.known[k] = now
		if len(added) > 0 {
			todo = append(todo, found{k, by, added})
		}
	}
	clear(m.dirty)
	m.mu.Unlock()
	s.mu.Unlock()
	for _, f := range todo {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := s.mgr.notifier.NotifyCanvasMentions(ctx, f.by, s.id, elementName(f.key.elem), f.handles)
		cancel()
		if err != nil {
			s.mgr.node.log.Warn("canvas mentions not notified", "canvas_id", s.id, "element", elementName(f.key.elem), "err", err)
		}
	}
}

// elementName writes an element id as "replica.seq", as the crdt's errors
// and docs/api.md do.
func elementName(id crdt.ID) string { return fmt.Sprintf("%d.%d", id.Replica, id.Seq) }
