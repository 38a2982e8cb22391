package main

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/mimids/mimids/cmd/internal/usage"
	"github.com/mimids/mimids/cmd/provider"
	"github.com/mimids/mimids/directory"
)

func hexArg(s string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not hex: %w", s, err)
	}
	return b, nil
}

// hexArgs checks that every positional argument is hex.
func hexArgs(a []string) error {
	for _, s := range a {
		if _, err := hexArg(s); err != nil {
			return err
		}
	}
	return nil
}

var groupGroup = group{name: "group", summary: "Inspects the groups hosted here and ends their forks.", verbs: []verb{
	{Help: usage.Help{Name: "group list", Summary: "Lists the hosted groups: ID, cipher suite, creator and creation time.",
		Example: "group list -data ./data"},
		setup: noFlags(groupList)},
	{Help: usage.Help{Name: "group partitions", Args: "GROUP_ID_HEX", Summary: "Lists the partitions (forks) of a group: masked key, epoch, length, parent and state.",
		Example: "group partitions -data ./data 0a1b2c3d"},
		min: 1, max: 1, check: hexArgs, setup: noFlags(groupPartitions)},
	{Help: usage.Help{Name: "group terminate", Args: "GROUP_ID_HEX MASKED_PARTITION_KEY_HEX",
		Summary: "Terminates one partition of a group: it takes no more messages.",
		Example: "group terminate -data ./data 0a1b2c3d 9f8e7d6c5b4a39281706f5e4d3c2b1a0"},
		min: 2, max: 2, check: hexArgs, setup: noFlags(groupTerminate)},
}}

func groupList(ctx context.Context, e env, _ []string) error {
	o, err := e.offline()
	h := o.Hub
	if err != nil {
		return err
	}
	var after []byte
	n := 0
	for i := 0; i < 1000; i++ {
		gs, err := h.Groups(ctx, after, 500)
		if err != nil {
			return err
		}
		for _, g := range gs {
			fmt.Fprintf(e.out, "%x\tsuite %d\t%s\t%s\n", g.GroupID, g.CipherSuite, g.CreatorUser, g.CreatedAt.Format(time.RFC3339))
		}
		n += len(gs)
		if len(gs) < 500 {
			break
		}
		after = gs[len(gs)-1].GroupID
	}
	none(e.out, n, "groups")
	return nil
}

func groupPartitions(ctx context.Context, e env, a []string) error {
	o, err := e.offline()
	h := o.Hub
	if err != nil {
		return err
	}
	gid, _ := hexArg(a[0])
	ps, err := h.Partitions(ctx, gid)
	for _, p := range ps {
		state := "open"
		if p.Terminated {
			state = "terminated " + p.TerminatedAt.Format(time.RFC3339)
		}
		fmt.Fprintf(e.out, "%x\tepoch %d\tmessages %d\tparent %x\t%s\n", p.Masked, p.Epoch, p.Length, p.Parent, state)
	}
	return err
}

func groupTerminate(ctx context.Context, e env, a []string) error {
	o, err := e.offline()
	h := o.Hub
	if err != nil {
		return err
	}
	gid, _ := hexArg(a[0])
	masked, _ := hexArg(a[1])
	if err := h.Terminate(ctx, gid, masked); err != nil {
		return err
	}
	fmt.Fprintf(e.out, "terminated partition %x\n", masked)
	return e.dir.RecordChange(ctx, directory.Change{Kind: provider.ChangePartitions})
}

var banGroup = group{name: "ban", summary: "Manages provider-wide bans: the hosted groups refuse everything from a banned local user and Adds of banned users.", verbs: []verb{
	{Help: usage.Help{Name: "ban add", Args: "USER_URI", Summary: "Bans a user provider-wide; a running server applies it within seconds.",
		Example: `ban add -data ./data -reason "spam" mimi://b.example/u/mallory`},
		min: 1, max: 1, setup: banAdd},
	{Help: usage.Help{Name: "ban remove", Args: "USER_URI", Summary: "Lifts a provider-wide ban.",
		Example: "ban remove -data ./data mimi://b.example/u/mallory"},
		min: 1, max: 1, setup: noFlags(banRemove)},
	{Help: usage.Help{Name: "ban list", Summary: "Lists the provider-wide bans: user, time and reason.",
		Example: "ban list -data ./data"},
		setup: noFlags(banList)},
}}

