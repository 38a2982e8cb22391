package federation_test

import (
	"bytes"
	"crypto/tls"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/mimids/mimids/federation"
	"github.com/mimids/mimids/federation/fedcert"
	"github.com/mimids/mimids/protocol"
)

const streamB = "00000000000000b1"

// TestWrongDomainCertificate: b presents a valid certificate of the federation's CA,
// but for c.example. a refuses it as a server (its dial to b fails in the TLS
// handshake) and as a client (b's dial to a is refused in a's handshake). No link
// comes up and nothing is delivered.
func TestWrongDomainCertificate(t *testing.T) {
	f := newFed(t)
	wrong, err := f.ca.Issue("c.example", fedcert.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, b := f.newNode("a.example"), f.newNode("b.example", withCert(wrong))
	mesh(a, b)
	a.sendN(t, "b.example", 1)
	eventually(t, "a refuses b's certificate both ways", func() bool {
		st, _ := a.links.Status("b.example")
		return a.links.Stats().Refused > 0 && strings.Contains(st.LastError, "certificate")
	})
	time.Sleep(200 * time.Millisecond) // more dials, all refused
	if a.up("b.example") || b.up("a.example") || a.links.Stats().Links+b.links.Stats().Links != 0 {
		t.Fatal("a link came up with a certificate for the wrong domain")
	}
	if len(b.applied("a.example")) != 0 || a.depth("b.example") != 1 {
		t.Fatal("an envelope crossed")
	}
	st, _ := a.links.Status("b.example")
	t.Logf("a's last error: %s", st.LastError)
}

// TestRefusedInHandshake dials a by hand with certificates that do not prove an
// allowed peer: each is refused in the TLS handshake (counted, before any HTTP is
// read). A certificate that proves one peer but claims another is refused before
// the upgrade.
func TestRefusedInHandshake(t *testing.T) {
	f := newFed(t)
	a, b := f.newNode("a.example"), f.newNode("b.example")
	c := f.newNode("c.example")
	a.trust(b)
	a.trust(c)
	a.start()
	otherCA, err := fedcert.NewCA("another CA", fedcert.Options{})
	if err != nil {
		t.Fatal(err)
	}
	issue := func(ca *fedcert.CA, domain string, o fedcert.Options) tls.Certificate {
		i, err := ca.Issue(domain, o)
		if err != nil {
			t.Fatal(err)
		}
		cert, _ := i.TLS()
		return cert
	}
	self, _ := fedcert.SelfSigned("b.example", fedcert.Options{})
	selfCert, _ := self.TLS()
	tests := []struct {
		name      string
		claim     string
		cert      tls.Certificate
		handshake bool // refused in the TLS handshake (else by HTTP before the upgrade)
	}{
		{"not on the allow-list", "z.example", issue(f.ca, "z.example", fedcert.Options{}), true},
		{"allowed domain, another CA", "b.example", issue(otherCA, "b.example", fedcert.Options{}), true},
		{"allowed domain, self-signed", "b.example", selfCert, true},
		{"expired", "b.example", issue(f.ca, "b.example", fedcert.Options{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)}), true},
		{"no certificate", "b.example", tls.Certificate{}, true},
		{"proves c, claims b", "b.example", c.cert, false},
		{"proves b, claims a itself", "a.example", b.cert, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := a.links.Stats().Refused
			ws, err := rawDial(t, a, tc.claim, tc.cert, streamB)
			if err == nil {
				ws.CloseNow()
				t.Fatal("upgraded")
			}
			refused := a.links.Stats().Refused - before
			if tc.name == "no certificate" { // refused by crypto/tls itself, not counted
				refused = 0
				if strings.Contains(err.Error(), "certificate required") {
					refused = 1
				}
			}
			if tc.handshake != (refused == 1) {
				t.Fatalf("dial error %v; refused in the handshake: %d", err, refused)
			}
			if !tc.handshake && !strings.Contains(err.Error(), "403") {
				t.Fatalf("dial error %v, want HTTP 403", err)
			}
		})
	}
	if a.links.Stats().Links != 0 || a.links.Stats().Applied != 0 {
		t.Fatalf("stats %+v", a.links.Stats())
	}
}

