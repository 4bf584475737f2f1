package crdt

import (
	"bytes"
	"fmt"
	"math"
	"sort"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// The wire format (docs/crdt.md describes it field by field). Everything is
// one msgpack value; operations are arrays whose first element is the OpKind.

const (
	updateMagic   = "TCU" // Tone canvas update
	snapshotMagic = "TCS" // Tone canvas snapshot
	formatVersion = 1
)

// writer wraps a msgpack encoder over a buffer. Writing to a bytes.Buffer
// cannot fail, so the encoder's errors are dropped here, once.
type writer struct {
	buf bytes.Buffer
	e   *msgpack.Encoder
}

func newWriter() *writer {
	w := &writer{}
	w.e = msgpack.NewEncoder(&w.buf)
	return w
}

func (w *writer) arr(n int)       { _ = w.e.EncodeArrayLen(n) }
func (w *writer) uint(n uint64)   { _ = w.e.EncodeUint(n) }
func (w *writer) str(s string)    { _ = w.e.EncodeString(s) }
func (w *writer) nil()            { _ = w.e.EncodeNil() }
func (w *writer) boolean(b bool)  { _ = w.e.EncodeBool(b) }
func (w *writer) bin(b []byte)    { _ = w.e.EncodeBytes(b) }
func (w *writer) id(id ID)        { w.uint(uint64(id.Replica)); w.uint(id.Seq) }
func (w *writer) bytes() []byte   { return w.buf.Bytes() }
func (w *writer) float(f float64) { _ = w.e.EncodeFloat64(f) }
func (w *writer) integer(n int64) { _ = w.e.EncodeInt(n) }
func (w *writer) header(m string) { w.str(m); w.uint(formatVersion) }

// number writes integral values as msgpack integers and the rest as float64,
// so a number always has exactly one encoding.
func (w *writer) number(f float64) {
	if f == math.Trunc(f) && math.Abs(f) <= 1<<53 && !(f == 0 && math.Signbit(f)) {
		w.integer(int64(f))
		return
	}
	w.float(f)
}

func (w *writer) value(v Value) {
	switch v.k {
	case KindNull:
		w.nil()
	case KindNumber:
		w.number(v.Float())
	case KindString:
		w.str(v.s)
	case KindBool:
		w.boolean(v.Bool())
	case KindRef:
		w.arr(2)
		w.id(v.Ref())
	case KindPoints:
		w.bin([]byte(v.s))
	default:
		panic("crdt: encoding a value of kind " + v.k.String())
	}
}

func (w *writer) props(ps []Prop) {
	w.arr(2 * len(ps))
	for _, p := range ps {
		w.str(p.Key)
		w.value(p.Value)
	}
}

// vv writes a version vector as a flat array of replica, seq pairs, sorted
// by replica.
func (w *writer) vv(v VersionVector) {
	rs := sortedReplicas(v)
	w.arr(2 * len(rs))
	for _, r := range rs {
		w.uint(uint64(r))
		w.uint(v[r])
	}
}

func sortedReplicas(v VersionVector) []ReplicaID {
	rs := make([]ReplicaID, 0, len(v))
	for r, s := range v {
		if s > 0 {
			rs = append(rs, r)
		}
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i] < rs[j] })
	return rs
}

// opFields is the length of each op kind's array.
var opFields = [...]int{OpCreate: 9, OpSet: 7, OpDelete: 6, OpRestore: 6, OpMove: 9, OpCollect: 6, OpSkip: 4,
	OpTextInsert: 11, OpTextDelete: 7}

// maxOpFields is the longest op array.
const maxOpFields = 11

func (w *writer) op(o *Op) {
	if int(o.Kind) >= len(opFields) || opFields[o.Kind] == 0 {
		panic("crdt: encoding an op of kind " + o.Kind.String())
	}
	w.arr(opFields[o.Kind])
	w.uint(uint64(o.Kind))
	w.id(o.ID)
	switch o.Kind {
	case OpSkip:
		w.uint(o.Len)
		return
	case OpTextInsert:
		w.id(o.Elem)
		w.str(o.TextProp)
		w.id(o.Text.Left)
		w.id(o.Text.Right)
		if o.Text.Gone > 0 {
			w.uint(o.Text.Gone)
		} else {
			w.str(o.Text.Text)
		}
		return
	case OpTextDelete:
		w.id(o.Elem)
		w.str(o.TextProp)
		w.arr(3 * len(o.Text.Spans))
		for _, sp := range o.Text.Spans {
			w.id(sp.Start)
			w.uint(sp.Len)
		}
		return
	}
	w.uint(o.Counter)
	switch o.Kind {
	case OpCreate:
		w.str(o.Type)
		w.id(o.Parent)
		w.str(o.Key)
		w.props(o.Props)
	case OpSet:
		w.id(o.Elem)
		w.props(o.Props)
	case OpDelete, OpRestore:
		w.id(o.Elem)
	case OpMove:
		w.id(o.Elem)
		w.id(o.Parent)
		w.str(o.Key)
	case OpCollect:
		w.vv(o.Horizon)
		w.arr(2 * len(o.Drop))
		for _, id := range o.Drop {
			w.id(id)
		}
	}
}

