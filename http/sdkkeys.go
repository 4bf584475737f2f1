package http

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/httprate"
	"github.com/google/uuid"

	"github.com/tone-ai/tone/domain"
)

type sdkKeyJSON struct {
	ID          uuid.UUID  `json:"id"`
	ProjectID   uuid.UUID  `json:"project_id"`
	Environment string     `json:"environment"`
	Name        string     `json:"name"`
	CreatedBy   uuid.UUID  `json:"created_by"`
	CreatedAt   time.Time  `json:"created_at"`
	RevokedAt   *time.Time `json:"revoked_at"`
	Key         string     `json:"key,omitempty"` // the secret, only when created
}

func toSDKKeyJSON(k *domain.SDKKey) sdkKeyJSON {
	return sdkKeyJSON{ID: k.ID, ProjectID: k.ProjectID, Environment: k.Environment, Name: k.Name,
		CreatedBy: k.CreatedBy, CreatedAt: k.CreatedAt, RevokedAt: k.RevokedAt}
}

type sdkKeyRequest struct {
	Environment string `json:"environment"`
	Name        string `json:"name"`
}

func (s *Server) createSDKKey(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "projectID")
	if !ok {
		return
	}
	var req sdkKeyRequest
	if !s.decodeOrFail(w, r, &req) {
		return
	}
	k, secret, err := s.svc.CreateSDKKey(r.Context(), principal(r).UserID, id, req.Environment, req.Name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := toSDKKeyJSON(k)
	out.Key = secret
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) revokeSDKKey(w http.ResponseWriter, r *http.Request) {
	project, ok := s.pathID(w, r, "projectID")
	if !ok {
		return
	}
	key, ok := s.pathID(w, r, "keyID")
	if !ok {
		return
	}
	err := s.svc.RevokeSDKKey(r.Context(), principal(r).UserID, project, key)
	s.respond(w, r, http.StatusNoContent, nil, err)
}

// SDK routes.
//
// Applications evaluate flags with an SDK key (Authorization: Bearer
// tone_sdk_...) under /api/v1/sdk, for the key's environment. Like runner
// routes, they are exempt from the per-address limit (one backend serves
// many users from one address) and limited per key instead
// (Config.RequestsPerSDKKey); requests whose key fails to authenticate
// count against the per-address limit, so that guessing keys is limited.

type sdkClientKey struct{}

func sdkClient(r *http.Request) *domain.SDKClient {
	c, _ := r.Context().Value(sdkClientKey{}).(*domain.SDKClient)
	return c
}

// isSDKPath reports whether a request goes to an SDK route.
func isSDKPath(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/api/v1/sdk/") }

// authenticateSDK requires a valid SDK key.
func (s *Server) authenticateSDK(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, err := bearerToken(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		c, err := s.svc.AuthenticateSDK(r.Context(), token)
		if err != nil {
			if ip, _ := clientIPKey(r); domain.ErrorCode(err) == domain.EUnauthenticated && s.sdkFailures.RespondOnLimit(w, r, ip) {
				return
			}
			s.writeError(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), sdkClientKey{}, c)))
	})
}

// sdkRoutes mounts the SDK API under r.
func (s *Server) sdkRoutes(r chi.Router) {
	r.Route("/sdk", func(r chi.Router) {
		r.Use(s.authenticateSDK)
		r.Use(httprate.LimitBy(s.cfg.RequestsPerSDKKey.N, s.cfg.RequestsPerSDKKey.Window,
			func(r *http.Request) (string, error) { return sdkClient(r).KeyID.String(), nil },
			httprate.WithLimitHandler(func(w http.ResponseWriter, r *http.Request) {
				s.writeError(w, r, domain.Errorf(domain.ERateLimited, "Too many requests; retry after %ss.", w.Header().Get("Retry-After")))
			})))
		r.Post("/evaluate", s.sdkEvaluateFlag)
		r.Post("/evaluate-batch", s.sdkEvaluateFlags)
		r.Get("/changes", s.sdkFlagChanges)
	})
}

func (s *Server) sdkEvaluateFlag(w http.ResponseWriter, r *http.Request) {
	var req evaluateRequest
	if !s.decodeOrFail(w, r, &req) {
		return
	}
	if req.FlagKey == "" {
		s.writeError(w, r, domain.Errorf(domain.EInvalid, "flag_key is required.").WithDetail("field", "flag_key"))
		return
	}
	_, evs, err := s.svc.EvaluateFlagsSDK(r.Context(), sdkClient(r),
		domain.EvaluationRequest{Keys: []string{req.FlagKey}, Type: req.Type, Context: req.Context})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toEvaluationJSON(evs[0]))
}

func (s *Server) sdkEvaluateFlags(w http.ResponseWriter, r *http.Request) {
	var req evaluateBatchRequest
	if !s.decodeOrFail(w, r, &req) {
		return
	}
	v, evs, err := s.svc.EvaluateFlagsSDK(r.Context(), sdkClient(r),
		domain.EvaluationRequest{Keys: req.FlagKeys, Type: req.Type, Context: req.Context})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, evaluateBatchJSON{EnvironmentVersion: v, Evaluations: items(evs, toEvaluationJSON).Items})
}

func (s *Server) sdkFlagChanges(w http.ResponseWriter, r *http.Request) {
	since, err := strconv.ParseInt(r.URL.Query().Get("since"), 10, 64)
	if err != nil {
		s.writeError(w, r, domain.Errorf(domain.EInvalid, "since must be an environment version (an integer, 0 or more).").WithDetail("field", "since"))
		return
	}
	fs, err := s.svc.FlagChangesSDK(r.Context(), sdkClient(r), since)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toFlagSyncJSON(fs))
}
