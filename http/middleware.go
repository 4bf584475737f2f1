package http

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tone-ai/tone/domain"
)

// RequestIDHeader carries the correlation id in requests and responses.
const RequestIDHeader = "X-Request-ID"

type ctxKey int

const (
	keyCorrelation ctxKey = iota
	keyPrincipal
)

func correlationID(ctx context.Context) string {
	id, _ := ctx.Value(keyCorrelation).(string)
	return id
}

// validRequestID accepts client-chosen correlation ids that are safe to log.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_.:", c)) {
			return false
		}
	}
	return true
}

// withCorrelation gives every request a correlation id (the client's
// X-Request-ID if it is sane, else a new UUIDv7), returns it in the response,
// and puts it with the client address into the domain request info.
func withCorrelation(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(RequestIDHeader)
		if !validRequestID(id) {
			id = uuid.Must(uuid.NewV7()).String()
		}
		w.Header().Set(RequestIDHeader, id)
		ctx := context.WithValue(r.Context(), keyCorrelation, id)
		ctx = domain.WithRequestInfo(ctx, domain.RequestInfo{
			CorrelationID: id,
			IP:            middleware.GetClientIP(ctx),
			UserAgent:     truncate(r.UserAgent(), 512),
		})
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// metrics are the HTTP metrics on /metrics.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tone_http_requests_total",
			Help: "HTTP requests served, by route pattern, method and status.",
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tone_http_request_duration_seconds",
			Help:    "HTTP request latency, by route pattern and method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "method"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// observe logs each request and records its metrics, labelled by route
// pattern so that ids in paths do not explode the label space.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		route := "unmatched"
		if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
			route = rc.RoutePattern()
		}
		status := ww.Status()
		if status == 0 {
			status = http.StatusOK
		}
		took := time.Since(start)
		s.metrics.requests.WithLabelValues(route, r.Method, strconv.Itoa(status)).Inc()
		if status != http.StatusSwitchingProtocols {
			// An upgraded connection's lifetime is not a request latency.
			s.metrics.duration.WithLabelValues(route, r.Method).Observe(took.Seconds())
		}
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelError
		}
		s.log.Log(r.Context(), level, "request", "method", r.Method, "path", r.URL.Path, "route", route,
			"status", status, "bytes", ww.BytesWritten(), "took", took,
			"correlation_id", correlationID(r.Context()), "ip", middleware.GetClientIP(r.Context()))
	})
}

// recoverPanics turns a panic in a handler into a 500 envelope and a log
// line with the stack, and keeps the server running.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.ErrorContext(r.Context(), "panic", "panic", fmt.Sprint(p), "stack", string(debug.Stack()),
					"correlation_id", correlationID(r.Context()))
				s.writeError(w, r, fmt.Errorf("panic: %v", p))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// limitBody caps request bodies at the configured size. The uncapped body
// stays reachable through rawBody, for the upload handlers.
func (s *Server) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			raw := r.Body
			r = withRawBody(r, raw)
			r.Body = http.MaxBytesReader(w, raw, s.cfg.MaxBodyBytes)
		}
		next.ServeHTTP(w, r)
	})
}

// principal returns the signed-in user of an authenticated request.
func principal(r *http.Request) *domain.Principal {
	p, _ := r.Context().Value(keyPrincipal).(*domain.Principal)
	return p
}

// bearerToken returns the token of an Authorization: Bearer header, or ""
// when there is no header. Another scheme is EUnauthenticated.
func bearerToken(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	scheme, token, _ := strings.Cut(h, " ")
	if h != "" && !strings.EqualFold(scheme, "Bearer") {
		return "", domain.Errorf(domain.EUnauthenticated, "Authorization must use the Bearer scheme.")
	}
	return strings.TrimSpace(token), nil
}

// authenticate requires a valid access token (Authorization: Bearer).
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, err := bearerToken(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		p, err := s.svc.Authenticate(token)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), keyPrincipal, p)))
	})
}
