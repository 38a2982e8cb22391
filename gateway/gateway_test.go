package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/mimids/mimids/directory/mailbox"
	"github.com/mimids/mimids/gateway"
	"github.com/mimids/mimids/protocol"
)

func notice(t *testing.T, e *env, target mailbox.Target, text string) {
	t.Helper()
	p, _ := protocol.Notice{Text: text}.MarshalBinary()
	if _, err := e.mb.Enqueue(context.Background(), target, uint16(protocol.KindNotice), p); err != nil {
		t.Fatal(err)
	}
}

func deliverText(t *testing.T, f protocol.Frame) (uint64, string) {
	t.Helper()
	d, ok := f.(*protocol.Deliver)
	if !ok {
		t.Fatalf("got %T, want deliver", f)
	}
	var n protocol.Notice
	if err := n.UnmarshalBinary(d.Payload); err != nil || d.Kind != protocol.KindNotice {
		t.Fatalf("deliver %+v: %v", d, err)
	}
	return d.Seq, n.Text
}

func TestAuthAndRequests(t *testing.T) {
	e := newEnv(t, gateway.Config{})
	_, tok := e.addClient("alice", "phone")
	rc, ok := e.login(tok)
	if ok.ClientID != "mimi://a.example/d/alice/phone" || ok.UserID != "mimi://a.example/u/alice" || ok.Pending != 0 || ok.MaxFrameSize != 1<<20 ||
		!bytes.Equal(ok.Incarnation, e.db.Incarnation().ID) || len(ok.Incarnation) != 16 {
		t.Fatalf("auth_ok = %+v", ok)
	}
	// Pipelined requests; answers are matched by request id.
	for i := uint32(10); i < 20; i++ {
		rc.send(&protocol.Request{RequestID: i, Method: protocol.MethodPing, Body: []byte(fmt.Sprint(i))})
	}
	rc.send(&protocol.Request{RequestID: 99, Method: 0x7777})
	seen := map[uint32]bool{}
	for len(seen) < 11 {
		switch f := rc.next().(type) {
		case *protocol.Response:
			if string(f.Body) != fmt.Sprint(f.RequestID) {
				t.Fatalf("ping %d answered %q", f.RequestID, f.Body)
			}
			seen[f.RequestID] = true
		case *protocol.Error:
			if f.RequestID != 99 || f.Code != protocol.CodeUnknownMethod {
				t.Fatalf("error = %+v", f)
			}
			seen[99] = true
		default:
			t.Fatalf("unexpected %T", f)
		}
	}
	// The connection survives an unknown method.
	rc.send(&protocol.Request{RequestID: 100, Method: protocol.MethodMailboxStatus})
	resp := rc.next().(*protocol.Response)
	var st protocol.MailboxStatus
	if err := st.UnmarshalBinary(resp.Body); err != nil || st.Pending != 0 {
		t.Fatalf("mailbox status %+v %v", st, err)
	}
}

