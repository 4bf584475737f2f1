package postgres

import (
	"context"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tone-ai/tone/domain"
)

const artifactColumns = `a.id, a.project_id, a.deployment_id, a.name, a.size, a.digest, a.content_type, a.created_by, a.created_at`

func scanArtifact(row pgx.Row) (*domain.Artifact, error) {
	var a domain.Artifact
	if err := row.Scan(&a.ID, &a.ProjectID, &a.DeploymentID, &a.Name, &a.Size, &a.Digest, &a.ContentType,
		&a.CreatedBy, &a.CreatedAt); err != nil {
		return nil, err
	}
	a.CreatedAt = a.CreatedAt.UTC()
	return &a, nil
}

// CreateArtifact inserts a. Selecting the deployment makes a missing or
// invisible one (or one of another project) insert nothing instead of
// failing the foreign key or a policy check.
func (t *tx) CreateArtifact(ctx context.Context, a *domain.Artifact) (err error) {
	defer wrap(&err, "postgres: create artifact %s", a.ID)
	tag, err := t.tx.Exec(ctx, `
		INSERT INTO artifacts (id, project_id, deployment_id, name, size, digest, content_type, created_by, created_at)
		SELECT $1, d.project_id, d.id, $4, $5, $6, $7, $8, $9 FROM deployments d WHERE d.id = $3 AND d.project_id = $2
		ON CONFLICT DO NOTHING`,
		a.ID, a.ProjectID, a.DeploymentID, a.Name, a.Size, a.Digest, a.ContentType, a.CreatedBy, a.CreatedAt)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var ok bool
	if err := t.tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM deployments WHERE id = $1 AND project_id = $2)`,
		a.DeploymentID, a.ProjectID).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return notFound("Deployment")
	}
	return conflict("The deployment has an artifact named %q.", a.Name).WithDetail("field", "name")
}

func (t *tx) ArtifactByID(ctx context.Context, id uuid.UUID) (_ *domain.Artifact, err error) {
	defer wrap(&err, "postgres: artifact %s", id)
	a, err := scanArtifact(t.tx.QueryRow(ctx, `SELECT `+artifactColumns+` FROM artifacts a WHERE a.id = $1`, id))
	return a, mapErr(err, "Artifact")
}

func (t *tx) ListArtifacts(ctx context.Context, deploymentID uuid.UUID, p domain.Page) (_ []*domain.Artifact, err error) {
	defer wrap(&err, "postgres: list artifacts of %s", deploymentID)
	rows, err := t.tx.Query(ctx, `
		SELECT `+artifactColumns+` FROM artifacts a
		WHERE a.deployment_id = $1 AND a.id > $2 ORDER BY a.id LIMIT $3`,
		deploymentID, p.After, limit(p))
	if err != nil {
		return nil, err
	}
	return collect(rows, scanArtifact)
}

func (t *tx) DeleteArtifact(ctx context.Context, id uuid.UUID) (err error) {
	defer wrap(&err, "postgres: delete artifact %s", id)
	tag, err := t.tx.Exec(ctx, `DELETE FROM artifacts WHERE id = $1`, id)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return notFound("Artifact")
	}
	return nil
}

// UnreferencedDigests asks tone_unreferenced_digests, which looks at every
// project's artifacts (SECURITY DEFINER) and returns only digests.
func (t *tx) UnreferencedDigests(ctx context.Context, digests []string) (_ []string, err error) {
	defer wrap(&err, "postgres: unreferenced digests")
	rows, err := t.tx.Query(ctx, `SELECT d FROM public.tone_unreferenced_digests($1) AS d`, digests)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}
