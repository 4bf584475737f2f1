package http

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain"
	"github.com/tone-ai/tone/domain/flag"
)

// proFlag is a boolean flag serving true to contexts with plan "pro".
func proFlag() map[string]any {
	return map[string]any{
		"type": "boolean", "enabled": true,
		"variants":    map[string]any{"on": true, "off": false},
		"off_variant": "off",
		"rules": []any{map[string]any{
			"conditions": []any{map[string]any{"attribute": "plan", "op": "equals", "values": []any{"pro"}}},
			"serve":      map[string]any{"variant": "on"},
		}},
		"default": map[string]any{"variant": "off"},
	}
}

// seedFlags gives the fixture's project a flag "seeded", a config value
// "limit" and a segment "staff", written by the owner through the service.
func (f *accessFixture) seedFlags(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	var fl flag.Flag
	raw, _ := json.Marshal(proFlag())
	require.NoError(t, json.Unmarshal(raw, &fl))
	fl.Key = "seeded"
	_, _, err := f.a.svc.PutFlag(ctx, f.owner.ID, f.project, "production", &fl)
	require.NoError(t, err)
	_, _, err = f.a.svc.PutConfig(ctx, f.owner.ID, f.project, "production", &domain.ConfigValue{Key: "limit", Type: flag.Number, Value: json.RawMessage("5")})
	require.NoError(t, err)
	_, _, err = f.a.svc.PutSegment(ctx, f.owner.ID, f.project, &flag.Segment{Key: "staff", Rules: []flag.SegmentRule{{
		Conditions: []flag.Condition{{Attribute: "email", Op: flag.OpEndsWith, Values: []any{"@tone.dev"}}}}}})
	require.NoError(t, err)
}

// exists reports whether the owner can GET path.
func (f *accessFixture) exists(path string) bool {
	return f.a.do("GET", path, f.owner.Access, nil).Status == http.StatusOK
}

