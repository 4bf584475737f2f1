package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain/postgres/pgtest"
)

// TestAuditSecretsAndVerify runs the account flows that handle secrets
// (register, login, refresh, reuse of a spent refresh token, logout)
// against a server on PostgreSQL, checks that no password or token shows
// in any audit row or log line, then checks `tone audit verify` and the
// admin endpoint before and after a row is edited behind the server's back.
func TestAuditSecretsAndVerify(t *testing.T) {
	db := pgtest.NewEmptyDB(t)
	base, stop, logs := startServer(t, "--database-url", db.AppURL, "--migrate-database-url", db.OwnerURL, "--migrate", "--log-level", "debug")
	ws, ann := walkThrough(t, base)
	anon := &client{t: t, base: base}
	const bobPassword = "another good one"
	tok := anon.do("POST", "/auth/login", map[string]string{"email": "bob@example.com", "password": bobPassword}, 200)
	refresh := tok["refresh_token"].(string)
	access := tok["access_token"].(string)
	next := anon.do("POST", "/auth/refresh", map[string]string{"refresh_token": refresh}, 200)
	anon.do("POST", "/auth/login", map[string]string{"email": "bob@example.com", "password": "wrong password here"}, 401)
	anon.do("POST", "/auth/register", map[string]string{"email": "eve@example.com", "password": "short"}, 400)
	anon.do("POST", "/auth/logout", map[string]string{"refresh_token": next["refresh_token"].(string)}, 204)

	report := ann.do("GET", "/workspaces/"+ws+"/audit/verify", nil, 200)
	assert.Equal(t, true, report["ok"], "%v", report)
	assert.NotZero(t, report["events"])
	require.NoError(t, stop())

	secrets := []string{"correct horse battery", bobPassword, "wrong password here", refresh, access,
		next["refresh_token"].(string), next["access_token"].(string), ann.token}
	owner := db.OwnerPool(t)
	rows, err := owner.Query(context.Background(), `SELECT row_to_json(a)::text FROM audit_events a`)
	require.NoError(t, err)
	events, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.NotEmpty(t, events)
	all := strings.Join(events, "\n")
	assert.Contains(t, all, "auth.login", "logins are audited")
	out := logs.String()
	for _, s := range secrets {
		assert.NotContains(t, all, s, "an audit row holds a secret")
		assert.NotContains(t, out, s, "the log holds a secret")
	}

	var stdout bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"audit", "--migrate-database-url", db.OwnerURL, "verify"}, &stdout, io.Discard))
	assert.Contains(t, stdout.String(), "0 broken")
	err = run(context.Background(), []string{"audit", "--database-url", db.AppURL, "verify"}, io.Discard, io.Discard)
	assert.ErrorContains(t, err, "table owner", "tone_app sees too little to verify")

	_, err = owner.Exec(context.Background(), `UPDATE audit_events SET details = '{"role":"viewer"}' WHERE action = 'workspace.member.add'`)
	require.NoError(t, err)
	stdout.Reset()
	err = run(context.Background(), []string{"audit", "--migrate-database-url", db.OwnerURL, "--workspace", ws, "verify"}, &stdout, io.Discard)
	assert.ErrorIs(t, err, errAuditTampered)
	assert.Contains(t, stdout.String(), "BROKEN")
	assert.Contains(t, stdout.String(), "edited")
	assert.Contains(t, stdout.String(), "1 chains checked, 1 broken")

	// The report also comes as JSON.
	stdout.Reset()
	err = run(context.Background(), []string{"audit", "--migrate-database-url", db.OwnerURL, "--json", "verify"}, &stdout, io.Discard)
	assert.ErrorIs(t, err, errAuditTampered)
	assert.Contains(t, stdout.String(), `"ok":false`)
}
