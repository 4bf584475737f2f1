package http

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain"
)

// TestRunnerFlow drives a deployment through the REST API as a runner
// would, with a deploy token an admin created.
func TestRunnerFlow(t *testing.T) {
	a := newTestAPI(t, Config{}, testDomainConfig())
	owner, viewer := a.signUp("owner"), a.signUp("viewer")
	ws := a.createWorkspace(owner, "Acme")
	project := a.createProject(owner, ws, "Site")
	a.addMember(owner, "projects", project, viewer, domain.RoleViewer)
	base := "/api/v1/projects/" + project.String()

	resp := a.do("POST", base+"/deploy-tokens", owner.Access, map[string]string{"name": "ci"})
	require.Equal(t, http.StatusCreated, resp.Status, resp.String())
	var tok deployTokenJSON
	resp.decode(t, &tok)
	require.NotEmpty(t, tok.Token)
	for _, listed := range listAll[deployTokenJSON](a, owner, base+"/deploy-tokens") {
		assert.Empty(t, listed.Token, "the secret is shown once")
	}

	// A user token is not a deploy token, nor the other way round.
	assert.Equal(t, http.StatusUnauthorized, a.do("POST", "/api/v1/runner/deployments", owner.Access, map[string]string{"environment": "x"}).Status)
	assert.Equal(t, http.StatusUnauthorized, a.do("GET", base, tok.Token, nil).Status)

	resp = a.do("POST", "/api/v1/runner/deployments", tok.Token, map[string]string{"environment": "production", "commit_sha": "0123abc"})
	require.Equal(t, http.StatusCreated, resp.Status, resp.String())
	var d deploymentJSON
	resp.decode(t, &d)
	assert.Equal(t, "token", d.TriggerKind)
	assert.Equal(t, tok.ID, d.TriggeredBy)
	run := "/api/v1/runner/deployments/" + d.ID.String()

	require.Equal(t, http.StatusOK, a.do("POST", run+"/heartbeat", tok.Token, nil).Status)
	require.Equal(t, http.StatusOK, a.do("POST", run+"/report", tok.Token, map[string]string{"state": "building"}).Status)
	resp = a.do("POST", run+"/report", tok.Token, map[string]string{"state": "ready"})
	require.Equal(t, http.StatusConflict, resp.Status, resp.String())
	assert.Equal(t, "building", resp.errDetails()["state"])
	require.Equal(t, http.StatusOK, a.do("POST", run+"/steps", tok.Token, map[string]any{"name": "build", "state": "succeeded", "exit_code": 0}).Status)
	require.Equal(t, http.StatusOK, a.do("POST", run+"/report", tok.Token, map[string]string{"state": "deploying"}).Status)
	resp = a.do("POST", run+"/report", tok.Token, map[string]any{"state": "ready", "url": "https://site.example", "metrics": map[string]int{"bundle_bytes": 2048}})
	require.Equal(t, http.StatusOK, resp.Status, resp.String())

	resp = a.do("GET", "/api/v1/deployments/"+d.ID.String(), viewer.Access, nil)
	require.Equal(t, http.StatusOK, resp.Status)
	resp.decode(t, &d)
	assert.Equal(t, "ready", d.State)
	assert.Equal(t, "https://site.example", d.URL)
	assert.Equal(t, map[string]int64{"bundle_bytes": 2048}, d.Metrics)
	require.Len(t, d.Steps, 1)
	assert.Equal(t, 0, *d.Steps[0].ExitCode)

	count := func(query string) int {
		t.Helper()
		resp := a.do("GET", base+"/deployments?"+query, viewer.Access, nil)
		require.Equal(t, http.StatusOK, resp.Status, resp.String())
		var body listBody[deploymentJSON]
		resp.decode(t, &body)
		return len(body.Items)
	}
	assert.Equal(t, 1, count("state=ready&environment=production"))
	assert.Equal(t, 0, count("state=failed"))
	assert.Equal(t, 0, count("environment=preview"))
	assert.Equal(t, http.StatusBadRequest, a.do("GET", base+"/deployments?state=bogus", viewer.Access, nil).Status)
	assert.Equal(t, http.StatusBadRequest, a.do("GET", base+"/deployments?since=yesterday", viewer.Access, nil).Status)
	resp = a.do("POST", "/api/v1/deployments/"+d.ID.String()+"/cancel", owner.Access, nil)
	require.Equal(t, http.StatusConflict, resp.Status)
	assert.Equal(t, "ready", resp.errDetails()["state"])

	require.Equal(t, http.StatusNoContent, a.do("DELETE", base+"/deploy-tokens/"+tok.ID.String(), owner.Access, nil).Status)
	assert.Equal(t, http.StatusUnauthorized, a.do("GET", run, tok.Token, nil).Status)
}

