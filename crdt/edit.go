package crdt

import (
	"fmt"
	"slices"
	"sort"
)

// Local edits. Each applies at once to this document and returns the encoded
// update to send to the other replicas (the same bytes [Doc.Apply] takes).
// Each is one step for [Doc.Undo]. Edits refuse to touch deleted elements,
// except [Doc.Restore].

// Create makes an element of type typ under parent ([Root] or a live
// container) with the given z-order key and initial properties. An empty key
// places it above every existing child of parent. It returns the new
// element's id and the update.
//
// Errors: [ErrInvalid] for an unknown type, a property the type does not
// allow, a bad value or key; [ErrNotFound] if parent, or an element a
// reference property names, does not exist; [ErrDeleted] if parent is not
// live; [ErrNotContainer] if parent cannot hold children.
func (d *Doc) Create(typ string, parent ID, key string, props Props) (ID, []byte, error) {
	t := d.schema.types[typ]
	if t == nil {
		return ID{}, nil, fmt.Errorf("%w: unknown element type %q", ErrInvalid, typ)
	}
	if err := d.checkParent(parent); err != nil {
		return ID{}, nil, err
	}
	key, err := d.keyFor(parent, key)
	if err != nil {
		return ID{}, nil, err
	}
	ps, err := d.localProps(t, props, true)
	if err != nil {
		return ID{}, nil, err
	}
	o := d.newOp(OpCreate)
	o.Elem, o.Type, o.Parent, o.Key, o.Props = o.ID, typ, parent, key, ps
	var ed edit
	ed.add(d, o, undoStep{kind: OpDelete, elem: o.ID, was: []ID{{}}})
	return o.ID, d.commit(ed), nil
}

// Set writes properties of a live element. A [Null] value clears a property.
//
// Errors: [ErrNotFound] if the element (or a referenced element) does not
// exist; [ErrDeleted] if it is not live; [ErrInvalid] for a property its type
// does not allow or a bad value.
func (d *Doc) Set(id ID, props Props) ([]byte, error) {
	e, err := d.liveElem(id)
	if err != nil {
		return nil, err
	}
	ps, err := d.localProps(e.typ, props, false)
	if err != nil {
		return nil, err
	}
	if len(ps) == 0 {
		return nil, fmt.Errorf("%w: no properties to set", ErrInvalid)
	}
	var ed edit
	d.emitSet(&ed, e, ps, nil)
	return d.commit(ed), nil
}

// Delete tombstones a live element and every live element inside it. Undo
// restores them all.
//
// Errors: [ErrNotFound] if the element does not exist; [ErrDeleted] if it is
// not live.
func (d *Doc) Delete(id ID) ([]byte, error) {
	e, err := d.liveElem(id)
	if err != nil {
		return nil, err
	}
	var ed edit
	stack := []*element{e}
	for len(stack) > 0 {
		e := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		d.emitDelMark(&ed, e, OpDelete, nil)
		ks := d.kids[e.id]
		for i := len(ks) - 1; i >= 0; i-- {
			if !ks[i].deleted() {
				stack = append(stack, ks[i])
			}
		}
	}
	return d.commit(ed), nil
}

// Restore undoes the delete of an element (not of the elements deleted with
// it; [Doc.Undo] of the delete restores those too).
//
// Errors: [ErrNotFound] if the element does not exist (or was garbage
// collected); [ErrInvalid] if it is not deleted.
func (d *Doc) Restore(id ID) ([]byte, error) {
	e := d.elems[id]
	if e == nil {
		return nil, fmt.Errorf("%w: %d.%d", ErrNotFound, id.Replica, id.Seq)
	}
	if !e.deleted() {
		return nil, fmt.Errorf("%w: element %d.%d is not deleted", ErrInvalid, id.Replica, id.Seq)
	}
	var ed edit
	d.emitDelMark(&ed, e, OpRestore, nil)
	return d.commit(ed), nil
}

