package storetest

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain"
)

// notificationTests are the NotificationStore contract tests, run by Run.
var notificationTests = []struct {
	name string
	fn   func(t *testing.T, s domain.Store)
}{
	{"NotificationsInbox", testNotificationsInbox},
	{"NotificationsMark", testNotificationsMark},
	{"NotificationsDigest", testNotificationsDigest},
	{"NotificationsPrivacy", testNotificationsPrivacy},
	{"NotificationPreferences", testNotificationPreferences},
	{"ProjectAudience", testProjectAudience},
}

func newNotification(user, actor uuid.UUID, typ string, at time.Time) *domain.Notification {
	return &domain.Notification{
		ID: id(), UserID: user, Type: typ, ActorID: actor, Count: 1,
		Data: json.RawMessage(`{"role":"editor"}`), CreatedAt: at, UpdatedAt: at,
	}
}

func insertNotifications(t *testing.T, s domain.Store, actor uuid.UUID, ns ...*domain.Notification) {
	t.Helper()
	inTx(t, s, actor, func(tx domain.Tx) error { return tx.InsertNotifications(ctx, ns) })
}

func listNotifications(t *testing.T, s domain.Store, f domain.NotificationFilter, limit int) []uuid.UUID {
	t.Helper()
	var ns []*domain.Notification
	inTx(t, s, f.UserID, func(tx domain.Tx) (err error) { ns, err = tx.ListNotifications(ctx, f, limit); return })
	ids := []uuid.UUID{}
	for _, n := range ns {
		ids = append(ids, n.ID)
	}
	return ids
}

func counts(t *testing.T, s domain.Store, actor uuid.UUID, users ...uuid.UUID) map[uuid.UUID]domain.NotificationCounts {
	t.Helper()
	var c map[uuid.UUID]domain.NotificationCounts
	inTx(t, s, actor, func(tx domain.Tx) (err error) { c, err = tx.NotificationCounts(ctx, users); return })
	return c
}

func testNotificationsInbox(t *testing.T, s domain.Store) {
	ann, bob := newUser(t, s, "ann"), newUser(t, s, "bob")
	w := newWorkspace(t, s, ann)
	a := newNotification(bob.ID, ann.ID, "workspace.member.added", now)
	a.WorkspaceID = w.ID
	b := newNotification(bob.ID, ann.ID, "project.member.added", now.Add(time.Second))
	c := newNotification(bob.ID, uuid.Nil, "deployment.failed", now.Add(2*time.Second))
	c.GroupKey = "deployment.failed:x"
	insertNotifications(t, s, ann.ID, a, b)
	insertNotifications(t, s, uuid.Nil, c) // a runner acts for nobody

	var got *domain.Notification
	inTx(t, s, bob.ID, func(tx domain.Tx) (err error) { got, err = tx.Notification(ctx, bob.ID, a.ID); return })
	assert.Equal(t, a, got, "a notification reads back as written")

	all := domain.NotificationFilter{UserID: bob.ID}
	assert.Equal(t, []uuid.UUID{c.ID, b.ID, a.ID}, listNotifications(t, s, all, 0), "newest first")
	assert.Equal(t, []uuid.UUID{c.ID, b.ID}, listNotifications(t, s, all, 2))
	page := all
	page.Before = b.ID
	assert.Equal(t, []uuid.UUID{a.ID}, listNotifications(t, s, page, 2), "Before is exclusive")
	byType := all
	byType.Type = "deployment.failed"
	assert.Equal(t, []uuid.UUID{c.ID}, listNotifications(t, s, byType, 0))
	assert.Equal(t, []uuid.UUID{}, listNotifications(t, s, domain.NotificationFilter{UserID: ann.ID}, 0), "ann's inbox is empty")

	assert.Equal(t, map[uuid.UUID]domain.NotificationCounts{bob.ID: {Unseen: 3, Unread: 3}, ann.ID: {}},
		counts(t, s, ann.ID, bob.ID, ann.ID), "anyone may read counts")

	err := s.InTx(ctx, ann.ID, func(tx domain.Tx) error {
		return tx.InsertNotifications(ctx, []*domain.Notification{newNotification(id(), ann.ID, "x", now)})
	})
	assert.Error(t, err, "a notification for a user who does not exist")
}