// flagMutations are the access matrix cases of the flag endpoints. The
// evaluation endpoints change nothing; their "took" is whether the actor
// can evaluate at all.
func flagMutations() []mutation {
	env := func(f *accessFixture, rest string) string { return f.projectPath("/environments/production" + rest) }
	return []mutation{
		{
			name: "put flag", route: "PUT /api/v1/projects/{projectID}/environments/{environment}/flags/{flagKey}",
			scopes: bothScopes, action: domain.ActFlagWrite, success: http.StatusCreated,
			call: func(f *accessFixture) *response {
				return f.a.do("PUT", env(f, "/flags/new-flag"), f.actor.Access, proFlag())
			},
			took: func(t *testing.T, f *accessFixture) bool { return f.exists(env(f, "/flags/new-flag")) },
		},
		{
			name: "delete flag", route: "DELETE /api/v1/projects/{projectID}/environments/{environment}/flags/{flagKey}",
			scopes: bothScopes, action: domain.ActFlagWrite, success: http.StatusNoContent,
			call: func(f *accessFixture) *response {
				f.seedFlags(f.a.t)
				return f.a.do("DELETE", env(f, "/flags/seeded"), f.actor.Access, nil)
			},
			took: func(t *testing.T, f *accessFixture) bool { return !f.exists(env(f, "/flags/seeded")) },
		},
		{
			name: "put config value", route: "PUT /api/v1/projects/{projectID}/environments/{environment}/config/{configKey}",
			scopes: bothScopes, action: domain.ActFlagWrite, success: http.StatusCreated,
			call: func(f *accessFixture) *response {
				return f.a.do("PUT", env(f, "/config/greeting"), f.actor.Access, map[string]any{"type": "string", "value": "hi"})
			},
			took: func(t *testing.T, f *accessFixture) bool { return f.exists(env(f, "/config/greeting")) },
		},
		{
			name: "delete config value", route: "DELETE /api/v1/projects/{projectID}/environments/{environment}/config/{configKey}",
			scopes: bothScopes, action: domain.ActFlagWrite, success: http.StatusNoContent,
			call: func(f *accessFixture) *response {
				f.seedFlags(f.a.t)
				return f.a.do("DELETE", env(f, "/config/limit"), f.actor.Access, nil)
			},
			took: func(t *testing.T, f *accessFixture) bool { return !f.exists(env(f, "/config/limit")) },
		},
		{
			name: "put segment", route: "PUT /api/v1/projects/{projectID}/segments/{segmentKey}",
			scopes: bothScopes, action: domain.ActFlagWrite, success: http.StatusCreated,
			call: func(f *accessFixture) *response {
				return f.a.do("PUT", f.projectPath("/segments/beta"), f.actor.Access, map[string]any{"rules": []any{}})
			},
			took: func(t *testing.T, f *accessFixture) bool { return f.exists(f.projectPath("/segments/beta")) },
		},
		{
			name: "delete segment", route: "DELETE /api/v1/projects/{projectID}/segments/{segmentKey}",
			scopes: bothScopes, action: domain.ActFlagWrite, success: http.StatusNoContent,
			call: func(f *accessFixture) *response {
				f.seedFlags(f.a.t)
				return f.a.do("DELETE", f.projectPath("/segments/staff"), f.actor.Access, nil)
			},
			took: func(t *testing.T, f *accessFixture) bool { return !f.exists(f.projectPath("/segments/staff")) },
		},
		{
			name: "create SDK key", route: "POST /api/v1/projects/{projectID}/sdk-keys",
			scopes: bothScopes, action: domain.ActSDKKeysManage, success: http.StatusCreated,
			call: func(f *accessFixture) *response {
				return f.a.do("POST", f.projectPath("/sdk-keys"), f.actor.Access, map[string]any{"environment": "production", "name": "web"})
			},
			took: func(t *testing.T, f *accessFixture) bool {
				return len(listAll[sdkKeyJSON](f.a, f.owner, f.projectPath("/sdk-keys"))) == 1
			},
		},
		{
			name: "revoke SDK key", route: "DELETE /api/v1/projects/{projectID}/sdk-keys/{keyID}",
			scopes: bothScopes, action: domain.ActSDKKeysManage, success: http.StatusNoContent,
			call: func(f *accessFixture) *response {
				k, _, err := f.a.svc.CreateSDKKey(context.Background(), f.owner.ID, f.project, "production", "web")
				require.NoError(f.a.t, err)
				return f.a.do("DELETE", f.projectPath("/sdk-keys/", k.ID.String()), f.actor.Access, nil)
			},
			took: func(t *testing.T, f *accessFixture) bool {
				ks := listAll[sdkKeyJSON](f.a, f.owner, f.projectPath("/sdk-keys"))
				return len(ks) == 1 && ks[0].RevokedAt != nil
			},
		},
		{
			name: "evaluate flag", route: "POST /api/v1/projects/{projectID}/environments/{environment}/evaluate",
			scopes: bothScopes, action: domain.ActFlagRead, success: http.StatusOK,
			call: func(f *accessFixture) *response {
				f.seedFlags(f.a.t)
				return f.a.do("POST", env(f, "/evaluate"), f.actor.Access, map[string]any{"flag_key": "seeded", "context": map[string]any{"plan": "pro"}})
			},
			took: func(t *testing.T, f *accessFixture) bool {
				resp := f.a.do("POST", env(f, "/evaluate"), f.actor.Access, map[string]any{"flag_key": "seeded", "context": map[string]any{"plan": "pro"}})
				return resp.Status == http.StatusOK && resp.json(t)["variant"] == "on"
			},
		},
		{
			name: "evaluate flags", route: "POST /api/v1/projects/{projectID}/environments/{environment}/evaluate-batch",
			scopes: bothScopes, action: domain.ActFlagRead, success: http.StatusOK,
			call: func(f *accessFixture) *response {
				f.seedFlags(f.a.t)
				return f.a.do("POST", env(f, "/evaluate-batch"), f.actor.Access, map[string]any{})
			},
			took: func(t *testing.T, f *accessFixture) bool {
				return f.a.do("POST", env(f, "/evaluate-batch"), f.actor.Access, map[string]any{}).Status == http.StatusOK
			},
		},
	}
}

