package flag

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// vectors is testdata/vectors.json, the published test vectors.
type vectors struct {
	Buckets []struct {
		Seed    string `json:"seed"`
		FlagKey string `json:"flag_key"`
		Salt    string `json:"salt"`
		Value   string `json:"value"`
		Bucket  uint32 `json:"bucket"`
	} `json:"buckets"`
	Segments []*Segment `json:"segments"`
	Flags    []*Flag    `json:"flags"`
	Cases    []struct {
		Name    string  `json:"name"`
		Flag    string  `json:"flag"`
		Context Context `json:"context"`
		Expect  struct {
			Value   json.RawMessage `json:"value"`
			Variant string          `json:"variant"`
			Reason  Reason          `json:"reason"`
		} `json:"expect"`
	} `json:"cases"`
}

func TestVectors(t *testing.T) {
	raw, err := os.ReadFile("testdata/vectors.json")
	require.NoError(t, err)
	var v vectors
	require.NoError(t, json.Unmarshal(raw, &v))
	require.NotEmpty(t, v.Buckets)
	require.NotEmpty(t, v.Cases)
	for _, b := range v.Buckets {
		assert.Equal(t, b.Bucket, Bucket(b.Seed, b.FlagKey, b.Salt, b.Value), "%+v", b)
	}
	segments := map[string]*Segment{}
	for _, s := range v.Segments {
		require.NoError(t, s.Validate(), s.Key)
		segments[s.Key] = s
	}
	flags := map[string]*Flag{}
	for _, f := range v.Flags {
		require.NoError(t, f.Validate(), f.Key)
		flags[f.Key] = f
	}
	reasons := map[Reason]bool{}
	for _, c := range v.Cases {
		t.Run(c.Name, func(t *testing.T) {
			f := flags[c.Flag]
			require.NotNil(t, f, "case names an unknown flag")
			got := Evaluate(f, c.Context, segments)
			assert.Equal(t, c.Expect.Variant, got.Variant)
			assert.Equal(t, c.Expect.Reason, got.Reason)
			assert.JSONEq(t, string(c.Expect.Value), string(got.Value))
			reasons[got.Reason] = true
		})
	}
	for _, r := range []Reason{ReasonTargetingMatch, ReasonSplit, ReasonDefault, ReasonDisabled} {
		assert.True(t, reasons[r], "no vector gives reason %s", r)
	}
}

// boolFlag is an enabled boolean flag "f" whose default serves def.
func boolFlag(def Serve, rules ...Rule) *Flag {
	return &Flag{
		Key: "f", Type: Boolean, Enabled: true, Salt: "salt",
		Variants:   map[string]json.RawMessage{"on": json.RawMessage("true"), "off": json.RawMessage("false")},
		OffVariant: "off", Rules: rules, Default: def,
	}
}

func rollout(pct float64) Serve {
	return Serve{Rollout: &Rollout{Percentage: pct, Variants: []Weighted{{Variant: "on", Weight: 1}}}}
}

