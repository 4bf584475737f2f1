package domain

import (
	"context"
	"maps"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/google/uuid"
)

// Analytics: numbers over time for a project's members.

// MaxAnalyticsRange is the longest time range an analytics query covers.
const MaxAnalyticsRange = 366 * 24 * time.Hour

// DefaultAnalyticsRange is the range an analytics query covers when it
// names none: the last 30 days.
const DefaultAnalyticsRange = 30 * 24 * time.Hour

// analyticsRange checks and fills in [since, until).
func (s *Service) analyticsRange(since, until time.Time) (time.Time, time.Time, error) {
	if until.IsZero() {
		until = s.now()
	}
	if since.IsZero() {
		since = until.Add(-DefaultAnalyticsRange)
	}
	if !since.Before(until) {
		return since, until, Errorf(EInvalid, "since must be before until.").WithDetail("field", "since")
	}
	if until.Sub(since) > MaxAnalyticsRange {
		return since, until, Errorf(EInvalid, "The range may cover at most 366 days.").WithDetail("field", "since")
	}
	return since.UTC(), until.UTC(), nil
}

// DeploymentDay counts one day's deployments (by creation, UTC) of one
// environment.
type DeploymentDay struct {
	Date        string `json:"date"` // YYYY-MM-DD
	Environment string `json:"environment"`
	Total       int    `json:"total"`
	Succeeded   int    `json:"succeeded"`
	Failed      int    `json:"failed"`
	Canceled    int    `json:"canceled"`
}

// DeploymentEnvStats sums up one environment's deployments over the range.
type DeploymentEnvStats struct {
	Environment string `json:"environment"`
	Total       int    `json:"total"`
	Succeeded   int    `json:"succeeded"`
	Failed      int    `json:"failed"`
	Canceled    int    `json:"canceled"`
	// SuccessRate is Succeeded / (Succeeded + Failed), nil when neither.
	SuccessRate *float64 `json:"success_rate"`
	// DurationP50Ms and DurationP95Ms are percentiles (nearest rank) of
	// how long finished deployments (succeeded or failed) ran, from start
	// to finish, in milliseconds; nil when none finished.
	DurationP50Ms *int64 `json:"duration_p50_ms"`
	DurationP95Ms *int64 `json:"duration_p95_ms"`
}

// DeploymentAnalytics is a project's deployments over [Since, Until).
type DeploymentAnalytics struct {
	ProjectID    uuid.UUID            `json:"project_id"`
	Since        time.Time            `json:"since"`
	Until        time.Time            `json:"until"`
	Days         []DeploymentDay      `json:"days"`
	Environments []DeploymentEnvStats `json:"environments"`
}

// percentile returns the nearest-rank q-quantile of sorted ds in ms.
func percentile(ds []time.Duration, q float64) *int64 {
	if len(ds) == 0 {
		return nil
	}
	i := max(int(math.Ceil(q*float64(len(ds))))-1, 0)
	ms := ds[i].Milliseconds()
	return &ms
}

