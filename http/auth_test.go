package http

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain"
)

// testClock is a clock that moves only when told to.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock { return &testClock{now: time.Now().UTC()} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func (a *testAPI) refresh(token string) *response {
	return a.do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": token})
}

func (a *testAPI) me(u *testUser) (userJSON, int) {
	var me userJSON
	resp := a.do("GET", "/api/v1/me", u.Access, nil)
	if resp.Status == http.StatusOK {
		resp.decode(a.t, &me)
	}
	return me, resp.Status
}

func TestRegister(t *testing.T) {
	a := newTestAPI(t, Config{}, testDomainConfig())
	resp := a.register("Ada@Example.com", "first password", "Ada")
	require.Equal(t, http.StatusAccepted, resp.Status, resp.String())
	first := resp.json(t)
	assert.Equal(t, "accepted", first["status"])

	// The same email again, differently cased: the same answer, and nothing changes.
	resp = a.register("ada@example.com", "second password", "Impostor")
	require.Equal(t, http.StatusAccepted, resp.Status, resp.String())
	assert.Equal(t, first, resp.json(t), "a taken email must not be told apart")

	resp = a.login("ada@example.com", "second password")
	assert.Equal(t, http.StatusUnauthorized, resp.Status, "the second registration's password must not work")
	u := &testUser{Email: "ada@example.com", Password: "first password"}
	a.signIn(u)
	me, status := a.me(u)
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, "Ada", me.DisplayName)
	assert.Equal(t, "ada@example.com", me.Email, "emails are stored lower-cased")
	assert.Equal(t, u.ID, me.ID)

	// Without a display name, the part before the @ is used.
	require.Equal(t, http.StatusAccepted, a.register("grace@example.com", "a password!", "").Status)
	g := &testUser{Email: "grace@example.com", Password: "a password!"}
	a.signIn(g)
	me, _ = a.me(g)
	assert.Equal(t, "grace", me.DisplayName)
	assert.JSONEq(t, `{}`, string(me.Preferences))
}

func TestLogin(t *testing.T) {
	a := newTestAPI(t, Config{}, testDomainConfig())
	u := a.signUp("user")

	resp := a.login(u.Email, u.Password)
	require.Equal(t, http.StatusOK, resp.Status)
	var tok tokens
	resp.decode(t, &tok)
	assert.Equal(t, "Bearer", tok.TokenType)
	assert.Equal(t, u.ID, tok.UserID)
	assert.NotEqual(t, u.SessionID, tok.SessionID, "every login starts a new session")
	assert.True(t, strings.HasPrefix(tok.RefreshToken, "tnr_"))
	assert.InDelta(t, 15*60, tok.ExpiresIn, 2, "access tokens live 15 minutes by default")
	assert.WithinDuration(t, time.Now().Add(15*time.Minute), tok.ExpiresAt, 5*time.Second)
	assert.WithinDuration(t, time.Now().Add(30*24*time.Hour), tok.RefreshExpiresAt, 5*time.Second)

	wrong := a.login(u.Email, "not the password")
	unknown := a.login("nobody@example.com", "not the password")
	invalid := a.login("not an email", "not the password")
	for _, r := range []*response{wrong, unknown, invalid} {
		require.Equal(t, http.StatusUnauthorized, r.Status, r.String())
		assert.Equal(t, domain.EUnauthenticated, r.errCode())
		assert.Equal(t, wrong.errMessage(t), r.errMessage(t), "the answer must not tell which part was wrong")
	}
	// The email is matched case-insensitively.
	assert.Equal(t, http.StatusOK, a.login(strings.ToUpper(u.Email), u.Password).Status)
}

