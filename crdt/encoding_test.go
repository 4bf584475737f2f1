package crdt

import (
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares b with testdata/name, a hex dump of 32 bytes a line.
func golden(t *testing.T, name string, b []byte) {
	t.Helper()
	var sb strings.Builder
	for i := 0; i < len(b); i += 32 {
		sb.WriteString(hex.EncodeToString(b[i:min(i+32, len(b))]))
		sb.WriteByte('\n')
	}
	path := filepath.Join("testdata", name)
	if *updateGolden {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, []byte(sb.String()), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test -run %s -update to create it", t.Name())
	assert.Equal(t, string(want), sb.String(), "encoding of %s changed", name)
}

// The smallest set op, byte by byte, as docs/crdt.md describes it.
func TestEncodingOfASetOp(t *testing.T) {
	u := &Update{Ops: []Op{{Kind: OpSet, ID: ID{Replica: 2, Seq: 5}, Counter: 9, Elem: ID{Replica: 1, Seq: 1},
		Props: []Prop{{Key: "x", Value: Number(10)}, {Key: "y", Value: Number(2.5)}}}}}
	want := []byte{
		0x93,                // update: array of 3
		0xa3, 'T', 'C', 'U', // magic
		0x01,       // format version
		0x91,       // ops: array of 1
		0x97,       // set op: array of 7
		0x02,       // kind: set
		0x02, 0x05, // id: replica 2, seq 5
		0x09,       // Lamport counter
		0x01, 0x01, // element 1.1
		0x94,            // props: flat array of 2 pairs
		0xa1, 'x', 0x0a, // "x" = 10 (integral numbers are integers)
		0xa1, 'y', 0xcb, 0x40, 0x04, 0, 0, 0, 0, 0, 0, // "y" = 2.5 (float64)
	}
	assert.Equal(t, want, u.Encode())
	back, err := DecodeUpdate(want)
	require.NoError(t, err)
	assert.Equal(t, u, back)
}

// goldenUpdate has one op of every kind and a value of every kind.
func goldenUpdate() *Update {
	return &Update{Ops: []Op{
		{Kind: OpCreate, ID: ID{1, 1}, Counter: 1, Elem: ID{1, 1}, Type: "frame", Parent: Root, Key: "a0",
			Props: []Prop{{Key: "clip", Value: Bool(true)}, {Key: "name", Value: String("Plan")}, {Key: "w", Value: Number(640)}}},
		{Kind: OpCreate, ID: ID{1, 2}, Counter: 2, Elem: ID{1, 2}, Type: "arrow", Parent: ID{1, 1}, Key: "a0V",
			Props: []Prop{{Key: "points", Value: Points(0, 0, 120.5, -4)}, {Key: "start", Value: Ref(ID{1, 1})}}},
		{Kind: OpSet, ID: ID{1, 3}, Counter: 3, Elem: ID{1, 2}, Props: []Prop{{Key: "end", Value: Null}, {Key: "opacity", Value: Number(0.5)}}},
		{Kind: OpMove, ID: ID{1, 4}, Counter: 4, Elem: ID{1, 2}, Parent: Root, Key: "Zz"},
		{Kind: OpDelete, ID: ID{1, 5}, Counter: 5, Elem: ID{1, 2}},
		{Kind: OpRestore, ID: ID{1, 6}, Counter: 6, Elem: ID{1, 2}},
		{Kind: OpSkip, ID: ID{1, 7}, Len: 3},
		{Kind: OpCollect, ID: ID{1, 10}, Counter: 7, Horizon: VersionVector{1: 6, 300: 2}, Drop: []ID{{1, 2}}},
	}}
}

func TestGoldenUpdate(t *testing.T) {
	u := goldenUpdate()
	enc := u.Encode()
	golden(t, "update.golden", enc)
	back, err := DecodeUpdate(enc)
	require.NoError(t, err)
	assert.Equal(t, u, back)
}

// goldenDoc is a small document made by two replicas, with every part of a
// snapshot present: props written by later ops, tombstones, a move log, a
// collect and a pending op.
func goldenDoc(t *testing.T) *Doc {
	a, b := NewDoc(1, nil), NewDoc(1<<40, nil)
	f, u1 := mustCreate(t, a, "frame", Root, Props{"name": String("F"), "x": Number(1.5)})
	r, u2 := mustCreate(t, a, "rect", Root, Props{"fill": String("#ff0000")})
	gone, u3 := mustCreate(t, a, "sticky", Root, Props{"text": String("bye")})
	mustApply(t, b, u1, u2, u3)
	del, err := a.Delete(gone)
	require.NoError(t, err)
	mustApply(t, b, del)
	col, err := b.Collect(b.Version())
	require.NoError(t, err)
	mustApply(t, a, col)
	mv, err := b.Move(r, f, "")
	require.NoError(t, err)
	set, err := b.Set(r, Props{"w": Number(20), "locked": Bool(true)})
	require.NoError(t, err)
	mustApply(t, a, mv, set)
	_, err = a.Delete(r)
	require.NoError(t, err)
	_, err = a.Restore(r)
	require.NoError(t, err)
	// A pending op from a third replica whose first op never arrived.
	require.NoError(t, a.ApplyUpdate(&Update{Ops: []Op{{Kind: OpSet, ID: ID{7, 2}, Counter: 40, Elem: f, Props: []Prop{{Key: "y", Value: Number(3)}}}}}))
	return a
}

func TestGoldenSnapshot(t *testing.T) {
	d := goldenDoc(t)
	snap := d.Snapshot()
	golden(t, "snapshot.golden", snap)
	back, err := Load(1, nil, snap)
	require.NoError(t, err)
	assert.Equal(t, snap, back.Snapshot())
	assert.Equal(t, 1, back.Pending())
}

// The two text op kinds, byte by byte, as docs/crdt.md describes them.
func TestEncodingOfTextOps(t *testing.T) {
	u := &Update{Ops: []Op{
		{Kind: OpTextInsert, ID: ID{2, 6}, Elem: ID{1, 1}, TextProp: "content",
			Text: TextOp{Kind: TextInsert, ID: ID{2, 6}, Left: ID{1, 4}, Text: "hé"}},
		{Kind: OpTextDelete, ID: ID{2, 8}, Elem: ID{1, 1}, TextProp: "content",
			Text: TextOp{Kind: TextDelete, ID: ID{2, 8}, Spans: []TextSpan{{ID{1, 2}, 3}}}},
		{Kind: OpTextInsert, ID: ID{2, 9}, Elem: ID{1, 1}, TextProp: "content",
			Text: TextOp{Kind: TextInsert, ID: ID{2, 9}, Left: ID{1, 4}, Right: ID{2, 6}, Gone: 300}},
	}}
	content := []byte{0xa7, 'c', 'o', 'n', 't', 'e', 'n', 't'}
	want := slices.Concat([]byte{
		0x93,                // update: array of 3
		0xa3, 'T', 'C', 'U', // magic
		0x01,       // format version
		0x93,       // ops: array of 3
		0x9b,       // text insert: array of 11
		0x08,       // kind: text insert
		0x02, 0x06, // id: replica 2, seq 6 (the first character)
		0x01, 0x01, // element 1.1 (no Lamport counter)
	}, content, []byte{
		0x01, 0x04, // origin left 1.4
		0x00, 0x00, // origin right: the end of the text
		0xa3, 'h', 0xc3, 0xa9, // "hé": 2 characters, seqs 6 and 7
		0x97,       // text delete: array of 7
		0x09,       // kind: text delete
		0x02, 0x08, // id 2.8
		0x01, 0x01, // element 1.1
	}, content, []byte{
		0x93, 0x01, 0x02, 0x03, // spans: 1.2, 3 characters
		0x9b, 0x08, 0x02, 0x09, 0x01, 0x01, // text insert 2.9 in element 1.1
	}, content, []byte{
		0x01, 0x04, 0x02, 0x06, // origins 1.4 and 2.6
		0xcd, 0x01, 0x2c, // 300 characters deleted and collected (gone), seqs 9..308
	})
	assert.Equal(t, want, u.Encode())
	back, err := DecodeUpdate(want)
	require.NoError(t, err)
	assert.Equal(t, u, back)
	assert.Equal(t, []uint64{2, 1, 300}, []uint64{back.Ops[0].Span(), back.Ops[1].Span(), back.Ops[2].Span()})
}

// goldenTextUpdate has the text op kinds in every form.
func goldenTextUpdate() *Update {
	note := ID{1, 1}
	ins := func(id, left, right ID, text string, gone uint64) Op {
		return Op{Kind: OpTextInsert, ID: id, Elem: note, TextProp: "content",
			Text: TextOp{Kind: TextInsert, ID: id, Left: left, Right: right, Text: text, Gone: gone}}
	}
	del := func(id ID, spans ...TextSpan) Op {
		return Op{Kind: OpTextDelete, ID: id, Elem: note, TextProp: "content", Text: TextOp{Kind: TextDelete, ID: id, Spans: spans}}
	}
	return &Update{Ops: []Op{
		{Kind: OpCreate, ID: note, Counter: 1, Elem: note, Type: "sticky", Key: "a0", Props: []Prop{{Key: "fill", Value: String("#ffee00")}}},
		ins(ID{1, 2}, ID{}, ID{}, "Hello, wörld 😀", 0), // 14 characters: 1.2 to 1.15
		del(ID{1, 16}, TextSpan{ID{1, 7}, 2}, TextSpan{ID{1, 2}, 1}),
		ins(ID{1, 17}, ID{1, 15}, ID{}, "", 300), // collected: 1.17 to 1.316
		del(ID{1, 317}),                          // its characters all deleted by others
		ins(ID{1 << 40, 1}, ID{1, 6}, ID{1, 7}, "!", 0),
	}}
}

func TestGoldenTextUpdate(t *testing.T) {
	u := goldenTextUpdate()
	enc := u.Encode()
	golden(t, "textupdate.golden", enc)
	back, err := DecodeUpdate(enc)
	require.NoError(t, err)
	assert.Equal(t, u, back)
	d := NewDoc(3, nil)
	require.NoError(t, d.Apply(enc))
	assert.Equal(t, "ello!wörld 😀", d.Text(ID{1, 1}, "content"))
	assert.Equal(t, 0, d.Pending())
}

// goldenTextDoc is a small document whose note holds text typed by two
// replicas, with deletes, collected tombstones, a character deleted twice
// and a pending text op.
func goldenTextDoc(t *testing.T) *Doc {
	a, b := NewDoc(1, nil), NewDoc(1<<40, nil)
	note, u := mustCreate(t, a, "sticky", Root, Props{"text": String("label")})
	mustApply(t, b, u, typeText(t, a, note, 0, "Hello wörld"))
	d1 := eraseText(t, a, note, 0, 1)
	mustApply(t, b, typeText(t, b, note, 5, ","), eraseText(t, b, note, 0, 2))
	require.NoError(t, a.Merge(b))
	mustApply(t, b, d1)
	col, err := a.Collect(Min(a.Version(), b.Version()))
	require.NoError(t, err)
	mustApply(t, b, col)
	mustApply(t, a, typeText(t, b, note, 4, "?"))
	eraseText(t, a, note, 3, 2)
	rect, _ := mustCreate(t, a, "rect", Root, nil)
	typeText(t, a, rect, 0, "box")
	// A text op of a third replica whose first op never arrived.
	require.NoError(t, a.ApplyUpdate(&Update{Ops: []Op{{Kind: OpTextInsert, ID: ID{7, 2}, Elem: note, TextProp: "content",
		Text: TextOp{Kind: TextInsert, ID: ID{7, 2}, Text: "?"}}}}))
	return a
}

func TestGoldenTextSnapshot(t *testing.T) {
	d := goldenTextDoc(t)
	assert.Equal(t, "llo wörld", d.Text(ID{1, 1}, "content"))
	snap := d.Snapshot()
	golden(t, "textsnapshot.golden", snap)
	back, err := Load(1, nil, snap)
	require.NoError(t, err)
	assert.Equal(t, snap, back.Snapshot())
	assert.Equal(t, 1, back.Pending())
}
