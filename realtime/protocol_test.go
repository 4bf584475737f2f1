package realtime

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

// unhex decodes a hex literal of a test; spaces are ignored.
func unhex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

var (
	rawHi    = msgpack.RawMessage(unhex("a2 6869"))            // "hi"
	rawState = msgpack.RawMessage(unhex("82 a178 03 a179 04")) // {"x": 3, "y": 4}
)

// goldenFrames pin the wire encoding of tone.v1 (docs/protocol.md): a
// change to any of these bytes breaks every deployed client. Each was
// produced once by EncodeFrame, checked by hand against the msgpack spec,
// and is written here in hex, one field to a group.
var goldenFrames = []struct {
	name  string
	frame Frame
	hex   string
}{
	{
		"connect",
		Frame{Type: TypeConnect, ID: 1, Token: "tok", Name: "web"},
		"84 a174 a7636f6e6e656374 a26964 01 a3746f6b a3746f6b a46e616d65 a3776562",
	},
	{
		"connected",
		Frame{Type: TypeConnected, ID: 1, Client: "n1-1", Node: "n1", User: "u1", Ping: 25, Expires: 1735689600},
		"87 a174 a9636f6e6e6563746564 a26964 01 a6636c69656e74 a46e312d31 a475736572 a27531 a46e6f6465 a26e31 a470696e67 19 a3657870 ce67748580",
	},
	{
		"sub with since",
		Frame{Type: TypeSubscribe, ID: 2, Channel: "project:p1", Since: &Position{Offset: 41, Epoch: "ab12"}},
		"84 a174 a3737562 a26964 02 a26368 aa70726f6a6563743a7031 a573696e6365 82 a16f 29 a165 a461623132",
	},
	{
		"ok with pubs",
		Frame{Type: TypeOK, ID: 2, Pos: &Position{Offset: 42, Epoch: "ab12"}, Recovered: boolp(true),
			Pubs: []Frame{{Type: TypeMessage, Channel: "project:p1", Offset: 42, Data: rawHi, Client: "n1-1", User: "u1"}}},
		"85 a174 a26f6b a26964 02 a3706f73 82 a16f 2a a165 a461623132 a3726563 c3 a470756273 91" +
			" 86 a174 a36d7367 a26368 aa70726f6a6563743a7031 a164 a26869 a16f 2a a6636c69656e74 a46e312d31 a475736572 a27531",
	},
	{
		"msg",
		Frame{Type: TypeMessage, Channel: "project:p1", Offset: 300, Data: rawHi},
		"84 a174 a36d7367 a26368 aa70726f6a6563743a7031 a164 a26869 a16f cd012c",
	},
	{
		"err",
		Frame{Type: TypeError, ID: 3, Code: "not_found", Message: "Project not found."},
		"84 a174 a3657272 a26964 03 a4636f6465 a96e6f745f666f756e64 a36d7367 b250726f6a656374206e6f7420666f756e642e",
	},
	{
		"presence set",
		Frame{Type: TypePresence, ID: 4, Channel: "canvas:c1", State: rawState},
		"84 a174 a870726573656e6365 a26964 04 a26368 a963616e7661733a6331 a27374 82a17803a17904",
	},
	{
		"presence list reply",
		Frame{Type: TypeOK, ID: 5, Presence: []PresenceInfo{{Client: "n1-1", User: "u1", State: rawState}, {Client: "n1-2", User: "u2"}}},
		"83 a174 a26f6b a26964 05 a470726573 92" +
			" 83 a6636c69656e74 a46e312d31 a475736572 a27531 a27374 82a17803a17904" +
			" 82 a6636c69656e74 a46e312d32 a475736572 a27532",
	},
	{
		"join",
		Frame{Type: TypeJoin, Channel: "canvas:c1", Client: "n1-2", User: "u2", State: rawState},
		"85 a174 a46a6f696e a26368 a963616e7661733a6331 a27374 82a17803a17904 a6636c69656e74 a46e312d32 a475736572 a27532",
	},
	{
		"history",
		Frame{Type: TypeHistory, ID: 6, Channel: "project:p1", Since: &Position{Offset: 0, Epoch: "ab12"}, Limit: 100},
		"85 a174 a7686973746f7279 a26964 06 a26368 aa70726f6a6563743a7031 a573696e6365 82 a16f 00 a165 a461623132 a56c696d6974 64",
	},
	{
		"pong",
		Frame{Type: TypePong},
		"81 a174 a4706f6e67",
	},
}

