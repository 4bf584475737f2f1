package realtime_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/tone-ai/tone/crdt"
	"github.com/tone-ai/tone/domain"
	"github.com/tone-ai/tone/realtime"
	"github.com/tone-ai/tone/realtime/rtclient"
)

// editor is a canvas client: a connection and its own replica of the document.
type editor struct {
	t    *testing.T
	conn *rtclient.Conn
	doc  *crdt.Doc
	ch   string
}

func newCanvasEnv(t *testing.T) *env {
	e := newEnv(t)
	e.node.EnableCanvas(e.svc, realtime.CanvasConfig{IdleTimeout: 200 * time.Millisecond, SnapshotEvery: 5})
	return e
}

// join subscribes to a canvas with a fresh replica, loading what the server sends.
func join(t *testing.T, e *env, token string, canvas uuid.UUID, replica uint64) *editor {
	t.Helper()
	ed := &editor{t: t, conn: e.dial(token), ch: "canvas:" + canvas.String()}
	r, err := ed.conn.Request(ctx, &realtime.Frame{Type: realtime.TypeSubscribe, Channel: ed.ch, Replica: replica})
	require.NoError(t, err)
	require.True(t, r.Snapshot, "a client with nothing gets a full snapshot")
	ed.doc, err = crdt.Load(crdt.ReplicaID(replica), crdt.DefaultSchema(), r.Update)
	require.NoError(t, err)
	return ed
}

// send sends one local edit and waits for the acknowledgement.
func (ed *editor) send(update []byte, err error) error {
	ed.t.Helper()
	require.NoError(ed.t, err)
	_, err = ed.conn.Request(ctx, &realtime.Frame{Type: realtime.TypeCanvas, Channel: ed.ch, Update: update})
	return err
}

// catchUp applies canvas messages until the editor has everything want has.
// Every update comes back to every subscriber, its author's own included
// (applying it again changes nothing).
func (ed *editor) catchUp(want *crdt.Doc) {
	ed.t.Helper()
	for !ed.doc.Version().Covers(want.Version()) {
		m := next(ed.t, ed.conn, realtime.TypeMessage)
		var u []byte
		require.NoError(ed.t, msgpack.Unmarshal(m.Data, &u))
		require.NoError(ed.t, ed.doc.Apply(u))
	}
}

// serverDoc returns the document the server holds, as a new subscriber sees it.
func serverDoc(t *testing.T, e *env, token string, canvas uuid.UUID) *crdt.Doc {
	t.Helper()
	c := e.dial(token)
	r, err := c.Request(ctx, &realtime.Frame{Type: realtime.TypeSubscribe, Channel: "canvas:" + canvas.String()})
	require.NoError(t, err)
	d, err := crdt.Load(crdt.ReplicaID(1<<41), crdt.DefaultSchema(), r.Update)
	require.NoError(t, err)
	c.Close()
	return d
}

func (e *env) canvas(owner uuid.UUID, pid uuid.UUID) uuid.UUID {
	e.t.Helper()
	c, err := e.svc.CreateCanvas(ctx, owner, pid, "Board")
	require.NoError(e.t, err)
	return c.ID
}

