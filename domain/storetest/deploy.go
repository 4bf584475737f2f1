package storetest

import (
	"crypto/sha256"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain"
)

// deployTests are the DeployStore contract tests, run by Run.
var deployTests = []struct {
	name string
	fn   func(t *testing.T, s domain.Store)
}{
	{"DeployTokens", testDeployTokens},
	{"Deployments", testDeployments},
	{"DeploymentList", testDeploymentList},
	{"DeploySteps", testDeploySteps},
	{"DeployLeases", testDeployLeases},
	{"DeployProjectDelete", testDeployProjectDelete},
}

// deployEnv is a project with an owner and a deploy token.
type deployEnv struct {
	s       domain.Store
	owner   *domain.User
	ws      *domain.Workspace
	project *domain.Project
	token   *domain.DeployToken
}

func newDeployEnv(t *testing.T, s domain.Store) *deployEnv {
	t.Helper()
	e := &deployEnv{s: s, owner: newUser(t, s, "downer")}
	e.ws = newWorkspace(t, s, e.owner)
	e.project = newProject(t, s, e.ws, e.owner.ID, "site")
	e.token = e.newToken(t, e.project, "ci")
	return e
}

func (e *deployEnv) newToken(t *testing.T, p *domain.Project, name string) *domain.DeployToken {
	t.Helper()
	sum := sha256.Sum256([]byte(uuid.NewString()))
	dt := &domain.DeployToken{ID: id(), ProjectID: p.ID, WorkspaceID: p.WorkspaceID, Name: name, Hash: sum[:], CreatedBy: e.owner.ID, CreatedAt: now}
	inTx(t, e.s, e.owner.ID, func(tx domain.Tx) error { return tx.CreateDeployToken(ctx, dt) })
	return dt
}

func newDeployment(p *domain.Project, env string, at time.Time) *domain.Deployment {
	return &domain.Deployment{
		ID: id(), ProjectID: p.ID, Environment: env, GitRef: "refs/heads/main", CommitSHA: "abc1234",
		TriggeredBy: uuid.New(), TriggerKind: domain.TriggerUser, State: domain.DeployQueued,
		Metrics: map[string]int64{}, CreatedAt: at, UpdatedAt: at,
	}
}

func (e *deployEnv) create(t *testing.T, d *domain.Deployment) *domain.Deployment {
	t.Helper()
	inTx(t, e.s, e.owner.ID, func(tx domain.Tx) error { return tx.CreateDeployment(ctx, d) })
	return d
}

func testDeployTokens(t *testing.T, s domain.Store) {
	e := newDeployEnv(t, s)
	var got *domain.DeployToken
	// Looked up by hash before anyone is known.
	inTx(t, s, uuid.Nil, func(tx domain.Tx) (err error) { got, err = tx.DeployTokenByHash(ctx, e.token.Hash); return })
	assert.Equal(t, e.token, got)
	code(t, domain.ENotFound, s.InTx(ctx, uuid.Nil, func(tx domain.Tx) error {
		_, err := tx.DeployTokenByHash(ctx, make([]byte, 32))
		return err
	}))
	// The runner reads its own token.
	inTx(t, s, e.token.ID, func(tx domain.Tx) (err error) { got, err = tx.DeployTokenByID(ctx, e.token.ID); return })
	assert.Equal(t, e.token, got)

	second := e.newToken(t, e.project, "deploy bot")
	other := newProject(t, s, e.ws, e.owner.ID, "other")
	e.newToken(t, other, "elsewhere")
	var list []*domain.DeployToken
	inTx(t, s, e.owner.ID, func(tx domain.Tx) (err error) {
		list, err = tx.ListDeployTokens(ctx, e.project.ID, domain.Page{})
		return
	})
	assert.Equal(t, []*domain.DeployToken{e.token, second}, list)
	inTx(t, s, e.owner.ID, func(tx domain.Tx) (err error) {
		list, err = tx.ListDeployTokens(ctx, e.project.ID, domain.Page{Limit: 1, After: e.token.ID})
		return
	})
	assert.Equal(t, []*domain.DeployToken{second}, list)

	revoked := now.Add(time.Hour)
	inTx(t, s, e.owner.ID, func(tx domain.Tx) error { return tx.RevokeDeployToken(ctx, second.ID, revoked) })
	inTx(t, s, e.owner.ID, func(tx domain.Tx) error { return tx.RevokeDeployToken(ctx, second.ID, revoked.Add(time.Hour)) })
	inTx(t, s, uuid.Nil, func(tx domain.Tx) (err error) { got, err = tx.DeployTokenByHash(ctx, second.Hash); return })
	require.NotNil(t, got.RevokedAt)
	assert.Equal(t, revoked, *got.RevokedAt, "revoking again keeps the first time")
	code(t, domain.ENotFound, s.InTx(ctx, e.owner.ID, func(tx domain.Tx) error { return tx.RevokeDeployToken(ctx, id(), now) }))
	code(t, domain.ENotFound, s.InTx(ctx, e.owner.ID, func(tx domain.Tx) error {
		_, err := tx.DeployTokenByID(ctx, id())
		return err
	}))
	code(t, domain.ENotFound, s.InTx(ctx, e.owner.ID, func(tx domain.Tx) error {
		return tx.CreateDeployToken(ctx, &domain.DeployToken{ID: id(), ProjectID: id(), WorkspaceID: e.ws.ID, Name: "x",
			Hash: make([]byte, 32), CreatedBy: e.owner.ID, CreatedAt: now})
	}), "a token of a missing project")
}