// TestRunnerLogs sends log batches over REST, with a resend and a gap, and
// reads them back: by range, as a download and by search.
func TestRunnerLogs(t *testing.T) {
	a := newTestAPI(t, Config{}, testDomainConfig())
	owner, viewer := a.signUp("owner"), a.signUp("viewer")
	ws := a.createWorkspace(owner, "Acme")
	project := a.createProject(owner, ws, "Site")
	a.addMember(owner, "projects", project, viewer, domain.RoleViewer)
	base := "/api/v1/projects/" + project.String()
	var tok deployTokenJSON
	a.do("POST", base+"/deploy-tokens", owner.Access, map[string]string{"name": "ci"}).decode(t, &tok)
	require.Equal(t, http.StatusCreated, a.do("POST", base+"/log-secrets", owner.Access, map[string]string{"name": "pw", "value": "hunter2!"}).Status)
	var d deploymentJSON
	a.do("POST", "/api/v1/runner/deployments", tok.Token, map[string]string{"environment": "production"}).decode(t, &d)
	logs := "/api/v1/runner/deployments/" + d.ID.String() + "/logs"

	send := func(first int, lines ...string) *response {
		return a.do("POST", logs, tok.Token, map[string]any{"step": "build", "first_line": first, "lines": lines})
	}
	resp := send(1, "\x1b[32mstart\x1b[0m", "password hunter2!")
	require.Equal(t, http.StatusOK, resp.Status, resp.String())
	var res logAppendJSON
	resp.decode(t, &res)
	assert.Equal(t, logAppendJSON{Appended: 2, NextLine: 3, FirstSeq: 1, LastSeq: 2}, res)
	resp = send(1, "\x1b[32mstart\x1b[0m", "password hunter2!")
	require.Equal(t, http.StatusOK, resp.Status)
	res = logAppendJSON{}
	resp.decode(t, &res)
	assert.Equal(t, logAppendJSON{Appended: 0, NextLine: 3}, res, "a resent batch is harmless")
	resp = send(5, "too far")
	require.Equal(t, http.StatusRequestedRangeNotSatisfiable, resp.Status, resp.String())
	assert.Equal(t, 3.0, resp.errDetails()["expected_line"])
	require.Equal(t, http.StatusOK, send(3, "done").Status)

	resp = a.do("GET", "/api/v1/deployments/"+d.ID.String()+"/logs?since=1&lines=10", viewer.Access, nil)
	require.Equal(t, http.StatusOK, resp.Status, resp.String())
	var page logPageJSON
	resp.decode(t, &page)
	assert.Equal(t, []logLineJSON{{Seq: 2, Step: "build", Line: 2, Text: "password ***"}, {Seq: 3, Step: "build", Line: 3, Text: "done"}}, page.Lines)
	assert.Equal(t, uint64(3), page.NextSince)
	assert.Equal(t, uint64(3), page.Top)

	resp = a.do("GET", "/api/v1/deployments/"+d.ID.String()+"/logs/download", viewer.Access, nil)
	require.Equal(t, http.StatusOK, resp.Status)
	assert.Equal(t, "text/plain; charset=utf-8", resp.Header.Get("Content-Type"))
	assert.Equal(t, "\x1b[32mstart\x1b[0m\npassword ***\ndone\n", string(resp.Body))

	resp = a.do("GET", "/api/v1/deployments/"+d.ID.String()+"/logs/search?q=%5Ed&regex=true", viewer.Access, nil)
	require.Equal(t, http.StatusOK, resp.Status, resp.String())
	var m logMatchesJSON
	resp.decode(t, &m)
	assert.Equal(t, []logLineJSON{{Seq: 3, Step: "build", Line: 3, Text: "done"}}, m.Lines)
	assert.True(t, m.Complete)
	assert.Equal(t, http.StatusBadRequest, a.do("GET", "/api/v1/deployments/"+d.ID.String()+"/logs/search?q=(&regex=true", viewer.Access, nil).Status)
	assert.Equal(t, http.StatusNotFound, a.do("GET", "/api/v1/deployments/"+d.ID.String()+"/logs", a.signUp("stranger").Access, nil).Status)
	assert.Equal(t, http.StatusForbidden, a.do("GET", base+"/log-secrets", viewer.Access, nil).Status)
}

// TestRunnerRateLimit checks the decision documented in docs/operations.md:
// runner routes skip the per-address limit and have their own, per deploy
// token.
func TestRunnerRateLimit(t *testing.T) {
	a := newTestAPI(t, Config{}, testDomainConfig())
	owner := a.signUp("owner")
	ws := a.createWorkspace(owner, "Acme")
	project := a.createProject(owner, ws, "Site")
	var tok1, tok2 deployTokenJSON
	a.do("POST", "/api/v1/projects/"+project.String()+"/deploy-tokens", owner.Access, map[string]string{"name": "one"}).decode(t, &tok1)
	a.do("POST", "/api/v1/projects/"+project.String()+"/deploy-tokens", owner.Access, map[string]string{"name": "two"}).decode(t, &tok2)

	// The same service behind limits small enough to meet.
	b := startTestAPI(t, a.svc, Config{RequestsPerIP: Rate{N: 3, Window: time.Minute}, RequestsPerRunner: Rate{N: 5, Window: time.Minute}})
	for range 5 {
		require.Equal(t, http.StatusCreated, b.do("POST", "/api/v1/runner/deployments", tok1.Token, map[string]string{"environment": "x"}).Status,
			"runner requests are not counted per address")
	}
	resp := b.do("POST", "/api/v1/runner/deployments", tok1.Token, map[string]string{"environment": "x"})
	require.Equal(t, http.StatusTooManyRequests, resp.Status, "but per deploy token")
	assert.NotEmpty(t, resp.Header.Get("Retry-After"))
	assert.Equal(t, http.StatusCreated, b.do("POST", "/api/v1/runner/deployments", tok2.Token, map[string]string{"environment": "x"}).Status,
		"another token has its own budget")
	for range 3 {
		require.Equal(t, http.StatusOK, b.do("GET", "/api/v1/me", owner.Access, nil).Status)
	}
	assert.Equal(t, http.StatusTooManyRequests, b.do("GET", "/api/v1/me", owner.Access, nil).Status, "people's requests are counted per address")
}