func TestFlagsAPI(t *testing.T) {
	a := newTestAPI(t, Config{}, testDomainConfig())
	owner, viewer := a.signUp("owner"), a.signUp("viewer")
	ws := a.createWorkspace(owner, "Acme")
	p := a.createProject(owner, ws, "Rocket")
	a.addMember(owner, "projects", p, viewer, domain.RoleViewer)
	base := "/api/v1/projects/" + p.String()
	env := base + "/environments/production"

	resp := a.do("PUT", env+"/flags/checkout", owner.Access, proFlag())
	require.Equal(t, http.StatusCreated, resp.Status, resp)
	var created flagJSON
	resp.decode(t, &created)
	assert.Equal(t, "checkout", created.Key)
	assert.Equal(t, int64(1), created.Version)
	assert.NotEmpty(t, created.Salt)

	resp = a.do("PUT", env+"/flags/checkout", owner.Access, proFlag())
	require.Equal(t, http.StatusOK, resp.Status, resp)
	resp.decode(t, &created)
	assert.Equal(t, int64(2), created.Version)

	// Bad input names the field and stores nothing.
	bad := proFlag()
	bad["off_variant"] = "maybe"
	resp = a.do("PUT", env+"/flags/other", owner.Access, bad)
	require.Equal(t, http.StatusBadRequest, resp.Status, resp)
	assert.Equal(t, "off_variant", resp.errDetails()["field"])
	bad = proFlag()
	bad["key"] = "not-other"
	resp = a.do("PUT", env+"/flags/other", owner.Access, bad)
	require.Equal(t, http.StatusBadRequest, resp.Status, resp)
	assert.Equal(t, "key", resp.errDetails()["field"])
	bad = proFlag()
	bad["colour"] = "red"
	assert.Equal(t, http.StatusBadRequest, a.do("PUT", env+"/flags/other", owner.Access, bad).Status)
	assert.Equal(t, http.StatusBadRequest, a.do("GET", base+"/environments/Prod!/flags", owner.Access, nil).Status)
	assert.Equal(t, http.StatusNotFound, a.do("GET", env+"/flags/other", owner.Access, nil).Status)

	// Viewers read and evaluate, and cannot write.
	assert.Equal(t, http.StatusForbidden, a.do("PUT", env+"/flags/other", viewer.Access, proFlag()).Status)
	var list struct{ Items []flagJSON }
	a.do("GET", env+"/flags", viewer.Access, nil).decode(t, &list)
	require.Len(t, list.Items, 1)
	assert.Equal(t, "checkout", list.Items[0].Key)

	resp = a.do("POST", env+"/evaluate", viewer.Access, map[string]any{"flag_key": "checkout", "context": map[string]any{"plan": "pro"}})
	require.Equal(t, http.StatusOK, resp.Status, resp)
	assert.JSONEq(t, `{"flag_key":"checkout","value":true,"variant":"on","reason":"TARGETING_MATCH","flag_version":2}`, string(resp.Body))
	resp = a.do("POST", env+"/evaluate", viewer.Access, map[string]any{"flag_key": "nope"})
	require.Equal(t, http.StatusOK, resp.Status, resp)
	assert.Equal(t, "FLAG_NOT_FOUND", resp.json(t)["error_code"])
	assert.Nil(t, resp.json(t)["value"])
	resp = a.do("POST", env+"/evaluate", viewer.Access, map[string]any{"flag_key": "checkout", "type": "string"})
	assert.Equal(t, "TYPE_MISMATCH", resp.json(t)["error_code"])
	assert.Equal(t, http.StatusBadRequest, a.do("POST", env+"/evaluate", viewer.Access, map[string]any{}).Status)

	_ = a.do("PUT", env+"/config/limit", owner.Access, map[string]any{"type": "number", "value": 5})
	resp = a.do("POST", env+"/evaluate-batch", viewer.Access, map[string]any{"flag_keys": []string{"checkout", "nope"}, "context": map[string]any{"plan": "free"}})
	require.Equal(t, http.StatusOK, resp.Status, resp)
	var batch evaluateBatchJSON
	resp.decode(t, &batch)
	assert.Equal(t, int64(3), batch.EnvironmentVersion)
	require.Len(t, batch.Evaluations, 2)
	assert.Equal(t, flag.ReasonDefault, batch.Evaluations[0].Reason)
	assert.Equal(t, flag.ErrFlagNotFound, batch.Evaluations[1].ErrorCode)

	// Catching up: deltas, then a snapshot for a client ahead of the server.
	resp = a.do("GET", env+"/changes?since=1", viewer.Access, nil)
	require.Equal(t, http.StatusOK, resp.Status, resp)
	var sync flagSyncJSON
	resp.decode(t, &sync)
	assert.False(t, sync.Snapshot)
	assert.Equal(t, int64(3), sync.Version)
	require.Len(t, sync.Changes, 2)
	assert.Equal(t, "checkout", sync.Changes[0].Key)
	assert.Equal(t, "config", sync.Changes[1].Kind)
	resp = a.do("GET", env+"/changes?since=99", viewer.Access, nil)
	resp.decode(t, &sync)
	assert.True(t, sync.Snapshot)
	assert.Len(t, sync.Flags, 1)
	assert.Len(t, sync.Config, 1)
	assert.Equal(t, http.StatusBadRequest, a.do("GET", env+"/changes?since=x", viewer.Access, nil).Status)

	var envs struct{ Items []flagEnvironmentJSON }
	a.do("GET", base+"/flag-environments", viewer.Access, nil).decode(t, &envs)
	assert.Equal(t, []flagEnvironmentJSON{{Name: "production", Version: 3}}, envs.Items)

	// Segments.
	resp = a.do("PUT", base+"/segments/staff", owner.Access, map[string]any{"rules": []any{map[string]any{
		"conditions": []any{map[string]any{"attribute": "email", "op": "ends_with", "values": []any{"@tone.dev"}}}}}})
	require.Equal(t, http.StatusCreated, resp.Status, resp)
	gated := proFlag()
	gated["rules"] = []any{map[string]any{
		"conditions": []any{map[string]any{"op": "in_segment", "values": []any{"staff"}}},
		"serve":      map[string]any{"variant": "on"},
	}}
	require.Equal(t, http.StatusCreated, a.do("PUT", env+"/flags/gated", owner.Access, gated).Status)
	resp = a.do("POST", env+"/evaluate", viewer.Access, map[string]any{"flag_key": "gated", "context": map[string]any{"email": "a@tone.dev"}})
	assert.Equal(t, "on", resp.json(t)["variant"])
	assert.Equal(t, http.StatusConflict, a.do("DELETE", base+"/segments/staff", owner.Access, nil).Status)
	var segs struct{ Items []segmentJSON }
	a.do("GET", base+"/segments", viewer.Access, nil).decode(t, &segs)
	require.Len(t, segs.Items, 1)
	assert.Equal(t, "staff", segs.Items[0].Key)
	assert.Equal(t, http.StatusOK, a.do("GET", base+"/segments/staff", viewer.Access, nil).Status)
	assert.Equal(t, http.StatusOK, a.do("GET", env+"/config/limit", viewer.Access, nil).Status)
	var cfgs struct{ Items []configJSON }
	a.do("GET", env+"/config", viewer.Access, nil).decode(t, &cfgs)
	require.Len(t, cfgs.Items, 1)
	assert.JSONEq(t, "5", string(cfgs.Items[0].Value))
}

