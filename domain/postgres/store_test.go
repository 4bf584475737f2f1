package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain"
	"github.com/tone-ai/tone/domain/postgres"
	"github.com/tone-ai/tone/domain/postgres/pgtest"
)

// These tests cover what the contract suite cannot see: how the adapter
// behaves under row-level security and PostgreSQL's transaction rules.

func codeOf(t *testing.T, want string, err error, msg ...any) {
	t.Helper()
	require.Error(t, err, msg...)
	assert.Equal(t, want, domain.ErrorCode(err), "error: %v %v", err, msg)
}

func TestConflictKeepsTransactionUsable(t *testing.T) {
	s := postgres.New(pgtest.New(t))
	u := createUser(t, s, "ann")
	v := createUser(t, s, "bob")
	dup := *u
	dup.ID = newID()
	fresh := &domain.User{ID: newID(), Email: "fresh@example.com", PasswordHash: "x", DisplayName: "f", CreatedAt: now, UpdatedAt: now}
	w := &domain.Workspace{ID: newID(), Name: "w", CreatedBy: u.ID, CreatedAt: now, UpdatedAt: now}
	err := s.InTx(ctx, u.ID, func(tx domain.Tx) error {
		codeOf(t, domain.EConflict, tx.CreateUser(ctx, &dup), "taken email")
		taken := *u
		taken.Email = v.Email
		codeOf(t, domain.EConflict, tx.UpdateUser(ctx, &taken), "changing to a taken email")
		require.NoError(t, tx.CreateWorkspace(ctx, w))
		codeOf(t, domain.EConflict, tx.CreateWorkspace(ctx, w), "same workspace id")
		// The transaction is still good: these land.
		require.NoError(t, tx.CreateUser(ctx, fresh))
		return tx.PutWorkspaceMember(ctx, w.ID, u.ID, domain.RoleOwner, now)
	})
	require.NoError(t, err)
	require.NoError(t, s.InTx(ctx, u.ID, func(tx domain.Tx) error {
		_, err := tx.UserByEmail(ctx, fresh.Email)
		require.NoError(t, err)
		m, err := tx.WorkspaceMember(ctx, w.ID, u.ID)
		require.NoError(t, err)
		assert.Equal(t, domain.RoleOwner, m.Role)
		got, err := tx.UserByID(ctx, u.ID)
		require.NoError(t, err)
		assert.Equal(t, u.Email, got.Email, "the refused email change changed nothing")
		return nil
	}))
}

