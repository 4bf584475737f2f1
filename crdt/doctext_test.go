package crdt

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// typeText inserts s at pos of the sticky note's content and returns the update.
func typeText(t *testing.T, d *Doc, id ID, pos int, s string) []byte {
	t.Helper()
	u, err := d.InsertText(id, "content", pos, s)
	require.NoError(t, err)
	return u
}

func eraseText(t *testing.T, d *Doc, id ID, pos, n int) []byte {
	t.Helper()
	u, err := d.DeleteText(id, "content", pos, n)
	require.NoError(t, err)
	return u
}

func decode(t *testing.T, b []byte) *Update {
	t.Helper()
	u, err := DecodeUpdate(b)
	require.NoError(t, err)
	return u
}

func TestDocTextBasics(t *testing.T) {
	d := NewDoc(1, nil)
	note, _ := mustCreate(t, d, "sticky", Root, Props{"text": String("old label")})
	assert.Equal(t, "", d.Text(note, "content"))

	typeText(t, d, note, 0, "héllo")
	typeText(t, d, note, 5, " wörld")
	eraseText(t, d, note, 0, 1)
	typeText(t, d, note, 0, "H")
	assert.Equal(t, "Héllo wörld", d.Text(note, "content"))
	assert.Equal(t, 11, d.TextLen(note, "content"))
	// 1 create + 5 + 6 characters + 1 delete + 1 character.
	assert.Equal(t, uint64(14), d.Version()[1])

	info, ok := d.Element(note)
	require.True(t, ok)
	assert.Equal(t, map[string]string{"content": "Héllo wörld"}, info.Texts)
	assert.Equal(t, String("old label"), info.Props["text"], "the LWW text property still works")
	_, ok = info.Props["content"]
	assert.False(t, ok)
	_, ok = d.Get(note, "content")
	assert.False(t, ok)

	// Text is not a value: it cannot be created or set.
	_, _, err := d.Create("sticky", Root, "", Props{"content": String("x")})
	assert.ErrorIs(t, err, ErrInvalid)
	_, err = d.Set(note, Props{"content": Null})
	assert.ErrorIs(t, err, ErrInvalid)

	// Errors change nothing.
	before := d.Snapshot()
	rect, _ := mustCreate(t, d, "rect", Root, nil)
	line, _ := mustCreate(t, d, "line", Root, nil)
	before = d.Snapshot()
	for _, c := range []struct {
		err  error
		edit func() ([]byte, error)
	}{
		{ErrNotFound, func() ([]byte, error) { return d.InsertText(ID{9, 9}, "content", 0, "x") }},
		{ErrInvalid, func() ([]byte, error) { return d.InsertText(note, "nope", 0, "x") }},
		{ErrInvalid, func() ([]byte, error) { return d.InsertText(note, "text", 0, "x") }},
		{ErrInvalid, func() ([]byte, error) { return d.InsertText(line, "content", 0, "x") }},
		{ErrInvalid, func() ([]byte, error) { return d.InsertText(note, "content", 0, "") }},
		{ErrInvalid, func() ([]byte, error) { return d.InsertText(note, "content", 0, "\xff") }},
		{TextErrPosition, func() ([]byte, error) { return d.InsertText(note, "content", 12, "x") }},
		{TextErrPosition, func() ([]byte, error) { return d.InsertText(rect, "content", 1, "x") }},
		{TextErrPosition, func() ([]byte, error) { return d.DeleteText(note, "content", 10, 2) }},
		{TextErrPosition, func() ([]byte, error) { return d.DeleteText(note, "content", 0, 0) }},
		{TextErrPosition, func() ([]byte, error) { return d.DeleteText(rect, "content", 0, 1) }},
		{ErrInvalid, func() ([]byte, error) { return d.InsertText(note, "content", 0, strings.Repeat("x", 1<<20)) }},
		{ErrInvalid, func() ([]byte, error) { return d.ReplaceText(note, "content", strings.Repeat("x", 1<<20+1)) }},
	} {
		_, err := c.edit()
		assert.ErrorIs(t, err, c.err)
		assert.Equal(t, before, d.Snapshot(), "a failed edit changed the document: %v", err)
	}
	_, err = d.Delete(note)
	require.NoError(t, err)
	_, err = d.InsertText(note, "content", 0, "x")
	assert.ErrorIs(t, err, ErrDeleted)
	_, err = d.ReplaceText(note, "content", "x")
	assert.ErrorIs(t, err, ErrDeleted)
	assert.Equal(t, "Héllo wörld", d.Text(note, "content"), "a deleted element's text is still readable")
}

