package http

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/crdt"
	"github.com/tone-ai/tone/domain"
)

// accessFixture is a workspace with one project, a canvas in it, and the
// people around them:
//
//   - owner: created the workspace, the project and the canvas (workspace and
//     project owner)
//   - coowner: a second workspace owner
//   - target: workspace editor and project editor, the one mutations act on
//   - newbie: has an account and no membership
//   - actor: the caller under test, with the role under test either in the
//     workspace or only in the project (or none at all)
//
// The canvas holds a red rectangle, saved as a version, and then painted
// blue. The server runs a realtime node, as cmd/tone does, so that canvas
// versions can be saved and restored.
type accessFixture struct {
	a                                     *testAPI
	owner, coowner, target, newbie, actor *testUser
	ws, project, canvas, version          uuid.UUID
	rect                                  crdt.ID
	deployment, deployToken               uuid.UUID   // a queued deployment and a deploy token of the project
	logSecret                             uuid.UUID   // a log secret of the project
	artifact                              uuid.UUID   // an artifact of the deployment
	actorRole                             domain.Role // "" for a non-member
}

// roleScope says where the actor's role is granted.
type roleScope string

const (
	inWorkspace roleScope = "workspace role"
	inProject   roleScope = "project role"
)

func newAccessFixture(t *testing.T, scope roleScope, role domain.Role) *accessFixture {
	a := newRealtimeTestAPI(t, Config{}, testDomainConfig())
	f := &accessFixture{a: a,
		owner: a.signUp("owner"), coowner: a.signUp("coowner"), target: a.signUp("target"),
		newbie: a.signUp("newbie"), actor: a.signUp("actor"), actorRole: role,
	}
	f.ws = a.createWorkspace(f.owner, "Acme")
	f.project = a.createProject(f.owner, f.ws, "Rocket")
	a.addMember(f.owner, "workspaces", f.ws, f.coowner, domain.RoleOwner)
	a.addMember(f.owner, "workspaces", f.ws, f.target, domain.RoleEditor)
	a.addMember(f.owner, "projects", f.project, f.target, domain.RoleEditor)
	f.canvas = a.createCanvas(f.owner, f.project, "Board")
	f.rect, f.version = seedCanvas(t, a.svc, f.owner.ID, f.canvas)
	f.deployment, f.deployToken = seedDeployment(t, a.svc, f.owner.ID, f.project)
	sec, err := a.svc.CreateLogSecret(context.Background(), f.owner.ID, f.project, "seeded", "seeded-value")
	require.NoError(t, err)
	f.logSecret = sec.ID
	art, err := a.svc.UploadArtifact(context.Background(), domain.UserCaller(f.owner.ID), f.deployment,
		domain.ArtifactInput{Name: "dist.tar.gz"}, strings.NewReader("bundle"))
	require.NoError(t, err)
	f.artifact = art.ID
	if role != "" {
		if scope == inWorkspace {
			a.addMember(f.owner, "workspaces", f.ws, f.actor, role)
		} else {
			a.addMember(f.owner, "projects", f.project, f.actor, role)
		}
	}
	return f
}

// seedDeployment queues a deployment in a project and creates a deploy
// token for it, through the domain service.
func seedDeployment(t *testing.T, svc *domain.Service, owner, project uuid.UUID) (uuid.UUID, uuid.UUID) {
	t.Helper()
	d, err := svc.CreateDeployment(context.Background(), owner, project, domain.DeploymentInput{Environment: "production"})
	require.NoError(t, err)
	tok, _, err := svc.CreateDeployToken(context.Background(), owner, project, "ci")
	require.NoError(t, err)
	return d.ID, tok.ID
}

// fixtureReplica is the replica the fixture's canvas content is made with.
const fixtureReplica = 77

// seedCanvas writes a red rectangle into a canvas's op log, saves that as
// the version "Before", then paints the rectangle blue; it returns the
// rectangle and the version. It goes through the domain service only, so
// no node has the canvas loaded afterwards.
func seedCanvas(t *testing.T, svc *domain.Service, owner, canvas uuid.UUID) (crdt.ID, uuid.UUID) {
	t.Helper()
	ctx := context.Background()
	doc := crdt.NewDoc(fixtureReplica, crdt.DefaultSchema())
	appendUpdate := func(u []byte, err error) {
		t.Helper()
		require.NoError(t, err)
		dec, err := crdt.DecodeUpdate(u)
		require.NoError(t, err)
		last := dec.Ops[len(dec.Ops)-1]
		require.NoError(t, svc.AppendCanvasUpdates(ctx, canvas, []*domain.CanvasUpdate{{
			CanvasID: canvas, Replica: fixtureReplica, First: dec.Ops[0].ID.Seq, Last: last.ID.Seq + last.Span() - 1,
			Data: u, ActorID: owner,
		}}))
	}
	rect, u, err := doc.Create("rect", crdt.Root, "", crdt.Props{"x": crdt.Number(10), "w": crdt.Number(20), "fill": crdt.String("#ff0000")})
	appendUpdate(u, err)
	vv := domain.CanvasVersion{}
	for r, s := range doc.Version() {
		vv[uint64(r)] = s
	}
	v, err := svc.SaveCanvasVersion(ctx, owner, canvas, "Before", vv, doc.Snapshot())
	require.NoError(t, err)
	appendUpdate(doc.Set(rect, crdt.Props{"fill": crdt.String("#0000ff")}))
	return rect, v.ID
}

// canvasFill reads the fill of the fixture's rectangle from the store.
func (f *accessFixture) canvasFill(t *testing.T) string {
	fill, _ := loadStored(t, f.a.svc, f.owner.ID, f.canvas).Get(f.rect, "fill")
	return fill.Str()
}

func (f *accessFixture) canvasPath(rest ...string) string {
	return canvasPath(f.canvas, rest...)
}

func (f *accessFixture) wsPath(rest ...string) string {
	return "/api/v1/workspaces/" + f.ws.String() + strings.Join(rest, "")
}

