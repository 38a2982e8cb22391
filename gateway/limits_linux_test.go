package gateway_test

// Resource exhaustion at the socket edge (issue 15, items 1 and 2), attacked from
// outside: real sockets against a real provider (providertest). Linux only: the
// tests dial from several loopback addresses and shrink their receive buffers so
// that a peer that does not read stops the server's writes at once.

import (
	"context"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/directory/mailbox"
	"github.com/mimids/mimids/gateway"
	"github.com/mimids/mimids/protocol"
)

// smallRecv is a dialer whose sockets have a receive buffer of a few KiB.
var smallRecv = dialer{control: func(_, _ string, rc syscall.RawConn) error {
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 8<<10)
	}); err != nil {
		return err
	}
	return serr
}}

// TestSocketCaps: one device token cannot hold more than max_sockets_per_client
// sockets, nor one user more than max_sockets_per_user: the extra socket gets a
// rate_limited error and close 4009, is counted, and a slot freed is usable again.
func TestSocketCaps(t *testing.T) {
	p := startProvider(t, func(c *gateway.Config) { c.MaxSocketsPerClient, c.MaxSocketsPerUser = 3, 4 })
	_, phone := addClient(t, p, "alice", "phone")
	_, laptop := addClient(t, p, "alice", "laptop")
	var d dialer
	var phones []*rawConn
	for i := 0; i < 3; i++ {
		rc, f := d.login(t, p, phone)
		if _, ok := f.(*protocol.AuthOK); !ok {
			t.Fatalf("phone socket %d: %#v", i, f)
		}
		phones = append(phones, rc)
	}
	refused := func(token, what string) {
		t.Helper()
		rc, f := d.login(t, p, token)
		if e, ok := f.(*protocol.Error); !ok || e.Code != protocol.CodeRateLimited {
			t.Fatalf("%s: got %#v, want a rate_limited error", what, f)
		}
		if code := rc.closeCode(); code != protocol.CloseTooMany {
			t.Fatalf("%s: close %d, want %d", what, code, protocol.CloseTooMany)
		}
	}
	refused(phone, "4th socket of the phone")
	if rc, f := d.login(t, p, laptop); f.Type() != protocol.TypeAuthOK {
		t.Fatalf("laptop: %#v", f)
	} else {
		defer rc.c.CloseNow()
	}
	refused(laptop, "5th socket of alice")
	m := p.Metrics(t)
	if m[`mimids_sockets_refused_total{reason="too_many_sockets_client"}`] != 1 ||
		m[`mimids_sockets_refused_total{reason="too_many_sockets_user"}`] != 1 ||
		m[`mimids_socket_closes_total{reason="too_many_sockets"}`] != 2 {
		t.Fatalf("metrics: %v", m)
	}
	phones[0].c.Close(websocket.StatusNormalClosure, "")
	eventually(t, "a phone socket again", func() bool {
		rc, f := d.login(t, p, phone)
		defer rc.c.CloseNow()
		return f.Type() == protocol.TypeAuthOK
	})
}

// TestNonReadingSocketsBounded is the item-1 attack: many sockets of one token that
// never read, to a mailbox of 8 entries of 1 MiB. What the server queues for them
// stays within client_queue_bytes (its queued-bytes gauge), not sockets x mailbox;
// once they read, every socket gets every entry, in order.
func TestNonReadingSocketsBounded(t *testing.T) {
	const sockets, entries = 16, 8
	p := startProvider(t, func(c *gateway.Config) {
		c.MaxSocketsPerClient = sockets
		c.WriteTimeout = gateway.Duration(time.Minute) // the test decides when they read
	})
	cl, tok := addClient(t, p, "alice", "phone")
	// Frames of exactly 1 MiB: two sockets' queues (8 MiB each) use the client's
	// budget (16 MiB) to the byte, and the others must still get auth_ok.
	fillMailbox(t, p, cl, entries, 1<<20)
	// Answers are charged but not refused: the limit, plus an auth_ok per socket.
	limit := float64(p.Config.Gateway.ClientQueueBytes + sockets*256)
	peak := 0.0
	sample := func() {
		q := p.Metrics(t)["mimids_socket_queued_bytes"]
		if q > limit {
			t.Fatalf("queued %v bytes for one client, limit %v", q, limit)
		}
		peak = max(peak, q)
	}
	d := smallRecv
	var rcs []*rawConn
	for i := 0; i < sockets; i++ {
		rc, f := d.login(t, p, tok)
		if f.Type() != protocol.TypeAuthOK {
			t.Fatalf("socket %d: %#v", i, f)
		}
		rcs = append(rcs, rc)
		sample()
	}
	for i := 0; i < 20; i++ {
		sample()
		time.Sleep(10 * time.Millisecond)
	}
	if peak < float64(4*mailbox.MaxPayload) {
		t.Fatalf("peak queued %v bytes: the sockets were not loaded", peak)
	}
	t.Logf("peak queued %.0f bytes for %d sockets of one client (limit %.0f)", peak, sockets, limit)
	// They read at once: the budget goes to whichever socket has room, so a socket
	// read alone may wait for the others.
	errs := make(chan error, sockets)
	for _, rc := range rcs {
		go func() { errs <- readEntries(rc, entries) }()
	}
	for i := 0; i < sockets; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		sample()
	}
	eventually(t, "the queues empty", func() bool { return p.Metrics(t)["mimids_socket_queued_bytes"] == 0 })
}