// The server accepts an update only if its ops take consecutive sequence
// numbers, by ID.Seq and Span; text ops take one per character inserted
// and one per delete.
func TestDocTextSequenceNumbers(t *testing.T) {
	d := NewDoc(5, nil)
	note, first := mustCreate(t, d, "sticky", Root, nil)
	updates := [][]byte{first,
		typeText(t, d, note, 0, "a😀c"),
		eraseText(t, d, note, 1, 2),
		typeText(t, d, note, 1, strings.Repeat("é", maxTextInsert+3)), // split in two ops
	}
	u, err := d.ReplaceText(note, "content", "xyz")
	require.NoError(t, err)
	updates = append(updates, u)
	u, err = d.Undo()
	require.NoError(t, err)
	updates = append(updates, u)

	next := uint64(1)
	var spans []uint64
	for _, b := range updates {
		for _, o := range decode(t, b).Ops {
			require.Equal(t, next, o.ID.Seq, "%v op", o.Kind)
			next += o.Span()
			spans = append(spans, o.Span())
			if o.Kind == OpTextInsert {
				assert.LessOrEqual(t, o.Span(), uint64(maxTextInsert))
				assert.Equal(t, uint64(utf8.RuneCountInString(o.Text.Text)), o.Span())
			}
		}
	}
	assert.Equal(t, next-1, d.Version()[5])
	assert.Equal(t, []uint64{1, 3, 1, maxTextInsert, 3}, spans[:5])

	// A replica that applies every update, one at a time, ends alike.
	o := NewDoc(6, nil)
	mustApply(t, o, updates...)
	assert.Equal(t, d.Snapshot(), o.Snapshot())
	assert.Equal(t, d.Text(note, "content"), o.Text(note, "content"))
}

func TestDocTextWaitsForWhatItNames(t *testing.T) {
	a, b, c := NewDoc(1, nil), NewDoc(2, nil), NewDoc(3, nil)
	note, create := mustCreate(t, a, "sticky", Root, nil)
	hello := typeText(t, a, note, 0, "hello")
	mustApply(t, b, create, hello)
	world := typeText(t, b, note, 5, " world") // origin left: a's 'o'
	del := eraseText(t, b, note, 0, 1)         // deletes a's 'h'

	// c gets b's edits first: they wait for the element, then for a's
	// characters, and count in no version until they apply.
	mustApply(t, c, world, del)
	assert.Equal(t, 2, c.Pending())
	assert.Equal(t, VersionVector{}, c.Version())
	mustApply(t, c, create)
	assert.Equal(t, 2, c.Pending())
	assert.Equal(t, "", c.Text(note, "content"))
	// The pending ops survive a snapshot.
	c2, err := Load(3, nil, c.Snapshot())
	require.NoError(t, err)
	assert.Equal(t, 2, c2.Pending())
	for _, d := range []*Doc{c, c2} {
		mustApply(t, d, hello)
		assert.Equal(t, 0, d.Pending())
		assert.Equal(t, "ello world", d.Text(note, "content"))
		assert.Equal(t, b.Snapshot(), d.Snapshot())
	}
}