func (f *accessFixture) projectPath(rest ...string) string {
	return "/api/v1/projects/" + f.project.String() + strings.Join(rest, "")
}

// wsRole and projectRole read a member's role as the owner ("" if none).
func (f *accessFixture) wsRole(u *testUser) string {
	return f.a.members(f.owner, "workspaces", f.ws)[u.ID]
}

func (f *accessFixture) projectRole(u *testUser) string {
	return f.a.members(f.owner, "projects", f.project)[u.ID]
}

// mutation is one mutating endpoint, called by the fixture's actor.
type mutation struct {
	name   string
	route  string      // "METHOD pattern" the call must reach
	scopes []roleScope // where the actor's role may be granted for this case
	action domain.Action
	// ownerRule: the call grants, changes or takes away the owner role, so
	// besides action it needs an owner.
	ownerRule bool
	// needsProjectRole: the call acts on the actor's own project membership,
	// which only a project role gives.
	needsProjectRole bool
	success          int
	call             func(f *accessFixture) *response
	// took reports, as read by the owner, whether the call took effect.
	took func(t *testing.T, f *accessFixture) bool
}

var (
	workspaceOnly = []roleScope{inWorkspace}
	bothScopes    = []roleScope{inWorkspace, inProject}
	projectOnly   = []roleScope{inProject}
)

