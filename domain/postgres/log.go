package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tone-ai/tone/domain"
)

// LockLogState creates the deployment's log row if needed and locks it
// (FOR UPDATE): batches of one deployment queue on it.
func (t *tx) LockLogState(ctx context.Context, id uuid.UUID) (_ *domain.LogState, err error) {
	defer wrap(&err, "postgres: lock log of deployment %s", id)
	var st domain.LogState
	err = t.tx.QueryRow(ctx, `
		SELECT deployment_id, next_seq, lines, bytes, truncated_before
		FROM deployment_logs WHERE deployment_id = $1 FOR UPDATE`, id).
		Scan(&st.DeploymentID, &st.NextSeq, &st.Lines, &st.Bytes, &st.TruncatedBefore)
	if errors.Is(err, pgx.ErrNoRows) {
		// The deployment's first batch. A concurrent first batch inserts
		// too; ON CONFLICT makes the loser wait for the winner's row.
		_, err = t.tx.Exec(ctx, `
			INSERT INTO deployment_logs (deployment_id) SELECT id FROM deployments WHERE id = $1
			ON CONFLICT DO NOTHING`, id)
		if err != nil {
			return nil, err
		}
		err = t.tx.QueryRow(ctx, `
			SELECT deployment_id, next_seq, lines, bytes, truncated_before
			FROM deployment_logs WHERE deployment_id = $1 FOR UPDATE`, id).
			Scan(&st.DeploymentID, &st.NextSeq, &st.Lines, &st.Bytes, &st.TruncatedBefore)
	}
	if err != nil {
		return nil, mapErr(err, "Deployment")
	}
	return &st, nil
}

func (t *tx) LogState(ctx context.Context, id uuid.UUID) (_ *domain.LogState, err error) {
	defer wrap(&err, "postgres: log of deployment %s", id)
	st := domain.LogState{DeploymentID: id, NextSeq: 1}
	err = t.tx.QueryRow(ctx, `
		SELECT next_seq, lines, bytes, truncated_before FROM deployment_logs WHERE deployment_id = $1`, id).
		Scan(&st.NextSeq, &st.Lines, &st.Bytes, &st.TruncatedBefore)
	if errors.Is(err, pgx.ErrNoRows) {
		return &st, nil
	}
	return &st, err
}

func (t *tx) SaveLogState(ctx context.Context, st *domain.LogState) (err error) {
	defer wrap(&err, "postgres: save log of deployment %s", st.DeploymentID)
	tag, err := t.tx.Exec(ctx, `
		UPDATE deployment_logs SET next_seq = $2, lines = $3, bytes = $4, truncated_before = $5
		WHERE deployment_id = $1`, st.DeploymentID, st.NextSeq, st.Lines, st.Bytes, st.TruncatedBefore)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return notFound("Log")
	}
	return nil
}

func (t *tx) LogStepNext(ctx context.Context, id uuid.UUID, step string) (_ uint64, err error) {
	defer wrap(&err, "postgres: next line of step %q of deployment %s", step, id)
	var next uint64
	err = t.tx.QueryRow(ctx, `SELECT next_line FROM deployment_log_steps WHERE deployment_id = $1 AND step = $2`, id, step).Scan(&next)
	if errors.Is(err, pgx.ErrNoRows) {
		return 1, nil
	}
	return next, err
}

