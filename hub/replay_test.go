package hub_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/mimids/mimids/hub"
	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/protocol"
)

// replayer sends fixture steps and checks each answer: the counter the
// hub's log must give, or the refusal the partition's policy calls for.
type replayer struct {
	e        *env
	pols     map[string]*protocol.ModerationList // by partition key (hex)
	counters map[string]uint32                   // next counter by partition key (hex)
	refused  int
}

func newReplayer(e *env, g *tsGroup) *replayer {
	r := &replayer{e: e, pols: map[string]*protocol.ModerationList{}, counters: map[string]uint32{}}
	r.learn(&g.Initial)
	return r
}

func (r *replayer) learn(st *tsState) {
	var l *protocol.ModerationList
	for _, x := range st.Extensions {
		if x.Type == uint16(protocol.ModerationExtensionType) {
			l = new(protocol.ModerationList)
			if err := l.UnmarshalBinary(x.Data); err != nil {
				r.e.t.Fatalf("fixture moderation list: %v", err)
			}
		}
	}
	r.pols[hex.EncodeToString(st.PartitionKey)] = l
}

// expect returns the refusal a step must get, if any: application messages
// from local users banned or muted in the partition, commits adding a user
// banned in the partition.
func (r *replayer) expect(st *tsStep) error {
	l := r.pols[hex.EncodeToString(st.PartitionKey)]
	if l == nil {
		return nil
	}
	has := func(list []string, u string) bool {
		for _, x := range list {
			if x == u {
				return true
			}
		}
		return false
	}
	switch st.Kind {
	case "application":
		if !r.e.senderOf(st.Sender.Identity).Local {
			return nil
		}
		if has(l.Banned, st.Sender.Identity) {
			return hub.ErrBanned
		}
		if has(l.Muted, st.Sender.Identity) {
			return hub.ErrMuted
		}
	case "commit", "external_commit":
		for _, a := range st.Added {
			if has(l.Banned, a.Identity) {
				return hub.ErrBanned
			}
		}
	}
	return nil
}

func (r *replayer) run(t *testing.T, steps []tsStep, o sendOpts) {
	t.Helper()
	for i := range steps {
		r.step(t, i, &steps[i], o)
	}
}

func (r *replayer) step(t *testing.T, i int, st *tsStep, o sendOpts) {
	t.Helper()
	want := r.expect(st)
	c, err := r.e.sendStep(st, o)
	if want != nil {
		if !errors.Is(err, want) {
			t.Fatalf("step %d (%s): err %v, want %v", i, st.Description, err, want)
		}
		r.refused++
		return
	}
	if err != nil {
		t.Fatalf("step %d (%s): %v", i, st.Description, err)
	}
	key := hex.EncodeToString(st.PartitionKey)
	if c != r.counters[key] {
		t.Fatalf("step %d (%s): counter %d, want %d", i, st.Description, c, r.counters[key])
	}
	r.counters[key]++
	if st.After != nil {
		r.learn(st.After)
	}
}