func testDeployments(t *testing.T, s domain.Store) {
	e := newDeployEnv(t, s)
	d := e.create(t, newDeployment(e.project, "production", now))
	var got *domain.Deployment
	inTx(t, s, e.owner.ID, func(tx domain.Tx) (err error) { got, err = tx.DeploymentByID(ctx, d.ID); return })
	assert.Equal(t, d, got)

	// The project's runner moves it along and records results.
	started, lease, finished := now.Add(time.Second), now.Add(time.Minute), now.Add(2*time.Second)
	inTx(t, s, e.token.ID, func(tx domain.Tx) error {
		locked, err := tx.LockDeployment(ctx, d.ID)
		if err != nil {
			return err
		}
		locked.State, locked.StartedAt, locked.RunnerID, locked.LeaseExpiresAt = domain.DeployBuilding, &started, e.token.ID, &lease
		locked.URL, locked.Metrics = "https://site.example", map[string]int64{"bundle_bytes": 123456}
		locked.UpdatedAt = started
		return tx.UpdateDeployment(ctx, locked)
	})
	inTx(t, s, e.token.ID, func(tx domain.Tx) (err error) { got, err = tx.DeploymentByID(ctx, d.ID); return })
	assert.Equal(t, domain.DeployBuilding, got.State)
	assert.Equal(t, e.token.ID, got.RunnerID)
	assert.Equal(t, lease, *got.LeaseExpiresAt)
	assert.Equal(t, started, *got.StartedAt)
	assert.Equal(t, "https://site.example", got.URL)
	assert.Equal(t, map[string]int64{"bundle_bytes": 123456}, got.Metrics)

	got.State, got.Reason, got.FinishedAt, got.LeaseExpiresAt = domain.DeployFailed, "exit 1", &finished, nil
	got.Environment = "changed" // not a changeable field
	inTx(t, s, e.owner.ID, func(tx domain.Tx) error { return tx.UpdateDeployment(ctx, got) })
	var final *domain.Deployment
	inTx(t, s, e.owner.ID, func(tx domain.Tx) (err error) { final, err = tx.DeploymentByID(ctx, d.ID); return })
	assert.Equal(t, domain.DeployFailed, final.State)
	assert.Equal(t, "exit 1", final.Reason)
	assert.Equal(t, finished, *final.FinishedAt)
	assert.Nil(t, final.LeaseExpiresAt)
	assert.Equal(t, "production", final.Environment)

	// Created by a runner.
	byRunner := newDeployment(e.project, "preview", now)
	byRunner.TriggeredBy, byRunner.TriggerKind = e.token.ID, domain.TriggerToken
	inTx(t, s, e.token.ID, func(tx domain.Tx) error { return tx.CreateDeployment(ctx, byRunner) })
	inTx(t, s, e.token.ID, func(tx domain.Tx) (err error) { got, err = tx.DeploymentByID(ctx, byRunner.ID); return })
	assert.Equal(t, byRunner, got)

	code(t, domain.ENotFound, s.InTx(ctx, e.owner.ID, func(tx domain.Tx) error {
		_, err := tx.DeploymentByID(ctx, id())
		return err
	}))
	code(t, domain.ENotFound, s.InTx(ctx, e.owner.ID, func(tx domain.Tx) error {
		_, err := tx.LockDeployment(ctx, id())
		return err
	}))
	code(t, domain.ENotFound, s.InTx(ctx, e.owner.ID, func(tx domain.Tx) error {
		return tx.UpdateDeployment(ctx, newDeployment(e.project, "x", now))
	}))
	code(t, domain.ENotFound, s.InTx(ctx, e.owner.ID, func(tx domain.Tx) error {
		return tx.CreateDeployment(ctx, newDeployment(&domain.Project{ID: id()}, "x", now))
	}), "a deployment of a missing project")
}

