package crdt

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// Errors returned by [Text] and the text encoders. Callers match them with
// errors.Is; returned errors may wrap them with detail.
var (
	// TextErrInvalidOp: an operation is malformed (bad ids, bad UTF-8,
	// references to its own future, sizes out of range). Nothing was changed.
	TextErrInvalidOp = errors.New("crdt: invalid text operation")
	// TextErrPosition: a position or length lies outside the text.
	TextErrPosition = errors.New("crdt: text position out of range")
	// TextErrIDUsed: a local edit was given an id whose sequence numbers this
	// text has already seen.
	TextErrIDUsed = errors.New("crdt: text id already used")
	// TextErrUnknownID: the id names no character this text has.
	TextErrUnknownID = errors.New("crdt: unknown text id")
	// TextErrCollected: undoing a delete needs content that Collect dropped.
	TextErrCollected = errors.New("crdt: deleted text content was collected")
	// TextErrEncoding: bytes are not a valid encoded text state or op list.
	TextErrEncoding = errors.New("crdt: invalid text encoding")
)

// Limits that every valid operation respects; decoders enforce them so that
// untrusted input cannot ask for absurd allocations.
const (
	// TextMaxOpLen is the most characters one insert may carry.
	TextMaxOpLen = 1 << 24
	// TextMaxSpans is the most spans one delete may name.
	TextMaxSpans = 1 << 20
	// TextMaxSeq bounds every sequence number (ids, spans, origins).
	TextMaxSeq = 1 << 62
)

// TextOpKind says what a [TextOp] does.
type TextOpKind uint8

// The kinds of text operation.
const (
	// TextInsert inserts a run of characters between two existing ones.
	TextInsert TextOpKind = 1
	// TextDelete deletes characters by id.
	TextDelete TextOpKind = 2
)

// TextOp is one text operation, as produced by a local edit and applied by
// every replica. An insert of n characters consumes the n sequence numbers
// ID.Seq .. ID.Seq+n-1 of ID.Replica (character k has id ID.Seq+k); a delete
// consumes ID alone.
//
// Operations are plain values: they can be stored, sent, encoded with
// msgpack (see [TextOp.EncodeMsgpack]) and applied any number of times, in
// any order, on any replica.
type TextOp struct {
	Kind TextOpKind
	ID   ID
	// Insert: the character the run was typed after (Left) and the one that
	// followed it at that moment (Right); the zero ID means the start (Left)
	// or the end (Right) of the text. Character k>0 of the run has origin
	// left ID+k-1 and origin right Right.
	Left, Right ID
	// Insert: the characters, valid UTF-8, at least one code point...
	Text string
	// ...or, instead of Text, the number of characters that were inserted and
	// are now deleted and collected everywhere, so their content is gone. Only
	// [Text.DiffSince] produces such placeholders, for a peer that lacks the
	// insert.
	Gone uint64
	// Delete: the characters deleted. May be empty when every character the
	// delete removed is attributed to another delete (see [Text.DiffSince]).
	Spans []TextSpan
}

// TextSpan names the characters Start.Seq .. Start.Seq+Len-1 of
// Start.Replica.
type TextSpan struct {
	Start ID
	Len   uint64
}

// Seqs returns how many sequence numbers op consumes: the characters of an
// insert, one for a delete.
func (op TextOp) Seqs() uint64 {
	if op.Kind == TextInsert {
		return op.runes()
	}
	return 1
}

// runes returns the characters of an insert.
func (op *TextOp) runes() uint64 {
	if op.Gone > 0 {
		return op.Gone
	}
	return uint64(utf8.RuneCountInString(op.Text))
}

// String describes op for logs and test failures.
func (op TextOp) String() string {
	switch op.Kind {
	case TextInsert:
		if op.Gone > 0 {
			return fmt.Sprintf("ins %v gone=%d left=%v right=%v", op.ID, op.Gone, op.Left, op.Right)
		}
		return fmt.Sprintf("ins %v %q left=%v right=%v", op.ID, op.Text, op.Left, op.Right)
	case TextDelete:
		return fmt.Sprintf("del %v %v", op.ID, op.Spans)
	}
	return fmt.Sprintf("op(kind=%d) %v", op.Kind, op.ID)
}

func textValidID(id ID) bool { return id.Replica != 0 && id.Seq != 0 && id.Seq < TextMaxSeq }

// textRefOK checks a reference from an op with id self to character ref:
// a replica can only refer to its own earlier characters.
func textRefOK(self, ref ID) bool {
	return textValidID(ref) && (ref.Replica != self.Replica || ref.Seq < self.Seq)
}

// validate checks everything about op that does not depend on a text's
// state. It returns an error wrapping TextErrInvalidOp.
func (op *TextOp) validate() error {
	bad := func(why string) error { return fmt.Errorf("%w: %s (%v)", TextErrInvalidOp, why, op.ID) }
	if !textValidID(op.ID) {
		return bad("invalid id")
	}
	switch op.Kind {
	case TextInsert:
		if len(op.Spans) != 0 {
			return bad("insert with spans")
		}
		if (op.Text == "") == (op.Gone == 0) {
			return bad("insert needs exactly one of text and gone")
		}
		if op.Text != "" && !utf8.ValidString(op.Text) {
			return bad("text is not valid UTF-8")
		}
		n := op.runes()
		if n > TextMaxOpLen {
			return bad("insert too long")
		}
		if op.ID.Seq+n > TextMaxSeq {
			return bad("sequence numbers out of range")
		}
		if op.Left != (ID{}) && !textRefOK(op.ID, op.Left) {
			return bad("invalid origin left")
		}
		if op.Right != (ID{}) && !textRefOK(op.ID, op.Right) {
			return bad("invalid origin right")
		}
		if op.Left == op.Right && op.Left != (ID{}) {
			return bad("origins are the same character")
		}
	case TextDelete:
		if op.Text != "" || op.Gone != 0 || op.Left != (ID{}) || op.Right != (ID{}) {
			return bad("delete with insert fields")
		}
		if len(op.Spans) > TextMaxSpans {
			return bad("too many spans")
		}
		for _, s := range op.Spans {
			if s.Len == 0 || s.Len > TextMaxSeq || !textRefOK(op.ID, s.Start) ||
				s.Start.Seq+s.Len > TextMaxSeq ||
				(s.Start.Replica == op.ID.Replica && s.Start.Seq+s.Len > op.ID.Seq) {
				return bad("invalid span")
			}
		}
	default:
		return bad("unknown kind")
	}
	return nil
}
