package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mimids/mimids/cmd/internal/usage"
	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/directory/mailbox"
	"github.com/mimids/mimids/gateway"
	"github.com/mimids/mimids/protocol"
)

var userGroup = group{name: "user", summary: "Manages the users of this provider.", verbs: []verb{
	{Help: usage.Help{Name: "user add", Args: "NAME", Summary: "Creates a user and prints its URI.",
		Example: "user add -data ./data alice"},
		min: 1, max: 1, domain: true, setup: noFlags(userAdd)},
	{Help: usage.Help{Name: "user list", Summary: "Lists the users with the time each was created.",
		Example: "user list -data ./data"},
		domain: true, setup: noFlags(userList)},
	{Help: usage.Help{Name: "user remove", Args: "NAME", Summary: "Removes a user with its clients, their tokens and mailboxes.",
		Example: "user remove -data ./data alice"},
		min: 1, max: 1, domain: true, setup: noFlags(userRemove)},
}}

func userAdd(ctx context.Context, e env, a []string) error {
	u, err := e.dir.AddUser(ctx, a[0])
	if err == nil {
		fmt.Fprintln(e.out, e.dir.UserURI(u.Name))
	}
	return err
}

func userList(ctx context.Context, e env, _ []string) error {
	us, err := e.dir.ListUsers(ctx)
	if err != nil {
		return err
	}
	for _, u := range us {
		fmt.Fprintf(e.out, "%s\t%s\n", e.dir.UserURI(u.Name), u.CreatedAt.Format(time.RFC3339))
	}
	none(e.out, len(us), "users")
	return nil
}

func userRemove(ctx context.Context, e env, a []string) error {
	cs, err := e.dir.RemoveUser(ctx, a[0])
	if err == nil {
		fmt.Fprintf(e.out, "removed %s and %d clients\n", e.dir.UserURI(a[0]), len(cs))
	}
	return err
}

var clientGroup = group{name: "client", summary: "Manages the clients (devices) of users and their bearer tokens.", verbs: []verb{
	{Help: usage.Help{Name: "client add", Args: "USER CLIENT", Summary: "Creates a client of USER and prints its bearer token (shown once).",
		Example: "client add -data ./data -create-user alice phone"},
		min: 2, max: 2, domain: true, setup: clientAdd},
	{Help: usage.Help{Name: "client list", Args: "[USER]", Summary: "Lists the clients (of USER, or of everyone), whether each is revoked, and what its mailbox holds against its quota.",
		Example: "client list -data ./data alice"},
		max: 1, domain: true, setup: noFlags(clientList)},
	{Help: usage.Help{Name: "client revoke", Args: "USER CLIENT", Summary: "Revokes a client's token; a running server closes its sockets within a second.",
		Example: "client revoke -data ./data alice phone"},
		min: 2, max: 2, domain: true, setup: noFlags(clientRevoke)},
}}

func clientAdd(fs *flag.FlagSet) action {
	create := fs.Bool("create-user", false, "create the user if it does not exist")
	return func(ctx context.Context, e env, a []string) error {
		c, token, err := e.dir.AddClient(ctx, a[0], a[1], *create)
		if err == nil {
			fmt.Fprintf(e.out, "client: %s\ntoken:  %s\n(the token is shown once; only its hash is stored)\n", e.dir.ClientURI(c), token)
		}
		return err
	}
}

func clientList(ctx context.Context, e env, a []string) error {
	user, what := "", "clients"
	if len(a) > 0 {
		user, what = a[0], "clients of "+a[0]
	}
	cs, err := e.dir.ListClients(ctx, user)
	if err != nil {
		return err
	}
	mb := e.mailbox()
	for _, c := range cs {
		state := "active"
		if c.Revoked() {
			state = "revoked " + c.RevokedAt.Format(time.RFC3339)
		}
		u, err := mb.Usage(ctx, c.ID)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.out, "%s\t%s\tmailbox %d/%d entries, %d/%d bytes\n", e.dir.ClientURI(c), state,
			u.Entries, u.Quota.MaxEntries, u.Bytes, u.Quota.MaxBytes)
	}
	none(e.out, len(cs), what)
	return nil
}

func clientRevoke(ctx context.Context, e env, a []string) error {
	c, err := e.dir.RevokeClient(ctx, a[0], a[1])
	if err == nil {
		fmt.Fprintf(e.out, "revoked %s (a running server closes its sockets within a second)\n", e.dir.ClientURI(c))
	}
	return err
}

var noticeVerb = verb{Help: usage.Help{Name: "notice", Args: "TEXT",
	Summary: "Sends an operator notice to one client, the clients of one user, or every client (one of -client, -user, -all).",
	Example: `notice -data ./data -user mimi://localhost/u/alice "maintenance at 22:00 UTC"`},
	min: 1, max: 1, domain: true, setup: notice}

