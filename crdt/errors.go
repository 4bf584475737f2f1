package crdt

import "errors"

// Errors returned by the package. Callers test them with errors.Is; most
// are wrapped with detail.
var (
	// ErrInvalid means an update, an edit or a schema breaks a rule: unknown
	// element type or property, a value of the wrong kind or out of range, a
	// bad id, sequence range or z-order key, malformed bytes. An update that
	// fails with ErrInvalid was rejected whole: the document is unchanged.
	ErrInvalid = errors.New("crdt: invalid")

	// ErrSnapshotRequired means a peer's version is older than this
	// document's collection horizon: the operations it lacks were garbage
	// collected, so it must load a full [Doc.Snapshot] instead of a diff.
	ErrSnapshotRequired = errors.New("crdt: version is older than the collection horizon; a full snapshot is required")

	// ErrNotFound means a local edit named an element this document does not
	// have (never created here, or garbage collected).
	ErrNotFound = errors.New("crdt: element not found")

	// ErrDeleted means a local edit targeted a deleted element (or one inside
	// a deleted frame or group), or tried to place something inside one.
	// Only [Doc.Restore] applies to a deleted element.
	ErrDeleted = errors.New("crdt: element is deleted")

	// ErrCycle means a local move would put an element inside itself.
	ErrCycle = errors.New("crdt: move would create a cycle")

	// ErrNotContainer means a local edit tried to place an element inside
	// one whose type is not a container.
	ErrNotContainer = errors.New("crdt: parent is not a container")

	// ErrNothingToUndo and ErrNothingToRedo mean the undo or redo stack has
	// no entry that still changes anything.
	ErrNothingToUndo = errors.New("crdt: nothing to undo")
	ErrNothingToRedo = errors.New("crdt: nothing to redo")
)