func testDeploymentList(t *testing.T, s domain.Store) {
	e := newDeployEnv(t, s)
	var all []*domain.Deployment
	for i := range 6 {
		env := []string{"production", "preview"}[i%2]
		all = append(all, e.create(t, newDeployment(e.project, env, now.Add(time.Duration(i)*time.Hour))))
	}
	e.create(t, newDeployment(newProject(t, s, e.ws, e.owner.ID, "other"), "production", now))
	all[3].State = domain.DeployReady
	inTx(t, s, e.owner.ID, func(tx domain.Tx) error { return tx.UpdateDeployment(ctx, all[3]) })

	ids := func(f domain.DeploymentFilter, p domain.Page) []uuid.UUID {
		t.Helper()
		f.ProjectID = e.project.ID
		var ds []*domain.Deployment
		inTx(t, s, e.owner.ID, func(tx domain.Tx) (err error) { ds, err = tx.ListDeployments(ctx, f, p); return })
		out := []uuid.UUID{}
		for _, d := range ds {
			out = append(out, d.ID)
		}
		return out
	}
	want := func(is ...int) []uuid.UUID {
		out := []uuid.UUID{}
		for _, i := range is {
			out = append(out, all[i].ID)
		}
		return out
	}
	assert.Equal(t, want(0, 1, 2, 3, 4, 5), ids(domain.DeploymentFilter{}, domain.Page{}))
	assert.Equal(t, want(0, 2, 4), ids(domain.DeploymentFilter{Environment: "production"}, domain.Page{}))
	assert.Equal(t, want(3), ids(domain.DeploymentFilter{State: domain.DeployReady}, domain.Page{}))
	assert.Equal(t, want(1, 5), ids(domain.DeploymentFilter{State: domain.DeployQueued, Environment: "preview"}, domain.Page{}))
	assert.Equal(t, want(2, 3), ids(domain.DeploymentFilter{Since: now.Add(2 * time.Hour), Until: now.Add(4 * time.Hour)}, domain.Page{}))
	assert.Equal(t, want(2, 3), ids(domain.DeploymentFilter{}, domain.Page{After: all[1].ID, Limit: 2}))
	assert.Equal(t, want(), ids(domain.DeploymentFilter{Environment: "staging"}, domain.Page{}))
}

