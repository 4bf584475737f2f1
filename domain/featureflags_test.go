package domain_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain"
	"github.com/tone-ai/tone/domain/flag"
)

// boolFlag is a boolean flag serving "on" to the contexts whose attribute
// plan is "pro" and "off" to everyone else.
func boolFlag(key string) *flag.Flag {
	return &flag.Flag{
		Key: key, Type: flag.Boolean, Enabled: true,
		Variants:   map[string]json.RawMessage{"on": json.RawMessage("true"), "off": json.RawMessage("false")},
		OffVariant: "off",
		Rules: []flag.Rule{{Conditions: []flag.Condition{{Attribute: "plan", Op: flag.OpEquals, Values: []any{"pro"}}},
			Serve: flag.Serve{Variant: "on"}}},
		Default: flag.Serve{Variant: "off"},
	}
}

func TestFlagsCRUD(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		tm := newCanvasTeam(t, f)
		p := tm.project.ID
		owner, editor, viewer := tm.owner.UserID, tm.editor.UserID, tm.viewer.UserID

		st, created, err := f.svc.PutFlag(ctx, editor, p, "production", boolFlag("dark-mode"))
		require.NoError(t, err)
		assert.True(t, created)
		assert.Equal(t, int64(1), st.Version)
		assert.Equal(t, editor, st.UpdatedBy)
		salt := st.Item.Salt
		assert.Len(t, salt, 16, "a new flag gets a random salt")

		// Replacing without a salt keeps the salt, so nobody moves between buckets.
		g := boolFlag("dark-mode")
		g.Description = "Dark theme"
		st, created, err = f.svc.PutFlag(ctx, owner, p, "production", g)
		require.NoError(t, err)
		assert.False(t, created)
		assert.Equal(t, int64(2), st.Version)
		assert.Equal(t, salt, st.Item.Salt)

		_, _, err = f.svc.PutFlag(ctx, editor, p, "staging", boolFlag("dark-mode"))
		require.NoError(t, err)
		_, _, err = f.svc.PutFlag(ctx, editor, p, "production", boolFlag("beta-api"))
		require.NoError(t, err)
		_, _, err = f.svc.PutConfig(ctx, editor, p, "production", &domain.ConfigValue{Key: "max-upload", Type: flag.Number, Value: json.RawMessage("10")})
		require.NoError(t, err)

		got, err := f.svc.GetFlag(ctx, viewer, p, "production", "dark-mode")
		require.NoError(t, err)
		assert.Equal(t, "Dark theme", got.Item.Description)
		assert.Equal(t, int64(2), got.Version)
		list, err := f.svc.ListFlags(ctx, viewer, p, "production")
		require.NoError(t, err)
		require.Len(t, list, 2)
		assert.Equal(t, "beta-api", list[0].Item.Key)
		assert.Equal(t, "dark-mode", list[1].Item.Key)
		cfg, err := f.svc.ListConfig(ctx, viewer, p, "production")
		require.NoError(t, err)
		require.Len(t, cfg, 1)
		assert.JSONEq(t, "10", string(cfg[0].Item.Value))
		assert.Equal(t, int64(4), cfg[0].Version, "config values share the environment's versions")

		envs, err := f.svc.FlagEnvironments(ctx, viewer, p)
		require.NoError(t, err)
		assert.Equal(t, []domain.FlagEnvironment{{Name: "production", Version: 4}, {Name: "staging", Version: 1}}, envs)

		// Who may do what.
		_, _, err = f.svc.PutFlag(ctx, viewer, p, "production", boolFlag("x"))
		code(t, domain.EForbidden, err)
		_, err = f.svc.GetFlag(ctx, tm.stranger.UserID, p, "production", "dark-mode")
		code(t, domain.ENotFound, err)
		code(t, domain.ENotFound, f.svc.DeleteFlag(ctx, tm.stranger.UserID, p, "production", "dark-mode"))

		// Bad input.
		bad := boolFlag("bad")
		bad.OffVariant = "maybe"
		_, _, err = f.svc.PutFlag(ctx, editor, p, "production", bad)
		code(t, domain.EInvalid, err)
		assert.Equal(t, "off_variant", domain.ErrorDetails(err)["field"])
		_, _, err = f.svc.PutFlag(ctx, editor, p, "Prod!", boolFlag("x"))
		code(t, domain.EInvalid, err)
		_, _, err = f.svc.PutConfig(ctx, editor, p, "production", &domain.ConfigValue{Key: "n", Type: flag.Number, Value: json.RawMessage(`"ten"`)})
		code(t, domain.EInvalid, err)

		require.NoError(t, f.svc.DeleteFlag(ctx, editor, p, "production", "beta-api"))
		code(t, domain.ENotFound, f.svc.DeleteFlag(ctx, editor, p, "production", "beta-api"))
		_, err = f.svc.GetFlag(ctx, viewer, p, "production", "beta-api")
		code(t, domain.ENotFound, err)

		assert.Equal(t, []string{
			"flag.create:success", "flag.update:success", "flag.create:success", "flag.create:success",
			"config.create:success", "flag.delete:success",
		}, filterActions(f.auditActions(t, domain.AuditFilter{ProjectID: p}, owner), "flag.", "config."))
	})
}

