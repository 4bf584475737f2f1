package domain_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain"
)

// newService returns another service over f's store and clock (another
// node, or the same one with other settings).
func (f *fixture) newService(t *testing.T, store domain.Store, cfg domain.Config) *domain.Service {
	t.Helper()
	if store == nil {
		store = f.store
	}
	cfg.Now = f.clock.Now
	cfg.Password = domain.PasswordParams{Memory: 64, Time: 1, Threads: 1}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	svc, err := domain.NewService(store, cfg)
	require.NoError(t, err)
	return svc
}

// pending returns the events waiting in the outbox, in order.
func (f *fixture) pending(t *testing.T) []*domain.OutboxEvent {
	t.Helper()
	var evs []*domain.OutboxEvent
	require.NoError(t, f.store.InTx(ctx, uuid.Nil, func(tx domain.Tx) (err error) { evs, err = tx.ClaimOutbox(ctx, 0); return }))
	return evs
}

// clearOutbox deletes every event waiting in the outbox.
func (f *fixture) clearOutbox(t *testing.T) {
	t.Helper()
	require.NoError(t, f.store.InTx(ctx, uuid.Nil, func(tx domain.Tx) error {
		evs, err := tx.ClaimOutbox(ctx, 0)
		if err != nil {
			return err
		}
		var ids []int64
		for _, e := range evs {
			ids = append(ids, e.ID)
		}
		return tx.DeleteOutbox(ctx, ids)
	}))
}

// wantEvent is an event a use case should append: its channel, type and
// complete data.
type wantEvent struct {
	channel, typ string
	data         map[string]any
}

func (w wantEvent) String() string { return w.channel + " " + w.typ }

func checkEvents(t *testing.T, want []wantEvent, got []*domain.OutboxEvent) {
	t.Helper()
	var wantNames, gotNames []string
	for _, w := range want {
		wantNames = append(wantNames, w.String())
	}
	for _, e := range got {
		gotNames = append(gotNames, e.Channel+" "+e.Type)
	}
	require.Equal(t, wantNames, gotNames)
	for i, e := range got {
		ev, err := e.Event()
		require.NoError(t, err)
		if nid, ok := ev.Data["notification_id"].(string); ok && want[i].data["notification_id"] == nil {
			// A notification's event names the inbox row it made.
			_, err := uuid.Parse(nid)
			assert.NoError(t, err, "notification_id of %s", want[i])
			delete(ev.Data, "notification_id")
		}
		assert.Equal(t, want[i].data, ev.Data, "data of %s", want[i])
		assert.Equal(t, "test-corr", ev.CorrelationID, "the request's correlation id")
		assert.Equal(t, e.ID, ev.ID)
		assert.Equal(t, e.Type, ev.Type)
		for k := range ev.Data {
			assert.NotContains(t, k, "email", "events carry no email addresses")
		}
	}
}

