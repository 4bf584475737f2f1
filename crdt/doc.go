// Package crdt implements the MagicCanvas document: a conflict-free replicated
// data type that many replicas edit at once, online or offline, and that always
// converges to the same state once every replica has seen the same updates.
//
// The package is pure Go: it does no I/O and imports nothing else of Tone's.
// Servers and clients exchange the updates it produces as msgpack bytes.
//
// # Using a document
//
// Each replica holds a [Doc] made with [NewDoc] (or [Load] from a snapshot).
// Local edits ([Doc.Create], [Doc.Set], [Doc.Delete], [Doc.Restore],
// [Doc.Move], [Doc.Reorder], [Doc.InsertText], [Doc.DeleteText],
// [Doc.ReplaceText], [Doc.Undo], [Doc.Redo]) apply at once and return
// the encoded update to send to the other replicas, which merge it with
// [Doc.Apply]. Updates may arrive in any order, late or more than once:
// applying is idempotent, commutative and associative. A replica that was away
// catches up with [Doc.DiffSince] of its [Doc.Version], and [Doc.Snapshot]
// saves a whole document. Reads: [Doc.Children] (the tree in z-order),
// [Doc.Element], [Doc.Get], [Doc.Text], [Doc.Live], [Doc.Dangling].
//
// A Doc is not safe for concurrent use: callers serialise access to it (one
// goroutine owns each document). A [Schema] is immutable and may be shared.
//
// # Identity and time
//
// Every replica has a [ReplicaID]. Each operation a replica makes takes the
// next sequence numbers of that replica (an operation may span several, as a
// text insert of n characters does), so the pair ([ReplicaID], seq) names every
// unit of change exactly once, and a [VersionVector] of the highest contiguous
// sequence number seen per replica says exactly what a replica has.
// Last-writer-wins decisions use Lamport timestamps ordered by
// (counter, replica), which every replica computes the same way.
//
// # Model
//
// A document is a tree of elements under the canvas [Root]. An element's id is
// the [ID] of the operation that created it, so ids are never reused. It has a
// type from the [Schema], a parent (the root or a container: a frame or a
// group), a z-order key among its siblings (see [KeyBetween]; equal keys are
// ordered by id), and properties. Each property is a last-writer-wins
// register; concurrent writes to different properties all survive. A text
// property ([KindText]) is instead a [Text], a sequence CRDT that several
// people type into at once: concurrent runs typed at the same place never
// interleave.
//
// Parents change only by move operations, applied in timestamp order with
// undo-do-redo as in Kleppmann et al. (2021), so concurrent moves can never
// make a cycle: a move that would is skipped, on every replica alike.
// Deletion is a tombstone (a last-writer-wins register that [Doc.Restore]
// flips back); [Doc.Collect] garbage-collects tombstones and move history
// once every replica has seen them. Reference properties (bindings) may
// dangle; [Doc.Dangling] reports them.
//
// An operation that depends on one not yet applied (the previous operation
// of its replica, an element it names, or for text the characters it names)
// is held pending and applied when its dependencies arrive. An update that breaks the schema or is malformed
// is rejected whole with [ErrInvalid] and changes nothing.
//
// docs/crdt.md describes the merge rules and the wire encoding field by field.
package crdt