func filterActions(actions []string, prefixes ...string) []string {
	var out []string
	for _, a := range actions {
		for _, p := range prefixes {
			if len(a) >= len(p) && a[:len(p)] == p {
				out = append(out, a)
			}
		}
	}
	return out
}

func TestFlagSegments(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		tm := newCanvasTeam(t, f)
		p, editor := tm.project.ID, tm.editor.UserID
		g := boolFlag("gated")
		g.Rules[0].Conditions = []flag.Condition{{Op: flag.OpInSegment, Values: []any{"staff"}}}
		_, _, err := f.svc.PutFlag(ctx, editor, p, "production", g)
		code(t, domain.EInvalid, err)
		assert.Equal(t, "rules[0].conditions[0].values[0]", domain.ErrorDetails(err)["field"], "a flag cannot name a missing segment")

		_, _, err = f.svc.PutFlag(ctx, editor, p, "staging", boolFlag("other"))
		require.NoError(t, err)
		staff := &flag.Segment{Key: "staff", Rules: []flag.SegmentRule{{Conditions: []flag.Condition{
			{Attribute: "email", Op: flag.OpEndsWith, Values: []any{"@tone.dev"}}}}}}
		seg, created, err := f.svc.PutSegment(ctx, editor, p, staff)
		require.NoError(t, err)
		assert.True(t, created)
		assert.Equal(t, int64(1), seg.Version)
		_, _, err = f.svc.PutFlag(ctx, editor, p, "production", g)
		require.NoError(t, err)

		// A segment change reaches every environment as a new version.
		envs, err := f.svc.FlagEnvironments(ctx, editor, p)
		require.NoError(t, err)
		assert.Equal(t, []domain.FlagEnvironment{{Name: "production", Version: 1}, {Name: "staging", Version: 2}}, envs)
		_, ev, err := f.svc.EvaluateFlags(ctx, editor, p, "production", domain.EvaluationRequest{Keys: []string{"gated"}, Context: flag.Context{"email": "a@tone.dev"}})
		require.NoError(t, err)
		assert.Equal(t, "on", ev[0].Variant)
		staff.Rules[0].Conditions[0].Values = []any{"@tone.ai"}
		_, _, err = f.svc.PutSegment(ctx, editor, p, staff)
		require.NoError(t, err)
		envs, err = f.svc.FlagEnvironments(ctx, editor, p)
		require.NoError(t, err)
		assert.Equal(t, []domain.FlagEnvironment{{Name: "production", Version: 2}, {Name: "staging", Version: 3}}, envs)
		_, ev, err = f.svc.EvaluateFlags(ctx, editor, p, "production", domain.EvaluationRequest{Keys: []string{"gated"}, Context: flag.Context{"email": "a@tone.dev"}})
		require.NoError(t, err)
		assert.Equal(t, "off", ev[0].Variant, "the changed segment applies at once on this node")

		code(t, domain.EConflict, f.svc.DeleteSegment(ctx, editor, p, "staff"))
		require.NoError(t, f.svc.DeleteFlag(ctx, editor, p, "production", "gated"))
		require.NoError(t, f.svc.DeleteSegment(ctx, editor, p, "staff"))
		segs, err := f.svc.ListSegments(ctx, editor, p)
		require.NoError(t, err)
		assert.Empty(t, segs)
	})
}

