package domain

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// User is an account. Email is stored lower-cased; PasswordHash is a PHC
// string (argon2id) and never leaves the domain.
type User struct {
	ID           uuid.UUID
	Email        string
	PasswordHash string
	DisplayName  string
	AvatarURL    string
	TimeZone     string
	Preferences  json.RawMessage // a JSON object, at most MaxPreferencesBytes
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// RefreshToken is one opaque refresh token of a login session. Tokens of one
// session share a FamilyID; each is single use, and spending one issues the
// next of the family. Only the SHA-256 of the token is stored.
type RefreshToken struct {
	ID        uuid.UUID
	FamilyID  uuid.UUID
	UserID    uuid.UUID
	Hash      []byte
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    *time.Time // when it was spent, nil while unused
	RevokedAt *time.Time // when its family was revoked, nil while live
	UserAgent string
	IP        string
}

// Workspace is a tenant: the unit of membership, billing and audit.
type Workspace struct {
	ID        uuid.UUID
	Name      string
	CreatedBy uuid.UUID
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Project belongs to one workspace and holds deployments, canvases and flags.
type Project struct {
	ID          uuid.UUID
	WorkspaceID uuid.UUID
	Name        string
	Description string
	CreatedBy   uuid.UUID
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Member is a user's membership of a workspace or project, with the user's
// public profile fields filled in by the store when listing.
type Member struct {
	UserID      uuid.UUID
	Role        Role
	Email       string
	DisplayName string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// AuditEvent records one mutating call: who did what to which object, from
// where, and whether it succeeded.
type AuditEvent struct {
	ID            uuid.UUID // UUIDv7, so ids sort by time
	Time          time.Time
	ActorID       uuid.UUID // uuid.Nil when nobody was signed in
	Action        string    // e.g. "workspace.create"
	TargetType    string    // e.g. "workspace"
	TargetID      string
	WorkspaceID   uuid.UUID // uuid.Nil for events outside any workspace
	ProjectID     uuid.UUID // uuid.Nil for events outside any project
	CorrelationID string
	IP            string
	UserAgent     string
	Result        string // "success" or "failure"
	Details       map[string]any

	// The hash chain (see [AuditEvent.Seal]), set by AppendAudit.
	Chain    uuid.UUID // the workspace, or the actor outside workspaces
	Seq      int64     // 1, 2, ... within Chain
	PrevHash []byte    // Hash of the event before in Chain; empty for the first
	Hash     []byte    // SHA-256 of the canonical encoding, see ComputeHash
}

// Audit results.
const (
	ResultSuccess = "success"
	ResultFailure = "failure"
)

// Page asks for at most Limit items strictly after the item with id After
// (uuid.Nil: from the start), in ascending id order.
type Page struct {
	Limit int
	After uuid.UUID
}

// Store opens transactions over every store interface.
type Store interface {
	// InTx runs fn in one transaction on behalf of actor (uuid.Nil when no
	// user is signed in): everything fn writes commits together, or nothing
	// does if fn returns an error. The PostgreSQL store also scopes
	// row-level security to actor for the transaction.
	InTx(ctx context.Context, actor uuid.UUID, fn func(Tx) error) error
	// Ping returns nil when the store can serve requests.
	Ping(ctx context.Context) error
}

// Tx is one transaction: every store interface, bound to it. A Tx must not
// be used after fn returns.
type Tx interface {
	UserStore
	TokenStore
	WorkspaceStore
	ProjectStore
	CanvasStore
	AuditStore
	OutboxStore
	NotificationStore
	DeployStore
	FlagStore
	LogStore
	SDKKeyStore
	ArtifactStore
	AnalyticsStore
}

// UserStore stores accounts.
type UserStore interface {
	// CreateUser inserts u. Returns EConflict if the email is taken.
	CreateUser(ctx context.Context, u *User) error
	// UserByID returns ENotFound if there is no such user.
	UserByID(ctx context.Context, id uuid.UUID) (*User, error)
	// UserByEmail looks up a lower-cased email. Returns ENotFound if absent.
	UserByEmail(ctx context.Context, email string) (*User, error)
	// UpdateUser saves the profile fields and password hash of u.
	// Returns ENotFound if the user does not exist.
	UpdateUser(ctx context.Context, u *User) error
	// AreCoMembers reports whether users a and b share a workspace or project.
	AreCoMembers(ctx context.Context, a, b uuid.UUID) (bool, error)
}

// TokenStore stores refresh tokens.
type TokenStore interface {
	// CreateRefreshToken inserts t.
	CreateRefreshToken(ctx context.Context, t *RefreshToken) error
	// RefreshTokenByHash returns the token with the given hash and holds it
	// for the rest of the transaction, so that concurrent spenders of the
	// same token are serialised. Returns ENotFound if absent.
	RefreshTokenByHash(ctx context.Context, hash []byte) (*RefreshToken, error)
	// MarkRefreshTokenUsed records that token id was spent at t.
	MarkRefreshTokenUsed(ctx context.Context, id uuid.UUID, t time.Time) error
	// RevokeTokenFamily revokes every live token of a family at t.
	RevokeTokenFamily(ctx context.Context, familyID uuid.UUID, t time.Time) error
	// RevokeUserTokens revokes every live token of a user at t.
	RevokeUserTokens(ctx context.Context, userID uuid.UUID, t time.Time) error
}

// WorkspaceStore stores workspaces and their members.
type WorkspaceStore interface {
	// CreateWorkspace inserts w.
	CreateWorkspace(ctx context.Context, w *Workspace) error
	// WorkspaceByID returns ENotFound if there is no such workspace.
	WorkspaceByID(ctx context.Context, id uuid.UUID) (*Workspace, error)
	// UpdateWorkspace saves w's name. Returns ENotFound if absent.
	UpdateWorkspace(ctx context.Context, w *Workspace) error
	// DeleteWorkspace deletes a workspace with its projects and memberships.
	// Returns ENotFound if absent.
	DeleteWorkspace(ctx context.Context, id uuid.UUID) error
	// ListWorkspaces returns the workspaces userID is a member of.
	ListWorkspaces(ctx context.Context, userID uuid.UUID, p Page) ([]*Workspace, error)
	// PutWorkspaceMember adds userID to a workspace with role, or changes the
	// role if already a member.
	PutWorkspaceMember(ctx context.Context, workspaceID, userID uuid.UUID, role Role, t time.Time) error
	// WorkspaceMember returns ENotFound if userID is not a member.
	WorkspaceMember(ctx context.Context, workspaceID, userID uuid.UUID) (*Member, error)
	// ListWorkspaceMembers lists members in user id order.
	ListWorkspaceMembers(ctx context.Context, workspaceID uuid.UUID, p Page) ([]*Member, error)
	// DeleteWorkspaceMember removes userID from the workspace and from every
	// project of it. Returns ENotFound if userID was not a member.
	DeleteWorkspaceMember(ctx context.Context, workspaceID, userID uuid.UUID) error
	// CountWorkspaceOwners returns how many owners a workspace has.
	CountWorkspaceOwners(ctx context.Context, workspaceID uuid.UUID) (int, error)
}

// ProjectStore stores projects and their members.
type ProjectStore interface {
	// CreateProject inserts p.
	CreateProject(ctx context.Context, p *Project) error
	// ProjectByID returns ENotFound if there is no such project.
	ProjectByID(ctx context.Context, id uuid.UUID) (*Project, error)
	// UpdateProject saves p's name and description. Returns ENotFound if absent.
	UpdateProject(ctx context.Context, p *Project) error
	// DeleteProject deletes a project with its memberships. Returns
	// ENotFound if absent.
	DeleteProject(ctx context.Context, id uuid.UUID) error
	// ListProjects returns a workspace's projects; with memberOnly set, only
	// those userID is a project member of.
	ListProjects(ctx context.Context, workspaceID, userID uuid.UUID, memberOnly bool, p Page) ([]*Project, error)
	// PutProjectMember adds userID to a project with role, or changes it.
	PutProjectMember(ctx context.Context, projectID, userID uuid.UUID, role Role, t time.Time) error
	// ProjectMember returns ENotFound if userID is not a project member.
	ProjectMember(ctx context.Context, projectID, userID uuid.UUID) (*Member, error)
	// ListProjectMembers lists the project's own members in user id order
	// (workspace members reach the project through the workspace).
	ListProjectMembers(ctx context.Context, projectID uuid.UUID, p Page) ([]*Member, error)
	// DeleteProjectMember returns ENotFound if userID was not a member.
	DeleteProjectMember(ctx context.Context, projectID, userID uuid.UUID) error
}

// AuditFilter selects audit events; zero fields match everything.
type AuditFilter struct {
	WorkspaceID uuid.UUID
	ProjectID   uuid.UUID
	ActorID     uuid.UUID
	Action      string
	TargetType  string
	TargetID    string
	Since       time.Time
	Until       time.Time
}

// AuditStore appends and reads audit events. Events are never changed.
type AuditStore interface {
	// AppendAudit appends e to the end of its chain, sealing it
	// (AuditEvent.Seal sets Chain, Seq, PrevHash and Hash), and holds the
	// chain's head until the transaction ends, so that appends to one
	// chain are serialised.
	AppendAudit(ctx context.Context, e *AuditEvent) error
	// ListAudit returns events matching f in id (time) order.
	ListAudit(ctx context.Context, f AuditFilter, p Page) ([]*AuditEvent, error)
	// AuditChainHead returns the head of a chain the actor may read (a
	// workspace they are a member of, or their own); a chain without
	// events, or one they may not read, has Seq 0.
	AuditChainHead(ctx context.Context, chain uuid.UUID) (AuditHead, error)
	// ListAuditChain returns the events of chain with Seq above afterSeq,
	// in Seq order, at most limit of them.
	ListAuditChain(ctx context.Context, chain uuid.UUID, afterSeq int64, limit int) ([]*AuditEvent, error)
}
