package crdt

import (
	"cmp"
	"fmt"
	"slices"
	"unicode/utf8"
)

// Collaborative text inside elements. A property of kind [KindText] holds a
// [Text] (the sequence CRDT of text.go) instead of a register. Its edits are
// ops of kind OpTextInsert and OpTextDelete in ordinary updates: they take
// the document replica's sequence numbers (an insert one per character, a
// delete one), count in its version vector, wait pending for the element and
// for the characters they name, travel in DiffSince and snapshots, are
// collected by Collect and undone by Undo.

// textProp is one KindText property of an element.
type textProp struct {
	key uint16
	t   *Text
}

func cmpTextKey(tp textProp, key uint16) int { return cmp.Compare(tp.key, key) }

// text returns the element's text of property key, or nil if no text op has
// touched it.
func (e *element) text(key uint16) *Text {
	i, ok := slices.BinarySearchFunc(e.texts, key, cmpTextKey)
	if !ok {
		return nil
	}
	return e.texts[i].t
}

// textFor returns the element's text of property key, adding an empty one
// if there is none.
func (e *element) textFor(key uint16) *Text {
	i, ok := slices.BinarySearchFunc(e.texts, key, cmpTextKey)
	if !ok {
		e.texts = slices.Insert(e.texts, i, textProp{key: key, t: new(Text)})
	}
	return e.texts[i].t
}

// textKey returns the index of prop, which must be a text property that e's
// type allows.
func (d *Doc) textKey(e *element, prop string) (uint16, error) {
	k, ok := d.schema.propIndex[prop]
	switch {
	case !ok:
		return 0, fmt.Errorf("%w: unknown property %q", ErrInvalid, prop)
	case d.schema.props[k].Kind != KindText:
		return 0, fmt.Errorf("%w: property %q is not text", ErrInvalid, prop)
	case !e.typ.allowed[k]:
		return 0, fmt.Errorf("%w: type %s has no property %q", ErrInvalid, e.typ.name, prop)
	}
	return k, nil
}

// findText returns the text of property prop of element id, or nil.
func (d *Doc) findText(id ID, prop string) *Text {
	e := d.elems[id]
	if e == nil {
		return nil
	}
	k, ok := d.schema.propIndex[prop]
	if !ok {
		return nil
	}
	return e.text(k)
}

// liveText returns a live element, the index of its text property prop, and
// the text, which is empty and not yet attached if no op touched it: a local
// edit attaches it only once it succeeds.
func (d *Doc) liveText(id ID, prop string) (*element, uint16, *Text, error) {
	e, err := d.liveElem(id)
	if err != nil {
		return nil, 0, nil, err
	}
	k, err := d.textKey(e, prop)
	if err != nil {
		return nil, 0, nil, err
	}
	t := e.text(k)
	if t == nil {
		t = new(Text)
	}
	return e, k, t, nil
}

// nextID is the id of this replica's next op.
func (d *Doc) nextID() ID { return ID{Replica: d.replica, Seq: d.vv[d.replica] + 1} }

// InsertText inserts s before code point pos (0 <= pos <= length) of the
// text property prop of a live element, and returns the update. The insert
// takes one sequence number per code point.
//
// Errors: [ErrNotFound] if the element does not exist; [ErrDeleted] if it is
// not live; [ErrInvalid] if prop is not a text property of its type, s is
// empty or not UTF-8, the text would grow past the property's MaxLen, or pos
// is out of range (then the error also wraps [TextErrPosition]).
func (d *Doc) InsertText(elem ID, prop string, pos int, s string) ([]byte, error) {
	e, k, t, err := d.liveText(elem, prop)
	if err != nil {
		return nil, err
	}
	if s == "" || !utf8.ValidString(s) {
		return nil, fmt.Errorf("%w: %w: text to insert must be non-empty UTF-8", ErrInvalid, TextErrInvalidOp)
	}
	n := utf8.RuneCountInString(s)
	if pos < 0 || pos > t.Len() {
		return nil, fmt.Errorf("%w: %w: insert at %d in %d", ErrInvalid, TextErrPosition, pos, t.Len())
	}
	if t.Len()+n > d.schema.props[k].MaxLen {
		return nil, fmt.Errorf("%w: %q would be longer than %d characters", ErrInvalid, prop, d.schema.props[k].MaxLen)
	}
	if d.nextID().Seq+uint64(n) > maxCounter {
		return nil, fmt.Errorf("%w: sequence numbers exhausted", ErrInvalid)
	}
	op, err := t.Insert(d.nextID(), pos, s)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	var ed edit
	d.emitText(&ed, e, k, t, op)
	return d.commit(ed), nil
}

