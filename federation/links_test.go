package federation_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mimids/mimids/federation"
	"github.com/mimids/mimids/protocol"
)

// TestDeliveredInOrder: two providers over loopback TLS; envelopes both ways are
// delivered in order, applied once and answered; Call returns the answer, a refusal
// or an unknown type as a coded error; OnAnswer sees every answer.
func TestDeliveredInOrder(t *testing.T) {
	f := newFed(t)
	a, b := f.newNode("a.example"), f.newNode("b.example")
	mesh(a, b)
	eventually(t, "the link up on both sides", func() bool { return a.up("b.example") && b.up("a.example") })
	a.sendN(t, "b.example", 100)
	b.sendN(t, "a.example", 50)
	eventually(t, "both queues drained", func() bool { return a.depth("b.example") == 0 && b.depth("a.example") == 0 })
	checkOnceInOrder(t, b.applied("a.example"), 100)
	checkOnceInOrder(t, a.applied("b.example"), 50)

	tests := []struct {
		name     string
		typ      protocol.EnvelopeType
		wantBody string
		wantCode protocol.Code
	}{
		{"ack", typeApply, "ok:ping", 0},
		{"plain handler", typePlain, "ping", 0},
		{"refused", typeRefuse, "", protocol.CodePolicy},
		{"unknown type", typeNone, "", protocol.CodeUnknownMethod},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body, err := a.links.Call(ctx, "b.example", tc.typ, []byte("ping"))
			if tc.wantCode == 0 {
				if err != nil || string(body) != tc.wantBody {
					t.Fatalf("Call = %q, %v; want %q", body, err, tc.wantBody)
				}
				return
			}
			var ee *protocol.EnvelopeError
			if code, _ := protocol.CodeOf(err); !errors.As(err, &ee) || code != tc.wantCode {
				t.Fatalf("Call = %q, %v; want an error envelope with %s", body, err, tc.wantCode)
			}
		})
	}
	a.answersMu.Lock()
	n := len(a.answers)
	first := a.answers[0]
	a.answersMu.Unlock()
	if n != 101 || first.Peer != "b.example" || first.ID != 1 || string(first.Body) != "ok:m0" || string(first.Sent) != "m0" {
		t.Fatalf("OnAnswer saw %d answers, first %+v", n, first)
	}
	if _, err := a.links.Send(ctx, "x.example", typeApply, nil); !errors.Is(err, federation.ErrUnknownPeer) {
		t.Fatalf("send to a peer not on the allow-list: %v", err)
	}
	if _, err := a.links.Send(ctx, "b.example", typeApply, make([]byte, protocol.MaxEnvelopeBody+1)); !errors.Is(err, federation.ErrTooLarge) {
		t.Fatalf("send of an oversized body: %v", err)
	}
	if st := a.links.Stats(); st.Applied != 50 || st.Answered != 104 {
		t.Fatalf("stats of a: %+v", st)
	}
}

// TestThreeProviders: every provider trusts the other two; each has one link per
// peer, and envelopes between every pair arrive in order, once.
func TestThreeProviders(t *testing.T) {
	f := newFed(t)
	nodes := []*node{f.newNode("a.example"), f.newNode("b.example"), f.newNode("c.example")}
	mesh(nodes...)
	for _, from := range nodes {
		for _, to := range nodes {
			if from != to {
				from.sendN(t, to.domain, 30)
			}
		}
	}
	for _, n := range nodes {
		for _, p := range nodes {
			if n != p {
				eventually(t, fmt.Sprintf("%s's queue for %s drained", n.domain, p.domain), func() bool { return n.depth(p.domain) == 0 })
			}
		}
	}
	for _, n := range nodes {
		for _, p := range nodes {
			if n == p {
				continue
			}
			checkOnceInOrder(t, n.applied(p.domain), 30)
			if !n.up(p.domain) {
				t.Fatalf("%s: no link with %s", n.domain, p.domain)
			}
		}
	}
	// One link per pair: both ends name the same dialer.
	for i, n := range nodes {
		for _, p := range nodes[i+1:] {
			s1, _ := n.links.Status(p.domain)
			s2, _ := p.links.Status(n.domain)
			if s1.Dialer != s2.Dialer {
				t.Fatalf("%s-%s: dialers %q and %q: two links", n.domain, p.domain, s1.Dialer, s2.Dialer)
			}
		}
	}
}