// TestUseCaseEvents: each use case appends exactly its events, with their
// data, in the transaction of the change.
func TestUseCaseEvents(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		owner, _ := f.signUp(t, "owner")
		bob, bobEmail := f.signUp(t, "bob")
		carol, carolEmail := f.signUp(t, "carol")
		o, b, c := owner.UserID.String(), bob.UserID.String(), carol.UserID.String()
		svc := f.svc
		ws, err := svc.CreateWorkspace(ctx, owner.UserID, "Acme")
		require.NoError(t, err)
		name := "Site"
		p, err := svc.CreateProject(ctx, owner.UserID, ws.ID, domain.ProjectInput{Name: &name})
		require.NoError(t, err)
		_, err = svc.RenameWorkspace(ctx, owner.UserID, ws.ID, "Acme Inc")
		require.NoError(t, err)
		assert.Empty(t, f.pending(t), "creating and renaming workspaces and creating projects emit nothing")

		pch, wid, pid := "project:"+p.ID.String(), ws.ID.String(), p.ID.String()
		var canvas *domain.Canvas
		var q1, q2 *domain.Project
		for _, step := range []struct {
			name string
			run  func() []wantEvent
		}{
			{"add workspace member", func() []wantEvent {
				_, err := svc.AddWorkspaceMember(ctx, owner.UserID, ws.ID, bobEmail, "editor")
				require.NoError(t, err)
				return []wantEvent{{"notifications:" + b, "workspace.member.added", map[string]any{
					"workspace_id": wid, "workspace_name": "Acme Inc", "role": "editor", "actor_id": o,
					"count": int64(1), "unseen": int64(1), "unread": int64(1)}}}
			}},
			{"change workspace role", func() []wantEvent {
				_, err := svc.ChangeWorkspaceMemberRole(ctx, owner.UserID, ws.ID, bob.UserID, "admin")
				require.NoError(t, err)
				return []wantEvent{{"notifications:" + b, "workspace.member.role_changed", map[string]any{
					"workspace_id": wid, "workspace_name": "Acme Inc", "role": "admin", "previous_role": "editor", "actor_id": o,
					"count": int64(1), "unseen": int64(2), "unread": int64(2)}}}
			}},
			{"update project", func() []wantEvent {
				n := "Renamed"
				up, err := svc.UpdateProject(ctx, bob.UserID, p.ID, domain.ProjectInput{Name: &n})
				require.NoError(t, err)
				return []wantEvent{{pch, "project.updated", map[string]any{
					"project_id": pid, "workspace_id": wid, "name": "Renamed", "description": "",
					"fields": []any{"name"}, "updated_at": up.UpdatedAt.Format(time.RFC3339Nano), "actor_id": b}}}
			}},
			{"add project member", func() []wantEvent {
				_, err := svc.AddProjectMember(ctx, owner.UserID, p.ID, carolEmail, "viewer")
				require.NoError(t, err)
				return []wantEvent{
					{pch, "project.member.added", map[string]any{
						"project_id": pid, "user_id": c, "display_name": "carol", "role": "viewer", "actor_id": o}},
					{"notifications:" + c, "project.member.added", map[string]any{
						"project_id": pid, "project_name": "Renamed", "workspace_id": wid, "role": "viewer", "actor_id": o,
						"count": int64(1), "unseen": int64(1), "unread": int64(1)}},
				}
			}},
			{"change project role", func() []wantEvent {
				_, err := svc.ChangeProjectMemberRole(ctx, owner.UserID, p.ID, carol.UserID, "editor")
				require.NoError(t, err)
				return []wantEvent{
					{pch, "project.member.role_changed", map[string]any{
						"project_id": pid, "user_id": c, "role": "editor", "previous_role": "viewer", "actor_id": o}},
					{"notifications:" + c, "project.member.role_changed", map[string]any{
						"project_id": pid, "project_name": "Renamed", "workspace_id": wid, "role": "editor", "previous_role": "viewer", "actor_id": o,
						"count": int64(1), "unseen": int64(2), "unread": int64(2)}},
				}
			}},
			{"create canvas", func() []wantEvent {
				canvas, err = svc.CreateCanvas(ctx, carol.UserID, p.ID, "Board")
				require.NoError(t, err)
				return []wantEvent{{pch, "canvas.created", map[string]any{
					"canvas_id": canvas.ID.String(), "project_id": pid, "name": "Board", "actor_id": c}}}
			}},
			{"rename canvas", func() []wantEvent {
				_, err := svc.RenameCanvas(ctx, carol.UserID, canvas.ID, "Wall")
				require.NoError(t, err)
				return []wantEvent{{pch, "canvas.renamed", map[string]any{
					"canvas_id": canvas.ID.String(), "project_id": pid, "name": "Wall", "previous_name": "Board", "actor_id": c}}}
			}},
			{"delete canvas", func() []wantEvent {
				require.NoError(t, svc.DeleteCanvas(ctx, bob.UserID, canvas.ID))
				return []wantEvent{{pch, "canvas.deleted", map[string]any{
					"canvas_id": canvas.ID.String(), "project_id": pid, "name": "Wall", "actor_id": b}}}
			}},
			{"remove project member", func() []wantEvent {
				require.NoError(t, svc.RemoveProjectMember(ctx, carol.UserID, p.ID, carol.UserID))
				return []wantEvent{{pch, "project.member.removed", map[string]any{
					"project_id": pid, "user_id": c, "role": "editor", "actor_id": c}}}
			}},
			{"delete project", func() []wantEvent {
				require.NoError(t, svc.DeleteProject(ctx, owner.UserID, p.ID))
				return []wantEvent{{pch, "project.deleted", map[string]any{"project_id": pid, "workspace_id": wid, "actor_id": o}}}
			}},
			{"more projects", func() []wantEvent {
				q1, err = svc.CreateProject(ctx, owner.UserID, ws.ID, domain.ProjectInput{Name: &name})
				require.NoError(t, err)
				q2, err = svc.CreateProject(ctx, owner.UserID, ws.ID, domain.ProjectInput{Name: &name})
				require.NoError(t, err)
				return nil
			}},
			{"delete workspace", func() []wantEvent {
				require.NoError(t, svc.DeleteWorkspace(ctx, owner.UserID, ws.ID))
				var out []wantEvent
				for _, q := range []*domain.Project{q1, q2} {
					out = append(out, wantEvent{"project:" + q.ID.String(), "project.deleted", map[string]any{
						"project_id": q.ID.String(), "workspace_id": wid, "reason": "workspace.deleted", "actor_id": o}})
				}
				return out
			}},
		} {
			f.clearOutbox(t)
			want := step.run()
			t.Run(step.name, func(t *testing.T) { checkEvents(t, want, f.pending(t)) })
		}
	})
}

