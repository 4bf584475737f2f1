package realtime

import (
	"bytes"
	"errors"
	"fmt"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// Subprotocol is the WebSocket subprotocol of this version of the protocol.
const Subprotocol = "tone.v1"

// Frame types. Client commands carry a request id and get exactly one reply
// (TypeOK or TypeError with the same id); server pushes carry none.
const (
	// Client commands.
	TypeConnect     = "connect"  // tok: access token; first frame of a connection
	TypeRefresh     = "refresh"  // tok: a fresh access token for the live connection
	TypeSubscribe   = "sub"      // ch, since?, vv?, replica?
	TypeUnsubscribe = "unsub"    // ch
	TypePublish     = "pub"      // ch, d
	TypePresence    = "presence" // ch, st? (set own state; without st: list)
	TypeCanvas      = "canvas"   // ch, u: a crdt update
	TypeHistory     = "history"  // ch, since, limit
	TypePing        = "ping"     // from the client: a request; from the server: a push
	TypePong        = "pong"     // the client's answer to a server ping (no id)

	// Server frames.
	TypeConnected = "connected" // reply to connect
	TypeOK        = "ok"        // successful reply
	TypeError     = "err"       // failed reply (id) or connection-level error (no id)
	TypeMessage   = "msg"       // a publication on a subscribed channel
	TypeJoin      = "join"      // a client joined a channel's presence
	TypeLeave     = "leave"     // a client left a channel's presence
	TypeState     = "state"     // a client's presence state changed
	TypeReset     = "reset"     // a subscription lost its place: subscribe again with since
)

// Position is a place in a channel's stream: the offset of the last
// publication and the epoch of the stream. Offsets are contiguous within an
// epoch; a new epoch means the stream's history was lost.
type Position struct {
	Offset uint64 `msgpack:"o"`
	Epoch  string `msgpack:"e"`
}

// Frame is one protocol frame. Each frame is a msgpack map with the short
// keys below; fields that do not apply to a type are omitted.
// docs/protocol.md documents every field of every type.
type Frame struct {
	Type      string             `msgpack:"t"`
	ID        uint64             `msgpack:"id,omitempty"`
	Channel   string             `msgpack:"ch,omitempty"`
	Token     string             `msgpack:"tok,omitempty"`
	Data      msgpack.RawMessage `msgpack:"d,omitempty"`
	Offset    uint64             `msgpack:"o,omitempty"`
	Since     *Position          `msgpack:"since,omitempty"`
	Pos       *Position          `msgpack:"pos,omitempty"`
	Recovered *bool              `msgpack:"rec,omitempty"`
	Pubs      []Frame            `msgpack:"pubs,omitempty"`
	Limit     int                `msgpack:"limit,omitempty"`
	State     msgpack.RawMessage `msgpack:"st,omitempty"`
	Presence  []PresenceInfo     `msgpack:"pres,omitempty"`
	Update    []byte             `msgpack:"u,omitempty"`
	Version   map[uint64]uint64  `msgpack:"vv,omitempty"`
	Replica   uint64             `msgpack:"replica,omitempty"`
	Client    string             `msgpack:"client,omitempty"`
	User      string             `msgpack:"user,omitempty"`
	Node      string             `msgpack:"node,omitempty"`
	Ping      int                `msgpack:"ping,omitempty"` // seconds between server pings
	Expires   int64              `msgpack:"exp,omitempty"`  // access token expiry, Unix seconds
	Code      string             `msgpack:"code,omitempty"` // error code
	Message   string             `msgpack:"msg,omitempty"`  // error message
	More      bool               `msgpack:"more,omitempty"` // history: more after this page
	Snapshot  bool               `msgpack:"snap,omitempty"` // canvas: u is a full snapshot
	Name      string             `msgpack:"name,omitempty"` // connect: client name, for logs
	Details   map[string]any     `msgpack:"det,omitempty"`  // err: details, such as expected_seq
}

// PresenceInfo is one client's presence in a channel.
type PresenceInfo struct {
	Client string             `msgpack:"client"`
	User   string             `msgpack:"user"`
	State  msgpack.RawMessage `msgpack:"st,omitempty"`
}

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("malformed message")

// DecodeMessage decodes one WebSocket message from a client: a frame, or an
// array of at most MaxBatch frames (a batch). Keys that only the server
// sends (pubs, pres, pos, ...) are refused like unknown keys, before any of
// their content is decoded. It never panics on bad input.
func DecodeMessage(b []byte) ([]Frame, error) {
	in, err := decodeMessage[clientFrame](b, MaxBatch)
	if err != nil {
		return nil, err
	}
	frames := make([]Frame, len(in))
	for i, f := range in {
		frames[i] = Frame{Type: f.Type, ID: f.ID, Channel: f.Channel, Token: f.Token, Data: f.Data, Since: f.Since,
			Limit: f.Limit, State: f.State, Update: f.Update, Version: f.Version, Replica: f.Replica, Name: f.Name}
	}
	return frames, nil
}

// clientFrame holds the keys of Frame that clients send.
type clientFrame struct {
	Type    string             `msgpack:"t"`
	ID      uint64             `msgpack:"id,omitempty"`
	Channel string             `msgpack:"ch,omitempty"`
	Token   string             `msgpack:"tok,omitempty"`
	Data    msgpack.RawMessage `msgpack:"d,omitempty"`
	Since   *Position          `msgpack:"since,omitempty"`
	Limit   int                `msgpack:"limit,omitempty"`
	State   msgpack.RawMessage `msgpack:"st,omitempty"`
	Update  []byte             `msgpack:"u,omitempty"`
	Version map[uint64]uint64  `msgpack:"vv,omitempty"`
	Replica uint64             `msgpack:"replica,omitempty"`
	Name    string             `msgpack:"name,omitempty"`
}

func (f *clientFrame) typ() string { return f.Type }
func (f *Frame) typ() string       { return f.Type }

// DecodeServerMessage decodes one WebSocket message from the server, whose
// batches may hold any number of frames.
func DecodeServerMessage(b []byte) ([]Frame, error) { return decodeMessage[Frame](b, 1<<20) }

func decodeMessage[T any, PT interface {
	*T
	typ() string
}](b []byte, maxFrames int) ([]T, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrMalformed)
	}
	if err := checkLengths(b); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	r := bytes.NewReader(b) // a ByteScanner, so the decoder reads no further than it needs
	dec := msgpack.NewDecoder(r)
	dec.DisallowUnknownFields(true)
	var frames []T
	c := b[0]
	switch {
	case msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32:
		n, err := dec.DecodeArrayLen()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		if n <= 0 || n > maxFrames {
			return nil, fmt.Errorf("%w: a batch holds 1 to %d frames", ErrMalformed, maxFrames)
		}
		frames = make([]T, n)
		for i := range frames {
			if err := dec.Decode(&frames[i]); err != nil {
				return nil, fmt.Errorf("%w: frame %d: %v", ErrMalformed, i, err)
			}
		}
	case msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32:
		frames = make([]T, 1)
		if err := dec.Decode(&frames[0]); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
	default:
		return nil, fmt.Errorf("%w: want a map or an array of maps", ErrMalformed)
	}
	if r.Len() > 0 {
		return nil, fmt.Errorf("%w: trailing bytes", ErrMalformed)
	}
	for i := range frames {
		if PT(&frames[i]).typ() == "" {
			return nil, fmt.Errorf("%w: frame %d has no type", ErrMalformed, i)
		}
	}
	return frames, nil
}

