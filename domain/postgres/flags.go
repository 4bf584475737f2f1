package postgres

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tone-ai/tone/domain"
)

func (t *tx) NextFlagVersion(ctx context.Context, projectID uuid.UUID, env string) (_ int64, err error) {
	defer wrap(&err, "postgres: next flag version of %s/%q", projectID, env)
	// Selecting the project makes a missing or invisible one return no row.
	var v int64
	err = t.tx.QueryRow(ctx, `
		INSERT INTO flag_environments (project_id, name, version)
		SELECT p.id, $2, 1 FROM projects p WHERE p.id = $1
		ON CONFLICT (project_id, name) DO UPDATE SET version = flag_environments.version + 1
		RETURNING version`, projectID, env).Scan(&v)
	return v, mapErr(err, "Project")
}

func (t *tx) FlagVersion(ctx context.Context, projectID uuid.UUID, env string) (_ int64, err error) {
	defer wrap(&err, "postgres: flag version of %s/%q", projectID, env)
	var v int64
	err = t.tx.QueryRow(ctx, `
		SELECT coalesce((SELECT version FROM flag_environments WHERE project_id = $1 AND name = $2), 0)`,
		projectID, env).Scan(&v)
	return v, err
}

func (t *tx) FlagEnvironments(ctx context.Context, projectID uuid.UUID) (_ []domain.FlagEnvironment, err error) {
	defer wrap(&err, "postgres: flag environments of %s", projectID)
	rows, err := t.tx.Query(ctx, `
		SELECT name, version FROM flag_environments
		WHERE project_id = $1 AND name <> '' ORDER BY name COLLATE "C"`, projectID)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (domain.FlagEnvironment, error) {
		var e domain.FlagEnvironment
		err := row.Scan(&e.Name, &e.Version)
		return e, err
	})
	if out == nil && err == nil {
		out = []domain.FlagEnvironment{}
	}
	return out, err
}

func (t *tx) PutFlagItem(ctx context.Context, it *domain.FlagItem) (err error) {
	defer wrap(&err, "postgres: put flag item %s/%q/%s/%q", it.ProjectID, it.Environment, it.Kind, it.Key)
	_, err = t.tx.Exec(ctx, `
		INSERT INTO flag_items (project_id, environment, kind, key, data, version, updated_by, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (project_id, environment, kind, key) DO UPDATE
		SET data = EXCLUDED.data, version = EXCLUDED.version,
		    updated_by = EXCLUDED.updated_by, updated_at = EXCLUDED.updated_at`,
		it.ProjectID, it.Environment, it.Kind, it.Key, []byte(it.Data), it.Version, it.UpdatedBy, it.UpdatedAt)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == codeForeignKeyViolation {
		return domain.Errorf(domain.EInvalid, "Environment %q has no version yet; take one with NextFlagVersion first.", it.Environment)
	}
	return err
}

const flagItemColumns = `project_id, environment, kind, key, data, version, updated_by, updated_at`

func scanFlagItem(row pgx.Row) (*domain.FlagItem, error) {
	var it domain.FlagItem
	var data []byte
	if err := row.Scan(&it.ProjectID, &it.Environment, &it.Kind, &it.Key, &data, &it.Version, &it.UpdatedBy, &it.UpdatedAt); err != nil {
		return nil, err
	}
	it.Data = json.RawMessage(data)
	it.UpdatedAt = it.UpdatedAt.UTC()
	return &it, nil
}

func (t *tx) FlagItem(ctx context.Context, projectID uuid.UUID, env, kind, key string) (_ *domain.FlagItem, err error) {
	defer wrap(&err, "postgres: flag item %s/%q/%s/%q", projectID, env, kind, key)
	it, err := scanFlagItem(t.tx.QueryRow(ctx, `SELECT `+flagItemColumns+` FROM flag_items
		WHERE project_id = $1 AND environment = $2 AND kind = $3 AND key = $4`, projectID, env, kind, key))
	return it, mapErr(err, flagWhat(kind))
}

func (t *tx) ListFlagItems(ctx context.Context, projectID uuid.UUID, env, kind string) (_ []*domain.FlagItem, err error) {
	defer wrap(&err, "postgres: list flag items %s/%q/%s", projectID, env, kind)
	rows, err := t.tx.Query(ctx, `SELECT `+flagItemColumns+` FROM flag_items
		WHERE project_id = $1 AND environment = $2 AND kind = $3 ORDER BY key COLLATE "C"`, projectID, env, kind)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanFlagItem)
}

func (t *tx) DeleteFlagItem(ctx context.Context, projectID uuid.UUID, env, kind, key string) (err error) {
	defer wrap(&err, "postgres: delete flag item %s/%q/%s/%q", projectID, env, kind, key)
	tag, err := t.tx.Exec(ctx, `DELETE FROM flag_items
		WHERE project_id = $1 AND environment = $2 AND kind = $3 AND key = $4`, projectID, env, kind, key)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return notFound(flagWhat(kind))
	}
	return nil
}

// flagWhat names a kind of flag item in errors.
func flagWhat(kind string) string {
	switch kind {
	case domain.FlagKindConfig:
		return "Config value"
	case domain.FlagKindSegment:
		return "Segment"
	}
	return "Flag"
}

func (t *tx) AppendFlagChange(ctx context.Context, c *domain.FlagChange) (err error) {
	defer wrap(&err, "postgres: append flag change %s/%q@%d", c.ProjectID, c.Environment, c.Version)
	var data []byte // nil: SQL NULL (deleted)
	if c.Data != nil {
		data = c.Data
	}
	tag, err := t.tx.Exec(ctx, `
		INSERT INTO flag_changes (project_id, environment, version, kind, key, data, actor_id, at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT DO NOTHING`,
		c.ProjectID, c.Environment, c.Version, c.Kind, c.Key, data, c.ActorID, c.At)
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == codeForeignKeyViolation:
		return domain.Errorf(domain.EInvalid, "Environment %q has no version yet.", c.Environment)
	case err != nil:
		return err
	case tag.RowsAffected() == 0:
		return conflict("Version %d of environment %q exists.", c.Version, c.Environment)
	}
	return nil
}

func (t *tx) FlagChangesSince(ctx context.Context, projectID uuid.UUID, env string, since int64) (_ []*domain.FlagChange, err error) {
	defer wrap(&err, "postgres: flag changes of %s/%q since %d", projectID, env, since)
	rows, err := t.tx.Query(ctx, `
		SELECT project_id, environment, version, kind, key, data, actor_id, at FROM flag_changes
		WHERE project_id = $1 AND environment = $2 AND version > $3 ORDER BY version`, projectID, env, since)
	if err != nil {
		return nil, err
	}
	return collect(rows, func(row pgx.Row) (*domain.FlagChange, error) {
		var c domain.FlagChange
		var data []byte
		if err := row.Scan(&c.ProjectID, &c.Environment, &c.Version, &c.Kind, &c.Key, &data, &c.ActorID, &c.At); err != nil {
			return nil, err
		}
		if data != nil {
			c.Data = json.RawMessage(data)
		}
		c.At = c.At.UTC()
		return &c, nil
	})
}

func (t *tx) TrimFlagChanges(ctx context.Context, projectID uuid.UUID, env string, upTo int64) (err error) {
	defer wrap(&err, "postgres: trim flag changes of %s/%q", projectID, env)
	_, err = t.tx.Exec(ctx, `DELETE FROM flag_changes WHERE project_id = $1 AND environment = $2 AND version <= $3`,
		projectID, env, upTo)
	return err
}
