package crdt

import "slices"

// Undo and redo are per replica (one local user) and produce new forward
// operations, sent like any edit. Each step remembers the op it reverses, and
// is only taken if that op still decides the state it changed: undoing my
// change never overwrites a newer change by someone else.
//
// An op emitted by undo or redo restores the state some earlier op decided;
// it is recorded as an alias of that op (per property, or for the delete
// register, or for the placement), so that undoing twice in a row, or
// redoing, still recognises the state as this replica's own.

// undoStep reverses one op of a local edit.
type undoStep struct {
	kind   OpKind // the op to emit: OpSet, OpDelete, OpRestore or OpMove; or the text op to invert
	elem   ID
	props  []Prop // OpSet: the values to write back
	parent ID     // OpMove: where to put the element back
	key    string
	expect ID   // the op being reversed, which must still be the winner
	was    []ID // the op that decided the state the step restores (per prop for OpSet)

	textKey uint16 // OpTextInsert, OpTextDelete: the text property
	text    TextOp // and the text op to invert (Text.Invert)
}

// Alias slots: a property index, or one of these.
const (
	slotDel   = 1 << 16 // the delete register
	slotPlace = slotDel + 1
)

type aliasKey struct {
	id   ID
	slot uint32
}

// setAlias records that op id, in slot, stands for the op was.
func (d *Doc) setAlias(id ID, slot uint32, was ID) {
	if d.alias == nil {
		d.alias = map[aliasKey]ID{}
	}
	d.alias[aliasKey{id, slot}] = was
}

// origin follows aliases from id to the op it stands for.
func (d *Doc) origin(id ID, slot uint32) ID {
	for range len(d.alias) + 1 {
		was, ok := d.alias[aliasKey{id, slot}]
		if !ok {
			return id
		}
		id = was
	}
	return id
}

// same reports whether the op deciding a slot now stands for the expected one.
func (d *Doc) same(current, expect ID, slot uint32) bool {
	return d.origin(current, slot) == d.origin(expect, slot)
}

// delDecider returns the op that decides whether e is deleted: its latest
// delete or restore, or its create.
func (d *Doc) delDecider(e *element) ID {
	if w := e.delWinner(); w != (ID{}) {
		return w
	}
	return e.id
}

// undoEntry reverses one local edit; its steps are taken last to first.
type undoEntry []undoStep

// Undo reverses this replica's latest edit that still changes something and
// returns the update. At least the last 1000 edits can be undone. Steps whose effect someone else has since overwritten
// (a property written again, the element moved, deleted or restored again,
// or garbage collected) are left out; an edit with nothing left is dropped
// and the one before it is tried. It returns [ErrNothingToUndo] when no edit
// is left.
func (d *Doc) Undo() ([]byte, error) {
	b, ok := d.replay(&d.undo, &d.redo)
	if !ok {
		return nil, ErrNothingToUndo
	}
	return b, nil
}

// Redo reverses the latest [Doc.Undo], under the same rule, and returns the
// update. A new local edit clears what can be redone. It returns
// [ErrNothingToRedo] when nothing is left.
func (d *Doc) Redo() ([]byte, error) {
	b, ok := d.replay(&d.redo, &d.undo)
	if !ok {
		return nil, ErrNothingToRedo
	}
	return b, nil
}

// replay pops entries from src until one emits ops, and pushes that one's
// inverse onto dst.
func (d *Doc) replay(src, dst *[]undoEntry) ([]byte, bool) {
	for len(*src) > 0 {
		entry := (*src)[len(*src)-1]
		*src = (*src)[:len(*src)-1]
		var ed edit
		for i := len(entry) - 1; i >= 0; i-- {
			d.takeStep(&ed, &entry[i])
		}
		if len(ed.ops) > 0 {
			*dst = append(*dst, undoEntry(ed.steps))
			return (&Update{Ops: ed.ops}).Encode(), true
		}
	}
	return nil, false
}

func (d *Doc) takeStep(ed *edit, s *undoStep) {
	e := d.elems[s.elem]
	if e == nil {
		return
	}
	switch s.kind {
	case OpSet:
		if !d.Live(e.id) {
			return
		}
		var ps []Prop
		for _, p := range s.props {
			k := d.schema.propIndex[p.Key]
			if i, ok := e.find(k); ok && d.same(e.props[i].id, s.expect, uint32(k)) {
				if p.Value.k == KindRef && d.elems[p.Value.Ref()] == nil {
					continue // the old target was collected
				}
				ps = append(ps, p)
			}
		}
		if len(ps) > 0 {
			d.emitSet(ed, e, ps, s)
		}
	case OpDelete, OpRestore:
		if d.same(d.delDecider(e), s.expect, slotDel) && e.deleted() == (s.kind == OpRestore) {
			d.emitDelMark(ed, e, s.kind, s)
		}
	case OpMove:
		if !d.same(e.placed, s.expect, slotPlace) || !d.Live(e.id) || d.absent(s.parent) || d.isAncestor(e.id, s.parent) {
			return
		}
		d.emitMove(ed, e, s.parent, s.key, s)
	case OpTextInsert, OpTextDelete:
		// As Text.Invert: reversing an insert deletes its characters that
		// are still visible, reversing a delete inserts the deleted ones
		// again next to their tombstones, so it never undoes someone else's
		// edit. The error (the deleted content was collected) leaves
		// nothing to do.
		t := e.text(s.textKey)
		if t == nil || !d.Live(e.id) {
			return
		}
		var ops []TextOp
		var err error
		id := d.nextID()
		if s.kind == OpTextInsert {
			ops, err = t.deleteVisible(id, d.standIns(e.id, s.textKey, TextSpan{Start: s.text.ID, Len: s.text.runes()}))
		} else {
			var restored []TextSpan
			ops, restored, err = t.restore(id, s.text.Spans)
			for _, r := range restored {
				d.textAliases = append(d.textAliases, textAlias{elem: e.id, key: s.textKey, from: r.Start, to: id, n: r.Len})
				id.Seq += r.Len
			}
			if len(d.textAliases) > 4*maxUndo {
				d.textAliases = slices.Clone(d.textAliases[len(d.textAliases)-2*maxUndo:])
			}
		}
		if err != nil {
			return
		}
		for _, op := range ops {
			d.emitText(ed, e, s.textKey, t, op)
		}
	}
}

// textAlias records that undo or redo restored deleted text: the n new
// characters from to stand for the characters from from. Reversing an
// insert then deletes them along with what is left of the insert itself, so
// "type, delete part of it, undo, undo" leaves nothing.
type textAlias struct {
	elem     ID
	key      uint16
	from, to ID
	n        uint64
}

// standIns returns the characters of span s of a text and, transitively,
// the characters that undo or redo restored in their place.
func (d *Doc) standIns(elem ID, key uint16, s TextSpan) []TextSpan {
	var out []TextSpan
	queue := []TextSpan{s}
	for len(queue) > 0 {
		s := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		out = append(out, s)
		// New characters are newer than those they restore, so this ends.
		for _, a := range d.textAliases {
			if a.elem != elem || a.key != key || a.from.Replica != s.Start.Replica {
				continue
			}
			lo, hi := max(a.from.Seq, s.Start.Seq), min(a.from.Seq+a.n, s.Start.Seq+s.Len)
			if lo < hi {
				queue = append(queue, TextSpan{Start: ID{Replica: a.to.Replica, Seq: a.to.Seq + lo - a.from.Seq}, Len: hi - lo})
			}
		}
	}
	return out
}
