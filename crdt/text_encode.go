package crdt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
)

// Encodings (docs/crdt.md describes them field by field).
//
// A TextOp is a msgpack array:
//
//	insert: [1, replica, seq, leftReplica, leftSeq, rightReplica, rightSeq, text, gone]
//	delete: [2, replica, seq, r1, s1, len1, r2, s2, len2, ...]
//
// A zero origin is encoded as replica 0, seq 0. An op list is a msgpack
// array of ops. The text state is a msgpack array
//
//	[version=2, replicas, seen, items, content, pending, extra]
//
// described at Encode. Version 1, without extra, still decodes.

// TextStateVersion is the format version written by [Text.Encode].
const TextStateVersion = 2

var (
	_ msgpack.CustomEncoder = TextOp{}
	_ msgpack.CustomDecoder = (*TextOp)(nil)
)

// EncodeMsgpack writes op as a msgpack array; it implements
// msgpack.CustomEncoder so that ops nest in other msgpack values. The output
// is deterministic. It fails only for an op of unknown kind or a writer
// error.
func (op TextOp) EncodeMsgpack(enc *msgpack.Encoder) error {
	switch op.Kind {
	case TextInsert:
		if err := enc.EncodeArrayLen(9); err != nil {
			return err
		}
		for _, u := range [...]uint64{1, uint64(op.ID.Replica), op.ID.Seq,
			uint64(op.Left.Replica), op.Left.Seq, uint64(op.Right.Replica), op.Right.Seq} {
			if err := enc.EncodeUint(u); err != nil {
				return err
			}
		}
		if err := enc.EncodeString(op.Text); err != nil {
			return err
		}
		return enc.EncodeUint(op.Gone)
	case TextDelete:
		if err := enc.EncodeArrayLen(3 + 3*len(op.Spans)); err != nil {
			return err
		}
		for _, u := range [...]uint64{2, uint64(op.ID.Replica), op.ID.Seq} {
			if err := enc.EncodeUint(u); err != nil {
				return err
			}
		}
		for _, s := range op.Spans {
			for _, u := range [...]uint64{uint64(s.Start.Replica), s.Start.Seq, s.Len} {
				if err := enc.EncodeUint(u); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return fmt.Errorf("%w: unknown kind %d", TextErrInvalidOp, op.Kind)
}

// DecodeMsgpack reads an op written by EncodeMsgpack; it implements
// msgpack.CustomDecoder. It returns an error wrapping TextErrEncoding for
// malformed input, or TextErrInvalidOp for a well-formed but invalid op; it
// never panics.
func (op *TextOp) DecodeMsgpack(dec *msgpack.Decoder) error {
	*op = TextOp{}
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return textEncErr(err)
	}
	if n < 3 {
		return fmt.Errorf("%w: op array of %d", TextErrEncoding, n)
	}
	var head [3]uint64
	for i := range head {
		if head[i], err = dec.DecodeUint64(); err != nil {
			return textEncErr(err)
		}
	}
	op.Kind = TextOpKind(head[0])
	op.ID = ID{ReplicaID(head[1]), head[2]}
	if head[0] > 255 {
		op.Kind = 0
	}
	switch op.Kind {
	case TextInsert:
		if n != 9 {
			return fmt.Errorf("%w: insert array of %d", TextErrEncoding, n)
		}
		var o [4]uint64
		for i := range o {
			if o[i], err = dec.DecodeUint64(); err != nil {
				return textEncErr(err)
			}
		}
		op.Left = ID{ReplicaID(o[0]), o[1]}
		op.Right = ID{ReplicaID(o[2]), o[3]}
		if op.Text, err = dec.DecodeString(); err != nil {
			return textEncErr(err)
		}
		if op.Gone, err = dec.DecodeUint64(); err != nil {
			return textEncErr(err)
		}
	case TextDelete:
		if (n-3)%3 != 0 || (n-3)/3 > TextMaxSpans {
			return fmt.Errorf("%w: delete array of %d", TextErrEncoding, n)
		}
		k := (n - 3) / 3
		op.Spans = make([]TextSpan, 0, min(k, 64))
		for range k {
			var s [3]uint64
			for i := range s {
				if s[i], err = dec.DecodeUint64(); err != nil {
					return textEncErr(err)
				}
			}
			op.Spans = append(op.Spans, TextSpan{ID{ReplicaID(s[0]), s[1]}, s[2]})
		}
	default:
		return fmt.Errorf("%w: unknown op kind %d", TextErrEncoding, head[0])
	}
	return op.validate()
}

func textEncErr(err error) error {
	if errors.Is(err, TextErrEncoding) || errors.Is(err, TextErrInvalidOp) {
		return err
	}
	return fmt.Errorf("%w: %v", TextErrEncoding, err)
}

// TextEncodeOps encodes ops as one msgpack array: the update format. The
// output is deterministic. It fails only for an op of unknown kind.
func TextEncodeOps(ops []TextOp) ([]byte, error) {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	if err := enc.EncodeArrayLen(len(ops)); err != nil {
		return nil, err
	}
	for i := range ops {
		if err := ops[i].EncodeMsgpack(enc); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// TextDecodeOps decodes an update written by [TextEncodeOps]. Untrusted
// input is safe: it returns an error wrapping TextErrEncoding (malformed
// bytes, trailing bytes) or TextErrInvalidOp (an invalid op), never panics,
// and allocates in proportion to len(b).
func TextDecodeOps(b []byte) ([]TextOp, error) {
	r := bytes.NewReader(b)
	dec := msgpack.NewDecoder(r)
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return nil, textEncErr(err)
	}
	if n < 0 || n > len(b) {
		return nil, fmt.Errorf("%w: op list of %d", TextErrEncoding, n)
	}
	ops := make([]TextOp, n)
	for i := range ops {
		if err := ops[i].DecodeMsgpack(dec); err != nil {
			return nil, fmt.Errorf("op %d: %w", i, err)
		}
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", TextErrEncoding, r.Len())
	}
	return ops, nil
}

func textZig(d int64) uint64 { return uint64(d<<1) ^ uint64(d>>63) }

func textUnzig(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

// Item flags in the state encoding.
const (
	textFlagReplica = 1 << 0 // an explicit replica index follows
	textLeftShift   = 1      // bits 1-2: origin left kind
	textRightShift  = 3      // bits 3-4: origin right kind
	textStateShift  = 5      // bits 5-6: deletion state

	textOriginNone     = 0 // zero id: start (left) or end (right)
	textOriginAdjacent = 1 // previous item's last (left) / next item's first (right) character
	textOriginExplicit = 2 // replica index and seq delta follow
	// Left: the run continues an earlier run of the same replica that ends
	// at seq-1, which lies k runs back (uvarint k follows instead of the
	// replica and seq). Right: the same origin right as the run that starts
	// where this one ends.
	textOriginContinues = 3

	textStateVisible   = 0
	textStateCollected = 1 // deleted, content dropped
	textStateDeleted   = 2 // deleted by the delete whose id follows
)

// canonicalItems returns the items in document order with every run that
// continues the previous one merged into it, whatever its content's place in
// the arena: the same characters always give the same items.
func (t *Text) canonicalItems() []textItem {
	var items []textItem
	t.each(func(it *textItem) bool {
		if m := len(items); m > 0 && items[m-1].continuedBy(it, false) {
			items[m-1].n += it.n
			return true
		}
		items = append(items, *it)
		return true
	})
	return items
}

// Encode returns the whole state of the text (a snapshot): a msgpack array
// [version, replicas, seen, runs, content, pending, extra] where version is
// [TextStateVersion], replicas the ascending table of replica ids, seen the
// applied seq ranges, runs the runs of characters in document order
// (ids, origins, deletion state, compactly varint-coded), content the text
// of the runs that still have it, pending the operations waiting for
// dependencies, and extra the tombstones deleted by more than one delete.
// docs/crdt.md gives every field.
//
// The encoding is canonical: texts that applied the same operations (and
// whose tombstones were collected alike) encode to the same bytes, whatever
// the order of arrival. The error is non-nil only if a pending op cannot be
// encoded, which does not happen for ops that passed validation.
func (t *Text) Encode() ([]byte, error) {
	t.init()
	items := t.canonicalItems()
	pending := t.pendingOps()
	// Replica table.
	set := map[ReplicaID]struct{}{}
	for r := range t.seen {
		set[r] = struct{}{}
	}
	extras := make([]ID, 0, len(t.extra))
	for d, spans := range t.extra {
		extras = append(extras, d)
		set[d.Replica] = struct{}{}
		for _, sp := range spans {
			set[sp.Start.Replica] = struct{}{}
		}
	}
	slices.SortFunc(extras, textCmpID)
	for i := range items {
		it := &items[i]
		for _, id := range [...]ID{it.id, it.left, it.right, it.del} {
			if id.Replica != 0 {
				set[id.Replica] = struct{}{}
			}
		}
	}
	table := make([]ReplicaID, 0, len(set))
	for r := range set {
		table = append(table, r)
	}
	slices.Sort(table)
	index := make(map[ReplicaID]uint64, len(table))
	for i, r := range table {
		index[r] = uint64(i)
	}

	seen := []byte{}
	for _, r := range table {
		var ranges textSeqs
		if s := t.seen[r]; s != nil {
			ranges = *s
		}
		seen = binary.AppendUvarint(seen, uint64(len(ranges)))
		prev := uint64(0)
		for _, rg := range ranges {
			seen = binary.AppendUvarint(seen, rg.start-prev)
			seen = binary.AppendUvarint(seen, rg.end-rg.start)
			prev = rg.end
		}
	}

	body := binary.AppendUvarint(make([]byte, 0, len(items)*8), uint64(len(items)))
	content := make([]rune, 0, t.root.vis)
	base := map[ReplicaID]uint64{}
	ends := make(map[ID]int, len(items)) // last character -> run index
	lastDel := map[ReplicaID]uint64{}    // last deleter seq per replica
	var prevRep ReplicaID
	for i := range items {
		it := &items[i]
		var flags uint64
		lk, rk := uint64(textOriginExplicit), uint64(textOriginExplicit)
		back := 0
		switch {
		case it.left == ID{}:
			lk = textOriginNone
		case i > 0 && it.left == items[i-1].last():
			lk = textOriginAdjacent
		case it.left == ID{it.id.Replica, it.id.Seq - 1}:
			if j, ok := ends[it.left]; ok {
				lk, back = textOriginContinues, i-j
			}
		}
		ends[it.last()] = i
		switch {
		case it.right == ID{}:
			rk = textOriginNone
		case i+1 < len(items) && it.right == items[i+1].id:
			rk = textOriginAdjacent
		default:
			if p, _, ok := t.findID(ID{it.id.Replica, it.end()}); ok && p.item().right == it.right {
				rk = textOriginContinues
			}
		}
		if lk != textOriginContinues && (i == 0 || it.id.Replica != prevRep) {
			flags |= textFlagReplica
		}
		sk := uint64(textStateVisible)
		switch {
		case it.del == textCollected:
			sk = textStateCollected
		case it.del != ID{}:
			sk = textStateDeleted
		}
		flags |= lk<<textLeftShift | rk<<textRightShift | sk<<textStateShift
		body = append(body, byte(flags))
		if lk == textOriginContinues {
			body = binary.AppendUvarint(body, uint64(back))
		} else {
			if flags&textFlagReplica != 0 {
				body = binary.AppendUvarint(body, index[it.id.Replica])
			}
			body = binary.AppendUvarint(body, textZig(int64(it.id.Seq-base[it.id.Replica])))
		}
		prevRep = it.id.Replica
		base[it.id.Replica] = it.end()
		body = binary.AppendUvarint(body, uint64(it.n))
		for _, o := range [...]struct {
			kind uint64
			id   ID
		}{{lk, it.left}, {rk, it.right}} {
			if o.kind == textOriginExplicit {
				body = binary.AppendUvarint(body, index[o.id.Replica])
				body = binary.AppendUvarint(body, textZig(int64(it.id.Seq-o.id.Seq)))
			}
		}
		if sk == textStateDeleted {
			body = binary.AppendUvarint(body, index[it.del.Replica])
			body = binary.AppendUvarint(body, textZig(int64(it.del.Seq-lastDel[it.del.Replica])))
			lastDel[it.del.Replica] = it.del.Seq
		}
		if it.off >= 0 {
			content = t.appendContent(content, it)
		}
	}

	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	check := func(err error) {
		if err != nil {
			panic(err) // writing to a bytes.Buffer cannot fail
		}
	}
	extra := binary.AppendUvarint(nil, uint64(len(extras)))
	for _, d := range extras {
		extra = binary.AppendUvarint(extra, index[d.Replica])
		extra = binary.AppendUvarint(extra, d.Seq)
		extra = binary.AppendUvarint(extra, uint64(len(t.extra[d])))
		for _, sp := range t.extra[d] {
			extra = binary.AppendUvarint(extra, index[sp.Start.Replica])
			extra = binary.AppendUvarint(extra, sp.Start.Seq)
			extra = binary.AppendUvarint(extra, sp.Len)
		}
	}

	check(enc.EncodeArrayLen(7))
	check(enc.EncodeUint(TextStateVersion))
	check(enc.EncodeArrayLen(len(table)))
	for _, r := range table {
		check(enc.EncodeUint(uint64(r)))
	}
	check(enc.EncodeBytes(seen))
	check(enc.EncodeBytes(body))
	check(enc.EncodeString(string(content)))
	check(enc.EncodeArrayLen(len(pending)))
	for i := range pending {
		if err := pending[i].EncodeMsgpack(enc); err != nil {
			return nil, err
		}
	}
	check(enc.EncodeBytes(extra))
	return buf.Bytes(), nil
}

// appendContent appends the content of the canonical item it, which may
// span several stored items whose content is not contiguous in the arena.
func (t *Text) appendContent(out []rune, it *textItem) []rune {
	id, left := it.id, it.n
	for left > 0 {
		p, off, _ := t.findID(id)
		s := p.item()
		k := min(s.n-off, left)
		out = append(out, t.runes[s.off+off:s.off+off+k]...)
		id.Seq += uint64(k)
		left -= k
	}
	return out
}

// textReader reads uvarints from a bin field.
type textReader struct {
	b   []byte
	err error
}

func (r *textReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = fmt.Errorf("%w: bad varint", TextErrEncoding)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *textReader) byte() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.err = fmt.Errorf("%w: truncated items", TextErrEncoding)
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

// TextDecode decodes a state written by [Text.Encode]. Untrusted input is
// safe: malformed or inconsistent input returns an error wrapping
// TextErrEncoding (or TextErrInvalidOp for an invalid pending op), never a
// panic, and allocation stays proportional to len(b) (collected runs aside,
// which cost no memory per character). The decoder checks the structure
// (unique ids, known origins, deleters that are applied deletes, content
// matching the runs) but does not re-run integration, so it cannot detect a
// well-formed snapshot whose run order contradicts its origins: load
// snapshots from the server's own store, which validated every update.
func TextDecode(b []byte) (*Text, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{TextErrEncoding}, args...)...)
	}
	rd := bytes.NewReader(b)
	dec := msgpack.NewDecoder(rd)
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return nil, textEncErr(err)
	}
	if n < 1 {
		return nil, bad("state array of %d", n)
	}
	ver, err := dec.DecodeUint64()
	if err != nil {
		return nil, textEncErr(err)
	}
	if ver != 1 && ver != TextStateVersion {
		return nil, bad("unsupported state version %d", ver)
	}
	if n != 5+int(ver) {
		return nil, bad("state array of %d", n)
	}
	// Replica table.
	k, err := dec.DecodeArrayLen()
	if err != nil {
		return nil, textEncErr(err)
	}
	if k < 0 || k > len(b) {
		return nil, bad("replica table of %d", k)
	}
	table := make([]ReplicaID, k)
	for i := range table {
		u, err := dec.DecodeUint64()
		if err != nil {
			return nil, textEncErr(err)
		}
		table[i] = ReplicaID(u)
		if u == 0 || (i > 0 && table[i] <= table[i-1]) {
			return nil, bad("replica table not ascending")
		}
	}
	rep := func(r *textReader) ReplicaID {
		i := r.uvarint()
		if r.err == nil && i >= uint64(len(table)) {
			r.err = bad("replica index %d of %d", i, len(table))
		}
		if r.err != nil {
			return 0
		}
		return table[i]
	}
	seenBin, err := textDecodeBin(dec, rd)
	if err != nil {
		return nil, err
	}
	itemBin, err := textDecodeBin(dec, rd)
	if err != nil {
		return nil, err
	}
	content, err := dec.DecodeString()
	if err != nil {
		return nil, textEncErr(err)
	}
	if !utf8.ValidString(content) {
		return nil, bad("content is not valid UTF-8")
	}
	pn, err := dec.DecodeArrayLen()
	if err != nil {
		return nil, textEncErr(err)
	}
	if pn < 0 || pn > len(b) {
		return nil, bad("pending list of %d", pn)
	}
	pending := make([]TextOp, pn)
	for i := range pending {
		if err := pending[i].DecodeMsgpack(dec); err != nil {
			return nil, fmt.Errorf("pending op %d: %w", i, err)
		}
	}
	var extraBin []byte
	if ver >= 2 {
		if extraBin, err = textDecodeBin(dec, rd); err != nil {
			return nil, err
		}
	}
	if rd.Len() != 0 {
		return nil, bad("%d trailing bytes", rd.Len())
	}

	t := new(Text)
	t.init()
	// Seen ranges.
	sr := &textReader{b: seenBin}
	for _, r := range table {
		cnt := sr.uvarint()
		if sr.err == nil && cnt > uint64(len(sr.b)) {
			return nil, bad("seen ranges of %d", cnt)
		}
		var ranges textSeqs
		prev := uint64(0)
		for range cnt {
			gap, ln := sr.uvarint(), sr.uvarint()
			if sr.err != nil {
				return nil, sr.err
			}
			if gap == 0 || ln == 0 || gap > TextMaxSeq || ln > TextMaxSeq || prev+gap+ln > TextMaxSeq {
				return nil, bad("seen range out of order or bounds")
			}
			start := prev + gap
			ranges = append(ranges, textSeqRange{start, start + ln})
			prev = start + ln
		}
		if len(ranges) > 0 {
			if t.seen == nil {
				t.seen = make(map[ReplicaID]*textSeqs)
			}
			t.seen[r] = &ranges
		}
	}
	if sr.err != nil {
		return nil, sr.err
	}
	if len(sr.b) != 0 {
		return nil, bad("trailing bytes in seen")
	}

	// Items.
	ir := &textReader{b: itemBin}
	cnt := ir.uvarint()
	if ir.err != nil {
		return nil, ir.err
	}
	if cnt > uint64(len(ir.b)) {
		return nil, bad("item count %d", cnt)
	}
	items := make([]textItem, 0, cnt)
	rightAdj := make([]bool, 0, cnt)
	explicitOrigins := make([]uint8, 0, cnt) // bit 0: left, bit 1: right
	base := map[ReplicaID]uint64{}
	lastDel := map[ReplicaID]uint64{}
	var cur ReplicaID
	runes := make([]rune, 0, utf8.RuneCountInString(content))
	for _, c := range content {
		runes = append(runes, c)
	}
	used := 0
	var total uint64
	for i := range cnt {
		flags := ir.byte()
		if ir.err != nil {
			return nil, ir.err
		}
		lk := uint64(flags>>textLeftShift) & 3
		rk := uint64(flags>>textRightShift) & 3
		sk := uint64(flags>>textStateShift) & 3
		if flags >= 1<<7 || sk == 3 {
			return nil, bad("item flags %#x", flags)
		}
		var it textItem
		var seq uint64
		if lk == textOriginContinues {
			k := ir.uvarint()
			if ir.err != nil {
				return nil, ir.err
			}
			if flags&textFlagReplica != 0 || k == 0 || k > i {
				return nil, bad("bad continued run")
			}
			prev := &items[i-k]
			cur, seq = prev.id.Replica, prev.end()
			it.left = prev.last()
		} else {
			if flags&textFlagReplica != 0 {
				cur = rep(ir)
			} else if i == 0 {
				return nil, bad("first item without replica")
			}
			d := textUnzig(ir.uvarint())
			if ir.err != nil {
				return nil, ir.err
			}
			seq = base[cur] + uint64(d)
			if d < -int64(TextMaxSeq) || d > int64(TextMaxSeq) {
				return nil, bad("item seq out of range")
			}
		}
		ln := ir.uvarint()
		if ir.err != nil {
			return nil, ir.err
		}
		if seq == 0 || seq >= TextMaxSeq || ln == 0 || ln > TextMaxSeq-seq || ln > 1<<40 {
			return nil, bad("item seq or length out of range")
		}
		total += ln
		if total > 1<<40 {
			return nil, bad("too many characters")
		}
		it.id, it.n = ID{cur, seq}, int(ln)
		base[cur] = seq + ln
		explicit := func() (ID, error) {
			r := rep(ir)
			od := textUnzig(ir.uvarint())
			if ir.err != nil {
				return ID{}, ir.err
			}
			os := seq - uint64(od)
			if od < -int64(TextMaxSeq) || od > int64(TextMaxSeq) || os == 0 || os >= TextMaxSeq {
				return ID{}, bad("origin out of range")
			}
			return ID{r, os}, nil
		}
		switch lk {
		case textOriginAdjacent:
			if i == 0 {
				return nil, bad("first item with adjacent origin left")
			}
			it.left = items[i-1].last()
		case textOriginExplicit:
			if it.left, err = explicit(); err != nil {
				return nil, err
			}
		}
		switch rk {
		case textOriginExplicit:
			if it.right, err = explicit(); err != nil {
				return nil, err
			}
		case textOriginContinues:
			it.right = textUnresolved
		}
		rightAdj = append(rightAdj, rk == textOriginAdjacent)
		var ex uint8
		if lk == textOriginExplicit {
			ex |= 1
		}
		if rk == textOriginExplicit {
			ex |= 2
		}
		explicitOrigins = append(explicitOrigins, ex)
		switch sk {
		case textStateCollected:
			it.del, it.off = textCollected, -1
		case textStateDeleted:
			r := rep(ir)
			dd := textUnzig(ir.uvarint())
			if ir.err != nil {
				return nil, ir.err
			}
			ds := lastDel[r] + uint64(dd)
			lastDel[r] = ds
			if dd < -int64(TextMaxSeq) || dd > int64(TextMaxSeq) || ds == 0 || ds >= TextMaxSeq {
				return nil, bad("deleter out of range")
			}
			it.del = ID{r, ds}
		}
		if it.off >= 0 {
			if uint64(len(runes)-used) < ln {
				return nil, bad("content shorter than its runs")
			}
			it.off = used
			used += int(ln)
		}
		items = append(items, it)
	}
	if len(ir.b) != 0 {
		return nil, bad("trailing bytes in items")
	}
	if used != len(runes) {
		return nil, bad("content longer than its runs")
	}
	for i := range items {
		if rightAdj[i] {
			if i+1 == len(items) {
				return nil, bad("last item with adjacent origin right")
			}
			items[i].right = items[i+1].id
		}
	}
	// Ids must be unique: sort the runs by id and compare neighbours.
	order := textSortedOrder(items)
	for k := 1; k < len(order); k++ {
		a, b := &items[order[k-1]], &items[order[k]]
		if a.id.Replica == b.id.Replica && a.end() > b.id.Seq {
			return nil, bad("duplicate character id %v", b.id)
		}
	}
	// Resolve the continued origins right, highest id first, so that the
	// continuation of a run (the next id) is always resolved before it.
	for k := len(order) - 1; k >= 0; k-- {
		it := &items[order[k]]
		if it.right != textUnresolved {
			continue
		}
		if k+1 == len(order) || items[order[k+1]].id != (ID{it.id.Replica, it.end()}) {
			return nil, bad("run %v continues nowhere", it.id)
		}
		it.right = items[order[k+1]].right
	}
	t.runes = runes
	t.build(items, order)
	// Origins that are not explicit name runs decoded beside this one; only
	// explicit ones need a lookup.
	for i := range items {
		it := &items[i]
		s := t.seen[it.id.Replica]
		if s == nil || !s.covers(it.id.Seq, it.end()) {
			return nil, bad("run %v not covered by seen", it.id)
		}
		for j, o := range [...]ID{it.left, it.right} {
			if o != (ID{}) && (!textRefOK(it.id, o) || (explicitOrigins[i]&(1<<j) != 0 && t.idx.leaf(o) == nil)) {
				return nil, bad("origin %v of run %v is invalid or unknown", o, it.id)
			}
		}
		if it.left == it.right && it.left != (ID{}) {
			return nil, bad("run %v has equal origins", it.id)
		}
		if it.del != (ID{}) && it.del != textCollected {
			ds := t.seen[it.del.Replica]
			if !textValidID(it.del) || ds == nil || !ds.has(it.del.Seq) || t.idx.leaf(it.del) != nil ||
				(it.del.Replica == it.id.Replica && it.del.Seq <= it.last().Seq) {
				return nil, bad("deleter %v of run %v is not a delete", it.del, it.id)
			}
		}
	}
	if err := t.decodeExtra(extraBin, rep); err != nil {
		return nil, err
	}
	for _, op := range pending {
		t.applyOne(op)
	}
	t.drain()
	return t, nil
}

