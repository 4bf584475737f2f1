package http

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/tone-ai/tone/domain"
)

// statusOf maps each domain error code to its HTTP status.
var statusOf = map[string]int{
	domain.EInvalid:         http.StatusBadRequest,
	domain.EUnauthenticated: http.StatusUnauthorized,
	domain.EForbidden:       http.StatusForbidden,
	domain.ENotFound:        http.StatusNotFound,
	domain.EConflict:        http.StatusConflict,
	domain.ERateLimited:     http.StatusTooManyRequests,
	domain.EUnavailable:     http.StatusServiceUnavailable,
	domain.EInternal:        http.StatusInternalServerError,
}

// errorBody is the error envelope every failed request returns.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code          string         `json:"code"`
	Message       string         `json:"message"`
	Details       map[string]any `json:"details,omitempty"`
	CorrelationID string         `json:"correlation_id"`
}

// writeError writes err as an error envelope with the status of its code.
// Internal errors are logged with the correlation id, and users see only
// "Internal error.".
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	s.writeErrorStatus(w, r, err, 0)
}

// writeErrorStatus is writeError with a status that overrides the table (0:
// use the table).
func (s *Server) writeErrorStatus(w http.ResponseWriter, r *http.Request, err error, status int) {
	code := domain.ErrorCode(err)
	if code == domain.EInternal {
		var de *domain.Error
		if !errors.As(err, &de) {
			s.log.ErrorContext(r.Context(), "internal error", "err", err, "method", r.Method, "path", r.URL.Path,
				"correlation_id", correlationID(r.Context()))
		}
	}
	if status == 0 {
		status = statusOf[code]
	}
	if code == domain.EUnauthenticated {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tone"`)
	}
	writeJSON(w, status, errorBody{Error: errorDetail{
		Code:          code,
		Message:       domain.ErrorMessage(err),
		Details:       domain.ErrorDetails(err),
		CorrelationID: correlationID(r.Context()),
	}})
}

// writeJSON writes v as JSON with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		slog.Debug("write response", "err", err)
	}
}
