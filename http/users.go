package http

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/tone-ai/tone/domain"
)

type userJSON struct {
	ID          uuid.UUID       `json:"id"`
	Email       string          `json:"email"`
	DisplayName string          `json:"display_name"`
	AvatarURL   string          `json:"avatar_url"`
	TimeZone    string          `json:"time_zone"`
	Preferences json.RawMessage `json:"preferences"`
	CreatedAt   time.Time       `json:"created_at"`
	UpdatedAt   time.Time       `json:"updated_at"`
}

func toUserJSON(u *domain.User) userJSON {
	prefs := u.Preferences
	if len(prefs) == 0 {
		prefs = json.RawMessage("{}")
	}
	return userJSON{ID: u.ID, Email: u.Email, DisplayName: u.DisplayName, AvatarURL: u.AvatarURL,
		TimeZone: u.TimeZone, Preferences: prefs, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt}
}

func (s *Server) getMe(w http.ResponseWriter, r *http.Request) {
	u, err := s.svc.Me(r.Context(), principal(r).UserID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toUserJSON(u))
}

func (s *Server) updateMe(w http.ResponseWriter, r *http.Request) {
	var req struct {
		DisplayName *string         `json:"display_name"`
		AvatarURL   *string         `json:"avatar_url"`
		TimeZone    *string         `json:"time_zone"`
		Preferences json.RawMessage `json:"preferences"`
	}
	if !s.decodeOrFail(w, r, &req) {
		return
	}
	u, err := s.svc.UpdateMe(r.Context(), principal(r).UserID, domain.ProfileUpdate{
		DisplayName: req.DisplayName, AvatarURL: req.AvatarURL, TimeZone: req.TimeZone, Preferences: req.Preferences,
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toUserJSON(u))
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "userID")
	if !ok {
		return
	}
	p, err := s.svc.Profile(r.Context(), principal(r).UserID, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id": p.ID, "display_name": p.DisplayName, "avatar_url": p.AvatarURL, "time_zone": p.TimeZone,
	})
}
