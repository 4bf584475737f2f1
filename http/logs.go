package http

import (
	"bufio"
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/tone-ai/tone/domain"
)

// LogBroadcaster ships appended log lines to the live tails of their
// deployment; realtime.Node implements it. Lines it fails to ship are not
// lost: tails fill gaps from the store.
type LogBroadcaster interface {
	BroadcastLogs(ctx context.Context, deploymentID uuid.UUID, lines []domain.LogLine)
}

type logLineJSON struct {
	Seq  uint64 `json:"seq"`
	Step string `json:"step"`
	Line uint64 `json:"line"`
	Text string `json:"text"`
}

func toLogLinesJSON(ls []domain.LogLine) []logLineJSON {
	out := make([]logLineJSON, 0, len(ls))
	for _, l := range ls {
		out = append(out, logLineJSON{Seq: l.Seq, Step: l.Step, Line: l.Line, Text: l.Text})
	}
	return out
}

type logBatchRequest struct {
	Step      string   `json:"step"`
	FirstLine uint64   `json:"first_line"`
	Lines     []string `json:"lines"`
}

type logAppendJSON struct {
	Appended int    `json:"appended"`
	NextLine uint64 `json:"next_line"`
	FirstSeq uint64 `json:"first_seq,omitempty"`
	LastSeq  uint64 `json:"last_seq,omitempty"`
}

