package realtime

import (
	"context"
	"errors"
	"time"
)

// Publication is one message of a channel's stream.
type Publication struct {
	Offset uint64 // position in the stream, from 1; contiguous within an epoch
	Data   []byte // the payload, msgpack-encoded (the "d" field of a msg frame)
	Client string // id of the publishing client; "" for the server
	User   string // id of the publishing user; "" for the server
}

// ErrHistoryUnavailable means a stream no longer holds what was asked for:
// the publications after the position were dropped (size or age limit) or
// the stream was lost and started a new epoch. The subscriber must reload.
var ErrHistoryUnavailable = errors.New("history unavailable")

// BrokerHandler receives what a broker delivers to this node. Calls for one
// channel come in order, one at a time; calls for different channels may
// run concurrently. A handler must not block for long.
type BrokerHandler interface {
	// HandlePublication delivers a publication of a channel this node
	// subscribes to, with the epoch of its stream.
	HandlePublication(ch string, epoch string, pub *Publication)
	// HandleEphemeral delivers a message without history or offset (presence
	// events) on a channel this node subscribes to.
	HandleEphemeral(ch string, data []byte)
}

// Broker moves publications between the nodes that serve a channel's
// subscribers and keeps each channel's recent history.
//
// Guarantees, which every implementation must give and the shared suite in
// broker_shared_test.go checks:
//   - Publish assigns offsets that are contiguous within an epoch, and a node
//     receives a channel's publications in offset order.
//   - History returns exactly the publications after a position, in order,
//     or ErrHistoryUnavailable; never a list with a hole.
//   - Delivery to nodes is at most once; what a node misses it recovers
//     from History, so a subscriber never skips an offset silently.
type Broker interface {
	// Run delivers to h until ctx is done or the broker fails.
	Run(ctx context.Context, h BrokerHandler) error
	// Subscribe makes this node receive ch's publications. Idempotent.
	Subscribe(ctx context.Context, ch string) error
	// Unsubscribe stops delivery of ch to this node. Idempotent.
	Unsubscribe(ctx context.Context, ch string) error
	// Publish appends pub to ch's history and delivers it to every node
	// subscribed to ch. It sets and returns pub's position.
	Publish(ctx context.Context, ch string, pub *Publication) (Position, error)
	// Broadcast delivers data to every node subscribed to ch, without
	// history or offset.
	Broadcast(ctx context.Context, ch string, data []byte) error
	// History returns ch's publications after since, at most limit of
	// them (limit <= 0: all it holds), and the stream's current top.
	// A since of the zero Position asks only for the top. Returns
	// ErrHistoryUnavailable (with the top) when it cannot give every
	// publication after since.
	History(ctx context.Context, ch string, since Position, limit int) ([]*Publication, Position, error)
}

// Presence keeps who is in each channel: an ephemeral state per client that
// expires unless refreshed, so the clients of a node that died disappear.
type Presence interface {
	// SetPresence adds or replaces a client's presence in ch, expiring
	// after ttl unless set again.
	SetPresence(ctx context.Context, ch string, info PresenceInfo, ttl time.Duration) error
	// RemovePresence removes a client from ch's presence.
	RemovePresence(ctx context.Context, ch string, client string) error
	// Presence lists the unexpired clients of ch, ordered by client id.
	Presence(ctx context.Context, ch string) ([]PresenceInfo, error)
}
