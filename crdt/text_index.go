package crdt

// textIndex maps character ids to the leaf of the text tree that holds them.
// It stores ranges, not characters: an entry says that the characters
// id.Seq .. id.Seq+n-1 of id.Replica all live in one leaf. Entries are kept
// sorted by (replica, seq), never overlap, and adjacent entries that point at
// the same leaf with contiguous seqs are merged, so a typed run costs one
// entry however long it is.
//
// The entries live in chunks of at most textIndexChunk entries (a two-level
// sorted array): a lookup is two binary searches, an insert moves at most one
// chunk's entries plus, rarely, the chunk directory.
type textIndex struct {
	chunks [][]textIndexEntry
}

type textIndexEntry struct {
	id   ID
	n    uint64
	leaf *textNode
}

const textIndexChunk = 128

func (e *textIndexEntry) end() uint64 { return e.id.Seq + e.n }

// textIndexPos addresses one entry: chunk ci, entry ei.
type textIndexPos struct{ ci, ei int }

// locate returns the position of the last entry whose start is <= id, or
// ok=false when every entry starts after id.
func (x *textIndex) locate(id ID) (textIndexPos, bool) {
	cs := x.chunks
	// Last chunk whose first entry starts at or before id.
	lo, hi := 0, len(cs)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if id.Less(cs[m][0].id) {
			hi = m
		} else {
			lo = m + 1
		}
	}
	ci := lo - 1
	if ci < 0 {
		return textIndexPos{}, false
	}
	c := cs[ci]
	lo, hi = 0, len(c)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if id.Less(c[m].id) {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return textIndexPos{ci, lo - 1}, true
}

func (x *textIndex) at(p textIndexPos) *textIndexEntry { return &x.chunks[p.ci][p.ei] }

// next returns the position after p, or ok=false at the end.
func (x *textIndex) next(p textIndexPos) (textIndexPos, bool) {
	p.ei++
	if p.ei < len(x.chunks[p.ci]) {
		return p, true
	}
	p.ci++
	p.ei = 0
	return p, p.ci < len(x.chunks)
}

// prev returns the position before p, or ok=false at the start.
func (x *textIndex) prev(p textIndexPos) (textIndexPos, bool) {
	p.ei--
	if p.ei >= 0 {
		return p, true
	}
	p.ci--
	if p.ci < 0 {
		return p, false
	}
	p.ei = len(x.chunks[p.ci]) - 1
	return p, true
}

// find returns the entry containing id, or nil.
func (x *textIndex) find(id ID) *textIndexEntry {
	p, ok := x.locate(id)
	if !ok {
		return nil
	}
	e := x.at(p)
	if e.id.Replica != id.Replica || id.Seq >= e.end() {
		return nil
	}
	return e
}

// leaf returns the leaf holding id, or nil when id is unknown.
func (x *textIndex) leaf(id ID) *textNode {
	if e := x.find(id); e != nil {
		return e.leaf
	}
	return nil
}

// covers reports whether every character id .. id+n-1 is indexed.
func (x *textIndex) covers(id ID, n uint64) bool {
	for n > 0 {
		e := x.find(id)
		if e == nil {
			return false
		}
		k := e.end() - id.Seq
		if k >= n {
			return true
		}
		id.Seq += k
		n -= k
	}
	return true
}

// firstMissing returns the first id in id .. id+n-1 that is not indexed.
func (x *textIndex) firstMissing(id ID, n uint64) (ID, bool) {
	for n > 0 {
		e := x.find(id)
		if e == nil {
			return id, true
		}
		k := e.end() - id.Seq
		if k >= n {
			return ID{}, false
		}
		id.Seq += k
		n -= k
	}
	return ID{}, false
}

// insertAt inserts e so that it becomes the entry at position p (p.ei may be
// the chunk's length; p.ci may be len(chunks) when the index is empty).
func (x *textIndex) insertAt(p textIndexPos, e textIndexEntry) {
	if len(x.chunks) == 0 {
		x.chunks = append(x.chunks, make([]textIndexEntry, 0, textIndexChunk))
		p = textIndexPos{}
	}
	if p.ci == len(x.chunks) {
		p.ci--
		p.ei = len(x.chunks[p.ci])
	}
	c := x.chunks[p.ci]
	c = append(c, textIndexEntry{})
	copy(c[p.ei+1:], c[p.ei:])
	c[p.ei] = e
	if len(c) <= textIndexChunk {
		x.chunks[p.ci] = c
		return
	}
	half := len(c) / 2
	right := make([]textIndexEntry, len(c)-half, textIndexChunk)
	copy(right, c[half:])
	clear(c[half:])
	x.chunks[p.ci] = c[:half]
	x.chunks = append(x.chunks, nil)
	copy(x.chunks[p.ci+2:], x.chunks[p.ci+1:])
	x.chunks[p.ci+1] = right
}

// removeAt removes the entry at p.
func (x *textIndex) removeAt(p textIndexPos) {
	c := x.chunks[p.ci]
	copy(c[p.ei:], c[p.ei+1:])
	c[len(c)-1] = textIndexEntry{}
	c = c[:len(c)-1]
	if len(c) > 0 {
		x.chunks[p.ci] = c
		return
	}
	copy(x.chunks[p.ci:], x.chunks[p.ci+1:])
	x.chunks[len(x.chunks)-1] = nil
	x.chunks = x.chunks[:len(x.chunks)-1]
}

