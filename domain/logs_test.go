package domain_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain"
)

func texts(ls []domain.LogLine) []string {
	out := []string{}
	for _, l := range ls {
		out = append(out, fmt.Sprintf("%d %s:%d %s", l.Seq, l.Step, l.Line, l.Text))
	}
	return out
}

func (tm *deployTeam) readAll(t *testing.T, f *fixture, d *domain.Deployment) []domain.LogLine {
	t.Helper()
	var out []domain.LogLine
	require.NoError(t, f.svc.StreamLogs(ctx, tm.viewer.UserID, d.ID, func(ls []domain.LogLine) error {
		out = append(out, ls...)
		return nil
	}))
	return out
}

func batch(step string, first uint64, lines ...string) domain.LogBatch {
	return domain.LogBatch{Step: step, FirstLine: first, Lines: lines}
}

// TestLogIngest covers what a runner may send: duplicates, overlaps, gaps,
// batches out of order, several steps, secrets, escape codes.
func TestLogIngest(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		tm := newDeployTeam(t, f)
		_, err := f.svc.CreateLogSecret(ctx, tm.admin.UserID, tm.project.ID, "npm token", "npm_s3cr3t")
		require.NoError(t, err)
		d := tm.deploy(t, f)
		r := tm.runner
		appendOK := func(b domain.LogBatch) *domain.LogAppend {
			t.Helper()
			res, err := f.svc.AppendLogs(ctx, r, d.ID, b)
			require.NoError(t, err)
			return res
		}
		gap := func(b domain.LogBatch, expected uint64) {
			t.Helper()
			_, err := f.svc.AppendLogs(ctx, r, d.ID, b)
			code(t, domain.EConflict, err)
			assert.Equal(t, expected, domain.ErrorDetails(err)["expected_line"])
		}

		res := appendOK(batch("install", 1, "\x1b[1mresolving\x1b[0m", "token=npm_s3cr3t and npm_s3cr3t again"))
		assert.Equal(t, uint64(3), res.NextLine)
		assert.Equal(t, []string{"1 install:1 \x1b[1mresolving\x1b[0m", "2 install:2 token=*** and *** again"}, texts(res.Lines))
		res = appendOK(batch("install", 1, "\x1b[1mresolving\x1b[0m", "token=npm_s3cr3t and npm_s3cr3t again"))
		assert.Empty(t, res.Lines, "a resent batch stores nothing")
		assert.Equal(t, uint64(3), res.NextLine)
		// Batch 3 (lines 5-6) arrives before batch 2 (lines 3-4).
		gap(batch("install", 5, "e", "f"), 3)
		res = appendOK(batch("build", 1, "compiling"))
		assert.Equal(t, uint64(3), res.Lines[0].Seq, "steps share the deployment's sequence")
		res = appendOK(batch("install", 2, "token=npm_s3cr3t and npm_s3cr3t again", "c", "d"))
		assert.Equal(t, []string{"4 install:3 c", "5 install:4 d"}, texts(res.Lines), "an overlapping batch stores only what is new")
		appendOK(batch("install", 5, "e", "f"))

		for _, bad := range []domain.LogBatch{
			batch("", 1, "x"), batch("install", 0, "x"), batch("install", 7), batch("install", 7, "two\nlines"),
			batch("install", 7, "nul\x00"), batch("install", 7, string([]byte{0xff})),
		} {
			_, err := f.svc.AppendLogs(ctx, r, d.ID, bad)
			code(t, domain.EInvalid, err)
		}
		assert.Equal(t, []string{
			"1 install:1 \x1b[1mresolving\x1b[0m", "2 install:2 token=*** and *** again", "3 build:1 compiling",
			"4 install:3 c", "5 install:4 d", "6 install:5 e", "7 install:6 f",
		}, texts(tm.readAll(t, f, d)))

		page, err := f.svc.ReadLogs(ctx, tm.viewer.UserID, d.ID, 2, 3)
		require.NoError(t, err)
		assert.Equal(t, []string{"3 build:1 compiling", "4 install:3 c", "5 install:4 d"}, texts(page.Lines))
		assert.Equal(t, uint64(7), page.Top)
		_, err = f.svc.ReadLogs(ctx, tm.stranger.UserID, d.ID, 0, 10)
		code(t, domain.ENotFound, err)

		// Once finished, a deployment takes no more lines.
		_, err = f.svc.CancelDeployment(ctx, tm.editor.UserID, d.ID, "")
		require.NoError(t, err)
		_, err = f.svc.AppendLogs(ctx, r, d.ID, batch("install", 7, "late"))
		code(t, domain.EConflict, err)
		assert.Equal(t, "canceled", domain.ErrorDetails(err)["state"])
		var finished map[string]any
		for _, e := range drain(t, f) {
			if e.Channel == domain.LogsChannel(d.ID) {
				require.Equal(t, domain.EventDeploymentFinished, e.Type)
				require.NoError(t, json.Unmarshal(e.Payload, &finished))
			}
		}
		assert.Equal(t, 7.0, finished["last_seq"], "the final event says how many lines there are")
		assert.Equal(t, "canceled", finished["state"])

		// Another project's runner cannot write here.
		name := "Other"
		other, err := f.svc.CreateProject(ctx, tm.owner.UserID, tm.ws.ID, domain.ProjectInput{Name: &name})
		require.NoError(t, err)
		_, secret, err := f.svc.CreateDeployToken(ctx, tm.owner.UserID, other.ID, "other")
		require.NoError(t, err)
		stranger, err := f.svc.AuthenticateRunner(ctx, secret)
		require.NoError(t, err)
		_, err = f.svc.AppendLogs(ctx, stranger, tm.deploy(t, f).ID, batch("x", 1, "x"))
		code(t, domain.ENotFound, err)
	})
}

