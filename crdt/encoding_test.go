package crdt

import (
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
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