func TestDocTextInvalidUpdatesAreRejectedWhole(t *testing.T) {
	d := NewDoc(1, nil)
	note, _ := mustCreate(t, d, "sticky", Root, nil)
	line, _ := mustCreate(t, d, "line", Root, nil)
	typeText(t, d, note, 0, "abc")
	before := d.Snapshot()

	set := Op{Kind: OpSet, ID: ID{2, 1}, Counter: 9, Elem: note, Props: []Prop{{Key: "x", Value: Number(1)}}}
	ins := func(f func(o *Op)) Op {
		o := Op{Kind: OpTextInsert, ID: ID{2, 2}, Elem: note, TextProp: "content",
			Text: TextOp{Kind: TextInsert, ID: ID{2, 2}, Left: ID{1, 3}, Text: "xy"}}
		f(&o)
		return o
	}
	del := func(spans ...TextSpan) Op {
		return Op{Kind: OpTextDelete, ID: ID{2, 2}, Elem: note, TextProp: "content", Text: TextOp{Kind: TextDelete, ID: ID{2, 2}, Spans: spans}}
	}
	// wire: the op's encoding is invalid too (the others break rules the
	// encoding cannot express, or that need the schema or the document).
	for name, c := range map[string]struct {
		op   Op
		wire bool
	}{
		"not a text property":   {ins(func(o *Op) { o.TextProp = "text" }), false},
		"unknown property":      {ins(func(o *Op) { o.TextProp = "body" }), false},
		"type without the prop": {ins(func(o *Op) { o.Elem = line }), false},
		"with a counter":        {ins(func(o *Op) { o.Counter = 3 }), false},
		"text id differs":       {ins(func(o *Op) { o.Text.ID = ID{2, 3} }), false},
		"delete kind in insert": {ins(func(o *Op) { o.Text.Kind = TextDelete }), false},
		"no text":               {ins(func(o *Op) { o.Text.Text = "" }), true},
		"bad utf-8":             {ins(func(o *Op) { o.Text.Text = "a\xff" }), true},
		"too long":              {ins(func(o *Op) { o.Text.Text = strings.Repeat("x", maxTextInsert+1) }), true},
		"origin in its future":  {ins(func(o *Op) { o.Text.Left = ID{2, 2} }), true},
		"equal origins":         {ins(func(o *Op) { o.Text.Right = o.Text.Left }), true},
		"seqs beyond 2^53":      {ins(func(o *Op) { o.ID.Seq, o.Text.ID.Seq = maxCounter-1, maxCounter-1 }), true},
		"origin beyond 2^53":    {ins(func(o *Op) { o.Text.Right = ID{1, maxCounter} }), true},
		"no element":            {ins(func(o *Op) { o.Elem = ID{} }), true},
		"empty span":            {del(TextSpan{ID{1, 2}, 0}), true},
		"delete of own future":  {del(TextSpan{ID{2, 2}, 1}), true},
		"span beyond 2^53":      {del(TextSpan{ID{1, maxCounter - 1}, 2}), true},
		"delete with insert":    {func() Op { o := del(); o.Text.Text = "x"; return o }(), false},
		"set writes text":       {Op{Kind: OpSet, ID: ID{2, 2}, Counter: 10, Elem: note, Props: []Prop{{Key: "content", Value: Null}}}, false},
		"create writes text": {Op{Kind: OpCreate, ID: ID{2, 2}, Counter: 10, Elem: ID{2, 2}, Type: "sticky", Key: "a0",
			Props: []Prop{{Key: "content", Value: String("x")}}}, false},
	} {
		u := &Update{Ops: []Op{set, c.op}}
		err := d.ApplyUpdate(u)
		assert.ErrorIs(t, err, ErrInvalid, name)
		assert.Equal(t, before, d.Snapshot(), name)
		if c.wire {
			_, err := DecodeUpdate(u.Encode())
			assert.ErrorIs(t, err, ErrInvalid, name)
		}
	}
	good := ins(func(*Op) {})
	require.NoError(t, d.ApplyUpdate(&Update{Ops: []Op{set, good}}))
	assert.Equal(t, "abcxy", d.Text(note, "content"))
}