func testNotificationsMark(t *testing.T, s domain.Store) {
	bob := newUser(t, s, "bob")
	a := newNotification(bob.ID, uuid.Nil, "t", now)
	b := newNotification(bob.ID, uuid.Nil, "t", now)
	c := newNotification(bob.ID, uuid.Nil, "t", now)
	insertNotifications(t, s, uuid.Nil, a, b, c)
	mark := func(ids []uuid.UUID, st domain.NotificationState, at time.Time) int {
		var n int
		inTx(t, s, bob.ID, func(tx domain.Tx) (err error) { n, err = tx.MarkNotifications(ctx, bob.ID, ids, st, at); return })
		return n
	}
	get := func(n *domain.Notification) *domain.Notification {
		var got *domain.Notification
		inTx(t, s, bob.ID, func(tx domain.Tx) (err error) { got, err = tx.Notification(ctx, bob.ID, n.ID); return })
		return got
	}
	t1, t2, t3 := now.Add(time.Minute), now.Add(2*time.Minute), now.Add(3*time.Minute)

	assert.Equal(t, 1, mark([]uuid.UUID{a.ID}, domain.StateSeen, t1))
	assert.Equal(t, 0, mark([]uuid.UUID{a.ID}, domain.StateSeen, t2), "seen stays at its first time")
	assert.Equal(t, t1, *get(a).SeenAt)
	assert.Nil(t, get(a).ReadAt)
	assert.Equal(t, domain.NotificationCounts{Unseen: 2, Unread: 3}, counts(t, s, bob.ID, bob.ID)[bob.ID])

	assert.Equal(t, 1, mark([]uuid.UUID{b.ID}, domain.StateRead, t2))
	assert.Equal(t, t2, *get(b).ReadAt)
	assert.Equal(t, t2, *get(b).SeenAt, "reading marks seen")
	assert.Equal(t, domain.NotificationCounts{Unseen: 1, Unread: 2}, counts(t, s, bob.ID, bob.ID)[bob.ID])

	unread := domain.NotificationFilter{UserID: bob.ID, Unread: true}
	assert.ElementsMatch(t, []uuid.UUID{a.ID, c.ID}, listNotifications(t, s, unread, 0))

	assert.Equal(t, 1, mark([]uuid.UUID{c.ID}, domain.StateArchived, t3))
	assert.Equal(t, t3, *get(c).ArchivedAt)
	assert.Nil(t, get(c).ReadAt, "archiving is not reading")
	assert.Equal(t, domain.NotificationCounts{Unseen: 0, Unread: 1}, counts(t, s, bob.ID, bob.ID)[bob.ID], "archived ones do not count")
	assert.ElementsMatch(t, []uuid.UUID{a.ID, b.ID}, listNotifications(t, s, domain.NotificationFilter{UserID: bob.ID}, 0))
	assert.Equal(t, []uuid.UUID{c.ID}, listNotifications(t, s, domain.NotificationFilter{UserID: bob.ID, Archived: domain.ArchivedOnly}, 0))
	assert.Len(t, listNotifications(t, s, domain.NotificationFilter{UserID: bob.ID, Archived: domain.ArchivedInclude}, 0), 3)

	assert.Equal(t, 2, mark(nil, domain.StateRead, t3), "all: a and the archived c")
	assert.Equal(t, t1, *get(a).SeenAt, "an earlier seen stays")
	assert.Equal(t, domain.NotificationCounts{}, counts(t, s, bob.ID, bob.ID)[bob.ID])

	boom := errors.New("boom")
	err := s.InTx(ctx, bob.ID, func(tx domain.Tx) error {
		if _, err := tx.MarkNotifications(ctx, bob.ID, nil, domain.StateArchived, t3); err != nil {
			return err
		}
		return boom
	})
	require.ErrorIs(t, err, boom)
	assert.Nil(t, get(a).ArchivedAt, "a rolled back mark leaves nothing")
}