// TestPeerAway: while the peer is down, envelopes stay queued in the store and the
// dialer retries with growing waits; once the peer comes up they are delivered.
func TestPeerAway(t *testing.T) {
	f := newFed(t)
	addr := freeAddr(t)
	a := f.newNode("a.example")
	a.trustAs(federation.Peer{Domain: "b.example", URL: "wss://" + addr, CA: f.ca.CertPEM()})
	a.start()
	a.sendN(t, "b.example", 10)
	if d := a.depth("b.example"); d != 10 {
		t.Fatalf("queue depth %d, want 10", d)
	}
	start := time.Now()
	eventually(t, "three failed dials", func() bool { st, _ := a.links.Status("b.example"); return st.Attempts >= 3 })
	time.Sleep(time.Second) // observe the backoff for a while
	st, _ := a.links.Status("b.example")
	elapsed := time.Since(start)
	// MinBackoff 20ms doubling to MaxBackoff 200ms with equal jitter: at least
	// 100ms between dials once at the cap. Without backoff there would be hundreds.
	if maxDials := 4 + int(elapsed/(100*time.Millisecond)); st.Attempts > maxDials || st.State != federation.StateAway || st.LastError == "" {
		t.Fatalf("after %v: %+v (at most %d dials expected)", elapsed, st, maxDials)
	}
	stored, err := a.db.PeerStatuses(ctx)
	if err != nil || len(stored) != 1 || stored[0].State != federation.StateAway || stored[0].Attempts == 0 {
		t.Fatalf("recorded status %+v, %v", stored, err)
	}
	t.Logf("%d dials in %v while away; last error %q", st.Attempts, elapsed, st.LastError)

	b := f.newNode("b.example", withAddr(addr))
	b.trust(a)
	b.start()
	eventually(t, "the queue drained", func() bool { return a.depth("b.example") == 0 })
	checkOnceInOrder(t, b.applied("a.example"), 10)
}

// TestPeerRemoved: removing a peer closes its link with 4021 and stops dialling it.
func TestPeerRemoved(t *testing.T) {
	f := newFed(t)
	a, b := f.newNode("a.example"), f.newNode("b.example")
	mesh(a, b)
	eventually(t, "the link up", func() bool { return a.up("b.example") && b.up("a.example") })
	if ok, err := b.db.RemovePeer(ctx, "a.example"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	// Picked up by the periodic refresh, as when `mimids peer remove` runs beside.
	eventually(t, "a's link closed", func() bool { return !a.up("b.example") })
	eventually(t, "4021 counted", func() bool { return b.links.Closes()["peer_removed"] >= 1 })
	if _, ok := b.links.Status("a.example"); ok {
		t.Fatal("b still knows a")
	}
	refused := b.links.Stats().Refused
	eventually(t, "a's dials refused by b", func() bool { return b.links.Stats().Refused > refused })
}

// TestCallWaits: Call blocks until the answer, and a Call whose context ends leaves
// the envelope queued; it is delivered later and seen by OnAnswer only.
func TestCallWaits(t *testing.T) {
	f := newFed(t)
	a := f.newNode("a.example")
	addr := freeAddr(t)
	a.trustAs(federation.Peer{Domain: "b.example", URL: "wss://" + addr, CA: f.ca.CertPEM()})
	a.start()
	c, cancel := contextWithTimeout(200 * time.Millisecond)
	defer cancel()
	_, err := a.links.Call(c, "b.example", typeApply, []byte("later"))
	if !errors.Is(err, errDeadline) {
		t.Fatalf("Call while away = %v", err)
	}
	b := f.newNode("b.example", withAddr(addr))
	b.trust(a)
	b.start()
	eventually(t, "delivered after all", func() bool { return len(b.applied("a.example")) == 1 })
	eventually(t, "answer seen", func() bool { a.answersMu.Lock(); defer a.answersMu.Unlock(); return len(a.answers) == 1 })
}

// BenchmarkLink measures envelopes per second over one link: each committed to the
// sender's queue, sent, applied by an atomic handler that writes a row, recorded
// with its answer, acknowledged and removed from the queue (SQLite, synchronous
// normal, one process for both sides).
func BenchmarkLink(b *testing.B) {
	f := newFed(b)
	x, y := f.newNode("a.example"), f.newNode("b.example")
	mesh(x, y)
	eventually(b, "the link up", func() bool { return x.up("b.example") && y.up("a.example") })
	body := make([]byte, 256)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := x.links.Send(ctx, "b.example", typeApply, body); err != nil {
			b.Fatal(err)
		}
	}
	eventually(b, "the queue drained", func() bool { return x.depth("b.example") == 0 })
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "envelopes/s")
}
