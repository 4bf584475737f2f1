package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain"
)

// logTests are the LogStore contract tests, run by Run.
var logTests = []struct {
	name string
	fn   func(t *testing.T, s domain.Store)
}{
	{"LogAppendRead", testLogAppendRead},
	{"LogDropOld", testLogDropOld},
	{"LogPrune", testLogPrune},
	{"LogSecrets", testLogSecrets},
	{"LogRollback", testLogRollback},
}

// appendChunk stores lines of step as the runner would: under the log lock.
func (e *deployEnv) appendChunk(t *testing.T, d *domain.Deployment, step string, lines []string, at time.Time) *domain.LogChunk {
	t.Helper()
	var c *domain.LogChunk
	inTx(t, e.s, e.token.ID, func(tx domain.Tx) error {
		st, err := tx.LockLogState(ctx, d.ID)
		if err != nil {
			return err
		}
		next, err := tx.LogStepNext(ctx, d.ID, step)
		if err != nil {
			return err
		}
		var bytes int64
		for _, l := range lines {
			bytes += int64(len(l))
		}
		c = &domain.LogChunk{DeploymentID: d.ID, FirstSeq: st.NextSeq, LastSeq: st.NextSeq + uint64(len(lines)) - 1, Step: step,
			FirstLine: next, LastLine: next + uint64(len(lines)) - 1, Lines: lines, Bytes: bytes, CreatedAt: at}
		st.NextSeq, st.Lines, st.Bytes = c.LastSeq+1, st.Lines+int64(len(lines)), st.Bytes+bytes
		return tx.AppendLogChunk(ctx, c, st)
	})
	return c
}

