package main

import (
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/mimids/mimids/cmd/internal/usage"
	"github.com/mimids/mimids/federation"
	"github.com/mimids/mimids/federation/fedcert"
)

var peerGroup = group{name: "peer", summary: "Manages the allow-list of peer providers that federation links accept and dial.", verbs: []verb{
	{Help: usage.Help{Name: "peer add", Args: "DOMAIN",
		Summary: "Puts a peer provider on the allow-list (or replaces its URL and trust): where its federation listener is, and the CA bundle or the certificate pin that proves its domain.",
		Example: "peer add -data ./data -url wss://b.example:8443 -ca ./fed/ca.pem b.example",
		Details: "Exactly one of -ca and -pin. A running server picks the change up within federation.peer_refresh (2s)."},
		min: 1, max: 1, domain: true, setup: peerAdd},
	{Help: usage.Help{Name: "peer list", Summary: "Lists the peers: URL, trust, link state as the running server recorded it, queue depth, lag and last error.",
		Example: "peer list -data ./data"},
		domain: true, setup: noFlags(peerList)},
	{Help: usage.Help{Name: "peer remove", Args: "DOMAIN", Summary: "Removes a peer with its outbound queue; a running server closes its link (4021) within federation.peer_refresh.",
		Example: "peer remove -data ./data b.example"},
		min: 1, max: 1, domain: true, setup: noFlags(peerRemove)},
}}

func peerAdd(fs *flag.FlagSet) action {
	u := fs.String("url", "", "the peer's federation `URL`, wss://host:port")
	caFile := fs.String("ca", "", "PEM `file` of the CA certificates that prove the peer's domain")
	pin := fs.String("pin", "", "`SHA256` (hex) of the peer's certificate, instead of -ca")
	return func(ctx context.Context, e env, a []string) error {
		p := federation.Peer{Domain: a[0], URL: *u}
		switch {
		case (*caFile == "") == (*pin == ""):
			return fmt.Errorf("give exactly one of -ca FILE and -pin SHA256")
		case *caFile != "":
			b, err := os.ReadFile(*caFile)
			if err != nil {
				return err
			}
			p.CA = b
		default:
			b, err := federation.ParsePin(*pin)
			if err != nil {
				return err
			}
			p.Pin = b
		}
		got, err := federation.AddPeer(ctx, e.db, e.cfg.Domain, p)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.out, "peer %s at %s, proven by %s (a running server picks it up within %s)\n",
			got.Domain, got.URL, trustText(got), e.cfg.Federation.PeerRefresh.D())
		return nil
	}
}

// trustText says what proves a peer's domain.
func trustText(p federation.Peer) string {
	if p.Pin != nil {
		return fmt.Sprintf("pin %x", p.Pin)
	}
	cas, err := federation.ParseCA(p.CA)
	if err != nil {
		return "an unusable CA bundle"
	}
	names := make([]string, len(cas))
	for i, c := range cas {
		names[i] = c.Subject.CommonName
	}
	sum := sha256.Sum256(p.CA)
	return fmt.Sprintf("CA %s (bundle sha256 %x)", strings.Join(names, ", "), sum[:8])
}

func peerList(ctx context.Context, e env, _ []string) error {
	peers, err := e.db.Peers(ctx)
	if err != nil {
		return err
	}
	statuses, err := e.db.PeerStatuses(ctx)
	if err != nil {
		return err
	}
	queues, err := e.db.QueueStats(ctx)
	if err != nil {
		return err
	}
	byPeer := map[string]federation.PeerStatus{}
	for _, s := range statuses {
		byPeer[s.Domain] = s
	}
	queue := map[string]federation.QueueStats{}
	for _, q := range queues {
		queue[q.Peer] = q
	}
	now := time.Now()
	for _, p := range peers {
		fmt.Fprintf(e.out, "%s\t%s\t%s\t%s\t%s\n", p.Domain, p.URL, trustText(p), stateText(byPeer[p.Domain]), queueText(queue[p.Domain], now))
	}
	none(e.out, len(peers), "peers")
	return nil
}

// stateText is a peer's recorded link state: state, since, who dialled, the last
// error and when the server recorded it.
func stateText(s federation.PeerStatus) string {
	if s.State == "" {
		return "state unknown (no server has run with this peer)"
	}
	t := fmt.Sprintf("%s since %s", s.State, s.Since.Format(time.RFC3339))
	if s.Dialer != "" {
		t += " (dialled by " + s.Dialer + ")"
	}
	if s.Attempts > 0 {
		t += fmt.Sprintf(", %d failed dials", s.Attempts)
	}
	if s.LastError != "" {
		t += fmt.Sprintf(", last error at %s: %s", s.LastErrorAt.Format(time.RFC3339), s.LastError)
	}
	return t + ", recorded " + s.UpdatedAt.Format(time.RFC3339)
}

// queueText is a peer's queue depth and lag (the age of its oldest envelope).
func queueText(q federation.QueueStats, now time.Time) string {
	if q.Depth == 0 {
		return "queue 0, lag 0s"
	}
	return fmt.Sprintf("queue %d (%d bytes), lag %s", q.Depth, q.Bytes, now.Sub(q.Oldest).Round(time.Millisecond))
}

