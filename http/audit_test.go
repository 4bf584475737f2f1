package http

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain"
)

// TestAuditAPI: admins and owners query, export and verify a workspace's
// audit log; editors get 403 and outsiders 404.
func TestAuditAPI(t *testing.T) {
	a := newTestAPI(t, Config{}, testDomainConfig())
	owner, admin, editor, outsider := a.signUp("owner"), a.signUp("admin"), a.signUp("editor"), a.signUp("outsider")
	ws := a.createWorkspace(owner, "Acme")
	project := a.createProject(owner, ws, "Rocket")
	a.addMember(owner, "workspaces", ws, admin, domain.RoleAdmin)
	a.addMember(owner, "workspaces", ws, editor, domain.RoleEditor)
	a.addMember(owner, "projects", project, editor, domain.RoleAdmin)
	base := "/api/v1/workspaces/" + ws.String() + "/audit"

	all := listAll[auditEventJSON](a, admin, base)
	var actions []string
	for _, e := range all {
		actions = append(actions, e.Action)
	}
	assert.Equal(t, []string{"workspace.create", "project.create", "workspace.member.add", "workspace.member.add", "project.member.add"}, actions)
	for i, e := range all {
		assert.Equal(t, int64(i+1), e.Seq, "one chain, numbered in order")
		assert.Len(t, e.Hash, 64)
	}
	assert.Equal(t, all[0].Hash, all[1].PrevHash)

	q := url.Values{"project_id": {project.String()}, "actor_id": {owner.ID.String()}, "action": {"project.member.add"},
		"target_type": {"user"}, "target_id": {editor.ID.String()}}
	got := listAll[auditEventJSON](a, owner, base+"?"+q.Encode())
	require.Len(t, got, 1)
	assert.Equal(t, map[string]any{"role": "admin"}, got[0].Details)
	q = url.Values{"since": {all[1].Time.Format(time.RFC3339Nano)}, "until": {all[2].Time.Format(time.RFC3339Nano)}}
	got = listAll[auditEventJSON](a, owner, base+"?"+q.Encode())
	require.NotEmpty(t, got)
	for _, e := range got {
		assert.False(t, e.Time.Before(all[1].Time) || !e.Time.Before(all[2].Time))
	}

	for _, c := range []struct {
		who    *testUser
		path   string
		status int
	}{
		{editor, base, http.StatusForbidden},
		{editor, base + "/export", http.StatusForbidden},
		{editor, base + "/verify", http.StatusForbidden},
		{outsider, base, http.StatusNotFound},
		{outsider, base + "/export?format=csv", http.StatusNotFound},
		{outsider, base + "/verify", http.StatusNotFound},
		{owner, base + "?actor_id=nope", http.StatusBadRequest},
		{owner, base + "?since=yesterday", http.StatusBadRequest},
		{owner, base + "?since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z", http.StatusBadRequest},
		{owner, base + "/export?format=xml", http.StatusBadRequest},
	} {
		resp := a.do("GET", c.path, c.who.Access, nil)
		assert.Equal(t, c.status, resp.Status, "%s as %s: %s", c.path, c.who.Email, resp)
	}

	resp := a.do("GET", base+"/export", admin.Access, nil)
	require.Equal(t, http.StatusOK, resp.Status, resp.String())
	assert.Equal(t, "application/x-ndjson", resp.Header.Get("Content-Type"))
	var lines []auditEventJSON
	sc := bufio.NewScanner(bytes.NewReader(resp.Body))
	for sc.Scan() {
		var e auditEventJSON
		require.NoError(t, json.Unmarshal(sc.Bytes(), &e))
		lines = append(lines, e)
	}
	assert.Equal(t, all, lines, "the export holds what the list does")

	resp = a.do("GET", base+"/export?format=csv&action=workspace.member.add", admin.Access, nil)
	require.Equal(t, http.StatusOK, resp.Status, resp.String())
	assert.Equal(t, "text/csv; charset=utf-8", resp.Header.Get("Content-Type"))
	assert.Contains(t, resp.Header.Get("Content-Disposition"), "audit-"+ws.String()+".csv")
	records, err := csv.NewReader(bytes.NewReader(resp.Body)).ReadAll()
	require.NoError(t, err)
	require.Len(t, records, 3, "a header and two events")
	assert.Equal(t, auditCSVHeader, records[0])
	assert.Equal(t, all[2].ID.String(), records[1][0])
	assert.JSONEq(t, `{"role":"admin"}`, records[1][12])
	assert.Equal(t, "3", records[1][13])

	resp = a.do("GET", base+"/export?format=csv&action=nothing.like.this", admin.Access, nil)
	require.Equal(t, http.StatusOK, resp.Status)
	records, err = csv.NewReader(bytes.NewReader(resp.Body)).ReadAll()
	require.NoError(t, err)
	assert.Equal(t, [][]string{auditCSVHeader}, records, "an empty export still has its header")

	var rep domain.AuditReport
	resp = a.do("GET", base+"/verify", owner.Access, nil)
	require.Equal(t, http.StatusOK, resp.Status, resp.String())
	resp.decode(t, &rep)
	assert.True(t, rep.OK)
	assert.Equal(t, int64(len(all)), rep.Events)
	assert.Equal(t, all[len(all)-1].Hash, rep.HeadHash)
}
