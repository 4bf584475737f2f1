package http

import (
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/tone-ai/tone/domain"
)

type workspaceJSON struct {
	ID        uuid.UUID `json:"id"`
	Name      string    `json:"name"`
	CreatedBy uuid.UUID `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Role      string    `json:"role,omitempty"`
}

func toWorkspaceJSON(w *domain.Workspace) workspaceJSON {
	return workspaceJSON{ID: w.ID, Name: w.Name, CreatedBy: w.CreatedBy, CreatedAt: w.CreatedAt, UpdatedAt: w.UpdatedAt}
}

type memberJSON struct {
	UserID      uuid.UUID `json:"user_id"`
	Email       string    `json:"email"`
	DisplayName string    `json:"display_name"`
	Role        string    `json:"role"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func toMemberJSON(m *domain.Member) memberJSON {
	return memberJSON{UserID: m.UserID, Email: m.Email, DisplayName: m.DisplayName, Role: string(m.Role), CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt}
}

type nameRequest struct {
	Name string `json:"name"`
}

type addMemberRequest struct {
	Email string `json:"email"`
	Role  string `json:"role"`
}

type roleRequest struct {
	Role string `json:"role"`
}

func (s *Server) listWorkspaces(w http.ResponseWriter, r *http.Request) {
	opt, ok := s.listOptions(w, r)
	if !ok {
		return
	}
	ws, next, err := s.svc.ListWorkspaces(r.Context(), principal(r).UserID, opt)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list(ws, next, toWorkspaceJSON))
}

func (s *Server) createWorkspace(w http.ResponseWriter, r *http.Request) {
	var req nameRequest
	if !s.decodeOrFail(w, r, &req) {
		return
	}
	ws, err := s.svc.CreateWorkspace(r.Context(), principal(r).UserID, req.Name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := toWorkspaceJSON(ws)
	out.Role = string(domain.RoleOwner)
	w.Header().Set("Location", "/api/v1/workspaces/"+ws.ID.String())
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) getWorkspace(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "workspaceID")
	if !ok {
		return
	}
	ws, err := s.svc.GetWorkspace(r.Context(), principal(r).UserID, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := toWorkspaceJSON(ws.Workspace)
	out.Role = string(ws.Role)
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) updateWorkspace(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "workspaceID")
	if !ok {
		return
	}
	var req nameRequest
	if !s.decodeOrFail(w, r, &req) {
		return
	}
	ws, err := s.svc.RenameWorkspace(r.Context(), principal(r).UserID, id, req.Name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toWorkspaceJSON(ws))
}

func (s *Server) deleteWorkspace(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "workspaceID")
	if !ok {
		return
	}
	if err := s.svc.DeleteWorkspace(r.Context(), principal(r).UserID, id); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
