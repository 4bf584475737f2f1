package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain"
)

// canvasTests are the CanvasStore contract tests, run by Run.
var canvasTests = []struct {
	name string
	fn   func(t *testing.T, s domain.Store)
}{
	{"Canvases", testCanvases},
	{"CanvasDelete", testCanvasDelete},
	{"CanvasReplicas", testCanvasReplicas},
	{"CanvasAppend", testCanvasAppend},
	{"CanvasUpdatesSince", testCanvasUpdatesSince},
	{"CanvasCompact", testCanvasCompact},
	{"CanvasSnapshots", testCanvasSnapshots},
	{"CanvasSnapshotValues", testCanvasSnapshotValues},
	{"CanvasLock", testCanvasLock},
	{"CanvasRollback", testCanvasRollback},
}

// canvasEnv is a project with two members who may write its canvases: its
// workspace's owner and an editor.
type canvasEnv struct {
	s       domain.Store
	owner   *domain.User
	editor  *domain.User
	ws      *domain.Workspace
	project *domain.Project
}

func newCanvasEnv(t *testing.T, s domain.Store) *canvasEnv {
	t.Helper()
	e := &canvasEnv{s: s, owner: newUser(t, s, "cowner"), editor: newUser(t, s, "ceditor")}
	e.ws = newWorkspace(t, s, e.owner)
	e.project = newProject(t, s, e.ws, e.owner.ID, "canvases")
	inTx(t, s, e.owner.ID, func(tx domain.Tx) error {
		return tx.PutWorkspaceMember(ctx, e.ws.ID, e.editor.ID, domain.RoleEditor, now)
	})
	return e
}

func (e *canvasEnv) canvas(t *testing.T, name string) *domain.Canvas {
	t.Helper()
	return e.canvasIn(t, e.project, name)
}

func (e *canvasEnv) canvasIn(t *testing.T, p *domain.Project, name string) *domain.Canvas {
	t.Helper()
	c := &domain.Canvas{ID: id(), ProjectID: p.ID, Name: name, CreatedBy: e.owner.ID, CreatedAt: now, UpdatedAt: now}
	inTx(t, e.s, e.owner.ID, func(tx domain.Tx) error { return tx.CreateCanvas(ctx, c) })
	return c
}

// tx runs fn as the project's owner.
func (e *canvasEnv) tx(t *testing.T, fn func(tx domain.Tx) error) {
	t.Helper()
	inTx(t, e.s, e.owner.ID, fn)
}

// err runs fn as the project's owner and returns its error.
func (e *canvasEnv) err(fn func(tx domain.Tx) error) error { return e.s.InTx(ctx, e.owner.ID, fn) }

func (e *canvasEnv) claim(t *testing.T, c *domain.Canvas, replica uint64, user *domain.User) {
	t.Helper()
	e.tx(t, func(tx domain.Tx) error { return tx.ClaimCanvasReplica(ctx, c.ID, replica, user.ID) })
}

// update returns an entry of replica r covering first..last, whose data
// names it.
func update(c *domain.Canvas, r, first, last uint64, actor *domain.User) *domain.CanvasUpdate {
	return &domain.CanvasUpdate{
		CanvasID: c.ID, Replica: r, First: first, Last: last,
		Data: []byte{byte(r), byte(first), byte(last), 0xff}, ActorID: actor.ID, At: now.Add(time.Duration(first) * time.Second),
	}
}

func (e *canvasEnv) append(t *testing.T, us ...*domain.CanvasUpdate) {
	t.Helper()
	e.tx(t, func(tx domain.Tx) error { return tx.AppendCanvasUpdates(ctx, us) })
}

func (e *canvasEnv) since(t *testing.T, c *domain.Canvas, v domain.CanvasVersion) []*domain.CanvasUpdate {
	t.Helper()
	var out []*domain.CanvasUpdate
	e.tx(t, func(tx domain.Tx) (err error) { out, err = tx.CanvasUpdatesSince(ctx, c.ID, v); return })
	return out
}

