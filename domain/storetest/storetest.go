// Package storetest is the contract suite of the domain store interfaces.
// Every implementation of domain.Store runs it:
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) domain.Store { return newStore(t) })
//	}
//
// Each test asks for a fresh, empty store and acts as a realistic user would
// (a workspace is written by its members), so that the PostgreSQL store runs
// the suite with row-level security in force.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain"
)

// Run runs the contract suite; newStore must return an empty store.
func Run(t *testing.T, newStore func(t *testing.T) domain.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s domain.Store)
	}{
		{"Users", testUsers},
		{"Rollback", testRollback},
		{"RefreshTokens", testRefreshTokens},
		{"RefreshTokenSerialised", testRefreshTokenSerialised},
		{"Workspaces", testWorkspaces},
		{"WorkspaceMembers", testWorkspaceMembers},
		{"Projects", testProjects},
		{"ProjectMembers", testProjectMembers},
		{"CoMembers", testCoMembers},
		{"Audit", testAudit},
		{"AuditChain", testAuditChain},
		{"CanvasActivity", testCanvasActivity},
		{"Pagination", testPagination},
	}
	for _, test := range slices.Concat(tests, canvasTests, outboxTests, notificationTests, deployTests, flagTests, logTests, artifactTests) {
		t.Run(test.name, func(t *testing.T) { test.fn(t, newStore(t)) })
	}
}

var ctx = context.Background()

// now is a fixed instant, truncated to microseconds as PostgreSQL stores it.
var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func id() uuid.UUID { return uuid.Must(uuid.NewV7()) }

func inTx(t *testing.T, s domain.Store, actor uuid.UUID, fn func(tx domain.Tx) error) {
	t.Helper()
	require.NoError(t, s.InTx(ctx, actor, fn))
}

func code(t *testing.T, want string, err error, msg ...any) {
	t.Helper()
	require.Error(t, err, msg...)
	assert.Equal(t, want, domain.ErrorCode(err), "error: %v %v", err, msg)
}

func newUser(t *testing.T, s domain.Store, name string) *domain.User {
	t.Helper()
	u := &domain.User{
		ID: id(), Email: fmt.Sprintf("%s-%s@example.com", name, uuid.NewString()[:8]),
		PasswordHash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA", DisplayName: name,
		Preferences: []byte(`{}`), CreatedAt: now, UpdatedAt: now,
	}
	inTx(t, s, u.ID, func(tx domain.Tx) error { return tx.CreateUser(ctx, u) })
	return u
}

func newWorkspace(t *testing.T, s domain.Store, owner *domain.User) *domain.Workspace {
	t.Helper()
	w := &domain.Workspace{ID: id(), Name: "ws " + owner.DisplayName, CreatedBy: owner.ID, CreatedAt: now, UpdatedAt: now}
	inTx(t, s, owner.ID, func(tx domain.Tx) error {
		if err := tx.CreateWorkspace(ctx, w); err != nil {
			return err
		}
		return tx.PutWorkspaceMember(ctx, w.ID, owner.ID, domain.RoleOwner, now)
	})
	return w
}

func newProject(t *testing.T, s domain.Store, w *domain.Workspace, actor uuid.UUID, name string) *domain.Project {
	t.Helper()
	p := &domain.Project{ID: id(), WorkspaceID: w.ID, Name: name, Description: "d", CreatedBy: actor, CreatedAt: now, UpdatedAt: now}
	inTx(t, s, actor, func(tx domain.Tx) error { return tx.CreateProject(ctx, p) })
	return p
}

