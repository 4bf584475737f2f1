package domain

import (
	"context"
	"encoding/base64"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Config holds the service's settings. The zero value of a field means its
// default.
type Config struct {
	Keys         *Keyring
	AccessTTL    time.Duration    // access token lifetime; default 15 minutes
	RefreshTTL   time.Duration    // refresh token lifetime; default 30 days
	RefreshGrace time.Duration    // window in which a spent refresh token may be spent again; default 10 s
	Password     PasswordParams   // argon2id cost; default DefaultPasswordParams
	Now          func() time.Time // clock; default time.Now, always read in UTC
	Logger       *slog.Logger     // default slog.Default()

	// The outbox relay (RunOutbox).
	OutboxBatch    int           // events claimed per round; default 500
	OutboxPoll     time.Duration // how often it looks for events nobody woke it for; default 1 s
	OutboxRetry    time.Duration // first delay after a failed publish; default 100 ms
	OutboxRetryMax time.Duration // the delay doubles up to this; default 30 s

	// Deployments.
	DeployLease time.Duration // how long a runner's heartbeat keeps its deployment; default 1 minute

	// Feature flags.
	FlagHistory  int           // changes kept per environment for FlagChanges; default DefaultFlagHistory
	FlagCacheTTL time.Duration // how long evaluation trusts its copy of an environment; default DefaultFlagCacheTTL

	// Deployment logs.
	LogMaxLines      int64         // lines kept per deployment (the oldest are dropped); default 1,000,000
	LogMaxBytes      int64         // bytes kept per deployment; default 256 MiB
	LogRetentionDays int           // days lines are kept in projects without a setting; default 30
	LogSearchTimeout time.Duration // how long a log search may run; default 5 s

	// Artifacts. Without Blobs and Uploads, artifact use cases are
	// EUnavailable.
	Blobs            BlobStore     // artifact contents
	Uploads          UploadStore   // resumable uploads in progress
	URLSigner        *URLSigner    // signs download URLs; default a generated (ephemeral) key
	ArtifactMaxBytes int64         // largest artifact; default DefaultArtifactMaxBytes (1 GiB)
	UploadTTL        time.Duration // how long an upload nobody appends to is kept; default 24 h
	DownloadURLTTL   time.Duration // lifetime of signed download URLs; default 5 minutes
	BlobGCGrace      time.Duration // blobs put more recently are never collected; default 1 h
}

// Service carries out every use case of the platform over a Store.
type Service struct {
	store Store
	cfg   Config
	// dummyHash is checked against when a login names an unknown email, so
	// that both cases cost the same time.
	dummyHash string
	// outboxWake has a value when events were committed since the relay
	// last looked.
	outboxWake chan struct{}
	// writers and claims spare AppendCanvasUpdates repeated checks (see
	// canvasWriterTTL).
	writers expiringSet[canvasWriter]
	claims  sync.Map // canvasClaim -> struct{}
	// flagCache holds the environments evaluation reads; flagReaders
	// spares it the membership check of recent readers.
	flagCache   flagCache
	flagReaders expiringSet[flagReader]
	sdkKeys     sdkKeyCache
}

// NewService returns a Service over store.
func NewService(store Store, cfg Config) (*Service, error) {
	if cfg.AccessTTL == 0 {
		cfg.AccessTTL = 15 * time.Minute
	}
	if cfg.RefreshTTL == 0 {
		cfg.RefreshTTL = 30 * 24 * time.Hour
	}
	if cfg.RefreshGrace == 0 {
		cfg.RefreshGrace = 10 * time.Second
	}
	if cfg.Password == (PasswordParams{}) {
		cfg.Password = DefaultPasswordParams
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.OutboxBatch <= 0 {
		cfg.OutboxBatch = 500
	}
	if cfg.OutboxPoll <= 0 {
		cfg.OutboxPoll = time.Second
	}
	if cfg.OutboxRetry <= 0 {
		cfg.OutboxRetry = 100 * time.Millisecond
	}
	if cfg.OutboxRetryMax <= 0 {
		cfg.OutboxRetryMax = 30 * time.Second
	}
	cfg.OutboxRetryMax = max(cfg.OutboxRetryMax, cfg.OutboxRetry)
	if cfg.DeployLease <= 0 {
		cfg.DeployLease = time.Minute
	}
	if cfg.FlagHistory <= 0 {
		cfg.FlagHistory = DefaultFlagHistory
	}
	if cfg.FlagCacheTTL <= 0 {
		cfg.FlagCacheTTL = DefaultFlagCacheTTL
	}
	if cfg.LogMaxLines <= 0 {
		cfg.LogMaxLines = 1_000_000
	}
	if cfg.LogMaxBytes <= 0 {
		cfg.LogMaxBytes = 256 << 20
	}
	if cfg.LogRetentionDays <= 0 {
		cfg.LogRetentionDays = 30
	}
	if cfg.LogSearchTimeout <= 0 {
		cfg.LogSearchTimeout = searchTimeout
	}
	if cfg.ArtifactMaxBytes <= 0 {
		cfg.ArtifactMaxBytes = DefaultArtifactMaxBytes
	}
	if cfg.UploadTTL <= 0 {
		cfg.UploadTTL = DefaultUploadTTL
	}
	if cfg.DownloadURLTTL <= 0 {
		cfg.DownloadURLTTL = DefaultDownloadURLTTL
	}
	if cfg.BlobGCGrace <= 0 {
		cfg.BlobGCGrace = DefaultBlobGCGrace
	}
	if cfg.URLSigner == nil {
		us, err := GenerateURLSigner()
		if err != nil {
			return nil, err
		}
		cfg.URLSigner = us
	}
	if cfg.Keys == nil {
		k, err := GenerateKeyring()
		if err != nil {
			return nil, err
		}
		cfg.Keys = k
	}
	dummy, err := HashPassword("tone-dummy-password", cfg.Password)
	if err != nil {
		return nil, err
	}
	return &Service{store: store, cfg: cfg, dummyHash: dummy, outboxWake: make(chan struct{}, 1)}, nil
}

// Store returns the store the service runs on.
func (s *Service) Store() Store { return s.store }

// Keys returns the keyring that signs and verifies access tokens.
func (s *Service) Keys() *Keyring { return s.cfg.Keys }

func (s *Service) now() time.Time { return s.cfg.Now().UTC() }

// RequestInfo describes the request a use case runs for; it ends up in audit
// events and logs.
type RequestInfo struct {
	CorrelationID string
	IP            string
	UserAgent     string
}

type requestInfoKey struct{}

// WithRequestInfo returns ctx carrying info.
func WithRequestInfo(ctx context.Context, info RequestInfo) context.Context {
	return context.WithValue(ctx, requestInfoKey{}, info)
}

// RequestInfoFrom returns the RequestInfo in ctx, or the zero value.
func RequestInfoFrom(ctx context.Context) RequestInfo {
	info, _ := ctx.Value(requestInfoKey{}).(RequestInfo)
	return info
}

// audit builds an audit event for the request in ctx.
func (s *Service) audit(ctx context.Context, actor uuid.UUID, action, targetType, targetID string) *AuditEvent {
	info := RequestInfoFrom(ctx)
	return &AuditEvent{
		ID:            newID(),
		Time:          s.now(),
		ActorID:       actor,
		Action:        action,
		TargetType:    targetType,
		TargetID:      targetID,
		CorrelationID: info.CorrelationID,
		IP:            info.IP,
		UserAgent:     info.UserAgent,
		Result:        ResultSuccess,
	}
}

// newID returns a UUIDv7: unique, and sorting by creation time.
func newID() uuid.UUID { return uuid.Must(uuid.NewV7()) }

// Pagination limits.
const (
	DefaultPageSize = 50
	MaxPageSize     = 200
)

// ListOptions are the pagination parameters of a list request: a page size
// and the opaque cursor returned with the previous page.
type ListOptions struct {
	Limit  int
	Cursor string
}

// page turns list options into a store Page asking one item more than the
// caller wants, so that the caller knows whether another page exists.
func (o ListOptions) page() (Page, int, error) {
	limit := o.Limit
	switch {
	case limit == 0:
		limit = DefaultPageSize
	case limit < 0 || limit > MaxPageSize:
		return Page{}, 0, Errorf(EInvalid, "limit must be between 1 and %d.", MaxPageSize)
	}
	p := Page{Limit: limit + 1}
	if o.Cursor != "" {
		raw, err := base64.RawURLEncoding.DecodeString(o.Cursor)
		if err != nil || len(raw) != 16 {
			return Page{}, 0, Errorf(EInvalid, "cursor is not valid.")
		}
		copy(p.After[:], raw)
	}
	return p, limit, nil
}

// nextCursor trims items to limit and returns the cursor of the next page,
// or "" if there is none.
func nextCursor[T any](items []T, limit int, id func(T) uuid.UUID) ([]T, string) {
	if len(items) <= limit {
		return items, ""
	}
	items = items[:limit]
	last := id(items[limit-1])
	return items, base64.RawURLEncoding.EncodeToString(last[:])
}
