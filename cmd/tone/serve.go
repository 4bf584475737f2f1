package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"golang.org/x/term"

	"github.com/tone-ai/tone/domain"
	"github.com/tone-ai/tone/domain/disk"
	"github.com/tone-ai/tone/domain/memory"
	"github.com/tone-ai/tone/domain/postgres"
	tonehttp "github.com/tone-ai/tone/http"
	"github.com/tone-ai/tone/migrations"
	"github.com/tone-ai/tone/realtime"
)

// serve runs `tone serve` until ctx is done, then shuts down gracefully.
// started, if not nil, is called with the base URL once the server listens.
func serve(ctx context.Context, args []string, stdout, stderr io.Writer, started func(url string)) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg serveConfig
	cfg.flags(fs)
	fs.Usage = usage(fs, stderr, "tone serve [flags]")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve: unexpected arguments %q", fs.Args())
	}
	if err := applyEnv(fs); err != nil {
		return err
	}
	logger, err := newLogger(stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return err
	}

	if cfg.ReaperInterval <= 0 || cfg.LogPruneInterval <= 0 {
		return fmt.Errorf("serve: --reaper-interval and --log-prune-interval must be positive")
	}
	if cfg.LogMaxLines <= 0 || cfg.LogMaxBytes <= 0 || cfg.LogRetention <= 0 {
		return fmt.Errorf("serve: --log-max-lines, --log-max-bytes and --log-retention must be positive")
	}
	if cfg.BlobGCInterval <= 0 || cfg.ArtifactMaxBytes <= 0 || cfg.UploadTTL <= 0 || cfg.DownloadURLTTL <= 0 {
		return fmt.Errorf("serve: --blob-gc-interval, --artifact-max-bytes, --upload-ttl and --download-url-ttl must be positive")
	}
	keys, err := loadKeys(cfg.SigningKeyFile)
	if err != nil {
		return err
	}
	if keys.Ephemeral {
		logger.Warn("signing key is ephemeral: access tokens stop working when this process exits; set --signing-key-file to keep them")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}

	blobs, uploads, urlSigner, err := openArtifactStorage(cfg, logger)
	if err != nil {
		return err
	}

	store, closeStore, err := openStore(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer closeStore()

	svc, err := domain.NewService(store, domain.Config{
		Keys: keys, AccessTTL: cfg.AccessTokenTTL, RefreshTTL: cfg.RefreshTokenTTL, RefreshGrace: cfg.RefreshGrace,
		Logger: logger, DeployLease: cfg.DeployLease,
		FlagHistory: cfg.FlagHistory, FlagCacheTTL: cfg.FlagCacheTTL,
		LogMaxLines: cfg.LogMaxLines, LogMaxBytes: cfg.LogMaxBytes, LogRetentionDays: cfg.LogRetention,
		Blobs: blobs, Uploads: uploads, URLSigner: urlSigner, ArtifactMaxBytes: cfg.ArtifactMaxBytes,
		UploadTTL: cfg.UploadTTL, DownloadURLTTL: cfg.DownloadURLTTL,
	})
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	broker, ready, closeBroker, err := openBroker(cfg, logger, reg)
	if err != nil {
		return err
	}
	defer closeBroker()
	node := realtime.NewNode(realtime.Config{
		NodeID:                cfg.NodeID,
		PingInterval:          cfg.PingInterval,
		OutboundQueueBytes:    cfg.OutboundQueueBytes,
		MaxConnectionsPerUser: cfg.MaxConnsPerUser,
		OriginPatterns:        cfg.AllowedOrigins,
		PresenceTTL:           cfg.PresenceTTL,
		Logger:                logger,
	}, svc, broker, broker, realtime.NewMetrics(reg))
	node.Register("project", realtime.ProjectNamespace{Auth: svc})
	node.Register("flags", realtime.ServerOnlyProjectNamespace{Auth: svc})
	node.Register("notifications", realtime.UserNamespace{})
	node.EnableCanvas(svc, realtime.CanvasConfig{IdleTimeout: cfg.CanvasIdleTimeout})
	node.EnableLogs(svc, realtime.LogsConfig{})
	nodeCtx, stopNode := context.WithCancel(context.WithoutCancel(ctx))
	defer stopNode()
	nodeDone := make(chan error, 1)
	go func() { nodeDone <- node.Run(nodeCtx) }()
	// The outbox relay publishes the events that use cases commit.
	relayCtx, stopRelay := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRelay()
	relayDone := make(chan struct{})
	go func() { svc.RunOutbox(relayCtx, nodePublisher{node}); close(relayDone) }()
	// The reaper fails deployments whose runner stopped heartbeating.
	go svc.RunReaper(relayCtx, cfg.ReaperInterval)
	// The pruner deletes log lines past their project's retention.
	go svc.RunLogPruner(relayCtx, cfg.LogPruneInterval)
	// The blob collector removes unreferenced blobs and abandoned uploads.
	go svc.RunBlobGC(relayCtx, cfg.BlobGCInterval)
	// The sampler records canvas activity for the realtime analytics.
	go sampleActivity(relayCtx, svc, node, cfg.ActivityInterval, logger)

	api := tonehttp.NewServer(svc, tonehttp.Config{
		MaxBodyBytes:      cfg.MaxBodyBytes,
		TrustedProxies:    cfg.TrustedProxies,
		LoginPerIP:        cfg.LoginRateIP,
		LoginPerAccount:   cfg.LoginRateAccount,
		RequestsPerIP:     cfg.RateIP,
		RequestsPerUser:   cfg.RateUser,
		RequestsPerRunner: cfg.RateRunner,
		RequestsPerSDKKey: cfg.RateSDK,
		Logger:            logger,
		Registry:          reg,
		Ready: func(ctx context.Context) error {
			return errors.Join(svc.Store().Ping(ctx), ready(ctx))
		},
		ExtraRoutes: func(r chi.Router) { r.Get("/realtime", node.ServeHTTP) },
		Canvases:    node,
		Logs:        node,
	})

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           api,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	url := "http://" + ln.Addr().String()
	logger.Info("tone listening", "url", url, "version", buildVersion(), "data_dir", cfg.DataDir)
	fmt.Fprintf(stdout, "Tone is listening on %s\n", url)
	if started != nil {
		started(url)
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case err := <-nodeDone:
		srv.Close()
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	// Realtime first: refuse new connections, tell clients to reconnect
	// elsewhere, flush canvases; then finish the HTTP requests in flight.
	// The relay and the broker stop last, so that the events of those
	// requests still go out (what is left in a PostgreSQL outbox goes out
	// from another node or the next start).
	if err := node.Shutdown(sctx); err != nil {
		logger.Warn("realtime shutdown", "err", err)
	}
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("shutdown did not finish in time; closing connections", "err", err)
		srv.Close()
	}
	stopRelay()
	select {
	case <-relayDone:
	case <-sctx.Done():
		logger.Warn("outbox relay did not stop in time")
	}
	stopNode()
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	logger.Info("stopped")
	return nil
}

