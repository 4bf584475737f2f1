package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

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
	correlation_id, ip, user_agent, result, details, chain, seq, prev_hash, hash`

func scanAudit(row pgx.Row) (*domain.AuditEvent, error) {
	var e domain.AuditEvent
	var actor, ws, project pgtype.UUID
	var details []byte
	var chain pgtype.UUID
	var seq *int64
	if err := row.Scan(&e.ID, &e.Time, &actor, &e.Action, &e.TargetType, &e.TargetID, &ws, &project,
		&e.CorrelationID, &e.IP, &e.UserAgent, &e.Result, &details, &chain, &seq, &e.PrevHash, &e.Hash); err != nil {
		return nil, err
	}
	e.Time = e.Time.UTC()
	e.ActorID, e.WorkspaceID, e.ProjectID, e.Chain = idOrNil(actor), idOrNil(ws), idOrNil(project), idOrNil(chain)
	if seq != nil {
		e.Seq = *seq
	}
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
	var head domain.AuditHead
	if err := t.tx.QueryRow(ctx, `SELECT seq, hash FROM public.tone_audit_head($1)`, e.ChainID()).
		Scan(&head.Seq, &head.Hash); err != nil {
		return err
	}
	e.Seal(head)
	_, err = t.tx.Exec(ctx, `
		INSERT INTO audit_events (`+auditColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`,
		e.ID, e.Time, nullID(e.ActorID), e.Action, e.TargetType, e.TargetID, nullID(e.WorkspaceID),
		nullID(e.ProjectID), e.CorrelationID, e.IP, e.UserAgent, e.Result, details,
		e.Chain, e.Seq, e.PrevHash, e.Hash)
	return mapErr(err, "Audit event")
}

func (t *tx) AuditChainHead(ctx context.Context, chain uuid.UUID) (_ domain.AuditHead, err error) {
	defer wrap(&err, "postgres: audit chain head %s", chain)
	h := domain.AuditHead{Chain: chain}
	err = t.tx.QueryRow(ctx, `SELECT seq, hash FROM public.tone_audit_chain_head($1)`, chain).Scan(&h.Seq, &h.Hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return h, nil
	}
	return h, err
}

func (t *tx) ListAuditChain(ctx context.Context, chain uuid.UUID, afterSeq int64, limit int) (_ []*domain.AuditEvent, err error) {
	defer wrap(&err, "postgres: list audit chain %s", chain)
	rows, err := t.tx.Query(ctx, `SELECT `+auditColumns+` FROM audit_events
		WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT $3`, chain, afterSeq, limitArg(limit))
	if err != nil {
		return nil, err
	}
	return collect(rows, scanAudit)
}

// limitArg is n as a LIMIT argument: NULL (no limit) for zero or less.
func limitArg(n int) *int {
	if n <= 0 {
		return nil
	}
	return &n
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
	if f.TargetType != "" {
		add("target_type = $%d", f.TargetType)
	}
	if f.TargetID != "" {
		add("target_id = $%d", f.TargetID)
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

// VerifyAuditChains checks the audit chains named (all of them when chains
// is empty) and returns a report per chain, in chain order. pool must
// connect as the tables' owner (the migrating role), which row-level
// security does not restrict: `tone audit verify` uses it. Chains whose
// events remain but whose head row is gone are checked too (against an
// empty head, so they report a problem).
func VerifyAuditChains(ctx context.Context, pool *pgxpool.Pool, chains []uuid.UUID) (_ []*domain.AuditReport, err error) {
	defer wrap(&err, "postgres: verify audit chains")
	rows, err := pool.Query(ctx, `
		SELECT c.chain, COALESCE(h.seq, 0), COALESCE(h.hash, '\x')
		FROM (SELECT chain FROM audit_heads UNION SELECT DISTINCT chain FROM audit_events WHERE chain IS NOT NULL) c
		LEFT JOIN audit_heads h ON h.chain = c.chain
		WHERE COALESCE(cardinality($1::uuid[]), 0) = 0 OR c.chain = ANY ($1)
		ORDER BY c.chain`, chains)
	if err != nil {
		return nil, err
	}
	heads, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (domain.AuditHead, error) {
		var h domain.AuditHead
		err := row.Scan(&h.Chain, &h.Seq, &h.Hash)
		return h, err
	})
	if err != nil {
		return nil, err
	}
	var out []*domain.AuditReport
	for _, h := range heads {
		r, err := domain.VerifyAuditChain(ctx, h.Chain,
			func(context.Context) (domain.AuditHead, error) { return h, nil },
			func(ctx context.Context, after int64, limit int) ([]*domain.AuditEvent, error) {
				rows, err := pool.Query(ctx, `SELECT `+auditColumns+` FROM audit_events
					WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT $3`, h.Chain, after, limit)
				if err != nil {
					return nil, err
				}
				return collect(rows, scanAudit)
			})
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}