func TestInvisibleIsNotFound(t *testing.T) {
	r := newRLSDB(t)
	s := postgres.New(r.app)
	a, b := r.a, r.b
	require.NoError(t, s.InTx(ctx, a.user.ID, func(tx domain.Tx) error {
		_, err := tx.WorkspaceByID(ctx, b.ws.ID)
		codeOf(t, domain.ENotFound, err)
		_, err = tx.ProjectByID(ctx, b.project.ID)
		codeOf(t, domain.ENotFound, err)
		_, err = tx.WorkspaceMember(ctx, b.ws.ID, b.user.ID)
		codeOf(t, domain.ENotFound, err)
		_, err = tx.ProjectMember(ctx, b.project.ID, b.user.ID)
		codeOf(t, domain.ENotFound, err)
		codeOf(t, domain.ENotFound, tx.UpdateWorkspace(ctx, b.ws))
		codeOf(t, domain.ENotFound, tx.DeleteWorkspace(ctx, b.ws.ID))
		codeOf(t, domain.ENotFound, tx.UpdateProject(ctx, b.project))
		codeOf(t, domain.ENotFound, tx.DeleteProject(ctx, b.project.ID))
		codeOf(t, domain.ENotFound, tx.DeleteWorkspaceMember(ctx, b.ws.ID, b.user.ID))
		codeOf(t, domain.ENotFound, tx.DeleteProjectMember(ctx, b.project.ID, b.guest.ID))
		codeOf(t, domain.ENotFound, tx.PutWorkspaceMember(ctx, b.ws.ID, a.user.ID, domain.RoleOwner, now))
		codeOf(t, domain.ENotFound, tx.PutProjectMember(ctx, b.project.ID, a.user.ID, domain.RoleOwner, now))
		p := &domain.Project{ID: newID(), WorkspaceID: b.ws.ID, Name: "x", CreatedBy: a.user.ID, CreatedAt: now, UpdatedAt: now}
		codeOf(t, domain.ENotFound, tx.CreateProject(ctx, p))

		ms, err := tx.ListWorkspaceMembers(ctx, b.ws.ID, domain.Page{})
		require.NoError(t, err)
		assert.Empty(t, ms)
		ms, err = tx.ListProjectMembers(ctx, b.project.ID, domain.Page{})
		require.NoError(t, err)
		assert.Empty(t, ms)
		ps, err := tx.ListProjects(ctx, b.ws.ID, a.user.ID, false, domain.Page{})
		require.NoError(t, err)
		assert.Empty(t, ps)
		ws, err := tx.ListWorkspaces(ctx, b.user.ID, domain.Page{})
		require.NoError(t, err)
		assert.Empty(t, ws, "even asking for b's workspaces by id")
		n, err := tx.CountWorkspaceOwners(ctx, b.ws.ID)
		require.NoError(t, err)
		assert.Zero(t, n)
		evs, err := tx.ListAudit(ctx, domain.AuditFilter{}, domain.Page{})
		require.NoError(t, err)
		var ids []uuid.UUID
		for _, e := range evs {
			ids = append(ids, e.ID)
		}
		assert.ElementsMatch(t, []uuid.UUID{a.wsEvent.ID, a.ownEvent.ID, a.projEvent.ID}, ids, "an unfiltered audit list holds only a's events")
		return nil
	}))
	// Nothing of b's changed.
	var n int
	require.NoError(t, r.owner.QueryRow(ctx, `SELECT count(*) FROM workspace_members WHERE workspace_id = $1`, b.ws.ID).Scan(&n))
	assert.Equal(t, 1, n)
	require.NoError(t, r.owner.QueryRow(ctx, `SELECT count(*) FROM projects WHERE workspace_id = $1`, b.ws.ID).Scan(&n))
	assert.Equal(t, 1, n)
}

func TestPutMemberMissing(t *testing.T) {
	s := postgres.New(pgtest.New(t))
	u := createUser(t, s, "u")
	tn := seedTenant(t, s, "t")
	require.NoError(t, s.InTx(ctx, tn.user.ID, func(tx domain.Tx) error {
		err := tx.PutWorkspaceMember(ctx, tn.ws.ID, newID(), domain.RoleViewer, now)
		codeOf(t, domain.ENotFound, err)
		assert.Equal(t, "User not found.", domain.ErrorMessage(err))
		err = tx.PutWorkspaceMember(ctx, newID(), u.ID, domain.RoleViewer, now)
		codeOf(t, domain.ENotFound, err)
		assert.Equal(t, "Workspace not found.", domain.ErrorMessage(err))
		err = tx.PutProjectMember(ctx, newID(), u.ID, domain.RoleViewer, now)
		assert.Equal(t, "Project not found.", domain.ErrorMessage(err))
		err = tx.CreateProject(ctx, &domain.Project{ID: newID(), WorkspaceID: newID(), Name: "x", CreatedBy: tn.user.ID, CreatedAt: now, UpdatedAt: now})
		assert.Equal(t, "Workspace not found.", domain.ErrorMessage(err))
		codeOf(t, domain.EConflict, tx.CreateProject(ctx, tn.project), "same project id")
		// Still usable after all that.
		return tx.PutWorkspaceMember(ctx, tn.ws.ID, u.ID, domain.RoleViewer, now)
	}))
	err := s.InTx(ctx, uuid.Nil, func(tx domain.Tx) error {
		return tx.CreateRefreshToken(ctx, &domain.RefreshToken{ID: newID(), FamilyID: newID(), UserID: newID(), Hash: []byte("h"), CreatedAt: now, ExpiresAt: now})
	})
	codeOf(t, domain.ENotFound, err, "a token for no user")
}