func testNotificationsDigest(t *testing.T, s domain.Store) {
	ann, bob, cat := newUser(t, s, "ann"), newUser(t, s, "bob"), newUser(t, s, "cat")
	const key = "deployment.failed:p"
	first := newNotification(bob.ID, uuid.Nil, "deployment.failed", now)
	first.GroupKey = key
	other := newNotification(bob.ID, uuid.Nil, "deployment.failed", now)
	other.GroupKey = "deployment.failed:q"
	insertNotifications(t, s, uuid.Nil, first, other)

	digest := func(at time.Time, data string, users ...uuid.UUID) []*domain.Notification {
		var out []*domain.Notification
		inTx(t, s, ann.ID, func(tx domain.Tx) (err error) {
			out, err = tx.DigestNotifications(ctx, users, key, at.Add(-15*time.Minute), json.RawMessage(data), ann.ID, at)
			return
		})
		return out
	}
	inTx(t, s, bob.ID, func(tx domain.Tx) error {
		_, err := tx.MarkNotifications(ctx, bob.ID, []uuid.UUID{first.ID}, domain.StateSeen, now)
		return err
	})

	t1 := now.Add(10 * time.Minute)
	got := digest(t1, `{"n":2}`, bob.ID, cat.ID)
	require.Len(t, got, 1, "cat has nothing to group with")
	assert.Equal(t, first.ID, got[0].ID)
	assert.Equal(t, bob.ID, got[0].UserID)
	assert.Equal(t, 2, got[0].Count)
	assert.Equal(t, now, got[0].CreatedAt)
	assert.Equal(t, t1, got[0].UpdatedAt)
	var n *domain.Notification
	inTx(t, s, bob.ID, func(tx domain.Tx) (err error) { n, err = tx.Notification(ctx, bob.ID, first.ID); return })
	assert.JSONEq(t, `{"n":2}`, string(n.Data))
	assert.Equal(t, ann.ID, n.ActorID)
	assert.Equal(t, 2, n.Count)
	assert.Nil(t, n.SeenAt, "a grown digest is new again")
	assert.Equal(t, t1, n.UpdatedAt)

	t2 := t1.Add(14 * time.Minute)
	assert.Len(t, digest(t2, `{"n":3}`, bob.ID), 1, "the window runs from the last update")
	t3 := t2.Add(16 * time.Minute)
	assert.Empty(t, digest(t3, `{"n":4}`, bob.ID), "too late")

	inTx(t, s, bob.ID, func(tx domain.Tx) error {
		_, err := tx.MarkNotifications(ctx, bob.ID, []uuid.UUID{first.ID}, domain.StateRead, t2)
		return err
	})
	assert.Empty(t, digest(t2.Add(time.Minute), `{"n":5}`, bob.ID), "a read digest takes no more")
	inTx(t, s, bob.ID, func(tx domain.Tx) (err error) { n, err = tx.Notification(ctx, bob.ID, other.ID); return })
	assert.Equal(t, 1, n.Count, "other keys are untouched")
}

