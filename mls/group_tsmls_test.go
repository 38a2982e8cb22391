package mls

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Fixtures written by mls/testdata/gen (ts-mls 1.6.4); see the README there.

type tsmlsMember struct {
	LeafIndex uint32 `json:"leaf_index"`
	Identity  string `json:"identity"`
}

type tsmlsState struct {
	Epoch             uint64        `json:"epoch"`
	TreeHash          hexBytes      `json:"tree_hash"`
	GroupContext      hexBytes      `json:"group_context"`
	Members           []tsmlsMember `json:"members"`
	GroupInfo         hexBytes      `json:"group_info"`
	GroupInfoWithTree hexBytes      `json:"group_info_with_tree"`
	RatchetTree       hexBytes      `json:"ratchet_tree"`
}

type tsmlsStep struct {
	Kind         string        `json:"kind"`
	Description  string        `json:"description"`
	Epoch        uint64        `json:"epoch"`
	WireFormat   string        `json:"wire_format"`
	Message      hexBytes      `json:"message"`
	ProposalRef  hexBytes      `json:"proposal_ref"`
	HasPath      bool          `json:"has_path"`
	Added        []tsmlsMember `json:"added"`
	Removed      []tsmlsMember `json:"removed"`
	RFCViolation string        `json:"rfc_violation"`
	After        *tsmlsState   `json:"after"`
	Welcome      *struct {
		Message    hexBytes `json:"message"`
		NewMembers []struct {
			KeyPackageRef hexBytes `json:"key_package_ref"`
			LeafIndex     uint32   `json:"leaf_index"`
		} `json:"new_members"`
	} `json:"welcome"`
}

type tsmlsGroup struct {
	Description string      `json:"description"`
	CipherSuite CipherSuite `json:"cipher_suite"`
	GroupID     hexBytes    `json:"group_id"`
	Initial     tsmlsState  `json:"initial"`
	Steps       []tsmlsStep `json:"steps"`
	Branches    []struct {
		Name           string      `json:"name"`
		Parent         string      `json:"parent"`
		ForkAfterSteps int         `json:"fork_after_steps"`
		ForkEpoch      uint64      `json:"fork_epoch"`
		Steps          []tsmlsStep `json:"steps"`
	} `json:"branches"`
}

func readTSMLS(t testing.TB, name string, v any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "tsmls", name))
	if err != nil {
		t.Fatalf("ts-mls fixture: %v", err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// groupInfoFrom decodes an MLSMessage(GroupInfo) of a fixture.
func groupInfoFrom(t testing.TB, b []byte) *GroupInfo {
	t.Helper()
	m, err := DecodeMLSMessage(b)
	if err != nil {
		t.Fatalf("group info: %v", err)
	}
	if m.GroupInfo == nil {
		t.Fatalf("group info: wire format %s", m.WireFormat)
	}
	return m.GroupInfo
}

// newGroupFromState builds a PublicGroup from a fixture state, both ways:
// with the tree given separately and from the ratchet_tree extension, and
// checks they agree.
func newGroupFromState(t testing.TB, st *tsmlsState, opts Options) *PublicGroup {
	t.Helper()
	var g *PublicGroup
	if len(st.RatchetTree) > 0 {
		rt, err := DecodeRatchetTree(st.RatchetTree)
		if err != nil {
			t.Fatalf("ratchet_tree: %v", err)
		}
		if g, err = NewPublicGroup(groupInfoFrom(t, st.GroupInfo), rt, opts); err != nil {
			t.Fatalf("NewPublicGroup (separate tree): %v", err)
		}
	}
	if len(st.GroupInfoWithTree) > 0 {
		g2, err := NewPublicGroup(groupInfoFrom(t, st.GroupInfoWithTree), nil, opts)
		if err != nil {
			t.Fatalf("NewPublicGroup (tree in GroupInfo): %v", err)
		}
		if g != nil && !bytes.Equal(g.InterimTranscriptHash(), g2.InterimTranscriptHash()) {
			t.Fatal("the two GroupInfos give different interim transcript hashes")
		}
		if g == nil {
			g = g2
		}
	}
	if g == nil {
		t.Fatal("state has no ratchet tree")
	}
	checkState(t, g, st)
	return g
}

// checkState compares g with a fixture state: epoch, tree hash, the whole
// GroupContext (so the confirmed transcript hash too), members.
func checkState(t testing.TB, g *PublicGroup, st *tsmlsState) {
	t.Helper()
	if g.Epoch() != st.Epoch {
		t.Fatalf("epoch = %d, want %d", g.Epoch(), st.Epoch)
	}
	if !bytes.Equal(g.TreeHash(), st.TreeHash) {
		t.Fatalf("epoch %d: tree hash = %x, want %x", st.Epoch, g.TreeHash(), st.TreeHash)
	}
	gc := g.GroupContext()
	enc, err := gc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.GroupContext) > 0 && !bytes.Equal(enc, st.GroupContext) {
		t.Fatalf("epoch %d: group context = %x, want %x", st.Epoch, enc, st.GroupContext)
	}
	ms := g.Members()
	if len(ms) != len(st.Members) {
		t.Fatalf("epoch %d: %d members, want %d", st.Epoch, len(ms), len(st.Members))
	}
	for i, m := range ms {
		if m.LeafIndex != st.Members[i].LeafIndex || string(m.Identity) != st.Members[i].Identity {
			t.Fatalf("epoch %d: member %d = %d %s, want %d %s", st.Epoch, i, m.LeafIndex, m.Identity,
				st.Members[i].LeafIndex, st.Members[i].Identity)
		}
	}
}

func checkMembers(t testing.TB, what string, got []Member, want []tsmlsMember) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d members, want %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i].LeafIndex != want[i].LeafIndex || string(got[i].Identity) != want[i].Identity {
			t.Fatalf("%s %d = %d %s, want %d %s", what, i, got[i].LeafIndex, got[i].Identity, want[i].LeafIndex, want[i].Identity)
		}
	}
}

