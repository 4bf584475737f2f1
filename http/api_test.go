package http

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain"
	"github.com/tone-ai/tone/domain/disk"
	"github.com/tone-ai/tone/domain/memory"
	"github.com/tone-ai/tone/realtime"
)

// testPassword is the password of every test account.
const testPassword = "correct horse battery"

// testDomainConfig returns service settings with argon2id costs low enough
// for fast tests.
func testDomainConfig() domain.Config {
	return domain.Config{Password: domain.PasswordParams{Memory: 64, Time: 1, Threads: 1}}
}

// testAPI is a Server over a fresh in-memory store, served by httptest.
// Every response it fetches is checked against openapi.yaml and the error
// envelope conventions.
type testAPI struct {
	t   *testing.T
	api *Server
	svc *domain.Service
	srv *httptest.Server
	doc map[string]any
	// route is the "METHOD pattern" of the latest request, so that a test
	// can check which route a call reached.
	route *lastRoute
	// node is the realtime node of a server from newRealtimeTestAPI.
	node *realtime.Node
}

type lastRoute struct {
	mu    sync.Mutex
	route string
}

// sub returns the same server for use in subtest t: failures are reported
// to t and helpers that stop the test stop t.
func (a *testAPI) sub(t *testing.T) *testAPI {
	c := *a
	c.t = t
	return &c
}

// lastRoute returns the "METHOD pattern" of the latest request.
func (a *testAPI) lastRoute() string {
	a.route.mu.Lock()
	defer a.route.mu.Unlock()
	return a.route.route
}

var (
	docOnce   sync.Once
	sharedDoc map[string]any
)

// newTestAPI starts a server. Rate limits left zero in cfg are set so high
// that tests never meet them, and logs are discarded.
func newTestAPI(t *testing.T, cfg Config, dcfg domain.Config) *testAPI {
	t.Helper()
	return startTestAPI(t, newTestService(t, dcfg), cfg)
}

// newTestService returns a service over a fresh in-memory store.
func newTestService(t *testing.T, dcfg domain.Config) *domain.Service {
	t.Helper()
	if dcfg.Password == (domain.PasswordParams{}) {
		dcfg.Password = testDomainConfig().Password
	}
	if dcfg.Blobs == nil {
		blobs, err := disk.New(t.TempDir())
		require.NoError(t, err)
		uploads, err := disk.NewUploads(t.TempDir())
		require.NoError(t, err)
		dcfg.Blobs, dcfg.Uploads = blobs, uploads
	}
	svc, err := domain.NewService(memory.New(), dcfg)
	require.NoError(t, err)
	return svc
}

