package crdt

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// textNet simulates a network between replicas: every op is queued for
// every other replica and delivered later, in random order, sometimes
// twice; sometimes two replicas sync by DiffSince instead.
type textNet struct {
	rng   *rand.Rand
	reps  []*TextReplica
	queue [][]TextOp // per destination replica
	log   []TextOp   // every op made
	// collected says the replicas were collected up to their version,
	// so the op log replay must be too before comparing.
	collected bool
}

func textNewNet(seed uint64, n int) *textNet {
	net := &textNet{rng: rand.New(rand.NewPCG(seed, seed^0x5eed)), queue: make([][]TextOp, n)}
	for i := range n {
		net.reps = append(net.reps, new(Text).EditAs(ReplicaID(i+1)))
	}
	return net
}

func (net *textNet) send(from int, op TextOp) {
	net.log = append(net.log, op)
	for i := range net.reps {
		if i != from {
			net.queue[i] = append(net.queue[i], op)
		}
	}
}

// deliver delivers one random queued op to replica i, maybe keeping a copy
// for a duplicate delivery later.
func (net *textNet) deliver(t testing.TB, i int) {
	q := net.queue[i]
	if len(q) == 0 {
		return
	}
	k := net.rng.IntN(len(q))
	op := q[k]
	if net.rng.IntN(10) != 0 {
		q[k] = q[len(q)-1]
		net.queue[i] = q[:len(q)-1]
	}
	require.NoError(t, net.reps[i].Apply(op))
}

// textRandomString returns 1..max code points from the replica's alphabet,
// with an occasional multi-byte character.
func textRandomString(rng *rand.Rand, rep int, max int) string {
	var b strings.Builder
	for range 1 + rng.IntN(max) {
		switch rng.IntN(8) {
		case 0:
			b.WriteRune('é' + rune(rep))
		case 1:
			b.WriteRune('😀' + rune(rep))
		default:
			b.WriteByte(byte('a' + rep*5 + rng.IntN(5)))
		}
	}
	return b.String()
}

// edit makes one random local edit on replica i and checks it against a
// plain string model of that replica.
func (net *textNet) edit(t testing.TB, i int) {
	r := net.reps[i]
	before := []rune(r.String())
	var op TextOp
	var err error
	if len(before) == 0 || net.rng.IntN(3) != 0 {
		pos := net.rng.IntN(len(before) + 1)
		s := textRandomString(net.rng, i, 6)
		op, err = r.Insert(pos, s)
		require.NoError(t, err)
		want := string(before[:pos]) + s + string(before[pos:])
		require.Equal(t, want, r.String())
	} else {
		pos := net.rng.IntN(len(before))
		n := 1 + net.rng.IntN(min(4, len(before)-pos))
		op, err = r.Delete(pos, n)
		require.NoError(t, err)
		want := string(before[:pos]) + string(before[pos+n:])
		require.Equal(t, want, r.String())
	}
	net.send(i, op)
}

// flush delivers every queued op.
func (net *textNet) flush(t testing.TB) {
	for i := range net.reps {
		for len(net.queue[i]) > 0 {
			net.deliver(t, i)
		}
	}
}

// undo inverts a random earlier op of replica i and sends the inverse.
func (net *textNet) undo(t testing.TB, i int) {
	r := net.reps[i]
	var own []TextOp
	for _, op := range net.log {
		if op.ID.Replica == r.replica {
			own = append(own, op)
		}
	}
	if len(own) == 0 {
		return
	}
	ops, err := r.Invert(own[net.rng.IntN(len(own))])
	require.NoError(t, err)
	for _, op := range ops {
		net.send(i, op)
	}
}

// settle delivers everything and checks that all replicas converged.
func (net *textNet) settle(t testing.TB) {
	net.flush(t)
	want := net.reps[0].String()
	wantEnc, err := net.reps[0].Encode()
	require.NoError(t, err)
	for _, r := range net.reps {
		require.Zero(t, r.Pending(), "replica %d", r.replica)
		require.Equal(t, want, r.String(), "replica %d", r.replica)
		enc, err := r.Encode()
		require.NoError(t, err)
		require.True(t, bytes.Equal(wantEnc, enc), "replica %d encodes differently", r.replica)
		require.Equal(t, net.reps[0].Version(), r.Version())
	}
	// The same ops applied to a fresh text in another order, duplicated,
	// give the same state.
	ops := append(slices.Clone(net.log), net.log[:len(net.log)/2]...)
	net.rng.Shuffle(len(ops), func(a, b int) { ops[a], ops[b] = ops[b], ops[a] })
	f := new(Text)
	require.NoError(t, f.Apply(ops...))
	if net.collected {
		f.Collect(f.Version())
	}
	enc, err := f.Encode()
	require.NoError(t, err)
	require.True(t, bytes.Equal(wantEnc, enc), "shuffled op log encodes differently")
}