// ranges names entries as "replica:first-last", for comparing logs.
func ranges(us []*domain.CanvasUpdate) []string {
	out := []string{}
	for _, u := range us {
		out = append(out, rangeOf(u))
	}
	return out
}

func rangeOf(u *domain.CanvasUpdate) string {
	return fmt.Sprintf("%s/%d:%d-%d", u.CanvasID.String()[30:], u.Replica, u.First, u.Last)
}

func testCanvases(t *testing.T, s domain.Store) {
	e := newCanvasEnv(t, s)
	c := e.canvas(t, "board")
	e.tx(t, func(tx domain.Tx) error {
		got, err := tx.CanvasByID(ctx, c.ID)
		require.NoError(t, err)
		assert.Equal(t, c, got)
		for _, exclusive := range []bool{false, true} {
			got, err = tx.LockCanvas(ctx, c.ID, exclusive)
			require.NoError(t, err)
			assert.Equal(t, c, got)
		}
		return nil
	})
	code(t, domain.EConflict, e.err(func(tx domain.Tx) error { return tx.CreateCanvas(ctx, c) }), "same id")
	orphan := &domain.Canvas{ID: id(), ProjectID: id(), Name: "x", CreatedBy: e.owner.ID, CreatedAt: now, UpdatedAt: now}
	code(t, domain.ENotFound, e.err(func(tx domain.Tx) error { return tx.CreateCanvas(ctx, orphan) }), "no such project")

	// Renaming saves the name and time only.
	renamed := *c
	renamed.Name, renamed.UpdatedAt = "renamed", now.Add(time.Hour)
	renamed.ProjectID, renamed.CreatedAt = id(), now.Add(-time.Hour)
	e.tx(t, func(tx domain.Tx) error { return tx.UpdateCanvas(ctx, &renamed) })
	e.tx(t, func(tx domain.Tx) error {
		got, err := tx.CanvasByID(ctx, c.ID)
		require.NoError(t, err)
		assert.Equal(t, "renamed", got.Name)
		assert.True(t, got.UpdatedAt.Equal(renamed.UpdatedAt))
		assert.Equal(t, c.ProjectID, got.ProjectID)
		assert.True(t, got.CreatedAt.Equal(c.CreatedAt))
		return nil
	})

	// Listing: a project's canvases only, in id order, a page at a time.
	other := newProject(t, s, e.ws, e.owner.ID, "other")
	elsewhere := e.canvasIn(t, other, "elsewhere")
	want := []uuid.UUID{c.ID}
	for range 4 {
		want = append(want, e.canvas(t, "more").ID)
	}
	var got []uuid.UUID
	after := uuid.Nil
	for {
		var page []*domain.Canvas
		e.tx(t, func(tx domain.Tx) (err error) {
			page, err = tx.ListCanvases(ctx, e.project.ID, domain.Page{Limit: 2, After: after})
			return
		})
		for _, c := range page {
			got = append(got, c.ID)
		}
		if len(page) < 2 {
			break
		}
		after = page[len(page)-1].ID
	}
	assert.Equal(t, want, got)
	e.tx(t, func(tx domain.Tx) error {
		all, err := tx.ListCanvases(ctx, e.project.ID, domain.Page{})
		require.NoError(t, err)
		assert.Len(t, all, 5, "Limit 0 is no limit")
		none, err := tx.ListCanvases(ctx, id(), domain.Page{Limit: 10})
		require.NoError(t, err)
		assert.Empty(t, none)
		return nil
	})

	e.tx(t, func(tx domain.Tx) error { return tx.DeleteCanvas(ctx, c.ID) })
	e.tx(t, func(tx domain.Tx) error {
		_, err := tx.CanvasByID(ctx, c.ID)
		code(t, domain.ENotFound, err)
		_, err = tx.LockCanvas(ctx, c.ID, true)
		code(t, domain.ENotFound, err)
		code(t, domain.ENotFound, tx.UpdateCanvas(ctx, c))
		code(t, domain.ENotFound, tx.DeleteCanvas(ctx, c.ID))
		return nil
	})

	// Deleting a project deletes its canvases.
	e.tx(t, func(tx domain.Tx) error { return tx.DeleteProject(ctx, other.ID) })
	e.tx(t, func(tx domain.Tx) error {
		_, err := tx.CanvasByID(ctx, elsewhere.ID)
		code(t, domain.ENotFound, err)
		return nil
	})
}

