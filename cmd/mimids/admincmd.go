package main

import (
	"context"
	"flag"
	"fmt"
	"slices"
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

// adminTokenReserved are words that look like verbs of `mimids admin token`;
// they are refused as token names so that a mistyped verb creates nothing.
var adminTokenReserved = []string{"add", "create", "list", "remove", "revoke", "rotate", "show"}

var adminGroup = group{name: "admin", summary: "Manages admin API credentials.", verbs: []verb{
	{Help: usage.Help{Name: "admin token", Args: "[NAME]", Summary: "Creates another admin API bearer token named NAME (default admin) and prints it once.",
		Example: "admin token -data ./data ops-laptop"},
		max: 1, check: adminTokenName, setup: noFlags(adminToken)},
}}

func adminTokenName(a []string) error {
	if len(a) > 0 && slices.Contains(adminTokenReserved, a[0]) {
		return fmt.Errorf("%q is not a token name: this verb only creates tokens (there is no %q)", a[0], "admin token "+a[0])
	}
	return nil
}

func adminToken(ctx context.Context, e env, a []string) error {
	name := "admin"
	if len(a) > 0 {
		name = a[0]
	}
	token, err := e.dir.NewAdminToken(ctx, name)
	if err == nil {
		fmt.Fprintf(e.out, "admin token: %s\n(shown once; only its hash is stored)\n", token)
	}
	return err
}

// mailbox is the store's mailbox under the configured quota.
func (e env) mailbox() *mailbox.Mailbox {
	return mailbox.NewWithQuota(e.db, mailbox.Metrics{}, e.cfg.Mailbox.Quota())
}
