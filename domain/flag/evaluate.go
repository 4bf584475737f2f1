package flag

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"math"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// Reason says why an evaluation gave its value, as OpenFeature names them.
type Reason string

// Reasons.
const (
	ReasonTargetingMatch Reason = "TARGETING_MATCH" // a rule served a fixed variant
	ReasonSplit          Reason = "SPLIT"           // a rollout (of a rule or the default) chose the variant
	ReasonDefault        Reason = "DEFAULT"         // no rule applied; the default served
	ReasonDisabled       Reason = "DISABLED"        // the flag is off
	ReasonError          Reason = "ERROR"           // see the error code
)

// ErrorCode says what went wrong when the reason is ERROR, as OpenFeature
// names it.
type ErrorCode string

// Error codes.
const (
	ErrFlagNotFound ErrorCode = "FLAG_NOT_FOUND" // no flag of that key in the environment
	ErrTypeMismatch ErrorCode = "TYPE_MISMATCH"  // the caller asked for another type than the flag's
)

// Result is the outcome of one evaluation. Rule is the index of the rule
// that decided, or -1.
type Result struct {
	Value     json.RawMessage
	Variant   string
	Reason    Reason
	ErrorCode ErrorCode
	Rule      int
}

// Seeds of the two hashes of a rollout.
const (
	RolloutSeed = "rollout"
	VariantSeed = "variant"
)

// Buckets is the number of buckets: Bucket returns 0 to Buckets-1, and a
// rollout of p percent lets in the buckets below p*Buckets/100.
const Buckets = 100_000

// Bucket returns the bucket of value for a flag: the SHA-256 of
// seed 0x00 flagKey 0x00 salt 0x00 value, its first four bytes read as a
// big-endian unsigned integer, modulo Buckets.
func Bucket(seed, flagKey, salt, value string) uint32 {
	var buf [512]byte
	b := append(buf[:0], seed...)
	b = append(b, 0)
	b = append(b, flagKey...)
	b = append(b, 0)
	b = append(b, salt...)
	b = append(b, 0)
	b = append(b, value...)
	sum := sha256.Sum256(b)
	return binary.BigEndian.Uint32(sum[:4]) % Buckets
}

// threshold is the first bucket a rollout of pct percent leaves out.
func threshold(pct float64) uint32 { return uint32(math.Round(pct * Buckets / 100)) }

// pick returns the variant of a split for variant bucket b: with weights
// w1..wn adding up to W, the first variant i with b*W/Buckets < w1+...+wi.
func pick(vs []Weighted, b uint32) string {
	total := 0
	for _, w := range vs {
		total += w.Weight
	}
	x := uint64(b) * uint64(total) / Buckets
	var cum uint64
	for _, w := range vs {
		cum += uint64(w.Weight)
		if x < cum {
			return w.Variant
		}
	}
	return vs[len(vs)-1].Variant
}

// Evaluate evaluates a flag that validated for ctx. segments holds the
// project's segments by key (a missing one has no members).
//
// A disabled flag serves OffVariant (DISABLED). Otherwise the first rule
// whose conditions all hold and whose serve applies decides: a fixed variant
// (TARGETING_MATCH) or a rollout (SPLIT). A rollout applies when the context
// has a stickiness value whose rollout bucket is below the threshold; when
// it does not, the next rule is tried. When no rule decides, the default
// serves: its fixed variant (DEFAULT), its rollout (SPLIT), or OffVariant
// (DEFAULT) for those its rollout leaves out.
func Evaluate(f *Flag, ctx Context, segments map[string]*Segment) Result {
	ev := Evaluator{ctx: ctx, segments: segments}
	return ev.Evaluate(f)
}

// Evaluator evaluates flags for one context, as [Evaluate] does, and parses
// each semantic version among the context's attributes once however many
// flags it evaluates. It is not safe for concurrent use.
type Evaluator struct {
	ctx      Context
	segments map[string]*Segment
	// versions holds the last few attribute values parsed as semantic
	// versions (v nil: not a version); contexts rarely have more.
	versions [4]struct {
		s string
		v *semver.Version
	}
	nversions int
}

// NewEvaluator returns an Evaluator for ctx and a project's segments.
func NewEvaluator(ctx Context, segments map[string]*Segment) *Evaluator {
	return &Evaluator{ctx: ctx, segments: segments}
}

// Evaluate evaluates a flag that validated.
func (ev *Evaluator) Evaluate(f *Flag) Result {
	if !f.Enabled {
		return f.result(f.OffVariant, ReasonDisabled, -1)
	}
	e := evaluation{f: f, ctx: ev.ctx}
	for i := range f.Rules {
		r := &f.Rules[i]
		if !ev.matchAll(r.Conditions, true) {
			continue
		}
		if r.Serve.Rollout == nil {
			return f.result(r.Serve.Variant, ReasonTargetingMatch, i)
		}
		if v, ok := e.rollout(r.Serve.Rollout); ok {
			return f.result(v, ReasonSplit, i)
		}
	}
	if f.Default.Rollout == nil {
		return f.result(f.Default.Variant, ReasonDefault, -1)
	}
	if v, ok := e.rollout(f.Default.Rollout); ok {
		return f.result(v, ReasonSplit, -1)
	}
	return f.result(f.OffVariant, ReasonDefault, -1)
}