func TestEncodeFrameGolden(t *testing.T) {
	for _, test := range goldenFrames {
		t.Run(test.name, func(t *testing.T) {
			got, err := EncodeFrame(&test.frame)
			require.NoError(t, err)
			assert.Equal(t, hex.EncodeToString(unhex(test.hex)), hex.EncodeToString(got))
		})
	}
}

func TestDecodeGolden(t *testing.T) {
	for _, test := range goldenFrames {
		t.Run(test.name, func(t *testing.T) {
			frames, err := DecodeServerMessage(unhex(test.hex))
			require.NoError(t, err)
			require.Len(t, frames, 1)
			assert.Equal(t, normFrame(test.frame), normFrame(frames[0]))
		})
	}
}

func TestFrameRoundTrip(t *testing.T) {
	// Every field survives EncodeFrame and DecodeMessage.
	f := Frame{
		Type: TypeOK, ID: 1<<64 - 1, Channel: "canvas:c1", Token: "t", Data: rawHi, Offset: 1 << 40,
		Since: &Position{Offset: 7, Epoch: "e"}, Pos: &Position{Offset: 8, Epoch: "e"}, Recovered: boolp(false),
		Pubs:  []Frame{{Type: TypeMessage, Offset: 8, Data: rawState}, {Type: TypeMessage, Offset: 9, Data: rawHi}},
		Limit: -1, State: rawState, Presence: []PresenceInfo{{Client: "a", User: "b", State: rawHi}},
		Update: []byte{0, 1, 2, 255}, Version: map[uint64]uint64{1: 2, 1 << 63: 3}, Replica: 9,
		Client: "c", User: "u", Node: "n", Ping: 25, Expires: -5, Code: "x", Message: "m",
		More: true, Snapshot: true, Name: "w", Details: map[string]any{"field": "replica"},
	}
	// A field the round trip does not cover would be missed here: check
	// that every field of Frame is set.
	v := reflect.ValueOf(f)
	for i := range v.NumField() {
		require.False(t, v.Field(i).IsZero(), "field %s not covered", v.Type().Field(i).Name)
	}
	b, err := EncodeFrame(&f)
	require.NoError(t, err)
	frames, err := DecodeServerMessage(b)
	require.NoError(t, err)
	require.Len(t, frames, 1)
	assert.Equal(t, f, frames[0])
	assert.False(t, *frames[0].Recovered, "rec false is sent, not omitted")
}

