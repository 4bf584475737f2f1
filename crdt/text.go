package crdt

import (
	"cmp"
	"fmt"
	"slices"
	"unicode/utf8"
)

// Text is a replicated sequence of Unicode code points that many replicas
// edit at once: the collaborative text inside a canvas element.
//
// # Algorithm
//
// Text is a YATA-family list CRDT with the "YjsMod" integration rule, which
// is the FugueMax order of Weidner and Kleppmann ("The Art of the Fugue",
// 2023): every inserted character remembers the character it was typed after
// (origin left) and the one that followed it then (origin right), and a
// replica that receives it scans only the characters between those two to
// find its place. Two replicas that typed runs at the same place concurrently
// never see their runs interleaved, whether the runs were typed forwards or
// backwards; ties between concurrent runs with the same origins go to the
// lower ReplicaID first. Deleted characters stay as tombstones (their ids
// are still needed to place concurrent inserts); [Text.Collect] drops their
// content once every replica has seen the delete.
//
// Characters typed in one go by one replica form one run (textItem); runs
// live in a B+ tree counted by visible length, so positions are found in
// logarithmic time, and an index maps id ranges (not characters) to tree
// leaves. See docs/crdt.md for the design and the encodings.
//
// # Operations and causality
//
// Local edits ([Text.Insert], [Text.Delete], [Text.Invert]) apply at once and
// return the [TextOp] values to send to other replicas, which apply them with
// [Text.Apply]. The caller allocates sequence numbers: an insert of n code
// points takes n consecutive seqs starting at the given id, a delete takes
// one. Apply is idempotent, commutative and associative: every replica that
// applied the same set of operations has the same text and (if it collected
// alike) the same [Text.Encode] bytes. An operation whose dependencies (its origin characters,
// or the characters it deletes) have not arrived is held pending inside the
// Text and applied as soon as they do; it is never dropped and never applied
// early. [Text.Version] covers applied operations only.
//
// The zero Text is an empty text ready to use. A Text is not safe for
// concurrent use, not even by readers only (position lookups update a
// cache): callers serialise access (the canvas document does).
type Text struct {
	root, first *textNode // B+ tree of items; first leaf
	idx         textIndex // character id ranges -> leaf
	hint        textHint  // last position lookup
	runes       []rune    // content arena; items point into it

	// seen holds, per replica, the seqs of every applied op: the characters
	// of inserts and the ids of deletes. The delete ids are exactly the seen
	// seqs that the index does not hold.
	seen map[ReplicaID]*textSeqs

	// extra holds, per delete, the characters it deleted that are
	// attributed to a lesser delete (tombstones with content only). With the
	// attribution it gives every delete of every tombstone, so [Text.Collect]
	// and [Text.DiffSince] do not depend on the order deletes arrived in.
	extra map[ID][]TextSpan

	pending map[ID]TextOp // ops waiting for characters, by op id
	waiting map[ID][]ID   // missing character -> ids of pending ops
	woken   []ID          // pending ops to retry
}

func (t *Text) init() {
	if t.root == nil {
		t.resetTree()
	}
}

// Len returns the number of visible code points.
func (t *Text) Len() int {
	t.init()
	return t.root.vis
}

// String returns the visible text.
func (t *Text) String() string {
	t.init()
	out := make([]rune, 0, t.root.vis)
	t.each(func(it *textItem) bool {
		if it.vis() > 0 {
			out = append(out, t.runes[it.off:it.off+it.n]...)
		}
		return true
	})
	return string(out)
}

// Version returns, per replica, the highest seq n such that this text has
// applied every text operation numbered 1..n of that replica (inserts and
// deletes alike). Inside a canvas document, whose replicas also spend seqs on
// other kinds of operation, use [Text.Has] instead: there the document keeps
// the version vector.
func (t *Text) Version() VersionVector {
	v := make(VersionVector, len(t.seen))
	for r, s := range t.seen {
		if n := s.contiguous(); n > 0 {
			v[r] = n
		}
	}
	return v
}

// Has reports whether the text has applied the operation unit id: a
// character it holds or a delete it applied. Pending operations do not count.
func (t *Text) Has(id ID) bool {
	s := t.seen[id.Replica]
	return s != nil && s.has(id.Seq)
}

// Pending returns how many received operations wait for characters that
// have not arrived yet.
func (t *Text) Pending() int { return len(t.pending) }