// startTestAPI serves svc as newTestAPI does.
func startTestAPI(t *testing.T, svc *domain.Service, cfg Config) *testAPI {
	t.Helper()
	unlimited := Rate{N: 1 << 30, Window: time.Minute}
	for _, r := range []*Rate{&cfg.LoginPerIP, &cfg.LoginPerAccount, &cfg.RequestsPerIP, &cfg.RequestsPerUser} {
		if r.N == 0 {
			*r = unlimited
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	api := NewServer(svc, cfg)
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	docOnce.Do(func() { sharedDoc = openAPIDoc(t) })
	return &testAPI{t: t, api: api, svc: svc, srv: srv, doc: sharedDoc, route: &lastRoute{}}
}

// response is a fetched response with its body read.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// json decodes the body into a generic value.
func (r *response) json(t testing.TB) map[string]any {
	t.Helper()
	var v map[string]any
	require.NoError(t, json.Unmarshal(r.Body, &v), "body: %s", r.Body)
	return v
}

// decode decodes the body into v.
func (r *response) decode(t testing.TB, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(r.Body, v), "body: %s", r.Body)
}

// errCode returns the code of an error envelope ("" if the body is not one).
func (r *response) errCode() string {
	var e errorBody
	_ = json.Unmarshal(r.Body, &e)
	return e.Error.Code
}

// errMessage returns the message of an error envelope.
func (r *response) errMessage(t testing.TB) string {
	var e errorBody
	_ = json.Unmarshal(r.Body, &e)
	return e.Error.Message
}

// errCorrelationID returns the correlation id of an error envelope.
func (r *response) errCorrelationID() string {
	var e errorBody
	_ = json.Unmarshal(r.Body, &e)
	return e.Error.CorrelationID
}

// errDetails returns the details of an error envelope.
func (r *response) errDetails() map[string]any {
	var e errorBody
	_ = json.Unmarshal(r.Body, &e)
	return e.Error.Details
}

func (r *response) String() string { return strconv.Itoa(r.Status) + " " + string(r.Body) }

// do sends a request. body nil sends none; a string or []byte is sent as
// is; anything else is sent as JSON. A body gets Content-Type
// application/json unless headers (name, value pairs) set another, or set it
// to "" to send none. Safe to call from several goroutines.
func (a *testAPI) do(method, path, token string, body any, headers ...string) *response {
	a.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			a.t.Errorf("encode request body: %v", err)
			return &response{}
		}
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequest(method, a.srv.URL+path, rd)
	if err != nil {
		a.t.Errorf("new request: %v", err)
		return &response{}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	res, err := a.srv.Client().Do(req)
	if err != nil {
		a.t.Errorf("%s %s: %v", method, path, err)
		return &response{}
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		a.t.Errorf("%s %s: read body: %v", method, path, err)
	}
	resp := &response{Status: res.StatusCode, Header: res.Header, Body: b}
	a.route.mu.Lock()
	a.route.route = method + " " + a.api.router.Find(chi.NewRouteContext(), method, req.URL.Path)
	a.route.mu.Unlock()
	a.checkConventions(method, req.URL.Path, resp)
	return resp
}

// checkConventions checks what every response must do: carry a correlation
// id, answer errors with the envelope whose code fits the status and whose
// correlation id is the header's, and match openapi.yaml.
func (a *testAPI) checkConventions(method, path string, resp *response) {
	t := a.t
	t.Helper()
	id := resp.Header.Get(RequestIDHeader)
	if id == "" {
		t.Errorf("%s %s answered %d without %s", method, path, resp.Status, RequestIDHeader)
	}
	if resp.Status >= 400 && strings.HasPrefix(path, "/api/v1/") && method != http.MethodHead && !documentedAsPlainText(a.doc, a.api.router, method, path, resp.Status) {
		var env struct {
			Error *errorDetail `json:"error"`
		}
		if err := json.Unmarshal(resp.Body, &env); err != nil || env.Error == nil {
			t.Errorf("%s %s answered %d without the error envelope: %s", method, path, resp.Status, resp.Body)
			return
		}
		if env.Error.CorrelationID != id {
			t.Errorf("%s %s: correlation_id %q differs from %s %q", method, path, env.Error.CorrelationID, RequestIDHeader, id)
		}
		want := statusOf[env.Error.Code]
		switch resp.Status {
		case http.StatusMethodNotAllowed, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType,
			http.StatusPreconditionFailed, StatusChecksumMismatch:
			want = resp.Status // answered with code invalid
			if env.Error.Code != domain.EInvalid {
				t.Errorf("%s %s answered %d with code %q, want invalid", method, path, resp.Status, env.Error.Code)
			}
		case http.StatusRequestedRangeNotSatisfiable:
			// A log batch past the expected line: code conflict; a Range
			// outside an artifact's content: code invalid.
			want = resp.Status
			code := domain.EConflict
			if strings.HasPrefix(path, "/api/v1/artifacts/") {
				code = domain.EInvalid
			}
			if env.Error.Code != code {
				t.Errorf("%s %s answered %d with code %q, want %s", method, path, resp.Status, env.Error.Code, code)
			}
		}
		if want != resp.Status {
			t.Errorf("%s %s answered %d with code %q, which maps to %d", method, path, resp.Status, env.Error.Code, want)
		}
		if resp.Status >= 500 && env.Error.Message != "Internal error." && env.Error.Code == domain.EInternal {
			t.Errorf("%s %s: internal error leaks detail: %q", method, path, env.Error.Message)
		}
	}
	checkDocumented(t, a.doc, a.api.router, method, path, resp)
}

// documentedAsPlainText reports whether the document describes this
// response as something other than JSON: the handshake errors of the
// WebSocket endpoint, which TestOpenAPIDocument allows only there.
func documentedAsPlainText(doc map[string]any, router chi.Router, method, path string, status int) bool {
	pattern := router.Find(chi.NewRouteContext(), method, path)
	op := obj(obj(obj(doc["paths"])[pattern])[strings.ToLower(method)])
	r := (&schemaValidator{doc: doc}).resolve(obj(obj(op["responses"])[strconv.Itoa(status)]))
	content := obj(r["content"])
	_, isJSON := content["application/json"]
	return len(content) > 0 && !isJSON
}

// testUser is a signed-up, signed-in account.
type testUser struct {
	ID        uuid.UUID
	Email     string
	Password  string
	Access    string
	Refresh   string
	SessionID uuid.UUID
}

// tokens is the body of a login or refresh.
type tokens struct {
	AccessToken      string    `json:"access_token"`
	TokenType        string    `json:"token_type"`
	ExpiresIn        int       `json:"expires_in"`
	ExpiresAt        time.Time `json:"expires_at"`
	RefreshToken     string    `json:"refresh_token"`
	RefreshExpiresAt time.Time `json:"refresh_expires_at"`
	UserID           uuid.UUID `json:"user_id"`
	SessionID        uuid.UUID `json:"session_id"`
}

func (a *testAPI) register(email, password, displayName string) *response {
	body := map[string]string{"email": email, "password": password}
	if displayName != "" {
		body["display_name"] = displayName
	}
	return a.do("POST", "/api/v1/auth/register", "", body)
}

func (a *testAPI) login(email, password string, headers ...string) *response {
	return a.do("POST", "/api/v1/auth/login", "", map[string]string{"email": email, "password": password}, headers...)
}

// signUp registers name@example.com and signs in.
func (a *testAPI) signUp(name string) *testUser {
	a.t.Helper()
	email := strings.ToLower(name) + "@example.com"
	resp := a.register(email, testPassword, name)
	require.Equal(a.t, http.StatusAccepted, resp.Status, "register %s: %s", email, resp)
	u := &testUser{Email: email, Password: testPassword}
	a.signIn(u)
	return u
}

// signIn logs u in and stores the tokens of the new session in u.
func (a *testAPI) signIn(u *testUser) {
	a.t.Helper()
	resp := a.login(u.Email, u.Password)
	require.Equal(a.t, http.StatusOK, resp.Status, "login %s: %s", u.Email, resp)
	var tok tokens
	resp.decode(a.t, &tok)
	u.ID, u.Access, u.Refresh, u.SessionID = tok.UserID, tok.AccessToken, tok.RefreshToken, tok.SessionID
}

// id reads the "id" field of a created object.
func (a *testAPI) id(resp *response) uuid.UUID {
	a.t.Helper()
	var v struct {
		ID uuid.UUID `json:"id"`
	}
	resp.decode(a.t, &v)
	require.NotEqual(a.t, uuid.Nil, v.ID)
	return v.ID
}

func (a *testAPI) createWorkspace(u *testUser, name string) uuid.UUID {
	a.t.Helper()
	resp := a.do("POST", "/api/v1/workspaces", u.Access, map[string]string{"name": name})
	require.Equal(a.t, http.StatusCreated, resp.Status, resp.String())
	return a.id(resp)
}

func (a *testAPI) createProject(u *testUser, ws uuid.UUID, name string) uuid.UUID {
	a.t.Helper()
	resp := a.do("POST", "/api/v1/workspaces/"+ws.String()+"/projects", u.Access, map[string]string{"name": name})
	require.Equal(a.t, http.StatusCreated, resp.Status, resp.String())
	return a.id(resp)
}

// addMember adds who to a workspace ("workspaces") or project ("projects").
func (a *testAPI) addMember(by *testUser, kind string, scope uuid.UUID, who *testUser, role domain.Role) {
	a.t.Helper()
	resp := a.do("POST", "/api/v1/"+kind+"/"+scope.String()+"/members", by.Access,
		map[string]string{"email": who.Email, "role": string(role)})
	require.Equal(a.t, http.StatusCreated, resp.Status, resp.String())
}

// members lists the members of a workspace or project, as user id → role,
// reading every page.
func (a *testAPI) members(by *testUser, kind string, scope uuid.UUID) map[uuid.UUID]string {
	a.t.Helper()
	out := map[uuid.UUID]string{}
	for _, m := range listAll[memberJSON](a, by, "/api/v1/"+kind+"/"+scope.String()+"/members") {
		out[m.UserID] = m.Role
	}
	return out
}

// listAll fetches every page of a list, two items a page so that the
// cursors are exercised, and fails on a repeated item.
func listAll[T any](a *testAPI, by *testUser, path string) []T {
	a.t.Helper()
	var out []T
	seen := map[string]bool{}
	cursor := ""
	for page := 0; ; page++ {
		require.Less(a.t, page, 1000, "too many pages")
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		resp := a.do("GET", path+sep+"limit=2&cursor="+cursor, by.Access, nil)
		require.Equal(a.t, http.StatusOK, resp.Status, resp.String())
		var body struct {
			Items      []json.RawMessage `json:"items"`
			NextCursor string            `json:"next_cursor"`
		}
		resp.decode(a.t, &body)
		require.NotNil(a.t, body.Items, "items must be a list, never null")
		require.LessOrEqual(a.t, len(body.Items), 2, "a page holds at most limit items")
		for _, raw := range body.Items {
			require.False(a.t, seen[string(raw)], "item listed twice: %s", raw)
			seen[string(raw)] = true
			var it T
			require.NoError(a.t, json.Unmarshal(raw, &it))
			out = append(out, it)
		}
		if body.NextCursor == "" {
			return out
		}
		require.Len(a.t, body.Items, 2, "a page before the last must be full")
		cursor = body.NextCursor
	}
}

func TestHealthz(t *testing.T) {
	a := newTestAPI(t, Config{}, testDomainConfig())
	resp := a.do("GET", "/healthz", "", nil)
	require.Equal(t, http.StatusOK, resp.Status)
	assert.JSONEq(t, `{"status":"ok"}`, string(resp.Body))
}

func TestReadyz(t *testing.T) {
	t.Run("ready", func(t *testing.T) {
		a := newTestAPI(t, Config{}, testDomainConfig())
		resp := a.do("GET", "/readyz", "", nil)
		require.Equal(t, http.StatusOK, resp.Status)
		assert.JSONEq(t, `{"status":"ready"}`, string(resp.Body))
	})
	t.Run("not ready", func(t *testing.T) {
		var calls int
		var mu sync.Mutex
		a := newTestAPI(t, Config{Ready: func(ctx context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			calls++
			if _, ok := ctx.Deadline(); !ok {
				return errors.New("no deadline")
			}
			return errors.New("database unreachable")
		}}, testDomainConfig())
		resp := a.do("GET", "/readyz", "", nil)
		require.Equal(t, http.StatusServiceUnavailable, resp.Status)
		assert.JSONEq(t, `{"status":"unavailable"}`, string(resp.Body), "the reason goes to the log, not to anonymous callers")
		assert.Equal(t, 1, calls)
		// Liveness does not depend on readiness.
		assert.Equal(t, http.StatusOK, a.do("GET", "/healthz", "", nil).Status)
	})
}

func TestMetrics(t *testing.T) {
	a := newTestAPI(t, Config{}, testDomainConfig())
	u := a.signUp("metrics")
	ws := a.createWorkspace(u, "Metered")
	for range 3 {
		require.Equal(t, http.StatusOK, a.do("GET", "/api/v1/workspaces/"+ws.String(), u.Access, nil).Status)
	}
	require.Equal(t, http.StatusNotFound, a.do("GET", "/api/v1/workspaces/"+uuid.NewString(), u.Access, nil).Status)
	require.Equal(t, http.StatusNotFound, a.do("GET", "/no/such/path", "", nil).Status)

	resp := a.do("GET", "/metrics", "", nil)
	require.Equal(t, http.StatusOK, resp.Status)
	assert.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain"), resp.Header.Get("Content-Type"))
	counts := requestCounts(t, string(resp.Body))
	assert.Equal(t, 3.0, counts["GET /api/v1/workspaces/{workspaceID} 200"], "%v", counts)
	assert.Equal(t, 1.0, counts["GET /api/v1/workspaces/{workspaceID} 404"], "%v", counts)
	assert.Equal(t, 1.0, counts["POST /api/v1/workspaces 201"], "%v", counts)
	assert.Equal(t, 1.0, counts["POST /api/v1/auth/login 200"], "%v", counts)
	assert.Equal(t, 1.0, counts["GET unmatched 404"], "%v", counts)
	assert.NotContains(t, string(resp.Body), ws.String(), "ids must not become label values")
	assert.Contains(t, string(resp.Body), "tone_http_request_duration_seconds_bucket")
}

var requestCountRE = regexp.MustCompile(`(?m)^tone_http_requests_total\{([^}]*(?:\{[^}]*\}[^}]*)*)\} (\S+)$`)
var labelRE = regexp.MustCompile(`(\w+)="([^"]*)"`)

// requestCounts reads tone_http_requests_total from the Prometheus text
// format, keyed "METHOD route status".
func requestCounts(t *testing.T, text string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, m := range requestCountRE.FindAllStringSubmatch(text, -1) {
		labels := map[string]string{}
		for _, l := range labelRE.FindAllStringSubmatch(m[1], -1) {
			labels[l[1]] = l[2]
		}
		n, err := strconv.ParseFloat(m[2], 64)
		require.NoError(t, err)
		out[labels["method"]+" "+labels["route"]+" "+labels["status"]] = n
	}
	require.NotEmpty(t, out, "no tone_http_requests_total samples in:\n%s", text)
	return out
}

func TestCorrelationID(t *testing.T) {
	a := newTestAPI(t, Config{}, testDomainConfig())
	for _, test := range []struct {
		name, sent string
		echoed     bool
	}{
		{"none sent", "", false},
		{"client id echoed", "client-req_42.a:b", true},
		{"unsafe characters replaced", "bad id\twith spaces", false},
		{"overlong replaced", strings.Repeat("x", 129), false},
		{"longest kept", strings.Repeat("y", 128), true},
	} {
		t.Run(test.name, func(t *testing.T) {
			a := a.sub(t)
			for _, path := range []string{"/healthz", "/api/v1/me", "/api/v1/workspaces/nope"} {
				resp := a.do("GET", path, "", nil, RequestIDHeader, test.sent)
				got := resp.Header.Get(RequestIDHeader)
				if test.echoed {
					assert.Equal(t, test.sent, got, path)
				} else {
					_, err := uuid.Parse(got)
					assert.NoError(t, err, "%s: generated id %q is not a UUID", path, got)
				}
			}
		})
	}
	// Generated ids differ per request.
	one := a.do("GET", "/healthz", "", nil).Header.Get(RequestIDHeader)
	two := a.do("GET", "/healthz", "", nil).Header.Get(RequestIDHeader)
	assert.NotEqual(t, one, two)
}

func TestUnknownRouteAndMethod(t *testing.T) {
	a := newTestAPI(t, Config{}, testDomainConfig())
	resp := a.do("GET", "/api/v1/nothing-here", "", nil)
	assert.Equal(t, http.StatusNotFound, resp.Status)
	assert.Equal(t, domain.ENotFound, resp.errCode())

	resp = a.do("PUT", "/api/v1/auth/login", "", map[string]string{})
	assert.Equal(t, http.StatusMethodNotAllowed, resp.Status)
	assert.Equal(t, domain.EInvalid, resp.errCode())
}

func TestPagination(t *testing.T) {
	a := newTestAPI(t, Config{}, testDomainConfig())
	u := a.signUp("pager")
	other := a.signUp("other")
	a.createWorkspace(other, "Not mine")
	var want []uuid.UUID
	for i := range 5 {
		want = append(want, a.createWorkspace(u, "ws "+strconv.Itoa(i)))
	}
	got := listAll[workspaceJSON](a, u, "/api/v1/workspaces")
	var ids []uuid.UUID
	for _, w := range got {
		ids = append(ids, w.ID)
		assert.Empty(t, w.Role, "list items carry no role")
	}
	assert.Equal(t, want, ids, "every workspace of the caller, in creation (id) order, and no other")

	resp := a.do("GET", "/api/v1/workspaces?limit=5", u.Access, nil)
	require.Equal(t, http.StatusOK, resp.Status)
	assert.NotContains(t, resp.json(t), "next_cursor", "an exactly full last page has no next cursor")

	resp = a.do("GET", "/api/v1/workspaces?limit=4", u.Access, nil)
	var page listBody[workspaceJSON]
	resp.decode(t, &page)
	require.Len(t, page.Items, 4)
	require.NotEmpty(t, page.NextCursor)
	resp = a.do("GET", "/api/v1/workspaces?cursor="+page.NextCursor, u.Access, nil)
	resp.decode(t, &page)
	require.Len(t, page.Items, 1)
	assert.Equal(t, want[4], page.Items[0].ID)

	resp = a.do("GET", "/api/v1/workspaces?limit=200", u.Access, nil)
	assert.Equal(t, http.StatusOK, resp.Status)
}
