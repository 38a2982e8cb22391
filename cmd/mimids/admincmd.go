package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/mimids/mimids/cmd/provider"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/directory/mailbox"
	"github.com/mimids/mimids/gateway"
	"github.com/mimids/mimids/protocol"
	"github.com/mimids/mimids/sqlite"
)

// storeCommand parses the common flags, opens the store and runs fn with the
// directory. Positional arguments left after the flags are passed to fn.
func storeCommand(name string, args []string, stdout, stderr io.Writer, setup func(fs *flag.FlagSet),
	fn func(ctx context.Context, cfg Config, db *sqlite.DB, d *directory.Directory, rest []string) error) int {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	if setup != nil {
		setup(fs)
	}
	cfg, err := loadConfig(fs, args)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "mimids %s: %v\n", name, err)
		}
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := provider.OpenStore(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "mimids %s: %v\n", name, err)
		return 1
	}
	defer db.Close()
	if err := fn(ctx, cfg, db, directory.New(db, cfg.Domain), fs.Args()); err != nil {
		fmt.Fprintf(stderr, "mimids %s: %v\n", name, err)
		return 1
	}
	return 0
}

var errUsage = errors.New("wrong arguments (see -h)")

func sub(args []string) (string, []string) {
	if len(args) == 0 {
		return "", nil
	}
	return args[0], args[1:]
}

func userCommand(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	verb, rest := sub(args)
	switch verb {
	case "add":
		return storeCommand("user add", rest, stdout, stderr, nil, func(ctx context.Context, _ Config, _ *sqlite.DB, d *directory.Directory, a []string) error {
			if len(a) != 1 {
				return fmt.Errorf("usage: mimids user add [flags] NAME: %w", errUsage)
			}
			u, err := d.AddUser(ctx, a[0])
			if err == nil {
				fmt.Fprintln(stdout, d.UserURI(u.Name))
			}
			return err
		})
	case "list":
		return storeCommand("user list", rest, stdout, stderr, nil, func(ctx context.Context, _ Config, db *sqlite.DB, d *directory.Directory, _ []string) error {
			us, err := db.ListUsers(ctx)
			for _, u := range us {
				fmt.Fprintf(stdout, "%s\t%s\n", d.UserURI(u.Name), u.CreatedAt.Format(time.RFC3339))
			}
			return err
		})
	case "remove":
		return storeCommand("user remove", rest, stdout, stderr, nil, func(ctx context.Context, _ Config, _ *sqlite.DB, d *directory.Directory, a []string) error {
			if len(a) != 1 {
				return fmt.Errorf("usage: mimids user remove [flags] NAME: %w", errUsage)
			}
			cs, err := d.RemoveUser(ctx, a[0])
			if err == nil {
				fmt.Fprintf(stdout, "removed %s and %d clients\n", d.UserURI(a[0]), len(cs))
			}
			return err
		})
	}
	fmt.Fprintln(stderr, "usage: mimids user add|list|remove [flags] [NAME]")
	return 2
}

func clientCommand(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	verb, rest := sub(args)
	switch verb {
	case "add":
		var create *bool
		return storeCommand("client add", rest, stdout, stderr, func(fs *flag.FlagSet) {
			create = fs.Bool("create-user", false, "create the user if it does not exist")
		}, func(ctx context.Context, _ Config, _ *sqlite.DB, d *directory.Directory, a []string) error {
			if len(a) != 2 {
				return fmt.Errorf("usage: mimids client add [flags] USER CLIENT: %w", errUsage)
			}
			c, token, err := d.AddClient(ctx, a[0], a[1], *create)
			if err == nil {
				fmt.Fprintf(stdout, "client: %s\ntoken:  %s\n(the token is shown once; only its hash is stored)\n", d.ClientURI(c), token)
			}
			return err
		})
	case "list":
		return storeCommand("client list", rest, stdout, stderr, nil, func(ctx context.Context, _ Config, db *sqlite.DB, d *directory.Directory, a []string) error {
			user := ""
			if len(a) > 0 {
				user = a[0]
			}
			cs, err := db.ListClients(ctx, user)
			for _, c := range cs {
				state := "active"
				if c.Revoked() {
					state = "revoked " + c.RevokedAt.Format(time.RFC3339)
				}
				fmt.Fprintf(stdout, "%s\t%s\n", d.ClientURI(c), state)
			}
			return err
		})
	case "revoke":
		return storeCommand("client revoke", rest, stdout, stderr, nil, func(ctx context.Context, _ Config, _ *sqlite.DB, d *directory.Directory, a []string) error {
			if len(a) != 2 {
				return fmt.Errorf("usage: mimids client revoke [flags] USER CLIENT: %w", errUsage)
			}
			c, err := d.RevokeClient(ctx, a[0], a[1])
			if err == nil {
				fmt.Fprintf(stdout, "revoked %s (a running server closes its sockets within a second)\n", d.ClientURI(c))
			}
			return err
		})
	}
	fmt.Fprintln(stderr, "usage: mimids client add|list|revoke [flags] USER [CLIENT]")
	return 2
}

func noticeCommand(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	var client, user *string
	var all *bool
	return storeCommand("notice", args, stdout, stderr, func(fs *flag.FlagSet) {
		client = fs.String("client", "", "client `URI` to notify")
		user = fs.String("user", "", "user `URI` whose clients to notify")
		all = fs.Bool("all", false, "notify every client")
	}, func(ctx context.Context, _ Config, db *sqlite.DB, d *directory.Directory, a []string) error {
		if len(a) != 1 {
			return fmt.Errorf("usage: mimids notice [-client URI | -user URI | -all] TEXT: %w", errUsage)
		}
		t, err := gateway.ResolveTarget(ctx, d, *client, *user, *all)
		if err != nil {
			return err
		}
		payload, _ := protocol.Notice{Text: a[0]}.MarshalBinary()
		n, err := mailbox.New(db, mailbox.Metrics{}).Enqueue(ctx, t, uint16(protocol.KindNotice), payload)
		if err != nil {
			return err
		}
		// A running server learns of entries written by this process from the change log.
		if err := db.RecordMailboxChange(ctx, t.ClientID, n, time.Now()); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "enqueued %d\n", n)
		return nil
	})
}

func adminCommand(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	verb, rest := sub(args)
	if verb != "token" {
		fmt.Fprintln(stderr, "usage: mimids admin token [flags] [NAME]")
		return 2
	}
	return storeCommand("admin token", rest, stdout, stderr, nil, func(ctx context.Context, _ Config, _ *sqlite.DB, d *directory.Directory, a []string) error {
		name := "admin"
		if len(a) > 0 {
			name = a[0]
		}
		token, err := d.NewAdminToken(ctx, name)
		if err == nil {
			fmt.Fprintf(stdout, "admin token: %s\n(shown once; only its hash is stored)\n", token)
		}
		return err
	})
}