// TestLeaveWorkspace checks that a user removing themselves also loses their
// project memberships there, although once their workspace membership is
// gone the policies judge the second delete without it.
func TestLeaveWorkspace(t *testing.T) {
	s := postgres.New(pgtest.New(t))
	tn := seedTenant(t, s, "t")
	leaver := createUser(t, s, "leaver")
	require.NoError(t, s.InTx(ctx, tn.user.ID, func(tx domain.Tx) error {
		return errors.Join(
			tx.PutWorkspaceMember(ctx, tn.ws.ID, leaver.ID, domain.RoleEditor, now),
			tx.PutProjectMember(ctx, tn.project.ID, leaver.ID, domain.RoleAdmin, now))
	}))
	require.NoError(t, s.InTx(ctx, leaver.ID, func(tx domain.Tx) error {
		return tx.DeleteWorkspaceMember(ctx, tn.ws.ID, leaver.ID)
	}))
	require.NoError(t, s.InTx(ctx, tn.user.ID, func(tx domain.Tx) error {
		_, err := tx.ProjectMember(ctx, tn.project.ID, leaver.ID)
		codeOf(t, domain.ENotFound, err)
		ms, err := tx.ListProjectMembers(ctx, tn.project.ID, domain.Page{})
		require.NoError(t, err)
		assert.Len(t, ms, 2, "the owner and the guest stay")
		return nil
	}))
}

func TestInTxRollsBack(t *testing.T) {
	s := postgres.New(pgtest.New(t))
	u := createUser(t, s, "u")
	w := &domain.Workspace{ID: newID(), Name: "w", CreatedBy: u.ID, CreatedAt: now, UpdatedAt: now}
	create := func(tx domain.Tx) error {
		return errors.Join(tx.CreateWorkspace(ctx, w), tx.PutWorkspaceMember(ctx, w.ID, u.ID, domain.RoleOwner, now))
	}
	assert.PanicsWithValue(t, "boom", func() {
		_ = s.InTx(ctx, u.ID, func(tx domain.Tx) error {
			require.NoError(t, create(tx))
			panic("boom")
		})
	})
	cctx, cancel := context.WithCancel(ctx)
	err := s.InTx(cctx, u.ID, func(tx domain.Tx) error {
		require.NoError(t, create(tx))
		cancel()
		return nil
	})
	assert.ErrorIs(t, err, context.Canceled, "a cancelled context does not commit")
	require.NoError(t, s.InTx(ctx, u.ID, func(tx domain.Tx) error {
		ws, err := tx.ListWorkspaces(ctx, u.ID, domain.Page{})
		require.NoError(t, err)
		assert.Empty(t, ws)
		return nil
	}))
	// And the pool is healthy afterwards: the same workspace can be made.
	require.NoError(t, s.InTx(ctx, u.ID, create))
	require.NoError(t, s.Ping(ctx))
}

func TestValues(t *testing.T) {
	db := pgtest.NewDB(t)
	s := postgres.New(db.AppPool(t))
	paris, err := time.LoadLocation("Europe/Paris")
	require.NoError(t, err)
	at := time.Date(2026, 3, 1, 13, 0, 0, 123456789, paris)
	u := &domain.User{ID: newID(), Email: "v@example.com", PasswordHash: "x", DisplayName: "v", CreatedAt: at, UpdatedAt: at}
	require.NoError(t, s.InTx(ctx, u.ID, func(tx domain.Tx) error { return tx.CreateUser(ctx, u) }))
	var got *domain.User
	require.NoError(t, s.InTx(ctx, u.ID, func(tx domain.Tx) (err error) { got, err = tx.UserByID(ctx, u.ID); return }))
	assert.Equal(t, time.UTC, got.CreatedAt.Location())
	assert.True(t, got.CreatedAt.Equal(at.Truncate(time.Microsecond)), "microsecond precision: %v", got.CreatedAt)
	assert.Equal(t, json.RawMessage(`{}`), got.Preferences, "no preferences are an empty object")

	got.Preferences = json.RawMessage(`{ "b": [1, 2],  "a": {"x": null} }`)
	require.NoError(t, s.InTx(ctx, u.ID, func(tx domain.Tx) error { return tx.UpdateUser(ctx, got) }))
	require.NoError(t, s.InTx(ctx, u.ID, func(tx domain.Tx) (err error) { got, err = tx.UserByID(ctx, u.ID); return }))
	assert.Equal(t, `{"a":{"x":null},"b":[1,2]}`, string(got.Preferences), "compact, in jsonb's key order")

	anon := &domain.AuditEvent{ID: newID(), Time: at, Action: "auth.login", Result: domain.ResultFailure,
		Details: map[string]any{"n": 3, "list": []string{"x"}}}
	// The app role can neither write nor read anonymous events; the owner,
	// which bypasses row-level security, can.
	owner := postgres.New(db.OwnerPool(t))
	require.Error(t, s.InTx(ctx, uuid.Nil, func(tx domain.Tx) error { return tx.AppendAudit(ctx, anon) }))
	require.NoError(t, owner.InTx(ctx, uuid.Nil, func(tx domain.Tx) error { return tx.AppendAudit(ctx, anon) }))
	var evs []*domain.AuditEvent
	require.NoError(t, owner.InTx(ctx, uuid.Nil, func(tx domain.Tx) (err error) {
		evs, err = tx.ListAudit(ctx, domain.AuditFilter{Action: "auth.login"}, domain.Page{})
		return
	}))
	require.Len(t, evs, 1)
	e := evs[0]
	assert.Equal(t, uuid.Nil, e.ActorID)
	assert.Equal(t, uuid.Nil, e.WorkspaceID)
	assert.Equal(t, uuid.Nil, e.ProjectID)
	assert.Equal(t, map[string]any{"n": float64(3), "list": []any{"x"}}, e.Details)
	assert.True(t, e.Time.Equal(at.Truncate(time.Microsecond)))
}

