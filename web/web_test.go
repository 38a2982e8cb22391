package web_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mimids/mimids/cmd/provider/providertest"
	"github.com/mimids/mimids/directory"
)

// admin is a logged-in browser: a cookie jar and the session's CSRF token.
type admin struct {
	t    *testing.T
	base string
	c    *http.Client
	csrf string
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func newBrowser(t *testing.T, base string) *admin {
	jar, _ := cookiejar.New(nil)
	return &admin{t: t, base: base, c: &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// login logs in with form fields; it returns the status.
func (a *admin) login(form url.Values) int {
	a.t.Helper()
	code, _ := a.post("/dashboard/login", form)
	if code == http.StatusSeeOther {
		_, body := a.get("/dashboard/")
		if m := csrfRE.FindStringSubmatch(body); m != nil {
			a.csrf = m[1]
		}
	}
	return code
}

func (a *admin) get(path string) (int, string) {
	a.t.Helper()
	resp, err := a.c.Get(a.base + path)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (a *admin) post(path string, form url.Values) (int, string) {
	a.t.Helper()
	resp, err := a.c.PostForm(a.base+path, form)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// change posts a form with the session's CSRF token.
func (a *admin) change(path string, form url.Values) (int, string) {
	a.t.Helper()
	f := url.Values{"csrf": {a.csrf}}
	for k, v := range form {
		f[k] = v
	}
	return a.post(path, f)
}

func loggedIn(t *testing.T, p *providertest.Provider, token string) *admin {
	t.Helper()
	a := newBrowser(t, p.Base)
	if code := a.login(url.Values{"token": {token}}); code != http.StatusSeeOther || a.csrf == "" {
		t.Fatalf("login: %d, csrf %q", code, a.csrf)
	}
	return a
}

var pages = []string{"/dashboard/", "/dashboard/users", "/dashboard/users/alice", "/dashboard/groups",
	"/dashboard/groups/00ff", "/dashboard/peers", "/dashboard/policy", "/dashboard/keys", "/dashboard/audit"}

// changes are every change route with a valid form.
var changes = []struct {
	path string
	form url.Values
}{
	{"/dashboard/users", url.Values{"name": {"mallory"}}},
	{"/dashboard/clients", url.Values{"user": {"alice"}, "client": {"laptop"}}},
	{"/dashboard/users/alice/clients/phone/revoke", nil},
	{"/dashboard/groups/00ff/terminate", url.Values{"partition": {"00ff"}, "confirm": {"yes"}}},
	{"/dashboard/peers", url.Values{"domain": {"b.example"}, "url": {"wss://127.0.0.1:1"}, "pin": {strings.Repeat("ab", 32)}}},
	{"/dashboard/peers/remove", url.Values{"domain": {"b.example"}, "confirm": {"yes"}}},
	{"/dashboard/bans", url.Values{"user": {"mimi://x.example/u/eve"}, "reason": {"spam"}}},
	{"/dashboard/bans/remove", url.Values{"user": {"mimi://x.example/u/eve"}}},
	{"/dashboard/keys/ohttp/rotate", nil},
	{"/dashboard/keys/discovery/rotate", nil},
	{"/dashboard/keys/discovery/revoke", url.Values{"id": {"42"}}},
}

// unchanged checks that none of the changes above happened.
func unchanged(t *testing.T, p *providertest.Provider, keys int) {
	t.Helper()
	ctx := context.Background()
	if _, err := p.Dir.User(ctx, "mallory"); err == nil {
		t.Error("a user was created")
	}
	cs, _ := p.Dir.ListClients(ctx, "alice")
	if len(cs) != 1 || cs[0].Revoked() {
		t.Errorf("alice's clients changed: %+v", cs)
	}
	if bans, _ := p.Policy.ListBans(ctx); len(bans) != 0 {
		t.Errorf("bans: %+v", bans)
	}
	if n := len(p.Keys.States()); n != keys {
		t.Errorf("%d OHTTP keys, want %d", n, keys)
	}
	admins := directory.NewAdmins(p.Dir, p.DB)
	if es, _ := admins.Audit(ctx, 0, 10); len(es) != 0 {
		t.Errorf("audit entries: %+v", es)
	}
}

func TestRefusedWithoutSession(t *testing.T) {
	p := providertest.Start(t, "a.example", nil, nil)
	_, token, err := p.Dir.AddClient(context.Background(), "alice", "phone", true)
	if err != nil {
		t.Fatal(err)
	}
	keys := len(p.Keys.States())
	a := newBrowser(t, p.Base)
	for _, path := range pages {
		code, body := a.get(path)
		if code != http.StatusSeeOther || strings.Contains(body, "mimi://") {
			t.Errorf("GET %s without a session: %d", path, code)
		}
	}
	if code, body := a.get("/dashboard/events"); code != http.StatusUnauthorized || strings.Contains(body, "event:") {
		t.Errorf("live stream without a session: %d %q", code, body)
	}
	for _, c := range changes {
		if code, _ := a.post(c.path, c.form); code != http.StatusUnauthorized {
			t.Errorf("POST %s without a session: %d", c.path, code)
		}
	}
	// Neither a client's device token nor an admin bearer header opens the dashboard.
	if code, body := a.post("/dashboard/login", url.Values{"token": {token}}); code != http.StatusUnauthorized || !strings.Contains(body, "Wrong admin token") {
		t.Errorf("login with a client token: %d", code)
	}
	req, _ := http.NewRequest(http.MethodGet, p.Base+"/dashboard/users", nil)
	req.Header.Set("Authorization", "Bearer "+p.AdminToken)
	resp, err := a.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("bearer admin token on a page: %d", resp.StatusCode)
	}
	// The login page and the static files are all that is served without a session.
	for path, typ := range map[string]string{"/dashboard/login": "text/html", "/dashboard/static/app.js": "javascript", "/dashboard/static/app.css": "text/css"} {
		resp, err := a.c.Get(p.Base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), typ) ||
			!strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") {
			t.Errorf("GET %s: %d %v", path, resp.StatusCode, resp.Header)
		}
	}
	if resp, err := a.c.Get(p.Base + "/"); err != nil || resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/dashboard/" {
		t.Errorf("GET /: %v %v", resp, err)
	}
	unchanged(t, p, keys)
}

func TestReadOnlyAndCSRFRefused(t *testing.T) {
	p := providertest.Start(t, "a.example", nil, nil)
	ctx := context.Background()
	if _, _, err := p.Dir.AddClient(ctx, "alice", "phone", true); err != nil {
		t.Fatal(err)
	}
	keys := len(p.Keys.States())
	roToken, _, err := p.Dir.NewAdminTokenRole(ctx, "viewer", 0, true)
	if err != nil {
		t.Fatal(err)
	}
	ro := loggedIn(t, p, roToken)
	for _, path := range pages[:3] {
		if code, _ := ro.get(path); code != http.StatusOK {
			t.Errorf("read-only GET %s: %d", path, code)
		}
	}
	for _, c := range changes {
		if code, body := ro.change(c.path, c.form); code != http.StatusForbidden || !strings.Contains(body, "read-only") {
			t.Errorf("read-only POST %s: %d", c.path, code)
		}
	}
	full := loggedIn(t, p, p.AdminToken)
	for _, c := range changes {
		f := url.Values{}
		for k, v := range c.form {
			f[k] = v
		}
		if code, _ := full.post(c.path, f); code != http.StatusForbidden {
			t.Errorf("POST %s without CSRF: %d", c.path, code)
		}
		f.Set("csrf", ro.csrf) // another session's token
		if code, _ := full.post(c.path, f); code != http.StatusForbidden {
			t.Errorf("POST %s with a wrong CSRF token: %d", c.path, code)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, p.Base+"/dashboard/users", strings.NewReader(url.Values{"csrf": {full.csrf}, "name": {"mallory"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	if resp, err := full.c.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin POST: %v %v", resp.StatusCode, err)
	}
	// The API refuses changes from a read-only token too.
	req, _ = http.NewRequest(http.MethodPost, p.Base+"/admin/v1/users", strings.NewReader(`{"name":"mallory"}`))
	req.Header.Set("Authorization", "Bearer "+roToken)
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("read-only API POST: %v %v", resp.StatusCode, err)
	}
	unchanged(t, p, keys)
}

func TestBadInputChangesNothing(t *testing.T) {
	p := providertest.Start(t, "a.example", nil, nil)
	ctx := context.Background()
	if _, _, err := p.Dir.AddClient(ctx, "alice", "phone", true); err != nil {
		t.Fatal(err)
	}
	keys := len(p.Keys.States())
	a := loggedIn(t, p, p.AdminToken)
	for _, c := range []struct {
		path string
		form url.Values
		code int
		says string
	}{
		{"/dashboard/users", url.Values{"name": {"Not A Name!"}}, 400, "invalid"},
		{"/dashboard/clients", url.Values{"user": {"nobody"}, "client": {"x"}}, 404, "not found"},
		{"/dashboard/clients", url.Values{"user": {"alice"}, "client": {"bad name"}}, 400, "invalid"},
		{"/dashboard/users/alice/clients/nope/revoke", nil, 404, "not found"},
		{"/dashboard/groups/zz/terminate", url.Values{"partition": {"00"}, "confirm": {"yes"}}, 400, "hex"},
		{"/dashboard/groups/00ff/terminate", url.Values{"partition": {"00ff"}}, 400, "confirmation"},
		{"/dashboard/groups/00ff/terminate", url.Values{"partition": {"00ff"}, "confirm": {"yes"}}, 404, "partition"},
		{"/dashboard/peers/remove", url.Values{"domain": {"b.example"}, "confirm": {"yes"}}, 400, "Federation is not configured"},
		{"/dashboard/peers", url.Values{"domain": {"b.example"}, "url": {"wss://127.0.0.1:1"}, "pin": {strings.Repeat("ab", 32)}}, 400, "Federation is not configured"},
		{"/dashboard/bans", url.Values{"user": {"eve"}}, 400, "user URI"},
		{"/dashboard/bans/remove", url.Values{"user": {"mimi://x.example/u/eve"}}, 404, "not banned"},
		{"/dashboard/keys/discovery/revoke", url.Values{"id": {"abc"}}, 400, "positive number"},
	} {
		code, body := a.change(c.path, c.form)
		if code != c.code || !strings.Contains(body, c.says) || !strings.Contains(body, `role="alert"`) {
			t.Errorf("POST %s %v: %d, want %d saying %q", c.path, c.form, code, c.code, c.says)
		}
	}
	for _, path := range []string{"/dashboard/users?q=" + strings.Repeat("x", 65), "/dashboard/groups?after=zz", "/dashboard/audit?before=-1", "/dashboard/events?clients=x"} {
		if code, _ := a.get(path); code != http.StatusBadRequest {
			t.Errorf("GET %s: %d", path, code)
		}
	}
	unchanged(t, p, keys)
}

func TestChangesAreAudited(t *testing.T) {
	p := providertest.Start(t, "a.example", nil, nil)
	ctx := context.Background()
	a := loggedIn(t, p, p.AdminToken)
	keys := len(p.Keys.States())
	if code, _ := a.change("/dashboard/users", url.Values{"name": {"bob"}}); code != http.StatusSeeOther {
		t.Fatalf("add user: %d", code)
	}
	code, body := a.change("/dashboard/clients", url.Values{"user": {"bob"}, "client": {"phone"}})
	m := regexp.MustCompile(`id="new-token">([^<]+)<`).FindStringSubmatch(body)
	if code != http.StatusOK || m == nil {
		t.Fatalf("add client: %d", code)
	}
	if _, err := p.Dir.Authenticate(ctx, []byte(m[1])); err != nil {
		t.Fatalf("the token shown does not authenticate: %v", err)
	}
	if code, _ := a.get("/dashboard/users/bob"); code != http.StatusOK {
		t.Fatal(code)
	}
	if _, body := a.get("/dashboard/users/bob"); strings.Contains(body, m[1]) {
		t.Error("the token is shown twice")
	}
	for _, c := range []struct {
		path string
		form url.Values
	}{
		{"/dashboard/users/bob/clients/phone/revoke", nil},
		{"/dashboard/bans", url.Values{"user": {"mimi://x.example/d/eve/phone"}, "reason": {"spam"}}},
		{"/dashboard/bans/remove", url.Values{"user": {"mimi://x.example/u/eve"}}},
		{"/dashboard/keys/ohttp/rotate", nil},
		{"/dashboard/keys/discovery/revoke", url.Values{"id": {"42"}}},
		{"/dashboard/keys/discovery/rotate", nil},
	} {
		if code, body := a.change(c.path, c.form); code != http.StatusSeeOther {
			t.Fatalf("POST %s: %d %s", c.path, code, body)
		}
	}
	if n := len(p.Keys.States()); n != keys+1 {
		t.Errorf("%d OHTTP keys after a rotation, want %d", n, keys+1)
	}
	// A change through the admin API is audited too.
	req, _ := http.NewRequest(http.MethodPost, p.Base+"/admin/v1/users", strings.NewReader(`{"name":"zed"}`))
	req.Header.Set("Authorization", "Bearer "+p.AdminToken)
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("API add user: %v %v", resp, err)
	}
	_, body = a.get("/dashboard/audit")
	for _, what := range []string{"api token:first-admin#1", "user zed", "user.add", "client.add", "client.revoke", "ban.add", "ban.remove", "ohttp.rotate", "discovery.revoke", "discovery.rotate", "token:first-admin"} {
		if !strings.Contains(body, what) {
			t.Errorf("the audit page lacks %s", what)
		}
	}
	for _, path := range pages {
		if code, _ := a.get(path); code != http.StatusOK && !(path == "/dashboard/groups/00ff" || path == "/dashboard/users/alice") {
			t.Errorf("GET %s: %d", path, code)
		}
	}
	// Logged out, every page is refused again.
	if code, _ := a.change("/dashboard/logout", nil); code != http.StatusSeeOther {
		t.Fatal(code)
	}
	if code, _ := a.get("/dashboard/"); code != http.StatusSeeOther {
		t.Errorf("after logout: %d", code)
	}
}

func TestPasswordLoginAndRateLimit(t *testing.T) {
	p := providertest.Start(t, "a.example", nil, nil)
	ctx := context.Background()
	admins := directory.NewAdmins(p.Dir, p.DB)
	if err := admins.SetPassword(ctx, "carol", "correct horse battery", false); err != nil {
		t.Fatal(err)
	}
	if err := admins.SetPassword(ctx, "carol", "short", false); err == nil {
		t.Fatal("a short password was accepted")
	}
	a := newBrowser(t, p.Base)
	if code := a.login(url.Values{"name": {"carol"}, "password": {"correct horse battery"}}); code != http.StatusSeeOther {
		t.Fatalf("password login: %d", code)
	}
	if code, body := a.get("/dashboard/"); code != http.StatusOK || !strings.Contains(body, "password:carol") {
		t.Fatalf("overview after a password login: %d", code)
	}
	// A changed password ends the sessions opened with the old one (checked every
	// few seconds).
	if err := admins.SetPassword(ctx, "carol", "another long password", false); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for code, _ := a.get("/dashboard/"); code == http.StatusOK; code, _ = a.get("/dashboard/") {
		if time.Now().After(deadline) {
			t.Fatal("the session outlived its password")
		}
		time.Sleep(200 * time.Millisecond)
	}
	b := newBrowser(t, p.Base)
	limited := false
	for i := 0; i < 30 && !limited; i++ {
		code, _ := b.post("/dashboard/login", url.Values{"name": {"carol"}, "password": {"wrong password!!"}})
		switch code {
		case http.StatusUnauthorized:
		case http.StatusTooManyRequests:
			limited = i >= 5
			if !limited {
				t.Fatalf("limited after %d attempts", i)
			}
		default:
			t.Fatalf("wrong password: %d", code)
		}
	}
	if !limited {
		t.Fatal("30 wrong logins from one address were not limited")
	}
	if code := b.login(url.Values{"name": {"carol"}, "password": {"another long password"}}); code != http.StatusTooManyRequests {
		t.Errorf("the right password while limited: %d", code)
	}
}

func TestLiveStream(t *testing.T) {
	p := providertest.Start(t, "a.example", nil, nil)
	c, _, err := p.Dir.AddClient(context.Background(), "alice", "phone", true)
	if err != nil {
		t.Fatal(err)
	}
	a := loggedIn(t, p, p.AdminToken)
	resp, err := a.c.Get(p.Base + "/dashboard/events?clients=" + itoa(c.ID))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	buf := make([]byte, 64<<10)
	var got strings.Builder
	for !strings.Contains(got.String(), "event: point") {
		n, err := resp.Body.Read(buf)
		if err != nil {
			t.Fatalf("read: %v (got %q)", err, got.String())
		}
		got.Write(buf[:n])
	}
	for _, want := range []string{"event: history", `"connections":`, "event: clients", `"sockets":0`} {
		if !strings.Contains(got.String(), want) {
			t.Errorf("stream lacks %s: %q", want, got.String())
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
