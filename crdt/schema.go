package crdt

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"sync"
	"unicode/utf8"
)

// PropSpec describes one property: its kind and the values it accepts. A
// property name means the same thing on every element type that allows it.
type PropSpec struct {
	// Kind is the kind every non-null value must have.
	Kind Kind
	// Min and Max bound numbers, inclusive. When both are zero, any finite
	// number is accepted. Non-finite numbers are always refused.
	Min, Max float64
	// MaxLen bounds strings (in bytes), points (in coordinates) and text
	// (in code points; see [KindText]). Zero means the package default,
	// 65536.
	MaxLen int
	// Enum, if not empty, lists the only strings accepted.
	Enum []string
	// Color requires strings to be "", "transparent", or a hex colour
	// #rgb, #rrggbb or #rrggbbaa.
	Color bool
}

// TypeSpec describes one element type.
type TypeSpec struct {
	// Container reports whether elements of this type may be parents (a
	// frame or a group). The canvas root is always a container.
	Container bool
	// Props lists the property names this type allows.
	Props []string
}

// defaultMaxLen bounds strings and points when a PropSpec leaves MaxLen zero.
const defaultMaxLen = 1 << 16

// maxProps bounds the number of property names a schema may declare, so a
// property fits the uint16 index elements store.
const maxProps = 1 << 12

// Schema lists the element types and properties a document accepts. Every
// update is checked against it before anything is applied. A Schema is
// immutable once built and safe for concurrent use.
type Schema struct {
	propNames []string // sorted; a property's index is its position
	props     []PropSpec
	propIndex map[string]uint16
	typeNames []string // sorted
	types     map[string]*typeInfo
}

type typeInfo struct {
	name      string
	container bool
	allowed   []bool // by property index
	names     []string
}

// NewSchema builds a schema. It returns an error wrapping [ErrInvalid] when a
// type names an unknown property, a property has an unknown kind or
// [KindNull], a [KindText] property has a range, enum or colour rule, a name
// is empty or longer than 64 bytes, or there are more than 4096 properties.
func NewSchema(props map[string]PropSpec, types map[string]TypeSpec) (*Schema, error) {
	if len(props) > maxProps {
		return nil, fmt.Errorf("%w: schema has %d properties, at most %d", ErrInvalid, len(props), maxProps)
	}
	s := &Schema{propIndex: make(map[string]uint16, len(props)), types: make(map[string]*typeInfo, len(types))}
	for name := range props {
		s.propNames = append(s.propNames, name)
	}
	sort.Strings(s.propNames)
	for i, name := range s.propNames {
		spec := props[name]
		if err := checkName(name); err != nil {
			return nil, err
		}
		switch spec.Kind {
		case KindNumber, KindString, KindBool, KindRef, KindPoints:
		case KindText:
			if spec.Min != 0 || spec.Max != 0 || len(spec.Enum) > 0 || spec.Color {
				return nil, fmt.Errorf("%w: text property %q has a range, enum or colour rule", ErrInvalid, name)
			}
		default:
			return nil, fmt.Errorf("%w: property %q has kind %v, which a schema cannot declare", ErrInvalid, name, spec.Kind)
		}
		if spec.Min > spec.Max || math.IsNaN(spec.Min) || math.IsNaN(spec.Max) {
			return nil, fmt.Errorf("%w: property %q has range [%v, %v]", ErrInvalid, name, spec.Min, spec.Max)
		}
		if spec.MaxLen <= 0 {
			spec.MaxLen = defaultMaxLen
		}
		spec.Enum = slices.Clone(spec.Enum)
		s.props = append(s.props, spec)
		s.propIndex[name] = uint16(i)
	}
	for name, t := range types {
		if err := checkName(name); err != nil {
			return nil, err
		}
		s.typeNames = append(s.typeNames, name)
		ti := &typeInfo{name: name, container: t.Container, allowed: make([]bool, len(s.propNames))}
		for _, p := range t.Props {
			i, ok := s.propIndex[p]
			if !ok {
				return nil, fmt.Errorf("%w: type %q allows unknown property %q", ErrInvalid, name, p)
			}
			if !ti.allowed[i] {
				ti.allowed[i] = true
				ti.names = append(ti.names, p)
			}
		}
		sort.Strings(ti.names)
		s.types[name] = ti
	}
	sort.Strings(s.typeNames)
	return s, nil
}