// brokerAndPresence is what a node needs of its broker.
type brokerAndPresence interface {
	realtime.Broker
	realtime.Presence
}

// openBroker returns the Redis broker when --redis-url is set, else the
// in-process one, with its readiness check and a function that closes it
// (to call once the node has stopped).
func openBroker(cfg serveConfig, logger *slog.Logger, reg prometheus.Registerer) (brokerAndPresence, func(context.Context) error, func(), error) {
	if cfg.RedisURL == "" {
		b := realtime.NewMemoryBroker(cfg.HistorySize, cfg.HistoryTTL)
		return b, func(context.Context) error { return nil }, func() {}, nil
	}
	opts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("--redis-url: %w", err)
	}
	b := realtime.NewRedisBroker(realtime.RedisConfig{
		Options: opts, Prefix: cfg.RedisPrefix, HistorySize: cfg.HistorySize, HistoryTTL: cfg.HistoryTTL, Logger: logger,
		Registerer: reg,
	})
	redis.SetLogger(redisLogger{logger})
	logger.Info("realtime broker: redis", "addr", opts.Addr, "db", opts.DB, "prefix", cfg.RedisPrefix)
	return b, b.Ready, func() { b.Close() }, nil
}

// redisLogger puts the Redis client's own messages (each failed dial while
// Redis is down) in the server's log, at debug level: the broker logs what
// matters (connection lost, connected again) itself.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, "redis client", "detail", fmt.Sprintf(format, v...))
}

