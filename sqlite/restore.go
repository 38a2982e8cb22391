package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Backup writes a consistent copy of the store to dst, a new file, while the store
// is in use (VACUUM INTO: one self-contained file, without WAL).
func (db *DB) Backup(ctx context.Context, dst string) error {
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("sqlite: backup: %s exists", dst)
	}
	c, err := sql.Open("sqlite3", "file:"+db.path+"?_busy_timeout=5000")
	if err != nil {
		return fmt.Errorf("sqlite: backup: %w", err)
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, `VACUUM INTO ?`, dst); err != nil {
		return fmt.Errorf("sqlite: backup to %s: %w", dst, err)
	}
	return nil
}

// Restore replaces the store at path with the backup in from, while no server
// holds it, and opens it with a new incarnation, so that clients start their marks
// over. The backup must pass a quick check; the store's current files are set
// aside (renamed *.pre-restore-<time>), not deleted.
func Restore(ctx context.Context, path, from string, opts Options) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: restore: %w", err)
	}
	lock, _, err := lockStore(path, true)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			lock.release()
		}
	}()
	if err := checkBackup(ctx, from); err != nil {
		return nil, err
	}
	suffix := ".pre-restore-" + strconv.FormatInt(time.Now().Unix(), 10)
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		if err := os.Rename(p, p+suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("sqlite: restore: set aside %s: %w", p, err)
		}
	}
	if err := copyFile(from, path); err != nil {
		return nil, err
	}
	opts.Owner, opts.ForceNew = false, false
	ok = true // open releases the lock
	return open(ctx, path, opts, from, lock)
}

// checkBackup refuses a file that is not a whole store: not SQLite, with a WAL
// beside it (a copy of a live store's main file only), without the schema, or
// failing a quick check.
func checkBackup(ctx context.Context, from string) error {
	fi, err := os.Stat(from)
	if err != nil {
		return fmt.Errorf("sqlite: restore: %w", err)
	}
	if fi.Size() == 0 {
		return fmt.Errorf("sqlite: restore: %s is empty", from)
	}
	if err := checkHeader(from); err != nil {
		return err
	}
	if _, err := os.Lstat(from + "-wal"); err == nil {
		return fmt.Errorf("sqlite: restore: %s has a WAL beside it: it is a live store's file, not a backup (make one with mimids store backup)", from)
	}
	q := url.Values{}
	q.Set("mode", "ro")
	q.Set("immutable", "1")
	c, err := sql.Open("sqlite3", "file:"+from+"?"+q.Encode())
	if err != nil {
		return fmt.Errorf("sqlite: restore: %w", err)
	}
	defer c.Close()
	src := &DB{path: from, w: c}
	has, err := src.hasSchema(ctx)
	if err != nil {
		return err
	}
	if !has {
		return fmt.Errorf("sqlite: restore: %s holds no mimids store", from)
	}
	return src.checkIntegrity(ctx, IntegrityQuick)
}

// copyFile copies src to dst durably (a temporary file, fsync, rename, fsync of the
// directory).
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("sqlite: restore: %w", err)
	}
	defer in.Close()
	tmp := dst + ".restoring"
	out, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("sqlite: restore: %w", err)
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("sqlite: restore: copy %s: %w", src, err)
	}
	return syncDir(filepath.Dir(dst))
}
