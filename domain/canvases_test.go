package domain_test

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain"
)

// canvasTeam is a project with a member of every role: owner, admin,
// editor and viewer through the workspace, guest as a project-only editor,
// and a stranger who belongs to neither.
type canvasTeam struct {
	owner, admin, editor, viewer, guest, stranger *domain.Tokens
	ws                                            *domain.Workspace
	project                                       *domain.Project
}

func newCanvasTeam(t *testing.T, f *fixture) *canvasTeam {
	t.Helper()
	tm := &canvasTeam{}
	tm.owner, _ = f.signUp(t, "owner")
	var err error
	tm.ws, err = f.svc.CreateWorkspace(ctx, tm.owner.UserID, "Studio")
	require.NoError(t, err)
	for _, m := range []struct {
		tok  **domain.Tokens
		role string
	}{{&tm.admin, "admin"}, {&tm.editor, "editor"}, {&tm.viewer, "viewer"}} {
		var email string
		*m.tok, email = f.signUp(t, m.role)
		_, err := f.svc.AddWorkspaceMember(ctx, tm.owner.UserID, tm.ws.ID, email, m.role)
		require.NoError(t, err)
	}
	name := "Design"
	tm.project, err = f.svc.CreateProject(ctx, tm.owner.UserID, tm.ws.ID, domain.ProjectInput{Name: &name})
	require.NoError(t, err)
	var guestEmail string
	tm.guest, guestEmail = f.signUp(t, "guest")
	_, err = f.svc.AddProjectMember(ctx, tm.owner.UserID, tm.project.ID, guestEmail, "editor")
	require.NoError(t, err)
	tm.stranger, _ = f.signUp(t, "stranger")
	return tm
}

func (tm *canvasTeam) canvas(t *testing.T, f *fixture, name string) *domain.Canvas {
	t.Helper()
	c, err := f.svc.CreateCanvas(ctx, tm.owner.UserID, tm.project.ID, name)
	require.NoError(t, err)
	return c
}

// entry is an op log entry of replica r covering first..last, sent by actor.
func entry(c *domain.Canvas, actor *domain.Tokens, r, first, last uint64) *domain.CanvasUpdate {
	return &domain.CanvasUpdate{CanvasID: c.ID, Replica: r, First: first, Last: last, ActorID: actor.UserID,
		Data: fmt.Appendf(nil, "%d:%d-%d", r, first, last)}
}

// log renders entries as "replica:first-last" for comparison.
func log(us []*domain.CanvasUpdate) []string {
	out := []string{}
	for _, u := range us {
		out = append(out, fmt.Sprintf("%d:%d-%d", u.Replica, u.First, u.Last))
	}
	return out
}

func (f *fixture) load(t *testing.T, actor *domain.Tokens, c *domain.Canvas) (*domain.CanvasSnapshot, []string) {
	t.Helper()
	snap, us, err := f.svc.LoadCanvas(ctx, actor.UserID, c.ID)
	require.NoError(t, err)
	for _, u := range us {
		assert.Equal(t, fmt.Sprintf("%d:%d-%d", u.Replica, u.First, u.Last), string(u.Data), "data round-trips")
	}
	return snap, log(us)
}

// wantCode returns "" if role may perform a, else the code a refusal has.
func wantCode(role domain.Role, a domain.Action) string {
	switch {
	case !role.Valid():
		return domain.ENotFound
	case !role.Can(a):
		return domain.EForbidden
	}
	return ""
}

func check(t *testing.T, want string, err error, msg string) {
	t.Helper()
	if want == "" {
		assert.NoError(t, err, msg)
	} else {
		assert.Equal(t, want, domain.ErrorCode(err), "%s: %v", msg, err)
	}
}