func TestConditions(t *testing.T) {
	segments := map[string]*Segment{
		"staff": {Key: "staff", Rules: []SegmentRule{{Conditions: []Condition{{Attribute: "email", Op: OpEndsWith, Values: []any{"@tone.dev"}}}}}},
	}
	for _, s := range segments {
		require.NoError(t, s.Validate())
	}
	for _, test := range []struct {
		name string
		cond Condition
		ctx  Context
		want bool
	}{
		{"equals string", Condition{Attribute: "a", Op: OpEquals, Values: []any{"x"}}, Context{"a": "x"}, true},
		{"equals other string", Condition{Attribute: "a", Op: OpEquals, Values: []any{"x"}}, Context{"a": "y"}, false},
		{"equals is typed", Condition{Attribute: "a", Op: OpEquals, Values: []any{"1"}}, Context{"a": 1.0}, false},
		{"equals number", Condition{Attribute: "a", Op: OpEquals, Values: []any{1.0}}, Context{"a": 1.0}, true},
		{"equals bool", Condition{Attribute: "a", Op: OpEquals, Values: []any{true}}, Context{"a": true}, true},
		{"equals missing", Condition{Attribute: "a", Op: OpEquals, Values: []any{"x"}}, Context{}, false},
		{"equals null", Condition{Attribute: "a", Op: OpEquals, Values: []any{"x"}}, Context{"a": nil}, false},
		{"equals object", Condition{Attribute: "a", Op: OpEquals, Values: []any{"x"}}, Context{"a": map[string]any{"x": "x"}}, false},
		{"negated equals", Condition{Attribute: "a", Op: OpEquals, Values: []any{"x"}, Negate: true}, Context{"a": "y"}, true},
		{"negated equals missing", Condition{Attribute: "a", Op: OpEquals, Values: []any{"x"}, Negate: true}, Context{}, false},
		{"in", Condition{Attribute: "a", Op: OpIn, Values: []any{"x", "y"}}, Context{"a": "y"}, true},
		{"in array element", Condition{Attribute: "a", Op: OpIn, Values: []any{"x", "y"}}, Context{"a": []any{"q", "y"}}, true},
		{"not in", Condition{Attribute: "a", Op: OpIn, Values: []any{"x", "y"}}, Context{"a": "z"}, false},
		{"negated in array", Condition{Attribute: "a", Op: OpIn, Values: []any{"x"}, Negate: true}, Context{"a": []any{"q"}}, true},
		{"contains", Condition{Attribute: "a", Op: OpContains, Values: []any{"ell"}}, Context{"a": "hello"}, true},
		{"contains not", Condition{Attribute: "a", Op: OpContains, Values: []any{"xyz"}}, Context{"a": "hello"}, false},
		{"contains number attr", Condition{Attribute: "a", Op: OpContains, Values: []any{"1"}}, Context{"a": 1.0}, false},
		{"contains array", Condition{Attribute: "a", Op: OpContains, Values: []any{"b"}}, Context{"a": []any{"a", "b"}}, true},
		{"starts_with", Condition{Attribute: "a", Op: OpStartsWith, Values: []any{"he"}}, Context{"a": "hello"}, true},
		{"starts_with not", Condition{Attribute: "a", Op: OpStartsWith, Values: []any{"lo"}}, Context{"a": "hello"}, false},
		{"ends_with", Condition{Attribute: "a", Op: OpEndsWith, Values: []any{"x", "lo"}}, Context{"a": "hello"}, true},
		{"lt", Condition{Attribute: "n", Op: OpLT, Values: []any{10.0}}, Context{"n": 9.5}, true},
		{"lt equal", Condition{Attribute: "n", Op: OpLT, Values: []any{10.0}}, Context{"n": 10.0}, false},
		{"le equal", Condition{Attribute: "n", Op: OpLE, Values: []any{10.0}}, Context{"n": 10.0}, true},
		{"gt", Condition{Attribute: "n", Op: OpGT, Values: []any{10.0}}, Context{"n": 10.5}, true},
		{"gt equal", Condition{Attribute: "n", Op: OpGT, Values: []any{10.0}}, Context{"n": 10.0}, false},
		{"ge", Condition{Attribute: "n", Op: OpGE, Values: []any{10.0}}, Context{"n": 10.0}, true},
		{"number op on string", Condition{Attribute: "n", Op: OpGE, Values: []any{10.0}}, Context{"n": "11"}, false},
		{"semver_eq short form", Condition{Attribute: "v", Op: OpSemverEQ, Values: []any{"1.2"}}, Context{"v": "v1.2.0"}, true},
		{"semver_lt prerelease", Condition{Attribute: "v", Op: OpSemverLT, Values: []any{"2.0.0"}}, Context{"v": "2.0.0-rc.1"}, true},
		{"semver_le", Condition{Attribute: "v", Op: OpSemverLE, Values: []any{"2.0.0"}}, Context{"v": "2.0.0"}, true},
		{"semver_gt numeric not lexical", Condition{Attribute: "v", Op: OpSemverGT, Values: []any{"1.9.0"}}, Context{"v": "1.10.0"}, true},
		{"semver_ge", Condition{Attribute: "v", Op: OpSemverGE, Values: []any{"1.10.0"}}, Context{"v": "1.9.9"}, false},
		{"semver invalid attr", Condition{Attribute: "v", Op: OpSemverGE, Values: []any{"1.0.0"}}, Context{"v": "banana"}, false},
		{"in_segment", Condition{Op: OpInSegment, Values: []any{"staff"}}, Context{"email": "a@tone.dev"}, true},
		{"in_segment not member", Condition{Op: OpInSegment, Values: []any{"staff"}}, Context{"email": "a@b.c"}, false},
		{"negated in_segment", Condition{Op: OpInSegment, Values: []any{"staff"}, Negate: true}, Context{"email": "a@b.c"}, true},
		{"in_segment unknown segment", Condition{Op: OpInSegment, Values: []any{"nobody"}}, Context{"email": "a@tone.dev"}, false},
	} {
		t.Run(test.name, func(t *testing.T) {
			f := boolFlag(Serve{Variant: "off"}, Rule{Conditions: []Condition{test.cond}, Serve: Serve{Variant: "on"}})
			require.NoError(t, f.Validate())
			got := Evaluate(f, test.ctx, segments)
			assert.Equal(t, test.want, got.Variant == "on", "%+v", got)
			if test.want {
				assert.Equal(t, ReasonTargetingMatch, got.Reason)
				assert.Equal(t, 0, got.Rule)
			} else {
				assert.Equal(t, ReasonDefault, got.Reason)
				assert.Equal(t, -1, got.Rule)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	for _, test := range []struct {
		name  string
		edit  func(f *Flag)
		field string
	}{
		{"bad key", func(f *Flag) { f.Key = "-x" }, "key"},
		{"bad type", func(f *Flag) { f.Type = "date" }, "type"},
		{"no variants", func(f *Flag) { f.Variants = nil }, "variants"},
		{"value of wrong type", func(f *Flag) { f.Variants["on"] = json.RawMessage(`"yes"`) }, "variants.on"},
		{"bad variant name", func(f *Flag) { f.Variants["a b"] = json.RawMessage(`true`) }, "variants.a b"},
		{"unknown off variant", func(f *Flag) { f.OffVariant = "nope" }, "off_variant"},
		{"default serves nothing", func(f *Flag) { f.Default = Serve{} }, "default"},
		{"default serves both", func(f *Flag) { f.Default.Rollout = rollout(5).Rollout }, "default"},
		{"unknown variant served", func(f *Flag) { f.Default.Variant = "maybe" }, "default.variant"},
		{"percentage above 100", func(f *Flag) { f.Default = rollout(100.5) }, "default.rollout.percentage"},
		{"percentage too precise", func(f *Flag) { f.Default = rollout(12.3456) }, "default.rollout.percentage"},
		{"zero weight", func(f *Flag) { f.Default = rollout(10); f.Default.Rollout.Variants[0].Weight = 0 }, "default.rollout.variants[0].weight"},
		{"unknown op", func(f *Flag) { f.Rules[0].Conditions[0].Op = "like" }, "rules[0].conditions[0].op"},
		{"no values", func(f *Flag) { f.Rules[0].Conditions[0].Values = nil }, "rules[0].conditions[0].values"},
		{"equals two values", func(f *Flag) { f.Rules[0].Conditions[0].Values = []any{"a", "b"} }, "rules[0].conditions[0].values"},
		{"number op with string", func(f *Flag) { f.Rules[0].Conditions[0] = Condition{Attribute: "n", Op: OpLT, Values: []any{"3"}} }, "rules[0].conditions[0].values[0]"},
		{"bad semver", func(f *Flag) {
			f.Rules[0].Conditions[0] = Condition{Attribute: "v", Op: OpSemverGT, Values: []any{"one"}}
		}, "rules[0].conditions[0].values[0]"},
		{"segment op with attribute", func(f *Flag) {
			f.Rules[0].Conditions[0] = Condition{Attribute: "a", Op: OpInSegment, Values: []any{"s"}}
		}, "rules[0].conditions[0].attribute"},
		{"missing attribute", func(f *Flag) { f.Rules[0].Conditions[0].Attribute = "" }, "rules[0].conditions[0].attribute"},
	} {
		t.Run(test.name, func(t *testing.T) {
			f := boolFlag(Serve{Variant: "off"}, Rule{
				Conditions: []Condition{{Attribute: "a", Op: OpEquals, Values: []any{"x"}}}, Serve: Serve{Variant: "on"},
			})
			require.NoError(t, f.Validate(), "the base flag is valid")
			test.edit(f)
			err := f.Validate()
			var fe *Error
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, test.field, fe.Field, "%v", err)
		})
	}
	s := &Segment{Key: "s", Rules: []SegmentRule{{Conditions: []Condition{{Op: OpInSegment, Values: []any{"t"}}}}}}
	assert.Error(t, s.Validate(), "segments cannot nest")
}

// TestRolloutDistribution checks that a rollout lets in its percentage of
// 100,000 ids, and splits them by weight, within a tolerance of five
// standard deviations of the binomial distribution.
func TestRolloutDistribution(t *testing.T) {
	const n = 100_000
	for _, test := range []struct {
		pct     float64
		weights []int
	}{
		{1, []int{1}}, {25, []int{1}}, {50, []int{1, 1}}, {99.5, []int{1}}, {100, []int{1, 2, 7}}, {30, []int{3, 1}},
	} {
		t.Run(fmt.Sprint(test.pct, test.weights), func(t *testing.T) {
			f := boolFlag(Serve{Variant: "off"})
			f.Type = String
			f.Variants = map[string]json.RawMessage{"off": json.RawMessage(`"off"`)}
			var ws []Weighted
			total := 0
			for i, w := range test.weights {
				name := fmt.Sprintf("v%d", i)
				f.Variants[name] = json.RawMessage(`"` + name + `"`)
				ws = append(ws, Weighted{Variant: name, Weight: w})
				total += w
			}
			f.Default = Serve{Rollout: &Rollout{Percentage: test.pct, Variants: ws}}
			require.NoError(t, f.Validate())
			counts := map[string]int{}
			for i := range n {
				r := Evaluate(f, Context{"targetingKey": fmt.Sprintf("user-%d", i)}, nil)
				counts[r.Variant]++
			}
			within := func(what string, got int, p float64) {
				sd := math.Sqrt(n * p * (1 - p))
				assert.InDelta(t, n*p, float64(got), 5*sd+1, "%s: %d of %d", what, got, n)
			}
			within("in", n-counts["off"], test.pct/100)
			for i, w := range test.weights {
				within(ws[i].Variant, counts[ws[i].Variant], test.pct/100*float64(w)/float64(total))
			}
		})
	}
}

// TestRolloutSticky raises a rollout step by step and checks that nobody
// who was in drops out, and that everyone in keeps their variant.
func TestRolloutSticky(t *testing.T) {
	const n = 20_000
	f := boolFlag(Serve{Variant: "off"})
	f.Type = String
	f.Variants = map[string]json.RawMessage{"off": json.RawMessage(`"off"`), "a": json.RawMessage(`"a"`), "b": json.RawMessage(`"b"`)}
	variant := make([]string, n)
	prevIn := 0
	for _, pct := range []float64{0, 0.001, 1, 5, 10, 33.333, 50, 90, 100} {
		f.Default = Serve{Rollout: &Rollout{Percentage: pct, Variants: []Weighted{{Variant: "a", Weight: 1}, {Variant: "b", Weight: 3}}}}
		require.NoError(t, f.Validate())
		in := 0
		for i := range n {
			r := Evaluate(f, Context{"targetingKey": fmt.Sprintf("id-%d", i)}, nil)
			if variant[i] != "" {
				require.Equal(t, variant[i], r.Variant, "id-%d left or changed variant when the rollout rose to %v%%", i, pct)
			}
			if r.Variant != "off" {
				variant[i] = r.Variant
				in++
			}
		}
		assert.GreaterOrEqual(t, in, prevIn)
		prevIn = in
	}
	assert.Equal(t, n, prevIn, "at 100% everyone is in")
}

func TestDisabledAndStickiness(t *testing.T) {
	f := boolFlag(rollout(100))
	f.Stickiness = "org"
	require.NoError(t, f.Validate())
	assert.Equal(t, "on", Evaluate(f, Context{"org": "acme"}, nil).Variant)
	r := Evaluate(f, Context{"targetingKey": "u"}, nil)
	assert.Equal(t, Result{Value: json.RawMessage("false"), Variant: "off", Reason: ReasonDefault, Rule: -1}, r,
		"without the stickiness attribute the default rollout leaves the context out")
	f.Enabled = false
	assert.Equal(t, ReasonDisabled, Evaluate(f, Context{"org": "acme"}, nil).Reason)
	// A rule rollout that leaves the context out falls through to the next rule.
	f = boolFlag(Serve{Variant: "off"}, Rule{Serve: rollout(0)}, Rule{Serve: Serve{Variant: "on"}})
	require.NoError(t, f.Validate())
	r = Evaluate(f, Context{"targetingKey": "u"}, nil)
	assert.Equal(t, "on", r.Variant)
	assert.Equal(t, 1, r.Rule)
}

func BenchmarkEvaluate(b *testing.B) {
	raw, err := os.ReadFile("testdata/vectors.json")
	require.NoError(b, err)
	var v vectors
	require.NoError(b, json.Unmarshal(raw, &v))
	segments := map[string]*Segment{}
	for _, s := range v.Segments {
		require.NoError(b, s.Validate())
		segments[s.Key] = s
	}
	f := v.Flags[0]
	require.NoError(b, f.Validate())
	ctx := Context{"targetingKey": "user-12", "country": "DE", "app_version": "2.1.0", "email": "x@example.com"}
	b.ReportAllocs()
	for b.Loop() {
		Evaluate(f, ctx, segments)
	}
}

// TestEvaluatorReuse evaluates several flags with one Evaluator, whose
// version cache holds fewer entries than the context has versions: the
// answers are those of fresh evaluations.
func TestEvaluatorReuse(t *testing.T) {
	ctx := Context{"v": []any{"1.0.0", "2.0.0", "3.0.0", "4.0.0", "5.0.0", "6.0.0"}, "w": "banana", "x": "v2"}
	var flags []*Flag
	for i, c := range []Condition{
		{Attribute: "v", Op: OpSemverGE, Values: []any{"5.5.0"}},
		{Attribute: "v", Op: OpSemverLT, Values: []any{"1.0.0"}},
		{Attribute: "w", Op: OpSemverGE, Values: []any{"0.0.1"}},
		{Attribute: "x", Op: OpSemverEQ, Values: []any{"2"}},
		{Attribute: "v", Op: OpSemverEQ, Values: []any{"1"}},
	} {
		f := boolFlag(Serve{Variant: "off"}, Rule{Conditions: []Condition{c}, Serve: Serve{Variant: "on"}})
		f.Key = fmt.Sprintf("f%d", i)
		require.NoError(t, f.Validate())
		flags = append(flags, f)
	}
	ev := NewEvaluator(ctx, nil)
	var got, want []string
	for range 3 {
		for _, f := range flags {
			got = append(got, ev.Evaluate(f).Variant)
			want = append(want, Evaluate(f, ctx, nil).Variant)
		}
	}
	assert.Equal(t, want, got)
	assert.Equal(t, []string{"on", "off", "off", "on", "on"}, want[:5])
}
