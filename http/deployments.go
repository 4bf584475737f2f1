package http

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/httprate"
	"github.com/google/uuid"

	"github.com/tone-ai/tone/domain"
)

type deployStepJSON struct {
	Name       string     `json:"name"`
	Position   int        `json:"position"`
	State      string     `json:"state"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	ExitCode   *int       `json:"exit_code"`
}

func toDeployStepJSON(s *domain.DeployStep) deployStepJSON {
	return deployStepJSON{Name: s.Name, Position: s.Position, State: string(s.State), StartedAt: s.StartedAt, FinishedAt: s.FinishedAt, ExitCode: s.ExitCode}
}

type deploymentJSON struct {
	ID             uuid.UUID        `json:"id"`
	ProjectID      uuid.UUID        `json:"project_id"`
	Environment    string           `json:"environment"`
	GitRef         string           `json:"git_ref"`
	CommitSHA      string           `json:"commit_sha"`
	TriggeredBy    uuid.UUID        `json:"triggered_by"`
	TriggerKind    string           `json:"trigger_kind"`
	State          string           `json:"state"`
	Reason         string           `json:"reason"`
	URL            string           `json:"url"`
	Metrics        map[string]int64 `json:"metrics"`
	DurationMS     int64            `json:"duration_ms"`
	LeaseExpiresAt *time.Time       `json:"lease_expires_at"`
	CreatedAt      time.Time        `json:"created_at"`
	StartedAt      *time.Time       `json:"started_at"`
	FinishedAt     *time.Time       `json:"finished_at"`
	UpdatedAt      time.Time        `json:"updated_at"`
	Steps          []deployStepJSON `json:"steps,omitempty"`
}

func toDeploymentJSON(d *domain.Deployment) deploymentJSON {
	m := d.Metrics
	if m == nil {
		m = map[string]int64{}
	}
	return deploymentJSON{
		ID: d.ID, ProjectID: d.ProjectID, Environment: d.Environment, GitRef: d.GitRef, CommitSHA: d.CommitSHA,
		TriggeredBy: d.TriggeredBy, TriggerKind: d.TriggerKind, State: string(d.State), Reason: d.Reason,
		URL: d.URL, Metrics: m, DurationMS: d.Duration().Milliseconds(), LeaseExpiresAt: d.LeaseExpiresAt,
		CreatedAt: d.CreatedAt, StartedAt: d.StartedAt, FinishedAt: d.FinishedAt, UpdatedAt: d.UpdatedAt,
	}
}

func toDeploymentWithStepsJSON(d *domain.DeploymentWithSteps) deploymentJSON {
	out := toDeploymentJSON(d.Deployment)
	out.Steps = make([]deployStepJSON, 0, len(d.Steps))
	for _, s := range d.Steps {
		out.Steps = append(out.Steps, toDeployStepJSON(s))
	}
	return out
}

type deployTokenJSON struct {
	ID        uuid.UUID  `json:"id"`
	ProjectID uuid.UUID  `json:"project_id"`
	Name      string     `json:"name"`
	CreatedBy uuid.UUID  `json:"created_by"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at"`
	Token     string     `json:"token,omitempty"` // the secret, only when created
}

func toDeployTokenJSON(t *domain.DeployToken) deployTokenJSON {
	return deployTokenJSON{ID: t.ID, ProjectID: t.ProjectID, Name: t.Name, CreatedBy: t.CreatedBy, CreatedAt: t.CreatedAt, RevokedAt: t.RevokedAt}
}

type deploymentRequest struct {
	Environment string `json:"environment"`
	GitRef      string `json:"git_ref"`
	CommitSHA   string `json:"commit_sha"`
}

func (req deploymentRequest) input() domain.DeploymentInput {
	return domain.DeploymentInput{Environment: req.Environment, GitRef: req.GitRef, CommitSHA: req.CommitSHA}
}

func (s *Server) createDeployment(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "projectID")
	if !ok {
		return
	}
	var req deploymentRequest
	if !s.decodeOrFail(w, r, &req) {
		return
	}
	d, err := s.svc.CreateDeployment(r.Context(), principal(r).UserID, id, req.input())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/deployments/"+d.ID.String())
	writeJSON(w, http.StatusCreated, toDeploymentJSON(d))
}

// deploymentFilter reads ?environment, ?state, ?since and ?until.
func (s *Server) deploymentFilter(w http.ResponseWriter, r *http.Request) (domain.DeploymentFilter, bool) {
	q := r.URL.Query()
	f := domain.DeploymentFilter{Environment: q.Get("environment"), State: domain.DeployState(q.Get("state"))}
	for _, p := range []struct {
		name string
		to   *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				s.writeError(w, r, domain.Errorf(domain.EInvalid, "%s must be an RFC 3339 time.", p.name).WithDetail("field", p.name))
				return f, false
			}
			*p.to = t.UTC()
		}
	}
	return f, true
}

func (s *Server) listDeployments(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "projectID")
	if !ok {
		return
	}
	opt, ok := s.listOptions(w, r)
	if !ok {
		return
	}
	f, ok := s.deploymentFilter(w, r)
	if !ok {
		return
	}
	f.ProjectID = id
	ds, next, err := s.svc.ListDeployments(r.Context(), principal(r).UserID, f, opt)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list(ds, next, toDeploymentJSON))
}

func (s *Server) getDeployment(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "deploymentID")
	if !ok {
		return
	}
	d, err := s.svc.GetDeployment(r.Context(), principal(r).UserID, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toDeploymentWithStepsJSON(d))
}

