// Command mimids runs a MIMI Delivery Service provider (`mimids serve`) and administers
// its store (`mimids user`, `mimids client`, `mimids notice`, `mimids admin`), inspects
// MLS messages (`mimids mls`) and measures a running server (`mimids bench`, `mimids bench-group`).
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/mimids/mimids/cmd/bench"
	"github.com/mimids/mimids/cmd/mlstool"
)

type command func(args []string, stdin io.Reader, stdout, stderr io.Writer) int

var commands = map[string]command{
	"serve":       serveCommand,
	"user":        userCommand,
	"client":      clientCommand,
	"notice":      noticeCommand,
	"admin":       adminCommand,
	"mls":         mlstool.Command,
	"keys":        keysCommand,
	"group":       groupCommand,
	"ban":         banCommand,
	"report":      reportCommand,
	"tokens":      tokensCommand,
	"bench":       func(a []string, _ io.Reader, o, e io.Writer) int { return bench.Command(a, o, e) },
	"bench-group": func(a []string, _ io.Reader, o, e io.Writer) int { return bench.GroupCommand(a, o, e) },
}

const usage = `usage: mimids <command> [flags]

commands:
  serve     run the provider (client socket, admin API, dashboard)
  user      add | list | remove users
  client    add | list | revoke clients (devices) and their tokens
  notice    send an operator notice to a client, a user or everyone
  admin     token: create another admin credential
  keys      list | rotate the Oblivious HTTP gateway keys
  tokens    list | revoke discovery bearer tokens
  group     list | partitions | terminate: hosted groups and their forks
  ban       add | remove | list provider-wide bans
  report    list reports filed by clients
  mls       decode | keypackage | replay: inspect MLS messages
  bench     load-test a running server's mailbox path over loopback
  bench-group  load-test a running server's hub (groups) over loopback

Run 'mimids <command> -h' for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "mimids: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	return cmd(args[1:], stdin, stdout, stderr)
}