// version returns s parsed as a semantic version, or nil.
func (ev *Evaluator) version(s string) *semver.Version {
	n := min(ev.nversions, len(ev.versions))
	for i := range n {
		if ev.versions[i].s == s {
			return ev.versions[i].v
		}
	}
	v, err := semver.NewVersion(s)
	if err != nil {
		v = nil
	}
	e := &ev.versions[ev.nversions%len(ev.versions)]
	e.s, e.v = s, v
	ev.nversions++
	return v
}

func (f *Flag) result(variant string, reason Reason, rule int) Result {
	return Result{Value: f.Variants[variant], Variant: variant, Reason: reason, Rule: rule}
}

// evaluation computes the stickiness value and its buckets once.
type evaluation struct {
	f        *Flag
	ctx      Context
	done     bool
	ok       bool
	value    string
	inBucket uint32
}

// rollout returns the variant r serves to the context, or false if r leaves
// it out.
func (e *evaluation) rollout(r *Rollout) (string, bool) {
	if !e.done {
		e.done = true
		attr := e.f.Stickiness
		if attr == "" {
			attr = DefaultStickiness
		}
		e.value, e.ok = e.ctx.stickiness(attr)
		if e.ok {
			e.inBucket = Bucket(RolloutSeed, e.f.Key, e.f.Salt, e.value)
		}
	}
	if !e.ok || e.inBucket >= threshold(r.Percentage) {
		return "", false
	}
	if len(r.Variants) == 1 {
		return r.Variants[0].Variant, true
	}
	return pick(r.Variants, Bucket(VariantSeed, e.f.Key, e.f.Salt, e.value)), true
}

// matchAll reports whether every condition holds; segments says whether
// in_segment conditions may be asked (not inside a segment).
func (ev *Evaluator) matchAll(cs []Condition, segments bool) bool {
	for i := range cs {
		if !ev.match(&cs[i], segments) {
			return false
		}
	}
	return true
}

// inSegment reports whether the context satisfies every condition of at
// least one of s's rules.
func (ev *Evaluator) inSegment(s *Segment) bool {
	for i := range s.Rules {
		if ev.matchAll(s.Rules[i].Conditions, false) {
			return true
		}
	}
	return false
}

func (ev *Evaluator) match(c *Condition, segments bool) bool {
	if c.Op == OpInSegment {
		in := false
		for _, v := range c.Values {
			if s := ev.segments[v.(string)]; segments && s != nil && ev.inSegment(s) {
				in = true
				break
			}
		}
		return in != c.Negate
	}
	attr, ok := ev.ctx[c.Attribute]
	if !ok || attr == nil {
		return false
	}
	var hit bool
	if arr, isArr := attr.([]any); isArr {
		if c.Op == OpContains {
			hit = c.anyValue(func(v any) bool { return containsEqual(arr, v) })
		} else {
			for _, el := range arr {
				if ev.matchScalar(c, el) {
					hit = true
					break
				}
			}
		}
	} else {
		hit = ev.matchScalar(c, attr)
	}
	return hit != c.Negate
}

func containsEqual(arr []any, v any) bool {
	for _, el := range arr {
		if el == v {
			return true
		}
	}
	return false
}

func (c *Condition) anyValue(fn func(v any) bool) bool {
	for _, v := range c.Values {
		if fn(v) {
			return true
		}
	}
	return false
}

// matchScalar tests one attribute value (not an array).
func (ev *Evaluator) matchScalar(c *Condition, attr any) bool {
	switch opKinds[c.Op] {
	case kindScalar:
		// Strings, numbers and booleans compare by type and value.
		switch attr.(type) {
		case string, float64, bool:
			return c.anyValue(func(v any) bool { return v == attr })
		}
		return false
	case kindString:
		s, ok := attr.(string)
		if !ok {
			return false
		}
		var fn func(s, v string) bool
		switch c.Op {
		case OpContains:
			fn = strings.Contains
		case OpStartsWith:
			fn = strings.HasPrefix
		default:
			fn = strings.HasSuffix
		}
		return c.anyValue(func(v any) bool { return fn(s, v.(string)) })
	case kindNumber:
		n, ok := attr.(float64)
		if !ok {
			return false
		}
		return c.anyValue(func(v any) bool { return compareHolds(c.Op, cmpFloat(n, v.(float64))) })
	case kindSemver:
		s, ok := attr.(string)
		if !ok {
			return false
		}
		sv := ev.version(s)
		if sv == nil {
			return false
		}
		for _, want := range c.parsed {
			if compareHolds(c.Op, sv.Compare(want)) {
				return true
			}
		}
	}
	return false
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// compareHolds reports whether a comparison result c (-1, 0, 1) satisfies op.
func compareHolds(op Op, c int) bool {
	switch op {
	case OpLT, OpSemverLT:
		return c < 0
	case OpLE, OpSemverLE:
		return c <= 0
	case OpGT, OpSemverGT:
		return c > 0
	case OpGE, OpSemverGE:
		return c >= 0
	case OpSemverEQ:
		return c == 0
	}
	return false
}
