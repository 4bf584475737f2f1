package http

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tone-ai/tone/domain"
	"github.com/tone-ai/tone/domain/flag"
	"github.com/tone-ai/tone/domain/memory"
)

// BenchmarkFlagsHTTP measures flag evaluation over HTTP on loopback: the
// real server (router, middleware, JSON) over the in-memory store, served
// by httptest, called with an SDK key by clients keeping their connections
// alive. single asks for one flag per request, batch50 for all 50 flags;
// the parallel variants run GOMAXPROCS clients at once (client and server
// share the machine). evals/s counts flags evaluated.
func BenchmarkFlagsHTTP(b *testing.B) {
	ctx := context.Background()
	svc, err := domain.NewService(memory.New(), testDomainConfig())
	if err != nil {
		b.Fatal(err)
	}
	if err := svc.Register(ctx, domain.Registration{Email: "bench@example.com", Password: "bench password"}); err != nil {
		b.Fatal(err)
	}
	tok, err := svc.Login(ctx, "bench@example.com", "bench password")
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
	keys := benchHTTPFlags(b, svc, tok.UserID, p.ID)
	_, secret, err := svc.CreateSDKKey(ctx, tok.UserID, p.ID, "production", "bench")
	if err != nil {
		b.Fatal(err)
	}
	unlimited := Rate{N: 1 << 30, Window: time.Minute}
	api := NewServer(svc, Config{Logger: slog.New(slog.DiscardHandler), RequestsPerIP: unlimited, RequestsPerSDKKey: unlimited})
	srv := httptest.NewServer(api)
	defer srv.Close()
	client := srv.Client()
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = 64

	call := func(b *testing.B, path string, body []byte) {
		req, err := http.NewRequest("POST", srv.URL+path, bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+secret)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("%s: %d", path, resp.StatusCode)
		}
	}
	bodies := make([][]byte, 256)
	batches := make([][]byte, 256)
	for i := range bodies {
		c := map[string]any{"targetingKey": fmt.Sprintf("user-%d", i), "email": fmt.Sprintf("u%d@example.com", i),
			"country": []string{"NL", "US", "DE"}[i%3], "app_version": "2.3.1", "plan": []string{"pro", "free", "beta"}[i%3]}
		bodies[i], _ = json.Marshal(map[string]any{"flag_key": keys[i%len(keys)], "context": c})
		batches[i], _ = json.Marshal(map[string]any{"flag_keys": keys, "context": c})
	}
	for _, bc := range []struct {
		name   string
		path   string
		bodies [][]byte
		evals  int
	}{
		{"single", "/api/v1/sdk/evaluate", bodies, 1},
		{"batch50", "/api/v1/sdk/evaluate-batch", batches, 50},
	} {
		b.Run(bc.name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				call(b, bc.path, bc.bodies[i%len(bc.bodies)])
				i++
			}
			b.ReportMetric(float64(i*bc.evals)/b.Elapsed().Seconds(), "evals/s")
		})
		b.Run(bc.name+"-parallel", func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					call(b, bc.path, bc.bodies[i%len(bc.bodies)])
					i++
				}
			})
			b.ReportMetric(float64(b.N*bc.evals)/b.Elapsed().Seconds(), "evals/s")
		})
	}
}

// benchHTTPFlags gives a project a segment and 50 flags with a staff rule,
// a segment rule, a semver rule with a 50/50 split and a 30 % default
// rollout, and returns their keys.
func benchHTTPFlags(b *testing.B, svc *domain.Service, actor, project uuid.UUID) []string {
	b.Helper()
	ctx := context.Background()
	_, _, err := svc.PutSegment(ctx, actor, project, &flag.Segment{Key: "beta", Rules: []flag.SegmentRule{{
		Conditions: []flag.Condition{{Attribute: "plan", Op: flag.OpIn, Values: []any{"beta", "internal"}}}}}})
	if err != nil {
		b.Fatal(err)
	}
	const def = `{"type": "string", "enabled": true,
	  "variants": {"control": "control", "treatment": "treatment", "off": "off"}, "off_variant": "off",
	  "rules": [
	    {"conditions": [{"attribute": "email", "op": "ends_with", "values": ["@tone.dev"]}], "serve": {"variant": "treatment"}},
	    {"conditions": [{"op": "in_segment", "values": ["beta"]}], "serve": {"variant": "treatment"}},
	    {"conditions": [{"attribute": "country", "op": "in", "values": ["NL", "DE", "FR"]},
	                    {"attribute": "app_version", "op": "semver_ge", "values": ["2.1.0"]}],
	     "serve": {"rollout": {"percentage": 50, "variants": [{"variant": "control", "weight": 1}, {"variant": "treatment", "weight": 1}]}}}],
	  "default": {"rollout": {"percentage": 30, "variants": [{"variant": "treatment", "weight": 1}]}}}`
	keys := make([]string, 50)
	for i := range keys {
		var f flag.Flag
		if err := json.Unmarshal([]byte(def), &f); err != nil {
			b.Fatal(err)
		}
		f.Key = fmt.Sprintf("flag-%02d", i)
		keys[i] = f.Key
		if _, _, err := svc.PutFlag(ctx, actor, project, "production", &f); err != nil {
			b.Fatal(err)
		}
	}
	return keys
}
