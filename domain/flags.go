package domain

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// Feature flags and config values.
//
// A project's flags and config values live per environment (a name such as
// "production"); its segments are shared by all its environments. Every
// change bumps the version of the environments it touches (a segment touches
// all of them), is kept in that environment's change history, is audited,
// and goes out on the project's flags channel as a delta carrying the new
// version. Evaluation (package domain/flag) reads an in-memory copy of an
// environment that is checked against the stored version at most once per
// Config.FlagCacheTTL.

// FlagsChannel is the channel of a project's flag and config changes:
// "flags:<project id>".
func FlagsChannel(id uuid.UUID) string { return "flags:" + id.String() }

// EventFlagsChanged is the type of the events on a flags channel; its data
// is a [FlagChange] as [FlagChange.EventData] writes it.
const EventFlagsChanged = "flags.changed"

// Kinds of flag items.
const (
	FlagKindFlag    = "flag"    // a flag.Flag of one environment
	FlagKindConfig  = "config"  // a ConfigValue of one environment
	FlagKindSegment = "segment" // a flag.Segment of the project (Environment "")
)

// FlagItem is a stored flag, config value or segment: Data is its JSON
// definition. Version is the version of its environment when it last
// changed (for segments, a counter of the project's segment changes).
type FlagItem struct {
	ProjectID   uuid.UUID
	Environment string // "" for segments
	Kind        string
	Key         string
	Data        json.RawMessage
	Version     int64
	UpdatedBy   uuid.UUID
	UpdatedAt   time.Time
}

// FlagEnvironment is an environment of a project and its current version.
type FlagEnvironment struct {
	Name    string
	Version int64
}

// FlagChange is one entry of an environment's change history: the item
// Kind/Key as it became at Version, or deleted (Data nil).
type FlagChange struct {
	ProjectID   uuid.UUID
	Environment string
	Version     int64
	Kind        string
	Key         string
	Data        json.RawMessage // nil: deleted
	ActorID     uuid.UUID
	At          time.Time
}

// FlagStore stores flags, config values, segments and their history.
//
// Items and changes of a project the transaction's actor cannot see (the
// PostgreSQL store's row-level security) read as absent.
type FlagStore interface {
	// NextFlagVersion adds one to the version of a project's environment
	// (env "" counts segment changes), creating it at 1, and returns the
	// new version. The transaction holds the environment until it ends, so
	// that its writers are serialised and versions commit in order.
	// Returns ENotFound if the project does not exist.
	NextFlagVersion(ctx context.Context, projectID uuid.UUID, env string) (int64, error)
	// FlagVersion returns the version of an environment, 0 if nothing was
	// ever written to it.
	FlagVersion(ctx context.Context, projectID uuid.UUID, env string) (int64, error)
	// FlagEnvironments lists a project's environments (not "") in name order.
	FlagEnvironments(ctx context.Context, projectID uuid.UUID) ([]FlagEnvironment, error)

	// PutFlagItem inserts it, or replaces the item of the same project,
	// environment, kind and key.
	PutFlagItem(ctx context.Context, it *FlagItem) error
	// FlagItem returns ENotFound if there is no such item.
	FlagItem(ctx context.Context, projectID uuid.UUID, env, kind, key string) (*FlagItem, error)
	// ListFlagItems lists the items of one kind of an environment in key
	// order.
	ListFlagItems(ctx context.Context, projectID uuid.UUID, env, kind string) ([]*FlagItem, error)
	// DeleteFlagItem returns ENotFound if there is no such item.
	DeleteFlagItem(ctx context.Context, projectID uuid.UUID, env, kind, key string) error

	// AppendFlagChange inserts c. Returns EConflict if its environment has
	// a change of that version already.
	AppendFlagChange(ctx context.Context, c *FlagChange) error
	// FlagChangesSince returns an environment's changes with a version
	// above since, in version order.
	FlagChangesSince(ctx context.Context, projectID uuid.UUID, env string, since int64) ([]*FlagChange, error)
	// TrimFlagChanges deletes an environment's changes with a version of
	// upTo or less.
	TrimFlagChanges(ctx context.Context, projectID uuid.UUID, env string, upTo int64) error
}

// SDKKey lets applications evaluate the flags of one environment of a
// project, and read its changes, without a user. Only the SHA-256 of its
// secret is stored.
type SDKKey struct {
	ID          uuid.UUID // UUIDv7
	ProjectID   uuid.UUID
	Environment string
	Name        string
	Hash        []byte
	CreatedBy   uuid.UUID
	CreatedAt   time.Time
	RevokedAt   *time.Time // nil while the key works
}

// SDKKeyStore stores SDK keys.
type SDKKeyStore interface {
	// CreateSDKKey inserts k. Returns ENotFound if its project does not
	// exist.
	CreateSDKKey(ctx context.Context, k *SDKKey) error
	// SDKKeyByHash returns the key whose secret hashes to hash, whoever
	// the transaction acts for (the request is not authenticated yet).
	// Returns ENotFound if there is none.
	SDKKeyByHash(ctx context.Context, hash []byte) (*SDKKey, error)
	// SDKKeyByID returns ENotFound if there is no such key.
	SDKKeyByID(ctx context.Context, id uuid.UUID) (*SDKKey, error)
	// ListSDKKeys lists a project's keys, revoked ones included, in id order.
	ListSDKKeys(ctx context.Context, projectID uuid.UUID, p Page) ([]*SDKKey, error)
	// RevokeSDKKey sets a key's RevokedAt to t unless it is set already.
	// Returns ENotFound if there is no such key.
	RevokeSDKKey(ctx context.Context, id uuid.UUID, t time.Time) error
}