// TestQueueBudgetShedsLargest: when the bytes queued for all sockets pass
// total_queue_bytes, the socket with the largest queue is closed (4010) and the
// others are left alone; nothing is lost, the entries wait in the mailbox.
func TestQueueBudgetShedsLargest(t *testing.T) {
	p := startProvider(t, func(c *gateway.Config) {
		c.SendQueueBytes, c.ClientQueueBytes, c.TotalQueueBytes = 16<<20, 16<<20, 22<<20
		c.WriteTimeout = gateway.Duration(time.Minute)
	})
	const size = 1 << 20 // bytes per deliver frame
	d := smallRecv
	queued := 0.0
	clients := map[string]directory.Client{}
	// 5 + 8 entries of 1 MiB fit the budget of 22 MiB; 12 more do not.
	for _, c := range []struct {
		user    string
		entries int
	}{{"small", 5}, {"mid", 8}, {"big", 12}} {
		cl, tok := addClient(t, p, c.user, "phone")
		clients[c.user] = cl
		fillMailbox(t, p, cl, c.entries, size)
		if _, f := d.login(t, p, tok); f.Type() != protocol.TypeAuthOK {
			t.Fatalf("%s: %#v", c.user, f)
		}
		if c.user == "big" {
			break
		}
		// The peer does not read: the whole queue stays charged until written.
		queued += float64(c.entries * size)
		eventually(t, c.user+"'s queue filled", func() bool { return p.Metrics(t)["mimids_socket_queued_bytes"] >= queued })
	}
	eventually(t, "the largest queue closed", func() bool {
		return p.Metrics(t)[`mimids_socket_closes_total{reason="overloaded"}`] == 1
	})
	for user, want := range map[string]int{"small": 1, "mid": 1, "big": 0} {
		eventually(t, user+"'s sockets", func() bool { return connected(t, p, user) == want })
	}
	if m := p.Metrics(t); m[`mimids_socket_closes_total{reason="overloaded"}`] != 1 || m["mimids_socket_queued_bytes"] > float64(22<<20) {
		t.Fatalf("after shedding: %v closed overloaded, %v bytes queued", m[`mimids_socket_closes_total{reason="overloaded"}`], m["mimids_socket_queued_bytes"])
	}
	if st, err := p.Mailbox.Status(context.Background(), clients["big"].ID); err != nil || st.Pending != 12 {
		t.Fatalf("big's mailbox after the close: %+v, %v", st, err)
	}
}

// TestPreAuthFrameLimit: before auth the read limit is max_auth_frame_size, so a
// socket that starts a 1 MiB "auth" frame is closed (1009) once it has sent a few
// KiB, long before the auth timeout, and the server holds no more than that; after
// auth_ok the limit is max_frame_size again.
func TestPreAuthFrameLimit(t *testing.T) {
	p := startProvider(t, nil)
	_, tok := addClient(t, p, "alice", "phone")
	var d dialer
	ws, _, err := d.dial(t, p)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	w, err := ws.Writer(ctx, websocket.MessageBinary)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 2<<10)
	chunk[0] = byte(protocol.TypeAuth)
	for sent := 0; sent < 8<<10; sent += len(chunk) { // the start of a 1 MiB frame
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err = ws.Read(ctx)
	if code := websocket.CloseStatus(err); code != websocket.StatusMessageTooBig || time.Since(start) > 3*time.Second {
		t.Fatalf("after 8 KiB of a frame: close %d after %v (%v)", code, time.Since(start), err)
	}
	rc, f := d.login(t, p, tok)
	if f.Type() != protocol.TypeAuthOK {
		t.Fatalf("auth: %#v", f)
	}
	body := make([]byte, 100<<10)
	rc.send(&protocol.Request{RequestID: 2, Method: protocol.MethodPing, Body: body})
	if r, ok := rc.next().(*protocol.Response); !ok || len(r.Body) != len(body) {
		t.Fatalf("a 100 KiB request after auth: %#v", r)
	}
}

// TestUnauthenticatedCaps: sockets that never authenticate are bounded per source
// address (HTTP 429 before the upgrade) and in total (503); a socket that
// authenticates or goes away gives its slot back.
func TestUnauthenticatedCaps(t *testing.T) {
	p := startProvider(t, func(c *gateway.Config) { c.MaxUnauthenticated, c.MaxUnauthenticatedPerAddress = 4, 2 })
	_, tok := addClient(t, p, "alice", "phone")
	open := func(source string, wantStatus int) *websocket.Conn {
		t.Helper()
		ws, resp, err := dialer{source: source}.dial(t, p)
		switch {
		case wantStatus == 0 && err != nil:
			t.Fatalf("from %s: %v", source, err)
		case wantStatus != 0 && (err == nil || resp == nil || resp.StatusCode != wantStatus):
			t.Fatalf("from %s: %v %v, want HTTP %d", source, err, resp, wantStatus)
		}
		return ws
	}
	a1 := open("127.0.0.1", 0)
	open("127.0.0.1", 0)
	open("127.0.0.1", http.StatusTooManyRequests)
	open("127.0.0.2", 0)
	b2 := open("127.0.0.2", 0)
	open("127.0.0.3", http.StatusServiceUnavailable)
	m := p.Metrics(t)
	if m["mimids_sockets_unauthenticated"] != 4 || m[`mimids_sockets_refused_total{reason="unauthenticated_per_address"}`] != 1 ||
		m[`mimids_sockets_refused_total{reason="unauthenticated_total"}`] != 1 {
		t.Fatalf("metrics: %v", m)
	}
	rc := &rawConn{t: t, c: a1}
	rc.send(&protocol.Auth{RequestID: 1, Token: []byte(tok)})
	if f := rc.next(); f.Type() != protocol.TypeAuthOK {
		t.Fatalf("auth: %#v", f)
	}
	open("127.0.0.1", 0) // a1's slot
	b2.CloseNow()
	eventually(t, "b2's slot back", func() bool { return p.Metrics(t)["mimids_sockets_unauthenticated"] == 3 })
	open("127.0.0.3", 0)
}
