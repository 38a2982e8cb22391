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

// runQuota checks that EnqueueMailbox enforces the quota in entries and bytes in the
// transaction that writes, that acks free room, and that MailboxUsage follows both.
func runQuota(t *testing.T, newStore func(t *testing.T) Store) {
	ctx := context.Background()
	at := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
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
	usage := func(t *testing.T, s Store, id int64, entries, bytes int64) {
		t.Helper()
		u, err := s.MailboxUsage(ctx, id)
		if err != nil || u.Entries != entries || u.Bytes != bytes {
			t.Fatalf("usage of client %d = %+v, %v; want %d entries, %d bytes", id, u, err, entries, bytes)
		}
	}
	payload := func(n int) []byte { return bytes.Repeat([]byte{7}, n) }

	t.Run("entries", func(t *testing.T) {
		s, cs := setup(t)
		q := mailbox.Quota{MaxEntries: 3, MaxBytes: 1 << 20}
		to := mailbox.Target{ClientID: cs[0].ID}
		for i := range 3 {
			res, err := s.EnqueueMailbox(ctx, to, 1, payload(i), at, q, nil)
			if err != nil || len(res.Entries) != 1 || res.Full != 0 {
				t.Fatalf("entry %d: %+v, %v", i, res, err)
			}
		}
		published := false
		res, err := s.EnqueueMailbox(ctx, to, 1, nil, at, q, func([]mailbox.Entry) { published = true })
		if err != nil || len(res.Entries) != 0 || res.Full != 1 || published {
			t.Fatalf("fourth entry: %+v, %v, published %v; want refused, nothing published", res, err, published)
		}
		usage(t, s, cs[0].ID, 3, 0+1+2)
		if got, _ := s.FetchMailbox(ctx, cs[0].ID, 0, 10); len(got) != 3 || got[2].Seq != 3 {
			t.Fatalf("mailbox after the refusal: %+v", got)
		}
		if err := s.AckMailbox(ctx, map[int64]uint64{cs[0].ID: 1}); err != nil {
			t.Fatal(err)
		}
		usage(t, s, cs[0].ID, 2, 1+2)
		res, err = s.EnqueueMailbox(ctx, to, 1, payload(5), at, q, nil)
		if err != nil || len(res.Entries) != 1 || res.Entries[0].Seq != 4 {
			t.Fatalf("after an ack: %+v, %v; want seq 4 (a refusal uses no seq)", res, err)
		}
		usage(t, s, cs[0].ID, 3, 1+2+5)
	})

	t.Run("bytes", func(t *testing.T) {
		s, cs := setup(t)
		q := mailbox.Quota{MaxEntries: 100, MaxBytes: 10}
		to := mailbox.Target{ClientID: cs[0].ID}
		for _, c := range []struct {
			n  int
			ok bool
		}{{6, true}, {5, false}, {4, true}, {1, false}, {0, true}} {
			res, err := s.EnqueueMailbox(ctx, to, 1, payload(c.n), at, q, nil)
			if err != nil || (len(res.Entries) == 1) != c.ok || (res.Full == 1) == c.ok {
				t.Fatalf("%d bytes: %+v, %v; want ok=%v", c.n, res, err, c.ok)
			}
		}
		usage(t, s, cs[0].ID, 3, 10)
		if err := s.AckMailbox(ctx, map[int64]uint64{cs[0].ID: 100}); err != nil {
			t.Fatal(err)
		}
		usage(t, s, cs[0].ID, 0, 0)
		if res, _ := s.EnqueueMailbox(ctx, to, 1, payload(10), at, q, nil); len(res.Entries) != 1 {
			t.Fatalf("a full quota's worth after the acks: %+v", res)
		}
	})

	t.Run("fan-out skips full recipients", func(t *testing.T) {
		s, cs := setup(t)
		q := mailbox.Quota{MaxEntries: 2, MaxBytes: 1 << 20}
		for range 2 {
			s.EnqueueMailbox(ctx, mailbox.Target{ClientID: cs[0].ID}, 1, payload(3), at, q, nil)
		}
		res, err := s.EnqueueMailbox(ctx, mailbox.Target{UserID: cs[0].UserID}, 1, payload(3), at, q, nil)
		if err != nil || len(res.Entries) != 1 || res.Entries[0].ClientID != cs[1].ID || res.Full != 1 {
			t.Fatalf("to alice: %+v, %v; want the laptop only, one full", res, err)
		}
		res, err = s.EnqueueMailbox(ctx, mailbox.Target{All: true}, 1, payload(3), at, q, nil)
		if err != nil || len(res.Entries) != 2 || res.Full != 1 {
			t.Fatalf("to all: %+v, %v; want laptop and bob, one full", res, err)
		}
		res, _ = s.EnqueueMailbox(ctx, mailbox.Target{All: true}, 1, payload(3), at, q, nil)
		if len(res.Entries) != 1 || res.Entries[0].ClientID != cs[2].ID || res.Full != 2 {
			t.Fatalf("to all again: %+v; want bob only, two full", res)
		}
		usage(t, s, cs[0].ID, 2, 6)
		usage(t, s, cs[1].ID, 2, 6)
		usage(t, s, cs[2].ID, 2, 6)
	})

	t.Run("concurrent enqueues never pass the quota", func(t *testing.T) {
		s, cs := setup(t)
		q := mailbox.Quota{MaxEntries: 10, MaxBytes: 1 << 20}
		var mu sync.Mutex
		committed, full := 0, 0
		var wg sync.WaitGroup
		for range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := s.EnqueueMailbox(ctx, mailbox.Target{ClientID: cs[2].ID}, 1, payload(10), at, q, nil)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				committed += len(res.Entries)
				full += res.Full
				mu.Unlock()
			}()
		}
		wg.Wait()
		if committed != 10 || full != 40 {
			t.Fatalf("committed %d, refused %d; want 10 and 40", committed, full)
		}
		usage(t, s, cs[2].ID, 10, 100)
		got, _ := s.FetchMailbox(ctx, cs[2].ID, 0, 100)
		for i, e := range got {
			if e.Seq != uint64(i+1) {
				t.Fatalf("entry %d has seq %d", i, e.Seq)
			}
		}
	})

	t.Run("usage of unknown and removed clients", func(t *testing.T) {
		s, cs := setup(t)
		usage(t, s, 1<<40, 0, 0)
		s.EnqueueMailbox(ctx, mailbox.Target{ClientID: cs[2].ID}, 1, payload(4), at, mailbox.DefaultQuota, nil)
		if _, err := s.DeleteUser(ctx, "bob"); err != nil {
			t.Fatal(err)
		}
		usage(t, s, cs[2].ID, 0, 0)
	})
}
