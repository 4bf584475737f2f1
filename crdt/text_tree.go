package crdt

import "slices"

// The text's characters, in document order, live in a B+ tree of runs
// (textItem). Every node knows how many characters its subtree holds in all
// (tot, tombstones included) and how many are visible (vis), so a visible
// position is found in O(log n) by descending from the root, and the total
// order of two characters is compared by walking up to the root. Leaves are
// chained for in-order scans.

const (
	textLeafMax = 64 // items per leaf before it splits
	textNodeMax = 32 // children per inner node before it splits
)

// textItem is a run of characters inserted by one replica with consecutive
// seqs: id.Seq .. id.Seq+n-1. Character 0 of the run has origins left and
// right; character k>0 has origin left id+k-1 and origin right right, which is
// what lets a run be split anywhere and merged back.
type textItem struct {
	id    ID // first character
	left  ID // origin left of the first character; zero: start of text
	right ID // origin right of every character; zero: end of text
	// del is zero for visible characters, textCollected for deleted
	// characters whose content was dropped, else the id of the delete
	// operation the deletion is attributed to (the least such id).
	del ID
	n   int // characters, > 0
	off int // offset of the content in Text.runes; -1 when collected
}

// textCollected marks a tombstone whose delete every replica has seen.
var textCollected = ID{Replica: 0, Seq: 1}

func (it *textItem) vis() int {
	if it.del == (ID{}) {
		return it.n
	}
	return 0
}

func (it *textItem) last() ID { return ID{it.id.Replica, it.id.Seq + uint64(it.n) - 1} }

func (it *textItem) end() uint64 { return it.id.Seq + uint64(it.n) }

func (it *textItem) contains(id ID) bool {
	return id.Replica == it.id.Replica && id.Seq >= it.id.Seq && id.Seq < it.end()
}

// continuedBy reports whether b is the continuation of a's run: the next seqs,
// chained origins, same deletion state and contiguous or absent content.
// contentCheck=false ignores where the content is stored.
func (a *textItem) continuedBy(b *textItem, contentCheck bool) bool {
	if b.id.Replica != a.id.Replica || b.id.Seq != a.end() || b.left != a.last() ||
		b.right != a.right || b.del != a.del || (a.off < 0) != (b.off < 0) {
		return false
	}
	return !contentCheck || a.off < 0 || a.off+a.n == b.off
}

type textNode struct {
	parent     *textNode
	kids       []*textNode // inner nodes
	items      []textItem  // leaves
	prev, next *textNode   // leaf chain
	leaf       bool
	vis, tot   int
}

// textPos addresses an item: leaf and index in it. i == len(leaf.items) is
// the slot after the leaf's last item.
type textPos struct {
	leaf *textNode
	i    int
}

func (p textPos) item() *textItem { return &p.leaf.items[p.i] }

// norm moves a position past the end of a leaf to the start of the next
// non-empty leaf; ok is false at the end of the text.
func (p textPos) norm() (textPos, bool) {
	for p.i >= len(p.leaf.items) {
		if p.leaf.next == nil {
			return p, false
		}
		p = textPos{p.leaf.next, 0}
	}
	return p, true
}

func (t *Text) resetTree() {
	leaf := &textNode{leaf: true}
	t.root, t.first = leaf, leaf
	t.idx = textIndex{}
	t.hint = textHint{}
}

// addCounts adds to the counts of n and its ancestors.
func (n *textNode) addCounts(dvis, dtot int) {
	for ; n != nil; n = n.parent {
		n.vis += dvis
		n.tot += dtot
	}
}

func (n *textNode) recount() {
	n.vis, n.tot = 0, 0
	if n.leaf {
		for i := range n.items {
			n.vis += n.items[i].vis()
			n.tot += n.items[i].n
		}
		return
	}
	for _, k := range n.kids {
		n.vis += k.vis
		n.tot += k.tot
	}
}

// findVisible returns the item holding visible character p (0 <= p < vis)
// and p's offset in it.
func (t *Text) findVisible(p int) (textPos, int) {
	if h := &t.hint; h.leaf != nil && p >= h.start && p < h.start+h.leaf.vis {
		return textFindInLeaf(h.leaf, p-h.start)
	}
	n := t.root
	start := p
	for !n.leaf {
		for _, k := range n.kids {
			if p < k.vis {
				n = k
				break
			}
			p -= k.vis
		}
	}
	t.hint = textHint{leaf: n, start: start - p}
	return textFindInLeaf(n, p)
}