func (t *Text) markSeen(r ReplicaID, start, end uint64) {
	if t.seen == nil {
		t.seen = make(map[ReplicaID]*textSeqs)
	}
	s := t.seen[r]
	if s == nil {
		s = new(textSeqs)
		t.seen[r] = s
	}
	s.add(start, end)
}

// used reports whether any seq of [start, end) of r was applied or is
// pending.
func (t *Text) used(r ReplicaID, start, end uint64) bool {
	if s := t.seen[r]; s != nil && s.hasAny(start, end) {
		return true
	}
	for id, op := range t.pending {
		if id.Replica == r && id.Seq < end && id.Seq+op.Seqs() > start {
			return true
		}
	}
	return false
}

// checkLocalID checks the id given to a local edit that consumes n seqs.
func (t *Text) checkLocalID(id ID, n uint64) error {
	if !textValidID(id) || id.Seq+n > TextMaxSeq {
		return fmt.Errorf("%w: invalid id %v", TextErrInvalidOp, id)
	}
	if t.used(id.Replica, id.Seq, id.Seq+n) {
		return fmt.Errorf("%w: %v (+%d)", TextErrIDUsed, id, n)
	}
	return nil
}

// Insert inserts s before visible position pos (0 <= pos <= Len()) as a
// local edit. The characters take the ids id, id+1, ... (one per code point),
// which the caller allocates. It returns the operation to send to other
// replicas. Errors: TextErrPosition for a bad pos, TextErrInvalidOp for an
// empty, over-long or invalid-UTF-8 s or an invalid id, TextErrIDUsed when
// the ids were already seen. On error nothing changes.
func (t *Text) Insert(id ID, pos int, s string) (TextOp, error) {
	t.init()
	if pos < 0 || pos > t.root.vis {
		return TextOp{}, fmt.Errorf("%w: insert at %d in %d", TextErrPosition, pos, t.root.vis)
	}
	if s == "" || !utf8.ValidString(s) {
		return TextOp{}, fmt.Errorf("%w: insert needs non-empty valid UTF-8", TextErrInvalidOp)
	}
	n := utf8.RuneCountInString(s)
	if n > TextMaxOpLen {
		return TextOp{}, fmt.Errorf("%w: insert too long", TextErrInvalidOp)
	}
	if err := t.checkLocalID(id, uint64(n)); err != nil {
		return TextOp{}, err
	}
	op := TextOp{Kind: TextInsert, ID: id, Text: s}
	// The slot: after visible character pos-1, before whatever follows it.
	var dest textPos
	if pos == 0 {
		dest = textPos{t.first, 0}
	} else {
		p, off := t.findVisible(pos - 1)
		op.Left = ID{p.item().id.Replica, p.item().id.Seq + uint64(off)}
		if off+1 < p.item().n {
			dest = t.split(p, off+1)
		} else {
			dest = textPos{p.leaf, p.i + 1}
		}
	}
	if q, ok := dest.norm(); ok {
		op.Right = q.item().id
	}
	it := textItem{id: id, left: op.Left, right: op.Right, n: n, off: len(t.runes)}
	for _, r := range s {
		t.runes = append(t.runes, r)
	}
	t.place(dest, it)
	t.markSeen(id.Replica, id.Seq, id.Seq+uint64(n))
	t.wake(id, n)
	t.drain()
	return op, nil
}

// Delete deletes the n visible code points starting at visible position pos
// as a local edit; the operation takes the id id. It returns the operation
// to send. Errors: TextErrPosition unless 0 <= pos, 1 <= n and pos+n <=
// Len(); TextErrInvalidOp for an invalid id; TextErrIDUsed when id was
// already seen. On error nothing changes.
func (t *Text) Delete(id ID, pos, n int) (TextOp, error) {
	t.init()
	if pos < 0 || n < 1 || pos > t.root.vis-n {
		return TextOp{}, fmt.Errorf("%w: delete %d at %d in %d", TextErrPosition, n, pos, t.root.vis)
	}
	if err := t.checkLocalID(id, 1); err != nil {
		return TextOp{}, err
	}
	// Walk the visible characters, splitting off and marking each piece.
	var spans []TextSpan
	p, off := t.findVisible(pos)
	for n > 0 {
		if p.item().vis() == 0 {
			p.i++
			p, _ = p.norm()
			continue
		}
		if off > 0 {
			p = t.split(p, off)
			off = 0
		}
		it := p.item()
		if it.n > n {
			p = t.split(p, n).before() // the split may have moved it
			it = p.item()
		}
		spans = textAddSpan(spans, it.id, uint64(it.n))
		n -= it.n
		t.touched(p.leaf)
		p.leaf.addCounts(-it.n, 0)
		it.del = id
		p.i++
		p, _ = p.norm()
	}
	t.markSeen(id.Replica, id.Seq, id.Seq+1)
	return TextOp{Kind: TextDelete, ID: id, Spans: spans}, nil
}