// AppendLogChunk sends its three statements in one round trip.
func (t *tx) AppendLogChunk(ctx context.Context, c *domain.LogChunk, st *domain.LogState) (err error) {
	defer wrap(&err, "postgres: append log chunk %d-%d of deployment %s", c.FirstSeq, c.LastSeq, c.DeploymentID)
	b := &pgx.Batch{}
	b.Queue(`
		INSERT INTO log_chunks (deployment_id, first_seq, last_seq, step, first_line, last_line, lines, bytes, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		c.DeploymentID, c.FirstSeq, c.LastSeq, c.Step, c.FirstLine, c.LastLine, c.Lines, c.Bytes, c.CreatedAt)
	b.Queue(`
		INSERT INTO deployment_log_steps (deployment_id, step, next_line) VALUES ($1, $2, $3)
		ON CONFLICT (deployment_id, step) DO UPDATE SET next_line = EXCLUDED.next_line`, c.DeploymentID, c.Step, c.LastLine+1)
	b.Queue(`
		UPDATE deployment_logs SET next_seq = $2, lines = $3, bytes = $4, truncated_before = $5
		WHERE deployment_id = $1`, st.DeploymentID, st.NextSeq, st.Lines, st.Bytes, st.TruncatedBefore)
	res := t.tx.SendBatch(ctx, b)
	_, err1 := res.Exec()
	_, err2 := res.Exec()
	tag, err3 := res.Exec()
	if err := errors.Join(err1, err2, err3, res.Close()); err != nil {
		return missingParent(err, "Log", "Log chunk")
	}
	if tag.RowsAffected() == 0 {
		return notFound("Log")
	}
	return nil
}

func (t *tx) LogChunks(ctx context.Context, id uuid.UUID, after uint64, maxLines int) (_ []*domain.LogChunk, err error) {
	defer wrap(&err, "postgres: log chunks of deployment %s", id)
	// The chunks after `after`, while the lines before each are fewer
	// than maxLines.
	rows, err := t.tx.Query(ctx, `
		SELECT deployment_id, first_seq, last_seq, step, first_line, last_line, lines, bytes, created_at
		FROM (
			SELECT c.*, sum(c.last_seq - c.first_seq + 1) OVER (ORDER BY c.first_seq) - (c.last_seq - c.first_seq + 1) AS before
			FROM log_chunks c WHERE c.deployment_id = $1 AND c.last_seq > $2
		) x
		WHERE $3 <= 0 OR x.before < $3
		ORDER BY first_seq`, id, after, maxLines)
	if err != nil {
		return nil, err
	}
	return collect(rows, func(row pgx.Row) (*domain.LogChunk, error) {
		var c domain.LogChunk
		if err := row.Scan(&c.DeploymentID, &c.FirstSeq, &c.LastSeq, &c.Step, &c.FirstLine, &c.LastLine, &c.Lines, &c.Bytes, &c.CreatedAt); err != nil {
			return nil, err
		}
		c.CreatedAt = c.CreatedAt.UTC()
		return &c, nil
	})
}

func (t *tx) DropOldLogChunks(ctx context.Context, id uuid.UUID, maxLines, maxBytes int64) (lines, bytes int64, lastSeq uint64, err error) {
	defer wrap(&err, "postgres: drop old log chunks of deployment %s", id)
	// Counting from the newest chunk, the first that would take the tail
	// over a limit and every older one go; the newest always stays.
	err = t.tx.QueryRow(ctx, `
		WITH tail AS (
			SELECT first_seq,
			       sum(last_seq - first_seq + 1) OVER w AS tail_lines, sum(bytes) OVER w AS tail_bytes,
			       row_number() OVER w AS n
			FROM log_chunks WHERE deployment_id = $1
			WINDOW w AS (ORDER BY first_seq DESC)
		), cut AS (
			SELECT max(first_seq) AS below FROM tail WHERE n > 1 AND (tail_lines > $2 OR tail_bytes > $3)
		), gone AS (
			DELETE FROM log_chunks c USING cut
			WHERE c.deployment_id = $1 AND c.first_seq <= cut.below
			RETURNING c.last_seq - c.first_seq + 1 AS lines, c.bytes, c.last_seq
		)
		SELECT COALESCE(sum(lines), 0), COALESCE(sum(bytes), 0), COALESCE(max(last_seq), 0) FROM gone`,
		id, maxLines, maxBytes).Scan(&lines, &bytes, &lastSeq)
	return lines, bytes, lastSeq, err
}

// PruneLogs goes through tone_prune_deploy_logs, which sees every
// project's logs: the pruner acts for nobody.
func (t *tx) PruneLogs(ctx context.Context, at time.Time, defaultDays, max int) (_ int, err error) {
	defer wrap(&err, "postgres: prune logs")
	var n int
	err = t.tx.QueryRow(ctx, `SELECT public.tone_prune_deploy_logs($1, $2, $3)`, at, defaultDays, max).Scan(&n)
	return n, err
}

func (t *tx) ListLogSecrets(ctx context.Context, projectID uuid.UUID) (_ []*domain.LogSecret, err error) {
	defer wrap(&err, "postgres: log secrets of project %s", projectID)
	rows, err := t.tx.Query(ctx, `
		SELECT id, project_id, name, value, created_by, created_at FROM log_secrets
		WHERE project_id = $1 ORDER BY name`, projectID)
	if err != nil {
		return nil, err
	}
	out, err := collect(rows, func(row pgx.Row) (*domain.LogSecret, error) {
		var s domain.LogSecret
		if err := row.Scan(&s.ID, &s.ProjectID, &s.Name, &s.Value, &s.CreatedBy, &s.CreatedAt); err != nil {
			return nil, err
		}
		s.CreatedAt = s.CreatedAt.UTC()
		return &s, nil
	})
	if out == nil && err == nil {
		out = []*domain.LogSecret{}
	}
	return out, err
}

func (t *tx) CreateLogSecret(ctx context.Context, s *domain.LogSecret) (err error) {
	defer wrap(&err, "postgres: create log secret %s", s.ID)
	tag, err := t.tx.Exec(ctx, `
		INSERT INTO log_secrets (id, project_id, name, value, created_by, created_at)
		SELECT $1, p.id, $3, $4, $5, $6 FROM projects p WHERE p.id = $2
		ON CONFLICT DO NOTHING`, s.ID, s.ProjectID, s.Name, s.Value, s.CreatedBy, s.CreatedAt)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var projectOK bool
	if err := t.tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM projects WHERE id = $1)`, s.ProjectID).Scan(&projectOK); err != nil {
		return err
	}
	if !projectOK {
		return notFound("Project")
	}
	return conflict("The project has a log secret named %q.", s.Name)
}

func (t *tx) DeleteLogSecret(ctx context.Context, projectID, id uuid.UUID) (err error) {
	defer wrap(&err, "postgres: delete log secret %s", id)
	tag, err := t.tx.Exec(ctx, `DELETE FROM log_secrets WHERE id = $1 AND project_id = $2`, id, projectID)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return notFound("Log secret")
	}
	return nil
}

func (t *tx) LogRetention(ctx context.Context, projectID uuid.UUID) (_ int, err error) {
	defer wrap(&err, "postgres: log retention of project %s", projectID)
	var days int
	err = t.tx.QueryRow(ctx, `SELECT retention_days FROM project_log_settings WHERE project_id = $1`, projectID).Scan(&days)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return days, err
}

func (t *tx) PutLogRetention(ctx context.Context, projectID uuid.UUID, days int, at time.Time) (err error) {
	defer wrap(&err, "postgres: put log retention of project %s", projectID)
	tag, err := t.tx.Exec(ctx, `
		INSERT INTO project_log_settings (project_id, retention_days, updated_at)
		SELECT p.id, $2, $3 FROM projects p WHERE p.id = $1
		ON CONFLICT (project_id) DO UPDATE SET retention_days = EXCLUDED.retention_days, updated_at = EXCLUDED.updated_at`,
		projectID, days, at)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return notFound("Project")
	}
	return nil
}
