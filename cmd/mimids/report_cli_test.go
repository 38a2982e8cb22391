package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mimids/mimids/client"
	"github.com/mimids/mimids/cmd/provider/providertest"
	"github.com/mimids/mimids/protocol"
)

// TestReportHubListed: a client reports a hub and a follower that do not keep the
// terms (docs/protocol.md §5.11) over its socket; `mimids report list` on the
// running provider's store shows both to the local admin, by kind name.
func TestReportHubListed(t *testing.T) {
	p := providertest.Start(t, "b.example", nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, tok, err := p.Dir.AddClient(ctx, "bob", "phone", true)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(ctx, client.Config{URL: p.Socket, Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	for _, r := range []protocol.Report{
		{Kind: protocol.ReportHub, GroupID: []byte{0xaa}, Subject: []byte("a.example"), Reason: "ignores its own bans"},
		{Kind: protocol.ReportFollower, GroupID: []byte{0xbb}, Subject: []byte("c.example"), Reason: "lets banned users through"},
	} {
		if _, err := c.Report(ctx, &r); err != nil {
			t.Fatalf("report %s: %v", r.Kind, err)
		}
	}
	code, out, errOut := mimids(t, "report", "list", "-data", p.Config.DataDir)
	if code != 0 {
		t.Fatalf("report list: %d %s", code, errOut)
	}
	for _, want := range []string{
		fmt.Sprintf("mimi://b.example/u/bob\tkind hub\tgroup aa\tsubject %x\t%q", "a.example", "ignores its own bans"),
		fmt.Sprintf("mimi://b.example/u/bob\tkind follower\tgroup bb\tsubject %x\t%q", "c.example", "lets banned users through"),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report list lacks %q:\n%s", want, out)
		}
	}
}
