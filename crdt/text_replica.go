package crdt

// TextReplica is a [Text] edited by one replica that allocates its own
// sequence numbers: a convenience for tests, benchmarks and tools that use a
// text on its own. Inside a canvas document the document allocates seqs and
// calls the Text methods directly. Like Text, it is not safe for concurrent
// use.
type TextReplica struct {
	*Text
	replica ReplicaID
	next    uint64 // next free seq
}

// EditAs returns a TextReplica that edits t as replica r. Its counter
// starts after the highest seq of r that t has applied. Use new(Text).EditAs(r)
// for a new empty text.
func (t *Text) EditAs(r ReplicaID) *TextReplica {
	next := uint64(1)
	if s := t.seen[r]; s != nil {
		next = s.last() + 1
	}
	return &TextReplica{Text: t, replica: r, next: next}
}

// Replica returns the replica's id.
func (r *TextReplica) Replica() ReplicaID { return r.replica }

// NextID returns the id the next local edit will take.
func (r *TextReplica) NextID() ID { return ID{r.replica, r.next} }

// Insert inserts s at visible position pos; see [Text.Insert].
func (r *TextReplica) Insert(pos int, s string) (TextOp, error) {
	op, err := r.Text.Insert(r.NextID(), pos, s)
	if err == nil {
		r.next += op.Seqs()
	}
	return op, err
}

// Delete deletes n code points at visible position pos; see [Text.Delete].
func (r *TextReplica) Delete(pos, n int) (TextOp, error) {
	op, err := r.Text.Delete(r.NextID(), pos, n)
	if err == nil {
		r.next++
	}
	return op, err
}

// Invert undoes op with new local operations; see [Text.Invert].
func (r *TextReplica) Invert(op TextOp) ([]TextOp, error) {
	ops, err := r.Text.Invert(r.NextID(), op)
	for _, o := range ops {
		r.next += o.Seqs()
	}
	return ops, err
}