// failingStore is a store whose transactions fail to append audit events:
// a use case fails after it has appended its events.
type failingStore struct{ domain.Store }

var errAudit = errors.New("audit store down")

func (s failingStore) InTx(ctx context.Context, actor uuid.UUID, fn func(domain.Tx) error) error {
	return s.Store.InTx(ctx, actor, func(tx domain.Tx) error { return fn(failingTx{tx}) })
}

type failingTx struct{ domain.Tx }

func (failingTx) AppendAudit(context.Context, *domain.AuditEvent) error { return errAudit }

// TestFailedUseCaseEmitsNothing: a refused use case appends no event, and
// one that fails after appending leaves none behind.
func TestFailedUseCaseEmitsNothing(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		owner, _ := f.signUp(t, "owner")
		viewer, viewerEmail := f.signUp(t, "viewer")
		_, guestEmail := f.signUp(t, "guest")
		ws, err := f.svc.CreateWorkspace(ctx, owner.UserID, "Acme")
		require.NoError(t, err)
		name := "Site"
		p, err := f.svc.CreateProject(ctx, owner.UserID, ws.ID, domain.ProjectInput{Name: &name})
		require.NoError(t, err)
		_, err = f.svc.AddWorkspaceMember(ctx, owner.UserID, ws.ID, viewerEmail, "viewer")
		require.NoError(t, err)
		f.clearOutbox(t)

		renamed := "Renamed"
		_, err = f.svc.UpdateProject(ctx, viewer.UserID, p.ID, domain.ProjectInput{Name: &renamed})
		code(t, domain.EForbidden, err)
		_, err = f.svc.AddProjectMember(ctx, owner.UserID, p.ID, viewerEmail, "no-such-role")
		code(t, domain.EInvalid, err)
		_, err = f.svc.ChangeWorkspaceMemberRole(ctx, owner.UserID, ws.ID, owner.UserID, "viewer")
		code(t, domain.EConflict, err) // the last owner
		assert.Empty(t, f.pending(t), "refused use cases emit nothing")

		broken := f.newService(t, failingStore{f.store}, domain.Config{})
		_, err = broken.UpdateProject(ctx, owner.UserID, p.ID, domain.ProjectInput{Name: &renamed})
		require.ErrorIs(t, err, errAudit)
		_, err = broken.AddProjectMember(ctx, owner.UserID, p.ID, guestEmail, "editor")
		require.ErrorIs(t, err, errAudit)
		require.ErrorIs(t, broken.DeleteWorkspace(ctx, owner.UserID, ws.ID), errAudit)
		assert.Empty(t, f.pending(t), "events appended before the failure are rolled back with the change")
		got, err := f.svc.GetProject(ctx, owner.UserID, p.ID)
		require.NoError(t, err)
		assert.Equal(t, "Site", got.Name)
	})
}

// fakePublisher records what the relay publishes; fail, if set, decides
// which calls fail.
type fakePublisher struct {
	mu    sync.Mutex
	got   []published
	calls int
	fail  func(call int, channel string, e *domain.Event) error
}

type published struct {
	channel string
	event   *domain.Event
}

func (p *fakePublisher) PublishEvent(_ context.Context, ch string, e *domain.Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if p.fail != nil {
		if err := p.fail(p.calls, ch, e); err != nil {
			return err
		}
	}
	p.got = append(p.got, published{ch, e})
	return nil
}

func (p *fakePublisher) published() []published {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.got)
}

