package http

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
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

func canvasesPath(project uuid.UUID) string {
	return "/api/v1/projects/" + project.String() + "/canvases"
}

func canvasPath(canvas uuid.UUID, rest ...string) string {
	p := "/api/v1/canvases/" + canvas.String()
	for _, r := range rest {
		p += r
	}
	return p
}

func (a *testAPI) createCanvas(u *testUser, project uuid.UUID, name string) uuid.UUID {
	a.t.Helper()
	resp := a.do("POST", canvasesPath(project), u.Access, map[string]string{"name": name})
	require.Equal(a.t, http.StatusCreated, resp.Status, resp.String())
	return a.id(resp)
}

// saveVersion saves a named version through the API and returns it.
func (a *testAPI) saveVersion(u *testUser, canvas uuid.UUID, name string) canvasVersionJSON {
	a.t.Helper()
	resp := a.do("POST", canvasPath(canvas, "/versions"), u.Access, map[string]string{"name": name})
	require.Equal(a.t, http.StatusCreated, resp.Status, resp.String())
	var v canvasVersionJSON
	resp.decode(a.t, &v)
	return v
}

// getVersion reads one version, with its document.
func (a *testAPI) getVersion(u *testUser, canvas, version uuid.UUID) canvasVersionJSON {
	a.t.Helper()
	resp := a.do("GET", canvasPath(canvas, "/versions/", version.String()), u.Access, nil)
	require.Equal(a.t, http.StatusOK, resp.Status, resp.String())
	var v canvasVersionJSON
	resp.decode(a.t, &v)
	return v
}

// tree renders the visible tree of a canvas document: every element that is
// shown, parents before their children, siblings in z-order, each with its
// type and properties. Two documents look the same exactly when their trees
// are equal.
func tree(doc *crdt.Doc) []string {
	var out []string
	var walk func(parent crdt.ID, depth int)
	walk = func(parent crdt.ID, depth int) {
		for _, id := range doc.Children(parent) {
			e, ok := doc.Element(id)
			if !ok {
				out = append(out, fmt.Sprintf("%*s%d.%d missing", 2*depth, "", id.Replica, id.Seq))
				continue
			}
			line := fmt.Sprintf("%*s%d.%d %s", 2*depth, "", id.Replica, id.Seq, e.Type)
			keys := make([]string, 0, len(e.Props))
			for k := range e.Props {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				line += " " + k + "=" + e.Props[k].String()
			}
			out = append(out, line)
			walk(id, depth+1)
		}
	}
	walk(crdt.Root, 0)
	return out
}

// wireVersion writes a version vector the way the API does.
func wireVersion(v crdt.VersionVector) map[string]uint64 {
	out := map[string]uint64{}
	for r, s := range v {
		out[strconv.FormatUint(uint64(r), 10)] = s
	}
	return out
}

// readerReplica is the replica id of documents that are only read.
const readerReplica crdt.ReplicaID = 999

// canvasClient is a realtime connection subscribed to one canvas, with its
// own replica of the document.
type canvasClient struct {
	t    *testing.T
	conn *rtclient.Conn
	ch   string
	doc  *crdt.Doc
	sub  *realtime.Frame // the subscribe reply
}

// openCanvas connects as u and subscribes to a canvas with a replica id (0:
// read only), loading the full document the reply carries.
func (a *testAPI) openCanvas(u *testUser, canvas uuid.UUID, replica uint64) *canvasClient {
	a.t.Helper()
	c := &canvasClient{t: a.t, conn: a.dial(u), ch: "canvas:" + canvas.String()}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	reply, err := c.conn.Request(ctx, &realtime.Frame{Type: realtime.TypeSubscribe, Channel: c.ch, Replica: replica})
	require.NoError(a.t, err)
	require.True(a.t, reply.Snapshot, "a subscription without a version vector gets the whole document")
	r := crdt.ReplicaID(replica)
	if r == 0 {
		r = readerReplica
	}
	c.doc, err = crdt.Load(r, crdt.DefaultSchema(), reply.Update)
	require.NoError(a.t, err)
	assert.True(a.t, sameVersion(c.doc.Version(), vvFrom(reply.Version)), "the reply's version vector %v is the snapshot's %v", reply.Version, c.doc.Version())
	c.sub = reply
	return c
}

