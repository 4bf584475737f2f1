package postgres_test

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRLSSDKKeyScope: a transaction acting for an SDK key reads its own
// environment's version, flags and history and its project's segments, and
// nothing else: no other environment, no other tenant, no key, project or
// member row, and it writes nothing.
func TestRLSSDKKeyScope(t *testing.T) {
	r := newRLSDB(t)
	a := r.a
	// Another environment and a segment in a's project, written by a's owner.
	asUser(t, r.app, a.user.ID.String(), func(tx pgx.Tx) {
		_, err := tx.Exec(ctx, `INSERT INTO flag_environments (project_id, name, version) VALUES ($1, 'staging', 1), ($1, '', 1)`, a.project.ID)
		require.NoError(t, err)
		_, err = tx.Exec(ctx, `INSERT INTO flag_items (project_id, environment, kind, key, data, version, updated_by, updated_at)
			VALUES ($1, 'staging', 'flag', 'hidden', '{}', 1, $2, now()), ($1, '', 'segment', 'beta', '{}', 1, $2, now())`,
			a.project.ID, a.user.ID)
		require.NoError(t, err)
		require.NoError(t, tx.Commit(ctx))
	})
	p := a.project.ID.String()
	asUser(t, r.app, a.sdkKey.ID.String(), func(tx pgx.Tx) {
		assert.Equal(t, []string{p + "/", p + "/production"}, keys(t, tx, "flag_environments", "project_id || '/' || name"))
		assert.Equal(t, []string{p + "//segment/beta", p + "/production/flag/dark-mode"},
			keys(t, tx, "flag_items", "project_id || '/' || environment || '/' || kind || '/' || key"))
		assert.Equal(t, []string{p + "/production/1"}, keys(t, tx, "flag_changes", "project_id || '/' || environment || '/' || version"))
		for _, table := range []string{"sdk_keys", "projects", "project_members", "workspaces", "canvases", "deployments"} {
			assert.Empty(t, keys(t, tx, table, "1::text"), table)
		}
		for _, q := range []string{
			`UPDATE flag_items SET data = '{"forged": true}'`,
			`DELETE FROM flag_items`,
			`DELETE FROM flag_changes`,
			`UPDATE flag_environments SET version = version + 1`,
		} {
			code, n := sqlState(t, tx, q)
			if code == "" {
				assert.Zero(t, n, "an SDK key changes nothing: %s", q)
			}
		}
	})
	// The other tenant's key sees none of a's rows.
	asUser(t, r.app, r.b.sdkKey.ID.String(), func(tx pgx.Tx) {
		for _, table := range []string{"flag_environments", "flag_items", "flag_changes"} {
			for _, k := range keys(t, tx, table, "project_id::text") {
				assert.Equal(t, r.b.project.ID.String(), k, table)
			}
		}
	})
}
