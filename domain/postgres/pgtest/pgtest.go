// Package pgtest gives tests a PostgreSQL database of their own, migrated
// and reachable as the application role, so that row-level security applies
// to the test exactly as it does to the server.
//
//	func TestSomething(t *testing.T) {
//		pool := pgtest.New(t) // connected as tone_app to a fresh database
//		store := postgres.New(pool)
//		...
//	}
//
// The server is found through TONE_TEST_DATABASE_URL (default
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable), a URL whose
// user may create databases and roles and run the migrations (a superuser,
// see package migrations). The application role connects with the same host
// and options but as tone_app without a password, so the server must let it
// in (trust, or a password in PGPASSWORD or ~/.pgpass).
//
// When the server cannot be reached, tests that ask for a database fail if
// the environment has CI=true and are skipped, saying why, otherwise.
//
// # How databases are made
//
// The first call in a test process migrates a template database named after
// a hash of the embedded migrations (tone_tpl_<hash>), unless it already
// exists; every call then creates a database from it with CREATE DATABASE
// ... TEMPLATE, which is much faster than migrating each one, and drops it
// when the test ends. Templates are left in place for later runs and
// processes; a changed migration gets a new one. Concurrent test processes
// agree on the template through an advisory lock. To remove a stale
// template (it refuses connections, so drop it from another database):
//
//	ALTER DATABASE tone_tpl_<hash> IS_TEMPLATE false;
//	DROP DATABASE tone_tpl_<hash>;
//
// The functions are safe for concurrent use by parallel tests.
package pgtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tone-ai/tone/migrations"
)

// DefaultURL is the server used when TONE_TEST_DATABASE_URL is not set.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// templateLockKey is the advisory lock (on the maintenance database) held
// while a template is created.
const templateLockKey = 0x746f6e6570677430 // "tonepgt0"

// DB is one test's database.
type DB struct {
	Name     string // database name
	OwnerURL string // connects as the migrating role (the base URL's user)
	AppURL   string // connects as the application role, tone_app
}

// New returns a pool connected as tone_app to a fresh, migrated database of
// the test's own. The pool is closed and the database dropped when the test
// ends.
func New(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return NewDB(t).AppPool(t)
}

// NewDB creates a fresh, migrated database for the test and drops it when
// the test ends.
func NewDB(t testing.TB) *DB {
	t.Helper()
	base := server(t)
	tpl, err := template(base)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return create(t, base, tpl)
}

// NewEmptyDB creates a fresh database with no migrations applied (for
// testing the migrations themselves) and drops it when the test ends.
func NewEmptyDB(t testing.TB) *DB {
	t.Helper()
	return create(t, server(t), "template0")
}

// AppPool returns a pool connected to db as tone_app, closed when the test ends.
func (db *DB) AppPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return pool(t, db.AppURL)
}

// OwnerPool returns a pool connected to db as the migrating role (which
// bypasses row-level security), closed when the test ends.
func (db *DB) OwnerPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return pool(t, db.OwnerURL)
}

func pool(t testing.TB, u string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(u)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	cfg.MaxConns = 4
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", redact(u), err)
	}
	t.Cleanup(p.Close)
	return p
}

var (
	probeOnce sync.Once
	probeURL  *url.URL
	probeErr  error
)

// server returns the base URL, failing or skipping the test when the
// server is not reachable.
func server(t testing.TB) *url.URL {
	t.Helper()
	probeOnce.Do(func() {
		raw := os.Getenv("TONE_TEST_DATABASE_URL")
		if raw == "" {
			raw = DefaultURL
		}
		probeURL, probeErr = url.Parse(raw)
		if probeErr == nil && probeURL.Scheme != "postgres" && probeURL.Scheme != "postgresql" {
			probeErr = fmt.Errorf("TONE_TEST_DATABASE_URL must be a postgres:// URL, not %q", redact(raw))
		}
		if probeErr != nil {
			probeURL = nil
			return
		}
		probeErr = probe(probeURL)
	})
	if probeErr != nil {
		unavailable(t, probeErr)
	}
	return probeURL
}