// fill gives c a claim, two op log entries, a periodic and a named snapshot.
func (e *canvasEnv) fill(t *testing.T, c *domain.Canvas, replica uint64) (periodic, named *domain.CanvasSnapshot) {
	t.Helper()
	e.claim(t, c, replica, e.owner)
	e.append(t, update(c, replica, 1, 2, e.owner), update(c, replica, 3, 3, e.owner))
	periodic = &domain.CanvasSnapshot{ID: id(), CanvasID: c.ID, Version: domain.CanvasVersion{replica: 2}, Data: []byte("p"), CreatedBy: e.owner.ID, CreatedAt: now}
	named = &domain.CanvasSnapshot{ID: id(), CanvasID: c.ID, Name: "v1", Version: domain.CanvasVersion{replica: 3}, Data: []byte("n"), CreatedBy: e.owner.ID, CreatedAt: now}
	e.tx(t, func(tx domain.Tx) error {
		return errors.Join(tx.PutCanvasSnapshot(ctx, periodic), tx.PutCanvasSnapshot(ctx, named))
	})
	return periodic, named
}

func testCanvasDelete(t *testing.T, s domain.Store) {
	e := newCanvasEnv(t, s)
	c, keep := e.canvas(t, "doomed"), e.canvas(t, "kept")
	periodic, named := e.fill(t, c, 7)
	e.fill(t, keep, 7)

	e.tx(t, func(tx domain.Tx) error { return tx.DeleteCanvas(ctx, c.ID) })
	// A canvas made again under the same id starts empty: the op log,
	// snapshots and claims went with the old one.
	again := *c
	e.tx(t, func(tx domain.Tx) error { return tx.CreateCanvas(ctx, &again) })
	assert.Empty(t, e.since(t, c, nil))
	e.tx(t, func(tx domain.Tx) error {
		_, err := tx.LatestCanvasSnapshot(ctx, c.ID)
		code(t, domain.ENotFound, err)
		vs, err := tx.ListCanvasVersions(ctx, c.ID, domain.Page{})
		require.NoError(t, err)
		assert.Empty(t, vs)
		_, err = tx.CanvasVersionByID(ctx, c.ID, named.ID)
		code(t, domain.ENotFound, err)
		// The snapshot ids are free again, and so is the replica.
		require.NoError(t, tx.PutCanvasSnapshot(ctx, periodic))
		require.NoError(t, tx.ClaimCanvasReplica(ctx, c.ID, 7, e.editor.ID))
		return nil
	})

	// The other canvas lost nothing.
	assert.Equal(t, []string{rangeOf(update(keep, 7, 1, 2, e.owner)), rangeOf(update(keep, 7, 3, 3, e.owner))}, ranges(e.since(t, keep, nil)))
	e.tx(t, func(tx domain.Tx) error {
		_, err := tx.LatestCanvasSnapshot(ctx, keep.ID)
		require.NoError(t, err)
		vs, err := tx.ListCanvasVersions(ctx, keep.ID, domain.Page{})
		require.NoError(t, err)
		assert.Len(t, vs, 1)
		code(t, domain.EConflict, tx.ClaimCanvasReplica(ctx, keep.ID, 7, e.editor.ID))
		return nil
	})
}