func testUsers(t *testing.T, s domain.Store) {
	u := newUser(t, s, "ann")
	var got *domain.User
	inTx(t, s, u.ID, func(tx domain.Tx) (err error) { got, err = tx.UserByID(ctx, u.ID); return })
	assert.Equal(t, u, got)
	inTx(t, s, uuid.Nil, func(tx domain.Tx) (err error) { got, err = tx.UserByEmail(ctx, u.Email); return })
	assert.Equal(t, u.ID, got.ID)

	dup := *u
	dup.ID = id()
	code(t, domain.EConflict, s.InTx(ctx, dup.ID, func(tx domain.Tx) error { return tx.CreateUser(ctx, &dup) }))

	code(t, domain.ENotFound, s.InTx(ctx, uuid.Nil, func(tx domain.Tx) error { _, err := tx.UserByID(ctx, id()); return err }))
	code(t, domain.ENotFound, s.InTx(ctx, uuid.Nil, func(tx domain.Tx) error { _, err := tx.UserByEmail(ctx, "nobody@example.com"); return err }))

	u.DisplayName, u.AvatarURL, u.TimeZone = "Ann B", "https://example.com/a.png", "Europe/Paris"
	u.Preferences = []byte(`{"theme":"dark"}`)
	u.UpdatedAt = now.Add(time.Hour)
	inTx(t, s, u.ID, func(tx domain.Tx) error { return tx.UpdateUser(ctx, u) })
	inTx(t, s, u.ID, func(tx domain.Tx) (err error) { got, err = tx.UserByID(ctx, u.ID); return })
	assert.Equal(t, u.DisplayName, got.DisplayName)
	assert.Equal(t, u.AvatarURL, got.AvatarURL)
	assert.Equal(t, u.TimeZone, got.TimeZone)
	assert.JSONEq(t, `{"theme":"dark"}`, string(got.Preferences))
	assert.True(t, u.UpdatedAt.Equal(got.UpdatedAt))

	ghost := *u
	ghost.ID, ghost.Email = id(), "ghost@example.com"
	code(t, domain.ENotFound, s.InTx(ctx, ghost.ID, func(tx domain.Tx) error { return tx.UpdateUser(ctx, &ghost) }))
}

func testRollback(t *testing.T, s domain.Store) {
	u := newUser(t, s, "rolf")
	boom := errors.New("boom")
	w := &domain.Workspace{ID: id(), Name: "doomed", CreatedBy: u.ID, CreatedAt: now, UpdatedAt: now}
	err := s.InTx(ctx, u.ID, func(tx domain.Tx) error {
		require.NoError(t, tx.CreateWorkspace(ctx, w))
		require.NoError(t, tx.PutWorkspaceMember(ctx, w.ID, u.ID, domain.RoleOwner, now))
		u2 := *u
		u2.DisplayName = "changed"
		require.NoError(t, tx.UpdateUser(ctx, &u2))
		require.NoError(t, tx.AppendAudit(ctx, &domain.AuditEvent{ID: id(), Time: now, ActorID: u.ID, Action: "x", Result: domain.ResultSuccess}))
		return boom
	})
	assert.ErrorIs(t, err, boom)
	inTx(t, s, u.ID, func(tx domain.Tx) error {
		_, err := tx.WorkspaceByID(ctx, w.ID)
		code(t, domain.ENotFound, err)
		got, err := tx.UserByID(ctx, u.ID)
		require.NoError(t, err)
		assert.Equal(t, "rolf", got.DisplayName)
		evs, err := tx.ListAudit(ctx, domain.AuditFilter{ActorID: u.ID}, domain.Page{Limit: 10})
		require.NoError(t, err)
		assert.Empty(t, evs)
		ws, err := tx.ListWorkspaces(ctx, u.ID, domain.Page{Limit: 10})
		require.NoError(t, err)
		assert.Empty(t, ws)
		return nil
	})
}

func newToken(t *testing.T, s domain.Store, u *domain.User, family uuid.UUID) *domain.RefreshToken {
	t.Helper()
	h := id()
	rt := &domain.RefreshToken{ID: id(), FamilyID: family, UserID: u.ID, Hash: h[:], CreatedAt: now, ExpiresAt: now.Add(time.Hour), UserAgent: "ua", IP: "127.0.0.1"}
	inTx(t, s, uuid.Nil, func(tx domain.Tx) error { return tx.CreateRefreshToken(ctx, rt) })
	return rt
}

func tokenByHash(t *testing.T, s domain.Store, h []byte) *domain.RefreshToken {
	t.Helper()
	var rt *domain.RefreshToken
	inTx(t, s, uuid.Nil, func(tx domain.Tx) (err error) { rt, err = tx.RefreshTokenByHash(ctx, h); return })
	return rt
}

