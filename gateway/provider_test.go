package gateway_test

// Helpers of the tests that attack a real provider (providertest) from outside.

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

// dialer dials the client socket, from a loopback source address if set, with
// control applied to the TCP socket before it connects if set.
type dialer struct {
	source  string // "" for the default
	control func(network, address string, c syscall.RawConn) error
}

func (d dialer) dial(t *testing.T, p *providertest.Provider) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	nd := &net.Dialer{Timeout: 5 * time.Second}
	if d.source != "" {
		nd.LocalAddr = &net.TCPAddr{IP: net.ParseIP(d.source)}
	}
	nd.Control = d.control
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

// fillMailbox enqueues n notices for the client whose deliver frames are exactly
// frame bytes.
func fillMailbox(t *testing.T, p *providertest.Provider, c directory.Client, n, frame int) {
	t.Helper()
	payload := func(i, textLen int) []byte {
		b, _ := protocol.Notice{Text: fmt.Sprintf("%04d", i) + strings.Repeat("x", textLen-4)}.MarshalBinary()
		return b
	}
	textLen := frame - 32
	textLen += frame - len(protocol.Encode(&protocol.Deliver{Seq: 1, Payload: payload(0, textLen)}))
	for i := 0; i < n; i++ {
		pl := payload(i, textLen)
		if got := len(protocol.Encode(&protocol.Deliver{Seq: 1, Payload: pl})); got != frame {
			t.Fatalf("deliver frame of %d bytes, want %d", got, frame)
		}
		if _, err := p.Mailbox.Enqueue(context.Background(), mailbox.Target{ClientID: c.ID}, uint16(protocol.KindNotice), pl); err != nil {
			t.Fatal(err)
		}
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
