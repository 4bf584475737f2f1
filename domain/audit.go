package domain

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
)

// The audit hash chain.
//
// Every audit event belongs to a chain: its workspace's, or its actor's
// for events outside any workspace ([AuditEvent.ChainID]). A store
// appends to a chain one event at a time (holding the chain's head for the
// rest of the transaction), numbering events from 1 and sealing each with
// [AuditEvent.Seal]: PrevHash is the hash of the event before it (empty
// for the first) and Hash is SHA-256 over a canonical encoding of every
// field and PrevHash. Each chain's head (its last Seq and Hash) is stored
// apart, so [VerifyAuditChain] finds an event that was edited (its hash no
// longer matches), deleted (a gap in Seq, or a head beyond the last event)
// or moved (PrevHash no longer names its predecessor).

// AuditHead is the last event of a chain.
type AuditHead struct {
	Chain uuid.UUID
	Seq   int64 // 0 for a chain without events
	Hash  []byte
}

// ChainID returns the chain e belongs to: its workspace, else its actor.
func (e *AuditEvent) ChainID() uuid.UUID {
	if e.WorkspaceID != uuid.Nil {
		return e.WorkspaceID
	}
	return e.ActorID
}

// Seal makes e the event after head in its chain: it sets Chain, Seq,
// PrevHash and Hash, after rounding Time to the microsecond (what
// PostgreSQL keeps) in UTC. Stores call it while holding the head.
func (e *AuditEvent) Seal(head AuditHead) {
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	e.Chain = e.ChainID()
	e.Seq = head.Seq + 1
	e.PrevHash = append([]byte{}, head.Hash...)
	e.Hash = e.ComputeHash()
}

// auditHashVersion starts every encoded event, so that a later encoding
// can be told apart.
const auditHashVersion = "tone.audit.v1"

// ComputeHash returns SHA-256 over the canonical encoding of e: the
// version string, then Chain, Seq, ID, Time (Unix microseconds),
// ActorID, WorkspaceID, ProjectID, Action, TargetType, TargetID,
// CorrelationID, IP, UserAgent, Result, the details as canonical JSON
// (keys sorted, as encoding/json writes them) and PrevHash. UUIDs are
// their 16 bytes, integers 8 bytes big-endian, and strings and byte
// strings are prefixed by their length as 4 bytes big-endian.
func (e *AuditEvent) ComputeHash() []byte {
	var b bytes.Buffer
	str := func(s []byte) {
		b.Write(binary.BigEndian.AppendUint32(nil, uint32(len(s))))
		b.Write(s)
	}
	num := func(n int64) { b.Write(binary.BigEndian.AppendUint64(nil, uint64(n))) }
	str([]byte(auditHashVersion))
	b.Write(e.Chain[:])
	num(e.Seq)
	b.Write(e.ID[:])
	num(e.Time.UnixMicro())
	b.Write(e.ActorID[:])
	b.Write(e.WorkspaceID[:])
	b.Write(e.ProjectID[:])
	for _, s := range []string{e.Action, e.TargetType, e.TargetID, e.CorrelationID, e.IP, e.UserAgent, e.Result} {
		str([]byte(s))
	}
	str(canonicalDetails(e.Details))
	str(e.PrevHash)
	sum := sha256.Sum256(b.Bytes())
	return sum[:]
}

// canonicalDetails encodes details so that a map and its copy read back
// from a JSON store encode alike: encoded, decoded keeping numbers as
// written, and encoded again (sorted keys, the same escapes).
func canonicalDetails(details map[string]any) []byte {
	if len(details) == 0 {
		return []byte("{}")
	}
	first, err := json.Marshal(details)
	if err != nil {
		return []byte(fmt.Sprintf("unencodable: %v", err))
	}
	dec := json.NewDecoder(bytes.NewReader(first))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		return first
	}
	out, err := json.Marshal(v)
	if err != nil {
		return first
	}
	return out
}

// AuditProblem is one break in a chain.
type AuditProblem struct {
	Seq     int64  `json:"seq"`      // the event where it shows (for the head: the head's seq)
	EventID string `json:"event_id"` // "" when the event is missing
	Kind    string `json:"kind"`     // edited, missing, out_of_order, truncated
	Message string `json:"message"`
}

// Audit problem kinds.
const (
	AuditEdited     = "edited"       // the event's hash does not match its fields
	AuditMissing    = "missing"      // events are missing before this one
	AuditOutOfOrder = "out_of_order" // the event does not follow the one before it
	AuditTruncated  = "truncated"    // the head names events that are gone
)