func (s *Server) runnerAppendLogs(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "deploymentID")
	if !ok {
		return
	}
	var req logBatchRequest
	if !s.decodeOrFail(w, r, &req) {
		return
	}
	res, err := s.svc.AppendLogs(r.Context(), runner(r), id, domain.LogBatch{Step: req.Step, FirstLine: req.FirstLine, Lines: req.Lines})
	if err != nil {
		if _, gap := domain.ErrorDetails(err)["expected_line"]; gap {
			// Like a resumable upload's 416: the client resends from the
			// line the server expects.
			s.writeErrorStatus(w, r, err, http.StatusRequestedRangeNotSatisfiable)
			return
		}
		s.writeError(w, r, err)
		return
	}
	out := logAppendJSON{Appended: len(res.Lines), NextLine: res.NextLine}
	if n := len(res.Lines); n > 0 {
		out.FirstSeq, out.LastSeq = res.Lines[0].Seq, res.Lines[n-1].Seq
		if s.cfg.Logs != nil {
			s.cfg.Logs.BroadcastLogs(context.WithoutCancel(r.Context()), id, res.Lines)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// queryUint reads an optional non-negative integer query parameter.
func (s *Server) queryUint(w http.ResponseWriter, r *http.Request, name string, def, max uint64) (uint64, bool) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, true
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n > max {
		s.writeError(w, r, domain.Errorf(domain.EInvalid, "%s must be an integer from 0 to %d.", name, max).WithDetail("field", name))
		return 0, false
	}
	return n, true
}

type logPageJSON struct {
	Lines     []logLineJSON `json:"lines"`
	NextSince uint64        `json:"next_since"`
	Top       uint64        `json:"top"`
	State     string        `json:"state"`
}

func (s *Server) readLogs(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "deploymentID")
	if !ok {
		return
	}
	since, ok := s.queryUint(w, r, "since", 0, 1<<53)
	if !ok {
		return
	}
	n, ok := s.queryUint(w, r, "lines", 1000, domain.MaxLogReadLines)
	if !ok {
		return
	}
	if n == 0 {
		s.writeError(w, r, domain.Errorf(domain.EInvalid, "lines must be at least 1.").WithDetail("field", "lines"))
		return
	}
	p, err := s.svc.ReadLogs(r.Context(), principal(r).UserID, id, since, int(n))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := logPageJSON{Lines: toLogLinesJSON(p.Lines), NextSince: since, Top: p.Top, State: string(p.Deployment.State)}
	if len(p.Lines) > 0 {
		out.NextSince = p.Lines[len(p.Lines)-1].Seq
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) downloadLogs(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "deploymentID")
	if !ok {
		return
	}
	// The first page decides the status: an error before any line is
	// written is an ordinary error response.
	var bw *bufio.Writer
	err := s.svc.StreamLogs(r.Context(), principal(r).UserID, id, func(ls []domain.LogLine) error {
		if bw == nil {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Content-Disposition", `attachment; filename="deployment-`+id.String()+`.log"`)
			w.WriteHeader(http.StatusOK)
			bw = bufio.NewWriterSize(w, 64<<10)
		}
		for _, l := range ls {
			bw.WriteString(l.Text)
			if err := bw.WriteByte('\n'); err != nil {
				return err
			}
		}
		return nil
	})
	switch {
	case bw != nil:
		if err != nil {
			s.log.WarnContext(r.Context(), "log download cut short", "deployment_id", id, "err", err)
		}
		bw.Flush()
	case err != nil:
		s.writeError(w, r, err)
	default:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="deployment-`+id.String()+`.log"`)
		w.WriteHeader(http.StatusOK)
	}
}

type logMatchesJSON struct {
	Lines    []logLineJSON `json:"lines"`
	Complete bool          `json:"complete"`
	Searched uint64        `json:"searched"`
}

func (s *Server) searchLogs(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "deploymentID")
	if !ok {
		return
	}
	q := r.URL.Query()
	max, ok := s.queryUint(w, r, "max", domain.MaxLogMatches, domain.MaxLogMatches)
	if !ok {
		return
	}
	regex := false
	switch q.Get("regex") {
	case "", "false", "0":
	case "true", "1":
		regex = true
	default:
		s.writeError(w, r, domain.Errorf(domain.EInvalid, "regex must be true or false.").WithDetail("field", "regex"))
		return
	}
	m, err := s.svc.SearchLogs(r.Context(), principal(r).UserID, id, domain.LogSearch{Query: q.Get("q"), Regex: regex, Step: q.Get("step"), Max: int(max)})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, logMatchesJSON{Lines: toLogLinesJSON(m.Lines), Complete: m.Complete, Searched: m.Searched})
}

type logSettingsJSON struct {
	RetentionDays int  `json:"retention_days"`
	Default       bool `json:"default"`
}

func (s *Server) getLogSettings(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "projectID")
	if !ok {
		return
	}
	st, err := s.svc.GetLogSettings(r.Context(), principal(r).UserID, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, logSettingsJSON{RetentionDays: st.RetentionDays, Default: st.Default})
}

type logSettingsRequest struct {
	RetentionDays *int `json:"retention_days"`
}

func (s *Server) updateLogSettings(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "projectID")
	if !ok {
		return
	}
	var req logSettingsRequest
	if !s.decodeOrFail(w, r, &req) {
		return
	}
	if req.RetentionDays == nil {
		s.writeError(w, r, domain.Errorf(domain.EInvalid, "retention_days is required.").WithDetail("field", "retention_days"))
		return
	}
	st, err := s.svc.SetLogRetention(r.Context(), principal(r).UserID, id, *req.RetentionDays)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, logSettingsJSON{RetentionDays: st.RetentionDays, Default: st.Default})
}

type logSecretJSON struct {
	ID        uuid.UUID `json:"id"`
	ProjectID uuid.UUID `json:"project_id"`
	Name      string    `json:"name"`
	CreatedBy uuid.UUID `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
}

func toLogSecretJSON(sec *domain.LogSecret) logSecretJSON {
	return logSecretJSON{ID: sec.ID, ProjectID: sec.ProjectID, Name: sec.Name, CreatedBy: sec.CreatedBy, CreatedAt: sec.CreatedAt}
}

func (s *Server) listLogSecrets(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "projectID")
	if !ok {
		return
	}
	secs, err := s.svc.ListLogSecrets(r.Context(), principal(r).UserID, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list(secs, "", toLogSecretJSON))
}

type logSecretRequest struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

func (s *Server) createLogSecret(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r, "projectID")
	if !ok {
		return
	}
	var req logSecretRequest
	if !s.decodeOrFail(w, r, &req) {
		return
	}
	sec, err := s.svc.CreateLogSecret(r.Context(), principal(r).UserID, id, req.Name, req.Value)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, toLogSecretJSON(sec))
}

func (s *Server) deleteLogSecret(w http.ResponseWriter, r *http.Request) {
	project, ok := s.pathID(w, r, "projectID")
	if !ok {
		return
	}
	secret, ok := s.pathID(w, r, "secretID")
	if !ok {
		return
	}
	if err := s.svc.DeleteLogSecret(r.Context(), principal(r).UserID, project, secret); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