// ProjectDeploymentAnalytics counts a project's deployments created in
// [since, until) (zero times: the last 30 days) per day and environment,
// with each environment's success rate and duration percentiles. An
// environment other than "" limits it to that one. Any project member may.
func (s *Service) ProjectDeploymentAnalytics(ctx context.Context, actor, projectID uuid.UUID, environment string, since, until time.Time) (*DeploymentAnalytics, error) {
	since, until, err := s.analyticsRange(since, until)
	if err != nil {
		return nil, err
	}
	var ds []*Deployment
	err = s.store.InTx(ctx, actor, func(tx Tx) error {
		_, role, err := projectAccess(ctx, tx, projectID, actor)
		if err != nil {
			return err
		}
		if err := authorize(role, ActProjectRead, "Project"); err != nil {
			return err
		}
		f := DeploymentFilter{ProjectID: projectID, Environment: environment, Since: since, Until: until}
		for p := (Page{Limit: 1000}); ; {
			page, err := tx.ListDeployments(ctx, f, p)
			if err != nil {
				return err
			}
			ds = append(ds, page...)
			if len(page) < p.Limit {
				return nil
			}
			p.After = page[len(page)-1].ID
		}
	})
	if err != nil {
		return nil, err
	}
	type dayKey struct{ date, env string }
	days := map[dayKey]*DeploymentDay{}
	envs := map[string]*DeploymentEnvStats{}
	durations := map[string][]time.Duration{}
	count := func(total, succeeded, failed, canceled *int, st DeployState) {
		*total++
		switch st {
		case DeployReady:
			*succeeded++
		case DeployFailed:
			*failed++
		case DeployCanceled:
			*canceled++
		}
	}
	for _, d := range ds {
		k := dayKey{d.CreatedAt.UTC().Format(time.DateOnly), d.Environment}
		day := days[k]
		if day == nil {
			day = &DeploymentDay{Date: k.date, Environment: k.env}
			days[k] = day
		}
		count(&day.Total, &day.Succeeded, &day.Failed, &day.Canceled, d.State)
		e := envs[d.Environment]
		if e == nil {
			e = &DeploymentEnvStats{Environment: d.Environment}
			envs[d.Environment] = e
		}
		count(&e.Total, &e.Succeeded, &e.Failed, &e.Canceled, d.State)
		if (d.State == DeployReady || d.State == DeployFailed) && d.StartedAt != nil && d.FinishedAt != nil {
			durations[d.Environment] = append(durations[d.Environment], d.Duration())
		}
	}
	out := &DeploymentAnalytics{ProjectID: projectID, Since: since, Until: until,
		Days: []DeploymentDay{}, Environments: []DeploymentEnvStats{}}
	for _, d := range days {
		out.Days = append(out.Days, *d)
	}
	sort.Slice(out.Days, func(i, j int) bool {
		a, b := out.Days[i], out.Days[j]
		return a.Date < b.Date || a.Date == b.Date && a.Environment < b.Environment
	})
	for _, e := range envs {
		if n := e.Succeeded + e.Failed; n > 0 {
			r := float64(e.Succeeded) / float64(n)
			e.SuccessRate = &r
		}
		ds := durations[e.Environment]
		slices.Sort(ds)
		e.DurationP50Ms, e.DurationP95Ms = percentile(ds, 0.50), percentile(ds, 0.95)
		out.Environments = append(out.Environments, *e)
	}
	sort.Slice(out.Environments, func(i, j int) bool { return out.Environments[i].Environment < out.Environments[j].Environment })
	return out, nil
}

// CanvasActivity is one canvas's activity on one node since its last
// sample: the realtime connections watching it and who edited it.
type CanvasActivity struct {
	CanvasID uuid.UUID
	Viewers  int
	Editors  []uuid.UUID
}

// ActivitySample is a stored CanvasActivity with where and when it was
// taken.
type ActivitySample struct {
	At       time.Time
	Node     string
	CanvasID uuid.UUID
	Viewers  int
	Editors  []uuid.UUID
}

// AnalyticsStore stores activity samples.
type AnalyticsStore interface {
	// RecordCanvasActivity stores node's sample taken at at, whoever the
	// transaction acts for. Canvases that no longer exist are skipped.
	RecordCanvasActivity(ctx context.Context, node string, at time.Time, acts []CanvasActivity) error
	// ListCanvasActivity returns the samples of a project's canvases taken
	// in [since, until), in time order.
	ListCanvasActivity(ctx context.Context, projectID uuid.UUID, since, until time.Time) ([]*ActivitySample, error)
}

// RecordCanvasActivity stores a node's sample of its loaded canvases
// (taken by `tone serve` every --activity-interval).
func (s *Service) RecordCanvasActivity(ctx context.Context, node string, acts []CanvasActivity) error {
	if len(acts) == 0 {
		return nil
	}
	at := s.now()
	return s.store.InTx(ctx, uuid.Nil, func(tx Tx) error { return tx.RecordCanvasActivity(ctx, node, at, acts) })
}

