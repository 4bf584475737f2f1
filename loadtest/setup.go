package loadtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// RelaxedServerFlags are the `tone serve` flags a load test needs: the
// setup registers and logs in many users from one address, and the test
// opens many connections per user. maxConnsPerUser is at least the
// connections the test puts on one user.
func RelaxedServerFlags(maxConnsPerUser int) string {
	return fmt.Sprintf("--login-rate-ip 100000/1m --login-rate-account 1000/1m --rate-ip 1000000/1m --rate-user 1000000/1m "+
		"--max-connections-per-user %d --access-token-ttl 1h", max(maxConnsPerUser, 64))
}

// errRateLimited is returned when the server answers 429 during setup.
var errRateLimited = errors.New("the server answered 429 Too Many Requests")

// restClient talks to the REST API during setup.
type restClient struct {
	base string // http://host:port
	http *http.Client
}

// apiError is a non-2xx answer.
type apiError struct {
	Status int
	Body   string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("HTTP %d: %s", e.Status, strings.TrimSpace(e.Body))
}

// do sends a JSON request and decodes a JSON answer into out (if not nil).
func (c *restClient) do(ctx context.Context, method, path, token string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode == http.StatusTooManyRequests {
		return fmt.Errorf("%s %s: %w", method, path, errRateLimited)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %w", method, path, &apiError{resp.StatusCode, string(b)})
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: %v", method, path, err)
		}
	}
	return nil
}

// account is a registered, logged-in user.
type account struct {
	Email string
	ID    string
	Token string
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// register creates a user with a random email and logs it in.
func (c *restClient) register(ctx context.Context, run string, i int) (*account, error) {
	email := fmt.Sprintf("loadtest-%s-%d@example.com", run, i)
	pw := "loadtest-" + randomHex(12)
	if err := c.do(ctx, "POST", "/api/v1/auth/register", "", map[string]string{"email": email, "password": pw, "display_name": fmt.Sprintf("Load %d", i)}, nil); err != nil {
		return nil, err
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		UserID      string `json:"user_id"`
	}
	if err := c.do(ctx, "POST", "/api/v1/auth/login", "", map[string]string{"email": email, "password": pw}, &tok); err != nil {
		return nil, err
	}
	return &account{Email: email, ID: tok.UserID, Token: tok.AccessToken}, nil
}

// fixture is what the setup made: users (the first owns the workspace),
// one project every user edits, and canvases in it.
type fixture struct {
	Users    []*account
	Project  string
	Canvases []string
}

// setup registers users, makes the first the owner of a new workspace
// and project, adds the others as editors of the workspace, and creates
// canvases in the project.
func setup(ctx context.Context, c *restClient, users, canvases int, logf func(string, ...any)) (*fixture, error) {
	start := time.Now()
	run := randomHex(4)
	fx := &fixture{Users: make([]*account, users)}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8) // password hashing is the cost; the server has few cores
	for i := range users {
		g.Go(func() error {
			a, err := c.register(gctx, run, i)
			fx.Users[i] = a
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	owner := fx.Users[0]
	var ws, proj struct {
		ID string `json:"id"`
	}
	if err := c.do(ctx, "POST", "/api/v1/workspaces", owner.Token, map[string]string{"name": "Load test " + run}, &ws); err != nil {
		return nil, err
	}
	if err := c.do(ctx, "POST", "/api/v1/workspaces/"+ws.ID+"/projects", owner.Token, map[string]string{"name": "Load"}, &proj); err != nil {
		return nil, err
	}
	fx.Project = proj.ID
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, u := range fx.Users[1:] {
		g.Go(func() error {
			return c.do(gctx, "POST", "/api/v1/workspaces/"+ws.ID+"/members", owner.Token, map[string]string{"email": u.Email, "role": "editor"}, nil)
		})
	}
	var mu sync.Mutex
	fx.Canvases = make([]string, canvases)
	for i := range canvases {
		g.Go(func() error {
			var cv struct {
				ID string `json:"id"`
			}
			err := c.do(gctx, "POST", "/api/v1/projects/"+proj.ID+"/canvases", owner.Token, map[string]string{"name": fmt.Sprintf("Canvas %d", i)}, &cv)
			mu.Lock()
			fx.Canvases[i] = cv.ID
			mu.Unlock()
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	logf("setup: %d users, workspace %s, project %s, %d canvases in %s", users, ws.ID, proj.ID, canvases, time.Since(start).Round(time.Millisecond))
	return fx, nil
}

func newGet(ctx context.Context, url string) (*http.Request, error) {
	return http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
}
