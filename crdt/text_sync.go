package crdt

import (
	"cmp"
	"fmt"
	"slices"
)

func textCmpID(a, b ID) int {
	switch {
	case a.Less(b):
		return -1
	case b.Less(a):
		return 1
	}
	return 0
}

// textSortedOrder returns the indexes of items sorted by id. When replicas
// and seqs fit in one 64-bit key (fewer than 2^16 replicas, seqs below
// 2^48: always, in practice) it radix-sorts the keys.
func textSortedOrder(items []textItem) []int {
	reps := map[ReplicaID]uint64{}
	fits := true
	for i := range items {
		reps[items[i].id.Replica] = 0
		fits = fits && items[i].id.Seq < 1<<48
	}
	order := make([]int, len(items))
	if !fits || len(reps) > 1<<16 {
		for i := range order {
			order[i] = i
		}
		slices.SortFunc(order, func(a, b int) int {
			x, y := &items[a].id, &items[b].id
			if c := cmp.Compare(x.Replica, y.Replica); c != 0 {
				return c
			}
			return cmp.Compare(x.Seq, y.Seq)
		})
		return order
	}
	ranks := make([]ReplicaID, 0, len(reps))
	for r := range reps {
		ranks = append(ranks, r)
	}
	slices.Sort(ranks)
	for i, r := range ranks {
		reps[r] = uint64(i) << 48
	}
	keyed := make([]textKeyed, len(items))
	for i := range items {
		keyed[i] = textKeyed{reps[items[i].id.Replica] | items[i].id.Seq, i}
	}
	textRadixSort(keyed)
	for i, k := range keyed {
		order[i] = k.i
	}
	return order
}

type textKeyed struct {
	key uint64
	i   int
}

// textRadixSort sorts a by key, least significant byte first, skipping the
// bytes in which all keys agree.
func textRadixSort(a []textKeyed) {
	if len(a) < 2 {
		return
	}
	src, dst := a, make([]textKeyed, len(a))
	for shift := 0; shift < 64; shift += 8 {
		var count [256]int
		for _, x := range src {
			count[byte(x.key>>shift)]++
		}
		if count[byte(src[0].key>>shift)] == len(src) {
			continue
		}
		sum := 0
		for d, c := range count {
			count[d] = sum
			sum += c
		}
		for _, x := range src {
			d := byte(x.key >> shift)
			dst[count[d]] = x
			count[d]++
		}
		src, dst = dst, src
	}
	if &src[0] != &a[0] {
		copy(a, src)
	}
}

// deleteSeqs calls fn for every range [start, end) of seqs of replica r
// that this text applied as deletes: the seen seqs that hold no character.
func (t *Text) deleteSeqs(fn func(r ReplicaID, start, end uint64)) {
	for _, r := range t.replicas() {
		seen := *t.seen[r]
		// Characters of r, in seq order.
		var chars []textSeqRange
		p, ok := t.idx.locate(ID{r, 0}) // an entry of a lower replica, if any
		if ok {
			p, ok = t.idx.next(p)
		} else {
			p, ok = textIndexPos{}, len(t.idx.chunks) > 0
		}
		for ; ok; p, ok = t.idx.next(p) {
			e := t.idx.at(p)
			if e.id.Replica != r {
				break
			}
			if m := len(chars); m > 0 && chars[m-1].end == e.id.Seq {
				chars[m-1].end = e.end()
			} else {
				chars = append(chars, textSeqRange{e.id.Seq, e.end()})
			}
		}
		// seen minus chars.
		j := 0
		for _, s := range seen {
			cur := s.start
			for cur < s.end {
				for j < len(chars) && chars[j].end <= cur {
					j++
				}
				if j < len(chars) && chars[j].start <= cur {
					cur = chars[j].end
					continue
				}
				end := s.end
				if j < len(chars) && chars[j].start < end {
					end = chars[j].start
				}
				fn(r, cur, end)
				cur = end
			}
		}
	}
}

// replicas returns the replicas this text has applied operations of, in
// ascending order.
func (t *Text) replicas() []ReplicaID {
	rs := make([]ReplicaID, 0, len(t.seen))
	for r := range t.seen {
		rs = append(rs, r)
	}
	slices.Sort(rs)
	return rs
}

