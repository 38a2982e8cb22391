package provider_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mimids/mimids/client"
	"github.com/mimids/mimids/cmd/provider"
	"github.com/mimids/mimids/cmd/provider/providertest"
	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/mls/mlstest"
	"github.com/mimids/mimids/protocol"
)

// inbox collects a client's deliveries.
type inbox struct {
	mu sync.Mutex
	ds []client.Delivery
}

func (b *inbox) handle(_ context.Context, d *client.Delivery) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ds = append(b.ds, client.Delivery{Seq: d.Seq, Kind: d.Kind, Payload: bytes.Clone(d.Payload)})
	return nil
}

func (b *inbox) got() []client.Delivery {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]client.Delivery(nil), b.ds...)
}

// waitFor polls cond every 10 ms until it holds or 10 s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// adminNotice posts a notice through the admin API and returns the status and body.
func adminNotice(t *testing.T, p *providertest.Provider, to map[string]any, text string) (int, string, map[string]any) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"to": to, "text": text})
	req, _ := http.NewRequest(http.MethodPost, p.Base+"/admin/v1/notices", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+p.AdminToken)
	hc := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("notice answer: %v", err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), out
}

// TestMailboxQuotaAdminNotices fills a client's mailbox through the admin API: past
// its quota in bytes, then in entries, a notice is refused with 507 problem JSON and
// nothing is written; a notice to the user still reaches its other client; the
// refusals are counted; the stored entries arrive intact, and acks free the room.
func TestMailboxQuotaAdminNotices(t *testing.T) {
	p := providertest.Start(t, "a.example", nil, func(c *provider.Config) {
		c.Gateway.HTTP.MaxBodyBytes = 1 << 20                                // notices of 600 KB
		c.Mailbox = provider.MailboxConfig{MaxEntries: 5, MaxBytes: 3 << 19} // 1.5 MiB
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	phone, token, err := p.Dir.AddClient(ctx, "bob", "phone", true)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.Dir.AddClient(ctx, "bob", "laptop", false); err != nil {
		t.Fatal(err)
	}
	toPhone := map[string]any{"client": p.Dir.ClientURI(phone)}
	big := strings.Repeat("x", 600_000)
	var sent []string
	post := func(text string, wantStatus int) map[string]any {
		t.Helper()
		status, ct, out := adminNotice(t, p, toPhone, text)
		if status != wantStatus {
			t.Fatalf("notice of %d bytes: %d %v, want %d", len(text), status, out, wantStatus)
		}
		if status == http.StatusInsufficientStorage && (ct != "application/problem+json" || out["title"] != "mailbox full" || out["status"] != 507.0) {
			t.Fatalf("refusal: %s %v, want problem JSON \"mailbox full\"", ct, out)
		}
		if status == http.StatusAccepted {
			sent = append(sent, text)
		}
		return out
	}
	post(big, http.StatusAccepted)
	post(big, http.StatusAccepted)
	post(big, http.StatusInsufficientStorage) // 1.8 MB > 1.5 MiB
	for i := range 3 {
		post("small "+string(rune('a'+i)), http.StatusAccepted)
	}
	post("one too many", http.StatusInsufficientStorage) // 6 entries > 5
	if st, _, out := adminNotice(t, p, map[string]any{"user": "mimi://a.example/u/bob"}, "to bob"); st != http.StatusAccepted || out["enqueued"] != 1.0 {
		t.Fatalf("notice to bob: %d %v, want 202 with 1 enqueued (the laptop)", st, out)
	}
	if m := p.Metrics(t); m[`mimids_mailbox_full_total{kind="notice"}`] != 3 {
		t.Fatalf("mimids_mailbox_full_total = %v, want 3", m[`mimids_mailbox_full_total{kind="notice"}`])
	}
	u, err := p.Mailbox.Usage(ctx, phone.ID)
	if err != nil || u.Entries != 5 || u.Quota.MaxEntries != 5 {
		t.Fatalf("usage %+v, %v", u, err)
	}

	box := &inbox{}
	c, err := client.Dial(ctx, client.Config{URL: p.Socket, Token: token, Handler: box.handle})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	waitFor(t, "bob's 5 entries", func() bool { return len(box.got()) == 5 })
	for i, d := range box.got() {
		n, err := d.Notice()
		if err != nil || d.Seq != uint64(i+1) || n.Text != sent[i] {
			t.Fatalf("entry %d: seq %d, %d bytes, %v; want seq %d, the text sent", i, d.Seq, len(n.Text), err, i+1)
		}
	}
	waitFor(t, "the acks", func() bool { seq, err := c.Flush(ctx); return err == nil && seq == 5 })
	if u, _ := p.Mailbox.Usage(ctx, phone.ID); u.Entries != 0 || u.Bytes != 0 {
		t.Fatalf("usage after the acks: %+v", u)
	}
	post(big, http.StatusAccepted)
	waitFor(t, "the notice after the acks", func() bool { return len(box.got()) == 6 && box.got()[5].Seq == 6 })
}

// hostileGroup is a group of mallory's with the victim's leaf in its tree and a
// Welcome for the victim's KeyPackage of welcomeSize bytes.
func hostileGroup(t *testing.T, creator string, victim *mls.KeyPackage, victimRef []byte, welcomeSize int) *protocol.CreateGroupRequest {
	t.Helper()
	g, err := mlstest.NewGroup(mlstest.Options{Identities: []string{creator}})
	if err != nil {
		t.Fatal(err)
	}
	tree, err := mls.NewTree(g.Suite.ID(), mls.RatchetTree{{NodeType: mls.NodeTypeLeaf, Leaf: g.Members[0].Leaf}, nil,
		{NodeType: mls.NodeTypeLeaf, Leaf: &victim.LeafNode}})
	if err != nil {
		t.Fatal(err)
	}
	full := tree.RatchetTree()
	rt, err := full.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	gc := g.GroupContext
	gc.TreeHash = tree.TreeHash()
	gi := &mls.GroupInfo{GroupContext: gc, ConfirmationTag: randomBytes(g.Suite.HashSize()),
		Extensions: mls.Extensions{{ExtensionType: mls.ExtensionTypeRatchetTree, ExtensionData: rt}}}
	tbs, err := gi.TBS()
	if err != nil {
		t.Fatal(err)
	}
	if gi.Signature, err = g.Suite.SignWithLabel(g.Members[0].SignaturePriv, mls.GroupInfoTBSLabel, tbs); err != nil {
		t.Fatal(err)
	}
	gim, err := (&mls.MLSMessage{Version: mls.ProtocolVersionMLS10, WireFormat: mls.WireFormatGroupInfo, GroupInfo: gi}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	w := &mls.Welcome{CipherSuite: g.Suite.ID(), EncryptedGroupInfo: randomBytes(welcomeSize), Secrets: []mls.EncryptedGroupSecrets{
		{NewMember: victimRef, EncryptedGroupSecrets: mls.HPKECiphertext{KEMOutput: randomBytes(32), Ciphertext: randomBytes(100)}}}}
	wm, err := (&mls.MLSMessage{Version: mls.ProtocolVersionMLS10, WireFormat: mls.WireFormatWelcome, Welcome: w}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return &protocol.CreateGroupRequest{GroupInfo: gim, PartitionKey: g.PartitionKey,
		WelcomeData: &protocol.WelcomeData{Welcome: wm, ServiceProviders: []string{"a.example"}}}
}

// TestMailboxQuotaWelcomeFlood is the attack of issue 15 item 4 over the socket:
// mallory fetches bob's last-resort KeyPackage through the relay and creates groups
// whose 300 KB Welcomes all go to bob. Once bob's mailbox is at its quota, each
// create_group is refused with mailbox_full and creates nothing; bob's earlier entries
// arrive intact; after bob acks, mallory's retry succeeds.
func TestMailboxQuotaWelcomeFlood(t *testing.T) {
	p := providertest.Start(t, "a.example", nil, func(c *provider.Config) {
		c.Mailbox = provider.MailboxConfig{MaxEntries: 100, MaxBytes: 1 << 20}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bob, bobToken, err := p.Dir.AddClient(ctx, "bob", "phone", true)
	if err != nil {
		t.Fatal(err)
	}
	_, malToken, err := p.Dir.AddClient(ctx, "mallory", "phone", true)
	if err != nil {
		t.Fatal(err)
	}
	mal, err := client.Dial(ctx, client.Config{URL: p.Socket, Token: malToken})
	if err != nil {
		t.Fatal(err)
	}
	defer mal.Close(context.Background())
	// bob's device uploads a last resort, then goes offline; an operator notice waits.
	lr, _, err := mlstest.NewKeyPackage(mlstest.KeyPackageOptions{Identity: "mimi://a.example/u/bob", LastResort: true})
	if err != nil {
		t.Fatal(err)
	}
	up, err := client.Dial(ctx, client.Config{URL: p.Socket, Token: bobToken})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up.UploadKeyPackages(ctx, [][]byte{lr}); err != nil {
		t.Fatal(err)
	}
	up.Close(ctx)
	if st, _, out := adminNotice(t, p, map[string]any{"client": p.Dir.ClientURI(bob)}, "before the flood"); st != http.StatusAccepted {
		t.Fatalf("notice: %d %v", st, out)
	}

	remote, err := mal.Remote(client.RemoteConfig{Base: p.Base, HTTPClient: &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Discover(ctx, "a.example", nil, "mimi://a.example/u/bob")
	if err != nil {
		t.Fatal(err)
	}
	res, err := remote.FetchKeyPackages(ctx, "a.example", nil, []protocol.KeyPackageRequest{
		{UserID: d.UserID, BearerToken: d.BearerToken, Version: mls.ProtocolVersionMLS10, CipherSuite: 1}})
	if err != nil || res[0].Err() != nil {
		t.Fatalf("fetch: %v %+v", err, res)
	}
	kp, err := mls.DecodeKeyPackageMessage(res[0].Response.KeyPackage)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := kp.Ref()

	// 300 KB each: three fit in 1 MiB beside the notice, the fourth does not.
	var refused []*protocol.CreateGroupRequest
	for i := range 8 {
		req := hostileGroup(t, "mimi://a.example/d/mallory/phone", kp, ref, 300_000)
		_, err := mal.CreateGroup(ctx, req)
		switch {
		case i < 3 && err != nil:
			t.Fatalf("create_group %d: %v", i, err)
		case i >= 3 && client.ErrorCode(err) != protocol.CodeMailboxFull:
			t.Fatalf("create_group %d with bob's mailbox full: %v, want mailbox_full", i, err)
		case i >= 3:
			refused = append(refused, req)
		}
	}
	// A refused create_group created no group.
	for _, req := range refused {
		m, _ := req.ParsedGroupInfo()
		if _, err := mal.GroupInfo(ctx, m.GroupInfo.GroupContext.GroupID); client.ErrorCode(err) != protocol.CodeNotFound {
			t.Fatalf("group_info of a refused group: %v, want not_found", err)
		}
	}
	if n := p.Metrics(t)[`mimids_mailbox_full_total{kind="welcome"}`]; n < 5 {
		t.Fatalf("mimids_mailbox_full_total{kind=welcome} = %v, want >= 5", n)
	}
	// The notice, the key_packages_low and key_packages_exhausted warnings of the
	// fetch (it took bob's last resort), and three Welcomes.
	if u, _ := p.Mailbox.Usage(ctx, bob.ID); u.Entries != 6 || u.Bytes > 1<<20 {
		t.Fatalf("bob's usage %+v, want 6 entries within 1 MiB", u)
	}

	box := &inbox{}
	bc, err := client.Dial(ctx, client.Config{URL: p.Socket, Token: bobToken, Handler: box.handle})
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Close(context.Background())
	waitFor(t, "bob's 6 entries", func() bool { return len(box.got()) == 6 })
	got := box.got()
	if n, err := got[0].Notice(); err != nil || n.Text != "before the flood" || got[1].Kind != protocol.KindKeyPackagesLow ||
		got[2].Kind != protocol.KindKeyPackagesExhausted {
		t.Fatalf("first entries: %+v (%v), %s, %s", n, err, got[1].Kind, got[2].Kind)
	}
	for _, d := range got[3:] {
		if d.Kind != protocol.KindWelcome || len(d.Payload) < 300_000 {
			t.Fatalf("entry %d: %s of %d bytes", d.Seq, d.Kind, len(d.Payload))
		}
	}
	waitFor(t, "bob's acks", func() bool { seq, err := bc.Flush(ctx); return err == nil && seq == 6 })
	if _, err := mal.CreateGroup(ctx, refused[0]); err != nil {
		t.Fatalf("retried create_group after bob's acks: %v", err)
	}
	waitFor(t, "the retried Welcome", func() bool { return len(box.got()) == 7 && box.got()[6].Kind == protocol.KindWelcome })
}

// TestReportFlood: one socket sending reports as fast as it can gets its burst
// stored, then rate_limited; what is refused is not stored.
func TestReportFlood(t *testing.T) {
	p := providertest.Start(t, "a.example", nil, func(c *provider.Config) {
		c.Hub.ReportRate, c.Hub.ReportBurst = 1, 5
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := dialNewClient(ctx, t, p, "mallory")
	start := time.Now()
	ok, limited := 0, 0
	for range 200 {
		_, err := c.Report(ctx, &protocol.Report{Kind: protocol.ReportHub, GroupID: []byte("g"), Reason: "flood"})
		switch code := client.ErrorCode(err); {
		case err == nil:
			ok++
		case code == protocol.CodeRateLimited:
			limited++
		default:
			t.Fatalf("report: %v", err)
		}
	}
	allowed := 5 + int(time.Since(start).Seconds()) + 1
	if ok < 5 || ok > allowed || limited != 200-ok {
		t.Fatalf("%d stored, %d rate_limited; want 5..%d stored, the rest rate_limited", ok, limited, allowed)
	}
	if rs, err := p.Policy.ListReports(ctx, 1000); err != nil || len(rs) != ok {
		t.Fatalf("%d reports stored, %v; want %d", len(rs), err, ok)
	}
}

// TestKeyPackageUploadFlood: a client re-sending an upload it already stored is
// refused with conflict without any signature being verified, and past its burst
// with rate_limited.
func TestKeyPackageUploadFlood(t *testing.T) {
	p := providertest.Start(t, "a.example", nil, func(c *provider.Config) {
		c.KeyPackages.UploadRate, c.KeyPackages.UploadBurst = 1, 5
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := dialNewClient(ctx, t, p, "mallory")
	kps := make([][]byte, 20)
	for i := range kps {
		var err error
		if kps[i], _, err = mlstest.NewKeyPackage(mlstest.KeyPackageOptions{Identity: "mimi://a.example/u/mallory"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.UploadKeyPackages(ctx, kps); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	conflicts, limited := 0, 0
	for range 100 {
		_, err := c.UploadKeyPackages(ctx, kps)
		switch client.ErrorCode(err) {
		case protocol.CodeConflict:
			conflicts++
		case protocol.CodeRateLimited:
			limited++
		default:
			t.Fatalf("duplicate upload: %v", err)
		}
	}
	if allowed := 4 + int(time.Since(start).Seconds()) + 1; conflicts < 4 || conflicts > allowed || limited != 100-conflicts {
		t.Fatalf("%d conflicts, %d rate_limited; want 4..%d conflicts, the rest rate_limited", conflicts, limited, allowed)
	}
	m := p.Metrics(t)
	if m["mimids_key_packages_verified_total"] != 20 || m["mimids_key_packages_uploaded_total"] != 20 {
		t.Fatalf("verified %v, uploaded %v; want 20 and 20 (duplicates verify nothing)",
			m["mimids_key_packages_verified_total"], m["mimids_key_packages_uploaded_total"])
	}
}

// dialNewClient adds a client "phone" of a new user to p and connects it until the
// test ends.
func dialNewClient(ctx context.Context, t *testing.T, p *providertest.Provider, user string) *client.Client {
	t.Helper()
	_, token, err := p.Dir.AddClient(ctx, user, "phone", true)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(ctx, client.Config{URL: p.Socket, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}