// TestCanvasPermissions calls every canvas use case as every kind of member
// and checks the answer against the permission matrix.
func TestCanvasPermissions(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		tm := newCanvasTeam(t, f)
		c := tm.canvas(t, f, "Board")
		version, err := f.svc.SaveCanvasVersion(ctx, tm.owner.UserID, c.ID, "Baseline", domain.CanvasVersion{}, []byte("doc"))
		require.NoError(t, err)
		covered := domain.CanvasVersion{}
		for i, m := range []struct {
			name string
			who  *domain.Tokens
			role domain.Role
		}{
			{"owner", tm.owner, domain.RoleOwner},
			{"admin", tm.admin, domain.RoleAdmin},
			{"editor", tm.editor, domain.RoleEditor},
			{"viewer", tm.viewer, domain.RoleViewer},
			{"project-only editor", tm.guest, domain.RoleEditor},
			{"stranger", tm.stranger, ""},
		} {
			user := m.who.UserID
			read, write, del := wantCode(m.role, domain.ActCanvasRead), wantCode(m.role, domain.ActCanvasWrite), wantCode(m.role, domain.ActCanvasDelete)
			if write == domain.ENotFound {
				// Outside the project, creating reports the project missing.
				_, err := f.svc.CreateCanvas(ctx, user, tm.project.ID, "Mine")
				check(t, write, err, m.name+" creates")
				assert.Equal(t, "Project not found.", domain.ErrorMessage(err))
			} else {
				_, err := f.svc.CreateCanvas(ctx, user, tm.project.ID, "Mine")
				check(t, write, err, m.name+" creates")
			}

			got, err := f.svc.GetCanvas(ctx, user, c.ID)
			check(t, read, err, m.name+" gets")
			if read == "" {
				assert.Equal(t, m.role, got.Role, m.name)
				assert.Equal(t, c.ID, got.ID)
			} else {
				assert.Equal(t, "Canvas not found.", domain.ErrorMessage(err), "existence does not leak")
			}
			_, role, err := f.svc.CanvasAccess(ctx, user, c.ID)
			check(t, read, err, m.name+" asks for access")
			assert.Equal(t, m.role, role)
			_, _, err = f.svc.ListCanvases(ctx, user, tm.project.ID, domain.ListOptions{})
			check(t, read, err, m.name+" lists")
			_, _, err = f.svc.LoadCanvas(ctx, user, c.ID)
			check(t, read, err, m.name+" loads")
			_, _, err = f.svc.ListCanvasVersions(ctx, user, c.ID, domain.ListOptions{})
			check(t, read, err, m.name+" lists versions")
			_, err = f.svc.CanvasVersionByID(ctx, user, c.ID, version.ID)
			check(t, read, err, m.name+" reads a version")

			_, err = f.svc.RenameCanvas(ctx, user, c.ID, "Board by "+m.name)
			check(t, write, err, m.name+" renames")
			replica := uint64(i + 1)
			err = f.svc.AppendCanvasUpdates(ctx, c.ID, []*domain.CanvasUpdate{entry(c, m.who, replica, 1, 2)})
			check(t, write, err, m.name+" appends")
			if err == nil {
				covered[replica] = 2
			}
			err = f.svc.SaveCanvasSnapshot(ctx, user, c.ID, maps.Clone(covered), []byte("snapshot"))
			check(t, write, err, m.name+" saves a snapshot")
			_, err = f.svc.SaveCanvasVersion(ctx, user, c.ID, "By "+m.name, covered, []byte("doc"))
			check(t, write, err, m.name+" saves a version")

			doomed := tm.canvas(t, f, "Doomed")
			check(t, del, f.svc.DeleteCanvas(ctx, user, doomed.ID), m.name+" deletes")
			_, err = f.svc.GetCanvas(ctx, tm.owner.UserID, doomed.ID)
			if del == "" {
				code(t, domain.ENotFound, err)
			} else {
				require.NoError(t, err, "a refused delete deletes nothing")
			}
		}
		// What the writers wrote is there, and only that.
		snap, updates := f.load(t, tm.viewer, c)
		require.NotNil(t, snap)
		assert.Equal(t, covered, snap.Version)
		assert.Empty(t, updates, "the last snapshot covers every update")
		vs, _, err := f.svc.ListCanvasVersions(ctx, tm.viewer.UserID, c.ID, domain.ListOptions{})
		require.NoError(t, err)
		assert.Len(t, vs, 5, "the baseline and one version per writer")
		got, err := f.svc.GetCanvas(ctx, tm.viewer.UserID, c.ID)
		require.NoError(t, err)
		assert.Equal(t, "Board by project-only editor", got.Name)

		_, err = f.svc.GetCanvas(ctx, tm.owner.UserID, uuid.New())
		code(t, domain.ENotFound, err)
		_, _, err = f.svc.CanvasAccess(ctx, tm.owner.UserID, uuid.New())
		code(t, domain.ENotFound, err)
		_, err = f.svc.CreateCanvas(ctx, tm.owner.UserID, uuid.New(), "x")
		code(t, domain.ENotFound, err)
		for _, bad := range []string{"", "   ", "tab\tname", strings.Repeat("x", domain.MaxNameLen+1)} {
			_, err = f.svc.CreateCanvas(ctx, tm.owner.UserID, tm.project.ID, bad)
			code(t, domain.EInvalid, err)
			_, err = f.svc.RenameCanvas(ctx, tm.owner.UserID, c.ID, bad)
			code(t, domain.EInvalid, err)
		}
	})
}