// TestCanvasEditing: two editors change one canvas and converge; a viewer
// watches but cannot write; undo is a forward change that spares others'.
func TestCanvasEditing(t *testing.T) {
	e := newCanvasEnv(t)
	a, aTok := e.user("a")
	b, bTok := e.user("b")
	v, vTok := e.user("v")
	pid := e.project(a, map[uuid.UUID]domain.Role{b: domain.RoleEditor, v: domain.RoleViewer})
	cid := e.canvas(a, pid)

	ea := join(t, e, aTok, cid, 1<<40+1)
	eb := join(t, e, bTok, cid, 1<<40+2)
	ev := join(t, e, vTok, cid, 1<<40+3)

	key, err := crdt.KeyBetween("", "")
	require.NoError(t, err)
	id, u, err := ea.doc.Create("rect", crdt.Root, key, crdt.Props{"x": crdt.Number(10), "fill": crdt.String("#ff0000")})
	require.NoError(t, ea.send(u, err))
	eb.catchUp(ea.doc)

	// Concurrent edits of different properties both survive.
	require.NoError(t, ea.send(ea.doc.Set(id, crdt.Props{"fill": crdt.String("#00ff00")})))
	require.NoError(t, eb.send(eb.doc.Set(id, crdt.Props{"x": crdt.Number(99)})))
	server := serverDoc(t, e, aTok, cid)
	for _, ed := range []*editor{ea, eb, ev} {
		ed.catchUp(server)
	}
	for _, ed := range []*editor{ea, eb, ev} {
		fill, _ := ed.doc.Get(id, "fill")
		x, _ := ed.doc.Get(id, "x")
		assert.Equal(t, "#00ff00", fill.Str())
		assert.Equal(t, 99.0, x.Float())
		assert.Equal(t, ea.doc.Snapshot(), ed.doc.Snapshot(), "identical documents")
	}

	// A viewer's edit is refused and changes nothing.
	before := ea.doc.Snapshot()
	err = ev.send(ev.doc.Set(id, crdt.Props{"x": crdt.Number(-1)}))
	assert.Equal(t, domain.EForbidden, code(t, err))
	fresh := join(t, e, bTok, cid, 1<<40+4)
	assert.Equal(t, before, fresh.doc.Snapshot(), "the server's document is unchanged")

	// Undo of a's colour change restores red and leaves b's x alone.
	require.NoError(t, ea.send(ea.doc.Undo()))
	eb.catchUp(ea.doc)
	fill, _ := eb.doc.Get(id, "fill")
	x, _ := eb.doc.Get(id, "x")
	assert.Equal(t, "#ff0000", fill.Str())
	assert.Equal(t, 99.0, x.Float())

	// Two people type into the same text at once: both runs survive, whole.
	require.NoError(t, ea.send(ea.doc.InsertText(id, "content", 0, "hello")))
	eb.catchUp(ea.doc)
	require.NoError(t, ea.send(ea.doc.InsertText(id, "content", 5, " world")))
	require.NoError(t, eb.send(eb.doc.InsertText(id, "content", 5, " there")))
	server = serverDoc(t, e, aTok, cid)
	for _, ed := range []*editor{ea, eb, ev} {
		ed.catchUp(server)
	}
	got := ea.doc.Text(id, "content")
	assert.Contains(t, []string{"hello world there", "hello there world"}, got)
	assert.Equal(t, got, eb.doc.Text(id, "content"))
	assert.Equal(t, got, server.Text(id, "content"))
}

func TestCanvasBadUpdates(t *testing.T) {
	e := newCanvasEnv(t)
	a, aTok := e.user("a")
	b, bTok := e.user("b")
	pid := e.project(a, map[uuid.UUID]domain.Role{b: domain.RoleEditor})
	cid := e.canvas(a, pid)
	ea := join(t, e, aTok, cid, 1<<40+1)

	key, _ := crdt.KeyBetween("", "")
	_, u1, err := ea.doc.Create("rect", crdt.Root, key, nil)
	require.NoError(t, err)
	_, u2, err := ea.doc.Create("rect", crdt.Root, key, nil)
	require.NoError(t, err)

	for _, test := range []struct {
		name   string
		update []byte
		want   string
	}{
		{"garbage", []byte{0xc1, 0x02}, domain.EInvalid},
		{"empty", nil, domain.EInvalid},
		{"out of order", u2, domain.EConflict},
	} {
		_, err := ea.conn.Request(ctx, &realtime.Frame{Type: realtime.TypeCanvas, Channel: ea.ch, Update: test.update})
		assert.Equal(t, test.want, code(t, err), test.name)
	}
	collect, err := ea.doc.Collect(ea.doc.Version())
	require.NoError(t, err)
	_, err = ea.conn.Request(ctx, &realtime.Frame{Type: realtime.TypeCanvas, Channel: ea.ch, Update: collect})
	assert.Equal(t, domain.EForbidden, code(t, err), "clients may not collect")
	require.NoError(t, ea.send(u1, nil))
	require.NoError(t, ea.send(u1, nil), "a resend is acknowledged")
	require.NoError(t, ea.send(u2, nil))

	// Another user cannot write under a's replica, nor claim it.
	eb := join(t, e, bTok, cid, 1<<40+2)
	_, err = eb.conn.Request(ctx, &realtime.Frame{Type: realtime.TypeCanvas, Channel: eb.ch, Update: u1})
	assert.Equal(t, domain.EForbidden, code(t, err), "ops of another replica")
	other := e.dial(bTok)
	_, err = other.Request(ctx, &realtime.Frame{Type: realtime.TypeSubscribe, Channel: ea.ch, Replica: 1<<40 + 1})
	assert.Equal(t, domain.EConflict, code(t, err), "a replica belongs to its first writer")
	_, err = other.Request(ctx, &realtime.Frame{Type: realtime.TypeCanvas, Channel: ea.ch, Update: u1})
	assert.Equal(t, domain.EInvalid, code(t, err), "not subscribed")
	_, err = other.Request(ctx, &realtime.Frame{Type: realtime.TypePublish, Channel: ea.ch, Data: []byte{0xc4, 0x01, 0x00}})
	assert.Equal(t, domain.EForbidden, code(t, err), "no raw publications on canvas channels")

	// A stranger sees nothing.
	_, sTok := e.user("s")
	st := e.dial(sTok)
	_, err = st.Request(ctx, &realtime.Frame{Type: realtime.TypeSubscribe, Channel: ea.ch})
	assert.Equal(t, domain.ENotFound, code(t, err))
}

