package postgres

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tone-ai/tone/domain"
)

const sdkKeyColumns = `k.id, k.project_id, k.environment, k.name, k.hash, k.created_by, k.created_at, k.revoked_at`

func scanSDKKey(row pgx.Row) (*domain.SDKKey, error) {
	var k domain.SDKKey
	if err := row.Scan(&k.ID, &k.ProjectID, &k.Environment, &k.Name, &k.Hash, &k.CreatedBy, &k.CreatedAt, &k.RevokedAt); err != nil {
		return nil, err
	}
	k.CreatedAt = k.CreatedAt.UTC()
	if k.RevokedAt != nil {
		t := k.RevokedAt.UTC()
		k.RevokedAt = &t
	}
	return &k, nil
}

func (t *tx) CreateSDKKey(ctx context.Context, k *domain.SDKKey) (err error) {
	defer wrap(&err, "postgres: create SDK key %s", k.ID)
	// Selecting the project makes a missing or invisible one insert nothing.
	tag, err := t.tx.Exec(ctx, `
		INSERT INTO sdk_keys (id, project_id, environment, name, hash, created_by, created_at)
		SELECT $1, p.id, $3, $4, $5, $6, $7 FROM projects p WHERE p.id = $2`,
		k.ID, k.ProjectID, k.Environment, k.Name, k.Hash, k.CreatedBy, k.CreatedAt)
	if err != nil {
		return mapErr(err, "SDK key")
	}
	if tag.RowsAffected() == 0 {
		return notFound("Project")
	}
	return nil
}

// SDKKeyByHash goes through tone_sdk_key_by_hash, which sees every key: the
// request is not authenticated yet.
func (t *tx) SDKKeyByHash(ctx context.Context, hash []byte) (_ *domain.SDKKey, err error) {
	defer wrap(&err, "postgres: SDK key by hash")
	k, err := scanSDKKey(t.tx.QueryRow(ctx, `SELECT `+sdkKeyColumns+` FROM public.tone_sdk_key_by_hash($1) k`, hash))
	return k, mapErr(err, "SDK key")
}

func (t *tx) SDKKeyByID(ctx context.Context, id uuid.UUID) (_ *domain.SDKKey, err error) {
	defer wrap(&err, "postgres: SDK key %s", id)
	k, err := scanSDKKey(t.tx.QueryRow(ctx, `SELECT `+sdkKeyColumns+` FROM sdk_keys k WHERE k.id = $1`, id))
	return k, mapErr(err, "SDK key")
}

func (t *tx) ListSDKKeys(ctx context.Context, projectID uuid.UUID, p domain.Page) (_ []*domain.SDKKey, err error) {
	defer wrap(&err, "postgres: list SDK keys of project %s", projectID)
	rows, err := t.tx.Query(ctx, `
		SELECT `+sdkKeyColumns+` FROM sdk_keys k
		WHERE k.project_id = $1 AND k.id > $2 ORDER BY k.id LIMIT $3`,
		projectID, p.After, limit(p))
	if err != nil {
		return nil, err
	}
	return collect(rows, scanSDKKey)
}

func (t *tx) RevokeSDKKey(ctx context.Context, id uuid.UUID, at time.Time) (err error) {
	defer wrap(&err, "postgres: revoke SDK key %s", id)
	tag, err := t.tx.Exec(ctx, `UPDATE sdk_keys SET revoked_at = coalesce(revoked_at, $2) WHERE id = $1`, id, at)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return notFound("SDK key")
	}
	return nil
}