func TestHostileInput(t *testing.T) {
	e := newEnv(t, gateway.Config{AuthTimeout: gateway.Duration(300 * time.Millisecond), MaxFrameSize: 64 << 10})
	c, tok := e.addClient("alice", "phone")
	tests := []struct {
		name  string
		auth  bool // authenticate first
		send  func(rc *rawConn)
		code  websocket.StatusCode
		ecode protocol.Code // expected error frame code, 0 for none checked
	}{
		{"wrong token", false, func(rc *rawConn) { rc.send(&protocol.Auth{Token: []byte("mdt_wrong")}) }, protocol.CloseAuthFailed, protocol.CodeUnauthorized},
		{"empty token", false, func(rc *rawConn) { rc.send(&protocol.Auth{}) }, protocol.CloseAuthFailed, protocol.CodeUnauthorized},
		{"no auth frame", false, func(rc *rawConn) {}, protocol.CloseAuthTimeout, protocol.CodeUnauthorized},
		{"request before auth", false, func(rc *rawConn) { rc.send(&protocol.Request{Method: protocol.MethodPing}) }, protocol.CloseProtocolError, protocol.CodeProtocol},
		{"malformed auth", false, func(rc *rawConn) { rc.sendRaw([]byte{byte(protocol.TypeAuth), 0, 0}) }, protocol.CloseProtocolError, protocol.CodeMalformed},
		{"unknown frame type", true, func(rc *rawConn) { rc.sendRaw([]byte{0x42, 1, 2, 3}) }, protocol.CloseProtocolError, protocol.CodeMalformed},
		{"empty frame", true, func(rc *rawConn) { rc.sendRaw(nil) }, protocol.CloseProtocolError, protocol.CodeMalformed},
		{"trailing bytes", true, func(rc *rawConn) { rc.sendRaw(append(protocol.Encode(&protocol.Ack{}), 0)) }, protocol.CloseProtocolError, protocol.CodeMalformed},
		{"server frame from client", true, func(rc *rawConn) { rc.send(&protocol.Deliver{Seq: 1}) }, protocol.CloseProtocolError, protocol.CodeProtocol},
		{"second auth", true, func(rc *rawConn) { rc.send(&protocol.Auth{Token: []byte(tok)}) }, protocol.CloseProtocolError, protocol.CodeProtocol},
		{"oversized frame", true, func(rc *rawConn) {
			// The server may reset the connection before the write completes.
			rc.c.Write(context.Background(), websocket.MessageBinary, protocol.Encode(&protocol.Request{Method: protocol.MethodPing, Body: make([]byte, 100<<10)}))
		}, protocol.CloseTooBig, 0},
		{"text frame", true, func(rc *rawConn) {
			rc.c.Write(context.Background(), websocket.MessageText, []byte("hello"))
		}, protocol.CloseProtocolError, protocol.CodeMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var rc *rawConn
			if tc.auth {
				rc, _ = e.login(tok)
			} else {
				rc = e.dial(nil)
			}
			tc.send(rc)
			if tc.ecode != 0 {
				f, err := rc.read(5 * time.Second)
				ef, ok := f.(*protocol.Error)
				if err != nil || !ok || ef.Code != tc.ecode || ef.RequestID != 0 {
					t.Fatalf("got %#v, %v; want error frame %s", f, err, tc.ecode)
				}
			}
			if got := rc.closeCode(); got != tc.code {
				t.Fatalf("close code %d (%s), want %d", got, protocol.CloseReason(int(got)), tc.code)
			}
		})
	}
	t.Run("no subprotocol", func(t *testing.T) {
		rc := e.dial(&websocket.DialOptions{})
		if got := rc.closeCode(); got != protocol.CloseProtocolError {
			t.Fatalf("close code %d", got)
		}
	})
	t.Run("foreign origin", func(t *testing.T) {
		_, resp, err := websocket.Dial(context.Background(), e.ws, &websocket.DialOptions{
			Subprotocols: []string{protocol.Subprotocol}, HTTPHeader: http.Header{"Origin": {"https://evil.example"}}})
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("dial from foreign origin: %v %v", err, resp)
		}
	})
	t.Run("ack past delivered", func(t *testing.T) {
		notice(t, e, mailbox.Target{ClientID: c.ID}, "one")
		rc, _ := e.login(tok)
		seq, _ := deliverText(t, rc.next())
		rc.send(&protocol.Ack{Seq: seq + 5})
		if f, ok := rc.next().(*protocol.Error); !ok || f.Code != protocol.CodeInvalid {
			t.Fatalf("ack past delivered answered %#v", f)
		}
		st, _ := e.mb.Status(context.Background(), c.ID)
		if st.Pending != 1 {
			t.Fatalf("ack past delivered removed entries: %+v", st)
		}
		rc.send(&protocol.Ack{Seq: seq})
		eventually(t, "ack committed", func() bool { st, _ := e.mb.Status(context.Background(), c.ID); return st.Pending == 0 })
	})
	if e.closes("auth_failed") < 2 || e.closes("protocol_error") < 5 {
		t.Errorf("close metrics: auth_failed=%v protocol_error=%v", e.closes("auth_failed"), e.closes("protocol_error"))
	}
}