func TestListCanvases(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		tm := newCanvasTeam(t, f)
		var want []uuid.UUID
		for i := range 5 {
			want = append(want, tm.canvas(t, f, fmt.Sprintf("C%d", i)).ID)
		}
		name := "Other"
		other, err := f.svc.CreateProject(ctx, tm.owner.UserID, tm.ws.ID, domain.ProjectInput{Name: &name})
		require.NoError(t, err)
		_, err = f.svc.CreateCanvas(ctx, tm.owner.UserID, other.ID, "Elsewhere")
		require.NoError(t, err)

		var got []uuid.UUID
		opt := domain.ListOptions{Limit: 2}
		for {
			cs, next, err := f.svc.ListCanvases(ctx, tm.guest.UserID, tm.project.ID, opt)
			require.NoError(t, err)
			for _, c := range cs {
				got = append(got, c.ID)
			}
			if next == "" {
				break
			}
			opt.Cursor = next
		}
		assert.Equal(t, want, got)
		_, _, err = f.svc.ListCanvases(ctx, tm.guest.UserID, other.ID, domain.ListOptions{})
		code(t, domain.ENotFound, err)
		_, _, err = f.svc.ListCanvases(ctx, tm.viewer.UserID, tm.project.ID, domain.ListOptions{Cursor: "!!"})
		code(t, domain.EInvalid, err)
	})
}

