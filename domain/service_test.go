package domain_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain"
	"github.com/tone-ai/tone/domain/memory"
	"github.com/tone-ai/tone/domain/postgres"
	"github.com/tone-ai/tone/domain/postgres/pgtest"
)

// clock is a settable test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type fixture struct {
	svc   *domain.Service
	store domain.Store
	clock *clock
}

// eachStore runs fn against a service over the in-memory store and over a
// fresh PostgreSQL database.
func eachStore(t *testing.T, fn func(t *testing.T, f *fixture)) {
	for _, s := range []struct {
		name string
		open func(t *testing.T) domain.Store
	}{
		{"memory", func(*testing.T) domain.Store { return memory.New() }},
		{"postgres", func(t *testing.T) domain.Store { return postgres.New(pgtest.New(t)) }},
	} {
		t.Run(s.name, func(t *testing.T) {
			c := &clock{now: time.Now().UTC().Truncate(time.Microsecond)}
			store := s.open(t)
			svc, err := domain.NewService(store, domain.Config{
				Now: c.Now, Password: domain.PasswordParams{Memory: 64, Time: 1, Threads: 1},
				RefreshGrace: 10 * time.Second,
			})
			require.NoError(t, err)
			fn(t, &fixture{svc: svc, store: store, clock: c})
		})
	}
}

var ctx = domain.WithRequestInfo(context.Background(), domain.RequestInfo{CorrelationID: "test-corr", IP: "192.0.2.1", UserAgent: "go-test"})

func code(t *testing.T, want string, err error) {
	t.Helper()
	require.Error(t, err)
	assert.Equal(t, want, domain.ErrorCode(err), "%v", err)
}

// signUp registers and logs in a user named name.
func (f *fixture) signUp(t *testing.T, name string) (*domain.Tokens, string) {
	t.Helper()
	email := name + "-" + uuid.NewString()[:8] + "@example.com"
	require.NoError(t, f.svc.Register(ctx, domain.Registration{Email: email, Password: "password-" + name, DisplayName: name}))
	tok, err := f.svc.Login(ctx, email, "password-"+name)
	require.NoError(t, err)
	return tok, email
}

func (f *fixture) auditActions(t *testing.T, filter domain.AuditFilter, actor uuid.UUID) []string {
	t.Helper()
	var evs []*domain.AuditEvent
	require.NoError(t, f.store.InTx(ctx, actor, func(tx domain.Tx) (err error) {
		evs, err = tx.ListAudit(ctx, filter, domain.Page{Limit: 100})
		return err
	}))
	var out []string
	for _, e := range evs {
		out = append(out, e.Action+":"+e.Result)
	}
	return out
}

func TestRegisterAndLogin(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		require.NoError(t, f.svc.Register(ctx, domain.Registration{Email: "Ann@Example.com", Password: "first-password"}))
		// A second registration of the same email answers the same and changes nothing.
		require.NoError(t, f.svc.Register(ctx, domain.Registration{Email: "ann@example.com", Password: "second-password"}))
		tok, err := f.svc.Login(ctx, "ann@example.com", "first-password")
		require.NoError(t, err)
		_, err = f.svc.Login(ctx, "ann@example.com", "second-password")
		code(t, domain.EUnauthenticated, err)
		_, err = f.svc.Login(ctx, "nobody@example.com", "first-password")
		code(t, domain.EUnauthenticated, err)
		assert.Equal(t, domain.ErrorMessage(err), "Invalid email or password.")

		me, err := f.svc.Me(ctx, tok.UserID)
		require.NoError(t, err)
		assert.Equal(t, "ann@example.com", me.Email)
		assert.Equal(t, "ann", me.DisplayName, "display name defaults to the email's local part")

		p, err := f.svc.Authenticate(tok.AccessToken)
		require.NoError(t, err)
		assert.Equal(t, tok.UserID, p.UserID)

		assert.Equal(t, []string{"user.register:success", "auth.login:success", "auth.login:failure"},
			f.auditActions(t, domain.AuditFilter{ActorID: tok.UserID}, tok.UserID))

		for _, r := range []domain.Registration{
			{Email: "not-an-email", Password: "long-enough"},
			{Email: "Ann <ann@example.com>", Password: "long-enough"},
			{Email: "a@b", Password: "long-enough"},
			{Email: "ok@example.com", Password: "short"},
			{Email: "ok@example.com", Password: "long-enough", DisplayName: "bad\x00name"},
		} {
			code(t, domain.EInvalid, f.svc.Register(ctx, r))
		}
	})
}

