package http

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/tone-ai/tone/domain"
)

type notificationJSON struct {
	ID          uuid.UUID       `json:"id"`
	Type        string          `json:"type"`
	WorkspaceID *uuid.UUID      `json:"workspace_id"`
	ProjectID   *uuid.UUID      `json:"project_id"`
	ActorID     *uuid.UUID      `json:"actor_id"`
	Count       int             `json:"count"`
	Data        json.RawMessage `json:"data"`
	CreatedAt   time.Time       `json:"created_at"`
	UpdatedAt   time.Time       `json:"updated_at"`
	SeenAt      *time.Time      `json:"seen_at"`
	ReadAt      *time.Time      `json:"read_at"`
	ArchivedAt  *time.Time      `json:"archived_at"`
}

// optID is id, or nil (JSON null) for uuid.Nil.
func optID(id uuid.UUID) *uuid.UUID {
	if id == uuid.Nil {
		return nil
	}
	return &id
}

func toNotificationJSON(n *domain.Notification) notificationJSON {
	return notificationJSON{ID: n.ID, Type: n.Type, WorkspaceID: optID(n.WorkspaceID), ProjectID: optID(n.ProjectID),
		ActorID: optID(n.ActorID), Count: n.Count, Data: n.Data, CreatedAt: n.CreatedAt, UpdatedAt: n.UpdatedAt,
		SeenAt: n.SeenAt, ReadAt: n.ReadAt, ArchivedAt: n.ArchivedAt}
}

func (s *Server) listNotifications(w http.ResponseWriter, r *http.Request) {
	lo, ok := s.listOptions(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	opt := domain.NotificationListOptions{ListOptions: lo, Type: q.Get("type")}
	switch q.Get("unread") {
	case "", "false":
	case "true":
		opt.Unread = true
	default:
		s.writeError(w, r, domain.Errorf(domain.EInvalid, "unread must be true or false.").WithDetail("field", "unread"))
		return
	}
	switch q.Get("archived") {
	case "", "false":
		opt.Archived = domain.ArchivedExclude
	case "true":
		opt.Archived = domain.ArchivedOnly
	case "all":
		opt.Archived = domain.ArchivedInclude
	default:
		s.writeError(w, r, domain.Errorf(domain.EInvalid, "archived must be true, false or all.").WithDetail("field", "archived"))
		return
	}
	ns, next, err := s.svc.ListNotifications(r.Context(), principal(r).UserID, opt)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list(ns, next, toNotificationJSON))
}

func (s *Server) notificationCounts(w http.ResponseWriter, r *http.Request) {
	c, err := s.svc.NotificationCounts(r.Context(), principal(r).UserID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (s *Server) updateNotification(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "notificationID")
	if !ok {
		return
	}
	var req struct {
		Seen     *bool `json:"seen"`
		Read     *bool `json:"read"`
		Archived *bool `json:"archived"`
	}
	if !s.decodeOrFail(w, r, &req) {
		return
	}
	var states []domain.NotificationState
	for _, f := range []struct {
		name  string
		set   *bool
		state domain.NotificationState
	}{{"seen", req.Seen, domain.StateSeen}, {"read", req.Read, domain.StateRead}, {"archived", req.Archived, domain.StateArchived}} {
		switch {
		case f.set == nil:
		case !*f.set:
			s.writeError(w, r, domain.Errorf(domain.EInvalid, "%s can only be set to true.", f.name).WithDetail("field", f.name))
			return
		default:
			states = append(states, f.state)
		}
	}
	if len(states) == 0 {
		s.writeError(w, r, domain.Errorf(domain.EInvalid, "Set at least one of seen, read, archived."))
		return
	}
	n, err := s.svc.MarkNotification(r.Context(), principal(r).UserID, id, states...)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toNotificationJSON(n))
}

// markAllNotifications marks every notification of the caller.
func (s *Server) markAllNotifications(state domain.NotificationState) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := s.svc.MarkAllNotifications(r.Context(), principal(r).UserID, state)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, c)
	}
}

type notificationPreferenceJSON struct {
	Type        string `json:"type"`
	Description string `json:"description"`
	Enabled     bool   `json:"enabled"`
	Critical    bool   `json:"critical"`
}

func preferencesJSON(ps []domain.NotificationPreference) map[string]any {
	out := make([]notificationPreferenceJSON, len(ps))
	for i, p := range ps {
		out[i] = notificationPreferenceJSON{Type: p.Name, Description: p.Description, Enabled: p.Enabled, Critical: p.Critical}
	}
	return map[string]any{"items": out}
}

func (s *Server) getNotificationPreferences(w http.ResponseWriter, r *http.Request) {
	ps, err := s.svc.NotificationPreferences(r.Context(), principal(r).UserID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, preferencesJSON(ps))
}

func (s *Server) updateNotificationPreferences(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Preferences map[string]bool `json:"preferences"`
	}
	if !s.decodeOrFail(w, r, &req) {
		return
	}
	ps, err := s.svc.SetNotificationPreferences(r.Context(), principal(r).UserID, req.Preferences)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, preferencesJSON(ps))
}
