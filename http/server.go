package http

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/go-chi/httprate"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tone-ai/tone/domain"
)

// Rate is a request budget: at most N requests per Window.
type Rate struct {
	N      int
	Window time.Duration
}

// ParseRate reads a rate written "N/window", such as "10/1m" or "600/1h".
func ParseRate(s string) (Rate, error) {
	var r Rate
	var n, w string
	for i := range s {
		if s[i] == '/' {
			n, w = s[:i], s[i+1:]
			break
		}
	}
	var err error
	if r.N, err = strconv.Atoi(n); err != nil || r.N <= 0 {
		return r, fmt.Errorf("rate %q: want N/duration, such as 10/1m", s)
	}
	if r.Window, err = time.ParseDuration(w); err != nil || r.Window <= 0 {
		return r, fmt.Errorf("rate %q: want N/duration, such as 10/1m", s)
	}
	return r, nil
}

// String writes r as ParseRate reads it, with the window in its shortest
// form: "10/1m", "600/1h", "5/30s".
func (r Rate) String() string {
	w := r.Window.String()
	switch {
	case r.Window >= time.Hour && r.Window%time.Hour == 0:
		w = fmt.Sprintf("%dh", r.Window/time.Hour)
	case r.Window >= time.Minute && r.Window%time.Minute == 0:
		w = fmt.Sprintf("%dm", r.Window/time.Minute)
	}
	return fmt.Sprintf("%d/%s", r.N, w)
}

// Config holds the server's settings.
type Config struct {
	MaxBodyBytes    int64    // largest request body; default 1 MiB
	TrustedProxies  []string // CIDR prefixes whose X-Forwarded-For is believed
	LoginPerIP      Rate     // login attempts per client address
	LoginPerAccount Rate     // login attempts per email address
	RequestsPerIP   Rate     // all API requests per client address
	RequestsPerUser Rate     // authenticated API requests per user
	Logger          *slog.Logger
	Registry        *prometheus.Registry        // where metrics are registered and served from
	Ready           func(context.Context) error // readiness check of stores and brokers
	ExtraRoutes     func(r chi.Router)          // more routes under /api/v1 (realtime, ...)
	Canvases        CanvasLive                  // live canvas documents, for versions; nil: 503

	RequestsPerRunner Rate           // runner API requests per deploy token
	Logs              LogBroadcaster // ships appended log lines to live tails; nil: none
	RequestsPerSDKKey Rate           // SDK API requests (flag evaluations) per SDK key
}

// DefaultConfig returns the settings used when nothing is configured.
func DefaultConfig() Config {
	return Config{
		MaxBodyBytes:    1 << 20,
		LoginPerIP:      Rate{N: 20, Window: time.Minute},
		LoginPerAccount: Rate{N: 5, Window: time.Minute},
		RequestsPerIP:   Rate{N: 1200, Window: time.Minute},
		RequestsPerUser: Rate{N: 600, Window: time.Minute},

		RequestsPerRunner: Rate{N: 6000, Window: time.Minute},
		RequestsPerSDKKey: Rate{N: 60000, Window: time.Minute},
	}
}

// Server is the REST API.
type Server struct {
	cfg          Config
	svc          *domain.Service
	log          *slog.Logger
	metrics      *metrics
	loginIP      *httprate.RateLimiter
	loginAccount *httprate.RateLimiter
	handler      http.Handler
	router       chi.Router

	// sdkFailures counts failed SDK key authentications per client
	// address: SDK routes skip the per-address limit, but guessing keys
	// must not.
	sdkFailures *httprate.RateLimiter
}

