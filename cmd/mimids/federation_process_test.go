package main

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mimids/mimids/client"
	"github.com/mimids/mimids/cmd/mimids/fedproc"
	"github.com/mimids/mimids/mls/mlstest"
	"github.com/mimids/mimids/protocol"
)

// fedUser is one device of a user of a process federation: the Welcomes its
// mailbox delivered and the pushes its subscriptions got.
type fedUser struct {
	uri, dom string
	c        *client.Client
	mu       sync.Mutex
	welcomes map[string]int  // group id -> deliveries
	pushes   []protocol.Push // in arrival order
}

func (u *fedUser) handle(_ context.Context, d *client.Delivery) error {
	if wd, err := d.Welcome(); err == nil {
		u.mu.Lock()
		u.welcomes[string(wd.GroupID)]++
		u.mu.Unlock()
	}
	return nil
}

func (u *fedUser) onPush(f protocol.Frame) {
	if p, ok := f.(*protocol.Push); ok {
		u.mu.Lock()
		u.pushes = append(u.pushes, *p)
		u.mu.Unlock()
	}
}

func (u *fedUser) seen(gid []byte) (welcomes int, pushes []protocol.Push) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.welcomes[string(gid)], append([]protocol.Push(nil), u.pushes...)
}

// TestGroupAcrossProcesses: three `mimids serve` processes with a test federation
// made by `mimids cert` and `mimids peer add`. A group hosted on A gets members on
// B and C by a Welcome through each follower; bob sends from B (forwarded to the
// hub), alice from A; carol, subscribed through C, gets every message once, in
// counter order, from C's copy; bob reads the same log through B.
func TestGroupAcrossProcesses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	f, err := fedproc.New(mimidsBinary(t), t.TempDir(), "a.example", "b.example", "c.example")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.StopAll(5*time.Second, nil)
		if t.Failed() {
			t.Log(f.Tails(15))
		}
	})
	if err := f.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	for _, d := range f.Domains {
		if err := f.Start(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.AddPeers(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.WaitLinked(ctx, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	us := map[string]*fedUser{}
	for _, u := range []struct{ name, dom string }{{"alice", "a.example"}, {"bob", "b.example"}, {"carol", "c.example"}} {
		token, err := f.AddClient(ctx, u.dom, u.name)
		if err != nil {
			t.Fatal(err)
		}
		fu := &fedUser{uri: "mimi://" + u.dom + "/u/" + u.name, dom: u.dom, welcomes: map[string]int{}}
		if fu.c, err = client.Dial(ctx, client.Config{URL: f.Socket(u.dom), Token: token, Handler: fu.handle, OnPush: fu.onPush}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { fu.c.Close(context.Background()) })
		us[u.name] = fu
	}
	alice, bob, carol := us["alice"], us["bob"], us["carol"]

	// alice fetches bob's and carol's KeyPackages through A's relay and creates the
	// group with a Welcome naming both.
	remote, err := alice.c.Remote(client.RemoteConfig{PeerURL: f.Base})
	if err != nil {
		t.Fatal(err)
	}
	var refs [][]byte
	for _, u := range []*fedUser{bob, carol} {
		if _, err := fedproc.UploadKeyPackage(ctx, u.c, u.uri); err != nil {
			t.Fatal(err)
		}
		ref, err := fedproc.FetchRef(ctx, remote, u.dom, u.uri)
		if err != nil {
			t.Fatalf("fetch %s through A: %v", u.uri, err)
		}
		refs = append(refs, ref)
	}
	g, err := mlstest.NewGroup(mlstest.Options{Identities: []string{alice.uri}})
	if err != nil {
		t.Fatal(err)
	}
	welcome, err := fedproc.WelcomeFor(refs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.c.CreateGroup(ctx, &protocol.CreateGroupRequest{GroupInfo: g.GroupInfoMessage, PartitionKey: g.PartitionKey,
		WelcomeData: &protocol.WelcomeData{Welcome: welcome, ServiceProviders: []string{"b.example", "c.example"}}}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []*fedUser{bob, carol} {
		if err := fedproc.Poll(ctx, 20*time.Second, func() (bool, error) { n, _ := u.seen(g.GroupID); return n == 1, nil }); err != nil {
			t.Fatalf("%s's Welcome: %v", u.uri, err)
		}
	}

	// Each follower learns the partition's hub on its first receive; carol
	// subscribes through C.
	for _, u := range []*fedUser{bob, carol} {
		if _, err := u.c.Receive(ctx, g.PartitionKey, 0); err != nil {
			t.Fatalf("%s's receive: %v", u.uri, err)
		}
	}
	masked, err := carol.c.Subscribe(ctx, g.PartitionKey, 0)
	if err != nil || !bytes.Equal(masked, g.MaskedPartitionKey()) {
		t.Fatalf("carol's subscribe through C: %x, %v", masked, err)
	}
	var sent [][]byte
	for _, from := range []*fedUser{bob, bob, bob, alice, alice, bob, bob} {
		m, err := g.RandomApplication(64)
		if err != nil {
			t.Fatal(err)
		}
		ctr, err := from.c.Send(ctx, &protocol.SendRequest{Message: m, PartitionKey: g.PartitionKey})
		if err != nil || int(ctr) != len(sent) {
			t.Fatalf("%s's send %d: counter %d, %v", from.uri, len(sent), ctr, err)
		}
		sent = append(sent, m)
	}
	if err := fedproc.Poll(ctx, 20*time.Second, func() (bool, error) { _, ps := carol.seen(g.GroupID); return len(ps) >= len(sent), nil }); err != nil {
		_, ps := carol.seen(g.GroupID)
		t.Fatalf("carol got %d pushes of %d: %v", len(ps), len(sent), err)
	}
	_, ps := carol.seen(g.GroupID)
	if len(ps) != len(sent) {
		t.Fatalf("carol got %d pushes for %d messages", len(ps), len(sent))
	}
	for i, p := range ps {
		var m protocol.Message
		if err := m.UnmarshalBinary(p.Message); err != nil || p.Counter != uint32(i) || !bytes.Equal(m.Message, sent[i]) {
			t.Fatalf("carol's push %d: counter %d, %v; want counter %d with the message sent", i, p.Counter, err, i)
		}
	}
	r, err := bob.c.Receive(ctx, g.PartitionKey, 0)
	if err != nil || len(r.Epoch.Messages) != len(sent) {
		t.Fatalf("bob's receive through B: %v, %v", r, err)
	}
	for i, m := range r.Epoch.Messages {
		if !bytes.Equal(m.Message, sent[i]) {
			t.Fatalf("bob's receive through B: message %d is not what was sent", i)
		}
	}
}
