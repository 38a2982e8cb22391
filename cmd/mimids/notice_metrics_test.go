package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mimids/mimids/cmd/provider/providertest"
	"github.com/mimids/mimids/directory/mailbox"
	"github.com/mimids/mimids/protocol"
)

// TestCLINoticesCounted: notices that `mimids notice` commits from another process
// are counted once in the running server's mimids_mailbox_enqueued_total, beside the
// server's own entries.
func TestCLINoticesCounted(t *testing.T) {
	p := providertest.Start(t, "a.example", nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, c := range [][2]string{{"alice", "phone"}, {"alice", "laptop"}, {"bob", "phone"}} {
		if _, _, err := p.Dir.AddClient(ctx, c[0], c[1], true); err != nil {
			t.Fatal(err)
		}
	}
	enqueued := func() float64 { return p.Metrics(t)["mimids_mailbox_enqueued_total"] }
	if got := enqueued(); got != 0 { // the server answers: it watches the change log from here on
		t.Fatalf("enqueued before any notice: %v", got)
	}
	// The server's own producer: counted as it commits.
	payload, _ := protocol.Notice{Text: "from the server"}.MarshalBinary()
	if n, err := p.Mailbox.Enqueue(ctx, mailbox.Target{All: true}, uint16(protocol.KindNotice), payload); err != nil || n != 3 {
		t.Fatalf("enqueue: %d, %v", n, err)
	}
	if got := enqueued(); got != 3 {
		t.Fatalf("enqueued after the server's notice: %v, want 3", got)
	}
	want := 3.0
	for _, tc := range []struct {
		target  []string
		entries int
	}{
		{[]string{"-all"}, 3},
		{[]string{"-user", "mimi://a.example/u/alice"}, 2},
		{[]string{"-client", "mimi://a.example/d/bob/phone"}, 1},
	} {
		args := append([]string{"notice", "-data", p.Config.DataDir, "-domain", "a.example"}, tc.target...)
		out, err := runCLI(t, append(args, "from the CLI")...)
		if err != nil || !strings.Contains(out, fmt.Sprintf("enqueued %d", tc.entries)) {
			t.Fatalf("mimids notice %v: %v\n%s", tc.target, err, out)
		}
		want += float64(tc.entries)
		waitFor(t, "the CLI's notices in the metric", func() bool { return enqueued() >= want })
		if got := enqueued(); got != want {
			t.Fatalf("after notice %v: enqueued %v, want %v", tc.target, got, want)
		}
	}
}
