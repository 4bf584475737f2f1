package realtime_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/crdt"
	"github.com/tone-ai/tone/domain"
	"github.com/tone-ai/tone/realtime"
	"github.com/tone-ai/tone/realtime/redistest"
)

// committedButFailed is a canvas store whose next append commits and then
// reports a failure, as when the connection to PostgreSQL drops during
// the commit.
type committedButFailed struct {
	realtime.CanvasStore
	failNext atomic.Bool
}

func (s *committedButFailed) AppendCanvasUpdates(ctx context.Context, canvas uuid.UUID, us []*domain.CanvasUpdate) error {
	if err := s.CanvasStore.AppendCanvasUpdates(ctx, canvas, us); err != nil {
		return err
	}
	if s.failNext.CompareAndSwap(true, false) {
		return domain.Errorf(domain.EInternal, "connection lost during commit")
	}
	return nil
}

// redisNode serves canvases from store on a node of its own whose broker is
// the shared Redis under prefix, so that nodes made with the same prefix
// exchange updates.
func (e *env) redisNode(name, prefix string, store realtime.CanvasStore) *env {
	e.t.Helper()
	opts, _ := redistest.Shared(e.t)
	broker := realtime.NewRedisBroker(realtime.RedisConfig{Options: opts, Prefix: prefix, HistorySize: 100, HistoryTTL: time.Minute})
	node := realtime.NewNode(realtime.Config{NodeID: name}, e.svc, broker, broker, nil)
	node.EnableCanvas(store, realtime.CanvasConfig{IdleTimeout: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { node.Run(ctx); close(done) }()
	mux := http.NewServeMux()
	mux.Handle("/api/v1/realtime", node)
	srv := httptest.NewServer(mux)
	e.t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		node.Shutdown(sctx)
		srv.Close()
		cancel()
		<-done
		broker.Close()
	})
	return &env{t: e.t, svc: e.svc, node: node, url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/api/v1/realtime"}
}

// TestCanvasResendAfterCommittedFailure: a write that reached the op log
// but reported failure left no broadcast behind. The editor resubscribes
// and resends; the node already has the update from the store, and must
// still broadcast it so that the other nodes holding the canvas hear of it.
func TestCanvasResendAfterCommittedFailure(t *testing.T) {
	e := newEnv(t)
	_, prefix := redistest.Shared(t)
	store := &committedButFailed{CanvasStore: e.svc}
	na := e.redisNode("na", prefix, store)
	nb := e.redisNode("nb", prefix, e.svc)
	a, aTok := e.user("a")
	cid := e.canvas(a, e.project(a, nil))

	ea := join(t, na, aTok, cid, 1<<40+1)
	eb := join(t, nb, aTok, cid, 1<<40+2)
	key, _ := crdt.KeyBetween("", "")
	_, u1, err := ea.doc.Create("sticky", crdt.Root, key, crdt.Props{"text": crdt.String("hello")})
	require.NoError(t, err)

	store.failNext.Store(true)
	require.Error(t, ea.send(u1, nil), "the write reported a failure")
	next(t, ea.conn, realtime.TypeReset)
	r, err := ea.conn.Request(ctx, &realtime.Frame{Type: realtime.TypeSubscribe, Channel: ea.ch, Replica: 1<<40 + 1,
		Version: map[uint64]uint64{1<<40 + 1: 0}})
	require.NoError(t, err)
	require.NoError(t, ea.doc.Apply(r.Update))
	require.NoError(t, ea.send(u1, nil), "the resend is acknowledged")

	eb.catchUp(ea.doc) // fails (no message within 5 s) if the resend was not broadcast
	require.Equal(t, ea.doc.Snapshot(), eb.doc.Snapshot())
}