// textAddSpan appends the span [start, start+n) to spans, merging it into the
// last span when it continues it.
func textAddSpan(spans []TextSpan, start ID, n uint64) []TextSpan {
	if k := len(spans); k > 0 {
		l := &spans[k-1]
		if l.Start.Replica == start.Replica && l.Start.Seq+l.Len == start.Seq {
			l.Len += n
			return spans
		}
	}
	return append(spans, TextSpan{start, n})
}

// Apply applies operations from any replica (this one included), in any
// order, any number of times. Operations already applied are skipped;
// operations whose dependencies are missing are held pending and applied when
// those arrive (see [Text.Pending]). Every op is validated first: if any is
// malformed, Apply returns an error wrapping TextErrInvalidOp and changes
// nothing.
func (t *Text) Apply(ops ...TextOp) error {
	for i := range ops {
		if err := ops[i].validate(); err != nil {
			return fmt.Errorf("op %d: %w", i, err)
		}
	}
	t.init()
	for i := range ops {
		t.applyOne(ops[i])
	}
	t.drain()
	return nil
}

// applyOne applies a validated op or files it as pending.
func (t *Text) applyOne(op TextOp) {
	r := op.ID.Replica
	switch op.Kind {
	case TextDelete:
		if t.Has(op.ID) {
			return
		}
		for _, s := range op.Spans {
			if m, missing := t.idx.firstMissing(s.Start, s.Len); missing {
				t.hold(op, m)
				return
			}
		}
		t.applyDelete(op.ID, op.Spans)
		t.markSeen(r, op.ID.Seq, op.ID.Seq+1)
	case TextInsert:
		n := op.runes()
		s := t.seen[r]
		if s != nil && !s.hasAny(op.ID.Seq, op.ID.Seq+n) {
			s = nil // nothing of it applied yet
		}
		if s != nil && s.covers(op.ID.Seq, op.ID.Seq+n) {
			return // all applied
		}
		// The op waits for both origins, even when part of it is known
		// already, so that the outcome never depends on arrival order.
		for _, dep := range [2]ID{op.Left, op.Right} {
			if dep != (ID{}) && t.idx.leaf(dep) == nil {
				t.hold(op, dep)
				return
			}
		}
		var content []rune
		if op.Gone == 0 {
			content = []rune(op.Text)
		}
		// Integrate the maximal runs of characters not seen yet.
		for k := uint64(0); k < n; {
			if s != nil && s.has(op.ID.Seq+k) {
				k++
				continue
			}
			j := k + 1
			for j < n && (s == nil || !s.has(op.ID.Seq+j)) {
				j++
			}
			left := op.Left
			if k > 0 {
				left = ID{r, op.ID.Seq + k - 1}
			}
			if k > 0 && t.idx.leaf(left) == nil {
				// A seq we saw as a delete, claimed as a character by a
				// conflicting op: drop the rest, it cannot be placed.
				return
			}
			it := textItem{id: ID{r, op.ID.Seq + k}, left: left, right: op.Right, n: int(j - k), off: -1}
			if content != nil {
				it.off = len(t.runes)
				t.runes = append(t.runes, content[k:j]...)
			} else {
				it.del = textCollected
			}
			t.integrate(it)
			t.markSeen(r, it.id.Seq, it.end())
			t.wake(it.id, it.n)
			k = j
		}
	}
}

// hold files op as pending until character need arrives.
func (t *Text) hold(op TextOp, need ID) {
	if _, dup := t.pending[op.ID]; dup {
		return
	}
	if t.pending == nil {
		t.pending = make(map[ID]TextOp)
		t.waiting = make(map[ID][]ID)
	}
	op.Spans = slices.Clone(op.Spans) // the caller may reuse its slice
	t.pending[op.ID] = op
	t.waiting[need] = append(t.waiting[need], op.ID)
}

