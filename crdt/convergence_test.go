package crdt

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

// The convergence harness: several replicas make random edits of every kind
// (creates, sets, deletes, restores, moves that race to form cycles,
// reorders, typing and deleting in text properties, undo, redo, garbage
// collection), and a simulated network
// delivers their updates in random order, duplicated, delayed, merged, or
// lost (lost updates are recovered by DiffSince anti-entropy). After every
// step the tree invariants hold on every replica; at the end every replica
// has the same version, the same tree and the same snapshot bytes.

type network struct {
	rng  *rand.Rand
	docs []*Doc
	msgs []netMsg
	// acks are sets of versions all replicas had at one moment; a replica
	// that has applied all of one may collect with it.
	acks [][]VersionVector
	log  []string // what happened, for failure reports
	sent [][]byte // every update broadcast, for fuzz seeds
}

type netMsg struct {
	to   int
	data []byte
}

func newNetwork(seed uint64, replicas int) *network {
	n := &network{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	for i := range replicas {
		n.docs = append(n.docs, NewDoc(ReplicaID(i+1), nil))
	}
	return n
}

func (n *network) broadcast(from int, data []byte) {
	if data == nil {
		return
	}
	n.sent = append(n.sent, data)
	for to := range n.docs {
		if to == from {
			continue
		}
		switch x := n.rng.IntN(100 + textSteps); {
		case x < 4: // lost; anti-entropy recovers it
		case x < 14: // duplicated
			n.msgs = append(n.msgs, netMsg{to, data}, netMsg{to, data})
		default:
			n.msgs = append(n.msgs, netMsg{to, data})
		}
	}
}

// deliver applies one random in-flight message.
func (n *network) deliver(t testing.TB) {
	if len(n.msgs) == 0 {
		return
	}
	i := n.rng.IntN(len(n.msgs))
	m := n.msgs[i]
	n.msgs = slices.Delete(n.msgs, i, i+1)
	if err := n.docs[m.to].Apply(m.data); err != nil {
		t.Fatalf("replica %d rejected an update: %v", m.to+1, err)
	}
}

// mergeSome merges a few messages to one replica into one.
func (n *network) mergeSome(t testing.TB) {
	to := n.rng.IntN(len(n.docs))
	var parts [][]byte
	keep := n.msgs[:0]
	for _, m := range n.msgs {
		if m.to == to && len(parts) < 4 && n.rng.IntN(2) == 0 {
			parts = append(parts, m.data)
		} else {
			keep = append(keep, m)
		}
	}
	n.msgs = keep
	if len(parts) == 0 {
		return
	}
	merged, err := MergeUpdates(parts...)
	if err != nil {
		t.Fatalf("MergeUpdates: %v", err)
	}
	n.msgs = append(n.msgs, netMsg{to, merged})
}

func (n *network) sync(t testing.TB, i, j int) {
	diff, err := n.docs[j].DiffSince(n.docs[i].Version())
	if err != nil {
		t.Fatalf("DiffSince from %d to %d: %v", j+1, i+1, err)
	}
	if err := n.docs[i].Apply(diff); err != nil {
		t.Fatalf("applying the diff from %d to %d: %v", j+1, i+1, err)
	}
}

func (n *network) pick(ids []ID) (ID, bool) {
	if len(ids) == 0 {
		return ID{}, false
	}
	return ids[n.rng.IntN(len(ids))], true
}

// elements returns the elements of d that match keep, sorted by id.
func elements(d *Doc, keep func(*element) bool) []ID {
	var out []ID
	for _, e := range d.sortedElems() {
		if keep(e) {
			out = append(out, e.id)
		}
	}
	return out
}

var simTypes = []string{"rect", "ellipse", "text", "sticky", "line", "arrow", "connector", "frame", "frame", "group"}

func (n *network) randomProps(d *Doc, t *typeInfo, max int) Props {
	ps := Props{}
	names := slices.DeleteFunc(slices.Clone(t.names), func(name string) bool {
		return d.schema.props[d.schema.propIndex[name]].Kind == KindText // edited by text ops, not written
	})
	for range 1 + n.rng.IntN(max) {
		name := names[n.rng.IntN(len(names))]
		spec := d.schema.props[d.schema.propIndex[name]]
		switch spec.Kind {
		case KindNumber:
			lo, hi := spec.Min, spec.Max
			ps[name] = Number(lo + float64(n.rng.IntN(1000))/1000*(hi-lo))
			if n.rng.IntN(3) == 0 {
				ps[name] = Number(lo + float64(n.rng.IntN(int(min(hi-lo, 1000))+1)))
			}
		case KindString:
			switch {
			case len(spec.Enum) > 0:
				ps[name] = String(spec.Enum[n.rng.IntN(len(spec.Enum))])
			case spec.Color:
				ps[name] = String(fmt.Sprintf("#%06x", n.rng.IntN(1<<24)))
			default:
				ps[name] = String(fmt.Sprintf("s%d", n.rng.IntN(100)))
			}
		case KindBool:
			ps[name] = Bool(n.rng.IntN(2) == 0)
		case KindPoints:
			ps[name] = Points(float64(n.rng.IntN(10)), float64(n.rng.IntN(10)), 3.5, -1)
		case KindRef:
			if id, ok := n.pick(elements(d, func(e *element) bool { return true })); ok {
				ps[name] = Ref(id)
			}
		}
		if n.rng.IntN(20) == 0 && len(ps) > 0 {
			ps[name] = Null
		}
	}
	return ps
}

// step makes one random edit, delivery or sync.
func (n *network) step(t testing.TB) {
	i := n.rng.IntN(len(n.docs))
	d := n.docs[i]
	live := elements(d, func(e *element) bool { return d.Live(e.id) })
	containers := elements(d, func(e *element) bool { return d.Live(e.id) && e.typ.container })
	var out []byte
	var err error
	what := ""
	switch x := n.rng.IntN(100 + textSteps); {
	case x < 14:
		what = "create"
		parent := Root
		if p, ok := n.pick(containers); ok && n.rng.IntN(2) == 0 {
			parent = p
		}
		typ := simTypes[n.rng.IntN(len(simTypes))]
		key := ""
		if ks := d.kids[parent]; len(ks) > 0 && n.rng.IntN(2) == 0 {
			key, _ = KeyBetween("", ks[n.rng.IntN(len(ks))].key)
		}
		_, out, err = d.Create(typ, parent, key, n.randomProps(d, d.schema.types[typ], 4))
	case x < 36:
		what = "set"
		if id, ok := n.pick(live); ok {
			out, err = d.Set(id, n.randomProps(d, d.elems[id].typ, 3))
		}
	case x < 41:
		what = "delete"
		if id, ok := n.pick(live); ok {
			out, err = d.Delete(id)
		}
	case x < 45:
		what = "restore"
		if id, ok := n.pick(elements(d, (*element).deleted)); ok {
			out, err = d.Restore(id)
		}
	case x < 55:
		what = "move"
		// Mostly moves between containers, so concurrent moves race to
		// make cycles.
		if id, ok := n.pick(containers); ok && n.rng.IntN(3) > 0 {
			parent := Root
			if p, ok := n.pick(containers); ok && n.rng.IntN(4) > 0 {
				parent = p
			}
			out, err = d.Move(id, parent, "")
		} else if id, ok := n.pick(live); ok {
			parent := Root
			if p, ok := n.pick(containers); ok && n.rng.IntN(2) == 0 {
				parent = p
			}
			out, err = d.Move(id, parent, "")
		}
	case x < 60:
		what = "reorder"
		if id, ok := n.pick(live); ok {
			sib := d.kids[d.elems[id].parent]
			a := sib[n.rng.IntN(len(sib))].key
			b, _ := KeyBetween(a, "")
			var k string
			if k, err = KeyBetween(a, b); err == nil {
				out, err = d.Reorder(id, k)
			}
		}
	case x < 64:
		what = "undo"
		out, err = d.Undo()
	case x < 66:
		what = "redo"
		out, err = d.Redo()
	case x < 68:
		// Only replica 1, the server, collects: collects must be made
		// by one replica at a time (see Doc.Collect).
		what = "collect"
		if i == 0 {
			out, err = n.collect(d)
		}
	case x < 70:
		what = "ack"
		var vs []VersionVector
		for _, o := range n.docs {
			vs = append(vs, o.Version())
		}
		n.acks = append(n.acks, vs)
	case x < 72:
		what = "sync"
		n.sync(t, i, n.rng.IntN(len(n.docs)))
	case x < 74:
		what = "merge"
		n.mergeSome(t)
	case x < 100:
		what = "deliver"
		for range 1 + n.rng.IntN(3) {
			n.deliver(t)
		}
	default:
		what, out, err = n.textStep(i, d, x-100)
	}
	switch {
	case err == nil:
	case errors.Is(err, ErrCycle), errors.Is(err, ErrNothingToUndo), errors.Is(err, ErrNothingToRedo),
		errors.Is(err, ErrDeleted), errors.Is(err, ErrKeyRange):
		// Refused edits are fine: the local state decides what is allowed.
	default:
		t.Fatalf("replica %d %s: %v", i+1, what, err)
	}
	n.log = append(n.log, fmt.Sprintf("%d:%s", i+1, what))
	n.broadcast(i, out)
}

// textSteps is the weight of text edits among the harness's steps (the
// others add up to 100).
const textSteps = 20

// textChars are the characters random text is made of: ASCII, two- to
// four-byte UTF-8, so positions in code points differ from bytes.
var textChars = []rune("abcdefghij klmnop\néü世界😀")

func (n *network) randomText(replica int, max int) string {
	r := make([]rune, 1+n.rng.IntN(max))
	for i := range r {
		r[i] = textChars[n.rng.IntN(len(textChars))]
	}
	r[0] = rune('A' + replica) // who typed it, for failure reports
	return string(r)
}

// textStep makes a random text edit x (0 <= x < textSteps) on replica i:
// typing (one insert, or a run of keystrokes each sent as it is typed),
// deleting, or replacing the whole text, in the "content" of a live element
// that has one. It broadcasts all but the last update, which it returns.
func (n *network) textStep(i int, d *Doc, x int) (string, []byte, error) {
	withText := elements(d, func(e *element) bool {
		k, ok := d.schema.propIndex["content"]
		return ok && e.typ.allowed[k] && d.Live(e.id)
	})
	id, ok := n.pick(withText)
	if !ok {
		return "text", nil, nil
	}
	l := d.TextLen(id, "content")
	switch {
	case x < 9:
		out, err := d.InsertText(id, "content", n.rng.IntN(l+1), n.randomText(i, 6))
		return "type", out, err
	case x < 13:
		// Keystrokes at consecutive positions, each its own update.
		pos := n.rng.IntN(l + 1)
		var out []byte
		for k := range 2 + n.rng.IntN(4) {
			n.broadcast(i, out)
			var err error
			if out, err = d.InsertText(id, "content", pos+k, n.randomText(i, 1)); err != nil {
				return "keys", nil, err
			}
		}
		return "keys", out, nil
	case x < 19:
		if l == 0 {
			return "erase", nil, nil
		}
		k := 1 + n.rng.IntN(min(l, 4))
		out, err := d.DeleteText(id, "content", n.rng.IntN(l-k+1), k)
		return "erase", out, err
	default:
		// A whole-string write: keep a random middle part, add to both ends.
		r := []rune(d.Text(id, "content"))
		a := n.rng.IntN(len(r) + 1)
		b := a + n.rng.IntN(len(r)-a+1)
		s := n.randomText(i, 3) + string(r[a:b]) + n.randomText(i, 2)
		out, err := d.ReplaceText(id, "content", s)
		return "replace", out, err
	}
}

// collect garbage-collects on d below the minimum of the newest set of
// acknowledged versions it has applied, as a server would.
func (n *network) collect(d *Doc) ([]byte, error) {
	for k := len(n.acks) - 1; k >= 0; k-- {
		if h := Min(n.acks[k]...); d.vv.Covers(h) {
			n.acks = n.acks[k+1:]
			return d.Collect(h)
		}
	}
	return nil, nil
}

// settle delivers everything and runs anti-entropy until all replicas agree.
func (n *network) settle(t testing.TB) {
	for len(n.msgs) > 0 {
		n.deliver(t)
	}
	for round := 0; ; round++ {
		for i := range n.docs {
			for j := range n.docs {
				if i != j {
					n.sync(t, i, j)
				}
			}
		}
		same := true
		for _, d := range n.docs[1:] {
			same = same && d.vv.Covers(n.docs[0].vv) && n.docs[0].vv.Covers(d.vv)
		}
		if same {
			return
		}
		if round > 3 {
			t.Fatalf("replicas do not agree after %d anti-entropy rounds", round)
		}
	}
}

// checkTree verifies the tree invariants of d: every element sits exactly
// once among the children of its parent, which is the root or a container;
// following parents always reaches the root (no cycles); siblings are in a
// strict total order; the move log is in strict stamp order.
func checkTree(t testing.TB, d *Doc) {
	t.Helper()
	seen := 0
	for parent, ks := range d.kids {
		if parent != Root && d.elems[parent] == nil {
			t.Fatalf("replica %d: children indexed under missing parent %v", d.replica, parent)
		}
		for i, e := range ks {
			if d.elems[e.id] != e || e.parent != parent {
				t.Fatalf("replica %d: element %v indexed under %v but has parent %v", d.replica, e.id, parent, e.parent)
			}
			if i > 0 && cmpSibling(ks[i-1], e) >= 0 {
				t.Fatalf("replica %d: siblings under %v not strictly ordered", d.replica, parent)
			}
		}
		seen += len(ks)
	}
	if seen != len(d.elems) {
		t.Fatalf("replica %d: %d elements indexed, %d held", d.replica, seen, len(d.elems))
	}
	for id, e := range d.elems {
		if e.parent != Root && !d.elems[e.parent].typ.container {
			t.Fatalf("replica %d: %v inside a non-container", d.replica, id)
		}
		if !d.reachesRoot(id) {
			t.Fatalf("replica %d: %v does not reach the root (cycle)", d.replica, id)
		}
	}
	for i := 1; i < len(d.log); i++ {
		if !d.log[i-1].before(d.log[i]) {
			t.Fatalf("replica %d: move log out of stamp order", d.replica)
		}
	}
	for id, o := range d.pending {
		if d.covered(o) || o.ID != id {
			t.Fatalf("replica %d: pending op %v already applied", d.replica, id)
		}
	}
	for _, e := range d.elems {
		for i, tp := range e.texts {
			if i > 0 && e.texts[i-1].key >= tp.key || !e.typ.allowed[tp.key] || d.schema.props[tp.key].Kind != KindText {
				t.Fatalf("replica %d: element %v: bad text %d", d.replica, e.id, tp.key)
			}
		}
	}
	_ = d.Dangling()
}

// checkNoTextPending checks that no text holds pending ops: text ops of
// honest replicas wait in the document until the characters they name are
// applied. (A forged op naming characters of another text would wait in
// the text, so the fuzz tests do not check this.)
func checkNoTextPending(t testing.TB, d *Doc) {
	for _, e := range d.elems {
		for _, tp := range e.texts {
			if tp.t.Pending() != 0 {
				t.Fatalf("replica %d: the text %d of element %v holds pending ops", d.replica, tp.key, e.id)
			}
		}
	}
}

// runConvergence runs one seeded simulation and checks the outcome.
func runConvergence(t *testing.T, seed uint64, replicas, steps int) {
	n := newNetwork(seed, replicas)
	defer func() {
		if t.Failed() {
			tail := n.log[max(0, len(n.log)-30):]
			t.Logf("seed %d, last steps: %v", seed, tail)
		}
	}()
	for range steps {
		n.step(t)
		for _, d := range n.docs {
			checkTree(t, d)
			checkNoTextPending(t, d)
		}
		n.checkSameVersions(t)
	}
	n.settle(t)
	want := n.docs[0].Snapshot()
	for _, d := range n.docs {
		checkTree(t, d)
		if d.Pending() != 0 {
			t.Fatalf("replica %d still has %d pending ops", d.replica, d.Pending())
		}
		if got := d.Snapshot(); !bytes.Equal(got, want) {
			t.Fatalf("replica %d snapshot differs from replica 1 (%d vs %d bytes)\n%s", d.replica, len(got), len(want), firstDiff(dump(n.docs[0]), dump(d)))
		}
		if !slices.Equal(walk(d, Root), walk(n.docs[0], Root)) {
			t.Fatalf("replica %d tree differs", d.replica)
		}
		for _, e := range n.docs[0].elems {
			a, _ := n.docs[0].Element(e.id)
			b, _ := d.Element(e.id)
			if !maps.Equal(a.Texts, b.Texts) {
				t.Fatalf("replica %d: texts of %v differ: %q vs %q", d.replica, e.id, a.Texts, b.Texts)
			}
		}
	}
	loaded, err := Load(99, nil, want)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	checkTree(t, loaded)
	if !bytes.Equal(loaded.Snapshot(), want) {
		t.Fatalf("snapshot does not survive Load")
	}
	if len(n.docs[0].horizon) == 0 {
		// A fresh replica rebuilt from the full diff matches too.
		fresh := NewDoc(98, nil)
		if err := fresh.Merge(n.docs[0]); err != nil {
			t.Fatalf("Merge into a fresh doc: %v", err)
		}
		if !bytes.Equal(fresh.Snapshot(), want) {
			t.Fatalf("a fresh replica merged from scratch differs")
		}
	}
}

// checkSameVersions checks that replicas that have applied the same ops
// (equal versions, nothing pending) have the same state, at any moment, not
// only at the end: a difference that a later op would hide shows here.
func (n *network) checkSameVersions(t *testing.T) {
	for i, a := range n.docs {
		for _, b := range n.docs[i+1:] {
			if a.Pending() != 0 || b.Pending() != 0 || !maps.Equal(a.vv, b.vv) {
				continue
			}
			if sa, sb := a.Snapshot(), b.Snapshot(); !bytes.Equal(sa, sb) {
				t.Fatalf("replicas %d and %d applied the same ops but differ\n%s", a.replica, b.replica, firstDiff(dump(a), dump(b)))
			}
		}
	}
}

// walk lists the live tree depth first, in z-order.
func walk(d *Doc, parent ID) []ID {
	var out []ID
	for _, c := range d.Children(parent) {
		out = append(out, c)
		out = append(out, walk(d, c)...)
	}
	return out
}

// regressionSeeds are runs that once failed; they run in every mode. (The
// harness has changed since they were found, so they exercise the same mix
// of ops but no longer replay the exact failing schedule.)
var regressionSeeds = []struct {
	seed            uint64
	replicas, steps int
	why             string
}{
	{1000, 3, 1000, "collects kept in arrival order made snapshots differ"},
	{1001, 4, 1000, "a collect decided from delete marks that a DiffSince had skipped"},
	{1003, 3, 1000, "a collect dropped a frame on one replica only"},
	{1004, 4, 3000, "a collect took its drop list from a tree missing skipped moves"},
}

func TestConvergence(t *testing.T) {
	seeds, steps := 24, 3000
	if testing.Short() {
		seeds, steps = 6, 1000
	}
	for _, r := range regressionSeeds {
		t.Run(fmt.Sprintf("regression-%d", r.seed), func(t *testing.T) { runConvergence(t, r.seed, r.replicas, r.steps) })
	}
	for s := range seeds {
		seed := uint64(1000 + s)
		replicas := 3 + s%3
		t.Run(fmt.Sprintf("seed-%d-replicas-%d", seed, replicas), func(t *testing.T) {
			runConvergence(t, seed, replicas, steps)
		})
	}
}
