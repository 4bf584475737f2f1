package http

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain"
)

// TestBadInput sends malformed requests of every kind and checks that each
// gets the error envelope with the right status and the client's
// correlation id, and that none of them changed anything.
func TestBadInput(t *testing.T) {
	const maxBody = 4096
	a := newRealtimeTestAPI(t, Config{MaxBodyBytes: maxBody}, testDomainConfig())
	owner, friend := a.signUp("owner"), a.signUp("friend")
	ws := a.createWorkspace(owner, "Acme")
	project := a.createProject(owner, ws, "Rocket")
	canvas := a.createCanvas(owner, project, "Board")
	version := a.saveVersion(owner, canvas, "v1").ID
	wsPath := "/api/v1/workspaces/" + ws.String()
	projectPath := "/api/v1/projects/" + project.String()
	cPath := canvasPath(canvas)

	type state struct {
		workspaces     []workspaceJSON
		wsMembers      map[uuid.UUID]string
		projects       []projectJSON
		project        projectJSON
		projectMembers map[uuid.UUID]string
		me             userJSON
		canvases       []canvasJSON
		canvas         canvasJSON
		versions       []canvasVersionJSON
		document       []string
	}
	snap := func() state {
		var s state
		s.workspaces = listAll[workspaceJSON](a, owner, "/api/v1/workspaces")
		s.wsMembers = a.members(owner, "workspaces", ws)
		s.projects = listAll[projectJSON](a, owner, wsPath+"/projects")
		a.do("GET", projectPath, owner.Access, nil).decode(t, &s.project)
		s.projectMembers = a.members(owner, "projects", project)
		a.do("GET", "/api/v1/me", owner.Access, nil).decode(t, &s.me)
		s.canvases = listAll[canvasJSON](a, owner, canvasesPath(project))
		a.do("GET", cPath, owner.Access, nil).decode(t, &s.canvas)
		s.versions = listAll[canvasVersionJSON](a, owner, cPath+"/versions")
		s.document = tree(a.openCanvas(owner, canvas, 0).doc)
		return s
	}
	before := snap()

	big := `{"name":"` + strings.Repeat("x", maxBody) + `"}`
	ok := "application/json"
	for i, test := range []struct {
		name         string
		method, path string
		body         string
		contentType  string
		status       int
		field        string // details.field, when the error names one
	}{
		{"malformed JSON", "POST", "/api/v1/workspaces", `{"name":`, ok, 400, ""},
		{"not JSON at all", "POST", "/api/v1/workspaces", `name=x`, ok, 400, ""},
		{"empty body", "POST", "/api/v1/workspaces", ``, ok, 400, ""},
		{"unknown field", "POST", "/api/v1/workspaces", `{"name":"x","owner":"me"}`, ok, 400, ""},
		{"wrong type", "POST", "/api/v1/workspaces", `{"name":42}`, ok, 400, "name"},
		{"array instead of object", "POST", "/api/v1/workspaces", `[{"name":"x"}]`, ok, 400, ""},
		{"null body", "POST", "/api/v1/workspaces", `null`, ok, 400, "name"},
		{"second object", "POST", "/api/v1/workspaces", `{"name":"a"}{"name":"b"}`, ok, 400, ""},
		{"trailing garbage", "POST", "/api/v1/workspaces", `{"name":"a"} x`, ok, 400, ""},
		{"oversized body", "POST", "/api/v1/workspaces", big, ok, 413, ""},
		{"oversized and invalid body", "POST", "/api/v1/workspaces", `{"bad":` + big, ok, 413, ""},
		{"text/plain", "POST", "/api/v1/workspaces", `{"name":"x"}`, "text/plain", 415, ""},
		{"form content type", "POST", "/api/v1/workspaces", `{"name":"x"}`, "application/x-www-form-urlencoded", 415, ""},
		{"malformed content type", "POST", "/api/v1/workspaces", `{"name":"x"}`, "application/", 415, ""},
		{"blank name", "POST", "/api/v1/workspaces", `{"name":"   "}`, ok, 400, "name"},
		{"overlong name", "POST", "/api/v1/workspaces", `{"name":"` + strings.Repeat("é", 101) + `"}`, ok, 400, "name"},
		{"control character in name", "POST", "/api/v1/workspaces", `{"name":"a\u0007b"}`, ok, 400, "name"},
		{"rename to blank", "PATCH", wsPath, `{"name":""}`, ok, 400, "name"},
		{"rename with unknown field", "PATCH", wsPath, `{"name":"x","id":"y"}`, ok, 400, ""},
		{"invalid member email", "POST", wsPath + "/members", `{"email":"friend","role":"viewer"}`, ok, 400, "email"},
		{"member email with display name", "POST", wsPath + "/members", `{"email":"Friend <friend@example.com>","role":"viewer"}`, ok, 400, "email"},
		{"invalid role", "POST", wsPath + "/members", fmt.Sprintf(`{"email":%q,"role":"superuser"}`, friend.Email), ok, 400, "role"},
		{"role of wrong type", "PATCH", wsPath + "/members/" + owner.ID.String(), `{"role":1}`, ok, 400, "role"},
		{"missing role", "PATCH", wsPath + "/members/" + owner.ID.String(), `{}`, ok, 400, "role"},
		{"project without name", "POST", wsPath + "/projects", `{"description":"x"}`, ok, 400, "name"},
		{"project name null", "POST", wsPath + "/projects", `{"name":null}`, ok, 400, "name"},
		{"project description too long", "PATCH", projectPath, `{"description":"` + strings.Repeat("d", 2001) + `"}`, ok, 400, "description"},
		{"project name of wrong type", "PATCH", projectPath, `{"name":["x"]}`, ok, 400, "name"},
		{"invalid project member email", "POST", projectPath + "/members", `{"email":"@example.com","role":"viewer"}`, ok, 400, "email"},
		{"profile display name of wrong type", "PATCH", "/api/v1/me", `{"display_name":5}`, ok, 400, "display_name"},
		{"register: invalid email", "POST", "/api/v1/auth/register", `{"email":"nobody","password":"long enough pw"}`, ok, 400, "email"},
		{"register: short password", "POST", "/api/v1/auth/register", `{"email":"new@example.com","password":"short"}`, ok, 400, "password"},
		{"register: unknown field", "POST", "/api/v1/auth/register", `{"email":"new@example.com","password":"long enough pw","admin":true}`, ok, 400, ""},
		{"login: unknown field", "POST", "/api/v1/auth/login", `{"email":"new@example.com","password":"x","otp":1}`, ok, 400, ""},
		{"refresh: wrong type", "POST", "/api/v1/auth/refresh", `{"refresh_token":true}`, ok, 400, "refresh_token"},
		{"logout: text/plain", "POST", "/api/v1/auth/logout", `{"refresh_token":"x"}`, "text/plain", 415, ""},
		{"workspace id not a uuid", "GET", "/api/v1/workspaces/acme", ``, "", 400, "workspaceID"},
		{"workspace id not a uuid on delete", "DELETE", "/api/v1/workspaces/12345", ``, "", 400, "workspaceID"},
		{"user id not a uuid", "PATCH", wsPath + "/members/bob", `{"role":"viewer"}`, ok, 400, "userID"},
		{"user id not a uuid on remove", "DELETE", projectPath + "/members/bob", ``, "", 400, "userID"},
		{"project id not a uuid", "GET", "/api/v1/projects/" + strings.Repeat("f", 33), ``, "", 400, "projectID"},
		{"profile id not a uuid", "GET", "/api/v1/users/me", ``, "", 400, "userID"},
		{"limit zero", "GET", "/api/v1/workspaces?limit=0", ``, "", 400, "limit"},
		{"limit negative", "GET", "/api/v1/workspaces?limit=-1", ``, "", 400, "limit"},
		{"limit too large", "GET", wsPath + "/members?limit=201", ``, "", 400, "limit"},
		{"limit not a number", "GET", wsPath + "/projects?limit=ten", ``, "", 400, "limit"},
		{"limit fractional", "GET", projectPath + "/members?limit=1.5", ``, "", 400, "limit"},
		{"cursor not base64", "GET", "/api/v1/workspaces?cursor=!!!", ``, "", 400, ""},
		{"cursor of wrong length", "GET", wsPath + "/members?cursor=AAAA", ``, "", 400, ""},
		{"canvas without name", "POST", projectPath + "/canvases", `{}`, ok, 400, "name"},
		{"canvas name blank", "POST", projectPath + "/canvases", `{"name":" \t "}`, ok, 400, "name"},
		{"canvas name of wrong type", "POST", projectPath + "/canvases", `{"name":42}`, ok, 400, "name"},
		{"canvas name overlong", "POST", projectPath + "/canvases", `{"name":"` + strings.Repeat("n", 101) + `"}`, ok, 400, "name"},
		{"canvas with unknown field", "POST", projectPath + "/canvases", `{"name":"x","project_id":"y"}`, ok, 400, ""},
		{"canvas oversized", "POST", projectPath + "/canvases", big, ok, 413, ""},
		{"canvas text/plain", "POST", projectPath + "/canvases", `{"name":"x"}`, "text/plain", 415, ""},
		{"canvas list of bad project id", "GET", "/api/v1/projects/rocket/canvases", ``, "", 400, "projectID"},
		{"canvas list limit too large", "GET", projectPath + "/canvases?limit=1000", ``, "", 400, "limit"},
		{"canvas list bad cursor", "GET", projectPath + "/canvases?cursor=!!!", ``, "", 400, ""},
		{"canvas rename blank", "PATCH", cPath, `{"name":""}`, ok, 400, "name"},
		{"canvas rename control character", "PATCH", cPath, `{"name":"a\u0000b"}`, ok, 400, "name"},
		{"canvas rename trailing data", "PATCH", cPath, `{"name":"x"} {}`, ok, 400, ""},
		{"canvas id not a uuid", "GET", "/api/v1/canvases/board", ``, "", 400, "canvasID"},
		{"canvas id not a uuid on rename", "PATCH", "/api/v1/canvases/board", `{"name":"x"}`, ok, 400, "canvasID"},
		{"canvas id not a uuid on delete", "DELETE", "/api/v1/canvases/" + strings.Repeat("0", 32) + "0", ``, "", 400, "canvasID"},
		{"version name blank", "POST", cPath + "/versions", `{"name":""}`, ok, 400, "name"},
		{"version without body", "POST", cPath + "/versions", ``, ok, 400, ""},
		{"version with unknown field", "POST", cPath + "/versions", `{"name":"v","snapshot":"AA=="}`, ok, 400, ""},
		{"version oversized", "POST", cPath + "/versions", big, ok, 413, ""},
		{"version of bad canvas id", "POST", "/api/v1/canvases/board/versions", `{"name":"v"}`, ok, 400, "canvasID"},
		{"version list limit zero", "GET", cPath + "/versions?limit=0", ``, "", 400, "limit"},
		{"version list bad cursor", "GET", cPath + "/versions?cursor=AAAA", ``, "", 400, ""},
		{"version id not a uuid", "GET", cPath + "/versions/latest", ``, "", 400, "versionID"},
		{"restore version id not a uuid", "POST", cPath + "/versions/latest/restore", ``, "", 400, "versionID"},
		{"restore canvas id not a uuid", "POST", "/api/v1/canvases/board/versions/" + version.String() + "/restore", ``, "", 400, "canvasID"},
	} {
		t.Run(test.name, func(t *testing.T) {
			a := a.sub(t)
			var body any
			if test.body != "" || test.contentType != "" {
				body = test.body
			}
			reqID := fmt.Sprintf("bad-input-%d", i)
			resp := a.do(test.method, test.path, owner.Access, body, "Content-Type", test.contentType, RequestIDHeader, reqID)
			require.Equal(t, test.status, resp.Status, resp.String())
			assert.Equal(t, domain.EInvalid, resp.errCode())
			assert.Equal(t, reqID, resp.Header.Get(RequestIDHeader), "the client's X-Request-ID is echoed")
			assert.Equal(t, reqID, resp.json(t)["error"].(map[string]any)["correlation_id"])
			assert.NotEmpty(t, resp.errMessage(t))
			msg := resp.errMessage(t)
			assert.NotRegexp(t, `\b(http|domain|json)\.[A-Za-z]`, msg, "the message names Go internals")
			if test.field != "" {
				// Most errors name the field as details.field; role errors
				// carry the rejected value under details.role.
				details := resp.errDetails()
				_, named := details[test.field]
				assert.True(t, details["field"] == test.field || named, "details %v should name %s", details, test.field)
			}
		})
	}

	assert.Equal(t, before, snap(), "a rejected request changed something")
	for _, email := range []string{"new@example.com", "nobody"} {
		resp := a.login(email, "long enough pw")
		assert.Equal(t, http.StatusUnauthorized, resp.Status, "a rejected registration created %s", email)
	}

	// The checks are not too strict: parameters on the media type are fine,
	// as is a body sent without a Content-Type.
	resp := a.do("POST", "/api/v1/workspaces", owner.Access, `{"name":"Charset"}`, "Content-Type", "application/json; charset=utf-8")
	assert.Equal(t, http.StatusCreated, resp.Status, resp.String())
	resp = a.do("POST", "/api/v1/workspaces", owner.Access, `{"name":"Bare"}`, "Content-Type", "")
	assert.Equal(t, http.StatusCreated, resp.Status, resp.String())
	resp = a.do("POST", "/api/v1/workspaces", owner.Access, " \n{\"name\":\"Spaced\"}\n\t ")
	assert.Equal(t, http.StatusCreated, resp.Status, resp.String())
	assert.Len(t, listAll[workspaceJSON](a, owner, "/api/v1/workspaces"), 4)
}