func TestDocTextUndoRedo(t *testing.T) {
	// Type, delete part of it, undo both, redo both.
	d := NewDoc(1, nil)
	n, _ := mustCreate(t, d, "sticky", Root, nil)
	typeText(t, d, n, 0, "hello")
	eraseText(t, d, n, 0, 2)
	var got []string
	for _, step := range []func() ([]byte, error){d.Undo, d.Undo, d.Redo, d.Redo, d.Undo} {
		_, err := step()
		require.NoError(t, err)
		got = append(got, d.Text(n, "content"))
	}
	assert.Equal(t, []string{"hello", "", "hello", "llo", "hello"}, got)

	a, b := NewDoc(1, nil), NewDoc(2, nil)
	note, u := mustCreate(t, a, "sticky", Root, nil)
	mustApply(t, b, u)
	sync := func() {
		require.NoError(t, a.Merge(b))
		require.NoError(t, b.Merge(a))
	}
	typeText(t, a, note, 0, "hello")
	sync()
	typeText(t, b, note, 5, " world")
	sync()
	eraseText(t, a, note, 0, 2) // "llo world"
	typeText(t, a, note, 0, "HE")
	sync()
	assert.Equal(t, "HEllo world", a.Text(note, "content"))

	undo := func(d *Doc) {
		t.Helper()
		u, err := d.Undo()
		require.NoError(t, err)
		for _, o := range decode(t, u).Ops {
			assert.Contains(t, []OpKind{OpTextInsert, OpTextDelete}, o.Kind)
		}
		sync()
	}
	undo(a) // the "HE"
	assert.Equal(t, "llo world", b.Text(note, "content"))
	undo(a) // the delete: "he" comes back where it was
	assert.Equal(t, "hello world", b.Text(note, "content"))
	// b deletes part of a's first insert; undoing that insert deletes only
	// what is left of it, and never b's " world".
	eraseText(t, b, note, 1, 3) // "ho world"
	sync()
	undo(a)
	assert.Equal(t, " world", b.Text(note, "content"))
	_, err := a.Redo()
	require.NoError(t, err)
	sync()
	assert.Equal(t, "ho world", b.Text(note, "content"))
	_, err = a.Redo() // the delete of "he"
	require.NoError(t, err)
	sync()
	assert.Equal(t, "o world", b.Text(note, "content"))
	assert.Equal(t, a.Snapshot(), b.Snapshot())

	// Undo of a delete whose content was collected has nothing to restore.
	c := NewDoc(3, nil)
	n2, _ := mustCreate(t, c, "sticky", Root, nil)
	typeText(t, c, n2, 0, "abc")
	eraseText(t, c, n2, 1, 1)
	_, err = c.Collect(c.Version())
	require.NoError(t, err)
	u, err = c.Undo() // the delete: collected, skipped; then the insert
	require.NoError(t, err)
	assert.Equal(t, "", c.Text(n2, "content"))
	assert.Len(t, decode(t, u).Ops, 1)

	// Text steps of a deleted element are skipped.
	typeText(t, a, note, 0, "x")
	_, err = b.Delete(note)
	require.NoError(t, err)
	sync()
	_, err = a.Undo()
	assert.NotContains(t, fmt.Sprint(err), "text")
	assert.Equal(t, "xo world", a.Text(note, "content"))
}

// Text edits follow the document's rules for deleted elements: kept (and
// shown again on restore) while the element is deleted, dropped once it
// is collected.
func TestDocTextOfDeletedElements(t *testing.T) {
	a, b := NewDoc(1, nil), NewDoc(2, nil)
	note, u := mustCreate(t, a, "sticky", Root, nil)
	mustApply(t, b, u, typeText(t, a, note, 0, "keep"))
	del, err := a.Delete(note)
	require.NoError(t, err)
	late := typeText(t, b, note, 4, "!") // concurrent with the delete
	mustApply(t, a, late)
	mustApply(t, b, del)
	assert.Equal(t, "keep!", a.Text(note, "content"))
	assert.Equal(t, a.Snapshot(), b.Snapshot())
	_, err = b.InsertText(note, "content", 0, "x")
	assert.ErrorIs(t, err, ErrDeleted)
	res, err := a.Restore(note)
	require.NoError(t, err)
	mustApply(t, b, res)
	info, _ := b.Element(note)
	assert.Equal(t, "keep!", info.Texts["content"])

	del, err = b.Delete(note)
	require.NoError(t, err)
	mustApply(t, a, del)
	col, err := a.Collect(a.Version())
	require.NoError(t, err)
	mustApply(t, b, col)
	// An edit made concurrently with the collect is counted, and dropped.
	stray := &Update{Ops: []Op{{Kind: OpTextInsert, ID: ID{4, 1}, Elem: note, TextProp: "content",
		Text: TextOp{Kind: TextInsert, ID: ID{4, 1}, Text: "lost"}}}}
	require.NoError(t, a.ApplyUpdate(stray))
	assert.Equal(t, uint64(4), a.Version()[4])
	assert.Equal(t, "", a.Text(note, "content"))
	assert.Equal(t, 0, a.Pending())
	mustApply(t, b, stray.Encode())
	assert.Equal(t, a.Snapshot(), b.Snapshot())
}

