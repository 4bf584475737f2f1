package postgres_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain"
	"github.com/tone-ai/tone/domain/postgres"
	"github.com/tone-ai/tone/domain/postgres/pgtest"
)

var (
	ctx = context.Background()
	now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

func newID() uuid.UUID { return uuid.Must(uuid.NewV7()) }

// tenantTables are the tables under row-level security, with an expression
// naming each row.
var tenantTables = []struct{ name, key string }{
	{"workspaces", "id::text"},
	{"workspace_members", "workspace_id || '/' || user_id"},
	{"projects", "id::text"},
	{"project_members", "project_id || '/' || user_id"},
	{"audit_events", "id::text"},
	{"canvases", "id::text"},
	{"canvas_replicas", "canvas_id || '/' || replica"},
	{"canvas_updates", "canvas_id || '/' || replica || '/' || first_seq"},
	{"canvas_snapshots", "id::text"},
	{"notifications", "id::text"},
	{"notification_preferences", "user_id || '/' || type"},
	{"deploy_tokens", "id::text"},
	{"deployments", "id::text"},
	{"deployment_steps", "deployment_id || '/' || name"},
	{"flag_environments", "project_id || '/' || name"},
	{"flag_items", "project_id || '/' || environment || '/' || kind || '/' || key"},
	{"flag_changes", "project_id || '/' || environment || '/' || version"},
	{"deployment_logs", "deployment_id::text"},
	{"deployment_log_steps", "deployment_id || '/' || step"},
	{"log_chunks", "deployment_id || '/' || first_seq"},
	{"log_secrets", "id::text"},
	{"project_log_settings", "project_id::text"},
	{"sdk_keys", "id::text"},
	{"artifacts", "id::text"},
	{"canvas_activity", "canvas_id || '/' || node"},
}

// tenant is one user's corner of the database, written through the store as
// the user would.
type tenant struct {
	user, guest *domain.User // guest is a direct project member only
	ws          *domain.Workspace
	project     *domain.Project
	wsEvent     *domain.AuditEvent // inside the workspace
	ownEvent    *domain.AuditEvent // outside any workspace
	projEvent   *domain.AuditEvent // inside the project
	canvas      *domain.Canvas     // in the project, with replica 1 of user and 2 of guest
	snapshots   []*domain.CanvasSnapshot
	note        *domain.Notification // in user's inbox
	token       *domain.DeployToken  // of the project
	deployment  *domain.Deployment   // in the project, with a step "build" and a line of log
	secret      *domain.LogSecret    // of the project
	sdkKey      *domain.SDKKey       // for production
	artifact    *domain.Artifact     // of the deployment
}

// rows are the keys (as tenantTables names them) of the tenant's rows.
func (tn *tenant) rows() map[string][]string {
	return map[string][]string{
		"workspaces":        {tn.ws.ID.String()},
		"workspace_members": {tn.ws.ID.String() + "/" + tn.user.ID.String()},
		"projects":          {tn.project.ID.String()},
		"project_members": {
			tn.project.ID.String() + "/" + tn.user.ID.String(),
			tn.project.ID.String() + "/" + tn.guest.ID.String(),
		},
		"audit_events": {tn.wsEvent.ID.String(), tn.ownEvent.ID.String(), tn.projEvent.ID.String()},
		"canvases":     {tn.canvas.ID.String()},
		"canvas_replicas": {
			tn.canvas.ID.String() + "/1",
			tn.canvas.ID.String() + "/2",
		},
		"canvas_updates": {
			tn.canvas.ID.String() + "/1/1",
			tn.canvas.ID.String() + "/2/1",
		},
		"canvas_snapshots":         {tn.snapshots[0].ID.String(), tn.snapshots[1].ID.String()},
		"notifications":            {tn.note.ID.String()},
		"notification_preferences": {tn.user.ID.String() + "/canvas.mention"},
		"deploy_tokens":            {tn.token.ID.String()},
		"deployments":              {tn.deployment.ID.String()},
		"deployment_steps":         {tn.deployment.ID.String() + "/build"},
		"flag_environments":        {tn.project.ID.String() + "/production"},
		"flag_items":               {tn.project.ID.String() + "/production/flag/dark-mode"},
		"flag_changes":             {tn.project.ID.String() + "/production/1"},
		"deployment_logs":          {tn.deployment.ID.String()},
		"deployment_log_steps":     {tn.deployment.ID.String() + "/build"},
		"log_chunks":               {tn.deployment.ID.String() + "/1"},
		"log_secrets":              {tn.secret.ID.String()},
		"project_log_settings":     {tn.project.ID.String()},
		"sdk_keys":                 {tn.sdkKey.ID.String()},
		"artifacts":                {tn.artifact.ID.String()},
		"canvas_activity":          {tn.canvas.ID.String() + "/n1"},
	}
}

func createUser(t *testing.T, s domain.Store, name string) *domain.User {
	t.Helper()
	u := &domain.User{ID: newID(), Email: fmt.Sprintf("%s-%s@example.com", name, uuid.NewString()[:8]),
		PasswordHash: "x", DisplayName: name, CreatedAt: now, UpdatedAt: now}
	require.NoError(t, s.InTx(ctx, u.ID, func(tx domain.Tx) error { return tx.CreateUser(ctx, u) }))
	return u
}

func seedTenant(t *testing.T, s domain.Store, name string) *tenant {
	t.Helper()
	tn := &tenant{user: createUser(t, s, name), guest: createUser(t, s, name+"-guest")}
	u := tn.user.ID
	tn.ws = &domain.Workspace{ID: newID(), Name: name, CreatedBy: u, CreatedAt: now, UpdatedAt: now}
	tn.project = &domain.Project{ID: newID(), WorkspaceID: tn.ws.ID, Name: name, CreatedBy: u, CreatedAt: now, UpdatedAt: now}
	tn.wsEvent = &domain.AuditEvent{ID: newID(), Time: now, ActorID: u, Action: "workspace.create", WorkspaceID: tn.ws.ID, Result: domain.ResultSuccess}
	tn.ownEvent = &domain.AuditEvent{ID: newID(), Time: now, ActorID: u, Action: "user.update", Result: domain.ResultSuccess}
	tn.projEvent = &domain.AuditEvent{ID: newID(), Time: now, ActorID: u, Action: "project.create", WorkspaceID: tn.ws.ID, ProjectID: tn.project.ID, Result: domain.ResultSuccess}
	require.NoError(t, s.InTx(ctx, u, func(tx domain.Tx) error {
		return errors.Join(
			tx.CreateWorkspace(ctx, tn.ws),
			tx.PutWorkspaceMember(ctx, tn.ws.ID, u, domain.RoleOwner, now),
			tx.CreateProject(ctx, tn.project),
			tx.PutProjectMember(ctx, tn.project.ID, u, domain.RoleOwner, now),
			tx.PutProjectMember(ctx, tn.project.ID, tn.guest.ID, domain.RoleViewer, now),
			tx.AppendAudit(ctx, tn.wsEvent),
			tx.AppendAudit(ctx, tn.ownEvent),
			tx.AppendAudit(ctx, tn.projEvent),
		)
	}))
	tn.canvas = &domain.Canvas{ID: newID(), ProjectID: tn.project.ID, Name: name, CreatedBy: u, CreatedAt: now, UpdatedAt: now}
	tn.snapshots = []*domain.CanvasSnapshot{
		{ID: newID(), CanvasID: tn.canvas.ID, Version: domain.CanvasVersion{1: 1}, Data: []byte("periodic"), CreatedBy: u, CreatedAt: now},
		{ID: newID(), CanvasID: tn.canvas.ID, Name: "named", Version: domain.CanvasVersion{1: 1, 2: 1}, Data: []byte("named"), CreatedBy: u, CreatedAt: now},
	}
	require.NoError(t, s.InTx(ctx, u, func(tx domain.Tx) error {
		return errors.Join(
			tx.CreateCanvas(ctx, tn.canvas),
			tx.ClaimCanvasReplica(ctx, tn.canvas.ID, 1, u),
			tx.ClaimCanvasReplica(ctx, tn.canvas.ID, 2, tn.guest.ID),
			tx.AppendCanvasUpdates(ctx, []*domain.CanvasUpdate{
				{CanvasID: tn.canvas.ID, Replica: 1, First: 1, Last: 1, Data: []byte{1}, ActorID: u, At: now},
				{CanvasID: tn.canvas.ID, Replica: 2, First: 1, Last: 1, Data: []byte{2}, ActorID: tn.guest.ID, At: now},
			}),
			tx.PutCanvasSnapshot(ctx, tn.snapshots[0]),
			tx.PutCanvasSnapshot(ctx, tn.snapshots[1]),
		)
	}))
	tn.note = &domain.Notification{ID: newID(), UserID: u, Type: "canvas.mention", ActorID: tn.guest.ID, Count: 1,
		Data: []byte(`{}`), CreatedAt: now, UpdatedAt: now}
	require.NoError(t, s.InTx(ctx, tn.guest.ID, func(tx domain.Tx) error {
		return tx.InsertNotifications(ctx, []*domain.Notification{tn.note})
	}))
	require.NoError(t, s.InTx(ctx, u, func(tx domain.Tx) error {
		return tx.PutNotificationPreference(ctx, u, "canvas.mention", false, now)
	}))
	require.NoError(t, s.InTx(ctx, uuid.Nil, func(tx domain.Tx) error {
		return tx.RecordCanvasActivity(ctx, "n1", now, []domain.CanvasActivity{{CanvasID: tn.canvas.ID, Viewers: 2, Editors: []uuid.UUID{u}}})
	}))
	hash := sha256.Sum256([]byte("token of " + name))
	tn.token = &domain.DeployToken{ID: newID(), ProjectID: tn.project.ID, WorkspaceID: tn.ws.ID, Name: name,
		Hash: hash[:], CreatedBy: u, CreatedAt: now}
	tn.deployment = &domain.Deployment{ID: newID(), ProjectID: tn.project.ID, Environment: "production", TriggeredBy: u,
		TriggerKind: domain.TriggerUser, State: domain.DeployQueued, CreatedAt: now, UpdatedAt: now}
	require.NoError(t, s.InTx(ctx, u, func(tx domain.Tx) error {
		return errors.Join(
			tx.CreateDeployToken(ctx, tn.token),
			tx.CreateDeployment(ctx, tn.deployment),
			tx.PutDeployStep(ctx, &domain.DeployStep{DeploymentID: tn.deployment.ID, Name: "build", State: domain.StepRunning}),
		)
	}))
	keyHash := sha256.Sum256([]byte("sdk key of " + name))
	tn.sdkKey = &domain.SDKKey{ID: newID(), ProjectID: tn.project.ID, Environment: "production", Name: name,
		Hash: keyHash[:], CreatedBy: u, CreatedAt: now}
	require.NoError(t, s.InTx(ctx, u, func(tx domain.Tx) error {
		v, err := tx.NextFlagVersion(ctx, tn.project.ID, "production")
		require.NoError(t, err)
		return errors.Join(
			tx.PutFlagItem(ctx, &domain.FlagItem{ProjectID: tn.project.ID, Environment: "production", Kind: domain.FlagKindFlag,
				Key: "dark-mode", Data: []byte(`{"key": "dark-mode"}`), Version: v, UpdatedBy: u, UpdatedAt: now}),
			tx.AppendFlagChange(ctx, &domain.FlagChange{ProjectID: tn.project.ID, Environment: "production", Version: v,
				Kind: domain.FlagKindFlag, Key: "dark-mode", Data: []byte(`{"key": "dark-mode"}`), ActorID: u, At: now}),
			tx.CreateSDKKey(ctx, tn.sdkKey),
		)
	}))
	tn.secret = &domain.LogSecret{ID: newID(), ProjectID: tn.project.ID, Name: "pw", Value: "secret of " + name, CreatedBy: u, CreatedAt: now}
	require.NoError(t, s.InTx(ctx, u, func(tx domain.Tx) error {
		return errors.Join(tx.CreateLogSecret(ctx, tn.secret), tx.PutLogRetention(ctx, tn.project.ID, 7, now))
	}))
	require.NoError(t, s.InTx(ctx, tn.token.ID, func(tx domain.Tx) error {
		st, err := tx.LockLogState(ctx, tn.deployment.ID)
		if err != nil {
			return err
		}
		st.NextSeq, st.Lines, st.Bytes = 2, 1, 5
		return tx.AppendLogChunk(ctx, &domain.LogChunk{DeploymentID: tn.deployment.ID, FirstSeq: 1, LastSeq: 1, Step: "build",
			FirstLine: 1, LastLine: 1, Lines: []string{"hello"}, Bytes: 5, CreatedAt: now}, st)
	}))
	digest := sha256.Sum256([]byte("bundle of " + name))
	tn.artifact = &domain.Artifact{ID: newID(), ProjectID: tn.project.ID, DeploymentID: tn.deployment.ID, Name: "dist.tar.gz",
		Size: 9, Digest: hex.EncodeToString(digest[:]), ContentType: "application/gzip", CreatedBy: tn.token.ID, CreatedAt: now}
	// Written by the project's runner, acting as its deploy token.
	require.NoError(t, s.InTx(ctx, tn.token.ID, func(tx domain.Tx) error { return tx.CreateArtifact(ctx, tn.artifact) }))
	return tn
}

// rlsDB is a database with two tenants, a and b.
type rlsDB struct {
	app, owner *pgxpool.Pool
	a, b       *tenant
}

func newRLSDB(t *testing.T) *rlsDB {
	t.Helper()
	db := pgtest.NewDB(t)
	r := &rlsDB{app: db.AppPool(t), owner: db.OwnerPool(t)}
	s := postgres.New(r.app)
	r.a, r.b = seedTenant(t, s, "a"), seedTenant(t, s, "b")
	return r
}

// asUser runs fn in a transaction of pool with tone.user_id set to user
// ("" leaves it unset), and rolls it back.
func asUser(t *testing.T, pool *pgxpool.Pool, user string, fn func(tx pgx.Tx)) {
	t.Helper()
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx)
	if user != "" {
		_, err = tx.Exec(ctx, `SELECT set_config('tone.user_id', $1, true)`, user)
		require.NoError(t, err)
	}
	fn(tx)
}

