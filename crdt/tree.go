package crdt

import (
	"slices"
	"strings"
)

// The tree. Every element has one parent (the root, or a container element)
// and a z-order key among its siblings. Placement changes only by move
// operations, kept in a log ordered by stamp, as in Kleppmann et al., "A
// highly-available move operation for replicated trees" (2021): a move that
// arrives out of stamp order is applied by undoing the later moves, doing it,
// and redoing them. A move that would put an element inside itself is
// skipped, but stays in the log, because an earlier move arriving later may
// make it valid. Every replica thus applies the same moves in the same order
// and gets the same tree, which never has a cycle.
//
// A create is not in the log: it places a new element, which cannot have
// descendants at any earlier stamp, so it never needs undoing.

// moveRec is one move in the log, with what it replaced so it can be undone.
type moveRec struct {
	id        ID
	counter   uint64
	elem      ID
	parent    ID
	key       string
	oldParent ID
	oldKey    string
	oldPlaced ID
	applied   bool // false if skipped because it would have made a cycle
}

// cmpSibling orders siblings by key, then id.
func cmpSibling(a, b *element) int {
	if c := strings.Compare(a.key, b.key); c != 0 {
		return c
	}
	return cmpID(a.id, b.id)
}

// attach inserts e among the children of e.parent.
func (d *Doc) attach(e *element) {
	ks := d.kids[e.parent]
	i, _ := slices.BinarySearchFunc(ks, e, cmpSibling)
	d.kids[e.parent] = slices.Insert(ks, i, e)
}

// detach removes e from the children of e.parent.
func (d *Doc) detach(e *element) {
	ks := d.kids[e.parent]
	i, found := slices.BinarySearchFunc(ks, e, cmpSibling)
	if !found {
		panic("crdt: tree index out of sync")
	}
	ks = slices.Delete(ks, i, i+1)
	if len(ks) == 0 {
		delete(d.kids, e.parent)
	} else {
		d.kids[e.parent] = ks
	}
}

func (d *Doc) place(e *element, parent ID, key string, placed ID) {
	if e.parent == parent && e.key == key {
		e.placed = placed
		return
	}
	d.detach(e)
	e.parent, e.key, e.placed = parent, key, placed
	d.attach(e)
}

// ancestry walks from id up to the root, calling visit with each element
// on the way (id's first). It reports whether it reached the root: it stops
// early if visit returns false or an element is missing, and is bounded so
// that a corrupt tree cannot make it loop.
func (d *Doc) ancestry(id ID, visit func(*element) bool) bool {
	for range len(d.elems) + 1 {
		if id == Root {
			return true
		}
		e := d.elems[id]
		if e == nil || !visit(e) {
			return false
		}
		id = e.parent
	}
	return false
}

// isAncestor reports whether a is x or an ancestor of x.
func (d *Doc) isAncestor(a, x ID) bool {
	found := false
	d.ancestry(x, func(e *element) bool {
		found = e.id == a
		return !found
	})
	return found
}

// do applies a logged move to the current tree, recording what it replaces.
func (d *Doc) do(m *moveRec) {
	e := d.elems[m.elem]
	m.oldParent, m.oldKey, m.oldPlaced = e.parent, e.key, e.placed
	m.applied = !d.isAncestor(m.elem, m.parent)
	if m.applied {
		d.place(e, m.parent, m.key, m.id)
	}
}

// undo reverts a logged move.
func (d *Doc) undoMove(m *moveRec) {
	if m.applied {
		d.place(d.elems[m.elem], m.oldParent, m.oldKey, m.oldPlaced)
	}
}

func (m *moveRec) before(o *moveRec) bool { return after(o.counter, o.id, m.counter, m.id) }

// insertMove adds a move to the log at its stamp position, undoing and
// redoing the moves stamped after it.
func (d *Doc) insertMove(m *moveRec) {
	i := len(d.log)
	for i > 0 && m.before(d.log[i-1]) {
		i--
	}
	for j := len(d.log) - 1; j >= i; j-- {
		d.undoMove(d.log[j])
	}
	d.log = slices.Insert(d.log, i, m)
	for _, r := range d.log[i:] {
		d.do(r)
	}
}
