package domain_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/google/uuid"

	"github.com/tone-ai/tone/domain"
	"github.com/tone-ai/tone/domain/flag"
	"github.com/tone-ai/tone/domain/memory"
	"github.com/tone-ai/tone/domain/postgres"
	"github.com/tone-ai/tone/domain/postgres/pgtest"
)

// benchFlagDef is a flag of the benchmarks: a staff rule, a segment rule,
// a rule with a semver condition and a 50/50 split, and a 30 % default
// rollout, so an evaluation walks conditions and hashes.
const benchFlagDef = `{
  "type": "string", "enabled": true,
  "variants": {"control": "control", "treatment": "treatment", "off": "off"}, "off_variant": "off",
  "rules": [
    {"conditions": [{"attribute": "email", "op": "ends_with", "values": ["@tone.dev"]}], "serve": {"variant": "treatment"}},
    {"conditions": [{"op": "in_segment", "values": ["beta"]}], "serve": {"variant": "treatment"}},
    {"conditions": [{"attribute": "country", "op": "in", "values": ["NL", "DE", "FR"]},
                    {"attribute": "app_version", "op": "semver_ge", "values": ["2.1.0"]}],
     "serve": {"rollout": {"percentage": 50, "variants": [{"variant": "control", "weight": 1}, {"variant": "treatment", "weight": 1}]}}}
  ],
  "default": {"rollout": {"percentage": 30, "variants": [{"variant": "treatment", "weight": 1}]}}
}`

// benchFlags gives a project a segment and 50 flags like benchFlagDef and
// returns their keys and 1024 contexts to evaluate them for.
func benchFlags(b *testing.B, svc *domain.Service, actor, project uuid.UUID) ([]string, []flag.Context) {
	b.Helper()
	_, _, err := svc.PutSegment(ctx, actor, project, &flag.Segment{Key: "beta", Rules: []flag.SegmentRule{{
		Conditions: []flag.Condition{{Attribute: "plan", Op: flag.OpIn, Values: []any{"beta", "internal"}}}}}})
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]string, 50)
	for i := range keys {
		var f flag.Flag
		if err := json.Unmarshal([]byte(benchFlagDef), &f); err != nil {
			b.Fatal(err)
		}
		f.Key = fmt.Sprintf("flag-%02d", i)
		keys[i] = f.Key
		if _, _, err := svc.PutFlag(ctx, actor, project, "production", &f); err != nil {
			b.Fatal(err)
		}
	}
	ctxs := make([]flag.Context, 1024)
	for i := range ctxs {
		ctxs[i] = flag.Context{"targetingKey": fmt.Sprintf("user-%d", i), "email": fmt.Sprintf("u%d@example.com", i),
			"country": []string{"NL", "US", "DE"}[i%3], "app_version": "2.3.1", "plan": []string{"pro", "free", "beta"}[i%3]}
	}
	return keys, ctxs
}

// BenchmarkEvaluateFlags measures Service.EvaluateFlags in process: one
// flag per call (single) and all 50 flags per call (batch50), on the
// in-memory store and on PostgreSQL. Evaluations come from the service's
// copy of the environment; with the default one-second cache TTL, the
// PostgreSQL run checks the stored version about once a second.
func BenchmarkEvaluateFlags(b *testing.B) {
	for _, store := range []struct {
		name string
		open func(b *testing.B) domain.Store
	}{
		{"memory", func(*testing.B) domain.Store { return memory.New() }},
		{"postgres", func(b *testing.B) domain.Store { return postgres.New(pgtest.New(b)) }},
	} {
		b.Run(store.name, func(b *testing.B) {
			svc, err := domain.NewService(store.open(b), domain.Config{Password: domain.PasswordParams{Memory: 64, Time: 1, Threads: 1}})
			if err != nil {
				b.Fatal(err)
			}
			email := "bench-" + uuid.NewString()[:8] + "@example.com"
			if err := svc.Register(ctx, domain.Registration{Email: email, Password: "bench password"}); err != nil {
				b.Fatal(err)
			}
			tok, err := svc.Login(ctx, email, "bench password")
			if err != nil {
				b.Fatal(err)
			}
			ws, err := svc.CreateWorkspace(ctx, tok.UserID, "Bench")
			if err != nil {
				b.Fatal(err)
			}
			name := "Bench"
			p, err := svc.CreateProject(ctx, tok.UserID, ws.ID, domain.ProjectInput{Name: &name})
			if err != nil {
				b.Fatal(err)
			}
			keys, ctxs := benchFlags(b, svc, tok.UserID, p.ID)
			for _, batch := range []int{1, 50} {
				b.Run(map[int]string{1: "single", 50: "batch50"}[batch], func(b *testing.B) {
					b.ReportAllocs()
					i := 0
					for b.Loop() {
						req := domain.EvaluationRequest{Context: ctxs[i%len(ctxs)]}
						if batch == 1 {
							req.Keys = keys[i%len(keys) : i%len(keys)+1]
						}
						_, evs, err := svc.EvaluateFlags(ctx, tok.UserID, p.ID, "production", req)
						if err != nil || len(evs) != batch {
							b.Fatal(err, len(evs))
						}
						i++
					}
					b.ReportMetric(float64(i*batch)/b.Elapsed().Seconds(), "evals/s")
				})
			}
		})
	}
}
