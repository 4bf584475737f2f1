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
			rng.Shuffle(len(all), func(a, b int) { orders["shuffled"][a], orders["shuffled"][b] = orders["shuffled"][b], orders["shuffled"][a] })
			orders["shuffled"] = append(orders["shuffled"], orders["shuffled"][:len(all)/3]...)
			for name, order := range orders {
				f := NewText()
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