func testCanvasReplicas(t *testing.T, s domain.Store) {
	e := newCanvasEnv(t, s)
	c, d := e.canvas(t, "c"), e.canvas(t, "d")
	claim := func(c uuid.UUID, r uint64, u *domain.User) error {
		return e.err(func(tx domain.Tx) error { return tx.ClaimCanvasReplica(ctx, c, r, u.ID) })
	}
	require.NoError(t, claim(c.ID, 7, e.owner))
	require.NoError(t, claim(c.ID, 7, e.owner), "claiming again is a no-op")
	code(t, domain.EConflict, claim(c.ID, 7, e.editor), "someone else's replica")
	require.NoError(t, claim(d.ID, 7, e.editor), "replica ids are per canvas")
	require.NoError(t, claim(c.ID, 8, e.editor))
	require.NoError(t, claim(c.ID, domain.MaxCanvasSeq, e.editor))
	code(t, domain.EConflict, claim(c.ID, domain.MaxCanvasSeq, e.owner))
	code(t, domain.EInvalid, claim(c.ID, domain.MaxCanvasSeq+1, e.owner))
	code(t, domain.EInvalid, claim(c.ID, 1<<64-1, e.owner))
	code(t, domain.EInvalid, claim(c.ID, 0, e.owner), "replica 0 is reserved")
	code(t, domain.ENotFound, claim(id(), 1, e.owner))

	// A refusal leaves the transaction usable.
	e.tx(t, func(tx domain.Tx) error {
		code(t, domain.EConflict, tx.ClaimCanvasReplica(ctx, c.ID, 7, e.editor.ID))
		code(t, domain.ENotFound, tx.ClaimCanvasReplica(ctx, id(), 7, e.editor.ID))
		return tx.ClaimCanvasReplica(ctx, c.ID, 9, e.editor.ID)
	})
	code(t, domain.EConflict, claim(c.ID, 9, e.owner))
}

func testCanvasAppend(t *testing.T, s domain.Store) {
	e := newCanvasEnv(t, s)
	c := e.canvas(t, "c")
	e.claim(t, c, 1, e.owner)
	e.claim(t, c, 2, e.editor)
	batch := []*domain.CanvasUpdate{update(c, 1, 1, 2, e.owner), update(c, 2, 1, 1, e.editor), update(c, 1, 3, 3, e.owner)}
	e.append(t, batch...)
	got := e.since(t, c, nil)
	require.Len(t, got, 3)
	for i, u := range got {
		assert.Equal(t, batch[i].CanvasID, u.CanvasID)
		assert.Equal(t, batch[i].Replica, u.Replica)
		assert.Equal(t, batch[i].First, u.First)
		assert.Equal(t, batch[i].Last, u.Last)
		assert.Equal(t, batch[i].Data, u.Data)
		assert.Equal(t, batch[i].ActorID, u.ActorID)
		assert.True(t, batch[i].At.Equal(u.At), "%v != %v", batch[i].At, u.At)
	}

	// A double write is harmless: the same batch again, and an entry
	// repeated within a batch, add nothing; new entries still land.
	e.append(t, batch...)
	e.append(t, update(c, 1, 3, 3, e.owner), update(c, 2, 2, 4, e.editor), update(c, 2, 2, 4, e.editor), batch[0])
	assert.Equal(t, ranges(append(slices.Clone(batch), update(c, 2, 2, 4, e.editor))), ranges(e.since(t, c, nil)))
	// A repeat with other data is the same entry: the first write stands.
	changed := update(c, 1, 1, 2, e.owner)
	changed.Data = []byte("other")
	e.append(t, changed)
	assert.Equal(t, batch[0].Data, e.since(t, c, nil)[0].Data)

	// A batch with one bad entry writes nothing.
	before := ranges(e.since(t, c, nil))
	for _, test := range []struct {
		name string
		bad  *domain.CanvasUpdate
		code string
	}{
		{"replica claimed by another user", update(c, 2, 5, 5, e.owner), domain.EConflict},
		{"unclaimed replica", update(c, 3, 1, 1, e.owner), domain.EConflict},
		{"no such canvas", &domain.CanvasUpdate{CanvasID: id(), Replica: 1, First: 1, Last: 1, Data: []byte{1}, ActorID: e.owner.ID, At: now}, domain.ENotFound},
		{"replica too large", update(c, domain.MaxCanvasSeq+1, 1, 1, e.owner), domain.EInvalid},
		{"sequence number too large", update(c, 1, 10, 1<<63, e.owner), domain.EInvalid},
		{"first after last", update(c, 1, 11, 10, e.owner), domain.EInvalid},
		{"first 0", update(c, 1, 0, 10, e.owner), domain.EInvalid},
		{"replica 0", update(c, 0, 1, 1, e.owner), domain.EInvalid},
	} {
		err := e.err(func(tx domain.Tx) error {
			err := tx.AppendCanvasUpdates(ctx, []*domain.CanvasUpdate{update(c, 1, 4, 4, e.owner), test.bad})
			code(t, test.code, err, test.name)
			return nil // commit whatever the call left behind
		})
		require.NoError(t, err, test.name)
		assert.Equal(t, before, ranges(e.since(t, c, nil)), test.name)
	}
	e.tx(t, func(tx domain.Tx) error { return tx.AppendCanvasUpdates(ctx, nil) })

	// The largest values round-trip exactly.
	e.claim(t, c, domain.MaxCanvasSeq, e.editor)
	big := update(c, domain.MaxCanvasSeq, domain.MaxCanvasSeq-1, domain.MaxCanvasSeq, e.editor)
	e.append(t, big)
	all := e.since(t, c, nil)
	last := all[len(all)-1]
	assert.Equal(t, uint64(domain.MaxCanvasSeq), last.Replica)
	assert.Equal(t, uint64(domain.MaxCanvasSeq-1), last.First)
	assert.Equal(t, uint64(domain.MaxCanvasSeq), last.Last)
	assert.Empty(t, e.since(t, c, domain.CanvasVersion{1: 3, 2: 4, domain.MaxCanvasSeq: domain.MaxCanvasSeq}))
}

