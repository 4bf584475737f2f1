package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tone-ai/tone/domain"
)

// missingParent turns a foreign key violation (the parent row is gone)
// into ENotFound for what, and a unique violation into EConflict.
func missingParent(err error, what, exists string) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case codeForeignKeyViolation:
			return notFound(what)
		case codeUniqueViolation:
			return conflict("%s already exists.", exists)
		}
	}
	return err
}

const deployTokenColumns = `t.id, t.project_id, t.workspace_id, t.name, t.hash, t.created_by, t.created_at, t.revoked_at`

func scanDeployToken(row pgx.Row) (*domain.DeployToken, error) {
	var t domain.DeployToken
	if err := row.Scan(&t.ID, &t.ProjectID, &t.WorkspaceID, &t.Name, &t.Hash, &t.CreatedBy, &t.CreatedAt, &t.RevokedAt); err != nil {
		return nil, err
	}
	t.CreatedAt, t.RevokedAt = t.CreatedAt.UTC(), utcPtr(t.RevokedAt)
	return &t, nil
}

func (t *tx) CreateDeployToken(ctx context.Context, dt *domain.DeployToken) (err error) {
	defer wrap(&err, "postgres: create deploy token %s", dt.ID)
	// Selecting the project makes a missing or invisible one insert
	// nothing instead of failing a policy check.
	tag, err := t.tx.Exec(ctx, `
		INSERT INTO deploy_tokens (id, project_id, workspace_id, name, hash, created_by, created_at)
		SELECT $1, p.id, $3, $4, $5, $6, $7 FROM projects p WHERE p.id = $2`,
		dt.ID, dt.ProjectID, dt.WorkspaceID, dt.Name, dt.Hash, dt.CreatedBy, dt.CreatedAt)
	if err != nil {
		return missingParent(err, "Project", "Deploy token")
	}
	if tag.RowsAffected() == 0 {
		return notFound("Project")
	}
	return nil
}

// DeployTokenByHash goes through tone_deploy_token_by_hash, which sees
// every token: the request is not authenticated yet.
func (t *tx) DeployTokenByHash(ctx context.Context, hash []byte) (_ *domain.DeployToken, err error) {
	defer wrap(&err, "postgres: deploy token by hash")
	dt, err := scanDeployToken(t.tx.QueryRow(ctx, `SELECT `+deployTokenColumns+` FROM public.tone_deploy_token_by_hash($1) t`, hash))
	return dt, mapErr(err, "Deploy token")
}

func (t *tx) DeployTokenByID(ctx context.Context, id uuid.UUID) (_ *domain.DeployToken, err error) {
	defer wrap(&err, "postgres: deploy token %s", id)
	dt, err := scanDeployToken(t.tx.QueryRow(ctx, `SELECT `+deployTokenColumns+` FROM deploy_tokens t WHERE t.id = $1`, id))
	return dt, mapErr(err, "Deploy token")
}

func (t *tx) ListDeployTokens(ctx context.Context, projectID uuid.UUID, p domain.Page) (_ []*domain.DeployToken, err error) {
	defer wrap(&err, "postgres: list deploy tokens of project %s", projectID)
	rows, err := t.tx.Query(ctx, `
		SELECT `+deployTokenColumns+` FROM deploy_tokens t
		WHERE t.project_id = $1 AND t.id > $2 ORDER BY t.id LIMIT $3`,
		projectID, p.After, limit(p))
	if err != nil {
		return nil, err
	}
	return collect(rows, scanDeployToken)
}

func (t *tx) RevokeDeployToken(ctx context.Context, id uuid.UUID, at time.Time) (err error) {
	defer wrap(&err, "postgres: revoke deploy token %s", id)
	var found bool
	err = t.tx.QueryRow(ctx, `
		WITH tok AS (SELECT id FROM deploy_tokens WHERE id = $1),
		upd AS (UPDATE deploy_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL)
		SELECT EXISTS (SELECT FROM tok)`, id, at).Scan(&found)
	if err != nil {
		return err
	}
	if !found {
		return notFound("Deploy token")
	}
	return nil
}