func mutations() []mutation {
	role := func(r domain.Role) map[string]string { return map[string]string{"role": string(r)} }
	add := func(u *testUser, r domain.Role) map[string]string {
		return map[string]string{"email": u.Email, "role": string(r)}
	}
	return append(flagMutations(), []mutation{
		{
			name: "rename workspace", route: "PATCH /api/v1/workspaces/{workspaceID}",
			scopes: workspaceOnly, action: domain.ActWorkspaceUpdate, success: http.StatusOK,
			call: func(f *accessFixture) *response {
				return f.a.do("PATCH", f.wsPath(), f.actor.Access, map[string]string{"name": "Renamed"})
			},
			took: func(t *testing.T, f *accessFixture) bool {
				var w workspaceJSON
				f.a.do("GET", f.wsPath(), f.owner.Access, nil).decode(t, &w)
				return w.Name == "Renamed"
			},
		},
		{
			name: "delete workspace", route: "DELETE /api/v1/workspaces/{workspaceID}",
			scopes: workspaceOnly, action: domain.ActWorkspaceDelete, success: http.StatusNoContent,
			call: func(f *accessFixture) *response { return f.a.do("DELETE", f.wsPath(), f.actor.Access, nil) },
			took: func(t *testing.T, f *accessFixture) bool {
				return f.a.do("GET", f.wsPath(), f.owner.Access, nil).Status == http.StatusNotFound &&
					f.a.do("GET", f.projectPath(), f.owner.Access, nil).Status == http.StatusNotFound &&
					f.a.do("GET", f.canvasPath(), f.owner.Access, nil).Status == http.StatusNotFound
			},
		},
		{
			name: "add workspace member", route: "POST /api/v1/workspaces/{workspaceID}/members",
			scopes: workspaceOnly, action: domain.ActWorkspaceMembersManage, success: http.StatusCreated,
			call: func(f *accessFixture) *response {
				return f.a.do("POST", f.wsPath("/members"), f.actor.Access, add(f.newbie, domain.RoleViewer))
			},
			took: func(t *testing.T, f *accessFixture) bool { return f.wsRole(f.newbie) == "viewer" },
		},
		{
			name: "add workspace owner", route: "POST /api/v1/workspaces/{workspaceID}/members",
			scopes: workspaceOnly, action: domain.ActWorkspaceMembersManage, ownerRule: true, success: http.StatusCreated,
			call: func(f *accessFixture) *response {
				return f.a.do("POST", f.wsPath("/members"), f.actor.Access, add(f.newbie, domain.RoleOwner))
			},
			took: func(t *testing.T, f *accessFixture) bool { return f.wsRole(f.newbie) == "owner" },
		},
		{
			name: "change workspace member role", route: "PATCH /api/v1/workspaces/{workspaceID}/members/{userID}",
			scopes: workspaceOnly, action: domain.ActWorkspaceMembersManage, success: http.StatusOK,
			call: func(f *accessFixture) *response {
				return f.a.do("PATCH", f.wsPath("/members/", f.target.ID.String()), f.actor.Access, role(domain.RoleViewer))
			},
			took: func(t *testing.T, f *accessFixture) bool { return f.wsRole(f.target) == "viewer" },
		},
		{
			name: "promote workspace member to owner", route: "PATCH /api/v1/workspaces/{workspaceID}/members/{userID}",
			scopes: workspaceOnly, action: domain.ActWorkspaceMembersManage, ownerRule: true, success: http.StatusOK,
			call: func(f *accessFixture) *response {
				return f.a.do("PATCH", f.wsPath("/members/", f.target.ID.String()), f.actor.Access, role(domain.RoleOwner))
			},
			took: func(t *testing.T, f *accessFixture) bool { return f.wsRole(f.target) == "owner" },
		},
		{
			name: "demote workspace owner", route: "PATCH /api/v1/workspaces/{workspaceID}/members/{userID}",
			scopes: workspaceOnly, action: domain.ActWorkspaceMembersManage, ownerRule: true, success: http.StatusOK,
			call: func(f *accessFixture) *response {
				return f.a.do("PATCH", f.wsPath("/members/", f.coowner.ID.String()), f.actor.Access, role(domain.RoleAdmin))
			},
			took: func(t *testing.T, f *accessFixture) bool { return f.wsRole(f.coowner) == "admin" },
		},
		{
			name: "remove workspace member", route: "DELETE /api/v1/workspaces/{workspaceID}/members/{userID}",
			scopes: workspaceOnly, action: domain.ActWorkspaceMembersManage, success: http.StatusNoContent,
			call: func(f *accessFixture) *response {
				return f.a.do("DELETE", f.wsPath("/members/", f.target.ID.String()), f.actor.Access, nil)
			},
			took: func(t *testing.T, f *accessFixture) bool {
				// Leaving the workspace also ends the target's project role.
				return f.wsRole(f.target) == "" && f.projectRole(f.target) == ""
			},
		},
		{
			name: "remove workspace owner", route: "DELETE /api/v1/workspaces/{workspaceID}/members/{userID}",
			scopes: workspaceOnly, action: domain.ActWorkspaceMembersManage, ownerRule: true, success: http.StatusNoContent,
			call: func(f *accessFixture) *response {
				return f.a.do("DELETE", f.wsPath("/members/", f.coowner.ID.String()), f.actor.Access, nil)
			},
			took: func(t *testing.T, f *accessFixture) bool { return f.wsRole(f.coowner) == "" },
		},
		{
			// Any member may leave; with three owners even an owner may.
			name: "leave workspace", route: "DELETE /api/v1/workspaces/{workspaceID}/members/{userID}",
			scopes: workspaceOnly, action: domain.ActWorkspaceRead, success: http.StatusNoContent,
			call: func(f *accessFixture) *response {
				return f.a.do("DELETE", f.wsPath("/members/", f.actor.ID.String()), f.actor.Access, nil)
			},
			took: func(t *testing.T, f *accessFixture) bool {
				_, listed := f.a.members(f.owner, "workspaces", f.ws)[f.actor.ID]
				return f.actorRole != "" && !listed && f.a.do("GET", f.wsPath(), f.actor.Access, nil).Status == http.StatusNotFound
			},
		},
		{
			name: "create project", route: "POST /api/v1/workspaces/{workspaceID}/projects",
			scopes: workspaceOnly, action: domain.ActProjectCreate, success: http.StatusCreated,
			call: func(f *accessFixture) *response {
				return f.a.do("POST", f.wsPath("/projects"), f.actor.Access, map[string]string{"name": "New"})
			},
			took: func(t *testing.T, f *accessFixture) bool {
				return len(listAll[projectJSON](f.a, f.owner, f.wsPath("/projects"))) == 2
			},
		},
		{
			name: "update project", route: "PATCH /api/v1/projects/{projectID}",
			scopes: bothScopes, action: domain.ActProjectUpdate, success: http.StatusOK,
			call: func(f *accessFixture) *response {
				return f.a.do("PATCH", f.projectPath(), f.actor.Access, map[string]string{"name": "Renamed", "description": "new"})
			},
			took: func(t *testing.T, f *accessFixture) bool {
				var p projectJSON
				f.a.do("GET", f.projectPath(), f.owner.Access, nil).decode(t, &p)
				return p.Name == "Renamed" && p.Description == "new"
			},
		},
		{
			name: "delete project", route: "DELETE /api/v1/projects/{projectID}",
			scopes: bothScopes, action: domain.ActProjectDelete, success: http.StatusNoContent,
			call: func(f *accessFixture) *response { return f.a.do("DELETE", f.projectPath(), f.actor.Access, nil) },
			took: func(t *testing.T, f *accessFixture) bool {
				return f.a.do("GET", f.projectPath(), f.owner.Access, nil).Status == http.StatusNotFound &&
					f.a.do("GET", f.canvasPath(), f.owner.Access, nil).Status == http.StatusNotFound
			},
		},
		{
			name: "add project member", route: "POST /api/v1/projects/{projectID}/members",
			scopes: bothScopes, action: domain.ActProjectMembersManage, success: http.StatusCreated,
			call: func(f *accessFixture) *response {
				return f.a.do("POST", f.projectPath("/members"), f.actor.Access, add(f.newbie, domain.RoleViewer))
			},
			took: func(t *testing.T, f *accessFixture) bool { return f.projectRole(f.newbie) == "viewer" },
		},
		{
			name: "add project owner", route: "POST /api/v1/projects/{projectID}/members",
			scopes: bothScopes, action: domain.ActProjectMembersManage, ownerRule: true, success: http.StatusCreated,
			call: func(f *accessFixture) *response {
				return f.a.do("POST", f.projectPath("/members"), f.actor.Access, add(f.newbie, domain.RoleOwner))
			},
			took: func(t *testing.T, f *accessFixture) bool { return f.projectRole(f.newbie) == "owner" },
		},
		{
			name: "change project member role", route: "PATCH /api/v1/projects/{projectID}/members/{userID}",
			scopes: bothScopes, action: domain.ActProjectMembersManage, success: http.StatusOK,
			call: func(f *accessFixture) *response {
				return f.a.do("PATCH", f.projectPath("/members/", f.target.ID.String()), f.actor.Access, role(domain.RoleViewer))
			},
			took: func(t *testing.T, f *accessFixture) bool { return f.projectRole(f.target) == "viewer" },
		},
		{
			name: "promote project member to owner", route: "PATCH /api/v1/projects/{projectID}/members/{userID}",
			scopes: bothScopes, action: domain.ActProjectMembersManage, ownerRule: true, success: http.StatusOK,
			call: func(f *accessFixture) *response {
				return f.a.do("PATCH", f.projectPath("/members/", f.target.ID.String()), f.actor.Access, role(domain.RoleOwner))
			},
			took: func(t *testing.T, f *accessFixture) bool { return f.projectRole(f.target) == "owner" },
		},
		{
			name: "demote project owner", route: "PATCH /api/v1/projects/{projectID}/members/{userID}",
			scopes: bothScopes, action: domain.ActProjectMembersManage, ownerRule: true, success: http.StatusOK,
			call: func(f *accessFixture) *response {
				return f.a.do("PATCH", f.projectPath("/members/", f.owner.ID.String()), f.actor.Access, role(domain.RoleAdmin))
			},
			took: func(t *testing.T, f *accessFixture) bool { return f.projectRole(f.owner) == "admin" },
		},
		{
			name: "remove project member", route: "DELETE /api/v1/projects/{projectID}/members/{userID}",
			scopes: bothScopes, action: domain.ActProjectMembersManage, success: http.StatusNoContent,
			call: func(f *accessFixture) *response {
				return f.a.do("DELETE", f.projectPath("/members/", f.target.ID.String()), f.actor.Access, nil)
			},
			took: func(t *testing.T, f *accessFixture) bool {
				// The workspace membership stays.
				return f.projectRole(f.target) == "" && f.wsRole(f.target) == "editor"
			},
		},
		{
			name: "remove project owner", route: "DELETE /api/v1/projects/{projectID}/members/{userID}",
			scopes: bothScopes, action: domain.ActProjectMembersManage, ownerRule: true, success: http.StatusNoContent,
			call: func(f *accessFixture) *response {
				return f.a.do("DELETE", f.projectPath("/members/", f.owner.ID.String()), f.actor.Access, nil)
			},
			took: func(t *testing.T, f *accessFixture) bool { return f.projectRole(f.owner) == "" },
		},
		{
			name: "leave project", route: "DELETE /api/v1/projects/{projectID}/members/{userID}",
			scopes: projectOnly, action: domain.ActProjectRead, needsProjectRole: true, success: http.StatusNoContent,
			call: func(f *accessFixture) *response {
				return f.a.do("DELETE", f.projectPath("/members/", f.actor.ID.String()), f.actor.Access, nil)
			},
			took: func(t *testing.T, f *accessFixture) bool {
				_, listed := f.a.members(f.owner, "projects", f.project)[f.actor.ID]
				return f.actorRole != "" && !listed && f.a.do("GET", f.projectPath(), f.actor.Access, nil).Status == http.StatusNotFound
			},
		},
		{
			name: "create canvas", route: "POST /api/v1/projects/{projectID}/canvases",
			scopes: bothScopes, action: domain.ActCanvasWrite, success: http.StatusCreated,
			call: func(f *accessFixture) *response {
				return f.a.do("POST", f.projectPath("/canvases"), f.actor.Access, map[string]string{"name": "New"})
			},
			took: func(t *testing.T, f *accessFixture) bool {
				return len(listAll[canvasJSON](f.a, f.owner, f.projectPath("/canvases"))) == 2
			},
		},
		{
			name: "rename canvas", route: "PATCH /api/v1/canvases/{canvasID}",
			scopes: bothScopes, action: domain.ActCanvasWrite, success: http.StatusOK,
			call: func(f *accessFixture) *response {
				return f.a.do("PATCH", f.canvasPath(), f.actor.Access, map[string]string{"name": "Renamed"})
			},
			took: func(t *testing.T, f *accessFixture) bool {
				var c canvasJSON
				f.a.do("GET", f.canvasPath(), f.owner.Access, nil).decode(t, &c)
				return c.Name == "Renamed"
			},
		},
		{
			name: "delete canvas", route: "DELETE /api/v1/canvases/{canvasID}",
			scopes: bothScopes, action: domain.ActCanvasDelete, success: http.StatusNoContent,
			call: func(f *accessFixture) *response { return f.a.do("DELETE", f.canvasPath(), f.actor.Access, nil) },
			took: func(t *testing.T, f *accessFixture) bool {
				return f.a.do("GET", f.canvasPath(), f.owner.Access, nil).Status == http.StatusNotFound
			},
		},
		{
			name: "save canvas version", route: "POST /api/v1/canvases/{canvasID}/versions",
			scopes: bothScopes, action: domain.ActCanvasWrite, success: http.StatusCreated,
			call: func(f *accessFixture) *response {
				return f.a.do("POST", f.canvasPath("/versions"), f.actor.Access, map[string]string{"name": "Checkpoint"})
			},
			took: func(t *testing.T, f *accessFixture) bool {
				vs := listAll[canvasVersionJSON](f.a, f.owner, f.canvasPath("/versions"))
				return len(vs) == 2 && vs[1].Name == "Checkpoint" && vs[1].CreatedBy == f.actor.ID
			},
		},
		{
			name: "create deployment", route: "POST /api/v1/projects/{projectID}/deployments",
			scopes: bothScopes, action: domain.ActDeploymentCreate, success: http.StatusCreated,
			call: func(f *accessFixture) *response {
				return f.a.do("POST", f.projectPath("/deployments"), f.actor.Access, map[string]string{"environment": "preview"})
			},
			took: func(t *testing.T, f *accessFixture) bool {
				return len(listAll[deploymentJSON](f.a, f.owner, f.projectPath("/deployments"))) == 2
			},
		},
		{
			name: "cancel deployment", route: "POST /api/v1/deployments/{deploymentID}/cancel",
			scopes: bothScopes, action: domain.ActDeploymentCancel, success: http.StatusOK,
			call: func(f *accessFixture) *response {
				return f.a.do("POST", "/api/v1/deployments/"+f.deployment.String()+"/cancel", f.actor.Access, map[string]string{"reason": "stop"})
			},
			took: func(t *testing.T, f *accessFixture) bool {
				var d deploymentJSON
				f.a.do("GET", "/api/v1/deployments/"+f.deployment.String(), f.owner.Access, nil).decode(t, &d)
				return d.State == "canceled"
			},
		},
		{
			name: "create deploy token", route: "POST /api/v1/projects/{projectID}/deploy-tokens",
			scopes: bothScopes, action: domain.ActDeployTokensManage, success: http.StatusCreated,
			call: func(f *accessFixture) *response {
				return f.a.do("POST", f.projectPath("/deploy-tokens"), f.actor.Access, map[string]string{"name": "bot"})
			},
			took: func(t *testing.T, f *accessFixture) bool {
				return len(listAll[deployTokenJSON](f.a, f.owner, f.projectPath("/deploy-tokens"))) == 2
			},
		},
		{
			name: "revoke deploy token", route: "DELETE /api/v1/projects/{projectID}/deploy-tokens/{tokenID}",
			scopes: bothScopes, action: domain.ActDeployTokensManage, success: http.StatusNoContent,
			call: func(f *accessFixture) *response {
				return f.a.do("DELETE", f.projectPath("/deploy-tokens/", f.deployToken.String()), f.actor.Access, nil)
			},
			took: func(t *testing.T, f *accessFixture) bool {
				ts := listAll[deployTokenJSON](f.a, f.owner, f.projectPath("/deploy-tokens"))
				return len(ts) == 1 && ts[0].RevokedAt != nil
			},
		},
		{
			name: "set log retention", route: "PATCH /api/v1/projects/{projectID}/log-settings",
			scopes: bothScopes, action: domain.ActLogSettingsManage, success: http.StatusOK,
			call: func(f *accessFixture) *response {
				return f.a.do("PATCH", f.projectPath("/log-settings"), f.actor.Access, map[string]int{"retention_days": 9})
			},
			took: func(t *testing.T, f *accessFixture) bool {
				var st logSettingsJSON
				f.a.do("GET", f.projectPath("/log-settings"), f.owner.Access, nil).decode(t, &st)
				return st.RetentionDays == 9
			},
		},
		{
			name: "add log secret", route: "POST /api/v1/projects/{projectID}/log-secrets",
			scopes: bothScopes, action: domain.ActLogSettingsManage, success: http.StatusCreated,
			call: func(f *accessFixture) *response {
				return f.a.do("POST", f.projectPath("/log-secrets"), f.actor.Access, map[string]string{"name": "new", "value": "new-value"})
			},
			took: func(t *testing.T, f *accessFixture) bool {
				var l listBody[logSecretJSON]
				f.a.do("GET", f.projectPath("/log-secrets"), f.owner.Access, nil).decode(t, &l)
				return len(l.Items) == 2
			},
		},
		{
			name: "remove log secret", route: "DELETE /api/v1/projects/{projectID}/log-secrets/{secretID}",
			scopes: bothScopes, action: domain.ActLogSettingsManage, success: http.StatusNoContent,
			call: func(f *accessFixture) *response {
				return f.a.do("DELETE", f.projectPath("/log-secrets/", f.logSecret.String()), f.actor.Access, nil)
			},
			took: func(t *testing.T, f *accessFixture) bool {
				var l listBody[logSecretJSON]
				f.a.do("GET", f.projectPath("/log-secrets"), f.owner.Access, nil).decode(t, &l)
				return len(l.Items) == 0
			},
		},
		{
			name: "upload artifact", route: "POST /api/v1/deployments/{deploymentID}/artifacts",
			scopes: bothScopes, action: domain.ActArtifactWrite, success: http.StatusCreated,
			call: func(f *accessFixture) *response {
				return f.a.do("POST", "/api/v1/deployments/"+f.deployment.String()+"/artifacts?name=report.txt", f.actor.Access, []byte("ok"),
					"Content-Type", "text/plain")
			},
			took: func(t *testing.T, f *accessFixture) bool {
				return len(listAll[artifactJSON](f.a, f.owner, "/api/v1/deployments/"+f.deployment.String()+"/artifacts")) == 2
			},
		},
		{
			name: "start resumable upload", route: "POST /api/v1/deployments/{deploymentID}/uploads",
			scopes: bothScopes, action: domain.ActArtifactWrite, success: http.StatusCreated,
			call: func(f *accessFixture) *response {
				return f.a.do("POST", "/api/v1/deployments/"+f.deployment.String()+"/uploads", f.actor.Access, nil,
					"Tus-Resumable", "1.0.0", "Upload-Length", "0", "Upload-Metadata", "name ZW1wdHk=")
			},
			took: func(t *testing.T, f *accessFixture) bool {
				// An empty upload is complete at once: its artifact exists.
				return len(listAll[artifactJSON](f.a, f.owner, "/api/v1/deployments/"+f.deployment.String()+"/artifacts")) == 2
			},
		},
		{
			name: "delete artifact", route: "DELETE /api/v1/artifacts/{artifactID}",
			scopes: bothScopes, action: domain.ActArtifactDelete, success: http.StatusNoContent,
			call: func(f *accessFixture) *response {
				return f.a.do("DELETE", "/api/v1/artifacts/"+f.artifact.String(), f.actor.Access, nil)
			},
			took: func(t *testing.T, f *accessFixture) bool {
				return f.a.do("GET", "/api/v1/artifacts/"+f.artifact.String(), f.owner.Access, nil).Status == http.StatusNotFound
			},
		},
		{
			name: "restore canvas version", route: "POST /api/v1/canvases/{canvasID}/versions/{versionID}/restore",
			scopes: bothScopes, action: domain.ActCanvasWrite, success: http.StatusNoContent,
			call: func(f *accessFixture) *response {
				return f.a.do("POST", f.canvasPath("/versions/", f.version.String(), "/restore"), f.actor.Access, nil)
			},
			took: func(t *testing.T, f *accessFixture) bool {
				switch fill := f.canvasFill(t); fill {
				case "#ff0000":
					return true
				case "#0000ff":
					return false
				default:
					t.Errorf("the rectangle is %q, neither as saved nor as painted since", fill)
					return false
				}
			},
		},
	}...)
}