// threeReplicaLog appends an interleaved log of replicas 1, 2 and 3 to c,
// over several calls, and returns it in append order.
func (e *canvasEnv) threeReplicaLog(t *testing.T, c *domain.Canvas) []*domain.CanvasUpdate {
	t.Helper()
	e.claim(t, c, 1, e.owner)
	e.claim(t, c, 2, e.editor)
	e.claim(t, c, 3, e.owner)
	log := []*domain.CanvasUpdate{
		update(c, 1, 1, 2, e.owner), update(c, 2, 1, 3, e.editor), update(c, 1, 3, 5, e.owner),
		update(c, 3, 1, 1, e.owner), update(c, 2, 4, 4, e.editor), update(c, 1, 6, 6, e.owner),
	}
	e.append(t, log[:2]...)
	e.append(t, log[2])
	e.append(t, log[3:]...)
	return log
}

func pick(log []*domain.CanvasUpdate, idx ...int) []string {
	var out []*domain.CanvasUpdate
	for _, i := range idx {
		out = append(out, log[i])
	}
	return ranges(out)
}

func testCanvasUpdatesSince(t *testing.T, s domain.Store) {
	e := newCanvasEnv(t, s)
	c, other := e.canvas(t, "c"), e.canvas(t, "other")
	log := e.threeReplicaLog(t, c)
	e.threeReplicaLog(t, other)
	for _, test := range []struct {
		name string
		v    domain.CanvasVersion
		want []string
	}{
		{"nil vector", nil, pick(log, 0, 1, 2, 3, 4, 5)},
		{"empty vector", domain.CanvasVersion{}, pick(log, 0, 1, 2, 3, 4, 5)},
		{"one replica partly", domain.CanvasVersion{1: 2}, pick(log, 1, 2, 3, 4, 5)},
		{"an entry partly covered is returned", domain.CanvasVersion{1: 4, 2: 3}, pick(log, 2, 3, 4, 5)},
		{"zero entries count as absent", domain.CanvasVersion{1: 0, 2: 4, 3: 0}, pick(log, 0, 2, 3, 5)},
		{"unknown replicas are ignored", domain.CanvasVersion{9: 100}, pick(log, 0, 1, 2, 3, 4, 5)},
		{"full vector", domain.CanvasVersion{1: 6, 2: 4, 3: 1}, []string{}},
		{"beyond the log", domain.CanvasVersion{1: 60, 2: 40, 3: 10}, []string{}},
	} {
		assert.Equal(t, test.want, ranges(e.since(t, c, test.v)), test.name)
	}
	assert.Empty(t, e.since(t, &domain.Canvas{ID: id()}, nil), "an unknown canvas has no entries")
	for _, v := range []domain.CanvasVersion{{0: 1}, {1: 1 << 63}, {1 << 63: 1}} {
		code(t, domain.EInvalid, e.err(func(tx domain.Tx) error { _, err := tx.CanvasUpdatesSince(ctx, c.ID, v); return err }), v)
	}
}