func keys(t *testing.T, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, table, key string) []string {
	t.Helper()
	rows, err := q.Query(ctx, fmt.Sprintf(`SELECT %s FROM %s`, key, table))
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	slices.Sort(out)
	return out
}

// sqlState runs sql in a savepoint of tx and returns the SQLSTATE it fails
// with ("" if it succeeds) and the rows it affected.
func sqlState(t *testing.T, tx pgx.Tx, sql string, args ...any) (string, int64) {
	t.Helper()
	sp, err := tx.Begin(ctx)
	require.NoError(t, err)
	defer sp.Rollback(ctx)
	tag, err := sp.Exec(ctx, sql, args...)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code, 0
	}
	require.NoError(t, err)
	return "", tag.RowsAffected()
}

const insufficientPrivilege = "42501" // also "new row violates row-level security policy"

func TestRLSWithoutSettingNoTenantRows(t *testing.T) {
	r := newRLSDB(t)
	for _, tt := range tenantTables {
		require.NotEmpty(t, keys(t, r.owner, tt.name, tt.key), "%s: the owner sees the rows", tt.name)
		assert.Empty(t, keys(t, r.app, tt.name, tt.key), "%s: outside a transaction", tt.name)
		asUser(t, r.app, "", func(tx pgx.Tx) {
			assert.Empty(t, keys(t, tx, tt.name, tt.key), "%s: transaction without the setting", tt.name)
		})
		asUser(t, r.app, "", func(tx pgx.Tx) {
			_, err := tx.Exec(ctx, `SELECT set_config('tone.user_id', '', true)`)
			require.NoError(t, err)
			assert.Empty(t, keys(t, tx, tt.name, tt.key), "%s: empty setting", tt.name)
		})
	}
	// The store's anonymous transactions are the same.
	err := postgres.New(r.app).InTx(ctx, uuid.Nil, func(tx domain.Tx) error {
		_, err := tx.WorkspaceByID(ctx, r.a.ws.ID)
		assert.Equal(t, domain.ENotFound, domain.ErrorCode(err))
		evs, err := tx.ListAudit(ctx, domain.AuditFilter{}, domain.Page{})
		assert.NoError(t, err)
		assert.Empty(t, evs)
		return nil
	})
	require.NoError(t, err)
	// Nor can anything be written without it.
	asUser(t, r.app, "", func(tx pgx.Tx) {
		code, _ := sqlState(t, tx, `INSERT INTO workspaces (id, name, created_by, created_at, updated_at) VALUES ($1, 'x', $2, now(), now())`,
			newID(), r.a.user.ID)
		assert.Equal(t, insufficientPrivilege, code)
		_, n := sqlState(t, tx, `UPDATE workspaces SET name = 'x'`)
		assert.Zero(t, n)
		_, n = sqlState(t, tx, `DELETE FROM workspace_members`)
		assert.Zero(t, n)
	})
}

