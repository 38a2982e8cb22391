package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mimids/mimids/mls/mlstest"

	"github.com/mimids/mimids/cmd/provider"
	"github.com/mimids/mimids/cmd/provider/providertest"

	"github.com/mimids/mimids/client"
	"github.com/mimids/mimids/protocol"
)

type hexb = mlstest.Hex

type fixtureEpoch struct {
	Epoch             uint64 `json:"epoch"`
	PartitionKey      hexb   `json:"partition_key"`
	Masked            hexb   `json:"masked_partition_key"`
	GroupInfo         hexb   `json:"group_info"`
	GroupInfoWithTree hexb   `json:"group_info_with_tree"`
}

type fixtureStep struct {
	Kind   string `json:"kind"`
	Sender struct {
		Identity string `json:"identity"`
	} `json:"sender"`
	Description  string       `json:"description"`
	PartitionKey hexb         `json:"partition_key"`
	Message      hexb         `json:"message"`
	After        fixtureEpoch `json:"after"`
	Welcome      *struct {
		Message    hexb `json:"message"`
		NewMembers []struct {
			Provider string `json:"provider"`
		} `json:"new_members"`
	} `json:"welcome"`
}

type groupFixture struct {
	GroupID hexb          `json:"group_id"`
	Initial fixtureEpoch  `json:"initial"`
	Steps   []fixtureStep `json:"steps"`
}

func loadGroupFixture(t *testing.T, name string) groupFixture {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "mls", "testdata", "tsmls", name))
	if err != nil {
		t.Fatal(err)
	}
	var f groupFixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return f
}

func (s fixtureStep) sendRequest() *protocol.SendRequest {
	req := &protocol.SendRequest{Message: s.Message, PartitionKey: s.PartitionKey}
	if s.Kind == "commit" {
		req.CommitData = &protocol.CommitData{NextPartitionKey: s.After.PartitionKey, GroupInfo: s.After.GroupInfo}
		if s.Welcome != nil {
			wd := &protocol.WelcomeData{Welcome: s.Welcome.Message}
			for _, m := range s.Welcome.NewMembers {
				wd.ServiceProviders = append(wd.ServiceProviders, m.Provider)
			}
			req.CommitData.WelcomeData = wd
		}
	}
	return req
}

func call[T any, PT interface {
	*T
	UnmarshalBinary([]byte) error
}](t *testing.T, c *client.Client, m protocol.Method, req interface{ MarshalBinary() ([]byte, error) }) (PT, error) {
	t.Helper()
	body, err := req.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := c.Do(ctx, m, body)
	if err != nil {
		return nil, err
	}
	resp := PT(new(T))
	if err := resp.UnmarshalBinary(out); err != nil {
		t.Fatalf("%s answer: %v", m, err)
	}
	return resp, nil
}

func wantCode(t *testing.T, err error, code protocol.Code) {
	t.Helper()
	var we *protocol.Error
	if !errors.As(err, &we) || we.Code != code {
		t.Fatalf("got %v, want error code %s", err, code)
	}
}

// pushRecorder records pushes per masked partition key.
type pushRecorder struct {
	mu     sync.Mutex
	pushes map[string][]*protocol.Push
	events map[string][]protocol.PartitionEventType
}

func (s *pushRecorder) onPush(f protocol.Frame) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch f := f.(type) {
	case *protocol.Push:
		s.pushes[string(f.Masked)] = append(s.pushes[string(f.Masked)], &protocol.Push{Masked: f.Masked, Counter: f.Counter, Message: bytes.Clone(f.Message)})
	case *protocol.PartitionEvent:
		s.events[string(f.Masked)] = append(s.events[string(f.Masked)], f.Event)
	}
}

func (s *pushRecorder) count(masked []byte) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pushes[string(masked)])
}

