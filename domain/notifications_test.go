package domain_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain"
)

func (f *fixture) inbox(t *testing.T, user uuid.UUID, opt domain.NotificationListOptions) []*domain.Notification {
	t.Helper()
	ns, _, err := f.svc.ListNotifications(ctx, user, opt)
	require.NoError(t, err)
	return ns
}

func (f *fixture) counts(t *testing.T, user uuid.UUID) domain.NotificationCounts {
	t.Helper()
	c, err := f.svc.NotificationCounts(ctx, user)
	require.NoError(t, err)
	return c
}

// notifyProject delivers a notification of a project as a deployment
// runner does: in a transaction acting for nobody.
func (f *fixture) notifyProject(t *testing.T, project uuid.UUID, typ string, data map[string]any) {
	t.Helper()
	require.NoError(t, f.store.InTx(ctx, uuid.Nil, func(tx domain.Tx) error {
		return f.svc.NotifyProject(ctx, tx, uuid.Nil, project, typ, data)
	}))
}

// TestNotificationInbox: member use cases fill the inbox; seen, read and
// archived move independently and the counts follow.
func TestNotificationInbox(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		owner, _ := f.signUp(t, "owner")
		bob, bobEmail := f.signUp(t, "bob")
		ws, err := f.svc.CreateWorkspace(ctx, owner.UserID, "Acme")
		require.NoError(t, err)
		name := "Site"
		p, err := f.svc.CreateProject(ctx, owner.UserID, ws.ID, domain.ProjectInput{Name: &name})
		require.NoError(t, err)
		_, err = f.svc.AddWorkspaceMember(ctx, owner.UserID, ws.ID, bobEmail, "viewer")
		require.NoError(t, err)
		f.clock.Add(time.Second)
		_, err = f.svc.ChangeWorkspaceMemberRole(ctx, owner.UserID, ws.ID, bob.UserID, "editor")
		require.NoError(t, err)
		f.clock.Add(time.Second)
		_, err = f.svc.AddProjectMember(ctx, owner.UserID, p.ID, bobEmail, "admin")
		require.NoError(t, err)

		ns := f.inbox(t, bob.UserID, domain.NotificationListOptions{})
		require.Len(t, ns, 3)
		assert.Equal(t, []string{"project.member.added", "workspace.member.role_changed", "workspace.member.added"},
			[]string{ns[0].Type, ns[1].Type, ns[2].Type}, "newest first")
		added := ns[2]
		assert.Equal(t, ws.ID, added.WorkspaceID)
		assert.Equal(t, owner.UserID, added.ActorID)
		assert.JSONEq(t, `{"workspace_id":"`+ws.ID.String()+`","workspace_name":"Acme","role":"viewer"}`, string(added.Data))
		assert.Equal(t, p.ID, ns[0].ProjectID)
		assert.Empty(t, f.inbox(t, owner.UserID, domain.NotificationListOptions{}), "actors are not notified of their doing")
		assert.Equal(t, domain.NotificationCounts{Unseen: 3, Unread: 3}, f.counts(t, bob.UserID))

		page1, next, err := f.svc.ListNotifications(ctx, bob.UserID, domain.NotificationListOptions{ListOptions: domain.ListOptions{Limit: 2}})
		require.NoError(t, err)
		require.NotEmpty(t, next)
		page2, last, err := f.svc.ListNotifications(ctx, bob.UserID, domain.NotificationListOptions{ListOptions: domain.ListOptions{Limit: 2, Cursor: next}})
		require.NoError(t, err)
		assert.Empty(t, last)
		assert.Equal(t, ns, append(page1, page2...), "pages follow one another")

		_, err = f.svc.MarkAllNotifications(ctx, bob.UserID, domain.StateSeen)
		require.NoError(t, err)
		assert.Equal(t, domain.NotificationCounts{Unseen: 0, Unread: 3}, f.counts(t, bob.UserID))
		n, err := f.svc.MarkNotification(ctx, bob.UserID, added.ID, domain.StateRead)
		require.NoError(t, err)
		assert.NotNil(t, n.ReadAt)
		assert.Nil(t, n.ArchivedAt)
		assert.Equal(t, domain.NotificationCounts{Unseen: 0, Unread: 2}, f.counts(t, bob.UserID))
		unread := f.inbox(t, bob.UserID, domain.NotificationListOptions{Unread: true})
		assert.Len(t, unread, 2)
		n, err = f.svc.MarkNotification(ctx, bob.UserID, ns[0].ID, domain.StateArchived)
		require.NoError(t, err)
		assert.NotNil(t, n.ArchivedAt)
		assert.Nil(t, n.ReadAt, "archiving does not read")
		assert.Equal(t, domain.NotificationCounts{Unseen: 0, Unread: 1}, f.counts(t, bob.UserID))
		assert.Len(t, f.inbox(t, bob.UserID, domain.NotificationListOptions{}), 2)
		archived := f.inbox(t, bob.UserID, domain.NotificationListOptions{Archived: domain.ArchivedOnly})
		require.Len(t, archived, 1)
		assert.Equal(t, ns[0].ID, archived[0].ID)
		byType := f.inbox(t, bob.UserID, domain.NotificationListOptions{Type: "workspace.member.role_changed"})
		require.Len(t, byType, 1)
		c, err := f.svc.MarkAllNotifications(ctx, bob.UserID, domain.StateRead)
		require.NoError(t, err)
		assert.Equal(t, domain.NotificationCounts{}, c)

		_, err = f.svc.MarkNotification(ctx, owner.UserID, added.ID, domain.StateRead)
		code(t, domain.ENotFound, err)
		_, err = f.svc.MarkAllNotifications(ctx, bob.UserID, domain.StateArchived)
		code(t, domain.EInvalid, err)
		_, _, err = f.svc.ListNotifications(ctx, bob.UserID, domain.NotificationListOptions{Type: "nope"})
		code(t, domain.EInvalid, err)
		assert.Contains(t, f.auditActions(t, domain.AuditFilter{ActorID: bob.UserID}, bob.UserID), "notification.mark:success")
	})
}

