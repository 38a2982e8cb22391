package main

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/mimids/mimids/cmd/provider"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/hub"
	"github.com/mimids/mimids/sqlite"
)

func hexArg(s string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not hex: %w", s, err)
	}
	return b, nil
}

func groupCommand(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	verb, rest := sub(args)
	run := func(fn func(ctx context.Context, h *hub.Hub, db *sqlite.DB, a []string) error) int {
		return storeCommand("group "+verb, rest, stdout, stderr, nil, func(ctx context.Context, cfg Config, db *sqlite.DB, d *directory.Directory, a []string) error {
			o, err := provider.Offline(cfg, db, d)
			if err != nil {
				return err
			}
			return fn(ctx, o.Hub, db, a)
		})
	}
	switch verb {
	case "list":
		return run(func(ctx context.Context, h *hub.Hub, _ *sqlite.DB, _ []string) error {
			var after []byte
			for i := 0; i < 1000; i++ {
				gs, err := h.Groups(ctx, after, 500)
				if err != nil {
					return err
				}
				for _, g := range gs {
					fmt.Fprintf(stdout, "%x\tsuite %d\t%s\t%s\n", g.GroupID, g.CipherSuite, g.CreatorUser, g.CreatedAt.Format(time.RFC3339))
				}
				if len(gs) < 500 {
					return nil
				}
				after = gs[len(gs)-1].GroupID
			}
			return nil
		})
	case "partitions":
		return run(func(ctx context.Context, h *hub.Hub, _ *sqlite.DB, a []string) error {
			if len(a) != 1 {
				return fmt.Errorf("usage: mimids group partitions GROUP_ID_HEX: %w", errUsage)
			}
			gid, err := hexArg(a[0])
			if err != nil {
				return err
			}
			ps, err := h.Partitions(ctx, gid)
			for _, p := range ps {
				state := "open"
				if p.Terminated {
					state = "terminated " + p.TerminatedAt.Format(time.RFC3339)
				}
				fmt.Fprintf(stdout, "%x\tepoch %d\tmessages %d\tparent %x\t%s\n", p.Masked, p.Epoch, p.Length, p.Parent, state)
			}
			return err
		})
	case "terminate":
		return run(func(ctx context.Context, h *hub.Hub, db *sqlite.DB, a []string) error {
			if len(a) != 2 {
				return fmt.Errorf("usage: mimids group terminate GROUP_ID_HEX MASKED_PARTITION_KEY_HEX: %w", errUsage)
			}
			gid, err := hexArg(a[0])
			if err != nil {
				return err
			}
			masked, err := hexArg(a[1])
			if err != nil {
				return err
			}
			if err := h.Terminate(ctx, gid, masked); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "terminated partition %x\n", masked)
			return db.RecordChange(ctx, provider.ChangePartitions, 0, time.Now())
		})
	}
	fmt.Fprintln(stderr, "usage: mimids group list | partitions GROUP_ID | terminate GROUP_ID MASKED_KEY [flags]")
	return 2
}

func banCommand(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	verb, rest := sub(args)
	var reason *string
	setup := func(fs *flag.FlagSet) { reason = fs.String("reason", "", "why (shown to admins)") }
	run := func(fn func(ctx context.Context, pol *directory.Policy, a []string) error) int {
		return storeCommand("ban "+verb, rest, stdout, stderr, setup, func(ctx context.Context, cfg Config, db *sqlite.DB, d *directory.Directory, a []string) error {
			o, err := provider.Offline(cfg, db, d)
			if err != nil {
				return err
			}
			return fn(ctx, o.Policy, a)
		})
	}
	switch verb {
	case "add":
		return run(func(ctx context.Context, pol *directory.Policy, a []string) error {
			if len(a) != 1 {
				return fmt.Errorf("usage: mimids ban add [-reason TEXT] USER_URI: %w", errUsage)
			}
			if err := pol.Ban(ctx, a[0], *reason); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "banned %s (a running server applies it within seconds)\n", a[0])
			return nil
		})
	case "remove":
		return run(func(ctx context.Context, pol *directory.Policy, a []string) error {
			if len(a) != 1 {
				return fmt.Errorf("usage: mimids ban remove USER_URI: %w", errUsage)
			}
			ok, err := pol.Unban(ctx, a[0])
			if err == nil && !ok {
				return fmt.Errorf("%s is not banned", a[0])
			}
			return err
		})
	case "list":
		return run(func(ctx context.Context, pol *directory.Policy, _ []string) error {
			bs, err := pol.ListBans(ctx)
			for _, b := range bs {
				fmt.Fprintf(stdout, "%s\t%s\t%s\n", b.UserURI, b.At.Format(time.RFC3339), b.Reason)
			}
			return err
		})
	}
	fmt.Fprintln(stderr, "usage: mimids ban add|remove|list [flags] [USER_URI]")
	return 2
}

func reportCommand(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	verb, rest := sub(args)
	if verb != "list" {
		fmt.Fprintln(stderr, "usage: mimids report list [flags]")
		return 2
	}
	return storeCommand("report list", rest, stdout, stderr, nil, func(ctx context.Context, cfg Config, db *sqlite.DB, d *directory.Directory, _ []string) error {
		o, err := provider.Offline(cfg, db, d)
		if err != nil {
			return err
		}
		rs, err := o.Policy.ListReports(ctx, 1000)
		for _, r := range rs {
			fmt.Fprintf(stdout, "%d\t%s\t%s\tkind %d\tgroup %x\tsubject %x\t%q\n", r.ID, r.At.Format(time.RFC3339), r.ReporterUser, r.Kind, r.GroupID, r.Subject, r.Reason)
		}
		return err
	})
}

func tokensCommand(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	verb, rest := sub(args)
	run := func(fn func(ctx context.Context, disc *directory.Discovery, a []string) error) int {
		return storeCommand("tokens "+verb, rest, stdout, stderr, nil, func(ctx context.Context, cfg Config, db *sqlite.DB, d *directory.Directory, a []string) error {
			o, err := provider.Offline(cfg, db, d)
			if err != nil {
				return err
			}
			return fn(ctx, o.Discovery, a)
		})
	}
	switch verb {
	case "list":
		return run(func(ctx context.Context, disc *directory.Discovery, _ []string) error {
			var after int64
			for i := 0; i < 1000; i++ {
				ts, err := disc.ListTokens(ctx, after, 500)
				if err != nil {
					return err
				}
				for _, t := range ts {
					state := "active"
					if !t.RevokedAt.IsZero() {
						state = "revoked"
					}
					fmt.Fprintf(stdout, "%d\t%s\tuser %q\tcreated %s\tuses %d\t%s\n", t.ID, t.Policy, t.UserName, t.CreatedAt.Format(time.RFC3339), t.Uses, state)
				}
				if len(ts) < 500 {
					return nil
				}
				after = ts[len(ts)-1].ID
			}
			return nil
		})
	case "revoke":
		return run(func(ctx context.Context, disc *directory.Discovery, a []string) error {
			if len(a) != 1 {
				return fmt.Errorf("usage: mimids tokens revoke ID: %w", errUsage)
			}
			id, err := strconv.ParseInt(a[0], 10, 64)
			if err != nil {
				return fmt.Errorf("token id %q: %w", a[0], err)
			}
			if _, err := disc.RevokeToken(ctx, id); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "revoked token %d: requesters holding it must discover again\n", id)
			return nil
		})
	}
	fmt.Fprintln(stderr, "usage: mimids tokens list | revoke ID [flags]")
	return 2
}