// AuditVerifier checks one chain's events, given in Seq order, a batch at
// a time.
type AuditVerifier struct {
	chain    uuid.UUID
	seq      int64
	prev     []byte
	Checked  int64
	Problems []AuditProblem
}

// NewAuditVerifier starts checking chain from its first event.
func NewAuditVerifier(chain uuid.UUID) *AuditVerifier {
	return &AuditVerifier{chain: chain, prev: []byte{}}
}

func (v *AuditVerifier) problem(seq int64, id uuid.UUID, kind, format string, args ...any) {
	p := AuditProblem{Seq: seq, Kind: kind, Message: fmt.Sprintf(format, args...)}
	if id != uuid.Nil {
		p.EventID = id.String()
	}
	v.Problems = append(v.Problems, p)
}

// Add checks the next events of the chain.
func (v *AuditVerifier) Add(events ...*AuditEvent) {
	for _, e := range events {
		v.Checked++
		switch {
		case e.Seq > v.seq+1:
			v.problem(e.Seq, e.ID, AuditMissing, "Events %d to %d are missing.", v.seq+1, e.Seq-1)
		case e.Seq <= v.seq:
			v.problem(e.Seq, e.ID, AuditOutOfOrder, "Event %d comes after event %d.", e.Seq, v.seq)
		}
		if e.Chain != v.chain || e.ChainID() != v.chain {
			v.problem(e.Seq, e.ID, AuditEdited, "Event %d names another chain or workspace.", e.Seq)
		}
		if !bytes.Equal(e.ComputeHash(), e.Hash) {
			v.problem(e.Seq, e.ID, AuditEdited, "Event %d does not match its hash: it was changed.", e.Seq)
		}
		if !bytes.Equal(e.PrevHash, v.prev) {
			v.problem(e.Seq, e.ID, AuditOutOfOrder, "Event %d does not follow the event before it: events were removed, reordered or changed.", e.Seq)
		}
		v.seq, v.prev = e.Seq, e.Hash
	}
}

// Finish checks the last event against the chain's head.
func (v *AuditVerifier) Finish(head AuditHead) {
	switch {
	case head.Seq > v.seq:
		v.problem(head.Seq, uuid.Nil, AuditTruncated, "The chain ends at event %d but its head is event %d: the newest events were deleted.", v.seq, head.Seq)
	case head.Seq < v.seq:
		v.problem(v.seq, uuid.Nil, AuditOutOfOrder, "The chain's head is event %d but events go up to %d.", head.Seq, v.seq)
	case !bytes.Equal(head.Hash, v.prev) && head.Seq > 0:
		v.problem(head.Seq, uuid.Nil, AuditEdited, "The last event does not match the chain's head.")
	}
}

// AuditReport is the outcome of verifying a chain.
type AuditReport struct {
	Chain    uuid.UUID      `json:"chain"`
	Events   int64          `json:"events"` // events checked
	HeadSeq  int64          `json:"head_seq"`
	HeadHash string         `json:"head_hash"` // hex
	OK       bool           `json:"ok"`
	Problems []AuditProblem `json:"problems"`
}

// Report returns what v found, given the chain's head.
func (v *AuditVerifier) Report(head AuditHead) *AuditReport {
	probs := v.Problems
	if probs == nil {
		probs = []AuditProblem{}
	}
	return &AuditReport{Chain: v.chain, Events: v.Checked, HeadSeq: head.Seq, HeadHash: hex.EncodeToString(head.Hash),
		OK: len(probs) == 0, Problems: probs}
}

// auditVerifyBatch is how many events one read of a verification loads.
const auditVerifyBatch = 1000

// VerifyAuditChain reads chain's events in batches through read, each call
// a fresh transaction, and checks them against the chain's head.
func VerifyAuditChain(ctx context.Context, chain uuid.UUID,
	head func(ctx context.Context) (AuditHead, error),
	read func(ctx context.Context, afterSeq int64, limit int) ([]*AuditEvent, error)) (*AuditReport, error) {
	h, err := head(ctx)
	if err != nil {
		return nil, err
	}
	v := NewAuditVerifier(chain)
	var after int64
	for {
		evs, err := read(ctx, after, auditVerifyBatch)
		if err != nil {
			return nil, err
		}
		full := len(evs) == auditVerifyBatch
		// Events appended after the head was read are not checked.
		evs = slices.DeleteFunc(evs, func(e *AuditEvent) bool { return e.Seq > h.Seq })
		v.Add(evs...)
		if !full || len(evs) == 0 {
			break
		}
		after = evs[len(evs)-1].Seq
	}
	v.Finish(h)
	return v.Report(h), nil
}

