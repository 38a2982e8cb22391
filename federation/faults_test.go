package federation_test

import (
	"testing"
	"time"

	"github.com/mimids/mimids/federation"
	"github.com/mimids/mimids/federation/fedtest/tcpproxy"
	"github.com/mimids/mimids/sqlite"
)

// TestRestartMidStream stops and reopens one side on the same store and port while
// envelopes are in flight: every envelope is applied exactly once, in order, and
// the sender's queue drains (nothing acknowledged is lost, nothing applied twice).
func TestRestartMidStream(t *testing.T) {
	const total = 300
	for _, side := range []string{"sender", "receiver"} {
		t.Run(side, func(t *testing.T) {
			f := newFed(t)
			a := f.newNode("a.example")
			b := f.newNode("b.example", withApplyDelay(time.Millisecond))
			mesh(a, b)
			a.sendN(t, "b.example", total)
			eventually(t, "a quarter applied", func() bool { return len(b.applied("a.example")) >= total/4 })
			restarted := a
			if side == "receiver" {
				restarted = b
			}
			restarted.restart()
			if n := len(b.applied("a.example")); n >= total {
				t.Fatalf("all %d applied before the restart: the test restarted nothing mid-stream", n)
			}
			eventually(t, "the queue drained", func() bool { return a.depth("b.example") == 0 })
			checkOnceInOrder(t, b.applied("a.example"), total)
			t.Logf("%s restarted; receiver answered %d retries from its dedup records", side, b.links.Stats().Duplicates)
		})
	}
}

// TestProxyCut runs the link through a TCP proxy that cuts every connection mid
// stream, twice: the sender reconnects and resumes, every envelope applied once, in
// order.
func TestProxyCut(t *testing.T) {
	const total = 300
	f := newFed(t)
	a := f.newNode("a.example")
	b := f.newNode("b.example", withApplyDelay(time.Millisecond))
	p := tcpproxy.Start(t, b.addr)
	// Only a dials (through the proxy): b's entry for a points nowhere.
	a.trustAs(federation.Peer{Domain: "b.example", URL: "wss://" + p.Addr(), CA: f.ca.CertPEM()})
	b.trustAs(federation.Peer{Domain: "a.example", URL: "wss://" + freeAddr(t), CA: f.ca.CertPEM()})
	a.start()
	b.start()
	a.sendN(t, "b.example", total)
	for _, at := range []int{total / 4, total / 2} {
		eventually(t, "progress", func() bool { return len(b.applied("a.example")) >= at })
		if n := p.Cut(); n == 0 {
			t.Fatal("no connection to cut")
		}
	}
	eventually(t, "the queue drained", func() bool { return a.depth("b.example") == 0 })
	checkOnceInOrder(t, b.applied("a.example"), total)
	if c := p.Accepted(); c < 3 {
		t.Fatalf("%d connections through the proxy, want at least 3", c)
	}
}

// TestSimultaneousDial holds both providers' first dials until both are in flight,
// so that each side sees two links: both keep the one dialled by a.example (the
// domain that sorts first), close the other with 4020, and stay on it.
func TestSimultaneousDial(t *testing.T) {
	f := newFed(t)
	a, b := f.newNode("a.example"), f.newNode("b.example")
	pa, pb := tcpproxy.Start(t, a.addr), tcpproxy.Start(t, b.addr)
	gate := make(chan struct{})
	for _, p := range []*tcpproxy.Proxy{pa, pb} {
		p.Hold(gate)
	}
	a.trustAs(federation.Peer{Domain: "b.example", URL: "wss://" + pb.Addr(), CA: f.ca.CertPEM()})
	b.trustAs(federation.Peer{Domain: "a.example", URL: "wss://" + pa.Addr(), CA: f.ca.CertPEM()})
	a.start()
	b.start()
	eventually(t, "both dials in flight", func() bool { return pa.Accepted() >= 1 && pb.Accepted() >= 1 })
	close(gate)
	agreed := func() bool {
		sa, _ := a.links.Status("b.example")
		sb, _ := b.links.Status("a.example")
		return sa.State == federation.StateUp && sb.State == federation.StateUp && sa.Dialer == "a.example" && sb.Dialer == "a.example"
	}
	eventually(t, "one link, dialled by a.example, on both sides", agreed)
	dup := func() uint64 { return a.links.Closes()["duplicate_link"] + b.links.Closes()["duplicate_link"] }
	eventually(t, "the other link closed with 4020", func() bool { return dup() >= 1 })
	links := a.links.Stats().Links + b.links.Stats().Links
	time.Sleep(300 * time.Millisecond)
	if !agreed() || a.links.Stats().Links+b.links.Stats().Links != links {
		t.Fatal("the link changed after the dials resolved")
	}
	a.sendN(t, "b.example", 20)
	b.sendN(t, "a.example", 20)
	eventually(t, "delivered both ways", func() bool { return a.depth("b.example") == 0 && b.depth("a.example") == 0 })
	checkOnceInOrder(t, b.applied("a.example"), 20)
	checkOnceInOrder(t, a.applied("b.example"), 20)
	t.Logf("links attached %d, closed as duplicates %d", links, dup())
}

