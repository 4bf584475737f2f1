package realtime_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/crdt"
	"github.com/tone-ai/tone/domain"
	"github.com/tone-ai/tone/realtime"
)

// TestCanvasMentions: typing "@handle" into a sticky note notifies that
// project member once the text is left alone, keystroke by keystroke or
// not; a handle already in the text, an unknown one and the author's own
// notify nobody.
func TestCanvasMentions(t *testing.T) {
	e := newEnv(t)
	e.node.EnableCanvas(e.svc, realtime.CanvasConfig{MentionDelay: 50 * time.Millisecond})
	a, aTok := e.user("a")
	b, _ := e.user("b")
	c, _ := e.user("c")
	pid := e.project(a, map[uuid.UUID]domain.Role{b: domain.RoleViewer, c: domain.RoleEditor})
	cid := e.canvas(a, pid)
	handle := func(u uuid.UUID) string {
		me, err := e.svc.Me(ctx, u)
		require.NoError(t, err)
		local, _, _ := strings.Cut(me.Email, "@")
		return local
	}
	mentions := func(u uuid.UUID) []*domain.Notification {
		ns, _, err := e.svc.ListNotifications(ctx, u, domain.NotificationListOptions{Type: domain.NotifyCanvasMention})
		require.NoError(t, err)
		return ns
	}
	settle := func() { time.Sleep(300 * time.Millisecond) }

	ea := join(t, e, aTok, cid, 1<<40+1)
	key, err := crdt.KeyBetween("", "")
	require.NoError(t, err)
	id, u, err := ea.doc.Create("sticky", crdt.Root, key, nil)
	require.NoError(t, ea.send(u, err))

	// Typed one keystroke at a time, with a self-mention and a stranger.
	text := "ship it @" + handle(b) + " @" + handle(a) + " @nobody"
	for i, r := range []rune(text) {
		require.NoError(t, ea.send(ea.doc.InsertText(id, "content", i, string(r))))
	}
	settle()
	got := mentions(b)
	require.Len(t, got, 1, "b is mentioned once, when typing stopped")
	var data map[string]any
	require.NoError(t, json.Unmarshal(got[0].Data, &data))
	assert.Equal(t, cid.String(), data["canvas_id"])
	assert.Equal(t, pid.String(), data["project_id"])
	assert.Equal(t, "Board", data["canvas_name"])
	assert.Equal(t, a, got[0].ActorID)
	assert.Empty(t, mentions(a), "no self-mention")
	assert.Empty(t, mentions(c))

	// More text, the same handle again: nothing new.
	n := len([]rune(text))
	require.NoError(t, ea.send(ea.doc.InsertText(id, "content", n, " and again @"+handle(b))))
	settle()
	got = mentions(b)
	require.Len(t, got, 1)
	assert.Equal(t, 1, got[0].Count)

	// A new handle in the same text.
	require.NoError(t, ea.send(ea.doc.InsertText(id, "content", 0, "@"+strings.ToUpper(handle(c))+" ")))
	settle()
	assert.Len(t, mentions(c), 1, "handles match whatever their case")
	assert.Len(t, mentions(b), 1)
}

func TestMentionHandles(t *testing.T) {
	for _, test := range []struct {
		text string
		want []string
	}{
		{"", nil},
		{"hi @bob", []string{"bob"}},
		{"@Bob, @ann.lee. @bob", []string{"bob", "ann.lee"}},
		{"mail ann@example.com", nil},
		{"@@x @ @-", []string{"x"}},
		{"(@zoë)", []string{"zoë"}},
	} {
		assert.Equal(t, test.want, domain.MentionHandles(test.text), "%q", test.text)
	}
}
