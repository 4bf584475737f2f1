package crdt

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTextAutomergePaperReplay(t *testing.T) {
	tr := textLoadTrace(t, "automerge-paper")
	r := textReplaySeq(t, tr)
	require.Equal(t, len([]rune(tr.EndContent)), r.Len())
	require.Equal(t, tr.EndContent, r.String())
}

// TestTextConcurrentTraces replays each concurrent trace with one replica per
// agent, each transaction typed on a replica holding exactly the merged state
// of its parents, then merges the replicas in several orders: every replica
// and every merge order must end with endContent and the same state.
func TestTextConcurrentTraces(t *testing.T) {
	for _, name := range []string{"friendsforever", "clownschool"} {
		t.Run(name, func(t *testing.T) {
			tr := textLoadTrace(t, name)
			reps, ops := textReplayConcurrent(t, tr)
			var all []TextOp
			for a := range ops {
				all = append(all, ops[a]...)
			}
			rng := rand.New(rand.NewPCG(uint64(len(all)), 1))
			// 1. Each replica pulls what it lacks from the others, in a
			// random order of peers, by version vector.
			for _, i := range rng.Perm(len(reps)) {
				for _, j := range rng.Perm(len(reps)) {
					require.NoError(t, reps[i].Apply(reps[j].DiffSince(reps[i].Version())...))
				}
			}
			for _, r := range reps {
				// A second round brings everyone up to date.
				for _, o := range reps {
					require.NoError(t, r.Apply(o.DiffSince(r.Version())...))
				}
			}
			want, err := reps[0].Encode()
			require.NoError(t, err)
			for _, r := range reps {
				require.Equal(t, tr.EndContent, r.String(), "replica %d", r.replica)
				require.Zero(t, r.Pending())
				got, err := r.Encode()
				require.NoError(t, err)
				require.Equal(t, want, got, "replica %d state", r.replica)
			}
			// 2. Fresh replicas get every op of every agent: agent by agent,
			// in reverse, and shuffled (ops arrive before their
			// dependencies and wait as pending), with duplicates.
			orders := map[string][]TextOp{"agents": all, "reverse": slices.Clone(all), "shuffled": slices.Clone(all)}
			slices.Reverse(orders["reverse"])
			rng.Shuffle(len(all), func(a, b int) {
				orders["shuffled"][a], orders["shuffled"][b] = orders["shuffled"][b], orders["shuffled"][a]
			})
			orders["shuffled"] = append(orders["shuffled"], orders["shuffled"][:len(all)/3]...)
			for name, order := range orders {
				f := new(Text)
				require.NoError(t, f.Apply(order...))
				require.Equal(t, tr.EndContent, f.String(), name)
				require.Zero(t, f.Pending(), name)
				got, err := f.Encode()
				require.NoError(t, err)
				require.Equal(t, want, got, name)
			}
		})
	}
}

func textMust[T any](t *testing.T) func(v T, err error) T {
	return func(v T, err error) T {
		t.Helper()
		require.NoError(t, err)
		return v
	}
}

func TestTextBasics(t *testing.T) {
	op := textMust[TextOp](t)
	r := new(Text).EditAs(1)
	require.Equal(t, "", r.String())
	ins := op(r.Insert(0, "héllo"))
	require.Equal(t, TextOp{Kind: TextInsert, ID: ID{1, 1}, Text: "héllo"}, ins)
	require.Equal(t, uint64(5), ins.Seqs())
	op(r.Insert(5, " world"))
	require.Equal(t, "héllo world", r.String())
	require.Equal(t, 11, r.Len())
	del := op(r.Delete(1, 4)) // "éllo"
	require.Equal(t, TextOp{Kind: TextDelete, ID: ID{1, 12}, Spans: []TextSpan{{ID{1, 2}, 4}}}, del)
	require.Equal(t, "h world", r.String())
	require.Equal(t, VersionVector{1: 12}, r.Version())
	require.True(t, r.Has(ID{1, 12}))
	require.False(t, r.Has(ID{1, 13}))

	// Ids and positions.
	id := textMust[ID](t)(r.IDAt(2))
	require.Equal(t, ID{1, 7}, id)     // 'w'
	pos, vis, err := r.PosOf(ID{1, 3}) // a deleted 'l'
	require.NoError(t, err)
	require.False(t, vis)
	require.Equal(t, 1, pos)
	_, _, err = r.PosOf(ID{9, 1})
	require.ErrorIs(t, err, TextErrUnknownID)

	// A cursor after "h w" survives an insert before it.
	c := textMust[ID](t)(r.Cursor(3))
	op(r.Insert(0, ">> "))
	cp, err := r.CursorPos(c)
	require.NoError(t, err)
	require.Equal(t, 6, cp)
	require.Equal(t, ">> h w", r.String()[:cp])
}

