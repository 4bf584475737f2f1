package domain

import (
	"context"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
)

// projectAccess loads a project and the actor's effective role in it: the
// stronger of their workspace role and their project role. A missing
// project gives a nil project and role "".
func projectAccess(ctx context.Context, tx Tx, id, user uuid.UUID) (*Project, Role, error) {
	p, err := tx.ProjectByID(ctx, id)
	if ErrorCode(err) == ENotFound {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	wsRole, err := workspaceRole(ctx, tx, p.WorkspaceID, user)
	if err != nil {
		return nil, "", err
	}
	var pRole Role
	m, err := tx.ProjectMember(ctx, id, user)
	switch {
	case err == nil:
		pRole = m.Role
	case ErrorCode(err) != ENotFound:
		return nil, "", err
	}
	return p, maxRole(wsRole, pRole), nil
}

// ProjectRole returns the actor's effective role in a project. Returns
// ENotFound if the project does not exist or the actor has no role in it.
func (s *Service) ProjectRole(ctx context.Context, actor, id uuid.UUID) (Role, error) {
	var role Role
	err := s.store.InTx(ctx, actor, func(tx Tx) (err error) {
		_, role, err = projectAccess(ctx, tx, id, actor)
		if err == nil && role == "" {
			err = notFound("Project")
		}
		return err
	})
	return role, err
}

// Authorize returns nil if the actor may perform action a in project id,
// ENotFound if the actor cannot see the project, EForbidden otherwise.
func (s *Service) Authorize(ctx context.Context, actor, id uuid.UUID, a Action) error {
	role, err := s.ProjectRole(ctx, actor, id)
	if err != nil {
		return err
	}
	return authorize(role, a, "Project")
}

func checkDescription(d string) (string, error) {
	d = strings.TrimSpace(d)
	if utf8.RuneCountInString(d) > MaxDescriptionLen || !utf8.ValidString(d) {
		return "", Errorf(EInvalid, "description must be at most %d characters.", MaxDescriptionLen).WithDetail("field", "description")
	}
	return d, nil
}

// ProjectInput is the editable part of a project.
type ProjectInput struct {
	Name        *string
	Description *string
}

// CreateProject creates a project in a workspace (editors and up); the
// creator becomes its owner.
func (s *Service) CreateProject(ctx context.Context, actor, workspaceID uuid.UUID, in ProjectInput) (*Project, error) {
	if in.Name == nil {
		return nil, Errorf(EInvalid, "name is required.").WithDetail("field", "name")
	}
	name, err := checkName("name", *in.Name)
	if err != nil {
		return nil, err
	}
	var desc string
	if in.Description != nil {
		if desc, err = checkDescription(*in.Description); err != nil {
			return nil, err
		}
	}
	now := s.now()
	p := &Project{ID: newID(), WorkspaceID: workspaceID, Name: name, Description: desc, CreatedBy: actor, CreatedAt: now, UpdatedAt: now}
	err = s.store.InTx(ctx, actor, func(tx Tx) error {
		role, err := workspaceRole(ctx, tx, workspaceID, actor)
		if err != nil {
			return err
		}
		if err := authorize(role, ActProjectCreate, "Workspace"); err != nil {
			return err
		}
		if err := tx.CreateProject(ctx, p); err != nil {
			return err
		}
		if err := tx.PutProjectMember(ctx, p.ID, actor, RoleOwner, now); err != nil {
			return err
		}
		ev := s.audit(ctx, actor, "project.create", "project", p.ID.String())
		ev.WorkspaceID, ev.ProjectID = workspaceID, p.ID
		ev.Details = map[string]any{"name": name}
		return tx.AppendAudit(ctx, ev)
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// ListProjects lists the projects of a workspace that the actor can see: all
// of them for workspace members, only their own for project-only members.
func (s *Service) ListProjects(ctx context.Context, actor, workspaceID uuid.UUID, opt ListOptions) ([]*Project, string, error) {
	pg, limit, err := opt.page()
	if err != nil {
		return nil, "", err
	}
	var ps []*Project
	err = s.store.InTx(ctx, actor, func(tx Tx) error {
		role, err := workspaceRole(ctx, tx, workspaceID, actor)
		if err != nil {
			return err
		}
		ps, err = tx.ListProjects(ctx, workspaceID, actor, role == "", pg)
		if err == nil && role == "" && len(ps) == 0 {
			return notFound("Workspace")
		}
		return err
	})
	if err != nil {
		return nil, "", err
	}
	ps, next := nextCursor(ps, limit, func(p *Project) uuid.UUID { return p.ID })
	return ps, next, nil
}

// ProjectWithRole is a project and the actor's effective role in it.
type ProjectWithRole struct {
	*Project
	Role Role
}

// GetProject returns a project and the actor's effective role. Returns
// ENotFound if it does not exist or the actor cannot see it.
func (s *Service) GetProject(ctx context.Context, actor, id uuid.UUID) (*ProjectWithRole, error) {
	var out *ProjectWithRole
	err := s.store.InTx(ctx, actor, func(tx Tx) error {
		p, role, err := projectAccess(ctx, tx, id, actor)
		if err != nil {
			return err
		}
		if err := authorize(role, ActProjectRead, "Project"); err != nil {
			return err
		}
		out = &ProjectWithRole{Project: p, Role: role}
		return nil
	})
	return out, err
}

// UpdateProject changes a project's name or description (admins and up).
func (s *Service) UpdateProject(ctx context.Context, actor, id uuid.UUID, in ProjectInput) (*Project, error) {
	var name, desc string
	var err error
	if in.Name != nil {
		if name, err = checkName("name", *in.Name); err != nil {
			return nil, err
		}
	}
	if in.Description != nil {
		if desc, err = checkDescription(*in.Description); err != nil {
			return nil, err
		}
	}
	var p *Project
	err = s.inTx(ctx, actor, func(tx Tx) error {
		var role Role
		p, role, err = projectAccess(ctx, tx, id, actor)
		if err != nil {
			return err
		}
		if err := authorize(role, ActProjectUpdate, "Project"); err != nil {
			return err
		}
		changed := []string{}
		if in.Name != nil {
			p.Name = name
			changed = append(changed, "name")
		}
		if in.Description != nil {
			p.Description = desc
			changed = append(changed, "description")
		}
		p.UpdatedAt = s.now()
		if err := tx.UpdateProject(ctx, p); err != nil {
			return err
		}
		if err := s.emit(ctx, tx, actor, ProjectChannel(id), EventProjectUpdated, map[string]any{
			"project_id": id, "workspace_id": p.WorkspaceID, "name": p.Name, "description": p.Description,
			"fields": changed, "updated_at": p.UpdatedAt,
		}); err != nil {
			return err
		}
		ev := s.audit(ctx, actor, "project.update", "project", id.String())
		ev.WorkspaceID, ev.ProjectID = p.WorkspaceID, id
		ev.Details = map[string]any{"fields": changed}
		return tx.AppendAudit(ctx, ev)
	})
	return p, err
}

// DeleteProject deletes a project (project or workspace owners).
func (s *Service) DeleteProject(ctx context.Context, actor, id uuid.UUID) error {
	return s.inTx(ctx, actor, func(tx Tx) error {
		p, role, err := projectAccess(ctx, tx, id, actor)
		if err != nil {
			return err
		}
		if err := authorize(role, ActProjectDelete, "Project"); err != nil {
			return err
		}
		if err := tx.DeleteProject(ctx, id); err != nil {
			return err
		}
		if err := s.emit(ctx, tx, actor, ProjectChannel(id), EventProjectDeleted, map[string]any{
			"project_id": id, "workspace_id": p.WorkspaceID,
		}); err != nil {
			return err
		}
		ev := s.audit(ctx, actor, "project.delete", "project", id.String())
		ev.WorkspaceID, ev.ProjectID = p.WorkspaceID, id
		return tx.AppendAudit(ctx, ev)
	})
}

// ListProjectMembers lists a project's own members (any who can see it).
func (s *Service) ListProjectMembers(ctx context.Context, actor, id uuid.UUID, opt ListOptions) ([]*Member, string, error) {
	pg, limit, err := opt.page()
	if err != nil {
		return nil, "", err
	}
	var ms []*Member
	err = s.store.InTx(ctx, actor, func(tx Tx) error {
		_, role, err := projectAccess(ctx, tx, id, actor)
		if err != nil {
			return err
		}
		if err := authorize(role, ActProjectRead, "Project"); err != nil {
			return err
		}
		ms, err = tx.ListProjectMembers(ctx, id, pg)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	ms, next := nextCursor(ms, limit, func(m *Member) uuid.UUID { return m.UserID })
	return ms, next, nil
}

// checkProjectGrant applies the owner rule to projects: only an owner (of
// the project or its workspace) may grant, change or take away the owner role.
func checkProjectGrant(actorRole, from, to Role) error {
	if (from == RoleOwner || to == RoleOwner) && actorRole != RoleOwner {
		return Errorf(EForbidden, "Only an owner may grant or change the owner role.")
	}
	return nil
}

// AddProjectMember gives the user with the given email a role in a project
// (admins and up; owners to grant owner). Returns EConflict if they already
// have a project role, ENotFound if no account has that email.
func (s *Service) AddProjectMember(ctx context.Context, actor, id uuid.UUID, email, role string) (*Member, error) {
	r, err := parseRole(role)
	if err != nil {
		return nil, err
	}
	email, err = NormalizeEmail(email)
	if err != nil {
		return nil, err
	}
	var m *Member
	err = s.inTx(ctx, actor, func(tx Tx) error {
		p, actorRole, err := projectAccess(ctx, tx, id, actor)
		if err != nil {
			return err
		}
		if err := authorize(actorRole, ActProjectMembersManage, "Project"); err != nil {
			return err
		}
		if err := checkProjectGrant(actorRole, "", r); err != nil {
			return err
		}
		u, err := tx.UserByEmail(ctx, email)
		if ErrorCode(err) == ENotFound {
			return Errorf(ENotFound, "No account uses that email; ask them to register first.")
		}
		if err != nil {
			return err
		}
		if _, err := tx.ProjectMember(ctx, id, u.ID); err == nil {
			return Errorf(EConflict, "That user is already a project member.")
		} else if ErrorCode(err) != ENotFound {
			return err
		}
		if err := tx.PutProjectMember(ctx, id, u.ID, r, s.now()); err != nil {
			return err
		}
		if m, err = tx.ProjectMember(ctx, id, u.ID); err != nil {
			return err
		}
		if err := s.emit(ctx, tx, actor, ProjectChannel(id), EventProjectMemberAdded, map[string]any{
			"project_id": id, "user_id": u.ID, "display_name": m.DisplayName, "role": r,
		}); err != nil {
			return err
		}
		if err := s.notify(ctx, tx, actor, Notice{
			Type: NotifyProjectMemberAdded, Users: []uuid.UUID{u.ID}, WorkspaceID: p.WorkspaceID, ProjectID: id,
			Data: map[string]any{"project_id": id, "project_name": p.Name, "workspace_id": p.WorkspaceID, "role": r},
		}); err != nil {
			return err
		}
		ev := s.audit(ctx, actor, "project.member.add", "user", u.ID.String())
		ev.WorkspaceID, ev.ProjectID = p.WorkspaceID, id
		ev.Details = map[string]any{"role": string(r)}
		return tx.AppendAudit(ctx, ev)
	})
	return m, err
}

// ChangeProjectMemberRole changes a project member's role.
func (s *Service) ChangeProjectMemberRole(ctx context.Context, actor, id, user uuid.UUID, role string) (*Member, error) {
	r, err := parseRole(role)
	if err != nil {
		return nil, err
	}
	var m *Member
	err = s.inTx(ctx, actor, func(tx Tx) error {
		p, actorRole, err := projectAccess(ctx, tx, id, actor)
		if err != nil {
			return err
		}
		if err := authorize(actorRole, ActProjectMembersManage, "Project"); err != nil {
			return err
		}
		old, err := tx.ProjectMember(ctx, id, user)
		if err != nil {
			return err
		}
		if err := checkProjectGrant(actorRole, old.Role, r); err != nil {
			return err
		}
		if err := tx.PutProjectMember(ctx, id, user, r, s.now()); err != nil {
			return err
		}
		if m, err = tx.ProjectMember(ctx, id, user); err != nil {
			return err
		}
		if err := s.emit(ctx, tx, actor, ProjectChannel(id), EventProjectMemberRoleChanged, map[string]any{
			"project_id": id, "user_id": user, "role": r, "previous_role": old.Role,
		}); err != nil {
			return err
		}
		if err := s.notify(ctx, tx, actor, Notice{
			Type: NotifyProjectMemberRoleChanged, Users: []uuid.UUID{user}, WorkspaceID: p.WorkspaceID, ProjectID: id,
			Data: map[string]any{"project_id": id, "project_name": p.Name, "workspace_id": p.WorkspaceID, "role": r, "previous_role": old.Role},
		}); err != nil {
			return err
		}
		ev := s.audit(ctx, actor, "project.member.role_change", "user", user.String())
		ev.WorkspaceID, ev.ProjectID = p.WorkspaceID, id
		ev.Details = map[string]any{"from": string(old.Role), "to": string(r)}
		return tx.AppendAudit(ctx, ev)
	})
	return m, err
}

// RemoveProjectMember takes away a user's project role. Members may remove
// themselves; removing others needs an admin, an owner for owners.
func (s *Service) RemoveProjectMember(ctx context.Context, actor, id, user uuid.UUID) error {
	return s.inTx(ctx, actor, func(tx Tx) error {
		p, actorRole, err := projectAccess(ctx, tx, id, actor)
		if err != nil {
			return err
		}
		action := ActProjectMembersManage
		if user == actor {
			action = ActProjectRead
		}
		if err := authorize(actorRole, action, "Project"); err != nil {
			return err
		}
		old, err := tx.ProjectMember(ctx, id, user)
		if err != nil {
			return err
		}
		if user != actor {
			if err := checkProjectGrant(actorRole, old.Role, ""); err != nil {
				return err
			}
		}
		if err := tx.DeleteProjectMember(ctx, id, user); err != nil {
			return err
		}
		if err := s.emit(ctx, tx, actor, ProjectChannel(id), EventProjectMemberRemoved, map[string]any{
			"project_id": id, "user_id": user, "role": old.Role,
		}); err != nil {
			return err
		}
		ev := s.audit(ctx, actor, "project.member.remove", "user", user.String())
		ev.WorkspaceID, ev.ProjectID = p.WorkspaceID, id
		ev.Details = map[string]any{"role": string(old.Role)}
		return tx.AppendAudit(ctx, ev)
	})
}