func TestPages(t *testing.T) {
	s := postgres.New(pgtest.New(t))
	tn := seedTenant(t, s, "t")
	var users []uuid.UUID
	for range 4 {
		u := createUser(t, s, "m")
		users = append(users, u.ID)
		require.NoError(t, s.InTx(ctx, tn.user.ID, func(tx domain.Tx) error {
			return tx.PutWorkspaceMember(ctx, tn.ws.ID, u.ID, domain.RoleViewer, now)
		}))
	}
	require.NoError(t, s.InTx(ctx, tn.user.ID, func(tx domain.Tx) error {
		all, err := tx.ListWorkspaceMembers(ctx, tn.ws.ID, domain.Page{})
		require.NoError(t, err)
		require.Len(t, all, 5, "Limit 0 is no limit")
		for i := 1; i < len(all); i++ {
			assert.Less(t, all[i-1].UserID.String(), all[i].UserID.String())
		}
		rest, err := tx.ListWorkspaceMembers(ctx, tn.ws.ID, domain.Page{After: all[1].UserID, Limit: 2})
		require.NoError(t, err)
		require.Len(t, rest, 2)
		assert.Equal(t, all[2].UserID, rest[0].UserID)
		assert.Equal(t, all[3].UserID, rest[1].UserID)
		return nil
	}))
}

func TestCoMembersAnswersOnlyForTheActor(t *testing.T) {
	r := newRLSDB(t)
	s := postgres.New(r.app)
	a := r.a
	for _, actor := range []uuid.UUID{a.user.ID, a.guest.ID} {
		var ok bool
		require.NoError(t, s.InTx(ctx, actor, func(tx domain.Tx) (err error) {
			ok, err = tx.AreCoMembers(ctx, a.user.ID, a.guest.ID)
			return
		}))
		assert.True(t, ok)
	}
	for _, actor := range []uuid.UUID{r.b.user.ID, uuid.Nil} {
		var ok bool
		require.NoError(t, s.InTx(ctx, actor, func(tx domain.Tx) (err error) {
			ok, err = tx.AreCoMembers(ctx, a.user.ID, a.guest.ID)
			return
		}))
		assert.False(t, ok, "a third party learns nothing")
	}
}

