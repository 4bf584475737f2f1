package http

import (
	"context"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/tone-ai/tone/domain"
)

// CanvasLive is what the canvas version endpoints need from the realtime
// node that holds the live documents; realtime.Node implements it.
type CanvasLive interface {
	SaveCanvasVersion(ctx context.Context, actor, canvasID uuid.UUID, name string) (*domain.CanvasSnapshot, error)
	RestoreCanvasVersion(ctx context.Context, actor, canvasID, versionID uuid.UUID) error
	// DropCanvas discards the live document of a deleted canvas.
	DropCanvas(canvasID uuid.UUID)
}

type canvasJSON struct {
	ID        uuid.UUID `json:"id"`
	ProjectID uuid.UUID `json:"project_id"`
	Name      string    `json:"name"`
	CreatedBy uuid.UUID `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Role      string    `json:"role,omitempty"`
}

func toCanvasJSON(c *domain.Canvas) canvasJSON {
	return canvasJSON{ID: c.ID, ProjectID: c.ProjectID, Name: c.Name, CreatedBy: c.CreatedBy, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
}

type canvasVersionJSON struct {
	ID        uuid.UUID         `json:"id"`
	CanvasID  uuid.UUID         `json:"canvas_id"`
	Name      string            `json:"name"`
	Version   map[string]uint64 `json:"version"`
	CreatedBy uuid.UUID         `json:"created_by"`
	CreatedAt time.Time         `json:"created_at"`
	Snapshot  []byte            `json:"snapshot,omitempty"`
}

func toCanvasVersionJSON(v *domain.CanvasSnapshot) canvasVersionJSON {
	vv := make(map[string]uint64, len(v.Version))
	for r, s := range v.Version {
		vv[formatUint(r)] = s
	}
	return canvasVersionJSON{ID: v.ID, CanvasID: v.CanvasID, Name: v.Name, Version: vv, CreatedBy: v.CreatedBy, CreatedAt: v.CreatedAt, Snapshot: v.Data}
}

func formatUint(u uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + u%10)
		u /= 10
		if u == 0 {
			return string(b[i:])
		}
	}
}

func (s *Server) createCanvas(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "projectID")
	if !ok {
		return
	}
	var req nameRequest
	if !s.decodeOrFail(w, r, &req) {
		return
	}
	c, err := s.svc.CreateCanvas(r.Context(), principal(r).UserID, id, req.Name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/canvases/"+c.ID.String())
	writeJSON(w, http.StatusCreated, toCanvasJSON(c))
}

func (s *Server) getCanvas(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "canvasID")
	if !ok {
		return
	}
	c, err := s.svc.GetCanvas(r.Context(), principal(r).UserID, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := toCanvasJSON(c.Canvas)
	out.Role = string(c.Role)
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) updateCanvas(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "canvasID")
	if !ok {
		return
	}
	var req nameRequest
	if !s.decodeOrFail(w, r, &req) {
		return
	}
	c, err := s.svc.RenameCanvas(r.Context(), principal(r).UserID, id, req.Name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toCanvasJSON(c))
}

func (s *Server) deleteCanvas(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "canvasID")
	if !ok {
		return
	}
	if err := s.svc.DeleteCanvas(r.Context(), principal(r).UserID, id); err != nil {
		s.writeError(w, r, err)
		return
	}
	if s.cfg.Canvases != nil {
		s.cfg.Canvases.DropCanvas(id)
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) canvasLive(w http.ResponseWriter, r *http.Request) (CanvasLive, bool) {
	if s.cfg.Canvases == nil {
		s.writeError(w, r, domain.Errorf(domain.EUnavailable, "Canvas versions are not served here."))
		return nil, false
	}
	return s.cfg.Canvases, true
}

func (s *Server) saveCanvasVersion(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "canvasID")
	if !ok {
		return
	}
	var req nameRequest
	if !s.decodeOrFail(w, r, &req) {
		return
	}
	live, ok := s.canvasLive(w, r)
	if !ok {
		return
	}
	v, err := live.SaveCanvasVersion(r.Context(), principal(r).UserID, id, req.Name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := toCanvasVersionJSON(v)
	out.Snapshot = nil
	w.Header().Set("Location", "/api/v1/canvases/"+id.String()+"/versions/"+v.ID.String())
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) getCanvasVersion(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "canvasID")
	if !ok {
		return
	}
	vid, ok := s.pathID(w, r, "versionID")
	if !ok {
		return
	}
	v, err := s.svc.CanvasVersionByID(r.Context(), principal(r).UserID, id, vid)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toCanvasVersionJSON(v))
}

func (s *Server) restoreCanvasVersion(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "canvasID")
	if !ok {
		return
	}
	vid, ok := s.pathID(w, r, "versionID")
	if !ok {
		return
	}
	live, ok := s.canvasLive(w, r)
	if !ok {
		return
	}
	if err := live.RestoreCanvasVersion(r.Context(), principal(r).UserID, id, vid); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