// sameVersion reports whether two version vectors are equal, counting
// absent replicas as 0.
func sameVersion(a, b crdt.VersionVector) bool { return a.Covers(b) && b.Covers(a) }

func vvFrom(v map[uint64]uint64) crdt.VersionVector {
	out := crdt.VersionVector{}
	for r, s := range v {
		out[crdt.ReplicaID(r)] = s
	}
	return out
}

// send sends a local edit (the update and error of a crdt edit) and waits
// until the server has made it durable.
func (c *canvasClient) send(update []byte, err error) {
	c.t.Helper()
	require.NoError(c.t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = c.conn.Request(ctx, &realtime.Frame{Type: realtime.TypeCanvas, Channel: c.ch, Update: update})
	require.NoError(c.t, err)
}

// create makes and sends a new element.
func (c *canvasClient) create(typ string, parent crdt.ID, props crdt.Props) crdt.ID {
	c.t.Helper()
	id, u, err := c.doc.Create(typ, parent, "", props)
	c.send(u, err)
	return id
}

// catchUp applies the updates pushed to the client until its document
// looks like want, and fails if that does not happen within 5 seconds.
func (c *canvasClient) catchUp(want []string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for !slices.Equal(tree(c.doc), want) {
		f, err := c.conn.Next(ctx)
		if err != nil {
			break
		}
		if f.Type != realtime.TypeMessage || f.Channel != c.ch {
			continue
		}
		var u []byte
		require.NoError(c.t, msgpack.Unmarshal(f.Data, &u))
		require.NoError(c.t, c.doc.Apply(u))
	}
	require.Equal(c.t, want, tree(c.doc))
}

func TestCanvasCRUD(t *testing.T) {
	a := newTestAPI(t, Config{}, testDomainConfig())
	owner, editor, viewer, stranger := a.signUp("owner"), a.signUp("editor"), a.signUp("viewer"), a.signUp("stranger")
	ws := a.createWorkspace(owner, "Acme")
	project := a.createProject(owner, ws, "Rocket")
	a.addMember(owner, "projects", project, editor, domain.RoleEditor)
	a.addMember(owner, "workspaces", ws, viewer, domain.RoleViewer)

	start := time.Now().Add(-time.Second)
	resp := a.do("POST", canvasesPath(project), editor.Access, map[string]string{"name": "  Whiteboard  "})
	require.Equal(t, http.StatusCreated, resp.Status, resp.String())
	var created canvasJSON
	resp.decode(t, &created)
	assert.Equal(t, "/api/v1/canvases/"+created.ID.String(), resp.Header.Get("Location"))
	assert.Equal(t, project, created.ProjectID)
	assert.Equal(t, "Whiteboard", created.Name, "the name is trimmed")
	assert.Equal(t, editor.ID, created.CreatedBy)
	assert.True(t, created.CreatedAt.After(start), created.CreatedAt)
	assert.Equal(t, created.CreatedAt, created.UpdatedAt)
	assert.NotContains(t, resp.json(t), "role")

	for _, test := range []struct {
		who  *testUser
		role string
	}{{owner, "owner"}, {editor, "editor"}, {viewer, "viewer"}} {
		resp := a.do("GET", canvasPath(created.ID), test.who.Access, nil)
		require.Equal(t, http.StatusOK, resp.Status, resp.String())
		var got canvasJSON
		resp.decode(t, &got)
		assert.Equal(t, test.role, got.Role, "the caller's effective role")
		got.Role = ""
		assert.Equal(t, created, got)
	}
	resp = a.do("GET", canvasPath(created.ID), stranger.Access, nil)
	assert.Equal(t, http.StatusNotFound, resp.Status, resp.String())

	list := listAll[canvasJSON](a, viewer, canvasesPath(project))
	require.Len(t, list, 1)
	assert.Equal(t, created, list[0], "list items carry no role")

	time.Sleep(2 * time.Millisecond)
	resp = a.do("PATCH", canvasPath(created.ID), editor.Access, map[string]string{"name": "Roadmap"})
	require.Equal(t, http.StatusOK, resp.Status, resp.String())
	var renamed canvasJSON
	resp.decode(t, &renamed)
	assert.NotContains(t, resp.json(t), "role")
	assert.Equal(t, "Roadmap", renamed.Name)
	assert.True(t, renamed.UpdatedAt.After(created.UpdatedAt), "updated_at moves on: %v -> %v", created.UpdatedAt, renamed.UpdatedAt)
	assert.Equal(t, created.CreatedAt, renamed.CreatedAt)
	var got canvasJSON
	a.do("GET", canvasPath(created.ID), owner.Access, nil).decode(t, &got)
	assert.Equal(t, "Roadmap", got.Name)

	// A canvas of another project is not listed; a deleted one is gone.
	other := a.createProject(owner, ws, "Other")
	elsewhere := a.createCanvas(owner, other, "Elsewhere")
	assert.Len(t, listAll[canvasJSON](a, owner, canvasesPath(project)), 1)

	resp = a.do("DELETE", canvasPath(created.ID), editor.Access, nil)
	require.Equal(t, http.StatusForbidden, resp.Status, "editors may not delete canvases: %s", resp)
	resp = a.do("DELETE", canvasPath(created.ID), owner.Access, nil)
	require.Equal(t, http.StatusNoContent, resp.Status, resp.String())
	assert.Empty(t, resp.Body)
	for _, path := range []string{canvasPath(created.ID), canvasPath(created.ID, "/versions")} {
		resp = a.do("GET", path, owner.Access, nil)
		assert.Equal(t, http.StatusNotFound, resp.Status, "%s: %s", path, resp)
	}
	resp = a.do("DELETE", canvasPath(created.ID), owner.Access, nil)
	assert.Equal(t, http.StatusNotFound, resp.Status, "deleting twice: %s", resp)
	assert.Empty(t, listAll[canvasJSON](a, owner, canvasesPath(project)))

	// Deleting a project deletes its canvases.
	require.Equal(t, http.StatusNoContent, a.do("DELETE", "/api/v1/projects/"+other.String(), owner.Access, nil).Status)
	resp = a.do("GET", canvasPath(elsewhere), owner.Access, nil)
	assert.Equal(t, http.StatusNotFound, resp.Status, resp.String())

	// Canvases of a project nobody can see, or that does not exist.
	resp = a.do("POST", canvasesPath(project), stranger.Access, map[string]string{"name": "Planted"})
	assert.Equal(t, http.StatusNotFound, resp.Status, resp.String())
	resp = a.do("GET", canvasesPath(uuid.New()), owner.Access, nil)
	assert.Equal(t, http.StatusNotFound, resp.Status, resp.String())
	resp = a.do("POST", canvasesPath(project), viewer.Access, map[string]string{"name": "Nope"})
	assert.Equal(t, http.StatusForbidden, resp.Status, resp.String())
	assert.Empty(t, listAll[canvasJSON](a, owner, canvasesPath(project)))
}

func TestCanvasPagination(t *testing.T) {
	a := newRealtimeTestAPI(t, Config{}, testDomainConfig())
	u := a.signUp("pager")
	ws := a.createWorkspace(u, "Acme")
	project := a.createProject(u, ws, "Rocket")
	other := a.createProject(u, ws, "Other")
	a.createCanvas(u, other, "Not here")
	var want []uuid.UUID
	for i := range 5 {
		want = append(want, a.createCanvas(u, project, "canvas "+strconv.Itoa(i)))
	}
	var ids []uuid.UUID
	for _, c := range listAll[canvasJSON](a, u, canvasesPath(project)) {
		ids = append(ids, c.ID)
		assert.Equal(t, project, c.ProjectID)
	}
	assert.Equal(t, want, ids, "every canvas of the project, in creation (id) order, and no other")

	resp := a.do("GET", canvasesPath(project)+"?limit=5", u.Access, nil)
	require.Equal(t, http.StatusOK, resp.Status)
	assert.NotContains(t, resp.json(t), "next_cursor", "an exactly full last page has no next cursor")

	canvas, elsewhere := want[0], want[1]
	a.saveVersion(u, elsewhere, "Not here")
	var versions []uuid.UUID
	for i := range 5 {
		versions = append(versions, a.saveVersion(u, canvas, "v"+strconv.Itoa(i)).ID)
	}
	var got []uuid.UUID
	for _, v := range listAll[map[string]any](a, u, canvasPath(canvas, "/versions")) {
		assert.NotContains(t, v, "snapshot", "lists carry no documents")
		id, err := uuid.Parse(v["id"].(string))
		require.NoError(t, err)
		got = append(got, id)
	}
	assert.Equal(t, versions, got, "every version of the canvas, in the order saved, and no other")
}

func TestCanvasVersionsUnavailable(t *testing.T) {
	a := newTestAPI(t, Config{}, testDomainConfig())
	u := a.signUp("owner")
	ws := a.createWorkspace(u, "Acme")
	canvas := a.createCanvas(u, a.createProject(u, ws, "Rocket"), "Board")
	resp := a.do("POST", canvasPath(canvas, "/versions"), u.Access, map[string]string{"name": "v1"})
	require.Equal(t, http.StatusServiceUnavailable, resp.Status, resp.String())
	assert.Equal(t, domain.EUnavailable, resp.errCode())
	resp = a.do("POST", canvasPath(canvas, "/versions/", uuid.NewString(), "/restore"), u.Access, nil)
	require.Equal(t, http.StatusServiceUnavailable, resp.Status, resp.String())
	assert.Equal(t, domain.EUnavailable, resp.errCode())
	// Reading versions needs no node.
	assert.Empty(t, listAll[canvasVersionJSON](a, u, canvasPath(canvas, "/versions")))
}

// TestCanvasVersions saves a version of a document edited over the
// realtime connection, reads it back, changes the document, restores the
// version and checks that every replica ends up with the saved document.
func TestCanvasVersions(t *testing.T) {
	a := newRealtimeTestAPI(t, Config{}, testDomainConfig())
	owner, editor, viewer := a.signUp("owner"), a.signUp("editor"), a.signUp("viewer")
	ws := a.createWorkspace(owner, "Acme")
	project := a.createProject(owner, ws, "Rocket")
	a.addMember(owner, "projects", project, editor, domain.RoleEditor)
	a.addMember(owner, "workspaces", ws, viewer, domain.RoleViewer)
	canvas := a.createCanvas(owner, project, "Board")
	other := a.createCanvas(owner, project, "Other")

	// An empty canvas can be saved too; its version vector is empty.
	empty := a.saveVersion(owner, canvas, "Empty")
	assert.Equal(t, map[string]uint64{}, empty.Version)

	// The editor draws a frame holding a sticky note, and a rectangle.
	const replica = 1000
	ed := a.openCanvas(editor, canvas, replica)
	assert.Empty(t, tree(ed.doc))
	frame := ed.create("frame", crdt.Root, crdt.Props{"x": crdt.Number(0), "y": crdt.Number(0), "w": crdt.Number(800), "h": crdt.Number(600), "name": crdt.String("Plan")})
	sticky := ed.create("sticky", frame, crdt.Props{"x": crdt.Number(40), "y": crdt.Number(40), "text": crdt.String("ship it"), "fill": crdt.String("#ffee00")})
	rect := ed.create("rect", crdt.Root, crdt.Props{"x": crdt.Number(900), "y": crdt.Number(10), "w": crdt.Number(100), "h": crdt.Number(50), "fill": crdt.String("#ff0000")})
	saved := tree(ed.doc)
	require.Len(t, saved, 3)

	start := time.Now().Add(-time.Second)
	resp := a.do("POST", canvasPath(canvas, "/versions"), editor.Access, map[string]string{"name": " First draft "})
	require.Equal(t, http.StatusCreated, resp.Status, resp.String())
	var v1 canvasVersionJSON
	resp.decode(t, &v1)
	assert.Equal(t, canvasPath(canvas, "/versions/", v1.ID.String()), resp.Header.Get("Location"))
	assert.NotContains(t, resp.json(t), "snapshot", "the answer to a save carries no document")
	assert.Equal(t, canvas, v1.CanvasID)
	assert.Equal(t, "First draft", v1.Name)
	assert.Equal(t, editor.ID, v1.CreatedBy)
	assert.True(t, v1.CreatedAt.After(start), v1.CreatedAt)
	assert.Equal(t, map[string]uint64{"1000": 3}, v1.Version, "every acknowledged edit is in the version")

	// Anyone who can see the canvas reads the version and its document.
	got := a.getVersion(viewer, canvas, v1.ID)
	require.NotEmpty(t, got.Snapshot)
	snap := got.Snapshot
	got.Snapshot = nil
	assert.Equal(t, v1, got)
	doc, err := crdt.Load(readerReplica, crdt.DefaultSchema(), snap)
	require.NoError(t, err)
	assert.Equal(t, saved, tree(doc))
	assert.True(t, sameVersion(ed.doc.Version(), doc.Version()), "%v != %v", ed.doc.Version(), doc.Version())
	emptyDoc, err := crdt.Load(readerReplica, crdt.DefaultSchema(), a.getVersion(owner, canvas, empty.ID).Snapshot)
	require.NoError(t, err)
	assert.Empty(t, tree(emptyDoc))

	// Viewers may read versions but neither save nor restore them.
	resp = a.do("POST", canvasPath(canvas, "/versions"), viewer.Access, map[string]string{"name": "Mine"})
	require.Equal(t, http.StatusForbidden, resp.Status, resp.String())
	resp = a.do("POST", canvasPath(canvas, "/versions/", v1.ID.String(), "/restore"), viewer.Access, nil)
	require.Equal(t, http.StatusForbidden, resp.Status, resp.String())

	// Then everything changes: the rectangle is recoloured, moved into the
	// frame and brought below the sticky note, the sticky note is deleted,
	// an ellipse appears and the frame is renamed.
	ed.send(ed.doc.Set(rect, crdt.Props{"fill": crdt.String("#00ff00"), "x": crdt.Number(300), "h": crdt.Null}))
	ed.send(ed.doc.Move(rect, frame, ""))
	ed.send(ed.doc.Delete(sticky))
	ellipse := ed.create("ellipse", crdt.Root, crdt.Props{"x": crdt.Number(5), "y": crdt.Number(5), "w": crdt.Number(10), "h": crdt.Number(10)})
	ed.send(ed.doc.Set(frame, crdt.Props{"name": crdt.String("Done")}))
	changed := tree(ed.doc)
	require.NotEqual(t, saved, changed)
	require.Len(t, changed, 3)

	// A viewer watches live from here on.
	watcher := a.openCanvas(viewer, canvas, 0)
	require.Equal(t, changed, tree(watcher.doc))

	// Restoring a version of another canvas, or none, changes nothing.
	otherVersion := a.saveVersion(owner, other, "Other")
	for _, id := range []uuid.UUID{otherVersion.ID, uuid.New()} {
		resp = a.do("POST", canvasPath(canvas, "/versions/", id.String(), "/restore"), editor.Access, nil)
		require.Equal(t, http.StatusNotFound, resp.Status, resp.String())
		resp = a.do("GET", canvasPath(canvas, "/versions/", id.String()), editor.Access, nil)
		require.Equal(t, http.StatusNotFound, resp.Status, resp.String())
	}

	resp = a.do("POST", canvasPath(canvas, "/versions/", v1.ID.String(), "/restore"), editor.Access, nil)
	require.Equal(t, http.StatusNoContent, resp.Status, resp.String())
	assert.Empty(t, resp.Body)

	// A fresh subscriber gets the saved document back, made by new edits:
	// the version vector grew by the restore's own replica.
	fresh := a.openCanvas(owner, canvas, 0)
	assert.Equal(t, saved, tree(fresh.doc), "the document a new subscriber loads is the saved one")
	_, hasEllipse := fresh.doc.Element(ellipse)
	assert.True(t, hasEllipse, "the ellipse is deleted, not forgotten: history is kept")
	restored := fresh.doc.Version()
	assert.True(t, restored.Covers(ed.doc.Version()), "nothing anyone did is lost")
	assert.Len(t, restored, 2, "the restore is made under one new replica: %v", restored)

	// Everyone subscribed receives the restore as ordinary updates.
	watcher.catchUp(saved)
	ed.catchUp(saved)

	// The editor keeps editing on top of the restored document.
	ed.send(ed.doc.Set(rect, crdt.Props{"stroke": crdt.String("#000000")}))
	watcher.catchUp(tree(ed.doc))

	// Restoring twice in a row: the second finds nothing to change.
	resp = a.do("POST", canvasPath(canvas, "/versions/", empty.ID.String(), "/restore"), owner.Access, nil)
	require.Equal(t, http.StatusNoContent, resp.Status, resp.String())
	watcher.catchUp(nil)
	before := a.openCanvas(owner, canvas, 0).doc.Version()
	resp = a.do("POST", canvasPath(canvas, "/versions/", empty.ID.String(), "/restore"), owner.Access, nil)
	require.Equal(t, http.StatusNoContent, resp.Status, resp.String())
	again := a.openCanvas(owner, canvas, 0)
	assert.Empty(t, tree(again.doc))
	assert.True(t, sameVersion(before, again.doc.Version()), "a restore that changes nothing makes no edits: %v -> %v", before, again.doc.Version())

	// Restores do not make versions; a version saved now holds the
	// restored document.
	resp = a.do("POST", canvasPath(canvas, "/versions/", v1.ID.String(), "/restore"), owner.Access, nil)
	require.Equal(t, http.StatusNoContent, resp.Status, resp.String())
	watcher.catchUp(saved)
	v2 := a.saveVersion(owner, canvas, "Second")
	var names []string
	for _, v := range listAll[canvasVersionJSON](a, viewer, canvasPath(canvas, "/versions")) {
		names = append(names, v.Name)
	}
	assert.Equal(t, []string{"Empty", "First draft", "Second"}, names)
	doc, err = crdt.Load(readerReplica, crdt.DefaultSchema(), a.getVersion(viewer, canvas, v2.ID).Snapshot)
	require.NoError(t, err)
	assert.Equal(t, saved, tree(doc))
	assert.Equal(t, wireVersion(doc.Version()), v2.Version)
	assert.Equal(t, wireVersion(watcher.doc.Version()), v2.Version, "the version is the live document's")

	// The document survives the node: after a shutdown (which flushes
	// the canvas) the store holds the restored document.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, a.node.Shutdown(ctx))
	stored := loadStored(t, a.svc, owner.ID, canvas)
	assert.Equal(t, saved, tree(stored))
}

// loadStored builds a canvas's document from the store, as a node loading
// it would.
func loadStored(t *testing.T, svc *domain.Service, actor, canvas uuid.UUID) *crdt.Doc {
	t.Helper()
	snap, updates, err := svc.LoadCanvas(context.Background(), actor, canvas)
	require.NoError(t, err)
	doc := crdt.NewDoc(readerReplica, crdt.DefaultSchema())
	if snap != nil {
		doc, err = crdt.Load(readerReplica, crdt.DefaultSchema(), snap.Data)
		require.NoError(t, err)
	}
	for _, u := range updates {
		require.NoError(t, doc.Apply(u.Data))
	}
	return doc
}

// TestCanvasVersionJSON checks the wire form of versions: replica ids as
// decimal strings (they do not fit a JSON number) and the document as
// standard base64.
func TestCanvasVersionJSON(t *testing.T) {
	v := &domain.CanvasSnapshot{ID: uuid.New(), CanvasID: uuid.New(), Name: "v",
		Version: domain.CanvasVersion{1<<53 + 1: 7, 2: 1, domain.MaxCanvasSeq: domain.MaxCanvasSeq},
		Data:    []byte{0xff, 0x00, 0xfe}, CreatedBy: uuid.New(), CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	b, err := json.Marshal(toCanvasVersionJSON(v))
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, json.Unmarshal(b, &got))
	assert.Equal(t, map[string]any{"9007199254740993": 7.0, "2": 1.0, "9223372036854775807": float64(domain.MaxCanvasSeq)}, got["version"])
	assert.Equal(t, "/wD+", got["snapshot"])
	v.Data = nil
	b, err = json.Marshal(toCanvasVersionJSON(v))
	require.NoError(t, err)
	assert.NotContains(t, string(b), "snapshot")
	doc := openAPIDoc(t)
	for _, e := range (&schemaValidator{doc: doc, strict: true}).validate("version", map[string]any{"$ref": "#/components/schemas/CanvasVersion"}, got) {
		t.Error(e)
	}
}

// TestCanvasAudit checks that every mutating canvas call writes an audit
// event naming the caller, the target and the request's correlation id.
func TestCanvasAudit(t *testing.T) {
	a := newRealtimeTestAPI(t, Config{}, testDomainConfig())
	owner, editor := a.signUp("owner"), a.signUp("editor")
	ws := a.createWorkspace(owner, "Acme")
	project := a.createProject(owner, ws, "Rocket")
	a.addMember(owner, "projects", project, editor, domain.RoleEditor)
	canvas := a.createCanvas(owner, project, "Board")
	version := a.saveVersion(owner, canvas, "v1").ID
	ed := a.openCanvas(editor, canvas, 1000)
	ed.create("rect", crdt.Root, crdt.Props{"x": crdt.Number(1)})

	events := func(correlationID string) []*domain.AuditEvent {
		var out []*domain.AuditEvent
		err := a.svc.Store().InTx(context.Background(), owner.ID, func(tx domain.Tx) error {
			evs, err := tx.ListAudit(context.Background(), domain.AuditFilter{ProjectID: project}, domain.Page{Limit: 1000})
			for _, ev := range evs {
				if ev.CorrelationID == correlationID {
					out = append(out, ev)
				}
			}
			return err
		})
		require.NoError(t, err)
		return out
	}
	for i, test := range []struct {
		name, method, path string
		body               any
		status             int
		action, targetType string
		target             func(resp *response) string
	}{
		{"create", "POST", canvasesPath(project), map[string]string{"name": "New"}, http.StatusCreated,
			"canvas.create", "canvas", func(resp *response) string { return a.id(resp).String() }},
		{"rename", "PATCH", canvasPath(canvas), map[string]string{"name": "Renamed"}, http.StatusOK,
			"canvas.update", "canvas", func(*response) string { return canvas.String() }},
		{"save version", "POST", canvasPath(canvas, "/versions"), map[string]string{"name": "v2"}, http.StatusCreated,
			"canvas.version.save", "canvas_version", func(resp *response) string { return a.id(resp).String() }},
		{"restore version", "POST", canvasPath(canvas, "/versions/", version.String(), "/restore"), nil, http.StatusNoContent,
			"canvas.version.restore", "canvas_version", func(*response) string { return version.String() }},
		{"delete", "DELETE", canvasPath(canvas), nil, http.StatusNoContent,
			"canvas.delete", "canvas", func(*response) string { return canvas.String() }},
	} {
		t.Run(test.name, func(t *testing.T) {
			a := a.sub(t)
			reqID := fmt.Sprintf("canvas-audit-%d", i)
			resp := a.do(test.method, test.path, owner.Access, test.body, RequestIDHeader, reqID)
			require.Equal(t, test.status, resp.Status, resp.String())
			evs := events(reqID)
			require.Len(t, evs, 1, "one audit event per call")
			ev := evs[0]
			assert.Equal(t, test.action, ev.Action)
			assert.Equal(t, test.targetType, ev.TargetType)
			assert.Equal(t, test.target(resp), ev.TargetID)
			assert.Equal(t, owner.ID, ev.ActorID)
			assert.Equal(t, ws, ev.WorkspaceID)
			assert.Equal(t, domain.ResultSuccess, ev.Result)
		})
	}
}