func checkName(name string) error {
	if name == "" || len(name) > 64 || !utf8.ValidString(name) {
		return fmt.Errorf("%w: bad schema name %q", ErrInvalid, name)
	}
	return nil
}

// Types returns the element type names, sorted.
func (s *Schema) Types() []string { return slices.Clone(s.typeNames) }

// Type returns the spec of an element type, and whether it exists.
func (s *Schema) Type(name string) (TypeSpec, bool) {
	t, ok := s.types[name]
	if !ok {
		return TypeSpec{}, false
	}
	return TypeSpec{Container: t.container, Props: slices.Clone(t.names)}, true
}

// Prop returns the spec of a property, and whether it exists.
func (s *Schema) Prop(name string) (PropSpec, bool) {
	i, ok := s.propIndex[name]
	if !ok {
		return PropSpec{}, false
	}
	spec := s.props[i]
	spec.Enum = slices.Clone(spec.Enum)
	return spec, true
}

// CheckValue reports whether v is acceptable for the property name: the
// property exists and v is [Null] or of its kind and within its bounds. The
// error wraps [ErrInvalid]. No value is acceptable for a [KindText]
// property: text is edited with text operations ([Doc.InsertText]).
func (s *Schema) CheckValue(name string, v Value) error {
	i, ok := s.propIndex[name]
	if !ok {
		return fmt.Errorf("%w: unknown property %q", ErrInvalid, name)
	}
	return s.checkIndexed(i, v)
}

func (s *Schema) checkIndexed(i uint16, v Value) error {
	spec := &s.props[i]
	if spec.Kind == KindText {
		return fmt.Errorf("%w: property %q is text: it is edited with text operations, not written", ErrInvalid, s.propNames[i])
	}
	if v.k == KindNull {
		return nil
	}
	if v.k != spec.Kind {
		return fmt.Errorf("%w: property %q wants %v, got %v", ErrInvalid, s.propNames[i], spec.Kind, v.k)
	}
	switch v.k {
	case KindNumber:
		f := v.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("%w: property %q is not finite", ErrInvalid, s.propNames[i])
		}
		if (spec.Min != 0 || spec.Max != 0) && (f < spec.Min || f > spec.Max) {
			return fmt.Errorf("%w: property %q = %v is outside [%v, %v]", ErrInvalid, s.propNames[i], f, spec.Min, spec.Max)
		}
	case KindString:
		if len(v.s) > spec.MaxLen || !utf8.ValidString(v.s) {
			return fmt.Errorf("%w: property %q is too long or not UTF-8", ErrInvalid, s.propNames[i])
		}
		if len(spec.Enum) > 0 && !slices.Contains(spec.Enum, v.s) {
			return fmt.Errorf("%w: property %q = %q is not one of %v", ErrInvalid, s.propNames[i], v.s, spec.Enum)
		}
		if spec.Color && !validColor(v.s) {
			return fmt.Errorf("%w: property %q = %q is not a colour", ErrInvalid, s.propNames[i], v.s)
		}
	case KindRef:
		id := v.Ref()
		if id.Replica == 0 || id.Seq == 0 {
			return fmt.Errorf("%w: property %q references the root or a zero id", ErrInvalid, s.propNames[i])
		}
	case KindPoints:
		if v.pointsLen() > spec.MaxLen {
			return fmt.Errorf("%w: property %q has too many points", ErrInvalid, s.propNames[i])
		}
		for _, f := range v.Points() {
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return fmt.Errorf("%w: property %q has a non-finite point", ErrInvalid, s.propNames[i])
			}
		}
	}
	return nil
}

