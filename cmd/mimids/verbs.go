package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/mimids/mimids/cmd/internal/usage"
	"github.com/mimids/mimids/cmd/provider"
	"github.com/mimids/mimids/directory"
)

// verb is one administration verb: it opens the store, does one thing and exits.
type verb struct {
	usage.Help
	min, max int  // positional arguments (max < 0: no limit)
	domain   bool // takes -domain: it prints or parses user URIs
	// check, if set, refuses bad positional arguments before the store is opened.
	check func(args []string) error
	// setup registers the verb's own flags on fs and returns what the verb does.
	setup func(fs *flag.FlagSet) action
	// ownStore: the action opens the store itself (env.db and env.dir are nil).
	ownStore bool
}

// action is what a verb does, with the store open. args are the positional
// arguments, already counted.
type action func(ctx context.Context, e env, args []string) error

// env is what an action works with.
type env struct {
	cfg Config
	db  provider.Store
	dir *directory.Directory
	out io.Writer
}

// offline builds the domain services over the store, as a running server has them.
func (e env) offline() (provider.OfflineServices, error) {
	return provider.Offline(e.cfg, e.db, e.dir)
}

// noFlags is the setup of a verb without flags of its own.
func noFlags(a action) func(*flag.FlagSet) action {
	return func(*flag.FlagSet) action { return a }
}

// run parses args, opens the store and runs the verb; it returns the exit code.
func (v verb) run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(v.Name, flag.ContinueOnError)
	cf := storeConfigFlags(fs, v.domain)
	act := v.setup(fs)
	if err := usage.Parse(fs, v.Help, args, stdout, stderr); err != nil {
		return usage.Code(err)
	}
	if err := usage.Args(fs, v.Help, v.min, v.max, stderr); err != nil {
		return usage.Code(err)
	}
	if v.check != nil {
		if err := v.check(fs.Args()); err != nil {
			usage.Fail(stderr, v.Help, err)
			return 2
		}
	}
	cfg, err := cf.load()
	if err != nil {
		fmt.Fprintf(stderr, "mimids %s: %v\n", v.Name, err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if v.ownStore {
		if err := act(ctx, env{cfg: cfg, out: stdout}, fs.Args()); err != nil {
			fmt.Fprintf(stderr, "mimids %s: %v\n", v.Name, err)
			return 1
		}
		return 0
	}
	db, err := provider.OpenStore(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "mimids %s: %v\n", v.Name, err)
		return 1
	}
	defer db.Close()
	e := env{cfg: cfg, db: db, dir: directory.New(db, cfg.Domain), out: stdout}
	if err := act(ctx, e, fs.Args()); err != nil {
		fmt.Fprintf(stderr, "mimids %s: %v\n", v.Name, err)
		return 1
	}
	auditCLI(ctx, e, v.Name, fs.Args(), stderr)
	return 0
}

// auditedVerbs are the verbs that change what the dashboard's audit log covers.
var auditedVerbs = map[string]bool{"admin passwd": true, "admin token": true, "admin token add": true,
	"admin token revoke": true, "ban add": true, "ban remove": true, "client add": true, "client revoke": true,
	"group terminate": true, "keys rotate": true, "notice": true, "peer add": true, "peer remove": true,
	"tokens revoke": true, "tokens rotate": true, "user add": true, "user remove": true}

// auditCLI writes a change made with the CLI to the audit log, as "cli USER"; an
// argument that is a credential is left out. A failure to write it is reported, not
// fatal: the change is made.
func auditCLI(ctx context.Context, e env, name string, args []string, stderr io.Writer) {
	if !auditedVerbs[name] {
		return
	}
	shown := make([]string, len(args))
	for i, a := range args {
		shown[i] = a
		if strings.HasPrefix(a, directory.AdminTokenPrefix) || strings.HasPrefix(a, "mdt_") || strings.HasPrefix(a, "mbt_") {
			shown[i] = "(a token)"
		}
	}
	who := "cli"
	if u := os.Getenv("USER"); u != "" {
		who += " " + u
	}
	if err := directory.NewAdmins(e.dir, e.db).Record(ctx, who, name, strings.Join(shown, " ")); err != nil {
		fmt.Fprintf(stderr, "mimids %s: the change is made but not audited: %v\n", name, err)
	}
}

// word is the verb's last word ("add" of "user add").
func (v verb) word() string { return v.Name[strings.LastIndexByte(v.Name, ' ')+1:] }

// group is a command made of verbs, e.g. `mimids user add|list|remove`.
type group struct {
	name, summary string
	verbs         []verb
}

func (g group) command(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	vs := make([]usage.Verb, len(g.verbs))
	for i, v := range g.verbs {
		vs[i] = usage.Verb{Name: v.word(), Summary: listLine(v.Summary)}
	}
	code, ok := usage.Group(g.name, g.summary, vs, args, stdout, stderr)
	if !ok {
		return code
	}
	for _, v := range g.verbs {
		if v.word() == args[0] {
			return v.run(args[1:], stdout, stderr)
		}
	}
	return 2 // unreachable: usage.Group found the verb
}

// listLine turns a verb's summary sentence into a line of its group's list.
func listLine(s string) string {
	s = strings.TrimSuffix(s, ".")
	if s != "" {
		s = strings.ToLower(s[:1]) + s[1:]
	}
	return s
}

// none prints what an empty list is, so that it is not mistaken for a failure.
func none(w io.Writer, n int, what string) {
	if n == 0 {
		fmt.Fprintf(w, "no %s\n", what)
	}
}

// command runs a verb that is a command of its own (e.g. `mimids notice`).
func (v verb) command(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	return v.run(args, stdout, stderr)
}