// writers reuses the writers of small updates: a local edit encodes one
// per keystroke.
var writers = sync.Pool{New: func() any { return newWriter() }}

// Encode returns the update's canonical msgpack encoding:
// ["TCU", 1, [op, ...]]. Encode panics if an op has an unknown kind or a
// value of kind [KindText]; updates made by this package never do.
func (u *Update) Encode() []byte {
	w := writers.Get().(*writer)
	w.buf.Reset()
	w.arr(3)
	w.header(updateMagic)
	w.arr(len(u.Ops))
	for i := range u.Ops {
		w.op(&u.Ops[i])
	}
	out := bytes.Clone(w.bytes())
	if w.buf.Cap() <= 1<<16 {
		writers.Put(w)
	}
	return out
}

// reader decodes msgpack with a sticky error: after the first failure every
// method returns zero values, and err says what went wrong.
type reader struct {
	r       *bytes.Reader
	d       *msgpack.Decoder
	err     error
	scratch []byte            // reused by name
	strs    map[string]string // interned string values
	arena   []Prop            // where props are allocated
}

var readers = sync.Pool{New: func() any {
	r := &reader{r: bytes.NewReader(nil)}
	r.d = msgpack.NewDecoder(r.r)
	return r
}}

// newReader returns a reader over b from a pool; release returns it.
func newReader(b []byte) *reader {
	r := readers.Get().(*reader)
	r.r.Reset(b)
	r.d.Reset(r.r)
	r.err, r.strs = nil, nil
	return r
}

func (r *reader) release() {
	r.r.Reset(nil)
	r.strs, r.arena = nil, nil
	readers.Put(r)
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: malformed bytes: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
}

func (r *reader) peek() byte {
	if r.err != nil {
		return 0
	}
	c, err := r.d.PeekCode()
	if err != nil {
		r.fail("%v", err)
		return 0
	}
	return c
}

// arr reads an array header and checks its length is within [min, max].
func (r *reader) arr(min, max int) int {
	if r.err != nil {
		return 0
	}
	var n int
	var err error
	if c, e := r.r.ReadByte(); e == nil && msgpcode.IsFixedArray(c) {
		n = int(c & 0x0f)
	} else {
		if e == nil {
			_ = r.r.UnreadByte()
		}
		n, err = r.d.DecodeArrayLen()
	}
	if err != nil || n < min || n > max {
		r.fail("array of %d, want %d..%d (%v)", n, min, max, err)
		return 0
	}
	return n
}

// count reads an array header of any length the remaining input could hold,
// assuming each element takes at least per bytes.
func (r *reader) count(per int) int {
	return r.arr(0, r.r.Len()/per)
}

// uint reads a msgpack unsigned integer (positive fixint or uint8..uint64),
// decoding the few formats directly: it is the hot path of every op.
func (r *reader) uint() uint64 {
	if r.err != nil {
		return 0
	}
	c, err := r.r.ReadByte()
	if err != nil {
		r.fail("%v", err)
		return 0
	}
	if c <= msgpcode.PosFixedNumHigh {
		return uint64(c)
	}
	switch c {
	case msgpcode.Uint8:
		return r.be(1)
	case msgpcode.Uint16:
		return r.be(2)
	case msgpcode.Uint32:
		return r.be(4)
	case msgpcode.Uint64:
		return r.be(8)
	}
	r.fail("want an unsigned integer, got code %#x", c)
	return 0
}

// be reads an n-byte big-endian integer.
func (r *reader) be(n int) uint64 {
	var v uint64
	for range n {
		b, err := r.r.ReadByte()
		if err != nil {
			r.fail("%v", err)
			return 0
		}
		v = v<<8 | uint64(b)
	}
	return v
}

func (r *reader) id() ID {
	rep := r.uint()
	return ID{Replica: ReplicaID(rep), Seq: r.uint()}
}

func (r *reader) str(max int) string {
	return string(r.strBytes(max))
}

// name reads a string of at most 64 bytes into a scratch buffer, valid
// until the next call: for map lookups that do not allocate.
func (r *reader) name() []byte { return r.strBytes(64) }

