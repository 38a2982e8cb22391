package natsbus

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mimids/mimids/protocol"
)

// flushTimeout bounds the round trip that confirms subscriptions.
const flushTimeout = 2 * time.Second

// Run delivers the other nodes' notifications to t until ctx ends, keeps the
// subscribers whole after reconnects and drops, and runs the safety-net poll. Call
// it once; it closes the connection when it returns.
func (b *Bus) Run(ctx context.Context, t Targets) error {
	defer b.nc.Close()
	for _, subj := range []string{b.cfg.Subject + ".r", b.cfg.Subject + ".m.all", b.cfg.Subject + ".q"} {
		if _, err := b.nc.ChanSubscribe(subj, b.in); err != nil {
			return fmt.Errorf("natsbus: subscribe %s: %w", subj, err)
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() { b.syncLoop(ctx, t) })
	wg.Go(func() { b.pollLoop(ctx, t) })
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-b.in:
			b.dispatch(t, m)
		}
	}
}

// dispatch applies one notification.
func (b *Bus) dispatch(t Targets, nm *nats.Msg) {
	b.received.Add(1)
	m, err := decode(nm.Data)
	if err != nil {
		b.log.Warn("natsbus: bad message", "subject", nm.Subject, "err", err)
		return
	}
	switch m.kind {
	case kindEntry:
		if !b.sawPartition(m.entry.Masked, m.entry.Counter+1, false) || t.Hub == nil {
			return
		}
		t.Hub.Deliver(m.entry)
	case kindNotice:
		if b.sawPartition(m.masked, m.length, m.terminated) && t.Hub != nil {
			t.Hub.Poke(m.masked)
		}
	case kindEntries:
		if t.Mailbox != nil {
			t.Mailbox.Poke(m.clientID)
		}
	case kindAll:
		if t.Mailbox != nil {
			t.Mailbox.Poke(0)
		}
	case kindRevoked:
		if t.Sockets != nil {
			t.Sockets.CloseClient(m.clientID, protocol.CloseRevoked, "token revoked")
		}
	case kindQueued:
		if t.Federation != nil {
			t.Federation.Wake(m.peer)
		}
	case kindCopy:
		if t.Copies != nil {
			t.Copies.Poke(m.masked)
		}
	}
}

// sawPartition records a length another node announced; it reports whether this
// node still follows the partition.
func (b *Bus) sawPartition(masked []byte, length uint32, terminated bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	w := b.parts[string(masked)]
	if w == nil {
		return false
	}
	w.saw(length, terminated)
	return true
}

// syncLoop confirms new watches, and resyncs every subscriber after a reconnect or
// a drop: both wait for a round trip to the server (after it, the server has every
// subscription sent before), then make the subscribers read the store.
func (b *Bus) syncLoop(ctx context.Context, t Targets) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.fresh:
			b.mu.Lock()
			parts, mboxes, copies := b.pendingParts, b.pendingMboxes, b.pendingCopies
			b.pendingParts, b.pendingMboxes, b.pendingCopies = nil, nil, nil
			b.mu.Unlock()
			b.flush()
			for _, w := range parts {
				if t.Hub != nil {
					t.Hub.Poke(w.masked)
				}
			}
			for _, id := range mboxes {
				if t.Mailbox != nil {
					t.Mailbox.Poke(id)
				}
			}
			for _, masked := range copies {
				if t.Copies != nil {
					t.Copies.Poke(masked)
				}
			}
		case <-b.resync:
			b.resyncs.Add(1)
			b.flush()
			if t.Hub != nil {
				t.Hub.Poke(nil)
			}
			if t.Mailbox != nil {
				t.Mailbox.Poke(0)
			}
			if t.Copies != nil {
				t.Copies.Poke(nil)
			}
		}
	}
}

// flush waits for the server's answer to a ping; when it is down, the subscribers
// read the store anyway, and read it again once the connection is back.
func (b *Bus) flush() {
	if err := b.nc.FlushTimeout(flushTimeout); err != nil {
		b.log.Debug("natsbus: flush", "err", err)
	}
}

// pollLoop is the safety net for notifications lost without a disconnect or a
// reported drop: every PollInterval it compares each followed partition's length
// in the store with what the bus saw, pokes those that moved, and makes live
// mailboxes refetch.
func (b *Bus) pollLoop(ctx context.Context, t Targets) {
	tick := time.NewTicker(b.cfg.PollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		b.poll(ctx, t)
	}
}

func (b *Bus) poll(ctx context.Context, t Targets) {
	b.mu.Lock()
	watches := make([]*partWatch, 0, len(b.parts))
	for _, w := range b.parts {
		watches = append(watches, w)
	}
	mboxes, copies := len(b.mboxes), b.copies
	b.mu.Unlock()
	if t.Hub != nil {
		for _, w := range watches {
			if ctx.Err() != nil {
				return
			}
			info, err := t.Hub.Partition(ctx, w.masked)
			if err != nil {
				continue
			}
			b.polled.Add(1)
			b.mu.Lock()
			stale := w.next < int64(info.Length) || (info.Terminated && !w.terminated)
			w.saw(info.Length, info.Terminated)
			b.mu.Unlock()
			if stale {
				b.pollPokes.Add(1)
				t.Hub.Poke(w.masked)
			}
		}
	}
	if mboxes > 0 && t.Mailbox != nil {
		t.Mailbox.Poke(0)
	}
	if copies > 0 && t.Copies != nil {
		t.Copies.Poke(nil) // copies have no length to compare: their sinks read the store
	}
}
