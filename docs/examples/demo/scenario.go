package main

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/mimids/mimids/client"
	"github.com/mimids/mimids/cmd/mimids/fedproc"
	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/mls/mlstest"
	"github.com/mimids/mimids/protocol"
)

// scenario is the demo's story; a step that cannot go on returns its error.
func (d *demo) scenario(ctx context.Context) error {
	d.step("test federation in %s", d.Dir)
	if err := d.Setup(ctx); err != nil {
		return err
	}
	d.pass("mimids cert: a CA and certificates for %v; three configurations written", domains)
	for _, dom := range domains {
		if err := d.Start(ctx, dom); err != nil {
			return fmt.Errorf("start %s: %w", dom, err)
		}
		d.pass("%s serving on 127.0.0.1:%d, federation on 127.0.0.1:%d (pid %d)", dom, d.GW[dom], d.Fed[dom], d.Procs[dom].Process.Pid)
	}
	d.step("each provider on the others' allow-list (mimids peer add -ca)")
	if err := d.AddPeers(ctx); err != nil {
		return err
	}
	if err := d.WaitLinked(ctx, 20*time.Second); err != nil {
		return err
	}
	d.pass("every link up (mimids peer list)")

	d.step("users on each provider (mimids client add) and their devices connected")
	us := map[string]*user{}
	for _, u := range []struct{ name, dom string }{{"alice", "a.example"}, {"bob", "b.example"}, {"erin", "b.example"}, {"carol", "c.example"}, {"dave", "c.example"}} {
		c, err := d.addUser(ctx, u.name, u.dom)
		if err != nil {
			return err
		}
		defer c.c.Close(context.Background())
		us[u.name] = c
	}
	d.pass("alice@a, bob@b, erin@b, carol@c, dave@c connected")
	return d.group(ctx, us)
}

// group is the group's story: KeyPackages, Welcomes, sends, external joins, fork.
func (d *demo) group(ctx context.Context, us map[string]*user) error {
	alice, bob, carol, dave, erin := us["alice"], us["bob"], us["carol"], us["dave"], us["erin"]
	d.step("bob and carol upload KeyPackages; alice fetches them through a.example's relay")
	for _, u := range []*user{bob, carol} {
		if _, err := fedproc.UploadKeyPackage(ctx, u.c, u.uri()); err != nil {
			return fmt.Errorf("upload for %s: %w", u.name, err)
		}
	}
	remote, err := alice.c.Remote(client.RemoteConfig{PeerURL: d.Base})
	if err != nil {
		return err
	}
	var refs [][]byte
	for _, u := range []*user{bob, carol} {
		ref, err := fedproc.FetchRef(ctx, remote, u.domain, u.uri())
		if err != nil {
			return fmt.Errorf("fetch %s: %w", u.uri(), err)
		}
		refs = append(refs, ref)
		d.pass("fetched a KeyPackage of %s through a.example (ref %x...)", u.uri(), ref[:8])
	}

	d.step("alice creates a group hosted on a.example with a Welcome for bob and carol")
	g, err := mlstest.NewGroup(mlstest.Options{Identities: []string{alice.uri()}, ExternalPub: true})
	if err != nil {
		return err
	}
	welcome, err := fedproc.WelcomeFor(refs)
	if err != nil {
		return err
	}
	if _, err := alice.c.CreateGroup(ctx, &protocol.CreateGroupRequest{GroupInfo: g.GroupInfoMessage, PartitionKey: g.PartitionKey,
		WelcomeData: &protocol.WelcomeData{Welcome: welcome, ServiceProviders: []string{"b.example", "c.example"}}}); err != nil {
		return err
	}
	d.pass("group %x... created at a.example", g.GroupID[:8])
	for _, u := range []*user{bob, carol} {
		if err := fedproc.Poll(ctx, 20*time.Second, func() (bool, error) { return u.welcomed(g.GroupID) == 1, nil }); err != nil {
			d.fail(u.name+"'s Welcome", err)
			continue
		}
		d.pass("%s got the Welcome through %s", u.name, u.domain)
	}

	d.step("a message from every provider (bob's and carol's forwarded to the hub)")
	var want []protocol.Message
	for _, u := range []*user{alice, bob, carol} {
		app, err := g.RandomApplication(64)
		if err != nil {
			return err
		}
		// The follower learns the partition on its first receive.
		if _, err := u.c.Receive(ctx, g.PartitionKey, 0); err != nil {
			return fmt.Errorf("%s's receive: %w", u.name, err)
		}
		c, err := u.c.Send(ctx, &protocol.SendRequest{Message: app, PartitionKey: g.PartitionKey})
		if err != nil || int(c) != len(want) {
			d.fail(u.name+"'s send through "+u.domain, fmt.Errorf("counter %d, %v; want %d", c, err, len(want)))
			continue
		}
		want = append(want, protocol.Message{Message: app})
		d.pass("%s sent through %s: counter %d", u.name, u.domain, c)
	}
	return d.joins(ctx, g, want, alice, bob, carol, dave, erin)
}