func TestDecodeMessage(t *testing.T) {
	ping := func(id byte) string { return "82 a174 a470696e67 a26964 " + hex.EncodeToString([]byte{id}) }
	batch := func(n int) string {
		var s strings.Builder
		s.WriteString("dc " + hex.EncodeToString([]byte{byte(n >> 8), byte(n)}))
		for i := range n {
			s.WriteString(" " + ping(byte(i+1)))
		}
		return s.String()
	}
	for _, test := range []struct {
		name    string
		hex     string
		wantIDs []uint64 // the ids of the frames decoded, all pings; nil: an error
		errText string   // part of the error
	}{
		{name: "single frame", hex: ping(7), wantIDs: []uint64{7}},
		{name: "batch fixarray", hex: "93 " + ping(1) + ping(2) + ping(3), wantIDs: []uint64{1, 2, 3}},
		{name: "batch array16", hex: "dc 0002 " + ping(1) + ping(2), wantIDs: []uint64{1, 2}},
		{name: "batch array32", hex: "dd 00000002 " + ping(1) + ping(2), wantIDs: []uint64{1, 2}},
		{name: "batch of one", hex: "91 " + ping(5), wantIDs: []uint64{5}},
		{name: "batch of MaxBatch", hex: batch(MaxBatch), wantIDs: seq(1, MaxBatch)},
		{name: "map16 frame", hex: "de 0002 a174 a470696e67 a26964 09", wantIDs: []uint64{9}},
		{name: "frame keys in any order", hex: "82 a26964 09 a174 a470696e67", wantIDs: []uint64{9}},

		{name: "empty message", hex: "", errText: "empty"},
		{name: "empty batch", hex: "90", errText: "batch"},
		{name: "empty batch array16", hex: "dc 0000", errText: "batch"},
		{name: "batch over MaxBatch", hex: batch(MaxBatch + 1), errText: "batch"},
		{name: "huge batch header", hex: "dd ffffffff " + ping(1), errText: "length"},
		{name: "trailing bytes", hex: ping(1) + "00", errText: "trailing"},
		{name: "trailing frame", hex: ping(1) + ping(2), errText: "trailing"},
		{name: "trailing bytes after batch", hex: "91 " + ping(1) + "c0", errText: "trailing"},
		{name: "unknown field", hex: "82 a174 a470696e67 a27a7a 01", errText: "zz"},
		{name: "unknown field in batch", hex: "92 " + ping(1) + "82 a174 a470696e67 a27a7a 01", errText: "frame 1"},
		{name: "unknown field in a nested pub", hex: "82 a174 a26f6b a470756273 91 82 a174 a36d7367 a27a7a 01", errText: "unknown field \"pubs\""},
		{name: "type not a string", hex: "81 a174 05"},
		{name: "id not a number", hex: "82 a174 a470696e67 a26964 a178"},
		{name: "since not a map", hex: "82 a174 a3737562 a573696e6365 05"},
		{name: "pubs not an array", hex: "82 a174 a26f6b a470756273 a178"},
		{name: "nil", hex: "c0", errText: "map"},
		{name: "integer", hex: "01", errText: "map"},
		{name: "string", hex: "a470696e67", errText: "map"},
		{name: "binary", hex: "c4 01 00", errText: "map"},
		{name: "batch of strings", hex: "91 a470696e67", errText: "frame 0"},
		{name: "batch of a frame as an array", hex: "91 92 a470696e67 01", errText: "frame 0"},
		{name: "batch of nil", hex: "91 c0", errText: "no type"},
		{name: "frame without type", hex: "81 a26964 01", errText: "no type"},
		{name: "frame with empty type", hex: "82 a174 a0 a26964 01", errText: "no type"},
		{name: "empty map", hex: "80", errText: "no type"},
		{name: "batch with a frame without type", hex: "92 " + ping(1) + "81 a26964 02", errText: "frame 1"},
		{name: "truncated frame", hex: ping(1)[:len(ping(1))-3]},
		{name: "truncated batch", hex: "92 " + ping(1)},
		{name: "truncated array16 header", hex: "dc 00"},
	} {
		t.Run(test.name, func(t *testing.T) {
			frames, err := DecodeMessage(unhex(test.hex))
			if test.wantIDs == nil {
				require.Error(t, err, "decoded %+v", frames)
				require.ErrorIs(t, err, ErrMalformed)
				assert.Contains(t, err.Error(), test.errText)
				assert.Nil(t, frames)
				return
			}
			require.NoError(t, err)
			var ids []uint64
			for _, f := range frames {
				require.Equal(t, TypePing, f.Type)
				ids = append(ids, f.ID)
			}
			assert.Equal(t, test.wantIDs, ids)
		})
	}
}