// strBytes reads a string of at most limit bytes into the scratch buffer.
func (r *reader) strBytes(limit int) []byte {
	if r.err != nil {
		return nil
	}
	c, err := r.r.ReadByte()
	if err != nil {
		r.fail("%v", err)
		return nil
	}
	if !msgpcode.IsFixedString(c) {
		_ = r.r.UnreadByte()
		if !msgpcode.IsString(c) {
			r.fail("want a string, got code %#x", c)
			return nil
		}
		return r.blob(limit)
	}
	n := int(c & msgpcode.FixedStrMask)
	if n > limit || n > r.r.Len() {
		r.fail("string of %d bytes, at most %d", n, min(limit, r.r.Len()))
		return nil
	}
	if cap(r.scratch) < 64 {
		r.scratch = make([]byte, 64)
	}
	b := r.scratch[:n]
	_, _ = r.r.Read(b) // cannot fail: n <= r.r.Len()
	return b
}

// intern returns a string equal to b, shared with earlier equal short
// strings (colours, enum values repeat across elements).
func (r *reader) intern(b []byte) string {
	if len(b) > 32 {
		return string(b)
	}
	if s, ok := r.strs[string(b)]; ok {
		return s
	}
	if r.strs == nil {
		r.strs = map[string]string{}
	}
	s := string(b)
	r.strs[s] = s
	return s
}

// blob reads a string or bin body of at most max bytes, checking the length
// against the input left before allocating. The bytes are in a scratch
// buffer, valid until the next call.
func (r *reader) blob(limit int) []byte {
	if r.err != nil {
		return nil
	}
	n, err := r.d.DecodeBytesLen()
	if err != nil || n < 0 || n > limit || n > r.r.Len() {
		r.fail("string or bin of %d bytes, at most %d (%v)", n, min(limit, r.r.Len()), err)
		return nil
	}
	if cap(r.scratch) < n {
		r.scratch = make([]byte, max(n, 64))
	}
	b := r.scratch[:n]
	if err := r.d.ReadFull(b); err != nil {
		r.fail("%v", err)
		return nil
	}
	return b
}

func (r *reader) boolean() bool {
	if r.err != nil {
		return false
	}
	b, err := r.d.DecodeBool()
	if err != nil {
		r.fail("%v", err)
	}
	return b
}

func (r *reader) isNil() bool {
	if r.peek() == msgpcode.Nil && r.err == nil {
		_ = r.d.DecodeNil()
		return true
	}
	return false
}

func (r *reader) header(magic string) {
	if got := r.str(8); got != magic && r.err == nil {
		r.fail("header %q, want %q", got, magic)
	}
	if v := r.uint(); v != formatVersion && r.err == nil {
		r.fail("format version %d, want %d", v, formatVersion)
	}
}

// end checks that the whole input was consumed.
func (r *reader) end() error {
	if r.err == nil && r.r.Len() != 0 {
		r.fail("%d trailing bytes", r.r.Len())
	}
	return r.err
}

func (r *reader) value() Value {
	// Fast paths for the usual numbers.
	if c, err := r.r.ReadByte(); err == nil && c <= msgpcode.PosFixedNumHigh {
		return Number(float64(c))
	} else if err == nil && c == msgpcode.Double {
		return Value{k: KindNumber, a: r.be(8)}
	} else if err == nil {
		_ = r.r.UnreadByte()
	}
	c := r.peek()
	if r.err != nil {
		return Value{}
	}
	switch {
	case c == msgpcode.Nil:
		_ = r.d.DecodeNil()
		return Null
	case c == msgpcode.True || c == msgpcode.False:
		return Bool(r.boolean())
	case msgpcode.IsFixedNum(c), c == msgpcode.Uint8, c == msgpcode.Uint16, c == msgpcode.Uint32,
		c == msgpcode.Uint64, c == msgpcode.Int8, c == msgpcode.Int16, c == msgpcode.Int32,
		c == msgpcode.Int64, c == msgpcode.Float, c == msgpcode.Double:
		f, err := r.d.DecodeFloat64()
		if err != nil {
			r.fail("%v", err)
		}
		return Number(f)
	case msgpcode.IsString(c):
		return String(r.intern(r.strBytes(defaultMaxLen * 4)))
	case msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32:
		r.arr(2, 2)
		return Ref(r.id())
	case msgpcode.IsBin(c):
		b := r.blob(8 * defaultMaxLen * 4)
		if len(b)%8 != 0 {
			r.fail("points of %d bytes", len(b))
			return Value{}
		}
		return Value{k: KindPoints, s: string(b)}
	}
	r.fail("unexpected value code %#x", c)
	return Value{}
}