func TestSDKKeysAPI(t *testing.T) {
	a := newTestAPI(t, Config{}, testDomainConfig())
	owner, editor := a.signUp("owner"), a.signUp("editor")
	ws := a.createWorkspace(owner, "Acme")
	p := a.createProject(owner, ws, "Rocket")
	a.addMember(owner, "projects", p, editor, domain.RoleEditor)
	base := "/api/v1/projects/" + p.String()
	require.Equal(t, http.StatusCreated, a.do("PUT", base+"/environments/production/flags/checkout", owner.Access, proFlag()).Status)
	require.Equal(t, http.StatusCreated, a.do("PUT", base+"/environments/staging/flags/staged", owner.Access, proFlag()).Status)

	resp := a.do("POST", base+"/sdk-keys", owner.Access, map[string]any{"environment": "production", "name": "web"})
	require.Equal(t, http.StatusCreated, resp.Status, resp)
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	var key sdkKeyJSON
	resp.decode(t, &key)
	require.True(t, strings.HasPrefix(key.Key, "tone_sdk_"), key.Key)
	assert.Equal(t, "production", key.Environment)
	for _, k := range listAll[sdkKeyJSON](a, owner, base+"/sdk-keys") {
		assert.Empty(t, k.Key, "the secret is shown once")
	}
	assert.Equal(t, http.StatusForbidden, a.do("POST", base+"/sdk-keys", editor.Access, map[string]any{"environment": "production", "name": "x"}).Status)
	assert.Equal(t, http.StatusBadRequest, a.do("POST", base+"/sdk-keys", owner.Access, map[string]any{"environment": "Prod", "name": "x"}).Status)

	sdk := func(method, path string, body any, token string) *response {
		return a.do(method, "/api/v1/sdk"+path, token, body)
	}
	resp = sdk("POST", "/evaluate", map[string]any{"flag_key": "checkout", "context": map[string]any{"plan": "pro"}}, key.Key)
	require.Equal(t, http.StatusOK, resp.Status, resp)
	assert.Equal(t, "on", resp.json(t)["variant"])
	resp = sdk("POST", "/evaluate", map[string]any{"flag_key": "staged"}, key.Key)
	assert.Equal(t, "FLAG_NOT_FOUND", resp.json(t)["error_code"], "a key sees its own environment only")
	resp = sdk("POST", "/evaluate-batch", map[string]any{"context": map[string]any{"plan": "free"}}, key.Key)
	require.Equal(t, http.StatusOK, resp.Status, resp)
	var batch evaluateBatchJSON
	resp.decode(t, &batch)
	require.Len(t, batch.Evaluations, 1)
	assert.Equal(t, "checkout", batch.Evaluations[0].FlagKey)
	resp = sdk("GET", "/changes?since=0", nil, key.Key)
	require.Equal(t, http.StatusOK, resp.Status, resp)
	var sync flagSyncJSON
	resp.decode(t, &sync)
	assert.Equal(t, "production", sync.Environment)
	require.Len(t, sync.Changes, 1)

	// User tokens and bad keys do not open SDK routes, nor SDK keys user routes.
	assert.Equal(t, http.StatusUnauthorized, sdk("POST", "/evaluate", map[string]any{"flag_key": "checkout"}, owner.Access).Status)
	assert.Equal(t, http.StatusUnauthorized, sdk("POST", "/evaluate", map[string]any{"flag_key": "checkout"}, "tone_sdk_forged").Status)
	assert.Equal(t, http.StatusUnauthorized, a.do("GET", base+"/environments/production/flags", key.Key, nil).Status)

	require.Equal(t, http.StatusNoContent, a.do("DELETE", base+"/sdk-keys/"+key.ID.String(), owner.Access, nil).Status)
	assert.Equal(t, http.StatusUnauthorized, sdk("POST", "/evaluate", map[string]any{"flag_key": "checkout"}, key.Key).Status,
		"a revoked key stops working at once on the server that revoked it")
	assert.Equal(t, http.StatusNotFound, a.do("DELETE", base+"/sdk-keys/"+uuid.NewString(), owner.Access, nil).Status)
}

