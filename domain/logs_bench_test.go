package domain_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tone-ai/tone/domain"
	"github.com/tone-ai/tone/domain/postgres"
	"github.com/tone-ai/tone/domain/postgres/pgtest"
)

// benchLines is a batch of n build-output-like lines (about 90 bytes each,
// with colour codes and a secret to mask).
func benchLines(n, batch int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("\x1b[36m[webpack]\x1b[0m chunk %06d-%04d emitted: vendors~main.%08x.js 148.2 KiB token=npm_s3cr3t", batch, i, i*2654435761)
	}
	return out
}

// BenchmarkLogIngest measures Service.AppendLogs into PostgreSQL, as tone
// serve runs it (a pool of postgres.DefaultMaxConns connections as
// tone_app, row-level security on, one project secret masked), with
// batches of 1000 lines: into one deployment (batches one after the
// other, as one runner sends them), and into 50 deployments at once (one
// runner each). Each iteration appends one batch to every deployment;
// lines/s is the total rate.
func BenchmarkLogIngest(b *testing.B) {
	for _, deployments := range []int{1, 50} {
		b.Run(fmt.Sprintf("deployments=%d", deployments), func(b *testing.B) {
			ctx := context.Background()
			db := pgtest.NewDB(b)
			pool, err := postgres.Open(ctx, db.AppURL)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(pool.Close)
			svc, err := domain.NewService(postgres.New(pool), domain.Config{Password: domain.PasswordParams{Memory: 64, Time: 1, Threads: 1}})
			if err != nil {
				b.Fatal(err)
			}
			owner := uuid.Nil
			email := "bench-" + uuid.NewString()[:8] + "@example.com"
			if err := svc.Register(ctx, domain.Registration{Email: email, Password: "password-bench", DisplayName: "bench"}); err != nil {
				b.Fatal(err)
			}
			tok, err := svc.Login(ctx, email, "password-bench")
			if err != nil {
				b.Fatal(err)
			}
			owner = tok.UserID
			ws, err := svc.CreateWorkspace(ctx, owner, "Bench")
			if err != nil {
				b.Fatal(err)
			}
			name := "Site"
			p, err := svc.CreateProject(ctx, owner, ws.ID, domain.ProjectInput{Name: &name})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := svc.CreateLogSecret(ctx, owner, p.ID, "npm", "npm_s3cr3t"); err != nil {
				b.Fatal(err)
			}
			_, secret, err := svc.CreateDeployToken(ctx, owner, p.ID, "ci")
			if err != nil {
				b.Fatal(err)
			}
			r, err := svc.AuthenticateRunner(ctx, secret)
			if err != nil {
				b.Fatal(err)
			}
			ids := make([]uuid.UUID, deployments)
			for i := range ids {
				d, err := svc.RunnerCreateDeployment(ctx, r, domain.DeploymentInput{Environment: "production"})
				if err != nil {
					b.Fatal(err)
				}
				ids[i] = d.ID
			}
			const per = 1000
			batches := make([][]string, 64)
			for i := range batches {
				batches[i] = benchLines(per, i)
			}
			next := make([]uint64, deployments)
			for i := range next {
				next[i] = 1
			}
			start := time.Now()
			iters := 0
			for b.Loop() {
				var wg sync.WaitGroup
				for i, id := range ids {
					wg.Add(1)
					go func() {
						defer wg.Done()
						res, err := svc.AppendLogs(ctx, r, id, domain.LogBatch{Step: "build", FirstLine: next[i], Lines: batches[iters%len(batches)]})
						if err != nil {
							b.Error(err)
							return
						}
						next[i] = res.NextLine
					}()
				}
				wg.Wait()
				iters++
			}
			b.ReportMetric(float64(iters*deployments*per)/time.Since(start).Seconds(), "lines/s")
		})
	}
}
