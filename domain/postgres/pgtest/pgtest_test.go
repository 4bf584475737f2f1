package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recorder is a testing.TB that records Skipf and Fatalf instead of
// stopping the goroutine.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper()                           {}
func (r *recorder) Skipf(format string, args ...any)  { r.skipped = fmt.Sprintf(format, args...) }
func (r *recorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }

func TestUnavailable(t *testing.T) {
	err := errors.New("PostgreSQL not reachable at postgres://x@h:1/db: refused")
	for _, test := range []struct {
		ci       string
		wantFail bool
	}{{"true", true}, {"1", true}, {"", false}, {"false", false}} {
		t.Run("CI="+test.ci, func(t *testing.T) {
			t.Setenv("CI", test.ci)
			r := &recorder{TB: t}
			unavailable(r, err)
			if test.wantFail {
				assert.Empty(t, r.skipped)
				assert.Contains(t, r.failed, "not reachable at postgres://x@h:1/db")
				assert.Contains(t, r.failed, "CI=true")
			} else {
				assert.Empty(t, r.failed)
				assert.Contains(t, r.skipped, "SKIPPING")
				assert.Contains(t, r.skipped, "not reachable at postgres://x@h:1/db")
				assert.Contains(t, r.skipped, "set CI=true to make this a failure")
			}
		})
	}
}

func TestProbeUnreachable(t *testing.T) {
	u, err := url.Parse("postgres://someone:secret@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=2")
	require.NoError(t, err)
	err = probe(u)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "PostgreSQL not reachable at postgres://someone:xxxxx@127.0.0.1:1/postgres")
	assert.NotContains(t, err.Error(), "secret")
}

func TestNewGivesEachTestItsOwnDatabase(t *testing.T) {
	var names []string
	for i := range 2 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			db := NewDB(t)
			names = append(names, db.Name)
			pool := db.AppPool(t)
			var user, dbname string
			require.NoError(t, pool.QueryRow(context.Background(), `SELECT current_user, current_database()`).Scan(&user, &dbname))
			assert.Equal(t, "tone_app", user)
			assert.Equal(t, db.Name, dbname)
			var tables int
			require.NoError(t, pool.QueryRow(context.Background(),
				`SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = 'workspaces'`).Scan(&tables))
			assert.Equal(t, 1, tables, "migrated")
		})
	}
	require.Len(t, names, 2)
	assert.NotEqual(t, names[0], names[1])
	// Both are gone now that their tests have ended.
	owner := NewEmptyDB(t).OwnerPool(t)
	var left int
	require.NoError(t, owner.QueryRow(context.Background(),
		`SELECT count(*) FROM pg_database WHERE datname = ANY ($1)`, names).Scan(&left))
	assert.Zero(t, left)
}
