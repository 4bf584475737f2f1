package crdt

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

// textFuzzBase returns a small text with concurrent history, tombstones and
// a pending op, and a few op lists that apply to it.
func textFuzzBase(tb testing.TB) (*Text, [][]TextOp) {
	net := textNewNet(42, 3)
	for range 60 {
		i := net.rng.IntN(3)
		if net.rng.IntN(2) == 0 {
			net.edit(tb, i)
		} else {
			net.deliver(tb, i)
		}
	}
	a, b := net.reps[0], net.reps[1]
	var lists [][]TextOp
	lists = append(lists, b.DiffSince(a.Version()), b.DiffSince(nil))
	op, err := b.Insert(0, "zz")
	require.NoError(tb, err)
	op2, err := b.Delete(0, 1)
	require.NoError(tb, err)
	lists = append(lists, []TextOp{op, op2}, []TextOp{op2})
	return a.Text, lists
}

// FuzzTextDecodeOps decodes arbitrary bytes as an op list; whatever it
// accepts must re-encode to the same bytes, and applying it either fails and
// changes nothing or succeeds.
func FuzzTextDecodeOps(f *testing.F) {
	base, lists := textFuzzBase(f)
	for _, l := range lists {
		b, err := TextEncodeOps(l)
		require.NoError(f, err)
		f.Add(b)
	}
	f.Add([]byte{0x91, 0x93, 0x01, 0x01, 0x01})
	baseEnc, err := base.Encode()
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, b []byte) {
		ops, err := TextDecodeOps(b)
		if err != nil {
			return
		}
		again, err := TextEncodeOps(ops)
		require.NoError(t, err)
		back, err := TextDecodeOps(again)
		require.NoError(t, err)
		require.Equal(t, ops, back)

		x, err := TextDecode(baseEnc)
		require.NoError(t, err)
		before := x.String()
		if err := x.Apply(ops...); err != nil {
			enc, err2 := x.Encode()
			require.NoError(t, err2)
			require.True(t, bytes.Equal(baseEnc, enc), "failed apply changed the state")
			require.Equal(t, before, x.String())
			return
		}
		// Whatever was applied, the state stays self-consistent.
		enc, err := x.Encode()
		require.NoError(t, err)
		y, err := TextDecode(enc)
		require.NoError(t, err)
		require.Equal(t, x.String(), y.String())
		_ = x.DiffSince(nil)
		if n := x.Len(); n > 0 {
			_, err := x.IDAt(n - 1)
			require.NoError(t, err)
		}
	})
}

// FuzzTextDecodeState decodes arbitrary bytes as a text state: no panic,
// and what decodes must be usable and re-encode deterministically.
func FuzzTextDecodeState(f *testing.F) {
	base, lists := textFuzzBase(f)
	enc, err := base.Encode()
	require.NoError(f, err)
	f.Add(enc)
	base.Collect(base.Version())
	enc, err = base.Encode()
	require.NoError(f, err)
	f.Add(enc)
	p := new(Text)
	require.NoError(f, p.Apply(lists[3]...)) // a pending delete
	enc, err = p.Encode()
	require.NoError(f, err)
	f.Add(enc)
	f.Add([]byte{0x96, 0x01, 0x90, 0xc4, 0x00, 0xc4, 0x01, 0x00, 0xa0, 0x90})
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := TextDecode(b)
		if err != nil {
			return
		}
		e1, err := x.Encode()
		require.NoError(t, err)
		y, err := TextDecode(e1)
		require.NoError(t, err)
		e2, err := y.Encode()
		require.NoError(t, err)
		require.Equal(t, e1, e2)
		require.Equal(t, x.String(), y.String())
		// The decoded text accepts edits and diffs.
		fresh := ReplicaID(1)
		for x.seen[fresh] != nil {
			fresh++
		}
		r := x.EditAs(fresh)
		_, err = r.Insert(r.Len()/2, "ab")
		require.NoError(t, err)
		if r.Len() > 1 {
			_, err = r.Delete(0, 1)
			require.NoError(t, err)
		}
		// The decoder checks structure, not causal consistency (see
		// TextDecode): a forged state may re-integrate in another order, or
		// not at all when its origins form a cycle. Its diff still applies.
		z := new(Text)
		require.NoError(t, z.Apply(r.DiffSince(nil)...))
		if z.Pending() == 0 {
			require.Equal(t, r.Len(), z.Len())
			require.Equal(t, r.Version(), z.Version())
		}
	})
}