// Which tombstones a collect drops depends only on the deletes in its
// horizon, not on which other deletes of the same characters arrived
// before it.
func TestDocTextCollectIgnoresArrivalOrder(t *testing.T) {
	a, b, c := NewDoc(1, nil), NewDoc(2, nil), NewDoc(3, nil)
	note, u := mustCreate(t, a, "sticky", Root, nil)
	ins := typeText(t, a, note, 0, "abcdef")
	for _, d := range []*Doc{b, c} {
		mustApply(t, d, u, ins)
	}
	// b and c delete overlapping text at once. b's delete has the lesser id,
	// so the characters both deleted are attributed to it.
	db := eraseText(t, b, note, 1, 3) // bcd
	dc := eraseText(t, c, note, 2, 3) // cde
	// a hears of c's delete only, and collects it: every replica has seen it.
	mustApply(t, a, dc)
	mustApply(t, b, dc)
	h := Min(a.Version(), c.Version(), b.Version())
	h[2] = 0 // b's delete is outside the horizon
	delete(h, 2)
	col, err := a.Collect(h)
	require.NoError(t, err)
	// b got c's delete before the collect, a and c get b's after it.
	mustApply(t, b, col)
	mustApply(t, c, col, db)
	mustApply(t, a, db)
	assert.Equal(t, "af", a.Text(note, "content"))
	assert.Equal(t, a.Snapshot(), b.Snapshot())
	assert.Equal(t, a.Snapshot(), c.Snapshot())
}

func TestDocTextDiffSince(t *testing.T) {
	a, b := NewDoc(1, nil), NewDoc(2, nil)
	note, u := mustCreate(t, a, "sticky", Root, Props{"x": Number(1)})
	mustApply(t, b, u, typeText(t, a, note, 0, "shared"))
	v := b.Version()
	typeText(t, a, note, 6, " text")
	_, err := a.Set(note, Props{"x": Number(2)})
	require.NoError(t, err)
	eraseText(t, a, note, 0, 1)
	typeText(t, a, note, 0, "S")
	diff, err := a.DiffSince(v)
	require.NoError(t, err)
	var texts []string
	for _, o := range decode(t, diff).Ops {
		assert.False(t, v.Contains(o.ID), "%v op %v is one b has", o.Kind, o.ID)
		switch o.Kind {
		case OpTextInsert:
			texts = append(texts, o.Text.Text)
		case OpTextDelete:
			texts = append(texts, fmt.Sprint("-", o.Text.Spans))
		}
	}
	assert.Equal(t, []string{" text", "-[{{1 2} 1}]", "S"}, texts)
	mustApply(t, b, diff)
	assert.Equal(t, a.Snapshot(), b.Snapshot())
	assert.Equal(t, "Shared text", b.Text(note, "content"))

	// Runs longer than an op may carry are split.
	long := strings.Repeat("é", maxTextInsert+5)
	typeText(t, a, note, 0, long)
	diff, err = a.DiffSince(b.Version())
	require.NoError(t, err)
	var n []uint64
	for _, o := range decode(t, diff).Ops {
		n = append(n, o.Span())
	}
	assert.Equal(t, []uint64{maxTextInsert, 5}, n)
	mustApply(t, b, diff)
	assert.Equal(t, long+"Shared text", b.Text(note, "content"))
}

func TestDocTextCursor(t *testing.T) {
	a, b := NewDoc(1, nil), NewDoc(2, nil)
	note, u := mustCreate(t, a, "sticky", Root, nil)
	mustApply(t, b, u)
	c0, err := a.TextCursor(note, "content", 0)
	require.NoError(t, err)
	assert.Equal(t, ID{}, c0)
	mustApply(t, b, typeText(t, a, note, 0, "hello world"))
	cur, err := a.TextCursor(note, "content", 5) // after "hello"
	require.NoError(t, err)
	mustApply(t, a, typeText(t, b, note, 0, ">> "))
	for _, d := range []*Doc{a, b} {
		pos, err := d.TextCursorPos(note, "content", cur)
		require.NoError(t, err)
		assert.Equal(t, 8, pos)
	}
	_, err = a.TextCursor(note, "content", 99)
	assert.ErrorIs(t, err, TextErrPosition)
	_, err = a.TextCursorPos(note, "content", ID{7, 7})
	assert.ErrorIs(t, err, TextErrUnknownID)
	_, err = a.TextCursor(ID{9, 9}, "content", 0)
	assert.ErrorIs(t, err, ErrNotFound)
}

