package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mimids/mimids/cmd/provider/providertest"
	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/directory/mailbox"
	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/mls/mlstest"
	"github.com/mimids/mimids/protocol"
)

// ts-mls groups (mls/testdata/tsmls/*.json; see its README): the fields these tests use.

type tsState struct {
	PartitionKey      hexBytes `json:"partition_key"`
	MaskedKey         hexBytes `json:"masked_partition_key"`
	GroupInfo         hexBytes `json:"group_info"`
	GroupInfoWithTree hexBytes `json:"group_info_with_tree"`
	RatchetTree       hexBytes `json:"ratchet_tree"`
}

type tsStep struct {
	Kind   string `json:"kind"`
	Sender struct {
		Identity string `json:"identity"`
	} `json:"sender"`
	Epoch        uint64   `json:"epoch"`
	PartitionKey hexBytes `json:"partition_key"`
	Message      hexBytes `json:"message"`
	Welcome      *struct {
		Message    hexBytes `json:"message"`
		NewMembers []struct {
			Provider string `json:"provider"`
		} `json:"new_members"`
	} `json:"welcome"`
	After *tsState `json:"after"`
}

type tsGroup struct {
	GroupID hexBytes `json:"group_id"`
	Initial tsState  `json:"initial"`
	Steps   []tsStep `json:"steps"`
}

func loadGroup(t testing.TB, name string) *tsGroup {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "mls", "testdata", "tsmls", name))
	if err != nil {
		t.Fatal(err)
	}
	g := new(tsGroup)
	if err := json.Unmarshal(b, g); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(g.Steps) == 0 || g.Initial.PartitionKey == nil {
		t.Fatalf("%s: no steps", name)
	}
	return g
}

func (g *tsGroup) createRequest() *protocol.CreateGroupRequest {
	return &protocol.CreateGroupRequest{GroupInfo: g.Initial.GroupInfo, RatchetTree: g.Initial.RatchetTree, PartitionKey: g.Initial.PartitionKey}
}

func commitData(st *tsStep) *protocol.CommitData {
	cd := &protocol.CommitData{NextPartitionKey: st.After.PartitionKey, GroupInfo: st.After.GroupInfoWithTree}
	if cd.GroupInfo == nil {
		cd.GroupInfo = st.After.GroupInfo
	}
	if st.Welcome != nil {
		cd.WelcomeData = &protocol.WelcomeData{Welcome: st.Welcome.Message}
		for _, m := range st.Welcome.NewMembers {
			cd.WelcomeData.ServiceProviders = append(cd.WelcomeData.ServiceProviders, m.Provider)
		}
	}
	return cd
}

func sendRequest(st *tsStep) *protocol.SendRequest {
	req := &protocol.SendRequest{Message: st.Message, PartitionKey: st.PartitionKey}
	if st.After != nil {
		req.CommitData = commitData(st)
	}
	return req
}

// feedRecorder is a FeedHandler that keeps what it is given.
type feedRecorder struct {
	mu     sync.Mutex
	events []FeedEvent
	gate   chan struct{} // when set, each event waits for it to be closed
}

func (r *feedRecorder) handle(ctx context.Context, ev *FeedEvent) {
	if r.gate != nil {
		select {
		case <-r.gate:
		case <-ctx.Done():
			return
		}
	}
	r.mu.Lock()
	r.events = append(r.events, *ev)
	r.mu.Unlock()
}

func (r *feedRecorder) got() []FeedEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// of returns the events of one partition.
func (r *feedRecorder) of(masked []byte) []FeedEvent {
	var out []FeedEvent
	for _, ev := range r.got() {
		if bytes.Equal(ev.Masked, masked) {
			out = append(out, ev)
		}
	}
	return out
}

// checkRun checks that evs are the messages from..to-1 in order, then the end if
// ended.
func checkRun(t testing.TB, evs []FeedEvent, from, to uint32, ended bool) {
	t.Helper()
	want := int(to-from) + map[bool]int{true: 1}[ended]
	if len(evs) != want {
		t.Fatalf("%d events, want %d", len(evs), want)
	}
	for i := range int(to - from) {
		if evs[i].Terminated || evs[i].Counter != from+uint32(i) {
			t.Fatalf("event %d: counter %d terminated %v, want counter %d", i, evs[i].Counter, evs[i].Terminated, from+uint32(i))
		}
	}
	if ended && (!evs[len(evs)-1].Terminated || evs[len(evs)-1].Counter != to) {
		t.Fatalf("last event %+v, want the end at %d", evs[len(evs)-1], to)
	}
}

