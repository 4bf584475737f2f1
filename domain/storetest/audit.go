package storetest

import (
	"errors"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain"
)

// testAuditChain: events are numbered and linked per chain (the workspace,
// else the actor), a rolled back append leaves the chain as it was, and a
// chain reads back as one that verifies.
func testAuditChain(t *testing.T, s domain.Store) {
	ann, bob := newUser(t, s, "ann"), newUser(t, s, "bob")
	w := newWorkspace(t, s, ann)
	appendEv := func(actor *domain.User, ws uuid.UUID, action string) *domain.AuditEvent {
		e := &domain.AuditEvent{ID: id(), Time: now, ActorID: actor.ID, WorkspaceID: ws, Action: action,
			TargetType: "user", TargetID: bob.ID.String(), Result: domain.ResultSuccess, Details: map[string]any{"n": 1.5}}
		inTx(t, s, actor.ID, func(tx domain.Tx) error { return tx.AppendAudit(ctx, e) })
		return e
	}
	a1 := appendEv(ann, w.ID, "a")
	own := appendEv(ann, uuid.Nil, "own")
	a2 := appendEv(ann, w.ID, "b")
	assert.Equal(t, []int64{1, 2}, []int64{a1.Seq, a2.Seq})
	assert.Equal(t, w.ID, a1.Chain)
	assert.Equal(t, []byte{}, a1.PrevHash)
	assert.Equal(t, a1.Hash, a2.PrevHash)
	assert.Equal(t, ann.ID, own.Chain)
	assert.Equal(t, int64(1), own.Seq)

	boom := errors.New("boom")
	err := s.InTx(ctx, ann.ID, func(tx domain.Tx) error {
		e := &domain.AuditEvent{ID: id(), Time: now, ActorID: ann.ID, WorkspaceID: w.ID, Action: "x", Result: domain.ResultSuccess}
		if err := tx.AppendAudit(ctx, e); err != nil {
			return err
		}
		return boom
	})
	require.ErrorIs(t, err, boom)
	a3 := appendEv(ann, w.ID, "c")
	assert.Equal(t, int64(3), a3.Seq, "a rolled back append takes no number")

	var head domain.AuditHead
	var evs []*domain.AuditEvent
	inTx(t, s, ann.ID, func(tx domain.Tx) (err error) {
		if head, err = tx.AuditChainHead(ctx, w.ID); err != nil {
			return err
		}
		evs, err = tx.ListAuditChain(ctx, w.ID, 1, 0)
		return err
	})
	assert.Equal(t, domain.AuditHead{Chain: w.ID, Seq: 3, Hash: a3.Hash}, head)
	require.Len(t, evs, 2)
	assert.Equal(t, []uuid.UUID{a2.ID, a3.ID}, []uuid.UUID{evs[0].ID, evs[1].ID})
	v := domain.NewAuditVerifier(w.ID)
	inTx(t, s, ann.ID, func(tx domain.Tx) error {
		all, err := tx.ListAuditChain(ctx, w.ID, 0, 0)
		v.Add(all...)
		return err
	})
	v.Finish(head)
	assert.Empty(t, v.Problems, "the chain as stored verifies")

	inTx(t, s, bob.ID, func(tx domain.Tx) (err error) {
		if head, err = tx.AuditChainHead(ctx, w.ID); err != nil {
			return err
		}
		evs, err = tx.ListAuditChain(ctx, w.ID, 0, 0)
		return err
	})
	assert.Zero(t, head.Seq, "bob may not read the workspace's chain")
	assert.Empty(t, evs)

	var found []*domain.AuditEvent
	inTx(t, s, ann.ID, func(tx domain.Tx) (err error) {
		found, err = tx.ListAudit(ctx, domain.AuditFilter{WorkspaceID: w.ID, TargetType: "user", TargetID: bob.ID.String(), Action: "b"}, domain.Page{})
		return err
	})
	require.Len(t, found, 1)
	assert.Equal(t, a2.ID, found[0].ID)
}
