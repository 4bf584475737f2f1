package storetest

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain"
)

// flagTests are the FlagStore contract tests, run by Run.
var flagTests = []struct {
	name string
	fn   func(t *testing.T, s domain.Store)
}{
	{"FlagVersions", testFlagVersions},
	{"FlagItems", testFlagItems},
	{"FlagChanges", testFlagChanges},
	{"FlagRollback", testFlagRollback},
	{"FlagProjectDelete", testFlagProjectDelete},
	{"SDKKeys", testSDKKeys},
}

// flagEnv is a project whose owner writes its flags.
type flagEnv struct {
	s     domain.Store
	owner *domain.User
	ws    *domain.Workspace
	p     *domain.Project
}

func newFlagEnv(t *testing.T, s domain.Store) *flagEnv {
	t.Helper()
	e := &flagEnv{s: s, owner: newUser(t, s, "fowner")}
	e.ws = newWorkspace(t, s, e.owner)
	e.p = newProject(t, s, e.ws, e.owner.ID, "flags")
	return e
}

func (e *flagEnv) tx(t *testing.T, fn func(tx domain.Tx) error) {
	t.Helper()
	inTx(t, e.s, e.owner.ID, fn)
}

func (e *flagEnv) next(t *testing.T, env string) int64 {
	t.Helper()
	var v int64
	e.tx(t, func(tx domain.Tx) (err error) { v, err = tx.NextFlagVersion(ctx, e.p.ID, env); return err })
	return v
}

func (e *flagEnv) item(env, kind, key, data string, v int64) *domain.FlagItem {
	return &domain.FlagItem{ProjectID: e.p.ID, Environment: env, Kind: kind, Key: key, Data: json.RawMessage(data),
		Version: v, UpdatedBy: e.owner.ID, UpdatedAt: now}
}

func testFlagVersions(t *testing.T, s domain.Store) {
	e := newFlagEnv(t, s)
	e.tx(t, func(tx domain.Tx) error {
		v, err := tx.FlagVersion(ctx, e.p.ID, "production")
		assert.Zero(t, v, "an environment nothing was written to is at version 0")
		return err
	})
	assert.Equal(t, int64(1), e.next(t, "production"))
	assert.Equal(t, int64(2), e.next(t, "production"))
	assert.Equal(t, int64(1), e.next(t, "staging"), "environments count on their own")
	assert.Equal(t, int64(1), e.next(t, ""), "segments count on their own")
	e.tx(t, func(tx domain.Tx) error {
		v, err := tx.FlagVersion(ctx, e.p.ID, "production")
		require.NoError(t, err)
		assert.Equal(t, int64(2), v)
		envs, err := tx.FlagEnvironments(ctx, e.p.ID)
		require.NoError(t, err)
		assert.Equal(t, []domain.FlagEnvironment{{Name: "production", Version: 2}, {Name: "staging", Version: 1}}, envs,
			"in name order, without the segment counter")
		envs, err = tx.FlagEnvironments(ctx, id())
		assert.Equal(t, []domain.FlagEnvironment{}, envs)
		return err
	})
	err := s.InTx(ctx, e.owner.ID, func(tx domain.Tx) error {
		_, err := tx.NextFlagVersion(ctx, id(), "production")
		return err
	})
	code(t, domain.ENotFound, err, "a missing project")

	// Concurrent writers of one environment get distinct, gap-free versions.
	const writers = 8
	errs := make(chan error, writers)
	for range writers {
		go func() {
			errs <- s.InTx(ctx, e.owner.ID, func(tx domain.Tx) error {
				_, err := tx.NextFlagVersion(ctx, e.p.ID, "race")
				return err
			})
		}()
	}
	for range writers {
		require.NoError(t, <-errs)
	}
	e.tx(t, func(tx domain.Tx) error {
		v, err := tx.FlagVersion(ctx, e.p.ID, "race")
		assert.Equal(t, int64(writers), v)
		return err
	})
}

