package http

import (
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/tone-ai/tone/domain"
)

type auditEventJSON struct {
	ID            uuid.UUID      `json:"id"`
	Time          time.Time      `json:"time"`
	ActorID       *uuid.UUID     `json:"actor_id"`
	Action        string         `json:"action"`
	TargetType    string         `json:"target_type"`
	TargetID      string         `json:"target_id"`
	WorkspaceID   *uuid.UUID     `json:"workspace_id"`
	ProjectID     *uuid.UUID     `json:"project_id"`
	CorrelationID string         `json:"correlation_id"`
	IP            string         `json:"ip"`
	UserAgent     string         `json:"user_agent"`
	Result        string         `json:"result"`
	Details       map[string]any `json:"details"`
	Seq           int64          `json:"seq"`
	PrevHash      string         `json:"prev_hash"`
	Hash          string         `json:"hash"`
}

func toAuditEventJSON(e *domain.AuditEvent) auditEventJSON {
	d := e.Details
	if d == nil {
		d = map[string]any{}
	}
	return auditEventJSON{ID: e.ID, Time: e.Time, ActorID: optID(e.ActorID), Action: e.Action, TargetType: e.TargetType,
		TargetID: e.TargetID, WorkspaceID: optID(e.WorkspaceID), ProjectID: optID(e.ProjectID), CorrelationID: e.CorrelationID,
		IP: e.IP, UserAgent: e.UserAgent, Result: e.Result, Details: d, Seq: e.Seq,
		PrevHash: hex.EncodeToString(e.PrevHash), Hash: hex.EncodeToString(e.Hash)}
}

// auditQuery reads the filters of an audit request, or writes a 400.
func (s *Server) auditQuery(w http.ResponseWriter, r *http.Request) (domain.AuditQuery, bool) {
	lo, ok := s.listOptions(w, r)
	if !ok {
		return domain.AuditQuery{}, false
	}
	q := r.URL.Query()
	aq := domain.AuditQuery{ListOptions: lo, Action: q.Get("action"), TargetType: q.Get("target_type"), TargetID: q.Get("target_id")}
	for _, f := range []struct {
		name string
		dst  *uuid.UUID
	}{{"project_id", &aq.ProjectID}, {"actor_id", &aq.ActorID}} {
		if v := q.Get(f.name); v != "" {
			id, err := uuid.Parse(v)
			if err != nil {
				s.writeError(w, r, domain.Errorf(domain.EInvalid, "%s is not a valid UUID.", f.name).WithDetail("field", f.name))
				return aq, false
			}
			*f.dst = id
		}
	}
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"since", &aq.Since}, {"until", &aq.Until}} {
		if v := q.Get(f.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				s.writeError(w, r, domain.Errorf(domain.EInvalid, "%s must be an RFC 3339 time.", f.name).WithDetail("field", f.name))
				return aq, false
			}
			*f.dst = t
		}
	}
	return aq, true
}

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) {
	ws, ok := s.pathID(w, r, "workspaceID")
	if !ok {
		return
	}
	q, ok := s.auditQuery(w, r)
	if !ok {
		return
	}
	evs, next, err := s.svc.ListWorkspaceAudit(r.Context(), principal(r).UserID, ws, q)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list(evs, next, toAuditEventJSON))
}

// auditCSVHeader names the columns of a CSV export.
var auditCSVHeader = []string{"id", "time", "actor_id", "action", "target_type", "target_id", "workspace_id", "project_id",
	"correlation_id", "ip", "user_agent", "result", "details", "seq", "prev_hash", "hash"}

func idCell(id uuid.UUID) string {
	if id == uuid.Nil {
		return ""
	}
	return id.String()
}

// exportAudit streams a workspace's audit events as CSV or NDJSON. Errors
// found before the first byte get the error envelope; a failure after that
// cuts the stream short (the client sees a truncated body).
func (s *Server) exportAudit(w http.ResponseWriter, r *http.Request) {
	ws, ok := s.pathID(w, r, "workspaceID")
	if !ok {
		return
	}
	q, ok := s.auditQuery(w, r)
	if !ok {
		return
	}
	format := r.URL.Query().Get("format")
	var start func()
	var write func(e *domain.AuditEvent) error
	var flush func() error
	switch format {
	case "", "ndjson":
		enc := json.NewEncoder(w)
		start = func() { w.Header().Set("Content-Type", "application/x-ndjson") }
		write = func(e *domain.AuditEvent) error { return enc.Encode(toAuditEventJSON(e)) }
		flush = func() error { return nil }
	case "csv":
		cw := csv.NewWriter(w)
		start = func() {
			w.Header().Set("Content-Type", "text/csv; charset=utf-8")
			_ = cw.Write(auditCSVHeader)
		}
		write = func(e *domain.AuditEvent) error {
			details, err := json.Marshal(toAuditEventJSON(e).Details)
			if err != nil {
				return err
			}
			return cw.Write([]string{e.ID.String(), e.Time.Format(time.RFC3339Nano), idCell(e.ActorID), e.Action,
				e.TargetType, e.TargetID, idCell(e.WorkspaceID), idCell(e.ProjectID), e.CorrelationID, e.IP, e.UserAgent,
				e.Result, string(details), strconv.FormatInt(e.Seq, 10), hex.EncodeToString(e.PrevHash), hex.EncodeToString(e.Hash)})
		}
		flush = func() error { cw.Flush(); return cw.Error() }
	default:
		s.writeError(w, r, domain.Errorf(domain.EInvalid, "format must be csv or ndjson.").WithDetail("field", "format"))
		return
	}
	rc := http.NewResponseController(w)
	started, n := false, 0
	begin := func() {
		if !started {
			started = true
			ext := "ndjson"
			if format == "csv" {
				ext = "csv"
			}
			w.Header().Set("Content-Disposition", `attachment; filename="audit-`+ws.String()+`.`+ext+`"`)
			start()
			w.WriteHeader(http.StatusOK)
		}
	}
	err := s.svc.ExportWorkspaceAudit(r.Context(), principal(r).UserID, ws, q, func(e *domain.AuditEvent) error {
		begin()
		if err := write(e); err != nil {
			return err
		}
		if n++; n%500 == 0 {
			if err := flush(); err != nil {
				return err
			}
			return rc.Flush()
		}
		return nil
	})
	if err != nil && !started {
		s.writeError(w, r, err)
		return
	}
	if err != nil {
		s.log.WarnContext(r.Context(), "audit export cut short", "err", err, "events", n)
		return
	}
	begin()
	if err := flush(); err != nil {
		s.log.WarnContext(r.Context(), "audit export cut short", "err", err, "events", n)
	}
}

func (s *Server) verifyAudit(w http.ResponseWriter, r *http.Request) {
	ws, ok := s.pathID(w, r, "workspaceID")
	if !ok {
		return
	}
	rep, err := s.svc.VerifyWorkspaceAudit(r.Context(), principal(r).UserID, ws)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}
