package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/tone-ai/tone/domain"
	tonehttp "github.com/tone-ai/tone/http"
	"github.com/tone-ai/tone/realtime"
)

// envPrefix starts the environment twin of every flag: --database-url is
// also TONE_DATABASE_URL. A flag given on the command line wins.
const envPrefix = "TONE_"

func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// applyEnv sets every flag of fs not given on the command line from its
// environment twin, if that is set.
func applyEnv(fs *flag.FlagSet) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %v", envName(f.Name), v, e)
			}
		}
	})
	return err
}

// usage prints a subcommand's flags with their environment twins.
func usage(fs *flag.FlagSet, w io.Writer, synopsis string) func() {
	return func() {
		fmt.Fprintf(w, "usage: %s\n\nFlags (each also read from its environment variable):\n", synopsis)
		fs.VisitAll(func(f *flag.Flag) {
			def := ""
			if f.DefValue != "" {
				def = fmt.Sprintf(" (default %s)", f.DefValue)
			}
			fmt.Fprintf(w, "  --%s, %s\n      %s%s\n", f.Name, envName(f.Name), f.Usage, def)
		})
	}
}

// rateFlag is a flag.Value holding a rate such as "10/1m".
type rateFlag struct{ r *tonehttp.Rate }

func (f rateFlag) String() string {
	if f.r == nil {
		return ""
	}
	return f.r.String()
}

func (f rateFlag) Set(s string) error {
	r, err := tonehttp.ParseRate(s)
	if err != nil {
		return err
	}
	*f.r = r
	return nil
}

// listFlag is a comma-separated list flag.
type listFlag struct{ l *[]string }

func (f listFlag) String() string {
	if f.l == nil {
		return ""
	}
	return strings.Join(*f.l, ",")
}

func (f listFlag) Set(s string) error {
	*f.l = nil
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*f.l = append(*f.l, p)
		}
	}
	return nil
}

// serveConfig is the configuration of `tone serve`.
type serveConfig struct {
	Addr               string
	DatabaseURL        string
	MigrateDatabaseURL string
	Migrate            bool
	DataDir            string
	SigningKeyFile     string
	LogFormat          string
	LogLevel           string
	AccessTokenTTL     time.Duration
	RefreshTokenTTL    time.Duration
	RefreshGrace       time.Duration
	MaxBodyBytes       int64
	TrustedProxies     []string
	LoginRateIP        tonehttp.Rate
	LoginRateAccount   tonehttp.Rate
	RateIP             tonehttp.Rate
	RateUser           tonehttp.Rate
	ShutdownTimeout    time.Duration
	NodeID             string
	HistorySize        int
	HistoryTTL         time.Duration
	PingInterval       time.Duration
	OutboundQueueBytes int
	MaxConnsPerUser    int
	AllowedOrigins     []string
	CanvasIdleTimeout  time.Duration
	// Cluster (Redis broker).
	RedisURL    string
	RedisPrefix string
	PresenceTTL time.Duration

	DeployLease      time.Duration
	ReaperInterval   time.Duration
	RateRunner       tonehttp.Rate
	LogMaxLines      int64
	LogMaxBytes      int64
	LogRetention     int
	LogPruneInterval time.Duration

	ActivityInterval time.Duration // realtime analytics samples

	// Feature flags.
	FlagHistory  int
	FlagCacheTTL time.Duration
	RateSDK      tonehttp.Rate

	// Artifacts.
	ArtifactMaxBytes  int64
	UploadTTL         time.Duration
	DownloadURLTTL    time.Duration
	URLSigningKeyFile string
	BlobGCInterval    time.Duration
}