// splitAt makes seq s of replica r start an entry, if an entry spans it.
func (x *textIndex) splitAt(r ReplicaID, s uint64) {
	p, ok := x.locate(ID{r, s})
	if !ok {
		return
	}
	e := x.at(p)
	if e.id.Replica != r || e.id.Seq == s || e.end() <= s {
		return
	}
	tail := textIndexEntry{id: ID{r, s}, n: e.end() - s, leaf: e.leaf}
	e.n = s - e.id.Seq
	p.ei++
	x.insertAt(p, tail)
}

// set records that the characters id .. id+n-1 live in leaf, replacing
// whatever the index said about them before.
func (x *textIndex) set(id ID, n uint64, leaf *textNode) {
	if n == 0 {
		return
	}
	end := id.Seq + n
	// Fast path: an entry of the same leaf contains or abuts id and nothing
	// else lies in the way up to end (a run growing at its end).
	if p, ok := x.locate(id); ok {
		e := x.at(p)
		if e.id.Replica == id.Replica && e.leaf == leaf && e.end() >= id.Seq {
			if e.end() >= end {
				return
			}
			q, more := x.next(p)
			if !more || x.at(q).id.Replica != id.Replica || x.at(q).id.Seq >= end {
				e.n = end - e.id.Seq
				if more {
					if f := x.at(q); f.id.Replica == id.Replica && f.id.Seq == end && f.leaf == leaf {
						e.n += f.n
						x.removeAt(q)
					}
				}
				return
			}
		}
	}
	if x.setInside(id, end, leaf) {
		return
	}
	x.splitAt(id.Replica, id.Seq)
	x.splitAt(id.Replica, end)
	// Remove the entries inside [id, end).
	p, ok := x.locate(id)
	var ins textIndexPos
	switch {
	case !ok:
		ins = textIndexPos{0, 0}
	case x.at(p).id == id:
		ins = p
	default:
		ins = textIndexPos{p.ci, p.ei + 1}
	}
	for ins.ci < len(x.chunks) {
		if ins.ei >= len(x.chunks[ins.ci]) {
			ins = textIndexPos{ins.ci + 1, 0}
			continue
		}
		e := x.at(ins)
		if e.id.Replica != id.Replica || e.id.Seq >= end {
			break
		}
		x.removeAt(ins)
	}
	x.insertAt(ins, textIndexEntry{id: id, n: n, leaf: leaf})
	x.mergeAround(id)
}

// setInside handles a range that lies inside one entry of another leaf (an
// item moving to a new leaf): it splits that entry around the range.
func (x *textIndex) setInside(id ID, end uint64, leaf *textNode) bool {
	p, ok := x.locate(id)
	if !ok {
		return false
	}
	e := x.at(p)
	if e.id.Replica != id.Replica || e.end() < end || e.id.Seq > id.Seq {
		return false
	}
	old, eEnd := e.leaf, e.end()
	switch {
	case e.id.Seq == id.Seq && eEnd == end:
		e.leaf = leaf
		x.mergeAround(id)
	case e.id.Seq == id.Seq:
		e.id.Seq, e.n = end, eEnd-end
		x.insertAt(p, textIndexEntry{id: id, n: end - id.Seq, leaf: leaf})
		x.mergeAround(id)
	case eEnd == end:
		e.n = id.Seq - e.id.Seq
		p.ei++
		x.insertAt(p, textIndexEntry{id: id, n: end - id.Seq, leaf: leaf})
		x.mergeAround(id)
	default:
		e.n = id.Seq - e.id.Seq
		p.ei++
		x.insertAt(p, textIndexEntry{id: id, n: end - id.Seq, leaf: leaf})
		q, _ := x.locate(id)
		q.ei++
		x.insertAt(q, textIndexEntry{id: ID{id.Replica, end}, n: eEnd - end, leaf: old})
	}
	return true
}

// mergeAround merges the entry containing id with its neighbours when they
// continue it in the same leaf.
func (x *textIndex) mergeAround(id ID) {
	p, ok := x.locate(id)
	if !ok {
		return
	}
	if q, ok := x.next(p); ok {
		e, f := x.at(p), x.at(q)
		if f.id.Replica == e.id.Replica && f.id.Seq == e.end() && f.leaf == e.leaf {
			e.n += f.n
			x.removeAt(q)
		}
	}
	if q, ok := x.prev(p); ok {
		d, e := x.at(q), x.at(p)
		if d.id.Replica == e.id.Replica && d.end() == e.id.Seq && d.leaf == e.leaf {
			d.n += e.n
			x.removeAt(p)
		}
	}
}

// build replaces the index with entries, which must be sorted and disjoint.
func (x *textIndex) build(entries []textIndexEntry) {
	x.chunks = x.chunks[:0]
	const fill = textIndexChunk * 3 / 4
	for len(entries) > 0 {
		k := min(fill, len(entries))
		c := make([]textIndexEntry, k, textIndexChunk)
		copy(c, entries[:k])
		x.chunks = append(x.chunks, c)
		entries = entries[k:]
	}
}
