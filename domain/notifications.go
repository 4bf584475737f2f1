package domain

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/google/uuid"
)

// Notifications.
//
// A use case that concerns someone personally (they were added to a
// workspace, their role changed, they were mentioned on a canvas, a
// deployment of their project failed) stores a [Notification] in each
// recipient's inbox, in its own transaction, and emits an event on the
// recipient's notifications channel carrying the notification and the
// inbox's new counts. A client that was offline catches up by offset on
// the channel or over REST.
//
// Each type has a default (on, or off for opt-in types such as deployment
// results) that a user may override in their preferences; critical types
// ignore preferences. Digest types group: a notification of the same type
// and project within DigestWindow of an unread one updates that one (its
// count goes up) instead of adding a row.

// Notification types. Member types carry the same data as the events of
// the same name on the notifications channel (see docs/api.md).
const (
	NotifyWorkspaceMemberAdded       = EventWorkspaceMemberAdded
	NotifyWorkspaceMemberRoleChanged = EventWorkspaceMemberRoleChanged
	NotifyProjectMemberAdded         = EventProjectMemberAdded
	NotifyProjectMemberRoleChanged   = EventProjectMemberRoleChanged
	NotifyCanvasMention              = "canvas.mention"
	NotifyDeploymentFailed           = "deployment.failed"
	NotifyDeploymentSucceeded        = "deployment.succeeded"
)

// NotificationType describes one kind of notification.
type NotificationType struct {
	Name        string
	Description string
	// Critical notifications are always delivered, whatever the
	// recipient's preferences.
	Critical bool
	// Default is whether users who set no preference get it.
	Default bool
	// Digest notifications of one project within DigestWindow are grouped.
	Digest bool
}

// NotificationTypes lists every notification type.
var NotificationTypes = []NotificationType{
	{Name: NotifyWorkspaceMemberAdded, Description: "You were added to a workspace.", Default: true},
	{Name: NotifyWorkspaceMemberRoleChanged, Description: "Your role in a workspace changed.", Critical: true, Default: true},
	{Name: NotifyProjectMemberAdded, Description: "You were added to a project.", Default: true},
	{Name: NotifyProjectMemberRoleChanged, Description: "Your role in a project changed.", Critical: true, Default: true},
	{Name: NotifyCanvasMention, Description: "Someone mentioned you in a canvas text.", Default: true, Digest: true},
	{Name: NotifyDeploymentFailed, Description: "A deployment of one of your projects failed (opt in).", Digest: true},
	{Name: NotifyDeploymentSucceeded, Description: "A deployment of one of your projects succeeded (opt in).", Digest: true},
}

// notificationType returns the type named name.
func notificationType(name string) (NotificationType, bool) {
	i := slices.IndexFunc(NotificationTypes, func(t NotificationType) bool { return t.Name == name })
	if i < 0 {
		return NotificationType{}, false
	}
	return NotificationTypes[i], true
}

// DigestWindow is how long after its last update a digest notification
// keeps absorbing similar ones.
const DigestWindow = 15 * time.Minute

// Notification is one entry of a user's inbox: a single notification, or
// a digest of Count similar ones (Data is then the latest one's).
type Notification struct {
	ID          uuid.UUID // UUIDv7
	UserID      uuid.UUID // the recipient
	Type        string
	WorkspaceID uuid.UUID       // uuid.Nil if none
	ProjectID   uuid.UUID       // uuid.Nil if none
	ActorID     uuid.UUID       // who caused it; uuid.Nil for no user (a runner)
	GroupKey    string          // digest key; "" for types that do not group
	Count       int             // >= 1
	Data        json.RawMessage // a JSON object
	CreatedAt   time.Time
	UpdatedAt   time.Time // when Count last grew
	SeenAt      *time.Time
	ReadAt      *time.Time
	ArchivedAt  *time.Time
}

// NotificationCounts are the numbers a client shows on its bell: unseen
// and unread notifications that are not archived.
type NotificationCounts struct {
	Unseen int `json:"unseen"`
	Unread int `json:"unread"`
}

// ArchivedFilter selects notifications by whether they are archived.
type ArchivedFilter int

// Archive filters.
const (
	ArchivedExclude ArchivedFilter = iota // the inbox: not archived
	ArchivedOnly                          // the archive
	ArchivedInclude                       // both
)

// NotificationFilter selects one user's notifications.
type NotificationFilter struct {
	UserID   uuid.UUID
	Before   uuid.UUID // only ids below it; uuid.Nil: from the newest
	Unread   bool      // only unread ones
	Type     string    // only this type; "" any
	Archived ArchivedFilter
}