// TestStatusRecorded: the running server records the link's state in the store,
// where `mimids peer list` reads it, and marks it stopped on shutdown.
func TestStatusRecorded(t *testing.T) {
	f := newFed(t)
	a, b := f.newNode("a.example"), f.newNode("b.example")
	mesh(a, b)
	stored := func() federation.PeerStatus {
		st, err := a.db.PeerStatuses(ctx)
		if err != nil || len(st) > 1 {
			t.Fatalf("statuses %+v, %v", st, err)
		}
		if len(st) == 0 {
			return federation.PeerStatus{}
		}
		return st[0]
	}
	eventually(t, "up recorded", func() bool { return stored().State == federation.StateUp })
	if s := stored(); s.Dialer == "" || s.UpdatedAt.IsZero() {
		t.Fatalf("recorded %+v", s)
	}
	b.stop()
	eventually(t, "away recorded", func() bool { s := stored(); return s.State == federation.StateAway && s.LastError != "" })
	a.stop()
	db, err := sqlite.Open(ctx, a.dbPath, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, err := db.PeerStatuses(ctx)
	if err != nil || len(st) != 1 || st[0].State != federation.StateStopped {
		t.Fatalf("after shutdown: %+v, %v", st, err)
	}
}

// TestEntryChangedWhileDialling: a's entry for b changes (a new URL) while a's dial
// over the old one is in flight, held by a proxy. The link that dial makes once
// the proxy lets it through is closed (4021: the entry it was dialled with is
// gone) and a dials the new URL: no link stays up over an entry the allow-list no
// longer has.
func TestEntryChangedWhileDialling(t *testing.T) {
	f := newFed(t)
	a, b := f.newNode("a.example"), f.newNode("b.example")
	old, cur := tcpproxy.Start(t, b.addr), tcpproxy.Start(t, b.addr)
	gate := make(chan struct{})
	old.Hold(gate)
	a.trustAs(federation.Peer{Domain: "b.example", URL: "wss://" + old.Addr(), CA: f.ca.CertPEM()})
	b.trustAs(federation.Peer{Domain: "a.example", URL: "wss://" + freeAddr(t), CA: f.ca.CertPEM()}) // only a dials
	a.start()
	b.start()
	eventually(t, "a dials the old URL", func() bool { return old.Accepted() >= 1 })
	a.trustAs(federation.Peer{Domain: "b.example", URL: "wss://" + cur.Addr(), CA: f.ca.CertPEM()})
	close(gate)
	eventually(t, "the link runs over the new URL only", func() bool {
		st, _ := a.links.Status("b.example")
		return st.State == federation.StateUp && old.Open() == 0 && cur.Open() == 1
	})
	a.sendN(t, "b.example", 10)
	eventually(t, "b gets what a sent", func() bool { return len(b.applied("a.example")) == 10 })
	if old.Open() != 0 {
		t.Fatal("a link over the old URL came back")
	}
}
