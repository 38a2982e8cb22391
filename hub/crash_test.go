package hub_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mimids/mimids/hub"
	"github.com/mimids/mimids/protocol"
	"github.com/mimids/mimids/sqlite"
)

const crashEnv = "MIMIDS_HUB_CRASH_DB"

// TestCrashHelperProcess is the child of TestCrashLosesNothing: it sequences
// messages from 8 goroutines and prints each acknowledged counter until it
// is killed. Run directly, it does nothing.
func TestCrashHelperProcess(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		return
	}
	g := loadFixture(t, "create-2.json")
	db, err := sqlite.Open(context.Background(), path, sqlite.Options{Synchronous: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	h, err := hub.New(hub.Config{Domain: "a.example"}, db, &fakeRouter{refs: map[string]int64{}}, &fakeMailbox{got: map[int64][][]byte{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := h.CreateGroup(ctx, protocol.Sender{ClientID: 1, UserURI: "mimi://a.example/u/alice", Local: true},
		&protocol.CreateGroupRequest{GroupInfo: g.Initial.GroupInfoWithTree, PartitionKey: g.Initial.PartitionKey}); err != nil {
		t.Fatal(err)
	}
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; ; i += 8 {
				msg := privateVariant(t, g.Steps[0].Message, i+1)
				resp, err := h.Send(ctx, protocol.Sender{}, &protocol.SendRequest{Message: msg, PartitionKey: g.Initial.PartitionKey})
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Fprintf(out, "ack %d %d\n", i, resp.Counter)
				out.Flush()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// TestCrashLosesNothing kills a sequencing process with SIGKILL and checks
// that every counter it acknowledged is in the log with its message, that
// the log has no gaps, and that sequencing resumes after the last entry.
func TestCrashLosesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crash.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acks := map[int]uint32{}
	sc := bufio.NewScanner(stdout)
	deadline := time.Now().Add(60 * time.Second)
	for len(acks) < 300 && sc.Scan() && time.Now().Before(deadline) {
		var i int
		var c uint32
		if _, err := fmt.Sscanf(sc.Text(), "ack %d %d", &i, &c); err == nil {
			acks[i] = c
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if len(acks) < 300 {
		t.Fatalf("child acknowledged only %d messages: %s", len(acks), stderr.String())
	}
	g := loadFixture(t, "create-2.json")
	e := &env{t: t, path: path, router: &fakeRouter{refs: map[string]int64{}}, mbox: &fakeMailbox{got: map[int64][][]byte{}},
		clock: &clock{t: time.Now()}, cfg: hub.Config{Domain: "a.example"}}
	e.open()
	defer e.db.Close()
	ctx := context.Background()
	var es []hub.Entry
	for {
		page, err := e.h.Fetch(ctx, g.Initial.MaskedKey, int64(len(es))-1, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		es = append(es, page...)
	}
	byMsg := map[string]uint32{}
	for i, en := range es {
		if en.Counter != uint32(i) {
			t.Fatalf("gap: entry %d has counter %d", i, en.Counter)
		}
		if _, dup := byMsg[string(en.Message)]; dup {
			t.Fatalf("message sequenced twice (counter %d)", en.Counter)
		}
		byMsg[string(en.Message)] = en.Counter
	}
	for i, c := range acks {
		got, ok := byMsg[string(privateVariant(t, g.Steps[0].Message, i+1))]
		if !ok || got != c {
			t.Fatalf("acknowledged message %d (counter %d) lost or moved: %v %d", i, c, ok, got)
		}
	}
	resp, err := e.h.Send(ctx, protocol.Sender{}, &protocol.SendRequest{Message: g.Steps[0].Message, PartitionKey: g.Initial.PartitionKey})
	if err != nil || resp.Counter != uint32(len(es)) {
		t.Fatalf("after the crash: counter %d, %v; want %d", resp.Counter, err, len(es))
	}
}