// DiffSince returns the operations a replica that has version v lacks: every
// character and delete this text applied that v does not cover, plus the
// pending operations v does not cover. Applying them to a replica at v (in
// this order or any other) brings it to this text's state. Inserts (merged
// into runs) and deletes come in (replica, seq) order, then the pending
// operations.
//
// Each character appears with its content, unless Collect dropped it (the
// insert then carries Gone instead of Text). A delete carries the characters
// attributed to it; one whose characters are all attributed to other deletes
// carries none, so that the peer still learns its id.
func (t *Text) DiffSince(v VersionVector) []TextOp {
	t.init()
	type piece struct {
		it  textItem
		cut uint64 // characters skipped at the start
	}
	var pieces []piece
	dels := map[ID][]TextSpan{}
	for d, spans := range t.extra {
		if !v.Contains(d) {
			dels[d] = append(dels[d], spans...)
		}
	}
	t.each(func(it *textItem) bool {
		if it.del != (ID{}) && it.del != textCollected && !v.Contains(it.del) {
			dels[it.del] = append(dels[it.del], TextSpan{it.id, uint64(it.n)})
		}
		have := v[it.id.Replica]
		if have >= it.last().Seq {
			return true
		}
		var cut uint64
		if have >= it.id.Seq {
			cut = have - it.id.Seq + 1
		}
		pieces = append(pieces, piece{*it, cut})
		return true
	})
	slices.SortFunc(pieces, func(a, b piece) int { return textCmpID(a.it.id, b.it.id) })
	var ops []TextOp
	var text []rune
	flush := func(op *TextOp) {
		if op.Kind == TextInsert && op.Gone == 0 {
			op.Text = string(text)
		}
		text = text[:0]
		ops = append(ops, *op)
	}
	var cur TextOp
	var curEnd ID // id after the last character of cur
	var curLen uint64
	for _, pc := range pieces {
		it := pc.it
		for cut := pc.cut; cut < uint64(it.n); {
			id := ID{it.id.Replica, it.id.Seq + cut}
			left := it.left
			if cut > 0 {
				left = ID{id.Replica, id.Seq - 1}
			}
			gone := it.off < 0
			if cur.Kind != TextInsert || curEnd != id || left != (ID{id.Replica, id.Seq - 1}) ||
				cur.Right != it.right || (cur.Gone > 0) != gone || curLen == TextMaxOpLen {
				if cur.Kind != 0 {
					flush(&cur)
				}
				cur = TextOp{Kind: TextInsert, ID: id, Left: left, Right: it.right}
				curLen = 0
			}
			k := min(uint64(it.n)-cut, TextMaxOpLen-curLen)
			if gone {
				cur.Gone += k
			} else {
				o := it.off + int(cut)
				text = append(text, t.runes[o:o+int(k)]...)
			}
			curLen += k
			cut += k
			curEnd = ID{id.Replica, id.Seq + k}
		}
	}
	if cur.Kind != 0 {
		flush(&cur)
	}
	t.deleteSeqs(func(r ReplicaID, start, end uint64) {
		for s := max(start, v[r]+1); s < end; s++ {
			id := ID{r, s}
			ops = append(ops, TextOp{Kind: TextDelete, ID: id, Spans: textNormSpans(dels[id])})
		}
	})
	// Inserts and deletes of each replica in seq order: the order they were
	// made in, so that a receiver rarely holds anything pending and its
	// seen ranges grow at the end.
	slices.SortStableFunc(ops, func(a, b TextOp) int { return textCmpID(a.ID, b.ID) })
	for _, op := range t.pendingOps() {
		if !v.Contains(op.ID) {
			ops = append(ops, op)
		}
	}
	return ops
}

// pendingOps returns the pending operations in id order.
func (t *Text) pendingOps() []TextOp {
	ops := make([]TextOp, 0, len(t.pending))
	for _, op := range t.pending {
		ops = append(ops, op)
	}
	slices.SortFunc(ops, func(a, b TextOp) int { return textCmpID(a.ID, b.ID) })
	return ops
}