func TestRLSSettingIsTransactionLocal(t *testing.T) {
	r := newRLSDB(t)
	conn, err := r.app.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()

	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `SELECT set_config('tone.user_id', $1, true)`, r.a.user.ID.String())
	require.NoError(t, err)
	assert.Equal(t, []string{r.a.ws.ID.String()}, keys(t, tx, "workspaces", "id::text"))
	require.NoError(t, tx.Commit(ctx))
	assert.Empty(t, keys(t, conn, "workspaces", "id::text"), "the setting ends with its transaction")

	// Likewise after the store's transaction, on the same connection.
	one := pgtest.NewDB(t)
	cfg, err := pgxpool.ParseConfig(one.AppURL)
	require.NoError(t, err)
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	defer pool.Close()
	s := postgres.New(pool)
	tn := seedTenant(t, s, "solo")
	assert.Empty(t, keys(t, pool, "workspaces", "id::text"))
	require.NoError(t, s.InTx(ctx, tn.user.ID, func(tx domain.Tx) error {
		_, err := tx.WorkspaceByID(ctx, tn.ws.ID)
		return err
	}))
	assert.Empty(t, keys(t, pool, "workspaces", "id::text"))
}

func TestRLSTenantIsolation(t *testing.T) {
	r := newRLSDB(t)
	for _, me := range []*tenant{r.a, r.b} {
		want := me.rows()
		asUser(t, r.app, me.user.ID.String(), func(tx pgx.Tx) {
			for _, tt := range tenantTables {
				exp := slices.Clone(want[tt.name])
				slices.Sort(exp)
				assert.Equal(t, exp, keys(t, tx, tt.name, tt.key), "%s as %s: a hand-written SELECT sees only the user's rows", tt.name, me.user.DisplayName)
			}
		})
	}

	a, b := r.a, r.b
	asUser(t, r.app, a.user.ID.String(), func(tx pgx.Tx) {
		// Changing or deleting b's rows touches nothing.
		for _, q := range []string{
			`UPDATE workspaces SET name = 'pwned' WHERE id = $1`,
			`DELETE FROM workspaces WHERE id = $1`,
			`UPDATE workspace_members SET role = 'viewer' WHERE workspace_id = $1`,
			`DELETE FROM workspace_members WHERE workspace_id = $1`,
			`UPDATE projects SET name = 'pwned' WHERE workspace_id = $1`,
			`DELETE FROM projects WHERE workspace_id = $1`,
			`DELETE FROM project_members WHERE project_id IN (SELECT id FROM projects WHERE workspace_id = $1)`,
		} {
			code, n := sqlState(t, tx, q, b.ws.ID)
			assert.Empty(t, code, q)
			assert.Zero(t, n, q)
		}
		code, n := sqlState(t, tx, `DELETE FROM project_members WHERE project_id = $1`, b.project.ID)
		assert.Empty(t, code)
		assert.Zero(t, n)
		for _, q := range []string{
			`UPDATE notifications SET read_at = now() WHERE user_id = $1`,
			`UPDATE notification_preferences SET enabled = true WHERE user_id = $1`,
			`DELETE FROM notification_preferences WHERE user_id = $1`,
		} {
			code, n := sqlState(t, tx, q, b.user.ID)
			assert.Empty(t, code, q)
			assert.Zero(t, n, q)
		}
		for _, q := range []string{
			`UPDATE canvases SET name = 'pwned' WHERE id = $1`,
			`DELETE FROM canvases WHERE id = $1`,
			`DELETE FROM canvas_updates WHERE canvas_id = $1`,
		} {
			code, n := sqlState(t, tx, q, b.canvas.ID)
			assert.Empty(t, code, q)
			assert.Zero(t, n, q)
		}

		// Writing into b's tenancy is refused.
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{`INSERT INTO workspace_members VALUES ($1, $2, 'owner', now(), now())`, []any{b.ws.ID, a.user.ID}},
			{`INSERT INTO projects (id, workspace_id, name, created_by, created_at, updated_at) VALUES ($1, $2, 'x', $3, now(), now())`, []any{newID(), b.ws.ID, a.user.ID}},
			{`INSERT INTO project_members VALUES ($1, $2, 'owner', now(), now())`, []any{b.project.ID, a.user.ID}},
			{`INSERT INTO workspaces (id, name, created_by, created_at, updated_at) VALUES ($1, 'x', $2, now(), now())`, []any{newID(), b.user.ID}},
			{`INSERT INTO audit_events (id, time, actor_id, action, result) VALUES ($1, now(), $2, 'x', 'success')`, []any{newID(), b.user.ID}},
			{`INSERT INTO audit_events (id, time, action, result) VALUES ($1, now(), 'x', 'success')`, []any{newID()}},
			// Moving a's own project into b's workspace is not allowed
			// either (no UPDATE privilege on workspace_id).
			{`UPDATE projects SET workspace_id = $1 WHERE id = $2`, []any{b.ws.ID, a.project.ID}},
			{`INSERT INTO canvases VALUES ($1, $2, 'x', $3, now(), now())`, []any{newID(), b.project.ID, a.user.ID}},
			{`INSERT INTO canvas_replicas VALUES ($1, 9, $2)`, []any{b.canvas.ID, a.user.ID}},
			{`INSERT INTO canvas_updates (canvas_id, replica, first_seq, last_seq, data, actor_id, at) VALUES ($1, 1, 9, 9, 'x', $2, now())`, []any{b.canvas.ID, b.user.ID}},
			{`INSERT INTO canvas_snapshots (id, canvas_id, version_replicas, version_seqs, data, created_by, created_at) VALUES ($1, $2, '{}', '{}', 'x', $3, now())`, []any{newID(), b.canvas.ID, a.user.ID}},
			{`UPDATE canvases SET project_id = $1 WHERE id = $2`, []any{b.project.ID, a.canvas.ID}},
			{`INSERT INTO notification_preferences VALUES ($1, 'x', true, now())`, []any{b.user.ID}},
			{`INSERT INTO canvas_activity VALUES (now(), 'n', $1, $2, 1, '{}')`, []any{a.canvas.ID, a.project.ID}},
			// a's own notification cannot be handed to b, nor its content changed.
			{`UPDATE notifications SET user_id = $1 WHERE id = $2`, []any{b.user.ID, a.note.ID}},
			{`UPDATE notifications SET data = '{"x":1}' WHERE id = $1`, []any{a.note.ID}},
			{`DELETE FROM notifications WHERE id = $1`, []any{a.note.ID}},
			{`INSERT INTO deploy_tokens (id, project_id, workspace_id, name, hash, created_by, created_at) VALUES ($1, $2, $3, 'x', $4, $5, now())`,
				[]any{newID(), b.project.ID, b.ws.ID, make([]byte, 32), a.user.ID}},
			{`INSERT INTO deployments (id, project_id, environment, triggered_by, trigger_kind, state, created_at, updated_at) VALUES ($1, $2, 'x', $3, 'user', 'queued', now(), now())`,
				[]any{newID(), b.project.ID, a.user.ID}},
			{`INSERT INTO deployment_steps (deployment_id, name, position, state) VALUES ($1, 'x', 9, 'running')`, []any{b.deployment.ID}},
			{`UPDATE deployments SET project_id = $1 WHERE id = $2`, []any{b.project.ID, a.deployment.ID}},
			{`DELETE FROM deployments WHERE id = $1`, []any{a.deployment.ID}},
		} {
			code, _ := sqlState(t, tx, q.sql, q.args...)
			assert.Equal(t, insufficientPrivilege, code, q.sql)
		}
	})
	// b's rows are intact.
	for _, tt := range tenantTables {
		got := keys(t, r.owner, tt.name, tt.key)
		for _, k := range b.rows()[tt.name] {
			assert.Contains(t, got, k)
		}
	}
	var name string
	require.NoError(t, r.owner.QueryRow(ctx, `SELECT name FROM workspaces WHERE id = $1`, b.ws.ID).Scan(&name))
	assert.Equal(t, "b", name)
}

