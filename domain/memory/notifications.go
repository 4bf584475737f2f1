package memory

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/tone-ai/tone/domain"
)

// notificationData is the part of the store holding inboxes. Like the
// PostgreSQL store, a transaction lists and marks only the notifications
// of the user it acts for.
type notificationData struct {
	notifications map[uuid.UUID]*domain.Notification // by id
	inboxes       map[uuid.UUID][]uuid.UUID          // per user, ids in insertion order
	notifyPrefs   map[prefKey]bool
}

type prefKey struct {
	user uuid.UUID
	typ  string
}

func newNotificationData() notificationData {
	return notificationData{
		notifications: map[uuid.UUID]*domain.Notification{},
		inboxes:       map[uuid.UUID][]uuid.UUID{},
		notifyPrefs:   map[prefKey]bool{},
	}
}

func cloneNotification(n *domain.Notification) *domain.Notification {
	c := clone(n)
	c.Data = bytes.Clone(n.Data)
	return c
}

func (t *tx) InsertNotifications(_ context.Context, ns []*domain.Notification) error {
	for _, n := range ns {
		p := bytes.TrimSpace(n.Data)
		switch {
		case n.Type == "" || n.Count < 1:
			return fmt.Errorf("memory: notification needs a type and a positive count")
		case len(p) == 0 || p[0] != '{' || !json.Valid(p):
			return fmt.Errorf("memory: notification data is not a JSON object")
		case t.s.users[n.UserID] == nil:
			return fmt.Errorf("memory: notification for unknown user %s", n.UserID)
		case t.s.notifications[n.ID] != nil:
			return domain.Errorf(domain.EConflict, "Notification already exists.")
		}
		set(t, t.s.notifications, n.ID, cloneNotification(n))
		set(t, t.s.inboxes, n.UserID, append(slices.Clip(t.s.inboxes[n.UserID]), n.ID))
	}
	return nil
}

func (t *tx) DigestNotifications(_ context.Context, users []uuid.UUID, key string, since time.Time,
	data json.RawMessage, actor uuid.UUID, now time.Time) ([]*domain.Notification, error) {
	var out []*domain.Notification
	if key == "" {
		return nil, nil
	}
	for _, u := range users {
		var best *domain.Notification
		for _, id := range t.s.inboxes[u] {
			n := t.s.notifications[id]
			if n.GroupKey != key || n.ReadAt != nil || n.ArchivedAt != nil || n.UpdatedAt.Before(since) {
				continue
			}
			if best == nil || n.UpdatedAt.After(best.UpdatedAt) || n.UpdatedAt.Equal(best.UpdatedAt) && cmpID(n.ID, best.ID) > 0 {
				best = n
			}
		}
		if best == nil {
			continue
		}
		c := cloneNotification(best)
		c.Count++
		c.Data, c.ActorID, c.UpdatedAt, c.SeenAt = bytes.Clone(data), actor, now.UTC(), nil
		set(t, t.s.notifications, c.ID, c)
		out = append(out, &domain.Notification{ID: c.ID, UserID: u, Count: c.Count, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt})
	}
	return out, nil
}

func (t *tx) Notification(_ context.Context, user, id uuid.UUID) (*domain.Notification, error) {
	n := t.s.notifications[id]
	if n == nil || n.UserID != user || user != t.actor {
		return nil, notFound("Notification")
	}
	return cloneNotification(n), nil
}

