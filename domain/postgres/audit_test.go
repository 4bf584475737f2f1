package postgres_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain"
	"github.com/tone-ai/tone/domain/postgres"
	"github.com/tone-ai/tone/domain/postgres/pgtest"
)

// TestAuditChainTampering writes a workspace's chain of five events through
// the store, then changes the rows behind its back as the table owner (the
// only role that can) and checks that verification names the damage.
func TestAuditChainTampering(t *testing.T) {
	for _, test := range []struct {
		name   string
		tamper []string // SQL run as the owner; $1 is the workspace (chain)
		kinds  map[int64][]string
	}{
		{"intact", nil, map[int64][]string{}},
		{"edited details", []string{`UPDATE audit_events SET details = '{"role":"owner"}' WHERE chain = $1 AND seq = 3`},
			map[int64][]string{3: {domain.AuditEdited}}},
		{"edited time", []string{`UPDATE audit_events SET time = time - interval '1 hour' WHERE chain = $1 AND seq = 2`},
			map[int64][]string{2: {domain.AuditEdited}}},
		{"edited and rehashed", []string{
			// Recomputing the edited event's hash does not help: the next
			// event names the old one.
			`UPDATE audit_events SET action = 'forged', hash = sha256(hash) WHERE chain = $1 AND seq = 3`},
			map[int64][]string{3: {domain.AuditEdited}, 4: {domain.AuditOutOfOrder}}},
		{"deleted", []string{`DELETE FROM audit_events WHERE chain = $1 AND seq = 3`},
			map[int64][]string{4: {domain.AuditMissing, domain.AuditOutOfOrder}}},
		{"newest deleted", []string{`DELETE FROM audit_events WHERE chain = $1 AND seq = 5`},
			map[int64][]string{5: {domain.AuditTruncated}}},
		{"swapped", []string{
			`UPDATE audit_events SET seq = -seq WHERE chain = $1 AND seq IN (2, 3)`,
			`UPDATE audit_events SET seq = CASE seq WHEN -2 THEN 3 ELSE 2 END WHERE chain = $1 AND seq IN (-2, -3)`},
			map[int64][]string{2: {domain.AuditEdited, domain.AuditOutOfOrder}, 3: {domain.AuditEdited, domain.AuditOutOfOrder}, 4: {domain.AuditOutOfOrder}}},
		{"moved to another workspace", []string{`UPDATE audit_events SET workspace_id = gen_random_uuid() WHERE chain = $1 AND seq = 4`},
			map[int64][]string{4: {domain.AuditEdited, domain.AuditEdited}}},
	} {
		t.Run(test.name, func(t *testing.T) {
			db := pgtest.NewDB(t)
			s, owner := postgres.New(db.AppPool(t)), db.OwnerPool(t)
			ann := createUser(t, s, "ann")
			ws := &domain.Workspace{ID: newID(), Name: "Acme", CreatedBy: ann.ID, CreatedAt: now, UpdatedAt: now}
			require.NoError(t, s.InTx(ctx, ann.ID, func(tx domain.Tx) error {
				if err := tx.CreateWorkspace(ctx, ws); err != nil {
					return err
				}
				return tx.PutWorkspaceMember(ctx, ws.ID, ann.ID, domain.RoleOwner, now)
			}))
			for i := range 5 {
				e := &domain.AuditEvent{ID: newID(), Time: now.Add(time.Duration(i) * time.Second), ActorID: ann.ID,
					WorkspaceID: ws.ID, Action: "workspace.member.add", TargetType: "user", TargetID: uuid.NewString(),
					Result: domain.ResultSuccess, Details: map[string]any{"role": "editor", "n": i, "note": "<&> é"}}
				require.NoError(t, s.InTx(ctx, ann.ID, func(tx domain.Tx) error { return tx.AppendAudit(ctx, e) }))
				assert.Equal(t, int64(i+1), e.Seq)
			}
			// An event outside the workspace goes to ann's own chain.
			own := &domain.AuditEvent{ID: newID(), Time: now, ActorID: ann.ID, Action: "user.update", Result: domain.ResultSuccess}
			require.NoError(t, s.InTx(ctx, ann.ID, func(tx domain.Tx) error { return tx.AppendAudit(ctx, own) }))
			assert.Equal(t, ann.ID, own.Chain)
			assert.Equal(t, int64(1), own.Seq)

			for _, q := range test.tamper {
				_, err := owner.Exec(ctx, q, ws.ID)
				require.NoError(t, err, q)
			}
			reports, err := postgres.VerifyAuditChains(ctx, owner, nil)
			require.NoError(t, err)
			require.Len(t, reports, 2, "the workspace's chain and ann's")
			byChain := map[uuid.UUID]*domain.AuditReport{}
			for _, r := range reports {
				byChain[r.Chain] = r
			}
			assert.True(t, byChain[ann.ID].OK, "ann's own chain is untouched: %+v", byChain[ann.ID].Problems)
			r := byChain[ws.ID]
			got := map[int64][]string{}
			for _, p := range r.Problems {
				got[p.Seq] = append(got[p.Seq], p.Kind)
				assert.NotEmpty(t, p.Message)
			}
			assert.Equal(t, test.kinds, got, "%+v", r.Problems)
			assert.Equal(t, len(test.kinds) == 0, r.OK)
			assert.Equal(t, int64(5), r.HeadSeq)

			// The admin endpoint's use case, acting for ann through
			// row-level security, finds the same (an event moved out of
			// the workspace is out of her sight, so it is missing there).
			svc, err := domain.NewService(s, domain.Config{})
			require.NoError(t, err)
			r2, err := svc.VerifyWorkspaceAudit(ctx, ann.ID, ws.ID)
			require.NoError(t, err)
			if test.name == "moved to another workspace" {
				assert.False(t, r2.OK)
				assert.Equal(t, domain.AuditMissing, r2.Problems[0].Kind)
			} else {
				assert.Equal(t, r.Problems, r2.Problems)
			}
		})
	}
}