func TestRLSUnclaimedWorkspace(t *testing.T) {
	r := newRLSDB(t)
	a, b := r.a, r.b
	fresh := newID()
	asUser(t, r.app, b.user.ID.String(), func(tx pgx.Tx) {
		_, err := tx.Exec(ctx, `INSERT INTO workspaces VALUES ($1, 'fresh', $2, now(), now())`, fresh, b.user.ID)
		require.NoError(t, err)
		assert.Contains(t, keys(t, tx, "workspaces", "id::text"), fresh.String(), "its creator sees a workspace with no members")
		// The creator may make only themselves its owner.
		code, _ := sqlState(t, tx, `INSERT INTO workspace_members VALUES ($1, $2, 'owner', now(), now())`, fresh, a.user.ID)
		assert.Equal(t, insufficientPrivilege, code, "someone else as first member")
		code, _ = sqlState(t, tx, `INSERT INTO workspace_members VALUES ($1, $2, 'viewer', now(), now())`, fresh, b.user.ID)
		assert.Equal(t, insufficientPrivilege, code, "first member not an owner")
		_, err = tx.Exec(ctx, `INSERT INTO workspace_members VALUES ($1, $2, 'owner', now(), now())`, fresh, b.user.ID)
		require.NoError(t, err)
		require.NoError(t, tx.Commit(ctx))
	})
	_, err := r.owner.Exec(ctx, `INSERT INTO workspaces VALUES ($1, 'orphan', $2, now(), now())`, newID(), b.user.ID)
	require.NoError(t, err)
	asUser(t, r.app, a.user.ID.String(), func(tx pgx.Tx) {
		assert.Equal(t, []string{a.ws.ID.String()}, keys(t, tx, "workspaces", "id::text"),
			"another user's workspaces, with or without members, stay invisible")
		code, _ := sqlState(t, tx, `INSERT INTO workspace_members VALUES ($1, $2, 'owner', now(), now())`, fresh, a.user.ID)
		assert.Equal(t, insufficientPrivilege, code, "claiming someone else's workspace")
	})
}