func lines(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s %d \x1b[32mok\x1b[0m", prefix, i+1)
	}
	return out
}

func seqs(cs []*domain.LogChunk) []string {
	out := []string{}
	for _, c := range cs {
		out = append(out, fmt.Sprintf("%s:%d-%d@%d-%d", c.Step, c.FirstLine, c.LastLine, c.FirstSeq, c.LastSeq))
	}
	return out
}

func testLogAppendRead(t *testing.T, s domain.Store) {
	e := newDeployEnv(t, s)
	d := e.create(t, newDeployment(e.project, "production", now))
	var st *domain.LogState
	inTx(t, s, e.owner.ID, func(tx domain.Tx) (err error) { st, err = tx.LogState(ctx, d.ID); return })
	assert.Equal(t, &domain.LogState{DeploymentID: d.ID, NextSeq: 1}, st, "no log yet")

	first := e.appendChunk(t, d, "install", lines("install", 3), now)
	e.appendChunk(t, d, "build", lines("build", 2), now)
	e.appendChunk(t, d, "install", lines("install more", 4), now)
	var cs []*domain.LogChunk
	inTx(t, s, e.owner.ID, func(tx domain.Tx) (err error) { cs, err = tx.LogChunks(ctx, d.ID, 0, 0); return })
	assert.Equal(t, []string{"install:1-3@1-3", "build:1-2@4-5", "install:4-7@6-9"}, seqs(cs))
	assert.Equal(t, first, cs[0], "a chunk reads back as stored, escape codes and all")
	inTx(t, s, e.owner.ID, func(tx domain.Tx) (err error) { cs, err = tx.LogChunks(ctx, d.ID, 3, 0); return })
	assert.Equal(t, []string{"build:1-2@4-5", "install:4-7@6-9"}, seqs(cs))
	inTx(t, s, e.owner.ID, func(tx domain.Tx) (err error) { cs, err = tx.LogChunks(ctx, d.ID, 4, 1); return })
	assert.Equal(t, []string{"build:1-2@4-5"}, seqs(cs), "the chunk holding the line after 4 is enough for one line")
	inTx(t, s, e.owner.ID, func(tx domain.Tx) (err error) { cs, err = tx.LogChunks(ctx, d.ID, 9, 0); return })
	assert.Empty(t, cs)

	inTx(t, s, e.owner.ID, func(tx domain.Tx) (err error) { st, err = tx.LogState(ctx, d.ID); return })
	assert.Equal(t, uint64(10), st.NextSeq)
	assert.Equal(t, int64(9), st.Lines)
	var next uint64
	inTx(t, s, e.owner.ID, func(tx domain.Tx) (err error) { next, err = tx.LogStepNext(ctx, d.ID, "install"); return })
	assert.Equal(t, uint64(8), next)
	inTx(t, s, e.owner.ID, func(tx domain.Tx) (err error) { next, err = tx.LogStepNext(ctx, d.ID, "deploy"); return })
	assert.Equal(t, uint64(1), next)

	code(t, domain.ENotFound, s.InTx(ctx, e.owner.ID, func(tx domain.Tx) error {
		_, err := tx.LockLogState(ctx, id())
		return err
	}), "the log of a missing deployment")
}

func testLogDropOld(t *testing.T, s domain.Store) {
	e := newDeployEnv(t, s)
	d := e.create(t, newDeployment(e.project, "production", now))
	for i := range 5 {
		e.appendChunk(t, d, "build", lines(fmt.Sprint("batch", i), 10), now)
	}
	drop := func(maxLines, maxBytes int64) (int64, uint64) {
		t.Helper()
		var n int64
		var last uint64
		inTx(t, s, e.token.ID, func(tx domain.Tx) (err error) {
			if _, err = tx.LockLogState(ctx, d.ID); err != nil {
				return err
			}
			n, _, last, err = tx.DropOldLogChunks(ctx, d.ID, maxLines, maxBytes)
			return err
		})
		return n, last
	}
	n, last := drop(50, 1<<30)
	assert.Equal(t, int64(0), n, "within the limits nothing goes")
	assert.Equal(t, uint64(0), last)
	n, last = drop(25, 1<<30)
	assert.Equal(t, int64(30), n, "the tail keeps the newest chunks that fit")
	assert.Equal(t, uint64(30), last)
	n, last = drop(1, 1)
	assert.Equal(t, int64(10), n, "the newest chunk always stays")
	assert.Equal(t, uint64(40), last)
	var cs []*domain.LogChunk
	inTx(t, s, e.owner.ID, func(tx domain.Tx) (err error) { cs, err = tx.LogChunks(ctx, d.ID, 0, 0); return })
	assert.Equal(t, []string{"build:41-50@41-50"}, seqs(cs))
}

func testLogPrune(t *testing.T, s domain.Store) {
	e := newDeployEnv(t, s)
	d := e.create(t, newDeployment(e.project, "production", now))
	e.appendChunk(t, d, "build", lines("old", 3), now.AddDate(0, 0, -40))
	e.appendChunk(t, d, "build", lines("recent", 2), now.AddDate(0, 0, -10))
	other := newProject(t, s, e.ws, e.owner.ID, "short retention")
	d2 := e.create(t, newDeployment(other, "production", now))
	tok := e.newToken(t, other, "other runner")
	e2 := &deployEnv{s: s, owner: e.owner, ws: e.ws, project: other, token: tok}
	e2.appendChunk(t, d2, "build", lines("recent elsewhere", 2), now.AddDate(0, 0, -10))
	inTx(t, s, e.owner.ID, func(tx domain.Tx) error { return tx.PutLogRetention(ctx, other.ID, 7, now) })
	var days int
	inTx(t, s, e.owner.ID, func(tx domain.Tx) (err error) { days, err = tx.LogRetention(ctx, other.ID); return })
	assert.Equal(t, 7, days)
	inTx(t, s, e.owner.ID, func(tx domain.Tx) (err error) { days, err = tx.LogRetention(ctx, e.project.ID); return })
	assert.Equal(t, 0, days)

	var n int
	inTx(t, s, uuid.Nil, func(tx domain.Tx) (err error) { n, err = tx.PruneLogs(ctx, now, 30, 100); return })
	assert.Equal(t, 2, n, "the 40-day-old chunk (default 30 days) and the 10-day-old one of the 7-day project")
	var cs []*domain.LogChunk
	inTx(t, s, e.owner.ID, func(tx domain.Tx) (err error) { cs, err = tx.LogChunks(ctx, d.ID, 0, 0); return })
	assert.Equal(t, []string{"build:4-5@4-5"}, seqs(cs))
	inTx(t, s, e.owner.ID, func(tx domain.Tx) (err error) { cs, err = tx.LogChunks(ctx, d2.ID, 0, 0); return })
	assert.Empty(t, cs)
	var st *domain.LogState
	inTx(t, s, e.owner.ID, func(tx domain.Tx) (err error) { st, err = tx.LogState(ctx, d.ID); return })
	assert.Equal(t, int64(2), st.Lines, "the counts follow")
	assert.Equal(t, uint64(6), st.NextSeq, "sequence numbers are never reused")
}

func testLogSecrets(t *testing.T, s domain.Store) {
	e := newDeployEnv(t, s)
	b := &domain.LogSecret{ID: id(), ProjectID: e.project.ID, Name: "b", Value: "hunter22", CreatedBy: e.owner.ID, CreatedAt: now}
	a := &domain.LogSecret{ID: id(), ProjectID: e.project.ID, Name: "a", Value: "s3cr3t-token", CreatedBy: e.owner.ID, CreatedAt: now}
	inTx(t, s, e.owner.ID, func(tx domain.Tx) error { return tx.CreateLogSecret(ctx, b) })
	inTx(t, s, e.owner.ID, func(tx domain.Tx) error { return tx.CreateLogSecret(ctx, a) })
	code(t, domain.EConflict, s.InTx(ctx, e.owner.ID, func(tx domain.Tx) error {
		return tx.CreateLogSecret(ctx, &domain.LogSecret{ID: id(), ProjectID: e.project.ID, Name: "a", Value: "x", CreatedBy: e.owner.ID, CreatedAt: now})
	}))
	var got []*domain.LogSecret
	// The runner reads them, to mask.
	inTx(t, s, e.token.ID, func(tx domain.Tx) (err error) { got, err = tx.ListLogSecrets(ctx, e.project.ID); return })
	assert.Equal(t, []*domain.LogSecret{a, b}, got)
	inTx(t, s, e.owner.ID, func(tx domain.Tx) error { return tx.DeleteLogSecret(ctx, e.project.ID, a.ID) })
	code(t, domain.ENotFound, s.InTx(ctx, e.owner.ID, func(tx domain.Tx) error { return tx.DeleteLogSecret(ctx, e.project.ID, a.ID) }))
	code(t, domain.ENotFound, s.InTx(ctx, e.owner.ID, func(tx domain.Tx) error { return tx.DeleteLogSecret(ctx, id(), b.ID) }),
		"a secret is deleted through its own project only")
	inTx(t, s, e.owner.ID, func(tx domain.Tx) (err error) { got, err = tx.ListLogSecrets(ctx, e.project.ID); return })
	assert.Equal(t, []*domain.LogSecret{b}, got)
}

func testLogRollback(t *testing.T, s domain.Store) {
	e := newDeployEnv(t, s)
	d := e.create(t, newDeployment(e.project, "production", now))
	e.appendChunk(t, d, "build", lines("kept", 2), now)
	err := s.InTx(ctx, e.token.ID, func(tx domain.Tx) error {
		st, err := tx.LockLogState(ctx, d.ID)
		require.NoError(t, err)
		st.NextSeq = 4
		require.NoError(t, tx.AppendLogChunk(ctx, &domain.LogChunk{DeploymentID: d.ID, FirstSeq: 3, LastSeq: 3, Step: "build",
			FirstLine: 3, LastLine: 3, Lines: []string{"lost"}, Bytes: 4, CreatedAt: now}, st))
		return fmt.Errorf("changed my mind")
	})
	require.Error(t, err)
	var cs []*domain.LogChunk
	var next uint64
	inTx(t, s, e.owner.ID, func(tx domain.Tx) (err error) {
		if cs, err = tx.LogChunks(ctx, d.ID, 0, 0); err != nil {
			return err
		}
		next, err = tx.LogStepNext(ctx, d.ID, "build")
		return err
	})
	assert.Equal(t, []string{"build:1-2@1-2"}, seqs(cs))
	assert.Equal(t, uint64(3), next)
}