// TestLogConcurrentBatches sends the batches of one step from many
// goroutines at once, in random order and with repeats, each retrying from
// the line the server expects; the log must end up holding every line
// exactly once, in order.
func TestLogConcurrentBatches(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		tm := newDeployTeam(t, f)
		d := tm.deploy(t, f)
		const batches, per = 40, 25
		all := make([]string, batches*per)
		for i := range all {
			all[i] = fmt.Sprintf("line %d", i+1)
		}
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(w), 7))
				for range 150 {
					b := rng.IntN(batches)
					first := uint64(b*per + 1)
					_, err := f.svc.AppendLogs(ctx, tm.runner, d.ID, batch("build", first, all[b*per:(b+1)*per]...))
					if domain.ErrorCode(err) == domain.EConflict {
						continue // a gap: another goroutine sends the batch before
					}
					if !assert.NoError(t, err) {
						return
					}
				}
				// Finish from wherever the step is.
				for {
					res, err := f.svc.AppendLogs(ctx, tm.runner, d.ID, batch("build", 1, all...))
					if assert.NoError(t, err) && res.NextLine == uint64(len(all)+1) {
						return
					}
				}
			}()
		}
		wg.Wait()
		got := tm.readAll(t, f, d)
		require.Len(t, got, len(all))
		for i, l := range got {
			assert.Equal(t, uint64(i+1), l.Seq)
			assert.Equal(t, uint64(i+1), l.Line)
			assert.Equal(t, all[i], l.Text)
		}
	})
}

// TestLogCap keeps the tail of an over-long log and leaves a marker.
func TestLogCap(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		svc, err := domain.NewService(f.store, domain.Config{Now: f.clock.Now, Password: domain.PasswordParams{Memory: 64, Time: 1, Threads: 1}, LogMaxLines: 25})
		require.NoError(t, err)
		f = &fixture{svc: svc, store: f.store, clock: f.clock}
		tm := newDeployTeam(t, f)
		d := tm.deploy(t, f)
		for b := range 5 {
			ls := make([]string, 10)
			for i := range ls {
				ls[i] = fmt.Sprint("line ", b*10+i+1)
			}
			_, err := f.svc.AppendLogs(ctx, tm.runner, d.ID, batch("build", uint64(b*10+1), ls...))
			require.NoError(t, err)
		}
		got := tm.readAll(t, f, d)
		require.Len(t, got, 21, "the marker and the last two batches (the third would go over 25)")
		assert.Equal(t, domain.LogLine{Seq: 30, Text: domain.TruncationMarker(30)}, got[0])
		assert.Equal(t, "line 31", got[1].Text)
		assert.Equal(t, "line 50", got[20].Text)
		page, err := f.svc.ReadLogs(ctx, tm.viewer.UserID, d.ID, 35, 100)
		require.NoError(t, err)
		assert.Equal(t, uint64(36), page.Lines[0].Seq, "a read past the cut has no marker")
	})
}

