package realtime

import (
	"bytes"
	"errors"
	"fmt"

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
	Ping      int                `msgpack:"ping,omitempty"`    // seconds between server pings
	Expires   int64              `msgpack:"exp,omitempty"`     // access token expiry, Unix seconds
	Code      string             `msgpack:"code,omitempty"`    // error code
	Message   string             `msgpack:"msg,omitempty"`     // error message
	More      bool               `msgpack:"more,omitempty"`    // history: more after this page
	Snapshot  bool               `msgpack:"snap,omitempty"`    // canvas: u is a full snapshot
	Name      string             `msgpack:"name,omitempty"`    // connect: client name
	Pending   int                `msgpack:"pending,omitempty"` // canvas: ops held for missing dependencies
}

// PresenceInfo is one client's presence in a channel.
type PresenceInfo struct {
	Client string             `msgpack:"client"`
	User   string             `msgpack:"user"`
	State  msgpack.RawMessage `msgpack:"st,omitempty"`
}

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("malformed message")

// DecodeMessage decodes one WebSocket message: a frame, or an array of
// frames (a batch). It never panics on bad input.
func DecodeMessage(b []byte) ([]Frame, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrMalformed)
	}
	r := bytes.NewReader(b) // a ByteScanner, so the decoder reads no further than it needs
	dec := msgpack.NewDecoder(r)
	dec.DisallowUnknownFields(true)
	var frames []Frame
	c := b[0]
	switch {
	case msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32:
		n, err := dec.DecodeArrayLen()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		if n <= 0 || n > MaxBatch {
			return nil, fmt.Errorf("%w: a batch holds 1 to %d frames", ErrMalformed, MaxBatch)
		}
		frames = make([]Frame, n)
		for i := range frames {
			if err := dec.Decode(&frames[i]); err != nil {
				return nil, fmt.Errorf("%w: frame %d: %v", ErrMalformed, i, err)
			}
		}
	case msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32:
		frames = make([]Frame, 1)
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
		if frames[i].Type == "" {
			return nil, fmt.Errorf("%w: frame %d has no type", ErrMalformed, i)
		}
	}
	return frames, nil
}

// MaxBatch is the most frames one message may hold.
const MaxBatch = 100

// EncodeFrame returns the msgpack encoding of f.
func EncodeFrame(f *Frame) ([]byte, error) {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	if err := enc.Encode(f); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
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