func testRefreshTokens(t *testing.T, s domain.Store) {
	u, v := newUser(t, s, "tok"), newUser(t, s, "other")
	fam1, fam2 := id(), id()
	a, b := newToken(t, s, u, fam1), newToken(t, s, u, fam1)
	c := newToken(t, s, u, fam2)
	d := newToken(t, s, v, id())

	got := tokenByHash(t, s, a.Hash)
	assert.Equal(t, a.ID, got.ID)
	assert.Equal(t, fam1, got.FamilyID)
	assert.Nil(t, got.UsedAt)
	assert.Nil(t, got.RevokedAt)
	assert.True(t, got.ExpiresAt.Equal(a.ExpiresAt))

	code(t, domain.ENotFound, s.InTx(ctx, uuid.Nil, func(tx domain.Tx) error { _, err := tx.RefreshTokenByHash(ctx, []byte("nope")); return err }))

	used := now.Add(time.Minute)
	inTx(t, s, uuid.Nil, func(tx domain.Tx) error { return tx.MarkRefreshTokenUsed(ctx, a.ID, used) })
	got = tokenByHash(t, s, a.Hash)
	require.NotNil(t, got.UsedAt)
	assert.True(t, got.UsedAt.Equal(used))

	revoked := now.Add(2 * time.Minute)
	inTx(t, s, uuid.Nil, func(tx domain.Tx) error { return tx.RevokeTokenFamily(ctx, fam1, revoked) })
	for _, rt := range []*domain.RefreshToken{a, b} {
		got := tokenByHash(t, s, rt.Hash)
		require.NotNil(t, got.RevokedAt)
		assert.True(t, got.RevokedAt.Equal(revoked))
	}
	assert.Nil(t, tokenByHash(t, s, c.Hash).RevokedAt, "another family stays live")

	inTx(t, s, u.ID, func(tx domain.Tx) error { return tx.RevokeUserTokens(ctx, u.ID, now.Add(time.Hour)) })
	got = tokenByHash(t, s, c.Hash)
	require.NotNil(t, got.RevokedAt)
	assert.True(t, tokenByHash(t, s, a.Hash).RevokedAt.Equal(revoked), "an earlier revocation keeps its time")
	assert.Nil(t, tokenByHash(t, s, d.Hash).RevokedAt, "another user's tokens stay live")
}

// testRefreshTokenSerialised checks that transactions spending one token are
// serialised: exactly one of many concurrent spenders finds it unused.
func testRefreshTokenSerialised(t *testing.T, s domain.Store) {
	u := newUser(t, s, "race")
	rt := newToken(t, s, u, id())
	var winners atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.InTx(ctx, uuid.Nil, func(tx domain.Tx) error {
				got, err := tx.RefreshTokenByHash(ctx, rt.Hash)
				if err != nil {
					return err
				}
				if got.UsedAt != nil {
					return nil
				}
				time.Sleep(5 * time.Millisecond)
				winners.Add(1)
				return tx.MarkRefreshTokenUsed(ctx, got.ID, now)
			})
			assert.NoError(t, err)
		}()
	}
	wg.Wait()
	assert.Equal(t, int32(1), winners.Load())
}

func testWorkspaces(t *testing.T, s domain.Store) {
	u := newUser(t, s, "wanda")
	w := newWorkspace(t, s, u)
	var got *domain.Workspace
	inTx(t, s, u.ID, func(tx domain.Tx) (err error) { got, err = tx.WorkspaceByID(ctx, w.ID); return })
	assert.Equal(t, w, got)

	w.Name, w.UpdatedAt = "renamed", now.Add(time.Hour)
	inTx(t, s, u.ID, func(tx domain.Tx) error { return tx.UpdateWorkspace(ctx, w) })
	inTx(t, s, u.ID, func(tx domain.Tx) (err error) { got, err = tx.WorkspaceByID(ctx, w.ID); return })
	assert.Equal(t, "renamed", got.Name)
	assert.True(t, got.UpdatedAt.Equal(w.UpdatedAt))

	p := newProject(t, s, w, u.ID, "p1")
	other := newUser(t, s, "other")
	inTx(t, s, u.ID, func(tx domain.Tx) error {
		return tx.PutProjectMember(ctx, p.ID, other.ID, domain.RoleViewer, now)
	})

	inTx(t, s, u.ID, func(tx domain.Tx) error { return tx.DeleteWorkspace(ctx, w.ID) })
	inTx(t, s, u.ID, func(tx domain.Tx) error {
		_, err := tx.WorkspaceByID(ctx, w.ID)
		code(t, domain.ENotFound, err)
		_, err = tx.ProjectByID(ctx, p.ID)
		code(t, domain.ENotFound, err)
		_, err = tx.WorkspaceMember(ctx, w.ID, u.ID)
		code(t, domain.ENotFound, err)
		ws, err := tx.ListWorkspaces(ctx, u.ID, domain.Page{Limit: 10})
		require.NoError(t, err)
		assert.Empty(t, ws)
		return nil
	})
	inTx(t, s, other.ID, func(tx domain.Tx) error {
		_, err := tx.ProjectMember(ctx, p.ID, other.ID)
		code(t, domain.ENotFound, err)
		return nil
	})
	code(t, domain.ENotFound, s.InTx(ctx, u.ID, func(tx domain.Tx) error { return tx.DeleteWorkspace(ctx, w.ID) }))
	code(t, domain.ENotFound, s.InTx(ctx, u.ID, func(tx domain.Tx) error { return tx.UpdateWorkspace(ctx, w) }))
}

