package domain

import (
	"context"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Name and description limits of workspaces and projects, in code points.
const (
	MaxNameLen        = 100
	MaxDescriptionLen = 2000
)

func checkName(field, name string) (string, error) {
	name = strings.TrimSpace(name)
	n := utf8.RuneCountInString(name)
	if n == 0 || n > MaxNameLen || !utf8.ValidString(name) || strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return "", Errorf(EInvalid, "%s must be 1 to %d printable characters.", field, MaxNameLen).WithDetail("field", field)
	}
	return name, nil
}

// workspaceRole returns user's role in a workspace, or "" if user is not a
// member or the workspace does not exist.
func workspaceRole(ctx context.Context, tx Tx, workspaceID, user uuid.UUID) (Role, error) {
	m, err := tx.WorkspaceMember(ctx, workspaceID, user)
	if ErrorCode(err) == ENotFound {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return m.Role, nil
}

// CreateWorkspace creates a workspace owned by the actor.
func (s *Service) CreateWorkspace(ctx context.Context, actor uuid.UUID, name string) (*Workspace, error) {
	name, err := checkName("name", name)
	if err != nil {
		return nil, err
	}
	now := s.now()
	w := &Workspace{ID: newID(), Name: name, CreatedBy: actor, CreatedAt: now, UpdatedAt: now}
	err = s.store.InTx(ctx, actor, func(tx Tx) error {
		if err := tx.CreateWorkspace(ctx, w); err != nil {
			return err
		}
		if err := tx.PutWorkspaceMember(ctx, w.ID, actor, RoleOwner, now); err != nil {
			return err
		}
		ev := s.audit(ctx, actor, "workspace.create", "workspace", w.ID.String())
		ev.WorkspaceID = w.ID
		ev.Details = map[string]any{"name": name}
		return tx.AppendAudit(ctx, ev)
	})
	if err != nil {
		return nil, err
	}
	return w, nil
}

// ListWorkspaces returns the workspaces the actor belongs to, a page at a
// time, and the cursor of the next page ("" at the end).
func (s *Service) ListWorkspaces(ctx context.Context, actor uuid.UUID, opt ListOptions) ([]*Workspace, string, error) {
	p, limit, err := opt.page()
	if err != nil {
		return nil, "", err
	}
	var ws []*Workspace
	err = s.store.InTx(ctx, actor, func(tx Tx) (err error) {
		ws, err = tx.ListWorkspaces(ctx, actor, p)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	ws, next := nextCursor(ws, limit, func(w *Workspace) uuid.UUID { return w.ID })
	return ws, next, nil
}

// WorkspaceWithRole is a workspace and the actor's role in it.
type WorkspaceWithRole struct {
	*Workspace
	Role Role
}

// GetWorkspace returns a workspace and the actor's role in it. Returns
// ENotFound if it does not exist or the actor is not a member.
func (s *Service) GetWorkspace(ctx context.Context, actor, id uuid.UUID) (*WorkspaceWithRole, error) {
	var out *WorkspaceWithRole
	err := s.store.InTx(ctx, actor, func(tx Tx) error {
		role, err := workspaceRole(ctx, tx, id, actor)
		if err != nil {
			return err
		}
		if err := authorize(role, ActWorkspaceRead, "Workspace"); err != nil {
			return err
		}
		w, err := tx.WorkspaceByID(ctx, id)
		if err != nil {
			return err
		}
		out = &WorkspaceWithRole{Workspace: w, Role: role}
		return nil
	})
	return out, err
}

// RenameWorkspace changes a workspace's name (admins and owners).
func (s *Service) RenameWorkspace(ctx context.Context, actor, id uuid.UUID, name string) (*Workspace, error) {
	name, err := checkName("name", name)
	if err != nil {
		return nil, err
	}
	var w *Workspace
	err = s.store.InTx(ctx, actor, func(tx Tx) error {
		role, err := workspaceRole(ctx, tx, id, actor)
		if err != nil {
			return err
		}
		if err := authorize(role, ActWorkspaceUpdate, "Workspace"); err != nil {
			return err
		}
		if w, err = tx.WorkspaceByID(ctx, id); err != nil {
			return err
		}
		old := w.Name
		w.Name, w.UpdatedAt = name, s.now()
		if err := tx.UpdateWorkspace(ctx, w); err != nil {
			return err
		}
		ev := s.audit(ctx, actor, "workspace.update", "workspace", id.String())
		ev.WorkspaceID = id
		ev.Details = map[string]any{"old_name": old, "name": name}
		return tx.AppendAudit(ctx, ev)
	})
	return w, err
}

// DeleteWorkspace deletes a workspace with all its projects (owners only).
// Each project's channel gets project.deleted.
func (s *Service) DeleteWorkspace(ctx context.Context, actor, id uuid.UUID) error {
	return s.inTx(ctx, actor, func(tx Tx) error {
		role, err := workspaceRole(ctx, tx, id, actor)
		if err != nil {
			return err
		}
		if err := authorize(role, ActWorkspaceDelete, "Workspace"); err != nil {
			return err
		}
		ps, err := tx.ListProjects(ctx, id, actor, false, Page{})
		if err != nil {
			return err
		}
		if err := tx.DeleteWorkspace(ctx, id); err != nil {
			return err
		}
		for _, p := range ps {
			if err := s.emit(ctx, tx, actor, ProjectChannel(p.ID), EventProjectDeleted, map[string]any{
				"project_id": p.ID, "workspace_id": id, "reason": "workspace.deleted",
			}); err != nil {
				return err
			}
		}
		ev := s.audit(ctx, actor, "workspace.delete", "workspace", id.String())
		ev.WorkspaceID = id
		return tx.AppendAudit(ctx, ev)
	})
}

// ListWorkspaceMembers lists a workspace's members (any member may).
func (s *Service) ListWorkspaceMembers(ctx context.Context, actor, id uuid.UUID, opt ListOptions) ([]*Member, string, error) {
	p, limit, err := opt.page()
	if err != nil {
		return nil, "", err
	}
	var ms []*Member
	err = s.store.InTx(ctx, actor, func(tx Tx) error {
		role, err := workspaceRole(ctx, tx, id, actor)
		if err != nil {
			return err
		}
		if err := authorize(role, ActWorkspaceRead, "Workspace"); err != nil {
			return err
		}
		ms, err = tx.ListWorkspaceMembers(ctx, id, p)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	ms, next := nextCursor(ms, limit, func(m *Member) uuid.UUID { return m.UserID })
	return ms, next, nil
}

// checkOwnerChange applies the rules that protect owners: only an owner may
// grant, change or take away the owner role, and a workspace never loses its
// last owner.
func checkOwnerChange(ctx context.Context, tx Tx, workspaceID uuid.UUID, actorRole, from, to Role) error {
	if (from == RoleOwner || to == RoleOwner) && actorRole != RoleOwner {
		return Errorf(EForbidden, "Only an owner may grant or change the owner role.")
	}
	if from == RoleOwner && to != RoleOwner {
		n, err := tx.CountWorkspaceOwners(ctx, workspaceID)
		if err != nil {
			return err
		}
		if n <= 1 {
			return Errorf(EConflict, "A workspace must keep at least one owner; make someone else owner first.")
		}
	}
	return nil
}

// AddWorkspaceMember adds the user with the given email to a workspace with
// role, or returns EConflict if they are a member already. Admins may add
// admins, editors and viewers; only owners may add owners. Returns ENotFound
// if no account has that email.
func (s *Service) AddWorkspaceMember(ctx context.Context, actor, id uuid.UUID, email string, role string) (*Member, error) {
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
		actorRole, err := workspaceRole(ctx, tx, id, actor)
		if err != nil {
			return err
		}
		if err := authorize(actorRole, ActWorkspaceMembersManage, "Workspace"); err != nil {
			return err
		}
		if err := checkOwnerChange(ctx, tx, id, actorRole, "", r); err != nil {
			return err
		}
		u, err := tx.UserByEmail(ctx, email)
		if ErrorCode(err) == ENotFound {
			return Errorf(ENotFound, "No account uses that email; ask them to register first.")
		}
		if err != nil {
			return err
		}
		existing, err := workspaceRole(ctx, tx, id, u.ID)
		if err != nil {
			return err
		}
		if existing != "" {
			return Errorf(EConflict, "That user is already a member (role %s).", existing)
		}
		if err := tx.PutWorkspaceMember(ctx, id, u.ID, r, s.now()); err != nil {
			return err
		}
		if m, err = tx.WorkspaceMember(ctx, id, u.ID); err != nil {
			return err
		}
		w, err := tx.WorkspaceByID(ctx, id)
		if err != nil {
			return err
		}
		if err := s.notify(ctx, tx, actor, Notice{
			Type: NotifyWorkspaceMemberAdded, Users: []uuid.UUID{u.ID}, WorkspaceID: id,
			Data: map[string]any{"workspace_id": id, "workspace_name": w.Name, "role": r},
		}); err != nil {
			return err
		}
		ev := s.audit(ctx, actor, "workspace.member.add", "user", u.ID.String())
		ev.WorkspaceID = id
		ev.Details = map[string]any{"role": string(r)}
		return tx.AppendAudit(ctx, ev)
	})
	return m, err
}

// ChangeWorkspaceMemberRole changes a member's role under the owner rules of
// AddWorkspaceMember. Returns EConflict when it would demote the last owner.
func (s *Service) ChangeWorkspaceMemberRole(ctx context.Context, actor, id, user uuid.UUID, role string) (*Member, error) {
	r, err := parseRole(role)
	if err != nil {
		return nil, err
	}
	var m *Member
	err = s.inTx(ctx, actor, func(tx Tx) error {
		actorRole, err := workspaceRole(ctx, tx, id, actor)
		if err != nil {
			return err
		}
		if err := authorize(actorRole, ActWorkspaceMembersManage, "Workspace"); err != nil {
			return err
		}
		from, err := workspaceRole(ctx, tx, id, user)
		if err != nil {
			return err
		}
		if from == "" {
			return notFound("Member")
		}
		if err := checkOwnerChange(ctx, tx, id, actorRole, from, r); err != nil {
			return err
		}
		if err := tx.PutWorkspaceMember(ctx, id, user, r, s.now()); err != nil {
			return err
		}
		if m, err = tx.WorkspaceMember(ctx, id, user); err != nil {
			return err
		}
		w, err := tx.WorkspaceByID(ctx, id)
		if err != nil {
			return err
		}
		if err := s.notify(ctx, tx, actor, Notice{
			Type: NotifyWorkspaceMemberRoleChanged, Users: []uuid.UUID{user}, WorkspaceID: id,
			Data: map[string]any{"workspace_id": id, "workspace_name": w.Name, "role": r, "previous_role": from},
		}); err != nil {
			return err
		}
		ev := s.audit(ctx, actor, "workspace.member.role_change", "user", user.String())
		ev.WorkspaceID = id
		ev.Details = map[string]any{"from": string(from), "to": string(r)}
		return tx.AppendAudit(ctx, ev)
	})
	return m, err
}

// RemoveWorkspaceMember removes a member from a workspace and its projects.
// Any member may remove themselves (leave); removing others needs an admin,
// and removing an owner needs an owner. The last owner cannot leave.
func (s *Service) RemoveWorkspaceMember(ctx context.Context, actor, id, user uuid.UUID) error {
	return s.store.InTx(ctx, actor, func(tx Tx) error {
		actorRole, err := workspaceRole(ctx, tx, id, actor)
		if err != nil {
			return err
		}
		action := ActWorkspaceMembersManage
		if user == actor {
			action = ActWorkspaceRead
		}
		if err := authorize(actorRole, action, "Workspace"); err != nil {
			return err
		}
		from, err := workspaceRole(ctx, tx, id, user)
		if err != nil {
			return err
		}
		if from == "" {
			return notFound("Member")
		}
		if err := checkOwnerChange(ctx, tx, id, actorRole, from, ""); err != nil {
			return err
		}
		if err := tx.DeleteWorkspaceMember(ctx, id, user); err != nil {
			return err
		}
		ev := s.audit(ctx, actor, "workspace.member.remove", "user", user.String())
		ev.WorkspaceID = id
		ev.Details = map[string]any{"role": string(from)}
		return tx.AppendAudit(ctx, ev)
	})
}