// NewServer returns the API over svc. Zero fields of cfg take their
// defaults from DefaultConfig.
func NewServer(svc *domain.Service, cfg Config) *Server {
	def := DefaultConfig()
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = def.MaxBodyBytes
	}
	for _, f := range []struct{ got, def *Rate }{
		{&cfg.LoginPerIP, &def.LoginPerIP}, {&cfg.LoginPerAccount, &def.LoginPerAccount},
		{&cfg.RequestsPerIP, &def.RequestsPerIP}, {&cfg.RequestsPerUser, &def.RequestsPerUser},
		{&cfg.RequestsPerRunner, &def.RequestsPerRunner},
		{&cfg.RequestsPerSDKKey, &def.RequestsPerSDKKey},
	} {
		if f.got.N == 0 {
			*f.got = *f.def
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.Ready == nil {
		cfg.Ready = svc.Store().Ping
	}
	s := &Server{cfg: cfg, svc: svc, log: cfg.Logger, metrics: newMetrics(cfg.Registry)}
	s.loginIP = s.limiter(cfg.LoginPerIP)
	s.loginAccount = s.limiter(cfg.LoginPerAccount)
	s.sdkFailures = s.limiter(cfg.RequestsPerIP)
	s.routes()
	return s
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// limiter returns a rate limiter answering 429 with Retry-After in the error
// envelope. Used as middleware it counts per the key functions in opts; with
// none, httprate counts every request in one bucket.
func (s *Server) limiter(rate Rate, opts ...httprate.Option) *httprate.RateLimiter {
	return httprate.NewRateLimiter(rate.N, rate.Window, append(opts,
		httprate.WithLimitHandler(func(w http.ResponseWriter, r *http.Request) {
			s.writeError(w, r, domain.Errorf(domain.ERateLimited, "Too many requests; retry after %s.", w.Header().Get("Retry-After")+"s"))
		}))...)
}

func clientIPKey(r *http.Request) (string, error) {
	return httprate.CanonicalizeIP(middleware.GetClientIP(r.Context())), nil
}

func (s *Server) routes() {
	r := chi.NewRouter()
	if len(s.cfg.TrustedProxies) > 0 {
		r.Use(middleware.ClientIPFromXFF(s.cfg.TrustedProxies...))
	} else {
		r.Use(middleware.ClientIPFromRemoteAddr)
	}
	r.Use(withCorrelation, s.observe, s.recoverPanics, s.limitBody)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, domain.Errorf(domain.ENotFound, "No such endpoint."))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		s.writeErrorStatus(w, r, domain.Errorf(domain.EInvalid, "Method %s not allowed here.", r.Method), http.StatusMethodNotAllowed)
	})

	r.Get("/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.Get("/readyz", s.ready)
	r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{}))

	r.Route("/api/v1", func(r chi.Router) {
		perIP := s.limiter(s.cfg.RequestsPerIP, httprate.WithKeyFuncs(clientIPKey)).Handler
		r.Use(func(next http.Handler) http.Handler {
			limited := perIP(next)
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if isRunnerPath(r) || isSDKPath(r) { // limited per token or key instead
					next.ServeHTTP(w, r)
					return
				}
				limited.ServeHTTP(w, r)
			})
		})
		r.Get("/openapi.json", s.openAPI)
		r.Post("/auth/register", s.register)
		r.Post("/auth/login", s.login)
		r.Post("/auth/refresh", s.refresh)
		r.Post("/auth/logout", s.logout)

		wsMembers, projMembers := s.workspaceMembers(), s.projectMembers()
		r.Group(func(r chi.Router) {
			r.Use(s.authenticate)
			r.Use(httprate.LimitBy(s.cfg.RequestsPerUser.N, s.cfg.RequestsPerUser.Window,
				func(r *http.Request) (string, error) { return principal(r).UserID.String(), nil },
				httprate.WithLimitHandler(func(w http.ResponseWriter, r *http.Request) {
					s.writeError(w, r, domain.Errorf(domain.ERateLimited, "Too many requests; retry after %ss.", w.Header().Get("Retry-After")))
				})))
			r.Post("/auth/logout-everywhere", s.logoutEverywhere)
			r.Get("/me", s.getMe)
			r.Patch("/me", s.updateMe)
			r.Get("/users/{userID}", s.getUser)

			r.Get("/workspaces", s.listWorkspaces)
			r.Post("/workspaces", s.createWorkspace)
			r.Get("/workspaces/{workspaceID}", s.getWorkspace)
			r.Patch("/workspaces/{workspaceID}", s.updateWorkspace)
			r.Delete("/workspaces/{workspaceID}", s.deleteWorkspace)
			r.Get("/workspaces/{workspaceID}/members", s.listMembers(wsMembers))
			r.Post("/workspaces/{workspaceID}/members", s.addMember(wsMembers))
			r.Patch("/workspaces/{workspaceID}/members/{userID}", s.changeMember(wsMembers))
			r.Delete("/workspaces/{workspaceID}/members/{userID}", s.removeMember(wsMembers))
			r.Get("/workspaces/{workspaceID}/projects", listIn(s, "workspaceID", s.svc.ListProjects, toProjectJSON))
			r.Post("/workspaces/{workspaceID}/projects", s.createProject)

			r.Get("/projects/{projectID}", s.getProject)
			r.Patch("/projects/{projectID}", s.updateProject)
			r.Delete("/projects/{projectID}", s.deleteProject)
			r.Get("/projects/{projectID}/members", s.listMembers(projMembers))
			r.Post("/projects/{projectID}/members", s.addMember(projMembers))
			r.Patch("/projects/{projectID}/members/{userID}", s.changeMember(projMembers))
			r.Delete("/projects/{projectID}/members/{userID}", s.removeMember(projMembers))
			r.Get("/projects/{projectID}/canvases", listIn(s, "projectID", s.svc.ListCanvases, toCanvasJSON))
			r.Post("/projects/{projectID}/canvases", s.createCanvas)

			r.Get("/canvases/{canvasID}", s.getCanvas)
			r.Patch("/canvases/{canvasID}", s.updateCanvas)
			r.Delete("/canvases/{canvasID}", s.deleteCanvas)
			r.Get("/canvases/{canvasID}/versions", listIn(s, "canvasID", s.svc.ListCanvasVersions, toCanvasVersionJSON))
			r.Post("/canvases/{canvasID}/versions", s.saveCanvasVersion)
			r.Get("/canvases/{canvasID}/versions/{versionID}", s.getCanvasVersion)
			r.Post("/canvases/{canvasID}/versions/{versionID}/restore", s.restoreCanvasVersion)

			r.Get("/notifications", s.listNotifications)
			r.Get("/notifications/counts", s.notificationCounts)
			r.Post("/notifications/seen-all", s.markAllNotifications(domain.StateSeen))
			r.Post("/notifications/read-all", s.markAllNotifications(domain.StateRead))
			r.Patch("/notifications/{notificationID}", s.updateNotification)
			r.Get("/projects/{projectID}/analytics/deployments", s.deploymentAnalytics)
			r.Get("/projects/{projectID}/analytics/realtime", s.realtimeAnalytics)
			r.Get("/workspaces/{workspaceID}/audit", s.listAudit)
			r.Get("/workspaces/{workspaceID}/audit/export", s.exportAudit)
			r.Get("/workspaces/{workspaceID}/audit/verify", s.verifyAudit)

			r.Get("/me/notification-preferences", s.getNotificationPreferences)
			r.Patch("/me/notification-preferences", s.updateNotificationPreferences)

			r.Get("/projects/{projectID}/deployments", s.listDeployments)
			r.Post("/projects/{projectID}/deployments", s.createDeployment)
			r.Get("/deployments/{deploymentID}", s.getDeployment)
			r.Post("/deployments/{deploymentID}/cancel", s.cancelDeployment)
			r.Get("/projects/{projectID}/deploy-tokens", listIn(s, "projectID", s.svc.ListDeployTokens, toDeployTokenJSON))
			r.Post("/projects/{projectID}/deploy-tokens", s.createDeployToken)
			r.Delete("/projects/{projectID}/deploy-tokens/{tokenID}", s.revokeDeployToken)
			s.flagRoutes(r)
			r.Get("/deployments/{deploymentID}/logs", s.readLogs)
			r.Get("/deployments/{deploymentID}/logs/download", s.downloadLogs)
			r.Get("/deployments/{deploymentID}/logs/search", s.searchLogs)
			r.Get("/projects/{projectID}/log-settings", s.getLogSettings)
			r.Patch("/projects/{projectID}/log-settings", s.updateLogSettings)
			r.Get("/projects/{projectID}/log-secrets", s.listLogSecrets)
			r.Post("/projects/{projectID}/log-secrets", s.createLogSecret)
			r.Delete("/projects/{projectID}/log-secrets/{secretID}", s.deleteLogSecret)

			s.artifactRoutes(r)
			r.Delete("/artifacts/{artifactID}", s.deleteArtifact)
		})
		// Signed URLs carry their own authorisation; tus discovery needs none.
		r.Get("/artifacts/{artifactID}/download", s.downloadArtifact)
		r.Head("/artifacts/{artifactID}/download", s.downloadArtifact) // 403: the URL signs GET
		r.Options("/uploads", s.tusOptions)
		s.runnerRoutes(r)
		s.sdkRoutes(r)
		if s.cfg.ExtraRoutes != nil {
			s.cfg.ExtraRoutes(r)
		}
	})
	s.router = r
	s.handler = r
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.cfg.Ready(ctx); err != nil {
		s.log.WarnContext(ctx, "not ready", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// decode reads a JSON request body into v: exactly one JSON value, no
// unknown fields. Errors are EInvalid (or 413/415 through decodeStatus).
func decode(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return errUnsupportedMedia
		}
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, extra := dec.Token(); extra != io.EOF {
			return domain.Errorf(domain.EInvalid, "Request body must hold a single JSON object.")
		}
		return nil
	}
	var maxErr *http.MaxBytesError
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &maxErr):
		return errTooLarge{limit: maxErr.Limit}
	case errors.Is(err, io.EOF):
		return domain.Errorf(domain.EInvalid, "Request body is empty; send a JSON object.")
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		return domain.Errorf(domain.EInvalid, "Request body is not valid JSON.")
	case errors.As(err, &typeErr) && typeErr.Field == "":
		// The body itself is not an object; typeErr.Type would name a Go type.
		return domain.Errorf(domain.EInvalid, "Request body must be a JSON object.")
	case errors.As(err, &typeErr):
		return domain.Errorf(domain.EInvalid, "Field %q has the wrong type (want %s).", typeErr.Field, typeErr.Type).WithDetail("field", typeErr.Field)
	default:
		// json reports unknown fields only as text: `json: unknown field "x"`.
		return domain.Errorf(domain.EInvalid, "Request body is not valid: %s.", trimJSONPrefix(err.Error()))
	}
}

