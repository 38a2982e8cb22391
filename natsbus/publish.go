package natsbus

import (
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/mimids/mimids/directory/mailbox"
	"github.com/mimids/mimids/hub"
)

// maxMailboxNotices is the most per-client notices one Enqueue publishes; a larger
// fan-out (a notice to every client) is one "every mailbox" notice instead.
const maxMailboxNotices = 64

func (b *Bus) getBuf() *[]byte {
	if bp, ok := b.bufs.Get().(*[]byte); ok {
		return bp
	}
	buf := make([]byte, 0, 512)
	return &buf
}

func (b *Bus) putBuf(bp *[]byte, buf []byte) {
	if cap(buf) <= 2*b.cfg.MaxInline {
		*bp = buf[:0]
		b.bufs.Put(bp)
	}
}

// PartitionCommitted implements hub.Bus: it publishes the entry whole, or its
// counter when it is larger than MaxInline or the terminated event.
func (b *Bus) PartitionCommitted(e hub.Entry) {
	length := e.Counter + 1
	if e.Terminated {
		length = e.Counter
	}
	b.mu.Lock()
	if w := b.parts[string(e.Masked)]; w != nil {
		w.saw(length, e.Terminated)
	}
	b.mu.Unlock()
	bp := b.getBuf()
	buf := *bp
	if e.Terminated || len(e.Message)+len(e.GroupInfo)+len(e.NextMasked)+len(e.Masked)+32 > b.cfg.MaxInline {
		buf = appendNotice(buf, e.Masked, length, e.Terminated)
	} else {
		buf = appendEntry(buf, e)
	}
	b.publish(b.partSubject(e.Masked), buf)
	b.putBuf(bp, buf)
}

// WatchPartition implements hub.Bus: it subscribes to the partition's subject.
// Once the server confirms the subscription, the partition's sinks refetch, so an
// entry committed elsewhere before this node's interest reached the server is read
// from the store.
func (b *Bus) WatchPartition(masked []byte) (cancel func()) {
	w := &partWatch{masked: append([]byte(nil), masked...), next: -1}
	sub, err := b.nc.ChanSubscribe(b.partSubject(masked), b.in)
	if err != nil {
		b.log.Warn("natsbus: subscribe partition", "partition", fmt.Sprintf("%x", masked), "err", err)
	}
	w.sub = sub
	key := string(w.masked)
	b.mu.Lock()
	b.parts[key] = w
	b.pendingParts = append(b.pendingParts, w)
	b.mu.Unlock()
	b.kickConfirm()
	return func() {
		b.mu.Lock()
		if b.parts[key] == w {
			delete(b.parts, key)
		}
		b.mu.Unlock()
		unsubscribe(sub)
	}
}

// MailboxCommitted implements mailbox.Bus: one notice per client, or one for
// every mailbox past maxMailboxNotices.
func (b *Bus) MailboxCommitted(entries []mailbox.Entry) {
	bp := b.getBuf()
	buf := *bp
	if len(entries) > maxMailboxNotices {
		buf = append(buf[:0], kindAll)
		b.publish(b.cfg.Subject+".m.all", buf)
	} else {
		for i, e := range entries {
			if i > 0 && entries[i-1].ClientID == e.ClientID {
				continue
			}
			buf = appendClient(buf[:0], kindEntries, e.ClientID)
			b.publish(b.mailboxSubject(e.ClientID), buf)
		}
	}
	b.putBuf(bp, buf)
}

// WatchMailbox implements mailbox.Bus: it subscribes to the client's subject, and
// the client's sinks refetch once the server confirms it.
func (b *Bus) WatchMailbox(clientID int64) (cancel func()) {
	sub, err := b.nc.ChanSubscribe(b.mailboxSubject(clientID), b.in)
	if err != nil {
		b.log.Warn("natsbus: subscribe mailbox", "client_id", clientID, "err", err)
	}
	b.mu.Lock()
	b.mboxes[clientID] = sub
	b.pendingMboxes = append(b.pendingMboxes, clientID)
	b.mu.Unlock()
	b.kickConfirm()
	return func() {
		b.mu.Lock()
		if b.mboxes[clientID] == sub {
			delete(b.mboxes, clientID)
		}
		b.mu.Unlock()
		unsubscribe(sub)
	}
}

// Revoked implements gateway.Revocations.
func (b *Bus) Revoked(clientID int64) {
	bp := b.getBuf()
	buf := appendClient(*bp, kindRevoked, clientID)
	b.publish(b.cfg.Subject+".r", buf)
	b.putBuf(bp, buf)
}

func unsubscribe(sub *nats.Subscription) {
	if sub != nil {
		_ = sub.Unsubscribe() // fails only on a closed connection, which dropped it
	}
}

func (b *Bus) kickConfirm() {
	select {
	case b.fresh <- struct{}{}:
	default:
	}
}

// saw records that the partition's length is at least length.
func (w *partWatch) saw(length uint32, terminated bool) {
	if int64(length) > w.next {
		w.next = int64(length)
	}
	if terminated {
		w.terminated = true
	}
}