func textFindInLeaf(n *textNode, p int) (textPos, int) {
	for i := range n.items {
		v := n.items[i].vis()
		if p < v {
			return textPos{n, i}, p
		}
		p -= v
	}
	panic("crdt: text tree counts are inconsistent")
}

// textHint caches the leaf of the last position lookup and the visible
// position where it starts; any change outside that leaf clears it.
type textHint struct {
	leaf  *textNode
	start int
}

// touched is called before the counts of leaf change.
func (t *Text) touched(leaf *textNode) {
	if t.hint.leaf != leaf {
		t.hint = textHint{}
	}
}

// findID returns the item holding character id and id's offset in it.
func (t *Text) findID(id ID) (textPos, int, bool) {
	leaf := t.idx.leaf(id)
	if leaf == nil {
		return textPos{}, 0, false
	}
	for i := range leaf.items {
		if leaf.items[i].contains(id) {
			return textPos{leaf, i}, int(id.Seq - leaf.items[i].id.Seq), true
		}
	}
	panic("crdt: text index points at the wrong leaf")
}

// textLeafStart returns the number of characters (tot) or visible characters
// (vis) before leaf in document order.
func textLeafStart(leaf *textNode) (tot, vis int) {
	for n := leaf; n.parent != nil; n = n.parent {
		for _, k := range n.parent.kids {
			if k == n {
				break
			}
			tot += k.tot
			vis += k.vis
		}
	}
	return tot, vis
}

// textOffsets returns the characters (tot) and visible characters (vis) before
// item p.
func textOffsets(p textPos) (tot, vis int) {
	tot, vis = textLeafStart(p.leaf)
	for i := 0; i < p.i; i++ {
		tot += p.leaf.items[i].n
		vis += p.leaf.items[i].vis()
	}
	return tot, vis
}

// order returns the index of character id in the document, tombstones
// included; the id must be known.
func (t *Text) order(id ID) int {
	p, off, ok := t.findID(id)
	if !ok {
		panic("crdt: text order of an unknown id")
	}
	tot, _ := textOffsets(p)
	return tot + off
}

// split splits item p at offset off (0 < off < n) and returns the position
// of the right half.
func (t *Text) split(p textPos, off int) textPos {
	it := *p.item()
	r := it
	r.id.Seq += uint64(off)
	r.left = ID{it.id.Replica, r.id.Seq - 1}
	r.n = it.n - off
	if r.off >= 0 {
		r.off += off
	}
	p.item().n = off
	p.leaf.items = append(p.leaf.items, textItem{})
	copy(p.leaf.items[p.i+2:], p.leaf.items[p.i+1:])
	p.leaf.items[p.i+1] = r
	q := textPos{p.leaf, p.i + 1}
	if len(p.leaf.items) > textLeafMax {
		return t.splitLeaf(p.leaf, q)
	}
	return q
}

// splitStart makes character id the first of its item and returns its
// position.
func (t *Text) splitStart(id ID) textPos {
	p, off, _ := t.findID(id)
	if off == 0 {
		return p
	}
	return t.split(p, off)
}

// before returns the position of the item before slot p (which must not be
// the first slot of the text).
func (p textPos) before() textPos {
	if p.i > 0 {
		return textPos{p.leaf, p.i - 1}
	}
	return textPos{p.leaf.prev, len(p.leaf.prev.items) - 1}
}

// splitEnd makes character id the last of its item and returns its position.
func (t *Text) splitEnd(id ID) textPos {
	p, off, _ := t.findID(id)
	if off == p.item().n-1 {
		return p
	}
	return t.split(p, off+1).before()
}

// insertItem inserts it at p and indexes it; it returns the item's position.
func (t *Text) insertItem(p textPos, it textItem) textPos {
	t.touched(p.leaf)
	leaf := p.leaf
	leaf.items = append(leaf.items, textItem{})
	copy(leaf.items[p.i+1:], leaf.items[p.i:])
	leaf.items[p.i] = it
	leaf.addCounts(it.vis(), it.n)
	t.idx.set(it.id, uint64(it.n), leaf)
	if len(leaf.items) > textLeafMax {
		return t.splitLeaf(leaf, p)
	}
	return p
}

