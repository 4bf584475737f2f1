package crdt

import (
	"bytes"
	"fmt"
	"slices"
)

// Snapshot returns the document's state in its canonical msgpack encoding
// (docs/crdt.md describes it). Two replicas that have applied the same
// operations produce identical bytes: the encoding holds no replica-local
// state (not the replica id, not the undo history) and everything in it is
// in a canonical order. Pending operations are included, so nothing received
// is lost across a save and [Load].
func (d *Doc) Snapshot() []byte {
	w := newWriter()
	reps := sortedReplicas(d.vv)
	index := make(map[ReplicaID]uint64, len(reps)+1)
	for i, r := range reps {
		index[r] = uint64(i + 1)
	}
	rid := func(id ID) { w.uint(index[id.Replica]); w.uint(id.Seq) }
	vv := func(v VersionVector) {
		rs := sortedReplicas(v)
		w.arr(2 * len(rs))
		for _, r := range rs {
			w.uint(index[r])
			w.uint(v[r])
		}
	}

	w.arr(10)
	w.header(snapshotMagic)
	w.arr(len(reps))
	for _, r := range reps {
		w.uint(uint64(r))
	}
	w.uint(d.clock)
	vv(d.vv)
	vv(d.horizon)

	w.arr(len(d.elems))
	for _, e := range d.sortedElems() {
		if len(e.texts) > 0 {
			w.arr(11)
		} else {
			w.arr(10)
		}
		rid(e.id)
		w.uint(e.counter)
		w.str(e.typ.name)
		rid(e.parent)
		w.str(e.key)
		if e.placed == e.id {
			w.nil()
		} else {
			w.arr(2)
			rid(e.placed)
		}
		if len(e.del) == 0 {
			w.nil()
		} else {
			w.arr(len(e.del))
			for _, m := range e.del {
				w.arr(4)
				w.uint(m.counter)
				rid(m.id)
				w.boolean(m.deleted)
			}
		}
		w.arr(len(e.props))
		for i := range e.props {
			p := &e.props[i]
			if p.id == e.id && p.counter == e.counter {
				w.arr(2)
			} else {
				w.arr(5)
			}
			w.str(d.schema.propNames[p.key])
			w.value(p.value())
			if p.id != e.id || p.counter != e.counter {
				w.uint(p.counter)
				rid(p.id)
			}
		}
		if len(e.texts) > 0 {
			w.arr(len(e.texts))
			for _, tp := range e.texts {
				state, err := tp.t.Encode()
				if err != nil {
					panic("crdt: encoding a text: " + err.Error()) // only for ops that failed validation
				}
				w.arr(2)
				w.str(d.schema.propNames[tp.key])
				w.bin(state)
			}
		}
	}

	w.arr(len(d.log))
	for _, m := range d.log {
		w.arr(14)
		rid(m.id)
		w.uint(m.counter)
		rid(m.elem)
		rid(m.parent)
		w.str(m.key)
		rid(m.oldParent)
		w.str(m.oldKey)
		rid(m.oldPlaced)
		w.boolean(m.applied)
	}

	w.arr(len(d.collects))
	for _, c := range d.collects {
		w.op(c)
	}
	pend := make([]*Op, 0, len(d.pending))
	for _, o := range d.pending {
		pend = append(pend, o)
	}
	slices.SortFunc(pend, func(a, b *Op) int { return cmpID(a.ID, b.ID) })
	w.arr(len(pend))
	for _, o := range pend {
		w.op(o)
	}
	return bytes.Clone(w.bytes())
}

