package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/tone-ai/tone/domain"
	"github.com/tone-ai/tone/realtime"
)

// sampleActivity records the node's canvas activity every interval until
// ctx is done (never when interval is 0). A failed sample is logged and
// skipped: the analytics show a gap, the node carries on.
func sampleActivity(ctx context.Context, svc *domain.Service, node *realtime.Node, interval time.Duration, log *slog.Logger) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		acts := node.CanvasActivity()
		if err := svc.RecordCanvasActivity(ctx, node.ID(), acts); err != nil && ctx.Err() == nil {
			log.Warn("canvas activity not recorded", "err", err, "canvases", len(acts))
		}
	}
}
