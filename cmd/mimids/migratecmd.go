package main

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strings"

	"github.com/mimids/mimids/cmd/internal/usage"
	"github.com/mimids/mimids/cmd/provider"
)

// migrateVerb applies the pending migrations of the configured store: opening a
// store migrates it, so this is what an operator runs before starting the nodes of
// a new version (they would migrate at start, too, one at a time).
var migrateVerb = verb{Help: usage.Help{Name: "migrate", Summary: "Applies the store's pending migrations (sqlite or postgres, as configured) and prints its schema version.",
	Example: "migrate -config mimids.json"},
	setup: noFlags(func(ctx context.Context, e env, _ []string) error {
		v, err := e.db.SchemaVersion(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.out, "%s store %s at schema %d\n", e.db.Driver(), e.db.Path(), v)
		return nil
	})}

// storeCopyVerb moves a provider from its SQLite store to PostgreSQL.
var storeCopyVerb = verb{Help: usage.Help{Name: "store copy", Summary: "Copies every table of the sqlite store into an empty postgres database (the server must be stopped).",
	Example: "store copy -data ./data -from sqlite -to postgres -dsn postgres://mimids@db.internal/mimids",
	Details: "-dsn defaults to the configuration's store.dsn. The copy keeps the store's incarnation, so clients\n" +
		"keep their marks. Then set store.driver to postgres and start the nodes."},
	ownStore: true, setup: storeCopy}

func storeCopy(fs *flag.FlagSet) action {
	from := fs.String("from", provider.DriverSQLite, "source store driver (sqlite)")
	to := fs.String("to", provider.DriverPostgres, "destination store driver (postgres)")
	dsn := fs.String("dsn", "", "destination PostgreSQL `DSN` (default: store.dsn)")
	return func(ctx context.Context, e env, _ []string) error {
		if *from != provider.DriverSQLite || *to != provider.DriverPostgres {
			return fmt.Errorf("store copy copies -from sqlite -to postgres only, not -from %s -to %s", *from, *to)
		}
		d := *dsn
		if d == "" {
			d = e.cfg.Store.DSN
		}
		if d == "" {
			return fmt.Errorf("store copy: no destination: give -dsn or set store.dsn")
		}
		st, err := provider.CopySQLiteToPostgres(ctx, e.cfg, d)
		if err != nil {
			return err
		}
		tables := make([]string, 0, len(st))
		var rows int64
		for t, n := range st {
			tables = append(tables, t)
			rows += n
		}
		slices.Sort(tables)
		var parts []string
		for _, t := range tables {
			if st[t] > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", t, st[t]))
			}
		}
		fmt.Fprintf(e.out, "copied %d rows of %d tables from %s: %s\n", rows, len(tables), e.cfg.StorePath(), strings.Join(parts, ", "))
		return nil
	}
}

// storeMintVerb gives a PostgreSQL store a new incarnation: what `store restore`
// does on SQLite, for an operator who restored an older backup with the database's
// own tools.
var storeMintVerb = verb{Help: usage.Help{Name: "store mint", Summary: "Gives the postgres store a new incarnation after a restore of an older backup (stop every node first).",
	Example: "store mint -config mimids.json -reason 'restored the 02:00 backup'",
	Details: "Clients see the new incarnation in auth_ok and start their marks over (docs/protocol.md §1.3)."},
	setup: storeMint}

func storeMint(fs *flag.FlagSet) action {
	reason := fs.String("reason", "restored from a backup", "why, recorded with the incarnation")
	return func(ctx context.Context, e env, _ []string) error {
		db, ok := provider.Postgres(e.db)
		if !ok {
			return fmt.Errorf("store mint works on the postgres store; on sqlite, store restore mints")
		}
		inc, err := db.Mint(ctx, *reason)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.out, "new incarnation: %x (clients start their marks over)\n", inc.ID)
		return nil
	}
}