func banAdd(fs *flag.FlagSet) action {
	reason := fs.String("reason", "", "why (shown to admins)")
	return func(ctx context.Context, e env, a []string) error {
		o, err := e.offline()
		if err != nil {
			return err
		}
		if err := o.Policy.Ban(ctx, a[0], *reason); err != nil {
			return err
		}
		fmt.Fprintf(e.out, "banned %s (a running server applies it within seconds)\n", a[0])
		return nil
	}
}

func banRemove(ctx context.Context, e env, a []string) error {
	o, err := e.offline()
	if err != nil {
		return err
	}
	ok, err := o.Policy.Unban(ctx, a[0])
	if err == nil && !ok {
		return fmt.Errorf("%s is not banned", a[0])
	}
	if err == nil {
		fmt.Fprintf(e.out, "unbanned %s\n", a[0])
	}
	return err
}

func banList(ctx context.Context, e env, _ []string) error {
	o, err := e.offline()
	if err != nil {
		return err
	}
	bs, err := o.Policy.ListBans(ctx)
	if err != nil {
		return err
	}
	for _, b := range bs {
		fmt.Fprintf(e.out, "%s\t%s\t%s\n", b.UserURI, b.At.Format(time.RFC3339), b.Reason)
	}
	none(e.out, len(bs), "bans")
	return nil
}

var reportGroup = group{name: "report", summary: "Reads the reports clients filed about groups and messages.", verbs: []verb{
	{Help: usage.Help{Name: "report list", Summary: "Lists the latest 1000 reports: id, time, reporter, kind, group, subject and reason.",
		Example: "report list -data ./data"},
		setup: noFlags(reportList)},
}}

func reportList(ctx context.Context, e env, _ []string) error {
	o, err := e.offline()
	if err != nil {
		return err
	}
	rs, err := o.Policy.ListReports(ctx, 1000)
	if err != nil {
		return err
	}
	for _, r := range rs {
		fmt.Fprintf(e.out, "%d\t%s\t%s\tkind %d\tgroup %x\tsubject %x\t%q\n", r.ID, r.At.Format(time.RFC3339), r.ReporterUser, r.Kind, r.GroupID, r.Subject, r.Reason)
	}
	none(e.out, len(rs), "reports")
	return nil
}

var tokensGroup = group{name: "tokens", summary: "Manages the bearer tokens handed out by KeyPackage discovery.", verbs: []verb{
	{Help: usage.Help{Name: "tokens list", Summary: "Lists the discovery tokens: id, policy, user, creation time, uses and state.",
		Example: "tokens list -data ./data"},
		setup: noFlags(tokensList)},
	{Help: usage.Help{Name: "tokens revoke", Args: "ID", Summary: "Revokes a discovery token: requesters holding it must discover again.",
		Example: "tokens revoke -data ./data 12"},
		min: 1, max: 1, check: tokenID, setup: noFlags(tokensRevoke)},
}}

func tokenID(a []string) error {
	if _, err := strconv.ParseInt(a[0], 10, 64); err != nil {
		return fmt.Errorf("token id %q is not a number", a[0])
	}
	return nil
}

func tokensList(ctx context.Context, e env, _ []string) error {
	o, err := e.offline()
	disc := o.Discovery
	if err != nil {
		return err
	}
	var after int64
	n := 0
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
			fmt.Fprintf(e.out, "%d\t%s\tuser %q\tcreated %s\tuses %d\t%s\n", t.ID, t.Policy, t.UserName, t.CreatedAt.Format(time.RFC3339), t.Uses, state)
		}
		n += len(ts)
		if len(ts) < 500 {
			break
		}
		after = ts[len(ts)-1].ID
	}
	none(e.out, n, "tokens")
	return nil
}

func tokensRevoke(ctx context.Context, e env, a []string) error {
	o, err := e.offline()
	disc := o.Discovery
	if err != nil {
		return err
	}
	id, _ := strconv.ParseInt(a[0], 10, 64)
	if _, err := disc.RevokeToken(ctx, id); err != nil {
		return err
	}
	fmt.Fprintf(e.out, "revoked token %d: requesters holding it must discover again\n", id)
	return nil
}
