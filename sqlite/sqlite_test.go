package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mimids/mimids/directory/mailbox"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/directory/mailbox/mailboxtest"
	"github.com/mimids/mimids/directory/storetest"
)

func openTest(t testing.TB) *DB {
	t.Helper()
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "mimids.db"), Options{Synchronous: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestDirectoryConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) directory.Store { return openTest(t) })
}

func TestDirectoryIDsNeverReused(t *testing.T) {
	storetest.RunIDs(t, func(t *testing.T) directory.Store { return openTest(t) })
}

func TestPolicyConformance(t *testing.T) {
	storetest.RunPolicy(t, func(t *testing.T) directory.PolicyStore { return openTest(t) })
}

func TestMailboxConformance(t *testing.T) {
	mailboxtest.Run(t, func(t *testing.T) mailboxtest.Store { return openTest(t) })
}

func TestNotADatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "junk.db")
	os.WriteFile(path, []byte("this is not sqlite, just some text that is long enough"), 0o600)
	_, err := Open(context.Background(), path, Options{})
	if !errors.Is(err, ErrNotDatabase) {
		t.Fatalf("Open(junk) = %v, want ErrNotDatabase", err)
	}
}

func TestMigrationsRecordedAndIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	for i := 0; i < 2; i++ {
		db, err := Open(context.Background(), path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		v, err := db.SchemaVersion(context.Background())
		if err != nil || v < 1 {
			t.Fatalf("SchemaVersion = %d, %v", v, err)
		}
		var fk, journal string
		db.w.QueryRow(`PRAGMA foreign_keys`).Scan(&fk)
		db.w.QueryRow(`PRAGMA journal_mode`).Scan(&journal)
		if fk != "1" || journal != "wal" {
			t.Fatalf("foreign_keys=%s journal_mode=%s", fk, journal)
		}
		db.Close()
	}
}

func TestGroupCommitIsolatesFailures(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	db.w.Exec(`CREATE TABLE t (k INTEGER PRIMARY KEY)`)
	var wg sync.WaitGroup
	var failed, ok atomic.Int32
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := db.Write(ctx, func(tx *sql.Tx) error {
				if _, err := tx.Exec(`INSERT INTO t (k) VALUES (?)`, i); err != nil {
					return err
				}
				if i%3 == 0 {
					return errors.New("boom")
				}
				return nil
			})
			if err != nil {
				failed.Add(1)
			} else {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	var n int
	db.r.QueryRow(`SELECT count(*) FROM t`).Scan(&n)
	if int(ok.Load()) != n || failed.Load() != 67 {
		t.Fatalf("rows=%d ok=%d failed=%d", n, ok.Load(), failed.Load())
	}
}

func TestWriteAfterClose(t *testing.T) {
	db := openTest(t)
	db.Close()
	if err := db.Write(context.Background(), func(*sql.Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close = %v", err)
	}
}

func BenchmarkEnqueueAll1000(b *testing.B) {
	db := openTest(b)
	ctx := context.Background()
	for i := 0; i < 1000; i++ {
		db.CreateClient(ctx, "u", string(rune('a'+i%26))+string(rune('a'+i/26%26))+string(rune('a'+i/676)), []byte{byte(i), byte(i >> 8)}, true, testTime)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := db.EnqueueMailbox(ctx, mailboxTargetAll, 1, []byte("hello"), testTime, mailbox.Quota{MaxEntries: 1 << 40, MaxBytes: 1 << 50}, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "entries/s")
}

var testTime = time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)

var mailboxTargetAll = mailbox.Target{All: true}

func TestGatewayKeyConformance(t *testing.T) {
	storetest.RunGatewayKeys(t, func(t *testing.T) directory.GatewayKeyStore { return openTest(t) })
}

func TestAdminStore(t *testing.T) {
	storetest.RunAdmins(t, func(t *testing.T) storetest.AdminBackend { return openTest(t) })
}
