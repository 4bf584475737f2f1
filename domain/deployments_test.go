package domain_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain"
)

// deployTeam is a canvasTeam's project with a deploy token.
type deployTeam struct {
	*canvasTeam
	runner *domain.Runner
	secret string
}

func newDeployTeam(t *testing.T, f *fixture) *deployTeam {
	t.Helper()
	tm := &deployTeam{canvasTeam: newCanvasTeam(t, f)}
	tok, secret, err := f.svc.CreateDeployToken(ctx, tm.admin.UserID, tm.project.ID, "ci")
	require.NoError(t, err)
	tm.secret = secret
	tm.runner, err = f.svc.AuthenticateRunner(ctx, secret)
	require.NoError(t, err)
	require.Equal(t, tok.ID, tm.runner.TokenID)
	return tm
}

func (tm *deployTeam) deploy(t *testing.T, f *fixture) *domain.Deployment {
	t.Helper()
	d, err := f.svc.CreateDeployment(ctx, tm.editor.UserID, tm.project.ID, domain.DeploymentInput{Environment: "production", GitRef: "main", CommitSHA: "ABCDEF1"})
	require.NoError(t, err)
	return d
}

// pathTo lists the reports that take a new deployment to state s.
var pathTo = map[domain.DeployState][]domain.DeployState{
	domain.DeployQueued:    nil,
	domain.DeployBuilding:  {domain.DeployBuilding},
	domain.DeployDeploying: {domain.DeployBuilding, domain.DeployDeploying},
	domain.DeployReady:     {domain.DeployBuilding, domain.DeployDeploying, domain.DeployReady},
	domain.DeployFailed:    {domain.DeployBuilding, domain.DeployFailed},
	domain.DeployCanceled:  {domain.DeployCanceled},
}

// legal is the state machine as the issue draws it.
var legal = map[[2]domain.DeployState]bool{
	{"queued", "building"}: true, {"queued", "failed"}: true, {"queued", "canceled"}: true,
	{"building", "deploying"}: true, {"building", "failed"}: true, {"building", "canceled"}: true,
	{"deploying", "ready"}: true, {"deploying", "failed"}: true, {"deploying", "canceled"}: true,
}

// TestDeployStateMachine tries every pair of states, through the runner's
// report: the legal ones succeed, every other is EConflict carrying the
// current state, and changes nothing.
func TestDeployStateMachine(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		tm := newDeployTeam(t, f)
		for _, from := range domain.DeployStates {
			for _, to := range domain.DeployStates {
				t.Run(fmt.Sprintf("%s->%s", from, to), func(t *testing.T) {
					assert.Equal(t, legal[[2]domain.DeployState{from, to}], from.CanMoveTo(to))
					d := tm.deploy(t, f)
					for _, s := range pathTo[from] {
						_, err := f.svc.Report(ctx, tm.runner, d.ID, domain.DeploymentReport{State: s})
						require.NoError(t, err)
					}
					got, err := f.svc.Report(ctx, tm.runner, d.ID, domain.DeploymentReport{State: to, Reason: "because"})
					after, gerr := f.svc.GetDeployment(ctx, tm.viewer.UserID, d.ID)
					require.NoError(t, gerr)
					if !legal[[2]domain.DeployState{from, to}] {
						code(t, domain.EConflict, err)
						assert.Equal(t, string(from), domain.ErrorDetails(err)["state"])
						assert.Equal(t, from, after.State, "a refused transition changes nothing")
						return
					}
					require.NoError(t, err)
					assert.Equal(t, to, got.State)
					assert.Equal(t, to, after.State)
					assert.Equal(t, to.Final(), after.FinishedAt != nil)
					assert.Equal(t, from != domain.DeployQueued || to != domain.DeployQueued, after.StartedAt != nil)
					if to == domain.DeployFailed || to == domain.DeployCanceled {
						assert.Equal(t, "because", after.Reason)
					}
				})
			}
		}
		// The user's cancel follows the same machine.
		d := tm.deploy(t, f)
		_, err := f.svc.CancelDeployment(ctx, tm.viewer.UserID, d.ID, "")
		code(t, domain.EForbidden, err)
		_, err = f.svc.CancelDeployment(ctx, tm.stranger.UserID, d.ID, "")
		code(t, domain.ENotFound, err)
		c, err := f.svc.CancelDeployment(ctx, tm.editor.UserID, d.ID, "wrong branch")
		require.NoError(t, err)
		assert.Equal(t, domain.DeployCanceled, c.State)
		_, err = f.svc.CancelDeployment(ctx, tm.editor.UserID, d.ID, "")
		code(t, domain.EConflict, err)
		assert.Equal(t, "canceled", domain.ErrorDetails(err)["state"])
		_, err = f.svc.Report(ctx, tm.runner, d.ID, domain.DeploymentReport{State: domain.DeployBuilding})
		code(t, domain.EConflict, err)
	})
}

