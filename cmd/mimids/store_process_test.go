package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mimids/mimids/client"
	"github.com/mimids/mimids/sqlite"
)

// These tests damage a store the way a disk, an operator or a crash does, between
// separate mimids processes, and check that the server either refuses the store
// with the reason or serves it under a new incarnation that the Go client sees in
// auth_ok, so that it takes the entries whose seqs the store handed out again.

// addClient creates a client over the admin API and returns its token.
func addClient(t *testing.T, s *serverProc, admin, user, name string) string {
	t.Helper()
	code, body, err := s.post("/admin/v1/clients", admin, fmt.Sprintf(`{"user":%q,"client":%q,"create_user":true}`, user, name))
	if err != nil || code != 201 {
		t.Fatalf("add client %s/%s: %d %s %v", user, name, code, body, err)
	}
	var cl struct {
		Token string `json:"token"`
	}
	json.Unmarshal(body, &cl)
	return cl.Token
}

// notices sends one notice to everyone per text and fails unless each is committed.
func notices(t *testing.T, s *serverProc, admin string, texts ...string) {
	t.Helper()
	for _, text := range texts {
		if code, body, err := s.post("/admin/v1/notices", admin, fmt.Sprintf(`{"to":{"all":true},"text":%q}`, text)); err != nil || code != 202 {
			t.Fatalf("notice %q: %d %s %v", text, code, body, err)
		}
	}
}

func texts(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

// recorder counts the notices a client's handler accepted, by text.
type recorder struct {
	mu    sync.Mutex
	count map[string]int
}

func (r *recorder) handle(_ context.Context, d *client.Delivery) error {
	n, err := d.Notice()
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.count[n.Text]++
	r.mu.Unlock()
	return nil
}

func (r *recorder) has(want ...string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range want {
		if r.count[w] == 0 {
			return false
		}
	}
	return true
}

func (r *recorder) times(text string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count[text]
}

// dialRecorder connects a Go client that reconnects quickly.
func dialRecorder(t *testing.T, addr, token string, lastSeq uint64, incarnation string) (*client.Client, *recorder) {
	t.Helper()
	r := &recorder{count: map[string]int{}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{URL: "ws://" + addr + "/v1/socket", Token: token, Handler: r.handle,
		LastSeq: lastSeq, Incarnation: incarnation, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.Close(ctx)
	})
	return c, r
}

// flush waits until the server committed the client's acks up to its LastSeq.
func flush(t *testing.T, c *client.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if acked, err := c.Flush(ctx); err != nil || acked != c.LastSeq() {
		t.Fatalf("flush: acked %d of %d: %v", acked, c.LastSeq(), err)
	}
}

// stop ends a server with SIGTERM (a clean stop: the WAL is checkpointed away).
func (p *serverProc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
}

// waitMarkCovers waits until the running server's mark file covers every commit
// in the store (the server rewrites it right after its commits), as it would by
// the time anyone pulls the plug.
func waitMarkCovers(t *testing.T, data string) {
	t.Helper()
	path := filepath.Join(data, "mimids.db")
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	waitFor(t, "the mark to cover the store", func() bool {
		var n uint64
		if err := db.QueryRow(`SELECT commits FROM store_meta`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		m, err := sqlite.ReadMark(sqlite.MarkPath(path))
		return err == nil && m.Commits >= n && n > 0
	})
}

// runServe runs mimids serve expecting it to exit, and returns its exit code and output.
func runServe(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, mimidsBinary(t), append([]string{"serve", "-listen", freeAddr(t), "-domain", "a.example"}, args...)...).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("mimids serve %q did not exit:\n%s", args, out)
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, string(out)
}

// mustCLI runs the mimids binary and fails the test if it fails.
func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, err := runCLI(t, args...)
	if err != nil {
		t.Fatalf("mimids %q: %v\n%s", args, err, out)
	}
	return out
}

