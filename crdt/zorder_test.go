package crdt

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

func TestKeyBetweenExamples(t *testing.T) {
	for _, tc := range []struct{ a, b, want string }{
		{"", "", "a0"},
		{"a0", "", "a1"},
		{"az", "", "b00"},
		{"", "a0", "Zz"},
		{"", "Z0", "Yzz"},
		{"Zz", "", "a0"},
		{"a0", "a1", "a0V"},
		{"a0", "a0V", "a0F"},
		{"a0V", "a1", "a0k"},
		{"a1", "a3", "a2"},
		{"a0z", "a1", "a0zV"},
		{"Zz", "a0", "ZzV"},
	} {
		got, err := KeyBetween(tc.a, tc.b)
		require.NoError(t, err, "%q..%q", tc.a, tc.b)
		assert.Equal(t, tc.want, got, "%q..%q", tc.a, tc.b)
	}
	for _, tc := range []struct{ a, b string }{{"a1", "a1"}, {"a2", "a1"}, {"a0", "x"}, {"a00", ""}, {"", "A" + zeros(26)}} {
		_, err := KeyBetween(tc.a, tc.b)
		assert.Error(t, err, "%q..%q", tc.a, tc.b)
	}
	_, err := KeyBetween("z"+zs(26), "")
	assert.NoError(t, err, "past the largest integer, a fraction")
}

func TestCheckKey(t *testing.T) {
	for _, k := range []string{"a0", "Zz", "b00", "a0V", "A" + zeros(26), "z" + zs(26) + "1"} {
		assert.NoError(t, CheckKey(k), k)
	}
	for _, k := range []string{"", "a", "b0", "a0 ", "a00", "0", "!a", "a0V0", string(make([]byte, MaxKeyLen+1))} {
		assert.ErrorIs(t, CheckKey(k), ErrInvalid, "%q", k)
	}
}

// Keys made by any sequence of inserts (at either end or between any two
// neighbours) stay valid, strictly ordered, and short.
func TestKeysStayOrdered(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		keys := []string{}
		steps := rapid.IntRange(1, 300).Draw(t, "steps")
		for range steps {
			pos := rapid.IntRange(0, len(keys)).Draw(t, "pos")
			var a, b string
			if pos > 0 {
				a = keys[pos-1]
			}
			if pos < len(keys) {
				b = keys[pos]
			}
			k, err := KeyBetween(a, b)
			if err != nil {
				t.Fatalf("KeyBetween(%q, %q): %v", a, b, err)
			}
			if CheckKey(k) != nil || (a != "" && k <= a) || (b != "" && k >= b) {
				t.Fatalf("KeyBetween(%q, %q) = %q", a, b, k)
			}
			keys = slices.Insert(keys, pos, k)
		}
		if !slices.IsSorted(keys) {
			t.Fatalf("keys out of order")
		}
		for _, k := range keys {
			if len(k) > 2+steps/2 {
				t.Fatalf("key %q too long after %d inserts", k, steps)
			}
		}
	})
}

func TestKeysBetween(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(0, 200).Draw(t, "n")
		lo := rapid.SampledFrom([]string{"", "a0", "Zz", "a0V"}).Draw(t, "lo")
		hi := rapid.SampledFrom([]string{"", "a1", "b00", "a0W"}).Draw(t, "hi")
		keys, err := KeysBetween(lo, hi, n)
		if err != nil {
			t.Fatalf("KeysBetween(%q, %q, %d): %v", lo, hi, n, err)
		}
		if len(keys) != n {
			t.Fatalf("got %d keys, want %d", len(keys), n)
		}
		for i, k := range keys {
			if CheckKey(k) != nil || (lo != "" && k <= lo) || (hi != "" && k >= hi) || (i > 0 && keys[i-1] >= k) {
				t.Fatalf("bad key %q at %d between %q and %q", k, i, lo, hi)
			}
			if len(k) > 12 {
				t.Fatalf("key %q too long for %d keys", k, n)
			}
		}
	})
}

func TestAppendingManyKeysStaysShort(t *testing.T) {
	keys, err := KeysBetween("", "", 100000)
	require.NoError(t, err)
	assert.True(t, slices.IsSorted(keys))
	assert.LessOrEqual(t, len(keys[len(keys)-1]), 4)
	before, err := KeysBetween("", keys[0], 100000)
	require.NoError(t, err)
	assert.True(t, slices.IsSorted(before))
	assert.Less(t, before[len(before)-1], keys[0])
	assert.LessOrEqual(t, len(before[0]), 5)
}