// TestCanvasLoadAfterSnapshot appends, snapshots and loads: a load is the
// latest periodic snapshot plus exactly the updates it does not cover.
func TestCanvasLoadAfterSnapshot(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		tm := newCanvasTeam(t, f)
		c := tm.canvas(t, f, "Board")
		ed := tm.editor
		snap, got := f.load(t, tm.viewer, c)
		assert.Nil(t, snap)
		assert.Empty(t, got)

		require.NoError(t, f.svc.AppendCanvasUpdates(ctx, c.ID, []*domain.CanvasUpdate{entry(c, ed, 1, 1, 2), entry(c, ed, 1, 3, 3)}))
		require.NoError(t, f.svc.AppendCanvasUpdates(ctx, c.ID, []*domain.CanvasUpdate{entry(c, ed, 1, 4, 5)}))
		snap, got = f.load(t, tm.viewer, c)
		assert.Nil(t, snap)
		assert.Equal(t, []string{"1:1-2", "1:3-3", "1:4-5"}, got)

		require.NoError(t, f.svc.SaveCanvasSnapshot(ctx, ed.UserID, c.ID, domain.CanvasVersion{1: 3}, []byte("S1")))
		snap, got = f.load(t, tm.viewer, c)
		require.NotNil(t, snap)
		assert.Equal(t, domain.CanvasVersion{1: 3}, snap.Version)
		assert.Equal(t, []byte("S1"), snap.Data)
		assert.Equal(t, ed.UserID, snap.CreatedBy)
		assert.Equal(t, []string{"1:4-5"}, got)
		// The covered entries are gone from the log, not just hidden.
		require.NoError(t, f.store.InTx(ctx, tm.owner.UserID, func(tx domain.Tx) error {
			all, err := tx.CanvasUpdatesSince(ctx, c.ID, nil)
			assert.Equal(t, []string{"1:4-5"}, log(all))
			return err
		}))

		require.NoError(t, f.svc.AppendCanvasUpdates(ctx, c.ID, []*domain.CanvasUpdate{entry(c, tm.guest, 2, 1, 1), entry(c, ed, 1, 6, 6)}))
		_, got = f.load(t, tm.viewer, c)
		assert.Equal(t, []string{"1:4-5", "2:1-1", "1:6-6"}, got)

		// A snapshot that lacks what the latest one holds is refused (another
		// node saved meanwhile), and changes nothing.
		for _, stale := range []domain.CanvasVersion{{1: 2}, {2: 1}, {}} {
			code(t, domain.EConflict, f.svc.SaveCanvasSnapshot(ctx, ed.UserID, c.ID, stale, []byte("stale")))
		}
		snap, got = f.load(t, tm.viewer, c)
		assert.Equal(t, []byte("S1"), snap.Data)
		assert.Equal(t, []string{"1:4-5", "2:1-1", "1:6-6"}, got)

		// A named version is no periodic snapshot: loading ignores it.
		_, err := f.svc.SaveCanvasVersion(ctx, ed.UserID, c.ID, "Named", domain.CanvasVersion{1: 6, 2: 1}, []byte("N"))
		require.NoError(t, err)
		snap, _ = f.load(t, tm.viewer, c)
		assert.Equal(t, []byte("S1"), snap.Data)

		require.NoError(t, f.svc.SaveCanvasSnapshot(ctx, ed.UserID, c.ID, domain.CanvasVersion{1: 5, 2: 1}, []byte("S2")))
		snap, got = f.load(t, tm.viewer, c)
		assert.Equal(t, []byte("S2"), snap.Data)
		assert.Equal(t, []string{"1:6-6"}, got)
		// Another node writing the same entries again is harmless.
		require.NoError(t, f.svc.AppendCanvasUpdates(ctx, c.ID, []*domain.CanvasUpdate{entry(c, ed, 1, 4, 5), entry(c, ed, 1, 6, 6)}))
		_, got = f.load(t, tm.viewer, c)
		assert.Equal(t, []string{"1:6-6"}, got)

		code(t, domain.EInvalid, f.svc.SaveCanvasSnapshot(ctx, ed.UserID, c.ID, domain.CanvasVersion{1: 9}, nil))
		code(t, domain.EInvalid, f.svc.SaveCanvasSnapshot(ctx, ed.UserID, c.ID, domain.CanvasVersion{1: 1 << 63}, []byte("x")))
		code(t, domain.EInvalid, f.svc.SaveCanvasSnapshot(ctx, ed.UserID, c.ID, domain.CanvasVersion{0: 1}, []byte("x")))
		code(t, domain.ENotFound, f.svc.SaveCanvasSnapshot(ctx, ed.UserID, uuid.New(), domain.CanvasVersion{}, []byte("x")))
		_, _, err = f.svc.LoadCanvas(ctx, tm.viewer.UserID, uuid.New())
		code(t, domain.ENotFound, err)
	})
}