func (t *tx) ListNotifications(_ context.Context, f domain.NotificationFilter, limit int) ([]*domain.Notification, error) {
	if f.UserID != t.actor {
		return nil, nil
	}
	var out []*domain.Notification
	for _, id := range t.s.inboxes[f.UserID] {
		n := t.s.notifications[id]
		switch {
		case f.Before != uuid.Nil && cmpID(n.ID, f.Before) >= 0,
			f.Unread && n.ReadAt != nil,
			f.Type != "" && n.Type != f.Type,
			f.Archived == domain.ArchivedExclude && n.ArchivedAt != nil,
			f.Archived == domain.ArchivedOnly && n.ArchivedAt == nil:
			continue
		}
		out = append(out, cloneNotification(n))
	}
	slices.SortFunc(out, func(a, b *domain.Notification) int { return cmpID(b.ID, a.ID) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (t *tx) MarkNotifications(_ context.Context, user uuid.UUID, ids []uuid.UUID, state domain.NotificationState, now time.Time) (int, error) {
	if user != t.actor {
		return 0, nil
	}
	if ids == nil {
		ids = t.s.inboxes[user]
	}
	now = now.UTC()
	changed := 0
	for _, id := range ids {
		n := t.s.notifications[id]
		if n == nil || n.UserID != user {
			continue
		}
		c := cloneNotification(n)
		switch state {
		case domain.StateSeen:
			if c.SeenAt != nil {
				continue
			}
			c.SeenAt = &now
		case domain.StateRead:
			if c.ReadAt != nil {
				continue
			}
			c.ReadAt = &now
			if c.SeenAt == nil {
				c.SeenAt = &now
			}
		case domain.StateArchived:
			if c.ArchivedAt != nil {
				continue
			}
			c.ArchivedAt = &now
		default:
			return 0, fmt.Errorf("memory: unknown notification state %q", state)
		}
		set(t, t.s.notifications, id, c)
		changed++
	}
	return changed, nil
}

func (t *tx) NotificationCounts(_ context.Context, users []uuid.UUID) (map[uuid.UUID]domain.NotificationCounts, error) {
	out := make(map[uuid.UUID]domain.NotificationCounts, len(users))
	for _, u := range users {
		var c domain.NotificationCounts
		for _, id := range t.s.inboxes[u] {
			n := t.s.notifications[id]
			if n.ArchivedAt != nil {
				continue
			}
			if n.SeenAt == nil {
				c.Unseen++
			}
			if n.ReadAt == nil {
				c.Unread++
			}
		}
		out[u] = c
	}
	return out, nil
}

func (t *tx) NotificationSettings(_ context.Context, typ string, users []uuid.UUID) (map[uuid.UUID]bool, error) {
	out := map[uuid.UUID]bool{}
	for _, u := range users {
		if on, ok := t.s.notifyPrefs[prefKey{u, typ}]; ok {
			out[u] = on
		}
	}
	return out, nil
}

func (t *tx) NotificationPreferences(_ context.Context, user uuid.UUID) (map[string]bool, error) {
	out := map[string]bool{}
	if user != t.actor {
		return out, nil
	}
	for k, on := range t.s.notifyPrefs {
		if k.user == user {
			out[k.typ] = on
		}
	}
	return out, nil
}

func (t *tx) PutNotificationPreference(_ context.Context, user uuid.UUID, typ string, enabled bool, _ time.Time) error {
	if user != t.actor {
		return fmt.Errorf("memory: preference of user %s in a transaction of %s", user, t.actor)
	}
	if t.s.users[user] == nil {
		return fmt.Errorf("memory: preference of unknown user %s", user)
	}
	set(t, t.s.notifyPrefs, prefKey{user, typ}, enabled)
	return nil
}

func (t *tx) ProjectAudience(_ context.Context, projectID uuid.UUID) (*domain.Audience, error) {
	p := t.s.projects[projectID]
	if p == nil {
		return nil, notFound("Project")
	}
	a := &domain.Audience{WorkspaceID: p.WorkspaceID, ProjectName: p.Name}
	for k := range t.s.wsMembers {
		if k.scope == p.WorkspaceID {
			a.Users = append(a.Users, k.user)
		}
	}
	for k := range t.s.projectMembers {
		if k.scope == projectID && t.s.wsMembers[memberKey{p.WorkspaceID, k.user}] == nil {
			a.Users = append(a.Users, k.user)
		}
	}
	slices.SortFunc(a.Users, cmpID)
	return a, nil
}
