package domain_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain"
)

// TestDeploymentAnalytics: counts per day and environment, success rate
// and duration percentiles, from deployments driven through the runner.
func TestDeploymentAnalytics(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		tm := newDeployTeam(t, f)
		start := f.clock.Now()
		run := func(env string, took time.Duration, final domain.DeployState) {
			d, err := f.svc.CreateDeployment(ctx, tm.editor.UserID, tm.project.ID, domain.DeploymentInput{Environment: env, GitRef: "main", CommitSHA: "abcdef1"})
			require.NoError(t, err)
			if final == domain.DeployQueued {
				return
			}
			if final == domain.DeployCanceled {
				_, err := f.svc.CancelDeployment(ctx, tm.editor.UserID, d.ID, "")
				require.NoError(t, err)
				return
			}
			_, err = f.svc.Report(ctx, tm.runner, d.ID, domain.DeploymentReport{State: domain.DeployBuilding})
			require.NoError(t, err)
			f.clock.Add(took)
			if final == domain.DeployReady {
				_, err = f.svc.Report(ctx, tm.runner, d.ID, domain.DeploymentReport{State: domain.DeployDeploying})
				require.NoError(t, err)
			}
			_, err = f.svc.Report(ctx, tm.runner, d.ID, domain.DeploymentReport{State: final})
			require.NoError(t, err)
		}
		run("production", 10*time.Second, domain.DeployReady)
		run("production", 20*time.Second, domain.DeployFailed)
		run("production", 0, domain.DeployCanceled)
		run("staging", 0, domain.DeployQueued)
		f.clock.Add(24 * time.Hour)
		run("production", 30*time.Second, domain.DeployReady)

		a, err := f.svc.ProjectDeploymentAnalytics(ctx, tm.viewer.UserID, tm.project.ID, "", time.Time{}, time.Time{})
		require.NoError(t, err)
		day1, day2 := start.UTC().Format(time.DateOnly), start.Add(24*time.Hour).UTC().Format(time.DateOnly)
		want := map[string]domain.DeploymentDay{
			day1 + " production": {Date: day1, Environment: "production", Total: 3, Succeeded: 1, Failed: 1, Canceled: 1},
			day1 + " staging":    {Date: day1, Environment: "staging", Total: 1},
			day2 + " production": {Date: day2, Environment: "production", Total: 1, Succeeded: 1},
		}
		if day1 == day2 { // cannot happen with 24 h between, kept for clarity
			t.Fatal("days collide")
		}
		require.Len(t, a.Days, len(want))
		for _, d := range a.Days {
			assert.Equal(t, want[d.Date+" "+d.Environment], d)
		}
		require.Len(t, a.Environments, 2)
		prod, staging := a.Environments[0], a.Environments[1]
		assert.Equal(t, "production", prod.Environment)
		assert.Equal(t, 4, prod.Total)
		require.NotNil(t, prod.SuccessRate)
		assert.InDelta(t, 2.0/3, *prod.SuccessRate, 1e-9)
		require.NotNil(t, prod.DurationP50Ms)
		assert.Equal(t, int64(20000), *prod.DurationP50Ms)
		assert.Equal(t, int64(30000), *prod.DurationP95Ms)
		assert.Nil(t, staging.SuccessRate, "nothing finished in staging")
		assert.Nil(t, staging.DurationP50Ms)

		only, err := f.svc.ProjectDeploymentAnalytics(ctx, tm.owner.UserID, tm.project.ID, "staging", time.Time{}, time.Time{})
		require.NoError(t, err)
		require.Len(t, only.Environments, 1)
		assert.Equal(t, "staging", only.Environments[0].Environment)

		_, err = f.svc.ProjectDeploymentAnalytics(ctx, tm.stranger.UserID, tm.project.ID, "", time.Time{}, time.Time{})
		code(t, domain.ENotFound, err)
		_, err = f.svc.ProjectDeploymentAnalytics(ctx, tm.owner.UserID, tm.project.ID, "", start, start.Add(-time.Hour))
		code(t, domain.EInvalid, err)
		_, err = f.svc.ProjectDeploymentAnalytics(ctx, tm.owner.UserID, tm.project.ID, "", start.Add(-400*24*time.Hour), start)
		code(t, domain.EInvalid, err)
	})
}

// TestRealtimeAnalytics: samples of two nodes fold into steps: the most
// connections at once summed over nodes, distinct editors.
func TestRealtimeAnalytics(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		tm := newCanvasTeam(t, f)
		c1, err := f.svc.CreateCanvas(ctx, tm.owner.UserID, tm.project.ID, "one")
		require.NoError(t, err)
		c2, err := f.svc.CreateCanvas(ctx, tm.owner.UserID, tm.project.ID, "two")
		require.NoError(t, err)
		start := f.clock.Now().Truncate(time.Hour).Add(time.Hour)
		f.clock.Add(start.Sub(f.clock.Now()))
		a, b := tm.editor.UserID, tm.admin.UserID
		record := func(node string, acts ...domain.CanvasActivity) {
			require.NoError(t, f.svc.RecordCanvasActivity(ctx, node, acts))
		}
		record("n1", domain.CanvasActivity{CanvasID: c1.ID, Viewers: 3, Editors: []uuid.UUID{a}}, domain.CanvasActivity{CanvasID: c2.ID, Viewers: 1})
		record("n2", domain.CanvasActivity{CanvasID: c1.ID, Viewers: 2, Editors: []uuid.UUID{a, b}})
		f.clock.Add(time.Minute)
		record("n1", domain.CanvasActivity{CanvasID: c1.ID, Viewers: 1})
		f.clock.Add(time.Hour)
		record("n1", domain.CanvasActivity{CanvasID: c2.ID, Viewers: 5, Editors: []uuid.UUID{b}})

		r, err := f.svc.ProjectRealtimeAnalytics(ctx, tm.viewer.UserID, tm.project.ID, start, start.Add(2*time.Hour), time.Hour)
		require.NoError(t, err)
		assert.Equal(t, int64(time.Hour/time.Millisecond), r.StepMs)
		assert.Equal(t, []domain.RealtimeBucket{
			{Start: start, Connections: 4 + 2, Editors: 2},
			{Start: start.Add(time.Hour), Connections: 5, Editors: 1},
		}, r.Buckets)

		r, err = f.svc.ProjectRealtimeAnalytics(ctx, tm.viewer.UserID, tm.project.ID, start, start.Add(2*time.Hour), 0)
		require.NoError(t, err)
		assert.Equal(t, int64(time.Minute/time.Millisecond), r.StepMs, "the default step: whole minutes, at most 500 steps")
		assert.Len(t, r.Buckets, 3)

		_, err = f.svc.ProjectRealtimeAnalytics(ctx, tm.owner.UserID, tm.project.ID, start, start.Add(24*time.Hour), time.Second)
		code(t, domain.EInvalid, err)
		_, err = f.svc.ProjectRealtimeAnalytics(ctx, tm.stranger.UserID, tm.project.ID, start, start.Add(time.Hour), 0)
		code(t, domain.ENotFound, err)
	})
}
