package domain

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Deployment events, on the project channel. Every state change sends
// deployment.state_changed; reaching ready also sends deployment.succeeded,
// reaching failed deployment.failed. docs/api.md lists their data.
const (
	EventDeploymentCreated      = "deployment.created"
	EventDeploymentStateChanged = "deployment.state_changed"
	EventDeploymentSucceeded    = "deployment.succeeded"
	EventDeploymentFailed       = "deployment.failed"
)

// ReasonRunnerLost is the reason of a deployment the reaper failed because
// its runner stopped renewing its lease.
const ReasonRunnerLost = "runner lost"

// deployTokenPrefix starts every deploy token secret, so that leaked ones
// are easy to recognise.
const deployTokenPrefix = "tone_dt_"

// Limits of deployment fields.
const (
	MaxEnvironmentLen = 64
	MaxGitRefLen      = 255
	MaxReasonLen      = 1000
	MaxURLLen         = 2048
	MaxStepNameLen    = 100
	MaxMetrics        = 50
)

// Runner is the principal of a request made with a deploy token: it may act
// on the deployments of ProjectID only.
type Runner struct {
	TokenID     uuid.UUID
	ProjectID   uuid.UUID
	WorkspaceID uuid.UUID
}

// AuthenticateRunner returns the runner a deploy token secret speaks for.
// Returns EUnauthenticated for an empty, unknown or revoked token.
func (s *Service) AuthenticateRunner(ctx context.Context, secret string) (*Runner, error) {
	if secret == "" {
		return nil, Errorf(EUnauthenticated, "Sign in first: no access token.")
	}
	if !strings.HasPrefix(secret, deployTokenPrefix) {
		return nil, Errorf(EUnauthenticated, "Not a deploy token.")
	}
	var t *DeployToken
	err := s.store.InTx(ctx, uuid.Nil, func(tx Tx) (err error) {
		t, err = tx.DeployTokenByHash(ctx, hashToken(secret))
		return err
	})
	switch {
	case ErrorCode(err) == ENotFound:
		return nil, Errorf(EUnauthenticated, "Deploy token invalid.")
	case err != nil:
		return nil, err
	case t.RevokedAt != nil:
		return nil, Errorf(EUnauthenticated, "Deploy token revoked.")
	}
	return &Runner{TokenID: t.ID, ProjectID: t.ProjectID, WorkspaceID: t.WorkspaceID}, nil
}

// CreateDeployToken creates a deploy token for a project (admins and up)
// and returns it with its secret, which is not stored and cannot be shown
// again.
func (s *Service) CreateDeployToken(ctx context.Context, actor, projectID uuid.UUID, name string) (*DeployToken, string, error) {
	name, err := checkName("name", name)
	if err != nil {
		return nil, "", err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, "", err
	}
	secret := deployTokenPrefix + base64.RawURLEncoding.EncodeToString(raw)
	var t *DeployToken
	err = s.inTx(ctx, actor, func(tx Tx) error {
		p, role, err := projectAccess(ctx, tx, projectID, actor)
		if err != nil {
			return err
		}
		if err := authorize(role, ActDeployTokensManage, "Project"); err != nil {
			return err
		}
		t = &DeployToken{ID: newID(), ProjectID: projectID, WorkspaceID: p.WorkspaceID, Name: name,
			Hash: hashToken(secret), CreatedBy: actor, CreatedAt: s.now()}
		if err := tx.CreateDeployToken(ctx, t); err != nil {
			return err
		}
		ev := s.audit(ctx, actor, "deploy_token.create", "deploy_token", t.ID.String())
		ev.WorkspaceID, ev.ProjectID = p.WorkspaceID, projectID
		ev.Details = map[string]any{"name": name}
		return tx.AppendAudit(ctx, ev)
	})
	if err != nil {
		return nil, "", err
	}
	return t, secret, nil
}

