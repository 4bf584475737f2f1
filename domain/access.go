package domain

import "fmt"

// Role is a member's role in a workspace or project.
type Role string

// Roles, from most to least powerful.
const (
	RoleOwner  Role = "owner"
	RoleAdmin  Role = "admin"
	RoleEditor Role = "editor"
	RoleViewer Role = "viewer"
)

var roleRank = map[Role]int{RoleViewer: 1, RoleEditor: 2, RoleAdmin: 3, RoleOwner: 4}

// Valid reports whether r is one of the four roles.
func (r Role) Valid() bool { return roleRank[r] > 0 }

// AtLeast reports whether r is as powerful as min or more. The empty role
// (not a member) is below every role.
func (r Role) AtLeast(min Role) bool { return roleRank[r] >= roleRank[min] && roleRank[r] > 0 }

// maxRole returns the more powerful of a and b.
func maxRole(a, b Role) Role {
	if roleRank[a] >= roleRank[b] {
		return a
	}
	return b
}

func parseRole(s string) (Role, error) {
	r := Role(s)
	if !r.Valid() {
		return "", Errorf(EInvalid, "Role must be one of owner, admin, editor, viewer.").WithDetail("field", "role")
	}
	return r, nil
}

// Action is something a member may do inside a workspace or project.
type Action string

// Actions checked by the services. Workspace actions are checked against the
// workspace role, project actions against the effective project role (the
// stronger of the workspace role and the project role).
const (
	ActWorkspaceRead          Action = "workspace.read"
	ActWorkspaceUpdate        Action = "workspace.update"
	ActWorkspaceDelete        Action = "workspace.delete"
	ActWorkspaceMembersManage Action = "workspace.members.manage"
	ActProjectCreate          Action = "project.create"
	ActProjectRead            Action = "project.read"
	ActProjectUpdate          Action = "project.update"
	ActProjectDelete          Action = "project.delete"
	ActProjectMembersManage   Action = "project.members.manage"
	ActCanvasRead             Action = "canvas.read"
	ActCanvasWrite            Action = "canvas.write"
	ActCanvasDelete           Action = "canvas.delete"
	ActAuditRead              Action = "audit.read"

	ActDeploymentRead     Action = "deployment.read"
	ActDeploymentCreate   Action = "deployment.create"
	ActDeploymentCancel   Action = "deployment.cancel"
	ActDeployTokensManage Action = "deploy_tokens.manage"

	// Feature flags, segments and config values.
	ActFlagRead          Action = "flag.read"
	ActFlagWrite         Action = "flag.write"
	ActLogSettingsManage Action = "log_settings.manage"
	// SDK keys, with which applications evaluate flags.
	ActSDKKeysManage Action = "sdk_keys.manage"

	// Artifacts of deployments.
	ActArtifactRead   Action = "artifact.read"
	ActArtifactWrite  Action = "artifact.write"
	ActArtifactDelete Action = "artifact.delete"
)

// Permissions is the permission matrix: the least role that may perform each
// action. Granting, changing or removing the owner role additionally needs an
// owner (see [Service.AddWorkspaceMember]).
var Permissions = map[Action]Role{
	ActWorkspaceRead:          RoleViewer,
	ActWorkspaceUpdate:        RoleAdmin,
	ActWorkspaceDelete:        RoleOwner,
	ActWorkspaceMembersManage: RoleAdmin,
	ActProjectCreate:          RoleEditor,
	ActProjectRead:            RoleViewer,
	ActProjectUpdate:          RoleAdmin,
	ActProjectDelete:          RoleOwner,
	ActProjectMembersManage:   RoleAdmin,
	ActCanvasRead:             RoleViewer,
	ActCanvasWrite:            RoleEditor,
	ActCanvasDelete:           RoleAdmin,
	ActAuditRead:              RoleAdmin,

	ActDeploymentRead:     RoleViewer,
	ActDeploymentCreate:   RoleEditor,
	ActDeploymentCancel:   RoleEditor,
	ActDeployTokensManage: RoleAdmin,

	ActFlagRead:          RoleViewer,
	ActFlagWrite:         RoleEditor,
	ActLogSettingsManage: RoleAdmin,
	ActSDKKeysManage:     RoleAdmin,

	ActArtifactRead:   RoleViewer,
	ActArtifactWrite:  RoleEditor,
	ActArtifactDelete: RoleAdmin,
}

// Can reports whether role r may perform action a.
func (r Role) Can(a Action) bool {
	min, ok := Permissions[a]
	if !ok {
		panic(fmt.Sprintf("domain: action %q has no entry in Permissions", a))
	}
	return r.AtLeast(min)
}

// authorize returns nil if role may perform a. A role of "" (not a member)
// gets ENotFound naming what, so existence does not leak; a member without
// the right gets EForbidden.
func authorize(role Role, a Action, what string) error {
	if !role.Valid() {
		return notFound(what)
	}
	if !role.Can(a) {
		return Errorf(EForbidden, "Your role (%s) may not do %s.", role, a)
	}
	return nil
}
