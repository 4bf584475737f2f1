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