// unavailable fails the test under CI and skips it, loudly, elsewhere.
func unavailable(t testing.TB, err error) {
	t.Helper()
	if ci() {
		t.Fatalf("pgtest: %v (CI=true, so this is a failure)", err)
		return
	}
	t.Skipf("pgtest: SKIPPING, NO DATABASE: %v; set CI=true to make this a failure", err)
}

// probe checks that the server at u answers.
func probe(u *url.URL) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u.String())
	if err == nil {
		err = conn.Ping(ctx)
		conn.Close(ctx)
	}
	if err != nil {
		return fmt.Errorf("PostgreSQL not reachable at %s: %w", redact(u.String()), err)
	}
	return nil
}

func ci() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v == "true" || v == "1"
}

// withDB returns u pointing at database name as user (the base URL's user
// and password when user is "").
func withDB(u *url.URL, name, user string) string {
	c := *u
	c.Path = "/" + name
	c.RawPath = ""
	if user != "" {
		c.User = url.User(user)
	}
	return c.String()
}

func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	return p.Redacted()
}

func randomName(prefix string) string {
	b := make([]byte, 8)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func create(t testing.TB, base *url.URL, from string) *DB {
	t.Helper()
	name := randomName("tone_test_")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := admin(ctx, base, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s",
		pgx.Identifier{name}.Sanitize(), pgx.Identifier{from}.Sanitize())); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := admin(ctx, base, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)",
			pgx.Identifier{name}.Sanitize())); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return &DB{
		Name:     name,
		OwnerURL: withDB(base, name, ""),
		AppURL:   withDB(base, name, migrations.AppRole),
	}
}

// admin runs statements on the maintenance database of base.
func admin(ctx context.Context, base *url.URL, stmts ...string) error {
	conn, err := pgx.Connect(ctx, base.String())
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

var (
	tplOnce sync.Once
	tplName string
	tplErr  error
)

// template returns the name of a template database with every migration
// applied, creating it if needed.
func template(base *url.URL) (string, error) {
	tplOnce.Do(func() {
		tplName, tplErr = migrationsHash()
		if tplErr != nil {
			return
		}
		tplName = "tone_tpl_" + tplName
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		tplErr = makeTemplate(ctx, base, tplName)
	})
	return tplName, tplErr
}

// migrationsHash names the schema the embedded migrations produce.
func migrationsHash() (string, error) {
	h := sha256.New()
	err := fs.WalkDir(migrations.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(migrations.FS, path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", path, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash migrations: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// makeTemplate creates and migrates the template database name unless it
// exists. The work happens under a different name that is renamed at the
// end, so a crash never leaves a half-migrated template behind.
func makeTemplate(ctx context.Context, base *url.URL, name string) (err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("template database %s: %w", name, err)
		}
	}()
	conn, err := pgx.Connect(ctx, base.String())
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(templateLockKey)); err != nil {
		return err
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(templateLockKey))

	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	work := randomName("tone_tplwork_")
	q := pgx.Identifier{work}.Sanitize()
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+q+" TEMPLATE template0"); err != nil {
		return err
	}
	drop := true
	defer func() {
		if drop {
			conn.Exec(context.WithoutCancel(ctx), "DROP DATABASE IF EXISTS "+q+" WITH (FORCE)")
		}
	}()
	db, err := migrations.Open(withDB(base, work, ""))
	if err != nil {
		return err
	}
	err = migrations.Up(ctx, db)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	// The migration's connections are closed, but their server processes
	// may take a moment to go away, and until then the rename is refused.
	rename := "ALTER DATABASE " + q + " RENAME TO " + pgx.Identifier{name}.Sanitize()
	for try := 0; ; try++ {
		_, err = conn.Exec(ctx, rename)
		var pgErr *pgconn.PgError
		if err == nil || try == 50 || !errors.As(err, &pgErr) || pgErr.Code != "55006" { // object_in_use
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	drop = false
	_, err = conn.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false")
	return err
}
