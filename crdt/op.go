package crdt

import "fmt"

// OpKind tags an operation. The tag is the first field of every encoded
// operation, so new kinds can be added without changing existing ones.
type OpKind uint8

// Operation kinds. Values are part of the wire format and never change.
const (
	// OpCreate makes an element: its type, its placement (parent and
	// z-order key) and its initial properties. The element's id is the op's.
	OpCreate OpKind = 1
	// OpSet writes one or more properties of an element.
	OpSet OpKind = 2
	// OpDelete tombstones an element.
	OpDelete OpKind = 3
	// OpRestore undoes a delete.
	OpRestore OpKind = 4
	// OpMove gives an element a new parent and z-order key (a reorder is a
	// move to the same parent).
	OpMove OpKind = 5
	// OpCollect garbage-collects tombstones and move history below a horizon
	// version (see [Doc.Collect]).
	OpCollect OpKind = 6
	// OpSkip covers a run of sequence numbers whose effect is already
	// contained in the rest of an update (see [Doc.DiffSince]).
	OpSkip OpKind = 7
	// OpTextInsert inserts characters into a [KindText] property of an
	// element (a [TextOp] of kind [TextInsert]). It takes one sequence number
	// per character inserted and carries no Lamport counter: text order
	// comes from the characters' origins, not from stamps.
	OpTextInsert OpKind = 8
	// OpTextDelete deletes characters of a [KindText] property of an element
	// (a [TextOp] of kind [TextDelete]). It takes one sequence number and
	// carries no Lamport counter.
	OpTextDelete OpKind = 9

	// Kinds 10 to 15 are reserved for further text operations.
)

var opKindNames = [...]string{"", "create", "set", "delete", "restore", "move", "collect", "skip", "textinsert", "textdelete"}

// String returns the kind's lower-case name.
func (k OpKind) String() string {
	if int(k) < len(opKindNames) && k != 0 {
		return opKindNames[k]
	}
	return fmt.Sprintf("opkind(%d)", uint8(k))
}

// maxCounter bounds Lamport counters and sequence numbers, so they stay exact
// in any client language that reads numbers as float64.
const maxCounter = 1 << 53

// maxTextInsert bounds the characters (code points) of one OpTextInsert.
// Local edits and DiffSince split longer runs into several ops, which is
// the same insert: character k of a run has origin left ID+k-1 either way.
const maxTextInsert = 1 << 16

// Prop is one property write.
type Prop struct {
	Key   string
	Value Value
}

// Op is one operation. Which fields are used depends on Kind; the others are
// zero. An Op takes the sequence numbers [ID.Seq, ID.Seq+Span()) of its
// replica.
type Op struct {
	Kind OpKind
	// ID is the replica that made the op and the first sequence number it
	// takes.
	ID ID
	// Counter is the op's Lamport counter; with ID.Replica it forms the
	// op's [Stamp]. Zero for OpSkip and the text kinds, at least 1
	// otherwise.
	Counter uint64
	// Elem is the element the op touches (OpSet, OpDelete, OpRestore,
	// OpMove, OpTextInsert, OpTextDelete). For OpCreate it equals ID.
	Elem ID
	// Type is the element type of an OpCreate.
	Type string
	// Parent is the new parent of an OpCreate or OpMove: the zero ID for the
	// canvas root, else a container element.
	Parent ID
	// Key is the z-order key of an OpCreate or OpMove (see [KeyBetween]).
	Key string
	// Props are the writes of an OpCreate or OpSet, sorted by Key without
	// duplicates.
	Props []Prop
	// Len is the number of sequence numbers an OpSkip covers (at least 1).
	Len uint64
	// Horizon is the version an OpCollect collects below: the history of
	// the ops in it is dropped. The collect applies after all of it.
	Horizon VersionVector
	// Drop lists the elements an OpCollect removes (with everything inside
	// them), sorted: those whose delete, in Horizon, decides that they are
	// deleted.
	Drop []ID
	// TextProp is the name of the [KindText] property of Elem that an
	// OpTextInsert or OpTextDelete edits.
	TextProp string
	// Text is the text operation of an OpTextInsert (Text.Kind [TextInsert])
	// or OpTextDelete ([TextDelete]); Text.ID equals ID.
	Text TextOp
}

// Root is the zero ID: the parent of top-level elements. It is never an
// element itself.
var Root = ID{}

// Stamp returns the op's Lamport timestamp.
func (o *Op) Stamp() Stamp { return Stamp{Counter: o.Counter, Replica: o.ID.Replica} }

// Span returns the number of sequence numbers the op takes: Len for an
// OpSkip, the number of characters for an OpTextInsert, else 1.
func (o *Op) Span() uint64 {
	switch o.Kind {
	case OpSkip:
		return o.Len
	case OpTextInsert:
		return o.Text.runes()
	}
	return 1
}

// last returns the highest sequence number the op takes.
func (o *Op) last() uint64 { return o.ID.Seq + o.Span() - 1 }

// Update is a batch of operations: what a local edit returns, what
// [Doc.DiffSince] and [MergeUpdates] produce, and what [Doc.Apply] consumes.
// A server can inspect Ops (kinds, elements, property names) to check
// permissions before applying an update.
type Update struct {
	Ops []Op
}