// Collect drops what no replica needs any more: the content of characters
// deleted by a delete covered by horizon, which should be what every replica
// of the text has seen (the entry-wise [Min] of their version vectors). The
// tombstones themselves stay, as short runs without content, because
// concurrent inserts may still be placed relative to them. After Collect,
// [Text.Invert] cannot undo those deletes (TextErrCollected) and
// [Text.DiffSince] sends their characters as placeholders.
//
// Which characters are collected depends only on the deletes in horizon (a
// character is collected if any of them deleted it), never on which other
// deletes arrived before, so replicas that applied every op in horizon and
// collect at the same horizons end alike.
func (t *Text) Collect(horizon VersionVector) {
	t.init()
	// Characters a delete in the horizon removed that are attributed to a
	// delete outside it.
	for d, spans := range t.extra {
		if !horizon.Contains(d) {
			continue
		}
		for _, s := range spans {
			t.markCollected(s)
		}
		delete(t.extra, d)
	}
	items := make([]textItem, 0, t.root.tot/4+1)
	runes := make([]rune, 0, t.root.vis)
	t.each(func(it *textItem) bool {
		c := *it
		if c.del != (ID{}) && c.del != textCollected && horizon.Contains(c.del) {
			c.del = textCollected
		}
		if c.del == textCollected {
			c.off = -1
		} else {
			o := len(runes)
			runes = append(runes, t.runes[c.off:c.off+c.n]...)
			c.off = o
		}
		if m := len(items); m > 0 && items[m-1].continuedBy(&c, true) {
			items[m-1].n += c.n
		} else {
			items = append(items, c)
		}
		return true
	})
	t.runes = runes
	t.build(items, nil)
	// The other deletes of collected characters are forgotten, as if they
	// had arrived after the collection.
	for d, spans := range t.extra {
		var keep []TextSpan
		for _, s := range spans {
			t.eachPiece(s, func(it *textItem, start ID, n int) {
				if it.del != textCollected {
					keep = textAddSpan(keep, start, uint64(n))
				}
			})
		}
		if len(keep) == 0 {
			delete(t.extra, d)
		} else {
			t.extra[d] = keep
		}
	}
}

// markCollected marks the tombstones of span s collected; Collect drops
// their content.
func (t *Text) markCollected(s TextSpan) {
	id, left := s.Start, s.Len
	for left > 0 {
		p, off, _ := t.findID(id)
		k := min(uint64(p.item().n-off), left)
		if d := p.item().del; d != textCollected && d != (ID{}) {
			if off > 0 {
				p = t.split(p, off)
			}
			if uint64(p.item().n) > k {
				p = t.split(p, int(k)).before()
			}
			p.item().del = textCollected
		}
		id.Seq += k
		left -= k
	}
}

// eachPiece calls fn for each stored item piece of span s, whose characters
// must all be present.
func (t *Text) eachPiece(s TextSpan, fn func(it *textItem, start ID, n int)) {
	id, left := s.Start, s.Len
	for left > 0 {
		p, off, _ := t.findID(id)
		k := min(uint64(p.item().n-off), left)
		fn(p.item(), id, int(k))
		id.Seq += k
		left -= k
	}
}

// Invert undoes op, an operation this text has applied (typically a local
// edit of this replica), with new local operations that it applies and
// returns. They take consecutive seqs from id: the caller advances its
// counter by the sum of their [TextOp.Seqs].
//
// Inverting an insert deletes those of its characters that are still
// visible. Inverting a delete inserts its characters again, as new
// characters placed right where the deleted ones were. It returns no
// operations when there is nothing to undo. Errors: TextErrUnknownID when the
// text does not hold op's characters, TextErrCollected when a deleted
// character's content was collected, TextErrInvalidOp or TextErrIDUsed for a
// bad op or id. On error nothing changes.
func (t *Text) Invert(id ID, op TextOp) ([]TextOp, error) {
	t.init()
	if err := op.validate(); err != nil {
		return nil, err
	}
	if op.Kind == TextInsert {
		return t.deleteVisible(id, []TextSpan{{op.ID, op.runes()}})
	}
	ops, _, err := t.restore(id, op.Spans)
	return ops, err
}

// visit calls fn for every stored piece of span s, or fails with
// TextErrUnknownID if the text does not hold all of s, or with fn's error.
func (t *Text) visit(s TextSpan, fn func(it *textItem, start ID, n int) error) error {
	if !t.idx.covers(s.Start, s.Len) {
		return fmt.Errorf("%w: %v+%d", TextErrUnknownID, s.Start, s.Len)
	}
	id, left := s.Start, s.Len
	for left > 0 {
		p, off, _ := t.findID(id)
		it := p.item()
		k := min(uint64(it.n-off), left)
		if err := fn(it, id, int(k)); err != nil {
			return err
		}
		id.Seq += k
		left -= k
	}
	return nil
}