// ListDeployTokens lists a project's deploy tokens, revoked ones included
// (admins and up).
func (s *Service) ListDeployTokens(ctx context.Context, actor, projectID uuid.UUID, opt ListOptions) ([]*DeployToken, string, error) {
	pg, limit, err := opt.page()
	if err != nil {
		return nil, "", err
	}
	var ts []*DeployToken
	err = s.store.InTx(ctx, actor, func(tx Tx) error {
		_, role, err := projectAccess(ctx, tx, projectID, actor)
		if err != nil {
			return err
		}
		if err := authorize(role, ActDeployTokensManage, "Project"); err != nil {
			return err
		}
		ts, err = tx.ListDeployTokens(ctx, projectID, pg)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	ts, next := nextCursor(ts, limit, func(t *DeployToken) uuid.UUID { return t.ID })
	return ts, next, nil
}

// RevokeDeployToken revokes a deploy token of a project (admins and up);
// runners using it are refused from then on. Revoking twice is harmless.
func (s *Service) RevokeDeployToken(ctx context.Context, actor, projectID, tokenID uuid.UUID) error {
	return s.inTx(ctx, actor, func(tx Tx) error {
		p, role, err := projectAccess(ctx, tx, projectID, actor)
		if err != nil {
			return err
		}
		if err := authorize(role, ActDeployTokensManage, "Project"); err != nil {
			return err
		}
		t, err := tx.DeployTokenByID(ctx, tokenID)
		if ErrorCode(err) == ENotFound || err == nil && t.ProjectID != projectID {
			return notFound("Deploy token")
		}
		if err != nil {
			return err
		}
		if err := tx.RevokeDeployToken(ctx, tokenID, s.now()); err != nil {
			return err
		}
		ev := s.audit(ctx, actor, "deploy_token.revoke", "deploy_token", tokenID.String())
		ev.WorkspaceID, ev.ProjectID = p.WorkspaceID, projectID
		return tx.AppendAudit(ctx, ev)
	})
}

// DeploymentInput describes a deployment to create.
type DeploymentInput struct {
	Environment string
	GitRef      string
	CommitSHA   string
}

var commitSHA = regexp.MustCompile(`^[0-9a-f]{7,64}$`)

func printable(s string) bool {
	return utf8.ValidString(s) && strings.IndexFunc(s, unicode.IsControl) < 0
}

func (in DeploymentInput) check() (DeploymentInput, error) {
	in.Environment = strings.TrimSpace(in.Environment)
	if n := utf8.RuneCountInString(in.Environment); n == 0 || n > MaxEnvironmentLen || !printable(in.Environment) {
		return in, Errorf(EInvalid, "environment must be 1 to %d printable characters.", MaxEnvironmentLen).WithDetail("field", "environment")
	}
	if len(in.GitRef) > MaxGitRefLen || !printable(in.GitRef) {
		return in, Errorf(EInvalid, "git_ref must be at most %d printable bytes.", MaxGitRefLen).WithDetail("field", "git_ref")
	}
	in.CommitSHA = strings.ToLower(in.CommitSHA)
	if in.CommitSHA != "" && !commitSHA.MatchString(in.CommitSHA) {
		return in, Errorf(EInvalid, "commit_sha must be 7 to 64 hexadecimal digits.").WithDetail("field", "commit_sha")
	}
	return in, nil
}

// deploymentAccess loads a deployment (locked when lock is set), its
// project and user's effective role. A missing deployment gives nils and
// role "", which authorize turns into ENotFound.
func deploymentAccess(ctx context.Context, tx Tx, id, user uuid.UUID, lock bool) (*Deployment, *Project, Role, error) {
	var d *Deployment
	var err error
	if lock {
		d, err = tx.LockDeployment(ctx, id)
	} else {
		d, err = tx.DeploymentByID(ctx, id)
	}
	if ErrorCode(err) == ENotFound {
		return nil, nil, "", nil
	}
	if err != nil {
		return nil, nil, "", err
	}
	p, role, err := projectAccess(ctx, tx, d.ProjectID, user)
	if err != nil || p == nil {
		return nil, nil, "", err
	}
	return d, p, role, nil
}

// deployEventData is the data of every deployment event.
func deployEventData(d *Deployment) map[string]any {
	data := map[string]any{
		"deployment_id": d.ID, "project_id": d.ProjectID, "environment": d.Environment,
		"state": d.State, "git_ref": d.GitRef, "commit_sha": d.CommitSHA, "updated_at": d.UpdatedAt,
	}
	if d.Reason != "" {
		data["reason"] = d.Reason
	}
	return data
}

// createDeployment stores d and emits deployment.created.
func (s *Service) createDeployment(ctx context.Context, tx Tx, actor, workspaceID uuid.UUID, d *Deployment) error {
	if err := tx.CreateDeployment(ctx, d); err != nil {
		return err
	}
	data := deployEventData(d)
	data["trigger_kind"], data["triggered_by"] = d.TriggerKind, d.TriggeredBy
	if err := s.emit(ctx, tx, actor, ProjectChannel(d.ProjectID), EventDeploymentCreated, data); err != nil {
		return err
	}
	ev := s.audit(ctx, actor, "deployment.create", "deployment", d.ID.String())
	ev.WorkspaceID, ev.ProjectID = workspaceID, d.ProjectID
	ev.Details = map[string]any{"environment": d.Environment, "git_ref": d.GitRef, "commit_sha": d.CommitSHA}
	return tx.AppendAudit(ctx, ev)
}

func (s *Service) newDeployment(projectID uuid.UUID, in DeploymentInput, by uuid.UUID, kind string) *Deployment {
	now := s.now()
	return &Deployment{
		ID: newID(), ProjectID: projectID, Environment: in.Environment, GitRef: in.GitRef, CommitSHA: in.CommitSHA,
		TriggeredBy: by, TriggerKind: kind, State: DeployQueued, Metrics: map[string]int64{},
		CreatedAt: now, UpdatedAt: now,
	}
}

// CreateDeployment queues a deployment in a project (editors and up).
func (s *Service) CreateDeployment(ctx context.Context, actor, projectID uuid.UUID, in DeploymentInput) (*Deployment, error) {
	in, err := in.check()
	if err != nil {
		return nil, err
	}
	d := s.newDeployment(projectID, in, actor, TriggerUser)
	err = s.inTx(ctx, actor, func(tx Tx) error {
		p, role, err := projectAccess(ctx, tx, projectID, actor)
		if err != nil {
			return err
		}
		if err := authorize(role, ActDeploymentCreate, "Project"); err != nil {
			return err
		}
		return s.createDeployment(ctx, tx, actor, p.WorkspaceID, d)
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// RunnerCreateDeployment queues a deployment in the runner's project.
func (s *Service) RunnerCreateDeployment(ctx context.Context, r *Runner, in DeploymentInput) (*Deployment, error) {
	in, err := in.check()
	if err != nil {
		return nil, err
	}
	d := s.newDeployment(r.ProjectID, in, r.TokenID, TriggerToken)
	err = s.inTx(ctx, r.TokenID, func(tx Tx) error {
		return s.createDeployment(ctx, tx, r.TokenID, r.WorkspaceID, d)
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// DeploymentWithSteps is a deployment and its steps.
type DeploymentWithSteps struct {
	*Deployment
	Steps []*DeployStep
}

// GetDeployment returns a deployment with its steps (anyone who can see
// its project). Returns ENotFound if it does not exist or is hidden.
func (s *Service) GetDeployment(ctx context.Context, actor, id uuid.UUID) (*DeploymentWithSteps, error) {
	var out *DeploymentWithSteps
	err := s.store.InTx(ctx, actor, func(tx Tx) error {
		d, _, role, err := deploymentAccess(ctx, tx, id, actor, false)
		if err != nil {
			return err
		}
		if err := authorize(role, ActDeploymentRead, "Deployment"); err != nil {
			return err
		}
		steps, err := tx.ListDeploySteps(ctx, id)
		out = &DeploymentWithSteps{Deployment: d, Steps: steps}
		return err
	})
	return out, err
}

// RunnerGetDeployment returns a deployment of the runner's project with its
// steps.
func (s *Service) RunnerGetDeployment(ctx context.Context, r *Runner, id uuid.UUID) (*DeploymentWithSteps, error) {
	var out *DeploymentWithSteps
	err := s.store.InTx(ctx, r.TokenID, func(tx Tx) error {
		d, err := runnerDeployment(ctx, tx, r, id, false)
		if err != nil {
			return err
		}
		steps, err := tx.ListDeploySteps(ctx, id)
		out = &DeploymentWithSteps{Deployment: d, Steps: steps}
		return err
	})
	return out, err
}

// ListDeployments lists a project's deployments matching f (anyone who can
// see the project), oldest first.
func (s *Service) ListDeployments(ctx context.Context, actor uuid.UUID, f DeploymentFilter, opt ListOptions) ([]*Deployment, string, error) {
	pg, limit, err := opt.page()
	if err != nil {
		return nil, "", err
	}
	if f.State != "" && !f.State.Valid() {
		return nil, "", Errorf(EInvalid, "state must be one of queued, building, deploying, ready, failed, canceled.").WithDetail("field", "state")
	}
	var ds []*Deployment
	err = s.store.InTx(ctx, actor, func(tx Tx) error {
		_, role, err := projectAccess(ctx, tx, f.ProjectID, actor)
		if err != nil {
			return err
		}
		if err := authorize(role, ActDeploymentRead, "Project"); err != nil {
			return err
		}
		ds, err = tx.ListDeployments(ctx, f, pg)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	ds, next := nextCursor(ds, limit, func(d *Deployment) uuid.UUID { return d.ID })
	return ds, next, nil
}

// transition moves d to state to and records why, or returns EConflict
// with details.state = the current state if the state machine forbids it.
// It emits the events of the change; the caller saves d and audits.
func (s *Service) transition(ctx context.Context, tx Tx, actor uuid.UUID, d *Deployment, to DeployState, reason string) error {
	if !to.Valid() {
		return Errorf(EInvalid, "state must be one of queued, building, deploying, ready, failed, canceled.").WithDetail("field", "state")
	}
	if !d.State.CanMoveTo(to) {
		return Errorf(EConflict, "A deployment in state %s cannot move to %s.", d.State, to).
			WithDetail("state", string(d.State))
	}
	from := d.State
	now := s.now()
	d.State, d.UpdatedAt = to, now
	if to == DeployFailed || to == DeployCanceled {
		d.Reason = reason
	}
	if from == DeployQueued {
		d.StartedAt = &now
	}
	if to.Final() {
		d.FinishedAt = &now
		d.LeaseExpiresAt = nil
	}
	data := deployEventData(d)
	data["from"] = from
	if err := s.emit(ctx, tx, actor, ProjectChannel(d.ProjectID), EventDeploymentStateChanged, data); err != nil {
		return err
	}
	if to.Final() {
		if err := s.logFinal(ctx, tx, actor, d); err != nil {
			return err
		}
	}
	final := map[DeployState]string{DeployReady: EventDeploymentSucceeded, DeployFailed: EventDeploymentFailed}[to]
	if final == "" {
		return nil
	}
	result := func() map[string]any {
		data := deployEventData(d)
		data["url"] = d.URL
		data["duration_ms"] = d.Duration().Milliseconds()
		return data
	}
	if err := s.emit(ctx, tx, actor, ProjectChannel(d.ProjectID), final, result()); err != nil {
		return err
	}
	return s.notifyDeployment(ctx, tx, actor, d, final, result())
}

// notifyDeployment tells the project's members who opted in that d
// succeeded or failed (typ is NotifyDeploymentSucceeded or
// NotifyDeploymentFailed). A runner's token, or the reaper, is no user:
// such notifications name no actor.
func (s *Service) notifyDeployment(ctx context.Context, tx Tx, actor uuid.UUID, d *Deployment, typ string, data map[string]any) error {
	if actor != uuid.Nil {
		if _, err := tx.UserByID(ctx, actor); ErrorCode(err) == ENotFound {
			actor = uuid.Nil
		} else if err != nil {
			return err
		}
	}
	return s.NotifyProject(ctx, tx, actor, d.ProjectID, typ, data)
}

func checkReason(reason string) (string, error) {
	reason = strings.TrimSpace(reason)
	if utf8.RuneCountInString(reason) > MaxReasonLen || !utf8.ValidString(reason) {
		return "", Errorf(EInvalid, "reason must be at most %d characters.", MaxReasonLen).WithDetail("field", "reason")
	}
	return reason, nil
}

// CancelDeployment cancels a deployment that has not finished (editors and
// up). Returns EConflict with details.state if it has.
func (s *Service) CancelDeployment(ctx context.Context, actor, id uuid.UUID, reason string) (*Deployment, error) {
	reason, err := checkReason(reason)
	if err != nil {
		return nil, err
	}
	var d *Deployment
	err = s.inTx(ctx, actor, func(tx Tx) error {
		var p *Project
		var role Role
		d, p, role, err = deploymentAccess(ctx, tx, id, actor, true)
		if err != nil {
			return err
		}
		if err := authorize(role, ActDeploymentCancel, "Deployment"); err != nil {
			return err
		}
		if err := s.transition(ctx, tx, actor, d, DeployCanceled, reason); err != nil {
			return err
		}
		if err := tx.UpdateDeployment(ctx, d); err != nil {
			return err
		}
		ev := s.audit(ctx, actor, "deployment.cancel", "deployment", id.String())
		ev.WorkspaceID, ev.ProjectID = p.WorkspaceID, p.ID
		ev.Details = map[string]any{"reason": reason}
		return tx.AppendAudit(ctx, ev)
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// runnerDeployment loads a deployment of r's project, or ENotFound.
func runnerDeployment(ctx context.Context, tx Tx, r *Runner, id uuid.UUID, lock bool) (*Deployment, error) {
	var d *Deployment
	var err error
	if lock {
		d, err = tx.LockDeployment(ctx, id)
	} else {
		d, err = tx.DeploymentByID(ctx, id)
	}
	if ErrorCode(err) == ENotFound || err == nil && d.ProjectID != r.ProjectID {
		return nil, notFound("Deployment")
	}
	return d, err
}

// takeLease gives r the lease of d until now + the configured lease, unless
// another runner holds a lease that has not run out (EConflict). A final
// deployment has no lease.
func (s *Service) takeLease(r *Runner, d *Deployment) error {
	now := s.now()
	if d.RunnerID != uuid.Nil && d.RunnerID != r.TokenID && d.LeaseExpiresAt != nil && d.LeaseExpiresAt.After(now) {
		return Errorf(EConflict, "Another runner holds this deployment until %s.", d.LeaseExpiresAt.Format(time.RFC3339)).
			WithDetail("state", string(d.State))
	}
	if d.State.Final() {
		return nil
	}
	until := now.Add(s.cfg.DeployLease)
	d.RunnerID, d.LeaseExpiresAt = r.TokenID, &until
	return nil
}

// RunnerAudit builds the audit event of a runner's action.
func (s *Service) runnerAudit(ctx context.Context, r *Runner, action string, id uuid.UUID) *AuditEvent {
	ev := s.audit(ctx, r.TokenID, action, "deployment", id.String())
	ev.WorkspaceID, ev.ProjectID = r.WorkspaceID, r.ProjectID
	return ev
}

// Heartbeat renews the runner's lease on a deployment (taking it if no
// live lease is held) and returns the deployment, so that the runner
// learns when it was canceled. A final deployment is returned unchanged.
// Renewals are not audited; taking the lease is.
func (s *Service) Heartbeat(ctx context.Context, r *Runner, id uuid.UUID) (*Deployment, error) {
	var d *Deployment
	err := s.inTx(ctx, r.TokenID, func(tx Tx) (err error) {
		if d, err = runnerDeployment(ctx, tx, r, id, true); err != nil {
			return err
		}
		if d.State.Final() {
			return nil
		}
		took := d.RunnerID != r.TokenID
		if err := s.takeLease(r, d); err != nil {
			return err
		}
		if err := tx.UpdateDeployment(ctx, d); err != nil {
			return err
		}
		if !took {
			return nil
		}
		return tx.AppendAudit(ctx, s.runnerAudit(ctx, r, "deployment.lease", id))
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// DeploymentReport is what a runner reports about a deployment: a new
// state (optional), why it failed, and results. Nil fields are left as
// they are.
type DeploymentReport struct {
	State   DeployState
	Reason  string
	URL     *string
	Metrics map[string]int64
}

// Report applies a runner's report: results first, then the state change,
// so that deployment.succeeded carries the final URL. The runner takes the
// lease. Returns EConflict with details.state for a transition the state
// machine forbids.
func (s *Service) Report(ctx context.Context, r *Runner, id uuid.UUID, rep DeploymentReport) (*Deployment, error) {
	reason, err := checkReason(rep.Reason)
	if err != nil {
		return nil, err
	}
	if rep.URL != nil && (len(*rep.URL) > MaxURLLen || !printable(*rep.URL)) {
		return nil, Errorf(EInvalid, "url must be at most %d printable bytes.", MaxURLLen).WithDetail("field", "url")
	}
	if len(rep.Metrics) > MaxMetrics {
		return nil, Errorf(EInvalid, "At most %d metrics.", MaxMetrics).WithDetail("field", "metrics")
	}
	for k := range rep.Metrics {
		if k == "" || len(k) > MaxStepNameLen || !printable(k) {
			return nil, Errorf(EInvalid, "Metric names must be 1 to %d printable bytes.", MaxStepNameLen).WithDetail("field", "metrics")
		}
	}
	var d *Deployment
	err = s.inTx(ctx, r.TokenID, func(tx Tx) (err error) {
		if d, err = runnerDeployment(ctx, tx, r, id, true); err != nil {
			return err
		}
		if rep.State == "" && d.State.Final() {
			return Errorf(EConflict, "The deployment has finished (%s).", d.State).WithDetail("state", string(d.State))
		}
		if err := s.takeLease(r, d); err != nil {
			return err
		}
		details := map[string]any{}
		if rep.URL != nil {
			d.URL = *rep.URL
			details["url"] = d.URL
		}
		if len(rep.Metrics) > 0 {
			m := make(map[string]int64, len(d.Metrics)+len(rep.Metrics))
			for k, v := range d.Metrics {
				m[k] = v
			}
			for k, v := range rep.Metrics {
				m[k] = v
			}
			if len(m) > MaxMetrics {
				return Errorf(EInvalid, "At most %d metrics.", MaxMetrics).WithDetail("field", "metrics")
			}
			d.Metrics = m
			details["metrics"] = rep.Metrics
		}
		d.UpdatedAt = s.now()
		action := "deployment.result"
		if rep.State != "" {
			from := d.State
			if err := s.transition(ctx, tx, r.TokenID, d, rep.State, reason); err != nil {
				return err
			}
			action = "deployment.state_change"
			details["from"], details["to"] = string(from), string(rep.State)
			if reason != "" {
				details["reason"] = reason
			}
		}
		if err := tx.UpdateDeployment(ctx, d); err != nil {
			return err
		}
		ev := s.runnerAudit(ctx, r, action, id)
		ev.Details = details
		return tx.AppendAudit(ctx, ev)
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// StepReport is a runner's report of one step. StartedAt and FinishedAt
// default to now when the state says the step started or finished and the
// runner gave no time.
type StepReport struct {
	Name       string
	State      StepState
	StartedAt  *time.Time
	FinishedAt *time.Time
	ExitCode   *int
}

// ReportStep records the state of a step of a deployment that has not
// finished. The runner takes the lease.
func (s *Service) ReportStep(ctx context.Context, r *Runner, id uuid.UUID, rep StepReport) (*DeployStep, error) {
	name := strings.TrimSpace(rep.Name)
	if n := utf8.RuneCountInString(name); n == 0 || n > MaxStepNameLen || !printable(name) {
		return nil, Errorf(EInvalid, "name must be 1 to %d printable characters.", MaxStepNameLen).WithDetail("field", "name")
	}
	if !rep.State.Valid() {
		return nil, Errorf(EInvalid, "state must be one of pending, running, succeeded, failed, skipped.").WithDetail("field", "state")
	}
	var step *DeployStep
	err := s.inTx(ctx, r.TokenID, func(tx Tx) error {
		d, err := runnerDeployment(ctx, tx, r, id, true)
		if err != nil {
			return err
		}
		if d.State.Final() {
			return Errorf(EConflict, "The deployment has finished (%s).", d.State).WithDetail("state", string(d.State))
		}
		if err := s.takeLease(r, d); err != nil {
			return err
		}
		d.UpdatedAt = s.now()
		if err := tx.UpdateDeployment(ctx, d); err != nil {
			return err
		}
		now := s.now()
		step = &DeployStep{DeploymentID: id, Name: name, State: rep.State, StartedAt: rep.StartedAt, FinishedAt: rep.FinishedAt, ExitCode: rep.ExitCode}
		steps, err := tx.ListDeploySteps(ctx, id)
		if err != nil {
			return err
		}
		for _, old := range steps {
			if old.Name == name && step.StartedAt == nil {
				step.StartedAt = old.StartedAt // started when first reported running
			}
		}
		if step.StartedAt == nil && rep.State != StepPending && rep.State != StepSkipped {
			step.StartedAt = &now
		}
		if step.FinishedAt == nil && (rep.State == StepSucceeded || rep.State == StepFailed || rep.State == StepSkipped) {
			step.FinishedAt = &now
		}
		if err := tx.PutDeployStep(ctx, step); err != nil {
			return err
		}
		ev := s.runnerAudit(ctx, r, "deployment.step", id)
		ev.Details = map[string]any{"step": name, "state": string(rep.State)}
		if rep.ExitCode != nil {
			ev.Details["exit_code"] = *rep.ExitCode
		}
		return tx.AppendAudit(ctx, ev)
	})
	if err != nil {
		return nil, err
	}
	return step, nil
}

// ReapDeployments fails every live deployment whose runner's lease ran
// out, with reason "runner lost", and returns how many it failed. A
// deployment whose lease was renewed in the meantime is left alone.
func (s *Service) ReapDeployments(ctx context.Context) (int, error) {
	var leases []ExpiredLease
	now := s.now()
	err := s.store.InTx(ctx, uuid.Nil, func(tx Tx) (err error) {
		leases, err = tx.ExpiredLeases(ctx, now, 100)
		return err
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, l := range leases {
		reaped := false
		err := s.inTx(ctx, l.RunnerID, func(tx Tx) error {
			d, err := tx.LockDeployment(ctx, l.DeploymentID)
			if err != nil {
				return err
			}
			if d.State.Final() || d.LeaseExpiresAt == nil || !d.LeaseExpiresAt.Before(s.now()) {
				return nil
			}
			tok, err := tx.DeployTokenByID(ctx, l.RunnerID)
			if err != nil {
				return err
			}
			if err := s.transition(ctx, tx, l.RunnerID, d, DeployFailed, ReasonRunnerLost); err != nil {
				return err
			}
			if err := tx.UpdateDeployment(ctx, d); err != nil {
				return err
			}
			ev := s.runnerAudit(ctx, &Runner{TokenID: l.RunnerID, ProjectID: d.ProjectID, WorkspaceID: tok.WorkspaceID}, "deployment.state_change", d.ID)
			ev.Details = map[string]any{"to": string(DeployFailed), "reason": ReasonRunnerLost}
			reaped = true
			return tx.AppendAudit(ctx, ev)
		})
		if err != nil {
			return n, err
		}
		if reaped {
			n++
		}
	}
	return n, nil
}

// RunReaper calls ReapDeployments every interval until ctx is done. Run
// one per node; nodes reaping at once serialise on the deployment's lock
// and the second finds nothing to do.
func (s *Service) RunReaper(ctx context.Context, interval time.Duration) {
	every(ctx, interval, func() {
		n, err := s.ReapDeployments(ctx)
		if err != nil && ctx.Err() == nil {
			s.cfg.Logger.WarnContext(ctx, "deployment reaper failed", "err", err)
		}
		if n > 0 {
			s.cfg.Logger.InfoContext(ctx, "deployments failed: runner lost", "count", n)
		}
	})
}

// every calls fn every interval until ctx is done.
func every(ctx context.Context, interval time.Duration, fn func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fn()
	}
}
