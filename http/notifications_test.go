package http

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain"
)

// TestNotificationsAPI walks the inbox over REST: being added and promoted
// fills it, the counts follow marking seen, read and archived, and the
// filters and pages select what they say.
func TestNotificationsAPI(t *testing.T) {
	a := newTestAPI(t, Config{}, testDomainConfig())
	owner, bob := a.signUp("owner"), a.signUp("bob")
	ws := a.createWorkspace(owner, "Acme")
	project := a.createProject(owner, ws, "Rocket")
	a.addMember(owner, "workspaces", ws, bob, domain.RoleViewer)
	a.addMember(owner, "projects", project, bob, domain.RoleEditor)
	resp := a.do("PATCH", "/api/v1/workspaces/"+ws.String()+"/members/"+bob.ID.String(), owner.Access, map[string]string{"role": "editor"})
	require.Equal(t, http.StatusOK, resp.Status, resp.String())

	counts := func(u *testUser) domain.NotificationCounts {
		var c domain.NotificationCounts
		resp := a.do("GET", "/api/v1/notifications/counts", u.Access, nil)
		require.Equal(t, http.StatusOK, resp.Status, resp.String())
		resp.decode(t, &c)
		return c
	}
	all := listAll[notificationJSON](a, bob, "/api/v1/notifications")
	require.Len(t, all, 3)
	assert.Equal(t, []string{"workspace.member.role_changed", "project.member.added", "workspace.member.added"},
		[]string{all[0].Type, all[1].Type, all[2].Type})
	assert.Equal(t, &project, all[1].ProjectID)
	assert.Equal(t, &owner.ID, all[1].ActorID)
	assert.JSONEq(t, `{"workspace_id":"`+ws.String()+`","workspace_name":"Acme","role":"viewer"}`, string(all[2].Data))
	assert.Equal(t, domain.NotificationCounts{Unseen: 3, Unread: 3}, counts(bob))
	assert.Empty(t, listAll[notificationJSON](a, owner, "/api/v1/notifications"))

	resp = a.do("POST", "/api/v1/notifications/seen-all", bob.Access, nil)
	require.Equal(t, http.StatusOK, resp.Status, resp.String())
	assert.Equal(t, domain.NotificationCounts{Unseen: 0, Unread: 3}, counts(bob))

	path := "/api/v1/notifications/" + all[2].ID.String()
	resp = a.do("PATCH", path, bob.Access, map[string]bool{"read": true})
	require.Equal(t, http.StatusOK, resp.Status, resp.String())
	var n notificationJSON
	resp.decode(t, &n)
	assert.NotNil(t, n.ReadAt)
	assert.NotNil(t, n.SeenAt)
	assert.Nil(t, n.ArchivedAt)
	assert.Len(t, listAll[notificationJSON](a, bob, "/api/v1/notifications?unread=true"), 2)

	resp = a.do("PATCH", "/api/v1/notifications/"+all[0].ID.String(), bob.Access, map[string]bool{"archived": true})
	require.Equal(t, http.StatusOK, resp.Status, resp.String())
	assert.Len(t, listAll[notificationJSON](a, bob, "/api/v1/notifications"), 2)
	assert.Len(t, listAll[notificationJSON](a, bob, "/api/v1/notifications?archived=true"), 1)
	assert.Len(t, listAll[notificationJSON](a, bob, "/api/v1/notifications?archived=all"), 3)
	assert.Len(t, listAll[notificationJSON](a, bob, "/api/v1/notifications?type=project.member.added"), 1)
	assert.Equal(t, domain.NotificationCounts{Unseen: 0, Unread: 1}, counts(bob))

	resp = a.do("POST", "/api/v1/notifications/read-all", bob.Access, nil)
	require.Equal(t, http.StatusOK, resp.Status, resp.String())
	assert.Equal(t, domain.NotificationCounts{}, counts(bob))

	for _, bad := range []struct {
		method, path string
		body         any
		status       int
	}{
		{"GET", "/api/v1/notifications?unread=maybe", nil, http.StatusBadRequest},
		{"GET", "/api/v1/notifications?archived=no", nil, http.StatusBadRequest},
		{"GET", "/api/v1/notifications?type=nope", nil, http.StatusBadRequest},
		{"PATCH", path, map[string]bool{"read": false}, http.StatusBadRequest},
		{"PATCH", path, map[string]bool{}, http.StatusBadRequest},
		{"PATCH", path, map[string]any{"read": true, "colour": "red"}, http.StatusBadRequest},
		{"PATCH", "/api/v1/notifications/nope", map[string]bool{"read": true}, http.StatusBadRequest},
		{"PATCH", "/api/v1/notifications/" + project.String(), map[string]bool{"read": true}, http.StatusNotFound},
	} {
		resp := a.do(bad.method, bad.path, bob.Access, bad.body)
		assert.Equal(t, bad.status, resp.Status, "%s %s: %s", bad.method, bad.path, resp)
	}
	resp = a.do("PATCH", path, owner.Access, map[string]bool{"archived": true})
	assert.Equal(t, http.StatusNotFound, resp.Status, "someone else's notification: %s", resp)
	assert.Len(t, listAll[notificationJSON](a, bob, "/api/v1/notifications"), 2, "and it stays in bob's inbox")
}

// TestNotificationPreferencesAPI: types can be turned off and on, critical
// ones cannot, and a refused request changes nothing.
func TestNotificationPreferencesAPI(t *testing.T) {
	a := newTestAPI(t, Config{}, testDomainConfig())
	owner, bob := a.signUp("owner"), a.signUp("bob")
	prefs := func() map[string]notificationPreferenceJSON {
		resp := a.do("GET", "/api/v1/me/notification-preferences", bob.Access, nil)
		require.Equal(t, http.StatusOK, resp.Status, resp.String())
		var body struct{ Items []notificationPreferenceJSON }
		resp.decode(t, &body)
		out := map[string]notificationPreferenceJSON{}
		for _, p := range body.Items {
			out[p.Type] = p
		}
		return out
	}
	before := prefs()
	require.Len(t, before, len(domain.NotificationTypes))
	assert.False(t, before["deployment.failed"].Enabled)
	assert.True(t, before["workspace.member.role_changed"].Critical)

	resp := a.do("PATCH", "/api/v1/me/notification-preferences", bob.Access,
		map[string]any{"preferences": map[string]bool{"workspace.member.added": false, "deployment.failed": true}})
	require.Equal(t, http.StatusOK, resp.Status, resp.String())
	after := prefs()
	assert.False(t, after["workspace.member.added"].Enabled)
	assert.True(t, after["deployment.failed"].Enabled)

	for _, body := range []any{
		map[string]any{"preferences": map[string]bool{"workspace.member.role_changed": false, "canvas.mention": false}},
		map[string]any{"preferences": map[string]bool{"nope": true}},
		map[string]any{"preferences": map[string]bool{}},
		map[string]any{"preferences": map[string]string{"canvas.mention": "off"}},
		map[string]any{},
	} {
		resp := a.do("PATCH", "/api/v1/me/notification-preferences", bob.Access, body)
		assert.Equal(t, http.StatusBadRequest, resp.Status, "%v: %s", body, resp)
	}
	assert.Equal(t, after, prefs(), "refused requests changed nothing")

	ws := a.createWorkspace(owner, "Acme")
	a.addMember(owner, "workspaces", ws, bob, domain.RoleViewer)
	assert.Empty(t, listAll[notificationJSON](a, bob, "/api/v1/notifications"), "bob turned additions off")
}
