package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tone-ai/tone/domain"
)

const tokenColumns = `id, family_id, user_id, hash, created_at, expires_at, used_at, revoked_at, user_agent, ip`

func scanToken(row pgx.Row) (*domain.RefreshToken, error) {
	var rt domain.RefreshToken
	if err := row.Scan(&rt.ID, &rt.FamilyID, &rt.UserID, &rt.Hash, &rt.CreatedAt, &rt.ExpiresAt,
		&rt.UsedAt, &rt.RevokedAt, &rt.UserAgent, &rt.IP); err != nil {
		return nil, err
	}
	rt.CreatedAt, rt.ExpiresAt = rt.CreatedAt.UTC(), rt.ExpiresAt.UTC()
	rt.UsedAt, rt.RevokedAt = utcPtr(rt.UsedAt), utcPtr(rt.RevokedAt)
	return &rt, nil
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func (t *tx) CreateRefreshToken(ctx context.Context, rt *domain.RefreshToken) (err error) {
	defer wrap(&err, "postgres: create refresh token %s", rt.ID)
	tag, err := t.tx.Exec(ctx, `
		INSERT INTO refresh_tokens (`+tokenColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT DO NOTHING`,
		rt.ID, rt.FamilyID, rt.UserID, rt.Hash, rt.CreatedAt, rt.ExpiresAt, rt.UsedAt, rt.RevokedAt,
		rt.UserAgent, rt.IP)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == codeForeignKeyViolation {
		return notFound("User")
	}
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return conflict("Refresh token exists.")
	}
	return nil
}

func (t *tx) RefreshTokenByHash(ctx context.Context, hash []byte) (_ *domain.RefreshToken, err error) {
	defer wrap(&err, "postgres: refresh token by hash")
	// FOR UPDATE holds the row until the transaction ends, so two requests
	// spending the same token run one after the other, and the second sees
	// the first one's changes.
	rt, err := scanToken(t.tx.QueryRow(ctx,
		`SELECT `+tokenColumns+` FROM refresh_tokens WHERE hash = $1 FOR UPDATE`, hash))
	return rt, mapErr(err, "Refresh token")
}

func (t *tx) MarkRefreshTokenUsed(ctx context.Context, id uuid.UUID, at time.Time) (err error) {
	defer wrap(&err, "postgres: mark refresh token %s used", id)
	tag, err := t.tx.Exec(ctx, `UPDATE refresh_tokens SET used_at = $2 WHERE id = $1`, id, at)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return notFound("Refresh token")
	}
	return nil
}

func (t *tx) RevokeTokenFamily(ctx context.Context, familyID uuid.UUID, at time.Time) (err error) {
	defer wrap(&err, "postgres: revoke token family %s", familyID)
	_, err = t.tx.Exec(ctx,
		`UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL`, familyID, at)
	return err
}

func (t *tx) RevokeUserTokens(ctx context.Context, userID uuid.UUID, at time.Time) (err error) {
	defer wrap(&err, "postgres: revoke tokens of user %s", userID)
	_, err = t.tx.Exec(ctx,
		`UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL`, userID, at)
	return err
}