func testFlagItems(t *testing.T, s domain.Store) {
	e := newFlagEnv(t, s)
	err := s.InTx(ctx, e.owner.ID, func(tx domain.Tx) error {
		return tx.PutFlagItem(ctx, e.item("production", domain.FlagKindFlag, "a", `{}`, 1))
	})
	code(t, domain.EInvalid, err, "an environment without a version takes no items")

	v := e.next(t, "production")
	e.next(t, "staging")
	e.next(t, "")
	e.tx(t, func(tx domain.Tx) error {
		return errors.Join(
			tx.PutFlagItem(ctx, e.item("production", domain.FlagKindFlag, "b", `{"key": "b", "n": 1}`, v)),
			tx.PutFlagItem(ctx, e.item("production", domain.FlagKindFlag, "a", `{"key": "a"}`, v)),
			tx.PutFlagItem(ctx, e.item("production", domain.FlagKindConfig, "a", `{"type": "string", "value": "x"}`, v)),
			tx.PutFlagItem(ctx, e.item("staging", domain.FlagKindFlag, "a", `{"key": "a", "staging": true}`, 1)),
			tx.PutFlagItem(ctx, e.item("", domain.FlagKindSegment, "beta", `{"key": "beta", "rules": []}`, 1)),
		)
	})
	keys := func(items []*domain.FlagItem) []string {
		out := []string{}
		for _, it := range items {
			out = append(out, it.Environment+"/"+it.Kind+"/"+it.Key)
		}
		return out
	}
	e.tx(t, func(tx domain.Tx) error {
		it, err := tx.FlagItem(ctx, e.p.ID, "production", domain.FlagKindFlag, "b")
		require.NoError(t, err)
		assert.JSONEq(t, `{"key": "b", "n": 1}`, string(it.Data))
		assert.Equal(t, v, it.Version)
		assert.Equal(t, e.owner.ID, it.UpdatedBy)
		assert.Equal(t, now, it.UpdatedAt)
		assert.Equal(t, e.p.ID, it.ProjectID)

		items, err := tx.ListFlagItems(ctx, e.p.ID, "production", domain.FlagKindFlag)
		require.NoError(t, err)
		assert.Equal(t, []string{"production/flag/a", "production/flag/b"}, keys(items), "key order, one kind, one environment")
		items, err = tx.ListFlagItems(ctx, e.p.ID, "production", domain.FlagKindConfig)
		require.NoError(t, err)
		assert.Equal(t, []string{"production/config/a"}, keys(items))
		items, err = tx.ListFlagItems(ctx, e.p.ID, "", domain.FlagKindSegment)
		require.NoError(t, err)
		assert.Equal(t, []string{"/segment/beta"}, keys(items))
		items, err = tx.ListFlagItems(ctx, e.p.ID, "qa", domain.FlagKindFlag)
		require.NoError(t, err)
		assert.Empty(t, items)

		_, err = tx.FlagItem(ctx, e.p.ID, "production", domain.FlagKindFlag, "zzz")
		code(t, domain.ENotFound, err)
		_, err = tx.FlagItem(ctx, e.p.ID, "production", domain.FlagKindSegment, "beta")
		code(t, domain.ENotFound, err, "segments live outside environments")
		return nil
	})

	// Replacing keeps one item with the new data and version.
	later := now.Add(time.Hour)
	e.tx(t, func(tx domain.Tx) error {
		it := e.item("production", domain.FlagKindFlag, "b", `{"key": "b", "n": 2}`, v+1)
		it.UpdatedAt = later
		return tx.PutFlagItem(ctx, it)
	})
	e.tx(t, func(tx domain.Tx) error {
		it, err := tx.FlagItem(ctx, e.p.ID, "production", domain.FlagKindFlag, "b")
		require.NoError(t, err)
		assert.JSONEq(t, `{"key": "b", "n": 2}`, string(it.Data))
		assert.Equal(t, v+1, it.Version)
		assert.Equal(t, later, it.UpdatedAt)
		require.NoError(t, tx.DeleteFlagItem(ctx, e.p.ID, "production", domain.FlagKindFlag, "b"))
		code(t, domain.ENotFound, tx.DeleteFlagItem(ctx, e.p.ID, "production", domain.FlagKindFlag, "b"))
		_, err = tx.FlagItem(ctx, e.p.ID, "production", domain.FlagKindFlag, "b")
		code(t, domain.ENotFound, err)
		_, err = tx.FlagItem(ctx, e.p.ID, "production", domain.FlagKindConfig, "a")
		assert.NoError(t, err, "deleting a flag leaves the config value of the same key")
		return nil
	})
}

