package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tone-ai/tone/domain"
)

const notificationColumns = `id, user_id, type, workspace_id, project_id, actor_id, group_key, count, data,
	created_at, updated_at, seen_at, read_at, archived_at`

func scanNotification(row pgx.Row) (*domain.Notification, error) {
	var n domain.Notification
	var ws, project, actor pgtype.UUID
	if err := row.Scan(&n.ID, &n.UserID, &n.Type, &ws, &project, &actor, &n.GroupKey, &n.Count, &n.Data,
		&n.CreatedAt, &n.UpdatedAt, &n.SeenAt, &n.ReadAt, &n.ArchivedAt); err != nil {
		return nil, err
	}
	n.WorkspaceID, n.ProjectID, n.ActorID = idOrNil(ws), idOrNil(project), idOrNil(actor)
	data, err := compactJSON(n.Data)
	if err != nil {
		return nil, fmt.Errorf("notification %s data: %w", n.ID, err)
	}
	n.Data = data
	n.CreatedAt, n.UpdatedAt = n.CreatedAt.UTC(), n.UpdatedAt.UTC()
	for _, t := range []**time.Time{&n.SeenAt, &n.ReadAt, &n.ArchivedAt} {
		if *t != nil {
			u := (*t).UTC()
			*t = &u
		}
	}
	return &n, nil
}

// InsertNotifications inserts every notification with one statement.
func (t *tx) InsertNotifications(ctx context.Context, ns []*domain.Notification) (err error) {
	defer wrap(&err, "postgres: insert %d notifications", len(ns))
	if len(ns) == 0 {
		return nil
	}
	var (
		ids, users, wss, projects, actors = make([]uuid.UUID, len(ns)), make([]uuid.UUID, len(ns)), make([]pgtype.UUID, len(ns)), make([]pgtype.UUID, len(ns)), make([]pgtype.UUID, len(ns))
		types, keys, datas                = make([]string, len(ns)), make([]string, len(ns)), make([]string, len(ns))
		counts                            = make([]int32, len(ns))
		created, updated                  = make([]time.Time, len(ns)), make([]time.Time, len(ns))
	)
	for i, n := range ns {
		ids[i], users[i], types[i], keys[i], counts[i] = n.ID, n.UserID, n.Type, n.GroupKey, int32(n.Count)
		wss[i], projects[i], actors[i] = nullID(n.WorkspaceID), nullID(n.ProjectID), nullID(n.ActorID)
		datas[i], created[i], updated[i] = string(n.Data), n.CreatedAt, n.UpdatedAt
	}
	_, err = t.tx.Exec(ctx, `
		INSERT INTO notifications (id, user_id, type, workspace_id, project_id, actor_id, group_key, count, data,
			created_at, updated_at)
		SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::uuid[], $5::uuid[], $6::uuid[], $7::text[],
			$8::int[], $9::jsonb[], $10::timestamptz[], $11::timestamptz[])`,
		ids, users, types, wss, projects, actors, keys, counts, datas, created, updated)
	return mapErr(err, "Notification")
}

func (t *tx) DigestNotifications(ctx context.Context, users []uuid.UUID, key string, since time.Time,
	data json.RawMessage, actor uuid.UUID, now time.Time) (_ []*domain.Notification, err error) {
	defer wrap(&err, "postgres: digest notifications")
	rows, err := t.tx.Query(ctx, `SELECT id, user_id, count, created_at
		FROM public.tone_digest_notifications($1, $2, $3, $4, $5, $6)`,
		users, key, since, string(data), nullID(actor), now)
	if err != nil {
		return nil, err
	}
	now = now.UTC().Truncate(time.Microsecond)
	return collect(rows, func(row pgx.Row) (*domain.Notification, error) {
		n := &domain.Notification{UpdatedAt: now}
		if err := row.Scan(&n.ID, &n.UserID, &n.Count, &n.CreatedAt); err != nil {
			return nil, err
		}
		n.CreatedAt = n.CreatedAt.UTC()
		return n, nil
	})
}

func (t *tx) Notification(ctx context.Context, user, id uuid.UUID) (_ *domain.Notification, err error) {
	defer wrap(&err, "postgres: notification %s", id)
	n, err := scanNotification(t.tx.QueryRow(ctx,
		`SELECT `+notificationColumns+` FROM notifications WHERE id = $1 AND user_id = $2`, id, user))
	return n, mapErr(err, "Notification")
}