// expectedStatus derives a call's answer from the permission matrix and the
// owner rules: a caller without a role gets 404 (existence does not leak),
// one whose role is below what domain.Permissions asks for gets 403, as does
// a non-owner touching the owner role; anyone else succeeds.
func expectedStatus(role domain.Role, m mutation) int {
	switch {
	case !role.Valid():
		return http.StatusNotFound
	case !role.Can(m.action):
		return http.StatusForbidden
	case m.ownerRule && role != domain.RoleOwner:
		return http.StatusForbidden
	}
	return m.success
}

// TestRoleMatrix calls every mutating endpoint as every role, on a fresh
// fixture each time, and checks the status, the error code and whether the
// change happened against what the permission matrix says.
func TestRoleMatrix(t *testing.T) {
	roles := []domain.Role{domain.RoleOwner, domain.RoleAdmin, domain.RoleEditor, domain.RoleViewer, ""}
	for _, m := range mutations() {
		for _, scope := range m.scopes {
			for _, role := range roles {
				if role == "" && scope == inProject {
					continue // a non-member has no scope; covered with inWorkspace
				}
				name := m.name + "/" + string(scope) + "=" + string(role)
				if role == "" {
					name = m.name + "/non-member"
				}
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					want := expectedStatus(role, m)
					if m.needsProjectRole && scope != inProject && want < 300 {
						want = http.StatusNotFound
					}
					f := newAccessFixture(t, scope, role)
					resp := m.call(f)
					assert.Equal(t, m.route, f.a.lastRoute(), "the case calls the wrong route")
					require.Equal(t, want, resp.Status, "%s as %s: %s", m.name, name, resp)
					switch want {
					case http.StatusNotFound:
						assert.Equal(t, domain.ENotFound, resp.errCode())
					case http.StatusForbidden:
						assert.Equal(t, domain.EForbidden, resp.errCode())
					}
					assert.Equal(t, want < 300, m.took(t, f), "the change must happen exactly when the call succeeds")
				})
			}
		}
	}
}

