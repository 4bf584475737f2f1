package http

import (
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tone-ai/tone/domain"
)

type tokensJSON struct {
	AccessToken      string    `json:"access_token"`
	TokenType        string    `json:"token_type"`
	ExpiresIn        int       `json:"expires_in"`
	ExpiresAt        time.Time `json:"expires_at"`
	RefreshToken     string    `json:"refresh_token"`
	RefreshExpiresAt time.Time `json:"refresh_expires_at"`
	UserID           uuid.UUID `json:"user_id"`
	SessionID        uuid.UUID `json:"session_id"`
}

func toTokensJSON(t *domain.Tokens) tokensJSON {
	return tokensJSON{
		AccessToken: t.AccessToken, TokenType: "Bearer",
		ExpiresIn: int(t.AccessExpiresAt.Sub(t.IssuedAt).Round(time.Second).Seconds()), ExpiresAt: t.AccessExpiresAt,
		RefreshToken: t.RefreshToken, RefreshExpiresAt: t.RefreshExpiresAt,
		UserID: t.UserID, SessionID: t.SessionID,
	}
}

func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Email       string `json:"email"`
		Password    string `json:"password"`
		DisplayName string `json:"display_name"`
	}
	if !s.decodeOrFail(w, r, &req) {
		return
	}
	if s.loginIP.RespondOnLimit(w, r, "register:"+ipOf(r)) {
		return
	}
	err := s.svc.Register(r.Context(), domain.Registration{Email: req.Email, Password: req.Password, DisplayName: req.DisplayName})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{
		"status":  "accepted",
		"message": "If this email had no account, it has one now; sign in to continue.",
	})
}

func ipOf(r *http.Request) string {
	k, _ := clientIPKey(r)
	return k
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if !s.decodeOrFail(w, r, &req) {
		return
	}
	if s.loginIP.RespondOnLimit(w, r, "login:"+ipOf(r)) {
		return
	}
	if s.loginAccount.RespondOnLimit(w, r, "login:"+strings.ToLower(strings.TrimSpace(req.Email))) {
		return
	}
	t, err := s.svc.Login(r.Context(), req.Email, req.Password)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toTokensJSON(t))
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

func (s *Server) refresh(w http.ResponseWriter, r *http.Request) {
	var req refreshRequest
	if !s.decodeOrFail(w, r, &req) {
		return
	}
	t, err := s.svc.Refresh(r.Context(), req.RefreshToken)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toTokensJSON(t))
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	var req refreshRequest
	if !s.decodeOrFail(w, r, &req) {
		return
	}
	if err := s.svc.Logout(r.Context(), req.RefreshToken); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) logoutEverywhere(w http.ResponseWriter, r *http.Request) {
	if err := s.svc.LogoutEverywhere(r.Context(), principal(r).UserID); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
