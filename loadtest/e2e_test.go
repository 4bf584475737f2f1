package loadtest_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tone-ai/tone/domain"
	"github.com/tone-ai/tone/domain/memory"
	tonehttp "github.com/tone-ai/tone/http"
	"github.com/tone-ai/tone/loadtest"
	"github.com/tone-ai/tone/realtime"
)

// startServer serves the REST API and the realtime endpoint over the
// in-memory store on loopback, with the relaxed limits a load test needs,
// and returns its base URL.
func startServer(t *testing.T) string {
	t.Helper()
	svc, err := domain.NewService(memory.New(), domain.Config{Password: domain.PasswordParams{Memory: 64, Time: 1, Threads: 1}})
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	broker := realtime.NewMemoryBroker(1000, time.Minute)
	quiet := slog.New(slog.DiscardHandler)
	node := realtime.NewNode(realtime.Config{NodeID: "n1", MaxConnectionsPerUser: 1000, Logger: quiet}, svc, broker, broker, realtime.NewMetrics(reg))
	node.Register("project", realtime.ProjectNamespace{Auth: svc})
	node.EnableCanvas(svc, realtime.CanvasConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { node.Run(ctx); close(done) }()
	relaxed := tonehttp.Rate{N: 1000000, Window: time.Minute}
	api := tonehttp.NewServer(svc, tonehttp.Config{
		LoginPerIP: relaxed, LoginPerAccount: relaxed, RequestsPerIP: relaxed, RequestsPerUser: relaxed,
		Registry:    reg,
		Logger:      quiet,
		ExtraRoutes: func(r chi.Router) { r.Get("/realtime", node.ServeHTTP) },
	})
	srv := httptest.NewServer(api)
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		node.Shutdown(sctx)
		srv.Close()
		cancel()
		<-done
	})
	return srv.URL
}

func progress(t *testing.T) io.Writer {
	if testing.Verbose() {
		return os.Stderr
	}
	return io.Discard
}

func TestScenarios(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a server and three short load tests")
	}
	url := startServer(t)
	ctx := context.Background()
	base := func(scenario string) loadtest.Config {
		cfg := loadtest.DefaultConfig()
		cfg.URL, cfg.Scenario, cfg.Duration, cfg.Drain, cfg.Users = url, scenario, 1500*time.Millisecond, 2*time.Second, 4
		cfg.Progress = progress(t)
		// Two workers in this process: the plan, ready, progress and result
		// lines go through the same pipes as with child processes.
		cfg.Procs, cfg.Spawn = 2, loadtest.InProcess()
		return cfg
	}

	t.Run("canvas", func(t *testing.T) {
		cfg := base("canvas")
		cfg.Editors, cfg.Canvases, cfg.Rate = 12, 3, 10
		sum, err := loadtest.Run(ctx, cfg)
		require.NoError(t, err)
		assert.Equal(t, int64(0), sum.Errors.Total, "%+v", sum.Errors)
		assert.Equal(t, int64(12), sum.Connections)
		assert.Positive(t, sum.Sent)
		assert.Equal(t, sum.Sent, sum.Acked)
		// Each update reaches the 3 other editors of its canvas.
		assert.Equal(t, 3*sum.Sent, sum.Deliveries)
		require.NotNil(t, sum.Latency)
		assert.Positive(t, sum.Latency.P50)
		assert.LessOrEqual(t, sum.Latency.P50, sum.Latency.P99)
		assert.LessOrEqual(t, sum.Latency.P99, sum.Latency.Max)
		require.NotNil(t, sum.AckLatency)
		assert.Positive(t, sum.AckLatency.P99)
	})

	t.Run("fanout", func(t *testing.T) {
		cfg := base("fanout")
		cfg.Subscribers, cfg.Rate = 20, 150 // two publisher connections
		cfg.SourceIPs = []string{"127.0.0.1", "127.0.0.2"}
		sum, err := loadtest.Run(ctx, cfg)
		require.NoError(t, err)
		assert.Equal(t, int64(0), sum.Errors.Total, "%+v", sum.Errors)
		assert.Equal(t, int64(22), sum.Connections)
		assert.Positive(t, sum.Acked)
		assert.Equal(t, 20*sum.Acked, sum.Deliveries)
		assert.Equal(t, sum.Expected, sum.Deliveries)
		require.NotNil(t, sum.Latency)
		assert.Positive(t, sum.Latency.P99)
		assert.Positive(t, sum.DeliveriesPerSec)
		require.NotNil(t, sum.CPU)
		assert.Positive(t, sum.CPU.ServerPerMessage)
	})

	t.Run("idle", func(t *testing.T) {
		cfg := base("idle")
		cfg.Conns, cfg.Settle, cfg.Duration = 40, 100*time.Millisecond, 3*time.Second
		sum, err := loadtest.Run(ctx, cfg)
		require.NoError(t, err)
		assert.Equal(t, int64(0), sum.Errors.Total, "%+v", sum.Errors)
		assert.Equal(t, int64(40), sum.Connections)
		require.NotNil(t, sum.Server)
		assert.True(t, sum.Server.ConnectionsMatch, "tone_realtime_connections: %+v", sum.Server)
		assert.Equal(t, float64(40), sum.Server.After.Connections)
		assert.Equal(t, float64(20), sum.Server.Mid.Connections)
		assert.Positive(t, sum.Server.After.RSSBytes)
		// The clients run in this process too, so their goroutines count.
		assert.GreaterOrEqual(t, sum.Server.PerConn.Goroutines, 1.0)
	})
}

func TestRefusesRemoteTargets(t *testing.T) {
	cfg := loadtest.DefaultConfig()
	cfg.Scenario, cfg.Duration = "idle", time.Second
	cfg.Settle = 100 * time.Millisecond
	for _, url := range []string{"http://10.0.0.1:8080", "http://192.168.1.10", "http://[2001:db8::1]:8080"} {
		cfg.URL = url
		_, err := loadtest.Run(context.Background(), cfg)
		assert.ErrorIs(t, err, loadtest.ErrNotLoopback, url)
	}
	cfg.URL, cfg.SourceIPs = "http://127.0.0.1:1", []string{"10.1.2.3"}
	_, err := loadtest.Run(context.Background(), cfg)
	assert.ErrorIs(t, err, loadtest.ErrNotLoopback, "source addresses are loopback too")
}
