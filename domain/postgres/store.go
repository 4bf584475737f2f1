// Package postgres implements the domain store interfaces on PostgreSQL,
// through pgx.
//
//	pool, err := postgres.Open(ctx, os.Getenv("TONE_DATABASE_URL"))
//	if err != nil { ... }
//	defer pool.Close()
//	store := postgres.New(pool)
//	err = store.InTx(ctx, actor, func(tx domain.Tx) error { ... })
//
// The schema is in package migrations, which must have been applied.
//
// # Transactions and row-level security
//
// [Store.InTx] opens one PostgreSQL transaction (READ COMMITTED) per call and
// sets tone.user_id to the actor for that transaction only
// (set_config(..., true)); uuid.Nil sets it empty. The server is meant to
// connect as tone_app, a role subject to the FORCE'd row-level security
// policies of the tenant tables, so whatever a query forgets, the database
// still returns and changes only rows of the actor's workspaces and
// projects (see package migrations for the exact rules). Consequences for
// callers:
//
//   - A row the actor may not see reads as absent: ENotFound.
//   - A write the policies refuse (which the domain's own checks should have
//     stopped first) is an internal error, not a domain code.
//   - AreCoMembers answers only for the actor (one of the two users must be
//     the actor); for anyone else it reports false.
//   - users and refresh_tokens are not tenant tables and are always visible.
//
// Conflicting inserts are detected with ON CONFLICT DO NOTHING, so an
// EConflict from Create* leaves the transaction usable; other database
// errors abort it, and the caller must return.
//
// # Values
//
// Times come back in UTC with microsecond precision (PostgreSQL's). JSON
// documents (preferences, audit details) are stored as jsonb and come back
// compact, with keys in jsonb's order and numbers as float64; an empty
// details object comes back as nil. uuid.Nil stands for SQL NULL in the
// optional columns of audit events.
//
// A Store is safe for concurrent use; a Tx is not, and must not be used after
// the function given to InTx returns.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tone-ai/tone/domain"
)

// Store is a domain.Store on a PostgreSQL connection pool.
type Store struct {
	pool *pgxpool.Pool
}

var _ domain.Store = (*Store)(nil)

// New returns a store using pool. The caller keeps ownership of the pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// DefaultMaxConns is the pool size Open uses unless the URL sets
// pool_max_conns.
const DefaultMaxConns = 16

// Open connects a pool to the database at url (a postgres:// URL or a
// key=value connection string; pool_max_conns and friends are honoured) and
// checks that the server answers.
func Open(ctx context.Context, url string) (_ *pgxpool.Pool, err error) {
	defer wrap(&err, "postgres: open")
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "tone"
	}
	if !strings.Contains(url, "pool_max_conns") && cfg.MaxConns < DefaultMaxConns {
		// pgx's default (the number of CPUs, at least 4) starves the
		// canvas sessions' concurrent group commits; see docs/operations.md.
		cfg.MaxConns = DefaultMaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// RowSecurityEnforced reports whether the pool's role is subject to
// row-level security: not a superuser and without BYPASSRLS. The server
// should warn loudly when it is not.
func RowSecurityEnforced(ctx context.Context, pool *pgxpool.Pool) (bool, error) {
	var bypass bool
	err := pool.QueryRow(ctx,
		`SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user`).Scan(&bypass)
	if err != nil {
		return false, fmt.Errorf("postgres: check role: %w", err)
	}
	return !bypass, nil
}

// Ping returns nil when the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}

// InTx runs fn in one transaction acting for actor: it commits if fn returns
// nil and rolls back if fn returns an error or panics.
func (s *Store) InTx(ctx context.Context, actor uuid.UUID, fn func(domain.Tx) error) (err error) {
	ptx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: begin: %w", err)
	}
	defer func() {
		p := recover()
		if p != nil || err != nil {
			// Roll back even if ctx is done, so the connection returns to
			// the pool clean; pgx closes it if that fails.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_ = ptx.Rollback(rctx)
			cancel()
		}
		if p != nil {
			panic(p)
		}
	}()
	var user string
	if actor != uuid.Nil {
		user = actor.String()
	}
	if _, err := ptx.Exec(ctx, `SELECT set_config('tone.user_id', $1, true)`, user); err != nil {
		return fmt.Errorf("postgres: set actor: %w", err)
	}
	if err := fn(&tx{tx: ptx}); err != nil {
		return err
	}
	if err := ptx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: commit: %w", err)
	}
	return nil
}

// tx is a domain.Tx bound to one pgx transaction.
type tx struct {
	tx pgx.Tx
	// outboxLocks are the outbox lock buckets the transaction holds.
	outboxLocks map[int32]bool
}

var _ domain.Tx = (*tx)(nil)

// wrap adds context to *errp unless it is nil or a domain error, which is
// meant for users as it is.
func wrap(errp *error, format string, args ...any) {
	if *errp == nil {
		return
	}
	var de *domain.Error
	if errors.As(*errp, &de) {
		return
	}
	*errp = fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), *errp)
}

func notFound(what string) *domain.Error {
	return domain.Errorf(domain.ENotFound, "%s not found.", what)
}

func conflict(format string, args ...any) *domain.Error {
	return domain.Errorf(domain.EConflict, format, args...)
}

// PostgreSQL error codes the store maps to domain codes.
const (
	codeUniqueViolation     = "23505"
	codeForeignKeyViolation = "23503"
)

// mapErr turns "no rows" into ENotFound for what, and a unique violation
// into EConflict; any other error is returned as it is.
func mapErr(err error, what string) error {
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return notFound(what)
	case errors.As(err, &pgErr) && pgErr.Code == codeUniqueViolation:
		return conflict("%s already exists.", what)
	}
	return err
}

// limit turns a page size into a LIMIT argument: NULL (no limit) for zero
// or less.
func limit(p domain.Page) *int {
	if p.Limit <= 0 {
		return nil
	}
	return &p.Limit
}

// collect scans every row with scan.
func collect[T any](rows pgx.Rows, scan func(pgx.Row) (*T, error)) ([]*T, error) {
	defer rows.Close()
	var out []*T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