// MaxBatch is the most frames one message may hold.
const MaxBatch = 100

// frameEncoder is a reusable encoder and its buffer; EncodeFrame runs for
// every frame sent, so it keeps them in a pool.
type frameEncoder struct {
	buf bytes.Buffer
	enc *msgpack.Encoder
}

var frameEncoders = sync.Pool{New: func() any {
	fe := &frameEncoder{}
	fe.enc = msgpack.NewEncoder(&fe.buf)
	fe.enc.UseCompactInts(true)
	return fe
}}

// EncodeFrame returns the msgpack encoding of f.
func EncodeFrame(f *Frame) ([]byte, error) {
	fe := frameEncoders.Get().(*frameEncoder)
	defer frameEncoders.Put(fe)
	fe.buf.Reset()
	if err := fe.enc.Encode(f); err != nil {
		fe.enc.ResetWriter(&fe.buf) // drop any half-written state
		return nil, err
	}
	return bytes.Clone(fe.buf.Bytes()), nil
}

// appendBatch appends to dst one message holding the encoded frames: the
// frame itself when there is one, else a msgpack array of them.
func appendBatch(dst []byte, frames [][]byte) []byte {
	if len(frames) == 1 {
		return append(dst, frames[0]...)
	}
	n := len(frames)
	switch {
	case n < 16:
		dst = append(dst, msgpcode.FixedArrayLow|byte(n))
	case n < 1<<16:
		dst = append(dst, msgpcode.Array16, byte(n>>8), byte(n))
	default:
		dst = append(dst, msgpcode.Array32, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	for _, f := range frames {
		dst = append(dst, f...)
	}
	return dst
}

// checkLengths walks the msgpack value at the start of b and checks that no
// array, map, string, binary or extension claims more elements or bytes
// than b holds. msgpack v5.4 allocates a slice for an array's declared
// length before reading it (vmihailenco/msgpack#401), so a few bytes
// claiming 2^32 frames would otherwise exhaust memory.
func checkLengths(b []byte) error {
	short := errors.New("a length exceeds the message")
	pending := 1 // values still to read
	for pending > 0 {
		if len(b) == 0 {
			return short
		}
		c := b[0]
		b = b[1:]
		pending--
		var n, size uint64 // elements the value holds; bytes of its payload
		switch {
		case c <= msgpcode.PosFixedNumHigh || c >= msgpcode.NegFixedNumLow,
			c == msgpcode.Nil, c == msgpcode.False, c == msgpcode.True:
		case msgpcode.IsFixedMap(c):
			n = 2 * uint64(c&msgpcode.FixedMapMask)
		case msgpcode.IsFixedArray(c):
			n = uint64(c & msgpcode.FixedArrayMask)
		case msgpcode.IsFixedString(c):
			size = uint64(c & msgpcode.FixedStrMask)
		default:
			w, ok := lengthWidth[c]
			if !ok {
				return fmt.Errorf("invalid code %#x", c)
			}
			if len(b) < w.header {
				return short
			}
			var l uint64
			for _, x := range b[:w.header] {
				l = l<<8 | uint64(x)
			}
			b = b[w.header:]
			switch w.kind {
			case 'f': // fixed size
				size = uint64(w.fixed)
			case 's': // string, binary or extension (type byte after the length)
				size = l + uint64(w.fixed)
			case 'a':
				n = l
			case 'm':
				n = 2 * l
			}
		}
		if size > uint64(len(b)) || n > uint64(len(b)) {
			return short
		}
		b = b[size:]
		// Each value still to read takes a byte at least, so all the
		// elements declared in a message are fewer than its bytes.
		if pending += int(n); pending > len(b) {
			return short
		}
	}
	return nil
}

// lengthWidth describes the msgpack codes whose size is not in the code
// itself: header is the bytes of length after the code; kind is 'f' for a
// fixed payload of fixed bytes, 's' for a payload of the length plus fixed
// bytes, 'a' for an array and 'm' for a map of the length's elements.
var lengthWidth = map[byte]struct {
	header int
	kind   byte
	fixed  int
}{
	msgpcode.Float: {0, 'f', 4}, msgpcode.Double: {0, 'f', 8},
	msgpcode.Uint8: {0, 'f', 1}, msgpcode.Uint16: {0, 'f', 2}, msgpcode.Uint32: {0, 'f', 4}, msgpcode.Uint64: {0, 'f', 8},
	msgpcode.Int8: {0, 'f', 1}, msgpcode.Int16: {0, 'f', 2}, msgpcode.Int32: {0, 'f', 4}, msgpcode.Int64: {0, 'f', 8},
	msgpcode.FixExt1: {0, 'f', 2}, msgpcode.FixExt2: {0, 'f', 3}, msgpcode.FixExt4: {0, 'f', 5},
	msgpcode.FixExt8: {0, 'f', 9}, msgpcode.FixExt16: {0, 'f', 17},
	msgpcode.Str8: {1, 's', 0}, msgpcode.Str16: {2, 's', 0}, msgpcode.Str32: {4, 's', 0},
	msgpcode.Bin8: {1, 's', 0}, msgpcode.Bin16: {2, 's', 0}, msgpcode.Bin32: {4, 's', 0},
	msgpcode.Ext8: {1, 's', 1}, msgpcode.Ext16: {2, 's', 1}, msgpcode.Ext32: {4, 's', 1},
	msgpcode.Array16: {2, 'a', 0}, msgpcode.Array32: {4, 'a', 0},
	msgpcode.Map16: {2, 'm', 0}, msgpcode.Map32: {4, 'm', 0},
}
