package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/mimids/mimids/directory/mailbox"
)

// TestMailboxUsageMigration: a store written before migration 0006 gets its clients'
// usage counted from the entries it holds.
func TestMailboxUsageMigration(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "mimids.db")
	db, err := Open(ctx, path, Options{Synchronous: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := db.CreateClient(ctx, "alice", "phone", []byte("a"), true, testTime)
	b, _ := db.CreateClient(ctx, "bob", "phone", []byte("b"), true, testTime)
	for _, n := range []int{3, 5, 7} {
		if _, err := db.EnqueueMailbox(ctx, mailbox.Target{ClientID: a.ID}, 1, make([]byte, n), testTime, mailbox.DefaultQuota, nil); err != nil {
			t.Fatal(err)
		}
	}
	// Back to the schema before 0006.
	err = db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `ALTER TABLE clients DROP COLUMN mailbox_entries;
			ALTER TABLE clients DROP COLUMN mailbox_bytes; DELETE FROM schema_migrations WHERE version = 6`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db, err = Open(ctx, path, Options{Synchronous: "normal"}); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, c := range []struct {
		id             int64
		entries, bytes int64
	}{{a.ID, 3, 15}, {b.ID, 0, 0}} {
		if u, err := db.MailboxUsage(ctx, c.id); err != nil || u.Entries != c.entries || u.Bytes != c.bytes {
			t.Fatalf("client %d after the migration: %+v, %v; want %d entries, %d bytes", c.id, u, err, c.entries, c.bytes)
		}
	}
}
