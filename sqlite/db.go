// Package sqlite is the embedded store of mimids: SQLite through mattn/go-sqlite3 in
// WAL mode, with one writer connection whose transactions are group-committed, a pool
// of read-only connections, and numbered migrations embedded in the binary. It
// implements the Store interfaces that the domain packages declare.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "github.com/mattn/go-sqlite3" // registers the "sqlite3" driver
)

//go:embed migrations/*.sql
var migrations embed.FS

// Options configure Open.
type Options struct {
	// Synchronous is SQLite's synchronous pragma: "full" (default: a commit survives
	// power loss) or "normal" (a commit survives a process crash).
	Synchronous string
	// Readers is the size of the read-only connection pool (default 4).
	Readers int
	// MaxBatch caps how many queued write functions share one transaction (default 512).
	MaxBatch int
	// BusyTimeout is how long a connection waits for a lock held by another process.
	BusyTimeout time.Duration
}

func (o *Options) defaults() {
	if o.Synchronous == "" {
		o.Synchronous = "full"
	}
	if o.Readers <= 0 {
		o.Readers = 4
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 512
	}
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = 5 * time.Second
	}
}

// ErrNotDatabase reports a store file that is not an SQLite database.
var ErrNotDatabase = errors.New("sqlite: file is not an SQLite database")

// DB is an open store.
type DB struct {
	path string
	w    *sql.DB // one connection; used only by the writer goroutine and migrations
	r    *sql.DB // read-only pool

	writes   chan *writeReq
	maxBatch int
	stop     chan struct{}
	stopped  chan struct{}
	closeMu  sync.Once
}

// Open opens (creating if needed) the store at path, applies pending migrations and
// starts the writer.
func Open(ctx context.Context, path string, opts Options) (*DB, error) {
	opts.defaults()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := checkHeader(path); err != nil {
		return nil, err
	}
	sync := strings.ToUpper(opts.Synchronous)
	if sync != "FULL" && sync != "NORMAL" {
		return nil, fmt.Errorf("sqlite: synchronous must be full or normal, not %q", opts.Synchronous)
	}
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_busy_timeout", strconv.Itoa(int(opts.BusyTimeout/time.Millisecond)))
	q.Set("_foreign_keys", "on")
	q.Set("_synchronous", sync)
	q.Set("_txlock", "immediate")
	// Reuse prepared statements (savepoints, the hot queries) on each connection.
	q.Set("_stmt_cache_size", "256")
	w, err := sql.Open("sqlite3", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, classify(err))
	}
	db := &DB{path: path, w: w, maxBatch: opts.MaxBatch, writes: make(chan *writeReq, 4096),
		stop: make(chan struct{}), stopped: make(chan struct{})}
	if err := db.migrate(ctx); err != nil {
		w.Close()
		return nil, err
	}
	q.Set("mode", "ro")
	q.Del("_txlock")
	r, err := sql.Open("sqlite3", "file:"+path+"?"+q.Encode())
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open readers: %w", err)
	}
	r.SetMaxOpenConns(opts.Readers)
	r.SetMaxIdleConns(opts.Readers)
	db.r = r
	go db.writer()
	return db, nil
}

// checkHeader refuses an existing, non-empty file that does not start with the SQLite
// magic, before the driver touches it.
func checkHeader(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	defer f.Close()
	buf := make([]byte, 16)
	n, _ := f.Read(buf)
	if n == 0 {
		return nil
	}
	if string(buf[:n]) != "SQLite format 3\x00" {
		return fmt.Errorf("%w: %s", ErrNotDatabase, path)
	}
	return nil
}

func classify(err error) error {
	if err != nil && strings.Contains(err.Error(), "file is not a database") {
		return fmt.Errorf("%w: %v", ErrNotDatabase, err)
	}
	return err
}

// Path returns the database file's path.
func (db *DB) Path() string { return db.path }

// Close stops the writer after the queued writes and closes every connection.
func (db *DB) Close() error {
	var err error
	db.closeMu.Do(func() {
		close(db.stop)
		<-db.stopped
		err = errors.Join(db.r.Close(), db.w.Close())
	})
	return err
}

func (db *DB) migrate(ctx context.Context) error {
	if _, err := db.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", classify(err))
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		base := filepath.Base(name)
		v, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("sqlite: migration %s: bad number", base)
		}
		var n int
		if err := db.w.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, v).Scan(&n); err != nil {
			return fmt.Errorf("sqlite: migrate: %w", err)
		}
		if n > 0 {
			continue
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			return err
		}
		tx, err := db.w.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("sqlite: migration %s: %w", base, err)
		}
		if _, err := tx.ExecContext(ctx, string(body)); err != nil {
			tx.Rollback()
			return fmt.Errorf("sqlite: migration %s: %w", base, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
			v, base, time.Now().Unix()); err != nil {
			tx.Rollback()
			return fmt.Errorf("sqlite: migration %s: %w", base, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("sqlite: migration %s: %w", base, err)
		}
	}
	return nil
}

// SchemaVersion returns the highest applied migration.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := db.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

// Ping checks that the store answers reads.
func (db *DB) Ping(ctx context.Context) error {
	var one int
	return db.r.QueryRowContext(ctx, `SELECT 1`).Scan(&one)
}
