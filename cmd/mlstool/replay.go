package mlstool

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mimids/mimids/cmd/internal/usage"
	"github.com/mimids/mimids/mls"
)

var replayHelp = usage.Help{Name: "mls replay", Args: "[FILE ... | -]",
	Summary: "Follows a group's public state from a GroupInfo through PublicMessage proposals and commits, as a Delivery Service does.",
	Example: "mls replay -group-info @groupinfo.hex commits.hex",
	Details: `It checks signatures, proposal lists, the tree and its parent hashes (RFC 9420 §12).

Input: MLSMessages in hex, one per line, from the FILEs (read in order) or
from stdin ("-" or no FILE). Blank lines and lines starting with # are
skipped. Without -group-info the first message must be a GroupInfo.
PrivateMessages are reported (kind private_message) and skipped: the tool
cannot read them. A GroupInfo later in the stream restarts from that
GroupInfo (give the new epoch's GroupInfo after a PrivateMessage commit);
when it has no ratchet_tree extension, the current tree is used.

Output: one JSON object per line: after the GroupInfo and after each message,
the step number, what it was, the epoch, tree_hash and the members (leaf
index and identity in hex, with identity_text when printable); commits add
who was added and removed. A failure prints the error to stderr and exits 1.`,
}

// mlsReplayMember is one member in the output.
type mlsReplayMember struct {
	LeafIndex     uint32 `json:"leaf_index"`
	Identity      string `json:"identity"`
	IdentityText  string `json:"identity_text,omitempty"`
	KeyPackageRef string `json:"key_package_ref,omitempty"`
}

// mlsReplayStep is the JSON line printed after each input.
type mlsReplayStep struct {
	Step              int               `json:"step"`
	Kind              string            `json:"kind"` // group_info, proposal, commit, private_message
	Sender            string            `json:"sender,omitempty"`
	ProposalType      string            `json:"proposal_type,omitempty"`
	ProposalRef       string            `json:"proposal_ref,omitempty"`
	External          bool              `json:"external,omitempty"`
	HasPath           *bool             `json:"has_path,omitempty"`
	Added             []mlsReplayMember `json:"added,omitempty"`
	Removed           []mlsReplayMember `json:"removed,omitempty"`
	ExtensionsChanged bool              `json:"extensions_changed,omitempty"`
	Epoch             uint64            `json:"epoch"`
	TreeHash          string            `json:"tree_hash"`
	Members           []mlsReplayMember `json:"members"`
}

// mlsReplayer holds the state of one replay.
type mlsReplayer struct {
	opts  mls.Options
	tree  mls.RatchetTree // for the first GroupInfo, from -tree
	group *mls.PublicGroup
	out   *json.Encoder
}

// mlsReplay implements `mimids mls replay`.
func mlsReplay(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mls replay", flag.ContinueOnError)
	giFlag := fs.String("group-info", "", "the starting GroupInfo (MLSMessage or bare), as `HEX` or @FILE (hex or binary)")
	treeFlag := fs.String("tree", "", "the ratchet tree, as `HEX` or @FILE, when the GroupInfo has no ratchet_tree extension")
	strictPath := fs.Bool("strict-gce-path", false, "reject GroupContextExtensions commits without an UpdatePath (RFC 9420 §12.4; ts-mls omits it)")
	strictExt := fs.Bool("strict-extensions", false, "require every member to support every GroupContext extension (RFC 9420 §13.4)")
	nowFlag := fs.String("now", "", "check the lifetimes of KeyPackages in Adds at this `time` (RFC 3339 or Unix seconds); unchecked by default")
	if err := usage.Parse(fs, replayHelp, args, stdout, stderr); err != nil {
		return usage.Code(err)
	}
	r := &mlsReplayer{out: json.NewEncoder(stdout)}
	r.opts.StrictGroupContextExtensionsPath = *strictPath
	r.opts.StrictExtensionSupport = *strictExt
	if *nowFlag != "" {
		t, err := mlsParseTime(*nowFlag)
		if err != nil {
			fmt.Fprintf(stderr, "mimids mls replay: -now: %v\n", err)
			return 2
		}
		r.opts.Now = func() time.Time { return t }
	}
	if err := r.start(*giFlag, *treeFlag); err != nil {
		fmt.Fprintf(stderr, "mimids mls replay: %v\n", err)
		return 1
	}
	inputs := fs.Args()
	if len(inputs) == 0 {
		inputs = []string{"-"}
	}
	step := 0
	for _, in := range inputs {
		if err := r.replayInput(in, stdin, &step); err != nil {
			fmt.Fprintf(stderr, "mimids mls replay: %v\n", err)
			return 1
		}
	}
	if r.group == nil {
		fmt.Fprintln(stderr, "mimids mls replay: no GroupInfo given")
		return 1
	}
	return 0
}

// start loads -tree and, if given, -group-info.
func (r *mlsReplayer) start(gi, tree string) error {
	if tree != "" {
		b, err := mlsReplayValue(tree)
		if err != nil {
			return fmt.Errorf("-tree: %w", err)
		}
		if r.tree, err = mls.DecodeRatchetTree(b); err != nil {
			return fmt.Errorf("-tree: %w", err)
		}
	}
	if gi == "" {
		return nil
	}
	b, err := mlsReplayValue(gi)
	if err != nil {
		return fmt.Errorf("-group-info: %w", err)
	}
	g, err := mlsReplayGroupInfo(b)
	if err != nil {
		return fmt.Errorf("-group-info: %w", err)
	}
	return r.join(0, g)
}