func TestRLSProjectOnlyMember(t *testing.T) {
	r := newRLSDB(t)
	a := r.a
	// A second project in a's workspace that the guest is not part of.
	other := &domain.Project{ID: newID(), WorkspaceID: a.ws.ID, Name: "other", CreatedBy: a.user.ID, CreatedAt: now, UpdatedAt: now}
	otherCanvas := &domain.Canvas{ID: newID(), ProjectID: other.ID, Name: "other", CreatedBy: a.user.ID, CreatedAt: now, UpdatedAt: now}
	require.NoError(t, postgres.New(r.app).InTx(ctx, a.user.ID, func(tx domain.Tx) error {
		return errors.Join(tx.CreateProject(ctx, other), tx.CreateCanvas(ctx, otherCanvas), tx.ClaimCanvasReplica(ctx, otherCanvas.ID, 1, a.user.ID))
	}))

	asUser(t, r.app, a.guest.ID.String(), func(tx pgx.Tx) {
		assert.Empty(t, keys(t, tx, "workspaces", "id::text"))
		assert.Empty(t, keys(t, tx, "workspace_members", "user_id::text"))
		assert.Equal(t, []string{a.project.ID.String()}, keys(t, tx, "projects", "id::text"))
		assert.Len(t, keys(t, tx, "project_members", "user_id::text"), 2, "the project's members")
		assert.Equal(t, []string{a.projEvent.ID.String()}, keys(t, tx, "audit_events", "id::text"))
		code, _ := sqlState(t, tx, `INSERT INTO projects (id, workspace_id, name, created_by, created_at, updated_at) VALUES ($1, $2, 'x', $3, now(), now())`,
			newID(), a.ws.ID, a.guest.ID)
		assert.Equal(t, insufficientPrivilege, code, "project-only members cannot create projects in the workspace")
		for _, tt := range tenantTables {
			if !strings.HasPrefix(tt.name, "canvas") {
				continue
			}
			exp := slices.Clone(a.rows()[tt.name])
			slices.Sort(exp)
			assert.Equal(t, exp, keys(t, tx, tt.name, tt.key), "%s: the project's canvases, not the other project's", tt.name)
		}
	})
}