// splitLeaf splits an overfull leaf in two and returns where p now is.
func (t *Text) splitLeaf(leaf *textNode, p textPos) textPos {
	t.hint = textHint{}
	half := len(leaf.items) / 2
	right := &textNode{leaf: true, items: make([]textItem, len(leaf.items)-half, textLeafMax+1)}
	copy(right.items, leaf.items[half:])
	clear(leaf.items[half:])
	leaf.items = leaf.items[:half]
	right.prev, right.next = leaf, leaf.next
	if leaf.next != nil {
		leaf.next.prev = right
	}
	leaf.next = right
	leaf.recount()
	right.recount()
	// Re-point the moved runs, as few id ranges as possible: runs of a
	// leaf often have consecutive ids (a typed run split by deletes).
	moved := make([]textIndexEntry, 0, len(right.items))
	for i := range right.items {
		moved = append(moved, textIndexEntry{id: right.items[i].id, n: uint64(right.items[i].n)})
	}
	slices.SortFunc(moved, func(a, b textIndexEntry) int { return textCmpID(a.id, b.id) })
	for k := 0; k < len(moved); {
		e := moved[k]
		for k++; k < len(moved) && moved[k].id.Replica == e.id.Replica && moved[k].id.Seq == e.end(); k++ {
			e.n += moved[k].n
		}
		t.idx.set(e.id, e.n, right)
	}
	t.addChild(leaf, right)
	if p.i >= half {
		return textPos{right, p.i - half}
	}
	return p
}

// addChild inserts node after sibling left under left's parent, splitting
// inner nodes upwards as needed.
func (t *Text) addChild(left, node *textNode) {
	parent := left.parent
	if parent == nil {
		root := &textNode{kids: []*textNode{left, node}}
		left.parent, node.parent = root, root
		root.recount()
		t.root = root
		return
	}
	i := 0
	for parent.kids[i] != left {
		i++
	}
	parent.kids = append(parent.kids, nil)
	copy(parent.kids[i+2:], parent.kids[i+1:])
	parent.kids[i+1] = node
	node.parent = parent
	if len(parent.kids) <= textNodeMax {
		return
	}
	half := len(parent.kids) / 2
	sib := &textNode{kids: make([]*textNode, len(parent.kids)-half, textNodeMax+1)}
	copy(sib.kids, parent.kids[half:])
	clear(parent.kids[half:])
	parent.kids = parent.kids[:half]
	for _, k := range sib.kids {
		k.parent = sib
	}
	parent.recount()
	sib.recount()
	t.addChild(parent, sib)
}

// build replaces the tree with items, in document order. order lists the
// items' indexes sorted by id; nil means build sorts them.
func (t *Text) build(items []textItem, order []int) {
	t.resetTree()
	if len(items) == 0 {
		return
	}
	if order == nil {
		order = textSortedOrder(items)
	}
	const fill = textLeafMax * 3 / 4
	leaves := make([]*textNode, 0, len(items)/fill+1)
	var prev *textNode
	for rest := items; len(rest) > 0; {
		k := min(fill, len(rest))
		leaf := &textNode{leaf: true, items: make([]textItem, k, textLeafMax+1), prev: prev}
		copy(leaf.items, rest[:k])
		rest = rest[k:]
		leaf.recount()
		if prev != nil {
			prev.next = leaf
		}
		prev = leaf
		leaves = append(leaves, leaf)
	}
	t.first = leaves[0]
	level := leaves
	for len(level) > 1 {
		const kfill = textNodeMax * 3 / 4
		up := make([]*textNode, 0, len(level)/kfill+1)
		for len(level) > 0 {
			k := min(kfill, len(level))
			n := &textNode{kids: make([]*textNode, k, textNodeMax+1)}
			copy(n.kids, level[:k])
			for _, c := range n.kids {
				c.parent = n
			}
			n.recount()
			level = level[k:]
			up = append(up, n)
		}
		level = up
	}
	t.root = level[0]
	// The index: runs in id order, merged when they continue each other
	// in one leaf.
	entries := make([]textIndexEntry, 0, len(items))
	for _, i := range order {
		it, leaf := &items[i], leaves[i/fill]
		if m := len(entries); m > 0 && entries[m-1].id.Replica == it.id.Replica &&
			entries[m-1].end() == it.id.Seq && entries[m-1].leaf == leaf {
			entries[m-1].n += uint64(it.n)
			continue
		}
		entries = append(entries, textIndexEntry{id: it.id, n: uint64(it.n), leaf: leaf})
	}
	t.idx.build(entries)
}

// each calls fn for every item in document order until fn returns false.
func (t *Text) each(fn func(it *textItem) bool) {
	for leaf := t.first; leaf != nil; leaf = leaf.next {
		for i := range leaf.items {
			if !fn(&leaf.items[i]) {
				return
			}
		}
	}
}
