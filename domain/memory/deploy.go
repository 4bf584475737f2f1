package memory

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/tone-ai/tone/domain"
)

type stepKey struct {
	deployment uuid.UUID
	name       string
}

// deployData is the part of the store holding deploy tokens, deployments
// and their steps.
type deployData struct {
	deployTokens map[uuid.UUID]*domain.DeployToken
	deployHashes map[string]uuid.UUID
	deployments  map[uuid.UUID]*domain.Deployment
	steps        map[stepKey]*domain.DeployStep
	stepCount    map[uuid.UUID]int
}

func newDeployData() deployData {
	return deployData{
		deployTokens: map[uuid.UUID]*domain.DeployToken{},
		deployHashes: map[string]uuid.UUID{},
		deployments:  map[uuid.UUID]*domain.Deployment{},
		steps:        map[stepKey]*domain.DeployStep{},
		stepCount:    map[uuid.UUID]int{},
	}
}

func cloneTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	c := *t
	return &c
}

func cloneDeployment(d *domain.Deployment) *domain.Deployment {
	c := *d
	c.LeaseExpiresAt, c.StartedAt, c.FinishedAt = cloneTime(d.LeaseExpiresAt), cloneTime(d.StartedAt), cloneTime(d.FinishedAt)
	c.Metrics = maps.Clone(d.Metrics)
	if c.Metrics == nil {
		c.Metrics = map[string]int64{}
	}
	return &c
}

func cloneStep(s *domain.DeployStep) *domain.DeployStep {
	c := *s
	c.StartedAt, c.FinishedAt = cloneTime(s.StartedAt), cloneTime(s.FinishedAt)
	if s.ExitCode != nil {
		e := *s.ExitCode
		c.ExitCode = &e
	}
	return &c
}

func cloneToken(t *domain.DeployToken) *domain.DeployToken {
	c := *t
	c.Hash = slices.Clone(t.Hash)
	c.RevokedAt = cloneTime(t.RevokedAt)
	return &c
}

func (t *tx) CreateDeployToken(_ context.Context, dt *domain.DeployToken) error {
	if _, ok := t.s.projects[dt.ProjectID]; !ok {
		return notFound("Project")
	}
	if _, ok := t.s.deployHashes[string(dt.Hash)]; ok {
		return domain.Errorf(domain.EConflict, "Deploy token already exists.")
	}
	set(t, t.s.deployTokens, dt.ID, cloneToken(dt))
	set(t, t.s.deployHashes, string(dt.Hash), dt.ID)
	return nil
}

func (t *tx) DeployTokenByHash(_ context.Context, hash []byte) (*domain.DeployToken, error) {
	id, ok := t.s.deployHashes[string(hash)]
	if !ok {
		return nil, notFound("Deploy token")
	}
	return cloneToken(t.s.deployTokens[id]), nil
}

func (t *tx) DeployTokenByID(_ context.Context, id uuid.UUID) (*domain.DeployToken, error) {
	dt, ok := t.s.deployTokens[id]
	if !ok {
		return nil, notFound("Deploy token")
	}
	return cloneToken(dt), nil
}

func (t *tx) ListDeployTokens(_ context.Context, project uuid.UUID, p domain.Page) ([]*domain.DeployToken, error) {
	var out []*domain.DeployToken
	for _, dt := range t.s.deployTokens {
		if dt.ProjectID == project {
			out = append(out, cloneToken(dt))
		}
	}
	return page(out, func(dt *domain.DeployToken) uuid.UUID { return dt.ID }, p), nil
}

func (t *tx) RevokeDeployToken(_ context.Context, id uuid.UUID, at time.Time) error {
	dt, ok := t.s.deployTokens[id]
	if !ok {
		return notFound("Deploy token")
	}
	if dt.RevokedAt == nil {
		c := cloneToken(dt)
		c.RevokedAt = &at
		set(t, t.s.deployTokens, id, c)
	}
	return nil
}

func (t *tx) CreateDeployment(_ context.Context, d *domain.Deployment) error {
	if _, ok := t.s.projects[d.ProjectID]; !ok {
		return notFound("Project")
	}
	if _, ok := t.s.deployments[d.ID]; ok {
		return domain.Errorf(domain.EConflict, "Deployment already exists.")
	}
	set(t, t.s.deployments, d.ID, cloneDeployment(d))
	return nil
}

func (t *tx) DeploymentByID(_ context.Context, id uuid.UUID) (*domain.Deployment, error) {
	d, ok := t.s.deployments[id]
	if !ok {
		return nil, notFound("Deployment")
	}
	return cloneDeployment(d), nil
}