func TestRLSAuditAppendOnly(t *testing.T) {
	r := newRLSDB(t)
	asUser(t, r.app, r.a.user.ID.String(), func(tx pgx.Tx) {
		for _, q := range []string{
			`UPDATE audit_events SET action = 'forged'`,
			`UPDATE audit_events SET action = 'forged' WHERE id = '` + r.a.wsEvent.ID.String() + `'`,
			`DELETE FROM audit_events`,
			`DELETE FROM audit_events WHERE id = '` + r.a.ownEvent.ID.String() + `'`,
			`TRUNCATE audit_events`,
		} {
			code, _ := sqlState(t, tx, q)
			assert.Equal(t, insufficientPrivilege, code, q)
		}
	})
	var n int
	require.NoError(t, r.owner.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE action <> 'forged'`).Scan(&n))
	assert.Equal(t, 6, n)
	for _, priv := range []string{"UPDATE", "DELETE", "TRUNCATE"} {
		var has bool
		require.NoError(t, r.owner.QueryRow(ctx, `SELECT has_table_privilege('tone_app', 'audit_events', $1)`, priv).Scan(&has))
		assert.False(t, has, priv)
	}
	// Nor can it move a chain's head, or append an event that does not
	// extend it.
	for _, priv := range []string{"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE"} {
		var has bool
		require.NoError(t, r.owner.QueryRow(ctx, `SELECT has_table_privilege('tone_app', 'audit_heads', $1)`, priv).Scan(&has))
		assert.False(t, has, "audit_heads %s", priv)
	}
	asUser(t, r.app, r.a.user.ID.String(), func(tx pgx.Tx) {
		code, _ := sqlState(t, tx, `UPDATE audit_heads SET seq = 0`)
		assert.Equal(t, insufficientPrivilege, code)
		code, _ = sqlState(t, tx, `INSERT INTO audit_events (id, time, actor_id, action, result, chain, seq, prev_hash, hash)
			VALUES ($1, now(), $2, 'x', 'success', $2, 99, '\x', '\x00')`, newID(), r.a.user.ID)
		assert.Equal(t, "P0001", code, "an event that does not follow the head")
	})
}

func TestRLSAuditInsert(t *testing.T) {
	r := newRLSDB(t)
	s := postgres.New(r.app)
	a, b := r.a, r.b
	ev := func(actor, ws uuid.UUID) *domain.AuditEvent {
		return &domain.AuditEvent{ID: newID(), Time: now, ActorID: actor, WorkspaceID: ws, Action: "x", Result: domain.ResultSuccess}
	}
	for _, test := range []struct {
		name  string
		actor uuid.UUID // the transaction's
		e     *domain.AuditEvent
		ok    bool
	}{
		{"own event", a.user.ID, ev(a.user.ID, uuid.Nil), true},
		{"own event in own workspace", a.user.ID, ev(a.user.ID, a.ws.ID), true},
		{"own event about a workspace one is not in (a failed attempt)", a.user.ID, ev(a.user.ID, b.ws.ID), true},
		{"someone else's event", a.user.ID, ev(b.user.ID, uuid.Nil), false},
		{"anonymous event from a signed-in transaction", a.user.ID, ev(uuid.Nil, uuid.Nil), false},
		{"anonymous event", uuid.Nil, ev(uuid.Nil, uuid.Nil), false},
		{"anonymous transaction recording a user's logout", uuid.Nil, ev(b.user.ID, uuid.Nil), false},
		{"anonymous transaction writing into a workspace", uuid.Nil, ev(b.user.ID, b.ws.ID), false},
		{"anonymous transaction writing into a project", uuid.Nil, &domain.AuditEvent{ID: newID(), Time: now, Action: "x", ProjectID: b.project.ID, Result: domain.ResultSuccess}, false},
	} {
		err := s.InTx(ctx, test.actor, func(tx domain.Tx) error { return tx.AppendAudit(ctx, test.e) })
		if test.ok {
			assert.NoError(t, err, test.name)
		} else {
			var pgErr *pgconn.PgError
			if assert.ErrorAs(t, err, &pgErr, test.name) {
				assert.Equal(t, insufficientPrivilege, pgErr.Code, test.name)
			}
			assert.Equal(t, domain.EInternal, domain.ErrorCode(err), "a refused write is a bug, so internal: %s", test.name)
		}
	}
}

// TestRLSCanvasLogImmutable checks that the application role can neither
// change claims, op log entries and snapshots nor delete claims and
// snapshots, even its own: only compaction deletes entries, and deleting
// the canvas everything.
func TestRLSCanvasLogImmutable(t *testing.T) {
	r := newRLSDB(t)
	a := r.a
	asUser(t, r.app, a.user.ID.String(), func(tx pgx.Tx) {
		for _, q := range []string{
			`UPDATE canvas_replicas SET user_id = '` + a.guest.ID.String() + `'`,
			`DELETE FROM canvas_replicas`,
			`UPDATE canvas_updates SET data = 'forged'`,
			`UPDATE canvas_updates SET actor_id = '` + a.guest.ID.String() + `' WHERE replica = 1`,
			`UPDATE canvas_snapshots SET data = 'forged'`,
			`DELETE FROM canvas_snapshots`,
			`TRUNCATE canvas_updates`,
		} {
			code, _ := sqlState(t, tx, q)
			assert.Equal(t, insufficientPrivilege, code, q)
		}
		// Entries must name the user their replica is claimed by.
		code, _ := sqlState(t, tx, `INSERT INTO canvas_updates (canvas_id, replica, first_seq, last_seq, data, actor_id, at) VALUES ($1, 2, 5, 5, 'x', $2, now())`,
			a.canvas.ID, a.user.ID)
		assert.Equal(t, "23503", code, "replica 2 is the guest's") // foreign_key_violation
		code, _ = sqlState(t, tx, `INSERT INTO canvas_updates (canvas_id, replica, first_seq, last_seq, data, actor_id, at) VALUES ($1, 1, 5, 4, 'x', $2, now())`,
			a.canvas.ID, a.user.ID)
		assert.Equal(t, "23514", code, "last before first") // check_violation
		code, n := sqlState(t, tx, `DELETE FROM canvas_updates WHERE canvas_id = $1`, a.canvas.ID)
		assert.Empty(t, code)
		assert.Equal(t, int64(2), n, "compaction may delete the canvas's entries")
		code, n = sqlState(t, tx, `DELETE FROM canvases WHERE id = $1`, a.canvas.ID)
		assert.Empty(t, code)
		assert.Equal(t, int64(1), n)
	})
	for table, privs := range map[string][]string{
		"canvas_replicas":  {"UPDATE", "DELETE", "TRUNCATE"},
		"canvas_updates":   {"UPDATE", "TRUNCATE"},
		"canvas_snapshots": {"UPDATE", "DELETE", "TRUNCATE"},
		"canvases":         {"TRUNCATE"},
	} {
		for _, priv := range privs {
			var has bool
			require.NoError(t, r.owner.QueryRow(ctx, `SELECT has_table_privilege('tone_app', $1, $2)`, table, priv).Scan(&has))
			assert.False(t, has, "%s %s", priv, table)
		}
	}
	var moves bool
	require.NoError(t, r.owner.QueryRow(ctx, `SELECT has_column_privilege('tone_app', 'canvases', 'project_id', 'UPDATE')`).Scan(&moves))
	assert.False(t, moves, "a canvas never moves to another project")
}

// TestRLSRunner acts as a's deploy token: it sees and changes the
// deployments, steps and artifacts of a's project and its own token, and
// nothing else.
func TestRLSRunner(t *testing.T) {
	r := newRLSDB(t)
	a, b := r.a, r.b
	asUser(t, r.app, a.token.ID.String(), func(tx pgx.Tx) {
		rows := a.rows()
		for _, tt := range tenantTables {
			want := []string{}
			if strings.HasPrefix(tt.name, "deploy") || strings.HasPrefix(tt.name, "log_") || tt.name == "project_log_settings" ||
				tt.name == "artifacts" {
				want = rows[tt.name]
			}
			assert.Equal(t, want, append([]string{}, keys(t, tx, tt.name, tt.key)...), "%s as a's runner", tt.name)
		}
		code, n := sqlState(t, tx, `UPDATE deployments SET state = 'building' WHERE id = $1`, a.deployment.ID)
		assert.Empty(t, code)
		assert.Equal(t, int64(1), n)
		code, n = sqlState(t, tx, `UPDATE deployments SET state = 'building' WHERE id = $1`, b.deployment.ID)
		assert.Empty(t, code)
		assert.Zero(t, n, "b's deployment is invisible")
		code, _ = sqlState(t, tx, `INSERT INTO deployments (id, project_id, environment, triggered_by, trigger_kind, state, created_at, updated_at) VALUES ($1, $2, 'x', $3, 'token', 'queued', now(), now())`,
			newID(), b.project.ID, a.token.ID)
		assert.Equal(t, insufficientPrivilege, code, "a runner cannot queue into another project")
		code, _ = sqlState(t, tx, `INSERT INTO deployment_steps (deployment_id, name, position, state) VALUES ($1, 'x', 9, 'running')`, b.deployment.ID)
		assert.Equal(t, insufficientPrivilege, code)
		code, _ = sqlState(t, tx, `INSERT INTO artifacts (id, project_id, deployment_id, name, size, digest, content_type, created_by, created_at) VALUES ($1, $2, $3, 'x', 1, $4, 'text/plain', $5, now())`,
			newID(), b.project.ID, b.deployment.ID, a.artifact.Digest, a.token.ID)
		assert.Equal(t, insufficientPrivilege, code, "a runner cannot add artifacts to another project")
		code, n = sqlState(t, tx, `DELETE FROM artifacts WHERE id = $1`, b.artifact.ID)
		assert.Empty(t, code)
		assert.Zero(t, n, "b's artifact is invisible")
		code, n = sqlState(t, tx, `UPDATE deploy_tokens SET revoked_at = now()`)
		assert.Empty(t, code)
		assert.Zero(t, n, "a runner cannot revoke tokens, not even its own")
	})
	// The lookup by hash sees every token, as nobody.
	asUser(t, r.app, "", func(tx pgx.Tx) {
		var id uuid.UUID
		require.NoError(t, tx.QueryRow(ctx, `SELECT id FROM public.tone_deploy_token_by_hash($1)`, b.token.Hash).Scan(&id))
		assert.Equal(t, b.token.ID, id)
		assert.Empty(t, keys(t, tx, "deploy_tokens", "id::text"))
	})
}

func TestRLSBadSettingFails(t *testing.T) {
	r := newRLSDB(t)
	asUser(t, r.app, "not-a-uuid", func(tx pgx.Tx) {
		_, err := tx.Exec(ctx, `SELECT count(*) FROM workspaces`)
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr)
		assert.Equal(t, "22P02", pgErr.Code) // invalid_text_representation
	})
}

func TestAppRole(t *testing.T) {
	r := newRLSDB(t)
	var user string
	require.NoError(t, r.app.QueryRow(ctx, `SELECT current_user`).Scan(&user))
	assert.Equal(t, "tone_app", user)

	var super, bypass, inherit bool
	require.NoError(t, r.owner.QueryRow(ctx,
		`SELECT rolsuper, rolbypassrls, rolinherit FROM pg_roles WHERE rolname = 'tone_app'`).Scan(&super, &bypass, &inherit))
	assert.False(t, super, "tone_app is not a superuser")
	assert.False(t, bypass, "tone_app has no BYPASSRLS")

	var owned int
	require.NoError(t, r.owner.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM pg_tables WHERE tableowner = 'tone_app')
		     + (SELECT count(*) FROM pg_class WHERE relowner = 'tone_app'::regrole)
		     + (SELECT count(*) FROM pg_proc WHERE proowner = 'tone_app'::regrole)
		     + (SELECT count(*) FROM pg_namespace WHERE nspowner = 'tone_app'::regrole)`).Scan(&owned))
	assert.Zero(t, owned, "tone_app owns nothing")

	var memberOfPowerful bool
	require.NoError(t, r.owner.QueryRow(ctx, `
		SELECT EXISTS (SELECT FROM pg_roles p WHERE (p.rolsuper OR p.rolbypassrls) AND p.rolname <> 'tone_app'
		               AND pg_has_role('tone_app', p.oid, 'MEMBER'))`).Scan(&memberOfPowerful))
	assert.False(t, memberOfPowerful, "tone_app cannot become a superuser or BYPASSRLS role")

	enforced, err := postgres.RowSecurityEnforced(ctx, r.app)
	require.NoError(t, err)
	assert.True(t, enforced)
	enforced, err = postgres.RowSecurityEnforced(ctx, r.owner)
	require.NoError(t, err)
	assert.False(t, enforced, "the migrating role bypasses row-level security")

	rows, err := r.owner.Query(ctx, `
		SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class
		WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' AND relname <> 'goose_db_version'`)
	require.NoError(t, err)
	type rls struct{ enabled, forced bool }
	got := map[string]rls{}
	for rows.Next() {
		var name string
		var r rls
		require.NoError(t, rows.Scan(&name, &r.enabled, &r.forced))
		got[name] = r
	}
	require.NoError(t, rows.Err())
	for _, tt := range tenantTables {
		assert.Equal(t, rls{true, true}, got[tt.name], "%s has ENABLE and FORCE row-level security", tt.name)
		delete(got, tt.name)
	}
	assert.Equal(t, map[string]rls{"users": {}, "refresh_tokens": {}, "outbox": {}, "audit_heads": {true, true}}, got,
		"only the account tables, which login needs before anyone is known, and the outbox, which the relay reads as nobody, are outside row-level security; audit_heads is under it with no policy at all")

	// Every SECURITY DEFINER function pins its search_path.
	var unpinned []string
	rows, err = r.owner.Query(ctx, `
		SELECT proname FROM pg_proc
		WHERE pronamespace = 'public'::regnamespace AND prosecdef
		  AND NOT coalesce('search_path=""' = ANY (proconfig), false)`)
	require.NoError(t, err)
	unpinned, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	assert.Empty(t, unpinned)
	var definers int
	require.NoError(t, r.owner.QueryRow(ctx, `SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace AND prosecdef`).Scan(&definers))
	assert.Positive(t, definers)
}