// Move puts a live element under a new parent ([Root] or a live container)
// at the given z-order key; an empty key places it above the parent's
// children.
//
// Errors: [ErrNotFound], [ErrDeleted], [ErrNotContainer] as for
// [Doc.Create]; [ErrCycle] if parent is the element or inside it;
// [ErrInvalid] for a bad key.
func (d *Doc) Move(id, parent ID, key string) ([]byte, error) {
	e, err := d.liveElem(id)
	if err != nil {
		return nil, err
	}
	if err := d.checkParent(parent); err != nil {
		return nil, err
	}
	if d.isAncestor(id, parent) {
		return nil, fmt.Errorf("%w: %d.%d into %d.%d", ErrCycle, id.Replica, id.Seq, parent.Replica, parent.Seq)
	}
	if key, err = d.keyFor(parent, key); err != nil {
		return nil, err
	}
	var ed edit
	d.emitMove(&ed, e, parent, key, nil)
	return d.commit(ed), nil
}

// Reorder gives a live element a new z-order key among its siblings: a move
// to its current parent. Errors are those of [Doc.Move].
func (d *Doc) Reorder(id ID, key string) ([]byte, error) {
	e, err := d.liveElem(id)
	if err != nil {
		return nil, err
	}
	return d.Move(id, e.parent, key)
}

// Collect garbage-collects below the horizon h, and returns the collect
// operation to send to every replica, which do the same when they apply it.
// Every element whose deciding delete is in h is dropped, with everything
// inside it, and so is the move history in h. Operations that later name a
// dropped element are counted but change nothing, and a peer whose version
// does not cover h gets [ErrSnapshotRequired] from [Doc.DiffSince].
//
// Collects must be made by one replica at a time (each after applying every
// earlier collect), such as the server node that owns the document: two
// concurrent collects with incomparable horizons can make replicas diverge.
// Within that rule replicas converge whatever h is. For nobody to lose work,
// h should be a version every replica has applied: [Min] of the versions all
// replicas acknowledged. Then every replica saw each dropped element deleted;
// only an edit or restore made concurrently with the collect, not yet knowing
// about it, is lost. A replica whose version is below h must load a
// snapshot.
//
// A collect op drops whatever it lists, so a server should accept OpCollect
// only from itself. Collect returns nil and no error if h adds nothing to the
// horizon, and an error wrapping [ErrInvalid] if this document has not
// applied all of h.
func (d *Doc) Collect(h VersionVector) ([]byte, error) {
	hz := VersionVector{}
	for r, s := range h {
		if s > 0 {
			hz[r] = s
		}
	}
	if !d.vv.Covers(hz) {
		return nil, fmt.Errorf("%w: horizon is ahead of this document's version", ErrInvalid)
	}
	if d.horizon.Covers(hz) {
		return nil, nil
	}
	o := d.newOp(OpCollect)
	o.Horizon, o.Drop = hz, d.collectable(hz)
	d.applyOp(&o)
	return (&Update{Ops: []Op{o}}).Encode(), nil
}

// newOp returns an op of this replica with the next sequence number and
// Lamport counter.
func (d *Doc) newOp(kind OpKind) Op {
	return Op{Kind: kind, ID: ID{Replica: d.replica, Seq: d.vv[d.replica] + 1}, Counter: d.clock + 1}
}

func (d *Doc) liveElem(id ID) (*element, error) {
	e := d.elems[id]
	if e == nil {
		return nil, fmt.Errorf("%w: %d.%d", ErrNotFound, id.Replica, id.Seq)
	}
	if !d.Live(id) {
		return nil, fmt.Errorf("%w: %d.%d", ErrDeleted, id.Replica, id.Seq)
	}
	return e, nil
}

func (d *Doc) checkParent(parent ID) error {
	if parent == Root {
		return nil
	}
	p, err := d.liveElem(parent)
	if err != nil {
		return err
	}
	if !p.typ.container {
		return fmt.Errorf("%w: %s %d.%d", ErrNotContainer, p.typ.name, parent.Replica, parent.Seq)
	}
	return nil
}