func TestRefreshRotation(t *testing.T) {
	clock := newTestClock()
	a := newTestAPI(t, Config{}, domain.Config{Now: clock.Now})
	u := a.signUp("user")

	resp := a.refresh(u.Refresh)
	require.Equal(t, http.StatusOK, resp.Status, resp.String())
	var next tokens
	resp.decode(t, &next)
	assert.NotEqual(t, u.Refresh, next.RefreshToken, "refresh tokens rotate")
	assert.NotEqual(t, u.Access, next.AccessToken)
	assert.Equal(t, u.SessionID, next.SessionID, "rotation keeps the session")
	assert.Equal(t, u.ID, next.UserID)
	_, status := a.me(&testUser{Access: next.AccessToken})
	assert.Equal(t, http.StatusOK, status)

	// The chain goes on.
	clock.Advance(time.Minute)
	resp = a.refresh(next.RefreshToken)
	require.Equal(t, http.StatusOK, resp.Status, resp.String())
	var third tokens
	resp.decode(t, &third)
	assert.Equal(t, u.SessionID, third.SessionID)

	for _, bad := range []string{"", "tnr_unknown", "not-a-token", strings.Repeat("x", 200)} {
		resp := a.refresh(bad)
		assert.Equal(t, http.StatusUnauthorized, resp.Status, "refresh with %q: %s", bad, resp)
		assert.Equal(t, domain.EUnauthenticated, resp.errCode())
	}

	// Refresh tokens expire.
	clock.Advance(31 * 24 * time.Hour)
	assert.Equal(t, http.StatusUnauthorized, a.refresh(third.RefreshToken).Status)
}

func TestRefreshReuseRevokesSession(t *testing.T) {
	clock := newTestClock()
	a := newTestAPI(t, Config{}, domain.Config{Now: clock.Now, RefreshGrace: 10 * time.Second})
	u := a.signUp("user")
	other := &testUser{Email: u.Email, Password: u.Password}
	a.signIn(other) // a second session of the same user

	resp := a.refresh(u.Refresh)
	require.Equal(t, http.StatusOK, resp.Status)
	var next tokens
	resp.decode(t, &next)

	// Within the grace window a spent token still works (two tabs racing)
	// and yields another token of the same session.
	clock.Advance(5 * time.Second)
	resp = a.refresh(u.Refresh)
	require.Equal(t, http.StatusOK, resp.Status, "within the grace window: %s", resp)
	var again tokens
	resp.decode(t, &again)
	assert.Equal(t, u.SessionID, again.SessionID)
	assert.NotEqual(t, next.RefreshToken, again.RefreshToken)

	// After it, spending the token again is theft: the whole session ends.
	clock.Advance(6 * time.Second)
	resp = a.refresh(u.Refresh)
	require.Equal(t, http.StatusUnauthorized, resp.Status, resp.String())
	assert.Equal(t, domain.EUnauthenticated, resp.errCode())
	assert.Contains(t, resp.errMessage(t), "revoked")
	for _, tok := range []string{next.RefreshToken, again.RefreshToken, u.Refresh} {
		assert.Equal(t, http.StatusUnauthorized, a.refresh(tok).Status, "every token of the session is revoked")
	}
	// Other sessions are untouched.
	assert.Equal(t, http.StatusOK, a.refresh(other.Refresh).Status)
}

func TestConcurrentRefresh(t *testing.T) {
	a := newTestAPI(t, Config{}, testDomainConfig())
	u := a.signUp("user")

	const n = 2
	results := make([]*response, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i] = a.refresh(u.Refresh)
		}()
	}
	close(start)
	wg.Wait()

	seen := map[string]bool{}
	for i, resp := range results {
		require.Equal(t, http.StatusOK, resp.Status, "refresh %d: %s", i, resp)
		var tok tokens
		resp.decode(t, &tok)
		assert.Equal(t, u.SessionID, tok.SessionID)
		assert.False(t, seen[tok.RefreshToken], "each caller gets its own refresh token")
		seen[tok.RefreshToken] = true
		_, status := a.me(&testUser{Access: tok.AccessToken})
		assert.Equal(t, http.StatusOK, status, "the access token of refresh %d works", i)
		assert.Equal(t, http.StatusOK, a.refresh(tok.RefreshToken).Status, "the refresh token of refresh %d works", i)
	}
}

func TestLogout(t *testing.T) {
	a := newTestAPI(t, Config{}, testDomainConfig())
	u := a.signUp("user")
	other := &testUser{Email: u.Email, Password: u.Password}
	a.signIn(other)

	resp := a.do("POST", "/api/v1/auth/logout", "", map[string]string{"refresh_token": u.Refresh})
	require.Equal(t, http.StatusNoContent, resp.Status, resp.String())
	assert.Empty(t, resp.Body)
	assert.Equal(t, http.StatusUnauthorized, a.refresh(u.Refresh).Status, "the session is over")
	assert.Equal(t, http.StatusOK, a.refresh(other.Refresh).Status, "only that session")

	// Logging out again, or with an unknown token, is not an error.
	for _, tok := range []string{u.Refresh, "tnr_unknown", "garbage"} {
		resp := a.do("POST", "/api/v1/auth/logout", "", map[string]string{"refresh_token": tok})
		assert.Equal(t, http.StatusNoContent, resp.Status, resp.String())
	}
}