func testDeploySteps(t *testing.T, s domain.Store) {
	e := newDeployEnv(t, s)
	d := e.create(t, newDeployment(e.project, "production", now))
	start, end := now.Add(time.Second), now.Add(time.Minute)
	zero, one := 0, 1
	put := func(st *domain.DeployStep) {
		t.Helper()
		inTx(t, s, e.token.ID, func(tx domain.Tx) error { return tx.PutDeployStep(ctx, st) })
	}
	put(&domain.DeployStep{DeploymentID: d.ID, Name: "install", State: domain.StepRunning, StartedAt: &start})
	put(&domain.DeployStep{DeploymentID: d.ID, Name: "build", State: domain.StepPending})
	install := &domain.DeployStep{DeploymentID: d.ID, Name: "install", State: domain.StepSucceeded, StartedAt: &start, FinishedAt: &end, ExitCode: &zero}
	put(install)
	assert.Equal(t, 0, install.Position, "an existing step keeps its position")
	build := &domain.DeployStep{DeploymentID: d.ID, Name: "build", State: domain.StepFailed, StartedAt: &start, FinishedAt: &end, ExitCode: &one}
	put(build)
	assert.Equal(t, 1, build.Position)
	var steps []*domain.DeployStep
	inTx(t, s, e.owner.ID, func(tx domain.Tx) (err error) { steps, err = tx.ListDeploySteps(ctx, d.ID); return })
	assert.Equal(t, []*domain.DeployStep{install, build}, steps)
	inTx(t, s, e.owner.ID, func(tx domain.Tx) (err error) { steps, err = tx.ListDeploySteps(ctx, id()); return })
	assert.Empty(t, steps)
	code(t, domain.ENotFound, s.InTx(ctx, e.owner.ID, func(tx domain.Tx) error {
		return tx.PutDeployStep(ctx, &domain.DeployStep{DeploymentID: id(), Name: "x", State: domain.StepRunning})
	}))
}

func testDeployLeases(t *testing.T, s domain.Store) {
	e := newDeployEnv(t, s)
	lease := func(state domain.DeployState, until time.Time, runner uuid.UUID) *domain.Deployment {
		d := e.create(t, newDeployment(e.project, "production", now))
		d.State, d.RunnerID, d.LeaseExpiresAt = state, runner, &until
		inTx(t, s, e.owner.ID, func(tx domain.Tx) error { return tx.UpdateDeployment(ctx, d) })
		return d
	}
	late := lease(domain.DeployDeploying, now.Add(-2*time.Minute), e.token.ID)
	early := lease(domain.DeployBuilding, now.Add(-3*time.Minute), e.token.ID)
	lease(domain.DeployBuilding, now.Add(time.Minute), e.token.ID) // still live
	lease(domain.DeployReady, now.Add(-time.Hour), e.token.ID)     // finished
	lease(domain.DeployQueued, now.Add(-time.Hour), e.token.ID)    // not started
	var got []domain.ExpiredLease
	inTx(t, s, uuid.Nil, func(tx domain.Tx) (err error) { got, err = tx.ExpiredLeases(ctx, now, 10); return })
	assert.Equal(t, []domain.ExpiredLease{{DeploymentID: early.ID, RunnerID: e.token.ID}, {DeploymentID: late.ID, RunnerID: e.token.ID}}, got)
	inTx(t, s, uuid.Nil, func(tx domain.Tx) (err error) { got, err = tx.ExpiredLeases(ctx, now, 1); return })
	assert.Equal(t, []domain.ExpiredLease{{DeploymentID: early.ID, RunnerID: e.token.ID}}, got)
}

func testDeployProjectDelete(t *testing.T, s domain.Store) {
	e := newDeployEnv(t, s)
	d := e.create(t, newDeployment(e.project, "production", now))
	inTx(t, s, e.token.ID, func(tx domain.Tx) error {
		return tx.PutDeployStep(ctx, &domain.DeployStep{DeploymentID: d.ID, Name: "build", State: domain.StepRunning})
	})
	inTx(t, s, e.owner.ID, func(tx domain.Tx) error { return tx.DeleteProject(ctx, e.project.ID) })
	code(t, domain.ENotFound, s.InTx(ctx, e.owner.ID, func(tx domain.Tx) error {
		_, err := tx.DeploymentByID(ctx, d.ID)
		return err
	}))
	code(t, domain.ENotFound, s.InTx(ctx, uuid.Nil, func(tx domain.Tx) error {
		_, err := tx.DeployTokenByHash(ctx, e.token.Hash)
		return err
	}))
}
