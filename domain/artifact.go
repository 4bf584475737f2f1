package domain

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// Artifact is a file a deployment produced (a bundle, a report, a log
// archive). Its content is the blob Digest of the BlobStore; this is its
// metadata.
type Artifact struct {
	ID           uuid.UUID // UUIDv7
	ProjectID    uuid.UUID
	DeploymentID uuid.UUID
	Name         string // unique within the deployment
	Size         int64
	Digest       string // SHA-256, lower-case hex
	ContentType  string
	CreatedBy    uuid.UUID // the user, or the deploy token of the runner, that uploaded it
	CreatedAt    time.Time
}

// ArtifactStore stores artifact metadata.
type ArtifactStore interface {
	// CreateArtifact inserts a. Returns EConflict if its deployment has an
	// artifact of that name, ENotFound if there is no deployment
	// a.DeploymentID in project a.ProjectID.
	CreateArtifact(ctx context.Context, a *Artifact) error
	// ArtifactByID returns ENotFound if there is no such artifact.
	ArtifactByID(ctx context.Context, id uuid.UUID) (*Artifact, error)
	// ListArtifacts lists a deployment's artifacts in id order.
	ListArtifacts(ctx context.Context, deploymentID uuid.UUID, p Page) ([]*Artifact, error)
	// DeleteArtifact returns ENotFound if there is no such artifact.
	DeleteArtifact(ctx context.Context, id uuid.UUID) error
	// UnreferencedDigests returns those of digests that no artifact of any
	// project refers to, for the blob garbage collector (which acts for
	// nobody; the PostgreSQL store looks past row-level security here, and
	// answers nothing but digests).
	UnreferencedDigests(ctx context.Context, digests []string) ([]string, error)
}
