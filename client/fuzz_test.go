package client

import (
	"context"
	"testing"

	"github.com/coder/websocket"

	"github.com/mimids/mimids/protocol"
)

// FuzzHandleFrame feeds arbitrary server messages to a session's frame handler: it
// must never panic, must reject what does not decode, and must queue deliveries only
// in increasing seq order.
func FuzzHandleFrame(f *testing.F) {
	notice, _ := protocol.Notice{Text: "hi"}.MarshalBinary()
	for _, fr := range []protocol.Frame{
		&protocol.Response{RequestID: 1, Body: []byte("x")},
		&protocol.Error{RequestID: 0, Code: protocol.CodeUnavailable, Message: "bye"},
		&protocol.Error{RequestID: 1, Code: protocol.CodeInvalid},
		&protocol.Deliver{Seq: 1, Kind: protocol.KindNotice, Payload: notice},
		&protocol.Deliver{Seq: 0, Kind: protocol.KindWelcome},
		&protocol.AuthOK{RequestID: 1},
		&protocol.Ack{Seq: 3},
	} {
		f.Add(protocol.Encode(fr), false)
	}
	f.Add(append(protocol.Encode(&protocol.Deliver{Seq: 2, Payload: notice}), protocol.Encode(&protocol.Response{RequestID: 1})...), false)
	f.Add(protocol.Encode(&protocol.Push{Masked: []byte{1}, Counter: 1, Message: []byte("m")}), false)
	f.Add([]byte{}, false)
	f.Add([]byte("text"), true)
	f.Fuzz(func(t *testing.T, msg []byte, text bool) {
		cfg := Config{URL: "ws://127.0.0.1/", Token: "t", DeliveryQueueLen: 4, DeliveryQueueBytes: 64,
			Handler: func(context.Context, *Delivery) error { return nil }}.withDefaults()
		c := newClient(cfg)
		defer c.cancelHard()
		s := newSession(c, nil, SessionInfo{}, nil)
		s.pending[1] = &request{ch: make(chan reply, 1)}
		typ := websocket.MessageBinary
		if text {
			typ = websocket.MessageText
		}
		for range 3 { // the same message again exercises duplicate suppression
			if err := s.handleMessage(typ, msg); err != nil {
				return
			}
		}
		var last uint64
		for len(s.deliveries) > 0 {
			d := <-s.deliveries
			if d.Seq <= last {
				t.Fatalf("queued seq %d after %d", d.Seq, last)
			}
			last = d.Seq
		}
	})
}