func testWorkspaceMembers(t *testing.T, s domain.Store) {
	owner, ed := newUser(t, s, "owner"), newUser(t, s, "ed")
	w := newWorkspace(t, s, owner)
	p := newProject(t, s, w, owner.ID, "p")
	inTx(t, s, owner.ID, func(tx domain.Tx) error {
		n, err := tx.CountWorkspaceOwners(ctx, w.ID)
		require.NoError(t, err)
		assert.Equal(t, 1, n)

		require.NoError(t, tx.PutWorkspaceMember(ctx, w.ID, ed.ID, domain.RoleEditor, now))
		m, err := tx.WorkspaceMember(ctx, w.ID, ed.ID)
		require.NoError(t, err)
		assert.Equal(t, domain.RoleEditor, m.Role)
		assert.Equal(t, ed.Email, m.Email)
		assert.Equal(t, ed.DisplayName, m.DisplayName)

		later := now.Add(time.Hour)
		require.NoError(t, tx.PutWorkspaceMember(ctx, w.ID, ed.ID, domain.RoleOwner, later))
		m, err = tx.WorkspaceMember(ctx, w.ID, ed.ID)
		require.NoError(t, err)
		assert.Equal(t, domain.RoleOwner, m.Role)
		assert.True(t, m.CreatedAt.Equal(now), "role change keeps the join time")
		assert.True(t, m.UpdatedAt.Equal(later))
		n, err = tx.CountWorkspaceOwners(ctx, w.ID)
		require.NoError(t, err)
		assert.Equal(t, 2, n)

		ms, err := tx.ListWorkspaceMembers(ctx, w.ID, domain.Page{Limit: 10})
		require.NoError(t, err)
		require.Len(t, ms, 2)
		assert.Equal(t, owner.ID, ms[0].UserID, "members are in user id order")
		assert.Equal(t, ed.ID, ms[1].UserID)

		require.NoError(t, tx.PutProjectMember(ctx, p.ID, ed.ID, domain.RoleAdmin, now))
		return nil
	})
	var ws []*domain.Workspace
	inTx(t, s, ed.ID, func(tx domain.Tx) (err error) {
		ws, err = tx.ListWorkspaces(ctx, ed.ID, domain.Page{Limit: 10})
		return
	})
	require.Len(t, ws, 1)
	assert.Equal(t, w.ID, ws[0].ID)

	inTx(t, s, owner.ID, func(tx domain.Tx) error { return tx.DeleteWorkspaceMember(ctx, w.ID, ed.ID) })
	inTx(t, s, owner.ID, func(tx domain.Tx) error {
		_, err := tx.WorkspaceMember(ctx, w.ID, ed.ID)
		code(t, domain.ENotFound, err)
		_, err = tx.ProjectMember(ctx, p.ID, ed.ID)
		code(t, domain.ENotFound, err, "leaving a workspace leaves its projects")
		code(t, domain.ENotFound, tx.DeleteWorkspaceMember(ctx, w.ID, ed.ID))
		return nil
	})
}