func TestRefreshRotation(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		t0, _ := f.signUp(t, "rot")
		t1, err := f.svc.Refresh(ctx, t0.RefreshToken)
		require.NoError(t, err)
		assert.NotEqual(t, t0.RefreshToken, t1.RefreshToken)
		assert.Equal(t, t0.SessionID, t1.SessionID)

		// Inside the grace window the spent token works once more (a second tab).
		f.clock.Add(5 * time.Second)
		t1b, err := f.svc.Refresh(ctx, t0.RefreshToken)
		require.NoError(t, err)

		// Past it, spending it again is theft: the whole session is revoked.
		f.clock.Add(10 * time.Second)
		_, err = f.svc.Refresh(ctx, t0.RefreshToken)
		code(t, domain.EUnauthenticated, err)
		for _, tok := range []string{t1.RefreshToken, t1b.RefreshToken} {
			_, err = f.svc.Refresh(ctx, tok)
			code(t, domain.EUnauthenticated, err)
		}
		assert.Contains(t, f.auditActions(t, domain.AuditFilter{ActorID: t0.UserID}, t0.UserID), "auth.refresh_reuse:failure")

		_, err = f.svc.Refresh(ctx, "tnr_unknown")
		code(t, domain.EUnauthenticated, err)
		_, err = f.svc.Refresh(ctx, "")
		code(t, domain.EUnauthenticated, err)
	})
}

func TestRefreshExpiry(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		t0, _ := f.signUp(t, "exp")
		f.clock.Add(31 * 24 * time.Hour)
		_, err := f.svc.Refresh(ctx, t0.RefreshToken)
		code(t, domain.EUnauthenticated, err)
		_, err = f.svc.Authenticate(t0.AccessToken)
		code(t, domain.EUnauthenticated, err)
	})
}

// TestConcurrentRefresh: two tabs refresh the same token at the same moment;
// both must end up with a working session.
func TestConcurrentRefresh(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		t0, _ := f.signUp(t, "tabs")
		var wg sync.WaitGroup
		results := make([]*domain.Tokens, 2)
		errs := make([]error, 2)
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i], errs[i] = f.svc.Refresh(ctx, t0.RefreshToken)
			}()
		}
		wg.Wait()
		for i := range results {
			require.NoError(t, errs[i])
			next, err := f.svc.Refresh(ctx, results[i].RefreshToken)
			require.NoError(t, err, "tab %d keeps a working session", i)
			assert.Equal(t, t0.SessionID, next.SessionID)
		}
	})
}

func TestLogout(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		a, email := f.signUp(t, "out")
		b, err := f.svc.Login(ctx, email, "password-out")
		require.NoError(t, err)
		require.NoError(t, f.svc.Logout(ctx, a.RefreshToken))
		_, err = f.svc.Refresh(ctx, a.RefreshToken)
		code(t, domain.EUnauthenticated, err)
		b2, err := f.svc.Refresh(ctx, b.RefreshToken)
		require.NoError(t, err, "another session survives a logout")
		require.NoError(t, f.svc.Logout(ctx, a.RefreshToken), "logging out twice is fine")

		require.NoError(t, f.svc.LogoutEverywhere(ctx, b.UserID))
		_, err = f.svc.Refresh(ctx, b2.RefreshToken)
		code(t, domain.EUnauthenticated, err)
	})
}

