package sqlite

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"
)

var (
	// ErrInUse reports a store that another server holds.
	ErrInUse = errors.New("sqlite: store in use by another server")
	// ErrRemains reports a store file that is missing or empty, or has no schema,
	// beside the remains of an earlier store (its WAL, shared-memory index, journal or
	// mark file): creating a new store there would discard what they may still hold.
	ErrRemains = errors.New("sqlite: refusing to create a new store over the remains of an earlier one")
	// ErrCorrupt reports a store that fails its integrity check or that SQLite finds
	// malformed.
	ErrCorrupt = errors.New("sqlite: store is damaged")
)

// lockWait is how long a server waits for the data directory's lock, which an
// admin command holds for a moment while it checks the store.
var lockWait = time.Second

// LockPath is the lock file of the store at path: the server holds it exclusively
// while it runs; admin commands take it shared for the moment they check the store.
func LockPath(path string) string { return path + ".lock" }

// storeLock is a held lock on LockPath.
type storeLock struct{ f *os.File }

// lockStore takes the store's lock. exclusive (the server) waits up to lockWait and
// fails with ErrInUse; shared (an admin command) does not wait: busy reports that a
// server holds the store.
func lockStore(path string, exclusive bool) (l *storeLock, busy bool, err error) {
	f, err := os.OpenFile(LockPath(path), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("sqlite: lock: %w", err)
	}
	deadline := time.Now().Add(lockWait)
	for {
		busy, err := flock(f, exclusive)
		if err != nil {
			f.Close()
			return nil, false, fmt.Errorf("sqlite: lock %s: %w", LockPath(path), err)
		}
		if !busy {
			break
		}
		if !exclusive {
			f.Close()
			return nil, true, nil
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(LockPath(path))
			f.Close()
			return nil, true, fmt.Errorf("%w: %s is held by process %s (is another mimids serve running on this data directory?)",
				ErrInUse, LockPath(path), strings.TrimSpace(string(b)))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if exclusive {
		f.Truncate(0)
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &storeLock{f: f}, false, nil
}

func (l *storeLock) release() {
	if l != nil {
		l.f.Close()
	}
}

// remainsOf lists the files an earlier store at path left beside it: its WAL,
// shared-memory index, rollback journal and mark. (The lock file is not one: it
// holds no data.)
func remainsOf(path string) []string {
	var out []string
	for _, p := range []string{path + "-wal", path + "-shm", path + "-journal", MarkPath(path)} {
		if _, err := os.Lstat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// preflight refuses to let SQLite create a store where one was: opening a missing or
// empty database file deletes the WAL beside it. With force, the remains are set
// aside (renamed, not deleted) and a new store is created.
func preflight(path string, force bool) (empty bool, remains []string, err error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		empty = true
	case err != nil:
		return false, nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	default:
		empty = fi.Size() == 0
	}
	remains = remainsOf(path)
	if !empty || len(remains) == 0 {
		return empty, remains, nil
	}
	if !force {
		what := "missing"
		if err == nil {
			what = "empty (0 bytes)"
		}
		return empty, remains, fmt.Errorf("%w: %s is %s, but its data directory still holds %s, which may hold the store's data",
			ErrRemains, path, what, strings.Join(remains, ", "))
	}
	return empty, nil, setAside(remains)
}

// setAside renames files to <name>.set-aside-<unix seconds>.
func setAside(files []string) error {
	suffix := ".set-aside-" + strconv.FormatInt(time.Now().Unix(), 10)
	for _, p := range files {
		if err := os.Rename(p, p+suffix); err != nil {
			return fmt.Errorf("sqlite: set aside %s: %w", p, err)
		}
	}
	return nil
}

// hasSchema reports whether the store holds this package's schema.
func (db *DB) hasSchema(ctx context.Context) (bool, error) {
	var n int
	err := db.w.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("sqlite: open %s: %w", db.path, classify(err))
	}
	return n > 0, nil
}

// Integrity checks of Options.IntegrityCheck.
const (
	IntegrityOff   = "off"
	IntegrityQuick = "quick" // PRAGMA quick_check: structure, in time linear in the store's size
	IntegrityFull  = "full"  // PRAGMA integrity_check: also indexes against their tables
)

// checkIntegrity runs the check and returns ErrCorrupt with SQLite's findings.
func (db *DB) checkIntegrity(ctx context.Context, mode string) error {
	var q string
	switch mode {
	case "", IntegrityOff:
		return nil
	case IntegrityQuick:
		q = `PRAGMA quick_check(20)`
	case IntegrityFull:
		q = `PRAGMA integrity_check(20)`
	default:
		return fmt.Errorf("sqlite: integrity check must be off, quick or full, not %q", mode)
	}
	rows, err := db.w.QueryContext(ctx, q)
	if err != nil {
		return fmt.Errorf("%w: %s check of %s: %v", ErrCorrupt, mode, db.path, err)
	}
	defer rows.Close()
	var found []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return fmt.Errorf("%w: %s check of %s: %v", ErrCorrupt, mode, db.path, err)
		}
		found = append(found, s)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%w: %s check of %s: %v", ErrCorrupt, mode, db.path, err)
	}
	if len(found) == 1 && found[0] == "ok" {
		return nil
	}
	return fmt.Errorf("%w: %s check of %s failed: %s", ErrCorrupt, mode, db.path, strings.Join(found, "; "))
}

// Check runs an integrity check (IntegrityQuick or IntegrityFull) on the open
// store; it returns ErrCorrupt with SQLite's findings.
func (db *DB) Check(ctx context.Context, mode string) error { return db.checkIntegrity(ctx, mode) }

// Served reports whether a server holds the store at path (its lock).
func Served(path string) (bool, error) {
	if _, err := os.Stat(LockPath(path)); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	l, busy, err := lockStore(path, false)
	l.release()
	return busy, err
}
