package hub_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mimids/mimids/hub"
	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/protocol"
)

// firstCommit returns the index of the first step of kind commit.
func stepIndex(t testing.TB, steps []tsStep, match func(*tsStep) bool) int {
	t.Helper()
	for i := range steps {
		if match(&steps[i]) {
			return i
		}
	}
	t.Fatal("no such step")
	return -1
}

func TestRetriedSendIsSequencedOnce(t *testing.T) {
	g := loadFixture(t, "create-2.json")
	e := newEnv(t, "a.example", nil)
	e.create(g)
	ctx := context.Background()
	for i := 0; i < 3; i++ { // application, commit (with Welcome), application
		st := &g.Steps[i]
		first, err := e.sendStep(st, sendOpts{})
		if err != nil {
			t.Fatal(err)
		}
		again, err := e.sendStep(st, sendOpts{})
		if err != nil || again != first {
			t.Fatalf("retry of step %d: counter %d, %v; first %d", i, again, err, first)
		}
	}
	p0, _ := e.h.Partition(ctx, g.Initial.MaskedKey)
	if p0.Length != 2 {
		t.Fatalf("partition 0 has %d messages, want 2", p0.Length)
	}
	if ps, _ := e.h.Partitions(ctx, g.GroupID); len(ps) != 2 {
		t.Fatalf("%d partitions after a retried commit, want 2", len(ps))
	}
	if ws, _ := e.h.PendingWelcomes(ctx, "b.example", 10); len(ws) != 1 {
		t.Fatalf("%d Welcomes for bob's provider after a retried commit, want 1", len(ws))
	}
	if st := e.h.Stats(); st.Duplicates != 3 || st.Sequenced != 3 {
		t.Fatalf("stats %+v", st)
	}
	// After a restart the retry is still recognized.
	e.restart()
	if c, err := e.sendStep(&g.Steps[1], sendOpts{}); err != nil || c != 1 {
		t.Fatalf("retry after restart: %d, %v", c, err)
	}
}

