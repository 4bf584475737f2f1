package crdt

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"
)

// fuzzSeeds returns real updates and snapshots from a short simulation, so
// the fuzzers start from valid inputs of every kind (text ops and texts
// included).
func fuzzSeeds(t testing.TB) (updates [][]byte, snapshots [][]byte) {
	n := newNetwork(7, 3)
	for range 300 {
		n.step(t)
	}
	updates = append(n.sent, goldenUpdate().Encode(), goldenTextUpdate().Encode())
	for _, d := range n.docs {
		snapshots = append(snapshots, d.Snapshot())
	}
	return updates, snapshots
}

// fuzzBase is a populated document the fuzzed updates are applied to.
func fuzzBase(t testing.TB) *Doc {
	n := newNetwork(11, 2)
	for range 200 {
		n.step(t)
	}
	n.settle(t)
	return n.docs[0]
}

// FuzzDecodeUpdate checks that decoding never panics, that whatever decodes
// re-encodes canonically, and that applying it either fails and leaves the
// document unchanged, or keeps the tree whole and is idempotent.
func FuzzDecodeUpdate(f *testing.F) {
	updates, _ := fuzzSeeds(f)
	for _, u := range updates {
		f.Add(u)
	}
	base := fuzzBase(f).Snapshot()
	f.Fuzz(func(t *testing.T, data []byte) {
		u, err := DecodeUpdate(data)
		if err == nil {
			enc := u.Encode()
			u2, err := DecodeUpdate(enc)
			if err != nil {
				t.Fatalf("re-encoded update does not decode: %v", err)
			}
			if !bytes.Equal(u2.Encode(), enc) {
				t.Fatalf("encoding is not canonical")
			}
		}
		applyChecked(t, base, data)
	})
}

// FuzzCanvasMerge applies two arbitrary updates to a populated document in
// both orders: each either fails and changes nothing, or keeps the tree
// whole; when both apply, the two orders give the same snapshot.
func FuzzCanvasMerge(f *testing.F) {
	updates, _ := fuzzSeeds(f)
	for i := 0; i+1 < len(updates); i += 7 {
		f.Add(updates[i], updates[i+1])
	}
	base := fuzzBase(f).Snapshot()
	f.Fuzz(func(t *testing.T, a, b []byte) {
		ab := applyChecked(t, base, a, b)
		ba := applyChecked(t, base, b, a)
		if ab != nil && ba != nil && !bytes.Equal(ab, ba) {
			t.Fatalf("applying in two orders gives different documents")
		}
	})
}

// applyChecked loads snapshot, applies each update in turn and checks the
// rules; it returns the final snapshot if every update applied.
func applyChecked(t *testing.T, snapshot []byte, updates ...[]byte) []byte {
	d, err := Load(1, nil, snapshot)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	ok := true
	for _, u := range updates {
		before := d.Snapshot()
		if err := d.Apply(u); err != nil {
			if !bytes.Equal(before, d.Snapshot()) {
				t.Fatalf("a rejected update changed the document: %v", err)
			}
			ok = false
			continue
		}
		checkTree(t, d)
		after := d.Snapshot()
		if err := d.Apply(u); err != nil {
			t.Fatalf("applying again failed: %v", err)
		}
		if !bytes.Equal(after, d.Snapshot()) {
			t.Fatalf("applying an update twice changed the document")
		}
	}
	if !ok {
		return nil
	}
	return d.Snapshot()
}

// FuzzLoadSnapshot checks that loading never panics, and that whatever
// loads has a whole tree and re-encodes to a snapshot that loads the same.
func FuzzLoadSnapshot(f *testing.F) {
	_, snaps := fuzzSeeds(f)
	for _, s := range snaps {
		f.Add(s)
	}
	// Small documents too, whose mutations reach past the first records.
	for seed := range uint64(8) {
		n := newNetwork(seed, 2)
		for range 12 + 4*int(seed) {
			n.step(f)
		}
		f.Add(n.docs[0].Snapshot())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Load(1, nil, data)
		if err != nil {
			return
		}
		checkTree(t, d)
		s := d.Snapshot()
		d2, err := Load(1, nil, s)
		if err != nil {
			t.Fatalf("a re-encoded snapshot does not load: %v", err)
		}
		if !bytes.Equal(d2.Snapshot(), s) {
			t.Fatalf("snapshot is not stable across Load")
		}
	})
}

// TestLoadMutatedSnapshots runs the FuzzLoadSnapshot checks over thousands
// of seeded mutations of real snapshots (bytes replaced, inserted, deleted,
// ranges duplicated), so every test run covers what the fuzzer would try
// first.
func TestLoadMutatedSnapshots(t *testing.T) {
	_, snaps := fuzzSeeds(t)
	rng := rand.New(rand.NewPCG(3, 4))
	runs := 5000
	if testing.Short() {
		runs = 1000
	}
	for range runs {
		s := slices.Clone(snaps[rng.IntN(len(snaps))])
		for range 1 + rng.IntN(3) {
			i := rng.IntN(len(s))
			switch rng.IntN(4) {
			case 0:
				s[i] = byte(rng.IntN(256))
			case 1:
				s = slices.Insert(s, i, byte(rng.IntN(256)))
			case 2:
				s = slices.Delete(s, i, min(len(s), i+1+rng.IntN(8)))
			default:
				j := min(len(s), i+rng.IntN(16))
				s = slices.Insert(s, i, slices.Clone(s[i:j])...)
			}
			if len(s) == 0 {
				break
			}
		}
		d, err := Load(1, nil, s)
		if err != nil {
			continue
		}
		checkTree(t, d)
		again, err := Load(1, nil, d.Snapshot())
		if err != nil || !bytes.Equal(again.Snapshot(), d.Snapshot()) {
			t.Fatalf("a loaded snapshot does not round-trip (%v)", err)
		}
	}
}