// NotificationState is one of the moments of a notification's life.
type NotificationState string

// Notification states, each a timestamp of its own.
const (
	StateSeen     NotificationState = "seen"
	StateRead     NotificationState = "read"
	StateArchived NotificationState = "archived"
)

// NotificationStore stores inboxes and notification preferences. Within
// a transaction acting for user u, only u's own notifications are listed
// or marked; writing notifications for others, grouping into their
// digests and reading their counts and settings is allowed to any
// transaction.
type NotificationStore interface {
	// InsertNotifications inserts ns.
	InsertNotifications(ctx context.Context, ns []*Notification) error
	// DigestNotifications folds a notification with group key key into
	// each of users' newest unread, unarchived notification with that key
	// updated at or after since: its count grows by one, its data and
	// actor become data and actor, UpdatedAt becomes t and SeenAt is
	// cleared. It returns the notifications it changed, with ID, UserID,
	// Count, CreatedAt and UpdatedAt set.
	DigestNotifications(ctx context.Context, users []uuid.UUID, key string, since time.Time,
		data json.RawMessage, actor uuid.UUID, t time.Time) ([]*Notification, error)
	// Notification returns user's notification id, archived or not.
	// Returns ENotFound if user has no such notification.
	Notification(ctx context.Context, user, id uuid.UUID) (*Notification, error)
	// ListNotifications returns f.UserID's notifications matching f,
	// newest (highest id) first, at most limit of them (<= 0: all).
	ListNotifications(ctx context.Context, f NotificationFilter, limit int) ([]*Notification, error)
	// MarkNotifications sets state to t on user's notifications with the
	// given ids (nil: all of them) where it is not set yet, and returns how
	// many changed. Marking read also marks seen.
	MarkNotifications(ctx context.Context, user uuid.UUID, ids []uuid.UUID, state NotificationState, t time.Time) (int, error)
	// NotificationCounts returns the counts of each of users.
	NotificationCounts(ctx context.Context, users []uuid.UUID) (map[uuid.UUID]NotificationCounts, error)
	// NotificationSettings returns the explicit setting of type typ of
	// each of users who has one.
	NotificationSettings(ctx context.Context, typ string, users []uuid.UUID) (map[uuid.UUID]bool, error)
	// ProjectAudience returns a project's workspace, name and everyone
	// with a role in it (its own members and its workspace's), whoever
	// the transaction acts for. Returns ENotFound if it does not exist.
	ProjectAudience(ctx context.Context, projectID uuid.UUID) (*Audience, error)
	// NotificationPreferences returns user's explicit settings by type.
	NotificationPreferences(ctx context.Context, user uuid.UUID) (map[string]bool, error)
	// PutNotificationPreference sets user's setting of type typ.
	PutNotificationPreference(ctx context.Context, user uuid.UUID, typ string, enabled bool, t time.Time) error
}

// Audience is who a project's notifications go to.
type Audience struct {
	WorkspaceID uuid.UUID
	ProjectName string
	Users       []uuid.UUID
}

// Events on the notifications channel besides the notification types.
const (
	// EventNotificationsChanged: the user marked notifications seen, read
	// or archived; data has the new unseen and unread counts.
	EventNotificationsChanged = "notifications.changed"
)

// Notice is a notification to deliver to several users at once.
type Notice struct {
	Type        string
	Users       []uuid.UUID // recipients; duplicates and the actor are dropped
	WorkspaceID uuid.UUID
	ProjectID   uuid.UUID
	// Data holds the public fields of what happened: ids, names, roles,
	// never secrets. Recipients see it in their inbox and on their channel.
	Data map[string]any
}

