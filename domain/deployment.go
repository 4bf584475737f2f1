package domain

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// DeployState is where a deployment is in its life.
//
//	queued -> building -> deploying -> ready
//
// and from any of the first three, failed or canceled. ready, failed and
// canceled are final.
type DeployState string

// Deployment states.
const (
	DeployQueued    DeployState = "queued"
	DeployBuilding  DeployState = "building"
	DeployDeploying DeployState = "deploying"
	DeployReady     DeployState = "ready"
	DeployFailed    DeployState = "failed"
	DeployCanceled  DeployState = "canceled"
)

// DeployStates lists every state, in life order.
var DeployStates = []DeployState{DeployQueued, DeployBuilding, DeployDeploying, DeployReady, DeployFailed, DeployCanceled}

// deployNext is the state machine: the states each state may move to.
var deployNext = map[DeployState][]DeployState{
	DeployQueued:    {DeployBuilding, DeployFailed, DeployCanceled},
	DeployBuilding:  {DeployDeploying, DeployFailed, DeployCanceled},
	DeployDeploying: {DeployReady, DeployFailed, DeployCanceled},
}

// Valid reports whether s is one of the six states.
func (s DeployState) Valid() bool {
	for _, v := range DeployStates {
		if s == v {
			return true
		}
	}
	return false
}

// Final reports whether s is ready, failed or canceled.
func (s DeployState) Final() bool { return s.Valid() && len(deployNext[s]) == 0 }

// CanMoveTo reports whether the state machine allows s -> to.
func (s DeployState) CanMoveTo(to DeployState) bool {
	for _, n := range deployNext[s] {
		if n == to {
			return true
		}
	}
	return false
}

// Trigger kinds: who created a deployment.
const (
	TriggerUser  = "user"  // a signed-in user; TriggeredBy is their id
	TriggerToken = "token" // a runner; TriggeredBy is its deploy token's id
)

// Deployment is one attempt to build and ship a project to an environment.
type Deployment struct {
	ID          uuid.UUID // UUIDv7
	ProjectID   uuid.UUID
	Environment string
	GitRef      string
	CommitSHA   string
	TriggeredBy uuid.UUID
	TriggerKind string
	State       DeployState
	Reason      string // why it failed or was canceled
	// RunnerID is the deploy token whose runner holds the lease (uuid.Nil
	// before a runner took the deployment); the lease ends at LeaseExpiresAt.
	RunnerID       uuid.UUID
	LeaseExpiresAt *time.Time
	// Results.
	URL     string
	Metrics map[string]int64 // build metrics, e.g. bundle_bytes
	// Timestamps: StartedAt when it left queued, FinishedAt when it reached
	// a final state.
	CreatedAt  time.Time
	StartedAt  *time.Time
	FinishedAt *time.Time
	UpdatedAt  time.Time
}

// Duration is how long the deployment ran: from StartedAt to FinishedAt,
// or 0 while either is unknown.
func (d *Deployment) Duration() time.Duration {
	if d.StartedAt == nil || d.FinishedAt == nil {
		return 0
	}
	return d.FinishedAt.Sub(*d.StartedAt)
}

// StepState is the state of one step of a deployment.
type StepState string

// Step states.
const (
	StepPending   StepState = "pending"
	StepRunning   StepState = "running"
	StepSucceeded StepState = "succeeded"
	StepFailed    StepState = "failed"
	StepSkipped   StepState = "skipped"
)

// Valid reports whether s is a step state.
func (s StepState) Valid() bool {
	switch s {
	case StepPending, StepRunning, StepSucceeded, StepFailed, StepSkipped:
		return true
	}
	return false
}

// DeployStep is one named step of a deployment ("install", "build", ...),
// as its runner reports it.
type DeployStep struct {
	DeploymentID uuid.UUID
	Name         string
	Position     int // order in which steps were first reported, from 0
	State        StepState
	StartedAt    *time.Time
	FinishedAt   *time.Time
	ExitCode     *int
}