// TestCanvasReload: a canvas unloaded after idle is loaded again from its
// snapshot and op log, and a client syncing by version vector gets only
// what it lacks.
func TestCanvasReload(t *testing.T) {
	e := newCanvasEnv(t)
	a, aTok := e.user("a")
	pid := e.project(a, nil)
	cid := e.canvas(a, pid)
	ea := join(t, e, aTok, cid, 1<<40+1)
	key, _ := crdt.KeyBetween("", "")
	id, u, err := ea.doc.Create("rect", crdt.Root, key, nil)
	require.NoError(t, ea.send(u, err))
	for i := range 12 { // past SnapshotEvery, so a snapshot and later ops
		require.NoError(t, ea.send(ea.doc.Set(id, crdt.Props{"x": crdt.Number(float64(i))})))
	}
	vvAt := ea.doc.Version()
	require.NoError(t, ea.send(ea.doc.Set(id, crdt.Props{"y": crdt.Number(5)})))
	ea.conn.Close()
	time.Sleep(500 * time.Millisecond) // idle timeout: unload with a final snapshot

	c := e.dial(aTok)
	wire := map[uint64]uint64{}
	for r, s := range vvAt {
		wire[uint64(r)] = s
	}
	r, err := c.Request(ctx, &realtime.Frame{Type: realtime.TypeSubscribe, Channel: ea.ch, Version: wire})
	require.NoError(t, err)
	require.False(t, r.Snapshot)
	lagging, err := crdt.Load(crdt.ReplicaID(1<<40+9), crdt.DefaultSchema(), ea.doc.Snapshot())
	require.NoError(t, err)
	require.NoError(t, lagging.Apply(r.Update))
	assert.Equal(t, ea.doc.Snapshot(), lagging.Snapshot())
	assert.Equal(t, vvToWire(ea.doc.Version()), r.Version)

	r, err = c.Request(ctx, &realtime.Frame{Type: realtime.TypeSubscribe, Channel: ea.ch})
	require.NoError(t, err)
	assert.True(t, r.Snapshot, "no version vector: a full snapshot")
	full, err := crdt.Load(crdt.ReplicaID(1<<40+10), crdt.DefaultSchema(), r.Update)
	require.NoError(t, err)
	y, _ := full.Get(id, "y")
	assert.Equal(t, 5.0, y.Float())
}

func vvToWire(v crdt.VersionVector) map[uint64]uint64 {
	out := map[uint64]uint64{}
	for r, s := range v {
		out[uint64(r)] = s
	}
	return out
}

func TestCanvasVersions(t *testing.T) {
	e := newCanvasEnv(t)
	a, aTok := e.user("a")
	pid := e.project(a, nil)
	cid := e.canvas(a, pid)
	ea := join(t, e, aTok, cid, 1<<40+1)
	key, _ := crdt.KeyBetween("", "")
	id, u, err := ea.doc.Create("rect", crdt.Root, key, crdt.Props{"fill": crdt.String("#111111")})
	require.NoError(t, ea.send(u, err))
	require.NoError(t, ea.send(ea.doc.InsertText(id, "content", 0, "ship it")))
	saved, err := e.node.SaveCanvasVersion(ctx, a, cid, "before")
	require.NoError(t, err)
	require.NoError(t, ea.send(ea.doc.ReplaceText(id, "content", "ship it now ✓")))

	require.NoError(t, ea.send(ea.doc.Set(id, crdt.Props{"fill": crdt.String("#222222"), "x": crdt.Number(3)})))
	k2, _ := crdt.KeyBetween(key, "")
	_, u, err = ea.doc.Create("ellipse", crdt.Root, k2, nil)
	require.NoError(t, ea.send(u, err))

	require.NoError(t, e.node.RestoreCanvasVersion(ctx, a, cid, saved.ID))
	ea.catchUp(serverDoc(t, e, aTok, cid)) // the restore arrives as one forward update
	fill, _ := ea.doc.Get(id, "fill")
	assert.Equal(t, "#111111", fill.Str())
	assert.Equal(t, "ship it", ea.doc.Text(id, "content"), "collaborative text is restored too")
	_, hasX := ea.doc.Get(id, "x")
	assert.False(t, hasX, "a property the version did not have is cleared")
	assert.Equal(t, []crdt.ID{id}, ea.doc.Children(crdt.Root), "the later element is deleted")

	list, _, err := e.svc.ListCanvasVersions(ctx, a, cid, domain.ListOptions{})
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, "before", list[0].Name)
}

