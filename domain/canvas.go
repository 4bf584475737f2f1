package domain

import (
	"context"
	"math"
	"time"

	"github.com/google/uuid"
)

// Canvas is a MagicCanvas document of a project. Its content lives in the
// canvas op log and snapshots; this is its metadata.
type Canvas struct {
	ID        uuid.UUID
	ProjectID uuid.UUID
	Name      string
	CreatedBy uuid.UUID
	CreatedAt time.Time
	UpdatedAt time.Time
}

// MaxCanvasSeq is the largest replica id or sequence number a canvas store
// accepts. They are uint64 in Go (and stay below 2^53 in practice) but are
// stored as signed 64-bit integers, so anything larger is EInvalid.
const MaxCanvasSeq = math.MaxInt64

// CanvasVersion is a version vector of a canvas document: for each replica,
// the highest sequence number included (crdt.VersionVector, without
// importing crdt). A replica that is absent counts as 0; stores drop
// entries of 0 and return an empty, non-nil vector for "nothing".
type CanvasVersion map[uint64]uint64

// Validate returns EInvalid unless every replica id is between 1 and
// MaxCanvasSeq and every sequence number at most MaxCanvasSeq.
func (v CanvasVersion) Validate() error {
	for r, s := range v {
		if r == 0 || r > MaxCanvasSeq || s > MaxCanvasSeq {
			return Errorf(EInvalid, "Version vector entries must be between 1 and %d.", uint64(MaxCanvasSeq)).
				WithDetail("field", "version")
		}
	}
	return nil
}

// Covers reports whether v includes everything o includes.
func (v CanvasVersion) Covers(o CanvasVersion) bool {
	for r, s := range o {
		if v[r] < s {
			return false
		}
	}
	return true
}

// CanvasUpdate is one durable entry of a canvas op log: an encoded crdt
// update made by one replica, covering that replica's sequence numbers
// First to Last. Entries are immutable; (CanvasID, Replica, First) names
// one, so writing the same entry twice is harmless.
type CanvasUpdate struct {
	CanvasID uuid.UUID
	Replica  uint64
	First    uint64
	Last     uint64
	Data     []byte
	ActorID  uuid.UUID // who sent it; the user the replica is claimed by
	At       time.Time
}

// Validate returns EInvalid unless u names a range a store can hold:
// Replica and First at least 1, First <= Last <= MaxCanvasSeq.
func (u *CanvasUpdate) Validate() error {
	if u.Replica == 0 || u.Replica > MaxCanvasSeq || u.First == 0 || u.First > u.Last || u.Last > MaxCanvasSeq {
		return Errorf(EInvalid, "Canvas update %d:%d-%d is not a valid range (replica and sequence numbers between 1 and %d, first <= last).",
			u.Replica, u.First, u.Last, uint64(MaxCanvasSeq)).WithDetail("field", "update")
	}
	return nil
}

// CanvasSnapshot is an encoded crdt document state at Version. Periodic
// snapshots (Name "") compact the op log; named snapshots are versions that
// users saved and can list, read and restore.
type CanvasSnapshot struct {
	ID        uuid.UUID
	CanvasID  uuid.UUID
	Name      string
	Version   CanvasVersion
	Data      []byte
	CreatedBy uuid.UUID
	CreatedAt time.Time
}

// CanvasStore stores canvases, their op logs and snapshots.
//
// Replica ids and sequence numbers above MaxCanvasSeq, and replica id 0, are
// EInvalid wherever they appear (entries, version vectors, claims). A
// canvas the transaction's actor cannot see (the PostgreSQL store's
// row-level security) reads as absent: ENotFound, or nothing listed.
type CanvasStore interface {
	// CreateCanvas inserts c. Returns ENotFound if its project does not
	// exist, EConflict if its id is taken.
	CreateCanvas(ctx context.Context, c *Canvas) error
	// CanvasByID returns ENotFound if there is no such canvas.
	CanvasByID(ctx context.Context, id uuid.UUID) (*Canvas, error)
	// LockCanvas returns the canvas like CanvasByID and holds a lock on it
	// until the transaction ends. An exclusive lock waits for, and holds
	// off, every other lock on the canvas; a shared lock holds off only
	// exclusive ones. Readers of a snapshot together with the updates it
	// does not cover take a shared lock, writers of periodic snapshots (who
	// compact the log) an exclusive one, so a reader never sees the log
	// compacted under a snapshot it did not read. Neither blocks appends or
	// plain reads. Returns ENotFound if there is no such canvas.
	LockCanvas(ctx context.Context, id uuid.UUID, exclusive bool) (*Canvas, error)
	// ListCanvases lists a project's canvases in id order.
	ListCanvases(ctx context.Context, projectID uuid.UUID, p Page) ([]*Canvas, error)
	// UpdateCanvas saves c's name and UpdatedAt. Returns ENotFound if absent.
	UpdateCanvas(ctx context.Context, c *Canvas) error
	// DeleteCanvas deletes a canvas with its op log, snapshots and replica
	// claims. Returns ENotFound if absent. Deleting a project deletes its
	// canvases the same way.
	DeleteCanvas(ctx context.Context, id uuid.UUID) error

	// ClaimCanvasReplica records that replica writes to a canvas on behalf
	// of user. Claiming again for the same user is a no-op; a replica
	// claimed by another user is EConflict, so no one can write under
	// someone else's replica id. Claims last as long as the canvas. Returns
	// ENotFound if there is no such canvas.
	ClaimCanvasReplica(ctx context.Context, canvasID uuid.UUID, replica uint64, user uuid.UUID) error
	// AppendCanvasUpdates adds entries to op logs, all or none. An entry
	// whose (CanvasID, Replica, First) exists already is skipped, as is a
	// repeat within us. Every entry's Replica must be claimed by its
	// ActorID (EConflict otherwise); a missing canvas is ENotFound.
	AppendCanvasUpdates(ctx context.Context, us []*CanvasUpdate) error
	// CanvasUpdatesSince returns the entries of a canvas not covered by v
	// (Last > v[Replica]), in the order they were appended. An unknown
	// canvas has none.
	CanvasUpdatesSince(ctx context.Context, canvasID uuid.UUID, v CanvasVersion) ([]*CanvasUpdate, error)
	// CompactCanvasUpdates deletes the entries of a canvas covered by v
	// (Last <= v[Replica]); call it only once a snapshot covering v is stored.
	CompactCanvasUpdates(ctx context.Context, canvasID uuid.UUID, v CanvasVersion) error

	// PutCanvasSnapshot stores s. Returns ENotFound if its canvas does not
	// exist, EConflict if its id is taken.
	PutCanvasSnapshot(ctx context.Context, s *CanvasSnapshot) error
	// LatestCanvasSnapshot returns the periodic (unnamed) snapshot of a
	// canvas stored last, whatever its id and CreatedAt (clocks of several
	// nodes may disagree), or ENotFound if there is none.
	LatestCanvasSnapshot(ctx context.Context, canvasID uuid.UUID) (*CanvasSnapshot, error)
	// ListCanvasVersions lists a canvas's named snapshots in id order,
	// without their Data.
	ListCanvasVersions(ctx context.Context, canvasID uuid.UUID, p Page) ([]*CanvasSnapshot, error)
	// CanvasVersionByID returns a named snapshot of a canvas with its Data,
	// or ENotFound (also for a periodic snapshot's id).
	CanvasVersionByID(ctx context.Context, canvasID, id uuid.UUID) (*CanvasSnapshot, error)
}