// TestCanvasGroupCommit writes the updates of two editors in one batch,
// whichever comes first: a workspace editor and a project-only editor, who
// cannot see the workspace's members.
func TestCanvasGroupCommit(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		tm := newCanvasTeam(t, f)
		c := tm.canvas(t, f, "Board")
		ed, guest := tm.editor, tm.guest
		require.NoError(t, f.svc.AppendCanvasUpdates(ctx, c.ID, []*domain.CanvasUpdate{
			entry(c, guest, 20, 1, 1), entry(c, ed, 10, 1, 3), entry(c, guest, 20, 2, 2), entry(c, guest, 21, 1, 1),
		}))
		require.NoError(t, f.svc.AppendCanvasUpdates(ctx, c.ID, []*domain.CanvasUpdate{
			entry(c, ed, 10, 4, 4), entry(c, guest, 20, 3, 3), entry(c, guest, 20, 1, 1), // the last one again: skipped
		}))
		_, us, err := f.svc.LoadCanvas(ctx, tm.viewer.UserID, c.ID)
		require.NoError(t, err)
		assert.Equal(t, []string{"20:1-1", "10:1-3", "20:2-2", "21:1-1", "10:4-4", "20:3-3"}, log(us))
		actors := map[uint64]uuid.UUID{}
		for _, u := range us {
			actors[u.Replica] = u.ActorID
			assert.False(t, u.At.IsZero(), "the time is filled in")
		}
		assert.Equal(t, map[uint64]uuid.UUID{10: ed.UserID, 20: guest.UserID, 21: guest.UserID}, actors)
	})
}

// TestCanvasGroupCommitRefused checks that a batch with one entry its actor
// may not write is refused whole: no entry and no replica claim is stored.
func TestCanvasGroupCommitRefused(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		tm := newCanvasTeam(t, f)
		c := tm.canvas(t, f, "Board")
		other := tm.canvas(t, f, "Other")
		ed, guest := tm.editor, tm.guest
		require.NoError(t, f.svc.AppendCanvasUpdates(ctx, c.ID, []*domain.CanvasUpdate{entry(c, ed, 1, 1, 1)}))
		for _, test := range []struct {
			name  string
			batch []*domain.CanvasUpdate
			code  string
		}{
			{"a viewer after an editor", []*domain.CanvasUpdate{entry(c, ed, 2, 1, 1), entry(c, tm.viewer, 3, 1, 1)}, domain.EForbidden},
			{"a viewer first", []*domain.CanvasUpdate{entry(c, tm.viewer, 3, 1, 1), entry(c, ed, 2, 1, 1)}, domain.EForbidden},
			{"a stranger", []*domain.CanvasUpdate{entry(c, guest, 2, 1, 1), entry(c, tm.stranger, 4, 1, 1)}, domain.ENotFound},
			{"another user's replica", []*domain.CanvasUpdate{entry(c, guest, 2, 1, 1), entry(c, guest, 1, 2, 2)}, domain.EConflict},
			{"two users on one new replica", []*domain.CanvasUpdate{entry(c, ed, 2, 1, 1), entry(c, guest, 2, 2, 2)}, domain.EConflict},
			{"an entry of another canvas", []*domain.CanvasUpdate{entry(c, ed, 2, 1, 1), entry(other, ed, 2, 2, 2)}, domain.EInvalid},
			{"no actor", []*domain.CanvasUpdate{entry(c, ed, 2, 1, 1), {CanvasID: c.ID, Replica: 2, First: 2, Last: 2, Data: []byte{1}}}, domain.EInvalid},
			{"empty data", []*domain.CanvasUpdate{entry(c, ed, 2, 1, 1), {CanvasID: c.ID, Replica: 2, First: 2, Last: 2, ActorID: ed.UserID}}, domain.EInvalid},
			{"first after last", []*domain.CanvasUpdate{entry(c, ed, 2, 1, 1), entry(c, ed, 2, 3, 2)}, domain.EInvalid},
			{"replica too large", []*domain.CanvasUpdate{entry(c, ed, 2, 1, 1), entry(c, ed, 1<<63, 1, 1)}, domain.EInvalid},
		} {
			code(t, test.code, f.svc.AppendCanvasUpdates(ctx, c.ID, test.batch))
			_, got := f.load(t, tm.viewer, c)
			assert.Equal(t, []string{"1:1-1"}, got, "%s: nothing written", test.name)
		}
		// Replica 2 was claimed by none of the refused batches: the guest
		// takes it now, and the editor no longer can.
		require.NoError(t, f.svc.AppendCanvasUpdates(ctx, c.ID, []*domain.CanvasUpdate{entry(c, guest, 2, 1, 1)}))
		code(t, domain.EConflict, f.svc.AppendCanvasUpdates(ctx, c.ID, []*domain.CanvasUpdate{entry(c, ed, 2, 2, 2)}))
		require.NoError(t, f.svc.AppendCanvasUpdates(ctx, c.ID, nil), "an empty batch is fine")
		lost := entry(c, ed, 1, 2, 2)
		lost.CanvasID = uuid.New()
		code(t, domain.ENotFound, f.svc.AppendCanvasUpdates(ctx, lost.CanvasID, []*domain.CanvasUpdate{lost}))
	})
}