func testProjects(t *testing.T, s domain.Store) {
	u := newUser(t, s, "pat")
	w := newWorkspace(t, s, u)
	p := newProject(t, s, w, u.ID, "site")
	var got *domain.Project
	inTx(t, s, u.ID, func(tx domain.Tx) (err error) { got, err = tx.ProjectByID(ctx, p.ID); return })
	assert.Equal(t, p, got)

	p.Name, p.Description, p.UpdatedAt = "site2", "new", now.Add(time.Hour)
	inTx(t, s, u.ID, func(tx domain.Tx) error { return tx.UpdateProject(ctx, p) })
	inTx(t, s, u.ID, func(tx domain.Tx) (err error) { got, err = tx.ProjectByID(ctx, p.ID); return })
	assert.Equal(t, "site2", got.Name)
	assert.Equal(t, "new", got.Description)

	q := newProject(t, s, w, u.ID, "other")
	outsider := newUser(t, s, "out")
	inTx(t, s, u.ID, func(tx domain.Tx) error { return tx.PutProjectMember(ctx, q.ID, outsider.ID, domain.RoleViewer, now) })
	inTx(t, s, u.ID, func(tx domain.Tx) error {
		all, err := tx.ListProjects(ctx, w.ID, u.ID, false, domain.Page{Limit: 10})
		require.NoError(t, err)
		require.Len(t, all, 2)
		assert.Equal(t, p.ID, all[0].ID)
		return nil
	})
	inTx(t, s, outsider.ID, func(tx domain.Tx) error {
		mine, err := tx.ListProjects(ctx, w.ID, outsider.ID, true, domain.Page{Limit: 10})
		require.NoError(t, err)
		require.Len(t, mine, 1)
		assert.Equal(t, q.ID, mine[0].ID)
		return nil
	})

	inTx(t, s, u.ID, func(tx domain.Tx) error { return tx.DeleteProject(ctx, q.ID) })
	inTx(t, s, u.ID, func(tx domain.Tx) error {
		_, err := tx.ProjectByID(ctx, q.ID)
		code(t, domain.ENotFound, err)
		_, err = tx.ProjectMember(ctx, q.ID, outsider.ID)
		code(t, domain.ENotFound, err)
		code(t, domain.ENotFound, tx.DeleteProject(ctx, q.ID))
		code(t, domain.ENotFound, tx.UpdateProject(ctx, q))
		return nil
	})
}

func testProjectMembers(t *testing.T, s domain.Store) {
	u, v := newUser(t, s, "lead"), newUser(t, s, "guest")
	w := newWorkspace(t, s, u)
	p := newProject(t, s, w, u.ID, "p")
	inTx(t, s, u.ID, func(tx domain.Tx) error {
		require.NoError(t, tx.PutProjectMember(ctx, p.ID, v.ID, domain.RoleViewer, now))
		require.NoError(t, tx.PutProjectMember(ctx, p.ID, v.ID, domain.RoleEditor, now.Add(time.Hour)))
		m, err := tx.ProjectMember(ctx, p.ID, v.ID)
		require.NoError(t, err)
		assert.Equal(t, domain.RoleEditor, m.Role)
		assert.Equal(t, v.Email, m.Email)
		ms, err := tx.ListProjectMembers(ctx, p.ID, domain.Page{Limit: 10})
		require.NoError(t, err)
		require.Len(t, ms, 1)
		assert.Equal(t, v.ID, ms[0].UserID)
		require.NoError(t, tx.DeleteProjectMember(ctx, p.ID, v.ID))
		code(t, domain.ENotFound, tx.DeleteProjectMember(ctx, p.ID, v.ID))
		_, err = tx.ProjectMember(ctx, p.ID, v.ID)
		code(t, domain.ENotFound, err)
		return nil
	})
}

func testCoMembers(t *testing.T, s domain.Store) {
	a, b, c, d := newUser(t, s, "a"), newUser(t, s, "b"), newUser(t, s, "c"), newUser(t, s, "d")
	w := newWorkspace(t, s, a)
	p := newProject(t, s, w, a.ID, "p")
	inTx(t, s, a.ID, func(tx domain.Tx) error {
		require.NoError(t, tx.PutWorkspaceMember(ctx, w.ID, b.ID, domain.RoleViewer, now))
		return tx.PutProjectMember(ctx, p.ID, c.ID, domain.RoleViewer, now)
	})
	for _, test := range []struct {
		name string
		x, y *domain.User
		want bool
	}{
		{"same workspace", a, b, true},
		{"project member and workspace member", c, b, true},
		{"workspace member and project member", b, c, true},
		{"strangers", a, d, false},
		{"stranger and project member", d, c, false},
	} {
		var got bool
		inTx(t, s, test.x.ID, func(tx domain.Tx) (err error) { got, err = tx.AreCoMembers(ctx, test.x.ID, test.y.ID); return })
		assert.Equal(t, test.want, got, test.name)
	}
}

