package crdt

import (
	"bytes"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func mustApply(t *testing.T, d *Doc, updates ...[]byte) {
	t.Helper()
	for _, u := range updates {
		require.NoError(t, d.Apply(u))
	}
}

func mustCreate(t *testing.T, d *Doc, typ string, parent ID, props Props) (ID, []byte) {
	t.Helper()
	id, u, err := d.Create(typ, parent, "", props)
	require.NoError(t, err)
	return id, u
}

func get(t *testing.T, d *Doc, id ID, key string) Value {
	t.Helper()
	v, _ := d.Get(id, key)
	return v
}

func sameState(t *testing.T, docs ...*Doc) {
	t.Helper()
	want := docs[0].Snapshot()
	for _, d := range docs[1:] {
		require.True(t, bytes.Equal(want, d.Snapshot()), "snapshots differ:\n%s", firstDiff(dump(docs[0]), dump(d)))
	}
}

func TestConcurrentSets(t *testing.T) {
	a, b := NewDoc(1, nil), NewDoc(2, nil)
	r, u := mustCreate(t, a, "rect", Root, Props{"x": Number(0)})
	mustApply(t, b, u)

	ua, err := a.Set(r, Props{"x": Number(1), "fill": String("#ff0000")})
	require.NoError(t, err)
	ub, err := b.Set(r, Props{"y": Number(2), "fill": String("#00ff00")})
	require.NoError(t, err)
	mustApply(t, a, ub)
	mustApply(t, b, ua)

	sameState(t, a, b)
	assert.Equal(t, Number(1), get(t, a, r, "x"))
	assert.Equal(t, Number(2), get(t, a, r, "y"))
	// Equal Lamport counters: the higher replica id wins.
	assert.Equal(t, String("#00ff00"), get(t, a, r, "fill"))

	// A later write (higher counter) wins over any replica id.
	ua, err = a.Set(r, Props{"fill": String("#0000ff")})
	require.NoError(t, err)
	mustApply(t, b, ua)
	assert.Equal(t, String("#0000ff"), get(t, b, r, "fill"))

	// Null clears.
	ub, err = b.Set(r, Props{"fill": Null})
	require.NoError(t, err)
	mustApply(t, a, ub)
	_, ok := a.Get(r, "fill")
	assert.False(t, ok)
	sameState(t, a, b)
}

func TestDeleteRestore(t *testing.T) {
	a, b := NewDoc(1, nil), NewDoc(2, nil)
	f, u1 := mustCreate(t, a, "frame", Root, nil)
	r, u2 := mustCreate(t, a, "rect", f, nil)
	mustApply(t, b, u1, u2)

	del, err := a.Delete(f)
	require.NoError(t, err)
	assert.False(t, a.Live(f))
	assert.False(t, a.Live(r))
	assert.Empty(t, a.Children(Root))

	// Local edits on deleted elements are refused.
	_, err = a.Set(r, Props{"x": Number(5)})
	assert.ErrorIs(t, err, ErrDeleted)
	_, _, err = a.Create("rect", f, "", nil)
	assert.ErrorIs(t, err, ErrDeleted)

	// A concurrent remote edit is kept, hidden, and shows after a restore.
	set, err := b.Set(r, Props{"x": Number(7)})
	require.NoError(t, err)
	mustApply(t, a, set)
	mustApply(t, b, del)
	sameState(t, a, b)
	assert.False(t, b.Live(r))

	und, err := a.Undo() // restores the frame and the rect deleted with it
	require.NoError(t, err)
	mustApply(t, b, und)
	assert.True(t, b.Live(r))
	assert.Equal(t, Number(7), get(t, b, r, "x"))
	sameState(t, a, b)

	// Concurrent delete and restore: the later stamp wins on both sides.
	d1, err := a.Delete(r)
	require.NoError(t, err)
	d2, err := b.Delete(r)
	require.NoError(t, err)
	rs, err := b.Restore(r)
	require.NoError(t, err)
	mustApply(t, a, d2, rs)
	mustApply(t, b, d1)
	sameState(t, a, b)
	assert.True(t, a.Live(r))

	_, err = a.Restore(r)
	assert.ErrorIs(t, err, ErrInvalid)
}

func TestMovesRacingToFormACycle(t *testing.T) {
	a, b := NewDoc(1, nil), NewDoc(2, nil)
	fa, u1 := mustCreate(t, a, "frame", Root, nil)
	fb, u2 := mustCreate(t, a, "frame", Root, nil)
	mustApply(t, b, u1, u2)

	ma, err := a.Move(fa, fb, "") // A into B
	require.NoError(t, err)
	mb, err := b.Move(fb, fa, "") // B into A, concurrently
	require.NoError(t, err)
	mustApply(t, a, mb)
	mustApply(t, b, ma)
	sameState(t, a, b)
	checkTree(t, a)

	// Both moves have counter 3; replica 2's is later, so it is the one
	// skipped: A stays inside B.
	ea, _ := a.Element(fa)
	eb, _ := a.Element(fb)
	assert.Equal(t, fb, ea.Parent)
	assert.Equal(t, Root, eb.Parent)

	// Moving an element into itself or its descendant is refused locally.
	_, err = a.Move(fb, fa, "")
	assert.ErrorIs(t, err, ErrCycle)
	r, _ := mustCreate(t, a, "rect", Root, nil)
	_, err = a.Move(fa, r, "")
	assert.ErrorIs(t, err, ErrNotContainer)
}

func TestZOrder(t *testing.T) {
	d := NewDoc(1, nil)
	x, _ := mustCreate(t, d, "rect", Root, nil)
	y, _ := mustCreate(t, d, "rect", Root, nil)
	z, _ := mustCreate(t, d, "rect", Root, nil)
	assert.Equal(t, []ID{x, y, z}, d.Children(Root))

	ex, _ := d.Element(x)
	ey, _ := d.Element(y)
	k, err := KeyBetween(ex.Key, ey.Key)
	require.NoError(t, err)
	_, err = d.Reorder(z, k)
	require.NoError(t, err)
	assert.Equal(t, []ID{x, z, y}, d.Children(Root))

	// Equal keys are ordered by element id.
	_, err = d.Reorder(x, k)
	require.NoError(t, err)
	assert.Equal(t, []ID{x, z, y}, d.Children(Root))
	_, err = d.Reorder(y, k)
	require.NoError(t, err)
	assert.Equal(t, []ID{x, y, z}, d.Children(Root))
}

func TestOutOfOrderDeliveryIsHeldPending(t *testing.T) {
	a, b := NewDoc(1, nil), NewDoc(2, nil)
	var ups [][]byte
	f, u := mustCreate(t, a, "frame", Root, nil)
	ups = append(ups, u)
	r, u := mustCreate(t, a, "rect", f, Props{"x": Number(1)})
	ups = append(ups, u)
	u, err := a.Set(r, Props{"x": Number(2)})
	require.NoError(t, err)
	ups = append(ups, u)

	slices.Reverse(ups)
	mustApply(t, b, ups[0], ups[0], ups[1])
	assert.Equal(t, 2, b.Pending())
	assert.Equal(t, uint64(0), b.Version()[1])
	_, ok := b.Element(r)
	assert.False(t, ok)

	mustApply(t, b, ups[2])
	assert.Equal(t, 0, b.Pending())
	assert.Equal(t, uint64(3), b.Version()[1])
	assert.Equal(t, Number(2), get(t, b, r, "x"))
	sameState(t, a, b)
}

func TestInvalidUpdatesAreRejectedWhole(t *testing.T) {
	a := NewDoc(1, nil)
	r, _ := mustCreate(t, a, "rect", Root, nil)
	before := a.Snapshot()

	good := Op{Kind: OpSet, ID: ID{Replica: 2, Seq: 1}, Counter: 9, Elem: r, Props: []Prop{{Key: "x", Value: Number(1)}}}
	for _, tc := range []struct {
		name string
		bad  Op
	}{
		{"unknown type", Op{Kind: OpCreate, ID: ID{2, 2}, Counter: 10, Elem: ID{2, 2}, Type: "hexagon", Key: "a0"}},
		{"unknown property", Op{Kind: OpSet, ID: ID{2, 2}, Counter: 10, Elem: r, Props: []Prop{{Key: "colour", Value: Number(1)}}}},
		{"property not allowed on the type", Op{Kind: OpSet, ID: ID{2, 2}, Counter: 10, Elem: r, Props: []Prop{{Key: "src", Value: String("x")}}}},
		{"wrong kind", Op{Kind: OpSet, ID: ID{2, 2}, Counter: 10, Elem: r, Props: []Prop{{Key: "x", Value: String("1")}}}},
		{"out of range", Op{Kind: OpSet, ID: ID{2, 2}, Counter: 10, Elem: r, Props: []Prop{{Key: "opacity", Value: Number(2)}}}},
		{"bad colour", Op{Kind: OpSet, ID: ID{2, 2}, Counter: 10, Elem: r, Props: []Prop{{Key: "fill", Value: String("red")}}}},
		{"parent not a container", Op{Kind: OpCreate, ID: ID{2, 2}, Counter: 10, Elem: ID{2, 2}, Type: "rect", Parent: r, Key: "a0"}},
		{"bad key", Op{Kind: OpMove, ID: ID{2, 2}, Counter: 10, Elem: r, Key: "a0000"}},
		{"zero sequence", Op{Kind: OpDelete, ID: ID{2, 0}, Counter: 10, Elem: r}},
		{"zero counter", Op{Kind: OpDelete, ID: ID{2, 2}, Elem: r}},
		{"depends on its own future", Op{Kind: OpDelete, ID: ID{2, 2}, Counter: 10, Elem: ID{2, 5}}},
		{"root as element", Op{Kind: OpDelete, ID: ID{2, 2}, Counter: 10}},
		{"skip of zero length", Op{Kind: OpSkip, ID: ID{2, 2}}},
		{"unsorted properties", Op{Kind: OpSet, ID: ID{2, 2}, Counter: 10, Elem: r, Props: []Prop{{Key: "y", Value: Number(1)}, {Key: "x", Value: Number(1)}}}},
		{"collect beyond the drop horizon", Op{Kind: OpCollect, ID: ID{2, 2}, Counter: 10, Horizon: VersionVector{1: 1}, Drop: []ID{{1, 2}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := &Update{Ops: []Op{good, tc.bad}}
			assert.ErrorIs(t, a.Check(u), ErrInvalid)
			assert.ErrorIs(t, a.ApplyUpdate(u), ErrInvalid)
			assert.Equal(t, before, a.Snapshot())
			if tc.bad.check() == nil {
				assert.ErrorIs(t, a.Apply(u.Encode()), ErrInvalid)
				assert.Equal(t, before, a.Snapshot())
			}
		})
	}

	enc := (&Update{Ops: []Op{good}}).Encode()
	for name, b := range map[string][]byte{
		"empty":      nil,
		"truncated":  enc[:len(enc)-1],
		"trailing":   append(slices.Clone(enc), 0xc0),
		"bad magic":  append([]byte{0x93, 0xa3, 'X', 'C', 'U'}, enc[5:]...),
		"version 2":  append(append([]byte{}, enc[:5]...), append([]byte{0x02}, enc[6:]...)...),
		"not msgpck": []byte("hello, world"),
	} {
		t.Run(name, func(t *testing.T) {
			assert.ErrorIs(t, a.Apply(b), ErrInvalid)
			assert.Equal(t, before, a.Snapshot())
		})
	}
	require.NoError(t, a.Check(&Update{Ops: []Op{good}}))
	assert.Equal(t, before, a.Snapshot())
	require.NoError(t, a.Apply(enc))
	assert.Equal(t, Number(1), get(t, a, r, "x"))
}

func TestUndoNeverOverwritesOthers(t *testing.T) {
	a, b := NewDoc(1, nil), NewDoc(2, nil)
	r, u := mustCreate(t, a, "rect", Root, Props{"x": Number(0), "fill": String("#000000")})
	mustApply(t, b, u)

	ua, err := a.Set(r, Props{"x": Number(10), "fill": String("#ff0000")})
	require.NoError(t, err)
	mustApply(t, b, ua)
	ub, err := b.Set(r, Props{"fill": String("#0000ff")})
	require.NoError(t, err)
	mustApply(t, a, ub)

	undo, err := a.Undo()
	require.NoError(t, err)
	mustApply(t, b, undo)
	assert.Equal(t, Number(0), get(t, a, r, "x"), "my own change is undone")
	assert.Equal(t, String("#0000ff"), get(t, a, r, "fill"), "Bob's newer fill stays")

	redo, err := a.Redo()
	require.NoError(t, err)
	mustApply(t, b, redo)
	assert.Equal(t, Number(10), get(t, b, r, "x"))
	assert.Equal(t, String("#0000ff"), get(t, b, r, "fill"))
	sameState(t, a, b)

	// Undo the move only while it is still mine.
	f, u := mustCreate(t, b, "frame", Root, nil)
	mustApply(t, a, u)
	mv, err := a.Move(r, f, "")
	require.NoError(t, err)
	mustApply(t, b, mv)
	mv2, err := b.Move(r, Root, "")
	require.NoError(t, err)
	mustApply(t, a, mv2)
	undo, err = a.Undo() // the move is overridden: skipped; next is the redone set
	require.NoError(t, err)
	mustApply(t, b, undo)
	e, _ := a.Element(r)
	assert.Equal(t, Root, e.Parent)
	assert.Equal(t, Number(0), get(t, a, r, "x"))

	// Undo of a create deletes the element.
	c, _ := mustCreate(t, a, "ellipse", Root, nil)
	_, err = a.Undo()
	require.NoError(t, err)
	assert.False(t, a.Live(c))
	_, err = a.Redo()
	require.NoError(t, err)
	assert.True(t, a.Live(c))

	// A new edit clears redo.
	_, err = a.Undo()
	require.NoError(t, err)
	_, err = a.Set(r, Props{"y": Number(3)})
	require.NoError(t, err)
	_, err = a.Redo()
	assert.ErrorIs(t, err, ErrNothingToRedo)

	fresh := NewDoc(3, nil)
	_, err = fresh.Undo()
	assert.ErrorIs(t, err, ErrNothingToUndo)
}

func TestDanglingBindings(t *testing.T) {
	a, b := NewDoc(1, nil), NewDoc(2, nil)
	r1, u1 := mustCreate(t, a, "rect", Root, nil)
	r2, u2 := mustCreate(t, a, "rect", Root, nil)
	c, u3 := mustCreate(t, a, "connector", Root, Props{"start": Ref(r1), "end": Ref(r2)})
	mustApply(t, b, u1, u2, u3)
	assert.Empty(t, b.Dangling())

	del, err := b.Delete(r2)
	require.NoError(t, err)
	mustApply(t, a, del)
	want := []Binding{{Elem: c, Key: "end", Target: r2}}
	assert.Equal(t, want, a.Dangling())
	assert.Equal(t, want, b.Dangling())

	// Binding to an unknown element is refused locally.
	_, err = a.Set(c, Props{"end": Ref(ID{Replica: 7, Seq: 1})})
	assert.ErrorIs(t, err, ErrNotFound)

	// After garbage collection the target is gone; still reported.
	col, err := a.Collect(Min(a.Version(), b.Version()))
	require.NoError(t, err)
	mustApply(t, b, col)
	_, ok := a.Element(r2)
	assert.False(t, ok)
	assert.Equal(t, want, a.Dangling())
	sameState(t, a, b)
}

func TestDiffSince(t *testing.T) {
	a, b := NewDoc(1, nil), NewDoc(2, nil)
	f, u := mustCreate(t, a, "frame", Root, nil)
	mustApply(t, b, u)
	v := b.Version()

	r, _ := mustCreate(t, a, "rect", Root, Props{"x": Number(1), "y": Number(2)})
	for i := range 5 {
		_, err := a.Set(r, Props{"x": Number(float64(i))})
		require.NoError(t, err)
	}
	_, err := a.Move(r, f, "")
	require.NoError(t, err)
	_, err = a.Delete(r)
	require.NoError(t, err)
	_, err = a.Restore(r)
	require.NoError(t, err)
	_, err = b.Set(f, Props{"name": String("b's")})
	require.NoError(t, err)

	diff, err := a.DiffSince(v)
	require.NoError(t, err)
	du, err := DecodeUpdate(diff)
	require.NoError(t, err)
	// The overwritten sets are covered by a skip run, not sent.
	var kinds []OpKind
	for _, o := range du.Ops {
		kinds = append(kinds, o.Kind)
	}
	assert.Equal(t, []OpKind{OpCreate, OpSkip, OpSet, OpMove, OpDelete, OpRestore}, kinds)

	mustApply(t, b, diff)
	require.NoError(t, a.Merge(b))
	sameState(t, a, b)

	// Nothing new: an empty diff.
	diff, err = a.DiffSince(b.Version())
	require.NoError(t, err)
	du, err = DecodeUpdate(diff)
	require.NoError(t, err)
	assert.Empty(t, du.Ops)
}

func TestCollect(t *testing.T) {
	a, b := NewDoc(1, nil), NewDoc(2, nil)
	f, u1 := mustCreate(t, a, "frame", Root, nil)
	inner, u2 := mustCreate(t, a, "rect", f, nil)
	keep, u3 := mustCreate(t, a, "rect", Root, nil)
	mustApply(t, b, u1, u2, u3)
	mv, err := a.Move(keep, Root, "")
	require.NoError(t, err)
	del, err := a.Delete(f)
	require.NoError(t, err)
	// A concurrent edit inside the frame, made before b sees the delete.
	late, err := b.Set(inner, Props{"x": Number(1)})
	require.NoError(t, err)
	mustApply(t, b, mv, del)
	old := NewDoc(3, nil)
	mustApply(t, old, u1)

	h := Min(a.Version(), b.Version())
	col, err := a.Collect(h)
	require.NoError(t, err)
	require.NotNil(t, col)
	assert.Empty(t, a.log)
	_, ok := a.Element(f)
	assert.False(t, ok)
	_, ok = a.Element(inner)
	assert.False(t, ok)
	assert.True(t, a.Live(keep))

	// The late edit finds nothing and changes nothing, before or after.
	mustApply(t, a, late)
	mustApply(t, b, col)
	sameState(t, a, b)
	_, err = a.Restore(f)
	assert.ErrorIs(t, err, ErrNotFound)

	// A peer below the horizon needs a snapshot.
	_, err = a.DiffSince(old.Version())
	assert.ErrorIs(t, err, ErrSnapshotRequired)
	assert.ErrorIs(t, old.Merge(a), ErrSnapshotRequired)

	// Collecting again adds nothing; a horizon ahead of us is refused.
	again, err := a.Collect(h)
	require.NoError(t, err)
	assert.Nil(t, again)
	_, err = a.Collect(VersionVector{9: 1})
	assert.ErrorIs(t, err, ErrInvalid)
}

func TestSnapshotRoundTrip(t *testing.T) {
	a, b := NewDoc(1, nil), NewDoc(2, nil)
	f, u1 := mustCreate(t, a, "frame", Root, Props{"name": String("F"), "clip": Bool(true)})
	_, u2 := mustCreate(t, a, "line", f, Props{"points": Points(0, 0, 10, 10.5)})
	mustApply(t, b, u1)
	_, err := b.Set(f, Props{"x": Number(-3.25)})
	require.NoError(t, err)
	u3, err := a.Set(f, Props{"w": Number(100)})
	require.NoError(t, err)
	mustApply(t, b, u3) // pending: needs u2

	snap := b.Snapshot()
	c, err := Load(2, nil, snap)
	require.NoError(t, err)
	assert.Equal(t, snap, c.Snapshot())
	assert.Equal(t, 1, c.Pending())

	// The loaded replica resumes its own sequence numbers, and the pending
	// op applies when its dependency arrives.
	u4, err := c.Set(f, Props{"y": Number(1)})
	require.NoError(t, err)
	du, err := DecodeUpdate(u4)
	require.NoError(t, err)
	assert.Equal(t, ID{Replica: 2, Seq: 2}, du.Ops[0].ID)
	mustApply(t, c, u2)
	mustApply(t, a, u4)
	require.NoError(t, a.Merge(c))
	sameState(t, a, c)

	for _, bad := range [][]byte{nil, snap[:len(snap)/2], append(slices.Clone(snap), 1), (&Update{}).Encode()} {
		_, err := Load(1, nil, bad)
		assert.ErrorIs(t, err, ErrInvalid)
	}
}

func TestMergeUpdates(t *testing.T) {
	a, b := NewDoc(1, nil), NewDoc(2, nil)
	var ups [][]byte
	r, u := mustCreate(t, a, "rect", Root, nil)
	ups = append(ups, u)
	for i := range 3 {
		u, err := a.Set(r, Props{"x": Number(float64(i))})
		require.NoError(t, err)
		ups = append(ups, u)
	}
	merged, err := MergeUpdates(ups[3], ups[1], ups[0], ups[2], ups[1])
	require.NoError(t, err)
	mu, err := DecodeUpdate(merged)
	require.NoError(t, err)
	assert.Len(t, mu.Ops, 4)
	mustApply(t, b, merged)
	sameState(t, a, b)

	_, err = MergeUpdates(ups[0], []byte{1, 2, 3})
	assert.ErrorIs(t, err, ErrInvalid)
}

func TestLocalEditErrors(t *testing.T) {
	d := NewDoc(1, nil)
	_, _, err := d.Create("hexagon", Root, "", nil)
	assert.ErrorIs(t, err, ErrInvalid)
	_, _, err = d.Create("rect", ID{Replica: 1, Seq: 40}, "", nil)
	assert.ErrorIs(t, err, ErrNotFound)
	_, _, err = d.Create("rect", Root, "not a key", nil)
	assert.ErrorIs(t, err, ErrInvalid)
	_, _, err = d.Create("rect", Root, "", Props{"points": Points(1, 2)})
	assert.ErrorIs(t, err, ErrInvalid)
	r, _ := mustCreate(t, d, "rect", Root, nil)
	_, err = d.Set(r, Props{})
	assert.ErrorIs(t, err, ErrInvalid)
	_, err = d.Set(r, Props{"rotation": Number(1000)})
	assert.ErrorIs(t, err, ErrInvalid)
	f, _ := mustCreate(t, d, "group", Root, nil)
	_, err = d.Move(f, f, "")
	assert.ErrorIs(t, err, ErrCycle)
	_, err = d.Delete(ID{Replica: 5, Seq: 5})
	assert.ErrorIs(t, err, ErrNotFound)
	assert.Panics(t, func() { NewDoc(0, nil) })
}

func TestUndoHistoryIsBounded(t *testing.T) {
	d := NewDoc(1, nil)
	r, _ := mustCreate(t, d, "rect", Root, nil)
	for i := range 2 * maxUndo {
		_, err := d.Set(r, Props{"x": Number(float64(i + 1))})
		require.NoError(t, err)
	}
	undone := 0
	for {
		if _, err := d.Undo(); err != nil {
			assert.ErrorIs(t, err, ErrNothingToUndo)
			break
		}
		undone++
	}
	assert.GreaterOrEqual(t, undone, maxUndo)
	assert.Less(t, undone, 2*maxUndo, "the oldest edits were trimmed")
	assert.True(t, d.Live(r), "the create fell off the history")
	assert.Equal(t, Number(float64(2*maxUndo-undone)), get(t, d, r, "x"))
}

func TestUndoRedoChain(t *testing.T) {
	a, b := NewDoc(1, nil), NewDoc(2, nil)
	r, u := mustCreate(t, a, "rect", Root, Props{"x": Number(0)})
	mustApply(t, b, u)
	f, u := mustCreate(t, a, "frame", Root, nil)
	mustApply(t, b, u)
	for i := 1; i <= 3; i++ {
		_, err := a.Set(r, Props{"x": Number(float64(i))})
		require.NoError(t, err)
	}
	_, err := a.Move(r, f, "")
	require.NoError(t, err)
	_, err = a.Delete(r)
	require.NoError(t, err)

	// Undo everything back to the first set, one step at a time.
	want := []func(){
		func() { assert.True(t, a.Live(r)) },
		func() { e, _ := a.Element(r); assert.Equal(t, Root, e.Parent) },
		func() { assert.Equal(t, Number(2), get(t, a, r, "x")) },
		func() { assert.Equal(t, Number(1), get(t, a, r, "x")) },
		func() { assert.Equal(t, Number(0), get(t, a, r, "x")) },
	}
	for _, check := range want {
		_, err := a.Undo()
		require.NoError(t, err)
		check()
	}
	// Redo twice, then someone else writes x: redo stops short of it.
	for range 2 {
		_, err := a.Redo()
		require.NoError(t, err)
	}
	assert.Equal(t, Number(2), get(t, a, r, "x"))
	require.NoError(t, b.Merge(a))
	w, err := b.Set(r, Props{"x": Number(42)})
	require.NoError(t, err)
	mustApply(t, a, w)
	u, err = a.Redo() // the set to 3 is skipped; the move is redone
	require.NoError(t, err)
	mustApply(t, b, u)
	assert.Equal(t, Number(42), get(t, a, r, "x"))
	e, _ := a.Element(r)
	assert.Equal(t, f, e.Parent)
	sameState(t, a, b)
}