// decodeExtra reads and checks the extra field of a state: deletes in
// ascending id order, each an applied delete, with a non-empty canonical
// list of spans (sorted, neither overlapping nor touching) naming only
// tombstones with content attributed to a lesser delete.
func (t *Text) decodeExtra(b []byte, rep func(*textReader) ReplicaID) error {
	bad := func(why string) error { return fmt.Errorf("%w: extra deletes: %s", TextErrEncoding, why) }
	if b == nil {
		return nil
	}
	r := &textReader{b: b}
	cnt := r.uvarint()
	if r.err == nil && cnt > uint64(len(r.b)) {
		return bad("count out of range")
	}
	var prev ID
	for range cnt {
		d := ID{rep(r), r.uvarint()}
		k := r.uvarint()
		if r.err != nil {
			return r.err
		}
		if !textValidID(d) || (prev != ID{} && !prev.Less(d)) {
			return bad("delete ids out of order")
		}
		if s := t.seen[d.Replica]; s == nil || !s.has(d.Seq) || t.idx.leaf(d) != nil {
			return bad("not an applied delete")
		}
		if k == 0 || k > uint64(len(r.b)) {
			return bad("span count out of range")
		}
		spans := make([]TextSpan, 0, k)
		for range k {
			sp := TextSpan{ID{rep(r), r.uvarint()}, r.uvarint()}
			if r.err != nil {
				return r.err
			}
			if m := len(spans); sp.Len == 0 || sp.Len > TextMaxSeq || !textValidID(sp.Start) ||
				m > 0 && (spans[m-1].Start.Replica == sp.Start.Replica && spans[m-1].Start.Seq+spans[m-1].Len >= sp.Start.Seq ||
					!spans[m-1].Start.Less(sp.Start)) {
				return bad("spans out of order")
			}
			if !t.idx.covers(sp.Start, sp.Len) {
				return bad("unknown characters")
			}
			ok := true
			t.eachPiece(sp, func(it *textItem, _ ID, _ int) {
				ok = ok && it.del != (ID{}) && it.del != textCollected && it.del.Less(d)
			})
			if !ok {
				return bad("a character that is not a tombstone of a lesser delete")
			}
			spans = append(spans, sp)
		}
		if t.extra == nil {
			t.extra = make(map[ID][]TextSpan)
		}
		t.extra[d] = spans
		prev = d
	}
	if len(r.b) != 0 {
		return bad("trailing bytes")
	}
	return nil
}

// textDecodeBin reads a bin field, refusing lengths beyond the input (the
// msgpack library would allocate whatever length the input claims).
func textDecodeBin(dec *msgpack.Decoder, rd *bytes.Reader) ([]byte, error) {
	n, err := dec.DecodeBytesLen()
	if err != nil {
		return nil, textEncErr(err)
	}
	if n < -1 || n > rd.Len() {
		return nil, fmt.Errorf("%w: bin of %d bytes", TextErrEncoding, n)
	}
	if n == -1 { // nil
		return nil, nil
	}
	b := make([]byte, n)
	if err := dec.ReadFull(b); err != nil {
		return nil, textEncErr(err)
	}
	return b, nil
}

// textUnresolved stands for an origin right decoded as "the same as the run
// that continues this one" until the decoder fills it in.
var textUnresolved = ID{Replica: 0, Seq: 2}
