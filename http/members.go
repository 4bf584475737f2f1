package http

import (
	"context"
	"net/http"

	"github.com/google/uuid"

	"github.com/tone-ai/tone/domain"
)

// listIn serves a paginated list of the things inside the object named by
// the path parameter param.
func listIn[T, J any](s *Server, param string, fetch func(ctx context.Context, actor, id uuid.UUID, opt domain.ListOptions) ([]T, string, error), conv func(T) J) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := s.pathID(w, r, param)
		if !ok {
			return
		}
		opt, ok := s.listOptions(w, r)
		if !ok {
			return
		}
		items, next, err := fetch(r.Context(), principal(r).UserID, id, opt)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, list(items, next, conv))
	}
}

// members are the member use cases of one kind of object (workspace or
// project), whose endpoints differ only in the path parameter.
type members struct {
	param  string
	list   func(ctx context.Context, actor, id uuid.UUID, opt domain.ListOptions) ([]*domain.Member, string, error)
	add    func(ctx context.Context, actor, id uuid.UUID, email, role string) (*domain.Member, error)
	change func(ctx context.Context, actor, id, user uuid.UUID, role string) (*domain.Member, error)
	remove func(ctx context.Context, actor, id, user uuid.UUID) error
}

func (s *Server) workspaceMembers() members {
	return members{"workspaceID", s.svc.ListWorkspaceMembers, s.svc.AddWorkspaceMember, s.svc.ChangeWorkspaceMemberRole, s.svc.RemoveWorkspaceMember}
}

func (s *Server) projectMembers() members {
	return members{"projectID", s.svc.ListProjectMembers, s.svc.AddProjectMember, s.svc.ChangeProjectMemberRole, s.svc.RemoveProjectMember}
}

func (s *Server) listMembers(m members) http.HandlerFunc {
	return listIn(s, m.param, m.list, toMemberJSON)
}

func (s *Server) addMember(m members) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := s.pathID(w, r, m.param)
		if !ok {
			return
		}
		var req addMemberRequest
		if !s.decodeOrFail(w, r, &req) {
			return
		}
		mem, err := m.add(r.Context(), principal(r).UserID, id, req.Email, req.Role)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusCreated, toMemberJSON(mem))
	}
}

func (s *Server) changeMember(m members) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := s.pathID(w, r, m.param)
		if !ok {
			return
		}
		user, ok := s.pathID(w, r, "userID")
		if !ok {
			return
		}
		var req roleRequest
		if !s.decodeOrFail(w, r, &req) {
			return
		}
		mem, err := m.change(r.Context(), principal(r).UserID, id, user, req.Role)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, toMemberJSON(mem))
	}
}

func (s *Server) removeMember(m members) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := s.pathID(w, r, m.param)
		if !ok {
			return
		}
		user, ok := s.pathID(w, r, "userID")
		if !ok {
			return
		}
		if err := m.remove(r.Context(), principal(r).UserID, id, user); err != nil {
			s.writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}