func TestTextErrorsChangeNothing(t *testing.T) {
	r := new(Text).EditAs(1)
	_, err := r.Insert(0, "abc")
	require.NoError(t, err)
	before, err := r.Encode()
	require.NoError(t, err)
	for _, c := range []struct {
		name string
		do   func() error
		want error
	}{
		{"insert past end", func() error { _, err := r.Insert(4, "x"); return err }, TextErrPosition},
		{"insert negative", func() error { _, err := r.Insert(-1, "x"); return err }, TextErrPosition},
		{"insert empty", func() error { _, err := r.Insert(0, ""); return err }, TextErrInvalidOp},
		{"insert bad utf8", func() error { _, err := r.Insert(0, "\xff"); return err }, TextErrInvalidOp},
		{"insert used id", func() error { _, err := r.Text.Insert(ID{1, 2}, 0, "x"); return err }, TextErrIDUsed},
		{"insert zero id", func() error { _, err := r.Text.Insert(ID{}, 0, "x"); return err }, TextErrInvalidOp},
		{"delete past end", func() error { _, err := r.Delete(2, 2); return err }, TextErrPosition},
		{"delete nothing", func() error { _, err := r.Delete(0, 0); return err }, TextErrPosition},
		{"delete used id", func() error { _, err := r.Text.Delete(ID{1, 3}, 0, 1); return err }, TextErrIDUsed},
		{"idat", func() error { _, err := r.IDAt(3); return err }, TextErrPosition},
		{"cursor", func() error { _, err := r.Cursor(4); return err }, TextErrPosition},
		{"apply kind", func() error { return r.Apply(TextOp{Kind: 9, ID: ID{2, 1}}) }, TextErrInvalidOp},
		{"apply self reference", func() error {
			return r.Apply(TextOp{Kind: TextInsert, ID: ID{2, 5}, Left: ID{2, 5}, Text: "x"})
		}, TextErrInvalidOp},
		{"apply future span", func() error {
			return r.Apply(TextOp{Kind: TextDelete, ID: ID{2, 5}, Spans: []TextSpan{{ID{2, 4}, 2}}})
		}, TextErrInvalidOp},
		{"apply batch with one bad op", func() error {
			return r.Apply(TextOp{Kind: TextInsert, ID: ID{2, 1}, Text: "ok"}, TextOp{Kind: TextInsert, ID: ID{2, 3}, Text: "x", Gone: 1})
		}, TextErrInvalidOp},
		{"invert unknown", func() error {
			_, err := r.Invert(TextOp{Kind: TextDelete, ID: ID{3, 9}, Spans: []TextSpan{{ID{3, 1}, 2}}})
			return err
		}, TextErrUnknownID},
	} {
		t.Run(c.name, func(t *testing.T) {
			require.ErrorIs(t, c.do(), c.want)
			after, err := r.Encode()
			require.NoError(t, err)
			require.Equal(t, before, after)
			require.Equal(t, "abc", r.String())
		})
	}
}

func TestTextPending(t *testing.T) {
	a := new(Text).EditAs(1)
	op := textMust[TextOp](t)
	o1 := op(a.Insert(0, "abc"))
	o2 := op(a.Insert(3, "def"))
	o3 := op(a.Delete(1, 3)) // "bcd"
	b := new(Text)
	require.NoError(t, b.Apply(o3, o2))
	require.Equal(t, 2, b.Pending())
	require.Equal(t, "", b.String())
	require.Equal(t, VersionVector{}, b.Version())
	require.False(t, b.Has(o2.ID))
	// Pending ops survive a snapshot and are offered to peers.
	enc, err := b.Encode()
	require.NoError(t, err)
	b2, err := TextDecode(enc)
	require.NoError(t, err)
	require.Equal(t, 2, b2.Pending())
	require.Len(t, b2.DiffSince(nil), 2)
	for _, x := range []*Text{b, b2} {
		require.NoError(t, x.Apply(o2, o1, o1))
		require.Zero(t, x.Pending())
		require.Equal(t, "aef", x.String())
		require.Equal(t, a.Version(), x.Version())
	}
}

