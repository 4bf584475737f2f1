package flag

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"

	"github.com/Masterminds/semver/v3"
)

// Type is the type of a flag's values.
type Type string

// Flag types.
const (
	Boolean Type = "boolean"
	String  Type = "string"
	Number  Type = "number"
	JSON    Type = "json" // any JSON value
)

// Valid reports whether t is one of the four types.
func (t Type) Valid() bool {
	switch t {
	case Boolean, String, Number, JSON:
		return true
	}
	return false
}

// Holds reports whether the JSON value v is of type t.
func (t Type) Holds(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	if len(v) == 0 || !json.Valid(v) {
		return false
	}
	switch t {
	case Boolean:
		return string(v) == "true" || string(v) == "false"
	case String:
		return v[0] == '"'
	case Number:
		return v[0] == '-' || v[0] >= '0' && v[0] <= '9'
	case JSON:
		return true
	}
	return false
}

// DefaultStickiness is the context attribute rollouts hash when a flag names
// none: OpenFeature's targeting key.
const DefaultStickiness = "targetingKey"

// Flag is the definition of one feature flag.
type Flag struct {
	Key         string `json:"key"`
	Type        Type   `json:"type"`
	Description string `json:"description,omitempty"`
	// Enabled false serves OffVariant to everyone (reason DISABLED).
	Enabled bool `json:"enabled"`
	// Variants name the values the flag can take; each value is of Type.
	Variants map[string]json.RawMessage `json:"variants"`
	// OffVariant is served while the flag is disabled, and to those a
	// default rollout leaves out.
	OffVariant string `json:"off_variant"`
	// Rules are tried in order; the first that applies decides.
	Rules []Rule `json:"rules,omitempty"`
	// Default is served when no rule applies.
	Default Serve `json:"default"`
	// Salt goes into every bucket of the flag; changing it reshuffles
	// who is in a rollout.
	Salt string `json:"salt"`
	// Stickiness names the context attribute rollouts hash
	// (DefaultStickiness if empty).
	Stickiness string `json:"stickiness,omitempty"`
}

// Rule serves Serve to the contexts that satisfy every condition (a rule
// without conditions applies to everyone).
type Rule struct {
	Name       string      `json:"name,omitempty"`
	Conditions []Condition `json:"conditions,omitempty"`
	Serve      Serve       `json:"serve"`
}

// Serve says what a rule (or the default) serves: exactly one of a fixed
// Variant or a Rollout.
type Serve struct {
	Variant string   `json:"variant,omitempty"`
	Rollout *Rollout `json:"rollout,omitempty"`
}

// Rollout lets in Percentage percent of the stickiness values and splits
// them among Variants in proportion to their weights. Percentage has at most
// three decimals (the bucket resolution is 1/1000 of a percent).
type Rollout struct {
	Percentage float64    `json:"percentage"`
	Variants   []Weighted `json:"variants"`
}

// Weighted is one variant of a split and its share.
type Weighted struct {
	Variant string `json:"variant"`
	Weight  int    `json:"weight"`
}

// Segment is a reusable set of rules: a context is in the segment when it
// satisfies every condition of at least one of them.
type Segment struct {
	Key         string        `json:"key"`
	Description string        `json:"description,omitempty"`
	Rules       []SegmentRule `json:"rules"`
}

// SegmentRule is one way into a segment.
type SegmentRule struct {
	Conditions []Condition `json:"conditions"`
}

// Op is a condition's operator.
type Op string

// Operators. String operators compare strings; number operators compare
// numbers; semver operators compare semantic versions (a leading "v" and
// missing minor or patch numbers are accepted). in_segment asks whether the
// context is in any of the segments named by Values and needs no attribute.
const (
	OpEquals     Op = "equals" // exactly one value
	OpIn         Op = "in"     // equals one of the values
	OpContains   Op = "contains"
	OpStartsWith Op = "starts_with"
	OpEndsWith   Op = "ends_with"
	OpLT         Op = "lt"
	OpLE         Op = "le"
	OpGT         Op = "gt"
	OpGE         Op = "ge"
	OpSemverEQ   Op = "semver_eq"
	OpSemverLT   Op = "semver_lt"
	OpSemverLE   Op = "semver_le"
	OpSemverGT   Op = "semver_gt"
	OpSemverGE   Op = "semver_ge"
	OpInSegment  Op = "in_segment"
)

// opKind groups operators by what their values must be.
type opKind int

const (
	kindScalar opKind = iota + 1 // strings, numbers or booleans
	kindString
	kindNumber
	kindSemver
	kindSegment
)