type reasonRequest struct {
	Reason string `json:"reason"`
}

func (s *Server) cancelDeployment(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "deploymentID")
	if !ok {
		return
	}
	var req reasonRequest
	if r.ContentLength != 0 && !s.decodeOrFail(w, r, &req) {
		return
	}
	d, err := s.svc.CancelDeployment(r.Context(), principal(r).UserID, id, req.Reason)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toDeploymentJSON(d))
}

func (s *Server) createDeployToken(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "projectID")
	if !ok {
		return
	}
	var req nameRequest
	if !s.decodeOrFail(w, r, &req) {
		return
	}
	t, secret, err := s.svc.CreateDeployToken(r.Context(), principal(r).UserID, id, req.Name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := toDeployTokenJSON(t)
	out.Token = secret
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) revokeDeployToken(w http.ResponseWriter, r *http.Request) {
	project, ok := s.pathID(w, r, "projectID")
	if !ok {
		return
	}
	token, ok := s.pathID(w, r, "tokenID")
	if !ok {
		return
	}
	if err := s.svc.RevokeDeployToken(r.Context(), principal(r).UserID, project, token); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// Runner routes.
//
// A runner authenticates with a deploy token (Authorization: Bearer
// tone_dt_...). Its routes live under /api/v1/runner and are exempt from the
// per-address limit, which is sized for people: a build farm behind one
// address would meet it. They have their own limit per deploy token
// (Config.RequestsPerRunner).

type runnerKey struct{}

// runner returns the runner of a request that passed authenticateRunner.
func runner(r *http.Request) *domain.Runner {
	rn, _ := r.Context().Value(runnerKey{}).(*domain.Runner)
	return rn
}

// isRunnerPath reports whether a request goes to a runner route.
func isRunnerPath(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/api/v1/runner/") }

// authenticateRunner requires a valid deploy token.
func (s *Server) authenticateRunner(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, err := bearerToken(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		rn, err := s.svc.AuthenticateRunner(r.Context(), token)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), runnerKey{}, rn)))
	})
}

// runnerRoutes mounts the runner API under r.
func (s *Server) runnerRoutes(r chi.Router) {
	r.Route("/runner", func(r chi.Router) {
		r.Use(s.authenticateRunner)
		r.Use(httprate.LimitBy(s.cfg.RequestsPerRunner.N, s.cfg.RequestsPerRunner.Window,
			func(r *http.Request) (string, error) { return runner(r).TokenID.String(), nil },
			httprate.WithLimitHandler(func(w http.ResponseWriter, r *http.Request) {
				s.writeError(w, r, domain.Errorf(domain.ERateLimited, "Too many requests; retry after %ss.", w.Header().Get("Retry-After")))
			})))
		r.Post("/deployments", s.runnerCreateDeployment)
		r.Get("/deployments/{deploymentID}", s.runnerGetDeployment)
		r.Post("/deployments/{deploymentID}/heartbeat", s.runnerHeartbeat)
		r.Post("/deployments/{deploymentID}/report", s.runnerReport)
		r.Post("/deployments/{deploymentID}/steps", s.runnerStep)
		r.Post("/deployments/{deploymentID}/logs", s.runnerAppendLogs)
		s.artifactRoutes(r)
	})
}

func (s *Server) runnerCreateDeployment(w http.ResponseWriter, r *http.Request) {
	var req deploymentRequest
	if !s.decodeOrFail(w, r, &req) {
		return
	}
	d, err := s.svc.RunnerCreateDeployment(r.Context(), runner(r), req.input())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/runner/deployments/"+d.ID.String())
	writeJSON(w, http.StatusCreated, toDeploymentJSON(d))
}

func (s *Server) runnerGetDeployment(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "deploymentID")
	if !ok {
		return
	}
	d, err := s.svc.RunnerGetDeployment(r.Context(), runner(r), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toDeploymentWithStepsJSON(d))
}

func (s *Server) runnerHeartbeat(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "deploymentID")
	if !ok {
		return
	}
	d, err := s.svc.Heartbeat(r.Context(), runner(r), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toDeploymentJSON(d))
}

type reportRequest struct {
	State   string           `json:"state"`
	Reason  string           `json:"reason"`
	URL     *string          `json:"url"`
	Metrics map[string]int64 `json:"metrics"`
}

func (s *Server) runnerReport(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "deploymentID")
	if !ok {
		return
	}
	var req reportRequest
	if !s.decodeOrFail(w, r, &req) {
		return
	}
	d, err := s.svc.Report(r.Context(), runner(r), id, domain.DeploymentReport{
		State: domain.DeployState(req.State), Reason: req.Reason, URL: req.URL, Metrics: req.Metrics,
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toDeploymentJSON(d))
}

type stepRequest struct {
	Name       string     `json:"name"`
	State      string     `json:"state"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	ExitCode   *int       `json:"exit_code"`
}

func (s *Server) runnerStep(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "deploymentID")
	if !ok {
		return
	}
	var req stepRequest
	if !s.decodeOrFail(w, r, &req) {
		return
	}
	st, err := s.svc.ReportStep(r.Context(), runner(r), id, domain.StepReport{
		Name: req.Name, State: domain.StepState(req.State), StartedAt: utc(req.StartedAt), FinishedAt: utc(req.FinishedAt), ExitCode: req.ExitCode,
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toDeployStepJSON(st))
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
