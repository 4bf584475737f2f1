package domain

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"
)

// Events and the outbox.
//
// A use case that others should hear about appends events to the outbox
// inside its own transaction ([Service.emit]), so the change, its audit
// event and its events commit together or not at all. Nothing is published
// inside the transaction. After commit, [Service.RunOutbox] relays the
// outbox to a [Publisher] (the realtime broker) and deletes what it
// published. Delivery is at least once: an event is never lost once its
// transaction commits, but a crash between publishing and deleting
// publishes it again, with the same Event.ID.

// ProjectChannel is the channel of a project's events: "project:<id>".
func ProjectChannel(id uuid.UUID) string { return "project:" + id.String() }

// NotificationsChannel is the channel of the events addressed to one user:
// "notifications:<user id>".
func NotificationsChannel(user uuid.UUID) string { return "notifications:" + user.String() }

// Event types. The project channel carries the project.* and canvas.*
// events of the project; a user's notifications channel carries the
// events that concern them personally (they were added to a workspace or
// project, or their role changed). docs/api.md lists the data of each.
const (
	EventProjectUpdated             = "project.updated"
	EventProjectDeleted             = "project.deleted"
	EventProjectMemberAdded         = "project.member.added"
	EventProjectMemberRoleChanged   = "project.member.role_changed"
	EventProjectMemberRemoved       = "project.member.removed"
	EventCanvasCreated              = "canvas.created"
	EventCanvasRenamed              = "canvas.renamed"
	EventCanvasDeleted              = "canvas.deleted"
	EventWorkspaceMemberAdded       = "workspace.member.added"
	EventWorkspaceMemberRoleChanged = "workspace.member.role_changed"
)

// Event is what a channel's subscribers receive: the msgpack-encoded "d" of
// a msg frame, a map with these keys.
type Event struct {
	// ID numbers the event; an event published twice (at-least-once
	// delivery) has the same ID both times, so clients may drop repeats.
	// IDs grow within a channel.
	ID int64 `msgpack:"id" json:"id"`
	// Type is one of the Event* constants, e.g. "project.updated".
	Type string `msgpack:"type" json:"type"`
	// Data holds the public fields of what changed: ids, names, roles,
	// never secrets. Every event's data has actor_id, the user who made
	// the change.
	Data map[string]any `msgpack:"data" json:"data"`
	// CorrelationID is the id of the request that caused the event ("" if
	// none), as in its audit event and logs.
	CorrelationID string `msgpack:"correlation_id,omitempty" json:"correlation_id,omitempty"`
	// At is when the change was made, in Unix milliseconds.
	At int64 `msgpack:"at" json:"at"`
}

// Publisher publishes events on realtime channels. The realtime node
// implements it (through a small adapter in cmd/tone).
type Publisher interface {
	// PublishEvent publishes e on channel and returns once the broker has
	// it. An error with code EInvalid means the event can never be
	// published (an unknown channel, say): the relay drops it. Any other
	// error is taken as temporary, and the relay tries again later.
	//
	// The relay calls it inside its store transaction, which holds the
	// claimed events (and, in the in-memory store, the whole store), so it
	// must not call back into the Service or the Store.
	PublishEvent(ctx context.Context, channel string, e *Event) error
}

// OutboxEvent is an event waiting in the outbox.
type OutboxEvent struct {
	// ID is set by AppendOutbox. IDs grow, and within a channel they grow
	// in commit order.
	ID            int64
	Channel       string          // e.g. "project:<id>"
	Type          string          // e.g. "project.updated"
	Payload       json.RawMessage // the event's data: a JSON object
	CorrelationID string
	CreatedAt     time.Time
}