func testNotificationsPrivacy(t *testing.T, s domain.Store) {
	ann, bob := newUser(t, s, "ann"), newUser(t, s, "bob")
	a := newNotification(bob.ID, ann.ID, "t", now)
	insertNotifications(t, s, ann.ID, a)
	err := s.InTx(ctx, ann.ID, func(tx domain.Tx) error { _, err := tx.Notification(ctx, bob.ID, a.ID); return err })
	code(t, domain.ENotFound, err, "ann cannot read bob's notification")
	var ns []*domain.Notification
	inTx(t, s, ann.ID, func(tx domain.Tx) (err error) {
		ns, err = tx.ListNotifications(ctx, domain.NotificationFilter{UserID: bob.ID}, 0)
		return
	})
	assert.Empty(t, ns, "nor list bob's inbox")
	inTx(t, s, ann.ID, func(tx domain.Tx) error {
		n, err := tx.MarkNotifications(ctx, bob.ID, nil, domain.StateRead, now)
		assert.Zero(t, n, "nor mark it")
		return err
	})
	assert.Equal(t, 1, counts(t, s, bob.ID, bob.ID)[bob.ID].Unread)
}

func testNotificationPreferences(t *testing.T, s domain.Store) {
	ann, bob := newUser(t, s, "ann"), newUser(t, s, "bob")
	prefs := func(u uuid.UUID) map[string]bool {
		var m map[string]bool
		inTx(t, s, u, func(tx domain.Tx) (err error) { m, err = tx.NotificationPreferences(ctx, u); return })
		return m
	}
	put := func(u uuid.UUID, typ string, on bool) {
		inTx(t, s, u, func(tx domain.Tx) error { return tx.PutNotificationPreference(ctx, u, typ, on, now) })
	}
	assert.Empty(t, prefs(bob.ID))
	put(bob.ID, "deployment.failed", true)
	put(bob.ID, "canvas.mention", false)
	put(bob.ID, "canvas.mention", true)
	put(ann.ID, "canvas.mention", false)
	assert.Equal(t, map[string]bool{"deployment.failed": true, "canvas.mention": true}, prefs(bob.ID))

	var set map[uuid.UUID]bool
	inTx(t, s, uuid.Nil, func(tx domain.Tx) (err error) {
		set, err = tx.NotificationSettings(ctx, "canvas.mention", []uuid.UUID{ann.ID, bob.ID, id()})
		return
	})
	assert.Equal(t, map[uuid.UUID]bool{ann.ID: false, bob.ID: true}, set, "settings of several users, for anyone")

	var m map[string]bool
	inTx(t, s, ann.ID, func(tx domain.Tx) (err error) { m, err = tx.NotificationPreferences(ctx, bob.ID); return })
	assert.Empty(t, m, "ann cannot read bob's preferences")
}

func testProjectAudience(t *testing.T, s domain.Store) {
	ann, bob, cat, dan := newUser(t, s, "ann"), newUser(t, s, "bob"), newUser(t, s, "cat"), newUser(t, s, "dan")
	w := newWorkspace(t, s, ann)
	p := newProject(t, s, w, ann.ID, "Site")
	other := newProject(t, s, w, ann.ID, "Other")
	inTx(t, s, ann.ID, func(tx domain.Tx) error {
		for _, err := range []error{
			tx.PutWorkspaceMember(ctx, w.ID, bob.ID, domain.RoleViewer, now),
			tx.PutProjectMember(ctx, p.ID, bob.ID, domain.RoleEditor, now),
			tx.PutProjectMember(ctx, p.ID, cat.ID, domain.RoleViewer, now),
			tx.PutProjectMember(ctx, other.ID, dan.ID, domain.RoleViewer, now),
		} {
			if err != nil {
				return err
			}
		}
		return nil
	})
	var a *domain.Audience
	inTx(t, s, uuid.Nil, func(tx domain.Tx) (err error) { a, err = tx.ProjectAudience(ctx, p.ID); return })
	assert.Equal(t, w.ID, a.WorkspaceID)
	assert.Equal(t, "Site", a.ProjectName)
	assert.ElementsMatch(t, []uuid.UUID{ann.ID, bob.ID, cat.ID}, a.Users, "workspace and project members, once each, even for nobody")
	err := s.InTx(ctx, uuid.Nil, func(tx domain.Tx) error { _, err := tx.ProjectAudience(ctx, id()); return err })
	code(t, domain.ENotFound, err)
}