func (t *tx) ListNotifications(ctx context.Context, f domain.NotificationFilter, limit int) (_ []*domain.Notification, err error) {
	defer wrap(&err, "postgres: list notifications")
	where := []string{"user_id = $1"}
	args := []any{f.UserID}
	add := func(cond string, arg any) {
		args = append(args, arg)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.Before != uuid.Nil {
		add("id < $%d", f.Before)
	}
	if f.Unread {
		where = append(where, "read_at IS NULL")
	}
	if f.Type != "" {
		add("type = $%d", f.Type)
	}
	switch f.Archived {
	case domain.ArchivedExclude:
		where = append(where, "archived_at IS NULL")
	case domain.ArchivedOnly:
		where = append(where, "archived_at IS NOT NULL")
	}
	var n *int
	if limit > 0 {
		n = &limit
	}
	args = append(args, n)
	rows, err := t.tx.Query(ctx, fmt.Sprintf(`SELECT %s FROM notifications WHERE %s ORDER BY id DESC LIMIT $%d`,
		notificationColumns, strings.Join(where, " AND "), len(args)), args...)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanNotification)
}

func (t *tx) MarkNotifications(ctx context.Context, user uuid.UUID, ids []uuid.UUID, state domain.NotificationState, now time.Time) (_ int, err error) {
	defer wrap(&err, "postgres: mark notifications %s", state)
	var set, unset string
	switch state {
	case domain.StateSeen:
		set, unset = "seen_at = $2", "seen_at IS NULL"
	case domain.StateRead:
		set, unset = "read_at = $2, seen_at = COALESCE(seen_at, $2)", "read_at IS NULL"
	case domain.StateArchived:
		set, unset = "archived_at = $2", "archived_at IS NULL"
	default:
		return 0, fmt.Errorf("unknown state %q", state)
	}
	q := `UPDATE notifications SET ` + set + ` WHERE user_id = $1 AND ` + unset
	args := []any{user, now}
	if ids != nil {
		q += ` AND id = ANY ($3)`
		args = append(args, ids)
	}
	tag, err := t.tx.Exec(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}

func (t *tx) NotificationCounts(ctx context.Context, users []uuid.UUID) (_ map[uuid.UUID]domain.NotificationCounts, err error) {
	defer wrap(&err, "postgres: notification counts")
	rows, err := t.tx.Query(ctx, `SELECT user_id, unseen, unread FROM public.tone_notification_counts($1)`, users)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[uuid.UUID]domain.NotificationCounts, len(users))
	for rows.Next() {
		var u uuid.UUID
		var unseen, unread int64
		if err := rows.Scan(&u, &unseen, &unread); err != nil {
			return nil, err
		}
		out[u] = domain.NotificationCounts{Unseen: int(unseen), Unread: int(unread)}
	}
	return out, rows.Err()
}

func (t *tx) NotificationSettings(ctx context.Context, typ string, users []uuid.UUID) (_ map[uuid.UUID]bool, err error) {
	defer wrap(&err, "postgres: notification settings")
	rows, err := t.tx.Query(ctx, `SELECT user_id, enabled FROM public.tone_notification_settings($1, $2)`, typ, users)
	if err != nil {
		return nil, err
	}
	return collectSettings[uuid.UUID](rows)
}

func (t *tx) NotificationPreferences(ctx context.Context, user uuid.UUID) (_ map[string]bool, err error) {
	defer wrap(&err, "postgres: notification preferences")
	rows, err := t.tx.Query(ctx, `SELECT type, enabled FROM notification_preferences WHERE user_id = $1`, user)
	if err != nil {
		return nil, err
	}
	return collectSettings[string](rows)
}

// collectSettings reads rows of (key, enabled) into a map.
func collectSettings[K comparable](rows pgx.Rows) (map[K]bool, error) {
	defer rows.Close()
	out := map[K]bool{}
	for rows.Next() {
		var k K
		var on bool
		if err := rows.Scan(&k, &on); err != nil {
			return nil, err
		}
		out[k] = on
	}
	return out, rows.Err()
}

func (t *tx) PutNotificationPreference(ctx context.Context, user uuid.UUID, typ string, enabled bool, now time.Time) (err error) {
	defer wrap(&err, "postgres: put notification preference")
	_, err = t.tx.Exec(ctx, `
		INSERT INTO notification_preferences (user_id, type, enabled, updated_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (user_id, type) DO UPDATE SET enabled = EXCLUDED.enabled, updated_at = EXCLUDED.updated_at`,
		user, typ, enabled, now)
	return err
}

func (t *tx) ProjectAudience(ctx context.Context, projectID uuid.UUID) (_ *domain.Audience, err error) {
	defer wrap(&err, "postgres: audience of project %s", projectID)
	var a domain.Audience
	err = t.tx.QueryRow(ctx, `SELECT workspace_id, name, users FROM public.tone_project_audience($1)`, projectID).
		Scan(&a.WorkspaceID, &a.ProjectName, &a.Users)
	if err != nil {
		return nil, mapErr(err, "Project")
	}
	slices.SortFunc(a.Users, func(x, y uuid.UUID) int { return bytes.Compare(x[:], y[:]) })
	return &a, nil
}
