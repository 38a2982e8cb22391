package hub_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mimids/mimids/directory/mailbox"
	"github.com/mimids/mimids/hub"
	"github.com/mimids/mimids/protocol"
)

// roomMailbox is a fakeMailbox with quotas: full clients have no room, and
// fullOnDeliver ones refuse the delivery itself (a producer won the race).
type roomMailbox struct {
	*fakeMailbox
	mu            sync.Mutex
	full          map[int64]bool
	fullOnDeliver map[int64]bool
}

func (m *roomMailbox) Room(_ context.Context, client int64, kind uint16, size int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if kind != uint16(protocol.KindWelcome) || size < 100 {
		return fmt.Errorf("Room(%d, kind %d, %d bytes): want a Welcome's delivery size", client, kind, size)
	}
	if m.full[client] {
		return fmt.Errorf("%w: client %d", mailbox.ErrFull, client)
	}
	return nil
}

func (m *roomMailbox) Deliver(ctx context.Context, client int64, kind uint16, payload []byte) error {
	m.mu.Lock()
	full := m.fullOnDeliver[client]
	m.mu.Unlock()
	if full {
		return fmt.Errorf("%w: client %d", mailbox.ErrFull, client)
	}
	return m.fakeMailbox.Deliver(ctx, client, kind, payload)
}

func (m *roomMailbox) set(client int64, full, onDeliver bool) {
	m.mu.Lock()
	m.full[client], m.fullOnDeliver[client] = full, onDeliver
	m.mu.Unlock()
}

// TestWelcomeToFullMailbox: a commit whose Welcome goes to a local client with a full
// mailbox is refused with mailbox_full before anything is sequenced or stored; once
// there is room the same commit is sequenced. A mailbox that fills after the check
// keeps the Welcome stored, and redelivery skips it without failing.
func TestWelcomeToFullMailbox(t *testing.T) {
	g := loadFixture(t, "create-2.json")
	e := newEnv(t, "b.example", nil)
	rm := &roomMailbox{fakeMailbox: e.mbox, full: map[int64]bool{}, fullOnDeliver: map[int64]bool{}}
	h, err := hub.New(hub.Config{Domain: "b.example", Now: e.clock.now, Policy: e.pol}, e.db, e.router, rm)
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
	e.create(g)
	ctx := context.Background()
	st := &g.Steps[1] // alice adds bob, Welcome for b.example
	e.router.add(st.Welcome.NewMembers[0].Ref, 42)
	if _, err := e.sendStep(&g.Steps[0], sendOpts{}); err != nil {
		t.Fatal(err)
	}
	rm.set(42, true, false)
	_, err = e.sendStep(st, sendOpts{})
	if code, _ := protocol.CodeOf(err); code != protocol.CodeMailboxFull {
		t.Fatalf("commit with a Welcome to a full mailbox: %v, want mailbox_full", err)
	}
	if ws, _ := e.db.PendingWelcomes(ctx, "b.example", 10); len(ws) != 0 {
		t.Fatalf("%d Welcomes stored by a refused commit", len(ws))
	}
	rm.set(42, false, true) // room when asked, full when delivered
	if _, err := e.sendStep(st, sendOpts{}); err != nil {
		t.Fatalf("the same commit with room: %v", err)
	}
	if got := e.mbox.deliveries(42); len(got) != 0 {
		t.Fatal("delivered to a full mailbox")
	}
	e.clock.add(time.Minute)
	if err := e.h.RedeliverWelcomes(ctx); err != nil {
		t.Fatalf("redelivery to a full mailbox: %v, want it skipped", err)
	}
	rm.set(42, false, false)
	if err := e.h.RedeliverWelcomes(ctx); err != nil || len(e.mbox.deliveries(42)) != 1 {
		t.Fatalf("redelivery once there is room: %v, %d deliveries", err, len(e.mbox.deliveries(42)))
	}
}
