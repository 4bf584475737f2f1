package http

import (
	"net/http"
	"time"

	"github.com/tone-ai/tone/domain"
)

// timeRange reads ?since and ?until (RFC 3339), or writes a 400.
func (s *Server) timeRange(w http.ResponseWriter, r *http.Request) (since, until time.Time, ok bool) {
	q := r.URL.Query()
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"since", &since}, {"until", &until}} {
		if v := q.Get(f.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				s.writeError(w, r, domain.Errorf(domain.EInvalid, "%s must be an RFC 3339 time.", f.name).WithDetail("field", f.name))
				return since, until, false
			}
			*f.dst = t
		}
	}
	return since, until, true
}

func (s *Server) deploymentAnalytics(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "projectID")
	if !ok {
		return
	}
	since, until, ok := s.timeRange(w, r)
	if !ok {
		return
	}
	a, err := s.svc.ProjectDeploymentAnalytics(r.Context(), principal(r).UserID, id, r.URL.Query().Get("environment"), since, until)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, a)
}

func (s *Server) realtimeAnalytics(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "projectID")
	if !ok {
		return
	}
	since, until, ok := s.timeRange(w, r)
	if !ok {
		return
	}
	var step time.Duration
	if v := r.URL.Query().Get("step"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			s.writeError(w, r, domain.Errorf(domain.EInvalid, "step must be a positive duration such as 5m or 1h.").WithDetail("field", "step"))
			return
		}
		step = d
	}
	a, err := s.svc.ProjectRealtimeAnalytics(r.Context(), principal(r).UserID, id, since, until, step)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, a)
}
