package crdt

import (
	"fmt"
	"slices"
)

// Apply decodes a remote update and merges it into the document. Applying is
// idempotent, commutative and associative: replicas that apply the same
// updates, in any order and any number of times, reach the same state.
//
// An operation whose dependencies (the previous operation of its replica,
// the elements it names) have not been applied yet is held pending, and
// applied as soon as they are; [Doc.Version] counts only applied operations.
// Operations on an element that was garbage collected, or whose type does
// not allow a property, are counted but change nothing; so are writes to a
// deleted element, except that they stay in its registers and show if the
// element is restored.
//
// An update that is malformed or breaks the schema (unknown element type or
// property, wrong kind, out-of-range value, bad id or sequence range, a parent
// that is not a container) is rejected whole with an error wrapping
// [ErrInvalid], and the document is unchanged. Checks that need an element
// this document does not have yet are made when the operation is applied.
func (d *Doc) Apply(update []byte) error {
	u, err := DecodeUpdate(update)
	if err != nil {
		return err
	}
	return d.apply(u)
}

// ApplyUpdate is [Doc.Apply] for an update already decoded (or built in
// memory). It checks each operation on its own first, as [DecodeUpdate]
// does. The document keeps no reference to u.
func (d *Doc) ApplyUpdate(u *Update) error {
	if err := checkOps(u); err != nil {
		return err
	}
	return d.apply(u)
}

// Check reports whether [Doc.ApplyUpdate] would accept u, without changing
// anything: a server can validate an update, store it, then apply it. It
// returns the error ApplyUpdate would.
func (d *Doc) Check(u *Update) error {
	if err := checkOps(u); err != nil {
		return err
	}
	return d.validate(u)
}

func checkOps(u *Update) error {
	for i := range u.Ops {
		if err := u.Ops[i].check(); err != nil {
			return err
		}
	}
	return nil
}

func (d *Doc) apply(u *Update) error {
	if err := d.validate(u); err != nil {
		return err
	}
	for i := range u.Ops {
		d.receive(&u.Ops[i])
	}
	return nil
}

// validate checks an update against the schema and what the document knows,
// without changing anything.
func (d *Doc) validate(u *Update) error {
	var created map[ID]*typeInfo
	typeOf := func(id ID) *typeInfo {
		if e := d.elems[id]; e != nil {
			return e.typ
		}
		return created[id]
	}
	for i := range u.Ops {
		o := &u.Ops[i]
		if o.Kind != OpCreate {
			continue
		}
		t := d.schema.types[o.Type]
		if t == nil {
			return fmt.Errorf("%w: create op %d.%d of unknown type %q", ErrInvalid, o.ID.Replica, o.ID.Seq, o.Type)
		}
		if created == nil {
			created = map[ID]*typeInfo{}
		}
		created[o.ID] = t
	}
	for i := range u.Ops {
		o := &u.Ops[i]
		switch o.Kind {
		case OpCreate, OpSet:
			if err := d.checkProps(o, typeOf(o.Elem)); err != nil {
				return err
			}
		case OpTextInsert, OpTextDelete:
			if err := d.checkTextOp(o, typeOf(o.Elem)); err != nil {
				return err
			}
		}
		if o.Kind == OpCreate || o.Kind == OpMove {
			if t := typeOf(o.Parent); t != nil && !t.container {
				return fmt.Errorf("%w: %v op %d.%d places an element inside a %s", ErrInvalid, o.Kind, o.ID.Replica, o.ID.Seq, t.name)
			}
		}
	}
	return nil
}

// checkProps checks property writes against the schema and, when the
// element's type is known, against the properties that type allows.
func (d *Doc) checkProps(o *Op, t *typeInfo) error {
	for _, p := range o.Props {
		k, ok := d.schema.propIndex[p.Key]
		if !ok {
			return fmt.Errorf("%w: %v op %d.%d: unknown property %q", ErrInvalid, o.Kind, o.ID.Replica, o.ID.Seq, p.Key)
		}
		if t != nil && !t.allowed[k] {
			return fmt.Errorf("%w: %v op %d.%d: type %s has no property %q", ErrInvalid, o.Kind, o.ID.Replica, o.ID.Seq, t.name, p.Key)
		}
		if err := d.schema.checkIndexed(k, p.Value); err != nil {
			return fmt.Errorf("%v op %d.%d: %w", o.Kind, o.ID.Replica, o.ID.Seq, err)
		}
	}
	return nil
}

// covered reports whether every sequence number of o has been applied.
func (d *Doc) covered(o *Op) bool { return o.last() <= d.vv[o.ID.Replica] }

// missing returns a dependency of o that has not been applied yet: the
// previous sequence number of its replica, an element it names, or a
// character a text op names.
func (d *Doc) missing(o *Op) (ID, bool) {
	if o.ID.Seq > 1 && d.vv[o.ID.Replica] < o.ID.Seq-1 {
		return ID{Replica: o.ID.Replica, Seq: o.ID.Seq - 1}, true
	}
	switch o.Kind {
	case OpSet, OpDelete, OpRestore, OpMove:
		if !d.vv.Contains(o.Elem) {
			return o.Elem, true
		}
	case OpTextInsert, OpTextDelete:
		if !d.vv.Contains(o.Elem) {
			return o.Elem, true
		}
		return d.textDeps(o)
	case OpCollect:
		for _, r := range sortedReplicas(o.Horizon) {
			if id := (ID{Replica: r, Seq: o.Horizon[r]}); !d.vv.Contains(id) {
				return id, true
			}
		}
	}
	if (o.Kind == OpCreate || o.Kind == OpMove) && o.Parent != Root && !d.vv.Contains(o.Parent) {
		return o.Parent, true
	}
	for _, p := range o.Props {
		if p.Value.k == KindRef && !d.vv.Contains(p.Value.Ref()) {
			return p.Value.Ref(), true
		}
	}
	return ID{}, false
}