var opKinds = map[Op]opKind{
	OpEquals: kindScalar, OpIn: kindScalar,
	OpContains: kindString, OpStartsWith: kindString, OpEndsWith: kindString,
	OpLT: kindNumber, OpLE: kindNumber, OpGT: kindNumber, OpGE: kindNumber,
	OpSemverEQ: kindSemver, OpSemverLT: kindSemver, OpSemverLE: kindSemver, OpSemverGT: kindSemver, OpSemverGE: kindSemver,
	OpInSegment: kindSegment,
}

// Condition tests one context attribute against Values: it holds when the
// attribute satisfies Op for at least one value (for an array attribute:
// when at least one element does). A missing attribute never satisfies a
// condition, negated or not. Negate inverts the answer for present
// attributes (and for in_segment).
type Condition struct {
	Attribute string `json:"attribute,omitempty"`
	Op        Op     `json:"op"`
	Values    []any  `json:"values"`
	Negate    bool   `json:"negate,omitempty"`

	// parsed holds Values as semantic versions for the semver operators;
	// Validate fills it.
	parsed []*semver.Version
}

// Limits on definitions.
const (
	MaxVariants   = 100
	MaxRules      = 200
	MaxConditions = 50
	MaxValues     = 1000
	MaxWeight     = 1_000_000
	MaxValueBytes = 32 << 10 // one variant's JSON value
)

var (
	keyRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	variantRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	attrRE    = regexp.MustCompile(`^[A-Za-z0-9_$][A-Za-z0-9._$-]{0,127}$`)
)

// ValidKey reports whether s may name a flag, segment or config value: 1 to
// 128 letters, digits, '.', '_' or '-', starting with a letter or digit.
func ValidKey(s string) bool { return keyRE.MatchString(s) }

// Error is a definition that does not validate: Field says where (a path
// such as "rules[2].conditions[0].values"), Message what is wrong.
type Error struct {
	Field   string
	Message string
}

func (e *Error) Error() string { return e.Field + ": " + e.Message }

func errorf(field, format string, args ...any) *Error {
	return &Error{Field: field, Message: fmt.Sprintf(format, args...)}
}

