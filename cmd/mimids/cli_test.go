package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// mimids runs one command line in-process.
func mimids(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// storeGroups are the commands made of store verbs.
var storeGroups = []group{userGroup, clientGroup, adminTokenGroup, keysGroup, tokensGroup, groupGroup, banGroup, reportGroup, storeGroup}

// leafVerbs are the command lines of every verb that takes flags, for the help tests.
func leafVerbs() [][]string {
	out := [][]string{{"serve"}, {"notice"}, {"migrate"}, {"version"}, {"bench"}, {"bench-group"},
		{"mls", "decode"}, {"mls", "keypackage"}, {"mls", "replay"}}
	for _, g := range storeGroups {
		for _, v := range g.verbs {
			out = append(out, strings.Fields(v.Name))
		}
	}
	return out
}

// TestHelpAnswers checks that every way of asking for help exits 0, prints to
// stdout only, and that `mimids help X Y` is `mimids X Y -h`.
func TestHelpAnswers(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}, {"help", "help"}} {
		code, out, errs := mimids(t, args...)
		if code != 0 || errs != "" || !strings.Contains(out, "commands:") || !strings.Contains(out, "bench-group") {
			t.Errorf("%q: exit %d, stderr %q, stdout %q", args, code, errs, out)
		}
	}
	groups := [][]string{{"mls"}, {"admin"}}
	for _, g := range storeGroups {
		groups = append(groups, strings.Fields(g.name))
	}
	for _, cmd := range append(groups, leafVerbs()...) {
		name := strings.Join(cmd, " ")
		t.Run(name, func(t *testing.T) {
			code, out, errs := mimids(t, append(cmd, "-h")...)
			if code != 0 || errs != "" || !strings.HasPrefix(out, "usage: mimids "+name) {
				t.Fatalf("-h: exit %d, stderr %q, stdout %q", code, errs, out)
			}
			code2, out2, errs2 := mimids(t, append([]string{"help"}, cmd...)...)
			if code2 != 0 || errs2 != "" || out2 != out {
				t.Errorf("help %s: exit %d, stderr %q, and a different text:\n%s", name, code2, errs2, out2)
			}
			if slices.ContainsFunc(groups, func(g []string) bool { return slices.Equal(g, cmd) }) {
				if !strings.Contains(out, "verbs:") {
					t.Errorf("group help lists no verbs:\n%s", out)
				}
				return
			}
			// A verb: usage line, one summary line, one example of itself.
			lines := strings.Split(out, "\n")
			if len(lines) < 6 || lines[1] != "" || lines[2] == "" || lines[3] != "" || lines[4] != "example:" ||
				!strings.HasPrefix(lines[5], "  mimids "+name) {
				t.Errorf("help layout:\n%s", out)
			}
		})
	}
}

var flagLine = regexp.MustCompile(`(?m)^  -([a-z-]+)`)

// TestVerbFlagsAreItsOwn checks that a verb's help lists exactly the flags it
// uses: the store verbs find the store, only serve listens and logs.
func TestVerbFlagsAreItsOwn(t *testing.T) {
	store := []string{"config", "data"}
	withDomain := []string{"config", "data", "domain"}
	want := map[string][]string{
		"serve":              {"blockprofile", "config", "cpuprofile", "data", "domain", "force-new-store", "integrity-check", "listen", "log-format", "log-level", "mutexprofile", "trace"},
		"user add":           withDomain,
		"user list":          withDomain,
		"user remove":        withDomain,
		"client add":         {"config", "create-user", "data", "domain"},
		"client list":        withDomain,
		"client revoke":      withDomain,
		"notice":             {"all", "client", "config", "data", "domain", "user"},
		"admin token add":    {"config", "data", "expires", "read-only"},
		"admin passwd":       {"config", "data", "read-only"},
		"admin token list":   store,
		"admin token revoke": store,
		"keys list":          {"config", "data", "grace"},
		"keys rotate":        {"config", "data", "grace"},
		"tokens list":        store,
		"tokens revoke":      {"config", "data", "user"},
		"tokens rotate":      {"config", "data", "retire"},
		"group list":         store,
		"group partitions":   store,
		"group terminate":    store,
		"ban add":            {"config", "data", "reason"},
		"ban remove":         store,
		"ban list":           store,
		"report list":        store,
		"store status":       store,
		"store check":        {"config", "data", "full"},
		"store backup":       store,
		"store restore":      store,
		"store copy":         {"config", "data", "dsn", "from", "to"},
		"migrate":            store,
		"store mint":         {"config", "data", "reason"},
		"version":            nil,
		"mls decode":         {"f", "type"},
		"mls keypackage":     {"f", "now"},
	}
	for name, flags := range want {
		t.Run(name, func(t *testing.T) {
			_, out, _ := mimids(t, append(strings.Fields(name), "-h")...)
			var got []string
			for _, m := range flagLine.FindAllStringSubmatch(out, -1) {
				got = append(got, m[1])
			}
			if !slices.Equal(got, flags) {
				t.Errorf("flags %q, want %q\n%s", got, flags, out)
			}
		})
	}
	for _, cmd := range leafVerbs() {
		if name := strings.Join(cmd, " "); want[name] == nil && !strings.HasPrefix(name, "bench") && name != "version" && name != "mls replay" {
			t.Errorf("verb %q has no expected flags in this test", name)
		}
	}
}

