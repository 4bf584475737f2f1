package crdt

import (
	"encoding/binary"
	"math"
	"strconv"
	"strings"
)

// Kind is the kind of a property value, and of a property in a [Schema].
type Kind uint8

// The value kinds. The numeric values are part of no encoding (values are
// encoded by their msgpack type), but the order is stable.
const (
	// KindNull is the absent value. Setting a property to [Null] clears it;
	// the clear is itself a last-writer-wins write.
	KindNull Kind = iota
	// KindNumber is a finite float64.
	KindNumber
	// KindString is a UTF-8 string, last-writer-wins as a whole.
	KindString
	// KindBool is true or false.
	KindBool
	// KindRef references another element by its [ID] (a binding: the start
	// or end of a connector). A reference may dangle; see [Doc.Dangling].
	KindRef
	// KindPoints is a list of float64 coordinates (x0, y0, x1, y1, ...).
	KindPoints
	// KindText is a property whose value is itself a CRDT: collaborative
	// text ([Text]) edited by [OpTextInsert] and [OpTextDelete] operations
	// ([Doc.InsertText], [Doc.DeleteText]) and read with [Doc.Text]. It is
	// never a [Value]: create and set operations cannot write it.
	KindText
)

var kindNames = [...]string{"null", "number", "string", "bool", "ref", "points", "text"}

// String returns the kind's lower-case name.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Value is one property value: a small immutable tagged union. The zero Value
// is [Null]. Values compare with [Value.Equal].
type Value struct {
	s string // KindString; KindPoints as packed little-endian float64s
	a uint64 // KindNumber bits; KindBool 0/1; KindRef replica
	b uint64 // KindRef seq
	k Kind
}

// Null is the absent value.
var Null = Value{}

// Number returns a number value. Non-finite numbers are representable but
// every [Schema] refuses them.
func Number(f float64) Value { return Value{k: KindNumber, a: math.Float64bits(f)} }

// String returns a string value.
func String(s string) Value { return Value{k: KindString, s: s} }

// Bool returns a boolean value.
func Bool(b bool) Value {
	v := Value{k: KindBool}
	if b {
		v.a = 1
	}
	return v
}

// Ref returns a reference to the element id.
func Ref(id ID) Value { return Value{k: KindRef, a: uint64(id.Replica), b: id.Seq} }

// Points returns a list of coordinates. The slice is copied.
func Points(p ...float64) Value {
	buf := make([]byte, 8*len(p))
	for i, f := range p {
		binary.LittleEndian.PutUint64(buf[8*i:], math.Float64bits(f))
	}
	return Value{k: KindPoints, s: string(buf)}
}

// Kind returns the value's kind.
func (v Value) Kind() Kind { return v.k }

// IsNull reports whether v is the absent value.
func (v Value) IsNull() bool { return v.k == KindNull }

// Float returns the number, or 0 if v is not a number.
func (v Value) Float() float64 {
	if v.k != KindNumber {
		return 0
	}
	return math.Float64frombits(v.a)
}

// Str returns the string, or "" if v is not a string.
func (v Value) Str() string {
	if v.k != KindString {
		return ""
	}
	return v.s
}

// Bool returns the boolean, or false if v is not a boolean.
func (v Value) Bool() bool { return v.k == KindBool && v.a == 1 }

// Ref returns the referenced element, or the zero ID if v is not a reference.
func (v Value) Ref() ID {
	if v.k != KindRef {
		return ID{}
	}
	return ID{Replica: ReplicaID(v.a), Seq: v.b}
}

// Points returns a fresh copy of the coordinates, or nil if v is not a
// points value.
func (v Value) Points() []float64 {
	if v.k != KindPoints {
		return nil
	}
	b := []byte(v.s)
	out := make([]float64, len(b)/8)
	for i := range out {
		out[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
	}
	return out
}

// pointsLen returns the number of coordinates without copying them.
func (v Value) pointsLen() int { return len(v.s) / 8 }

// Equal reports whether v and o are the same value. Numbers compare by bits,
// so Number(0) and Number(-0) differ, as they encode differently.
func (v Value) Equal(o Value) bool { return v == o }

// String formats the value for debugging and examples.
func (v Value) String() string {
	switch v.k {
	case KindNull:
		return "null"
	case KindNumber:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	case KindString:
		return strconv.Quote(v.s)
	case KindBool:
		return strconv.FormatBool(v.Bool())
	case KindRef:
		id := v.Ref()
		return "ref(" + strconv.FormatUint(uint64(id.Replica), 10) + "." + strconv.FormatUint(id.Seq, 10) + ")"
	case KindPoints:
		var b strings.Builder
		b.WriteString("points(")
		for i, f := range v.Points() {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(strconv.FormatFloat(f, 'g', -1, 64))
		}
		b.WriteByte(')')
		return b.String()
	}
	return v.k.String()
}

// Props is a set of property writes, keyed by property name.
type Props map[string]Value