func testCanvasCompact(t *testing.T, s domain.Store) {
	e := newCanvasEnv(t, s)
	c, other := e.canvas(t, "c"), e.canvas(t, "other")
	log := e.threeReplicaLog(t, c)
	otherLog := e.threeReplicaLog(t, other)
	v := domain.CanvasVersion{1: 4, 2: 3}

	e.tx(t, func(tx domain.Tx) error { return tx.CompactCanvasUpdates(ctx, c.ID, domain.CanvasVersion{}) })
	assert.Equal(t, pick(log, 0, 1, 2, 3, 4, 5), ranges(e.since(t, c, nil)), "an empty vector compacts nothing")
	e.tx(t, func(tx domain.Tx) error { return tx.CompactCanvasUpdates(ctx, c.ID, v) })
	assert.Equal(t, pick(log, 2, 3, 4, 5), ranges(e.since(t, c, nil)), "only entries wholly covered go")
	assert.Equal(t, pick(otherLog, 0, 1, 2, 3, 4, 5), ranges(e.since(t, other, nil)), "other canvases keep theirs")

	// An entry written again after compaction (a late double write) is
	// stored, but what a load reads past the snapshot does not change.
	e.append(t, log[0])
	assert.Equal(t, pick(log, 2, 3, 4, 5), ranges(e.since(t, c, v)))

	e.tx(t, func(tx domain.Tx) error {
		return tx.CompactCanvasUpdates(ctx, c.ID, domain.CanvasVersion{1: 6, 2: 4, 3: 1})
	})
	assert.Empty(t, e.since(t, c, nil))
	code(t, domain.EInvalid, e.err(func(tx domain.Tx) error {
		return tx.CompactCanvasUpdates(ctx, c.ID, domain.CanvasVersion{1: 1 << 63})
	}))
	assert.Len(t, e.since(t, other, nil), 6)
}

func testCanvasSnapshots(t *testing.T, s domain.Store) {
	e := newCanvasEnv(t, s)
	c, other := e.canvas(t, "c"), e.canvas(t, "other")
	e.tx(t, func(tx domain.Tx) error {
		_, err := tx.LatestCanvasSnapshot(ctx, c.ID)
		code(t, domain.ENotFound, err)
		vs, err := tx.ListCanvasVersions(ctx, c.ID, domain.Page{Limit: 10})
		require.NoError(t, err)
		assert.Empty(t, vs)
		return nil
	})

	early := id() // an id, and a time, older than p1's
	snap := func(sid uuid.UUID, name string, v domain.CanvasVersion, at time.Time) *domain.CanvasSnapshot {
		return &domain.CanvasSnapshot{ID: sid, CanvasID: c.ID, Name: name, Version: v, Data: []byte("doc " + name + sid.String()[:8]),
			CreatedBy: e.editor.ID, CreatedAt: at}
	}
	p1 := snap(id(), "", domain.CanvasVersion{1: 5, 2: 3}, now.Add(time.Hour))
	n1 := snap(id(), "First draft", domain.CanvasVersion{1: 6}, now)
	p2 := snap(early, "", domain.CanvasVersion{1: 7, 2: 3}, now.Add(-time.Hour))
	n2 := snap(id(), "Second", domain.CanvasVersion{1: 8, 2: 4}, now)
	for _, sn := range []*domain.CanvasSnapshot{p1, n1, p2, n2} {
		e.tx(t, func(tx domain.Tx) error { return tx.PutCanvasSnapshot(ctx, sn) })
	}
	e.tx(t, func(tx domain.Tx) error {
		latest, err := tx.LatestCanvasSnapshot(ctx, c.ID)
		require.NoError(t, err)
		assert.Equal(t, p2, latest, "the periodic snapshot stored last, whatever its id and time")
		_, err = tx.LatestCanvasSnapshot(ctx, other.ID)
		code(t, domain.ENotFound, err, "snapshots belong to their canvas")

		vs, err := tx.ListCanvasVersions(ctx, c.ID, domain.Page{Limit: 10})
		require.NoError(t, err)
		require.Len(t, vs, 2, "named snapshots only")
		for i, want := range []*domain.CanvasSnapshot{n1, n2} {
			noData := *want
			noData.Data = nil
			assert.Equal(t, &noData, vs[i], "in id order, without data")
		}
		vs, err = tx.ListCanvasVersions(ctx, c.ID, domain.Page{Limit: 1, After: n1.ID})
		require.NoError(t, err)
		require.Len(t, vs, 1)
		assert.Equal(t, n2.ID, vs[0].ID)
		vs, err = tx.ListCanvasVersions(ctx, other.ID, domain.Page{})
		require.NoError(t, err)
		assert.Empty(t, vs)

		got, err := tx.CanvasVersionByID(ctx, c.ID, n1.ID)
		require.NoError(t, err)
		assert.Equal(t, n1, got, "with data")
		for _, test := range []struct {
			name           string
			canvas, snapID uuid.UUID
		}{
			{"a periodic snapshot is not a version", c.ID, p1.ID},
			{"another canvas's version", other.ID, n1.ID},
			{"no such version", c.ID, id()},
			{"no such canvas", id(), n1.ID},
		} {
			_, err := tx.CanvasVersionByID(ctx, test.canvas, test.snapID)
			code(t, domain.ENotFound, err, test.name)
		}
		return nil
	})

	code(t, domain.EConflict, e.err(func(tx domain.Tx) error { return tx.PutCanvasSnapshot(ctx, n1) }), "same id")
	lost := snap(id(), "", nil, now)
	lost.CanvasID = id()
	code(t, domain.ENotFound, e.err(func(tx domain.Tx) error { return tx.PutCanvasSnapshot(ctx, lost) }))
}