func TestLogoutEverywhere(t *testing.T) {
	a := newTestAPI(t, Config{}, testDomainConfig())
	u := a.signUp("user")
	second := &testUser{Email: u.Email, Password: u.Password}
	a.signIn(second)
	bystander := a.signUp("bystander")

	resp := a.do("POST", "/api/v1/auth/logout-everywhere", "", nil)
	require.Equal(t, http.StatusUnauthorized, resp.Status, "needs a signed-in user")

	resp = a.do("POST", "/api/v1/auth/logout-everywhere", u.Access, nil)
	require.Equal(t, http.StatusNoContent, resp.Status, resp.String())
	assert.Equal(t, http.StatusUnauthorized, a.refresh(u.Refresh).Status)
	assert.Equal(t, http.StatusUnauthorized, a.refresh(second.Refresh).Status)
	assert.Equal(t, http.StatusOK, a.refresh(bystander.Refresh).Status, "other users keep their sessions")

	// Signing in again starts a fresh, working session.
	fresh := &testUser{Email: u.Email, Password: u.Password}
	a.signIn(fresh)
	assert.Equal(t, http.StatusOK, a.refresh(fresh.Refresh).Status)
}

func TestAccessTokenExpiry(t *testing.T) {
	clock := newTestClock()
	a := newTestAPI(t, Config{}, domain.Config{Now: clock.Now, AccessTTL: time.Minute})
	u := a.signUp("user")
	_, status := a.me(u)
	require.Equal(t, http.StatusOK, status)
	clock.Advance(2 * time.Minute)
	resp := a.do("GET", "/api/v1/me", u.Access, nil)
	require.Equal(t, http.StatusUnauthorized, resp.Status)
	assert.Equal(t, "Access token expired.", resp.errMessage(t))
	// The refresh token still brings a new access token.
	resp = a.refresh(u.Refresh)
	require.Equal(t, http.StatusOK, resp.Status)
	var tok tokens
	resp.decode(t, &tok)
	_, status = a.me(&testUser{Access: tok.AccessToken})
	assert.Equal(t, http.StatusOK, status)
}