// textCheckPositions checks that positions map to ids and back.
func textCheckPositions(t testing.TB, r *Text) {
	n := r.Len()
	text := []rune(r.String())
	require.Len(t, text, n)
	for pos := range n {
		id, err := r.IDAt(pos)
		require.NoError(t, err)
		got, vis, err := r.PosOf(id)
		require.NoError(t, err)
		require.True(t, vis)
		require.Equal(t, pos, got)
		c, err := r.Cursor(pos + 1)
		require.NoError(t, err)
		cp, err := r.CursorPos(c)
		require.NoError(t, err)
		require.Equal(t, pos+1, cp)
	}
	_, err := r.IDAt(n)
	require.ErrorIs(t, err, TextErrPosition)
}

func TestTextRandomConvergence(t *testing.T) {
	seeds := 300
	if testing.Short() {
		seeds = 60
	}
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			net := textNewNet(seed, 3+int(seed%3))
			steps := 40 + net.rng.IntN(120)
			for range steps {
				i := net.rng.IntN(len(net.reps))
				switch x := net.rng.IntN(12); {
				case x < 5:
					net.edit(t, i)
				case x < 10:
					net.deliver(t, i)
				case x < 11:
					net.undo(t, i)
				default:
					// Sync from another replica by version vector.
					j := net.rng.IntN(len(net.reps))
					ops := net.reps[j].DiffSince(net.reps[i].Version())
					net.rng.Shuffle(len(ops), func(a, b int) { ops[a], ops[b] = ops[b], ops[a] })
					require.NoError(t, net.reps[i].Apply(ops...))
				}
			}
			net.settle(t)
			textCheckPositions(t, net.reps[0].Text)
		})
	}
}

// TestTextNoInterleaving has 2-5 replicas type runs at the same place at
// the same time (as one op, forwards key by key, or backwards key by key)
// and checks that after merging, in any order, each run is contiguous.
func TestTextNoInterleaving(t *testing.T) {
	seeds := 400
	if testing.Short() {
		seeds = 100
	}
	for seed := range uint64(seeds) {
		rng := rand.New(rand.NewPCG(seed, 7))
		k := 2 + rng.IntN(4)
		base := new(Text).EditAs(100)
		for range rng.IntN(6) {
			pos := rng.IntN(base.Len() + 1)
			_, err := base.Insert(pos, strings.Repeat("0123456789"[rng.IntN(10):][:1], 1+rng.IntN(4)))
			require.NoError(t, err)
			if base.Len() > 2 && rng.IntN(3) == 0 {
				_, err := base.Delete(rng.IntN(base.Len()-1), 1)
				require.NoError(t, err)
			}
		}
		baseOps := base.DiffSince(nil)
		pos := rng.IntN(base.Len() + 1)
		var all []TextOp
		blocks := make([]string, k)
		for i := range k {
			r := new(Text).EditAs(ReplicaID(i + 1))
			require.NoError(t, r.Apply(baseOps...))
			n := 1 + rng.IntN(6)
			var run []rune
			for j := range n {
				run = append(run, rune('A'+i*6+j))
			}
			mode := rng.IntN(3)
			switch mode {
			case 0: // one op
				op, err := r.Insert(pos, string(run))
				require.NoError(t, err)
				all = append(all, op)
				blocks[i] = string(run)
			case 1: // forwards
				for j, c := range run {
					op, err := r.Insert(pos+j, string(c))
					require.NoError(t, err)
					all = append(all, op)
				}
				blocks[i] = string(run)
			case 2: // backwards: each key before the previous one
				for _, c := range run {
					op, err := r.Insert(pos, string(c))
					require.NoError(t, err)
					all = append(all, op)
				}
				rev := make([]rune, len(run))
				for j, c := range run {
					rev[len(run)-1-j] = c
				}
				blocks[i] = string(rev)
			}
		}
		var enc []byte
		for range 3 {
			r := new(Text).EditAs(99)
			ops := append(append([]TextOp(nil), baseOps...), all...)
			rng.Shuffle(len(ops), func(a, b int) { ops[a], ops[b] = ops[b], ops[a] })
			require.NoError(t, r.Apply(ops...))
			got := r.String()
			for i, b := range blocks {
				require.Contains(t, got, b, "seed %d: run of replica %d interleaved in %q", seed, i+1, got)
			}
			e, err := r.Encode()
			require.NoError(t, err)
			if enc != nil {
				require.Equal(t, enc, e, "seed %d: merge order changed the state", seed)
			}
			enc = e
		}
	}
}

// TestTextEncodeRoundTrip checks that decoding an encoded state gives a text
// that encodes the same, reads the same and keeps converging with the rest.
func TestTextEncodeRoundTrip(t *testing.T) {
	for seed := range uint64(40) {
		net := textNewNet(seed+1000, 3)
		for range 80 {
			i := net.rng.IntN(3)
			if net.rng.IntN(2) == 0 {
				net.edit(t, i)
			} else {
				net.deliver(t, i)
			}
		}
		for _, r := range net.reps {
			enc, err := r.Encode()
			require.NoError(t, err)
			d, err := TextDecode(enc)
			require.NoError(t, err)
			require.Equal(t, r.String(), d.String())
			require.Equal(t, r.Version(), d.Version())
			require.Equal(t, r.Pending(), d.Pending())
			enc2, err := d.Encode()
			require.NoError(t, err)
			require.Equal(t, enc, enc2)
			// The decoded copy replaces the replica and keeps going.
			r.Text = d
		}
		net.settle(t)
	}
}
