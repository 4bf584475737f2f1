package realtime_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/crdt"
	"github.com/tone-ai/tone/domain"
	"github.com/tone-ai/tone/realtime"
)

// TestCanvasActivity: a node reports each loaded canvas's subscribers and
// who wrote since the last report.
func TestCanvasActivity(t *testing.T) {
	e := newEnv(t)
	e.node.EnableCanvas(e.svc, realtime.CanvasConfig{IdleTimeout: time.Minute})
	a, aTok := e.user("a")
	b, bTok := e.user("b")
	pid := e.project(a, map[uuid.UUID]domain.Role{b: domain.RoleViewer})
	cid := e.canvas(a, pid)
	assert.Empty(t, e.node.CanvasActivity(), "no canvas loaded")

	ea := join(t, e, aTok, cid, 1<<40+1)
	join(t, e, bTok, cid, 1<<40+2)
	key, err := crdt.KeyBetween("", "")
	require.NoError(t, err)
	_, u, err := ea.doc.Create("rect", crdt.Root, key, nil)
	require.NoError(t, ea.send(u, err))

	assert.Equal(t, []domain.CanvasActivity{{CanvasID: cid, Viewers: 2, Editors: []uuid.UUID{a}}}, e.node.CanvasActivity())
	assert.Equal(t, []domain.CanvasActivity{{CanvasID: cid, Viewers: 2}}, e.node.CanvasActivity(), "a new period: nobody wrote")
}
