package postgres

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tone-ai/tone/domain"
)

const workspaceColumns = `w.id, w.name, w.created_by, w.created_at, w.updated_at`

func scanWorkspace(row pgx.Row) (*domain.Workspace, error) {
	var w domain.Workspace
	if err := row.Scan(&w.ID, &w.Name, &w.CreatedBy, &w.CreatedAt, &w.UpdatedAt); err != nil {
		return nil, err
	}
	w.CreatedAt, w.UpdatedAt = w.CreatedAt.UTC(), w.UpdatedAt.UTC()
	return &w, nil
}

func (t *tx) CreateWorkspace(ctx context.Context, w *domain.Workspace) (err error) {
	defer wrap(&err, "postgres: create workspace %s", w.ID)
	// Row-level security requires created_by to be the actor.
	tag, err := t.tx.Exec(ctx, `
		INSERT INTO workspaces (id, name, created_by, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT DO NOTHING`,
		w.ID, w.Name, w.CreatedBy, w.CreatedAt, w.UpdatedAt)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return conflict("Workspace exists.")
	}
	return nil
}

func (t *tx) WorkspaceByID(ctx context.Context, id uuid.UUID) (_ *domain.Workspace, err error) {
	defer wrap(&err, "postgres: workspace %s", id)
	w, err := scanWorkspace(t.tx.QueryRow(ctx, `SELECT `+workspaceColumns+` FROM workspaces w WHERE w.id = $1`, id))
	return w, mapErr(err, "Workspace")
}

func (t *tx) UpdateWorkspace(ctx context.Context, w *domain.Workspace) (err error) {
	defer wrap(&err, "postgres: update workspace %s", w.ID)
	tag, err := t.tx.Exec(ctx, `UPDATE workspaces SET name = $2, updated_at = $3 WHERE id = $1`,
		w.ID, w.Name, w.UpdatedAt)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return notFound("Workspace")
	}
	return nil
}

func (t *tx) DeleteWorkspace(ctx context.Context, id uuid.UUID) (err error) {
	defer wrap(&err, "postgres: delete workspace %s", id)
	// Projects and memberships go with it (ON DELETE CASCADE).
	tag, err := t.tx.Exec(ctx, `DELETE FROM workspaces WHERE id = $1`, id)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return notFound("Workspace")
	}
	return nil
}

func (t *tx) ListWorkspaces(ctx context.Context, userID uuid.UUID, p domain.Page) (_ []*domain.Workspace, err error) {
	defer wrap(&err, "postgres: list workspaces of %s", userID)
	rows, err := t.tx.Query(ctx, `
		SELECT `+workspaceColumns+`
		FROM workspaces w JOIN workspace_members m ON m.workspace_id = w.id
		WHERE m.user_id = $1 AND w.id > $2
		ORDER BY w.id
		LIMIT $3`,
		userID, p.After, limit(p))
	if err != nil {
		return nil, err
	}
	return collect(rows, scanWorkspace)
}

const memberColumns = `m.user_id, m.role, u.email, u.display_name, m.created_at, m.updated_at`

func scanMember(row pgx.Row) (*domain.Member, error) {
	var m domain.Member
	if err := row.Scan(&m.UserID, &m.Role, &m.Email, &m.DisplayName, &m.CreatedAt, &m.UpdatedAt); err != nil {
		return nil, err
	}
	m.CreatedAt, m.UpdatedAt = m.CreatedAt.UTC(), m.UpdatedAt.UTC()
	return &m, nil
}