func TestMailboxDeliveryAndResume(t *testing.T) {
	e := newEnv(t, gateway.Config{ReplayBatch: 7})
	alice, tok := e.addClient("alice", "phone")
	_, tok2 := e.addClient("alice", "laptop")
	// Stored before any socket: 20 entries, replayed in pages of 7.
	for i := 1; i <= 20; i++ {
		notice(t, e, mailbox.Target{ClientID: alice.ID}, fmt.Sprint("stored ", i))
	}
	rc, ok := e.login(tok)
	if ok.Pending != 20 {
		t.Fatalf("pending = %d", ok.Pending)
	}
	for i := 1; i <= 20; i++ {
		seq, text := deliverText(t, rc.next())
		if seq != uint64(i) || text != fmt.Sprint("stored ", i) {
			t.Fatalf("entry %d: seq %d %q", i, seq, text)
		}
	}
	rc.send(&protocol.Ack{Seq: 10})
	// Live entries to the user reach both of alice's clients.
	rc2, _ := e.login(tok2)
	notice(t, e, mailbox.Target{UserID: alice.UserID}, "live")
	if seq, text := deliverText(t, rc.next()); seq != 21 || text != "live" {
		t.Fatalf("live: %d %q", seq, text)
	}
	if seq, text := deliverText(t, rc2.next()); seq != 1 || text != "live" {
		t.Fatalf("laptop live: %d %q", seq, text)
	}
	eventually(t, "ack 10", func() bool { st, _ := e.mb.Status(context.Background(), alice.ID); return st.FirstSeq == 11 })
	// Reconnect: everything not acknowledged comes again, in order, then new entries.
	rc.c.Close(websocket.StatusNormalClosure, "")
	notice(t, e, mailbox.Target{ClientID: alice.ID}, "while away")
	rc, ok = e.login(tok)
	if ok.Pending != 12 {
		t.Fatalf("pending after reconnect = %d", ok.Pending)
	}
	for want := uint64(11); want <= 22; want++ {
		if seq, _ := deliverText(t, rc.next()); seq != want {
			t.Fatalf("resume: seq %d, want %d", seq, want)
		}
	}
}

// TestConcurrentProducers checks that sequences stay gap-free and in order at a live
// socket while many producers enqueue at once.
func TestConcurrentProducers(t *testing.T) {
	e := newEnv(t, gateway.Config{})
	alice, tok := e.addClient("alice", "phone")
	rc, _ := e.login(tok)
	const producers, each = 8, 50
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				notice(t, e, mailbox.Target{ClientID: alice.ID}, "x")
			}
		}()
	}
	for want := uint64(1); want <= producers*each; want++ {
		seq, _ := deliverText(t, rc.next())
		if seq != want {
			t.Fatalf("seq %d, want %d", seq, want)
		}
		if want%50 == 0 {
			rc.send(&protocol.Ack{Seq: seq})
		}
	}
	wg.Wait()
	if f, err := rc.read(200 * time.Millisecond); err == nil {
		t.Fatalf("extra frame %#v", f)
	}
}

func TestRevocationClosesSockets(t *testing.T) {
	e := newEnv(t, gateway.Config{})
	_, tok := e.addClient("alice", "phone")
	_, tok2 := e.addClient("bob", "phone")
	rc1, _ := e.login(tok)
	rc2, _ := e.login(tok)
	// Through the admin API.
	resp, body := adminReq(t, e, "DELETE", "/admin/v1/users/alice/clients/phone", e.admin, "")
	if resp.StatusCode != 200 || !strings.Contains(body, `"closed_sockets":2`) {
		t.Fatalf("revoke: %d %s", resp.StatusCode, body)
	}
	for _, rc := range []*rawConn{rc1, rc2} {
		if got := rc.closeCode(); got != protocol.CloseRevoked {
			t.Fatalf("close code %d, want revoked", got)
		}
	}
	rc := e.dial(nil)
	rc.send(&protocol.Auth{Token: []byte(tok)})
	if rc.closeCodeAfterError(t) != protocol.CloseAuthFailed {
		t.Fatal("revoked token authenticated")
	}
	// Through the store, as the CLI does from another process.
	rc3, _ := e.login(tok2)
	if _, err := e.dir.RevokeClient(context.Background(), "bob", "phone"); err != nil {
		t.Fatal(err)
	}
	if got := rc3.closeCode(); got != protocol.CloseRevoked {
		t.Fatalf("CLI revoke: close code %d", got)
	}
}

