package crdt

import "slices"

// applyCollect garbage-collects below the horizon h of a collect op, once
// every op in h is applied. Its result depends only on the ops in h, the op's
// drop list, and the ops outside h, never on which of those arrived before
// the collect, so replicas that apply the same ops reach the same state:
//
//  1. The move log is rebased: the moves in h are replayed alone, in stamp
//     order, onto the previous base; that tree is the new base, and those
//     moves leave the log. Moves outside h (made concurrently with some of
//     h, or later) now come after every move of h.
//  2. The elements of the drop list are removed with all their descendants
//     in the base tree (including elements created outside h inside them).
//  3. The other moves, less those of or into removed elements, are redone
//     on the base.
//  4. Delete registers keep only the entry that won in h and the entries
//     outside h, which decide the same winner.
//  5. Every text property drops the content of the characters a delete in
//     h removed (see [Text.Collect]); their tombstones stay.
//
// Ops that arrive later for removed elements find them absent and change
// nothing, which is what the replicas that applied them earlier end with: an
// edit or restore that races a collect loses.
func (d *Doc) applyCollect(o *Op) {
	h := o.Horizon
	for j := len(d.log) - 1; j >= 0; j-- {
		d.undoMove(d.log[j])
	}
	var rest []*moveRec
	for _, m := range d.log {
		if h.Contains(m.id) {
			d.do(m)
		} else {
			rest = append(rest, m)
		}
	}

	gone := map[ID]bool{}
	var stack []*element
	for _, id := range o.Drop {
		if e := d.elems[id]; e != nil {
			stack = append(stack, e)
		}
	}
	for len(stack) > 0 {
		e := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if !gone[e.id] {
			gone[e.id] = true
			stack = append(stack, d.kids[e.id]...)
		}
	}
	for id := range gone {
		d.detach(d.elems[id])
	}
	for id := range gone {
		delete(d.elems, id)
		delete(d.kids, id)
	}

	d.log = nil
	for _, m := range rest {
		if !gone[m.elem] && !gone[m.parent] {
			d.log = append(d.log, m)
			d.do(m)
		}
	}

	for _, e := range d.elems {
		if len(e.del) == 0 {
			continue
		}
		var win delMark
		for _, m := range e.del {
			if h.Contains(m.id) {
				win = m
			}
		}
		e.del = slices.DeleteFunc(e.del, func(m delMark) bool { return h.Contains(m.id) && m != win })
		if len(e.del) == 0 {
			e.del = nil
		}
	}
	for _, e := range d.elems {
		for _, tp := range e.texts {
			tp.t.Collect(h)
		}
	}

	d.horizon.Merge(h)
	c := *o // o may belong to the caller's update
	c.Horizon, c.Drop = h.Clone(), slices.Clone(o.Drop)
	i, _ := slices.BinarySearchFunc(d.collects, &c, func(a, b *Op) int { return cmpID(a.ID, b.ID) })
	d.collects = slices.Insert(d.collects, i, &c)
	d.collects = slices.DeleteFunc(d.collects, func(c *Op) bool { return d.horizon.Contains(c.ID) })
}

// collectable returns, sorted, the elements a collect at horizon h drops:
// those deleted by a delete in h that is still the winning mark.
func (d *Doc) collectable(h VersionVector) []ID {
	var out []ID
	for _, e := range d.elems {
		if e.deleted() && h.Contains(e.delWinner()) {
			out = append(out, e.id)
		}
	}
	slices.SortFunc(out, cmpID)
	return out
}