// mlsReplayValue reads a flag value: hex, or @FILE holding hex or binary.
func mlsReplayValue(v string) ([]byte, error) {
	if !strings.HasPrefix(v, "@") {
		return mlsHex([]byte(v))
	}
	raw, err := mlsReadAll(os.Open(v[1:]))
	if err != nil {
		return nil, err
	}
	if len(raw) > mlsMaxInput {
		return nil, fmt.Errorf("file larger than %d bytes", mlsMaxInput)
	}
	if b, err := mlsHex(raw); err == nil {
		return b, nil
	}
	return raw, nil
}

// mlsReplayGroupInfo decodes a GroupInfo given as an MLSMessage or bare.
func mlsReplayGroupInfo(b []byte) (*mls.GroupInfo, error) {
	if m, err := mls.DecodeMLSMessage(b); err == nil {
		if m.GroupInfo == nil {
			return nil, fmt.Errorf("%s message, not a GroupInfo", m.WireFormat)
		}
		return m.GroupInfo, nil
	}
	return mls.DecodeGroupInfo(b)
}

// replayInput applies every message line of one input.
func (r *mlsReplayer) replayInput(name string, stdin io.Reader, step *int) error {
	src := stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		src = f
	}
	sc := bufio.NewScanner(src)
	sc.Buffer(make([]byte, 0, 64<<10), 2*mlsMaxInput+1)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		*step++
		b, err := mlsHex([]byte(text))
		if err != nil {
			return fmt.Errorf("%s line %d: not hex: %w", name, line, err)
		}
		if err := r.apply(*step, b); err != nil {
			return fmt.Errorf("step %d (%s line %d): %w", *step, name, line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// apply handles one MLSMessage.
func (r *mlsReplayer) apply(step int, b []byte) error {
	m, err := mls.DecodeMLSMessage(b)
	if err != nil {
		return err
	}
	if m.GroupInfo != nil {
		return r.join(step, m.GroupInfo)
	}
	if r.group == nil {
		return errors.New("the first message must be a GroupInfo (or give -group-info)")
	}
	if m.PrivateMessage != nil { // unreadable without the group's secrets
		return r.print(mlsReplayStep{Step: step, Kind: "private_message"})
	}
	next, pr, cr, err := r.group.ProcessMessage(m)
	if err != nil {
		return err
	}
	switch {
	case pr != nil:
		return r.print(mlsReplayStep{Step: step, Kind: "proposal", Sender: mlsReplaySender(pr.Sender),
			ProposalType: pr.Proposal.ProposalType.String(), ProposalRef: hex.EncodeToString(pr.Ref)})
	case cr != nil:
		r.group = next
		hasPath := cr.HasPath
		return r.print(mlsReplayStep{Step: step, Kind: "commit", Sender: mlsReplaySender(m.PublicMessage.Content.Sender),
			External: cr.External, HasPath: &hasPath, Added: mlsReplayMembers(cr.Added),
			Removed: mlsReplayMembers(cr.Removed), ExtensionsChanged: cr.ExtensionsChanged})
	}
	return errors.New("no result")
}

// join starts (or restarts) from a GroupInfo.
func (r *mlsReplayer) join(step int, gi *mls.GroupInfo) error {
	tree := r.tree
	if r.group != nil {
		tree = r.group.RatchetTree()
	}
	if gi.Extensions.Has(mls.ExtensionTypeRatchetTree) {
		tree = nil // the GroupInfo's own tree wins
	}
	g, err := mls.NewPublicGroup(gi, tree, r.opts)
	if err != nil {
		return err
	}
	r.group = g
	return r.print(mlsReplayStep{Step: step, Kind: "group_info"})
}

// print completes s with the group's state and writes it as one JSON line.
func (r *mlsReplayer) print(s mlsReplayStep) error {
	s.Epoch = r.group.Epoch()
	s.TreeHash = hex.EncodeToString(r.group.TreeHash())
	s.Members = mlsReplayMembers(r.group.Members())
	return r.out.Encode(s)
}

func mlsReplaySender(s mls.Sender) string {
	switch s.SenderType {
	case mls.SenderTypeMember:
		return fmt.Sprintf("member %d", s.LeafIndex)
	case mls.SenderTypeExternal:
		return fmt.Sprintf("external %d", s.SenderIndex)
	}
	return s.SenderType.String()
}

func mlsReplayMembers(ms []mls.Member) []mlsReplayMember {
	out := make([]mlsReplayMember, 0, len(ms))
	for _, m := range ms {
		rm := mlsReplayMember{LeafIndex: m.LeafIndex, Identity: hex.EncodeToString(m.Identity)}
		if s := string(m.Identity); utf8.ValidString(s) && strings.IndexFunc(s, mlsNotPrintable) < 0 {
			rm.IdentityText = s
		}
		if m.KeyPackageRef != nil {
			rm.KeyPackageRef = hex.EncodeToString(m.KeyPackageRef)
		}
		out = append(out, rm)
	}
	return out
}