// TestRoleMatrixCoversEveryMutation keeps the matrix complete: every
// mutating route on a workspace or project has a case.
func TestRoleMatrixCoversEveryMutation(t *testing.T) {
	a := newTestAPI(t, Config{}, testDomainConfig())
	covered := map[string]bool{}
	for _, m := range mutations() {
		covered[m.route] = true
	}
	for op := range routedOperations(t, a.api) {
		method, path, _ := strings.Cut(op, " ")
		if method == "GET" || !strings.Contains(path, "{workspaceID}") && !strings.Contains(path, "{projectID}") && !strings.Contains(path, "{canvasID}") {
			continue
		}
		assert.True(t, covered[op], "TestRoleMatrix has no case for %s", op)
	}
}

// TestOtherWorkspaceIsInvisible checks that a member of workspace A gets 404
// for every object of workspace B, with the same answer as for ids that do
// not exist, and that none of the attempts changes B.
func TestOtherWorkspaceIsInvisible(t *testing.T) {
	a := newRealtimeTestAPI(t, Config{}, testDomainConfig())
	alice, bob, carol := a.signUp("alice"), a.signUp("bob"), a.signUp("carol")
	wsA := a.createWorkspace(alice, "Alpha")
	projectA := a.createProject(alice, wsA, "Alpha project")
	wsB := a.createWorkspace(bob, "Beta")
	projectB := a.createProject(bob, wsB, "Beta project")
	a.addMember(bob, "workspaces", wsB, carol, domain.RoleEditor)
	a.addMember(bob, "projects", projectB, carol, domain.RoleViewer)
	// Alice knows Carol's email and shares nothing with her.
	newbie := a.signUp("newbie")
	canvasA := a.createCanvas(alice, projectA, "Alpha board")
	canvasB := a.createCanvas(bob, projectB, "Beta board")
	_, versionB := seedCanvas(t, a.svc, bob.ID, canvasB)
	a.saveVersion(bob, canvasB, "Loaded") // the node now holds canvas B
	deploymentB, tokenB := seedDeployment(t, a.svc, bob.ID, projectB)
	secretB, err := a.svc.CreateLogSecret(context.Background(), bob.ID, projectB, "pw", "bob's secret")
	require.NoError(t, err)

	type snapshot struct {
		ws             workspaceJSON
		wsMembers      map[uuid.UUID]string
		projects       []projectJSON
		projectMembers map[uuid.UUID]string
		canvases       []canvasJSON
		versions       []canvasVersionJSON
		document       []string
		deployments    []deploymentJSON
		deployTokens   []deployTokenJSON
		logSecrets     listBody[logSecretJSON]
		logSettings    logSettingsJSON
	}
	snap := func() snapshot {
		var s snapshot
		a.do("GET", "/api/v1/workspaces/"+wsB.String(), bob.Access, nil).decode(t, &s.ws)
		s.wsMembers = a.members(bob, "workspaces", wsB)
		s.projects = listAll[projectJSON](a, bob, "/api/v1/workspaces/"+wsB.String()+"/projects")
		s.projectMembers = a.members(bob, "projects", projectB)
		s.canvases = listAll[canvasJSON](a, bob, canvasesPath(projectB))
		s.versions = listAll[canvasVersionJSON](a, bob, canvasPath(canvasB, "/versions"))
		s.document = tree(loadStored(t, a.svc, bob.ID, canvasB))
		s.deployments = listAll[deploymentJSON](a, bob, "/api/v1/projects/"+projectB.String()+"/deployments")
		s.deployTokens = listAll[deployTokenJSON](a, bob, "/api/v1/projects/"+projectB.String()+"/deploy-tokens")
		a.do("GET", "/api/v1/projects/"+projectB.String()+"/log-secrets", bob.Access, nil).decode(t, &s.logSecrets)
		a.do("GET", "/api/v1/projects/"+projectB.String()+"/log-settings", bob.Access, nil).decode(t, &s.logSettings)
		return s
	}
	before := snap()

	for _, test := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/api/v1/workspaces/{ws}", nil},
		{"PATCH", "/api/v1/workspaces/{ws}", map[string]string{"name": "Mine now"}},
		{"DELETE", "/api/v1/workspaces/{ws}", nil},
		{"GET", "/api/v1/workspaces/{ws}/members", nil},
		{"POST", "/api/v1/workspaces/{ws}/members", map[string]string{"email": newbie.Email, "role": "viewer"}},
		{"PATCH", "/api/v1/workspaces/{ws}/members/{user}", map[string]string{"role": "viewer"}},
		{"DELETE", "/api/v1/workspaces/{ws}/members/{user}", nil},
		{"GET", "/api/v1/workspaces/{ws}/projects", nil},
		{"POST", "/api/v1/workspaces/{ws}/projects", map[string]string{"name": "Planted"}},
		{"GET", "/api/v1/projects/{project}", nil},
		{"PATCH", "/api/v1/projects/{project}", map[string]string{"name": "Mine now"}},
		{"DELETE", "/api/v1/projects/{project}", nil},
		{"GET", "/api/v1/projects/{project}/members", nil},
		{"POST", "/api/v1/projects/{project}/members", map[string]string{"email": newbie.Email, "role": "viewer"}},
		{"PATCH", "/api/v1/projects/{project}/members/{user}", map[string]string{"role": "owner"}},
		{"DELETE", "/api/v1/projects/{project}/members/{user}", nil},
		{"GET", "/api/v1/users/{user}", nil},
		{"GET", "/api/v1/projects/{project}/canvases", nil},
		{"POST", "/api/v1/projects/{project}/canvases", map[string]string{"name": "Planted"}},
		{"GET", "/api/v1/canvases/{canvas}", nil},
		{"PATCH", "/api/v1/canvases/{canvas}", map[string]string{"name": "Mine now"}},
		{"DELETE", "/api/v1/canvases/{canvas}", nil},
		{"GET", "/api/v1/canvases/{canvas}/versions", nil},
		{"POST", "/api/v1/canvases/{canvas}/versions", map[string]string{"name": "Stolen"}},
		{"GET", "/api/v1/canvases/{canvas}/versions/{version}", nil},
		{"POST", "/api/v1/canvases/{canvas}/versions/{version}/restore", nil},
		{"GET", "/api/v1/projects/{project}/deployments", nil},
		{"POST", "/api/v1/projects/{project}/deployments", map[string]string{"environment": "planted"}},
		{"GET", "/api/v1/deployments/{deployment}", nil},
		{"POST", "/api/v1/deployments/{deployment}/cancel", nil},
		{"GET", "/api/v1/deployments/{deployment}/logs", nil},
		{"GET", "/api/v1/deployments/{deployment}/logs/download", nil},
		{"GET", "/api/v1/deployments/{deployment}/logs/search?q=x", nil},
		{"GET", "/api/v1/projects/{project}/deploy-tokens", nil},
		{"POST", "/api/v1/projects/{project}/deploy-tokens", map[string]string{"name": "stolen"}},
		{"DELETE", "/api/v1/projects/{project}/deploy-tokens/{token}", nil},
		{"GET", "/api/v1/projects/{project}/log-settings", nil},
		{"PATCH", "/api/v1/projects/{project}/log-settings", map[string]int{"retention_days": 1}},
		{"GET", "/api/v1/projects/{project}/log-secrets", nil},
		{"POST", "/api/v1/projects/{project}/log-secrets", map[string]string{"name": "mine", "value": "planted value"}},
		{"DELETE", "/api/v1/projects/{project}/log-secrets/{secret}", nil},
	} {
		t.Run(test.method+" "+test.path, func(t *testing.T) {
			a := a.sub(t)
			real := strings.NewReplacer("{ws}", wsB.String(), "{project}", projectB.String(), "{user}", carol.ID.String(),
				"{canvas}", canvasB.String(), "{version}", versionB.String(),
				"{deployment}", deploymentB.String(), "{token}", tokenB.String(), "{secret}", secretB.ID.String()).Replace(test.path)
			fake := strings.NewReplacer("{ws}", uuid.NewString(), "{project}", uuid.NewString(), "{user}", uuid.NewString(),
				"{canvas}", uuid.NewString(), "{version}", uuid.NewString(),
				"{deployment}", uuid.NewString(), "{token}", uuid.NewString(), "{secret}", uuid.NewString()).Replace(test.path)
			got := a.do(test.method, real, alice.Access, test.body)
			require.Equal(t, http.StatusNotFound, got.Status, "%s %s as a stranger: %s", test.method, real, got)
			assert.Equal(t, domain.ENotFound, got.errCode())
			missing := a.do(test.method, fake, alice.Access, test.body)
			require.Equal(t, http.StatusNotFound, missing.Status, missing.String())
			assert.Equal(t, missing.errMessage(t), got.errMessage(t), "a hidden object must look like a missing one")
		})
	}
	assert.Equal(t, before, snap(), "workspace B changed")

	// Nor does a canvas of Alice's reach B's versions.
	for _, method := range []string{"GET", "POST"} {
		path := canvasPath(canvasA, "/versions/", versionB.String())
		if method == "POST" {
			path += "/restore"
		}
		resp := a.do(method, path, alice.Access, nil)
		assert.Equal(t, http.StatusNotFound, resp.Status, "%s %s: %s", method, path, resp)
	}
	assert.Equal(t, before, snap(), "workspace B changed")

	// Alice's own workspace does not reach into B either.
	resp := a.do("PATCH", "/api/v1/workspaces/"+wsA.String()+"/members/"+carol.ID.String(), alice.Access, map[string]string{"role": "admin"})
	assert.Equal(t, http.StatusNotFound, resp.Status, resp.String())
	resp = a.do("GET", "/api/v1/projects/"+projectA.String(), carol.Access, nil)
	assert.Equal(t, http.StatusNotFound, resp.Status, resp.String())
	ws := listAll[workspaceJSON](a, alice, "/api/v1/workspaces")
	require.Len(t, ws, 1)
	assert.Equal(t, wsA, ws[0].ID)
}

