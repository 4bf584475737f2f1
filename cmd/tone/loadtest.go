package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/tone-ai/tone/loadtest"
)

const loadtestUsage = `usage: tone loadtest <scenario> [flags]

Scenarios:
  canvas   editors over canvases send CRDT updates; end-to-end latency between editors
  fanout   subscribers of one project channel; delivery latency of published messages
  idle     idle authenticated connections; server memory per connection from /metrics

The target must be a loopback address. Progress goes to standard error
once a second, the JSON summary to standard output (and to --json).
`

// runLoadtest runs `tone loadtest`.
func runLoadtest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "worker" {
		// A child started by a parent with --procs: plan on stdin, JSON on stdout.
		return loadtest.RunWorker(ctx, os.Stdin, stdout)
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") || !slices.Contains(loadtest.Scenarios, args[0]) {
		fmt.Fprint(stderr, loadtestUsage)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return flag.ErrHelp
		}
		return errors.New("loadtest: name a scenario: canvas, fanout or idle")
	}
	cfg := loadtest.DefaultConfig()
	cfg.Scenario = args[0]
	fs := flag.NewFlagSet("loadtest "+cfg.Scenario, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.URL, "url", cfg.URL, "base URL of the server (loopback only)")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long to send load (canvas, fanout) or hold the connections (idle)")
	fs.DurationVar(&cfg.Drain, "drain", cfg.Drain, "after the window, how long to wait for replies and deliveries in flight")
	fs.IntVar(&cfg.Procs, "procs", cfg.Procs, "worker processes to spread the connections over (each holds at most its open-file limit)")
	fs.Var(listFlag{&cfg.SourceIPs}, "source-ips", "comma-separated loopback source addresses to spread connections over (127.0.0.1,127.0.0.2,...), for more than ~28k connections")
	fs.IntVar(&cfg.Users, "users", cfg.Users, "accounts to spread the connections over (the server's --max-connections-per-user must allow connections/users)")
	fs.IntVar(&cfg.DialConcurrency, "dial-concurrency", cfg.DialConcurrency, "connections opened at once per worker")
	fs.IntVar(&cfg.Editors, "editors", cfg.Editors, "canvas: editors")
	fs.IntVar(&cfg.Canvases, "canvases", cfg.Canvases, "canvas: canvases the editors are spread over")
	rate := fs.Float64("rate", 0, "canvas: updates/s per editor (default 5); fanout: messages/s (default 100)")
	fs.IntVar(&cfg.Subscribers, "subscribers", cfg.Subscribers, "fanout: subscribers")
	fs.Var(listFlag{&cfg.SubscriberURLs}, "subscriber-urls", "fanout: comma-separated base URLs of the nodes to spread the subscribers over (a cluster); empty: --url")
	fs.IntVar(&cfg.Publishers, "publisher-conns", 0, "fanout: connections the publisher spreads its rate over (0: rate/80, under the server's command limit)")
	fs.IntVar(&cfg.Conns, "conns", cfg.Conns, "idle: connections")
	fs.DurationVar(&cfg.Settle, "settle", cfg.Settle, "idle: wait after connecting before reading the server's metrics")
	fs.DurationVar(&cfg.WaitGC, "wait-gc", 0, "idle: before each reading, wait up to this long for the server's next garbage collection (130s: always one)")
	jsonPath := fs.String("json", "", "also write the JSON summary to this file")
	fs.Usage = func() {
		fmt.Fprint(stderr, loadtestUsage)
		fmt.Fprintln(stderr, "\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("loadtest: unexpected arguments %q", fs.Args())
	}
	cfg.Rate = *rate
	if cfg.Rate == 0 {
		cfg.Rate = map[string]float64{"canvas": 5, "fanout": 100}[cfg.Scenario]
	}
	cfg.Progress = stderr
	if cfg.Procs > 1 {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("loadtest: finding this program for the workers: %w", err)
		}
		cfg.Spawn = loadtest.Exec(exe, "loadtest", "worker")
	}
	sum, err := loadtest.Run(ctx, cfg)
	if err != nil {
		return fmt.Errorf("loadtest: %w", err)
	}
	if *jsonPath != "" {
		f, err := os.Create(*jsonPath)
		if err != nil {
			return err
		}
		if err := loadtest.WriteSummary(f, sum); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return loadtest.WriteSummary(stdout, sum)
}