// TestNotificationPreferences: deployment results are opt in, types can be
// turned off, critical ones cannot and are delivered regardless.
func TestNotificationPreferences(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		owner, _ := f.signUp(t, "owner")
		bob, bobEmail := f.signUp(t, "bob")
		cat, catEmail := f.signUp(t, "cat")
		ws, err := f.svc.CreateWorkspace(ctx, owner.UserID, "Acme")
		require.NoError(t, err)
		name := "Site"
		p, err := f.svc.CreateProject(ctx, owner.UserID, ws.ID, domain.ProjectInput{Name: &name})
		require.NoError(t, err)

		prefs, err := f.svc.NotificationPreferences(ctx, bob.UserID)
		require.NoError(t, err)
		byName := map[string]domain.NotificationPreference{}
		for _, pr := range prefs {
			byName[pr.Name] = pr
		}
		assert.False(t, byName[domain.NotifyDeploymentFailed].Enabled, "deployment results are opt in")
		assert.True(t, byName[domain.NotifyWorkspaceMemberAdded].Enabled)
		assert.True(t, byName[domain.NotifyWorkspaceMemberRoleChanged].Critical)

		_, err = f.svc.SetNotificationPreferences(ctx, bob.UserID, map[string]bool{
			domain.NotifyWorkspaceMemberAdded: false, domain.NotifyDeploymentFailed: true,
		})
		require.NoError(t, err)
		_, err = f.svc.SetNotificationPreferences(ctx, bob.UserID, map[string]bool{
			domain.NotifyDeploymentSucceeded: true, domain.NotifyWorkspaceMemberRoleChanged: false,
		})
		code(t, domain.EInvalid, err)
		_, err = f.svc.SetNotificationPreferences(ctx, bob.UserID, map[string]bool{"nope": true})
		code(t, domain.EInvalid, err)
		prefs, err = f.svc.NotificationPreferences(ctx, bob.UserID)
		require.NoError(t, err)
		for _, pr := range prefs {
			want := map[string]bool{domain.NotifyWorkspaceMemberAdded: false, domain.NotifyDeploymentFailed: true,
				domain.NotifyDeploymentSucceeded: false}
			if w, ok := want[pr.Name]; ok {
				assert.Equal(t, w, pr.Enabled, "%s (a refused request changed nothing)", pr.Name)
			}
		}

		_, err = f.svc.AddWorkspaceMember(ctx, owner.UserID, ws.ID, bobEmail, "viewer")
		require.NoError(t, err)
		_, err = f.svc.AddWorkspaceMember(ctx, owner.UserID, ws.ID, catEmail, "viewer")
		require.NoError(t, err)
		assert.Empty(t, f.inbox(t, bob.UserID, domain.NotificationListOptions{}), "bob turned additions off")
		assert.Len(t, f.inbox(t, cat.UserID, domain.NotificationListOptions{}), 1, "cat did not")
		_, err = f.svc.ChangeWorkspaceMemberRole(ctx, owner.UserID, ws.ID, bob.UserID, "editor")
		require.NoError(t, err)
		assert.Len(t, f.inbox(t, bob.UserID, domain.NotificationListOptions{}), 1, "role changes are critical")

		f.notifyProject(t, p.ID, domain.NotifyDeploymentFailed, map[string]any{"deployment_id": "d1"})
		got := f.inbox(t, bob.UserID, domain.NotificationListOptions{Type: domain.NotifyDeploymentFailed})
		require.Len(t, got, 1, "bob opted in")
		assert.Equal(t, uuid.Nil, got[0].ActorID, "a runner is no user")
		assert.JSONEq(t, `{"deployment_id":"d1","project_id":"`+p.ID.String()+`","project_name":"Site"}`, string(got[0].Data))
		assert.Empty(t, f.inbox(t, cat.UserID, domain.NotificationListOptions{Type: domain.NotifyDeploymentFailed}), "cat did not")
		assert.Empty(t, f.inbox(t, owner.UserID, domain.NotificationListOptions{}), "nor did the owner")
	})
}

