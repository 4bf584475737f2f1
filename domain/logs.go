package domain

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// LogsChannel is the realtime channel of a deployment's log:
// "logs:<deployment id>". Its offsets are the lines' Seq.
func LogsChannel(id uuid.UUID) string { return "logs:" + id.String() }

// EventDeploymentFinished goes out on the logs channel when a deployment
// reaches a final state; its data says how many lines the log has, so that
// a live tail knows when it has them all.
const EventDeploymentFinished = "deployment.finished"

// Log limits.
const (
	MaxLogBatchLines = 10000    // lines per appended batch
	MaxLogLineBytes  = 64 << 10 // bytes per line
	MaxLogBatchBytes = 8 << 20  // bytes per appended batch
	MaxLogSecrets    = 100      // secrets per project
	MaxLogSecretLen  = 4096     // bytes per secret value
	MinLogSecretLen  = 4        // shorter values would mask too much
	MaxLogReadLines  = 10000    // lines per read
	MaxLogMatches    = 1000     // search results
	MaxLogQueryLen   = 1000     // bytes of a search query
	logMask          = "***"    // what a secret becomes
	logPageLines     = 5000     // lines per transaction when streaming or searching
	maxRetentionDays = 3650     // ten years
	searchTimeout    = 5 * time.Second
)

// TruncationMarker is the text of the line that stands for the lines the
// cap dropped, at the Seq of the last dropped line.
func TruncationMarker(dropped uint64) string {
	return fmt.Sprintf("[tone] %d earlier lines were dropped: the log of this deployment is over its size limit", dropped)
}

// LogBatch is a batch of lines of one step, the first of which is line
// FirstLine of the step.
type LogBatch struct {
	Step      string
	FirstLine uint64
	Lines     []string
}

// LogAppend is the outcome of an append: the lines stored (after masking,
// empty for a batch sent before) and the line the step expects next.
type LogAppend struct {
	Lines    []LogLine
	NextLine uint64
}

func checkLogBatch(b LogBatch) error {
	if n := utf8.RuneCountInString(b.Step); n == 0 || n > MaxStepNameLen || !printable(b.Step) {
		return Errorf(EInvalid, "step must be 1 to %d printable characters.", MaxStepNameLen).WithDetail("field", "step")
	}
	if b.FirstLine == 0 || b.FirstLine > 1<<53 {
		return Errorf(EInvalid, "first_line must be at least 1.").WithDetail("field", "first_line")
	}
	if len(b.Lines) == 0 || len(b.Lines) > MaxLogBatchLines {
		return Errorf(EInvalid, "A batch holds 1 to %d lines.", MaxLogBatchLines).WithDetail("field", "lines")
	}
	total := 0
	for i, l := range b.Lines {
		total += len(l)
		if len(l) > MaxLogLineBytes || !utf8.ValidString(l) || strings.ContainsAny(l, "\n\x00") {
			return Errorf(EInvalid, "Line %d of the batch is not valid: at most %d bytes of UTF-8, without newlines or NUL.", i, MaxLogLineBytes).
				WithDetail("field", "lines")
		}
	}
	if total > MaxLogBatchBytes {
		return Errorf(EInvalid, "A batch holds at most %d bytes.", MaxLogBatchBytes).WithDetail("field", "lines")
	}
	return nil
}

// masker returns a function that replaces every secret value in a line.
func masker(secrets []*LogSecret) func(string) string {
	if len(secrets) == 0 {
		return func(s string) string { return s }
	}
	pairs := make([]string, 0, 2*len(secrets))
	for _, s := range secrets {
		pairs = append(pairs, s.Value, logMask)
	}
	r := strings.NewReplacer(pairs...)
	return r.Replace
}

