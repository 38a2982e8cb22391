// Package mailboxtest is the conformance suite every mailbox.Store backend must pass.
package mailboxtest

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/directory/mailbox"
)

// Store is a backend under test: both stores, since mailboxes belong to clients.
type Store interface {
	directory.Store
	mailbox.Store
}

// Run runs the suite; newStore returns an empty store that lives for the test.
func Run(t *testing.T, newStore func(t *testing.T) Store) {
	t.Run("quota", func(t *testing.T) { runQuota(t, newStore) })
	ctx := context.Background()
	at := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	big := mailbox.Quota{MaxEntries: 1 << 40, MaxBytes: 1 << 50} // bounds nothing here

	setup := func(t *testing.T) (Store, []directory.Client) {
		s := newStore(t)
		var cs []directory.Client
		for _, n := range []struct{ u, c string }{{"alice", "phone"}, {"alice", "laptop"}, {"bob", "phone"}} {
			c, err := s.CreateClient(ctx, n.u, n.c, []byte(n.u+n.c), true, at)
			if err != nil {
				t.Fatal(err)
			}
			cs = append(cs, c)
		}
		return s, cs
	}

	t.Run("targets and order", func(t *testing.T) {
		s, cs := setup(t)
		var published []mailbox.Entry
		pub := func(es []mailbox.Entry) { published = append(published, es...) }
		es, err := entries(s.EnqueueMailbox(ctx, mailbox.Target{ClientID: cs[0].ID}, 1, []byte("one"), at, big, pub))
		if err != nil || len(es) != 1 || es[0].Seq != 1 || es[0].ClientID != cs[0].ID {
			t.Fatalf("to client: %+v, %v", es, err)
		}
		es, err = entries(s.EnqueueMailbox(ctx, mailbox.Target{UserID: cs[0].UserID}, 1, []byte("two"), at, big, pub))
		if err != nil || len(es) != 2 {
			t.Fatalf("to user: %+v, %v", es, err)
		}
		es, err = entries(s.EnqueueMailbox(ctx, mailbox.Target{All: true}, 2, []byte("three"), at, big, pub))
		if err != nil || len(es) != 3 {
			t.Fatalf("to all: %+v, %v", es, err)
		}
		if len(published) != 6 {
			t.Fatalf("published %d entries, want 6", len(published))
		}
		got, err := s.FetchMailbox(ctx, cs[0].ID, 0, 10)
		if err != nil || len(got) != 3 {
			t.Fatalf("fetch: %+v, %v", got, err)
		}
		for i, want := range []string{"one", "two", "three"} {
			if got[i].Seq != uint64(i+1) || string(got[i].Payload) != want || !got[i].EnqueuedAt.Equal(at) {
				t.Fatalf("entry %d = %+v", i, got[i])
			}
		}
		if got, _ := s.FetchMailbox(ctx, cs[0].ID, 1, 1); len(got) != 1 || got[0].Seq != 2 {
			t.Fatalf("fetch after 1 limit 1: %+v", got)
		}
		if got, _ := s.FetchMailbox(ctx, cs[2].ID, 0, 10); len(got) != 1 || got[0].Seq != 1 || got[0].Kind != 2 {
			t.Fatalf("bob's mailbox: %+v", got)
		}
	})

	t.Run("ack keeps sequence", func(t *testing.T) {
		s, cs := setup(t)
		for i := 0; i < 3; i++ {
			s.EnqueueMailbox(ctx, mailbox.Target{ClientID: cs[0].ID}, 1, []byte{byte(i)}, at, big, nil)
		}
		if err := s.AckMailbox(ctx, map[int64]uint64{cs[0].ID: 2}); err != nil {
			t.Fatal(err)
		}
		st, err := s.MailboxStatus(ctx, cs[0].ID)
		if err != nil || st != (mailbox.Status{Pending: 1, FirstSeq: 3, LastSeq: 3}) {
			t.Fatalf("status = %+v, %v", st, err)
		}
		s.AckMailbox(ctx, map[int64]uint64{cs[0].ID: 3, cs[2].ID: 0})
		es, _ := entries(s.EnqueueMailbox(ctx, mailbox.Target{ClientID: cs[0].ID}, 1, nil, at, big, nil))
		if len(es) != 1 || es[0].Seq != 4 {
			t.Fatalf("seq after emptying the mailbox = %+v, want 4", es)
		}
		if err := s.AckMailbox(ctx, map[int64]uint64{cs[0].ID: 100}); err != nil {
			t.Fatalf("ack past the end: %v", err)
		}
	})

	t.Run("revoked clients get nothing", func(t *testing.T) {
		s, cs := setup(t)
		s.RevokeClient(ctx, "alice", "laptop", at)
		es, err := entries(s.EnqueueMailbox(ctx, mailbox.Target{All: true}, 1, nil, at, big, nil))
		if err != nil || len(es) != 2 {
			t.Fatalf("to all after revoke: %+v, %v", es, err)
		}
		res, err := s.EnqueueMailbox(ctx, mailbox.Target{ClientID: cs[1].ID}, 1, nil, at, big, nil)
		if err != nil || len(res.Entries) != 0 || res.Full != 0 {
			t.Fatalf("to revoked client: %+v, %v (a revoked client is no recipient, not a full one)", res, err)
		}
	})

	t.Run("concurrent enqueues keep per-client sequences dense", func(t *testing.T) {
		s, cs := setup(t)
		var wg sync.WaitGroup
		for i := 0; i < 50; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.EnqueueMailbox(ctx, mailbox.Target{All: true}, 1, bytes.Repeat([]byte{1}, 10), at, big, nil); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		for _, c := range cs {
			got, err := s.FetchMailbox(ctx, c.ID, 0, 100)
			if err != nil || len(got) != 50 {
				t.Fatalf("client %d has %d entries, %v", c.ID, len(got), err)
			}
			for i, e := range got {
				if e.Seq != uint64(i+1) {
					t.Fatalf("client %d entry %d has seq %d", c.ID, i, e.Seq)
				}
			}
		}
	})
}

// entries drops the Full count of an EnqueueMailbox result.
func entries(r mailbox.Enqueued, err error) ([]mailbox.Entry, error) { return r.Entries, err }
