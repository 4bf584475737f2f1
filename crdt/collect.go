package crdt

import "slices"

// applyCollect garbage-collects below the horizon of a collect op. Its result
// depends only on the ops in the horizon (which every replica applying it
// has) and on the ops outside it, so replicas that apply the same ops reach
// the same state whether they got them before or after the collect:
//
//  1. The moves not in the horizon are undone, so the tree is as the horizon
//     left it (with elements created since at their initial place).
//  2. Every element whose delete register, restricted to ops in the horizon,
//     says deleted is dropped with all its descendants in that tree.
//  3. The moves in the horizon leave the log; the other moves, less those of
//     or into dropped elements, are redone.
//  4. Delete registers keep only the entry that won in the horizon and the
//     entries outside it.
//
// Ops that arrive later for dropped elements find them absent and change
// nothing, which is what the replicas that applied them earlier ended with.
func (d *Doc) applyCollect(o *Op) {
	h := o.Horizon
	i := 0
	for i < len(d.log) && h.Contains(d.log[i].id) {
		i++
	}
	for j := len(d.log) - 1; j >= i; j-- {
		d.undoMove(d.log[j])
	}
	rest := d.log[i:]

	gone := map[ID]bool{}
	var stack []*element
	for _, e := range d.elems {
		if deletedWithin(e, h) {
			stack = append(stack, e)
		}
	}
	for len(stack) > 0 {
		e := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if gone[e.id] {
			continue
		}
		gone[e.id] = true
		stack = append(stack, d.kids[e.id]...)
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

	d.horizon.Merge(h)
	d.collects = append(d.collects, o)
	d.collects = slices.DeleteFunc(d.collects, func(c *Op) bool { return d.horizon.Contains(c.ID) })
}

// deletedWithin reports whether the last delete or restore of e within h is
// a delete.
func deletedWithin(e *element, h VersionVector) bool {
	for j := len(e.del) - 1; j >= 0; j-- {
		if h.Contains(e.del[j].id) {
			return e.del[j].deleted
		}
	}
	return false
}
