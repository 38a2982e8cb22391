package federation_test

import (
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/mimids/mimids/federation"
	"github.com/mimids/mimids/protocol"
)

// vanishingProxy is a TCP proxy whose target can vanish: the connections to the
// target are cut, while the dialler's side stays open and silent (what it sends is
// read and dropped, nothing comes back), as when the peer's host dies without a
// FIN or RST reaching us.
type vanishingProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	ups    []net.Conn // toward the target; Guarded by mu.
	downs  []net.Conn // toward the dialler; Guarded by mu.
}

func newVanishingProxy(t *testing.T, target string) *vanishingProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &vanishingProxy{ln: ln, target: target}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.pipe(c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range append(p.ups, p.downs...) {
			c.Close()
		}
	})
	return p
}

func (p *vanishingProxy) pipe(down net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		down.Close()
		return
	}
	p.mu.Lock()
	p.ups, p.downs = append(p.ups, up), append(p.downs, down)
	p.mu.Unlock()
	go func() {
		io.Copy(up, down)
		io.Copy(io.Discard, down) // after the target vanished: swallow, never close
	}()
	io.Copy(down, up) // returns when up is cut; down stays open
}

// vanish cuts every connection to the target and leaves the diallers' open.
func (p *vanishingProxy) vanish() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.ups {
		c.Close()
	}
	n := len(p.ups)
	p.ups = nil
	return n
}

// TestStaleLinkReplaced: a.example (which sorts first) dials b.example through a
// proxy; the link is up. b's host vanishes without a close reaching a (the proxy
// keeps a's side open and silent), and b restarts on its store and dials a directly.
// By the domain rule a's link would win over b's new one until a's pings found it
// dead (a minute here); instead a probes it, gets no answer within the probe
// timeout, and takes b's new link within about a second. Envelopes queued at a for
// b while b was away arrive, once each.
func TestStaleLinkReplaced(t *testing.T) {
	f := newFed(t)
	slow := func(c *federation.Config) {
		c.PingInterval, c.WriteTimeout = time.Minute, 30*time.Second
		c.ProbeTimeout = 500 * time.Millisecond
	}
	withSlow := func(n *node) { n.cfg = slow }
	a, b := f.newNode("a.example", withSlow), f.newNode("b.example", withSlow)
	p := newVanishingProxy(t, b.addr)
	a.trustAs(federation.Peer{Domain: "b.example", URL: "wss://" + p.ln.Addr().String(), CA: f.ca.CertPEM()})
	b.trustAs(federation.Peer{Domain: "a.example", URL: "wss://" + freeAddr(t), CA: f.ca.CertPEM()}) // only a dials, for now
	a.start()
	b.start()
	eventually(t, "the link up on both sides", func() bool { return a.up("b.example") && b.up("a.example") })
	a.sendN(t, "b.example", 10)
	eventually(t, "the first envelopes applied", func() bool { return len(b.applied("a.example")) == 10 })
	st, _ := a.links.Status("b.example")
	if st.Dialer != "a.example" {
		t.Fatalf("the link was dialled by %s, want a.example (the test needs a's own link up)", st.Dialer)
	}

	if n := p.vanish(); n == 0 {
		t.Fatal("no connection through the proxy")
	}
	b.stop()
	a.sendN(t, "b.example", 10)
	b.open()
	b.trust(a) // the restarted b dials a directly
	restarted := time.Now()
	b.start()
	deadline := restarted.Add(5 * time.Second)
	for {
		st, _ := a.links.Status("b.example")
		if st.State == federation.StateUp && st.Dialer == "b.example" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a kept its stale link for %v after b restarted: %+v", time.Since(restarted), st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	took := time.Since(restarted)
	eventually(t, "the queued envelopes delivered", func() bool { return a.depth("b.example") == 0 })
	checkOnceInOrder(t, b.applied("a.example"), 20)
	eventually(t, "the stale link closed as stale (4008)", func() bool { return a.links.Closes()["slow_consumer"] == 1 })
	t.Logf("b's new link accepted %v after b restarted (probe timeout 500ms, ping interval 1m)", took.Round(time.Millisecond))
}

// TestLiveLinkKept: with both links alive the probe changes nothing: a link b
// dials while a's own is up (and answering) loses with 4020, and a's stays.
func TestLiveLinkKept(t *testing.T) {
	f := newFed(t)
	a, b := f.newNode("a.example"), f.newNode("b.example")
	p := newVanishingProxy(t, b.addr)
	a.trustAs(federation.Peer{Domain: "b.example", URL: "wss://" + p.ln.Addr().String(), CA: f.ca.CertPEM()})
	b.trustAs(federation.Peer{Domain: "a.example", URL: "wss://" + freeAddr(t), CA: f.ca.CertPEM()}) // b never reaches a
	a.start()
	b.start()
	eventually(t, "a's link up", func() bool { return a.up("b.example") && b.up("a.example") })
	peers, err := b.db.Peers(ctx)
	if err != nil || len(peers) != 1 {
		t.Fatalf("b's peers: %v %v", peers, err)
	}
	ws, err := rawDial(t, a, "b.example", b.cert, fmt.Sprintf("%016x", peers[0].Stream))
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	var code websocket.StatusCode
	for i := 0; i < 5 && code == 0; i++ {
		_, code = readFrame(t, ws)
	}
	if code != protocol.CloseDuplicateLink {
		t.Fatalf("b's second link closed with %d, want 4020", code)
	}
	if st, _ := a.links.Status("b.example"); st.State != federation.StateUp || st.Dialer != "a.example" || a.links.Closes()["slow_consumer"] != 0 {
		t.Fatalf("a's live link was replaced: %+v, closes %v", st, a.links.Closes())
	}
	a.sendN(t, "b.example", 5)
	eventually(t, "delivered on a's link", func() bool { return a.depth("b.example") == 0 })
}