// OutboxStore holds events between the transaction that makes them and
// their publication. The outbox belongs to no tenant: any transaction, even
// one acting for nobody (uuid.Nil), may read and delete every event.
type OutboxStore interface {
	// AppendOutbox inserts e and sets e.ID. The transaction then holds e's
	// channel until it ends: another transaction appending to the same
	// channel waits, so that a channel's events are numbered in commit
	// order. Returns an error if the channel or type is empty or the
	// payload is not a JSON object.
	AppendOutbox(ctx context.Context, e *OutboxEvent) error
	// AppendOutboxEvents appends es in order, as AppendOutbox would one
	// by one, taking the holds on all their channels at once, in an order
	// every transaction shares, so that transactions appending to many
	// channels (a notification to thousands of users) neither deadlock
	// with one another nor hold more than a bounded number of locks.
	AppendOutboxEvents(ctx context.Context, es []*OutboxEvent) error
	// ClaimOutbox returns the oldest events, at most limit of them (limit
	// <= 0: all), in ID order, and holds them for the rest of the
	// transaction. Events held by another transaction are skipped, not
	// waited for, so concurrent claimers get disjoint events; so are the
	// later events of a channel whose older event another transaction
	// holds, so that concurrent claimers publish each channel in ID order.
	ClaimOutbox(ctx context.Context, limit int) ([]*OutboxEvent, error)
	// DeleteOutbox deletes the events with the given ids. Ids of events
	// that do not exist are ignored.
	DeleteOutbox(ctx context.Context, ids []int64) error
}

// Event returns the event subscribers receive for e. Numbers in the
// payload come back as int64 when they are integers, else float64.
func (e *OutboxEvent) Event() (*Event, error) {
	dec := json.NewDecoder(bytes.NewReader(e.Payload))
	dec.UseNumber()
	var data map[string]any
	if err := dec.Decode(&data); err != nil || data == nil {
		return nil, Errorf(EInvalid, "Outbox event %d has a payload that is not a JSON object.", e.ID)
	}
	for k, v := range data {
		data[k] = fromJSONNumbers(v)
	}
	return &Event{ID: e.ID, Type: e.Type, Data: data, CorrelationID: e.CorrelationID, At: e.CreatedAt.UnixMilli()}, nil
}

// fromJSONNumbers replaces the json.Numbers in v with int64 or float64.
func fromJSONNumbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		f, _ := v.Float64()
		return f
	case []any:
		for i := range v {
			v[i] = fromJSONNumbers(v[i])
		}
	case map[string]any:
		for k := range v {
			v[k] = fromJSONNumbers(v[k])
		}
	}
	return v
}

// emit appends an event of type typ to the outbox of tx, for the relay to
// publish on channel once tx commits. data holds the event's public fields
// (ids, names, roles: never secrets, since every subscriber of the channel
// sees them); emit adds actor_id. Use cases that emit run in s.inTx, which
// wakes the relay when they commit.
func (s *Service) emit(ctx context.Context, tx Tx, actor uuid.UUID, channel, typ string, data map[string]any) error {
	data["actor_id"] = actor
	payload, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("event %s: %w", typ, err)
	}
	return tx.AppendOutbox(ctx, &OutboxEvent{
		Channel: channel, Type: typ, Payload: payload,
		CorrelationID: RequestInfoFrom(ctx).CorrelationID, CreatedAt: s.now(),
	})
}

// emitTx is a Tx that holds back the events appended to the outbox and
// appends them all at once when the use case is done (flush), so that the
// transaction takes its channels' holds in one go, just before it commits.
type emitTx struct {
	Tx
	pending []*OutboxEvent
}

func (t *emitTx) AppendOutbox(_ context.Context, e *OutboxEvent) error {
	t.pending = append(t.pending, e)
	return nil
}

func (t *emitTx) AppendOutboxEvents(_ context.Context, es []*OutboxEvent) error {
	t.pending = append(t.pending, es...)
	return nil
}

func (t *emitTx) flush(ctx context.Context) error {
	if len(t.pending) == 0 {
		return nil
	}
	return t.Tx.AppendOutboxEvents(ctx, t.pending)
}

