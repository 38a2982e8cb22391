//go:build linux

package gateway_test

// Resource exhaustion at the socket edge (issue 15, items 1 and 2), attacked from
// outside: real sockets against a real provider (providertest). Linux only: the
// tests dial from several loopback addresses and shrink their receive buffers so
// that a peer that does not read stops the server's writes at once.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/mimids/mimids/cmd/provider"
	"github.com/mimids/mimids/cmd/provider/providertest"
	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/directory/mailbox"
	"github.com/mimids/mimids/gateway"
	"github.com/mimids/mimids/protocol"
)

// startProvider runs a provider with the gateway configuration edited.
func startProvider(t *testing.T, edit func(*gateway.Config)) *providertest.Provider {
	t.Helper()
	return providertest.Start(t, "localhost", nil, func(c *provider.Config) {
		if edit != nil {
			edit(&c.Gateway)
			c.Gateway = c.Gateway.WithDefaults()
		}
	})
}

// dialer dials from a loopback source address; with smallRecv, the socket's receive
// buffer is a few KiB, so a peer that stops reading stops the server's writes.
type dialer struct {
	source    string // "" for the default
	smallRecv bool
}

func (d dialer) dial(t *testing.T, p *providertest.Provider) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	nd := &net.Dialer{Timeout: 5 * time.Second}
	if d.source != "" {
		nd.LocalAddr = &net.TCPAddr{IP: net.ParseIP(d.source)}
	}
	if d.smallRecv {
		nd.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 8<<10) })
			if err != nil {
				return err
			}
			return serr
		}
	}
	tr := &http.Transport{DialContext: nd.DialContext}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, p.Socket, &websocket.DialOptions{
		Subprotocols: []string{protocol.Subprotocol}, HTTPClient: &http.Client{Transport: tr}})
	if err == nil {
		ws.SetReadLimit(8 << 20)
		t.Cleanup(func() { ws.CloseNow() })
	}
	return ws, resp, err
}

// login dials and authenticates; it returns the socket and the first frame.
func (d dialer) login(t *testing.T, p *providertest.Provider, token string) (*rawConn, protocol.Frame) {
	t.Helper()
	ws, _, err := d.dial(t, p)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	rc := &rawConn{t: t, c: ws}
	rc.send(&protocol.Auth{RequestID: 1, Token: []byte(token)})
	return rc, rc.next()
}

func addClient(t *testing.T, p *providertest.Provider, user, client string) (directory.Client, string) {
	t.Helper()
	c, tok, err := p.Dir.AddClient(context.Background(), user, client, true)
	if err != nil {
		t.Fatal(err)
	}
	return c, tok
}

// fillMailbox enqueues n notices of about size bytes for the client.
func fillMailbox(t *testing.T, p *providertest.Provider, c directory.Client, n, size int) {
	t.Helper()
	for i := 0; i < n; i++ {
		text := fmt.Sprintf("%04d", i) + strings.Repeat("x", size-16)
		payload, _ := protocol.Notice{Text: text}.MarshalBinary()
		if _, err := p.Mailbox.Enqueue(context.Background(), mailbox.Target{ClientID: c.ID}, uint16(protocol.KindNotice), payload); err != nil {
			t.Fatal(err)
		}
	}
}

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
	fillMailbox(t, p, cl, entries, mailbox.MaxPayload-64)
	limit := float64(p.Config.Gateway.ClientQueueBytes)
	peak := 0.0
	sample := func() {
		q := p.Metrics(t)["mimids_socket_queued_bytes"]
		if q > limit {
			t.Fatalf("queued %v bytes for one client, limit %v", q, limit)
		}
		peak = max(peak, q)
	}
	d := dialer{smallRecv: true}
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
	t.Logf("peak queued %.1f MiB for %d sockets of one client (limit %.0f MiB)", peak/(1<<20), sockets, limit/(1<<20))
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

// readEntries reads notices 1..n in order.
func readEntries(rc *rawConn, n int) error {
	for want := uint64(1); want <= uint64(n); want++ {
		f, err := rc.read(10 * time.Second)
		if err != nil {
			return fmt.Errorf("entry %d: %w", want, err)
		}
		d, ok := f.(*protocol.Deliver)
		if !ok || d.Seq != want {
			return fmt.Errorf("entry %d: got %#v", want, f)
		}
		var nt protocol.Notice
		if err := nt.UnmarshalBinary(d.Payload); err != nil || nt.Text[:4] != fmt.Sprintf("%04d", want-1) {
			return fmt.Errorf("entry %d: payload %v", want, err)
		}
	}
	return nil
}

// TestQueueBudgetShedsLargest: when the bytes queued for all sockets pass
// total_queue_bytes, the socket with the largest queue is closed (4010) and the
// others are left alone; nothing is lost, the entries wait in the mailbox.
func TestQueueBudgetShedsLargest(t *testing.T) {
	p := startProvider(t, func(c *gateway.Config) {
		c.SendQueueBytes, c.ClientQueueBytes, c.TotalQueueBytes = 16<<20, 16<<20, 22<<20
		c.WriteTimeout = gateway.Duration(time.Minute)
	})
	const size = mailbox.MaxPayload - 64
	d := dialer{smallRecv: true}
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

// connected asks the admin API how many sockets the user's phone has.
func connected(t *testing.T, p *providertest.Provider, user string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", p.Base+"/admin/v1/users/"+user+"/clients", nil)
	req.Header.Set("Authorization", "Bearer "+p.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []struct {
		Connected int `json:"connected"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || len(out) != 1 {
		t.Fatalf("clients of %s: %v %v", user, out, err)
	}
	return out[0].Connected
}
