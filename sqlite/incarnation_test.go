package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func openPath(t *testing.T, path string, opts Options) *DB {
	t.Helper()
	if opts.Synchronous == "" {
		opts.Synchronous = "normal"
	}
	db, err := Open(context.Background(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// writeN commits n transactions.
func writeN(t *testing.T, db *DB, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if err := db.Write(context.Background(), func(tx *sql.Tx) error {
			_, err := tx.Exec(`INSERT INTO users (name, created_at) VALUES (?, 0)`, "u"+time.Now().Format("150405.000000000"))
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
}

func shortLockWait(t *testing.T) {
	old := lockWait
	lockWait = 100 * time.Millisecond
	t.Cleanup(func() { lockWait = old })
}

func cp(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	out.Close()
}

func TestIncarnationKeptAcrossCleanRestarts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mimids.db")
	db := openPath(t, path, Options{Owner: true})
	first := db.Incarnation()
	if len(first.ID) != 16 || first.Minted != "" {
		t.Fatalf("new store: incarnation %+v", first)
	}
	writeN(t, db, 5)
	want := db.Commits()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	m, err := ReadMark(MarkPath(path))
	if err != nil || m.Commits != want || !bytes.Equal(m.Incarnation, first.ID) {
		t.Fatalf("mark after Close = %+v, %v; want %d commits of %x", m, err, want, first.ID)
	}
	db = openPath(t, path, Options{Owner: true})
	defer db.Close()
	if got := db.Incarnation(); !bytes.Equal(got.ID, first.ID) || got.Minted != "" || got.Commits != want {
		t.Fatalf("after a clean restart: %+v, want %x with %d commits", got, first.ID, want)
	}
}

func TestIncarnationMintedWhenTheStoreWentBack(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, path, old string)
		reason string
	}{
		{"older copy", func(t *testing.T, path, old string) { cp(t, old, path) }, "commits behind its mark"},
		{"mark deleted", func(t *testing.T, path, _ string) { os.Remove(MarkPath(path)) }, "mark file is missing"},
		{"mark damaged", func(t *testing.T, path, _ string) {
			b, _ := os.ReadFile(MarkPath(path))
			b[20] ^= 0xff
			os.WriteFile(MarkPath(path), b, 0o600)
		}, "unreadable"},
		{"another store's file", func(t *testing.T, path, _ string) {
			other := filepath.Join(t.TempDir(), "other.db")
			db := openPath(t, other, Options{})
			writeN(t, db, 50)
			db.Close()
			cp(t, other, path)
		}, "is not the mark's"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "mimids.db")
			db := openPath(t, path, Options{Owner: true})
			writeN(t, db, 3)
			db.Close()
			old := filepath.Join(dir, "backup.db")
			cp(t, path, old)
			db = openPath(t, path, Options{Owner: true})
			before := db.Incarnation()
			writeN(t, db, 10)
			db.Close()

			tc.damage(t, path, old)
			db = openPath(t, path, Options{Owner: true})
			got := db.Incarnation()
			db.Close()
			if bytes.Equal(got.ID, before.ID) || !strings.Contains(got.Minted, tc.reason) {
				t.Fatalf("incarnation %x (minted %q), was %x; want a new one because %q", got.ID, got.Minted, before.ID, tc.reason)
			}
			// The new incarnation sticks, and its mark is not ahead of the store.
			db = openPath(t, path, Options{Owner: true})
			again := db.Incarnation()
			db.Close()
			if !bytes.Equal(again.ID, got.ID) || again.Minted != "" {
				t.Fatalf("next start: %x (minted %q), want %x kept", again.ID, again.Minted, got.ID)
			}
		})
	}
}

// An admin command beside a running server leaves the mark to it: it neither
// mints nor writes the mark, and the server's lock keeps a second server out.
func TestOwnerLockAndAdminBeside(t *testing.T) {
	shortLockWait(t)
	path := filepath.Join(t.TempDir(), "mimids.db")
	srv := openPath(t, path, Options{Owner: true})
	defer srv.Close()
	if _, err := Open(context.Background(), path, Options{Owner: true}); !errors.Is(err, ErrInUse) {
		t.Fatalf("second server: %v, want ErrInUse", err)
	}
	os.Remove(MarkPath(path)) // would make a checking open mint
	cli := openPath(t, path, Options{})
	writeN(t, cli, 2)
	if !bytes.Equal(cli.Incarnation().ID, srv.Incarnation().ID) || cli.Incarnation().Minted != "" {
		t.Fatalf("admin command beside the server minted: %+v", cli.Incarnation())
	}
	cli.Close()
	if _, err := os.Stat(MarkPath(path)); err == nil {
		t.Fatal("admin command beside the server wrote the mark")
	}
}