// notify stores n in each recipient's inbox within tx and emits, on each
// recipient's notifications channel, an event of type n.Type whose data is
// n.Data plus notification_id, count (> 1 for a digest), unseen and unread
// (the new counts). actor is the user who caused it (uuid.Nil: none, such
// as a deployment runner); actors are not notified of their own doing.
// Recipients who turned the type off get nothing, unless it is critical.
func (s *Service) notify(ctx context.Context, tx Tx, actor uuid.UUID, n Notice) error {
	typ, ok := notificationType(n.Type)
	if !ok {
		return fmt.Errorf("notify: unknown notification type %q", n.Type)
	}
	users := make([]uuid.UUID, 0, len(n.Users))
	seen := make(map[uuid.UUID]bool, len(n.Users))
	for _, u := range n.Users {
		if u != actor && u != uuid.Nil && !seen[u] {
			seen[u] = true
			users = append(users, u)
		}
	}
	if len(users) == 0 {
		return nil
	}
	if !typ.Critical {
		settings, err := tx.NotificationSettings(ctx, typ.Name, users)
		if err != nil {
			return err
		}
		users = slices.DeleteFunc(users, func(u uuid.UUID) bool {
			on, set := settings[u]
			return !(on || !set && typ.Default)
		})
		if len(users) == 0 {
			return nil
		}
	}
	data, err := json.Marshal(n.Data)
	if err != nil {
		return fmt.Errorf("notification %s: %w", n.Type, err)
	}
	now := s.now()
	var key string
	var delivered []*Notification
	if typ.Digest {
		key = typ.Name + ":" + n.ProjectID.String()
		if delivered, err = tx.DigestNotifications(ctx, users, key, now.Add(-DigestWindow), data, actor, now); err != nil {
			return err
		}
		for _, d := range delivered {
			seen[d.UserID] = false
		}
	}
	fresh := make([]*Notification, 0, len(users)-len(delivered))
	for _, u := range users {
		if !seen[u] {
			continue
		}
		fresh = append(fresh, &Notification{
			ID: newID(), UserID: u, Type: typ.Name, WorkspaceID: n.WorkspaceID, ProjectID: n.ProjectID,
			ActorID: actor, GroupKey: key, Count: 1, Data: data, CreatedAt: now, UpdatedAt: now,
		})
	}
	if len(fresh) > 0 {
		if err := tx.InsertNotifications(ctx, fresh); err != nil {
			return err
		}
	}
	delivered = append(delivered, fresh...)
	recipients := make([]uuid.UUID, len(delivered))
	for i, d := range delivered {
		recipients[i] = d.UserID
	}
	counts, err := tx.NotificationCounts(ctx, recipients)
	if err != nil {
		return err
	}
	// One event per recipient, appended in one batch.
	evs := make([]*OutboxEvent, len(delivered))
	info := RequestInfoFrom(ctx)
	for i, d := range delivered {
		ev := make(map[string]any, len(n.Data)+5)
		for k, v := range n.Data {
			ev[k] = v
		}
		c := counts[d.UserID]
		ev["notification_id"], ev["count"], ev["unseen"], ev["unread"] = d.ID, d.Count, c.Unseen, c.Unread
		ev["actor_id"] = actor
		payload, err := json.Marshal(ev)
		if err != nil {
			return fmt.Errorf("notification %s: %w", n.Type, err)
		}
		evs[i] = &OutboxEvent{Channel: NotificationsChannel(d.UserID), Type: typ.Name, Payload: payload,
			CorrelationID: info.CorrelationID, CreatedAt: now}
	}
	return tx.AppendOutboxEvents(ctx, evs)
}

// NotifyProject notifies the members of a project (its own members and
// those of its workspace) of an event of type typ, such as
// NotifyDeploymentFailed, within the caller's transaction tx. actor is the
// user who caused it, or uuid.Nil when no user did (a deployment runner).
// Members who did not opt in to the type get nothing. data holds the
// event's public fields; project_id and project_name are added.
func (s *Service) NotifyProject(ctx context.Context, tx Tx, actor, projectID uuid.UUID, typ string, data map[string]any) error {
	a, err := tx.ProjectAudience(ctx, projectID)
	if err != nil {
		return err
	}
	if data == nil {
		data = map[string]any{}
	}
	data["project_id"], data["project_name"] = projectID, a.ProjectName
	return s.notify(ctx, tx, actor, Notice{Type: typ, Users: a.Users, WorkspaceID: a.WorkspaceID, ProjectID: projectID, Data: data})
}

// NotificationListOptions are the filters and page of an inbox listing.
type NotificationListOptions struct {
	ListOptions
	Unread   bool
	Type     string
	Archived ArchivedFilter
}

