package hub_test

import (
	"context"
	"testing"

	"github.com/mimids/mimids/hub"
	"github.com/mimids/mimids/protocol"
)

// The hub's method table decodes, calls and encodes; a garbage body is malformed,
// and a partition the hub does not host is NotHosted (the router's cue).
func TestMethodTable(t *testing.T) {
	ctx := context.Background()
	g := loadFixture(t, "create-2.json")
	e := newEnv(t, "a.example", nil)
	e.create(g)
	m := e.h.Methods()
	for _, id := range []protocol.Method{protocol.MethodCreateGroup, protocol.MethodSend, protocol.MethodReceive,
		protocol.MethodGroupInfo, protocol.MethodExternalJoin} {
		if m[id] == nil {
			t.Fatalf("no %s in the table", id)
		}
		if _, err := m[id](ctx, protocol.Sender{}, []byte{0xff, 0xff}); err == nil {
			t.Fatalf("%s accepted garbage", id)
		} else if code, _ := protocol.CodeOf(err); code != protocol.CodeMalformed {
			t.Fatalf("%s garbage: code %s (%v)", id, code, err)
		}
	}
	req := &protocol.ReceiveRequest{PartitionKey: make([]byte, 16)}
	body, _ := req.MarshalBinary()
	if _, err := m[protocol.MethodReceive](ctx, protocol.Sender{}, body); !hub.NotHosted(err) {
		t.Fatalf("unknown partition: %v, want NotHosted", err)
	}
	req.PartitionKey = g.Initial.PartitionKey
	body, _ = req.MarshalBinary()
	out, err := m[protocol.MethodReceive](ctx, protocol.Sender{}, body)
	var resp protocol.ReceiveResponse
	if err != nil || resp.UnmarshalBinary(out) != nil {
		t.Fatalf("receive from the hosted partition: %v", err)
	}
}
