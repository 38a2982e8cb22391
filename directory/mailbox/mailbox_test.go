package mailbox_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/mimids/mimids/directory/mailbox"
	"github.com/mimids/mimids/protocol"
	"github.com/mimids/mimids/sqlite"
)

// TestQuotaErrors: what producers see of the quota — ErrFull (mailbox_full) for one
// client, a partial fan-out, Room before committing, Usage, and the refusal counter.
func TestQuotaErrors(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "mimids.db"), sqlite.Options{Synchronous: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	at := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	phone, _ := db.CreateClient(ctx, "alice", "phone", []byte("p"), true, at)
	laptop, _ := db.CreateClient(ctx, "alice", "laptop", []byte("l"), true, at)
	refused := map[uint16]int{}
	m := mailbox.NewWithQuota(db, mailbox.Metrics{Full: func(kind uint16, n int) { refused[kind] += n }},
		mailbox.Quota{MaxEntries: 2})
	if q := m.Quota(); q.MaxEntries != 2 || q.MaxBytes != mailbox.DefaultQuota.MaxBytes {
		t.Fatalf("quota %+v: a zero field takes the default", q)
	}
	notice := uint16(protocol.KindNotice)
	for range 2 {
		if _, err := m.Enqueue(ctx, mailbox.Target{ClientID: phone.ID}, notice, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	_, err = m.Enqueue(ctx, mailbox.Target{ClientID: phone.ID}, notice, []byte("x"))
	if code, _ := protocol.CodeOf(err); !errors.Is(err, mailbox.ErrFull) || code != protocol.CodeMailboxFull {
		t.Fatalf("enqueue to a full mailbox: %v (code %s)", err, code)
	}
	if err := m.Room(ctx, phone.ID, uint16(protocol.KindWelcome), 10); !errors.Is(err, mailbox.ErrFull) {
		t.Fatalf("Room of a full mailbox: %v", err)
	}
	if err := m.Room(ctx, laptop.ID, uint16(protocol.KindWelcome), mailbox.MaxPayload+1); !errors.Is(err, mailbox.ErrTooLarge) {
		t.Fatalf("Room for a payload over the limit: %v", err)
	}
	if err := m.Room(ctx, laptop.ID, uint16(protocol.KindWelcome), 10); err != nil {
		t.Fatalf("Room of an empty mailbox: %v", err)
	}
	if n, err := m.Enqueue(ctx, mailbox.Target{UserID: phone.UserID}, notice, []byte("y")); n != 1 || err != nil {
		t.Fatalf("to alice: %d, %v; want the laptop's entry", n, err)
	}
	m.Enqueue(ctx, mailbox.Target{ClientID: laptop.ID}, notice, []byte("z"))
	if _, err := m.Enqueue(ctx, mailbox.Target{All: true}, notice, []byte("w")); !errors.Is(err, mailbox.ErrFull) {
		t.Fatalf("to everyone, all full: %v", err)
	}
	if refused[notice] != 1+1+2 || refused[uint16(protocol.KindWelcome)] != 1 {
		t.Fatalf("refusals counted: %v", refused)
	}
	u, err := m.Usage(ctx, phone.ID)
	if err != nil || u.Entries != 2 || u.Bytes != 2 || u.Quota != m.Quota() {
		t.Fatalf("usage %+v, %v", u, err)
	}
	if err := (mailbox.Quota{MaxEntries: 0, MaxBytes: 10}).Validate(); err == nil {
		t.Fatal("a quota of no entries and 10 bytes is valid")
	}
	if err := mailbox.DefaultQuota.Validate(); err != nil {
		t.Fatal(err)
	}
}
