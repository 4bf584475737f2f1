// Command tone is the Tone server.
//
//	tone serve       run the server (in-memory by default; PostgreSQL with --database-url)
//	tone migrate     apply, roll back or show database migrations (up | down | status)
//	tone loadtest    load-test a realtime server on this machine (canvas | fanout | idle)
//	tone audit       verify the audit log's hash chains (verify)
//	tone version     print the version
//
// Every flag has an environment twin: --database-url is TONE_DATABASE_URL.
// `tone <command> --help` lists them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	_ "time/tzdata" // time zone names validate without the host's zoneinfo
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "tone:", err)
		}
		os.Exit(2)
	}
}

const topUsage = `usage: tone <command> [flags]

Commands:
  serve     run the server
  migrate   up | down | status: manage the PostgreSQL schema
  loadtest  canvas | fanout | idle: load-test a server on this machine
  audit     verify: check the audit log's hash chains for tampering
  version   print the version

Run 'tone <command> --help' for the flags of a command.
`

// run runs the command line args until ctx is done or the command ends.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, topUsage)
		return errors.New("no command given")
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		return serve(ctx, rest, stdout, stderr, nil)
	case "migrate":
		return migrate(ctx, rest, stdout, stderr)
	case "loadtest":
		return runLoadtest(ctx, rest, stdout, stderr)
	case "audit":
		return audit(ctx, rest, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "tone", buildVersion())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, topUsage)
		return nil
	default:
		fmt.Fprint(stderr, topUsage)
		return fmt.Errorf("unknown command %q", cmd)
	}
}

// buildVersion returns the version set at link time, else the module
// version or VCS revision recorded by the Go toolchain.
func buildVersion() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" {
			return "devel-" + s.Value
		}
	}
	return "devel"
}
