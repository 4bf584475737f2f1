package domain

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// LogLine is one line of a deployment's log. Seq numbers the lines of the
// whole deployment from 1, across steps, in the order they were stored:
// it is the offset of the realtime channel logs:<deployment id>. Line
// numbers the lines of one step from 1, as the runner sent them.
type LogLine struct {
	Seq  uint64
	Step string
	Line uint64
	Text string
}

// LogChunk is one stored batch of lines of one step: lines FirstLine to
// LastLine of Step, which are FirstSeq to LastSeq of the deployment.
type LogChunk struct {
	DeploymentID uuid.UUID
	FirstSeq     uint64
	LastSeq      uint64
	Step         string
	FirstLine    uint64
	LastLine     uint64
	Lines        []string
	Bytes        int64
	CreatedAt    time.Time
}

// LogState is what is stored of a deployment's log: the next sequence
// number, the lines and bytes kept, and where the cap cut (every line
// below TruncatedBefore was dropped; 0 if none was).
type LogState struct {
	DeploymentID    uuid.UUID
	NextSeq         uint64
	Lines           int64
	Bytes           int64
	TruncatedBefore uint64
}

// LogSecret is a value masked out of a project's logs. Value is stored so
// that it can be found in lines, and never returned by the API.
type LogSecret struct {
	ID        uuid.UUID
	ProjectID uuid.UUID
	Name      string
	Value     string
	CreatedBy uuid.UUID
	CreatedAt time.Time
}

// LogStore stores deployment logs.
//
// Like the DeployStore, it serves runners (actor: a deploy token id) for
// the deployments of their project.
type LogStore interface {
	// LockLogState returns a deployment's log state, creating it (NextSeq
	// 1) if absent, and holds it until the transaction ends, so that the
	// batches of one deployment are stored one at a time. Returns
	// ENotFound if the deployment does not exist.
	LockLogState(ctx context.Context, deploymentID uuid.UUID) (*LogState, error)
	// LogState returns a deployment's log state without locking it; a
	// deployment without logs has the zero state with NextSeq 1.
	LogState(ctx context.Context, deploymentID uuid.UUID) (*LogState, error)
	// SaveLogState saves NextSeq, Lines, Bytes and TruncatedBefore of a
	// state returned by LockLogState.
	SaveLogState(ctx context.Context, s *LogState) error
	// LogStepNext returns the next line number a step of a deployment
	// expects: 1 for a step without lines.
	LogStepNext(ctx context.Context, deploymentID uuid.UUID, step string) (uint64, error)
	// AppendLogChunk stores c, sets the next line of c's step to
	// c.LastLine+1 and saves st, the deployment's log state with c in it,
	// all at once. Call it only while holding the deployment's log state.
	AppendLogChunk(ctx context.Context, c *LogChunk, st *LogState) error
	// LogChunks returns the chunks of a deployment holding lines after
	// seq after (LastSeq > after), in sequence order, stopping once they
	// hold at least maxLines lines (maxLines <= 0: all).
	LogChunks(ctx context.Context, deploymentID uuid.UUID, after uint64, maxLines int) ([]*LogChunk, error)
	// DropOldLogChunks deletes a deployment's oldest chunks until the rest
	// hold at most maxLines lines and maxBytes bytes, but never its newest
	// chunk, and returns the lines and bytes it deleted and the LastSeq of
	// the newest chunk it deleted (0 if it deleted none).
	DropOldLogChunks(ctx context.Context, deploymentID uuid.UUID, maxLines, maxBytes int64) (lines, bytes int64, lastSeq uint64, err error)
	// PruneLogs deletes up to max chunks stored before t minus their
	// project's retention (defaultDays without a setting), whoever the
	// actor is, and returns how many it deleted.
	PruneLogs(ctx context.Context, t time.Time, defaultDays, max int) (int, error)

	// ListLogSecrets returns a project's secrets in name order.
	ListLogSecrets(ctx context.Context, projectID uuid.UUID) ([]*LogSecret, error)
	// CreateLogSecret inserts s. Returns EConflict if the project has a
	// secret of that name, ENotFound if the project does not exist.
	CreateLogSecret(ctx context.Context, s *LogSecret) error
	// DeleteLogSecret deletes a secret of a project. Returns ENotFound if
	// absent.
	DeleteLogSecret(ctx context.Context, projectID, id uuid.UUID) error
	// LogRetention returns a project's retention in days, or 0 if it has
	// no setting.
	LogRetention(ctx context.Context, projectID uuid.UUID) (int, error)
	// PutLogRetention sets a project's retention in days.
	PutLogRetention(ctx context.Context, projectID uuid.UUID, days int, t time.Time) error
}
