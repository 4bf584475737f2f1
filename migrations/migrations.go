// Package migrations holds Tone's PostgreSQL schema as SQL migrations for
// pressly/goose, embedded in the binary, and the functions that apply them:
// [Up] for `tone migrate up` and `tone serve --migrate`, [Down] for
// `tone migrate down`, [Status] for `tone migrate status`.
//
//	db, err := migrations.Open(os.Getenv("TONE_DATABASE_URL"))
//	if err != nil { ... }
//	defer db.Close()
//	err = migrations.Up(ctx, db)
//
// # Roles
//
// Migrations run as the role that will own the tables, and that role must be
// a superuser or have BYPASSRLS: the first migration checks this and stops
// with an error otherwise. They create the role tone_app if it does not
// exist (LOGIN, NOSUPERUSER, NOBYPASSRLS) and grant it only the privileges
// the server needs; the server connects as tone_app, which owns nothing and
// so is subject to every row-level security policy. The role is cluster-wide
// and down migrations leave it in place. In production give it a password
// (ALTER ROLE tone_app PASSWORD ...) or whatever authentication pg_hba.conf
// asks for.
//
// # Row-level security
//
// Tenant tables (workspaces and everything inside them) have FORCE ROW LEVEL
// SECURITY policies keyed on the transaction-local setting tone.user_id,
// which the store sets at the start of each transaction with
// set_config('tone.user_id', id, true). Without it no tenant row is visible.
// Each .sql file's header says what its policies allow. A new tenant table
// follows the same pattern: ENABLE and FORCE row-level security, one policy
// per command written with the tone_* helper functions, and explicit grants
// to tone_app.
//
// # Concurrency
//
// Up and Down take a PostgreSQL advisory lock for the duration, so several
// `tone serve --migrate` processes starting at once apply each migration
// exactly once. Each migration runs in its own transaction.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// FS holds the migrations, named NNNNN_description.sql.
//
//go:embed *.sql
var FS embed.FS

// AppRole is the role the server connects as.
const AppRole = "tone_app"

// Open returns a database/sql handle on the PostgreSQL database at url,
// through the pgx driver. The caller closes it.
func Open(url string) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("migrations: database URL: %w", err)
	}
	return stdlib.OpenDB(*cfg), nil
}

// NewProvider returns a goose provider of the embedded migrations over db,
// holding a session advisory lock while it migrates. Extra options (a
// logger, for example) are passed on to goose.
func NewProvider(db *sql.DB, opts ...goose.ProviderOption) (*goose.Provider, error) {
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	base := []goose.ProviderOption{
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, FS, append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	return p, nil
}

func quiet(db *sql.DB) (*goose.Provider, error) {
	return NewProvider(db, goose.WithLogger(goose.NopLogger()))
}

// Up applies every pending migration, in order. It does nothing when the
// database is up to date.
func Up(ctx context.Context, db *sql.DB) (err error) {
	defer wrap(&err, "migrations: up")
	p, err := quiet(db)
	if err != nil {
		return err
	}
	_, err = p.Up(ctx)
	return err
}

// Down rolls back the most recently applied migration. It returns an error
// if none is applied.
func Down(ctx context.Context, db *sql.DB) (err error) {
	defer wrap(&err, "migrations: down")
	p, err := quiet(db)
	if err != nil {
		return err
	}
	_, err = p.Down(ctx)
	if errors.Is(err, goose.ErrNoNextVersion) {
		return errors.New("no migration to roll back")
	}
	return err
}

// Version returns the version of the last migration applied to db (0 for
// none) and the latest version embedded in this binary.
func Version(ctx context.Context, db *sql.DB) (current, latest int64, err error) {
	defer wrap(&err, "migrations: version")
	p, err := quiet(db)
	if err != nil {
		return 0, 0, err
	}
	return p.GetVersions(ctx)
}

// Status writes one line per migration to w: its version, name, and when it
// was applied or "pending".
func Status(ctx context.Context, db *sql.DB, w io.Writer) (err error) {
	defer wrap(&err, "migrations: status")
	p, err := quiet(db)
	if err != nil {
		return err
	}
	st, err := p.Status(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tMIGRATION\tAPPLIED")
	for _, s := range st {
		applied := "pending"
		if s.State == goose.StateApplied {
			applied = s.AppliedAt.UTC().Format("2006-01-02 15:04:05 UTC")
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\n", s.Source.Version, s.Source.Path, applied)
	}
	return tw.Flush()
}

func wrap(errp *error, msg string) {
	if *errp != nil {
		*errp = fmt.Errorf("%s: %w", msg, *errp)
	}
}