func TestDecodeMessageDeclaredLengths(t *testing.T) {
	// A few bytes declaring a huge array, map or string must not make the
	// decoder allocate for it (msgpack v5.4 preallocates slices for the
	// declared length: 2^32 frames exhaust memory and kill the process).
	for _, test := range []struct{ name, hex string }{
		{"pubs array32", "82 a174 a26f6b a470756273 dd ffffffff"},
		{"pubs array16", "82 a174 a26f6b a470756273 dc ffff"},
		{"pres array32", "82 a174 a26f6b a470726573 dd ffffffff"},
		{"vv map32", "82 a174 a3737562 a27676 df ffffffff"},
		{"u bin32", "82 a174 a663616e766173 a175 c6 ffffffff"},
		{"d array32", "82 a174 a36d7367 a164 dd ffffffff"},
		{"d map32", "82 a174 a36d7367 a164 df ffffffff"},
		{"d str32", "82 a174 a36d7367 a164 db ffffffff"},
		{"d ext32", "82 a174 a36d7367 a164 c9 ffffffff 01"},
		{"st map32", "82 a174 a870726573656e6365 a27374 df 7fffffff"},
		{"nested pubs", "82 a174 a26f6b a470756273 91 82 a174 a26f6b a470756273 dd ffffffff"},
		{"batch of 2^32", "dd ffffffff 80"},
		{"nested arrays claiming the same bytes", "82 a174 a26f6b a470756273 dc 0006 dc 0006 c0 c0 c0 c0 c0 c0"},
		{"array16 over the rest", "82 a174 a26f6b a470756273 dc 0010 c0 c0 c0"},
	} {
		t.Run(test.name, func(t *testing.T) {
			msg := unhex(test.hex)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			frames, err := DecodeMessage(msg)
			runtime.ReadMemStats(&after)
			require.ErrorIs(t, err, ErrMalformed)
			assert.Nil(t, frames)
			assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(64<<10), "bytes allocated to decode %d bytes", len(msg))
		})
	}
}

func TestCheckLengths(t *testing.T) {
	for _, test := range []struct {
		hex string
		ok  bool
	}{
		{"c0", true},
		{"c0 c0", true}, // what follows the value is the decoder's business
		{"92 c0 c0", true},
		{"92 92 c0 c0 c0", true},
		{"82 a161 01 a162 92 01 02", true},
		{"dc 0002 d0 ff cb 0000000000000000", true},
		{"df 00000001 d9 01 61 c4 02 0102", true},
		{"d8 01 " + strings.Repeat("00", 16), true},
		{"c9 00000001 05 ff", true},
		{"", false},
		{"c1", false}, // never used
		{"92 c0", false},
		{"92 dc 0002 c0 c0", false}, // the inner array takes the bytes the outer one needs
		{"81 a161", false},
		{"dd 00000002 c0", false},
		{"df 00000001 c0", false},
		{"a3 6161", false},
		{"db 00000003 6161", false},
		{"c4 02 01", false},
		{"c9 00000001 05", false},
		{"d8 01 " + strings.Repeat("00", 15), false},
		{"cd 01", false},
		{"cf 00000000000000", false},
		{"dc 00", false},
		{"df ffffffff", false},
	} {
		err := checkLengths(unhex(test.hex))
		if test.ok {
			assert.NoError(t, err, test.hex)
		} else {
			assert.Error(t, err, test.hex)
		}
	}
}

func TestDecodeMessageAnyDataValue(t *testing.T) {
	// d and st hold any msgpack value (nil reads as absent): every kind
	// passes the length check.
	values := []any{
		true, false, 0, 1, 127, 128, 255, 256, 1 << 16, 1 << 32, -1, -32, -33, -129, -1 << 15, -1 << 31, -1 << 40,
		uint64(1 << 63), float32(1.5), 2.25, "", "s", strings.Repeat("x", 40), strings.Repeat("y", 300), strings.Repeat("z", 70000),
		[]byte{}, []byte{1}, bytes.Repeat([]byte{2}, 300), bytes.Repeat([]byte{3}, 70000),
		[]any{}, []any{1, "a", nil}, make([]any, 20), make([]any, 70000),
		map[string]any{}, map[string]any{"a": 1, "b": []any{map[string]any{"c": nil}}},
		time.Unix(1, 0), time.Unix(1<<40, 5),
	}
	bigMap := map[int]int{}
	for i := range 70000 {
		bigMap[i] = i
	}
	values = append(values, bigMap)
	var raws [][]byte
	for _, v := range values {
		b, err := msgpack.Marshal(v)
		require.NoError(t, err)
		raws = append(raws, b)
	}
	// Extensions of every size, and a deep nesting.
	for _, h := range []string{"d4 01 aa", "d5 01 aabb", "d6 01 00000000", "d7 01 0000000000000000", "d8 01 " + strings.Repeat("00", 16),
		"c7 03 05 010203", "c8 0003 05 010203", "c9 00000003 05 010203", "c7 00 05"} {
		raws = append(raws, unhex(h))
	}
	raws = append(raws, append(bytes.Repeat([]byte{0x91}, 10000), 0xc0))
	for _, raw := range raws {
		f := Frame{Type: TypeMessage, Channel: "c:1", Offset: 1, Data: raw, State: raw}
		b, err := EncodeFrame(&f)
		require.NoError(t, err)
		frames, err := DecodeServerMessage(b)
		require.NoError(t, err, "data % x", raw[:min(len(raw), 16)])
		require.Len(t, frames, 1)
		require.Equal(t, hex.EncodeToString(raw), hex.EncodeToString(frames[0].Data))
		require.Equal(t, hex.EncodeToString(raw), hex.EncodeToString(frames[0].State))
	}
}