// wait waits until p has published n events and returns them.
func (p *fakePublisher) wait(t *testing.T, n int, within time.Duration) []published {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := p.published()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("published %d events of %d within %s", len(got), n, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// runRelay runs svc's relay to p until the test ends.
func runRelay(t *testing.T, svc *domain.Service, p domain.Publisher) {
	t.Helper()
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { svc.RunOutbox(rctx, p); close(done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("RunOutbox did not return after its context ended")
		}
	})
}

func names(ps []published) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.channel+" "+p.event.Type)
	}
	return out
}

// appendRaw appends events straight to the store, as another node's use
// cases would: nothing wakes this node's relay.
func (f *fixture) appendRaw(t *testing.T, evs ...*domain.OutboxEvent) {
	t.Helper()
	require.NoError(t, f.store.InTx(ctx, uuid.Nil, func(tx domain.Tx) error {
		for _, e := range evs {
			if err := tx.AppendOutbox(ctx, e); err != nil {
				return err
			}
		}
		return nil
	}))
}

func rawEvent(ch string, n int) *domain.OutboxEvent {
	return &domain.OutboxEvent{Channel: ch, Type: "test.event", Payload: fmt.Appendf(nil, `{"n": %d, "f": 1.5, "l": [1, "x"]}`, n), CreatedAt: time.Now()}
}

// TestRelayPublishesInOrder: the relay wakes when a use case commits,
// publishes its events in order and deletes them.
func TestRelayPublishesInOrder(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		owner, _ := f.signUp(t, "owner")
		bob, bobEmail := f.signUp(t, "bob")
		// The poll is too slow to matter: only the wake-up can deliver in time.
		svc := f.newService(t, nil, domain.Config{OutboxPoll: time.Hour})
		ws, err := svc.CreateWorkspace(ctx, owner.UserID, "Acme")
		require.NoError(t, err)
		name := "Site"
		p, err := svc.CreateProject(ctx, owner.UserID, ws.ID, domain.ProjectInput{Name: &name})
		require.NoError(t, err)

		pub := &fakePublisher{}
		runRelay(t, svc, pub)
		time.Sleep(50 * time.Millisecond) // the relay's first round finds nothing and waits

		_, err = svc.AddProjectMember(ctx, owner.UserID, p.ID, bobEmail, "viewer")
		require.NoError(t, err)
		got := pub.wait(t, 2, 5*time.Second)
		var cs []*domain.Canvas
		for i := range 3 {
			c, err := svc.CreateCanvas(ctx, owner.UserID, p.ID, fmt.Sprintf("C%d", i))
			require.NoError(t, err)
			cs = append(cs, c)
		}
		n := "Renamed"
		_, err = svc.UpdateProject(ctx, owner.UserID, p.ID, domain.ProjectInput{Name: &n})
		require.NoError(t, err)
		got = pub.wait(t, 6, 5*time.Second)

		pch := "project:" + p.ID.String()
		assert.Equal(t, []string{
			pch + " project.member.added", "notifications:" + bob.UserID.String() + " project.member.added",
			pch + " canvas.created", pch + " canvas.created", pch + " canvas.created", pch + " project.updated",
		}, names(got))
		for i, c := range cs {
			assert.Equal(t, c.ID.String(), got[2+i].event.Data["canvas_id"], "canvases in creation order")
		}
		for i, g := range got {
			assert.Equal(t, "test-corr", g.event.CorrelationID)
			assert.Equal(t, f.clock.Now().UnixMilli(), g.event.At)
			if i > 0 {
				assert.Greater(t, g.event.ID, got[i-1].event.ID, "published in id order")
			}
		}
		require.Eventually(t, func() bool { return len(f.pending(t)) == 0 }, 5*time.Second, 10*time.Millisecond,
			"published events are deleted")
		time.Sleep(50 * time.Millisecond)
		assert.Len(t, pub.published(), 6, "each event once")
	})
}

// TestRelayPolls: events nobody woke this relay for (another node's) go out
// at the next poll.
func TestRelayPolls(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		svc := f.newService(t, nil, domain.Config{OutboxPoll: 20 * time.Millisecond})
		pub := &fakePublisher{}
		runRelay(t, svc, pub)
		time.Sleep(50 * time.Millisecond)
		f.appendRaw(t, rawEvent("project:a", 1), rawEvent("project:a", 2))
		got := pub.wait(t, 2, 5*time.Second)
		assert.Equal(t, int64(1), got[0].event.Data["n"])
		assert.Equal(t, int64(2), got[1].event.Data["n"])
		assert.Equal(t, 1.5, got[0].event.Data["f"], "numbers come back as int64 or float64")
		assert.Equal(t, []any{int64(1), "x"}, got[0].event.Data["l"])
	})
}