func TestGroupMethodsCreate2(t *testing.T) {
	g := loadGroup(t, "create-2.json")
	p := startProvider(t, "a.example", nil)
	ctx := ctxT(t)
	rec := &feedRecorder{}
	alice, feed, _ := dialFeed(t, p, "alice", FeedConfig{Handler: rec.handle})
	bob, _ := dialAs(t, p.Socket, p.Dir, "bob", Config{})

	created, err := alice.CreateGroup(ctx, g.createRequest())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(created.MaskedPartitionKey, g.Initial.MaskedKey) {
		t.Fatalf("masked key %x, want %x", created.MaskedPartitionKey, g.Initial.MaskedKey)
	}
	if again, err := alice.CreateGroup(ctx, g.createRequest()); err != nil || !bytes.Equal(again.MaskedPartitionKey, created.MaskedPartitionKey) {
		t.Fatalf("retried create: %x, %v", again.MaskedPartitionKey, err)
	}
	other := g.createRequest()
	other.PartitionKey = make([]byte, 16)
	if _, err := alice.CreateGroup(ctx, other); ErrorCode(err) != protocol.CodeConflict {
		t.Fatalf("second create: %v, want conflict", err)
	}
	masked, err := feed.Subscribe(ctx, g.Initial.PartitionKey, 0)
	if err != nil || !bytes.Equal(masked, g.Initial.MaskedKey) {
		t.Fatalf("feed subscribe: %x, %v", masked, err)
	}

	// Every step, each from its sender's socket; the feed follows each new partition
	// as the commit that opens it arrives.
	counters := map[string]uint32{}
	sent := map[string][][]byte{} // by masked key: the messages in order
	maskedOf := map[string][]byte{string(g.Initial.PartitionKey): g.Initial.MaskedKey}
	for i := range g.Steps {
		st := &g.Steps[i]
		send := alice.Send
		if st.Sender.Identity == "mimi://b.example/u/bob" {
			send = bob.Send
			if st.Kind != "application" {
				// bob is a user of b.example: the hub takes the leaves his
				// handshakes carry from his provider (as its follower will), not
				// from a socket of a.example.
				send = func(ctx context.Context, req *protocol.SendRequest) (uint32, error) {
					resp, err := p.Hub.Send(ctx, protocol.Sender{UserURI: st.Sender.Identity}, req)
					return resp.Counter, err
				}
			}
		}
		n, err := send(ctx, sendRequest(st))
		if err != nil {
			t.Fatalf("step %d (%s): %v", i, st.Kind, err)
		}
		m := string(maskedOf[string(st.PartitionKey)])
		if n != counters[m] {
			t.Fatalf("step %d: counter %d, want %d", i, n, counters[m])
		}
		counters[m]++
		sent[m] = append(sent[m], st.Message)
		if st.After != nil {
			maskedOf[string(st.After.PartitionKey)] = st.After.MaskedKey
			if _, err := feed.Subscribe(ctx, st.After.PartitionKey, 0); err != nil {
				t.Fatalf("step %d: feed subscribe: %v", i, err)
			}
		}
		// A retry is answered with the same counter.
		if again, err := send(ctx, sendRequest(st)); err != nil || again != n {
			t.Fatalf("step %d retried: %d, %v; want %d", i, again, err, n)
		}
	}
	waitFor(t, "every message pushed", func() bool { return len(rec.got()) == len(g.Steps) })
	for m, msgs := range sent {
		evs := rec.of([]byte(m))
		checkRun(t, evs, 0, uint32(len(msgs)), false)
		for i, ev := range evs {
			hm, err := ev.Decode()
			if err != nil || !bytes.Equal(hm.Message, msgs[i]) {
				t.Fatalf("partition %x event %d: %v", m[:4], i, err)
			}
			if hm.ContentType == mls.ContentTypeCommit && len(hm.NextPartitionKey) == 0 {
				t.Errorf("commit without next_partition_key")
			}
		}
	}

	// Receive gives the first partition's log and hints at the next one.
	resp, err := bob.Receive(ctx, g.Initial.PartitionKey, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Epoch.Messages) != len(sent[string(g.Initial.MaskedKey)]) || len(resp.Hints) == 0 ||
		!bytes.Equal(resp.Hints[0].MaskedPartitionKey, g.Steps[1].After.MaskedKey) {
		t.Fatalf("receive: %d messages, hints %d", len(resp.Epoch.Messages), len(resp.Hints))
	}
	gi, err := bob.GroupInfo(ctx, g.GroupID)
	if err != nil || len(gi.GroupInfo) == 0 {
		t.Fatalf("group info: %v", err)
	}
	id, err := bob.Report(ctx, &protocol.Report{Kind: protocol.ReportMember, GroupID: g.GroupID, Subject: []byte("mimi://a.example/u/alice"), Reason: "test"})
	if err != nil || id == 0 {
		t.Fatalf("report: %d, %v", id, err)
	}
	reports, err := p.Policy.ListReports(ctx, 10)
	if err != nil || len(reports) != 1 {
		t.Fatalf("reports: %v, %v", reports, err)
	}

	for _, tc := range []struct {
		name string
		call func() error
		code protocol.Code
	}{
		{"unknown partition", func() error {
			_, err := alice.Send(ctx, &protocol.SendRequest{Message: g.Steps[0].Message, PartitionKey: make([]byte, 16)})
			return err
		}, protocol.CodeNotFound},
		{"wrong partition", func() error { // a commit of epoch 1 sent to epoch 0
			req := sendRequest(&g.Steps[5])
			req.PartitionKey = g.Initial.PartitionKey
			_, err := alice.Send(ctx, req)
			return err
		}, protocol.CodeWrongPartition},
		{"unknown group", func() error { _, err := alice.GroupInfo(ctx, []byte("nope")); return err }, protocol.CodeNotFound},
		{"receive unknown partition", func() error { _, err := alice.Receive(ctx, make([]byte, 16), 0); return err }, protocol.CodeNotFound},
		{"malformed report", func() error { _, err := alice.Report(ctx, &protocol.Report{Kind: 9}); return err }, protocol.CodeMalformed},
		{"subscribe unknown partition", func() error { _, err := alice.Subscribe(ctx, make([]byte, 16), 0); return err }, protocol.CodeNotFound},
		{"unsubscribe unknown partition", func() error { return alice.Unsubscribe(ctx, make([]byte, 32)) }, protocol.CodeNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); ErrorCode(err) != tc.code {
				t.Fatalf("%v (code %s), want %s", err, ErrorCode(err), tc.code)
			}
		})
	}
}