func validID(id ID) bool { return id.Replica != 0 && id.Seq != 0 && id.Seq < maxCounter }

// check validates the op on its own, without a schema or a document.
func (o *Op) check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %v op %d.%d: %s", ErrInvalid, o.Kind, o.ID.Replica, o.ID.Seq, fmt.Sprintf(format, args...))
	}
	if !validID(o.ID) {
		return bad("bad id")
	}
	if o.Kind == OpSkip {
		if o.Counter != 0 {
			return bad("skip with a counter")
		}
		if o.Len == 0 || o.Len >= maxCounter || o.ID.Seq+o.Len > maxCounter {
			return bad("bad length %d", o.Len)
		}
		return nil
	}
	// A dependency on a later op of the same replica could never be met.
	dep := func(id ID) error {
		if !validID(id) || (id.Replica == o.ID.Replica && id.Seq >= o.ID.Seq) {
			return bad("bad reference %d.%d", id.Replica, id.Seq)
		}
		return nil
	}
	if o.Kind == OpTextInsert || o.Kind == OpTextDelete {
		return o.checkText(bad, dep)
	}
	if o.Counter == 0 || o.Counter >= maxCounter {
		return bad("bad counter %d", o.Counter)
	}
	switch o.Kind {
	case OpCreate:
		if o.Elem != o.ID {
			return bad("create of another id")
		}
		if o.Type == "" {
			return bad("no type")
		}
		if o.Parent != Root {
			if err := dep(o.Parent); err != nil {
				return err
			}
		}
		if err := CheckKey(o.Key); err != nil {
			return bad("%v", err)
		}
		return o.checkProps(dep, true)
	case OpSet:
		if err := dep(o.Elem); err != nil {
			return err
		}
		if len(o.Props) == 0 {
			return bad("no properties")
		}
		return o.checkProps(dep, false)
	case OpDelete, OpRestore:
		return dep(o.Elem)
	case OpMove:
		if err := dep(o.Elem); err != nil {
			return err
		}
		if o.Parent == o.Elem {
			return bad("move into itself")
		}
		if o.Parent != Root {
			if err := dep(o.Parent); err != nil {
				return err
			}
		}
		if err := CheckKey(o.Key); err != nil {
			return bad("%v", err)
		}
		return nil
	case OpCollect:
		if len(o.Horizon) == 0 {
			return bad("empty horizon")
		}
		for r, s := range o.Horizon {
			if err := dep(ID{Replica: r, Seq: s}); err != nil {
				return err
			}
		}
		for i, id := range o.Drop {
			if !validID(id) || !o.Horizon.Contains(id) || i > 0 && !o.Drop[i-1].Less(id) {
				return bad("bad or unsorted dropped element %d.%d", id.Replica, id.Seq)
			}
		}
		return nil
	}
	return bad("unknown kind")
}

// checkText validates a text op on its own: the text op itself (see
// [Text.Apply]), its id matching the op's, and the document's bounds: ids
// below 2^53, at most maxTextInsert characters per insert.
func (o *Op) checkText(bad func(string, ...any) error, dep func(ID) error) error {
	if o.Counter != 0 {
		return bad("text op with a counter")
	}
	if err := dep(o.Elem); err != nil {
		return err
	}
	if o.TextProp == "" || len(o.TextProp) > 64 {
		return bad("bad property name")
	}
	want := TextInsert
	if o.Kind == OpTextDelete {
		want = TextDelete
	}
	if o.Text.Kind != want || o.Text.ID != o.ID {
		return bad("text op of another kind or id")
	}
	if err := o.Text.validate(); err != nil {
		return fmt.Errorf("%w: %v op %d.%d: %w", ErrInvalid, o.Kind, o.ID.Replica, o.ID.Seq, err)
	}
	if o.Kind == OpTextInsert {
		if n := o.Text.runes(); n > maxTextInsert || o.ID.Seq+n > maxCounter {
			return bad("insert of %d characters", n)
		}
		for _, id := range [2]ID{o.Text.Left, o.Text.Right} {
			if id != (ID{}) {
				if err := dep(id); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, s := range o.Text.Spans {
		if err := dep(s.Start); err != nil || s.Start.Seq+s.Len > maxCounter {
			return bad("bad span %d.%d+%d", s.Start.Replica, s.Start.Seq, s.Len)
		}
	}
	return nil
}

func (o *Op) checkProps(dep func(ID) error, create bool) error {
	for i, p := range o.Props {
		if i > 0 && o.Props[i-1].Key >= p.Key {
			return fmt.Errorf("%w: %v op %d.%d: properties not sorted or repeated", ErrInvalid, o.Kind, o.ID.Replica, o.ID.Seq)
		}
		if create && p.Value.k == KindNull {
			return fmt.Errorf("%w: create op %d.%d sets %q to null", ErrInvalid, o.ID.Replica, o.ID.Seq, p.Key)
		}
		if p.Value.k == KindRef {
			if err := dep(p.Value.Ref()); err != nil {
				return err
			}
		}
	}
	return nil
}