func notice(fs *flag.FlagSet) action {
	client := fs.String("client", "", "client `URI` to notify")
	user := fs.String("user", "", "user `URI` whose clients to notify")
	all := fs.Bool("all", false, "notify every client")
	return func(ctx context.Context, e env, a []string) error {
		t, err := gateway.ResolveTarget(ctx, e.dir, *client, *user, *all)
		if err != nil {
			return err
		}
		payload, _ := protocol.Notice{Text: a[0]}.MarshalBinary()
		n, err := e.mailbox().Enqueue(ctx, t, uint16(protocol.KindNotice), payload)
		if err != nil {
			return err
		}
		// A running server learns of entries written by this process from the change log.
		if err := e.dir.RecordChange(ctx, directory.Change{Kind: directory.ChangeMailbox, ClientID: t.ClientID, Entries: n}); err != nil {
			return err
		}
		fmt.Fprintf(e.out, "enqueued %d\n", n)
		return nil
	}
}

// adminTokenReserved are words that look like verbs of `mimids admin token`; they are
// refused as token names, so that a mistyped verb creates nothing.
var adminTokenReserved = []string{"add", "create", "new", "list", "ls", "show", "get", "remove", "rm",
	"delete", "del", "revoke", "disable", "expire", "rotate", "renew", "set", "update"}

var adminTokenGroup = group{name: "admin token",
	summary: "Manages the admin API bearer tokens. `mimids admin token [NAME]`, without a verb, is `admin token add [NAME]`.",
	verbs: []verb{
		{Help: usage.Help{Name: "admin token add", Args: "[NAME]",
			Summary: "Creates an admin API bearer token named NAME (default admin) and prints it once.",
			Example: "admin token add -data ./data -expires 30d ops-laptop",
			Details: "NAME is 1-64 of a-z 0-9 . _ -, not all digits and not a verb of 'mimids admin token'.\n" +
				"Without -expires the token never expires; it is refused from the moment it expires."},
			max: 1, check: adminTokenName, setup: adminTokenAdd},
		{Help: usage.Help{Name: "admin token list", Summary: "Lists the admin tokens: id, name, creation, expiry, last use and state (never the token).",
			Example: "admin token list -data ./data"},
			setup: noFlags(adminTokenList)},
		{Help: usage.Help{Name: "admin token revoke", Args: "ID|NAME|TOKEN",
			Summary: "Revokes an admin token; a running server refuses it from its next request.",
			Example: "admin token revoke -data ./data ops-laptop",
			Details: "A name must belong to one active token (else revoke by the id 'admin token list' shows);\n" +
				"an argument starting with mat_ is the token itself."},
			min: 1, max: 1, setup: noFlags(adminTokenRevoke)},
	}}

// adminTokenLegacy is `mimids admin token [flags] [NAME]`, the form before the verbs
// existed: it is `admin token add`.
var adminTokenLegacy = verb{Help: usage.Help{Name: "admin token", Args: "[NAME]",
	Summary: "Creates an admin API bearer token named NAME (default admin); the same as 'admin token add'."},
	max: 1, check: adminTokenName, setup: adminTokenAdd}

// adminCommand is `mimids admin`: its one word is token.
func adminCommand(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	code, ok := usage.Group("admin", "Manages admin API and dashboard credentials.",
		[]usage.Verb{{Name: "token", Summary: "add | list | revoke admin API bearer tokens"},
			{Name: "passwd", Summary: adminPasswd.Summary}}, args, stdout, stderr)
	if !ok {
		return code
	}
	if args[0] == "passwd" {
		passwdInput = stdin
		return adminPasswd.run(args[1:], stdout, stderr)
	}
	return adminTokenCommand(args[1:], stdin, stdout, stderr)
}

// passwdInput is where `mimids admin passwd` reads the password (the command's
// standard input).
var passwdInput io.Reader = os.Stdin

// adminPasswd is `mimids admin passwd NAME`: it sets the dashboard password of an
// admin name, read as the first line of standard input.
var adminPasswd = verb{Help: usage.Help{Name: "admin passwd", Args: "NAME",
	Summary: "Sets the dashboard password of admin NAME, read from the first line of standard input.",
	Example: "admin passwd -data ./data alice < pw.txt",
	Details: fmt.Sprintf("NAME is as for admin tokens; the password has %d to %d bytes and is stored as an argon2id hash.\n"+
		"-read-only makes a login that sees everything and changes nothing. Setting a password again ends the\n"+
		"dashboard sessions opened with the old one.", directory.MinAdminPassword, directory.MaxAdminPassword)},
	min: 1, max: 1, check: func(a []string) error { return directory.ValidAdminTokenName(a[0]) }, setup: adminPasswdSetup}