func TestTextInvert(t *testing.T) {
	op := textMust[TextOp](t)
	ops := textMust[[]TextOp](t)
	a := new(Text).EditAs(1)
	b := new(Text).EditAs(2)
	sync := func() {
		require.NoError(t, a.Apply(b.DiffSince(a.Version())...))
		require.NoError(t, b.Apply(a.DiffSince(b.Version())...))
		require.Equal(t, a.String(), b.String())
	}
	ins := op(a.Insert(0, "hello world"))
	sync()
	del := op(a.Delete(0, 6)) // "hello "
	require.Equal(t, "world", a.String())
	// b types inside the deleted region's place, concurrently.
	op(b.Insert(0, "big "))
	undo := ops(a.Invert(del))
	require.Len(t, undo, 1)
	require.Equal(t, "hello world", a.String())
	sync()
	// b typed at the start, before the tombstones; the restored text goes
	// where the deleted text was, after them.
	require.Equal(t, "big hello world", a.String())
	// Redo: invert the undo.
	redo := ops(a.Invert(undo[0]))
	require.Equal(t, "big world", a.String())
	sync()
	// Undo the redo, then undo the very first insert: only what is visible
	// of it goes (the restored "hello " is new text).
	ops(a.Invert(redo[0]))
	require.Equal(t, "big hello world", a.String())
	ops(a.Invert(ins))
	require.Equal(t, "big hello ", a.String())
	sync()
	// Nothing left to undo for ins.
	none := ops(a.Invert(ins))
	require.Empty(t, none)

	// After Collect, a collected delete can no longer be undone.
	d2 := op(a.Delete(0, 2))
	sync()
	a.Collect(Min(a.Version(), b.Version()))
	_, err := a.Invert(d2)
	require.ErrorIs(t, err, TextErrCollected)
	require.Equal(t, "g hello ", a.String())
}

func TestTextCollect(t *testing.T) {
	for seed := range uint64(30) {
		net := textNewNet(seed+500, 3)
		for range 120 {
			i := net.rng.IntN(3)
			if net.rng.IntN(2) == 0 {
				net.edit(t, i)
			} else {
				net.deliver(t, i)
			}
			if net.rng.IntN(20) == 0 {
				// Collect what all replicas have seen, everywhere.
				var vs []VersionVector
				for _, r := range net.reps {
					vs = append(vs, r.Version())
				}
				h := Min(vs...)
				for _, r := range net.reps {
					s := r.String()
					r.Collect(h)
					require.Equal(t, s, r.String())
				}
			}
		}
		// A new replica that joins late gets everything by DiffSince, with
		// placeholders for collected characters.
		late := new(Text)
		require.NoError(t, late.Apply(net.reps[0].DiffSince(nil)...))
		net.flush(t)
		require.NoError(t, late.Apply(net.reps[1].DiffSince(late.Version())...))
		require.Equal(t, net.reps[0].String(), late.String())
		require.Equal(t, net.reps[0].Version(), late.Version())
		// Replicas that collected at the same horizons, each after applying
		// everything in them, are identical whatever the order the other
		// deletes arrived in.
		want, err := net.reps[0].Encode()
		require.NoError(t, err)
		for _, r := range net.reps[1:] {
			enc, err := r.Encode()
			require.NoError(t, err)
			require.Equal(t, want, enc, "seed %d, replica %d", seed, r.replica)
		}
		// The late replica collected nothing; once it collects at a horizon
		// covering every delete the states are identical again.
		for _, r := range append(net.reps, &TextReplica{Text: late}) {
			require.Equal(t, net.reps[0].String(), r.String())
			r.Collect(r.Version())
		}
		net.collected = true
		net.settle(t)
		le, err := late.Encode()
		require.NoError(t, err)
		re, err := net.reps[0].Encode()
		require.NoError(t, err)
		require.Equal(t, re, le)
	}
}