func peerRemove(ctx context.Context, e env, a []string) error {
	depth := 0
	if qs, err := e.db.QueueStats(ctx); err == nil {
		for _, q := range qs {
			if q.Peer == a[0] {
				depth = q.Depth
			}
		}
	}
	ok, err := e.db.RemovePeer(ctx, a[0])
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: %s", federation.ErrUnknownPeer, a[0])
	}
	fmt.Fprintf(e.out, "removed peer %s and its queue of %d envelopes\n", a[0], depth)
	return nil
}

// certVerb is a verb of `mimids cert`: it works on files only, no store.
type certVerb struct {
	usage.Help
	min, max int
	setup    func(fs *flag.FlagSet) func(args []string, out io.Writer) error
}

var certVerbs = []certVerb{
	{Help: usage.Help{Name: "cert ca", Summary: "Makes the CA of a test federation: DIR/ca.pem (give it to every peer's -ca) and DIR/ca-key.pem.",
		Example: "cert ca -out ./fed"}, setup: certCA},
	{Help: usage.Help{Name: "cert issue", Args: "DOMAIN",
		Summary: "Issues a certificate for DOMAIN (its DNS SAN), for federation.cert_file and key_file: DIR/DOMAIN.pem and DIR/DOMAIN-key.pem; prints its pin.",
		Example: "cert issue -ca ./fed -out ./fed b.example",
		Details: "With -self-signed instead of -ca, the certificate is its own issuer: peers pin it (peer add -pin)."},
		min: 1, max: 1, setup: certIssue},
}

func keyFlags(fs *flag.FlagSet) (*string, *int) {
	return fs.String("key", "p256", "key `type`: p256 (ECDSA) or ed25519"), fs.Int("days", 0, "validity in `days` (default 365; a CA 3650)")
}

func (o certOpts) options() fedcert.Options {
	var opts fedcert.Options
	opts.Key = fedcert.KeyType(*o.key)
	if *o.days > 0 {
		opts.NotBefore = time.Now().Add(-time.Hour).Truncate(time.Second)
		opts.NotAfter = opts.NotBefore.Add(time.Duration(*o.days) * 24 * time.Hour)
	}
	return opts
}

type certOpts struct {
	key  *string
	days *int
}

func certCA(fs *flag.FlagSet) func([]string, io.Writer) error {
	out := fs.String("out", "", "`directory` to write ca.pem and ca-key.pem into (required)")
	name := fs.String("name", "mimids test federation CA", "the CA's common `name`")
	key, days := keyFlags(fs)
	return func(_ []string, w io.Writer) error {
		if *out == "" {
			return fmt.Errorf("-out DIR is required")
		}
		ca, err := fedcert.NewCA(*name, certOpts{key, days}.options())
		if err != nil {
			return err
		}
		if err := ca.WriteCA(*out); err != nil {
			return err
		}
		fmt.Fprintf(w, "CA %q\n  certificate: %s/%s\n  key:         %s/%s (keep it private)\n", *name, *out, fedcert.CACertFile, *out, fedcert.CAKeyFile)
		return nil
	}
}

func certIssue(fs *flag.FlagSet) func([]string, io.Writer) error {
	caDir := fs.String("ca", "", "`directory` of the CA (from cert ca)")
	out := fs.String("out", "", "`directory` to write DOMAIN.pem and DOMAIN-key.pem into (required)")
	self := fs.Bool("self-signed", false, "make a self-signed certificate (to be pinned) instead of using -ca")
	key, days := keyFlags(fs)
	return func(a []string, w io.Writer) error {
		domain := strings.ToLower(a[0])
		if *out == "" || (*caDir == "") == !*self {
			return fmt.Errorf("-out DIR and exactly one of -ca DIR and -self-signed are required")
		}
		opts := certOpts{key, days}.options()
		var iss fedcert.Issued
		var err error
		if *self {
			iss, err = fedcert.SelfSigned(domain, opts)
		} else {
			var ca *fedcert.CA
			if ca, err = fedcert.LoadCA(*caDir); err == nil {
				iss, err = ca.Issue(domain, opts)
			}
		}
		if err != nil {
			return err
		}
		certPath, keyPath, err := iss.Write(*out, domain)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "certificate for %s\n  certificate: %s\n  key:         %s (keep it private)\n  pin:         %s\n", domain, certPath, keyPath, iss.Pin())
		return nil
	}
}

// certCommand runs `mimids cert VERB`.
func certCommand(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	vs := make([]usage.Verb, len(certVerbs))
	for i, v := range certVerbs {
		vs[i] = usage.Verb{Name: strings.TrimPrefix(v.Name, "cert "), Summary: listLine(v.Summary)}
	}
	code, ok := usage.Group("cert", "Makes the CA and certificates of a test federation (files only; no store).", vs, args, stdout, stderr)
	if !ok {
		return code
	}
	for _, v := range certVerbs {
		if strings.TrimPrefix(v.Name, "cert ") != args[0] {
			continue
		}
		fs := flag.NewFlagSet(v.Name, flag.ContinueOnError)
		act := v.setup(fs)
		if err := usage.Parse(fs, v.Help, args[1:], stdout, stderr); err != nil {
			return usage.Code(err)
		}
		if err := usage.Args(fs, v.Help, v.min, v.max, stderr); err != nil {
			return usage.Code(err)
		}
		if err := act(fs.Args(), stdout); err != nil {
			fmt.Fprintf(stderr, "mimids %s: %v\n", v.Name, err)
			return 1
		}
		return 0
	}
	return 2 // unreachable: usage.Group found the verb
}