// TestGroupOverSocket replays a real ts-mls group (create-2.json) through the client
// socket of a provider: create, sends to each partition, live pushes to a pushRecorder,
// receive with hints, a retried send, Welcome routing, bad input and termination.
func TestGroupOverSocket(t *testing.T) {
	fx := loadGroupFixture(t, "create-2.json")
	p := providertest.Start(t, "a.example", nil, func(c *provider.Config) {
		c.Hub.RatePerSecond = -1
		c.Hub.MaxMessageSize = 64 << 10
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dial := func(user string, sub *pushRecorder) *client.Client {
		_, tok, err := p.Dir.AddClient(ctx, user, "phone", true)
		if err != nil {
			t.Fatal(err)
		}
		cfg := client.Config{URL: p.Socket, Token: tok}
		if sub != nil {
			cfg.OnPush = sub.onPush
		}
		c, err := client.Dial(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		return c
	}
	alice := dial("alice", nil)
	sub := &pushRecorder{pushes: map[string][]*protocol.Push{}, events: map[string][]protocol.PartitionEventType{}}
	carol := dial("carol", sub)

	created, err := call[protocol.CreateGroupResponse](t, alice, protocol.MethodCreateGroup,
		&protocol.CreateGroupRequest{GroupInfo: fx.Initial.GroupInfoWithTree, PartitionKey: fx.Initial.PartitionKey})
	if err != nil {
		t.Fatalf("create_group: %v", err)
	}
	if !bytes.Equal(created.MaskedPartitionKey, fx.Initial.Masked) {
		t.Fatalf("masked key %x, want %x", created.MaskedPartitionKey, fx.Initial.Masked)
	}
	// A retry is answered alike; the same group under another partition key is refused.
	again, err := call[protocol.CreateGroupResponse](t, alice, protocol.MethodCreateGroup,
		&protocol.CreateGroupRequest{GroupInfo: fx.Initial.GroupInfoWithTree, PartitionKey: fx.Initial.PartitionKey})
	if err != nil || !bytes.Equal(again.MaskedPartitionKey, created.MaskedPartitionKey) {
		t.Fatalf("retried create_group: %v", err)
	}
	_, err = call[protocol.CreateGroupResponse](t, alice, protocol.MethodCreateGroup,
		&protocol.CreateGroupRequest{GroupInfo: fx.Initial.GroupInfoWithTree, PartitionKey: bytes.Repeat([]byte{1}, 16)})
	wantCode(t, err, protocol.CodeConflict)

	subscribe := func(pk []byte) {
		w := protocol.NewWriter(nil)
		w.Opaque(pk)
		w.U32(0)
		if _, err := carol.Do(ctx, protocol.MethodSubscribe, w.Bytes()); err != nil {
			t.Fatalf("subscribe: %v", err)
		}
	}
	subscribe(fx.Initial.PartitionKey)

	// Replay every step; the pushRecorder follows each partition the commits open.
	want := map[string][][]byte{}
	counters := map[string]uint32{}
	send := func(st fixtureStep, req *protocol.SendRequest) (*protocol.SendResponse, error) {
		if protocol.UserOf(st.Sender.Identity) == "mimi://b.example/u/bob" && st.Kind != "application" {
			// bob is a user of b.example: the hub takes the leaves his handshakes
			// carry from his provider (as its follower will), not from alice's socket.
			resp, err := p.Hub.Send(ctx, protocol.Sender{UserURI: st.Sender.Identity}, req)
			return &resp, err
		}
		return call[protocol.SendResponse](t, alice, protocol.MethodSend, req)
	}
	for i, st := range fx.Steps {
		req := st.sendRequest()
		resp, err := send(st, req)
		if err != nil {
			t.Fatalf("step %d (%s): %v", i, st.Description, err)
		}
		masked := string(hubMask(t, fx, st.PartitionKey))
		if resp.Counter != counters[masked] {
			t.Fatalf("step %d: counter %d, want %d", i, resp.Counter, counters[masked])
		}
		counters[masked]++
		want[masked] = append(want[masked], st.Message)
		if i == 1 { // a retry of the add commit: same counter, sequenced once
			again, err := send(st, req)
			if err != nil || again.Counter != resp.Counter {
				t.Fatalf("retried send: %v %v", again, err)
			}
		}
		if st.Kind == "commit" {
			subscribe(st.After.PartitionKey)
		}
	}
	// Every partition's pushes arrive in order, complete, without duplicates.
	for masked, msgs := range want {
		waitFor(t, "pushes", func() bool { return sub.count([]byte(masked)) >= len(msgs) })
		sub.mu.Lock()
		got := sub.pushes[masked]
		if len(got) != len(msgs) {
			t.Fatalf("partition %x: %d pushes, want %d", masked, len(got), len(msgs))
		}
		for j, pu := range got {
			var m protocol.Message
			if err := m.UnmarshalBinary(pu.Message); err != nil || pu.Counter != uint32(j) || !bytes.Equal(m.Message, msgs[j]) {
				t.Fatalf("partition %x push %d: counter %d err %v", masked, j, pu.Counter, err)
			}
		}
		sub.mu.Unlock()
	}

	// receive answers the first partition with hints of the next.
	rr, err := call[protocol.ReceiveResponse](t, alice, protocol.MethodReceive, &protocol.ReceiveRequest{PartitionKey: fx.Initial.PartitionKey, Counter: 0})
	if err != nil || len(rr.Epoch.Messages) != 2 || len(rr.Hints) != 1 {
		t.Fatalf("receive: %v %+v", err, rr)
	}
	// bob is on b.example: his Welcome waits for the federation.
	pend, err := p.Hub.PendingWelcomes(ctx, "b.example", 10)
	if err != nil || len(pend) != 1 {
		t.Fatalf("pending Welcomes for b.example: %d %v", len(pend), err)
	}

	// Bad input.
	stale := fx.Steps[1].sendRequest() // a commit for epoch 0, sent to the epoch-1 partition
	stale.PartitionKey = fx.Steps[2].PartitionKey
	stale.CommitData.NextPartitionKey = bytes.Repeat([]byte{9}, 16)
	_, err = call[protocol.SendResponse](t, alice, protocol.MethodSend, stale)
	wantCode(t, err, protocol.CodeWrongPartition)
	_, err = call[protocol.SendResponse](t, alice, protocol.MethodSend, &protocol.SendRequest{Message: fx.Steps[0].Message, PartitionKey: bytes.Repeat([]byte{7}, 16)})
	wantCode(t, err, protocol.CodeNotFound)
	_, err = carol.Do(ctx, protocol.MethodSend, []byte{1, 2, 3})
	wantCode(t, err, protocol.CodeMalformed)
	_, err = call[protocol.GroupInfoResponse](t, alice, protocol.MethodGroupInfo, &protocol.GroupInfoRequest{GroupID: []byte("no such group")})
	wantCode(t, err, protocol.CodeNotFound)

	// Terminating the newest partition: sends are refused, subscribers are told.
	last := fx.Steps[len(fx.Steps)-1]
	lastMasked := hubMask(t, fx, last.PartitionKey)
	if err := p.Hub.Terminate(ctx, fx.GroupID, lastMasked); err != nil {
		t.Fatal(err)
	}
	_, err = call[protocol.SendResponse](t, alice, protocol.MethodSend, &protocol.SendRequest{Message: fx.Steps[0].Message, PartitionKey: last.PartitionKey})
	wantCode(t, err, protocol.CodeTerminated)
	waitFor(t, "terminated event", func() bool {
		sub.mu.Lock()
		defer sub.mu.Unlock()
		ev := sub.events[string(lastMasked)]
		return len(ev) == 1 && ev[0] == protocol.EventTerminated
	})
}

// hubMask finds the masked key of a fixture partition key.
func hubMask(t *testing.T, fx groupFixture, pk []byte) []byte {
	t.Helper()
	if bytes.Equal(pk, fx.Initial.PartitionKey) {
		return fx.Initial.Masked
	}
	for _, s := range fx.Steps {
		if s.Kind == "commit" && bytes.Equal(s.After.PartitionKey, pk) {
			return s.After.Masked
		}
	}
	t.Fatalf("partition key %x not in the fixture", pk)
	return nil
}

// eventually polls cond every 10 ms for up to 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 2000; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}