// TestProjectOnlyMember checks what a project role alone gives: the
// project, and its listing in the workspace, but not the workspace.
func TestProjectOnlyMember(t *testing.T) {
	a := newTestAPI(t, Config{}, testDomainConfig())
	owner, guest := a.signUp("owner"), a.signUp("guest")
	ws := a.createWorkspace(owner, "Acme")
	shared := a.createProject(owner, ws, "Shared")
	a.createProject(owner, ws, "Private")
	a.addMember(owner, "projects", shared, guest, domain.RoleEditor)

	var p projectJSON
	resp := a.do("GET", "/api/v1/projects/"+shared.String(), guest.Access, nil)
	require.Equal(t, http.StatusOK, resp.Status, resp.String())
	resp.decode(t, &p)
	assert.Equal(t, "editor", p.Role)

	projects := listAll[projectJSON](a, guest, "/api/v1/workspaces/"+ws.String()+"/projects")
	require.Len(t, projects, 1, "a project-only member sees only their projects")
	assert.Equal(t, shared, projects[0].ID)
	assert.Len(t, listAll[projectJSON](a, owner, "/api/v1/workspaces/"+ws.String()+"/projects"), 2)

	assert.Equal(t, http.StatusNotFound, a.do("GET", "/api/v1/workspaces/"+ws.String(), guest.Access, nil).Status)
	assert.Equal(t, http.StatusNotFound, a.do("GET", "/api/v1/workspaces/"+ws.String()+"/members", guest.Access, nil).Status)
	assert.Empty(t, listAll[workspaceJSON](a, guest, "/api/v1/workspaces"))

	// The stronger of the two roles counts: a workspace viewer who is a
	// project admin may update the project.
	viewer := a.signUp("viewer")
	a.addMember(owner, "workspaces", ws, viewer, domain.RoleViewer)
	resp = a.do("PATCH", "/api/v1/projects/"+shared.String(), viewer.Access, map[string]string{"name": "Nope"})
	assert.Equal(t, http.StatusForbidden, resp.Status, resp.String())
	a.addMember(owner, "projects", shared, viewer, domain.RoleAdmin)
	resp = a.do("PATCH", "/api/v1/projects/"+shared.String(), viewer.Access, map[string]string{"name": "Yes"})
	assert.Equal(t, http.StatusOK, resp.Status, resp.String())
}

