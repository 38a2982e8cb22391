package fedtest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/directory/mailbox"
	"github.com/mimids/mimids/federation"
)

// JoinStore is a store that serves federation and the mailbox, as every full
// backend does.
type JoinStore interface {
	federation.Store
	mailbox.Store
	CreateClient(ctx context.Context, user, client string, tokenHash []byte, createUser bool, at time.Time) (directory.Client, error)
}

// RunJoins checks that a write of another domain's store (the mailbox) made with
// the context Record gives its fn commits with the reply, and rolls back with it;
// its after-commit callback runs only after the commit. open returns an empty
// store that lives until the test ends.
func RunJoins(t *testing.T, open func(t *testing.T) JoinStore) {
	db := open(t)
	if err := db.PutPeer(ctx, federation.Peer{Domain: "b.example", URL: "wss://b.example:1", Pin: make([]byte, 32), Stream: 1}); err != nil {
		t.Fatal(err)
	}
	c, err := db.CreateClient(ctx, "alice", "phone", []byte{1}, true, t0)
	if err != nil {
		t.Fatal(err)
	}
	published := 0
	deliver := func(ctx context.Context, fail error) error {
		_, err := db.Record(ctx, "b.example", uint64(published+10), func(ctx context.Context) ([]byte, error) {
			if _, err := db.EnqueueMailbox(ctx, mailbox.Target{ClientID: c.ID}, 2, []byte("welcome"), time.Now(), mailbox.DefaultQuota,
				func([]mailbox.Entry) { published++ }); err != nil {
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
	if st, _ := db.MailboxStatus(ctx, c.ID); st.Pending != 0 || published != 0 {
		t.Fatalf("rolled back apply left %d entries, published %d", st.Pending, published)
	}
	if err := deliver(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if st, _ := db.MailboxStatus(ctx, c.ID); st.Pending != 1 || published != 1 {
		t.Fatalf("applied: %d entries, published %d", st.Pending, published)
	}
}
