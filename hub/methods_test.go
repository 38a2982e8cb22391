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

// A subscriber that catches up a terminated partition in several reads (each read
// stops at its byte budget) gets every message, and the terminated event only after
// the last one.
func TestLogTerminatedAfterTheLastMessage(t *testing.T) {
	ctx := context.Background()
	g := loadFixture(t, "create-2.json")
	e := newEnv(t, "a.example", func(c *hub.Config) { c.ReceiveMaxBytes = 1 }) // one message per read
	e.create(g)
	for i := 0; i < 2; i++ { // the initial partition: an application message, then the commit
		if _, err := e.sendStep(&g.Steps[i], sendOpts{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.h.Terminate(ctx, g.GroupID, g.Initial.MaskedKey); err != nil {
		t.Fatal(err)
	}
	var got []protocol.PartitionEntry
	after := int64(-1)
	for i := 0; i < 10 && (len(got) == 0 || !got[len(got)-1].Terminated); i++ {
		es, err := e.h.Log().Fetch(ctx, g.Initial.MaskedKey, after, 100)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, es...)
		after += int64(len(es))
	}
	if len(got) != 3 || got[0].Counter != 0 || got[1].Counter != 1 || got[0].Terminated || got[1].Terminated ||
		!got[2].Terminated || got[2].Counter != 2 {
		t.Fatalf("entries %+v: want counters 0, 1, then terminated at 2", got)
	}
}