func TestDeployTokens(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		tm := newDeployTeam(t, f)
		_, _, err := f.svc.CreateDeployToken(ctx, tm.editor.UserID, tm.project.ID, "nope")
		code(t, domain.EForbidden, err)
		_, _, err = f.svc.CreateDeployToken(ctx, tm.stranger.UserID, tm.project.ID, "nope")
		code(t, domain.ENotFound, err)
		list, _, err := f.svc.ListDeployTokens(ctx, tm.owner.UserID, tm.project.ID, domain.ListOptions{})
		require.NoError(t, err)
		require.Len(t, list, 1)
		assert.Equal(t, "ci", list[0].Name)
		assert.NotContains(t, string(list[0].Hash), tm.secret)

		for _, bad := range []string{"", "tone_dt_nope", "not-a-token"} {
			_, err := f.svc.AuthenticateRunner(ctx, bad)
			code(t, domain.EUnauthenticated, err)
		}
		// A runner reaches only its own project's deployments.
		name := "Other"
		other, err := f.svc.CreateProject(ctx, tm.owner.UserID, tm.ws.ID, domain.ProjectInput{Name: &name})
		require.NoError(t, err)
		elsewhere, err := f.svc.CreateDeployment(ctx, tm.owner.UserID, other.ID, domain.DeploymentInput{Environment: "production"})
		require.NoError(t, err)
		_, err = f.svc.Report(ctx, tm.runner, elsewhere.ID, domain.DeploymentReport{State: domain.DeployBuilding})
		code(t, domain.ENotFound, err)
		_, err = f.svc.Heartbeat(ctx, tm.runner, elsewhere.ID)
		code(t, domain.ENotFound, err)
		_, err = f.svc.RunnerGetDeployment(ctx, tm.runner, elsewhere.ID)
		code(t, domain.ENotFound, err)

		require.NoError(t, f.svc.RevokeDeployToken(ctx, tm.admin.UserID, tm.project.ID, tm.runner.TokenID))
		_, err = f.svc.AuthenticateRunner(ctx, tm.secret)
		code(t, domain.EUnauthenticated, err)
		code(t, domain.ENotFound, f.svc.RevokeDeployToken(ctx, tm.admin.UserID, other.ID, tm.runner.TokenID))
		assert.Equal(t, []string{"deploy_token.create:success", "deploy_token.revoke:success"},
			filterPrefix(f.auditActions(t, domain.AuditFilter{ProjectID: tm.project.ID}, tm.owner.UserID), "deploy_token."))
	})
}

func filterPrefix(ss []string, prefix string) []string {
	var out []string
	for _, s := range ss {
		if len(s) >= len(prefix) && s[:len(prefix)] == prefix {
			out = append(out, s)
		}
	}
	return out
}

// TestDeployEvents follows a deployment to ready and another to failed and
// checks what the project channel hears, and the results and steps.
func TestDeployEvents(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		tm := newDeployTeam(t, f)
		drain(t, f)
		d := tm.deploy(t, f)
		r := tm.runner
		_, err := f.svc.Report(ctx, r, d.ID, domain.DeploymentReport{State: domain.DeployBuilding})
		require.NoError(t, err)
		zero := 0
		_, err = f.svc.ReportStep(ctx, r, d.ID, domain.StepReport{Name: "build", State: domain.StepRunning})
		require.NoError(t, err)
		f.clock.Add(1500 * time.Millisecond)
		_, err = f.svc.ReportStep(ctx, r, d.ID, domain.StepReport{Name: "build", State: domain.StepSucceeded, ExitCode: &zero})
		require.NoError(t, err)
		_, err = f.svc.ReportStep(ctx, r, d.ID, domain.StepReport{Name: "", State: domain.StepRunning})
		code(t, domain.EInvalid, err)
		_, err = f.svc.Report(ctx, r, d.ID, domain.DeploymentReport{State: domain.DeployDeploying})
		require.NoError(t, err)
		url := "https://site.example"
		_, err = f.svc.Report(ctx, r, d.ID, domain.DeploymentReport{State: domain.DeployReady, URL: &url, Metrics: map[string]int64{"bundle_bytes": 4096}})
		require.NoError(t, err)
		got, err := f.svc.GetDeployment(ctx, tm.viewer.UserID, d.ID)
		require.NoError(t, err)
		assert.Equal(t, url, got.URL)
		assert.Equal(t, map[string]int64{"bundle_bytes": 4096}, got.Metrics)
		assert.Equal(t, 1500*time.Millisecond, got.Duration())
		require.Len(t, got.Steps, 1)
		assert.Equal(t, domain.StepSucceeded, got.Steps[0].State)
		assert.Equal(t, 0, *got.Steps[0].ExitCode)
		assert.Equal(t, 1500*time.Millisecond, got.Steps[0].FinishedAt.Sub(*got.Steps[0].StartedAt))
		_, err = f.svc.ReportStep(ctx, r, d.ID, domain.StepReport{Name: "late", State: domain.StepRunning})
		code(t, domain.EConflict, err)

		d2 := tm.deploy(t, f)
		_, err = f.svc.Report(ctx, r, d2.ID, domain.DeploymentReport{State: domain.DeployFailed, Reason: "no runner capacity"})
		require.NoError(t, err)

		var types []string
		for _, e := range drain(t, f) {
			if e.Channel != domain.ProjectChannel(tm.project.ID) {
				require.Equal(t, domain.EventDeploymentFinished, e.Type, "the logs channel hears only that a deployment finished")
				continue
			}
			var data map[string]any
			require.NoError(t, json.Unmarshal(e.Payload, &data))
			types = append(types, e.Type+":"+data["state"].(string))
			if e.Type == domain.EventDeploymentSucceeded {
				assert.Equal(t, url, data["url"])
				assert.Equal(t, 1500.0, data["duration_ms"])
			}
			if e.Type == domain.EventDeploymentFailed {
				assert.Equal(t, "no runner capacity", data["reason"])
			}
		}
		assert.Equal(t, []string{
			"deployment.created:queued",
			"deployment.state_changed:building", "deployment.state_changed:deploying",
			"deployment.state_changed:ready", "deployment.succeeded:ready",
			"deployment.created:queued",
			"deployment.state_changed:failed", "deployment.failed:failed",
		}, types)
		assert.Equal(t, []string{"deployment.create:success", "deployment.state_change:success", "deployment.step:success",
			"deployment.step:success", "deployment.state_change:success", "deployment.state_change:success",
			"deployment.create:success", "deployment.state_change:success"},
			filterPrefix(f.auditActions(t, domain.AuditFilter{ProjectID: tm.project.ID}, tm.owner.UserID), "deployment."))
	})
}