// DeployToken lets a runner act on the deployments of one project. Only
// the SHA-256 of its secret is stored; the secret is shown once, when the
// token is created.
type DeployToken struct {
	ID          uuid.UUID
	ProjectID   uuid.UUID
	WorkspaceID uuid.UUID
	Name        string
	Hash        []byte
	CreatedBy   uuid.UUID
	CreatedAt   time.Time
	RevokedAt   *time.Time
}

// DeploymentFilter selects deployments of one project; zero fields match
// everything. Since and Until bound CreatedAt (Since inclusive, Until
// exclusive).
type DeploymentFilter struct {
	ProjectID   uuid.UUID
	Environment string
	State       DeployState
	Since       time.Time
	Until       time.Time
}

// ExpiredLease names a live deployment whose runner's lease ran out.
type ExpiredLease struct {
	DeploymentID uuid.UUID
	RunnerID     uuid.UUID
}

// DeployStore stores deploy tokens, deployments and their steps.
//
// A transaction whose actor is a deploy token id acts for that token's
// runner: the PostgreSQL store lets it see and change the deployments and
// steps of the token's project only.
type DeployStore interface {
	// CreateDeployToken inserts t. Returns ENotFound if its project does
	// not exist.
	CreateDeployToken(ctx context.Context, t *DeployToken) error
	// DeployTokenByHash returns the token whose secret hashes to hash,
	// whoever the actor is (revoked tokens included). Returns ENotFound if
	// there is none.
	DeployTokenByHash(ctx context.Context, hash []byte) (*DeployToken, error)
	// DeployTokenByID returns ENotFound if there is no such token.
	DeployTokenByID(ctx context.Context, id uuid.UUID) (*DeployToken, error)
	// ListDeployTokens lists a project's tokens in id order.
	ListDeployTokens(ctx context.Context, projectID uuid.UUID, p Page) ([]*DeployToken, error)
	// RevokeDeployToken sets a token's RevokedAt to t unless it is set
	// already. Returns ENotFound if absent.
	RevokeDeployToken(ctx context.Context, id uuid.UUID, t time.Time) error

	// CreateDeployment inserts d. Returns ENotFound if its project does not
	// exist.
	CreateDeployment(ctx context.Context, d *Deployment) error
	// DeploymentByID returns ENotFound if there is no such deployment.
	DeploymentByID(ctx context.Context, id uuid.UUID) (*Deployment, error)
	// LockDeployment returns the deployment like DeploymentByID and holds
	// it until the transaction ends, so that concurrent changes of one
	// deployment are serialised.
	LockDeployment(ctx context.Context, id uuid.UUID) (*Deployment, error)
	// LockDeploymentShared returns the deployment like DeploymentByID and
	// holds a shared lock on it until the transaction ends: it waits for,
	// and holds off, LockDeployment, but not other shared locks. Log
	// appends take it so that a deployment does not finish under them.
	LockDeploymentShared(ctx context.Context, id uuid.UUID) (*Deployment, error)
	// UpdateDeployment saves d's state, reason, runner, lease, results and
	// timestamps. Returns ENotFound if absent.
	UpdateDeployment(ctx context.Context, d *Deployment) error
	// ListDeployments lists the deployments matching f (ProjectID is
	// required) in id order, which is creation order.
	ListDeployments(ctx context.Context, f DeploymentFilter, p Page) ([]*Deployment, error)
	// ExpiredLeases returns up to max deployments in building or deploying
	// whose lease ended before t, whoever the actor is, oldest lease first.
	ExpiredLeases(ctx context.Context, t time.Time, max int) ([]ExpiredLease, error)

	// PutDeployStep inserts a step, or saves the state, times and exit code
	// of the step of that name (keeping its Position). Returns ENotFound if
	// the deployment does not exist.
	PutDeployStep(ctx context.Context, s *DeployStep) error
	// ListDeploySteps returns a deployment's steps by Position.
	ListDeploySteps(ctx context.Context, deploymentID uuid.UUID) ([]*DeployStep, error)
}