// AuditQuery selects a workspace's audit events: zero fields match all.
// Since is inclusive, Until exclusive.
type AuditQuery struct {
	ListOptions
	ProjectID  uuid.UUID
	ActorID    uuid.UUID
	Action     string
	TargetType string
	TargetID   string
	Since      time.Time
	Until      time.Time
}

func (q AuditQuery) filter(ws uuid.UUID) (AuditFilter, error) {
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until) {
		return AuditFilter{}, Errorf(EInvalid, "since must be before until.").WithDetail("field", "since")
	}
	return AuditFilter{WorkspaceID: ws, ProjectID: q.ProjectID, ActorID: q.ActorID, Action: q.Action,
		TargetType: q.TargetType, TargetID: q.TargetID, Since: q.Since, Until: q.Until}, nil
}

// authorizeAudit checks that actor may read workspace ws's audit log
// (admins and owners).
func authorizeAudit(ctx context.Context, tx Tx, ws, actor uuid.UUID) error {
	role, err := workspaceRole(ctx, tx, ws, actor)
	if err != nil {
		return err
	}
	return authorize(role, ActAuditRead, "Workspace")
}

// ListWorkspaceAudit returns a page of a workspace's audit events in time
// order (admins and owners).
func (s *Service) ListWorkspaceAudit(ctx context.Context, actor, ws uuid.UUID, q AuditQuery) ([]*AuditEvent, string, error) {
	p, limit, err := q.page()
	if err != nil {
		return nil, "", err
	}
	f, err := q.filter(ws)
	if err != nil {
		return nil, "", err
	}
	var evs []*AuditEvent
	err = s.store.InTx(ctx, actor, func(tx Tx) error {
		if err := authorizeAudit(ctx, tx, ws, actor); err != nil {
			return err
		}
		evs, err = tx.ListAudit(ctx, f, p)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	evs, next := nextCursor(evs, limit, func(e *AuditEvent) uuid.UUID { return e.ID })
	return evs, next, nil
}

// auditExportBatch is how many events one transaction of an export reads.
const auditExportBatch = 500

// ExportWorkspaceAudit calls emit with every audit event of a workspace
// matching q (its page options are ignored), in time order, reading a
// batch per transaction so that a long export holds nothing for long.
// The first error from emit ends the export. Admins and owners only: the
// check is made before the first event, and again for every batch.
func (s *Service) ExportWorkspaceAudit(ctx context.Context, actor, ws uuid.UUID, q AuditQuery, emit func(*AuditEvent) error) error {
	f, err := q.filter(ws)
	if err != nil {
		return err
	}
	p := Page{Limit: auditExportBatch}
	for {
		var evs []*AuditEvent
		err := s.store.InTx(ctx, actor, func(tx Tx) error {
			if err := authorizeAudit(ctx, tx, ws, actor); err != nil {
				return err
			}
			evs, err = tx.ListAudit(ctx, f, p)
			return err
		})
		if err != nil {
			return err
		}
		for _, e := range evs {
			if err := emit(e); err != nil {
				return err
			}
		}
		if len(evs) < auditExportBatch {
			return nil
		}
		p.After = evs[len(evs)-1].ID
	}
}

// VerifyWorkspaceAudit checks a workspace's audit chain (admins and
// owners): that no event was edited, deleted or reordered since it was
// written.
func (s *Service) VerifyWorkspaceAudit(ctx context.Context, actor, ws uuid.UUID) (*AuditReport, error) {
	return VerifyAuditChain(ctx, ws,
		func(ctx context.Context) (h AuditHead, err error) {
			err = s.store.InTx(ctx, actor, func(tx Tx) error {
				if err := authorizeAudit(ctx, tx, ws, actor); err != nil {
					return err
				}
				h, err = tx.AuditChainHead(ctx, ws)
				return err
			})
			return h, err
		},
		func(ctx context.Context, after int64, limit int) (evs []*AuditEvent, err error) {
			err = s.store.InTx(ctx, actor, func(tx Tx) error {
				evs, err = tx.ListAuditChain(ctx, ws, after, limit)
				return err
			})
			return evs, err
		})
}
