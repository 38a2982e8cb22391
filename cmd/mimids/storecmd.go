package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"time"

	"github.com/mimids/mimids/cmd/internal/usage"
	"github.com/mimids/mimids/cmd/provider"
	"github.com/mimids/mimids/sqlite"
)

var storeGroup = group{name: "store", summary: "Inspects, checks, backs up and restores the store.", verbs: []verb{
	{Help: usage.Help{Name: "store status", Summary: "Prints the store's incarnation, its commit count and its mark file's.",
		Example: "store status -data ./data"},
		setup: noFlags(storeStatus)},
	{Help: usage.Help{Name: "store check", Summary: "Runs SQLite's integrity check on the store and prints ok or what it found.",
		Example: "store check -data ./data -full"},
		setup: storeCheck},
	{Help: usage.Help{Name: "store backup", Args: "FILE", Summary: "Writes a consistent copy of the store to FILE, a new file, while the server runs.",
		Example: "store backup -data ./data /var/backups/mimids.db"},
		min: 1, max: 1, setup: noFlags(storeBackup)},
	{Help: usage.Help{Name: "store restore", Args: "FILE", Summary: "Replaces the store with the backup FILE and gives it a new incarnation (the server must be stopped).",
		Example: "store restore -data ./data /var/backups/mimids.db",
		Details: "The current store files are renamed *.pre-restore-<time>, not deleted. Clients see the new\n" +
			"incarnation in auth_ok and start their marks over (docs/protocol.md §1.3)."},
		min: 1, max: 1, ownStore: true, setup: noFlags(storeRestore)},
	storeCopyVerb,
	storeMintVerb,
}}

// sqliteOnly is the SQLite store of e, or an error naming verb for another driver.
func sqliteOnly(e env, verb string) (*sqlite.DB, error) {
	db, ok := provider.SQLite(e.db)
	if !ok {
		return nil, fmt.Errorf("store %s works on the sqlite store only; on %s use the database's own tools (pg_dump, pg_restore, amcheck)",
			verb, e.db.Driver())
	}
	return db, nil
}

func storeStatus(ctx context.Context, e env, _ []string) error {
	db, ok := provider.SQLite(e.db)
	if !ok {
		v, err := e.db.SchemaVersion(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.out, "store:        %s (%s, schema %d)\n", e.db.Path(), e.db.Driver(), v)
		fmt.Fprintf(e.out, "incarnation:  %x\n", e.db.IncarnationID())
		return nil
	}
	m, err := db.Meta(ctx)
	if err != nil {
		return err
	}
	v, err := db.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	served, err := sqlite.Served(db.Path())
	if err != nil {
		return err
	}
	fmt.Fprintf(e.out, "store:        %s (schema %d)\n", e.db.Path(), v)
	fmt.Fprintf(e.out, "incarnation:  %x (since %s: %s)\n", m.Incarnation, m.MintedAt.UTC().Format(time.RFC3339), m.MintReason)
	fmt.Fprintf(e.out, "commits:      %d\n", m.Commits)
	mark, err := sqlite.ReadMark(sqlite.MarkPath(db.Path()))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		fmt.Fprintln(e.out, "mark:         none")
	case err != nil:
		fmt.Fprintf(e.out, "mark:         %v\n", err)
	default:
		same := "same incarnation"
		if !bytes.Equal(mark.Incarnation, m.Incarnation) {
			same = fmt.Sprintf("OTHER incarnation %x", mark.Incarnation)
		}
		fmt.Fprintf(e.out, "mark:         %d commits, %s\n", mark.Commits, same)
	}
	fmt.Fprintf(e.out, "server:       %s\n", map[bool]string{true: "running", false: "not running"}[served])
	return nil
}

func storeCheck(fs *flag.FlagSet) action {
	full := fs.Bool("full", false, "PRAGMA integrity_check (also checks indexes against tables) instead of quick_check")
	return func(ctx context.Context, e env, _ []string) error {
		mode := sqlite.IntegrityQuick
		if *full {
			mode = sqlite.IntegrityFull
		}
		db, err := sqliteOnly(e, "check")
		if err != nil {
			return err
		}
		if err := db.Check(ctx, mode); err != nil {
			return err
		}
		fmt.Fprintf(e.out, "ok (%s check)\n", mode)
		return nil
	}
}

func storeBackup(ctx context.Context, e env, a []string) error {
	db, err := sqliteOnly(e, "backup")
	if err != nil {
		return err
	}
	if err := db.Backup(ctx, a[0]); err != nil {
		return err
	}
	m, err := db.Meta(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.out, "backed up %s to %s (incarnation %x, %d commits)\n", e.db.Path(), a[0], m.Incarnation, m.Commits)
	return nil
}

func storeRestore(ctx context.Context, e env, a []string) error {
	if e.cfg.Store.Driver != provider.DriverSQLite {
		return fmt.Errorf("store restore works on the sqlite store only; on %s use pg_restore", e.cfg.Store.Driver)
	}
	db, err := sqlite.Restore(ctx, e.cfg.StorePath(), a[0], sqlite.Options{Synchronous: e.cfg.Store.Synchronous})
	if err != nil {
		return err
	}
	inc := db.Incarnation()
	if err := db.Close(); err != nil {
		return err
	}
	fmt.Fprintf(e.out, "restored %s from %s\nnew incarnation: %x (clients start their marks over)\n", e.cfg.StorePath(), a[0], inc.ID)
	return nil
}
