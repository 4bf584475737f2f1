package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/google/uuid"

	"github.com/tone-ai/tone/domain/postgres"
)

// errAuditTampered is returned by `tone audit verify` when a chain is
// broken, so that the command exits non-zero.
var errAuditTampered = errors.New("audit: the audit log was tampered with")

// audit runs `tone audit verify`: it checks every audit chain (or those of
// the workspaces given with --workspace) with the table owner's
// connection, prints a line per chain (or JSON with --json) and fails if
// any chain is broken.
func audit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var dbURL, migrateURL, workspace string
	var asJSON bool
	fs.StringVar(&dbURL, "database-url", "", "PostgreSQL URL (used when --migrate-database-url is empty)")
	fs.StringVar(&migrateURL, "migrate-database-url", "", "PostgreSQL URL of the table owner, which reads every workspace's events")
	fs.StringVar(&workspace, "workspace", "", "check only this workspace's chain (a UUID); empty means every chain")
	fs.BoolVar(&asJSON, "json", false, "print the reports as JSON, one object a line")
	fs.Usage = usage(fs, stderr, "tone audit [flags] verify")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := applyEnv(fs); err != nil {
		return err
	}
	if fs.NArg() != 1 || fs.Arg(0) != "verify" {
		fs.Usage()
		return errors.New("audit: want verify")
	}
	if migrateURL == "" {
		migrateURL = dbURL
	}
	if migrateURL == "" {
		return errors.New("audit: set --migrate-database-url or --database-url (TONE_MIGRATE_DATABASE_URL, TONE_DATABASE_URL)")
	}
	var chains []uuid.UUID
	if workspace != "" {
		id, err := uuid.Parse(workspace)
		if err != nil {
			return fmt.Errorf("audit: --workspace %q is not a UUID", workspace)
		}
		chains = append(chains, id)
	}
	pool, err := postgres.Open(ctx, migrateURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if enforced, err := postgres.RowSecurityEnforced(ctx, pool); err != nil {
		return err
	} else if enforced {
		return errors.New("audit: verify needs the table owner's connection (--migrate-database-url): row-level security hides other workspaces' events")
	}
	reports, err := postgres.VerifyAuditChains(ctx, pool, chains)
	if err != nil {
		return err
	}
	broken := 0
	enc := json.NewEncoder(stdout)
	for _, r := range reports {
		if !r.OK {
			broken++
		}
		if asJSON {
			if err := enc.Encode(r); err != nil {
				return err
			}
			continue
		}
		status := "ok"
		if !r.OK {
			status = fmt.Sprintf("BROKEN (%d problems)", len(r.Problems))
		}
		fmt.Fprintf(stdout, "chain %s: %d events, head %d: %s\n", r.Chain, r.Events, r.HeadSeq, status)
		for _, p := range r.Problems {
			fmt.Fprintf(stdout, "  seq %d %s: %s\n", p.Seq, p.Kind, p.Message)
		}
	}
	if !asJSON {
		fmt.Fprintf(stdout, "%d chains checked, %d broken\n", len(reports), broken)
	}
	if broken > 0 {
		return errAuditTampered
	}
	return nil
}