// drain claims and deletes every outbox event, returning them in order.
func drain(t *testing.T, f *fixture) []*domain.OutboxEvent {
	t.Helper()
	var evs []*domain.OutboxEvent
	require.NoError(t, f.store.InTx(ctx, uuid.Nil, func(tx domain.Tx) (err error) {
		if evs, err = tx.ClaimOutbox(ctx, 0); err != nil || len(evs) == 0 {
			return err
		}
		ids := make([]int64, len(evs))
		for i, e := range evs {
			ids[i] = e.ID
		}
		return tx.DeleteOutbox(ctx, ids)
	}))
	return evs
}

// TestDeployReaper lets a runner go silent and checks that the reaper
// fails its deployment with "runner lost", and only once its lease ran out.
func TestDeployReaper(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		tm := newDeployTeam(t, f)
		silent, alive, waiting := tm.deploy(t, f), tm.deploy(t, f), tm.deploy(t, f)
		for _, d := range []*domain.Deployment{silent, alive} {
			_, err := f.svc.Report(ctx, tm.runner, d.ID, domain.DeploymentReport{State: domain.DeployBuilding})
			require.NoError(t, err)
		}
		f.clock.Add(40 * time.Second)
		_, err := f.svc.Heartbeat(ctx, tm.runner, alive.ID)
		require.NoError(t, err)
		n, err := f.svc.ReapDeployments(ctx)
		require.NoError(t, err)
		assert.Equal(t, 0, n, "no lease has run out yet")
		f.clock.Add(30 * time.Second)
		n, err = f.svc.ReapDeployments(ctx)
		require.NoError(t, err)
		assert.Equal(t, 1, n)
		for _, c := range []struct {
			d      *domain.Deployment
			state  domain.DeployState
			reason string
		}{{silent, domain.DeployFailed, domain.ReasonRunnerLost}, {alive, domain.DeployBuilding, ""}, {waiting, domain.DeployQueued, ""}} {
			got, err := f.svc.GetDeployment(ctx, tm.viewer.UserID, c.d.ID)
			require.NoError(t, err)
			assert.Equal(t, c.state, got.State)
			assert.Equal(t, c.reason, got.Reason)
		}
		// A second runner cannot take a live lease.
		_, secret, err := f.svc.CreateDeployToken(ctx, tm.admin.UserID, tm.project.ID, "other runner")
		require.NoError(t, err)
		other, err := f.svc.AuthenticateRunner(ctx, secret)
		require.NoError(t, err)
		_, err = f.svc.Heartbeat(ctx, other, alive.ID)
		code(t, domain.EConflict, err)
		// The heartbeat of a canceled deployment tells the runner so.
		_, err = f.svc.CancelDeployment(ctx, tm.editor.UserID, alive.ID, "")
		require.NoError(t, err)
		got, err := f.svc.Heartbeat(ctx, tm.runner, alive.ID)
		require.NoError(t, err)
		assert.Equal(t, domain.DeployCanceled, got.State)
	})
}