// DeleteText deletes the n code points from pos of the text property prop of
// a live element, and returns the update. The delete takes one sequence
// number.
//
// Errors: as for [Doc.InsertText]; [ErrInvalid] wrapping [TextErrPosition]
// unless n >= 1 and 0 <= pos <= pos+n <= length.
func (d *Doc) DeleteText(elem ID, prop string, pos, n int) ([]byte, error) {
	e, k, t, err := d.liveText(elem, prop)
	if err != nil {
		return nil, err
	}
	if n < 1 || pos < 0 || pos > t.Len()-n {
		return nil, fmt.Errorf("%w: %w: delete %d at %d in %d", ErrInvalid, TextErrPosition, n, pos, t.Len())
	}
	op, err := t.Delete(d.nextID(), pos, n)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	var ed edit
	d.emitText(&ed, e, k, t, op)
	return d.commit(ed), nil
}

// ReplaceText makes the text property prop of a live element read s, with
// as small an edit as one delete and one insert between the common prefix
// and suffix of the old and new text, and returns the update (one step for
// [Doc.Undo]). It is for callers that only have whole strings, such as a
// form field or a version restore; concurrent edits to the replaced part
// merge as with any delete and insert. It returns nil and no error if the
// text already reads s.
//
// Errors: as for [Doc.InsertText].
func (d *Doc) ReplaceText(elem ID, prop string, s string) ([]byte, error) {
	e, k, t, err := d.liveText(elem, prop)
	if err != nil {
		return nil, err
	}
	if !utf8.ValidString(s) {
		return nil, fmt.Errorf("%w: %w: text must be UTF-8", ErrInvalid, TextErrInvalidOp)
	}
	old, nw := []rune(t.String()), []rune(s)
	if len(nw) > d.schema.props[k].MaxLen {
		return nil, fmt.Errorf("%w: %q would be longer than %d characters", ErrInvalid, prop, d.schema.props[k].MaxLen)
	}
	p := 0
	for p < len(old) && p < len(nw) && old[p] == nw[p] {
		p++
	}
	q := 0
	for q < len(old)-p && q < len(nw)-p && old[len(old)-1-q] == nw[len(nw)-1-q] {
		q++
	}
	if p+q == len(old) && p+q == len(nw) {
		return nil, nil
	}
	if d.nextID().Seq+uint64(len(nw)-p-q)+1 > maxCounter {
		return nil, fmt.Errorf("%w: sequence numbers exhausted", ErrInvalid)
	}
	var ed edit
	if n := len(old) - p - q; n > 0 {
		op, err := t.Delete(d.nextID(), p, n)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		d.emitText(&ed, e, k, t, op)
	}
	if ins := nw[p : len(nw)-q]; len(ins) > 0 {
		op, err := t.Insert(d.nextID(), p, string(ins))
		if err != nil {
			panic("crdt: ReplaceText: " + err.Error()) // checked above; a delete already happened
		}
		d.emitText(&ed, e, k, t, op)
	}
	return d.commit(ed), nil
}

// emitText records one text op that t (the text of property k of e) has
// already applied locally: it attaches t to e if it is new, advances the
// version, and adds the op (split in runs of at most maxTextInsert
// characters) and its undo step to the edit.
func (d *Doc) emitText(ed *edit, e *element, k uint16, t *Text, op TextOp) {
	if e.text(k) == nil {
		i, _ := slices.BinarySearchFunc(e.texts, k, cmpTextKey)
		e.texts = slices.Insert(e.texts, i, textProp{key: k, t: t})
	}
	name := d.schema.propNames[k]
	add := func(c TextOp) {
		o := textDocOp(e.id, name, c)
		d.vv[d.replica] = o.last()
		ed.ops = append(ed.ops, o)
		ed.steps = append(ed.steps, undoStep{kind: o.Kind, elem: e.id, textKey: k, text: c, expect: o.ID})
	}
	if op.Kind == TextDelete || op.runes() <= maxTextInsert {
		add(op)
		return
	}
	for _, c := range textSplitInsert(op) {
		add(c)
	}
}

// textDocOp wraps a text op of property prop of element elem as a document op.
func textDocOp(elem ID, prop string, op TextOp) Op {
	kind := OpTextInsert
	if op.Kind == TextDelete {
		kind = OpTextDelete
	}
	return Op{Kind: kind, ID: op.ID, Elem: elem, TextProp: prop, Text: op}
}

// textSplitInsert splits an insert of more than maxTextInsert characters
// into consecutive inserts of at most that many: the same characters with
// the same origins (character k of a run has origin left ID+k-1).
func textSplitInsert(op TextOp) []TextOp {
	if op.Kind != TextInsert || op.runes() <= maxTextInsert {
		return []TextOp{op}
	}
	var out []TextOp
	emit := func(first uint64, text string, gone uint64) {
		c := op
		c.ID.Seq += first
		if first > 0 {
			c.Left = ID{Replica: op.ID.Replica, Seq: c.ID.Seq - 1}
		}
		c.Text, c.Gone = text, gone
		out = append(out, c)
	}
	if op.Gone > 0 {
		for k := uint64(0); k < op.Gone; k += maxTextInsert {
			emit(k, "", min(maxTextInsert, op.Gone-k))
		}
		return out
	}
	var k uint64
	start := 0
	for i := range op.Text {
		if k > 0 && k%maxTextInsert == 0 {
			emit(k-maxTextInsert, op.Text[start:i], 0)
			start = i
		}
		k++
	}
	emit((k-1)/maxTextInsert*maxTextInsert, op.Text[start:], 0)
	return out
}