// LockDeployment is DeploymentByID: the store's lock serialises every
// transaction already.
func (t *tx) LockDeployment(ctx context.Context, id uuid.UUID) (*domain.Deployment, error) {
	return t.DeploymentByID(ctx, id)
}

// LockDeploymentShared is DeploymentByID, as LockDeployment is.
func (t *tx) LockDeploymentShared(ctx context.Context, id uuid.UUID) (*domain.Deployment, error) {
	return t.DeploymentByID(ctx, id)
}

func (t *tx) UpdateDeployment(_ context.Context, d *domain.Deployment) error {
	old, ok := t.s.deployments[d.ID]
	if !ok {
		return notFound("Deployment")
	}
	c := cloneDeployment(d)
	// Only the changeable fields are saved.
	c.ProjectID, c.Environment, c.GitRef, c.CommitSHA = old.ProjectID, old.Environment, old.GitRef, old.CommitSHA
	c.TriggeredBy, c.TriggerKind, c.CreatedAt = old.TriggeredBy, old.TriggerKind, old.CreatedAt
	set(t, t.s.deployments, d.ID, c)
	return nil
}

func (t *tx) ListDeployments(_ context.Context, f domain.DeploymentFilter, p domain.Page) ([]*domain.Deployment, error) {
	var out []*domain.Deployment
	for _, d := range t.s.deployments {
		if d.ProjectID != f.ProjectID ||
			f.Environment != "" && d.Environment != f.Environment ||
			f.State != "" && d.State != f.State ||
			!f.Since.IsZero() && d.CreatedAt.Before(f.Since) ||
			!f.Until.IsZero() && !d.CreatedAt.Before(f.Until) {
			continue
		}
		out = append(out, cloneDeployment(d))
	}
	return page(out, func(d *domain.Deployment) uuid.UUID { return d.ID }, p), nil
}

func (t *tx) ExpiredLeases(_ context.Context, at time.Time, max int) ([]domain.ExpiredLease, error) {
	var ds []*domain.Deployment
	for _, d := range t.s.deployments {
		if (d.State == domain.DeployBuilding || d.State == domain.DeployDeploying) &&
			d.RunnerID != uuid.Nil && d.LeaseExpiresAt != nil && d.LeaseExpiresAt.Before(at) {
			ds = append(ds, d)
		}
	}
	slices.SortFunc(ds, func(a, b *domain.Deployment) int { return a.LeaseExpiresAt.Compare(*b.LeaseExpiresAt) })
	out := []domain.ExpiredLease{}
	for _, d := range ds {
		if len(out) == max {
			break
		}
		out = append(out, domain.ExpiredLease{DeploymentID: d.ID, RunnerID: d.RunnerID})
	}
	return out, nil
}

func (t *tx) PutDeployStep(_ context.Context, s *domain.DeployStep) error {
	if _, ok := t.s.deployments[s.DeploymentID]; !ok {
		return notFound("Deployment")
	}
	k := stepKey{s.DeploymentID, s.Name}
	c := cloneStep(s)
	if old, ok := t.s.steps[k]; ok {
		c.Position = old.Position
	} else {
		c.Position = t.s.stepCount[s.DeploymentID]
		set(t, t.s.stepCount, s.DeploymentID, c.Position+1)
	}
	set(t, t.s.steps, k, c)
	s.Position = c.Position
	return nil
}

func (t *tx) ListDeploySteps(_ context.Context, id uuid.UUID) ([]*domain.DeployStep, error) {
	out := []*domain.DeployStep{}
	for k, s := range t.s.steps {
		if k.deployment == id {
			out = append(out, cloneStep(s))
		}
	}
	slices.SortFunc(out, func(a, b *domain.DeployStep) int { return a.Position - b.Position })
	return out, nil
}

// deleteProjectDeployments removes a project's tokens, deployments and
// steps, as the PostgreSQL store's ON DELETE CASCADE does.
func (t *tx) deleteProjectDeployments(project uuid.UUID) {
	for id, dt := range t.s.deployTokens {
		if dt.ProjectID == project {
			del(t, t.s.deployHashes, string(dt.Hash))
			del(t, t.s.deployTokens, id)
		}
	}
	for id, d := range t.s.deployments {
		if d.ProjectID != project {
			continue
		}
		for k := range t.s.steps {
			if k.deployment == id {
				del(t, t.s.steps, k)
			}
		}
		del(t, t.s.stepCount, id)
		t.deleteDeploymentLogs(id)
		del(t, t.s.deployments, id)
	}
	t.deleteProjectLogSettings(project)
}
