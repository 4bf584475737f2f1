package http

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain"
)

// TestAnalyticsAPI: project members read the analytics, which answer as
// documented; others get 404 and bad parameters 400.
func TestAnalyticsAPI(t *testing.T) {
	a := newTestAPI(t, Config{}, testDomainConfig())
	owner, viewer, outsider := a.signUp("owner"), a.signUp("viewer"), a.signUp("outsider")
	ws := a.createWorkspace(owner, "Acme")
	project := a.createProject(owner, ws, "Rocket")
	a.addMember(owner, "projects", project, viewer, domain.RoleViewer)
	canvas := a.createCanvas(owner, project, "Board")
	_, err := a.svc.CreateDeployment(context.Background(), owner.ID, project, domain.DeploymentInput{Environment: "production", GitRef: "main", CommitSHA: "abcdef1"})
	require.NoError(t, err)
	require.NoError(t, a.svc.RecordCanvasActivity(context.Background(), "n1", []domain.CanvasActivity{{CanvasID: canvas, Viewers: 2, Editors: []uuid.UUID{owner.ID}}}))

	base := "/api/v1/projects/" + project.String() + "/analytics/"
	var dep domain.DeploymentAnalytics
	resp := a.do("GET", base+"deployments", viewer.Access, nil)
	require.Equal(t, http.StatusOK, resp.Status, resp.String())
	resp.decode(t, &dep)
	require.Len(t, dep.Environments, 1)
	assert.Equal(t, 1, dep.Environments[0].Total)
	assert.Nil(t, dep.Environments[0].SuccessRate)

	var rt domain.RealtimeAnalytics
	resp = a.do("GET", base+"realtime?step=1h&since="+time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), viewer.Access, nil)
	require.Equal(t, http.StatusOK, resp.Status, resp.String())
	resp.decode(t, &rt)
	require.Len(t, rt.Buckets, 1)
	assert.Equal(t, 2, rt.Buckets[0].Connections)
	assert.Equal(t, 1, rt.Buckets[0].Editors)

	for _, c := range []struct {
		who    *testUser
		path   string
		status int
	}{
		{outsider, base + "deployments", http.StatusNotFound},
		{outsider, base + "realtime", http.StatusNotFound},
		{viewer, base + "deployments?since=yesterday", http.StatusBadRequest},
		{viewer, base + "realtime?step=-1m", http.StatusBadRequest},
		{viewer, base + "realtime?step=1s", http.StatusBadRequest},
	} {
		resp := a.do("GET", c.path, c.who.Access, nil)
		assert.Equal(t, c.status, resp.Status, "%s: %s", c.path, resp)
	}
}