func seq(first, last uint64) []uint64 {
	var out []uint64
	for i := first; i <= last; i++ {
		out = append(out, i)
	}
	return out
}

func TestAppendBatch(t *testing.T) {
	// ping frames on c:1 with ids 1.., written by hand (a uint32 id)
	// because EncodeFrame is slow under the race detector; pings are
	// frames both sides send, so both decoders read them.
	template := unhex("83 a174 a470696e67 a26368 a3633a31 a26964 ce00000000")
	all := make([][]byte, 70000)
	for i := range all {
		b := bytes.Clone(template)
		binary.BigEndian.PutUint32(b[len(b)-4:], uint32(i+1))
		all[i] = b
	}
	for _, test := range []struct {
		n      int
		header string // the array header written before the frames; "" for one frame
		decode bool   // check by decoding, not only the header and the concatenation
	}{
		{1, "", true},
		{2, "92", true},
		{15, "9f", true},
		{16, "dc 0010", true},
		{MaxBatch, "dc 0064", true},
		{MaxBatch + 1, "dc 0065", true},
		{1<<16 - 1, "dc ffff", false},
		{1 << 16, "dd 00010000", false},
		{70000, "dd 00011170", true},
	} {
		frames := all[:test.n]
		prefix := []byte("keep")
		msg := appendBatch(bytes.Clone(prefix), frames)
		require.True(t, bytes.HasPrefix(msg, prefix), "n=%d: appendBatch appends", test.n)
		msg = msg[len(prefix):]
		header := unhex(test.header)
		require.Equal(t, hex.EncodeToString(header), hex.EncodeToString(msg[:len(header)]), "n=%d: header", test.n)
		require.True(t, bytes.Equal(bytes.Join(frames, nil), msg[len(header):]), "n=%d: the frames follow the header", test.n)
		if !test.decode {
			continue
		}
		got, err := DecodeServerMessage(msg)
		require.NoError(t, err, "n=%d", test.n)
		if test.n <= MaxBatch {
			fromClient, err := DecodeMessage(msg)
			require.NoError(t, err, "n=%d", test.n)
			require.Equal(t, got, fromClient)
		} else {
			// A client may send at most MaxBatch frames in one message.
			_, err := DecodeMessage(msg)
			require.ErrorIs(t, err, ErrMalformed, "n=%d from a client", test.n)
		}
		require.Len(t, got, test.n)
		for i, f := range got {
			if f.Type != TypePing || f.Channel != "c:1" || f.ID != uint64(i+1) {
				t.Fatalf("n=%d: frame %d is %+v", test.n, i, f)
			}
		}
	}
}

// normFrame makes the empty values a decoder may produce for absent or
// empty fields nil, so that frames compare by what they say.
func normFrame(f Frame) Frame {
	if len(f.Data) == 0 {
		f.Data = nil
	}
	if len(f.State) == 0 {
		f.State = nil
	}
	if len(f.Update) == 0 {
		f.Update = nil
	}
	if len(f.Version) == 0 {
		f.Version = nil
	}
	if len(f.Details) == 0 {
		f.Details = nil
	}
	if len(f.Presence) == 0 {
		f.Presence = nil
	} else {
		f.Presence = append([]PresenceInfo(nil), f.Presence...)
		for i := range f.Presence {
			if len(f.Presence[i].State) == 0 {
				f.Presence[i].State = nil
			}
		}
	}
	if len(f.Pubs) == 0 {
		f.Pubs = nil
	} else {
		pubs := make([]Frame, len(f.Pubs))
		for i, p := range f.Pubs {
			pubs[i] = normFrame(p)
		}
		f.Pubs = pubs
	}
	return f
}