func TestCanvasVersions(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		tm := newCanvasTeam(t, f)
		c, other := tm.canvas(t, f, "Board"), tm.canvas(t, f, "Other")
		var saved []*domain.CanvasSnapshot
		for i := range 3 {
			v, err := f.svc.SaveCanvasVersion(ctx, tm.guest.UserID, c.ID, fmt.Sprintf("  Draft %d ", i),
				domain.CanvasVersion{7: uint64(i + 1)}, fmt.Appendf(nil, "doc %d", i))
			require.NoError(t, err)
			assert.Equal(t, fmt.Sprintf("Draft %d", i), v.Name)
			saved = append(saved, v)
		}
		onOther, err := f.svc.SaveCanvasVersion(ctx, tm.editor.UserID, other.ID, "Elsewhere", nil, []byte("x"))
		require.NoError(t, err)

		var listed []*domain.CanvasSnapshot
		opt := domain.ListOptions{Limit: 2}
		for {
			vs, next, err := f.svc.ListCanvasVersions(ctx, tm.viewer.UserID, c.ID, opt)
			require.NoError(t, err)
			listed = append(listed, vs...)
			if next == "" {
				break
			}
			opt.Cursor = next
		}
		require.Len(t, listed, 3)
		for i, v := range listed {
			assert.Equal(t, saved[i].ID, v.ID)
			assert.Equal(t, saved[i].Name, v.Name)
			assert.Equal(t, saved[i].Version, v.Version)
			assert.Equal(t, tm.guest.UserID, v.CreatedBy)
			assert.True(t, saved[i].CreatedAt.Equal(v.CreatedAt))
			assert.Nil(t, v.Data, "lists leave the documents out")
		}

		got, err := f.svc.CanvasVersionByID(ctx, tm.viewer.UserID, c.ID, saved[1].ID)
		require.NoError(t, err)
		assert.Equal(t, []byte("doc 1"), got.Data)
		assert.Equal(t, domain.CanvasVersion{7: 2}, got.Version)
		_, err = f.svc.CanvasVersionByID(ctx, tm.viewer.UserID, c.ID, onOther.ID)
		code(t, domain.ENotFound, err)
		_, err = f.svc.CanvasVersionByID(ctx, tm.viewer.UserID, c.ID, uuid.New())
		code(t, domain.ENotFound, err)
		_, err = f.svc.CanvasVersionByID(ctx, tm.stranger.UserID, c.ID, saved[0].ID)
		code(t, domain.ENotFound, err)

		for _, bad := range []string{"", "line\nbreak"} {
			_, err = f.svc.SaveCanvasVersion(ctx, tm.editor.UserID, c.ID, bad, nil, []byte("x"))
			code(t, domain.EInvalid, err)
		}
		_, err = f.svc.SaveCanvasVersion(ctx, tm.editor.UserID, c.ID, "Empty", nil, nil)
		code(t, domain.EInvalid, err)
		_, err = f.svc.SaveCanvasVersion(ctx, tm.editor.UserID, c.ID, "Huge", domain.CanvasVersion{1: 1 << 63}, []byte("x"))
		code(t, domain.EInvalid, err)
		vs, _, err := f.svc.ListCanvasVersions(ctx, tm.viewer.UserID, c.ID, domain.ListOptions{})
		require.NoError(t, err)
		assert.Len(t, vs, 3, "refused saves store nothing")
	})
}