// TestCanvasInvisibleIsNotFound checks that under row-level security
// another tenant's canvas reads as absent through every CanvasStore method,
// and that writing to it is refused the same way without changing it.
func TestCanvasInvisibleIsNotFound(t *testing.T) {
	r := newRLSDB(t)
	s := postgres.New(r.app)
	a, b := r.a, r.b
	bc := b.canvas.ID
	require.NoError(t, s.InTx(ctx, a.user.ID, func(tx domain.Tx) error {
		_, err := tx.CanvasByID(ctx, bc)
		codeOf(t, domain.ENotFound, err)
		for _, exclusive := range []bool{false, true} {
			_, err = tx.LockCanvas(ctx, bc, exclusive)
			codeOf(t, domain.ENotFound, err)
		}
		cs, err := tx.ListCanvases(ctx, b.project.ID, domain.Page{})
		require.NoError(t, err)
		assert.Empty(t, cs)
		us, err := tx.CanvasUpdatesSince(ctx, bc, nil)
		require.NoError(t, err)
		assert.Empty(t, us)
		_, err = tx.LatestCanvasSnapshot(ctx, bc)
		codeOf(t, domain.ENotFound, err)
		vs, err := tx.ListCanvasVersions(ctx, bc, domain.Page{})
		require.NoError(t, err)
		assert.Empty(t, vs)
		_, err = tx.CanvasVersionByID(ctx, bc, b.snapshots[1].ID)
		codeOf(t, domain.ENotFound, err)

		renamed := *b.canvas
		renamed.Name = "pwned"
		codeOf(t, domain.ENotFound, tx.UpdateCanvas(ctx, &renamed))
		codeOf(t, domain.ENotFound, tx.DeleteCanvas(ctx, bc))
		codeOf(t, domain.ENotFound, tx.ClaimCanvasReplica(ctx, bc, 1, a.user.ID), "a claimed replica")
		codeOf(t, domain.ENotFound, tx.ClaimCanvasReplica(ctx, bc, 9, a.user.ID), "a free replica")
		codeOf(t, domain.ENotFound, tx.AppendCanvasUpdates(ctx, []*domain.CanvasUpdate{
			{CanvasID: bc, Replica: 1, First: 9, Last: 9, Data: []byte{9}, ActorID: b.user.ID, At: now},
		}))
		// A batch touching a visible and an invisible canvas writes neither.
		codeOf(t, domain.ENotFound, tx.AppendCanvasUpdates(ctx, []*domain.CanvasUpdate{
			{CanvasID: a.canvas.ID, Replica: 1, First: 9, Last: 9, Data: []byte{9}, ActorID: a.user.ID, At: now},
			{CanvasID: bc, Replica: 1, First: 9, Last: 9, Data: []byte{9}, ActorID: b.user.ID, At: now},
		}))
		require.NoError(t, tx.CompactCanvasUpdates(ctx, bc, domain.CanvasVersion{1: 100, 2: 100}))
		codeOf(t, domain.ENotFound, tx.PutCanvasSnapshot(ctx, &domain.CanvasSnapshot{ID: newID(), CanvasID: bc, Data: []byte{1}, CreatedBy: a.user.ID, CreatedAt: now}))
		codeOf(t, domain.EConflict, tx.PutCanvasSnapshot(ctx, &domain.CanvasSnapshot{ID: b.snapshots[0].ID, CanvasID: a.canvas.ID, Data: []byte{1}, CreatedBy: a.user.ID, CreatedAt: now}),
			"ids are unique across tenants, like every primary key")
		codeOf(t, domain.ENotFound, tx.CreateCanvas(ctx, &domain.Canvas{ID: newID(), ProjectID: b.project.ID, Name: "x", CreatedBy: a.user.ID, CreatedAt: now, UpdatedAt: now}))
		// The transaction is still usable after all those refusals.
		mine, err := tx.CanvasUpdatesSince(ctx, a.canvas.ID, nil)
		require.NoError(t, err)
		assert.Len(t, mine, 2)
		return nil
	}))
	// Nothing of b's changed.
	for _, q := range []struct {
		sql  string
		want int
	}{
		{`SELECT count(*) FROM canvases WHERE id = $1`, 1},
		{`SELECT count(*) FROM canvas_replicas WHERE canvas_id = $1`, 2},
		{`SELECT count(*) FROM canvas_updates WHERE canvas_id = $1`, 2},
		{`SELECT count(*) FROM canvas_snapshots WHERE canvas_id = $1`, 2},
	} {
		var n int
		require.NoError(t, r.owner.QueryRow(ctx, q.sql, bc).Scan(&n))
		assert.Equal(t, q.want, n, q.sql)
	}
	var name string
	require.NoError(t, r.owner.QueryRow(ctx, `SELECT name FROM canvases WHERE id = $1`, bc).Scan(&name))
	assert.Equal(t, "b", name)
	var n int
	require.NoError(t, r.owner.QueryRow(ctx, `SELECT count(*) FROM canvas_updates WHERE canvas_id = $1`, a.canvas.ID).Scan(&n))
	assert.Equal(t, 2, n, "the refused mixed batch wrote nothing to a's canvas either")
}
