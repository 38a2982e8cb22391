package mls

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
)

// tsGroupFiles are the ts-mls group fixtures.
var tsGroupFiles = []string{"create-2.json", "grow-100.json", "external-join.json", "gce.json",
	"gce-unsupported.json", "fork.json", "private-3.json", "suites.json"}

// tsBinaryKeys maps the keys of the ts-mls fixtures that hold TLS-encoded
// values to their type.
var tsBinaryKeys = map[string]func() roundTripper{
	"message":              func() roundTripper { return new(MLSMessage) },
	"key_package":          func() roundTripper { return new(MLSMessage) },
	"key_package_bare":     func() roundTripper { return new(KeyPackage) },
	"group_info":           func() roundTripper { return new(MLSMessage) },
	"group_info_with_tree": func() roundTripper { return new(MLSMessage) },
	"ratchet_tree":         func() roundTripper { return new(RatchetTree) },
	"group_context":        func() roundTripper { return new(GroupContext) },
}

// walkTS calls f for every string under one of tsBinaryKeys in v.
func walkTS(v any, path string, f func(key, path, value string)) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && tsBinaryKeys[k] != nil {
				f(k, path+"."+k, s)
				continue
			}
			walkTS(e, path+"."+k, f)
		}
	case []any:
		for i, e := range x {
			walkTS(e, fmt.Sprintf("%s[%d]", path, i), f)
		}
	}
}

// TestTSMLSRoundTrip decodes and re-encodes every TLS-encoded value of the
// ts-mls fixtures: messages of every kind, GroupInfos with and without the
// tree, ratchet trees, GroupContexts, KeyPackages.
func TestTSMLSRoundTrip(t *testing.T) {
	counts := map[string]int{}
	for _, file := range append(tsGroupFiles, "keypackages.json") {
		var doc any
		loadTSMLS(t, file, &doc)
		walkTS(doc, file, func(key, path, value string) {
			data, err := hex.DecodeString(value)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			v := tsBinaryKeys[key]()
			if err := v.Unmarshal(data); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			re, err := v.Marshal()
			if err != nil || !bytes.Equal(re, data) {
				t.Fatalf("%s: does not round-trip (%v)", path, err)
			}
			if m, ok := v.(*MLSMessage); ok {
				counts[m.WireFormat.String()]++
			} else {
				counts[key]++
			}
		})
	}
	t.Logf("ts-mls values round-tripped: %v", counts)
	for _, k := range []string{"mls_public_message", "mls_private_message", "mls_welcome", "mls_group_info",
		"mls_key_package", "ratchet_tree", "group_context", "key_package_bare"} {
		if counts[k] == 0 {
			t.Errorf("no %s in the fixtures", k)
		}
	}
}

// tsEpochState is the part of a ts-mls EpochState these tests use.
type tsEpochState struct {
	Epoch        uint64   `json:"epoch"`
	GroupContext hexBytes `json:"group_context"`
	RatchetTree  hexBytes `json:"ratchet_tree"`
}

// tsStep is the part of a ts-mls Step these tests use.
type tsStep struct {
	Kind   string `json:"kind"`
	Sender struct {
		SenderType string `json:"sender_type"`
		LeafIndex  uint32 `json:"leaf_index"`
	} `json:"sender"`
	Epoch       uint64   `json:"epoch"`
	WireFormat  string   `json:"wire_format"`
	ContentType string   `json:"content_type"`
	Message     hexBytes `json:"message"`
	ProposalRef hexBytes `json:"proposal_ref"`
	Proposals   []struct {
		By           string   `json:"by"`
		ProposalType string   `json:"proposal_type"`
		ProposalRef  hexBytes `json:"proposal_ref"`
	} `json:"proposals"`
	HasPath bool `json:"has_path"`
	Welcome *struct {
		Message     hexBytes `json:"message"`
		CipherSuite uint16   `json:"cipher_suite"`
		NewMembers  []struct {
			KeyPackageRef hexBytes `json:"key_package_ref"`
			KeyPackage    hexBytes `json:"key_package"`
		} `json:"new_members"`
	} `json:"welcome"`
	After *tsEpochState `json:"after"`
}