// ListNotifications lists the actor's notifications, newest first.
func (s *Service) ListNotifications(ctx context.Context, actor uuid.UUID, opt NotificationListOptions) ([]*Notification, string, error) {
	p, limit, err := opt.page()
	if err != nil {
		return nil, "", err
	}
	if opt.Type != "" {
		if _, ok := notificationType(opt.Type); !ok {
			return nil, "", Errorf(EInvalid, "type is not a notification type.").WithDetail("field", "type")
		}
	}
	f := NotificationFilter{UserID: actor, Before: p.After, Unread: opt.Unread, Type: opt.Type, Archived: opt.Archived}
	var ns []*Notification
	err = s.store.InTx(ctx, actor, func(tx Tx) (err error) {
		ns, err = tx.ListNotifications(ctx, f, p.Limit)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	ns, next := nextCursor(ns, limit, func(n *Notification) uuid.UUID { return n.ID })
	return ns, next, nil
}

// NotificationCounts returns the actor's unseen and unread counts.
func (s *Service) NotificationCounts(ctx context.Context, actor uuid.UUID) (NotificationCounts, error) {
	var c NotificationCounts
	err := s.store.InTx(ctx, actor, func(tx Tx) error {
		m, err := tx.NotificationCounts(ctx, []uuid.UUID{actor})
		c = m[actor]
		return err
	})
	return c, err
}

// MarkNotification sets states (seen, read, archived) on one of the
// actor's notifications and returns it. Returns ENotFound if the actor has
// no such notification.
func (s *Service) MarkNotification(ctx context.Context, actor, id uuid.UUID, states ...NotificationState) (*Notification, error) {
	var out *Notification
	err := s.inTx(ctx, actor, func(tx Tx) error {
		if _, err := tx.Notification(ctx, actor, id); err != nil {
			return err
		}
		now := s.now()
		for _, st := range states {
			if _, err := tx.MarkNotifications(ctx, actor, []uuid.UUID{id}, st, now); err != nil {
				return err
			}
		}
		n, err := tx.Notification(ctx, actor, id)
		if err != nil {
			return err
		}
		out = n
		if err := s.emitCounts(ctx, tx, actor); err != nil {
			return err
		}
		ev := s.audit(ctx, actor, "notification.mark", "notification", id.String())
		ev.Details = map[string]any{"states": states}
		return tx.AppendAudit(ctx, ev)
	})
	return out, err
}

// MarkAllNotifications sets state (seen or read) on all the actor's
// notifications and returns the new counts.
func (s *Service) MarkAllNotifications(ctx context.Context, actor uuid.UUID, state NotificationState) (NotificationCounts, error) {
	var c NotificationCounts
	if state != StateSeen && state != StateRead {
		return c, Errorf(EInvalid, "Only seen and read can be set on all notifications.")
	}
	err := s.inTx(ctx, actor, func(tx Tx) error {
		n, err := tx.MarkNotifications(ctx, actor, nil, state, s.now())
		if err != nil {
			return err
		}
		m, err := tx.NotificationCounts(ctx, []uuid.UUID{actor})
		if err != nil {
			return err
		}
		c = m[actor]
		if err := s.emit(ctx, tx, actor, NotificationsChannel(actor), EventNotificationsChanged, map[string]any{
			"unseen": c.Unseen, "unread": c.Unread,
		}); err != nil {
			return err
		}
		ev := s.audit(ctx, actor, "notification.mark_all", "user", actor.String())
		ev.Details = map[string]any{"state": string(state), "changed": n}
		return tx.AppendAudit(ctx, ev)
	})
	return c, err
}

// emitCounts tells the actor's other connections their new counts.
func (s *Service) emitCounts(ctx context.Context, tx Tx, actor uuid.UUID) error {
	m, err := tx.NotificationCounts(ctx, []uuid.UUID{actor})
	if err != nil {
		return err
	}
	c := m[actor]
	return s.emit(ctx, tx, actor, NotificationsChannel(actor), EventNotificationsChanged, map[string]any{
		"unseen": c.Unseen, "unread": c.Unread,
	})
}

// NotificationPreference is a user's effective setting of one type.
type NotificationPreference struct {
	NotificationType
	Enabled bool // always true for critical types
}

// NotificationPreferences returns the actor's effective setting of every
// notification type.
func (s *Service) NotificationPreferences(ctx context.Context, actor uuid.UUID) ([]NotificationPreference, error) {
	var set map[string]bool
	err := s.store.InTx(ctx, actor, func(tx Tx) (err error) {
		set, err = tx.NotificationPreferences(ctx, actor)
		return err
	})
	if err != nil {
		return nil, err
	}
	return effectivePreferences(set), nil
}

func effectivePreferences(set map[string]bool) []NotificationPreference {
	out := make([]NotificationPreference, len(NotificationTypes))
	for i, t := range NotificationTypes {
		on, ok := set[t.Name]
		if !ok {
			on = t.Default
		}
		out[i] = NotificationPreference{NotificationType: t, Enabled: on || t.Critical}
	}
	return out
}

// SetNotificationPreferences turns notification types on or off for the
// actor and returns the effective settings. Critical types cannot be
// turned off (EInvalid); unknown types are EInvalid. Nothing changes if
// any entry is refused.
func (s *Service) SetNotificationPreferences(ctx context.Context, actor uuid.UUID, prefs map[string]bool) ([]NotificationPreference, error) {
	if len(prefs) == 0 {
		return nil, Errorf(EInvalid, "preferences must name at least one type.").WithDetail("field", "preferences")
	}
	for name, on := range prefs {
		t, ok := notificationType(name)
		if !ok {
			return nil, Errorf(EInvalid, "%q is not a notification type.", name).WithDetail("field", "preferences")
		}
		if t.Critical && !on {
			return nil, Errorf(EInvalid, "%q is critical and cannot be turned off.", name).WithDetail("field", "preferences")
		}
	}
	var set map[string]bool
	err := s.store.InTx(ctx, actor, func(tx Tx) error {
		now := s.now()
		for _, name := range slices.Sorted(maps.Keys(prefs)) {
			if err := tx.PutNotificationPreference(ctx, actor, name, prefs[name], now); err != nil {
				return err
			}
		}
		var err error
		if set, err = tx.NotificationPreferences(ctx, actor); err != nil {
			return err
		}
		ev := s.audit(ctx, actor, "notification.preferences.update", "user", actor.String())
		ev.Details = map[string]any{"preferences": prefs}
		return tx.AppendAudit(ctx, ev)
	})
	if err != nil {
		return nil, err
	}
	return effectivePreferences(set), nil
}

// Mentions.

// MentionHandles returns the distinct handles that text mentions, lower
// case and in order of appearance: "@" followed by letters, digits, ".",
// "_" or "-" (trailing dots and dashes, as at the end of a sentence, are
// not part of it), at the start of the text or after a character that is
// not part of a handle (so an email address mentions nobody).
func MentionHandles(text string) []string {
	var out []string
	seen := map[string]bool{}
	runes := []rune(text)
	isHandle := func(r rune) bool {
		return unicode.IsLetter(r) || unicode.IsDigit(r) || r == '.' || r == '_' || r == '-'
	}
	for i := 0; i < len(runes); i++ {
		if runes[i] != '@' || i > 0 && isHandle(runes[i-1]) {
			continue
		}
		j := i + 1
		for j < len(runes) && isHandle(runes[j]) {
			j++
		}
		h := strings.ToLower(strings.TrimRight(string(runes[i+1:j]), ".-"))
		if h != "" && !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
		i = j - 1
	}
	return out
}

// memberHandles are the handles that mention m: their display name
// without spaces and the local part of their email address, lower case.
func memberHandles(m *Member) []string {
	name := strings.ToLower(strings.Join(strings.Fields(m.DisplayName), ""))
	local, _, _ := strings.Cut(strings.ToLower(m.Email), "@")
	return []string{name, local}
}

// NotifyCanvasMentions notifies the project members that handles (from
// MentionHandles) name that actor mentioned them in element's text on a
// canvas. Handles that name nobody with a role in the canvas's project
// are ignored, as is the actor mentioning themselves. Returns ENotFound
// if the actor cannot see the canvas.
func (s *Service) NotifyCanvasMentions(ctx context.Context, actor, canvasID uuid.UUID, element string, handles []string) error {
	if len(handles) == 0 {
		return nil
	}
	want := map[string]bool{}
	for _, h := range handles {
		want[strings.ToLower(h)] = true
	}
	return s.inTx(ctx, actor, func(tx Tx) error {
		c, p, role, err := canvasAccess(ctx, tx, canvasID, actor, noLock)
		if err != nil {
			return err
		}
		if err := authorize(role, ActCanvasWrite, "Canvas"); err != nil {
			return err
		}
		var users []uuid.UUID
		match := func(ms []*Member) {
			for _, m := range ms {
				for _, h := range memberHandles(m) {
					if h != "" && want[h] {
						users = append(users, m.UserID)
						break
					}
				}
			}
		}
		for after := uuid.Nil; ; {
			ms, err := tx.ListWorkspaceMembers(ctx, p.WorkspaceID, Page{Limit: 1000, After: after})
			if err != nil {
				return err
			}
			match(ms)
			if len(ms) < 1000 {
				break
			}
			after = ms[len(ms)-1].UserID
		}
		for after := uuid.Nil; ; {
			ms, err := tx.ListProjectMembers(ctx, p.ID, Page{Limit: 1000, After: after})
			if err != nil {
				return err
			}
			match(ms)
			if len(ms) < 1000 {
				break
			}
			after = ms[len(ms)-1].UserID
		}
		return s.notify(ctx, tx, actor, Notice{
			Type: NotifyCanvasMention, Users: users, WorkspaceID: p.WorkspaceID, ProjectID: p.ID,
			Data: map[string]any{"project_id": p.ID, "project_name": p.Name, "canvas_id": c.ID, "canvas_name": c.Name, "element_id": element},
		})
	})
}
