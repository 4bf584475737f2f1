package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/tone-ai/tone/domain/postgres/pgtest"
	"github.com/tone-ai/tone/realtime"
	"github.com/tone-ai/tone/realtime/rtclient"
)

// patch sends a PATCH with a JSON body and our own correlation id.
func (c *client) patch(path, requestID string, body any) {
	c.t.Helper()
	b, err := json.Marshal(body)
	require.NoError(c.t, err)
	req, err := http.NewRequest("PATCH", c.base+"/api/v1"+path, bytes.NewReader(b))
	require.NoError(c.t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("X-Request-ID", requestID)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(c.t, err)
	resp.Body.Close()
	require.Equal(c.t, 200, resp.StatusCode, "PATCH %s", path)
}

// subscribe dials the realtime endpoint and subscribes to ch.
func subscribe(t *testing.T, base, token, ch string) *rtclient.Conn {
	t.Helper()
	c, err := rtclient.Dial(context.Background(), wsURL(base), token, rtclient.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { c.CloseNow() })
	_, err = c.Request(context.Background(), &realtime.Frame{Type: realtime.TypeSubscribe, Channel: ch})
	require.NoError(t, err)
	return c
}

// nextEvent waits for the next msg frame on c and decodes its event.
func nextEvent(t *testing.T, c *rtclient.Conn) (*realtime.Frame, map[string]any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		f, err := c.Next(ctx)
		require.NoError(t, err, "waiting for an event")
		if f.Type != realtime.TypeMessage {
			continue
		}
		var ev map[string]any
		require.NoError(t, msgpack.Unmarshal(f.Data, &ev))
		return f, ev
	}
}

// TestEventsEndToEnd: a PATCH over REST reaches the subscribers of the
// project's channel, and a role change the member's notifications, through
// the outbox and its relay, with the request's correlation id.
func TestEventsEndToEnd(t *testing.T) {
	for _, store := range []string{"memory", "postgres"} {
		t.Run(store, func(t *testing.T) {
			var args []string
			if store == "postgres" {
				db := pgtest.NewEmptyDB(t)
				args = []string{"--database-url", db.AppURL, "--migrate-database-url", db.OwnerURL, "--migrate"}
			}
			base, stop, logs := startServer(t, args...)
			ws, ann := walkThrough(t, base)
			pid := ann.do("GET", "/workspaces/"+ws+"/projects", nil, 200)["items"].([]any)[0].(map[string]any)["id"].(string)
			anon := &client{t: t, base: base}
			bob := &client{t: t, base: base, token: anon.do("POST", "/auth/login",
				map[string]string{"email": "bob@example.com", "password": "another good one"}, 200)["access_token"].(string)}
			bobID := bob.do("GET", "/me", nil, 200)["id"].(string)
			annID := ann.do("GET", "/me", nil, 200)["id"].(string)

			project := subscribe(t, base, bob.token, "project:"+pid)
			notes := subscribe(t, base, bob.token, "notifications:"+bobID)

			ann.patch("/projects/"+pid, "e2e-update-1", map[string]string{"name": "Launch site"})
			f, ev := nextEvent(t, project)
			assert.Equal(t, "project:"+pid, f.Channel)
			assert.Empty(t, f.User, "server events name no user")
			assert.Equal(t, "project.updated", ev["type"])
			assert.Equal(t, "e2e-update-1", ev["correlation_id"])
			data := ev["data"].(map[string]any)
			assert.Equal(t, pid, data["project_id"])
			assert.Equal(t, "Launch site", data["name"])
			assert.Equal(t, []any{"name"}, data["fields"])
			assert.NotEmpty(t, ev["id"])
			assert.InDelta(t, time.Now().UnixMilli(), ev["at"], float64(time.Minute.Milliseconds()))

			ann.patch("/workspaces/"+ws+"/members/"+bobID, "e2e-role-1", map[string]string{"role": "admin"})
			_, ev = nextEvent(t, notes)
			assert.Equal(t, "workspace.member.role_changed", ev["type"])
			assert.Equal(t, "e2e-role-1", ev["correlation_id"])
			data = ev["data"].(map[string]any)
			// The event is also an entry of bob's inbox, with his new counts
			// (added as editor, then this).
			inbox := bob.do("GET", "/notifications", nil, 200)["items"].([]any)
			require.Len(t, inbox, 2)
			assert.Equal(t, inbox[0].(map[string]any)["id"], data["notification_id"])
			for k, want := range map[string]string{"count": "1", "unseen": "2", "unread": "2"} {
				assert.Equal(t, want, fmt.Sprint(data[k]), k)
				delete(data, k)
			}
			delete(data, "notification_id")
			assert.Equal(t, map[string]any{
				"workspace_id": ws, "workspace_name": "Acme", "role": "admin", "previous_role": "editor",
				"actor_id": annID,
			}, data)

			require.NoError(t, stop())
			assert.NotContains(t, logs.String(), "outbox relay", "the relay neither failed nor hung")
		})
	}
}