type tsGroup struct {
	CipherSuite CipherSuite  `json:"cipher_suite"`
	Initial     tsEpochState `json:"initial"`
	Steps       []tsStep     `json:"steps"`
}

// tsStats counts what checkTSGroup verified.
type tsStats struct {
	signatures, proposalRefs, welcomes, commits int
}

// TestTSMLSGroups checks, on every trunk step of the ts-mls groups, what a
// Delivery Service computes without the group's secrets: the sender type
// and content type on the wire, ProposalRefs of proposals and of commits'
// references, the presence of the UpdatePath, the Welcome's suite and
// KeyPackageRefs (and the KeyPackages they name), and the FramedContentTBS
// signature of every PublicMessage whose epoch state has a ratchet tree.
func TestTSMLSGroups(t *testing.T) {
	var total tsStats
	for _, file := range tsGroupFiles {
		var groups []tsGroup
		if file == "suites.json" {
			var f struct {
				Suites []struct {
					Group tsGroup `json:"group"`
				} `json:"suites"`
			}
			loadTSMLS(t, file, &f)
			for _, s := range f.Suites {
				groups = append(groups, s.Group)
			}
		} else {
			var g tsGroup
			loadTSMLS(t, file, &g)
			groups = append(groups, g)
		}
		for gi, g := range groups {
			t.Run(fmt.Sprintf("%s/%d/%s", strings.TrimSuffix(file, ".json"), gi, g.CipherSuite), func(t *testing.T) {
				st := checkTSGroup(t, &g)
				total.signatures += st.signatures
				total.proposalRefs += st.proposalRefs
				total.welcomes += st.welcomes
				total.commits += st.commits
			})
		}
	}
	t.Logf("ts-mls: %d commits, %d PublicMessage signatures verified, %d ProposalRefs, %d Welcomes",
		total.commits, total.signatures, total.proposalRefs, total.welcomes)
	if total.signatures == 0 || total.proposalRefs == 0 || total.welcomes == 0 {
		t.Fatal("nothing checked")
	}
}

func checkTSGroup(t *testing.T, g *tsGroup) tsStats {
	s, err := g.CipherSuite.Suite()
	if err != nil {
		t.Fatal(err)
	}
	var st tsStats
	state := g.Initial
	for i, step := range g.Steps {
		m, err := DecodeMLSMessage(step.Message)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if m.WireFormat.String() != step.WireFormat {
			t.Fatalf("step %d: wire format %s, fixture %s", i, m.WireFormat, step.WireFormat)
		}
		if pm := m.PublicMessage; pm != nil {
			checkTSPublicStep(t, s, i, &step, pm, &state, &st)
		}
		if step.Welcome != nil {
			checkTSWelcome(t, i, &step)
			st.welcomes++
		}
		if step.After != nil {
			state = *step.After
			st.commits++
		}
	}
	return st
}

