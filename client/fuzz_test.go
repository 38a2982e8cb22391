package client

import (
	"context"
	"testing"

	"github.com/coder/websocket"

	"github.com/mimids/mimids/gateway/wire"
)

// FuzzHandleFrame feeds arbitrary server messages to a session's frame handler: it
// must never panic, must reject what does not decode, and must queue deliveries only
// in increasing seq order.
func FuzzHandleFrame(f *testing.F) {
	notice, _ := wire.Notice{Text: "hi"}.MarshalBinary()
	for _, fr := range []wire.Frame{
		&wire.Response{RequestID: 1, Body: []byte("x")},
		&wire.Error{RequestID: 0, Code: wire.CodeUnavailable, Message: "bye"},
		&wire.Error{RequestID: 1, Code: wire.CodeInvalid},
		&wire.Deliver{Seq: 1, Kind: wire.KindNotice, Payload: notice},
		&wire.Deliver{Seq: 0, Kind: wire.KindWelcome},
		&wire.AuthOK{RequestID: 1},
		&wire.Ack{Seq: 3},
	} {
		f.Add(wire.Encode(fr), false)
	}
	f.Add(append(wire.Encode(&wire.Deliver{Seq: 2, Payload: notice}), wire.Encode(&wire.Response{RequestID: 1})...), false)
	f.Add(wire.Encode(&wire.Push{Masked: []byte{1}, Counter: 1, Message: []byte("m")}), false)
	f.Add([]byte{}, false)
	f.Add([]byte("text"), true)
	f.Fuzz(func(t *testing.T, msg []byte, text bool) {
		cfg := Config{URL: "ws://127.0.0.1/", Token: "t", DeliveryQueueLen: 4, DeliveryQueueBytes: 64,
			Handler: func(context.Context, *Delivery) error { return nil }}.withDefaults()
		c := newClient(cfg)
		defer c.cancelHard()
		s := newSession(c, nil, SessionInfo{})
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
