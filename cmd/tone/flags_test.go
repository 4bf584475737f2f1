package main

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain/postgres/pgtest"
	"github.com/tone-ai/tone/realtime"
	"github.com/tone-ai/tone/realtime/rtclient"
)

// TestFlagsEndToEnd: a flag changed over REST reaches the subscribers of
// the project's flags channel as a delta with the environment's new
// version, through the outbox; a user outside the project cannot subscribe;
// an SDK key evaluates the flag.
func TestFlagsEndToEnd(t *testing.T) {
	for _, store := range []string{"memory", "postgres"} {
		t.Run(store, func(t *testing.T) {
			var args []string
			if store == "postgres" {
				db := pgtest.NewEmptyDB(t)
				args = []string{"--database-url", db.AppURL, "--migrate-database-url", db.OwnerURL, "--migrate"}
			}
			base, stop, _ := startServer(t, args...)
			ws, ann := walkThrough(t, base)
			pid := ann.do("GET", "/workspaces/"+ws+"/projects", nil, 200)["items"].([]any)[0].(map[string]any)["id"].(string)
			anon := &client{t: t, base: base}
			bob := &client{t: t, base: base, token: anon.do("POST", "/auth/login",
				map[string]string{"email": "bob@example.com", "password": "another good one"}, 200)["access_token"].(string)}
			anon.do("POST", "/auth/register", map[string]string{"email": "eve@example.com", "password": "yet another one"}, 202)
			eve := anon.do("POST", "/auth/login", map[string]string{"email": "eve@example.com", "password": "yet another one"}, 200)["access_token"].(string)

			flags := subscribe(t, base, bob.token, "flags:"+pid)
			conn, err := rtclient.Dial(context.Background(), wsURL(base), eve, rtclient.Options{})
			require.NoError(t, err)
			defer conn.CloseNow()
			_, err = conn.Request(context.Background(), &realtime.Frame{Type: realtime.TypeSubscribe, Channel: "flags:" + pid})
			var rerr *rtclient.Error
			require.ErrorAs(t, err, &rerr, "a non-member cannot subscribe")
			assert.Equal(t, "not_found", rerr.Code)

			def := map[string]any{
				"type": "boolean", "enabled": true, "variants": map[string]any{"on": true, "off": false},
				"off_variant": "off", "default": map[string]any{"variant": "on"},
			}
			ann.do("PUT", "/projects/"+pid+"/environments/production/flags/dark-mode", def, 201)
			f, ev := nextEvent(t, flags)
			assert.Equal(t, "flags:"+pid, f.Channel)
			assert.Equal(t, "flags.changed", ev["type"])
			data := ev["data"].(map[string]any)
			assert.Equal(t, "production", data["environment"])
			assert.EqualValues(t, 1, data["version"])
			assert.Equal(t, "flag", data["kind"])
			assert.Equal(t, "dark-mode", data["key"])
			assert.Equal(t, false, data["deleted"])
			assert.Equal(t, "boolean", data["definition"].(map[string]any)["type"])

			ann.do("DELETE", "/projects/"+pid+"/environments/production/flags/dark-mode", nil, 204)
			_, ev = nextEvent(t, flags)
			data = ev["data"].(map[string]any)
			assert.EqualValues(t, 2, data["version"])
			assert.Equal(t, true, data["deleted"])
			assert.NotContains(t, data, "definition")

			ann.do("PUT", "/projects/"+pid+"/environments/production/flags/dark-mode", def, 201)
			key := ann.do("POST", "/projects/"+pid+"/sdk-keys", map[string]string{"environment": "production", "name": "web"}, 201)["key"].(string)
			sdk := &client{t: t, base: base, token: key}
			got := sdk.do("POST", "/sdk/evaluate", map[string]any{"flag_key": "dark-mode", "context": map[string]any{"targetingKey": "u1"}}, 200)
			assert.Equal(t, true, got["value"])
			assert.Equal(t, "DEFAULT", got["reason"])
			assert.EqualValues(t, 3, got["flag_version"])
			require.NoError(t, stop())
		})
	}
}