// TestUnknownWordsRefused checks that what mimids does not understand is refused
// with exit 2 and a message naming the problem, before the store is opened.
func TestUnknownWordsRefused(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "usage: mimids <command>"},
		{[]string{"nope"}, `unknown command "nope"`},
		{[]string{"help", "nope"}, `unknown command "nope"`},
		{[]string{"user"}, "usage: mimids user add|list|remove"},
		{[]string{"user", "frob"}, `mimids user: unknown verb "frob"`},
		{[]string{"help", "user", "frob"}, `mimids user: unknown verb "frob"`},
		{[]string{"admin", "token", "-data", dir, "revoke", "x"}, `unexpected arguments ["x"] after [NAME]`},
		{[]string{"admin", "token", "-data", dir, "revoke"}, `"revoke" is not a token name (for the verb, put it first`},
		{[]string{"admin", "token", "-data", dir, "list"}, `"list" is not a token name`},
		{[]string{"admin", "token", "add", "-data", dir, "list"}, `"list" is not a token name`},
		{[]string{"admin", "token", "add", "-data", dir, "42"}, `"42" is all digits`},
		{[]string{"admin", "token", "add", "-data", dir, "mat_x"}, `starts with "mat_"`},
		{[]string{"admin", "token", "-data", dir, "Ops"}, `invalid admin token name`},
		{[]string{"admin", "token", "add", "-data", dir, "-expires", "soon", "ops"}, `invalid value "soon" for flag -expires`},
		{[]string{"admin", "token", "add", "-data", dir, "-expires", "-1h", "ops"}, `want a positive duration`},
		{[]string{"admin", "token", "delete", "ops"}, `mimids admin token: unknown verb "delete"`},
		{[]string{"admin", "token", "rm"}, `mimids admin token: unknown verb "rm"`},
		{[]string{"admin", "token", "revoke", "-data", dir}, "missing arguments: want ID|NAME|TOKEN"},
		{[]string{"admin", "token", "list", "-data", dir, "x"}, `unexpected arguments ["x"] (it takes none)`},
		{[]string{"admin", "tokens"}, `mimids admin: unknown verb "tokens"`},
		{[]string{"admin"}, "usage: mimids admin token"},
		{[]string{"user", "add", "-data", dir}, "missing arguments: want NAME"},
		{[]string{"user", "add", "-data", dir, "a", "b"}, `unexpected arguments ["b"] after NAME`},
		{[]string{"user", "list", "-data", dir, "x"}, `unexpected arguments ["x"] (it takes none)`},
		{[]string{"client", "add", "-nope"}, "flag provided but not defined: -nope\nRun 'mimids client add -h' for its usage."},
		{[]string{"client", "revoke", "-data", dir, "alice"}, "missing arguments: want USER CLIENT"},
		{[]string{"notice", "-data", dir}, "missing arguments: want TEXT"},
		{[]string{"group", "partitions", "-data", dir, "zz"}, `"zz" is not hex`},
		{[]string{"tokens", "revoke", "-data", dir, "abc"}, `token id "abc" is not a number`},
		{[]string{"keys", "list", "-listen", "127.0.0.1:1"}, "flag provided but not defined: -listen"},
		{[]string{"user", "list", "-log-format", "json"}, "flag provided but not defined: -log-format"},
		{[]string{"serve", "-data", dir, "extra"}, `unexpected arguments ["extra"]`},
		{[]string{"version", "x"}, `unexpected arguments ["x"]`},
		{[]string{"mls", "frob"}, `mimids mls: unknown verb "frob"`},
		{[]string{"mls"}, "usage: mimids mls decode|keypackage|replay"},
		{[]string{"bench", "extra"}, `unexpected arguments ["extra"]`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out, errs := mimids(t, tc.args...)
			if code != 2 || out != "" || !strings.Contains(errs, tc.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want 2 and %q", code, out, errs, tc.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "mimids.db")); !os.IsNotExist(err) {
		t.Errorf("a refused command opened the store: %v", err)
	}
}