// TestOwnerRules checks the rules that protect owners: the last owner can
// neither leave nor be demoted, and only owners touch the owner role.
func TestOwnerRules(t *testing.T) {
	a := newTestAPI(t, Config{}, testDomainConfig())
	owner, admin, editor, newbie := a.signUp("owner"), a.signUp("admin"), a.signUp("editor"), a.signUp("newbie")
	ws := a.createWorkspace(owner, "Acme")
	a.addMember(owner, "workspaces", ws, admin, domain.RoleAdmin)
	a.addMember(owner, "workspaces", ws, editor, domain.RoleEditor)
	project := a.createProject(owner, ws, "Rocket")
	wsPath := "/api/v1/workspaces/" + ws.String()
	memberPath := func(u *testUser) string { return wsPath + "/members/" + u.ID.String() }
	roles := func() map[uuid.UUID]string { return a.members(owner, "workspaces", ws) }
	want := roles()

	for _, test := range []struct {
		name   string
		do     func() *response
		status int
		code   string
	}{
		{"last owner cannot demote themselves", func() *response {
			return a.do("PATCH", memberPath(owner), owner.Access, map[string]string{"role": "admin"})
		}, http.StatusConflict, domain.EConflict},
		{"last owner cannot leave", func() *response {
			return a.do("DELETE", memberPath(owner), owner.Access, nil)
		}, http.StatusConflict, domain.EConflict},
		{"admin cannot grant owner", func() *response {
			return a.do("PATCH", memberPath(editor), admin.Access, map[string]string{"role": "owner"})
		}, http.StatusForbidden, domain.EForbidden},
		{"admin cannot make themselves owner", func() *response {
			return a.do("PATCH", memberPath(admin), admin.Access, map[string]string{"role": "owner"})
		}, http.StatusForbidden, domain.EForbidden},
		{"admin cannot add an owner", func() *response {
			return a.do("POST", wsPath+"/members", admin.Access, map[string]string{"email": newbie.Email, "role": "owner"})
		}, http.StatusForbidden, domain.EForbidden},
		{"admin cannot demote the owner", func() *response {
			return a.do("PATCH", memberPath(owner), admin.Access, map[string]string{"role": "viewer"})
		}, http.StatusForbidden, domain.EForbidden},
		{"admin cannot remove the owner", func() *response {
			return a.do("DELETE", memberPath(owner), admin.Access, nil)
		}, http.StatusForbidden, domain.EForbidden},
		{"admin cannot take the project owner role", func() *response {
			return a.do("PATCH", "/api/v1/projects/"+project.String()+"/members/"+owner.ID.String(), admin.Access, map[string]string{"role": "admin"})
		}, http.StatusForbidden, domain.EForbidden},
		{"an existing member cannot be added twice", func() *response {
			return a.do("POST", wsPath+"/members", owner.Access, map[string]string{"email": editor.Email, "role": "viewer"})
		}, http.StatusConflict, domain.EConflict},
		{"an unknown email cannot be added", func() *response {
			return a.do("POST", wsPath+"/members", owner.Access, map[string]string{"email": "nobody@example.com", "role": "viewer"})
		}, http.StatusNotFound, domain.ENotFound},
		{"a non-member cannot be given a role", func() *response {
			return a.do("PATCH", memberPath(newbie), owner.Access, map[string]string{"role": "viewer"})
		}, http.StatusNotFound, domain.ENotFound},
	} {
		t.Run(test.name, func(t *testing.T) {
			resp := test.do()
			require.Equal(t, test.status, resp.Status, resp.String())
			assert.Equal(t, test.code, resp.errCode())
			assert.Equal(t, want, a.sub(t).members(owner, "workspaces", ws), "nothing may change")
		})
	}

	// Once there is a second owner, the first may step down and leave; then
	// the second is the last and may not.
	resp := a.do("PATCH", memberPath(admin), owner.Access, map[string]string{"role": "owner"})
	require.Equal(t, http.StatusOK, resp.Status, resp.String())
	resp = a.do("PATCH", memberPath(owner), owner.Access, map[string]string{"role": "admin"})
	require.Equal(t, http.StatusOK, resp.Status, resp.String())
	var m memberJSON
	resp.decode(t, &m)
	assert.Equal(t, "admin", m.Role)
	resp = a.do("DELETE", memberPath(owner), owner.Access, nil)
	require.Equal(t, http.StatusNoContent, resp.Status, resp.String())
	resp = a.do("DELETE", memberPath(admin), admin.Access, nil)
	require.Equal(t, http.StatusConflict, resp.Status, resp.String())
	resp = a.do("PATCH", memberPath(admin), admin.Access, map[string]string{"role": "editor"})
	require.Equal(t, http.StatusConflict, resp.Status, resp.String())
	assert.Equal(t, map[uuid.UUID]string{admin.ID: "owner", editor.ID: "editor"}, a.members(admin, "workspaces", ws))
	assert.Equal(t, http.StatusNotFound, a.do("GET", wsPath, owner.Access, nil).Status, "who left sees nothing")
}