// RealtimeBucket is the realtime activity of a project in one time step.
type RealtimeBucket struct {
	Start time.Time `json:"start"`
	// Connections is the most realtime connections watching the project's
	// canvases at once in the step (summed over nodes).
	Connections int `json:"connections"`
	// Editors is how many different people edited the project's canvases
	// in the step.
	Editors int `json:"editors"`
}

// RealtimeAnalytics is a project's realtime activity over [Since, Until)
// in steps of Step.
type RealtimeAnalytics struct {
	ProjectID uuid.UUID        `json:"project_id"`
	Since     time.Time        `json:"since"`
	Until     time.Time        `json:"until"`
	StepMs    int64            `json:"step_ms"`
	Buckets   []RealtimeBucket `json:"buckets"`
}

// maxAnalyticsBuckets bounds how many steps a realtime analytics answer
// holds; the step grows to fit.
const maxAnalyticsBuckets = 500

// ProjectRealtimeAnalytics returns the connections and editors of a
// project's canvases over [since, until) (zero times: the last 30 days)
// in steps of step (0: the range split in at most 500 steps, whole
// minutes). Steps without samples are left out. Any project member may.
func (s *Service) ProjectRealtimeAnalytics(ctx context.Context, actor, projectID uuid.UUID, since, until time.Time, step time.Duration) (*RealtimeAnalytics, error) {
	since, until, err := s.analyticsRange(since, until)
	if err != nil {
		return nil, err
	}
	span := until.Sub(since)
	least := ((span/maxAnalyticsBuckets + time.Minute - 1) / time.Minute) * time.Minute
	switch {
	case step < 0:
		return nil, Errorf(EInvalid, "step must be positive.").WithDetail("field", "step")
	case step == 0:
		step = max(least, time.Minute)
	case step < least:
		return nil, Errorf(EInvalid, "step must be at least %s for this range (at most %d steps).", least, maxAnalyticsBuckets).WithDetail("field", "step")
	}
	var samples []*ActivitySample
	err = s.store.InTx(ctx, actor, func(tx Tx) error {
		_, role, err := projectAccess(ctx, tx, projectID, actor)
		if err != nil {
			return err
		}
		if err := authorize(role, ActProjectRead, "Project"); err != nil {
			return err
		}
		samples, err = tx.ListCanvasActivity(ctx, projectID, since, until)
		return err
	})
	if err != nil {
		return nil, err
	}
	type instant struct {
		node string
		at   time.Time
	}
	type bucket struct {
		viewers map[instant]int // connections per sample of a node
		editors map[uuid.UUID]bool
	}
	buckets := map[int64]*bucket{}
	for _, sm := range samples {
		i := int64(sm.At.Sub(since) / step)
		b := buckets[i]
		if b == nil {
			b = &bucket{viewers: map[instant]int{}, editors: map[uuid.UUID]bool{}}
			buckets[i] = b
		}
		b.viewers[instant{sm.Node, sm.At}] += sm.Viewers
		for _, e := range sm.Editors {
			b.editors[e] = true
		}
	}
	out := &RealtimeAnalytics{ProjectID: projectID, Since: since, Until: until, StepMs: step.Milliseconds(), Buckets: []RealtimeBucket{}}
	for _, i := range slices.Sorted(maps.Keys(buckets)) {
		b := buckets[i]
		// The most connections of each node in the step, summed over nodes.
		perNode := map[string]int{}
		for in, v := range b.viewers {
			perNode[in.node] = max(perNode[in.node], v)
		}
		conns := 0
		for _, v := range perNode {
			conns += v
		}
		out.Buckets = append(out.Buckets, RealtimeBucket{Start: since.Add(time.Duration(i) * step), Connections: conns, Editors: len(b.editors)})
	}
	return out, nil
}