// fuzzSeeds are valid and broken messages for FuzzDecodeMessage; the files
// in testdata/fuzz/FuzzDecodeMessage add the inputs that once failed.
func fuzzSeeds() [][]byte {
	var seeds [][]byte
	var all [][]byte
	for _, g := range goldenFrames {
		b := unhex(g.hex)
		seeds = append(seeds, b)
		all = append(all, b)
	}
	seeds = append(seeds,
		appendBatch(nil, all[:2]),
		appendBatch(nil, all),
		unhex("90"),
		unhex("c0"),
		unhex("80"),
		unhex("91 c0"),
		unhex("dd ffffffff"),
		unhex("82 a174 a26f6b a470756273 dd ffffffff"),
		unhex("82 a174 a26f6b a470726573 dc ffff"),
		unhex("82 a174 a3737562 a27676 df ffffffff"),
		unhex("82 a174 a36d7367 a164 c9 00000003 05 010203"),
		unhex("83 a174 a3657272 a26964 01 a3646574 83 a178 cb7ff8000000000000 a179 05 a17a 81 01 c3"), // details: NaN, a non-string key
		unhex("82 a174 a470696e67 a27a7a 01"),
		unhex("81 a174 05"),
		unhex("91 92 a470696e67 01"), // a frame as an array
		unhex("82 a174 a3737562 a2767682 01 02 cf8000000000000000 03"),
		unhex("81 a174 a26f6b")[:4],
		append(unhex("81 a174 a26f6b"), 0),
	)
	return seeds
}

func FuzzDecodeMessage(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		frames, err := DecodeMessage(msg)
		if err != nil {
			if frames != nil {
				t.Fatalf("frames and an error: %v", err)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if len(frames) == 0 || len(frames) > MaxBatch {
			t.Fatalf("decoded %d frames", len(frames))
		}
		// Whatever decodes, re-encodes (one frame or a batch, as the
		// server sends them) and decodes to the same frames.
		enc := make([][]byte, len(frames))
		for i := range frames {
			if frames[i].Type == "" {
				t.Fatalf("frame %d without type", i)
			}
			b, err := EncodeFrame(&frames[i])
			if err != nil {
				t.Fatalf("re-encoding frame %d %+v: %v", i, frames[i], err)
			}
			enc[i] = b
		}
		again, err := DecodeMessage(appendBatch(nil, enc))
		if err != nil {
			t.Fatalf("re-encoded message does not decode: %v\nframes: %+v", err, frames)
		}
		if len(again) != len(frames) {
			t.Fatalf("re-decoded %d frames, want %d", len(again), len(frames))
		}
		for i := range frames {
			if a, b := normFrame(frames[i]), normFrame(again[i]); !sameFrame(a, b) {
				t.Fatalf("frame %d changed in a round trip:\n  was %+v\n  now %+v", i, a, b)
			}
		}
	})
}

// sameFrame reports whether two decoded frames say the same: equal, or
// equal but for what reflect.DeepEqual cannot compare in details (a NaN, a
// map's order), which then encode to the same canonical bytes.
func sameFrame(a, b Frame) bool {
	if reflect.DeepEqual(a, b) {
		return true
	}
	if !reflect.DeepEqual(a.Version, b.Version) {
		return false
	}
	canonical := func(f Frame) []byte {
		f.Version = nil
		var buf bytes.Buffer
		enc := msgpack.NewEncoder(&buf)
		enc.UseCompactInts(true)
		enc.SetSortMapKeys(true)
		if err := enc.Encode(&f); err != nil {
			return nil
		}
		return buf.Bytes()
	}
	ca, cb := canonical(a), canonical(b)
	return ca != nil && bytes.Equal(ca, cb)
}