func checkTSPublicStep(t *testing.T, s *Suite, i int, step *tsStep, pm *PublicMessage, state *tsEpochState, st *tsStats) {
	c := &pm.Content
	if c.Epoch != step.Epoch || c.ContentType.String() != step.ContentType ||
		c.Sender.SenderType.String() != step.Sender.SenderType {
		t.Fatalf("step %d: epoch %d %s from %s; fixture says %d %s from %s", i, c.Epoch, c.ContentType,
			c.Sender.SenderType, step.Epoch, step.ContentType, step.Sender.SenderType)
	}
	if c.Sender.SenderType == SenderTypeMember && c.Sender.LeafIndex != step.Sender.LeafIndex {
		t.Fatalf("step %d: sender leaf %d, fixture %d", i, c.Sender.LeafIndex, step.Sender.LeafIndex)
	}
	if c.Proposal != nil {
		ref, err := pm.AuthenticatedContent().ProposalRef(s)
		if err != nil || !bytes.Equal(ref, step.ProposalRef) {
			t.Fatalf("step %d: ProposalRef %x (%v), ts-mls %x", i, ref, err, []byte(step.ProposalRef))
		}
		st.proposalRefs++
	}
	if c.Commit != nil {
		if (c.Commit.Path != nil) != step.HasPath || len(c.Commit.Proposals) != len(step.Proposals) {
			t.Fatalf("step %d: path %v, %d proposals; fixture %v, %d", i, c.Commit.Path != nil,
				len(c.Commit.Proposals), step.HasPath, len(step.Proposals))
		}
		for j, p := range c.Commit.Proposals {
			want := step.Proposals[j]
			by := map[ProposalOrRefType]string{ProposalOrRefTypeProposal: "value", ProposalOrRefTypeReference: "reference"}[p.Type]
			if by != want.By || (p.Proposal != nil && p.Proposal.ProposalType.String() != want.ProposalType) ||
				(p.Reference != nil && !bytes.Equal(p.Reference, want.ProposalRef)) {
				t.Fatalf("step %d: proposal %d is %s, fixture %+v", i, j, p.Type, want)
			}
		}
	}
	// The signature: with the sender's leaf of the epoch's tree, or for an
	// external commit with the leaf of its UpdatePath.
	if len(state.RatchetTree) == 0 || state.Epoch != c.Epoch {
		return
	}
	var ctx GroupContext
	if err := ctx.Unmarshal(state.GroupContext); err != nil {
		t.Fatalf("step %d: group_context: %v", i, err)
	}
	var key []byte
	switch c.Sender.SenderType {
	case SenderTypeMember:
		tree, err := DecodeRatchetTree(state.RatchetTree)
		if err != nil {
			t.Fatalf("step %d: ratchet_tree: %v", i, err)
		}
		x := 2 * int(c.Sender.LeafIndex)
		if x >= len(tree) || tree[x] == nil || tree[x].Leaf == nil {
			t.Fatalf("step %d: sender leaf %d is blank", i, c.Sender.LeafIndex)
		}
		key = tree[x].Leaf.SignatureKey
	case SenderTypeNewMemberCommit:
		key = c.Commit.Path.LeafNode.SignatureKey
	default:
		return
	}
	if err := VerifyPublicMessage(s, pm, key, &ctx); err != nil {
		t.Fatalf("step %d (%s): %v", i, step.Kind, err)
	}
	st.signatures++
}

func checkTSWelcome(t *testing.T, i int, step *tsStep) {
	w := step.Welcome
	info, err := InspectWelcome(w.Message)
	if err != nil {
		t.Fatalf("step %d: welcome: %v", i, err)
	}
	if uint16(info.CipherSuite) != w.CipherSuite || len(info.KeyPackageRefs) != len(w.NewMembers) {
		t.Fatalf("step %d: welcome suite %s with %d refs; fixture %d, %d", i, info.CipherSuite,
			len(info.KeyPackageRefs), w.CipherSuite, len(w.NewMembers))
	}
	for j, nm := range w.NewMembers {
		if !bytes.Equal(info.KeyPackageRefs[j], nm.KeyPackageRef) {
			t.Fatalf("step %d: welcome ref %d differs", i, j)
		}
		kp, err := DecodeKeyPackageMessage(nm.KeyPackage)
		if err != nil {
			t.Fatalf("step %d: key_package %d: %v", i, j, err)
		}
		if ref, err := kp.Ref(); err != nil || !bytes.Equal(ref, nm.KeyPackageRef) {
			t.Fatalf("step %d: KeyPackageRef %x (%v), fixture %x", i, ref, err, []byte(nm.KeyPackageRef))
		}
	}
}