// TestTextApplyRegressions replays op lists the fuzzers once failed on.
func TestTextApplyRegressions(t *testing.T) {
	for _, b := range []string{
		// Two different inserts with the same id, the first pending: the
		// state must survive a round trip (the pending op must not apply
		// on decode just because part of its ids is known).
		"\x94\x99\x01000 10\xa900😁000\x00\x99\x0100\x03\x01\x03\x03\xa70😁00\x00\x99\x01100001\xa80😁0ê\x00\x99\x01000 17\xa80ê00000\x00",
	} {
		base, _ := textFuzzBase(t)
		ops, err := TextDecodeOps([]byte(b))
		require.NoError(t, err)
		require.NoError(t, base.Apply(ops...))
		enc, err := base.Encode()
		require.NoError(t, err)
		y, err := TextDecode(enc)
		require.NoError(t, err)
		require.Equal(t, base.String(), y.String())
		enc2, err := y.Encode()
		require.NoError(t, err)
		require.Equal(t, enc, enc2)
	}
}

// TestTextDecodeRegressions replays inputs the fuzzers once failed on.
func TestTextDecodeRegressions(t *testing.T) {
	for _, b := range []string{
		// A deleter older than the characters it deletes made DiffSince
		// produce an invalid delete.
		"\x96\x01\x93\x01\x020\xc4\v\x01\x010\x02\x01000\x01\x010\xc4N\x159\x00\x02\x02\x1a\x04\x038\x00\x018\x02\x01\v\x01 \x05\x0e\x02\x01&\x04\x011\x01!\x04\x001\n \x01\x06\t\x019\x02 \x03\n\x00\x03\x06\a\x01\x01\x02\x1b\x01\x1a\x02\x04A\x00 \x05\x021A\x020\x04\x02A\x1e\x03\x01\v\x01 \x04\x0e\x02\x01\x06\a\x01\xd9600000😁000000000😂0000000é0😂000😂0😁0êë0\x90",
		// Runs in an order their origins contradict.
		"\x96\x01\x93\x01\x02\x03\xc4\v\x01\x01\"\x02\x01112\x01\x01A\xc4N\x15!\x00\x02\x02\x1a\x04\x03 \x00\x0180\x01\v\x010\x05\x0e\x02\x01&\x04\x011\x01)\x04\x001\n\"\x01\x06\t\x019\x02\x12\x03\n\x00\x03\x06\x03\x01\x01\x02\x1b\x01\x1a\x02\x04A\x00 \x05\x020A\x020\x04\x020\x1e\x03\x01\v\x017\x04\x0e\x02\x01\x06\a\x01\xd9600000😁000000000😂0000000é0😂000😂0😁0êë0\x90",
		// A bin field claiming gigabytes.
		"\x96\x01\x90\xdb\xc4\x010\xa0\x91\x96\x01\xa90",
		// Origins that form a cycle.
		"\x96\x01\x93\x01\x022\xc4\v\x01\x010\x02\x01120\x01\x011\xc4d\x17A\x00\x02\x02\x000\x1a\x04\x03B\x00\x01\x002BB\x01\x00\b\v\x010\x05\x0e\x02\x01N\x04\x01\x000]\x01\x15\x01\x001\x012B\x00\x02\x002B\x00\x01\x000\n\x00\x01\x06\v\x01A\x02\x12\x03\x000\n\x00\x03\x06\x03\x01\x01\x02\x1b\x01\x1a\x02\x04A\x00*\x05\x02 A\x020\x04\x02 \x1e\x03\x01\v\x01 \x04\x0e\x02\x01\x06\a\x01\xd9Jé0000é000😁000000😁000😂000000😂0000000é0😂000😂0😁0êë0\x90",
	} {
		x, err := TextDecode([]byte(b))
		if err != nil {
			require.ErrorIs(t, err, TextErrEncoding)
			continue
		}
		z := new(Text)
		require.NoError(t, z.Apply(x.DiffSince(nil)...))
		if z.Pending() == 0 {
			require.Equal(t, x.Len(), z.Len())
		}
	}
}
