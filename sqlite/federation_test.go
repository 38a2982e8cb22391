package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/mimids/mimids/directory/mailbox"
	"github.com/mimids/mimids/federation"
	"github.com/mimids/mimids/federation/fedtest"
)

func TestFederationConformance(t *testing.T) {
	fedtest.Run(t, func(t *testing.T) federation.Store { return openTest(t) })
}

// TestFederationRecordJoinsOtherStores: a write of another domain's store (the
// mailbox) made with the context Record gives its fn commits with the reply, and
// rolls back with it; its after-commit callback runs only after the commit.
func TestFederationRecordJoinsOtherStores(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	if err := db.PutPeer(ctx, federation.Peer{Domain: "b.example", URL: "wss://b.example:1", Pin: make([]byte, 32), Stream: 1}); err != nil {
		t.Fatal(err)
	}
	var clientID int64
	if err := db.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO users (name, created_at) VALUES ('alice', 0)`)
		if err != nil {
			return err
		}
		uid, _ := res.LastInsertId()
		res, err = tx.ExecContext(ctx, `INSERT INTO clients (user_id, name, token_hash, created_at) VALUES (?, 'phone', x'01', 0)`, uid)
		if err != nil {
			return err
		}
		clientID, err = res.LastInsertId()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	published := 0
	deliver := func(ctx context.Context, fail error) error {
		_, err := db.Record(ctx, "b.example", uint64(published+10), func(ctx context.Context) ([]byte, error) {
			if _, err := db.EnqueueMailbox(ctx, mailbox.Target{ClientID: clientID}, 2, []byte("welcome"), time.Now(), mailbox.DefaultQuota, func([]mailbox.Entry) { published++ }); err != nil {
				return nil, err
			}
			if published != 0 {
				t.Error("the mailbox entry was published before the transaction committed")
			}
			return nil, fail
		})
		return err
	}
	boom := errors.New("boom")
	if err := deliver(ctx, boom); !errors.Is(err, boom) {
		t.Fatalf("failing apply: %v", err)
	}
	if st, _ := db.MailboxStatus(ctx, clientID); st.Pending != 0 || published != 0 {
		t.Fatalf("rolled back apply left %d entries, published %d", st.Pending, published)
	}
	if err := deliver(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if st, _ := db.MailboxStatus(ctx, clientID); st.Pending != 1 || published != 1 {
		t.Fatalf("applied: %d entries, published %d", st.Pending, published)
	}
}

func TestLeaseConformance(t *testing.T) {
	fedtest.RunLeases(t, func(t *testing.T) federation.LeaseStore { return openTest(t) })
}
