package flag

import (
	"encoding/json"
	"os"
	"testing"
)

// FuzzFlag decodes a flag definition and a context as a client sends them
// and checks that a definition that validates evaluates any context
// without panicking, to one of its variants.
func FuzzFlag(f *testing.F) {
	raw, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		f.Fatal(err)
	}
	var v struct {
		Flags []json.RawMessage `json:"flags"`
		Cases []struct {
			Context json.RawMessage `json:"context"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		f.Fatal(err)
	}
	for i, fl := range v.Flags {
		f.Add([]byte(fl), []byte(v.Cases[i%len(v.Cases)].Context))
	}
	segments := map[string]*Segment{"beta": {Key: "beta", Rules: []SegmentRule{{Conditions: []Condition{
		{Attribute: "plan", Op: OpIn, Values: []any{"beta"}}}}}}}
	if err := segments["beta"].Validate(); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, def, ctx []byte) {
		var fl Flag
		if json.Unmarshal(def, &fl) != nil || fl.Validate() != nil {
			return
		}
		var c Context
		if json.Unmarshal(ctx, &c) != nil {
			return
		}
		r := Evaluate(&fl, c, segments)
		if _, ok := fl.Variants[r.Variant]; !ok {
			t.Fatalf("evaluated to %q, not a variant of %s", r.Variant, def)
		}
	})
}