func TestWelcomeRouting(t *testing.T) {
	g := loadFixture(t, "grow-100.json")
	e := newEnv(t, "a.example", nil)
	e.create(g)
	ctx := context.Background()
	// The KeyPackage store served this provider's users' KeyPackages, except
	// one (a ref of our domain we never served: not delivered).
	local, remote, unserved := map[int64][]byte{}, 0, 0
	var never string
	for _, m := range g.Steps[2].Welcome.NewMembers {
		if m.Provider == "a.example" {
			never = m.Identity
		}
	}
	client := int64(100)
	for _, st := range g.Steps {
		if st.Welcome == nil {
			continue
		}
		for _, m := range st.Welcome.NewMembers {
			switch {
			case m.Provider != "a.example":
				remote++
			case m.Identity == never:
				unserved++
			default:
				client++
				e.router.add(m.Ref, client)
				local[client] = m.Ref
			}
		}
	}
	if len(local) < 10 || remote < 10 || unserved != 1 {
		t.Fatalf("fixture: %d local, %d remote, %d unserved", len(local), remote, unserved)
	}
	r := newReplayer(e, g)
	r.run(t, g.Steps, sendOpts{})
	for id, ref := range local {
		got := e.mbox.deliveries(id)
		if len(got) != 1 {
			t.Fatalf("client %d got %d Welcomes, want 1", id, len(got))
		}
		var d protocol.WelcomeDelivery
		if err := d.UnmarshalBinary(got[0]); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(d.GroupID, g.GroupID) || len(d.KeyPackageRefs) != 1 || !bytes.Equal(d.KeyPackageRefs[0], ref) {
			t.Fatalf("delivery %+v", d)
		}
		m, err := mls.DecodeMLSMessage(d.Welcome)
		if err != nil || m.Welcome == nil {
			t.Fatalf("delivered Welcome: %v", err)
		}
	}
	for _, k := range e.mbox.kinds {
		if k != uint16(protocol.KindWelcome) {
			t.Fatalf("mailbox kind %d", k)
		}
	}
	ws, err := e.h.PendingWelcomes(ctx, "b.example", 1000)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, w := range ws {
		n += len(w.KeyPackageRefs)
		if w.ClientID != 0 || w.Provider != "b.example" || !bytes.Equal(w.GroupID, g.GroupID) {
			t.Fatalf("pending Welcome %+v", w)
		}
	}
	if n != remote {
		t.Fatalf("%d refs pending for b.example, want %d", n, remote)
	}
	if err := e.h.WelcomeDelivered(ctx, ws[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := e.h.WelcomeDelivered(ctx, ws[0].ID); !errors.Is(err, hub.ErrNotFound) {
		t.Fatalf("second WelcomeDelivered: %v", err)
	}
	if _, err := e.h.PendingWelcomes(ctx, "a.example", 10); !errors.Is(err, hub.ErrMalformed) {
		t.Fatalf("PendingWelcomes for ourselves: %v", err)
	}
}

func TestWelcomeRedelivery(t *testing.T) {
	g := loadFixture(t, "create-2.json")
	var logs bytes.Buffer // written by the hub under test only, from this goroutine's calls
	e := newEnv(t, "b.example", func(c *hub.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}) // bob's provider hosts this time
	e.create(g)
	ctx := context.Background()
	st := &g.Steps[1] // alice adds bob, Welcome for b.example
	e.router.add(st.Welcome.NewMembers[0].Ref, 42)
	e.sendStep(&g.Steps[0], sendOpts{})
	e.mbox.fail = true
	if _, err := e.sendStep(st, sendOpts{}); err != nil {
		t.Fatalf("a failing mailbox must not fail the commit: %v", err)
	}
	if got := e.mbox.deliveries(42); len(got) != 0 {
		t.Fatal("delivered through a failing mailbox")
	}
	// One line per request, with the count and the first error.
	if got := logs.String(); strings.Count(got, "\n") != 1 || !strings.Contains(got, "clients=1 of=1") || !strings.Contains(got, "mailbox down") {
		t.Fatalf("log of a failed delivery: %q", got)
	}
	e.mbox.fail = false
	e.restart()
	if err := e.h.RedeliverWelcomes(ctx); err != nil || len(e.mbox.deliveries(42)) != 0 {
		t.Fatalf("a fresh Welcome was redelivered at once: %v", err)
	}
	e.clock.add(time.Minute)
	if err := e.h.RedeliverWelcomes(ctx); err != nil || len(e.mbox.deliveries(42)) != 1 {
		t.Fatalf("redelivery: %v, %d deliveries", err, len(e.mbox.deliveries(42)))
	}
	if err := e.h.RedeliverWelcomes(ctx); err != nil || len(e.mbox.deliveries(42)) != 1 {
		t.Fatalf("a delivered Welcome was delivered again: %v", err)
	}
}

func TestTerminatedFork(t *testing.T) {
	g := loadFixture(t, "fork.json")
	e := newEnv(t, "a.example", nil)
	e.create(g)
	ctx := context.Background()
	r := newReplayer(e, g)
	r.run(t, g.Steps, sendOpts{})
	var a, b []tsStep
	for _, br := range g.Branches {
		switch br.Name {
		case "a":
			a = br.Steps
		case "b":
			b = br.Steps
		}
	}
	r.step(t, 0, &a[0], sendOpts{}) // branch a's first commit
	r.step(t, 0, &b[0], sendOpts{}) // branch b's: a fork
	aKey, bKey := mask(t, a[0].After.PartitionKey), mask(t, b[0].After.PartitionKey)
	sink := &recorder{}
	defer e.h.Subscribe(bKey, sink)()
	// GroupInfo follows the main line, branch a's (its commit was sequenced
	// first), although b's partition opened later; terminate b.
	if gi, err := e.h.GroupInfo(ctx, &protocol.GroupInfoRequest{GroupID: g.GroupID}); err != nil || !bytes.Equal(gi.GroupInfo, a[0].After.GroupInfoWithTree) {
		t.Fatalf("GroupInfo before termination is not branch a's: %v", err)
	}
	if err := e.h.Terminate(ctx, []byte("another group"), bKey); !errors.Is(err, hub.ErrWrongPartition) {
		t.Fatalf("terminate through another group: %v", err)
	}
	if err := e.h.Terminate(ctx, g.GroupID, bKey); err != nil {
		t.Fatal(err)
	}
	if err := e.h.Terminate(ctx, g.GroupID, bKey); err != nil {
		t.Fatalf("terminate twice: %v", err)
	}
	if got := sink.got(); len(got) != 1 || !got[0].Terminated || got[0].Counter != 0 || !bytes.Equal(got[0].Masked, bKey) {
		t.Fatalf("subscriber saw %+v, want one terminated event", got)
	}
	info, _ := e.h.Partition(ctx, bKey)
	if !info.Terminated {
		t.Fatal("partition not marked terminated")
	}
	if _, err := e.sendStep(&b[1], sendOpts{}); !errors.Is(err, hub.ErrTerminated) {
		t.Fatalf("send to the terminated branch: %v", err)
	}
	// Branch a lives on and is still the main line.
	if gi, err := e.h.GroupInfo(ctx, &protocol.GroupInfoRequest{GroupID: g.GroupID}); err != nil || !bytes.Equal(gi.GroupInfo, a[0].After.GroupInfoWithTree) {
		t.Fatalf("GroupInfo after termination is not branch a's: %v", err)
	}
	r.step(t, 1, &a[1], sendOpts{})
	if info, _ := e.h.Partition(ctx, aKey); info.Length != 1 || info.Terminated {
		t.Fatalf("branch a: %+v", info)
	}
	// Messages of the terminated partition stay readable.
	resp, err := e.h.Receive(ctx, &protocol.ReceiveRequest{PartitionKey: b[0].After.PartitionKey})
	if err != nil || len(resp.Epoch.Messages) != 0 {
		t.Fatalf("receive from terminated: %+v, %v", resp, err)
	}
}

func TestReceiveWithHints(t *testing.T) {
	g := loadFixture(t, "create-2.json")
	e := newEnv(t, "a.example", func(c *hub.Config) { c.HintPartitions, c.HintMessages = 1, 2 })
	e.create(g)
	ctx := context.Background()
	r := newReplayer(e, g)
	r.run(t, g.Steps, sendOpts{})
	// Partition 1 (epoch 1): bob, alice, bob's proposal, alice's commit; its
	// commit opened epoch 2 (bob's message, bob's commit).
	var p1 []byte
	for _, st := range g.Steps {
		if st.Epoch == 1 {
			p1 = st.PartitionKey
		}
	}
	resp, err := e.h.Receive(ctx, roundTrip(t, &protocol.ReceiveRequest{PartitionKey: p1, Counter: 1}, &protocol.ReceiveRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	resp = roundTrip(t, resp, &protocol.ReceiveResponse{})
	if len(resp.Epoch.Messages) != 3 {
		t.Fatalf("%d messages from counter 1, want 3", len(resp.Epoch.Messages))
	}
	var want [][]byte
	for _, st := range g.Steps {
		if st.Epoch == 1 {
			want = append(want, st.Message)
		}
	}
	for i, m := range resp.Epoch.Messages {
		if !bytes.Equal(m.Message, want[i+1]) {
			t.Fatalf("message %d differs", i)
		}
	}
	c := resp.Epoch.Messages[2]
	var commitStep *tsStep
	for i := range g.Steps {
		if g.Steps[i].Epoch == 1 && g.Steps[i].After != nil {
			commitStep = &g.Steps[i]
		}
	}
	if c.ContentType != mls.ContentTypeCommit || !bytes.Equal(c.NextPartitionKey, commitStep.After.MaskedKey) ||
		!bytes.Equal(c.GroupInfo, commitStep.After.GroupInfoWithTree) {
		t.Fatal("the commit does not carry its masked next key and GroupInfo")
	}
	if len(resp.Hints) != 1 || !bytes.Equal(resp.Hints[0].MaskedPartitionKey, commitStep.After.MaskedKey) ||
		len(resp.Hints[0].Epoch.Messages) != 2 {
		t.Fatalf("hints %+v, want the first 2 messages of epoch 2", resp.Hints)
	}
	// From the end: nothing, no hints.
	resp, err = e.h.Receive(ctx, &protocol.ReceiveRequest{PartitionKey: p1, Counter: 4})
	if err != nil || len(resp.Epoch.Messages) != 0 || len(resp.Hints) != 0 {
		t.Fatalf("receive past the end: %+v, %v", resp, err)
	}
	if _, err := e.h.Receive(ctx, &protocol.ReceiveRequest{PartitionKey: make([]byte, 16)}); !errors.Is(err, hub.ErrUnknownPartition) {
		t.Fatalf("receive from an unknown key: %v", err)
	}
	// Fetch and PartitionByKey agree.
	info, err := e.h.PartitionByKey(ctx, p1)
	if err != nil || info.Length != 4 || info.Epoch != 1 {
		t.Fatalf("PartitionByKey = %+v, %v", info, err)
	}
	es, err := e.h.Fetch(ctx, info.Masked, 1, 10)
	if err != nil || len(es) != 2 || es[0].Counter != 2 {
		t.Fatalf("Fetch = %+v, %v", es, err)
	}
}

func TestSubscribeInOrder(t *testing.T) {
	g := loadFixture(t, "create-2.json")
	e := newEnv(t, "a.example", nil)
	e.create(g)
	sinks := map[string]*recorder{}
	for _, st := range g.Steps {
		k := string(mask(t, st.PartitionKey))
		if sinks[k] == nil {
			sinks[k] = &recorder{}
			defer e.h.Subscribe([]byte(k), sinks[k])()
		}
	}
	other := &recorder{}
	cancel := e.h.Subscribe(g.Initial.MaskedKey, other)
	cancel()
	r := newReplayer(e, g)
	r.run(t, g.Steps, sendOpts{})
	total := 0
	for _, s := range sinks {
		for i, en := range s.got() {
			if en.Counter != uint32(i) || en.Terminated {
				t.Fatalf("entry %d has counter %d", i, en.Counter)
			}
			total++
		}
	}
	if total != len(g.Steps) || len(other.got()) != 0 {
		t.Fatalf("%d entries published, want %d (cancelled sink: %d)", total, len(g.Steps), len(other.got()))
	}
	e.h.Poke(nil)
	for _, s := range sinks {
		if s.refetchs != 1 {
			t.Fatal("Poke did not reach every sink")
		}
	}
}

func TestExternalJoinRetryAndBadJoins(t *testing.T) {
	g := loadFixture(t, "external-join.json")
	e := newEnv(t, "a.example", nil)
	e.create(g)
	ctx := context.Background()
	r := newReplayer(e, g)
	i := stepIndex(t, g.Steps, func(s *tsStep) bool { return s.Kind == "external_commit" })
	r.run(t, g.Steps[:i], sendOpts{})
	join := &g.Steps[i]
	req := &protocol.ExternalJoinRequest{Message: join.Message, CommitData: *commitData(join, sendOpts{})}
	dave := protocol.Sender{UserURI: "mimi://b.example/u/dave"}
	first, err := e.h.ExternalJoin(ctx, dave, req)
	if err != nil || !bytes.Equal(first.MaskedPartitionKey, mask(t, join.PartitionKey)) {
		t.Fatalf("external join: %+v, %v", first, err)
	}
	// The join opened a newer partition; a retry still gets its first answer.
	again, err := e.h.ExternalJoin(ctx, dave, req)
	if err != nil || again.Counter != first.Counter || !bytes.Equal(again.MaskedPartitionKey, first.MaskedPartitionKey) {
		t.Fatalf("retry: %+v, %v; first %+v", again, err, first)
	}
	// A regular commit is not an external join.
	var regular *tsStep
	for k := range g.Steps {
		if g.Steps[k].Kind == "commit" {
			regular = &g.Steps[k]
		}
	}
	bad := &protocol.ExternalJoinRequest{Message: regular.Message, CommitData: *commitData(regular, sendOpts{})}
	if _, err := e.h.ExternalJoin(ctx, dave, bad); !errors.Is(err, hub.ErrInvalidMessage) {
		t.Fatalf("regular commit as external join: %v", err)
	}
	// The next external join (erin) was made for the epoch dave's join
	// opened, which is the newest: it goes there.
	k := stepIndex(t, g.Steps[i+1:], func(s *tsStep) bool { return s.Kind == "external_commit" }) + i + 1
	r.run(t, g.Steps[i+1:k+1], sendOpts{})
	// An external join for an old epoch is refused (epoch mismatch).
	if _, err := e.h.ExternalJoin(ctx, dave, &protocol.ExternalJoinRequest{Message: g.Steps[i].Message,
		CommitData: protocol.CommitData{NextPartitionKey: make([]byte, 16)}}); !errors.Is(err, hub.ErrWrongPartition) {
		t.Fatalf("a stale external join: %v, want ErrWrongPartition", err)
	}
}