// TestRelayRetries: while publishing fails, the relay keeps the events and
// tries again; every event gets out, in order.
func TestRelayRetries(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		svc := f.newService(t, nil, domain.Config{OutboxPoll: time.Hour, OutboxRetry: 5 * time.Millisecond, OutboxRetryMax: 20 * time.Millisecond, OutboxBatch: 4})
		var evs []*domain.OutboxEvent
		for i := range 10 {
			evs = append(evs, rawEvent(fmt.Sprintf("project:%d", i%2), i))
		}
		f.appendRaw(t, evs...)
		// The broker refuses event 2 (mid-batch) twice and event 7 three
		// times, taking the others.
		tries := map[int64]int{}
		pub := &fakePublisher{fail: func(_ int, _ string, e *domain.Event) error {
			n := e.Data["n"].(int64)
			tries[n]++
			if (n == 2 && tries[n] <= 2) || (n == 7 && tries[n] <= 3) {
				return domain.Errorf(domain.EUnavailable, "broker down")
			}
			return nil
		}}
		runRelay(t, svc, pub)
		got := pub.wait(t, 10, 10*time.Second)
		require.Eventually(t, func() bool { return len(f.pending(t)) == 0 }, 5*time.Second, 10*time.Millisecond)

		var ids []int64
		seen := map[int64]bool{}
		for _, g := range got {
			if !seen[g.event.ID] { // at least once: repeats are allowed, gaps are not
				seen[g.event.ID] = true
				ids = append(ids, g.event.ID)
			}
		}
		var want []int64
		for _, e := range evs {
			want = append(want, e.ID)
		}
		assert.Equal(t, want, ids, "every event, first published in order")
		pub.mu.Lock()
		assert.Equal(t, 15, pub.calls, "each failed call was retried, and nothing published twice")
		pub.mu.Unlock()
	})
}

// TestRelayDropsUnpublishable: an event the publisher refuses for good is
// dropped, and does not hold up the others.
func TestRelayDropsUnpublishable(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		svc := f.newService(t, nil, domain.Config{OutboxPoll: time.Hour})
		f.appendRaw(t, rawEvent("project:a", 1), rawEvent("bogus:x", 2), rawEvent("project:a", 3))
		pub := &fakePublisher{fail: func(_ int, ch string, _ *domain.Event) error {
			if strings.HasPrefix(ch, "bogus:") {
				return domain.Errorf(domain.EInvalid, "Unknown channel.")
			}
			return nil
		}}
		runRelay(t, svc, pub)
		got := pub.wait(t, 2, 5*time.Second)
		assert.Equal(t, []string{"project:a test.event", "project:a test.event"}, names(got))
		require.Eventually(t, func() bool { return len(f.pending(t)) == 0 }, 5*time.Second, 10*time.Millisecond)
	})
}

// TestRelaysOfSeveralNodes: two nodes' relays over one store publish every
// event exactly once between them, each in id order.
func TestRelaysOfSeveralNodes(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		var evs []*domain.OutboxEvent
		for i := range 60 {
			evs = append(evs, rawEvent(fmt.Sprintf("project:%d", i%4), i))
		}
		f.appendRaw(t, evs...)
		slow := func(int, string, *domain.Event) error { time.Sleep(time.Millisecond); return nil }
		pubs := []*fakePublisher{{fail: slow}, {fail: slow}}
		for _, p := range pubs {
			runRelay(t, f.newService(t, nil, domain.Config{OutboxBatch: 5, OutboxPoll: 10 * time.Millisecond}), p)
		}
		require.Eventually(t, func() bool { return len(pubs[0].published())+len(pubs[1].published()) >= 60 },
			10*time.Second, 10*time.Millisecond)
		time.Sleep(50 * time.Millisecond)
		var all []int64
		for _, p := range pubs {
			var ids []int64
			for _, g := range p.published() {
				ids = append(ids, g.event.ID)
			}
			assert.True(t, slices.IsSorted(ids), "each relay publishes in id order")
			all = append(all, ids...)
		}
		slices.Sort(all)
		var want []int64
		for _, e := range evs {
			want = append(want, e.ID)
		}
		assert.Equal(t, want, all, "every event exactly once")
		assert.Empty(t, f.pending(t))
	})
}
