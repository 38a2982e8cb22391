// Package postgres is the store of mimids for a provider on several nodes:
// PostgreSQL through jackc/pgx (a pgxpool, used through database/sql), with numbered
// migrations embedded in the binary. It implements the same Store interfaces as
// sqlite/ and passes the same conformance suites.
//
// Several nodes share one database. Sequencing stays gapless because each append
// takes its partition's row lock (UPDATE … RETURNING) until it commits; a
// KeyPackage claim takes its rows with FOR UPDATE SKIP LOCKED; counters (mailbox
// seqs, federation envelope ids) are row updates in the same transaction as what
// they number. Writes that publish (Append, Terminate, mailbox, federation and copy
// appends) run their after function under an in-process lock per partition, client,
// peer or copy, so one node publishes its own commits of one key in commit order.
//
// What SQLite's store does with files has other equivalents here: the incarnation
// is minted once when the schema is created and kept (PostgreSQL's own WAL keeps
// committed writes; after restoring an older backup an operator mints a new one,
// Mint); there is no lock file (several nodes share a store by design) and no
// integrity check (PostgreSQL has data checksums and amcheck for that); Health
// probes a read and a commit.
package postgres

import (
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Options configure Open.
type Options struct {
	// MaxConns is the pool's size (default 16).
	MaxConns int32
}

// DB is an open store.
type DB struct {
	// Static after Open.
	pool    *sql.DB       // database/sql over pgx
	pgx     *pgxpool.Pool // the pool under it
	inc     Incarnation
	ord     ordering // appends, terminations, federation queues, copies
	mailOrd ordering // mailbox enqueues
	appends appendQueues

	health health
}

// Open connects to the database dsn names, applies pending migrations and reads
// the store's incarnation.
func Open(ctx context.Context, dsn string, opts Options) (_ *DB, err error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = 16
	}
	cfg.MaxConns = opts.MaxConns
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	db := &DB{pgx: p, pool: stdlib.OpenDBFromPool(p)}
	defer func() {
		if err != nil {
			db.Close()
		}
	}()
	if err := db.pool.PingContext(ctx); err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	if _, err := db.Migrate(ctx); err != nil {
		return nil, err
	}
	if err := db.readIncarnation(ctx); err != nil {
		return nil, err
	}
	return db, nil
}

// Close closes the pool.
func (db *DB) Close() error {
	err := db.pool.Close()
	db.pgx.Close()
	return err
}

// Path is the store's location for messages: the database name.
func (db *DB) Path() string {
	c := db.pgx.Config().ConnConfig
	return fmt.Sprintf("postgres://%s:%d/%s", c.Host, c.Port, c.Database)
}

// migrationLock is the advisory lock key that serializes migrations of nodes
// starting at once.
const migrationLock = 0x6d696d6964730001

// Migrate applies the pending migrations and returns their numbers. Nodes that
// start at once take turns (an advisory lock), so each migration runs once.
func (db *DB) Migrate(ctx context.Context) (applied []int, err error) {
	conn, err := db.pool.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: migrate: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, int64(migrationLock)); err != nil {
		return nil, fmt.Errorf("postgres: migrate: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(migrationLock))
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`); err != nil {
		return nil, fmt.Errorf("postgres: migrate: %w", err)
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	for _, name := range names {
		base := filepath.Base(name)
		v, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return applied, fmt.Errorf("postgres: migration %s: bad number", base)
		}
		var n int
		if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = $1`, v).Scan(&n); err != nil {
			return applied, fmt.Errorf("postgres: migrate: %w", err)
		}
		if n > 0 {
			continue
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			return applied, err
		}
		if err := applyMigration(ctx, conn, v, base, string(body)); err != nil {
			return applied, err
		}
		applied = append(applied, v)
	}
	return applied, nil
}

func applyMigration(ctx context.Context, conn *sql.Conn, v int, base, body string) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("postgres: migration %s: %w", base, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, body); err != nil {
		return fmt.Errorf("postgres: migration %s: %w", base, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
		v, base, time.Now().Unix()); err != nil {
		return fmt.Errorf("postgres: migration %s: %w", base, err)
	}
	if v == 1 {
		// The store's first incarnation.
		id := make([]byte, 16)
		rand.Read(id)
		if _, err := tx.ExecContext(ctx, `INSERT INTO store_meta (id, incarnation, minted_at, mint_reason) VALUES (1, $1, $2, 'created')`,
			id, time.Now().UnixMilli()); err != nil {
			return fmt.Errorf("postgres: migration %s: %w", base, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("postgres: migration %s: %w", base, err)
	}
	return nil
}

// SchemaVersion returns the highest applied migration.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := db.pool.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

// Ping checks that the store answers reads.
func (db *DB) Ping(ctx context.Context) error {
	var one int
	return db.pool.QueryRowContext(ctx, `SELECT 1`).Scan(&one)
}

// Tables lists the store's tables (schema_migrations included), in name order.
func (db *DB) Tables(ctx context.Context) ([]string, error) {
	rows, err := db.pool.QueryContext(ctx, `SELECT table_name FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name`)
	if err != nil {
		return nil, fmt.Errorf("postgres: tables: %w", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("postgres: tables: %w", err)
		}
		names = append(names, n)
	}
	return names, rows.Err()
}

// TotalRows counts the rows of every table of the store (the schema's bookkeeping
// included): what a flood must not make grow.
func (db *DB) TotalRows(ctx context.Context) (int64, error) {
	names, err := db.Tables(ctx)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, n := range names {
		var c int64
		if err := db.pool.QueryRowContext(ctx, `SELECT count(*) FROM "`+n+`"`).Scan(&c); err != nil {
			return 0, fmt.Errorf("postgres: count %s: %w", n, err)
		}
		total += c
	}
	return total, nil
}

// pgCode is err's SQLSTATE, or "".
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// isUnique reports a unique or primary key violation.
func isUnique(err error) bool { return pgCode(err) == "23505" }

func unixTime(v int64) time.Time { return time.UnixMilli(v).UTC() }

type scanner interface{ Scan(...any) error }
