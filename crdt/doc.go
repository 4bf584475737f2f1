// Package crdt implements the MagicCanvas document: a conflict-free replicated
// data type that many replicas edit at once, online or offline, and that always
// converges to the same state once every replica has seen the same updates.
//
// The package is pure Go: it does no I/O and imports nothing else of Tone's.
// Servers and clients exchange the updates it produces as msgpack bytes.
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
package crdt