// TestNotificationDigest: similar notifications of one project within the
// window update one row; another project, a read digest or a late one
// start a new row.
func TestNotificationDigest(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		owner, _ := f.signUp(t, "owner")
		ws, err := f.svc.CreateWorkspace(ctx, owner.UserID, "Acme")
		require.NoError(t, err)
		name := "Site"
		p, err := f.svc.CreateProject(ctx, owner.UserID, ws.ID, domain.ProjectInput{Name: &name})
		require.NoError(t, err)
		q, err := f.svc.CreateProject(ctx, owner.UserID, ws.ID, domain.ProjectInput{Name: &name})
		require.NoError(t, err)
		_, err = f.svc.SetNotificationPreferences(ctx, owner.UserID, map[string]bool{domain.NotifyDeploymentFailed: true})
		require.NoError(t, err)
		f.clearOutbox(t)

		for i := range 5 {
			f.notifyProject(t, p.ID, domain.NotifyDeploymentFailed, map[string]any{"deployment_id": i})
			f.clock.Add(time.Minute)
		}
		f.notifyProject(t, q.ID, domain.NotifyDeploymentFailed, map[string]any{"deployment_id": 9})
		ns := f.inbox(t, owner.UserID, domain.NotificationListOptions{})
		require.Len(t, ns, 2)
		digest := ns[1]
		assert.Equal(t, p.ID, digest.ProjectID)
		assert.Equal(t, 5, digest.Count, "five failures, one row")
		var data map[string]any
		require.NoError(t, json.Unmarshal(digest.Data, &data))
		assert.Equal(t, float64(4), data["deployment_id"], "the latest one's data")
		assert.Equal(t, 1, ns[0].Count)
		assert.Equal(t, domain.NotificationCounts{Unseen: 2, Unread: 2}, f.counts(t, owner.UserID))

		evs := f.pending(t)
		require.Len(t, evs, 6, "each one is pushed")
		ev, err := evs[4].Event()
		require.NoError(t, err)
		assert.Equal(t, "notifications:"+owner.UserID.String(), evs[4].Channel)
		assert.Equal(t, domain.NotifyDeploymentFailed, ev.Type)
		assert.Equal(t, int64(5), ev.Data["count"])
		assert.Equal(t, digest.ID.String(), ev.Data["notification_id"])
		assert.Equal(t, int64(1), ev.Data["unread"])

		_, err = f.svc.MarkNotification(ctx, owner.UserID, digest.ID, domain.StateRead)
		require.NoError(t, err)
		f.notifyProject(t, p.ID, domain.NotifyDeploymentFailed, nil)
		assert.Len(t, f.inbox(t, owner.UserID, domain.NotificationListOptions{}), 3, "a read digest takes no more")
		f.clock.Add(domain.DigestWindow + time.Second)
		f.notifyProject(t, p.ID, domain.NotifyDeploymentFailed, nil)
		assert.Len(t, f.inbox(t, owner.UserID, domain.NotificationListOptions{}), 4, "after the window, a new row")
	})
}

// TestNotificationRollback: a use case that fails after notifying leaves
// no notification behind.
func TestNotificationRollback(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		owner, _ := f.signUp(t, "owner")
		bob, bobEmail := f.signUp(t, "bob")
		ws, err := f.svc.CreateWorkspace(ctx, owner.UserID, "Acme")
		require.NoError(t, err)
		failing := f.newService(t, failingStore{f.store}, domain.Config{})
		_, err = failing.AddWorkspaceMember(ctx, owner.UserID, ws.ID, bobEmail, "viewer")
		require.ErrorIs(t, err, errAudit)
		assert.Empty(t, f.inbox(t, bob.UserID, domain.NotificationListOptions{}))
		assert.Equal(t, domain.NotificationCounts{}, f.counts(t, bob.UserID))
	})
}