func TestReplayFixtures(t *testing.T) {
	type variant struct {
		name string
		o    sendOpts
	}
	withTree := variant{"GroupInfo with tree", sendOpts{}}
	inferred := variant{"GroupInfo without tree", sendOpts{noTree: true}}
	noGI := variant{"no GroupInfo", sendOpts{noGroupInfo: true}}
	for _, tc := range []struct {
		file     string
		variants []variant
		refused  int  // steps refused by policy
		private  bool // handshakes are PrivateMessages: none is checked
	}{
		{"create-2.json", []variant{withTree, inferred, noGI}, 0, false},
		{"grow-100.json", []variant{withTree, inferred, noGI}, 0, false},
		{"gce.json", []variant{withTree, inferred, noGI}, 1, false}, // carol, muted, speaks
		{"gce-unsupported.json", []variant{withTree, inferred, noGI}, 0, false},
		{"external-join.json", []variant{withTree, inferred}, 0, false},
		{"private-3.json", []variant{withTree}, 0, true},
	} {
		for _, v := range tc.variants {
			t.Run(tc.file+"/"+v.name, func(t *testing.T) {
				g := loadFixture(t, tc.file)
				e := newEnv(t, "a.example", nil)
				resp := e.create(g)
				if !bytes.Equal(resp.MaskedPartitionKey, g.Initial.MaskedKey) {
					t.Fatalf("masked key %x, want %x", resp.MaskedPartitionKey, g.Initial.MaskedKey)
				}
				r := newReplayer(e, g)
				half := len(g.Steps) / 2
				r.run(t, g.Steps[:half], v.o)
				before := e.h.Stats()
				e.restart() // nothing in memory survives: states are rebuilt from the store
				r.run(t, g.Steps[half:], v.o)
				after := e.h.Stats()
				checked, unchecked := before.Checked+after.Checked, before.Unchecked+after.Unchecked
				if tc.private && (checked != 0 || unchecked == 0) || !tc.private && (checked == 0 || unchecked != 0) {
					t.Fatalf("%d handshakes checked, %d unchecked", checked, unchecked)
				}
				if after.Rebuilds == 0 {
					t.Fatal("no public state was rebuilt after the restart")
				}
				if r.refused != tc.refused {
					t.Fatalf("%d steps refused, want %d", r.refused, tc.refused)
				}
				checkFinalState(t, e, g, v.o)
			})
		}
	}
}

