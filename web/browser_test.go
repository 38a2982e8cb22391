package web_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"

	"github.com/mimids/mimids/cmd/provider/providertest"
	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/protocol"
)

// fixture is what the browser test uses of mls/testdata/tsmls/fork.json.
type fixture struct {
	GroupID hexBytes `json:"group_id"`
	Creator struct {
		Identity string `json:"identity"`
	} `json:"creator"`
	Initial struct {
		PartitionKey hexBytes `json:"partition_key"`
		GroupInfo    hexBytes `json:"group_info"`
		RatchetTree  hexBytes `json:"ratchet_tree"`
	} `json:"initial"`
	Steps    []step `json:"steps"`
	Branches []struct {
		Name  string `json:"name"`
		Steps []step `json:"steps"`
	} `json:"branches"`
}

type step struct {
	Sender struct {
		Identity string `json:"identity"`
	} `json:"sender"`
	PartitionKey hexBytes `json:"partition_key"`
	Message      hexBytes `json:"message"`
	After        *struct {
		PartitionKey      hexBytes `json:"partition_key"`
		GroupInfoWithTree hexBytes `json:"group_info_with_tree"`
	} `json:"after"`
}

type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := hex.DecodeString(s)
	*h = v
	return err
}

func sender(identity string) protocol.Sender {
	return protocol.Sender{ClientID: int64(len(identity)), ClientURI: strings.Replace(identity, "/u/", "/d/", 1) + "/phone",
		UserURI: identity, Local: strings.HasPrefix(identity, "mimi://a.example/")}
}

// forkedGroup hosts fork.json's group with its trunk and the first commit of
// branches a and b (a fork); it returns the group ID and the fork's masked key.
func forkedGroup(t *testing.T, p *providertest.Provider) (groupID, fork []byte) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "mls", "testdata", "tsmls", "fork.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g fixture
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	creator := sender(g.Creator.Identity)
	creator.Local = true
	if _, err := p.Hub.CreateGroup(ctx, creator, &protocol.CreateGroupRequest{GroupInfo: g.Initial.GroupInfo,
		RatchetTree: g.Initial.RatchetTree, PartitionKey: g.Initial.PartitionKey}); err != nil {
		t.Fatal(err)
	}
	send := func(st step) {
		req := &protocol.SendRequest{Message: st.Message, PartitionKey: st.PartitionKey}
		if st.After != nil {
			req.CommitData = &protocol.CommitData{NextPartitionKey: st.After.PartitionKey, GroupInfo: st.After.GroupInfoWithTree}
		}
		if _, err := p.Hub.Send(ctx, sender(st.Sender.Identity), req); err != nil {
			t.Fatal(err)
		}
	}
	for _, st := range g.Steps {
		send(st)
	}
	var last step
	for _, br := range g.Branches {
		switch br.Name {
		case "a": // alice removes carol, then sets the moderation list
			for _, st := range br.Steps[:3] {
				send(st)
			}
		case "b": // bob adds erin: a fork
			send(br.Steps[0])
			last = br.Steps[0]
		}
	}
	s, _ := mls.CipherSuite(1).Suite()
	return g.GroupID, s.Hash(last.After.PartitionKey)
}

// browser starts headless Chromium; outside CI a machine without it skips.
func browser(t *testing.T) context.Context {
	t.Helper()
	bin := os.Getenv("CHROMIUM")
	if bin == "" {
		bin, _ = exec.LookPath("chromium")
	}
	if bin == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CI is set but chromium is not installed: apt-get install -y chromium (see .ci/run)")
		}
		t.Skip("chromium is not installed (apt-get install -y chromium)")
	}
	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(bin), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true)}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("chromium (%s) did not start: %v", bin, err)
	}
	return ctx
}

