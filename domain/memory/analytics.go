package memory

import (
	"context"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/tone-ai/tone/domain"
)

// activityData is the part of the store holding canvas activity samples.
type activityData struct {
	activity []*activityRow
}

type activityRow struct {
	domain.ActivitySample
	projectID uuid.UUID
}

func (t *tx) RecordCanvasActivity(_ context.Context, node string, at time.Time, acts []domain.CanvasActivity) error {
	n := len(t.s.activity)
	for _, a := range acts {
		c := t.s.canvases[a.CanvasID]
		if c == nil {
			continue
		}
		t.s.activity = append(t.s.activity, &activityRow{projectID: c.ProjectID, ActivitySample: domain.ActivitySample{
			At: at.UTC(), Node: node, CanvasID: a.CanvasID, Viewers: a.Viewers, Editors: slices.Clone(a.Editors)}})
	}
	t.undo = append(t.undo, func() { t.s.activity = t.s.activity[:n] })
	return nil
}

func (t *tx) ListCanvasActivity(_ context.Context, projectID uuid.UUID, since, until time.Time) ([]*domain.ActivitySample, error) {
	var out []*domain.ActivitySample
	for _, r := range t.s.activity {
		if r.projectID == projectID && !r.At.Before(since) && r.At.Before(until) && t.s.canvases[r.CanvasID] != nil {
			s := r.ActivitySample
			s.Editors = slices.Clone(r.Editors)
			out = append(out, &s)
		}
	}
	slices.SortStableFunc(out, func(a, b *domain.ActivitySample) int { return a.At.Compare(b.At) })
	return out, nil
}