// TestProcessDamagedWALGetsNewIncarnation kills the server mid-stream, damages the
// WAL that held the last commits, and restarts it: the store went back to before
// them, so the server serves it under a new incarnation; the Go clients that
// handled the lost entries (one connected throughout, one restarted with its
// persisted LastSeq and Incarnation) start their marks over and receive the new
// entries, which reuse seqs they had handled.
func TestProcessDamagedWALGetsNewIncarnation(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	damages := []struct {
		name string
		do   func(t *testing.T, wal string)
	}{
		{"deleted", func(t *testing.T, wal string) { os.Remove(wal); os.Remove(strings.TrimSuffix(wal, "-wal") + "-shm") }},
		{"truncated", func(t *testing.T, wal string) {
			fi, err := os.Stat(wal)
			if err != nil {
				t.Fatal(err)
			}
			os.Truncate(wal, fi.Size()/2)
		}},
		{"bit-flipped", func(t *testing.T, wal string) {
			b, err := os.ReadFile(wal)
			if err != nil {
				t.Fatal(err)
			}
			for i := len(b) / 2; i < len(b)/2+16; i++ {
				b[i] ^= 0x10
			}
			os.WriteFile(wal, b, 0o600)
		}},
	}
	for _, dmg := range damages {
		t.Run(dmg.name, func(t *testing.T) {
			data, addr := t.TempDir(), freeAddr(t)
			s1 := startServer(t, data, addr)
			admin := s1.adminToken
			phone := addClient(t, s1, admin, "alice", "phone")
			tablet := addClient(t, s1, admin, "alice", "tablet")
			notices(t, s1, admin, texts("before", 5)...)
			s1.stop(t) // checkpointed: what follows lives in the WAL only

			s2 := startServer(t, data, addr)
			if s2.incarnation == "" || s2.incarnation != s1.incarnation || s2.warning != "" {
				t.Fatalf("clean restart: incarnation %q -> %q, warning %q", s1.incarnation, s2.incarnation, s2.warning)
			}
			live, liveRec := dialRecorder(t, addr, phone, 0, "")
			tab, tabRec := dialRecorder(t, addr, tablet, 0, "")
			notices(t, s2, admin, texts("lost", 20)...)
			want := append(texts("before", 5), texts("lost", 20)...)
			waitFor(t, "every notice handled", func() bool { return liveRec.has(want...) && tabRec.has(want...) })
			flush(t, live)
			flush(t, tab)
			tabSeq, tabInc := tab.LastSeq(), tab.Incarnation()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			tab.Close(ctx)
			cancel()
			if tabSeq != 25 || tabInc != s2.incarnation {
				t.Fatalf("tablet persisted LastSeq %d, incarnation %q; want 25, %q", tabSeq, tabInc, s2.incarnation)
			}
			waitMarkCovers(t, data)
			s2.kill()

			dmg.do(t, filepath.Join(data, "mimids.db-wal"))
			s3 := startServer(t, data, addr)
			if s3.incarnation == s2.incarnation || !strings.Contains(s3.warning, "commits behind its mark") {
				t.Fatalf("restart after a %s WAL: incarnation %q (was %q), warning %q", dmg.name, s3.incarnation, s2.incarnation, s3.warning)
			}
			if s3.adminToken != "" {
				t.Fatal("the damaged store was taken for a new one: a new admin token was printed")
			}
			after := texts("after", 5)
			notices(t, s3, admin, after...)
			tab2, tab2Rec := dialRecorder(t, addr, tablet, tabSeq, tabInc)
			waitFor(t, "the new notices on both devices", func() bool { return liveRec.has(after...) && tab2Rec.has(after...) })
			for _, c := range []*client.Client{live, tab2} {
				si := c.Session()
				if !si.StoreReset || si.Incarnation != s3.incarnation || c.Stats().StoreResets != 1 {
					t.Fatalf("client after the reset: session %+v, stats %+v", si, c.Stats())
				}
			}
			for _, text := range after {
				if n := liveRec.times(text); n != 1 {
					t.Errorf("%s handled %d times by the connected client", text, n)
				}
			}
		})
	}
}

// TestProcessRestoredBackupGetsNewIncarnation restores a backup taken while the
// server ran, with mimids store restore and by copying the file by hand: either
// way the next server runs under a new incarnation and the client, which handled
// entries after the backup, receives the new ones.
func TestProcessRestoredBackupGetsNewIncarnation(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	for _, how := range []string{"store restore", "copied by hand"} {
		t.Run(how, func(t *testing.T) {
			data, addr := t.TempDir(), freeAddr(t)
			backup := filepath.Join(t.TempDir(), "backup.db")
			s1 := startServer(t, data, addr)
			admin := s1.adminToken
			phone := addClient(t, s1, admin, "alice", "phone")
			c, rec := dialRecorder(t, addr, phone, 0, "")
			notices(t, s1, admin, texts("kept", 5)...)
			waitFor(t, "the first notices", func() bool { return rec.has(texts("kept", 5)...) })
			flush(t, c)
			if out := mustCLI(t, "store", "backup", "-data", data, backup); !strings.Contains(out, "backed up") {
				t.Fatalf("store backup: %s", out)
			}
			notices(t, s1, admin, texts("undone", 10)...)
			waitFor(t, "the notices after the backup", func() bool { return rec.has(texts("undone", 10)...) })
			flush(t, c)
			s1.stop(t)

			restored := ""
			if how == "store restore" {
				out := mustCLI(t, "store", "restore", "-data", data, backup)
				_, after, _ := strings.Cut(out, "new incarnation: ")
				restored = strings.Fields(after + " ")[0]
			} else {
				b, err := os.ReadFile(backup)
				if err != nil {
					t.Fatal(err)
				}
				os.WriteFile(filepath.Join(data, "mimids.db"), b, 0o600)
			}
			s2 := startServer(t, data, addr)
			if s2.incarnation == s1.incarnation || (restored != "" && s2.incarnation != restored) ||
				(restored == "" && !strings.Contains(s2.warning, "commits behind its mark")) {
				t.Fatalf("after %s: incarnation %q (was %q, restore printed %q), warning %q", how, s2.incarnation, s1.incarnation, restored, s2.warning)
			}
			notices(t, s2, admin, texts("new", 5)...)
			waitFor(t, "the notices after the restore", func() bool { return rec.has(texts("new", 5)...) })
			if si := c.Session(); !si.StoreReset || si.Incarnation != s2.incarnation {
				t.Fatalf("client after the restore: %+v", si)
			}
		})
	}
}