// joins: dave on C joins externally naming A, erin on B commits to the same
// partition (a fork), each sends in its own fork; then every partition is read on
// all three providers.
func (d *demo) joins(ctx context.Context, g *mlstest.Group, want []protocol.Message, alice, bob, carol, dave, erin *user) error {
	d.step("dave on c.example (which never saw the group) joins externally, naming a.example")
	gi, err := dave.c.GroupInfoAt(ctx, "a.example", g.GroupID)
	if err != nil {
		return fmt.Errorf("group_info_at: %w", err)
	}
	seen, err := mlstest.GroupFromInfo(gi.GroupInfo, gi.RatchetTree)
	if err != nil {
		return err
	}
	forks := map[string]*mlstest.Group{}
	for _, j := range []struct {
		u  *user
		at string
	}{{dave, "a.example"}, {erin, ""}} {
		if j.u == erin {
			d.step("erin on b.example sends a second commit to the first partition (an external commit, through b.example): a fork")
		}
		ej, err := seen.ExternalJoin(j.u.uri())
		if err != nil {
			return err
		}
		req := &protocol.ExternalJoinRequest{Message: ej.Message,
			CommitData: protocol.CommitData{NextPartitionKey: ej.Next.PartitionKey, GroupInfo: ej.Next.GroupInfoMessage}}
		var r protocol.ExternalJoinResponse
		if j.at != "" {
			r, err = j.u.c.ExternalJoinAt(ctx, j.at, req)
		} else {
			// external_join goes to the newest partition (dave's by now): a send
			// names the first one, where a second commit makes the fork.
			r.Counter, err = j.u.c.Send(ctx, &protocol.SendRequest{Message: ej.Message, PartitionKey: g.PartitionKey, CommitData: &req.CommitData})
		}
		if err != nil || int(r.Counter) != len(want) {
			d.fail(j.u.name+"'s external join", fmt.Errorf("counter %d, %v; want %d", r.Counter, err, len(want)))
			continue
		}
		want = append(want, protocol.Message{Message: ej.Message, ContentType: mls.ContentTypeCommit,
			NextPartitionKey: ej.Next.MaskedPartitionKey(), GroupInfo: ej.Next.GroupInfoMessage})
		forks[j.u.name] = ej.Next
		d.pass("%s joined through %s: counter %d, next partition %x...", j.u.name, j.u.domain, r.Counter, ej.Next.MaskedPartitionKey()[:8])
	}
	parts := map[string][]protocol.Message{"the first partition": want}
	keys := map[string][]byte{"the first partition": g.PartitionKey}
	for _, u := range []*user{dave, erin} {
		f := forks[u.name]
		if f == nil {
			continue
		}
		app, err := f.RandomApplication(48)
		if err != nil {
			return err
		}
		name := u.name + "'s fork"
		if _, err := u.c.Receive(ctx, f.PartitionKey, 0); err != nil {
			d.fail(u.name+"'s receive of "+name, err)
			continue
		}
		if c, err := u.c.Send(ctx, &protocol.SendRequest{Message: app, PartitionKey: f.PartitionKey}); err != nil || c != 0 {
			d.fail(u.name+"'s send in "+name, fmt.Errorf("counter %d, %v", c, err))
			continue
		}
		d.pass("%s sent in %s through %s: counter 0", u.name, name, u.domain)
		parts[name], keys[name] = []protocol.Message{{Message: app}}, f.PartitionKey
	}

	d.step("every partition read (receive) on all three providers")
	for _, name := range []string{"the first partition", "dave's fork", "erin's fork"} {
		if keys[name] == nil {
			continue
		}
		for _, u := range []*user{alice, bob, carol} {
			if err := d.same(ctx, u, keys[name], parts[name]); err != nil {
				d.fail(fmt.Sprintf("%s at %s", name, u.domain), err)
				continue
			}
			d.pass("%s at %s: %d messages, identical", name, u.domain, len(parts[name]))
		}
	}
	return nil
}

// same polls u's provider until the partition holds exactly want (the follower's
// copy may be a moment behind the hub).
func (d *demo) same(ctx context.Context, u *user, key []byte, want []protocol.Message) error {
	var last error
	err := fedproc.Poll(ctx, 20*time.Second, func() (bool, error) {
		r, err := u.c.Receive(ctx, key, 0)
		if err != nil {
			last = err
			return false, err
		}
		last = equal(r.Epoch.Messages, want)
		return last == nil, last
	})
	if err != nil && last != nil {
		return last
	}
	return err
}

// equal compares what was read with what was sent, field by field.
func equal(got, want []protocol.Message) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d messages, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if !bytes.Equal(g.Message, w.Message) || (w.ContentType == mls.ContentTypeCommit &&
			(g.ContentType != w.ContentType || !bytes.Equal(g.NextPartitionKey, w.NextPartitionKey) || !bytes.Equal(g.GroupInfo, w.GroupInfo))) {
			return fmt.Errorf("message %d is not what was sent", i)
		}
	}
	return nil
}
