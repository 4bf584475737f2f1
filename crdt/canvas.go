package crdt

import (
	"slices"
	"sort"
)

// Doc is one replica of a canvas document. Local edits ([Doc.Create],
// [Doc.Set], ...) change it and return the update to send to the other
// replicas; [Doc.Apply] merges theirs. A Doc is not safe for concurrent use:
// callers serialise access to it.
type Doc struct {
	replica ReplicaID
	schema  *Schema
	clock   uint64        // highest Lamport counter applied
	vv      VersionVector // what has been applied
	horizon VersionVector // merged horizons of the applied collects

	elems map[ID]*element
	kids  map[ID][]*element // children of each parent (deleted ones too), by (key, id)
	log   []*moveRec        // moves since the last collect, in stamp order

	collects []*Op                  // applied collects not yet below the horizon, by id
	pending  map[ID]*Op             // ops waiting for their dependencies
	waiting  map[ReplicaID][]waiter // pending ops by the replica of a missing dependency

	undo, redo  []undoEntry
	alias       map[aliasKey]ID // ops emitted by undo and redo, and the ops they stand for
	textAliases []textAlias     // text restored by undo and redo, and the text it stands for
}

type waiter struct {
	seq uint64 // runnable once vv[replica] >= seq
	op  *Op
}

// element is one element's state. Its props are last-writer-wins registers.
type element struct {
	id      ID
	counter uint64 // Lamport counter of the create
	typ     *typeInfo
	parent  ID
	key     string
	placed  ID         // the op that set parent and key: the create or a move
	del     []delMark  // delete and restore ops since the last collect, by stamp; the last wins
	props   []prop     // by key index
	texts   []textProp // KindText properties that text ops have touched, by key index
}

// delMark is one delete (deleted true) or restore of an element.
type delMark struct {
	counter uint64
	id      ID
	deleted bool
}

// prop is one property register: a value and the op that wrote it. The
// value's fields are inlined to keep the register at 64 bytes.
type prop struct {
	s       string
	a, b    uint64
	counter uint64
	id      ID
	key     uint16
	k       Kind
}

func (p *prop) value() Value { return Value{s: p.s, a: p.a, b: p.b, k: p.k} }

func (p *prop) write(v Value, counter uint64, id ID) {
	p.s, p.a, p.b, p.k = v.s, v.a, v.b, v.k
	p.counter, p.id = counter, id
}

// after reports whether the write (c1, id1) wins over (c2, id2): stamps
// order by counter then replica; the sequence number only separates ops a
// misbehaving replica stamped alike.
func after(c1 uint64, id1 ID, c2 uint64, id2 ID) bool {
	if c1 != c2 {
		return c1 > c2
	}
	if id1.Replica != id2.Replica {
		return id1.Replica > id2.Replica
	}
	return id1.Seq > id2.Seq
}

func (e *element) deleted() bool { return len(e.del) > 0 && e.del[len(e.del)-1].deleted }

// delWinner returns the id of the delete or restore op that decides whether
// the element is deleted, or the zero ID if there is none.
func (e *element) delWinner() ID {
	if len(e.del) == 0 {
		return ID{}
	}
	return e.del[len(e.del)-1].id
}

func (e *element) find(key uint16) (int, bool) {
	i := sort.Search(len(e.props), func(i int) bool { return e.props[i].key >= key })
	return i, i < len(e.props) && e.props[i].key == key
}

// NewDoc returns an empty document for replica, checked against schema (nil
// means [DefaultSchema]). It panics if replica is zero.
func NewDoc(replica ReplicaID, schema *Schema) *Doc {
	if replica == 0 {
		panic("crdt: replica id 0 is reserved")
	}
	if schema == nil {
		schema = DefaultSchema()
	}
	return &Doc{
		replica: replica,
		schema:  schema,
		vv:      VersionVector{},
		horizon: VersionVector{},
		elems:   map[ID]*element{},
		kids:    map[ID][]*element{},
		pending: map[ID]*Op{},
		waiting: map[ReplicaID][]waiter{},
	}
}

// Replica returns the id this document makes its operations with.
func (d *Doc) Replica() ReplicaID { return d.replica }

// Schema returns the schema updates are checked against.
func (d *Doc) Schema() *Schema { return d.schema }

// Version returns a copy of the version vector of applied operations.
// Pending operations are not counted.
func (d *Doc) Version() VersionVector { return d.vv.Clone() }