func TestOwnerRules(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		owner, _ := f.signUp(t, "own")
		admin, adminEmail := f.signUp(t, "adm")
		stranger, _ := f.signUp(t, "str")
		ws, err := f.svc.CreateWorkspace(ctx, owner.UserID, "Acme")
		require.NoError(t, err)
		_, err = f.svc.AddWorkspaceMember(ctx, owner.UserID, ws.ID, adminEmail, "admin")
		require.NoError(t, err)

		// The last owner can neither leave nor be demoted.
		code(t, domain.EConflict, f.svc.RemoveWorkspaceMember(ctx, owner.UserID, ws.ID, owner.UserID))
		_, err = f.svc.ChangeWorkspaceMemberRole(ctx, owner.UserID, ws.ID, owner.UserID, "admin")
		code(t, domain.EConflict, err)
		// Admins cannot touch owners or make new ones.
		_, err = f.svc.ChangeWorkspaceMemberRole(ctx, admin.UserID, ws.ID, admin.UserID, "owner")
		code(t, domain.EForbidden, err)
		code(t, domain.EForbidden, f.svc.RemoveWorkspaceMember(ctx, admin.UserID, ws.ID, owner.UserID))
		// Strangers see nothing.
		_, err = f.svc.GetWorkspace(ctx, stranger.UserID, ws.ID)
		code(t, domain.ENotFound, err)
		_, err = f.svc.RenameWorkspace(ctx, stranger.UserID, ws.ID, "mine")
		code(t, domain.ENotFound, err)

		// With a second owner, the first may step down.
		_, err = f.svc.ChangeWorkspaceMemberRole(ctx, owner.UserID, ws.ID, admin.UserID, "owner")
		require.NoError(t, err)
		require.NoError(t, f.svc.RemoveWorkspaceMember(ctx, owner.UserID, ws.ID, owner.UserID))
		_, err = f.svc.GetWorkspace(ctx, owner.UserID, ws.ID)
		code(t, domain.ENotFound, err)

		got := f.auditActions(t, domain.AuditFilter{WorkspaceID: ws.ID}, admin.UserID)
		assert.Equal(t, []string{
			"workspace.create:success", "workspace.member.add:success",
			"workspace.member.role_change:success", "workspace.member.remove:success",
		}, got, "refused changes leave no audit event")
	})
}

func TestProjectAccess(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		owner, _ := f.signUp(t, "po")
		viewer, viewerEmail := f.signUp(t, "pv")
		guest, guestEmail := f.signUp(t, "pg")
		ws, err := f.svc.CreateWorkspace(ctx, owner.UserID, "W")
		require.NoError(t, err)
		_, err = f.svc.AddWorkspaceMember(ctx, owner.UserID, ws.ID, viewerEmail, "viewer")
		require.NoError(t, err)
		name := "Site"
		p, err := f.svc.CreateProject(ctx, owner.UserID, ws.ID, domain.ProjectInput{Name: &name})
		require.NoError(t, err)
		other, err := f.svc.CreateProject(ctx, owner.UserID, ws.ID, domain.ProjectInput{Name: &name})
		require.NoError(t, err)

		_, err = f.svc.CreateProject(ctx, viewer.UserID, ws.ID, domain.ProjectInput{Name: &name})
		code(t, domain.EForbidden, err)
		role, err := f.svc.ProjectRole(ctx, viewer.UserID, p.ID)
		require.NoError(t, err)
		assert.Equal(t, domain.RoleViewer, role)

		// A project-only member sees that project and nothing else.
		_, err = f.svc.AddProjectMember(ctx, owner.UserID, p.ID, guestEmail, "editor")
		require.NoError(t, err)
		require.NoError(t, f.svc.Authorize(ctx, guest.UserID, p.ID, domain.ActCanvasWrite))
		code(t, domain.ENotFound, f.svc.Authorize(ctx, guest.UserID, other.ID, domain.ActCanvasRead))
		ps, _, err := f.svc.ListProjects(ctx, guest.UserID, ws.ID, domain.ListOptions{})
		require.NoError(t, err)
		require.Len(t, ps, 1)
		assert.Equal(t, p.ID, ps[0].ID)
		_, err = f.svc.GetWorkspace(ctx, guest.UserID, ws.ID)
		code(t, domain.ENotFound, err)
		code(t, domain.EForbidden, f.svc.Authorize(ctx, viewer.UserID, p.ID, domain.ActCanvasWrite))

		// Profiles: co-members see each other, strangers do not.
		_, err = f.svc.Profile(ctx, guest.UserID, owner.UserID)
		require.NoError(t, err)
		stranger, _ := f.signUp(t, "ps")
		_, err = f.svc.Profile(ctx, stranger.UserID, owner.UserID)
		code(t, domain.ENotFound, err)

		// Leaving the workspace takes project access with it.
		require.NoError(t, f.svc.RemoveWorkspaceMember(ctx, owner.UserID, ws.ID, viewer.UserID))
		code(t, domain.ENotFound, f.svc.Authorize(ctx, viewer.UserID, p.ID, domain.ActCanvasRead))
	})
}