func TestFlagChangesAndSnapshots(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		svc := f.newService(t, nil, domain.Config{FlagHistory: 3})
		tm := newCanvasTeam(t, f)
		p, editor := tm.project.ID, tm.editor.UserID
		for i := range 5 {
			_, _, err := svc.PutFlag(ctx, editor, p, "production", boolFlag(fmt.Sprintf("f%d", i)))
			require.NoError(t, err)
		}
		require.NoError(t, svc.DeleteFlag(ctx, editor, p, "production", "f0"))
		// Versions 1..6; the history keeps 4..6.
		sync, err := svc.FlagChanges(ctx, tm.viewer.UserID, p, "production", 3)
		require.NoError(t, err)
		assert.False(t, sync.Snapshot)
		assert.Equal(t, int64(6), sync.Version)
		require.Len(t, sync.Changes, 3)
		assert.Equal(t, "f3", sync.Changes[0].Key)
		assert.Equal(t, int64(4), sync.Changes[0].Version)
		assert.Nil(t, sync.Changes[2].Data, "the delete of f0")
		assert.Equal(t, "f0", sync.Changes[2].Key)

		sync, err = svc.FlagChanges(ctx, tm.viewer.UserID, p, "production", 6)
		require.NoError(t, err)
		assert.False(t, sync.Snapshot)
		assert.Empty(t, sync.Changes, "up to date")

		for _, since := range []int64{0, 2, 7} {
			sync, err = svc.FlagChanges(ctx, tm.viewer.UserID, p, "production", since)
			require.NoError(t, err)
			assert.True(t, sync.Snapshot, "since %d is out of the history", since)
			assert.Equal(t, int64(6), sync.Version)
			var keys []string
			for _, fl := range sync.Flags {
				keys = append(keys, fl.Item.Key)
			}
			assert.Equal(t, []string{"f1", "f2", "f3", "f4"}, keys)
		}
		_, err = svc.FlagChanges(ctx, tm.viewer.UserID, p, "production", -1)
		code(t, domain.EInvalid, err)
		_, err = svc.FlagChanges(ctx, tm.stranger.UserID, p, "production", 0)
		code(t, domain.ENotFound, err)

		// Each change went out on the project's flags channel with its version.
		var versions []any
		for _, e := range f.pending(t) {
			if e.Channel != domain.FlagsChannel(p) {
				continue
			}
			assert.Equal(t, domain.EventFlagsChanged, e.Type)
			ev, err := e.Event()
			require.NoError(t, err)
			versions = append(versions, ev.Data["version"])
			assert.Equal(t, "production", ev.Data["environment"])
		}
		assert.Equal(t, []any{int64(1), int64(2), int64(3), int64(4), int64(5), int64(6)}, versions)
	})
}

func TestEvaluateFlags(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		tm := newCanvasTeam(t, f)
		p, editor, viewer := tm.project.ID, tm.editor.UserID, tm.viewer.UserID
		_, _, err := f.svc.PutFlag(ctx, editor, p, "production", boolFlag("a"))
		require.NoError(t, err)
		s := boolFlag("b")
		s.Type = flag.String
		s.Variants = map[string]json.RawMessage{"on": json.RawMessage(`"yes"`), "off": json.RawMessage(`"no"`)}
		s.Enabled = false
		_, _, err = f.svc.PutFlag(ctx, editor, p, "production", s)
		require.NoError(t, err)

		v, ev, err := f.svc.EvaluateFlags(ctx, viewer, p, "production", domain.EvaluationRequest{Context: flag.Context{"plan": "pro"}})
		require.NoError(t, err)
		assert.Equal(t, int64(2), v)
		require.Len(t, ev, 2, "no keys: every flag")
		assert.Equal(t, domain.FlagEvaluation{Key: "a", Value: json.RawMessage("true"), Variant: "on", Reason: flag.ReasonTargetingMatch, FlagVersion: 1}, ev[0])
		assert.Equal(t, domain.FlagEvaluation{Key: "b", Value: json.RawMessage(`"no"`), Variant: "off", Reason: flag.ReasonDisabled, FlagVersion: 2}, ev[1])

		_, ev, err = f.svc.EvaluateFlags(ctx, viewer, p, "production", domain.EvaluationRequest{Keys: []string{"nope", "b", "a"}, Type: flag.Boolean})
		require.NoError(t, err)
		require.Len(t, ev, 3)
		assert.Equal(t, flag.ErrFlagNotFound, ev[0].ErrorCode)
		assert.Equal(t, flag.ReasonError, ev[0].Reason)
		assert.Nil(t, ev[0].Value)
		assert.Equal(t, flag.ErrTypeMismatch, ev[1].ErrorCode)
		assert.Equal(t, flag.ReasonDefault, ev[2].Reason)

		_, _, err = f.svc.EvaluateFlags(ctx, tm.stranger.UserID, p, "production", domain.EvaluationRequest{})
		code(t, domain.ENotFound, err)
		_, _, err = f.svc.EvaluateFlags(ctx, viewer, p, "production", domain.EvaluationRequest{Type: "date"})
		code(t, domain.EInvalid, err)

		// Another node's change shows once the cache's version check runs.
		other := f.newService(t, nil, domain.Config{})
		enabled := boolFlag("b")
		_, _, err = other.PutFlag(ctx, editor, p, "production", enabled)
		require.NoError(t, err)
		_, ev, err = f.svc.EvaluateFlags(ctx, viewer, p, "production", domain.EvaluationRequest{Keys: []string{"a"}})
		require.NoError(t, err)
		assert.Equal(t, int64(1), ev[0].FlagVersion)
		_, ev, err = f.svc.EvaluateFlags(ctx, viewer, p, "production", domain.EvaluationRequest{Keys: []string{"b"}})
		require.NoError(t, err)
		assert.Equal(t, flag.ReasonDisabled, ev[0].Reason, "within the cache TTL the old copy serves")
		f.clock.Add(domain.DefaultFlagCacheTTL)
		v, ev, err = f.svc.EvaluateFlags(ctx, viewer, p, "production", domain.EvaluationRequest{Keys: []string{"b"}})
		require.NoError(t, err)
		assert.Equal(t, int64(3), v)
		assert.Equal(t, flag.ReasonDefault, ev[0].Reason)
		assert.Equal(t, int64(3), ev[0].FlagVersion)

		// A change through this service shows at once.
		require.NoError(t, f.svc.DeleteFlag(ctx, editor, p, "production", "b"))
		_, ev, err = f.svc.EvaluateFlags(ctx, viewer, p, "production", domain.EvaluationRequest{Keys: []string{"b"}})
		require.NoError(t, err)
		assert.Equal(t, flag.ErrFlagNotFound, ev[0].ErrorCode)
	})
}

