package crdt

import (
	"fmt"
	"strings"
)

// dump renders a document's state as text, one line per element, mark and
// logged move, to show where two replicas differ.
func dump(d *Doc) string {
	var b strings.Builder
	fmt.Fprintf(&b, "clock %d vv %v horizon %v\n", d.clock, d.vv, d.horizon)
	for _, e := range d.sortedElems() {
		fmt.Fprintf(&b, "elem %v c%d %s parent %v key %s placed %v del %v\n", e.id, e.counter, e.typ.name, e.parent, e.key, e.placed, e.del)
		for _, p := range e.props {
			fmt.Fprintf(&b, "  %s = %v @%d/%v\n", d.schema.propNames[p.key], p.value(), p.counter, p.id)
		}
	}
	for _, m := range d.log {
		fmt.Fprintf(&b, "move %v c%d %v -> %v %s (old %v %s %v) applied %v\n", m.id, m.counter, m.elem, m.parent, m.key, m.oldParent, m.oldKey, m.oldPlaced, m.applied)
	}
	for _, c := range d.collects {
		fmt.Fprintf(&b, "collect %v h %v drop %v\n", c.ID, c.Horizon, c.Drop)
	}
	return b.String()
}

// firstDiff returns the first differing lines of two dumps.
func firstDiff(a, b string) string {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(la) || i < len(lb); i++ {
		var x, y string
		if i < len(la) {
			x = la[i]
		}
		if i < len(lb) {
			y = lb[i]
		}
		if x != y {
			return fmt.Sprintf("line %d:\n  %s\n  %s", i, x, y)
		}
	}
	return "no difference"
}