// TestDeploymentNotifications: a runner's reports notify the project's
// members who opted in, naming no actor; failures of one project group
// into a digest.
func TestDeploymentNotifications(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		tm := newDeployTeam(t, f)
		_, err := f.svc.SetNotificationPreferences(ctx, tm.viewer.UserID, map[string]bool{
			domain.NotifyDeploymentFailed: true, domain.NotifyDeploymentSucceeded: true,
		})
		require.NoError(t, err)
		for range 3 {
			d := tm.deploy(t, f)
			_, err := f.svc.Report(ctx, tm.runner, d.ID, domain.DeploymentReport{State: domain.DeployFailed, Reason: "tests failed"})
			require.NoError(t, err)
			f.clock.Add(time.Minute)
		}
		d := tm.deploy(t, f)
		for _, st := range pathTo[domain.DeployReady] {
			_, err := f.svc.Report(ctx, tm.runner, d.ID, domain.DeploymentReport{State: st})
			require.NoError(t, err)
		}
		ns := append(f.inbox(t, tm.viewer.UserID, domain.NotificationListOptions{Type: domain.NotifyDeploymentSucceeded}),
			f.inbox(t, tm.viewer.UserID, domain.NotificationListOptions{Type: domain.NotifyDeploymentFailed})...)
		require.Len(t, ns, 2)
		assert.Equal(t, 1, ns[0].Count)
		assert.Equal(t, 3, ns[1].Count, "three failures, one digest")
		assert.Equal(t, uuid.Nil, ns[1].ActorID, "a runner is no user")
		assert.Equal(t, tm.project.ID, ns[1].ProjectID)
		var data map[string]any
		require.NoError(t, json.Unmarshal(ns[1].Data, &data))
		assert.Equal(t, "tests failed", data["reason"])
		assert.Equal(t, "production", data["environment"])
		assert.NotEmpty(t, data["project_name"])
		for _, u := range []uuid.UUID{tm.owner.UserID, tm.editor.UserID} {
			assert.Empty(t, f.inbox(t, u, domain.NotificationListOptions{Type: domain.NotifyDeploymentFailed}), "not opted in")
		}
	})
}

// TestConcurrentDigests: deployments of one project failing at the same
// moment grow the same members' digests at once; neither waits for the
// other in a circle, and every failure is counted.
func TestConcurrentDigests(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		owner, _ := f.signUp(t, "owner")
		ws, err := f.svc.CreateWorkspace(ctx, owner.UserID, "Acme")
		require.NoError(t, err)
		name := "Site"
		p, err := f.svc.CreateProject(ctx, owner.UserID, ws.ID, domain.ProjectInput{Name: &name})
		require.NoError(t, err)
		// Members straight into the store: signing up is slow.
		const members = 300
		users := make([]uuid.UUID, members)
		require.NoError(t, f.store.InTx(ctx, owner.UserID, func(tx domain.Tx) error {
			for i := range users {
				u := &domain.User{ID: uuid.Must(uuid.NewV7()), Email: uuid.NewString() + "@example.com", PasswordHash: "x",
					DisplayName: "m", Preferences: []byte(`{}`), CreatedAt: f.clock.Now(), UpdatedAt: f.clock.Now()}
				if err := tx.CreateUser(ctx, u); err != nil {
					return err
				}
				if err := tx.PutWorkspaceMember(ctx, ws.ID, u.ID, domain.RoleViewer, f.clock.Now()); err != nil {
					return err
				}
				users[i] = u.ID
			}
			return nil
		}))
		for _, u := range users {
			require.NoError(t, f.store.InTx(ctx, u, func(tx domain.Tx) error {
				return tx.PutNotificationPreference(ctx, u, domain.NotifyDeploymentFailed, true, f.clock.Now())
			}))
		}
		f.notifyProject(t, p.ID, domain.NotifyDeploymentFailed, nil) // every member has a digest now
		const rounds, parallel = 4, 4
		for range rounds {
			errs := make(chan error, parallel)
			for range parallel {
				go func() {
					errs <- f.store.InTx(ctx, uuid.Nil, func(tx domain.Tx) error {
						return f.svc.NotifyProject(ctx, tx, uuid.Nil, p.ID, domain.NotifyDeploymentFailed, nil)
					})
				}()
			}
			for range parallel {
				require.NoError(t, <-errs)
			}
		}
		for _, u := range users[:5] {
			ns := f.inbox(t, u, domain.NotificationListOptions{})
			require.Len(t, ns, 1)
			assert.Equal(t, 1+rounds*parallel, ns[0].Count, "every failure counted")
		}
	})
}