// TestCanvasAudit checks that every metadata change is audited, with its
// workspace and project, and that content writes and refusals are not.
func TestCanvasAudit(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		tm := newCanvasTeam(t, f)
		c, err := f.svc.CreateCanvas(ctx, tm.editor.UserID, tm.project.ID, "Board")
		require.NoError(t, err)
		_, err = f.svc.RenameCanvas(ctx, tm.guest.UserID, c.ID, "Renamed")
		require.NoError(t, err)
		_, err = f.svc.RenameCanvas(ctx, tm.viewer.UserID, c.ID, "Refused")
		code(t, domain.EForbidden, err)
		require.NoError(t, f.svc.AppendCanvasUpdates(ctx, c.ID, []*domain.CanvasUpdate{entry(c, tm.editor, 1, 1, 1)}))
		require.NoError(t, f.svc.SaveCanvasSnapshot(ctx, tm.editor.UserID, c.ID, domain.CanvasVersion{1: 1}, []byte("S")))
		v, err := f.svc.SaveCanvasVersion(ctx, tm.editor.UserID, c.ID, "V1", domain.CanvasVersion{1: 1}, []byte("V"))
		require.NoError(t, err)
		code(t, domain.EForbidden, f.svc.DeleteCanvas(ctx, tm.editor.UserID, c.ID))
		require.NoError(t, f.svc.DeleteCanvas(ctx, tm.admin.UserID, c.ID))

		var evs []*domain.AuditEvent
		require.NoError(t, f.store.InTx(ctx, tm.owner.UserID, func(tx domain.Tx) (err error) {
			evs, err = tx.ListAudit(ctx, domain.AuditFilter{ProjectID: tm.project.ID}, domain.Page{Limit: 100})
			return err
		}))
		type row struct{ action, actor, targetType, targetID string }
		var got []row
		for _, e := range evs {
			if !strings.HasPrefix(e.Action, "canvas.") {
				continue
			}
			got = append(got, row{e.Action, e.ActorID.String(), e.TargetType, e.TargetID})
			assert.Equal(t, tm.ws.ID, e.WorkspaceID, e.Action)
			assert.Equal(t, domain.ResultSuccess, e.Result)
			assert.Equal(t, "test-corr", e.CorrelationID)
		}
		assert.Equal(t, []row{
			{"canvas.create", tm.editor.UserID.String(), "canvas", c.ID.String()},
			{"canvas.update", tm.guest.UserID.String(), "canvas", c.ID.String()},
			{"canvas.version.save", tm.editor.UserID.String(), "canvas_version", v.ID.String()},
			{"canvas.delete", tm.admin.UserID.String(), "canvas", c.ID.String()},
		}, got)
	})
}