func testFlagChanges(t *testing.T, s domain.Store) {
	e := newFlagEnv(t, s)
	change := func(env string, v int64, key, data string) *domain.FlagChange {
		c := &domain.FlagChange{ProjectID: e.p.ID, Environment: env, Version: v, Kind: domain.FlagKindFlag, Key: key,
			ActorID: e.owner.ID, At: now}
		if data != "" {
			c.Data = json.RawMessage(data)
		}
		return c
	}
	err := s.InTx(ctx, e.owner.ID, func(tx domain.Tx) error { return tx.AppendFlagChange(ctx, change("production", 1, "a", `{}`)) })
	code(t, domain.EInvalid, err, "an environment without a version takes no changes")
	for v := int64(1); v <= 5; v++ {
		require.Equal(t, v, e.next(t, "production"))
		data := `{"key": "a", "v": ` + string(rune('0'+v)) + `}`
		if v == 4 {
			data = "" // deleted
		}
		e.tx(t, func(tx domain.Tx) error { return tx.AppendFlagChange(ctx, change("production", v, "a", data)) })
	}
	e.next(t, "staging")
	e.tx(t, func(tx domain.Tx) error { return tx.AppendFlagChange(ctx, change("staging", 1, "s", `{}`)) })
	err = s.InTx(ctx, e.owner.ID, func(tx domain.Tx) error { return tx.AppendFlagChange(ctx, change("production", 3, "a", `{}`)) })
	code(t, domain.EConflict, err, "one change per version")

	versions := func(cs []*domain.FlagChange) []int64 {
		out := []int64{}
		for _, c := range cs {
			out = append(out, c.Version)
		}
		return out
	}
	e.tx(t, func(tx domain.Tx) error {
		cs, err := tx.FlagChangesSince(ctx, e.p.ID, "production", 2)
		require.NoError(t, err)
		assert.Equal(t, []int64{3, 4, 5}, versions(cs))
		assert.JSONEq(t, `{"key": "a", "v": 3}`, string(cs[0].Data))
		assert.Nil(t, cs[1].Data, "a deletion has no data")
		assert.Equal(t, domain.FlagKindFlag, cs[0].Kind)
		assert.Equal(t, "a", cs[0].Key)
		assert.Equal(t, e.owner.ID, cs[0].ActorID)
		assert.Equal(t, now, cs[0].At)
		cs, err = tx.FlagChangesSince(ctx, e.p.ID, "production", 5)
		require.NoError(t, err)
		assert.Empty(t, cs)
		cs, err = tx.FlagChangesSince(ctx, e.p.ID, "staging", 0)
		require.NoError(t, err)
		assert.Equal(t, []int64{1}, versions(cs))

		require.NoError(t, tx.TrimFlagChanges(ctx, e.p.ID, "production", 3))
		cs, err = tx.FlagChangesSince(ctx, e.p.ID, "production", 0)
		require.NoError(t, err)
		assert.Equal(t, []int64{4, 5}, versions(cs))
		cs, err = tx.FlagChangesSince(ctx, e.p.ID, "staging", 0)
		require.NoError(t, err)
		assert.Equal(t, []int64{1}, versions(cs), "trimming one environment leaves the others")
		return nil
	})
}

func testFlagRollback(t *testing.T, s domain.Store) {
	e := newFlagEnv(t, s)
	v := e.next(t, "production")
	e.tx(t, func(tx domain.Tx) error {
		return tx.PutFlagItem(ctx, e.item("production", domain.FlagKindFlag, "a", `{"n": 1}`, v))
	})
	boom := errors.New("boom")
	err := s.InTx(ctx, e.owner.ID, func(tx domain.Tx) error {
		v, err := tx.NextFlagVersion(ctx, e.p.ID, "production")
		require.NoError(t, err)
		require.NoError(t, tx.PutFlagItem(ctx, e.item("production", domain.FlagKindFlag, "a", `{"n": 2}`, v)))
		require.NoError(t, tx.PutFlagItem(ctx, e.item("production", domain.FlagKindFlag, "b", `{}`, v)))
		require.NoError(t, tx.AppendFlagChange(ctx, &domain.FlagChange{ProjectID: e.p.ID, Environment: "production",
			Version: v, Kind: domain.FlagKindFlag, Key: "a", Data: json.RawMessage(`{}`), ActorID: e.owner.ID, At: now}))
		_, err = tx.NextFlagVersion(ctx, e.p.ID, "new-env")
		require.NoError(t, err)
		return boom
	})
	require.ErrorIs(t, err, boom)
	e.tx(t, func(tx domain.Tx) error {
		v, err := tx.FlagVersion(ctx, e.p.ID, "production")
		require.NoError(t, err)
		assert.Equal(t, int64(1), v, "the version bump is rolled back")
		it, err := tx.FlagItem(ctx, e.p.ID, "production", domain.FlagKindFlag, "a")
		require.NoError(t, err)
		assert.JSONEq(t, `{"n": 1}`, string(it.Data))
		_, err = tx.FlagItem(ctx, e.p.ID, "production", domain.FlagKindFlag, "b")
		code(t, domain.ENotFound, err)
		cs, err := tx.FlagChangesSince(ctx, e.p.ID, "production", 0)
		require.NoError(t, err)
		assert.Empty(t, cs)
		envs, err := tx.FlagEnvironments(ctx, e.p.ID)
		assert.Equal(t, []domain.FlagEnvironment{{Name: "production", Version: 1}}, envs)
		return err
	})
}

