// Package sqlite is the embedded store of mimids: SQLite through mattn/go-sqlite3 in
// WAL mode, with one writer connection whose transactions are group-committed, a pool
// of read-only connections, and numbered migrations embedded in the binary. It
// implements the Store interfaces that the domain packages declare.
//
// It also guards the store's history: every transaction raises a commit count that
// the server's mark file (beside the store) follows, so that a store that lost
// committed writes is given a new Incarnation at the next Open; the server holds a
// lock file; Open refuses to create a store over the remains of one (ErrRemains) and
// a store that fails its integrity check (ErrCorrupt); Health probes reads, commits
// and free space for readiness; Backup and Restore copy the store out and back.
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
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

	// Owner is set by the server: it holds the store's lock (LockPath) while open, so
	// that a second server on the same store fails with ErrInUse, and keeps the mark
	// file current. Other processes (admin commands) work beside a running server.
	Owner bool
	// IntegrityCheck is run on an existing store before it is used: IntegrityQuick,
	// IntegrityFull, or IntegrityOff (the default, "").
	IntegrityCheck string
	// ForceNew creates a new store even where a missing, empty or schema-less store
	// file sits beside the remains of an earlier one, which are set aside (renamed
	// *.set-aside-<time>) instead of refused with ErrRemains.
	ForceNew bool
	// MinFreeBytes, if positive, makes Health report the disk as down while the file
	// system holding the store has less free space.
	MinFreeBytes int64
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
	// Static after Open.
	path     string
	markPath string
	owner    bool
	minFree  int64
	w        *sql.DB // one connection; used only by the writer goroutine and Open
	r        *sql.DB // read-only pool
	inc      Incarnation
	mark     *marker    // the server's: keeps the mark file current (nil otherwise)
	lock     *storeLock // the server's: held until Close (nil otherwise)

	commits atomic.Uint64 // the count at Open plus this process's commits: at most the stored count
	health  health

	writes   chan *writeReq
	maxBatch int
	stop     chan struct{}
	stopped  chan struct{}
	closeMu  sync.Once
}

// Open opens (creating if needed) the store at path, checks it (Options), applies
// pending migrations, reconciles it with its mark file (Incarnation) and starts the
// writer.
func Open(ctx context.Context, path string, opts Options) (*DB, error) {
	return open(ctx, path, opts, "", nil)
}

// open is Open; restored names the file the store was just restored from, and
// lock is the lock Restore already holds.
func open(ctx context.Context, path string, opts Options, restored string, lock *storeLock) (_ *DB, err error) {
	opts.defaults()
	sync := strings.ToUpper(opts.Synchronous)
	if sync != "FULL" && sync != "NORMAL" {
		return nil, fmt.Errorf("sqlite: synchronous must be full or normal, not %q", opts.Synchronous)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	// Without the lock (a server holds it), an admin command leaves the checks to
	// the server, which made them when it started.
	checks := true
	if lock == nil {
		var busy bool
		if lock, busy, err = lockStore(path, opts.Owner); err != nil {
			return nil, err
		}
		checks = !busy
	}
	defer func() {
		if err != nil || !opts.Owner {
			lock.release()
		}
	}()
	var remains []string
	if checks {
		if _, remains, err = preflight(path, opts.ForceNew); err != nil {
			return nil, err
		}
	}
	if err := checkHeader(path); err != nil {
		return nil, err
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
	db := &DB{path: path, markPath: MarkPath(path), owner: opts.Owner, minFree: opts.MinFreeBytes, w: w,
		maxBatch: opts.MaxBatch, writes: make(chan *writeReq, 4096), stop: make(chan struct{}), stopped: make(chan struct{})}
	defer func() {
		if err != nil {
			db.closeConns()
		}
	}()
	if err := w.PingContext(ctx); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, classify(err))
	}
	if err := db.prepare(ctx, opts, checks, remains, restored); err != nil {
		return nil, err
	}
	q.Set("mode", "ro")
	q.Del("_txlock")
	if db.r, err = sql.Open("sqlite3", "file:"+path+"?"+q.Encode()); err != nil {
		return nil, fmt.Errorf("sqlite: open readers: %w", err)
	}
	db.r.SetMaxOpenConns(opts.Readers)
	db.r.SetMaxIdleConns(opts.Readers)
	if opts.Owner {
		if db.mark, err = newMarker(db.markPath, Mark{Incarnation: db.inc.ID, Commits: db.inc.Commits}); err != nil {
			return nil, err
		}
		db.lock = lock
	}
	db.commits.Store(db.inc.Commits)
	go db.writer()
	return db, nil
}

