package http

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain"
)

// accessFixture is a workspace with one project and the people around it:
//
//   - owner: created the workspace and the project (workspace and project owner)
//   - coowner: a second workspace owner
//   - target: workspace editor and project editor, the one mutations act on
//   - newbie: has an account and no membership
//   - actor: the caller under test, with the role under test either in the
//     workspace or only in the project (or none at all)
type accessFixture struct {
	a                                     *testAPI
	owner, coowner, target, newbie, actor *testUser
	ws, project                           uuid.UUID
	actorRole                             domain.Role // "" for a non-member
}

// roleScope says where the actor's role is granted.
type roleScope string

const (
	inWorkspace roleScope = "workspace role"
	inProject   roleScope = "project role"
)

func newAccessFixture(t *testing.T, scope roleScope, role domain.Role) *accessFixture {
	a := newTestAPI(t, Config{}, testDomainConfig())
	f := &accessFixture{a: a,
		owner: a.signUp("owner"), coowner: a.signUp("coowner"), target: a.signUp("target"),
		newbie: a.signUp("newbie"), actor: a.signUp("actor"), actorRole: role,
	}
	f.ws = a.createWorkspace(f.owner, "Acme")
	f.project = a.createProject(f.owner, f.ws, "Rocket")
	a.addMember(f.owner, "workspaces", f.ws, f.coowner, domain.RoleOwner)
	a.addMember(f.owner, "workspaces", f.ws, f.target, domain.RoleEditor)
	a.addMember(f.owner, "projects", f.project, f.target, domain.RoleEditor)
	if role != "" {
		if scope == inWorkspace {
			a.addMember(f.owner, "workspaces", f.ws, f.actor, role)
		} else {
			a.addMember(f.owner, "projects", f.project, f.actor, role)
		}
	}
	return f
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
	return []mutation{
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
					f.a.do("GET", f.projectPath(), f.owner.Access, nil).Status == http.StatusNotFound
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
				return f.a.do("GET", f.projectPath(), f.owner.Access, nil).Status == http.StatusNotFound
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
	}
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
					f.a.mu.Lock()
					assert.Equal(t, m.route, f.a.lastRoute, "the case calls the wrong route")
					f.a.mu.Unlock()
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
		if method == "GET" || !strings.Contains(path, "{workspaceID}") && !strings.Contains(path, "{projectID}") {
			continue
		}
		assert.True(t, covered[op], "TestRoleMatrix has no case for %s", op)
	}
}
