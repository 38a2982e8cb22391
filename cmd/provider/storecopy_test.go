package provider_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/mimids/mimids/client"
	"github.com/mimids/mimids/cmd/provider"
	"github.com/mimids/mimids/cmd/provider/providertest"
	"github.com/mimids/mimids/mls/mlstest"
	"github.com/mimids/mimids/postgres/pgtest"
	"github.com/mimids/mimids/protocol"
)

// TestStoreCopySQLiteToPostgres fills a provider on SQLite through its client
// socket and admin API, copies the stopped store into PostgreSQL, starts the
// provider on PostgreSQL and reads the same state through the same APIs: the
// tokens authenticate, the group's log is whole and goes on from where it was,
// the offline client's mailbox entry is delivered, and the incarnation is kept.
func TestStoreCopySQLiteToPostgres(t *testing.T) {
	srv := pgtest.StartServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	p := providertest.Start(t, "a.example", nil, func(c *provider.Config) { c.DataDir = dir })
	_, aliceToken, err := p.Dir.AddClient(ctx, "alice", "phone", true)
	if err != nil {
		t.Fatal(err)
	}
	laptop, laptopToken, err := p.Dir.AddClient(ctx, "alice", "laptop", false)
	if err != nil {
		t.Fatal(err)
	}
	alice, err := client.Dial(ctx, client.Config{URL: p.Socket, Token: aliceToken})
	if err != nil {
		t.Fatal(err)
	}
	g, err := mlstest.NewGroup(mlstest.Options{Identities: []string{"mimi://a.example/u/alice"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.CreateGroup(ctx, &protocol.CreateGroupRequest{GroupInfo: g.GroupInfoMessage, PartitionKey: g.PartitionKey}); err != nil {
		t.Fatal(err)
	}
	var sent [][]byte
	for i := range 3 {
		m, _ := g.RandomApplication(100 + i)
		if c, err := alice.Send(ctx, &protocol.SendRequest{Message: m, PartitionKey: g.PartitionKey}); err != nil || c != uint32(i) {
			t.Fatalf("send %d: counter %d, %v", i, c, err)
		}
		sent = append(sent, m)
	}
	if st, _, out := adminNotice(t, p, map[string]any{"client": p.Dir.ClientURI(laptop)}, "while you were away"); st != http.StatusAccepted {
		t.Fatalf("notice: %d %v", st, out)
	}
	alice.Close(ctx)
	inc := p.DB.IncarnationID()
	p.Stop()

	cfg := p.Config
	dsn := srv.DSN("postgres")
	st, err := provider.CopySQLiteToPostgres(ctx, cfg, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if st["hub_log"] != 3 || st["clients"] != 2 || st["mailbox"] != 1 {
		t.Fatalf("copied %v; want 3 hub_log rows, 2 clients, 1 mailbox entry", st)
	}
	if _, err := provider.CopySQLiteToPostgres(ctx, cfg, dsn); err == nil {
		t.Fatal("a second copy into the filled database was accepted")
	}

	q := providertest.Start(t, "a.example", nil, func(c *provider.Config) {
		c.Store.Driver, c.Store.DSN = provider.DriverPostgres, dsn
	})
	if q.DB.Driver() != provider.DriverPostgres || !bytes.Equal(q.DB.IncarnationID(), inc) {
		t.Fatalf("store %s with incarnation %x; want postgres with %x", q.DB.Driver(), q.DB.IncarnationID(), inc)
	}
	alice, err = client.Dial(ctx, client.Config{URL: q.Socket, Token: aliceToken})
	if err != nil {
		t.Fatalf("alice's token on the copy: %v", err)
	}
	defer alice.Close(ctx)
	r, err := alice.Receive(ctx, g.PartitionKey, 0)
	if err != nil || len(r.Epoch.Messages) != 3 {
		t.Fatalf("receive on the copy: %+v, %v", r, err)
	}
	for i, m := range sent {
		if !bytes.Equal(r.Epoch.Messages[i].Message, m) {
			t.Fatalf("message %d on the copy is not what was sent", i)
		}
	}
	m, _ := g.RandomApplication(80)
	if c, err := alice.Send(ctx, &protocol.SendRequest{Message: m, PartitionKey: g.PartitionKey}); err != nil || c != 3 {
		t.Fatalf("send on the copy: counter %d, %v; want 3", c, err)
	}
	box := &inbox{}
	lc, err := client.Dial(ctx, client.Config{URL: q.Socket, Token: laptopToken, Handler: box.handle})
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close(ctx)
	waitFor(t, "the laptop's notice", func() bool { return len(box.got()) == 1 })
	if n, err := box.got()[0].Notice(); err != nil || n.Text != "while you were away" {
		t.Fatalf("the laptop's entry: %+v, %v", n, err)
	}
	// A client added on the copy gets an id the SQLite store never gave.
	c, _, err := q.Dir.AddClient(ctx, "bob", "phone", true)
	if err != nil || c.ID <= laptop.ID {
		t.Fatalf("new client on the copy: id %d, %v; want above %d", c.ID, err, laptop.ID)
	}
}

// TestReadyzPostgres: /readyz of a provider on PostgreSQL reports the store's
// reads and commits, down while the database server is stopped and up again once
// it is back; a send while it is down fails with an error and is not
// acknowledged.
func TestReadyzPostgres(t *testing.T) {
	srv := pgtest.StartServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := providertest.Start(t, "a.example", nil, func(c *provider.Config) {
		c.Store.Driver, c.Store.DSN = provider.DriverPostgres, srv.DSN("postgres")
	})
	hc := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	ready := func() (int, map[string]any) {
		resp, err := hc.Get(p.Base + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	if st, out := ready(); st != http.StatusOK || fmt.Sprint(out["checks"]) != "map[store_read:ok store_write:ok]" {
		t.Fatalf("/readyz = %d %v", st, out)
	}
	alice := dialNewClient(ctx, t, p, "alice")
	g, err := mlstest.NewGroup(mlstest.Options{Identities: []string{"mimi://a.example/u/alice"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.CreateGroup(ctx, &protocol.CreateGroupRequest{GroupInfo: g.GroupInfoMessage, PartitionKey: g.PartitionKey}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "/readyz down", func() bool { st, _ := ready(); return st == http.StatusServiceUnavailable })
	if _, out := ready(); out["checks"].(map[string]any)["store_write"] == "ok" {
		t.Fatalf("/readyz with the database down: %v", out)
	}
	m, _ := g.RandomApplication(50)
	if c, err := alice.Send(ctx, &protocol.SendRequest{Message: m, PartitionKey: g.PartitionKey}); err == nil {
		t.Fatalf("send with the database down acknowledged at %d", c)
	}
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "/readyz up", func() bool { st, _ := ready(); return st == http.StatusOK })
	if c, err := alice.Send(ctx, &protocol.SendRequest{Message: m, PartitionKey: g.PartitionKey}); err != nil || c != 0 {
		t.Fatalf("send after the database is back: counter %d, %v; want 0 (the refused send was not sequenced)", c, err)
	}
}

// TestNodesShareAPostgresStore: two providers (nodes of one domain) on one
// PostgreSQL database: a client made on one authenticates on the other, a group's
// sends through both nodes share one log, and a client revoked on one node loses
// its socket on the other.
func TestNodesShareAPostgresStore(t *testing.T) {
	srv := pgtest.StartServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	onPostgres := func(c *provider.Config) {
		c.Store.Driver, c.Store.DSN = provider.DriverPostgres, srv.DSN("postgres")
	}
	a := providertest.Start(t, "a.example", nil, onPostgres)
	b := providertest.Start(t, "a.example", nil, onPostgres)
	_, tokenA, err := a.Dir.AddClient(ctx, "alice", "phone", true)
	if err != nil {
		t.Fatal(err)
	}
	_, tokenB, err := a.Dir.AddClient(ctx, "alice", "laptop", false)
	if err != nil {
		t.Fatal(err)
	}
	onA, err := client.Dial(ctx, client.Config{URL: a.Socket, Token: tokenA})
	if err != nil {
		t.Fatal(err)
	}
	defer onA.Close(ctx)
	onB, err := client.Dial(ctx, client.Config{URL: b.Socket, Token: tokenB})
	if err != nil {
		t.Fatalf("a client made on node a, on node b: %v", err)
	}
	defer onB.Close(ctx)
	g, err := mlstest.NewGroup(mlstest.Options{Identities: []string{"mimi://a.example/u/alice"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := onA.CreateGroup(ctx, &protocol.CreateGroupRequest{GroupInfo: g.GroupInfoMessage, PartitionKey: g.PartitionKey}); err != nil {
		t.Fatal(err)
	}
	for i, c := range []*client.Client{onA, onB, onA, onB} {
		m, _ := g.RandomApplication(60)
		if n, err := c.Send(ctx, &protocol.SendRequest{Message: m, PartitionKey: g.PartitionKey}); err != nil || n != uint32(i) {
			t.Fatalf("send %d: counter %d, %v", i, n, err)
		}
	}
	if r, err := onB.Receive(ctx, g.PartitionKey, 0); err != nil || len(r.Epoch.Messages) != 4 {
		t.Fatalf("receive on node b: %+v, %v", r, err)
	}
	if _, err := a.Dir.RevokeClient(ctx, "alice", "laptop"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-onB.Done():
	case <-ctx.Done():
		t.Fatal("the client revoked on node a kept its socket on node b")
	}
}