// Horizon returns a copy of the collection horizon: the version below which
// tombstones and move history were garbage collected. A peer whose version
// does not cover it needs a full snapshot.
func (d *Doc) Horizon() VersionVector { return d.horizon.Clone() }

// Pending returns the number of received operations held back because
// operations they depend on have not arrived yet.
func (d *Doc) Pending() int { return len(d.pending) }

// ElementInfo is a read-only copy of one element.
type ElementInfo struct {
	ID     ID
	Type   string
	Parent ID
	Key    string
	// Deleted reports the element's own tombstone. An element can also be
	// hidden by a deleted ancestor; see [Doc.Live].
	Deleted bool
	// Props holds the non-null properties, except text.
	Props Props
	// Texts holds the non-empty collaborative text properties ([KindText])
	// as plain strings, or is nil if there are none.
	Texts map[string]string
}

// Element returns a copy of the element id, including a deleted one, and
// whether the document holds it.
func (d *Doc) Element(id ID) (ElementInfo, bool) {
	e := d.elems[id]
	if e == nil {
		return ElementInfo{}, false
	}
	info := ElementInfo{ID: e.id, Type: e.typ.name, Parent: e.parent, Key: e.key, Deleted: e.deleted(), Props: Props{}}
	for i := range e.props {
		if p := &e.props[i]; p.k != KindNull {
			info.Props[d.schema.propNames[p.key]] = p.value()
		}
	}
	for _, tp := range e.texts {
		if tp.t.Len() > 0 {
			if info.Texts == nil {
				info.Texts = map[string]string{}
			}
			info.Texts[d.schema.propNames[tp.key]] = tp.t.String()
		}
	}
	return info, true
}

// Get returns one property of an element and whether it is set (not null).
// It reads deleted elements too. Text properties are read with [Doc.Text].
func (d *Doc) Get(id ID, key string) (Value, bool) {
	e := d.elems[id]
	k, ok := d.schema.propIndex[key]
	if e == nil || !ok {
		return Null, false
	}
	i, found := e.find(k)
	if !found || e.props[i].k == KindNull {
		return Null, false
	}
	return e.props[i].value(), true
}

// Children returns the ids of the non-deleted children of parent ([Root] for
// the top level) in z-order: by key, then by id for equal keys.
func (d *Doc) Children(parent ID) []ID {
	var out []ID
	for _, c := range d.kids[parent] {
		if !c.deleted() {
			out = append(out, c.id)
		}
	}
	return out
}

// Live reports whether id is an element that is shown: it exists, is not
// deleted, and neither is any ancestor up to the root.
func (d *Doc) Live(id ID) bool {
	return d.ancestry(id, func(e *element) bool { return !e.deleted() })
}

// Binding is a reference property and the element it points at.
type Binding struct {
	Elem   ID
	Key    string
	Target ID
}

// Dangling returns, sorted by element and key, the references held by live
// elements whose target is not live (deleted, inside a deleted container, or
// garbage collected). Readers should treat such bindings as unbound.
func (d *Doc) Dangling() []Binding {
	var out []Binding
	for _, e := range d.elems {
		for i := range e.props {
			p := &e.props[i]
			if p.k != KindRef {
				continue
			}
			if t := p.value().Ref(); !d.Live(t) && d.Live(e.id) {
				out = append(out, Binding{Elem: e.id, Key: d.schema.propNames[p.key], Target: t})
			}
		}
	}
	slices.SortFunc(out, func(a, b Binding) int {
		if a.Elem != b.Elem {
			if a.Elem.Less(b.Elem) {
				return -1
			}
			return 1
		}
		if a.Key < b.Key {
			return -1
		}
		if a.Key > b.Key {
			return 1
		}
		return 0
	})
	return out
}

// sortedElems returns every element, sorted by id.
func (d *Doc) sortedElems() []*element {
	out := make([]*element, 0, len(d.elems))
	for _, e := range d.elems {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b *element) int { return cmpID(a.id, b.id) })
	return out
}

func cmpID(a, b ID) int {
	switch {
	case a.Less(b):
		return -1
	case b.Less(a):
		return 1
	}
	return 0
}

// absent reports whether id names an element whose create this document
// has applied but which it no longer holds (garbage collected, or dropped
// because its parent was).
func (d *Doc) absent(id ID) bool { return id != Root && d.vv.Contains(id) && d.elems[id] == nil }