// keyFor returns key, checked, or if it is empty a key above every child of
// parent.
func (d *Doc) keyFor(parent ID, key string) (string, error) {
	if key != "" {
		return key, CheckKey(key)
	}
	last := ""
	if ks := d.kids[parent]; len(ks) > 0 {
		last = ks[len(ks)-1].key
	}
	return KeyBetween(last, "")
}

// localProps checks and sorts the writes of a local edit.
func (d *Doc) localProps(t *typeInfo, props Props, create bool) ([]Prop, error) {
	ps := make([]Prop, 0, len(props))
	for k, v := range props {
		if create && v.IsNull() {
			continue
		}
		ps = append(ps, Prop{Key: k, Value: v})
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].Key < ps[j].Key })
	o := Op{Kind: OpSet, Props: ps}
	if err := d.checkProps(&o, t); err != nil {
		return nil, err
	}
	for _, p := range ps {
		if p.Value.k == KindRef && d.elems[p.Value.Ref()] == nil {
			r := p.Value.Ref()
			return nil, fmt.Errorf("%w: property %q references %d.%d", ErrNotFound, p.Key, r.Replica, r.Seq)
		}
	}
	return ps, nil
}

// edit collects the ops of one local edit and the steps that undo them.
type edit struct {
	ops   []Op
	steps []undoStep
}

// add applies a local op and records its inverse.
func (ed *edit) add(d *Doc, o Op, inverse undoStep) {
	inverse.expect = o.ID
	d.applyOp(&o)
	ed.ops = append(ed.ops, o)
	ed.steps = append(ed.steps, inverse)
}

// maxUndo bounds the undo history: it holds at least the last maxUndo edits
// and at most twice that, trimming the oldest in one go.
const maxUndo = 1000

// commit records a finished edit for undo and returns its update.
func (d *Doc) commit(ed edit) []byte {
	if len(d.undo) >= 2*maxUndo {
		d.undo = slices.Clone(d.undo[len(d.undo)-maxUndo:])
	}
	d.undo = append(d.undo, undoEntry(ed.steps))
	d.redo = nil
	return (&Update{Ops: ed.ops}).Encode()
}

// The emit functions make, apply and record one local op. Each records in
// the inverse step which op decided the state before (was), so that when
// the step is replayed the op it emits can stand for that one (see alias).
// from is the step being replayed, or nil for a fresh edit.

func (d *Doc) emitSet(ed *edit, e *element, ps []Prop, from *undoStep) {
	old := make([]Prop, len(ps))
	was := make([]ID, len(ps))
	for i, p := range ps {
		old[i] = Prop{Key: p.Key, Value: Null}
		if j, ok := e.find(d.schema.propIndex[p.Key]); ok {
			old[i].Value, was[i] = e.props[j].value(), e.props[j].id
		}
	}
	o := d.newOp(OpSet)
	o.Elem, o.Props = e.id, ps
	ed.add(d, o, undoStep{kind: OpSet, elem: e.id, props: old, was: was})
	if from != nil {
		for _, p := range ps {
			k := d.schema.propIndex[p.Key]
			i := slices.IndexFunc(from.props, func(q Prop) bool { return q.Key == p.Key })
			d.setAlias(o.ID, uint32(k), from.was[i])
		}
	}
}

func (d *Doc) emitDelMark(ed *edit, e *element, kind OpKind, from *undoStep) {
	o := d.newOp(kind)
	o.Elem = e.id
	inverse := OpRestore
	if kind == OpRestore {
		inverse = OpDelete
	}
	ed.add(d, o, undoStep{kind: inverse, elem: e.id, was: []ID{d.delDecider(e)}})
	if from != nil {
		d.setAlias(o.ID, slotDel, from.was[0])
	}
}

func (d *Doc) emitMove(ed *edit, e *element, parent ID, key string, from *undoStep) {
	o := d.newOp(OpMove)
	o.Elem, o.Parent, o.Key = e.id, parent, key
	ed.add(d, o, undoStep{kind: OpMove, elem: e.id, parent: e.parent, key: e.key, was: []ID{e.placed}})
	if from != nil {
		d.setAlias(o.ID, slotPlace, from.was[0])
	}
}