const deploymentColumns = `d.id, d.project_id, d.environment, d.git_ref, d.commit_sha, d.triggered_by, d.trigger_kind,
	d.state, d.reason, d.runner_id, d.lease_expires_at, d.url, d.metrics, d.created_at, d.started_at, d.finished_at, d.updated_at`

func scanDeployment(row pgx.Row) (*domain.Deployment, error) {
	var d domain.Deployment
	var runner pgtype.UUID
	if err := row.Scan(&d.ID, &d.ProjectID, &d.Environment, &d.GitRef, &d.CommitSHA, &d.TriggeredBy, &d.TriggerKind,
		&d.State, &d.Reason, &runner, &d.LeaseExpiresAt, &d.URL, &d.Metrics, &d.CreatedAt, &d.StartedAt, &d.FinishedAt, &d.UpdatedAt); err != nil {
		return nil, err
	}
	d.RunnerID = idOrNil(runner)
	if d.Metrics == nil {
		d.Metrics = map[string]int64{}
	}
	d.CreatedAt, d.UpdatedAt = d.CreatedAt.UTC(), d.UpdatedAt.UTC()
	d.LeaseExpiresAt, d.StartedAt, d.FinishedAt = utcPtr(d.LeaseExpiresAt), utcPtr(d.StartedAt), utcPtr(d.FinishedAt)
	return &d, nil
}

func metrics(m map[string]int64) map[string]int64 {
	if m == nil {
		return map[string]int64{}
	}
	return m
}

func (t *tx) CreateDeployment(ctx context.Context, d *domain.Deployment) (err error) {
	defer wrap(&err, "postgres: create deployment %s", d.ID)
	// A runner cannot see projects, so the project is checked with the
	// policy's own test: a missing or invisible one inserts nothing.
	tag, err := t.tx.Exec(ctx, `
		INSERT INTO deployments (id, project_id, environment, git_ref, commit_sha, triggered_by, trigger_kind,
			state, reason, runner_id, lease_expires_at, url, metrics, created_at, started_at, finished_at, updated_at)
		SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17
		WHERE public.tone_can_access_project($2) OR $2 = public.tone_runner_project()`,
		d.ID, d.ProjectID, d.Environment, d.GitRef, d.CommitSHA, d.TriggeredBy, d.TriggerKind,
		d.State, d.Reason, nullID(d.RunnerID), d.LeaseExpiresAt, d.URL, metrics(d.Metrics), d.CreatedAt, d.StartedAt, d.FinishedAt, d.UpdatedAt)
	if err != nil {
		return missingParent(err, "Project", "Deployment")
	}
	if tag.RowsAffected() == 0 {
		return notFound("Project")
	}
	return nil
}

func (t *tx) DeploymentByID(ctx context.Context, id uuid.UUID) (_ *domain.Deployment, err error) {
	defer wrap(&err, "postgres: deployment %s", id)
	d, err := scanDeployment(t.tx.QueryRow(ctx, `SELECT `+deploymentColumns+` FROM deployments d WHERE d.id = $1`, id))
	return d, mapErr(err, "Deployment")
}

// LockDeployment takes FOR NO KEY UPDATE on the deployment row, which does
// not block the foreign key checks of rows that reference it.
func (t *tx) LockDeployment(ctx context.Context, id uuid.UUID) (_ *domain.Deployment, err error) {
	defer wrap(&err, "postgres: lock deployment %s", id)
	d, err := scanDeployment(t.tx.QueryRow(ctx, `SELECT `+deploymentColumns+` FROM deployments d WHERE d.id = $1 FOR NO KEY UPDATE`, id))
	return d, mapErr(err, "Deployment")
}

// LockDeploymentShared takes FOR SHARE on the deployment row, which
// LockDeployment's FOR NO KEY UPDATE waits for.
func (t *tx) LockDeploymentShared(ctx context.Context, id uuid.UUID) (_ *domain.Deployment, err error) {
	defer wrap(&err, "postgres: share-lock deployment %s", id)
	d, err := scanDeployment(t.tx.QueryRow(ctx, `SELECT `+deploymentColumns+` FROM deployments d WHERE d.id = $1 FOR SHARE`, id))
	return d, mapErr(err, "Deployment")
}