// wake queues the pending ops that wait for a character of the run of n
// characters starting at id.
func (t *Text) wake(id ID, n int) {
	if len(t.waiting) == 0 {
		return
	}
	if len(t.waiting) < n {
		for need, ids := range t.waiting {
			if need.Replica == id.Replica && need.Seq >= id.Seq && need.Seq < id.Seq+uint64(n) {
				t.woken = append(t.woken, ids...)
				delete(t.waiting, need)
			}
		}
		return
	}
	for k := range uint64(n) {
		need := ID{id.Replica, id.Seq + k}
		if ids, ok := t.waiting[need]; ok {
			t.woken = append(t.woken, ids...)
			delete(t.waiting, need)
		}
	}
}

// drain retries woken pending ops until none is left.
func (t *Text) drain() {
	for len(t.woken) > 0 {
		id := t.woken[len(t.woken)-1]
		t.woken = t.woken[:len(t.woken)-1]
		op, ok := t.pending[id]
		if !ok {
			continue
		}
		delete(t.pending, id)
		t.applyOne(op)
	}
}

// integrate places a remote run: it finds the run's slot between its origins
// with the YjsMod (FugueMax) rule and inserts it there. Both origins must be
// present.
func (t *Text) integrate(it textItem) {
	if it.right != (ID{}) {
		t.splitStart(it.right)
	}
	start := textPos{t.first, 0}
	if it.left != (ID{}) {
		p := t.splitEnd(it.left)
		start = textPos{p.leaf, p.i + 1}
	}
	// Scan the items between the origins. dest is the slot chosen so far;
	// while scanning is true we are past items that may still turn out to
	// belong before the new run, so dest stays put.
	var dest textPos
	scanning := false
	o, ok := start.norm()
scan:
	for {
		if !scanning {
			dest = o
		}
		if !ok {
			break
		}
		oi := o.item()
		if it.right != (ID{}) && oi.id == it.right {
			break
		}
		cl := t.cmpLeft(oi.left, it.left)
		if cl < 0 {
			break
		}
		if cl == 0 {
			switch cr := t.cmpRight(oi.right, it.right); {
			case cr < 0:
				scanning = true
			case cr == 0:
				if it.id.Replica < oi.id.Replica {
					break scan
				}
				scanning = false
			default:
				scanning = false
			}
		}
		o.i++
		o, ok = o.norm()
	}
	t.place(dest, it)
}

// cmpLeft compares two origin-left characters by document order; the zero
// id (start of text) comes first.
func (t *Text) cmpLeft(a, b ID) int {
	switch {
	case a == b:
		return 0
	case a == ID{}:
		return -1
	case b == ID{}:
		return 1
	}
	return cmp.Compare(t.order(a), t.order(b))
}

// cmpRight compares two origin-right characters by document order; the zero
// id (end of text) comes last.
func (t *Text) cmpRight(a, b ID) int {
	switch {
	case a == b:
		return 0
	case a == ID{}:
		return 1
	case b == ID{}:
		return -1
	}
	return cmp.Compare(t.order(a), t.order(b))
}

// place inserts item it at slot dest, growing the item before the slot
// instead when it continues that item's run (the common case of typing).
func (t *Text) place(dest textPos, it textItem) {
	prev := textPos{dest.leaf, dest.i - 1}
	if dest.i == 0 {
		prev = textPos{dest.leaf.prev, -1}
		if prev.leaf != nil {
			prev.i = len(prev.leaf.items) - 1
		}
	}
	if prev.leaf != nil && prev.i >= 0 {
		if p := prev.item(); p.continuedBy(&it, true) {
			t.touched(prev.leaf)
			p.n += it.n
			prev.leaf.addCounts(it.vis(), it.n)
			t.idx.set(it.id, uint64(it.n), prev.leaf)
			return
		}
	}
	t.insertItem(dest, it)
}