func testFlagProjectDelete(t *testing.T, s domain.Store) {
	e := newFlagEnv(t, s)
	other := newProject(t, s, e.ws, e.owner.ID, "other")
	for _, p := range []*domain.Project{e.p, other} {
		e.tx(t, func(tx domain.Tx) error {
			v, err := tx.NextFlagVersion(ctx, p.ID, "production")
			require.NoError(t, err)
			it := e.item("production", domain.FlagKindFlag, "a", `{}`, v)
			it.ProjectID = p.ID
			return errors.Join(tx.PutFlagItem(ctx, it), tx.AppendFlagChange(ctx, &domain.FlagChange{
				ProjectID: p.ID, Environment: "production", Version: v, Kind: domain.FlagKindFlag, Key: "a", ActorID: e.owner.ID, At: now,
			}))
		})
	}
	e.tx(t, func(tx domain.Tx) error { return tx.DeleteProject(ctx, e.p.ID) })
	e.tx(t, func(tx domain.Tx) error {
		for _, test := range []struct {
			p    *domain.Project
			left int
		}{{e.p, 0}, {other, 1}} {
			envs, err := tx.FlagEnvironments(ctx, test.p.ID)
			require.NoError(t, err)
			assert.Len(t, envs, test.left)
			items, err := tx.ListFlagItems(ctx, test.p.ID, "production", domain.FlagKindFlag)
			require.NoError(t, err)
			assert.Len(t, items, test.left)
			cs, err := tx.FlagChangesSince(ctx, test.p.ID, "production", 0)
			require.NoError(t, err)
			assert.Len(t, cs, test.left)
		}
		return nil
	})
}

func testSDKKeys(t *testing.T, s domain.Store) {
	e := newFlagEnv(t, s)
	hash := func(b byte) []byte { h := make([]byte, 32); h[0] = b; return h }
	k1 := &domain.SDKKey{ID: id(), ProjectID: e.p.ID, Environment: "production", Name: "web", Hash: hash(1), CreatedBy: e.owner.ID, CreatedAt: now}
	k2 := &domain.SDKKey{ID: id(), ProjectID: e.p.ID, Environment: "staging", Name: "ios", Hash: hash(2), CreatedBy: e.owner.ID, CreatedAt: now}
	e.tx(t, func(tx domain.Tx) error { return errors.Join(tx.CreateSDKKey(ctx, k1), tx.CreateSDKKey(ctx, k2)) })
	err := s.InTx(ctx, e.owner.ID, func(tx domain.Tx) error {
		return tx.CreateSDKKey(ctx, &domain.SDKKey{ID: id(), ProjectID: id(), Environment: "x", Name: "x", Hash: hash(3), CreatedBy: e.owner.ID, CreatedAt: now})
	})
	code(t, domain.ENotFound, err, "a missing project")

	// Anyone may look a key up by hash: the request is not authenticated yet.
	inTx(t, s, uuid.Nil, func(tx domain.Tx) error {
		k, err := tx.SDKKeyByHash(ctx, hash(1))
		require.NoError(t, err)
		assert.Equal(t, k1, k)
		_, err = tx.SDKKeyByHash(ctx, hash(9))
		code(t, domain.ENotFound, err)
		return nil
	})
	later := now.Add(time.Hour)
	e.tx(t, func(tx domain.Tx) error {
		ks, err := tx.ListSDKKeys(ctx, e.p.ID, domain.Page{})
		require.NoError(t, err)
		assert.Equal(t, []*domain.SDKKey{k1, k2}, ks, "id order")
		ks, err = tx.ListSDKKeys(ctx, e.p.ID, domain.Page{After: k1.ID, Limit: 5})
		require.NoError(t, err)
		assert.Equal(t, []*domain.SDKKey{k2}, ks)
		require.NoError(t, tx.RevokeSDKKey(ctx, k1.ID, later))
		require.NoError(t, tx.RevokeSDKKey(ctx, k1.ID, later.Add(time.Hour)), "revoking again keeps the first time")
		code(t, domain.ENotFound, tx.RevokeSDKKey(ctx, id(), later))
		k, err := tx.SDKKeyByID(ctx, k1.ID)
		require.NoError(t, err)
		require.NotNil(t, k.RevokedAt)
		assert.Equal(t, later, *k.RevokedAt)
		_, err = tx.SDKKeyByID(ctx, id())
		code(t, domain.ENotFound, err)
		return nil
	})
	e.tx(t, func(tx domain.Tx) error { return tx.DeleteProject(ctx, e.p.ID) })
	inTx(t, s, uuid.Nil, func(tx domain.Tx) error {
		_, err := tx.SDKKeyByHash(ctx, hash(2))
		code(t, domain.ENotFound, err, "deleting the project deletes its keys")
		return nil
	})
}