// TestPinned: a pins b's self-signed certificate and the link works; with a wrong
// pin it is refused both ways.
func TestPinned(t *testing.T) {
	f := newFed(t)
	self, err := fedcert.SelfSigned("b.example", fedcert.Options{Key: fedcert.Ed25519})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("right pin", func(t *testing.T) {
		a, b := f.newNode("a.example"), f.newNode("b.example", withCert(self))
		a.pin(b, self.DER)
		b.trust(a)
		a.start()
		b.start()
		a.sendN(t, "b.example", 5)
		b.sendN(t, "a.example", 5)
		eventually(t, "delivered both ways", func() bool { return a.depth("b.example") == 0 && b.depth("a.example") == 0 })
		checkOnceInOrder(t, b.applied("a.example"), 5)
		checkOnceInOrder(t, a.applied("b.example"), 5)
	})
	t.Run("wrong pin", func(t *testing.T) {
		other, _ := fedcert.SelfSigned("b.example", fedcert.Options{})
		f := newFed(t)
		a, b := f.newNode("a.example"), f.newNode("b.example", withCert(self))
		a.pin(b, other.DER)
		b.trust(a)
		a.start()
		b.start()
		eventually(t, "refused both ways", func() bool {
			st, _ := a.links.Status("b.example")
			return a.links.Stats().Refused > 0 && strings.Contains(st.LastError, "pinned")
		})
		if a.links.Stats().Links+b.links.Stats().Links != 0 {
			t.Fatal("a link came up with a wrong pin")
		}
	})
}

// TestGarbage: a peer with a valid certificate sends what the link protocol does
// not allow; each gets a link-level error envelope where the protocol says so and a
// named close, and the provider keeps serving.
func TestGarbage(t *testing.T) {
	f := newFed(t)
	a, b := f.newNode("a.example"), f.newNode("b.example")
	// The raw peer does not read while it writes (a message over the read limit
	// takes seconds on a loaded machine under the race detector), so it would not
	// answer a's pings: a's ping period and write timeout must outlast the write,
	// or a closes with 4008 before its read limit closes with 1009.
	a.cfg = func(c *federation.Config) { c.PingInterval, c.WriteTimeout = time.Minute, 30*time.Second }
	a.trust(b)
	a.start()
	big := protocol.NewWriter(nil)
	big.U8(uint8(protocol.LinkTypeEnvelope))
	big.U64(1)
	big.U16(uint16(typeApply))
	big.Varint(protocol.MaxEnvelopeBody + 1)
	tests := []struct {
		name      string
		typ       websocket.MessageType
		msg       []byte
		wantCode  protocol.Code // of the error envelope; 0: none expected
		wantClose websocket.StatusCode
	}{
		{"text message", websocket.MessageText, []byte("hello"), protocol.CodeMalformed, 4000},
		{"empty message", websocket.MessageBinary, nil, protocol.CodeMalformed, 4000},
		{"unknown frame type", websocket.MessageBinary, []byte{0xff, 1, 2}, protocol.CodeMalformed, 4000},
		{"truncated envelope", websocket.MessageBinary, []byte{1, 0, 0, 0, 0}, protocol.CodeMalformed, 4000},
		{"envelope type 0", websocket.MessageBinary, link(&protocol.Envelope{ID: 1, Type: 1})[:0:0], protocol.CodeMalformed, 4000},
		{"body over the limit", websocket.MessageBinary, big.Bytes(), protocol.CodeTooLarge, 1009},
		{"message over the read limit", websocket.MessageBinary, make([]byte, protocol.MaxLinkMessage+1), 0, 1009},
		{"ack for nothing sent", websocket.MessageBinary, link(&protocol.EnvelopeAck{ID: 77}), protocol.CodeProtocol, 4000},
		{"error for nothing sent", websocket.MessageBinary, link(&protocol.EnvelopeError{ID: 78, Code: 1}), protocol.CodeProtocol, 4000},
		{"good then bad in one message", websocket.MessageBinary, append(link(&protocol.Envelope{ID: 1, Type: typePlain, Body: []byte("x")}), 0xee), protocol.CodeMalformed, 4000},
	}
	tests[4].msg = []byte{1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0} // id 1, type 0, empty body
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ws, err := rawDial(t, a, "b.example", b.cert, streamB)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.CloseNow()
			if err := ws.Write(ctx, tc.typ, tc.msg); err != nil {
				t.Fatal(err)
			}
			// Read to the close: the link-level error (if any) comes before it; the
			// ack of a good envelope before the bad one may come before or after it.
			var errs []*protocol.EnvelopeError
			var code websocket.StatusCode
			for i := 0; i < 5 && code == 0; i++ {
				var fr protocol.LinkFrame
				fr, code = readFrame(t, ws)
				switch fr := fr.(type) {
				case *protocol.EnvelopeError:
					errs = append(errs, fr)
				case *protocol.EnvelopeAck:
					if fr.ID != 1 {
						t.Fatalf("unexpected %#v", fr)
					}
				}
			}
			if code != tc.wantClose {
				t.Fatalf("close %d, want %d", code, tc.wantClose)
			}
			if tc.wantCode == 0 && len(errs) != 0 || tc.wantCode != 0 && (len(errs) != 1 || errs[0].ID != 0 || errs[0].Code != tc.wantCode) {
				t.Fatalf("error frames %+v, want error{0, %s}", errs, tc.wantCode)
			}
		})
	}
	// Still serving: the real b links up and delivers.
	b.trust(a)
	b.start()
	b.sendN(t, "a.example", 3)
	eventually(t, "delivered after the garbage", func() bool { return b.depth("a.example") == 0 })
	checkOnceInOrder(t, a.applied("b.example"), 3)
}