func testCanvasSnapshotValues(t *testing.T, s domain.Store) {
	e := newCanvasEnv(t, s)
	c := e.canvas(t, "c")
	put := func(v domain.CanvasVersion) error {
		return e.err(func(tx domain.Tx) error {
			return tx.PutCanvasSnapshot(ctx, &domain.CanvasSnapshot{ID: id(), CanvasID: c.ID, Version: v, Data: []byte{1}, CreatedBy: e.owner.ID, CreatedAt: now})
		})
	}
	latest := func() domain.CanvasVersion {
		var sn *domain.CanvasSnapshot
		e.tx(t, func(tx domain.Tx) (err error) { sn, err = tx.LatestCanvasSnapshot(ctx, c.ID); return })
		return sn.Version
	}
	for _, test := range []struct {
		name    string
		in, out domain.CanvasVersion
	}{
		{"nil is empty", nil, domain.CanvasVersion{}},
		{"zero entries are dropped", domain.CanvasVersion{3: 0, 4: 7}, domain.CanvasVersion{4: 7}},
		{"large values", domain.CanvasVersion{domain.MaxCanvasSeq: domain.MaxCanvasSeq, 1<<53 + 1: 1<<53 + 1, 1: 1},
			domain.CanvasVersion{domain.MaxCanvasSeq: domain.MaxCanvasSeq, 1<<53 + 1: 1<<53 + 1, 1: 1}},
	} {
		require.NoError(t, put(test.in), test.name)
		assert.Equal(t, test.out, latest(), test.name)
	}
	for _, v := range []domain.CanvasVersion{{1 << 63: 1}, {1: 1 << 63}, {0: 1}} {
		code(t, domain.EInvalid, put(v), v)
	}
	assert.Equal(t, domain.CanvasVersion{domain.MaxCanvasSeq: domain.MaxCanvasSeq, 1<<53 + 1: 1<<53 + 1, 1: 1}, latest(), "refused snapshots are not stored")
}

