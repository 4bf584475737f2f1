package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/tone-ai/tone/migrations"
)

func migrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var dbURL, migrateURL string
	fs.StringVar(&dbURL, "database-url", "", "PostgreSQL URL (used when --migrate-database-url is empty)")
	fs.StringVar(&migrateURL, "migrate-database-url", "", "PostgreSQL URL of the table owner, for migrations")
	fs.Usage = usage(fs, stderr, "tone migrate [flags] up|down|status")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := applyEnv(fs); err != nil {
		return err
	}
	if migrateURL == "" {
		migrateURL = dbURL
	}
	if migrateURL == "" {
		return errors.New("migrate: set --migrate-database-url or --database-url (TONE_MIGRATE_DATABASE_URL, TONE_DATABASE_URL)")
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("migrate: want exactly one of up, down, status")
	}
	db, err := migrations.Open(migrateURL)
	if err != nil {
		return err
	}
	defer db.Close()
	switch fs.Arg(0) {
	case "up":
		if err := migrations.Up(ctx, db); err != nil {
			return err
		}
	case "down":
		if err := migrations.Down(ctx, db); err != nil {
			return err
		}
	case "status":
		return migrations.Status(ctx, db, stdout)
	default:
		return fmt.Errorf("migrate: unknown action %q (want up, down or status)", fs.Arg(0))
	}
	cur, latest, err := migrations.Version(ctx, db)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "schema version %d (latest %d)\n", cur, latest)
	return nil
}