// replaySteps applies the fixture steps to g and returns the state after
// each step (clones, so forks can start from any of them).
func replaySteps(t *testing.T, g *PublicGroup, steps []tsmlsStep, opts Options) []*PublicGroup {
	t.Helper()
	states := make([]*PublicGroup, 0, len(steps))
	for i, st := range steps {
		g = replayStep(t, g, i, &st, opts)
		states = append(states, g.Clone())
	}
	return states
}

func replayStep(t *testing.T, g *PublicGroup, i int, st *tsmlsStep, opts Options) *PublicGroup {
	t.Helper()
	m, err := DecodeMLSMessage(st.Message)
	if err != nil {
		t.Fatalf("step %d (%s): decode: %v", i, st.Description, err)
	}
	if st.WireFormat != "mls_public_message" {
		// A DS cannot read PrivateMessages: it must say so, and for a
		// private commit take the next state from the commit's GroupInfo.
		if _, _, _, err := g.ProcessMessage(m); !errors.Is(err, ErrNotHandshake) {
			t.Fatalf("step %d: private message: %v, want ErrNotHandshake", i, err)
		}
		if st.After != nil {
			return newGroupFromState(t, st.After, opts)
		}
		return g
	}
	next, pr, cr, err := g.ProcessMessage(m)
	if err != nil {
		t.Fatalf("step %d (%s): %v", i, st.Description, err)
	}
	switch {
	case pr != nil:
		if len(st.ProposalRef) > 0 && !bytes.Equal(pr.Ref, st.ProposalRef) {
			t.Fatalf("step %d: proposal ref = %x, want %x", i, pr.Ref, st.ProposalRef)
		}
		return g
	case cr != nil:
		checkState(t, next, st.After)
		checkMembers(t, fmt.Sprintf("step %d added", i), cr.Added, st.Added)
		checkMembers(t, fmt.Sprintf("step %d removed", i), cr.Removed, st.Removed)
		if cr.HasPath != st.HasPath {
			t.Fatalf("step %d: has_path = %v, want %v", i, cr.HasPath, st.HasPath)
		}
		checkWelcome(t, i, st, cr)
		// The GroupInfo the committer published for the new epoch gives the
		// same state as the commit, interim transcript hash included.
		fromGI := next
		if len(st.After.RatchetTree) > 0 || len(st.After.GroupInfoWithTree) > 0 {
			fromGI = newGroupFromState(t, st.After, opts)
		} else if fromGI, err = NewPublicGroup(groupInfoFrom(t, st.After.GroupInfo), next.RatchetTree(), opts); err != nil {
			t.Fatalf("step %d: GroupInfo with the computed tree: %v", i, err)
		}
		if !bytes.Equal(fromGI.InterimTranscriptHash(), next.InterimTranscriptHash()) {
			t.Fatalf("step %d: interim transcript hash differs from the GroupInfo's", i)
		}
		return next
	}
	t.Fatalf("step %d: no result", i)
	return nil
}

