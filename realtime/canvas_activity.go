package realtime

import (
	"slices"

	"github.com/google/uuid"

	"github.com/tone-ai/tone/domain"
)

// noteEditor records that user wrote to the canvas. Called with s.mu held.
func (s *canvasSession) noteEditor(user uuid.UUID) {
	if s.editors == nil {
		s.editors = map[uuid.UUID]struct{}{}
	}
	s.editors[user] = struct{}{}
}

// CanvasActivity returns, for every canvas loaded on this node, how many
// connections are subscribed to it and who wrote to it since the previous
// call, which starts a new period. `tone serve` records it periodically
// (domain.Service.RecordCanvasActivity).
func (n *Node) CanvasActivity() []domain.CanvasActivity {
	if n.canvas == nil {
		return nil
	}
	m := n.canvas
	m.mu.Lock()
	sessions := make([]*canvasSession, 0, len(m.sessions))
	for _, s := range m.sessions {
		sessions = append(sessions, s)
	}
	m.mu.Unlock()
	var out []domain.CanvasActivity
	for _, s := range sessions {
		s.mu.Lock()
		a := domain.CanvasActivity{CanvasID: s.id, Viewers: s.subs}
		for u := range s.editors {
			a.Editors = append(a.Editors, u)
		}
		s.editors = nil
		s.mu.Unlock()
		slices.SortFunc(a.Editors, func(x, y uuid.UUID) int { return slices.Compare(x[:], y[:]) })
		if a.Viewers > 0 || len(a.Editors) > 0 {
			out = append(out, a)
		}
	}
	return out
}
