package http

import (
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/tone-ai/tone/domain"
)

type projectJSON struct {
	ID          uuid.UUID `json:"id"`
	WorkspaceID uuid.UUID `json:"workspace_id"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	CreatedBy   uuid.UUID `json:"created_by"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	Role        string    `json:"role,omitempty"`
}

func toProjectJSON(p *domain.Project) projectJSON {
	return projectJSON{ID: p.ID, WorkspaceID: p.WorkspaceID, Name: p.Name, Description: p.Description,
		CreatedBy: p.CreatedBy, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt}
}

type projectRequest struct {
	Name        *string `json:"name"`
	Description *string `json:"description"`
}

func (s *Server) createProject(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "workspaceID")
	if !ok {
		return
	}
	var req projectRequest
	if !s.decodeOrFail(w, r, &req) {
		return
	}
	p, err := s.svc.CreateProject(r.Context(), principal(r).UserID, id, domain.ProjectInput{Name: req.Name, Description: req.Description})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := toProjectJSON(p)
	out.Role = string(domain.RoleOwner)
	w.Header().Set("Location", "/api/v1/projects/"+p.ID.String())
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) getProject(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "projectID")
	if !ok {
		return
	}
	p, err := s.svc.GetProject(r.Context(), principal(r).UserID, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := toProjectJSON(p.Project)
	out.Role = string(p.Role)
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) updateProject(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "projectID")
	if !ok {
		return
	}
	var req projectRequest
	if !s.decodeOrFail(w, r, &req) {
		return
	}
	p, err := s.svc.UpdateProject(r.Context(), principal(r).UserID, id, domain.ProjectInput{Name: req.Name, Description: req.Description})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toProjectJSON(p))
}

func (s *Server) deleteProject(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "projectID")
	if !ok {
		return
	}
	if err := s.svc.DeleteProject(r.Context(), principal(r).UserID, id); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