// applyDelete deletes the characters of spans, which must all be present,
// on behalf of delete d. A character deleted by several deletes is
// attributed to the least of their ids, so the state does not depend on the
// order they arrived in; the others record it in extra.
func (t *Text) applyDelete(d ID, spans []TextSpan) {
	var extras map[ID]bool // deletes whose extra grew
	defer func() {
		for x := range extras {
			t.extra[x] = textNormSpans(t.extra[x])
		}
	}()
	for _, s := range spans {
		id, left := s.Start, s.Len
		for left > 0 {
			p, off, _ := t.findID(id)
			it := p.item()
			k := min(uint64(it.n-off), left)
			switch old := it.del; {
			case old == textCollected || old == d:
			case old == ID{} || d.Less(old):
				if off > 0 {
					t.split(p, off)
				}
				p, _, _ = t.findID(id)
				if uint64(p.item().n) > k {
					t.split(p, int(k))
					p, _, _ = t.findID(id)
				}
				it = p.item()
				t.touched(p.leaf)
				p.leaf.addCounts(-it.vis(), 0)
				it.del = d
				if old != (ID{}) {
					extras = t.addExtra(extras, old, id, k)
				}
			default:
				extras = t.addExtra(extras, d, id, k)
			}
			id.Seq += k
			left -= k
		}
	}
}

// addExtra records that delete d also deleted the n characters from start,
// which are attributed to another delete, and adds d to touched; the
// caller normalises the extra spans of the touched deletes.
func (t *Text) addExtra(touched map[ID]bool, d, start ID, n uint64) map[ID]bool {
	if t.extra == nil {
		t.extra = make(map[ID][]TextSpan)
	}
	if touched == nil {
		touched = make(map[ID]bool)
	}
	t.extra[d] = append(t.extra[d], TextSpan{start, n})
	touched[d] = true
	return touched
}

// textNormSpans sorts spans by start and merges those that overlap or
// touch, in place.
func textNormSpans(spans []TextSpan) []TextSpan {
	slices.SortFunc(spans, func(a, b TextSpan) int { return textCmpID(a.Start, b.Start) })
	out := spans[:0]
	for _, s := range spans {
		if m := len(out); m > 0 && out[m-1].Start.Replica == s.Start.Replica && out[m-1].Start.Seq+out[m-1].Len >= s.Start.Seq {
			out[m-1].Len = max(out[m-1].Len, s.Start.Seq+s.Len-out[m-1].Start.Seq)
			continue
		}
		out = append(out, s)
	}
	return out
}

// IDAt returns the id of the visible character at position pos
// (0 <= pos < Len()), or TextErrPosition.
func (t *Text) IDAt(pos int) (ID, error) {
	t.init()
	if pos < 0 || pos >= t.root.vis {
		return ID{}, fmt.Errorf("%w: %d of %d", TextErrPosition, pos, t.root.vis)
	}
	p, off := t.findVisible(pos)
	return ID{p.item().id.Replica, p.item().id.Seq + uint64(off)}, nil
}

// PosOf returns the visible position of character id and whether it is
// visible. For a deleted character it returns the number of visible
// characters before it, the position it would have. Returns
// TextErrUnknownID when the text does not hold id.
func (t *Text) PosOf(id ID) (pos int, visible bool, err error) {
	t.init()
	p, off, ok := t.findID(id)
	if !ok {
		return 0, false, fmt.Errorf("%w: %v", TextErrUnknownID, id)
	}
	_, vis := textOffsets(p)
	if p.item().vis() > 0 {
		return vis + off, true, nil
	}
	return vis, false, nil
}

// Cursor returns a stable anchor for the caret at visible position pos
// (0 <= pos <= Len()): the id of the character before it, or the zero ID at
// the start. Anchors survive concurrent edits: [Text.CursorPos] maps one back
// to a position on any replica. Returns TextErrPosition for a bad pos.
func (t *Text) Cursor(pos int) (ID, error) {
	t.init()
	if pos < 0 || pos > t.root.vis {
		return ID{}, fmt.Errorf("%w: cursor %d of %d", TextErrPosition, pos, t.root.vis)
	}
	if pos == 0 {
		return ID{}, nil
	}
	return t.IDAt(pos - 1)
}

// CursorPos returns the caret position of an anchor made by [Text.Cursor]:
// just after the anchor character, or where it was if it has been deleted.
// Returns TextErrUnknownID when the text does not hold the anchor.
func (t *Text) CursorPos(anchor ID) (int, error) {
	if anchor == (ID{}) {
		return 0, nil
	}
	pos, visible, err := t.PosOf(anchor)
	if visible {
		pos++
	}
	return pos, err
}
