package client_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/mimids/mimids/client"
	"github.com/mimids/mimids/protocol"
)

// Example connects with a device token, receives two notices from the mailbox,
// acknowledges them automatically, and sends a ping request.
func Example() {
	url, stop := demoServer("mdt_demo", "hello", "world")
	defer stop()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan string, 2)
	c, err := client.Dial(ctx, client.Config{
		URL:   url,
		Token: "mdt_demo",
		Handler: func(ctx context.Context, d *client.Delivery) error {
			n, err := d.Notice()
			if err != nil {
				return nil // not a notice: nothing to do, acknowledge it
			}
			got <- fmt.Sprintf("%d: %s", d.Seq, n.Text)
			return nil
		},
	})
	if err != nil {
		fmt.Println("dial:", err)
		return
	}
	defer c.Close(ctx)

	fmt.Println("connected as", c.Session().ClientID)
	fmt.Println(<-got)
	fmt.Println(<-got)
	if _, err := c.Ping(ctx); err != nil {
		fmt.Println("ping:", err)
		return
	}
	fmt.Println("ping ok")
	// Output:
	// connected as mimi://example.org/d/alice/phone
	// 1: hello
	// 2: world
	// ping ok
}

// demoServer is a toy socket endpoint: it accepts token, delivers one notice per
// text and echoes ping requests.
func demoServer(token string, texts ...string) (url string, stop func()) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{protocol.Subprotocol}})
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ctx := r.Context()
		_, b, err := ws.Read(ctx)
		if err != nil {
			return
		}
		auth, ok := decode(b).(*protocol.Auth)
		if !ok || string(auth.Token) != token {
			ws.Close(protocol.CloseAuthFailed, "auth failed")
			return
		}
		ws.Write(ctx, websocket.MessageBinary, protocol.Encode(&protocol.AuthOK{RequestID: auth.RequestID,
			ClientID: "mimi://example.org/d/alice/phone", UserID: "mimi://example.org/u/alice",
			Pending: uint64(len(texts)), MaxFrameSize: 1 << 20}))
		for i, t := range texts {
			p, _ := protocol.Notice{Text: t}.MarshalBinary()
			ws.Write(ctx, websocket.MessageBinary, protocol.Encode(&protocol.Deliver{Seq: uint64(i + 1), Kind: protocol.KindNotice, Payload: p}))
		}
		for {
			_, b, err := ws.Read(ctx)
			if err != nil {
				return
			}
			if req, ok := decode(b).(*protocol.Request); ok {
				ws.Write(ctx, websocket.MessageBinary, protocol.Encode(&protocol.Response{RequestID: req.RequestID, Body: req.Body}))
			}
		}
	}))
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/v1/socket", srv.Close
}

func decode(b []byte) protocol.Frame {
	f, err := protocol.Decode(b)
	if err != nil {
		return nil
	}
	return f
}
