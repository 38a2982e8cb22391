// Command mimids runs a MIMI Delivery Service provider (`mimids serve`) and administers
// its store (`mimids user`, `mimids client`, `mimids notice`, `mimids admin`, ...). The
// MLS tools (`mimids mls`, package cmd/mlstool) and the load generators (`mimids bench`,
// `mimids bench-group`, package cmd/bench) are dispatched from here.
package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mimids/mimids/cmd/bench"
	"github.com/mimids/mimids/cmd/internal/usage"
	"github.com/mimids/mimids/cmd/mlstool"
)

type command func(args []string, stdin io.Reader, stdout, stderr io.Writer) int

// commands are the first words of a command line, in the order help lists them.
var commands = []struct {
	name, summary string
	run           command
}{
	{"serve", "run the provider (client socket, admin API, OHTTP gateway, dashboard)", serveCommand},
	{"user", "add | list | remove users", userGroup.command},
	{"client", "add | list | revoke clients (devices) and their tokens", clientGroup.command},
	{"notice", "send an operator notice to a client, a user or everyone", noticeVerb.command},
	{"admin", "token add | list | revoke: admin API credentials", adminCommand},
	{"keys", "list | rotate the Oblivious HTTP gateway keys", keysGroup.command},
	{"tokens", "list | revoke | rotate discovery bearer tokens", tokensGroup.command},
	{"group", "list | partitions | terminate: hosted groups and their forks", groupGroup.command},
	{"ban", "add | remove | list provider-wide bans", banGroup.command},
	{"report", "list the reports filed by clients", reportGroup.command},
	{"store", "status | check | backup | restore | copy the store (incarnation, integrity, sqlite to postgres)", storeGroup.command},
	{"migrate", "apply the store's pending migrations (sqlite or postgres)", migrateVerb.command},
	{"peer", "add | list | remove peer providers (the federation allow-list)", peerGroup.command},
	{"cert", "ca | issue: make a test federation's CA and certificates", certCommand},
	{"mls", "decode | keypackage | replay: inspect MLS messages offline", mlstool.Command},
	{"bench", "load-test a running server's mailbox path over loopback", benchCommand},
	{"bench-group", "load-test a running server's hub (groups) over loopback", benchGroupCommand},
	{"version", "print the version, VCS revision and Go version", versionCommand},
}

func benchCommand(a []string, _ io.Reader, o, e io.Writer) int { return bench.Command(a, o, e) }
func benchGroupCommand(a []string, _ io.Reader, o, e io.Writer) int {
	return bench.GroupCommand(a, o, e)
}

func printUsage(w io.Writer) {
	var b strings.Builder
	b.WriteString("mimids runs a MIMI Delivery Service provider and administers its store.\n\n")
	b.WriteString("usage: mimids <command> [verb] [flags] [arguments]\n\ncommands:\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(&b, "  %-12s %s\n", "help", "this list; 'mimids help COMMAND [VERB]' shows one command")
	b.WriteString("\nRun 'mimids COMMAND -h' (or 'mimids help COMMAND') for its verbs, flags and an example.\n")
	io.WriteString(w, b.String())
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		printUsage(stderr)
		return 2
	}
	if usage.IsHelp(args[0]) {
		if len(args) == 1 || usage.IsHelp(args[1]) {
			printUsage(stdout)
			return 0
		}
		// `mimids help user add` is `mimids user add -h`.
		return run(append(append([]string{}, args[1:]...), "-h"), stdin, stdout, stderr)
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(args[1:], stdin, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "mimids: unknown command %q\n\n", args[0])
	printUsage(stderr)
	return 2
}
