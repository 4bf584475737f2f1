package memory

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/tone-ai/tone/domain"
)

// outboxData is the part of the store holding the outbox. Transactions are
// serialised by the store's lock, so a claim needs no lock of its own: no
// other transaction runs until the claimer's ends, and ids are handed out
// in commit order.
type outboxData struct {
	outbox    map[int64]*domain.OutboxEvent
	outboxSeq int64 // the last id handed out; not rolled back, like a sequence
}

func newOutboxData() outboxData {
	return outboxData{outbox: map[int64]*domain.OutboxEvent{}}
}

func cloneOutboxEvent(e *domain.OutboxEvent) *domain.OutboxEvent {
	c := clone(e)
	c.Payload = bytes.Clone(e.Payload)
	return c
}

func (t *tx) AppendOutbox(_ context.Context, e *domain.OutboxEvent) error {
	p := bytes.TrimSpace(e.Payload)
	switch {
	case e.Channel == "" || e.Type == "":
		return fmt.Errorf("memory: outbox event needs a channel and a type")
	case len(p) == 0 || p[0] != '{' || !json.Valid(p):
		return fmt.Errorf("memory: outbox event payload is not a JSON object")
	}
	t.s.outboxSeq++
	c := cloneOutboxEvent(e)
	c.ID = t.s.outboxSeq
	c.CreatedAt = c.CreatedAt.UTC()
	set(t, t.s.outbox, c.ID, c)
	e.ID = c.ID
	return nil
}

func (t *tx) ClaimOutbox(_ context.Context, limit int) ([]*domain.OutboxEvent, error) {
	ids := slices.Sorted(maps.Keys(t.s.outbox))
	if limit > 0 && len(ids) > limit {
		ids = ids[:limit]
	}
	out := make([]*domain.OutboxEvent, len(ids))
	for i, id := range ids {
		out[i] = cloneOutboxEvent(t.s.outbox[id])
	}
	return out, nil
}

func (t *tx) DeleteOutbox(_ context.Context, ids []int64) error {
	for _, id := range ids {
		del(t, t.s.outbox, id)
	}
	return nil
}

func (t *tx) AppendOutboxEvents(ctx context.Context, es []*domain.OutboxEvent) error {
	for _, e := range es {
		if err := t.AppendOutbox(ctx, e); err != nil {
			return err
		}
	}
	return nil
}
