package crdt

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTextAutomergePaperReplay(t *testing.T) {
	tr := textLoadTrace(t, "automerge-paper")
	r := textReplaySeq(t, tr)
	require.Equal(t, len([]rune(tr.EndContent)), r.Len())
	require.Equal(t, tr.EndContent, r.String())
}

func TestTextConcurrentTraces(t *testing.T) {
	for _, name := range []string{"friendsforever", "clownschool"} {
		t.Run(name, func(t *testing.T) {
			tr := textLoadTrace(t, name)
			reps, ops := textReplayConcurrent(t, tr)
			for _, r := range reps {
				for a := range ops {
					require.NoError(t, r.Apply(ops[a]...))
				}
				require.Equal(t, tr.EndContent, r.String(), "replica %d", r.replica)
				require.Zero(t, r.Pending())
			}
		})
	}
}