func testAudit(t *testing.T, s domain.Store) {
	u := newUser(t, s, "aud")
	w := newWorkspace(t, s, u)
	p := newProject(t, s, w, u.ID, "p")
	evs := []*domain.AuditEvent{
		{ID: id(), Time: now, ActorID: u.ID, Action: "workspace.create", TargetType: "workspace", TargetID: w.ID.String(), WorkspaceID: w.ID, CorrelationID: "c1", IP: "10.0.0.1", UserAgent: "curl", Result: domain.ResultSuccess, Details: map[string]any{"name": "x"}},
		{ID: id(), Time: now.Add(time.Minute), ActorID: u.ID, Action: "project.create", TargetType: "project", TargetID: p.ID.String(), WorkspaceID: w.ID, ProjectID: p.ID, Result: domain.ResultSuccess},
		{ID: id(), Time: now.Add(2 * time.Minute), ActorID: u.ID, Action: "auth.login", TargetType: "user", TargetID: u.ID.String(), Result: domain.ResultFailure},
	}
	inTx(t, s, u.ID, func(tx domain.Tx) error {
		for _, e := range evs {
			if err := tx.AppendAudit(ctx, e); err != nil {
				return err
			}
		}
		return nil
	})
	// Events are written only by the actor they name.
	forged := &domain.AuditEvent{ID: id(), Time: now, ActorID: w.CreatedBy, Action: "x", Result: domain.ResultSuccess}
	other := newUser(t, s, "forger")
	assert.Error(t, s.InTx(ctx, other.ID, func(tx domain.Tx) error { return tx.AppendAudit(ctx, forged) }))
	assert.Error(t, s.InTx(ctx, uuid.Nil, func(tx domain.Tx) error { return tx.AppendAudit(ctx, forged) }))

	list := func(f domain.AuditFilter) []*domain.AuditEvent {
		var out []*domain.AuditEvent
		inTx(t, s, u.ID, func(tx domain.Tx) (err error) { out, err = tx.ListAudit(ctx, f, domain.Page{Limit: 10}); return })
		return out
	}
	all := list(domain.AuditFilter{ActorID: u.ID})
	require.Len(t, all, 3)
	assert.Equal(t, evs[0].ID, all[0].ID)
	assert.Equal(t, "c1", all[0].CorrelationID)
	assert.Equal(t, "10.0.0.1", all[0].IP)
	assert.Equal(t, "curl", all[0].UserAgent)
	assert.Equal(t, map[string]any{"name": "x"}, all[0].Details)
	assert.True(t, all[0].Time.Equal(now))
	assert.Equal(t, domain.ResultFailure, all[2].Result)

	assert.Len(t, list(domain.AuditFilter{WorkspaceID: w.ID}), 2)
	assert.Len(t, list(domain.AuditFilter{ProjectID: p.ID}), 1)
	assert.Len(t, list(domain.AuditFilter{Action: "auth.login"}), 1)
	assert.Len(t, list(domain.AuditFilter{ActorID: u.ID, Since: now.Add(time.Minute)}), 2)
	assert.Len(t, list(domain.AuditFilter{ActorID: u.ID, Until: now.Add(time.Minute)}), 1)
}

func testPagination(t *testing.T, s domain.Store) {
	u := newUser(t, s, "pager")
	var ids []uuid.UUID
	for range 5 {
		ids = append(ids, newWorkspace(t, s, u).ID)
	}
	var got []uuid.UUID
	after := uuid.Nil
	for {
		var page []*domain.Workspace
		inTx(t, s, u.ID, func(tx domain.Tx) (err error) {
			page, err = tx.ListWorkspaces(ctx, u.ID, domain.Page{Limit: 2, After: after})
			return
		})
		for _, w := range page {
			got = append(got, w.ID)
		}
		if len(page) < 2 {
			break
		}
		after = page[len(page)-1].ID
	}
	assert.Equal(t, ids, got)
}