// checkFinalState checks the partitions the replay opened and what the hub
// serves for external joins.
func checkFinalState(t *testing.T, e *env, g *tsGroup, o sendOpts) {
	t.Helper()
	ctx := context.Background()
	ps, err := e.h.Partitions(ctx, g.GroupID)
	if err != nil {
		t.Fatal(err)
	}
	var last *tsState
	commits := 0
	for i := range g.Steps {
		if a := g.Steps[i].After; a != nil {
			last, commits = a, commits+1
		}
	}
	if len(ps) != commits+1 {
		t.Fatalf("%d partitions, want %d", len(ps), commits+1)
	}
	for i, p := range ps {
		if i > 0 && p.Epoch != ps[i-1].Epoch+1 {
			t.Fatalf("partition %d has epoch %d after %d", i, p.Epoch, ps[i-1].Epoch)
		}
		if i > 0 && !bytes.Equal(p.Parent, ps[i-1].Masked) {
			t.Fatalf("partition %d's parent is not partition %d", i, i-1)
		}
	}
	newest := ps[len(ps)-1]
	if !bytes.Equal(newest.Masked, last.MaskedKey) || newest.Epoch != last.Epoch {
		t.Fatalf("newest partition %x epoch %d, want %x epoch %d", newest.Masked, newest.Epoch, last.MaskedKey, last.Epoch)
	}
	info, err := e.h.GroupInfo(ctx, roundTrip(t, &protocol.GroupInfoRequest{GroupID: g.GroupID}, &protocol.GroupInfoRequest{}))
	if o.noGroupInfo {
		if !errors.Is(err, hub.ErrNoGroupInfo) {
			t.Fatalf("GroupInfo without any: %v", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	info = roundTrip(t, info, &protocol.GroupInfoResponse{})
	switch {
	case info.RatchetTree == nil && !bytes.Equal(info.GroupInfo, last.GroupInfoWithTree):
		t.Fatal("GroupInfoResponse is not the last GroupInfo with its tree")
	case info.RatchetTree != nil:
		if !bytes.Equal(info.GroupInfo, last.GroupInfo) {
			t.Fatal("GroupInfoResponse is not the last GroupInfo")
		}
		rt, err := mls.DecodeRatchetTree(info.RatchetTree)
		if err != nil {
			t.Fatal(err)
		}
		tree, err := mls.NewTree(g.CipherSuite, rt)
		if err != nil || !bytes.Equal(tree.TreeHash(), last.TreeHash) || tree.MemberCount() != len(last.Members) {
			t.Fatalf("inferred tree: %v, %d members, want %d", err, tree.MemberCount(), len(last.Members))
		}
	}
}

// TestForkBranches sequences both branches of fork.json: two commits to one
// partition, each opening its own partition with its own policy. Branch a
// bans carol and mutes bob; branch b does not; branch a-readd (a fork of
// a after the ban) re-adds carol and is refused.
func TestForkBranches(t *testing.T) {
	g := loadFixture(t, "fork.json")
	// The hub is b.example's, so bob is a local user whose mute it can see.
	e := newEnv(t, "b.example", nil)
	e.create(g)
	r := newReplayer(e, g)
	r.run(t, g.Steps, sendOpts{})
	steps := func(name string) []tsStep {
		for _, b := range g.Branches {
			if b.Name == name {
				return b.Steps
			}
		}
		t.Fatalf("no branch %s", name)
		return nil
	}
	r.run(t, steps("a"), sendOpts{})
	if r.refused != 1 { // bob, muted in branch a, speaks
		t.Fatalf("branch a: %d refused, want 1 (bob muted)", r.refused)
	}
	r.run(t, steps("b"), sendOpts{})
	if r.refused != 1 {
		t.Fatalf("branch b: bob or carol refused (%d): a ban in a sibling fork applied", r.refused)
	}
	readd := steps("a-readd")
	if _, err := e.sendStep(&readd[0], sendOpts{}); !errors.Is(err, hub.ErrBanned) {
		t.Fatalf("re-add of banned carol: %v, want ErrBanned", err)
	}
	if _, err := e.sendStep(&readd[1], sendOpts{}); !errors.Is(err, hub.ErrUnknownPartition) {
		t.Fatalf("message to the epoch the refused commit would have opened: %v, want ErrUnknownPartition", err)
	}
	ctx := context.Background()
	if st := e.h.Stats(); st.Forks != 1 || st.Commits != 6 {
		t.Fatalf("stats %+v, want 1 fork and 6 commits", st)
	}
	// Carol is banned in branch a whatever socket she uses, and not in b.
	carol := protocol.Sender{ClientID: 9, UserURI: "mimi://a.example/u/carol", Local: true}
	for _, tc := range []struct {
		branch string
		epoch  uint64
		want   error
	}{{"a", 4, hub.ErrBanned}, {"a", 3, nil}, {"b", 3, nil}} {
		var st *tsStep
		for i, s := range steps(tc.branch) {
			if s.Kind == "application" && s.Epoch == tc.epoch {
				st = &steps(tc.branch)[i]
			}
		}
		fresh := *st
		fresh.Message = privateVariant(t, st.Message, 1)
		if _, err := e.sendStepAs(&fresh, sendOpts{}, carol); !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
			t.Fatalf("carol in branch %s epoch %d: %v, want %v", tc.branch, tc.epoch, err, tc.want)
		}
	}
	ps, _ := e.h.Partitions(ctx, g.GroupID)
	if len(ps) != 1+2+3+1 { // trunk epochs 0-2, branch a 3-5, branch b 3
		t.Fatalf("%d partitions, want 7", len(ps))
	}
}

// privateVariant returns a copy of a PrivateMessage with its ciphertext
// changed: a distinct message to the hub, which cannot decrypt it.
func privateVariant(t testing.TB, msg []byte, n int) []byte {
	t.Helper()
	m, err := mls.DecodeMLSMessage(msg)
	if err != nil || m.PrivateMessage == nil {
		t.Fatalf("not a PrivateMessage: %v", err)
	}
	pm := *m.PrivateMessage
	pm.Ciphertext = append([]byte(nil), pm.Ciphertext...)
	for i := 0; i < 4 && i < len(pm.Ciphertext); i++ {
		pm.Ciphertext[i] ^= byte(n >> (8 * i))
	}
	if n>>32 != 0 {
		pm.Ciphertext[len(pm.Ciphertext)-1] ^= byte(n >> 32)
	}
	out := mls.MLSMessage{Version: m.Version, WireFormat: m.WireFormat, PrivateMessage: &pm}
	b, err := out.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