func (t *tx) UpdateDeployment(ctx context.Context, d *domain.Deployment) (err error) {
	defer wrap(&err, "postgres: update deployment %s", d.ID)
	tag, err := t.tx.Exec(ctx, `
		UPDATE deployments SET state = $2, reason = $3, runner_id = $4, lease_expires_at = $5, url = $6, metrics = $7,
			started_at = $8, finished_at = $9, updated_at = $10
		WHERE id = $1`,
		d.ID, d.State, d.Reason, nullID(d.RunnerID), d.LeaseExpiresAt, d.URL, metrics(d.Metrics), d.StartedAt, d.FinishedAt, d.UpdatedAt)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return notFound("Deployment")
	}
	return nil
}

func (t *tx) ListDeployments(ctx context.Context, f domain.DeploymentFilter, p domain.Page) (_ []*domain.Deployment, err error) {
	defer wrap(&err, "postgres: list deployments of project %s", f.ProjectID)
	var since, until *time.Time
	if !f.Since.IsZero() {
		since = &f.Since
	}
	if !f.Until.IsZero() {
		until = &f.Until
	}
	rows, err := t.tx.Query(ctx, `
		SELECT `+deploymentColumns+` FROM deployments d
		WHERE d.project_id = $1 AND d.id > $2
		  AND ($4 = '' OR d.environment = $4) AND ($5 = '' OR d.state = $5)
		  AND ($6::timestamptz IS NULL OR d.created_at >= $6) AND ($7::timestamptz IS NULL OR d.created_at < $7)
		ORDER BY d.id LIMIT $3`,
		f.ProjectID, p.After, limit(p), f.Environment, string(f.State), since, until)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanDeployment)
}

// ExpiredLeases goes through tone_expired_deployments, which sees every
// project's deployments: the reaper acts for nobody.
func (t *tx) ExpiredLeases(ctx context.Context, at time.Time, max int) (_ []domain.ExpiredLease, err error) {
	defer wrap(&err, "postgres: expired deployment leases")
	rows, err := t.tx.Query(ctx, `SELECT id, runner_id FROM public.tone_expired_deployments($1, $2)`, at, max)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []domain.ExpiredLease{}
	for rows.Next() {
		var l domain.ExpiredLease
		if err := rows.Scan(&l.DeploymentID, &l.RunnerID); err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// PutDeployStep numbers a new step after the deployment's others; callers
// hold the deployment's lock, so two new steps cannot take one position.
func (t *tx) PutDeployStep(ctx context.Context, s *domain.DeployStep) (err error) {
	defer wrap(&err, "postgres: put step %q of deployment %s", s.Name, s.DeploymentID)
	err = t.tx.QueryRow(ctx, `
		INSERT INTO deployment_steps (deployment_id, name, position, state, started_at, finished_at, exit_code)
		SELECT $1, $2, (SELECT count(*) FROM deployment_steps WHERE deployment_id = $1), $3, $4, $5, $6
		WHERE EXISTS (SELECT FROM deployments WHERE id = $1)
		ON CONFLICT (deployment_id, name) DO UPDATE
		SET state = EXCLUDED.state, started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at, exit_code = EXCLUDED.exit_code
		RETURNING position`,
		s.DeploymentID, s.Name, s.State, s.StartedAt, s.FinishedAt, s.ExitCode).Scan(&s.Position)
	return mapErr(err, "Deployment")
}

func (t *tx) ListDeploySteps(ctx context.Context, id uuid.UUID) (_ []*domain.DeployStep, err error) {
	defer wrap(&err, "postgres: steps of deployment %s", id)
	rows, err := t.tx.Query(ctx, `
		SELECT deployment_id, name, position, state, started_at, finished_at, exit_code
		FROM deployment_steps WHERE deployment_id = $1 ORDER BY position`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*domain.DeployStep{}
	for rows.Next() {
		var s domain.DeployStep
		if err := rows.Scan(&s.DeploymentID, &s.Name, &s.Position, &s.State, &s.StartedAt, &s.FinishedAt, &s.ExitCode); err != nil {
			return nil, err
		}
		s.StartedAt, s.FinishedAt = utcPtr(s.StartedAt), utcPtr(s.FinishedAt)
		out = append(out, &s)
	}
	return out, rows.Err()
}