func (rc *rawConn) closeCodeAfterError(t *testing.T) websocket.StatusCode {
	t.Helper()
	if f, ok := rc.next().(*protocol.Error); !ok || f.Code != protocol.CodeUnauthorized {
		t.Fatalf("want unauthorized error, got %#v", f)
	}
	return rc.closeCode()
}

func TestSlowConsumer(t *testing.T) {
	e := newEnv(t, gateway.Config{WriteTimeout: gateway.Duration(300 * time.Millisecond)})
	alice, tok := e.addClient("alice", "phone")
	rc, _ := e.login(tok)
	// The client stops reading; the server's writes back up until the timeout.
	big := bytes.Repeat([]byte{'x'}, 512<<10)
	for i := 0; i < 40; i++ {
		p, _ := protocol.Notice{Text: string(big)}.MarshalBinary()
		if _, err := e.mb.Enqueue(context.Background(), mailbox.Target{ClientID: alice.ID}, uint16(protocol.KindNotice), p); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "slow consumer close", func() bool {
		if e.srv.Connected() == 0 && e.closes("slow_consumer") == 0 {
			t.Fatalf("closed for another reason: %v", e.allCloses())
		}
		return e.closes("slow_consumer") == 1
	})
	t.Logf("delivered before close: %v", e.counter("mimids_mailbox_delivered_total"))
	eventually(t, "socket gone", func() bool { return e.srv.Connected() == 0 })
	_ = rc
	// Nothing was lost: the entries are still there for the next connection.
	st, _ := e.mb.Status(context.Background(), alice.ID)
	if st.Pending != 40 {
		t.Fatalf("pending after slow consumer = %d", st.Pending)
	}
}

func TestShutdownGoingAway(t *testing.T) {
	e := newEnv(t, gateway.Config{})
	_, tok := e.addClient("alice", "phone")
	rc, _ := e.login(tok)
	done := make(chan websocket.StatusCode, 1)
	go func() { done <- rc.closeCode() }()
	e.stop()
	if got := <-done; got != protocol.CloseGoingAway {
		t.Fatalf("close code on shutdown %d", got)
	}
}