// prepare checks the store, migrates it and reconciles it with its mark, on the
// writer connection, before anything else uses the store.
func (db *DB) prepare(ctx context.Context, opts Options, checks bool, remains []string, restored string) error {
	has, err := db.hasSchema(ctx)
	if err != nil {
		return err
	}
	if !has && checks && len(remains) > 0 {
		// A non-empty file without the schema, beside a mark or a WAL of a store that
		// had one: its data is gone from the file, not necessarily from the world.
		if !opts.ForceNew {
			return fmt.Errorf("%w: %s holds no store, but its data directory still holds %s: the store's data is not in the file any more",
				ErrRemains, db.path, strings.Join(remains, ", "))
		}
		if _, err := os.Lstat(db.markPath); err == nil {
			if err := setAside([]string{db.markPath}); err != nil {
				return err
			}
		}
	}
	if has && checks {
		if err := db.checkIntegrity(ctx, opts.IntegrityCheck); err != nil {
			return err
		}
	}
	applied, err := db.migrate(ctx)
	if err != nil {
		return err
	}
	return db.reconcile(ctx, openState{created: !has, metaAdded: slices.Contains(applied, 9), restored: restored, reconcile: checks})
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
	switch {
	case err == nil:
		return nil
	case strings.Contains(err.Error(), "file is not a database"):
		return fmt.Errorf("%w: %v", ErrNotDatabase, err)
	case strings.Contains(err.Error(), "malformed"):
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return err
}

// Path returns the database file's path.
func (db *DB) Path() string { return db.path }

// Close stops the writer after the queued writes, brings the mark file up to date
// and closes every connection.
func (db *DB) Close() error {
	var err error
	db.closeMu.Do(func() {
		close(db.stop)
		<-db.stopped
		if db.mark != nil {
			err = db.mark.close()
		}
		err = errors.Join(err, db.closeConns())
		db.lock.release()
	})
	return err
}

func (db *DB) closeConns() error {
	var errs []error
	if db.r != nil {
		errs = append(errs, db.r.Close())
	}
	return errors.Join(append(errs, db.w.Close())...)
}

// migrate applies the pending migrations and returns their numbers.
func (db *DB) migrate(ctx context.Context) (applied []int, _ error) {
	if _, err := db.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`); err != nil {
		return nil, fmt.Errorf("sqlite: migrate: %w", classify(err))
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
			return applied, fmt.Errorf("sqlite: migration %s: bad number", base)
		}
		var n int
		if err := db.w.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, v).Scan(&n); err != nil {
			return applied, fmt.Errorf("sqlite: migrate: %w", classify(err))
		}
		if n > 0 {
			continue
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			return applied, err
		}
		tx, err := db.w.BeginTx(ctx, nil)
		if err != nil {
			return applied, fmt.Errorf("sqlite: migration %s: %w", base, classify(err))
		}
		if _, err := tx.ExecContext(ctx, string(body)); err != nil {
			tx.Rollback()
			return applied, fmt.Errorf("sqlite: migration %s: %w", base, classify(err))
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
			v, base, time.Now().Unix()); err != nil {
			tx.Rollback()
			return applied, fmt.Errorf("sqlite: migration %s: %w", base, classify(err))
		}
		if err := tx.Commit(); err != nil {
			return applied, fmt.Errorf("sqlite: migration %s: %w", base, classify(err))
		}
		applied = append(applied, v)
	}
	return applied, nil
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

// TotalRows counts the rows of every table of the store (the schema's bookkeeping
// included): what a flood must not make grow.
func (db *DB) TotalRows(ctx context.Context) (int64, error) {
	var total int64
	err := db.Write(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`)
		if err != nil {
			return err
		}
		var names []string
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				rows.Close()
				return err
			}
			names = append(names, n)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, n := range names {
			var c int64
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM "`+n+`"`).Scan(&c); err != nil {
				return err
			}
			total += c
		}
		return nil
	})
	return total, err
}