// checkWelcome checks what a hub checks before fanning out a Welcome: it is
// for exactly the KeyPackages the commit added, at the leaves it reports.
func checkWelcome(t *testing.T, i int, st *tsmlsStep, cr *CommitResult) {
	t.Helper()
	if st.Welcome == nil {
		return
	}
	wm, err := DecodeMLSMessage(st.Welcome.Message)
	if err != nil || wm.Welcome == nil {
		t.Fatalf("step %d: welcome: %v", i, err)
	}
	added := map[string]uint32{}
	for _, m := range cr.Added {
		added[string(m.KeyPackageRef)] = m.LeafIndex
	}
	refs := wm.Welcome.KeyPackageRefs()
	if len(refs) != len(added) || len(refs) != len(st.Welcome.NewMembers) {
		t.Fatalf("step %d: welcome for %d KeyPackages, commit added %d", i, len(refs), len(added))
	}
	for k, ref := range refs {
		leaf, ok := added[string(ref)]
		nm := st.Welcome.NewMembers[k]
		if !ok || !bytes.Equal(ref, nm.KeyPackageRef) || leaf != nm.LeafIndex {
			t.Fatalf("step %d: welcome entry %d (%x) not among the commit's Adds", i, k, ref)
		}
	}
}

func replayFixture(t *testing.T, f *tsmlsGroup, opts Options) map[string][]*PublicGroup {
	g := newGroupFromState(t, &f.Initial, opts)
	lines := map[string][]*PublicGroup{"trunk": replaySteps(t, g, f.Steps, opts)}
	for _, b := range f.Branches {
		t.Run("branch_"+b.Name, func(t *testing.T) {
			parent := lines[b.Parent]
			if b.ForkAfterSteps < 1 || b.ForkAfterSteps > len(parent) {
				t.Fatalf("branch %s forks after step %d of %d", b.Name, b.ForkAfterSteps, len(parent))
			}
			start := parent[b.ForkAfterSteps-1]
			if start.Epoch() != b.ForkEpoch {
				t.Fatalf("fork epoch = %d, want %d", start.Epoch(), b.ForkEpoch)
			}
			lines[b.Name] = replaySteps(t, start.Clone(), b.Steps, opts)
		})
	}
	return lines
}

func TestTSMLSReplay(t *testing.T) {
	files := []string{"create-2.json", "external-join.json", "fork.json", "gce.json",
		"gce-unsupported.json", "grow-100.json", "private-3.json"}
	for _, name := range files {
		t.Run(strings.TrimSuffix(name, ".json"), func(t *testing.T) {
			var f tsmlsGroup
			readTSMLS(t, name, &f)
			if len(f.Steps) == 0 {
				t.Fatal("no steps")
			}
			replayFixture(t, &f, Options{})
		})
	}
}

func TestTSMLSSuites(t *testing.T) {
	var f struct {
		Suites []struct {
			CipherSuite CipherSuite `json:"cipher_suite"`
			Group       tsmlsGroup  `json:"group"`
		} `json:"suites"`
	}
	readTSMLS(t, "suites.json", &f)
	seen := map[CipherSuite]bool{}
	for _, s := range f.Suites {
		t.Run(s.CipherSuite.String(), func(t *testing.T) {
			replayFixture(t, &s.Group, Options{})
			seen[s.CipherSuite] = true
		})
	}
	if len(seen) != 7 {
		t.Errorf("replayed %d suites, want 7", len(seen))
	}
}

// replayUntilViolation replays a fixture's trunk with opts and returns the
// error of the first step marked rfc_violation (failing if an earlier step
// fails or none is marked).
func replayUntilViolation(t *testing.T, name string, opts Options) error {
	t.Helper()
	var f tsmlsGroup
	readTSMLS(t, name, &f)
	g := newGroupFromState(t, &f.Initial, opts)
	for i := range f.Steps {
		st := &f.Steps[i]
		if st.RFCViolation == "" {
			g = replayStep(t, g, i, st, opts)
			continue
		}
		m, err := DecodeMLSMessage(st.Message)
		if err != nil {
			t.Fatal(err)
		}
		_, _, _, err = g.ProcessMessage(m)
		if err == nil {
			t.Fatalf("step %d (%s) accepted in strict mode", i, st.RFCViolation)
		}
		return err
	}
	t.Fatal("no step marked rfc_violation")
	return nil
}

func TestTSMLSStrictModes(t *testing.T) {
	tests := []struct {
		name string
		file string
		opts Options
		want error
	}{
		{"GCE without path, strict path", "gce.json", Options{StrictGroupContextExtensionsPath: true}, ErrPathRequired},
		{"GCE extension unsupported, strict support", "gce-unsupported.json", Options{StrictExtensionSupport: true}, ErrUnsupportedProposal},
		{"GCE extension unsupported, strict path", "gce-unsupported.json", Options{StrictGroupContextExtensionsPath: true}, ErrPathRequired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := replayUntilViolation(t, tc.file, tc.opts); !errors.Is(err, tc.want) {
				t.Fatalf("error = %v, want %v", err, tc.want)
			}
		})
	}
}