// TestSDKKeyGuessingIsLimited: SDK routes skip the per-address limit, but
// failed authentications count against it; a valid key still works.
func TestSDKKeyGuessingIsLimited(t *testing.T) {
	a := newTestAPI(t, Config{RequestsPerIP: Rate{N: 3, Window: time.Hour}}, testDomainConfig())
	ctx := context.Background()
	require.NoError(t, a.svc.Register(ctx, domain.Registration{Email: "o@example.com", Password: "a good password"}))
	tok, err := a.svc.Login(ctx, "o@example.com", "a good password")
	require.NoError(t, err)
	ws, err := a.svc.CreateWorkspace(ctx, tok.UserID, "Acme")
	require.NoError(t, err)
	name := "Rocket"
	p, err := a.svc.CreateProject(ctx, tok.UserID, ws.ID, domain.ProjectInput{Name: &name})
	require.NoError(t, err)
	_, secret, err := a.svc.CreateSDKKey(ctx, tok.UserID, p.ID, "production", "web")
	require.NoError(t, err)

	body := map[string]any{"flag_key": "x"}
	for i := range 5 {
		resp := a.do("POST", "/api/v1/sdk/evaluate", secret, body)
		require.Equal(t, http.StatusOK, resp.Status, "valid key, request %d: %s", i, resp)
	}
	var statuses []int
	for range 5 {
		statuses = append(statuses, a.do("POST", "/api/v1/sdk/evaluate", "tone_sdk_guess", body).Status)
	}
	assert.Equal(t, []int{401, 401, 401, 429, 429}, statuses)
	assert.Equal(t, http.StatusOK, a.do("POST", "/api/v1/sdk/evaluate", secret, body).Status)
}
