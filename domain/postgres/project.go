package postgres

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tone-ai/tone/domain"
)

const projectColumns = `p.id, p.workspace_id, p.name, p.description, p.created_by, p.created_at, p.updated_at`

func scanProject(row pgx.Row) (*domain.Project, error) {
	var p domain.Project
	if err := row.Scan(&p.ID, &p.WorkspaceID, &p.Name, &p.Description, &p.CreatedBy, &p.CreatedAt, &p.UpdatedAt); err != nil {
		return nil, err
	}
	p.CreatedAt, p.UpdatedAt = p.CreatedAt.UTC(), p.UpdatedAt.UTC()
	return &p, nil
}

func (t *tx) CreateProject(ctx context.Context, p *domain.Project) (err error) {
	defer wrap(&err, "postgres: create project %s", p.ID)
	// Selecting the workspace makes a missing or invisible one insert
	// nothing instead of failing a foreign key or policy check.
	tag, err := t.tx.Exec(ctx, `
		INSERT INTO projects (id, workspace_id, name, description, created_by, created_at, updated_at)
		SELECT $1, w.id, $3, $4, $5, $6, $7 FROM workspaces w WHERE w.id = $2
		ON CONFLICT DO NOTHING`,
		p.ID, p.WorkspaceID, p.Name, p.Description, p.CreatedBy, p.CreatedAt, p.UpdatedAt)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var wsOK bool
	if err := t.tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM workspaces WHERE id = $1)`, p.WorkspaceID).Scan(&wsOK); err != nil {
		return err
	}
	if !wsOK {
		return notFound("Workspace")
	}
	return conflict("Project exists.")
}

func (t *tx) ProjectByID(ctx context.Context, id uuid.UUID) (_ *domain.Project, err error) {
	defer wrap(&err, "postgres: project %s", id)
	p, err := scanProject(t.tx.QueryRow(ctx, `SELECT `+projectColumns+` FROM projects p WHERE p.id = $1`, id))
	return p, mapErr(err, "Project")
}

func (t *tx) UpdateProject(ctx context.Context, p *domain.Project) (err error) {
	defer wrap(&err, "postgres: update project %s", p.ID)
	tag, err := t.tx.Exec(ctx, `UPDATE projects SET name = $2, description = $3, updated_at = $4 WHERE id = $1`,
		p.ID, p.Name, p.Description, p.UpdatedAt)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return notFound("Project")
	}
	return nil
}

func (t *tx) DeleteProject(ctx context.Context, id uuid.UUID) (err error) {
	defer wrap(&err, "postgres: delete project %s", id)
	tag, err := t.tx.Exec(ctx, `DELETE FROM projects WHERE id = $1`, id)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return notFound("Project")
	}
	return nil
}

func (t *tx) ListProjects(ctx context.Context, workspaceID, userID uuid.UUID, memberOnly bool, p domain.Page) (_ []*domain.Project, err error) {
	defer wrap(&err, "postgres: list projects of workspace %s", workspaceID)
	rows, err := t.tx.Query(ctx, `
		SELECT `+projectColumns+`
		FROM projects p
		WHERE p.workspace_id = $1 AND p.id > $2
			AND (NOT $3 OR EXISTS (SELECT FROM project_members m WHERE m.project_id = p.id AND m.user_id = $4))
		ORDER BY p.id
		LIMIT $5`,
		workspaceID, p.After, memberOnly, userID, limit(p))
	if err != nil {
		return nil, err
	}
	return collect(rows, scanProject)
}

func (t *tx) PutProjectMember(ctx context.Context, projectID, userID uuid.UUID, role domain.Role, at time.Time) (err error) {
	defer wrap(&err, "postgres: put member %s of project %s", userID, projectID)
	return t.putMember(ctx, "project_members", "projects", "project_id", "Project", projectID, userID, role, at)
}

func (t *tx) ProjectMember(ctx context.Context, projectID, userID uuid.UUID) (_ *domain.Member, err error) {
	defer wrap(&err, "postgres: member %s of project %s", userID, projectID)
	m, err := scanMember(t.tx.QueryRow(ctx, `
		SELECT `+memberColumns+`
		FROM project_members m JOIN users u ON u.id = m.user_id
		WHERE m.project_id = $1 AND m.user_id = $2`,
		projectID, userID))
	return m, mapErr(err, "Member")
}

func (t *tx) ListProjectMembers(ctx context.Context, projectID uuid.UUID, p domain.Page) (_ []*domain.Member, err error) {
	defer wrap(&err, "postgres: list members of project %s", projectID)
	rows, err := t.tx.Query(ctx, `
		SELECT `+memberColumns+`
		FROM project_members m JOIN users u ON u.id = m.user_id
		WHERE m.project_id = $1 AND m.user_id > $2
		ORDER BY m.user_id
		LIMIT $3`,
		projectID, p.After, limit(p))
	if err != nil {
		return nil, err
	}
	return collect(rows, scanMember)
}

func (t *tx) DeleteProjectMember(ctx context.Context, projectID, userID uuid.UUID) (err error) {
	defer wrap(&err, "postgres: delete member %s of project %s", userID, projectID)
	tag, err := t.tx.Exec(ctx, `DELETE FROM project_members WHERE project_id = $1 AND user_id = $2`, projectID, userID)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return notFound("Member")
	}
	return nil
}