func TestPagination(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		u, _ := f.signUp(t, "pages")
		var want []uuid.UUID
		for i := range 7 {
			ws, err := f.svc.CreateWorkspace(ctx, u.UserID, "W"+string(rune('a'+i)))
			require.NoError(t, err)
			want = append(want, ws.ID)
		}
		var got []uuid.UUID
		opt := domain.ListOptions{Limit: 3}
		for {
			ws, next, err := f.svc.ListWorkspaces(ctx, u.UserID, opt)
			require.NoError(t, err)
			for _, w := range ws {
				got = append(got, w.ID)
			}
			if next == "" {
				break
			}
			opt.Cursor = next
		}
		assert.Equal(t, want, got)
		_, _, err := f.svc.ListWorkspaces(ctx, u.UserID, domain.ListOptions{Cursor: "!!"})
		code(t, domain.EInvalid, err)
		_, _, err = f.svc.ListWorkspaces(ctx, u.UserID, domain.ListOptions{Limit: 1000})
		code(t, domain.EInvalid, err)
	})
}

func TestUpdateProfile(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		u, _ := f.signUp(t, "prof")
		name, tz, avatar := "  Prof X ", "Europe/Paris", "https://cdn.example.com/x.png"
		me, err := f.svc.UpdateMe(ctx, u.UserID, domain.ProfileUpdate{DisplayName: &name, TimeZone: &tz, AvatarURL: &avatar, Preferences: []byte(`{"theme": "dark"}`)})
		require.NoError(t, err)
		assert.Equal(t, "Prof X", me.DisplayName)
		assert.JSONEq(t, `{"theme":"dark"}`, string(me.Preferences))

		badTZ, badURL := "Mars/Olympus", "javascript:alert(1)"
		big := []byte(`{"k":"` + string(make([]byte, domain.MaxPreferencesBytes)) + `"}`)
		for _, up := range []domain.ProfileUpdate{
			{TimeZone: &badTZ}, {AvatarURL: &badURL}, {Preferences: []byte(`[1,2]`)}, {Preferences: big},
			{DisplayName: &name, TimeZone: &badTZ},
		} {
			_, err := f.svc.UpdateMe(ctx, u.UserID, up)
			code(t, domain.EInvalid, err)
		}
		again, err := f.svc.Me(ctx, u.UserID)
		require.NoError(t, err)
		assert.Equal(t, "Europe/Paris", again.TimeZone, "a rejected update changes nothing")
		assert.Equal(t, "Prof X", again.DisplayName)
	})
}