// Load returns the document a [Doc.Snapshot] encodes, as replica and checked
// against schema (nil means [DefaultSchema]). replica may be a new id, or the
// one that saved the snapshot if the snapshot holds every op that replica
// ever sent (it resumes numbering after them); reusing an id whose later ops
// are elsewhere would give two ops one id. It returns an error wrapping
// [ErrInvalid] if the bytes are malformed, of another format version, or
// inconsistent (unknown types or properties, ids or stamps the version does
// not cover, a move log that does not replay to the saved tree).
func Load(replica ReplicaID, schema *Schema, snapshot []byte) (*Doc, error) {
	d := NewDoc(replica, schema)
	r := newReader(snapshot)
	defer r.release()
	bad := func(format string, args ...any) (*Doc, error) {
		return nil, fmt.Errorf("%w: snapshot: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}

	r.arr(10, 10)
	r.header(snapshotMagic)
	reps := make([]ReplicaID, r.count(1))
	for i := range reps {
		reps[i] = ReplicaID(r.uint())
		if r.err == nil && (reps[i] == 0 || i > 0 && reps[i] <= reps[i-1]) {
			return bad("replica table out of order")
		}
	}
	rid := func() ID {
		i := r.uint()
		s := r.uint()
		if i > uint64(len(reps)) {
			r.fail("replica index %d out of range", i)
			return ID{}
		}
		if i == 0 {
			if s != 0 {
				r.fail("root id with a sequence number")
			}
			return ID{}
		}
		return ID{Replica: reps[i-1], Seq: s}
	}
	vv := func() VersionVector {
		n := r.count(1)
		if n%2 != 0 {
			r.fail("odd version vector")
			return nil
		}
		v := VersionVector{}
		for range n / 2 {
			id := rid()
			if r.err == nil && (id.Replica == 0 || id.Seq == 0 || v[id.Replica] != 0) {
				r.fail("bad version vector entry")
			}
			v[id.Replica] = id.Seq
		}
		return v
	}
	d.clock = r.uint()
	d.vv = vv()
	d.horizon = vv()

	n := r.count(10)
	// Elements and their registers come from two slabs, and property and
	// type names are looked up without allocating.
	slab := make([]element, n)
	var props []prop
	var prev []uint16 // property keys of the previous element
	d.elems = make(map[ID]*element, n)
	for k := range n {
		if r.err != nil {
			break
		}
		hasTexts := r.arr(10, 11) == 11
		e := &slab[k]
		e.id, e.counter = rid(), r.uint()
		e.typ = d.schema.types[string(r.name())]
		e.parent = rid()
		e.key = r.str(MaxKeyLen)
		e.placed = e.id
		if !r.isNil() {
			r.arr(2, 2)
			e.placed = rid()
		}
		if !r.isNil() {
			e.del = make([]delMark, r.count(4))
			for i := range e.del {
				r.arr(4, 4)
				e.del[i] = delMark{counter: r.uint(), id: rid(), deleted: r.boolean()}
			}
		}
		np := r.count(3)
		if cap(props)-len(props) < np {
			props = make([]prop, 0, max(np, 10*(n-k)))
		}
		e.props = props[len(props) : len(props)+np : len(props)+np]
		props = props[:len(props)+np]
		for i := range e.props {
			full := r.arr(2, 5) == 5
			// Elements mostly repeat the property names of the one before.
			name := r.name()
			var key uint16
			ok := i < len(prev) && string(name) == d.schema.propNames[prev[i]]
			if ok {
				key = prev[i]
			} else {
				key, ok = d.schema.propIndex[string(name)]
			}
			v := r.value()
			c, id := e.counter, e.id
			if full {
				c, id = r.uint(), rid()
			}
			if r.err != nil {
				break
			}
			if !ok {
				return bad("unknown property on element %d.%d", e.id.Replica, e.id.Seq)
			}
			e.props[i].key = key
			e.props[i].write(v, c, id)
		}
		if r.err != nil {
			break
		}
		prev = prev[:0]
		for i := range e.props {
			prev = append(prev, e.props[i].key)
		}
		if e.typ == nil {
			return bad("unknown type of element %d.%d", e.id.Replica, e.id.Seq)
		}
		if hasTexts {
			if err := d.loadTexts(r, e); err != nil {
				return nil, err
			}
		}
		if !validID(e.id) || d.elems[e.id] != nil || !d.vv.Contains(e.id) || CheckKey(e.key) != nil ||
			!d.applied(e.counter, e.id) || e.placed != e.id && !d.applied(1, e.placed) {
			return bad("bad element %d.%d", e.id.Replica, e.id.Seq)
		}
		for i, m := range e.del {
			if !d.applied(m.counter, m.id) || i > 0 && !after(m.counter, m.id, e.del[i-1].counter, e.del[i-1].id) {
				return bad("bad delete marks on element %d.%d", e.id.Replica, e.id.Seq)
			}
		}
		for i := range e.props {
			p := &e.props[i]
			own := p.id == e.id && p.counter == e.counter // checked with the element
			if i > 0 && e.props[i-1].key >= p.key || !e.typ.allowed[p.key] || !own && !d.applied(p.counter, p.id) ||
				d.schema.checkIndexed(p.key, p.value()) != nil {
				return bad("bad property on element %d.%d", e.id.Replica, e.id.Seq)
			}
		}
		d.elems[e.id] = e
	}

	n = r.count(14)
	for range n {
		if r.err != nil {
			break
		}
		r.arr(14, 14)
		m := &moveRec{id: rid(), counter: r.uint(), elem: rid(), parent: rid(), key: r.str(MaxKeyLen),
			oldParent: rid(), oldKey: r.str(MaxKeyLen), oldPlaced: rid(), applied: r.boolean()}
		if r.err == nil && (d.elems[m.elem] == nil || !d.applied(m.counter, m.id) || CheckKey(m.key) != nil ||
			len(d.log) > 0 && !d.log[len(d.log)-1].before(m)) {
			return bad("bad move in the log")
		}
		d.log = append(d.log, m)
	}
	n = r.count(5)
	for range n {
		if r.err != nil {
			break
		}
		c := r.op()
		d.collects = append(d.collects, &c)
	}
	n = r.count(4)
	pend := make([]Op, 0, n)
	for range n {
		if r.err != nil {
			break
		}
		pend = append(pend, r.op())
	}
	if err := r.end(); err != nil {
		return nil, err
	}

	// The tree must be whole: every parent is the root or a container
	// element, and the move log replays to it from a base without cycles.
	for _, e := range d.elems {
		if e.parent != Root {
			p := d.elems[e.parent]
			if p == nil || !p.typ.container {
				return bad("element %d.%d has a bad parent", e.id.Replica, e.id.Seq)
			}
		}
		d.kids[e.parent] = append(d.kids[e.parent], e)
	}
	for _, ks := range d.kids {
		if !slices.IsSortedFunc(ks, cmpSibling) { // usually they are
			slices.SortFunc(ks, cmpSibling)
		}
	}
	// The log must replay to the tree it was saved with: undo it all (the
	// base must be whole too), redo it, and compare.
	type placement struct {
		parent ID
		key    string
		placed ID
	}
	var saved map[ID]placement
	if len(d.log) > 0 {
		saved = make(map[ID]placement, len(d.elems))
		for id, e := range d.elems {
			saved[id] = placement{e.parent, e.key, e.placed}
		}
	}
	for j := len(d.log) - 1; j >= 0; j-- {
		m := d.log[j]
		if d.elems[m.oldParent] == nil && m.oldParent != Root || !d.applied(1, m.oldPlaced) || CheckKey(m.oldKey) != nil {
			return bad("move with a bad undo record")
		}
		d.undoMove(m)
	}
	for id, e := range d.elems {
		if p := d.elems[e.parent]; !d.reachesRoot(id) || e.parent != Root && !p.typ.container {
			return bad("bad tree at element %d.%d", id.Replica, id.Seq)
		}
	}
	for _, m := range d.log {
		if p := d.elems[m.parent]; m.parent != Root && (p == nil || !p.typ.container) {
			return bad("move into a bad parent")
		}
		d.do(m)
	}
	for id, e := range saved {
		if e != (placement{d.elems[id].parent, d.elems[id].key, d.elems[id].placed}) {
			return bad("move log does not replay to the saved tree")
		}
	}
	for i, c := range d.collects {
		if c.Kind != OpCollect || c.check() != nil || !d.vv.Contains(c.ID) || i > 0 && !d.collects[i-1].ID.Less(c.ID) {
			return bad("bad collect op")
		}
	}
	for i := range pend {
		o := &pend[i]
		if err := o.check(); err != nil {
			return nil, err
		}
		if err := d.checkProps(o, nil); err != nil {
			return nil, err
		}
		if o.Kind == OpTextInsert || o.Kind == OpTextDelete {
			if err := d.checkTextOp(o, nil); err != nil {
				return nil, err
			}
		}
		if o.Kind == OpCreate && d.schema.types[o.Type] == nil {
			return bad("pending create of unknown type %q", o.Type)
		}
		d.receive(o)
	}
	return d, nil
}

// loadTexts reads the texts of element e from a snapshot: a non-empty array
// of [name, state] sorted by name, each a text property of e's type whose
// state (a bin holding a [Text.Encode] encoding) decodes and names only
// operations this document has applied.
func (d *Doc) loadTexts(r *reader, e *element) error {
	bad := func(why string) error {
		return fmt.Errorf("%w: snapshot: texts of element %d.%d: %s", ErrInvalid, e.id.Replica, e.id.Seq, why)
	}
	n := r.count(3)
	if r.err == nil && n == 0 {
		return bad("empty list")
	}
	e.texts = make([]textProp, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		r.arr(2, 2)
		name := r.propName()
		state := r.blob(r.r.Len())
		if r.err != nil {
			return r.err
		}
		k, ok := d.schema.propIndex[name]
		if !ok || d.schema.props[k].Kind != KindText || !e.typ.allowed[k] || i > 0 && e.texts[i-1].key >= k {
			return bad("bad or unsorted property " + name)
		}
		t, err := TextDecode(state)
		if err != nil {
			return bad(err.Error())
		}
		for rep, seen := range t.seen {
			if seen.last() > d.vv[rep] {
				return bad("operations the version does not cover")
			}
		}
		for id, op := range t.pending {
			if id.Seq+op.Seqs()-1 > d.vv[id.Replica] {
				return bad("pending operations the version does not cover")
			}
		}
		e.texts = append(e.texts, textProp{key: k, t: t})
	}
	return r.err
}

// applied reports whether an op (counter, id) is one this document can have
// applied: a valid id it counts, a counter within its clock.
func (d *Doc) applied(counter uint64, id ID) bool {
	return validID(id) && d.vv.Contains(id) && counter > 0 && counter <= d.clock
}

// reachesRoot reports whether following parents from id ends at the root.
func (d *Doc) reachesRoot(id ID) bool {
	return d.ancestry(id, func(*element) bool { return true })
}
