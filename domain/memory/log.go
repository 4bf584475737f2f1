package memory

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tone-ai/tone/domain"
)

type logStepKey struct {
	deployment uuid.UUID
	step       string
}

// logData is the part of the store holding deployment logs.
//
// A deployment's chunk list only grows by append or is replaced by a new
// slice, so that the undo log can restore an earlier slice header.
type logData struct {
	logStates    map[uuid.UUID]*domain.LogState
	logSteps     map[logStepKey]uint64
	logChunks    map[uuid.UUID][]*domain.LogChunk // per deployment, in seq order
	logSecrets   map[uuid.UUID]*domain.LogSecret
	logRetention map[uuid.UUID]int
}

func newLogData() logData {
	return logData{
		logStates:    map[uuid.UUID]*domain.LogState{},
		logSteps:     map[logStepKey]uint64{},
		logChunks:    map[uuid.UUID][]*domain.LogChunk{},
		logSecrets:   map[uuid.UUID]*domain.LogSecret{},
		logRetention: map[uuid.UUID]int{},
	}
}

func (t *tx) LockLogState(ctx context.Context, id uuid.UUID) (*domain.LogState, error) {
	if _, ok := t.s.deployments[id]; !ok {
		return nil, notFound("Deployment")
	}
	if _, ok := t.s.logStates[id]; !ok {
		set(t, t.s.logStates, id, &domain.LogState{DeploymentID: id, NextSeq: 1})
	}
	return t.LogState(ctx, id)
}

func (t *tx) LogState(_ context.Context, id uuid.UUID) (*domain.LogState, error) {
	st, ok := t.s.logStates[id]
	if !ok {
		return &domain.LogState{DeploymentID: id, NextSeq: 1}, nil
	}
	return clone(st), nil
}

func (t *tx) SaveLogState(_ context.Context, st *domain.LogState) error {
	if _, ok := t.s.logStates[st.DeploymentID]; !ok {
		return notFound("Log")
	}
	set(t, t.s.logStates, st.DeploymentID, clone(st))
	return nil
}

func (t *tx) LogStepNext(_ context.Context, id uuid.UUID, step string) (uint64, error) {
	if n, ok := t.s.logSteps[logStepKey{id, step}]; ok {
		return n, nil
	}
	return 1, nil
}

// putLogStepNext sets the next line number of a step.
func (t *tx) putLogStepNext(id uuid.UUID, step string, next uint64) {
	set(t, t.s.logSteps, logStepKey{id, step}, next)
}

func cloneChunk(c *domain.LogChunk) *domain.LogChunk {
	o := *c
	o.Lines = slices.Clone(c.Lines)
	return &o
}

func (t *tx) AppendLogChunk(ctx context.Context, c *domain.LogChunk, st *domain.LogState) error {
	if _, ok := t.s.logStates[c.DeploymentID]; !ok {
		return notFound("Log")
	}
	cs := t.s.logChunks[c.DeploymentID]
	if n := len(cs); n > 0 && cs[n-1].LastSeq >= c.FirstSeq {
		return domain.Errorf(domain.EConflict, "Log chunk exists.")
	}
	set(t, t.s.logChunks, c.DeploymentID, append(cs[:len(cs):len(cs)], cloneChunk(c)))
	t.putLogStepNext(c.DeploymentID, c.Step, c.LastLine+1)
	return t.SaveLogState(ctx, st)
}

func (t *tx) LogChunks(_ context.Context, id uuid.UUID, after uint64, maxLines int) ([]*domain.LogChunk, error) {
	cs := t.s.logChunks[id]
	i, _ := slices.BinarySearchFunc(cs, after, func(c *domain.LogChunk, after uint64) int {
		if c.LastSeq <= after {
			return -1
		}
		return 1
	})
	var out []*domain.LogChunk
	lines := 0
	for _, c := range cs[i:] {
		if maxLines > 0 && lines >= maxLines {
			break
		}
		out = append(out, cloneChunk(c))
		lines += len(c.Lines)
	}
	return out, nil
}