func TestExternalJoin(t *testing.T) {
	p := startProvider(t, "a.example", nil)
	ctx := ctxT(t)
	alice, _ := dialAs(t, p.Socket, p.Dir, "alice", Config{})
	dave, _ := dialAs(t, p.Socket, p.Dir, "dave", Config{})
	g, err := mlstest.NewGroup(mlstest.Options{Identities: []string{alice.Session().ClientID}, ExternalPub: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.CreateGroup(ctx, &protocol.CreateGroupRequest{GroupInfo: g.GroupInfoMessage, PartitionKey: g.PartitionKey}); err != nil {
		t.Fatal(err)
	}
	app, err := g.RandomApplication(100)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, &protocol.SendRequest{Message: app, PartitionKey: g.PartitionKey}); err != nil {
		t.Fatal(err)
	}
	// dave knows the group ID: he joins from the GroupInfo the hub serves.
	gi, err := dave.GroupInfo(ctx, g.GroupID)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gi.GroupInfo, g.GroupInfoMessage) {
		t.Errorf("group info is not the group's")
	}
	seen, err := mlstest.GroupFromInfo(gi.GroupInfo, gi.RatchetTree)
	if err != nil {
		t.Fatal(err)
	}
	j, err := seen.ExternalJoin(dave.Session().ClientID)
	if err != nil {
		t.Fatal(err)
	}
	req := &protocol.ExternalJoinRequest{Message: j.Message,
		CommitData: protocol.CommitData{NextPartitionKey: j.Next.PartitionKey, GroupInfo: j.Next.GroupInfoMessage}}
	resp, err := dave.ExternalJoin(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(resp.MaskedPartitionKey, g.MaskedPartitionKey()) || resp.Counter != 1 {
		t.Fatalf("external join = %x/%d, want %x/1", resp.MaskedPartitionKey, resp.Counter, g.MaskedPartitionKey())
	}
	// The same join again is a retry; a mismatched one is refused.
	if again, err := dave.ExternalJoin(ctx, req); err != nil || again.Counter != 1 {
		t.Fatalf("retried join: %+v, %v", again, err)
	}
	next, err := j.Next.ExternalJoin(dave.Session().ClientID)
	if err != nil {
		t.Fatal(err)
	}
	bad := &protocol.ExternalJoinRequest{Message: next.Message,
		CommitData: protocol.CommitData{NextPartitionKey: next.Next.PartitionKey, GroupInfo: g.GroupInfoMessage}}
	if _, err := dave.ExternalJoin(ctx, bad); ErrorCode(err) != protocol.CodeInvalidMLS {
		t.Fatalf("mismatched join: %v, want invalid_mls", err)
	}
}

func TestDeliveryWelcome(t *testing.T) {
	g := loadGroup(t, "create-2.json")
	p := startProvider(t, "a.example", nil)
	got := make(chan *protocol.WelcomeDelivery, 1)
	_, dc := dialAs(t, p.Socket, p.Dir, "bob", Config{Handler: func(_ context.Context, d *Delivery) error {
		w, err := d.Welcome()
		if err != nil {
			return nil
		}
		got <- w
		return nil
	}})
	want := &protocol.WelcomeDelivery{GroupID: g.GroupID, KeyPackageRefs: [][]byte{bytes.Repeat([]byte{7}, 32)}, Welcome: g.Steps[1].Welcome.Message}
	payload, err := want.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Mailbox.Enqueue(ctxT(t), mailbox.Target{ClientID: dc.ID}, uint16(protocol.KindWelcome), payload); err != nil {
		t.Fatal(err)
	}
	select {
	case w := <-got:
		if !bytes.Equal(w.GroupID, want.GroupID) || !bytes.Equal(w.Welcome, want.Welcome) || len(w.KeyPackageRefs) != 1 {
			t.Fatalf("welcome %+v", w)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no welcome delivered")
	}
	if _, err := (&Delivery{Kind: protocol.KindNotice}).Welcome(); !errors.Is(err, ErrProtocol) {
		t.Errorf("notice as welcome: %v", err)
	}
	if _, err := (&Delivery{Kind: protocol.KindWelcome, Payload: payload[:10]}).Welcome(); !errors.Is(err, ErrProtocol) {
		t.Errorf("truncated welcome: %v", err)
	}
}

// dialFeed connects a new client of user with a Feed.
func dialFeed(t testing.TB, p *providertest.Provider, user string, fcfg FeedConfig, edit ...func(*Config)) (*Client, *Feed, directory.Client) {
	t.Helper()
	cfg := Config{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	for _, e := range edit {
		e(&cfg)
	}
	dc, token := addClient(t, p.Dir, user, fmt.Sprintf("feed%d", deviceSeq.Add(1)))
	cfg.URL, cfg.Token = p.Socket, token
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, f, err := DialFeed(ctx, cfg, fcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.Close()
		c.Close(context.Background())
	})
	return c, f, dc
}

func TestFeedResubscribesAfterReconnect(t *testing.T) {
	p := startProvider(t, "a.example", nil)
	g := newSynthGroup(t, p)
	g.send(t, 5, 64)
	rec := &feedRecorder{}
	// A backoff long enough to see the server without the socket.
	c, feed, dc := dialFeed(t, p, "alice", FeedConfig{Handler: rec.handle}, func(cfg *Config) {
		cfg.MinBackoff, cfg.MaxBackoff = 200*time.Millisecond, 300*time.Millisecond
	})
	// From counter 2: the stored 2..4 first, then live ones.
	if _, err := feed.Subscribe(ctxT(t), g.pk, 2); err != nil {
		t.Fatal(err)
	}
	g.send(t, 10, 64)
	waitFor(t, "13 messages", func() bool { return len(rec.got()) == 13 })

	for range 3 {
		connects := c.Stats().Connects
		// Pushes are still queued at the server or in flight when it drops the
		// socket (a slow-consumer close): they are lost with it.
		g.send(t, 20, 64)
		if n := p.Gateway.CloseClient(dc.ID, protocol.CloseSlowConsumer, "test"); n != 1 {
			t.Fatalf("closed %d sockets", n)
		}
		// More messages while the client is away.
		waitFor(t, "the socket gone", func() bool { return p.Gateway.Connected() == 1 })
		g.send(t, 10, 64)
		waitFor(t, "reconnect", func() bool { return c.Stats().Connects > connects && c.Connected() })
	}
	g.send(t, 5, 64)
	total := uint32(g.sent)
	waitFor(t, "every message", func() bool { return len(rec.got()) >= int(total-2) })
	time.Sleep(50 * time.Millisecond) // a duplicate would show up by now
	checkRun(t, rec.got(), 2, total, false)
	t.Logf("stats %+v", feed.Stats())
	if st := feed.Stats(); st.Resubscribes < 3 || st.Delivered != uint64(total-2) {
		t.Errorf("stats %+v: want at least 3 resubscriptions and %d delivered", st, total-2)
	}
	if next, ok := feed.Next(g.masked); !ok || next != total {
		t.Errorf("Next = %d, %v; want %d", next, ok, total)
	}
}

func TestFeedOverflowRefetches(t *testing.T) {
	p := startProvider(t, "a.example", nil)
	g := newSynthGroup(t, p)
	rec := &feedRecorder{gate: make(chan struct{})}
	_, feed, _ := dialFeed(t, p, "alice", FeedConfig{Handler: rec.handle, QueueLen: 4, QueueBytes: 4 << 10})
	if _, err := feed.Subscribe(ctxT(t), g.pk, 0); err != nil {
		t.Fatal(err)
	}
	g.send(t, 60, 200)
	waitFor(t, "drops", func() bool { return feed.Stats().Dropped > 0 })
	close(rec.gate) // the handler catches up; the dropped ones are fetched again
	waitFor(t, "every message", func() bool { return len(rec.got()) >= 60 })
	time.Sleep(50 * time.Millisecond)
	checkRun(t, rec.got(), 0, 60, false)
	t.Logf("stats %+v", feed.Stats())
	if st := feed.Stats(); st.Resubscribes == 0 {
		t.Errorf("stats %+v: no resubscription after drops", st)
	}
}

func TestFeedTerminated(t *testing.T) {
	p := startProvider(t, "a.example", nil)
	g := newSynthGroup(t, p)
	rec := &feedRecorder{}
	_, feed, _ := dialFeed(t, p, "alice", FeedConfig{Handler: rec.handle})
	ctx := ctxT(t)
	if _, err := feed.Subscribe(ctx, g.pk, 0); err != nil {
		t.Fatal(err)
	}
	g.send(t, 7, 32)
	waitFor(t, "7 messages", func() bool { return len(rec.got()) == 7 })
	if err := p.Hub.Terminate(ctx, g.groupID, g.masked); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the end", func() bool { return len(rec.got()) == 8 })
	checkRun(t, rec.got(), 0, 7, true)
	if st := feed.Stats(); st.Verified != 1 {
		t.Errorf("stats %+v: want one verified end", st)
	}
	if _, err := g.sender.Send(ctx, &protocol.SendRequest{Message: syntheticApp(t, g.groupID, 99, 32), PartitionKey: g.pk}); ErrorCode(err) != protocol.CodeTerminated {
		t.Fatalf("send to a terminated partition: %v", err)
	}

	// A late subscriber gets the log, then the end.
	late := &feedRecorder{}
	_, feed2, _ := dialFeed(t, p, "alice", FeedConfig{Handler: late.handle})
	if _, err := feed2.Subscribe(ctx, g.pk, 3); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the late subscriber's end", func() bool { return len(late.got()) == 5 })
	checkRun(t, late.got(), 3, 7, true)
}

func TestFeedSubscribeErrors(t *testing.T) {
	p := startProvider(t, "a.example", nil)
	g := newSynthGroup(t, p)
	rec := &feedRecorder{}
	_, feed, _ := dialFeed(t, p, "alice", FeedConfig{Handler: rec.handle})
	ctx := ctxT(t)
	if _, err := feed.Subscribe(ctx, make([]byte, 16), 0); ErrorCode(err) != protocol.CodeNotFound {
		t.Fatalf("unknown partition: %v", err)
	}
	if _, err := feed.Subscribe(ctx, make([]byte, 15), 0); err == nil {
		t.Fatal("15-byte partition key accepted")
	}
	masked, err := feed.Subscribe(ctx, g.pk, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := feed.Subscribe(ctx, g.pk, 0); !errors.Is(err, ErrFeedSubscribed) {
		t.Fatalf("second subscribe: %v", err)
	}
	g.send(t, 2, 16)
	waitFor(t, "2 messages", func() bool { return len(rec.got()) == 2 })
	if err := feed.Unsubscribe(ctx, masked); err != nil {
		t.Fatal(err)
	}
	if err := feed.Unsubscribe(ctx, masked); !errors.Is(err, ErrFeedNotSubscribed) {
		t.Fatalf("second unsubscribe: %v", err)
	}
	g.send(t, 2, 16)
	time.Sleep(50 * time.Millisecond)
	if n := len(rec.got()); n != 2 {
		t.Fatalf("%d events after unsubscribing, want 2", n)
	}
	// Subscribing again from where it stopped resumes.
	if _, err := feed.Subscribe(ctx, g.pk, 2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "4 messages", func() bool { return len(rec.got()) == 4 })
	checkRun(t, rec.got(), 0, 4, false)

	unbound, err := NewFeed(FeedConfig{Handler: rec.handle})
	if err != nil {
		t.Fatal(err)
	}
	defer unbound.Close()
	if _, err := unbound.Subscribe(ctx, g.pk, 0); !errors.Is(err, ErrFeedUnbound) {
		t.Fatalf("unbound feed: %v", err)
	}
	if _, err := NewFeed(FeedConfig{QueueLen: -1}); err == nil {
		t.Fatal("NewFeed without a handler accepted")
	}
}

// newBareFeed is a Feed without its goroutines, for driving onPush directly.
func newBareFeed(queueLen int) *Feed {
	return &Feed{cfg: FeedConfig{QueueLen: queueLen, QueueBytes: 1 << 20}, work: make(chan struct{}, 1),
		ready: make(chan struct{}, 1), parts: map[string]*feedPart{}, byKey: map[string]*feedPart{}}
}

// follow adds a partition as if Subscribe had been answered.
func (f *Feed) follow(pk []byte, next uint32) *feedPart {
	p := &feedPart{key: pk, next: next, cands: maskCandidates(pk)}
	f.byKey[string(pk)] = p
	for _, m := range p.cands {
		f.parts[string(m)] = p
	}
	return p
}

func (f *Feed) queuedCounters() []uint32 {
	var out []uint32
	for _, it := range f.queue {
		out = append(out, it.ev.Counter)
	}
	return out
}

func TestFeedOnPush(t *testing.T) {
	pk := bytes.Repeat([]byte{1}, 16)
	masked := maskCandidates(pk)[0]
	push := func(c uint32) protocol.Frame {
		return &protocol.Push{Masked: masked, Counter: c, Message: []byte{byte(c)}}
	}
	event := func(e protocol.PartitionEventType) protocol.Frame {
		return &protocol.PartitionEvent{Masked: masked, Event: e}
	}
	for _, tc := range []struct {
		name     string
		queueLen int
		frames   []protocol.Frame
		want     []uint32
		stalled  bool
		sawEnd   bool
		stats    FeedStats
	}{
		{"in order", 8, []protocol.Frame{push(5), push(6), push(7)}, []uint32{5, 6, 7}, false, false, FeedStats{}},
		{"duplicates dropped", 8, []protocol.Frame{push(5), push(5), push(4), push(6), push(6)}, []uint32{5, 6}, false, false, FeedStats{Duplicates: 3}},
		{"gap stalls", 8, []protocol.Frame{push(5), push(7), push(8), push(6), push(7)}, []uint32{5, 6, 7}, true, false, FeedStats{Dropped: 2}},
		{"full queue stalls", 2, []protocol.Frame{push(5), push(6), push(7), push(8)}, []uint32{5, 6}, true, false, FeedStats{Dropped: 2}},
		{"other partitions ignored", 8, []protocol.Frame{&protocol.Push{Masked: []byte("x"), Counter: 5}, push(5)}, []uint32{5}, false, false, FeedStats{}},
		{"end is confirmed, not queued", 8, []protocol.Frame{push(5), event(protocol.EventTerminated), push(6)}, []uint32{5, 6}, false, true, FeedStats{}},
		{"unknown event ignored", 8, []protocol.Frame{event(7), push(5)}, []uint32{5}, false, false, FeedStats{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newBareFeed(tc.queueLen)
			p := f.follow(pk, 5)
			for _, fr := range tc.frames {
				f.onPush(fr)
			}
			if got := f.queuedCounters(); !slices.Equal(got, tc.want) {
				t.Errorf("queued %v, want %v", got, tc.want)
			}
			if p.stalled != tc.stalled || p.sawEnd != tc.sawEnd || f.stats != tc.stats {
				t.Errorf("stalled %v sawEnd %v stats %+v; want %v %v %+v", p.stalled, p.sawEnd, f.stats, tc.stalled, tc.sawEnd, tc.stats)
			}
		})
	}
	t.Run("dropped event asks for a new subscription", func(t *testing.T) {
		f := newBareFeed(8)
		p := f.follow(pk, 0)
		p.subGen, f.gen = 3, 3
		f.onPush(event(protocol.EventDropped))
		if p.subGen != 0 || len(f.work) != 1 {
			t.Fatalf("subGen %d, work signals %d", p.subGen, len(f.work))
		}
	})
	t.Run("store reset starts the partition over", func(t *testing.T) {
		f := newBareFeed(8)
		p := f.follow(pk, 5)
		f.setMaskedLocked(p, masked)
		f.onPush(push(5))
		f.onConnect(true)
		// After the reset, counter 0 is new again: the hub's log went back.
		f.onPush(push(0))
		if got := f.queuedCounters(); !slices.Equal(got, []uint32{5, 6, 0}) || !f.queue[1].ev.Reset || p.next != 1 {
			t.Fatalf("queued %v (reset event %+v), next %d", got, f.queue[1].ev, p.next)
		}
		if _, err := f.queue[1].ev.Decode(); err == nil {
			t.Fatal("a reset decodes as a message")
		}
	})
	t.Run("reconnect clears stalls", func(t *testing.T) {
		f := newBareFeed(8)
		p := f.follow(pk, 0)
		f.onPush(push(3))
		f.onConnect(false)
		if p.stalled || f.gen != 1 {
			t.Fatalf("stalled %v gen %d", p.stalled, f.gen)
		}
	})
}

func FuzzFeedFrames(f *testing.F) {
	pk := bytes.Repeat([]byte{2}, 16)
	masked := maskCandidates(pk)[0]
	var seed []byte
	for _, c := range []uint32{0, 1, 1, 3, 2} {
		seed = protocol.Append(seed, &protocol.Push{Masked: masked, Counter: c, Message: []byte("m")})
	}
	f.Add(seed)
	f.Add(protocol.Append(seed, &protocol.PartitionEvent{Masked: masked, Event: protocol.EventTerminated}))
	f.Add([]byte{8, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		feed := newBareFeed(16)
		feed.follow(pk, 0)
		for len(data) > 0 {
			fr, rest, err := protocol.Next(data)
			if err != nil {
				break
			}
			if len(rest) >= len(data) {
				t.Fatal("protocol.Next made no progress")
			}
			feed.onPush(fr)
			data = rest
		}
		for i, c := range feed.queuedCounters() {
			if c != uint32(i) {
				t.Fatalf("queued counters %v: not consecutive from 0", feed.queuedCounters())
			}
		}
	})
}

func FuzzDecodeMasked(f *testing.F) {
	f.Add([]byte{0x20, 1, 2, 3})
	f.Add(append([]byte{0x20}, make([]byte, 32)...))
	f.Add([]byte{0x40, 0x41})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMasked(b)
		if err == nil && (len(m) == 0 || len(m) > maxMaskedLen) {
			t.Fatalf("decoded %d-byte masked key", len(m))
		}
		var r reportAnswer
		_ = r.UnmarshalBinary(b)
	})
}

// BenchmarkFeedOnPush measures the reader-side cost of a push (dedup, copy, queue)
// and its dispatch to the handler, in batches of 1024 that the handler drains.
func BenchmarkFeedOnPush(b *testing.B) {
	const batch = 1024
	drained := make(chan struct{}, 1)
	feed, err := NewFeed(FeedConfig{Handler: func(_ context.Context, ev *FeedEvent) {
		if ev.Counter%batch == batch-1 {
			drained <- struct{}{}
		}
	}})
	if err != nil {
		b.Fatal(err)
	}
	defer feed.Close()
	pk := bytes.Repeat([]byte{3}, 16)
	feed.mu.Lock()
	feed.follow(pk, 0)
	feed.mu.Unlock()
	fr := &protocol.Push{Masked: maskCandidates(pk)[0], Message: make([]byte, 256)}
	b.ReportAllocs()
	for b.Loop() {
		feed.onPush(fr)
		if fr.Counter%batch == batch-1 {
			<-drained
		}
		fr.Counter++
	}
	if st := feed.Stats(); st.Dropped > 0 {
		b.Fatalf("dropped %d pushes", st.Dropped)
	}
}

// BenchmarkFeedEndToEnd measures one message sent on a socket until it is pushed to
// a Feed on another, through the real gateway and hub (stored before it is pushed):
// ns/op is the send-to-delivery latency.
func BenchmarkFeedEndToEnd(b *testing.B) {
	p := startProvider(b, "a.example", nil)
	g := newSynthGroup(b, p)
	got := make(chan uint32, 1024)
	_, feed, _ := dialFeed(b, p, "alice", FeedConfig{Handler: func(_ context.Context, ev *FeedEvent) { got <- ev.Counter }})
	if _, err := feed.Subscribe(context.Background(), g.pk, 0); err != nil {
		b.Fatal(err)
	}
	msgs := make([][]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		if len(msgs) == 0 {
			for i := range 1024 {
				msgs = append(msgs, syntheticApp(b, g.groupID, g.sent+uint64(i), 100))
			}
		}
		if _, err := g.sender.Send(context.Background(), &protocol.SendRequest{Message: msgs[0], PartitionKey: g.pk}); err != nil {
			b.Fatal(err)
		}
		msgs = msgs[1:]
		if c := <-got; uint64(c) != g.sent {
			b.Fatalf("pushed %d, want %d", c, g.sent)
		}
		g.sent++
	}
}

// A client follows a group's partition: messages arrive in order, also across
// reconnects, until the partition ends.
func ExampleDialFeed() {
	ctx := context.Background()
	c, feed, err := DialFeed(ctx, Config{URL: "wss://a.example/v1/socket", Token: "mdt_..."}, FeedConfig{
		Handler: func(ctx context.Context, ev *FeedEvent) {
			if ev.Terminated {
				fmt.Println("partition ended after", ev.Counter, "messages")
				return
			}
			m, err := ev.Decode()
			if err != nil {
				return
			}
			fmt.Println(ev.Counter, m.ContentType) // hand m.Message to the MLS client
		},
	})
	if err != nil {
		return
	}
	defer c.Close(ctx)
	defer feed.Close()
	partitionKey := make([]byte, 16) // MLS-Exporter("mimi partition key", "", 16) of the epoch
	if _, err := feed.Subscribe(ctx, partitionKey, 0); err != nil {
		fmt.Println("subscribe:", err, ErrorCode(err))
	}
}