func TestDocReplaceText(t *testing.T) {
	d := NewDoc(1, nil)
	note, _ := mustCreate(t, d, "sticky", Root, nil)
	for _, s := range []string{"hello world", "hello brave world", "héllo", "", "héllo", "héllo"} {
		before := d.Version()[1]
		u, err := d.ReplaceText(note, "content", s)
		require.NoError(t, err)
		assert.Equal(t, s, d.Text(note, "content"))
		if u == nil {
			assert.Equal(t, before, d.Version()[1], "no change, no op")
		}
	}
	// "hello world" -> "hello brave world" inserted "brave " only.
	d2 := NewDoc(1, nil)
	n2, _ := mustCreate(t, d2, "sticky", Root, nil)
	_, err := d2.ReplaceText(n2, "content", "hello world")
	require.NoError(t, err)
	u, err := d2.ReplaceText(n2, "content", "hello brave world")
	require.NoError(t, err)
	ops := decode(t, u).Ops
	require.Len(t, ops, 1)
	assert.Equal(t, "brave ", ops[0].Text.Text)
	_, err = d2.Undo()
	require.NoError(t, err)
	assert.Equal(t, "hello world", d2.Text(n2, "content"))
}

// Concurrent runs typed at the same place in a note never interleave,
// whether typed as one insert, key by key forwards, or key by key
// backwards (each key before the previous one), whatever the delivery order.
func TestDocTextNoInterleaving(t *testing.T) {
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 77))
		nrep := 2 + int(seed%4)
		docs := make([]*Doc, nrep)
		for i := range docs {
			docs[i] = NewDoc(ReplicaID(i+1), nil)
		}
		note, u := mustCreate(t, docs[0], "sticky", Root, nil)
		var all [][]byte
		base := typeText(t, docs[0], note, 0, "[]")
		for _, d := range docs[1:] {
			mustApply(t, d, u, base)
		}
		all = append(all, u, base)
		runs := make([]string, nrep)
		for i, d := range docs {
			runs[i] = strings.Repeat(string(rune('a'+i)), 3+rng.IntN(5))
			switch mode := (int(seed) + i) % 3; mode {
			case 0:
				all = append(all, typeText(t, d, note, 1, runs[i]))
			case 1:
				for k, r := range runs[i] {
					all = append(all, typeText(t, d, note, 1+k, string(r)))
				}
			default:
				for range runs[i] {
					all = append(all, typeText(t, d, note, 1, string(rune('a'+i))))
				}
			}
		}
		for _, d := range docs {
			order := rng.Perm(len(all))
			for _, k := range order {
				mustApply(t, d, all[k])
			}
		}
		got := docs[0].Text(note, "content")
		for i, d := range docs {
			assert.Equal(t, got, d.Text(note, "content"))
			assert.Equal(t, docs[0].Snapshot(), d.Snapshot())
			assert.Contains(t, got, runs[i], "seed %d: run %d interleaved in %q", seed, i, got)
		}
		assert.Equal(t, 2+len(strings.Join(runs, "")), len(got))
	}
}