// TestBadToken checks that malformed, foreign and misused tokens get 401
// with WWW-Authenticate.
func TestBadToken(t *testing.T) {
	a := newTestAPI(t, Config{}, testDomainConfig())
	other := newTestAPI(t, Config{}, testDomainConfig()) // its own signing key
	u := a.signUp("user")
	foreign := other.signUp("user")
	for _, test := range []struct {
		name, authorization string
	}{
		{"no header", ""},
		{"garbage", "Bearer not.a.jwt"},
		{"basic scheme", "Basic dXNlcjpwYXNz"},
		{"refresh token as access token", "Bearer " + u.Refresh},
		{"token signed by another key", "Bearer " + foreign.Access},
		{"tampered token", "Bearer " + u.Access[:len(u.Access)-4] + "AAAA"},
	} {
		t.Run(test.name, func(t *testing.T) {
			a := a.sub(t)
			resp := a.do("GET", "/api/v1/me", "", nil, "Authorization", test.authorization)
			require.Equal(t, http.StatusUnauthorized, resp.Status, resp.String())
			assert.Equal(t, domain.EUnauthenticated, resp.errCode())
			assert.Equal(t, `Bearer realm="tone"`, resp.Header.Get("WWW-Authenticate"))
		})
	}
	assert.Equal(t, http.StatusOK, a.do("GET", "/api/v1/me", u.Access, nil).Status)
}