func (c *serveConfig) flags(fs *flag.FlagSet) {
	def := tonehttp.DefaultConfig()
	c.LoginRateIP, c.LoginRateAccount, c.RateIP, c.RateUser = def.LoginPerIP, def.LoginPerAccount, def.RequestsPerIP, def.RequestsPerUser
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:8080", "address to listen on (host:port; port 0 picks a free one)")
	fs.StringVar(&c.DatabaseURL, "database-url", "", "PostgreSQL URL the server connects with (as role tone_app); empty: in-memory store")
	fs.StringVar(&c.MigrateDatabaseURL, "migrate-database-url", "", "PostgreSQL URL of the table owner, for migrations; empty: --database-url")
	fs.BoolVar(&c.Migrate, "migrate", false, "apply pending migrations at start")
	fs.StringVar(&c.DataDir, "data-dir", "data", "directory for local data (blobs)")
	fs.StringVar(&c.SigningKeyFile, "signing-key-file", "", "PEM file with the Ed25519 key that signs access tokens (PKCS #8), plus retired public keys; empty: an ephemeral key")
	fs.StringVar(&c.LogFormat, "log-format", "auto", "log format: json, text, or auto (text on a terminal, else json)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.DurationVar(&c.AccessTokenTTL, "access-token-ttl", 15*time.Minute, "lifetime of access tokens")
	fs.DurationVar(&c.RefreshTokenTTL, "refresh-token-ttl", 30*24*time.Hour, "lifetime of refresh tokens")
	fs.DurationVar(&c.RefreshGrace, "refresh-grace", 10*time.Second, "window in which a spent refresh token may be spent again (concurrent tabs)")
	fs.Int64Var(&c.MaxBodyBytes, "max-body-bytes", def.MaxBodyBytes, "largest accepted request body, in bytes")
	fs.Var(listFlag{&c.TrustedProxies}, "trusted-proxies", "comma-separated CIDR prefixes of proxies whose X-Forwarded-For is trusted")
	fs.Var(rateFlag{&c.LoginRateIP}, "login-rate-ip", "login and register attempts allowed per client address (N/duration)")
	fs.Var(rateFlag{&c.LoginRateAccount}, "login-rate-account", "login attempts allowed per email address (N/duration)")
	fs.Var(rateFlag{&c.RateIP}, "rate-ip", "API requests allowed per client address (N/duration)")
	fs.Var(rateFlag{&c.RateUser}, "rate-user", "API requests allowed per signed-in user (N/duration)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 15*time.Second, "how long shutdown waits for requests to finish")
	rt := realtime.DefaultConfig()
	fs.StringVar(&c.NodeID, "node-id", "", "name of this node in realtime frames and logs; empty: random")
	fs.IntVar(&c.HistorySize, "history-size", 1000, "publications kept per realtime channel for recovery")
	fs.DurationVar(&c.HistoryTTL, "history-ttl", 10*time.Minute, "how long an idle channel keeps its history")
	fs.DurationVar(&c.PingInterval, "ping-interval", rt.PingInterval, "time between server pings on realtime connections")
	fs.IntVar(&c.OutboundQueueBytes, "outbound-queue-bytes", rt.OutboundQueueBytes, "unsent bytes beyond which a slow realtime client is disconnected")
	fs.IntVar(&c.MaxConnsPerUser, "max-connections-per-user", rt.MaxConnectionsPerUser, "realtime connections one user may hold on a node")
	fs.Var(listFlag{&c.AllowedOrigins}, "allowed-origins", "comma-separated host patterns of other origins allowed to open realtime connections")
	fs.DurationVar(&c.CanvasIdleTimeout, "canvas-idle-timeout", time.Minute, "how long a canvas nobody watches stays loaded")
	fs.StringVar(&c.RedisURL, "redis-url", "", "Redis URL (redis://host:port/db) of the broker shared by the nodes of a cluster; empty: the in-process broker of a single node")
	fs.StringVar(&c.RedisPrefix, "redis-prefix", "tone", "prefix of every Redis key and pub/sub channel the broker uses (one per cluster sharing a Redis)")
	fs.DurationVar(&c.PresenceTTL, "presence-ttl", rt.PresenceTTL, "presence of a client whose node stopped refreshing it expires after this")

	c.RateRunner = def.RequestsPerRunner
	fs.DurationVar(&c.DeployLease, "deploy-lease", time.Minute, "how long a runner's heartbeat keeps its deployment alive")
	fs.DurationVar(&c.ReaperInterval, "reaper-interval", 15*time.Second, "how often deployments whose runner went silent are failed")
	fs.Var(rateFlag{&c.RateRunner}, "rate-runner", "runner API requests allowed per deploy token (N/duration); runner routes skip --rate-ip")

	fs.IntVar(&c.FlagHistory, "flag-history", domain.DefaultFlagHistory, "flag and config changes kept per environment; a client further behind gets a snapshot")
	c.RateSDK = def.RequestsPerSDKKey
	fs.Var(rateFlag{&c.RateSDK}, "rate-sdk", "flag evaluation requests allowed per SDK key (N/duration); SDK routes skip --rate-ip")
	fs.DurationVar(&c.FlagCacheTTL, "flag-cache-ttl", domain.DefaultFlagCacheTTL, "how long flag evaluation trusts its copy of an environment, a member's right to evaluate and an SDK key before checking the database again")
	fs.Int64Var(&c.LogMaxLines, "log-max-lines", 1_000_000, "log lines kept per deployment; beyond, the oldest are dropped behind a marker line")
	fs.Int64Var(&c.LogMaxBytes, "log-max-bytes", 256<<20, "log bytes kept per deployment; beyond, the oldest lines are dropped behind a marker line")
	fs.IntVar(&c.LogRetention, "log-retention", 30, "days log lines are kept in projects without a retention setting")
	fs.DurationVar(&c.LogPruneInterval, "log-prune-interval", time.Hour, "how often log lines past their retention are deleted")

	fs.Int64Var(&c.ArtifactMaxBytes, "artifact-max-bytes", domain.DefaultArtifactMaxBytes, "largest artifact, in bytes (uploads over it are refused with 413)")
	fs.DurationVar(&c.UploadTTL, "upload-ttl", domain.DefaultUploadTTL, "how long a resumable upload nobody appends to is kept")
	fs.DurationVar(&c.DownloadURLTTL, "download-url-ttl", domain.DefaultDownloadURLTTL, "lifetime of signed artifact download URLs")
	fs.StringVar(&c.URLSigningKeyFile, "url-signing-key-file", "", "file whose bytes (at least 32) key the HMAC of signed download URLs; empty: an ephemeral key")
	fs.DurationVar(&c.BlobGCInterval, "blob-gc-interval", time.Hour, "how often unreferenced artifact blobs and abandoned uploads are removed")
	fs.DurationVar(&c.ActivityInterval, "activity-interval", time.Minute, "how often each loaded canvas's connections and editors are recorded for realtime analytics; 0: never")
}
