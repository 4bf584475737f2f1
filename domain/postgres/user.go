package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tone-ai/tone/domain"
)

const userColumns = `id, email, password_hash, display_name, avatar_url, time_zone, preferences, created_at, updated_at`

func scanUser(row pgx.Row) (*domain.User, error) {
	var u domain.User
	var prefs []byte
	if err := row.Scan(&u.ID, &u.Email, &u.PasswordHash, &u.DisplayName, &u.AvatarURL, &u.TimeZone,
		&prefs, &u.CreatedAt, &u.UpdatedAt); err != nil {
		return nil, err
	}
	p, err := compactJSON(prefs)
	if err != nil {
		return nil, fmt.Errorf("preferences: %w", err)
	}
	u.Preferences = p
	u.CreatedAt, u.UpdatedAt = u.CreatedAt.UTC(), u.UpdatedAt.UTC()
	return &u, nil
}

// compactJSON returns a jsonb value without the spaces PostgreSQL prints.
func compactJSON(b []byte) (json.RawMessage, error) {
	if b == nil {
		return nil, nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// preferences returns the value to store for p: an empty object for none.
func preferences(p json.RawMessage) []byte {
	if len(p) == 0 {
		return []byte("{}")
	}
	return p
}

func (t *tx) CreateUser(ctx context.Context, u *domain.User) (err error) {
	defer wrap(&err, "postgres: create user %s", u.ID)
	tag, err := t.tx.Exec(ctx, `
		INSERT INTO users (`+userColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT DO NOTHING`,
		u.ID, u.Email, u.PasswordHash, u.DisplayName, u.AvatarURL, u.TimeZone,
		preferences(u.Preferences), u.CreatedAt, u.UpdatedAt)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return conflict("Email already registered.")
	}
	return nil
}

func (t *tx) UserByID(ctx context.Context, id uuid.UUID) (_ *domain.User, err error) {
	defer wrap(&err, "postgres: user %s", id)
	u, err := scanUser(t.tx.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id))
	return u, mapErr(err, "User")
}

func (t *tx) UserByEmail(ctx context.Context, email string) (_ *domain.User, err error) {
	defer wrap(&err, "postgres: user by email")
	u, err := scanUser(t.tx.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE email = $1`, email))
	return u, mapErr(err, "User")
}

func (t *tx) UpdateUser(ctx context.Context, u *domain.User) (err error) {
	defer wrap(&err, "postgres: update user %s", u.ID)
	// The NOT EXISTS guard reports a taken email without aborting the
	// transaction; the unique index still catches a concurrent taker.
	tag, err := t.tx.Exec(ctx, `
		UPDATE users SET email = $2, password_hash = $3, display_name = $4, avatar_url = $5,
			time_zone = $6, preferences = $7, updated_at = $8
		WHERE id = $1 AND NOT EXISTS (SELECT FROM users o WHERE o.email = $2 AND o.id <> $1)`,
		u.ID, u.Email, u.PasswordHash, u.DisplayName, u.AvatarURL, u.TimeZone,
		preferences(u.Preferences), u.UpdatedAt)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == codeUniqueViolation {
		return conflict("Email already registered.")
	}
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var exists bool
	if err := t.tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM users WHERE id = $1)`, u.ID).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		return notFound("User")
	}
	return conflict("Email already registered.")
}

func (t *tx) AreCoMembers(ctx context.Context, a, b uuid.UUID) (ok bool, err error) {
	defer wrap(&err, "postgres: are %s and %s co-members", a, b)
	// Through a SECURITY DEFINER function: the actor may not see the
	// workspace memberships of a project they belong to only directly.
	err = t.tx.QueryRow(ctx, `SELECT public.tone_are_co_members($1, $2)`, a, b).Scan(&ok)
	return ok, err
}