// inTx runs fn in a transaction like Store.InTx, appends the events fn
// emitted at its end and, if the transaction committed, wakes the relay.
func (s *Service) inTx(ctx context.Context, actor uuid.UUID, fn func(Tx) error) error {
	var emitted bool
	err := s.store.InTx(ctx, actor, func(tx Tx) error {
		et := &emitTx{Tx: tx}
		if err := fn(et); err != nil {
			return err
		}
		emitted = len(et.pending) > 0
		return et.flush(ctx)
	})
	if err == nil && emitted {
		s.wakeOutbox()
	}
	return err
}

// wakeOutbox tells the relay that events were committed, without waiting.
func (s *Service) wakeOutbox() {
	select {
	case s.outboxWake <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// publishTimeout bounds one PublishEvent call, so that a hung broker does
// not hold the relay's transaction (and its claimed events) forever.
const publishTimeout = 10 * time.Second

// RunOutbox relays the outbox to p until ctx is done. Run one per node.
//
// It wakes when a use case of this Service commits events, and polls every
// Config.OutboxPoll for the rest (those of other nodes, or left by a
// crash). Each round claims up to Config.OutboxBatch of the oldest events in
// a transaction, publishes them in ID order, deletes them and commits. If
// publishing fails, the events published so far are deleted and the rest
// stay for the next try, after a delay that starts at Config.OutboxRetry and
// doubles up to Config.OutboxRetryMax: delivery is at least once, never
// lost, and a channel's events go out in order. An event that can never be
// published (EInvalid from p, or a payload that does not decode) is logged
// and dropped, so that it does not block the others.
//
// Order holds per channel across nodes too: each node's relay claims
// different events, and never a channel's event while another relay holds
// an older one of that channel (see OutboxStore.ClaimOutbox).
func (s *Service) RunOutbox(ctx context.Context, p Publisher) {
	poll := time.NewTicker(s.cfg.OutboxPoll)
	defer poll.Stop()
	var delay time.Duration
	for {
		more, err := s.relayOutbox(ctx, p)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			delay = min(max(2*delay, s.cfg.OutboxRetry), s.cfg.OutboxRetryMax)
			wait := delay/2 + rand.N(delay/2+1) // jitter, so that nodes do not retry in step
			s.cfg.Logger.WarnContext(ctx, "outbox relay failed; retrying", "err", err, "retry_in", wait)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			continue
		}
		delay = 0
		if more {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-s.outboxWake:
		case <-poll.C:
		}
	}
}

// relayOutbox runs one round of the relay. more reports whether it claimed
// a full batch, so that more events may be waiting.
func (s *Service) relayOutbox(ctx context.Context, p Publisher) (more bool, err error) {
	var pubErr error
	err = s.store.InTx(ctx, uuid.Nil, func(tx Tx) error {
		evs, err := tx.ClaimOutbox(ctx, s.cfg.OutboxBatch)
		if err != nil {
			return err
		}
		more = len(evs) == s.cfg.OutboxBatch
		done := make([]int64, 0, len(evs))
		for _, e := range evs {
			err := s.publishEvent(ctx, p, e)
			if ErrorCode(err) == EInvalid {
				s.cfg.Logger.ErrorContext(ctx, "outbox event cannot be published; dropped", "err", err,
					"event_id", e.ID, "channel", e.Channel, "type", e.Type, "correlation_id", e.CorrelationID)
			} else if err != nil {
				pubErr = fmt.Errorf("publish outbox event %d on %s: %w", e.ID, e.Channel, err)
				break
			}
			done = append(done, e.ID)
		}
		if len(done) == 0 {
			return nil
		}
		return tx.DeleteOutbox(ctx, done)
	})
	if err != nil {
		return false, errors.Join(pubErr, err)
	}
	if pubErr != nil {
		return false, pubErr
	}
	return more, nil
}

func (s *Service) publishEvent(ctx context.Context, p Publisher, e *OutboxEvent) error {
	ev, err := e.Event()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	return p.PublishEvent(ctx, e.Channel, ev)
}
