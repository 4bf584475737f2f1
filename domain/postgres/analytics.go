package postgres

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tone-ai/tone/domain"
)

func (t *tx) RecordCanvasActivity(ctx context.Context, node string, at time.Time, acts []domain.CanvasActivity) (err error) {
	defer wrap(&err, "postgres: record canvas activity")
	canvases := make([]uuid.UUID, len(acts))
	viewers := make([]int32, len(acts))
	editors := make([]string, len(acts))
	for i, a := range acts {
		ids := a.Editors
		if ids == nil {
			ids = []uuid.UUID{}
		}
		b, err := json.Marshal(ids)
		if err != nil {
			return err
		}
		canvases[i], viewers[i], editors[i] = a.CanvasID, int32(a.Viewers), string(b)
	}
	_, err = t.tx.Exec(ctx, `SELECT public.tone_record_canvas_activity($1, $2, $3, $4, $5::jsonb[])`,
		node, at, canvases, viewers, editors)
	return err
}

func (t *tx) ListCanvasActivity(ctx context.Context, projectID uuid.UUID, since, until time.Time) (_ []*domain.ActivitySample, err error) {
	defer wrap(&err, "postgres: list canvas activity")
	rows, err := t.tx.Query(ctx, `SELECT at, node, canvas_id, viewers, editors FROM canvas_activity
		WHERE project_id = $1 AND at >= $2 AND at < $3 ORDER BY at, node, canvas_id`, projectID, since, until)
	if err != nil {
		return nil, err
	}
	return collect(rows, func(row pgx.Row) (*domain.ActivitySample, error) {
		var s domain.ActivitySample
		if err := row.Scan(&s.At, &s.Node, &s.CanvasID, &s.Viewers, &s.Editors); err != nil {
			return nil, err
		}
		s.At = s.At.UTC()
		return &s, nil
	})
}
