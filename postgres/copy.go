package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// copyOrder is every table of the schema that CopyFrom fills, parents before the
// tables that refer to them.
var copyOrder = []string{
	"users", "clients", "admin_tokens", "admin_passwords", "admin_audit", "mailbox", "change_log",
	"key_packages", "served_key_packages", "key_package_low",
	"hub_groups", "hub_partitions", "hub_log", "hub_welcomes", "hub_bans", "hub_reports",
	"ohttp_keys",
	"discovery_secrets", "discovery_shared_token", "discovery_revoked_tokens", "discovery_token_cutoffs",
	"federation_peers", "federation_outbound", "federation_inbox_streams", "federation_inbox", "federation_peer_status",
	"follower_groups", "follower_partitions", "follower_client_hubs", "follower_copies", "follower_copy_log",
	"hub_push_subs",
}

// copySkipped are the tables CopyFrom does not copy row by row: the schema's
// bookkeeping (each store numbers its own migrations), the probe's row, the
// incarnation (copied as one value) and the KeyPackage counts (the trigger on
// key_packages makes them as the KeyPackages are copied), and the link leases
// (held by running nodes only: a copy is made with the server stopped).
var copySkipped = []string{"schema_migrations", "store_probe", "store_meta", "key_package_counts", "federation_leases"}

// ErrNotEmpty reports a copy into a store that holds data already.
var ErrNotEmpty = errors.New("postgres: the destination store is not empty")

// CopyStats counts the rows CopyFrom copied, per table.
type CopyStats map[string]int64

// CopyFrom copies every table of an SQLite store (src, a database/sql handle on
// its file, at the same schema as this package's migrations) into this store,
// which must be empty, in one transaction, and gives it src's incarnation: the
// copy holds the same history, so clients keep their marks. Identity columns go on
// from the highest id src ever gave, so ids are never reused.
func (db *DB) CopyFrom(ctx context.Context, src *sql.DB) (CopyStats, error) {
	if err := db.checkEmpty(ctx); err != nil {
		return nil, err
	}
	stats := CopyStats{}
	conn, err := db.pgx.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: copy: %w", err)
	}
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: copy: %w", err)
	}
	defer tx.Rollback(ctx)
	for _, table := range copyOrder {
		cols, err := columnsOf(ctx, tx, table)
		if err != nil {
			return nil, fmt.Errorf("postgres: copy %s: %w", table, err)
		}
		n, err := copyTable(ctx, src, tx, table, cols)
		if err != nil {
			return nil, fmt.Errorf("postgres: copy %s: %w", table, err)
		}
		stats[table] = n
		if !slices.ContainsFunc(cols, func(c column) bool { return c.name == "id" }) {
			continue
		}
		if err := bumpIdentity(ctx, src, tx, table); err != nil {
			return nil, fmt.Errorf("postgres: copy %s: %w", table, err)
		}
	}
	var inc []byte
	var minted int64
	var reason string
	if err := src.QueryRowContext(ctx, `SELECT incarnation, minted_at, mint_reason FROM store_meta WHERE id = 1`).
		Scan(&inc, &minted, &reason); err != nil {
		return nil, fmt.Errorf("postgres: copy store_meta: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE store_meta SET incarnation = $1, minted_at = $2, mint_reason = $3 WHERE id = 1`,
		inc, minted, reason); err != nil {
		return nil, fmt.Errorf("postgres: copy store_meta: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("postgres: copy: %w", err)
	}
	db.inc.ID = inc
	return stats, nil
}

// checkEmpty refuses a store holding anything beyond its bookkeeping.
func (db *DB) checkEmpty(ctx context.Context) error {
	for _, t := range copyOrder {
		var any bool
		if err := db.pool.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM "`+t+`")`).Scan(&any); err != nil {
			return fmt.Errorf("postgres: copy: %w", err)
		}
		if any {
			return fmt.Errorf("%w: table %s has rows", ErrNotEmpty, t)
		}
	}
	return nil
}

// column is one column of a destination table.
type column struct{ name, typ string }

func columnsOf(ctx context.Context, tx pgx.Tx, table string) ([]column, error) {
	rows, err := tx.Query(ctx, `SELECT column_name, data_type FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position`, table)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (column, error) {
		var c column
		err := r.Scan(&c.name, &c.typ)
		return c, err
	})
}

// copyTable streams src's rows of table into it with COPY.
func copyTable(ctx context.Context, src *sql.DB, tx pgx.Tx, table string, cols []column) (int64, error) {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.name
	}
	order := ""
	if slices.Contains(names, "id") {
		order = " ORDER BY id" // hub_partitions refer to earlier rows
	}
	rows, err := src.QueryContext(ctx, `SELECT "`+strings.Join(names, `", "`)+`" FROM "`+table+`"`+order)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	return tx.CopyFrom(ctx, pgx.Identifier{table}, names, &sqliteRows{rows: rows, cols: cols})
}

// sqliteRows is a pgx.CopyFromSource over SQLite rows, converting SQLite's
// integers to booleans and its text to bytes where the destination wants them.
type sqliteRows struct {
	rows *sql.Rows
	cols []column
}

func (s *sqliteRows) Next() bool { return s.rows.Next() }

func (s *sqliteRows) Values() ([]any, error) {
	vals := make([]any, len(s.cols))
	ptrs := make([]any, len(s.cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := s.rows.Scan(ptrs...); err != nil {
		return nil, err
	}
	for i, c := range s.cols {
		switch v := vals[i].(type) {
		case int64:
			if c.typ == "boolean" {
				vals[i] = v != 0
			}
		case string:
			if c.typ == "bytea" {
				vals[i] = []byte(v)
			}
		case []byte:
			if c.typ == "text" {
				vals[i] = string(v)
			}
		}
	}
	return vals, nil
}

func (s *sqliteRows) Err() error { return s.rows.Err() }

// bumpIdentity moves table's id sequence (if its id is an identity) past the highest id src
// gave, including deleted rows' (sqlite_sequence).
func bumpIdentity(ctx context.Context, src *sql.DB, tx pgx.Tx, table string) error {
	var seq *string
	if err := tx.QueryRow(ctx, `SELECT pg_get_serial_sequence($1, 'id')`, table).Scan(&seq); err != nil || seq == nil {
		return err // nil when id is no identity
	}
	var high sql.NullInt64
	if err := src.QueryRowContext(ctx, `SELECT MAX(v) FROM (SELECT MAX(id) AS v FROM "`+table+`"
		UNION ALL SELECT seq FROM sqlite_sequence WHERE name = ?)`, table).Scan(&high); err != nil {
		return err
	}
	if !high.Valid || high.Int64 < 1 {
		return nil
	}
	_, err := tx.Exec(ctx, `SELECT setval($1, $2)`, *seq, high.Int64)
	return err
}
