package memory

import (
	"context"
	"maps"
	"slices"

	"github.com/google/uuid"

	"github.com/tone-ai/tone/domain"
)

type artifactName struct {
	deployment uuid.UUID
	name       string
}

// artifactData is the part of the store holding artifact metadata.
type artifactData struct {
	artifacts     map[uuid.UUID]*domain.Artifact
	artifactNames map[artifactName]uuid.UUID
}

func newArtifactData() artifactData {
	return artifactData{artifacts: map[uuid.UUID]*domain.Artifact{}, artifactNames: map[artifactName]uuid.UUID{}}
}

func (t *tx) CreateArtifact(_ context.Context, a *domain.Artifact) error {
	if d, ok := t.s.deployments[a.DeploymentID]; !ok || d.ProjectID != a.ProjectID {
		return notFound("Deployment")
	}
	key := artifactName{a.DeploymentID, a.Name}
	if _, taken := t.s.artifactNames[key]; taken {
		return domain.Errorf(domain.EConflict, "The deployment has an artifact named %q.", a.Name).WithDetail("field", "name")
	}
	if _, taken := t.s.artifacts[a.ID]; taken {
		return domain.Errorf(domain.EConflict, "Artifact %s exists.", a.ID)
	}
	c := clone(a)
	c.CreatedAt = c.CreatedAt.UTC()
	set(t, t.s.artifacts, a.ID, c)
	set(t, t.s.artifactNames, key, a.ID)
	return nil
}

func (t *tx) ArtifactByID(_ context.Context, id uuid.UUID) (*domain.Artifact, error) {
	a, ok := t.s.artifacts[id]
	if !ok {
		return nil, notFound("Artifact")
	}
	return clone(a), nil
}

func (t *tx) ListArtifacts(_ context.Context, deploymentID uuid.UUID, p domain.Page) ([]*domain.Artifact, error) {
	var out []*domain.Artifact
	for _, a := range t.s.artifacts {
		if a.DeploymentID == deploymentID {
			out = append(out, clone(a))
		}
	}
	return page(out, func(a *domain.Artifact) uuid.UUID { return a.ID }, p), nil
}

func (t *tx) DeleteArtifact(_ context.Context, id uuid.UUID) error {
	a, ok := t.s.artifacts[id]
	if !ok {
		return notFound("Artifact")
	}
	del(t, t.s.artifacts, id)
	del(t, t.s.artifactNames, artifactName{a.DeploymentID, a.Name})
	return nil
}

func (t *tx) UnreferencedDigests(_ context.Context, digests []string) ([]string, error) {
	used := map[string]bool{}
	for _, a := range t.s.artifacts {
		used[a.Digest] = true
	}
	var out []string
	for _, d := range digests {
		if !used[d] && !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out, nil
}

// deleteProjectArtifacts removes a deleted project's artifacts, as the
// foreign key's ON DELETE CASCADE does in PostgreSQL.
func (t *tx) deleteProjectArtifacts(project uuid.UUID) {
	for _, id := range slices.Collect(maps.Keys(t.s.artifacts)) {
		if a := t.s.artifacts[id]; a.ProjectID == project {
			del(t, t.s.artifacts, id)
			del(t, t.s.artifactNames, artifactName{a.DeploymentID, a.Name})
		}
	}
}