// nodePublisher publishes the domain's events on the realtime node: each
// event, msgpack-encoded, is the d of a msg frame on its channel.
type nodePublisher struct{ node *realtime.Node }

var _ domain.Publisher = nodePublisher{}

// PublishEvent implements domain.Publisher. An unknown channel is EInvalid
// (the relay drops the event); a broker failure is EUnavailable (it retries).
func (p nodePublisher) PublishEvent(ctx context.Context, ch string, e *domain.Event) error {
	_, err := p.node.Publish(ctx, ch, e)
	return err
}

// newLogger returns a slog logger writing JSON, or text when format is
// "text" or "auto" on a terminal.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "auto":
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			return slog.New(slog.NewTextHandler(w, opts)), nil
		}
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want json, text or auto", format)
}

func loadKeys(path string) (*domain.Keyring, error) {
	if path == "" {
		return domain.GenerateKeyring()
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return domain.ParseKeyringPEM(data)
}

// openArtifactStorage opens the blob and upload stores under the data
// directory and the download URL signer.
func openArtifactStorage(cfg serveConfig, logger *slog.Logger) (*disk.Store, *disk.Uploads, *domain.URLSigner, error) {
	blobs, err := disk.New(filepath.Join(cfg.DataDir, "blobs"))
	if err != nil {
		return nil, nil, nil, err
	}
	uploads, err := disk.NewUploads(filepath.Join(cfg.DataDir, "uploads"))
	if err != nil {
		return nil, nil, nil, err
	}
	if cfg.URLSigningKeyFile == "" {
		signer, err := domain.GenerateURLSigner()
		if err != nil {
			return nil, nil, nil, err
		}
		logger.Warn("URL signing key is ephemeral: signed download URLs stop working when this process exits and are not valid on other nodes; set --url-signing-key-file to keep them")
		return blobs, uploads, signer, nil
	}
	key, err := os.ReadFile(cfg.URLSigningKeyFile)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("url signing key: %w", err)
	}
	signer, err := domain.NewURLSigner(key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("url signing key %s: %w", cfg.URLSigningKeyFile, err)
	}
	return blobs, uploads, signer, nil
}

// openStore returns the PostgreSQL store when a database URL is set, else
// the in-memory one, and a function that releases it.
func openStore(ctx context.Context, cfg serveConfig, logger *slog.Logger) (domain.Store, func(), error) {
	if cfg.DatabaseURL == "" {
		logger.Warn("using the in-memory store: data is lost when this process exits; set --database-url to keep it")
		return memory.New(), func() {}, nil
	}
	if cfg.Migrate {
		url := cfg.MigrateDatabaseURL
		if url == "" {
			url = cfg.DatabaseURL
		}
		db, err := migrations.Open(url)
		if err != nil {
			return nil, nil, err
		}
		err = migrations.Up(ctx, db)
		db.Close()
		if err != nil {
			return nil, nil, err
		}
		logger.Info("migrations applied")
	}
	pool, err := postgres.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, nil, err
	}
	enforced, err := postgres.RowSecurityEnforced(ctx, pool)
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	if !enforced {
		logger.Warn("row-level security is OFF for this connection: the database role is a superuser or has BYPASSRLS; connect as tone_app (see docs/operations.md)")
	}
	logger.Info("using PostgreSQL", "database", redactURL(cfg.DatabaseURL))
	return postgres.New(pool), pool.Close, nil
}

// redactURL hides the password of a database URL for logging.
func redactURL(u string) string {
	at := strings.LastIndexByte(u, '@')
	scheme := strings.Index(u, "://")
	if at < 0 || scheme < 0 {
		return u
	}
	creds := u[scheme+3 : at]
	if user, _, ok := strings.Cut(creds, ":"); ok {
		return u[:scheme+3] + user + ":***" + u[at:]
	}
	return u
}