func link(f protocol.LinkFrame) []byte {
	b, err := protocol.EncodeLink(f)
	if err != nil {
		panic(err)
	}
	return b
}

// TestReplay: a replayed envelope (same id, on the same link, on a new link, or
// after the receiver restarted) is answered exactly as the first time and not
// applied again; a new stream starts over.
func TestReplay(t *testing.T) {
	f := newFed(t)
	a, b := f.newNode("a.example"), f.newNode("b.example")
	a.trust(b)
	a.start()
	dial := func(stream string) *websocket.Conn {
		ws, err := rawDial(t, a, "b.example", b.cert, stream)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ws.CloseNow() })
		return ws
	}
	exchange := func(ws *websocket.Conn, e *protocol.Envelope, want protocol.LinkFrame) {
		t.Helper()
		writeFrames(t, ws, e)
		got, code := readFrame(t, ws)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("envelope %d: got %#v (close %d), want %#v", e.ID, got, code, want)
		}
	}
	refusal := &protocol.EnvelopeError{ID: 2, Code: protocol.CodePolicy, Message: "test: refused by the test"}
	ws := dial(streamB)
	for i := 0; i < 3; i++ {
		exchange(ws, &protocol.Envelope{ID: 1, Type: typeApply, Body: []byte("x")}, &protocol.EnvelopeAck{ID: 1, Body: []byte("ok:x")})
		exchange(ws, &protocol.Envelope{ID: 2, Type: typeRefuse}, refusal)
	}
	ws.Close(websocket.StatusNormalClosure, "")
	ws = dial(streamB) // a new link, the same stream
	exchange(ws, &protocol.Envelope{ID: 1, Type: typeApply, Body: []byte("x")}, &protocol.EnvelopeAck{ID: 1, Body: []byte("ok:x")})
	exchange(ws, &protocol.Envelope{ID: 3, Type: typeApply, Body: []byte("y")}, &protocol.EnvelopeAck{ID: 3, Body: []byte("ok:y")})
	ws.Close(websocket.StatusNormalClosure, "")
	a.restart()
	ws = dial(streamB) // after a restart of the receiver
	exchange(ws, &protocol.Envelope{ID: 3, Type: typeApply, Body: []byte("changed")}, &protocol.EnvelopeAck{ID: 3, Body: []byte("ok:y")})
	exchange(ws, &protocol.Envelope{ID: 2, Type: typeRefuse}, refusal)
	ws.Close(websocket.StatusNormalClosure, "")
	if ids := a.applied("b.example"); !reflect.DeepEqual(ids, []uint64{1, 3}) {
		t.Fatalf("applied %v, want [1 3]", ids)
	}
	if d := a.links.Stats().Duplicates; d != 2 {
		t.Fatalf("duplicates since the restart %d, want 2", d)
	}
	ws = dial("00000000000000b2") // b starts a new stream: ids start over
	exchange(ws, &protocol.Envelope{ID: 1, Type: typeApply, Body: []byte("z")}, &protocol.EnvelopeAck{ID: 1, Body: []byte("ok:z")})
	if ids := a.applied("b.example"); !reflect.DeepEqual(ids, []uint64{1, 3, 1}) {
		t.Fatalf("applied %v after a new stream", ids)
	}
}

// TestWindowBound: a peer that sends more envelopes than the protocol's window
// without waiting for answers is closed; what the receiver holds stays bounded.
func TestWindowBound(t *testing.T) {
	f := newFed(t)
	a, b := f.newNode("a.example"), f.newNode("b.example")
	a.trust(b)
	a.start()
	ws, err := rawDial(t, a, "b.example", b.cert, streamB)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	var frames []protocol.LinkFrame
	for i := 1; i <= protocol.MaxWindow+2; i++ {
		frames = append(frames, &protocol.Envelope{ID: uint64(i), Type: typeBlock, Body: bytes.Repeat([]byte{1}, 10)})
	}
	writeFrames(t, ws, frames...)
	fr, code := readFrame(t, ws)
	e, ok := fr.(*protocol.EnvelopeError)
	if !ok || e.ID != 0 || e.Code != protocol.CodeProtocol {
		t.Fatalf("got %#v (close %d), want error{0, protocol}", fr, code)
	}
	if _, code := readFrame(t, ws); code != 4000 {
		t.Fatalf("close %d, want 4000", code)
	}
	close(a.unblock)
}