// TestLoginRateLimits checks the login limits per account and per client
// address: 429 with Retry-After and the rate_limited envelope.
func TestLoginRateLimits(t *testing.T) {
	// Client addresses come from X-Forwarded-For when the peer is a trusted proxy.
	trusted := []string{"127.0.0.0/8", "::1/128"}

	t.Run("per account", func(t *testing.T) {
		a := newTestAPI(t, Config{
			TrustedProxies:  trusted,
			LoginPerAccount: Rate{N: 3, Window: time.Minute},
			LoginPerIP:      Rate{N: 100, Window: time.Minute},
		}, testDomainConfig())
		u, other := a.signUp("victim"), a.signUp("other") // one login each
		for i := range 2 {
			resp := a.login(u.Email, "wrong password", "X-Forwarded-For", "203.0.113.1")
			require.Equal(t, http.StatusUnauthorized, resp.Status, "attempt %d: %s", i+2, resp)
		}
		// The fourth attempt is refused, even with the right password, another
		// spelling of the email and another address.
		resp := a.login(strings.ToUpper(u.Email), u.Password, "X-Forwarded-For", "203.0.113.2", RequestIDHeader, "limited-1")
		require.Equal(t, http.StatusTooManyRequests, resp.Status, resp.String())
		assertRateLimited(t, resp)
		assert.Equal(t, "limited-1", resp.errCorrelationID())
		// Other accounts are not affected.
		assert.Equal(t, http.StatusOK, a.login(other.Email, other.Password, "X-Forwarded-For", "203.0.113.1").Status)
	})

	t.Run("per address", func(t *testing.T) {
		a := newTestAPI(t, Config{
			TrustedProxies:  trusted,
			LoginPerIP:      Rate{N: 3, Window: time.Minute},
			LoginPerAccount: Rate{N: 100, Window: time.Minute},
		}, testDomainConfig())
		u := &testUser{Email: "user@example.com", Password: testPassword}
		require.Equal(t, http.StatusAccepted, a.register(u.Email, u.Password, "").Status)
		for i := range 3 {
			resp := a.login("someone"+string(rune('a'+i))+"@example.com", "guess", "X-Forwarded-For", "198.51.100.7")
			require.Equal(t, http.StatusUnauthorized, resp.Status, resp.String())
		}
		resp := a.login(u.Email, u.Password, "X-Forwarded-For", "198.51.100.7")
		require.Equal(t, http.StatusTooManyRequests, resp.Status, resp.String())
		assertRateLimited(t, resp)
		// Another address may still sign in.
		assert.Equal(t, http.StatusOK, a.login(u.Email, u.Password, "X-Forwarded-For", "198.51.100.8").Status)
	})

	t.Run("registration per address", func(t *testing.T) {
		a := newTestAPI(t, Config{LoginPerIP: Rate{N: 2, Window: time.Minute}}, testDomainConfig())
		for i := range 2 {
			require.Equal(t, http.StatusAccepted, a.register(uuid.NewString()+"@example.com", testPassword, "").Status, "registration %d", i)
		}
		email := "late@example.com"
		resp := a.register(email, testPassword, "")
		require.Equal(t, http.StatusTooManyRequests, resp.Status, resp.String())
		assertRateLimited(t, resp)
		assert.Equal(t, http.StatusUnauthorized, a.login(email, testPassword).Status, "a refused registration creates nothing")
	})
}

// assertRateLimited checks a 429 answer: Retry-After in seconds and the
// envelope with code rate_limited.
func assertRateLimited(t *testing.T, resp *response) {
	t.Helper()
	assert.Equal(t, domain.ERateLimited, resp.errCode())
	assert.Equal(t, "60", resp.Header.Get("Retry-After"), "Retry-After is the window in seconds")
	assert.Contains(t, resp.errMessage(t), "retry after 60s")
	assert.Equal(t, resp.Header.Get(RequestIDHeader), resp.errCorrelationID())
}

// TestRequestRateLimits checks the limits on all API requests: per client
// address and per signed-in user.
func TestRequestRateLimits(t *testing.T) {
	t.Run("per address", func(t *testing.T) {
		a := newTestAPI(t, Config{
			TrustedProxies: []string{"127.0.0.0/8", "::1/128"},
			RequestsPerIP:  Rate{N: 3, Window: time.Minute},
		}, testDomainConfig())
		for range 3 {
			require.Equal(t, http.StatusOK, a.do("GET", "/api/v1/openapi.json", "", nil, "X-Forwarded-For", "192.0.2.1").Status)
		}
		resp := a.do("GET", "/api/v1/openapi.json", "", nil, "X-Forwarded-For", "192.0.2.1")
		require.Equal(t, http.StatusTooManyRequests, resp.Status, resp.String())
		assertRateLimited(t, resp)
		resp = a.do("GET", "/api/v1/openapi.json", "", nil, "X-Forwarded-For", "192.0.2.2")
		assert.Equal(t, http.StatusOK, resp.Status, "another client address has its own budget: %s", resp)
		// The operational endpoints are not limited.
		assert.Equal(t, http.StatusOK, a.do("GET", "/healthz", "", nil, "X-Forwarded-For", "192.0.2.1").Status)
	})

	t.Run("per user", func(t *testing.T) {
		a := newTestAPI(t, Config{RequestsPerUser: Rate{N: 3, Window: time.Minute}}, testDomainConfig())
		u, other := a.signUp("busy"), a.signUp("calm")
		for range 3 {
			_, status := a.me(u)
			require.Equal(t, http.StatusOK, status)
		}
		resp := a.do("GET", "/api/v1/me", u.Access, nil)
		require.Equal(t, http.StatusTooManyRequests, resp.Status, resp.String())
		assertRateLimited(t, resp)
		_, status := a.me(other)
		assert.Equal(t, http.StatusOK, status, "another user has their own budget")
	})
}