// until polls a JavaScript condition in the page.
func until(t *testing.T, ctx context.Context, what, js string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("main").innerText`))
			t.Fatalf("%s: not within 10s; the page says:\n%s", what, text)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if os.Getenv("MIMIDS_SCREENSHOTS") != "1" {
		return
	}
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join("..", "docs", "dashboard"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("..", "docs", "dashboard", name+".png"), buf, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestBrowser(t *testing.T) {
	ctx := browser(t)
	p := providertest.Start(t, "a.example", nil, nil)
	c, token, err := p.Dir.AddClient(context.Background(), "alice", "phone", true)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"bob", "carol", "dave"} {
		p.Dir.AddClient(context.Background(), u, "laptop", true)
	}
	groupID, fork := forkedGroup(t, p)
	base := p.Base

	// Log in: the overview follows the live stream.
	run(t, ctx, "log in", chromedp.Navigate(base+"/dashboard/"), chromedp.WaitVisible("#token"),
		chromedp.SendKeys("#token", p.AdminToken), chromedp.Click("#login-token"),
		chromedp.WaitVisible("#m-connections"))
	until(t, ctx, "the charts draw", `document.querySelectorAll("svg polyline").length == 4`)

	// A client connects: its live sockets change without a reload.
	run(t, ctx, "user page", chromedp.Navigate(base+"/dashboard/users/alice"), chromedp.WaitVisible("#sockets-phone"))
	until(t, ctx, "no socket yet", `document.getElementById("sockets-phone").textContent == "0"`)
	ws := dialClient(t, p.Socket, token)
	until(t, ctx, "the socket shows live", `document.getElementById("sockets-phone").textContent == "1"`)
	screenshot(t, ctx, "user")

	// Revoke its token: the socket closes and the count drops.
	run(t, ctx, "revoke", chromedp.Click("#revoke-phone"), chromedp.WaitVisible(".flash"))
	rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, err = ws.Read(rctx)
	if code := websocket.CloseStatus(err); int(code) != protocol.CloseRevoked {
		t.Fatalf("the client's socket ended with %v, want close code %d", err, protocol.CloseRevoked)
	}
	until(t, ctx, "the count drops", `document.getElementById("sockets-phone").textContent == "0"`)
	if n, _ := p.Gateway.ClientSockets(c.ID); n != 0 {
		t.Fatalf("%d sockets left", n)
	}

	// Terminate the fork: the tree shows it terminated.
	forkSel := fmt.Sprintf(`[data-partition="%x"]`, fork)
	run(t, ctx, "group page", chromedp.Navigate(fmt.Sprintf("%s/dashboard/groups/%x", base, groupID)),
		chromedp.WaitVisible(forkSel))
	until(t, ctx, "the tree shows a fork", `document.querySelectorAll(".node.fork").length == 2 && document.querySelectorAll(".node.terminated").length == 0`)
	until(t, ctx, "members and policy show", `document.querySelector(".members") != null && /banned mimi:\/\/a.example\/u\/carol/.test(document.getElementById("tree").textContent)`)
	screenshot(t, ctx, "group")
	run(t, ctx, "terminate", chromedp.Click(forkSel+` > form input[name=confirm]`),
		chromedp.Click(forkSel+` > form button`), chromedp.WaitVisible(".flash"))
	until(t, ctx, "the fork is terminated", `document.querySelector('`+forkSel+`').classList.contains("terminated") && document.querySelectorAll(".node.terminated").length == 1`)

	// Rotate the OHTTP key.
	before := len(p.Keys.States())
	run(t, ctx, "keys page", chromedp.Navigate(base+"/dashboard/keys"), chromedp.WaitVisible("#rotate-ohttp"))
	run(t, ctx, "rotate", chromedp.Click("#rotate-ohttp"), chromedp.WaitVisible(".flash"))
	until(t, ctx, "a new key is listed", `document.querySelectorAll("#ohttp-keys tbody tr[data-key-id]").length == `+strconv.Itoa(before+1))
	screenshot(t, ctx, "keys")
	for _, page := range []string{"users", "policy", "audit"} {
		run(t, ctx, page, chromedp.Navigate(base+"/dashboard/"+page), chromedp.WaitVisible("main h1"))
		screenshot(t, ctx, page)
	}

	run(t, ctx, "overview again", chromedp.Navigate(base+"/dashboard/"), chromedp.WaitVisible("#m-connections"))
	until(t, ctx, "the charts draw the history", `document.querySelectorAll("svg polyline").length == 4`)
	screenshot(t, ctx, "overview")

	// At phone width the overview fits without scrolling sideways.
	run(t, ctx, "phone", chromedp.EmulateViewport(390, 844), chromedp.Navigate(base+"/dashboard/"),
		chromedp.WaitVisible("#m-connections"))
	until(t, ctx, "the phone layout fits", `document.documentElement.scrollWidth <= 390 && document.querySelectorAll("svg polyline").length == 4`)
	screenshot(t, ctx, "overview-phone")

	// Log out: every page sends back to the login.
	run(t, ctx, "log out", chromedp.Click("#logout"), chromedp.WaitVisible("#token"))
	for _, page := range pages {
		run(t, ctx, page, chromedp.Navigate(base+page), chromedp.WaitVisible("#token"))
		loc, err := chromedp.Run(ctx, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(loc, "/dashboard/login") {
			t.Errorf("after logout %s shows %s", page, loc)
		}
	}
}

func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// dialClient opens an authenticated client socket.
func dialClient(t *testing.T, url, token string) *websocket.Conn {
	t.Helper()
	c, err := dial(url, token)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func dial(url, token string) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{protocol.Subprotocol}})
	if err != nil {
		return nil, err
	}
	if err := c.Write(ctx, websocket.MessageBinary, protocol.Encode(&protocol.Auth{RequestID: 1, Token: []byte(token)})); err != nil {
		return nil, err
	}
	_, b, err := c.Read(ctx)
	if err != nil {
		return nil, err
	}
	if f, err := protocol.Decode(b); err != nil {
		return nil, err
	} else if _, ok := f.(*protocol.AuthOK); !ok {
		return nil, fmt.Errorf("no auth_ok: %T", f)
	}
	return c, nil
}