func trimJSONPrefix(s string) string {
	const p = "json: "
	if len(s) > len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}

var errUnsupportedMedia = domain.Errorf(domain.EInvalid, "Content-Type must be application/json.")

// errTooLarge is a body over the size limit.
type errTooLarge struct{ limit int64 }

func (e errTooLarge) Error() string { return fmt.Sprintf("body larger than %d bytes", e.limit) }

// decodeOrFail decodes the body into v, or writes the error and returns false.
func (s *Server) decodeOrFail(w http.ResponseWriter, r *http.Request, v any) bool {
	err := decode(r, v)
	var tl errTooLarge
	switch {
	case err == nil:
		return true
	case errors.As(err, &tl):
		s.writeErrorStatus(w, r, domain.Errorf(domain.EInvalid, "Request body is larger than %d bytes.", tl.limit), http.StatusRequestEntityTooLarge)
	case err == errUnsupportedMedia:
		s.writeErrorStatus(w, r, err, http.StatusUnsupportedMediaType)
	default:
		s.writeError(w, r, err)
	}
	return false
}

// pathID parses the UUID path parameter name, or writes a 400 and returns false.
func (s *Server) pathID(w http.ResponseWriter, r *http.Request, name string) (uuid.UUID, bool) {
	id, err := uuid.Parse(chi.URLParam(r, name))
	if err != nil {
		s.writeError(w, r, domain.Errorf(domain.EInvalid, "%s is not a valid UUID.", name).WithDetail("field", name))
		return uuid.Nil, false
	}
	return id, true
}

// listOptions reads ?limit and ?cursor.
func (s *Server) listOptions(w http.ResponseWriter, r *http.Request) (domain.ListOptions, bool) {
	q := r.URL.Query()
	opt := domain.ListOptions{Cursor: q.Get("cursor")}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > domain.MaxPageSize {
			s.writeError(w, r, domain.Errorf(domain.EInvalid, "limit must be between 1 and %d.", domain.MaxPageSize).WithDetail("field", "limit"))
			return opt, false
		}
		opt.Limit = n
	}
	return opt, true
}

// listBody is the shape of every list response.
type listBody[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

func list[S, T any](items []S, next string, conv func(S) T) listBody[T] {
	out := listBody[T]{Items: make([]T, 0, len(items)), NextCursor: next}
	for _, it := range items {
		out.Items = append(out.Items, conv(it))
	}
	return out
}