// testCanvasLock checks that an exclusive lock and a shared one on a canvas
// exclude each other, in both orders.
func testCanvasLock(t *testing.T, s domain.Store) {
	e := newCanvasEnv(t, s)
	c := e.canvas(t, "c")
	for _, first := range []bool{true, false} {
		locked, release, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
		go func() {
			done <- s.InTx(ctx, e.owner.ID, func(tx domain.Tx) error {
				if _, err := tx.LockCanvas(ctx, c.ID, first); err != nil {
					close(locked)
					return err
				}
				close(locked)
				<-release
				return nil
			})
		}()
		<-locked
		acquired := make(chan error, 1)
		go func() {
			acquired <- s.InTx(ctx, e.editor.ID, func(tx domain.Tx) error {
				_, err := tx.LockCanvas(ctx, c.ID, !first)
				return err
			})
		}()
		select {
		case err := <-acquired:
			close(release)
			<-done
			t.Fatalf("exclusive=%v: the second lock was granted while the first was held (%v)", first, err)
		case <-time.After(150 * time.Millisecond):
		}
		close(release)
		require.NoError(t, <-done)
		select {
		case err := <-acquired:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Fatalf("exclusive=%v: the second lock was not granted after the first was released", first)
		}
	}
}

// testCanvasRollback checks that a failed transaction leaves canvases, logs,
// claims and snapshots as they were.
func testCanvasRollback(t *testing.T, s domain.Store) {
	e := newCanvasEnv(t, s)
	kept := e.canvas(t, "kept")
	_, named := e.fill(t, kept, 7)
	fresh := &domain.Canvas{ID: id(), ProjectID: e.project.ID, Name: "fresh", CreatedBy: e.owner.ID, CreatedAt: now, UpdatedAt: now}
	boom := errors.New("boom")
	err := s.InTx(ctx, e.owner.ID, func(tx domain.Tx) error {
		require.NoError(t, tx.CreateCanvas(ctx, fresh))
		require.NoError(t, tx.ClaimCanvasReplica(ctx, fresh.ID, 1, e.owner.ID))
		require.NoError(t, tx.AppendCanvasUpdates(ctx, []*domain.CanvasUpdate{update(fresh, 1, 1, 1, e.owner)}))
		require.NoError(t, tx.ClaimCanvasReplica(ctx, kept.ID, 8, e.editor.ID))
		require.NoError(t, tx.AppendCanvasUpdates(ctx, []*domain.CanvasUpdate{update(kept, 7, 4, 4, e.owner), update(kept, 8, 1, 1, e.editor)}))
		require.NoError(t, tx.CompactCanvasUpdates(ctx, kept.ID, domain.CanvasVersion{7: 4}))
		require.NoError(t, tx.PutCanvasSnapshot(ctx, &domain.CanvasSnapshot{ID: id(), CanvasID: kept.ID, Version: domain.CanvasVersion{7: 9}, Data: []byte{1}, CreatedBy: e.owner.ID, CreatedAt: now}))
		renamed := *kept
		renamed.Name = "renamed"
		require.NoError(t, tx.UpdateCanvas(ctx, &renamed))
		require.NoError(t, tx.DeleteCanvas(ctx, kept.ID))
		return boom
	})
	require.ErrorIs(t, err, boom)
	e.tx(t, func(tx domain.Tx) error {
		_, err := tx.CanvasByID(ctx, fresh.ID)
		code(t, domain.ENotFound, err)
		got, err := tx.CanvasByID(ctx, kept.ID)
		require.NoError(t, err)
		assert.Equal(t, kept, got)
		latest, err := tx.LatestCanvasSnapshot(ctx, kept.ID)
		require.NoError(t, err)
		assert.Equal(t, domain.CanvasVersion{7: 2}, latest.Version)
		_, err = tx.CanvasVersionByID(ctx, kept.ID, named.ID)
		require.NoError(t, err)
		code(t, domain.EConflict, tx.ClaimCanvasReplica(ctx, kept.ID, 7, e.editor.ID), "the claim is back")
		return tx.ClaimCanvasReplica(ctx, kept.ID, 8, e.owner.ID) // and the rolled-back one is free
	})
	assert.Equal(t, []string{rangeOf(update(kept, 7, 1, 2, e.owner)), rangeOf(update(kept, 7, 3, 3, e.owner))}, ranges(e.since(t, kept, nil)))
}