func adminPasswdSetup(fs *flag.FlagSet) action {
	readOnly := fs.Bool("read-only", false, "the login sees everything and changes nothing")
	return func(ctx context.Context, e env, a []string) error {
		line, err := bufio.NewReader(io.LimitReader(passwdInput, directory.MaxAdminPassword+2)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read the password: %w", err)
		}
		pw := strings.TrimRight(line, "\r\n")
		if err := directory.NewAdmins(e.dir, e.db).SetPassword(ctx, a[0], pw, *readOnly); err != nil {
			return err
		}
		role := "full"
		if *readOnly {
			role = "read-only"
		}
		fmt.Fprintf(e.out, "password set for admin %s (%s); only its argon2id hash is stored\n", a[0], role)
		return nil
	}
}

// adminTokenCommand is `mimids admin token`: a verb, a help word or a reserved word go
// to the group (which refuses the reserved ones as unknown verbs); anything else (no
// word, flags, a name) is the legacy form that creates a token.
func adminTokenCommand(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || (!usage.IsHelp(args[0]) && !slices.Contains(adminTokenReserved, args[0])) {
		return adminTokenLegacy.run(args, stdout, stderr)
	}
	return adminTokenGroup.command(args, stdin, stdout, stderr)
}

func adminTokenName(a []string) error {
	if len(a) == 0 {
		return nil
	}
	if slices.Contains(adminTokenReserved, a[0]) {
		return fmt.Errorf("%q is not a token name (for the verb, put it first: mimids admin token %s [flags] ...)", a[0], a[0])
	}
	return directory.ValidAdminTokenName(a[0])
}

// expiresFlag is a lifetime: a Go duration (90m, 720h) or a number of days (30d).
type expiresFlag struct{ d time.Duration }

func (f *expiresFlag) String() string {
	if f == nil || f.d == 0 {
		return ""
	}
	return f.d.String()
}

func (f *expiresFlag) Set(s string) error {
	d, err := time.ParseDuration(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n uint64
		n, err = strconv.ParseUint(days, 10, 16)
		d = time.Duration(n) * 24 * time.Hour
	}
	if err != nil || d <= 0 {
		return fmt.Errorf("want a positive duration such as 12h or 30d")
	}
	f.d = d
	return nil
}

func adminTokenAdd(fs *flag.FlagSet) action {
	var expires expiresFlag
	fs.Var(&expires, "expires", "lifetime of the token, e.g. 12h or 30d (default: never expires)")
	readOnly := fs.Bool("read-only", false, "the token sees everything (API GETs, dashboard pages) and changes nothing")
	return func(ctx context.Context, e env, a []string) error {
		name := "admin"
		if len(a) > 0 {
			name = a[0]
		}
		token, t, err := e.dir.NewAdminTokenRole(ctx, name, expires.d, *readOnly)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.out, "admin token: %s\n(shown once; only its hash is stored)\n", token)
		fmt.Fprintf(e.out, "id: %d, name: %s, expires: %s, read-only: %t\n", t.ID, t.Name, orNever(t.ExpiresAt), t.ReadOnly)
		return nil
	}
}

func adminTokenList(ctx context.Context, e env, _ []string) error {
	ts, err := e.dir.ListAdminTokens(ctx)
	if err != nil {
		return err
	}
	if len(ts) > 0 {
		fmt.Fprintln(e.out, "id\tname\tcreated\texpires\tlast used\tstate\trole")
	}
	now := time.Now()
	for _, t := range ts {
		role := "full"
		if t.ReadOnly {
			role = "read-only"
		}
		fmt.Fprintf(e.out, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.CreatedAt.Format(time.RFC3339),
			orNever(t.ExpiresAt), orNever(t.LastUsedAt), t.State(now), role)
	}
	none(e.out, len(ts), "admin tokens")
	return nil
}

func adminTokenRevoke(ctx context.Context, e env, a []string) error {
	t, err := e.dir.RevokeAdminToken(ctx, a[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(e.out, "revoked admin token %d (%s) at %s; a running server refuses it from its next request\n",
		t.ID, t.Name, t.RevokedAt.Format(time.RFC3339))
	// A hint only: a failure to list does not undo the revocation.
	ts, err := e.dir.ListAdminTokens(ctx)
	if err == nil && !slices.ContainsFunc(ts, func(t directory.AdminToken) bool { return t.Active(time.Now()) }) {
		fmt.Fprintln(e.out, "no active admin token is left: 'mimids admin token add' makes one")
	}
	return nil
}

// orNever is a time in RFC 3339, or "never" for the zero time.
func orNever(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Format(time.RFC3339)
}

// mailbox is the store's mailbox under the configured quota.
func (e env) mailbox() *mailbox.Mailbox {
	return mailbox.NewWithQuota(e.db, mailbox.Metrics{}, e.cfg.Mailbox.Quota())
}