func TestSDKKeys(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		tm := newCanvasTeam(t, f)
		p, owner := tm.project.ID, tm.owner.UserID
		staff := &flag.Segment{Key: "staff", Rules: []flag.SegmentRule{{Conditions: []flag.Condition{
			{Attribute: "email", Op: flag.OpEndsWith, Values: []any{"@tone.dev"}}}}}}
		_, _, err := f.svc.PutSegment(ctx, owner, p, staff)
		require.NoError(t, err)
		g := boolFlag("gated")
		g.Rules[0].Conditions = []flag.Condition{{Op: flag.OpInSegment, Values: []any{"staff"}}}
		_, _, err = f.svc.PutFlag(ctx, owner, p, "production", g)
		require.NoError(t, err)
		_, _, err = f.svc.PutFlag(ctx, owner, p, "staging", boolFlag("staged"))
		require.NoError(t, err)

		_, _, err = f.svc.CreateSDKKey(ctx, tm.editor.UserID, p, "production", "web")
		code(t, domain.EForbidden, err)
		k, secret, err := f.svc.CreateSDKKey(ctx, tm.admin.UserID, p, "production", "web")
		require.NoError(t, err)
		assert.NotContains(t, string(k.Hash), secret)

		c, err := f.svc.AuthenticateSDK(ctx, secret)
		require.NoError(t, err)
		assert.Equal(t, domain.SDKClient{KeyID: k.ID, ProjectID: p, Environment: "production"}, *c)
		for _, bad := range []string{"", "tone_sdk_nope", "not-a-key", secret + "x"} {
			_, err := f.svc.AuthenticateSDK(ctx, bad)
			code(t, domain.EUnauthenticated, err)
		}

		// The key reads its environment and the project's segments.
		v, ev, err := f.svc.EvaluateFlagsSDK(ctx, c, domain.EvaluationRequest{Context: flag.Context{"email": "a@tone.dev"}})
		require.NoError(t, err)
		assert.Equal(t, int64(1), v)
		require.Len(t, ev, 1)
		assert.Equal(t, "gated", ev[0].Key)
		assert.Equal(t, "on", ev[0].Variant)
		sync, err := f.svc.FlagChangesSDK(ctx, c, 0)
		require.NoError(t, err)
		assert.Len(t, sync.Changes, 1)
		sync, err = f.svc.FlagChangesSDK(ctx, c, 5)
		require.NoError(t, err)
		require.True(t, sync.Snapshot)
		assert.Len(t, sync.Flags, 1)
		assert.Len(t, sync.Segments, 1)

		ks, next, err := f.svc.ListSDKKeys(ctx, owner, p, domain.ListOptions{})
		require.NoError(t, err)
		assert.Empty(t, next)
		require.Len(t, ks, 1)
		_, _, err = f.svc.ListSDKKeys(ctx, tm.viewer.UserID, p, domain.ListOptions{})
		code(t, domain.EForbidden, err)

		code(t, domain.ENotFound, f.svc.RevokeSDKKey(ctx, owner, p, tm.project.WorkspaceID))
		require.NoError(t, f.svc.RevokeSDKKey(ctx, owner, p, k.ID))
		_, err = f.svc.AuthenticateSDK(ctx, secret)
		code(t, domain.EUnauthenticated, err)
		require.NoError(t, f.svc.RevokeSDKKey(ctx, owner, p, k.ID), "revoking again succeeds")

		assert.Equal(t, []string{"sdk_key.create:success", "sdk_key.revoke:success", "sdk_key.revoke:success"},
			filterActions(f.auditActions(t, domain.AuditFilter{ProjectID: p}, owner), "sdk_key."))
	})
}
