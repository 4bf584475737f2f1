package migrations_test

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"strings"
	"testing"

	"github.com/pressly/goose/v3"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain/postgres/pgtest"
	"github.com/tone-ai/tone/migrations"
)

// schemaObjects lists the tables and tone_* functions in the public schema.
func schemaObjects(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.Query(`
		SELECT 'table ' || tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'goose_db_version'
		UNION ALL
		SELECT 'function ' || proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace AND proname LIKE 'tone\_%'
		ORDER BY 1`)
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		out = append(out, s)
	}
	require.NoError(t, rows.Err())
	return out
}

func TestUpDownUp(t *testing.T) {
	ctx := context.Background()
	db, err := migrations.Open(pgtest.NewEmptyDB(t).OwnerURL)
	require.NoError(t, err)
	defer db.Close()

	p, err := migrations.NewProvider(db, goose.WithLogger(goose.NopLogger()))
	require.NoError(t, err)
	sources := p.ListSources()
	require.NotEmpty(t, sources)
	latest := sources[len(sources)-1].Version

	require.Empty(t, schemaObjects(t, db))
	require.NoError(t, migrations.Up(ctx, db))
	cur, last, err := migrations.Version(ctx, db)
	require.NoError(t, err)
	require.Equal(t, latest, cur)
	require.Equal(t, latest, last)
	full := schemaObjects(t, db)
	for _, want := range []string{
		"table users", "table refresh_tokens", "table workspaces", "table workspace_members",
		"table projects", "table project_members", "table audit_events", "function tone_user_id",
	} {
		require.Contains(t, full, want)
	}
	require.NoError(t, migrations.Up(ctx, db), "Up on an up-to-date database is a no-op")

	// Down one step at a time: each removes something and leaves a schema
	// the previous version's migrations can build on again.
	prev := full
	for v := latest; v > 0; v-- {
		require.NoError(t, migrations.Down(ctx, db), "down from version %d", v)
		cur, _, err := migrations.Version(ctx, db)
		require.NoError(t, err)
		require.Less(t, cur, v)
		now := schemaObjects(t, db)
		require.Less(t, len(now), len(prev), "down from version %d removed nothing", v)
		prev = now
	}
	require.Empty(t, schemaObjects(t, db), "everything is gone after the last down")
	err = migrations.Down(ctx, db)
	require.ErrorContains(t, err, "no migration to roll back")

	require.NoError(t, migrations.Up(ctx, db))
	require.Equal(t, full, schemaObjects(t, db), "up after down rebuilds the same schema")

	var buf bytes.Buffer
	require.NoError(t, migrations.Status(ctx, db, &buf))
	out := buf.String()
	require.Contains(t, out, "00001_app_role.sql")
	require.NotContains(t, out, "pending")
	require.Equal(t, len(sources)+1, strings.Count(out, "\n"), out)
}

func TestStatusPending(t *testing.T) {
	ctx := context.Background()
	db, err := migrations.Open(pgtest.NewEmptyDB(t).OwnerURL)
	require.NoError(t, err)
	defer db.Close()
	var buf bytes.Buffer
	require.NoError(t, migrations.Status(ctx, db, &buf))
	require.Contains(t, buf.String(), "00001_app_role.sql")
	require.Contains(t, buf.String(), "pending")
	require.NotContains(t, buf.String(), "UTC")
}

// TestRefusesRoleWithoutBypassRLS checks that migrating as a role that would
// be subject to the policies it creates stops at the first migration with a
// clear message and changes nothing.
func TestRefusesRoleWithoutBypassRLS(t *testing.T) {
	ctx := context.Background()
	tdb := pgtest.NewEmptyDB(t)
	if !strings.Contains(tdb.OwnerURL, "://postgres@") {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI must run this test: point TONE_TEST_DATABASE_URL at the postgres user")
		}
		t.Skip("TONE_TEST_DATABASE_URL does not use the postgres user; cannot derive a URL for another role")
	}
	owner := tdb.OwnerPool(t)

	role := "tone_test_migrator_" + strings.TrimPrefix(tdb.Name, "tone_test_")
	_, err := owner.Exec(ctx, "CREATE ROLE "+role+" LOGIN NOSUPERUSER NOBYPASSRLS")
	require.NoError(t, err)
	t.Cleanup(func() {
		_, err := owner.Exec(context.Background(), "DROP OWNED BY "+role+"; DROP ROLE "+role)
		require.NoError(t, err)
	})
	_, err = owner.Exec(ctx, "GRANT CREATE ON SCHEMA public TO "+role)
	require.NoError(t, err)

	db, err := migrations.Open(strings.Replace(tdb.OwnerURL, "://postgres@", "://"+role+"@", 1))
	require.NoError(t, err)
	defer db.Close()
	err = migrations.Up(ctx, db)
	require.ErrorContains(t, err, "must run as a superuser or a role with BYPASSRLS")
	cur, _, err := migrations.Version(ctx, db)
	require.NoError(t, err)
	require.Zero(t, cur)
}