// AppendLogs stores a batch of lines of a step of a deployment of the
// runner's project, masking the project's secrets first.
//
// Appending is idempotent: lines the step has already are skipped, so a
// batch sent again, wholly or overlapping the end, stores only what is new.
// A batch that starts after the step's next line would leave a gap: it is
// EConflict with details.expected_line, the line the step expects. A
// deployment that has finished takes no more lines (EConflict with
// details.state). Batches of one deployment are stored one at a time.
//
// Once a deployment's log holds more than the configured lines or bytes,
// its oldest batches are dropped; reads then start with a truncation
// marker line.
func (s *Service) AppendLogs(ctx context.Context, r *Runner, id uuid.UUID, b LogBatch) (*LogAppend, error) {
	if err := checkLogBatch(b); err != nil {
		return nil, err
	}
	var out *LogAppend
	err := s.store.InTx(ctx, r.TokenID, func(tx Tx) error {
		d, err := tx.LockDeploymentShared(ctx, id)
		if ErrorCode(err) == ENotFound || err == nil && d.ProjectID != r.ProjectID {
			return notFound("Deployment")
		}
		if err != nil {
			return err
		}
		if d.State.Final() {
			return Errorf(EConflict, "The deployment has finished (%s); it takes no more lines.", d.State).WithDetail("state", string(d.State))
		}
		st, err := tx.LockLogState(ctx, id)
		if err != nil {
			return err
		}
		next, err := tx.LogStepNext(ctx, id, b.Step)
		if err != nil {
			return err
		}
		out = &LogAppend{NextLine: next, Lines: []LogLine{}}
		if b.FirstLine > next {
			return Errorf(EConflict, "Step %q expects line %d next; this batch starts at %d.", b.Step, next, b.FirstLine).
				WithDetail("expected_line", next)
		}
		skip := next - b.FirstLine
		if skip >= uint64(len(b.Lines)) {
			return nil // sent before
		}
		secrets, err := tx.ListLogSecrets(ctx, r.ProjectID)
		if err != nil {
			return err
		}
		mask := masker(secrets)
		lines := make([]string, 0, uint64(len(b.Lines))-skip)
		var bytes int64
		for _, l := range b.Lines[skip:] {
			l = mask(l)
			lines = append(lines, l)
			bytes += int64(len(l))
		}
		c := &LogChunk{
			DeploymentID: id, FirstSeq: st.NextSeq, LastSeq: st.NextSeq + uint64(len(lines)) - 1, Step: b.Step,
			FirstLine: next, LastLine: next + uint64(len(lines)) - 1, Lines: lines, Bytes: bytes, CreatedAt: s.now(),
		}
		st.NextSeq = c.LastSeq + 1
		st.Lines += int64(len(lines))
		st.Bytes += bytes
		if err := tx.AppendLogChunk(ctx, c, st); err != nil {
			return err
		}
		if st.Lines > s.cfg.LogMaxLines || st.Bytes > s.cfg.LogMaxBytes {
			dl, db, last, err := tx.DropOldLogChunks(ctx, id, s.cfg.LogMaxLines, s.cfg.LogMaxBytes)
			if err != nil {
				return err
			}
			st.Lines -= dl
			st.Bytes -= db
			if last > 0 {
				st.TruncatedBefore = last + 1
			}
			if err := tx.SaveLogState(ctx, st); err != nil {
				return err
			}
		}
		out.NextLine = c.LastLine + 1
		for i, l := range lines {
			out.Lines = append(out.Lines, LogLine{Seq: c.FirstSeq + uint64(i), Step: b.Step, Line: c.FirstLine + uint64(i), Text: l})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// LogPage is a range of a deployment's log.
type LogPage struct {
	Lines []LogLine
	// Top is the Seq of the last line stored when the page was read.
	Top uint64
	// Deployment is the deployment, for its state and results.
	Deployment *Deployment
}

// chunkLines turns chunks into lines after seq after, at most max of them
// (max <= 0: all).
func chunkLines(cs []*LogChunk, after uint64, max int) []LogLine {
	out := []LogLine{}
	for _, c := range cs {
		for i, text := range c.Lines {
			seq := c.FirstSeq + uint64(i)
			if seq <= after {
				continue
			}
			if max > 0 && len(out) == max {
				return out
			}
			out = append(out, LogLine{Seq: seq, Step: c.Step, Line: c.FirstLine + uint64(i), Text: text})
		}
	}
	return out
}

// readLogs reads up to max lines after seq after in tx, with the
// truncation marker in its place.
func readLogs(ctx context.Context, tx Tx, id uuid.UUID, after uint64, max int) ([]LogLine, uint64, error) {
	st, err := tx.LogState(ctx, id)
	if err != nil {
		return nil, 0, err
	}
	var out []LogLine
	if st.TruncatedBefore > 0 && after < st.TruncatedBefore-1 {
		out = append(out, LogLine{Seq: st.TruncatedBefore - 1, Text: TruncationMarker(st.TruncatedBefore - 1)})
		after = st.TruncatedBefore - 1
		max--
	}
	if max > 0 {
		cs, err := tx.LogChunks(ctx, id, after, max)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, chunkLines(cs, after, max)...)
	}
	if out == nil {
		out = []LogLine{}
	}
	return out, st.NextSeq - 1, nil
}

// ReadLogs returns up to max lines of a deployment's log after Seq after
// (anyone who can see the deployment). When the cap dropped lines, a read
// from before the cut starts with a truncation marker line at the Seq of
// the last dropped line.
func (s *Service) ReadLogs(ctx context.Context, actor, id uuid.UUID, after uint64, max int) (*LogPage, error) {
	if max <= 0 || max > MaxLogReadLines {
		return nil, Errorf(EInvalid, "Read 1 to %d lines at a time.", MaxLogReadLines).WithDetail("field", "lines")
	}
	page := &LogPage{}
	err := s.store.InTx(ctx, actor, func(tx Tx) error {
		d, _, role, err := deploymentAccess(ctx, tx, id, actor, false)
		if err != nil {
			return err
		}
		if err := authorize(role, ActDeploymentRead, "Deployment"); err != nil {
			return err
		}
		page.Deployment = d
		page.Lines, page.Top, err = readLogs(ctx, tx, id, after, max)
		return err
	})
	if err != nil {
		return nil, err
	}
	return page, nil
}

// StreamLogs calls fn with a deployment's whole log, a page at a time, in
// order (anyone who can see the deployment). Each page is read in its own
// transaction, so a log being written is read up to where it was when its
// last page was read.
func (s *Service) StreamLogs(ctx context.Context, actor, id uuid.UUID, fn func([]LogLine) error) error {
	var after uint64
	for {
		p, err := s.ReadLogs(ctx, actor, id, after, logPageLines)
		if err != nil {
			return err
		}
		if len(p.Lines) == 0 {
			return nil
		}
		if err := fn(p.Lines); err != nil {
			return err
		}
		after = p.Lines[len(p.Lines)-1].Seq
	}
}

// LogSearch asks for the lines of a deployment's log that contain Query
// (or match it as a Go regular expression, with Regex), in one step or in
// all (Step ""), at most Max of them.
type LogSearch struct {
	Query string
	Regex bool
	Step  string
	Max   int
}

// LogMatches is the result of a search. Complete is false when the search
// stopped early, at Max matches or at its time limit; Searched is the Seq
// up to which it looked.
type LogMatches struct {
	Lines    []LogLine
	Complete bool
	Searched uint64
}

// SearchLogs searches a deployment's log (anyone who can see the
// deployment). It stops after MaxLogMatches matches or a few seconds,
// whichever comes first, and says so.
func (s *Service) SearchLogs(ctx context.Context, actor, id uuid.UUID, q LogSearch) (*LogMatches, error) {
	if q.Query == "" || len(q.Query) > MaxLogQueryLen {
		return nil, Errorf(EInvalid, "q must be 1 to %d bytes.", MaxLogQueryLen).WithDetail("field", "q")
	}
	if q.Max <= 0 || q.Max > MaxLogMatches {
		q.Max = MaxLogMatches
	}
	match := func(l string) bool { return strings.Contains(l, q.Query) }
	if q.Regex {
		re, err := regexp.Compile(q.Query)
		if err != nil {
			return nil, Errorf(EInvalid, "q is not a valid regular expression: %v.", err).WithDetail("field", "q")
		}
		match = re.MatchString
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.LogSearchTimeout)
	defer cancel()
	out := &LogMatches{Lines: []LogLine{}}
	var after uint64
	for {
		p, err := s.ReadLogs(ctx, actor, id, after, logPageLines)
		if ctx.Err() != nil {
			return out, nil // out of time: what was found so far
		}
		if err != nil {
			return nil, err
		}
		if len(p.Lines) == 0 {
			out.Complete = true
			return out, nil
		}
		for _, l := range p.Lines {
			if ctx.Err() != nil {
				return out, nil
			}
			out.Searched = l.Seq
			if (q.Step == "" || l.Step == q.Step) && match(l.Text) {
				out.Lines = append(out.Lines, l)
				if len(out.Lines) == q.Max {
					return out, nil
				}
			}
		}
		after = p.Lines[len(p.Lines)-1].Seq
	}
}

// LogSettings are a project's log settings.
type LogSettings struct {
	RetentionDays int  // how long lines are kept
	Default       bool // RetentionDays is the server's default, not the project's own
}

// GetLogSettings returns a project's log settings (admins and up).
func (s *Service) GetLogSettings(ctx context.Context, actor, projectID uuid.UUID) (*LogSettings, error) {
	var out *LogSettings
	err := s.store.InTx(ctx, actor, func(tx Tx) error {
		_, role, err := projectAccess(ctx, tx, projectID, actor)
		if err != nil {
			return err
		}
		if err := authorize(role, ActLogSettingsManage, "Project"); err != nil {
			return err
		}
		days, err := tx.LogRetention(ctx, projectID)
		out = &LogSettings{RetentionDays: days}
		if days == 0 {
			out.RetentionDays, out.Default = s.cfg.LogRetentionDays, true
		}
		return err
	})
	return out, err
}

// SetLogRetention sets how many days a project's log lines are kept
// (admins and up); the pruner deletes older ones.
func (s *Service) SetLogRetention(ctx context.Context, actor, projectID uuid.UUID, days int) (*LogSettings, error) {
	if days < 1 || days > maxRetentionDays {
		return nil, Errorf(EInvalid, "retention_days must be between 1 and %d.", maxRetentionDays).WithDetail("field", "retention_days")
	}
	err := s.inTx(ctx, actor, func(tx Tx) error {
		p, role, err := projectAccess(ctx, tx, projectID, actor)
		if err != nil {
			return err
		}
		if err := authorize(role, ActLogSettingsManage, "Project"); err != nil {
			return err
		}
		if err := tx.PutLogRetention(ctx, projectID, days, s.now()); err != nil {
			return err
		}
		ev := s.audit(ctx, actor, "log_settings.update", "project", projectID.String())
		ev.WorkspaceID, ev.ProjectID = p.WorkspaceID, projectID
		ev.Details = map[string]any{"retention_days": days}
		return tx.AppendAudit(ctx, ev)
	})
	if err != nil {
		return nil, err
	}
	return &LogSettings{RetentionDays: days}, nil
}

// ListLogSecrets lists a project's log secrets without their values
// (admins and up).
func (s *Service) ListLogSecrets(ctx context.Context, actor, projectID uuid.UUID) ([]*LogSecret, error) {
	var out []*LogSecret
	err := s.store.InTx(ctx, actor, func(tx Tx) error {
		_, role, err := projectAccess(ctx, tx, projectID, actor)
		if err != nil {
			return err
		}
		if err := authorize(role, ActLogSettingsManage, "Project"); err != nil {
			return err
		}
		out, err = tx.ListLogSecrets(ctx, projectID)
		return err
	})
	for _, sec := range out {
		sec.Value = ""
	}
	return out, err
}

// CreateLogSecret adds a value to mask in a project's logs from now on
// (admins and up). The value is never returned.
func (s *Service) CreateLogSecret(ctx context.Context, actor, projectID uuid.UUID, name, value string) (*LogSecret, error) {
	name, err := checkName("name", name)
	if err != nil {
		return nil, err
	}
	if len(value) < MinLogSecretLen || len(value) > MaxLogSecretLen || !utf8.ValidString(value) || strings.ContainsAny(value, "\n\x00") {
		return nil, Errorf(EInvalid, "value must be %d to %d bytes of UTF-8 on one line.", MinLogSecretLen, MaxLogSecretLen).WithDetail("field", "value")
	}
	sec := &LogSecret{ID: newID(), ProjectID: projectID, Name: name, Value: value, CreatedBy: actor, CreatedAt: s.now()}
	err = s.inTx(ctx, actor, func(tx Tx) error {
		p, role, err := projectAccess(ctx, tx, projectID, actor)
		if err != nil {
			return err
		}
		if err := authorize(role, ActLogSettingsManage, "Project"); err != nil {
			return err
		}
		have, err := tx.ListLogSecrets(ctx, projectID)
		if err != nil {
			return err
		}
		if len(have) >= MaxLogSecrets {
			return Errorf(EConflict, "A project has at most %d log secrets.", MaxLogSecrets)
		}
		if err := tx.CreateLogSecret(ctx, sec); err != nil {
			return err
		}
		ev := s.audit(ctx, actor, "log_secret.create", "log_secret", sec.ID.String())
		ev.WorkspaceID, ev.ProjectID = p.WorkspaceID, projectID
		ev.Details = map[string]any{"name": name}
		return tx.AppendAudit(ctx, ev)
	})
	if err != nil {
		return nil, err
	}
	out := *sec
	out.Value = ""
	return &out, nil
}

// DeleteLogSecret stops masking a secret (admins and up); lines stored
// before stay masked.
func (s *Service) DeleteLogSecret(ctx context.Context, actor, projectID, secretID uuid.UUID) error {
	return s.inTx(ctx, actor, func(tx Tx) error {
		p, role, err := projectAccess(ctx, tx, projectID, actor)
		if err != nil {
			return err
		}
		if err := authorize(role, ActLogSettingsManage, "Project"); err != nil {
			return err
		}
		if err := tx.DeleteLogSecret(ctx, projectID, secretID); err != nil {
			return err
		}
		ev := s.audit(ctx, actor, "log_secret.delete", "log_secret", secretID.String())
		ev.WorkspaceID, ev.ProjectID = p.WorkspaceID, projectID
		return tx.AppendAudit(ctx, ev)
	})
}

// PruneLogs deletes the log lines older than their project's retention,
// a batch at a time, and returns how many chunks it deleted.
func (s *Service) PruneLogs(ctx context.Context) (int, error) {
	total := 0
	for {
		var n int
		err := s.store.InTx(ctx, uuid.Nil, func(tx Tx) (err error) {
			n, err = tx.PruneLogs(ctx, s.now(), s.cfg.LogRetentionDays, 1000)
			return err
		})
		total += n
		if err != nil || n < 1000 {
			return total, err
		}
	}
}

// RunLogPruner calls PruneLogs every interval until ctx is done.
func (s *Service) RunLogPruner(ctx context.Context, interval time.Duration) {
	every(ctx, interval, func() {
		n, err := s.PruneLogs(ctx)
		if err != nil && ctx.Err() == nil {
			s.cfg.Logger.WarnContext(ctx, "log pruner failed", "err", err)
		}
		if n > 0 {
			s.cfg.Logger.InfoContext(ctx, "log chunks pruned", "count", n)
		}
	})
}

// LogFinal is what the logs channel says when a deployment finishes: its
// final state and results, and how many lines its log has.
type LogFinal struct {
	State      DeployState
	Reason     string
	URL        string
	Metrics    map[string]int64
	DurationMS int64
	LastSeq    uint64
}

// logFinal emits deployment.finished on the logs channel of d, which has
// just reached a final state in tx.
func (s *Service) logFinal(ctx context.Context, tx Tx, actor uuid.UUID, d *Deployment) error {
	st, err := tx.LogState(ctx, d.ID)
	if err != nil {
		return err
	}
	return s.emit(ctx, tx, actor, LogsChannel(d.ID), EventDeploymentFinished, map[string]any{
		"deployment_id": d.ID, "state": d.State, "reason": d.Reason, "url": d.URL, "metrics": d.Metrics,
		"duration_ms": d.Duration().Milliseconds(), "last_seq": st.NextSeq - 1,
	})
}

// AuthorizeDeployment returns nil if the actor may perform a on the
// deployment's project, ENotFound if the actor cannot see the deployment,
// EForbidden otherwise.
func (s *Service) AuthorizeDeployment(ctx context.Context, actor, id uuid.UUID, a Action) error {
	return s.store.InTx(ctx, actor, func(tx Tx) error {
		_, _, role, err := deploymentAccess(ctx, tx, id, actor, false)
		if err != nil {
			return err
		}
		return authorize(role, a, "Deployment")
	})
}
