package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tone-ai/tone/domain"
)

// nullID is id as a nullable SQL uuid: NULL for uuid.Nil.
func nullID(id uuid.UUID) pgtype.UUID { return pgtype.UUID{Bytes: id, Valid: id != uuid.Nil} }

// idOrNil is the reverse of nullID.
func idOrNil(id pgtype.UUID) uuid.UUID {
	if !id.Valid {
		return uuid.Nil
	}
	return id.Bytes
}

const auditColumns = `id, time, actor_id, action, target_type, target_id, workspace_id, project_id,
	correlation_id, ip, user_agent, result, details`

func scanAudit(row pgx.Row) (*domain.AuditEvent, error) {
	var e domain.AuditEvent
	var actor, ws, project pgtype.UUID
	var details []byte
	if err := row.Scan(&e.ID, &e.Time, &actor, &e.Action, &e.TargetType, &e.TargetID, &ws, &project,
		&e.CorrelationID, &e.IP, &e.UserAgent, &e.Result, &details); err != nil {
		return nil, err
	}
	e.Time = e.Time.UTC()
	e.ActorID, e.WorkspaceID, e.ProjectID = idOrNil(actor), idOrNil(ws), idOrNil(project)
	if err := json.Unmarshal(details, &e.Details); err != nil {
		return nil, fmt.Errorf("audit event %s details: %w", e.ID, err)
	}
	if len(e.Details) == 0 {
		e.Details = nil
	}
	return &e, nil
}

func (t *tx) AppendAudit(ctx context.Context, e *domain.AuditEvent) (err error) {
	defer wrap(&err, "postgres: append audit event %s", e.ID)
	details := []byte("{}")
	if len(e.Details) > 0 {
		if details, err = json.Marshal(e.Details); err != nil {
			return err
		}
	}
	_, err = t.tx.Exec(ctx, `
		INSERT INTO audit_events (`+auditColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
		e.ID, e.Time, nullID(e.ActorID), e.Action, e.TargetType, e.TargetID, nullID(e.WorkspaceID),
		nullID(e.ProjectID), e.CorrelationID, e.IP, e.UserAgent, e.Result, details)
	return mapErr(err, "Audit event")
}

func (t *tx) ListAudit(ctx context.Context, f domain.AuditFilter, p domain.Page) (_ []*domain.AuditEvent, err error) {
	defer wrap(&err, "postgres: list audit events")
	where := []string{"id > $1"}
	args := []any{p.After}
	add := func(cond string, arg any) {
		args = append(args, arg)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.WorkspaceID != uuid.Nil {
		add("workspace_id = $%d", f.WorkspaceID)
	}
	if f.ProjectID != uuid.Nil {
		add("project_id = $%d", f.ProjectID)
	}
	if f.ActorID != uuid.Nil {
		add("actor_id = $%d", f.ActorID)
	}
	if f.Action != "" {
		add("action = $%d", f.Action)
	}
	if !f.Since.IsZero() {
		add("time >= $%d", f.Since)
	}
	if !f.Until.IsZero() {
		add("time < $%d", f.Until)
	}
	args = append(args, limit(p))
	rows, err := t.tx.Query(ctx, fmt.Sprintf(`SELECT %s FROM audit_events WHERE %s ORDER BY id LIMIT $%d`,
		auditColumns, strings.Join(where, " AND "), len(args)), args...)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanAudit)
}