// Validate checks f and prepares it for evaluation; evaluate only flags
// that validated. It returns an *Error naming the first problem.
func (f *Flag) Validate() error {
	if !ValidKey(f.Key) {
		return errorf("key", "must be 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	if !f.Type.Valid() {
		return errorf("type", "must be one of boolean, string, number, json")
	}
	if len(f.Variants) == 0 || len(f.Variants) > MaxVariants {
		return errorf("variants", "must name 1 to %d variants", MaxVariants)
	}
	for name, v := range f.Variants {
		field := "variants." + name
		if !variantRE.MatchString(name) {
			return errorf(field, "variant names are 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit")
		}
		if len(v) > MaxValueBytes {
			return errorf(field, "value is larger than %d bytes", MaxValueBytes)
		}
		if !f.Type.Holds(v) {
			return errorf(field, "value must be a JSON %s", f.Type)
		}
		if f.Type == Number {
			var n float64
			if err := json.Unmarshal(v, &n); err != nil {
				return errorf(field, "value must be a finite number")
			}
		}
	}
	if _, ok := f.Variants[f.OffVariant]; !ok {
		return errorf("off_variant", "must name one of the variants")
	}
	if len(f.Rules) > MaxRules {
		return errorf("rules", "at most %d rules", MaxRules)
	}
	for i := range f.Rules {
		field := fmt.Sprintf("rules[%d]", i)
		if err := validateConditions(field+".conditions", f.Rules[i].Conditions, true); err != nil {
			return err
		}
		if err := f.validateServe(field+".serve", f.Rules[i].Serve); err != nil {
			return err
		}
	}
	if err := f.validateServe("default", f.Default); err != nil {
		return err
	}
	if len(f.Salt) > 128 {
		return errorf("salt", "at most 128 bytes")
	}
	if f.Stickiness != "" && !attrRE.MatchString(f.Stickiness) {
		return errorf("stickiness", "must be an attribute name")
	}
	return nil
}

func (f *Flag) validateServe(field string, s Serve) error {
	switch {
	case s.Variant != "" && s.Rollout != nil:
		return errorf(field, "serve either a variant or a rollout, not both")
	case s.Variant != "":
		if _, ok := f.Variants[s.Variant]; !ok {
			return errorf(field+".variant", "must name one of the variants")
		}
		return nil
	case s.Rollout == nil:
		return errorf(field, "must serve a variant or a rollout")
	}
	r := s.Rollout
	if math.IsNaN(r.Percentage) || r.Percentage < 0 || r.Percentage > 100 {
		return errorf(field+".rollout.percentage", "must be between 0 and 100")
	}
	if t := r.Percentage * 1000; math.Abs(t-math.Round(t)) > 1e-6 {
		return errorf(field+".rollout.percentage", "at most three decimals")
	}
	if len(r.Variants) == 0 || len(r.Variants) > MaxVariants {
		return errorf(field+".rollout.variants", "must split among 1 to %d variants", MaxVariants)
	}
	total := 0
	for i, w := range r.Variants {
		wf := fmt.Sprintf("%s.rollout.variants[%d]", field, i)
		if _, ok := f.Variants[w.Variant]; !ok {
			return errorf(wf+".variant", "must name one of the variants")
		}
		if w.Weight < 1 || w.Weight > MaxWeight {
			return errorf(wf+".weight", "must be between 1 and %d", MaxWeight)
		}
		total += w.Weight
	}
	if total > MaxWeight {
		return errorf(field+".rollout.variants", "weights add up to more than %d", MaxWeight)
	}
	return nil
}

// Validate checks s and prepares it for evaluation. Segment conditions may
// not use in_segment.
func (s *Segment) Validate() error {
	if !ValidKey(s.Key) {
		return errorf("key", "must be 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	if len(s.Rules) > MaxRules {
		return errorf("rules", "at most %d rules", MaxRules)
	}
	for i := range s.Rules {
		if err := validateConditions(fmt.Sprintf("rules[%d].conditions", i), s.Rules[i].Conditions, false); err != nil {
			return err
		}
	}
	return nil
}

func validateConditions(field string, cs []Condition, segmentsAllowed bool) error {
	if len(cs) > MaxConditions {
		return errorf(field, "at most %d conditions", MaxConditions)
	}
	for i := range cs {
		if err := cs[i].validate(fmt.Sprintf("%s[%d]", field, i), segmentsAllowed); err != nil {
			return err
		}
	}
	return nil
}

func (c *Condition) validate(field string, segmentsAllowed bool) error {
	kind, ok := opKinds[c.Op]
	if !ok {
		return errorf(field+".op", "unknown operator %q", c.Op)
	}
	if kind == kindSegment {
		if !segmentsAllowed {
			return errorf(field+".op", "segments cannot refer to segments")
		}
		if c.Attribute != "" {
			return errorf(field+".attribute", "in_segment takes no attribute")
		}
	} else if !attrRE.MatchString(c.Attribute) {
		return errorf(field+".attribute", "must be an attribute name")
	}
	if len(c.Values) == 0 || len(c.Values) > MaxValues {
		return errorf(field+".values", "must hold 1 to %d values", MaxValues)
	}
	if c.Op == OpEquals && len(c.Values) != 1 {
		return errorf(field+".values", "equals takes exactly one value; use in for several")
	}
	c.parsed = nil
	for j, v := range c.Values {
		vf := fmt.Sprintf("%s.values[%d]", field, j)
		switch kind {
		case kindScalar:
			switch v.(type) {
			case string, float64, bool:
			default:
				return errorf(vf, "must be a string, number or boolean")
			}
		case kindString:
			if _, ok := v.(string); !ok {
				return errorf(vf, "must be a string")
			}
		case kindNumber:
			if _, ok := v.(float64); !ok {
				return errorf(vf, "must be a number")
			}
		case kindSemver:
			s, _ := v.(string)
			sv, err := semver.NewVersion(s)
			if err != nil {
				return errorf(vf, "must be a semantic version such as 1.4.2")
			}
			c.parsed = append(c.parsed, sv)
		case kindSegment:
			if s, ok := v.(string); !ok || !ValidKey(s) {
				return errorf(vf, "must be a segment key")
			}
		}
	}
	return nil
}

// Context holds the attributes a flag is evaluated for, as decoded from
// JSON: strings, float64 numbers, booleans, arrays ([]any) and objects.
// OpenFeature's targeting key is the attribute "targetingKey".
type Context map[string]any

// stickiness returns the string a rollout hashes for attribute attr, and
// false when the context has no usable value: strings as they are, numbers
// in their shortest decimal form (strconv 'f', -1), booleans as "true" or
// "false".
func (c Context) stickiness(attr string) (string, bool) {
	switch v := c[attr].(type) {
	case string:
		return v, true
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(v), true
	}
	return "", false
}