func TestDocTextSnapshot(t *testing.T) {
	d := goldenTextDoc(t)
	snap := d.Snapshot()
	back, err := Load(1, nil, snap)
	require.NoError(t, err)
	assert.Equal(t, snap, back.Snapshot())
	note := ID{1, 1}
	assert.Equal(t, d.Text(note, "content"), back.Text(note, "content"))
	// The loaded replica resumes typing where it left off.
	typeText(t, back, note, 0, ">")
	typeText(t, d, note, 0, ">")
	assert.Equal(t, d.Snapshot(), back.Snapshot())

	// A text whose ops the version does not cover is refused, and so is
	// one on a property that is not text.
	other := NewDoc(1, nil)
	n2, _ := mustCreate(t, other, "sticky", Root, nil)
	typeText(t, other, n2, 0, "abc")
	s := other.Snapshot()
	_, err = Load(1, nil, s)
	require.NoError(t, err)
	// The version is [replica index 1, seq 4] (a create and 3 characters).
	i := bytes.Index(s, []byte{0x92, 0x01, 0x04})
	require.GreaterOrEqual(t, i, 0)
	s[i+2] = 0x03
	_, err = Load(1, nil, s)
	assert.ErrorIs(t, err, ErrInvalid)
	plain, err := NewSchema(map[string]PropSpec{"content": {Kind: KindString}}, map[string]TypeSpec{"sticky": {Props: []string{"content"}}})
	require.NoError(t, err)
	_, err = Load(1, plain, other.Snapshot())
	assert.ErrorIs(t, err, ErrInvalid)
}

// A forged insert whose origin is a character of another text (applied, so
// the document does not wait for it) waits inside the text for good, on
// every replica alike, and survives snapshots.
func TestDocTextForgedOriginWaitsInText(t *testing.T) {
	a, b := NewDoc(1, nil), NewDoc(2, nil)
	n1, u1 := mustCreate(t, a, "sticky", Root, nil)
	n2, u2 := mustCreate(t, a, "sticky", Root, nil)
	t1 := typeText(t, a, n1, 0, "one")
	t2 := typeText(t, a, n2, 0, "two")
	forged := (&Update{Ops: []Op{{Kind: OpTextInsert, ID: ID{9, 1}, Elem: n2, TextProp: "content",
		Text: TextOp{Kind: TextInsert, ID: ID{9, 1}, Left: ID{1, 3}, Text: "x"}}}}).Encode() // 1.3 is in n1
	mustApply(t, a, forged)
	mustApply(t, b, forged, t2, u2, t1, u1)
	for _, d := range []*Doc{a, b} {
		assert.Equal(t, "two", d.Text(n2, "content"))
		assert.Equal(t, uint64(1), d.Version()[9])
		assert.Equal(t, 1, d.elems[n2].text(d.schema.propIndex["content"]).Pending())
	}
	assert.Equal(t, a.Snapshot(), b.Snapshot())
	c, err := Load(3, nil, a.Snapshot())
	require.NoError(t, err)
	assert.Equal(t, a.Snapshot(), c.Snapshot())
}

// DiffSince sends a replica's keystrokes typed as one run as one insert,
// which starts with the id of the first keystroke and takes more sequence
// numbers. A replica that holds that first keystroke pending must take the
// longer insert instead of dropping it as a duplicate, and MergeUpdates
// must keep the longer one. (Found by the full convergence run: the dropped
// sequence numbers blocked every later op of the replica.)
func TestDocTextLongerInsertReplacesPending(t *testing.T) {
	a, b := NewDoc(1, nil), NewDoc(2, nil)
	note, create := mustCreate(t, a, "sticky", Root, nil)
	mustApply(t, b, create)
	x := typeText(t, b, note, 0, "x")
	mustApply(t, a, x)
	keyA := typeText(t, a, note, 1, "a") // 1.2, after b's "x"
	typeText(t, a, note, 2, "b")         // 1.3
	c := NewDoc(3, nil)
	mustApply(t, c, create, keyA) // "a" waits for "x"
	require.Equal(t, 1, c.Pending())
	diff, err := a.DiffSince(c.Version())
	require.NoError(t, err)
	ops := decode(t, diff).Ops
	require.Equal(t, ID{1, 2}, ops[0].ID)
	require.Equal(t, uint64(2), ops[0].Span(), "the two keystrokes are one insert")
	mustApply(t, c, diff)
	assert.Equal(t, 0, c.Pending())
	assert.Equal(t, "xab", c.Text(note, "content"))
	assert.Equal(t, a.Snapshot(), c.Snapshot())

	merged, err := MergeUpdates(keyA, diff, keyA)
	require.NoError(t, err)
	ops = decode(t, merged).Ops
	require.Equal(t, ID{1, 2}, ops[0].ID)
	assert.Equal(t, uint64(2), ops[0].Span())
	d := NewDoc(4, nil)
	mustApply(t, d, create, merged)
	assert.Equal(t, a.Snapshot(), d.Snapshot())
}