// TestCanvasLoadAndSnapshotExclude checks that a load never runs alongside
// a snapshot save of the same canvas, which would let it read the log
// compacted under a snapshot it did not read.
func TestCanvasLoadAndSnapshotExclude(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		tm := newCanvasTeam(t, f)
		c := tm.canvas(t, f, "Board")
		require.NoError(t, f.svc.AppendCanvasUpdates(ctx, c.ID, []*domain.CanvasUpdate{entry(c, tm.editor, 1, 1, 2), entry(c, tm.editor, 1, 3, 3)}))

		// hold runs fn in a transaction as the owner that holds a lock on c
		// until release is closed; it returns once the lock is taken.
		hold := func(exclusive bool, fn func(tx domain.Tx) error) (release chan struct{}, done chan error) {
			held, release, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
			go func() {
				done <- f.store.InTx(ctx, tm.owner.UserID, func(tx domain.Tx) error {
					defer close(held)
					if _, err := tx.LockCanvas(ctx, c.ID, exclusive); err != nil {
						return err
					}
					if err := fn(tx); err != nil {
						return err
					}
					held <- struct{}{}
					<-release
					return nil
				})
			}()
			<-held
			return release, done
		}
		// waits reports whether call is still running after a while, and
		// returns its result once release lets it finish.
		waits := func(call func() error, release chan struct{}, done chan error) (bool, error) {
			result := make(chan error, 1)
			go func() { result <- call() }()
			waited := true
			select {
			case err := <-result:
				result <- err
				waited = false
			case <-time.After(150 * time.Millisecond):
			}
			close(release)
			require.NoError(t, <-done)
			select {
			case err := <-result:
				return waited, err
			case <-time.After(10 * time.Second):
				t.Fatal("the call never finished")
				return false, nil
			}
		}

		// Another node saving a snapshot holds loads off until it commits;
		// the load then sees the snapshot and the compacted log together.
		release, done := hold(true, func(tx domain.Tx) error {
			return errors.Join(
				tx.PutCanvasSnapshot(ctx, &domain.CanvasSnapshot{ID: uuid.Must(uuid.NewV7()), CanvasID: c.ID,
					Version: domain.CanvasVersion{1: 2}, Data: []byte("S"), CreatedBy: tm.owner.UserID, CreatedAt: f.clock.Now()}),
				tx.CompactCanvasUpdates(ctx, c.ID, domain.CanvasVersion{1: 2}))
		})
		var snap *domain.CanvasSnapshot
		var us []*domain.CanvasUpdate
		waited, err := waits(func() (err error) { snap, us, err = f.svc.LoadCanvas(ctx, tm.viewer.UserID, c.ID); return }, release, done)
		require.NoError(t, err)
		assert.True(t, waited, "the load waited for the snapshot being saved")
		require.NotNil(t, snap)
		assert.Equal(t, []byte("S"), snap.Data)
		assert.Equal(t, []string{"1:3-3"}, log(us))

		// A load in progress holds a snapshot save off.
		release, done = hold(false, func(tx domain.Tx) error { return nil })
		waited, err = waits(func() error {
			return f.svc.SaveCanvasSnapshot(ctx, tm.editor.UserID, c.ID, domain.CanvasVersion{1: 3}, []byte("S2"))
		}, release, done)
		require.NoError(t, err)
		assert.True(t, waited, "the save waited for the load")
	})
}

// TestCanvasWriterRecheck: a demoted editor's writes stop within
// canvasWriterTTL (10 s); until then the checked right is trusted, so a busy
// canvas's batches do not re-read every writer's role.
func TestCanvasWriterRecheck(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		tm := newCanvasTeam(t, f)
		c := tm.canvas(t, f, "Board")
		ed := tm.editor
		require.NoError(t, f.svc.AppendCanvasUpdates(ctx, c.ID, []*domain.CanvasUpdate{entry(c, ed, 10, 1, 1)}))
		_, err := f.svc.ChangeWorkspaceMemberRole(ctx, tm.owner.UserID, tm.ws.ID, ed.UserID, "viewer")
		require.NoError(t, err)
		require.NoError(t, f.svc.AppendCanvasUpdates(ctx, c.ID, []*domain.CanvasUpdate{entry(c, ed, 10, 2, 2)}),
			"within the trust window")
		f.clock.Add(11 * time.Second)
		err = f.svc.AppendCanvasUpdates(ctx, c.ID, []*domain.CanvasUpdate{entry(c, ed, 10, 3, 3)})
		code(t, domain.EForbidden, err)
	})
}