func (t *tx) DropOldLogChunks(_ context.Context, id uuid.UUID, maxLines, maxBytes int64) (lines, bytes int64, lastSeq uint64, err error) {
	cs := t.s.logChunks[id]
	var keptLines, keptBytes int64
	keep := len(cs)
	for keep > 0 {
		c := cs[keep-1]
		if keep < len(cs) && (keptLines+int64(len(c.Lines)) > maxLines || keptBytes+c.Bytes > maxBytes) {
			break
		}
		keptLines += int64(len(c.Lines))
		keptBytes += c.Bytes
		keep--
	}
	for _, c := range cs[:keep] {
		lines += int64(len(c.Lines))
		bytes += c.Bytes
		lastSeq = c.LastSeq
	}
	if keep > 0 {
		set(t, t.s.logChunks, id, slices.Clone(cs[keep:]))
	}
	return lines, bytes, lastSeq, nil
}

func (t *tx) PruneLogs(_ context.Context, at time.Time, defaultDays, max int) (int, error) {
	n := 0
	for id, cs := range t.s.logChunks {
		d, ok := t.s.deployments[id]
		if !ok {
			continue
		}
		days := t.s.logRetention[d.ProjectID]
		if days == 0 {
			days = defaultDays
		}
		cut := at.AddDate(0, 0, -days)
		var kept []*domain.LogChunk
		st := clone(t.s.logStates[id])
		for _, c := range cs {
			if n < max && c.CreatedAt.Before(cut) {
				n++
				st.Lines -= int64(len(c.Lines))
				st.Bytes -= c.Bytes
				continue
			}
			kept = append(kept, c)
		}
		if len(kept) != len(cs) {
			set(t, t.s.logChunks, id, kept)
			set(t, t.s.logStates, id, st)
		}
	}
	return n, nil
}

func (t *tx) ListLogSecrets(_ context.Context, project uuid.UUID) ([]*domain.LogSecret, error) {
	out := []*domain.LogSecret{}
	for _, s := range t.s.logSecrets {
		if s.ProjectID == project {
			out = append(out, clone(s))
		}
	}
	slices.SortFunc(out, func(a, b *domain.LogSecret) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (t *tx) CreateLogSecret(_ context.Context, s *domain.LogSecret) error {
	if _, ok := t.s.projects[s.ProjectID]; !ok {
		return notFound("Project")
	}
	for _, o := range t.s.logSecrets {
		if o.ProjectID == s.ProjectID && o.Name == s.Name {
			return domain.Errorf(domain.EConflict, "The project has a log secret named %q.", s.Name)
		}
	}
	set(t, t.s.logSecrets, s.ID, clone(s))
	return nil
}

func (t *tx) DeleteLogSecret(_ context.Context, project, id uuid.UUID) error {
	s, ok := t.s.logSecrets[id]
	if !ok || s.ProjectID != project {
		return notFound("Log secret")
	}
	del(t, t.s.logSecrets, id)
	return nil
}

func (t *tx) LogRetention(_ context.Context, project uuid.UUID) (int, error) {
	return t.s.logRetention[project], nil
}

func (t *tx) PutLogRetention(_ context.Context, project uuid.UUID, days int, _ time.Time) error {
	if _, ok := t.s.projects[project]; !ok {
		return notFound("Project")
	}
	set(t, t.s.logRetention, project, days)
	return nil
}

// deleteDeploymentLogs removes a deployment's log, as ON DELETE CASCADE does.
func (t *tx) deleteDeploymentLogs(id uuid.UUID) {
	del(t, t.s.logStates, id)
	del(t, t.s.logChunks, id)
	for k := range t.s.logSteps {
		if k.deployment == id {
			del(t, t.s.logSteps, k)
		}
	}
}

// deleteProjectLogSettings removes a project's secrets and retention.
func (t *tx) deleteProjectLogSettings(project uuid.UUID) {
	for id, s := range t.s.logSecrets {
		if s.ProjectID == project {
			del(t, t.s.logSecrets, id)
		}
	}
	del(t, t.s.logRetention, project)
}
