package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
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
		fmt.Fprintf(e.out, "%d\t%s\t%s\tkind %s\tgroup %x\tsubject %x\t%q\n", r.ID, r.At.Format(time.RFC3339), r.ReporterUser, r.Kind, r.GroupID, r.Subject, r.Reason)
	}
	none(e.out, len(rs), "reports")
	return nil
}

var tokensGroup = group{name: "tokens", summary: "Manages the bearer tokens handed out by KeyPackage discovery: they are MACed, so the store keeps only the secrets that sign them and the revocation list.", verbs: []verb{
	{Help: usage.Help{Name: "tokens list", Summary: "Lists the signing secrets, the shared token and the revocation list (issued tokens are not stored; the server logs the id of a token over its claim limit).",
		Example: "tokens list -data ./data"},
		setup: noFlags(tokensList)},
	{Help: usage.Help{Name: "tokens revoke", Args: "[ID | TOKEN]", Summary: "Revokes a discovery token by id or in full, or with -user every token issued for a user until now: requesters holding one must discover again.",
		Example: "tokens revoke -data ./data 4816930118422137"},
		max: 1, check: tokenArg, setup: tokensRevoke},
	{Help: usage.Help{Name: "tokens rotate", Summary: "Makes a new secret sign new discovery tokens; older ones keep verifying theirs unless -retire revokes every token issued so far.",
		Example: "tokens rotate -data ./data -retire"},
		setup: tokensRotate},
}}

// tokenArg accepts a token id or a whole token.
func tokenArg(a []string) error {
	if len(a) == 0 || strings.HasPrefix(a[0], "mbt_") {
		return nil
	}
	if id, err := strconv.ParseInt(a[0], 10, 64); err != nil || id <= 0 {
		return fmt.Errorf("token id %q is not a number", a[0])
	}
	return nil
}

func tokensList(ctx context.Context, e env, _ []string) error {
	o, err := e.offline()
	if err != nil {
		return err
	}
	l, err := o.Discovery.Tokens(ctx)
	if err != nil {
		return err
	}
	for i, s := range l.Secrets {
		state := "verifies its tokens"
		switch {
		case s.Retired():
			state = "retired " + s.RetiredAt.Format(time.RFC3339)
		case i == 0:
			state = "signs new tokens"
		}
		fmt.Fprintf(e.out, "secret %d\tcreated %s\t%s\n", s.ID, s.CreatedAt.Format(time.RFC3339), state)
	}
	if t := l.Shared; t != nil {
		fmt.Fprintf(e.out, "shared token %d\tissued %s\texpires %s\n", t.ID, t.IssuedAt.Format(time.RFC3339), timeOrNever(t.ExpiresAt))
	}
	for _, r := range l.Revocations.Tokens {
		fmt.Fprintf(e.out, "revoked token %d\tat %s\tlisted until %s\n", r.TokenID, r.RevokedAt.Format(time.RFC3339), timeOrNever(r.Until))
	}
	for _, c := range l.Revocations.Cutoffs {
		who := "every user (and the shared token)"
		if c.UserID != 0 {
			who = fmt.Sprintf("user %q (id %d)", c.UserName, c.UserID)
		}
		fmt.Fprintf(e.out, "revoked tokens of %s issued before %s\n", who, c.Before.Format(time.RFC3339))
	}
	if l.Empty() {
		none(e.out, 0, "tokens")
	}
	return nil
}

func timeOrNever(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Format(time.RFC3339)
}

func tokensRevoke(fs *flag.FlagSet) action {
	user := fs.String("user", "", "revoke every token issued for this user (name) until now, instead of one token")
	return func(ctx context.Context, e env, a []string) error {
		if (*user == "") == (len(a) == 0) {
			return errors.New("give a token id or token, or -user NAME (not both)")
		}
		o, err := e.offline()
		if err != nil {
			return err
		}
		disc := o.Discovery
		switch {
		case *user != "":
			c, err := disc.RevokeUserTokens(ctx, *user)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.out, "revoked every token of %s issued before %s: requesters must discover again\n", *user, c.Before.Format(time.RFC3339))
			return nil
		case strings.HasPrefix(a[0], "mbt_"):
			r, err := disc.RevokeTokenString(ctx, a[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(e.out, "revoked token %d: requesters holding it must discover again\n", r.TokenID)
			return nil
		}
		id, _ := strconv.ParseInt(a[0], 10, 64)
		if _, err := disc.RevokeToken(ctx, id); err != nil {
			return err
		}
		fmt.Fprintf(e.out, "revoked token %d: requesters holding it must discover again\n", id)
		return nil
	}
}

func tokensRotate(fs *flag.FlagSet) action {
	retire := fs.Bool("retire", false, "retire the older secrets: every token issued so far stops working")
	return func(ctx context.Context, e env, _ []string) error {
		o, err := e.offline()
		if err != nil {
			return err
		}
		s, err := o.Discovery.RotateSecret(ctx, *retire)
		if err != nil {
			return err
		}
		msg := "older secrets keep verifying their tokens"
		if *retire {
			msg = "every token issued before is revoked: requesters must discover again"
		}
		fmt.Fprintf(e.out, "secret %d signs new tokens; %s (a running server applies it within seconds)\n", s.ID, msg)
		return nil
	}
}