// TestProcessRefusesDamagedStore: a store the server must not serve, or must not
// create a new one over, is refused with the reason and a non-zero exit, and
// nothing is changed.
func TestProcessRefusesDamagedStore(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	t.Run("empty store file beside its WAL", func(t *testing.T) {
		data, addr := t.TempDir(), freeAddr(t)
		s := startServer(t, data, addr)
		addClient(t, s, s.adminToken, "alice", "phone")
		notices(t, s, s.adminToken, texts("n", 5)...)
		s.kill()
		db := filepath.Join(data, "mimids.db")
		os.Truncate(db, 0)
		wal, err := os.ReadFile(db + "-wal")
		if err != nil || len(wal) == 0 {
			t.Fatalf("no WAL after SIGKILL: %v", err)
		}
		code, out := runServe(t, "-data", data)
		if code == 0 || !strings.Contains(out, "refusing to create a new store") || !strings.Contains(out, "mimids.db-wal") ||
			!strings.Contains(out, "-force-new-store") || strings.Contains(out, "admin token") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		if again, err := os.ReadFile(db + "-wal"); err != nil || string(again) != string(wal) {
			t.Fatalf("the refused start changed the WAL: %v", err)
		}
		// The operator insists: a new, empty store; the remains are set aside.
		s2 := startServer(t, data, addr, "-force-new-store")
		if s2.adminToken == "" {
			t.Fatal("a new store printed no admin token")
		}
		if aside, _ := filepath.Glob(db + "-wal.set-aside-*"); len(aside) != 1 {
			t.Fatalf("set aside: %v", aside)
		}
	})
	t.Run("store file deleted after a clean stop", func(t *testing.T) {
		data, addr := t.TempDir(), freeAddr(t)
		s := startServer(t, data, addr)
		s.stop(t)
		os.Remove(filepath.Join(data, "mimids.db"))
		if code, out := runServe(t, "-data", data); code == 0 || !strings.Contains(out, "mimids.db is missing") || !strings.Contains(out, "mimids.db.mark") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		// Admin commands refuse too: they would create the store.
		out, err := exec.Command(mimidsBinary(t), "user", "list", "-data", data).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "refusing to create a new store") {
			t.Fatalf("user list: %v\n%s", err, out)
		}
	})
	t.Run("pages fail the integrity check", func(t *testing.T) {
		data, addr := t.TempDir(), freeAddr(t)
		s := startServer(t, data, addr)
		for i := 0; i < 20; i++ {
			addClient(t, s, s.adminToken, fmt.Sprintf("user%d", i), "phone")
		}
		s.stop(t)
		path := filepath.Join(data, "mimids.db")
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		damaged := 0
		for p := 4096; p < len(b); p += 4096 {
			if b[p] == 0x0a { // an index leaf page: scramble its cell pointers
				for i := p + 8; i < p+64; i++ {
					b[i] ^= 0x5a
				}
				damaged++
			}
		}
		if damaged == 0 {
			t.Fatal("no index page to damage")
		}
		os.WriteFile(path, b, 0o600)
		code, out := runServe(t, "-data", data)
		if code == 0 || !strings.Contains(out, "store is damaged") || !strings.Contains(out, "quick check") || !strings.Contains(out, "not served") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		if _, out := runServe(t, "-data", data, "-integrity-check", "full"); !strings.Contains(out, "full check") {
			t.Fatalf("full check:\n%s", out)
		}
	})
	t.Run("second server on the same store", func(t *testing.T) {
		data := t.TempDir()
		startServer(t, data, freeAddr(t))
		if code, out := runServe(t, "-data", data); code == 0 || !strings.Contains(out, "in use by another server") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
	})
}

// readyz returns the status and decoded body of GET /readyz.
func readyz(t *testing.T, addr string) (int, map[string]any) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var body map[string]any
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("/readyz body %q: %v", b, err)
	}
	return resp.StatusCode, body
}

func check(body map[string]any, name string) string {
	checks, _ := body["checks"].(map[string]any)
	s, _ := checks[name].(string)
	return s
}

// TestProcessReadyzNamesStoreDisk: a file system with less free space than
// store.min_free_bytes makes /readyz answer 503 naming store_disk.
func TestProcessReadyzNamesStoreDisk(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	cfg := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(cfg, []byte(`{"store": {"min_free_bytes": 4611686018427387904}}`), 0o600)
	addr := freeAddr(t)
	startServer(t, t.TempDir(), addr, "-config", cfg)
	code, body := readyz(t, addr)
	if code != 503 || check(body, "store_disk") == "ok" || check(body, "store_write") != "ok" || !strings.Contains(fmt.Sprint(body["detail"]), "store_disk") {
		t.Fatalf("/readyz: %d %v", code, body)
	}
}
