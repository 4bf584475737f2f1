package crdt

import (
	"cmp"
	"slices"
)

// DiffSince returns the update that brings a replica at version v up to
// date with this document: applied to a replica that has applied v, it gives
// that replica everything this one has applied. It is built from the current
// state: for each register only the winning write is sent, and the sequence
// numbers of writes that lost are covered by OpSkip runs, so the receiver's
// version vector still advances past them. Text properties send the
// characters and deletes v lacks (see [Text.DiffSince]). Pending operations
// are not included.
//
// It returns [ErrSnapshotRequired] if v does not cover this document's
// collection horizon.
func (d *Doc) DiffSince(v VersionVector) ([]byte, error) {
	u, err := d.diff(v)
	if err != nil {
		return nil, err
	}
	return u.Encode(), nil
}

func (d *Doc) diff(v VersionVector) (*Update, error) {
	if !v.Covers(d.horizon) {
		return nil, ErrSnapshotRequired
	}
	var ops []Op
	// The first logged move of an element recorded where its create put it.
	first := map[ID]*moveRec{}
	for _, m := range d.log {
		if first[m.elem] == nil {
			first[m.elem] = m
		}
		if !v.Contains(m.id) {
			ops = append(ops, Op{Kind: OpMove, ID: m.id, Counter: m.counter, Elem: m.elem, Parent: m.parent, Key: m.key})
		}
	}
	for _, e := range d.elems {
		var sets []Op // one per writing op, in order of first property
		for i := range e.props {
			p := &e.props[i]
			if v.Contains(p.id) || p.id == e.id {
				continue
			}
			j := slices.IndexFunc(sets, func(o Op) bool { return o.ID == p.id })
			if j < 0 {
				j = len(sets)
				sets = append(sets, Op{Kind: OpSet, ID: p.id, Counter: p.counter, Elem: e.id})
			}
			sets[j].Props = append(sets[j].Props, Prop{Key: d.schema.propNames[p.key], Value: p.value()})
		}
		ops = append(ops, sets...)
		ops = d.textDiff(ops, e, v)
		for _, m := range e.del {
			if !v.Contains(m.id) {
				kind := OpRestore
				if m.deleted {
					kind = OpDelete
				}
				ops = append(ops, Op{Kind: kind, ID: m.id, Counter: m.counter, Elem: e.id})
			}
		}
		if v.Contains(e.id) {
			continue
		}
		c := Op{Kind: OpCreate, ID: e.id, Counter: e.counter, Elem: e.id, Type: e.typ.name, Parent: e.parent, Key: e.key}
		if m := first[e.id]; m != nil {
			c.Parent, c.Key = m.oldParent, m.oldKey
		}
		for i := range e.props {
			if p := &e.props[i]; p.id == e.id {
				c.Props = append(c.Props, Prop{Key: d.schema.propNames[p.key], Value: p.value()})
			}
		}
		ops = append(ops, c)
	}
	for _, c := range d.collects {
		if !v.Contains(c.ID) {
			ops = append(ops, *c)
		}
	}
	return &Update{Ops: withSkips(ops, v, d.vv)}, nil
}

// withSkips sorts ops by id and fills every gap between from and to with
// OpSkip runs. Every op's id is in to (the document applied it).
func withSkips(ops []Op, from, to VersionVector) []Op {
	slices.SortFunc(ops, func(a, b Op) int { return cmpID(a.ID, b.ID) })
	out := make([]Op, 0, len(ops)+len(to))
	i := 0
	for _, r := range sortedReplicas(to) {
		next := from[r] + 1
		for ; i < len(ops) && ops[i].ID.Replica == r; i++ {
			o := ops[i]
			if o.ID.Seq > next {
				out = append(out, Op{Kind: OpSkip, ID: ID{Replica: r, Seq: next}, Len: o.ID.Seq - next})
			}
			out = append(out, o)
			next = o.last() + 1
		}
		if to[r] >= next {
			out = append(out, Op{Kind: OpSkip, ID: ID{Replica: r, Seq: next}, Len: to[r] - next + 1})
		}
	}
	return out
}

// Merge brings into d everything o has applied: it applies
// o.DiffSince(d.Version()). The two documents must use compatible schemas;
// o is not changed. It returns [ErrSnapshotRequired] if o has garbage
// collected operations d lacks, and the errors of [Doc.Apply].
func (d *Doc) Merge(o *Doc) error {
	u, err := o.diff(d.vv)
	if err != nil {
		return err
	}
	return d.ApplyUpdate(u)
}

// MergeUpdates merges encoded updates into one, in canonical order (by op
// id), with operations that appear in more than one update kept once.
// Applying the result equals applying every input. Ops with the same id are
// assumed to be the same op, as they are when made by this package, except
// that a text insert from [Doc.DiffSince] may continue past the insert of
// the same id as typed (consecutive inserts merged into one run): of ops
// with one id the one that takes the most sequence numbers is kept, and of
// those the first. It returns the first decoding error (wrapping
// [ErrInvalid]).
func MergeUpdates(updates ...[]byte) ([]byte, error) {
	var ops []Op
	for _, b := range updates {
		u, err := DecodeUpdate(b)
		if err != nil {
			return nil, err
		}
		ops = append(ops, u.Ops...)
	}
	slices.SortStableFunc(ops, func(a, b Op) int {
		if c := cmpID(a.ID, b.ID); c != 0 {
			return c
		}
		return cmp.Compare(b.Span(), a.Span())
	})
	ops = slices.CompactFunc(ops, func(a, b Op) bool { return a.ID == b.ID })
	return (&Update{Ops: ops}).Encode(), nil
}