func TestAdminAPI(t *testing.T) {
	e := newEnv(t, gateway.Config{})
	resp, body := adminReq(t, e, "POST", "/admin/v1/notices", "", `{"to":{"all":true},"text":"x"}`)
	if resp.StatusCode != 401 || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("no token: %d %s", resp.StatusCode, body)
	}
	resp, _ = adminReq(t, e, "POST", "/admin/v1/notices", "mat_wrong", `{"to":{"all":true},"text":"x"}`)
	if resp.StatusCode != 401 {
		t.Fatalf("wrong token: %d", resp.StatusCode)
	}
	resp, body = adminReq(t, e, "POST", "/admin/v1/clients", e.admin, `{"user":"carol","client":"web","create_user":true}`)
	var cj struct {
		ClientID string `json:"client_id"`
		Token    string `json:"token"`
	}
	json.Unmarshal([]byte(body), &cj)
	if resp.StatusCode != 201 || cj.ClientID != "mimi://a.example/d/carol/web" || !strings.HasPrefix(cj.Token, "mdt_") {
		t.Fatalf("add client: %d %s", resp.StatusCode, body)
	}
	rc, _ := e.login(cj.Token)
	for _, tc := range []struct {
		body string
		code int
	}{
		{`{"to":{"client":"mimi://a.example/d/carol/web"},"text":"to client"}`, 202},
		{`{"to":{"user":"mimi://a.example/u/carol"},"text":"to user"}`, 202},
		{`{"to":{"all":true},"text":"to all"}`, 202},
		{`{"to":{},"text":"nobody"}`, 400},
		{`{"to":{"all":true,"user":"mimi://a.example/u/carol"},"text":"two"}`, 400},
		{`{"to":{"user":"mimi://b.example/u/carol"},"text":"foreign"}`, 404},
		{`{"to":{"user":"https://a.example/carol"},"text":"bad uri"}`, 400},
		{`{"to":{"user":"mimi://a.example/u/nobody"},"text":"missing"}`, 404},
		{`not json`, 400},
	} {
		resp, body := adminReq(t, e, "POST", "/admin/v1/notices", e.admin, tc.body)
		if resp.StatusCode != tc.code {
			t.Errorf("notice %s: %d %s, want %d", tc.body, resp.StatusCode, body, tc.code)
		}
	}
	for _, want := range []string{"to client", "to user", "to all"} {
		if _, text := deliverText(t, rc.next()); text != want {
			t.Fatalf("got %q, want %q", text, want)
		}
	}
	resp, body = adminReq(t, e, "POST", "/admin/v1/clients", e.admin, `{"user":"carol","client":"web"}`)
	if resp.StatusCode != 409 {
		t.Fatalf("duplicate client: %d %s", resp.StatusCode, body)
	}
	resp, body = adminReq(t, e, "POST", "/admin/v1/users", e.admin, `{"name":"Bad Name"}`)
	if resp.StatusCode != 400 {
		t.Fatalf("bad user name: %d %s", resp.StatusCode, body)
	}
	resp, body = adminReq(t, e, "GET", "/admin/v1/users/carol/clients", e.admin, "")
	if resp.StatusCode != 200 || !strings.Contains(body, `"connected":1`) {
		t.Fatalf("list clients: %d %s", resp.StatusCode, body)
	}
	resp, body = adminReq(t, e, "DELETE", "/admin/v1/users/carol", e.admin, "")
	if resp.StatusCode != 200 || rc.closeCode() != protocol.CloseRevoked {
		t.Fatalf("remove user: %d %s", resp.StatusCode, body)
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if resp, body := adminReq(t, e, "GET", p, "", ""); resp.StatusCode != 200 {
			t.Errorf("%s: %d %s", p, resp.StatusCode, body)
		}
	}
	if _, body := adminReq(t, e, "GET", "/readyz", "", ""); body != `{"checks":{"store_read":"ok","store_write":"ok"},"ready":true}`+"\n" {
		t.Errorf("/readyz body %q", body)
	}
}

func TestConfigValidate(t *testing.T) {
	c := gateway.Config{AllowedOrigins: []string{"*"}, MaxFrameSize: 10, SendQueueMessages: -1, WriteTimeout: -1}.WithDefaults()
	err := c.Validate()
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{"allowed_origins", "max_frame_size", "send_queue_messages", "write_timeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate does not mention %s: %v", want, err)
		}
	}
}

// TestConfigValidateLimits: every resource limit out of range is reported, at once.
func TestConfigValidateLimits(t *testing.T) {
	c := gateway.Config{MaxAuthFrameSize: 10, MaxUnauthenticated: 2, MaxUnauthenticatedPerAddress: 3,
		MaxSocketsPerClient: -1, SendQueueBytes: 32 << 20, TotalQueueBytes: 1 << 20,
		HTTP: gateway.HTTPConfig{MaxBodyBytes: 10, WriteTimeout: gateway.Duration(time.Second), IdleTimeout: -1}}.WithDefaults()
	err := c.Validate()
	if err == nil {
		t.Fatal("bad limits accepted")
	}
	for _, want := range []string{"max_auth_frame_size", "max_unauthenticated_per_address", "max_sockets_per_client",
		"client_queue_bytes", "total_queue_bytes", "http.max_body_bytes", "http.write_timeout", "http.idle_timeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate does not mention %s: %v", want, err)
		}
	}
	if err := (gateway.Config{}).WithDefaults().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
}