// Text returns the text property prop of element id as a string: "" if the
// element, the property or any text in it does not exist. It reads deleted
// elements too.
func (d *Doc) Text(id ID, prop string) string {
	if t := d.findText(id, prop); t != nil {
		return t.String()
	}
	return ""
}

// TextLen returns the length in code points of [Doc.Text].
func (d *Doc) TextLen(id ID, prop string) int {
	if t := d.findText(id, prop); t != nil {
		return t.Len()
	}
	return 0
}

// TextCursor returns a stable anchor for the caret at code point position
// pos (0 <= pos <= length) of the text property prop of element id: the id
// of the character before the caret, or the zero ID at the start (see
// [Text.Cursor]). Another replica maps it back with [Doc.TextCursorPos],
// whatever was edited meanwhile; a selection is two anchors.
//
// Errors: [ErrNotFound] if the element does not exist; [ErrInvalid] if prop
// is not a text property of its type or pos is out of range (then the error
// also wraps [TextErrPosition]).
func (d *Doc) TextCursor(id ID, prop string, pos int) (ID, error) {
	t, err := d.readText(id, prop)
	if err != nil {
		return ID{}, err
	}
	c, err := t.Cursor(pos)
	if err != nil {
		return ID{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return c, nil
}

// TextCursorPos returns the caret position of an anchor made by
// [Doc.TextCursor] on any replica: just after the anchor character, or where
// it was if it has been deleted.
//
// Errors: as for [Doc.TextCursor]; an error wrapping [TextErrUnknownID] if
// this replica does not have the anchor character (yet).
func (d *Doc) TextCursorPos(id ID, prop string, anchor ID) (int, error) {
	t, err := d.readText(id, prop)
	if err != nil {
		return 0, err
	}
	return t.CursorPos(anchor)
}

// readText returns the text property prop of element id (deleted or not),
// or an empty text if no op touched it.
func (d *Doc) readText(id ID, prop string) (*Text, error) {
	e := d.elems[id]
	if e == nil {
		return nil, fmt.Errorf("%w: %d.%d", ErrNotFound, id.Replica, id.Seq)
	}
	k, err := d.textKey(e, prop)
	if err != nil {
		return nil, err
	}
	if t := e.text(k); t != nil {
		return t, nil
	}
	return new(Text), nil
}

// applyText applies a text op whose dependencies are applied. It changes
// nothing if the element is gone (collected) or its type does not allow the
// property; an op on a deleted element is applied, and shows if the element
// is restored.
func (d *Doc) applyText(o *Op) {
	e := d.elems[o.Elem]
	if e == nil {
		return
	}
	k, ok := d.schema.propIndex[o.TextProp]
	if !ok || d.schema.props[k].Kind != KindText || !e.typ.allowed[k] {
		return
	}
	t := e.textFor(k)
	t.init()
	t.applyOne(o.Text)
	t.drain()
}

// checkTextOp checks a text op against the schema and, when the element's
// type is known, against the properties that type allows.
func (d *Doc) checkTextOp(o *Op, t *typeInfo) error {
	k, ok := d.schema.propIndex[o.TextProp]
	switch {
	case !ok:
		return fmt.Errorf("%w: %v op %d.%d: unknown property %q", ErrInvalid, o.Kind, o.ID.Replica, o.ID.Seq, o.TextProp)
	case d.schema.props[k].Kind != KindText:
		return fmt.Errorf("%w: %v op %d.%d: property %q is not text", ErrInvalid, o.Kind, o.ID.Replica, o.ID.Seq, o.TextProp)
	case t != nil && !t.allowed[k]:
		return fmt.Errorf("%w: %v op %d.%d: type %s has no property %q", ErrInvalid, o.Kind, o.ID.Replica, o.ID.Seq, t.name, o.TextProp)
	}
	return nil
}

// textDeps returns a character a text op names that this document has not
// applied: an origin of an insert, or the last character of a span of a
// delete (sequence numbers are applied in order, so that covers the span).
func (d *Doc) textDeps(o *Op) (ID, bool) {
	if o.Kind == OpTextInsert {
		for _, id := range [2]ID{o.Text.Left, o.Text.Right} {
			if id != (ID{}) && !d.vv.Contains(id) {
				return id, true
			}
		}
		return ID{}, false
	}
	for _, s := range o.Text.Spans {
		if last := (ID{Replica: s.Start.Replica, Seq: s.Start.Seq + s.Len - 1}); !d.vv.Contains(last) {
			return last, true
		}
	}
	return ID{}, false
}

// textDiff appends the text ops of e that a replica at v lacks.
func (d *Doc) textDiff(ops []Op, e *element, v VersionVector) []Op {
	for _, tp := range e.texts {
		name := d.schema.propNames[tp.key]
		for _, top := range tp.t.DiffSince(v) {
			for _, c := range textSplitInsert(top) {
				ops = append(ops, textDocOp(e.id, name, c))
			}
		}
	}
	return ops
}