func TestRefusesToCreateOverRemains(t *testing.T) {
	tests := []struct {
		name   string
		damage func(path string)
	}{
		{"db truncated, WAL present", func(p string) { os.Truncate(p, 0) }},
		{"db deleted, WAL present", func(p string) { os.Remove(p) }},
		{"db truncated after a clean stop", func(p string) { os.Remove(p + "-wal"); os.Remove(p + "-shm"); os.Truncate(p, 0) }},
		{"db without schema beside its mark", func(p string) {
			os.Remove(p)
			os.Remove(p + "-wal")
			os.Remove(p + "-shm")
			c, _ := sql.Open("sqlite3", "file:"+p)
			c.Exec(`CREATE TABLE unrelated (x)`)
			c.Close()
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "mimids.db")
			db := openPath(t, path, Options{Owner: true})
			writeN(t, db, 3)
			// Keep the WAL: leave the store open as a killed server would, by
			// copying its files aside first.
			for _, suf := range []string{"", "-wal", "-shm"} {
				cp(t, path+suf, path+suf+".copy")
			}
			db.Close()
			for _, suf := range []string{"", "-wal", "-shm"} {
				os.Rename(path+suf+".copy", path+suf)
			}
			tc.damage(path)
			_, err := Open(context.Background(), path, Options{Owner: true})
			if !errors.Is(err, ErrRemains) {
				t.Fatalf("Open = %v, want ErrRemains", err)
			}
			t.Log(err)
			if _, serr := os.Stat(MarkPath(path)); serr != nil {
				t.Fatalf("the refused open removed the mark: %v", serr)
			}
			db = openPath(t, path, Options{Owner: true, ForceNew: true})
			defer db.Close()
			aside, _ := filepath.Glob(path + "*.set-aside-*")
			if len(aside) == 0 {
				t.Fatal("ForceNew set nothing aside")
			}
		})
	}
}

func TestIntegrityCheckRefusesDamage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mimids.db")
	db := openPath(t, path, Options{})
	writeN(t, db, 200)
	db.Close() // checkpoints: the pages are in the main file
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	page := 4096
	n := 0
	for p := 1; p*page < len(b); p++ { // index leaf pages, which opening does not read
		if b[p*page] == 0x0a {
			for i := p*page + 8; i < p*page+64; i++ { // scramble their cell pointers
				b[i] ^= 0x5a
			}
			n++
		}
	}
	if n == 0 {
		t.Fatal("no index page to damage")
	}
	os.WriteFile(path, b, 0o600)
	_, err = Open(context.Background(), path, Options{IntegrityCheck: IntegrityQuick})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "quick check") {
		t.Fatalf("Open(damaged) = %v, want ErrCorrupt from the quick check", err)
	}
	// Without the check, the damage goes unnoticed at start.
	if db, err := Open(context.Background(), path, Options{}); err != nil {
		t.Fatalf("Open(damaged) without a check: %v", err)
	} else {
		db.Close()
	}
}

func TestHealthReportsTheWriteSide(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	if h := db.Health(ctx); h.Read != nil || h.Write != nil || h.Disk != nil {
		t.Fatalf("healthy store: %+v", h)
	}
	// Cached: a second call within the interval does not write.
	before := db.Commits()
	db.Health(ctx)
	if db.Commits() != before {
		t.Fatal("Health wrote again within its interval")
	}
	// A store that refuses writes (simulated with query_only on the writer's only
	// connection).
	if _, err := db.w.Exec(`PRAGMA query_only = 1`); err != nil {
		t.Fatal(err)
	}
	db.health.mu.Lock()
	db.health.last = Health{}
	db.health.mu.Unlock()
	if h := db.Health(ctx); h.Write == nil || h.Read != nil {
		t.Fatalf("read-only store: %+v, want the write side down", h)
	}
	db.w.Exec(`PRAGMA query_only = 0`)
	db.minFree = 1 << 62
	db.health.mu.Lock()
	db.health.last = Health{}
	db.health.mu.Unlock()
	if h := db.Health(ctx); h.Disk == nil || h.Write != nil {
		t.Fatalf("full disk: %+v, want the disk down", h)
	}
}

func TestBackupRestoreMintsIncarnation(t *testing.T) {
	shortLockWait(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "mimids.db")
	db := openPath(t, path, Options{Owner: true})
	writeN(t, db, 3)
	backup := filepath.Join(dir, "backup.db")
	if err := db.Backup(context.Background(), backup); err != nil {
		t.Fatal(err)
	}
	writeN(t, db, 5)
	before := db.Incarnation()
	if _, err := Restore(context.Background(), path, backup, Options{}); !errors.Is(err, ErrInUse) {
		t.Fatalf("restore under a running server: %v, want ErrInUse", err)
	}
	db.Close()
	r, err := Restore(context.Background(), path, backup, Options{Synchronous: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	var users int
	r.r.QueryRow(`SELECT count(*) FROM users`).Scan(&users)
	got := r.Incarnation()
	r.Close()
	if users != 3 || bytes.Equal(got.ID, before.ID) || !strings.Contains(got.Minted, "restored from") {
		t.Fatalf("restored: %d users, incarnation %x (minted %q), was %x", users, got.ID, got.Minted, before.ID)
	}
	if _, err := Restore(context.Background(), path, filepath.Join(dir, "nothing.db"), Options{}); err == nil {
		t.Fatal("restore from a missing file succeeded")
	}
}