// TestListsSayWhenEmpty runs the admin verbs on a fresh store: every list says
// when it is empty, and stops saying so once it has something to show.
func TestListsSayWhenEmpty(t *testing.T) {
	data := []string{"-data", t.TempDir()}
	list := func(cmd ...string) string {
		t.Helper()
		verb := cmd[:2:2]
		code, out, errs := mimids(t, append(append(verb, data...), cmd[2:]...)...)
		if code != 0 || errs != "" {
			t.Fatalf("%q: exit %d, stderr %q", cmd, code, errs)
		}
		return out
	}
	for _, tc := range []struct {
		cmd  []string
		want string
	}{
		{[]string{"user", "list"}, "no users\n"},
		{[]string{"client", "list"}, "no clients\n"},
		{[]string{"client", "list", "alice"}, "no clients of alice\n"},
		{[]string{"group", "list"}, "no groups\n"},
		{[]string{"ban", "list"}, "no bans\n"},
		{[]string{"report", "list"}, "no reports\n"},
		{[]string{"tokens", "list"}, "no tokens\n"},
	} {
		if got := list(tc.cmd...); got != tc.want {
			t.Errorf("%q on an empty store: %q, want %q", tc.cmd, got, tc.want)
		}
	}
	if out := list("keys", "list"); !strings.HasPrefix(out, "key ") || strings.Contains(out, "no ") {
		t.Errorf("keys list: %q (the first key is made on first use)", out)
	}
	steps := []struct {
		args []string
		want string
	}{
		{[]string{"user", "add", "alice"}, "mimi://localhost/u/alice\n"},
		{[]string{"client", "add", "-create-user", "bob", "phone"}, "client: mimi://localhost/d/bob/phone\n"},
		{[]string{"ban", "add", "-reason", "spam", "mimi://b.example/u/mallory"}, "banned mimi://b.example/u/mallory"},
		{[]string{"admin", "token", "ops"}, "admin token: mat_"},
	}
	for _, s := range steps {
		code, out, errs := mimids(t, append(append(s.args[:2:2], data...), s.args[2:]...)...)
		if code != 0 || !strings.HasPrefix(out, s.want) {
			t.Fatalf("%q: exit %d, stdout %q, stderr %q; want %q", s.args, code, out, errs, s.want)
		}
	}
	for _, tc := range []struct {
		cmd  []string
		want string
	}{
		{[]string{"user", "list"}, "mimi://localhost/u/alice\t"},
		{[]string{"client", "list"}, "mimi://localhost/d/bob/phone\tactive\tmailbox 0/10000 entries, 0/67108864 bytes\n"},
		{[]string{"client", "list", "alice"}, "no clients of alice\n"},
		{[]string{"ban", "list"}, "mimi://b.example/u/mallory\t"},
	} {
		if got := list(tc.cmd...); !strings.HasPrefix(got, tc.want) || (strings.HasPrefix(got, "no ") != strings.HasPrefix(tc.want, "no ")) {
			t.Errorf("%q: %q, want %q", tc.cmd, got, tc.want)
		}
	}
}

func TestVersion(t *testing.T) {
	code, out, errs := mimids(t, "version")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != 0 || errs != "" || len(lines) != 4 {
		t.Fatalf("exit %d, stderr %q, stdout %q", code, errs, out)
	}
	for i, want := range []string{"mimids " + releaseVersion, "module:   github.com/mimids/mimids ", "revision: ", "go:       " + runtime.Version()} {
		if !strings.HasPrefix(lines[i], want) {
			t.Errorf("line %d %q, want prefix %q", i, lines[i], want)
		}
	}
	for _, tc := range []struct {
		v    buildVersion
		want string
	}{
		{buildVersion{Module: "m", Version: "v1.2.3", Revision: "abc123", Time: "2026-01-02T03:04:05Z", GoVersion: "go1.26"},
			"module:   m v1.2.3\nrevision: abc123 (2026-01-02T03:04:05Z)\ngo:       go1.26\n"},
		{buildVersion{Module: "m", Version: "(devel)", Revision: "abc123", Modified: true, GoVersion: "go1.26"},
			"revision: abc123 (time unknown), with uncommitted changes\n"},
		{buildVersion{}, "module:   (unknown) (unknown)\nrevision: unknown (not stamped"},
	} {
		var b bytes.Buffer
		tc.v.print(&b)
		if !strings.Contains(b.String(), tc.want) {
			t.Errorf("%+v printed\n%s\nwant %q", tc.v, b.String(), tc.want)
		}
	}
}