func TestLogSearch(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		tm := newDeployTeam(t, f)
		d := tm.deploy(t, f)
		_, err := f.svc.AppendLogs(ctx, tm.runner, d.ID, batch("install", 1, "added 12 packages", "WARN deprecated", "added 3 packages"))
		require.NoError(t, err)
		_, err = f.svc.AppendLogs(ctx, tm.runner, d.ID, batch("build", 1, "ERROR: cannot find module", "warn: slow"))
		require.NoError(t, err)
		search := func(q domain.LogSearch) *domain.LogMatches {
			t.Helper()
			m, err := f.svc.SearchLogs(ctx, tm.viewer.UserID, d.ID, q)
			require.NoError(t, err)
			return m
		}
		m := search(domain.LogSearch{Query: "added"})
		assert.Equal(t, []string{"1 install:1 added 12 packages", "3 install:3 added 3 packages"}, texts(m.Lines))
		assert.True(t, m.Complete)
		m = search(domain.LogSearch{Query: `(?i)^warn`, Regex: true})
		assert.Equal(t, []string{"2 install:2 WARN deprecated", "5 build:2 warn: slow"}, texts(m.Lines))
		m = search(domain.LogSearch{Query: `(?i)^warn`, Regex: true, Step: "build"})
		assert.Equal(t, []string{"5 build:2 warn: slow"}, texts(m.Lines))
		m = search(domain.LogSearch{Query: "a", Max: 2})
		assert.Len(t, m.Lines, 2)
		assert.False(t, m.Complete, "stopped at the limit")
		_, err = f.svc.SearchLogs(ctx, tm.viewer.UserID, d.ID, domain.LogSearch{Query: "(", Regex: true})
		code(t, domain.EInvalid, err)
		_, err = f.svc.SearchLogs(ctx, tm.viewer.UserID, d.ID, domain.LogSearch{Query: strings.Repeat("x", domain.MaxLogQueryLen+1)})
		code(t, domain.EInvalid, err)
		_, err = f.svc.SearchLogs(ctx, tm.stranger.UserID, d.ID, domain.LogSearch{Query: "a"})
		code(t, domain.ENotFound, err)
	})
}

func TestLogSettings(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		tm := newDeployTeam(t, f)
		_, err := f.svc.CreateLogSecret(ctx, tm.editor.UserID, tm.project.ID, "x", "value1")
		code(t, domain.EForbidden, err)
		_, err = f.svc.CreateLogSecret(ctx, tm.admin.UserID, tm.project.ID, "short", "abc")
		code(t, domain.EInvalid, err)
		sec, err := f.svc.CreateLogSecret(ctx, tm.admin.UserID, tm.project.ID, "api key", "k-123456")
		require.NoError(t, err)
		assert.Empty(t, sec.Value, "a secret's value is never returned")
		list, err := f.svc.ListLogSecrets(ctx, tm.admin.UserID, tm.project.ID)
		require.NoError(t, err)
		require.Len(t, list, 1)
		assert.Equal(t, "api key", list[0].Name)
		assert.Empty(t, list[0].Value)
		require.NoError(t, f.svc.DeleteLogSecret(ctx, tm.admin.UserID, tm.project.ID, sec.ID))

		st, err := f.svc.GetLogSettings(ctx, tm.admin.UserID, tm.project.ID)
		require.NoError(t, err)
		assert.Equal(t, &domain.LogSettings{RetentionDays: 30, Default: true}, st)
		_, err = f.svc.SetLogRetention(ctx, tm.admin.UserID, tm.project.ID, 0)
		code(t, domain.EInvalid, err)
		_, err = f.svc.SetLogRetention(ctx, tm.admin.UserID, tm.project.ID, 7)
		require.NoError(t, err)
		st, err = f.svc.GetLogSettings(ctx, tm.admin.UserID, tm.project.ID)
		require.NoError(t, err)
		assert.Equal(t, &domain.LogSettings{RetentionDays: 7}, st)

		d := tm.deploy(t, f)
		_, err = f.svc.AppendLogs(ctx, tm.runner, d.ID, batch("build", 1, "old"))
		require.NoError(t, err)
		f.clock.Add(8 * 24 * time.Hour)
		n, err := f.svc.PruneLogs(ctx)
		require.NoError(t, err)
		assert.Equal(t, 1, n)
		assert.Empty(t, tm.readAll(t, f, d))
		assert.Equal(t, []string{"log_secret.create:success", "log_secret.delete:success", "log_settings.update:success"},
			filterPrefix(f.auditActions(t, domain.AuditFilter{ProjectID: tm.project.ID}, tm.owner.UserID), "log_"))
	})
}