func (r *reader) props() []Prop {
	n := r.count(1)
	if n%2 != 0 {
		r.fail("odd property array")
		return nil
	}
	// Props of all ops come from one arena per reader (a fresh one once
	// full, so earlier slices stay valid).
	if cap(r.arena)-len(r.arena) < n/2 {
		r.arena = make([]Prop, 0, max(n/2, 2*cap(r.arena), 4))
	}
	ps := r.arena[len(r.arena) : len(r.arena)+n/2 : len(r.arena)+n/2]
	r.arena = r.arena[:len(r.arena)+n/2]
	for i := range ps {
		ps[i].Key = r.propName()
		ps[i].Value = r.value()
	}
	return ps
}

// propName reads a property name, sharing the names of the default schema
// instead of allocating.
func (r *reader) propName() string {
	b := r.name()
	known := DefaultSchema()
	if k, ok := known.propIndex[string(b)]; ok {
		return known.propNames[k]
	}
	return string(b)
}

func (r *reader) vv() VersionVector {
	n := r.count(1)
	if n%2 != 0 {
		r.fail("odd version vector array")
		return nil
	}
	v := make(VersionVector, n/2)
	var prev ReplicaID
	for i := 0; i < n/2; i++ {
		rep := ReplicaID(r.uint())
		s := r.uint()
		if r.err != nil {
			return nil
		}
		if rep == 0 || s == 0 || (i > 0 && rep <= prev) || s >= maxCounter {
			r.fail("version vector entry %d:%d out of order or zero", rep, s)
			return nil
		}
		v[rep] = s
		prev = rep
	}
	return v
}

func (r *reader) op() Op {
	var o Op
	r.opInto(&o)
	return o
}

func (r *reader) opInto(o *Op) {
	n := r.arr(4, maxOpFields)
	o.Kind = OpKind(r.uint())
	o.ID = r.id()
	if r.err != nil {
		return
	}
	if int(o.Kind) >= len(opFields) || opFields[o.Kind] == 0 {
		r.fail("unknown op kind %d", o.Kind)
		return
	}
	if n != opFields[o.Kind] {
		r.fail("%v op of %d fields, want %d", o.Kind, n, opFields[o.Kind])
		return
	}
	switch o.Kind {
	case OpSkip:
		o.Len = r.uint()
		return
	case OpTextInsert:
		o.Elem = r.id()
		o.TextProp = r.propName()
		o.Text = TextOp{Kind: TextInsert, ID: o.ID, Left: r.id(), Right: r.id()}
		if c := r.peek(); msgpcode.IsString(c) {
			o.Text.Text = r.str(4 * maxTextInsert)
		} else {
			o.Text.Gone = r.uint()
		}
		return
	case OpTextDelete:
		o.Elem = r.id()
		o.TextProp = r.propName()
		o.Text = TextOp{Kind: TextDelete, ID: o.ID}
		n := r.count(1)
		if n%3 != 0 {
			r.fail("delete spans of %d numbers", n)
			return
		}
		if n > 0 {
			o.Text.Spans = make([]TextSpan, n/3)
		}
		for i := range o.Text.Spans {
			o.Text.Spans[i] = TextSpan{Start: r.id(), Len: r.uint()}
		}
		return
	}
	o.Counter = r.uint()
	switch o.Kind {
	case OpCreate:
		o.Elem = o.ID
		o.Type = r.str(64)
		o.Parent = r.id()
		o.Key = r.str(MaxKeyLen)
		o.Props = r.props()
	case OpSet:
		o.Elem = r.id()
		o.Props = r.props()
	case OpDelete, OpRestore:
		o.Elem = r.id()
	case OpMove:
		o.Elem = r.id()
		o.Parent = r.id()
		o.Key = r.str(MaxKeyLen)
	case OpCollect:
		o.Horizon = r.vv()
		n := r.count(1)
		if n%2 != 0 {
			r.fail("odd drop list")
			return
		}
		o.Drop = make([]ID, n/2)
		for i := range o.Drop {
			o.Drop[i] = r.id()
		}
	}
}

// DecodeUpdate decodes an update and checks each op on its own (ids,
// counters, ranges, z-order keys, property order), without a schema. It
// returns an error wrapping [ErrInvalid] for malformed bytes, trailing bytes,
// an unknown format version or op kind, or a bad op. [Doc.Apply] does the
// rest of the checks.
func DecodeUpdate(b []byte) (*Update, error) {
	r := newReader(b)
	defer r.release()
	r.arr(3, 3)
	r.header(updateMagic)
	n := r.count(5)
	u := &Update{Ops: make([]Op, 0, n)}
	for i := 0; i < n && r.err == nil; i++ {
		u.Ops = u.Ops[:i+1]
		r.opInto(&u.Ops[i])
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	if err := checkOps(u); err != nil {
		return nil, err
	}
	return u, nil
}