// putMember is PutWorkspaceMember and PutProjectMember: members is the
// membership table, scope its owning table ("workspaces" or "projects") and
// scopeCol the membership column pointing at it.
//
// It updates first and inserts only when there was nothing to update,
// rather than INSERT ... ON CONFLICT DO UPDATE, because the latter needs the
// new row to be visible to the actor before it is inserted, which a
// workspace's first owner membership never is. Selecting the scope and the
// user in the INSERT makes a missing (or invisible) one insert nothing, so
// it can be reported as ENotFound without aborting the transaction.
func (t *tx) putMember(ctx context.Context, members, scope, scopeCol, what string,
	scopeID, userID uuid.UUID, role domain.Role, at time.Time) error {
	update := `UPDATE ` + members + ` SET role = $3, updated_at = $4 WHERE ` + scopeCol + ` = $1 AND user_id = $2`
	for try := 0; try < 2; try++ {
		tag, err := t.tx.Exec(ctx, update, scopeID, userID, string(role), at)
		if err != nil || tag.RowsAffected() == 1 {
			return err
		}
		tag, err = t.tx.Exec(ctx, `
			INSERT INTO `+members+` (`+scopeCol+`, user_id, role, created_at, updated_at)
			SELECT s.id, u.id, $3, $4, $4 FROM `+scope+` s, users u WHERE s.id = $1 AND u.id = $2
			ON CONFLICT DO NOTHING`,
			scopeID, userID, string(role), at)
		if err != nil || tag.RowsAffected() == 1 {
			return err
		}
		var scopeOK, userOK bool
		err = t.tx.QueryRow(ctx, `
			SELECT EXISTS (SELECT FROM `+scope+` WHERE id = $1), EXISTS (SELECT FROM users WHERE id = $2)`,
			scopeID, userID).Scan(&scopeOK, &userOK)
		switch {
		case err != nil:
			return err
		case !scopeOK:
			return notFound(what)
		case !userOK:
			return notFound("User")
		}
		// Someone inserted the membership between our UPDATE and INSERT:
		// update it once more.
	}
	return conflict("Membership changed concurrently; try again.")
}

func (t *tx) PutWorkspaceMember(ctx context.Context, workspaceID, userID uuid.UUID, role domain.Role, at time.Time) (err error) {
	defer wrap(&err, "postgres: put member %s of workspace %s", userID, workspaceID)
	return t.putMember(ctx, "workspace_members", "workspaces", "workspace_id", "Workspace", workspaceID, userID, role, at)
}

func (t *tx) WorkspaceMember(ctx context.Context, workspaceID, userID uuid.UUID) (_ *domain.Member, err error) {
	defer wrap(&err, "postgres: member %s of workspace %s", userID, workspaceID)
	m, err := scanMember(t.tx.QueryRow(ctx, `
		SELECT `+memberColumns+`
		FROM workspace_members m JOIN users u ON u.id = m.user_id
		WHERE m.workspace_id = $1 AND m.user_id = $2`,
		workspaceID, userID))
	return m, mapErr(err, "Member")
}

func (t *tx) ListWorkspaceMembers(ctx context.Context, workspaceID uuid.UUID, p domain.Page) (_ []*domain.Member, err error) {
	defer wrap(&err, "postgres: list members of workspace %s", workspaceID)
	rows, err := t.tx.Query(ctx, `
		SELECT `+memberColumns+`
		FROM workspace_members m JOIN users u ON u.id = m.user_id
		WHERE m.workspace_id = $1 AND m.user_id > $2
		ORDER BY m.user_id
		LIMIT $3`,
		workspaceID, p.After, limit(p))
	if err != nil {
		return nil, err
	}
	return collect(rows, scanMember)
}

func (t *tx) DeleteWorkspaceMember(ctx context.Context, workspaceID, userID uuid.UUID) (err error) {
	defer wrap(&err, "postgres: delete member %s of workspace %s", userID, workspaceID)
	tag, err := t.tx.Exec(ctx, `DELETE FROM workspace_members WHERE workspace_id = $1 AND user_id = $2`,
		workspaceID, userID)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return notFound("Member")
	}
	// The user's project memberships stay visible to the actor: through the
	// workspace when an admin removes someone, through the membership itself
	// when a user leaves.
	_, err = t.tx.Exec(ctx, `
		DELETE FROM project_members pm USING projects p
		WHERE p.id = pm.project_id AND p.workspace_id = $1 AND pm.user_id = $2`,
		workspaceID, userID)
	return err
}

func (t *tx) CountWorkspaceOwners(ctx context.Context, workspaceID uuid.UUID) (n int, err error) {
	defer wrap(&err, "postgres: count owners of workspace %s", workspaceID)
	err = t.tx.QueryRow(ctx,
		`SELECT count(*) FROM workspace_members WHERE workspace_id = $1 AND role = 'owner'`, workspaceID).Scan(&n)
	return n, err
}
