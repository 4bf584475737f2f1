package storetest

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain"
)

// testCanvasActivity: samples recorded as nobody are read back by the
// project's members, in time order and within the range; samples of a
// canvas that does not exist are skipped.
func testCanvasActivity(t *testing.T, s domain.Store) {
	e := newCanvasEnv(t, s)
	c1, c2 := e.canvas(t, "one"), e.canvas(t, "two")
	bob := newUser(t, s, "bob")
	t1, t2 := now.Add(time.Minute), now.Add(2*time.Minute)
	inTx(t, s, uuid.Nil, func(tx domain.Tx) error {
		if err := tx.RecordCanvasActivity(ctx, "n1", t2, []domain.CanvasActivity{{CanvasID: c1.ID, Viewers: 3}}); err != nil {
			return err
		}
		return tx.RecordCanvasActivity(ctx, "n2", t1, []domain.CanvasActivity{
			{CanvasID: c1.ID, Viewers: 2, Editors: []uuid.UUID{e.owner.ID, bob.ID}},
			{CanvasID: c2.ID, Viewers: 1},
			{CanvasID: id(), Viewers: 9},
		})
	})
	var got []*domain.ActivitySample
	e.tx(t, func(tx domain.Tx) (err error) {
		got, err = tx.ListCanvasActivity(ctx, c1.ProjectID, now, t2.Add(time.Second))
		return err
	})
	require.Len(t, got, 3)
	assert.Equal(t, t1, got[0].At)
	assert.Equal(t, "n2", got[0].Node)
	byCanvas := map[uuid.UUID]*domain.ActivitySample{got[0].CanvasID: got[0], got[1].CanvasID: got[1]}
	assert.Equal(t, 2, byCanvas[c1.ID].Viewers)
	assert.ElementsMatch(t, []uuid.UUID{e.owner.ID, bob.ID}, byCanvas[c1.ID].Editors)
	assert.Empty(t, byCanvas[c2.ID].Editors)
	assert.Equal(t, t2, got[2].At)
	assert.Equal(t, 3, got[2].Viewers)
	e.tx(t, func(tx domain.Tx) (err error) {
		got, err = tx.ListCanvasActivity(ctx, c1.ProjectID, now, t2)
		return err
	})
	assert.Len(t, got, 2, "until is exclusive")
}