func validColor(s string) bool {
	if s == "" || s == "transparent" {
		return true
	}
	if s[0] != '#' {
		return false
	}
	switch len(s) {
	case 4, 7, 9:
	default:
		return false
	}
	for _, c := range []byte(s[1:]) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// DefaultSchema returns the MagicCanvas schema: rect, ellipse, line, arrow,
// connector, text, sticky, image, frame and group, with geometry, style,
// text and binding properties. Frames and groups are containers. Every call
// returns the same immutable Schema.
//
// Text comes in two properties on the types that hold text (rect, ellipse,
// text, sticky, arrow, connector): "content", a [KindText] property that
// people type into together ([Doc.InsertText]), and "text", a
// last-writer-wins string written whole, kept for documents and clients
// that predate "content".
func DefaultSchema() *Schema { return defaultSchema() }

var defaultSchema = sync.OnceValue(buildDefaultSchema)

func buildDefaultSchema() *Schema {
	coord := PropSpec{Kind: KindNumber, Min: -1e7, Max: 1e7}
	size := PropSpec{Kind: KindNumber, Min: 0, Max: 1e7}
	color := PropSpec{Kind: KindString, MaxLen: 9, Color: true}
	arrowhead := PropSpec{Kind: KindString, Enum: []string{"none", "arrow", "triangle", "dot", "bar"}}
	props := map[string]PropSpec{
		"x":           coord,
		"y":           coord,
		"w":           size,
		"h":           size,
		"rotation":    {Kind: KindNumber, Min: -360, Max: 360},
		"opacity":     {Kind: KindNumber, Min: 0, Max: 1},
		"fill":        color,
		"stroke":      color,
		"strokeWidth": {Kind: KindNumber, Min: 0, Max: 100},
		"strokeStyle": {Kind: KindString, Enum: []string{"solid", "dashed", "dotted"}},
		"text":        {Kind: KindString, MaxLen: 100000},
		"content":     {Kind: KindText, MaxLen: 1 << 20},
		"fontSize":    {Kind: KindNumber, Min: 1, Max: 1000},
		"fontFamily":  {Kind: KindString, MaxLen: 100},
		"align":       {Kind: KindString, Enum: []string{"left", "center", "right"}},
		"points":      {Kind: KindPoints, MaxLen: 20000},
		"src":         {Kind: KindString, MaxLen: 2048},
		"name":        {Kind: KindString, MaxLen: 256},
		"start":       {Kind: KindRef},
		"end":         {Kind: KindRef},
		"startArrow":  arrowhead,
		"endArrow":    arrowhead,
		"locked":      {Kind: KindBool},
		"clip":        {Kind: KindBool},
	}
	box := []string{"x", "y", "w", "h", "rotation", "opacity", "locked"}
	shape := append(slices.Clone(box), "fill", "stroke", "strokeWidth", "strokeStyle", "text", "content", "fontSize", "fontFamily", "align")
	line := []string{"x", "y", "rotation", "opacity", "locked", "points", "stroke", "strokeWidth", "strokeStyle"}
	arrow := append(slices.Clone(line), "start", "end", "startArrow", "endArrow", "text", "content", "fontSize", "fontFamily")
	types := map[string]TypeSpec{
		"rect":      {Props: shape},
		"ellipse":   {Props: shape},
		"text":      {Props: append(slices.Clone(box), "fill", "text", "content", "fontSize", "fontFamily", "align")},
		"sticky":    {Props: append(slices.Clone(box), "fill", "text", "content", "fontSize", "fontFamily", "align")},
		"image":     {Props: append(slices.Clone(box), "src", "stroke", "strokeWidth")},
		"line":      {Props: line},
		"arrow":     {Props: arrow},
		"connector": {Props: arrow},
		"frame":     {Container: true, Props: append(slices.Clone(box), "fill", "stroke", "strokeWidth", "name", "clip")},
		"group":     {Container: true, Props: []string{"opacity", "locked", "name"}},
	}
	s, err := NewSchema(props, types)
	if err != nil {
		panic("crdt: default schema: " + err.Error())
	}
	return s
}