// deleteVisible deletes, as the local delete id, the characters of spans
// that are still visible, and returns that delete (none if nothing is
// visible). Errors as for Invert; on error nothing changes.
func (t *Text) deleteVisible(id ID, spans []TextSpan) ([]TextOp, error) {
	var del []TextSpan
	for _, s := range spans {
		err := t.visit(s, func(it *textItem, start ID, n int) error {
			if it.vis() > 0 {
				del = textAddSpan(del, start, uint64(n))
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	del = textNormSpans(del) // spans may overlap
	if len(del) == 0 {
		return nil, nil
	}
	if err := t.checkLocalID(id, 1); err != nil {
		return nil, err
	}
	t.applyDelete(id, del)
	t.markSeen(id.Replica, id.Seq, id.Seq+1)
	return []TextOp{{Kind: TextDelete, ID: id, Spans: del}}, nil
}

// restore inserts again, as new local characters from id on, the deleted
// characters of spans, right after their tombstones (one insert per run of
// tombstones adjacent in document order). It returns the inserts and the
// characters restored, in the order of the new ones: the k-th restored
// character is the new character id+k. Errors as for Invert; on error
// nothing changes.
func (t *Text) restore(id ID, spans []TextSpan) ([]TextOp, []TextSpan, error) {
	type piece struct {
		start ID
		n     int
		order int
	}
	var pieces []piece
	for _, s := range spans {
		err := t.visit(s, func(it *textItem, start ID, n int) error {
			if it.vis() > 0 {
				return nil
			}
			if it.off < 0 {
				return fmt.Errorf("%w: %v", TextErrCollected, start)
			}
			p, _, _ := t.findID(start)
			tot, _ := textOffsets(p)
			pieces = append(pieces, piece{start, n, tot + int(start.Seq-it.id.Seq)})
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
	}
	if len(pieces) == 0 {
		return nil, nil, nil
	}
	// Group the deleted characters into runs adjacent in document order.
	slices.SortFunc(pieces, func(a, b piece) int { return a.order - b.order })
	type group struct {
		last  ID
		chars []rune
	}
	var groups []group
	var restored []TextSpan
	var total uint64
	prevEnd := -1
	for _, pc := range pieces {
		if pc.order < prevEnd { // spans that overlap name a character twice
			if pc.order+pc.n <= prevEnd {
				continue
			}
			skip := prevEnd - pc.order
			pc.start.Seq += uint64(skip)
			pc.n -= skip
			pc.order = prevEnd
		}
		p, off, _ := t.findID(pc.start)
		it := p.item()
		chars := t.runes[it.off+off : it.off+off+pc.n]
		if m := len(groups); m > 0 && pc.order == prevEnd {
			groups[m-1].chars = append(groups[m-1].chars, chars...)
		} else {
			groups = append(groups, group{chars: slices.Clone(chars)})
		}
		groups[len(groups)-1].last = ID{pc.start.Replica, pc.start.Seq + uint64(pc.n) - 1}
		restored = textAddSpan(restored, pc.start, uint64(pc.n))
		prevEnd = pc.order + pc.n
		total += uint64(pc.n)
	}
	if err := t.checkLocalID(id, total); err != nil {
		return nil, nil, err
	}
	ops := make([]TextOp, 0, len(groups))
	for _, g := range groups {
		// Insert right after the group's last tombstone.
		p := t.splitEnd(g.last)
		dest := textPos{p.leaf, p.i + 1}
		op := TextOp{Kind: TextInsert, ID: id, Left: g.last, Text: string(g.chars)}
		if q, ok := dest.norm(); ok {
			op.Right = q.item().id
		}
		it := textItem{id: id, left: op.Left, right: op.Right, n: len(g.chars), off: len(t.runes)}
		t.runes = append(t.runes, g.chars...)
		t.place(dest, it)
		t.markSeen(id.Replica, id.Seq, id.Seq+uint64(it.n))
		ops = append(ops, op)
		id.Seq += uint64(it.n)
	}
	return ops, restored, nil
}