// receive applies o, or holds a copy of it pending until its dependencies
// are applied, then applies whatever pending operations that unblocks.
func (d *Doc) receive(o *Op) {
	if d.covered(o) {
		return
	}
	if p := d.pending[o.ID]; p != nil {
		// The same op again, or one that starts with the same id and takes
		// more sequence numbers: DiffSince sends a replica's consecutive
		// text inserts typed as one run as one insert. That one holds the
		// same characters and more, with the same dependencies, so it
		// replaces the pending one (in place: the waiters point at it).
		if o.last() > p.last() {
			*p = cloneOp(o)
		}
		return
	}
	if dep, ok := d.missing(o); ok {
		d.hold(o, dep)
		return
	}
	d.applyOp(o)
	if len(d.waiting) == 0 {
		return
	}
	queue := d.wake(o.ID.Replica, nil)
	for len(queue) > 0 {
		o := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		if d.covered(o) {
			delete(d.pending, o.ID)
			continue
		}
		if dep, ok := d.missing(o); ok {
			d.waiting[dep.Replica] = append(d.waiting[dep.Replica], waiter{seq: dep.Seq, op: o})
			continue
		}
		delete(d.pending, o.ID)
		d.applyOp(o)
		queue = d.wake(o.ID.Replica, queue)
	}
}

// hold keeps a copy of o pending until dep is applied.
func (d *Doc) hold(o *Op, dep ID) {
	c := cloneOp(o)
	d.pending[c.ID] = &c
	d.waiting[dep.Replica] = append(d.waiting[dep.Replica], waiter{seq: dep.Seq, op: &c})
}

// cloneOp copies o and the slices and maps it holds, which may belong to
// the caller's update.
func cloneOp(o *Op) Op {
	c := *o
	c.Props, c.Drop, c.Horizon = slices.Clone(o.Props), slices.Clone(o.Drop), o.Horizon.Clone()
	c.Text.Spans = slices.Clone(o.Text.Spans)
	return c
}

// wake moves the pending ops waiting on replica r that its version now
// satisfies onto queue.
func (d *Doc) wake(r ReplicaID, queue []*Op) []*Op {
	ws := d.waiting[r]
	if len(ws) == 0 {
		return queue
	}
	keep := ws[:0]
	for _, w := range ws {
		if w.seq <= d.vv[r] {
			queue = append(queue, w.op)
		} else {
			keep = append(keep, w)
		}
	}
	if len(keep) == 0 {
		delete(d.waiting, r)
	} else {
		d.waiting[r] = keep
	}
	return queue
}

// applyOp applies an operation whose dependencies are all applied.
func (d *Doc) applyOp(o *Op) {
	d.vv[o.ID.Replica] = o.last()
	if o.Counter > d.clock {
		d.clock = o.Counter
	}
	switch o.Kind {
	case OpCreate:
		d.applyCreate(o)
	case OpSet:
		if e := d.elems[o.Elem]; e != nil {
			d.applySet(e, o.Props, o.Counter, o.ID)
		}
	case OpDelete, OpRestore:
		if e := d.elems[o.Elem]; e != nil {
			m := delMark{counter: o.Counter, id: o.ID, deleted: o.Kind == OpDelete}
			i := len(e.del)
			for i > 0 && after(e.del[i-1].counter, e.del[i-1].id, m.counter, m.id) {
				i--
			}
			e.del = slices.Insert(e.del, i, m)
		}
	case OpMove:
		e := d.elems[o.Elem]
		if e == nil || d.absent(o.Parent) {
			return
		}
		if p := d.elems[o.Parent]; p != nil && !p.typ.container {
			return
		}
		d.insertMove(&moveRec{id: o.ID, counter: o.Counter, elem: o.Elem, parent: o.Parent, key: o.Key})
	case OpCollect:
		d.applyCollect(o)
	case OpTextInsert, OpTextDelete:
		d.applyText(o)
	case OpSkip:
	}
}

func (d *Doc) applyCreate(o *Op) {
	if d.elems[o.ID] != nil || d.absent(o.Parent) {
		return
	}
	if p := d.elems[o.Parent]; p != nil && !p.typ.container {
		return
	}
	e := &element{id: o.ID, counter: o.Counter, typ: d.schema.types[o.Type], parent: o.Parent, key: o.Key, placed: o.ID}
	e.props = make([]prop, 0, len(o.Props))
	d.applySet(e, o.Props, o.Counter, o.ID)
	d.elems[o.ID] = e
	d.attach(e)
}

// applySet writes each property whose register holds an older write.
// Properties the element's type does not allow are ignored.
func (d *Doc) applySet(e *element, ps []Prop, counter uint64, id ID) {
	for _, p := range ps {
		k := d.schema.propIndex[p.Key]
		if !e.typ.allowed[k] {
			continue
		}
		i, found := e.find(k)
		if !found {
			e.props = slices.Insert(e.props, i, prop{key: k})
		} else if !after(counter, id, e.props[i].counter, e.props[i].id) {
			continue
		}
		e.props[i].write(p.Value, counter, id)
	}
}