// secondNode starts another node over the same store with a broker of its
// own, so the two nodes do not see each other's updates live: only through
// the store.
func (e *env) secondNode(cfg realtime.CanvasConfig) *env {
	e.t.Helper()
	broker := realtime.NewMemoryBroker(100, time.Minute)
	node := realtime.NewNode(realtime.Config{NodeID: "n2"}, e.svc, broker, broker, nil)
	node.EnableCanvas(e.svc, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { node.Run(ctx); close(done) }()
	mux := http.NewServeMux()
	mux.Handle("/api/v1/realtime", node)
	srv := httptest.NewServer(mux)
	e.t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		node.Shutdown(sctx)
		srv.Close()
		cancel()
		<-done
	})
	return &env{t: e.t, svc: e.svc, broker: broker, node: node, url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/api/v1/realtime"}
}

// TestCanvasSnapshotConflict: a node whose document misses what another
// node snapshotted merges the stored state before its own snapshot, so no
// update is lost to compaction.
func TestCanvasSnapshotConflict(t *testing.T) {
	e := newEnv(t)
	cfg := realtime.CanvasConfig{IdleTimeout: 100 * time.Millisecond, SnapshotEvery: 3}
	e.node.EnableCanvas(e.svc, cfg)
	e2 := e.secondNode(cfg)
	a, aTok := e.user("a")
	pid := e.project(a, nil)
	cid := e.canvas(a, pid)

	on1 := join(t, e, aTok, cid, 1<<40+1)
	on2 := join(t, e2, aTok, cid, 1<<40+2)
	key, _ := crdt.KeyBetween("", "")
	id1, u, err := on1.doc.Create("rect", crdt.Root, key, nil)
	require.NoError(t, on1.send(u, err))
	for i := range 4 {
		require.NoError(t, on1.send(on1.doc.Set(id1, crdt.Props{"x": crdt.Number(float64(i))})))
	}
	k2, _ := crdt.KeyBetween(key, "")
	id2, u, err := on2.doc.Create("ellipse", crdt.Root, k2, nil)
	require.NoError(t, on2.send(u, err))
	for i := range 4 {
		require.NoError(t, on2.send(on2.doc.Set(id2, crdt.Props{"y": crdt.Number(float64(i))})))
	}
	on1.conn.Close()
	on2.conn.Close()
	time.Sleep(500 * time.Millisecond) // both unload, with final snapshots

	got := serverDoc(t, e, aTok, cid)
	x, _ := got.Get(id1, "x")
	y, _ := got.Get(id2, "y")
	assert.Equal(t, 3.0, x.Float())
	assert.Equal(t, 3.0, y.Float())
	assert.ElementsMatch(t, []crdt.ID{id1, id2}, got.Children(crdt.Root))
}

// TestCanvasDeleted: deleting a canvas resets its subscribers, refuses new
// ones, and leaves nothing loaded.
func TestCanvasDeleted(t *testing.T) {
	e := newCanvasEnv(t)
	a, aTok := e.user("a")
	pid := e.project(a, nil)
	cid := e.canvas(a, pid)
	ea := join(t, e, aTok, cid, 1<<40+1)
	require.NoError(t, e.svc.DeleteCanvas(ctx, a, cid))
	e.node.DropCanvas(cid)
	r := next(t, ea.conn, realtime.TypeReset)
	assert.Equal(t, ea.ch, r.Channel)
	_, err := ea.conn.Request(ctx, &realtime.Frame{Type: realtime.TypeSubscribe, Channel: ea.ch, Replica: 1<<40 + 1})
	assert.Equal(t, domain.ENotFound, code(t, err))
	key, _ := crdt.KeyBetween("", "")
	_, u, err := ea.doc.Create("rect", crdt.Root, key, nil)
	require.NoError(t, err)
	_, err = ea.conn.Request(ctx, &realtime.Frame{Type: realtime.TypeCanvas, Channel: ea.ch, Update: u})
	assert.Equal(t, domain.ENotFound, code(t, err), "no more writes to a deleted canvas")
}
