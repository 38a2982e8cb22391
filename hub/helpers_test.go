package hub_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/mls/mlstest"
	"github.com/mimids/mimids/protocol"

	"github.com/mimids/mimids/hub"
	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/sqlite"
)

// Fixtures written by mls/testdata/gen (ts-mls 1.6.4); see its README.

type hexBytes = mlstest.Hex

type tsMember struct {
	LeafIndex uint32 `json:"leaf_index"`
	Identity  string `json:"identity"`
}

type tsExtension struct {
	Type uint16   `json:"extension_type"`
	Data hexBytes `json:"extension_data"`
}

type tsState struct {
	Epoch             uint64        `json:"epoch"`
	TreeHash          hexBytes      `json:"tree_hash"`
	Extensions        []tsExtension `json:"extensions"`
	Members           []tsMember    `json:"members"`
	PartitionKey      hexBytes      `json:"partition_key"`
	MaskedKey         hexBytes      `json:"masked_partition_key"`
	GroupInfo         hexBytes      `json:"group_info"`
	GroupInfoWithTree hexBytes      `json:"group_info_with_tree"`
	RatchetTree       hexBytes      `json:"ratchet_tree"`
}

type tsNewMember struct {
	Ref      hexBytes `json:"key_package_ref"`
	Identity string   `json:"identity"`
	Provider string   `json:"provider"`
}

type tsWelcome struct {
	Message    hexBytes      `json:"message"`
	NewMembers []tsNewMember `json:"new_members"`
}

type tsStep struct {
	Kind        string `json:"kind"`
	Description string `json:"description"`
	Sender      struct {
		SenderType string `json:"sender_type"`
		Identity   string `json:"identity"`
	} `json:"sender"`
	Epoch         uint64     `json:"epoch"`
	PartitionKey  hexBytes   `json:"partition_key"`
	WireFormat    string     `json:"wire_format"`
	ContentType   string     `json:"content_type"`
	Message       hexBytes   `json:"message"`
	Welcome       *tsWelcome `json:"welcome"`
	After         *tsState   `json:"after"`
	JoinInput     string     `json:"external_join_input"`
	MembersFail   string     `json:"members_fail"`
	Added         []tsMember `json:"added"`
	Removed       []tsMember `json:"removed"`
	RFCViolation  string     `json:"rfc_violation"`
	ProposalType  string     `json:"proposal_type"`
	ContentDetail string     `json:"plaintext"`
}

type tsBranch struct {
	Name           string   `json:"name"`
	Parent         string   `json:"parent"`
	ForkAfterSteps int      `json:"fork_after_steps"`
	ForkEpoch      uint64   `json:"fork_epoch"`
	Steps          []tsStep `json:"steps"`
}

type tsGroup struct {
	CipherSuite mls.CipherSuite `json:"cipher_suite"`
	GroupID     hexBytes        `json:"group_id"`
	Creator     tsMember        `json:"creator"`
	Initial     tsState         `json:"initial"`
	Steps       []tsStep        `json:"steps"`
	Branches    []tsBranch      `json:"branches"`
}

func loadFixture(t testing.TB, name string) *tsGroup {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "mls", "testdata", "tsmls", name))
	if err != nil {
		t.Fatalf("ts-mls fixture: %v", err)
	}
	g := new(tsGroup)
	if err := json.Unmarshal(data, g); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return g
}

// branchSteps returns the steps of a branch of fork.json, prefixed by those
// of its ancestors up to the fork point.
func (g *tsGroup) branchSteps(t testing.TB, name string) []tsStep {
	t.Helper()
	if name == "trunk" {
		return g.Steps
	}
	for _, b := range g.Branches {
		if b.Name == name {
			parent := g.branchSteps(t, b.Parent)
			return append(append([]tsStep(nil), parent[:b.ForkAfterSteps]...), b.Steps...)
		}
	}
	t.Fatalf("no branch %q", name)
	return nil
}

// fakeRouter knows which local client each KeyPackageRef was served to,
// and for some the hash of the leaf's signature key.
type fakeRouter struct {
	mu   sync.Mutex
	refs map[string]int64
	keys map[string][]byte // leaf key hash by ref; absent: not recorded
}

func (r *fakeRouter) ServedRef(_ context.Context, ref []byte) (hub.ServedRef, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id, ok := r.refs[string(ref)]
	return hub.ServedRef{ClientID: id, LeafKeyHash: r.keys[string(ref)]}, ok, nil
}

func (r *fakeRouter) add(ref []byte, client int64) {
	r.mu.Lock()
	r.refs[string(ref)] = client
	r.mu.Unlock()
}

// addServed records a served KeyPackage with its leaf's signature key.
func (r *fakeRouter) addServed(ref []byte, client int64, signatureKey []byte) {
	sum := sha256.Sum256(signatureKey)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refs[string(ref)] = client
	if r.keys == nil {
		r.keys = map[string][]byte{}
	}
	r.keys[string(ref)] = sum[:]
}

// fakeMailbox records deliveries; fail makes them fail.
type fakeMailbox struct {
	mu    sync.Mutex
	got   map[int64][][]byte
	fail  bool
	kinds []uint16
}

func (m *fakeMailbox) Deliver(_ context.Context, client int64, kind uint16, payload []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return errors.New("mailbox down")
	}
	m.got[client] = append(m.got[client], payload)
	m.kinds = append(m.kinds, kind)
	return nil
}

func (m *fakeMailbox) deliveries(client int64) [][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.got[client]
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is a hub over a real SQLite file.
type env struct {
	t      testing.TB
	path   string
	db     *sqlite.DB
	h      *hub.Hub
	cfg    hub.Config
	polCfg directory.PolicyConfig
	pol    *directory.Policy
	router *fakeRouter
	mbox   *fakeMailbox
	clock  *clock
}

func newEnv(t testing.TB, domain string, tune func(*hub.Config)) *env {
	t.Helper()
	e := &env{t: t, path: filepath.Join(t.TempDir(), "hub.db"),
		router: &fakeRouter{refs: map[string]int64{}}, mbox: &fakeMailbox{got: map[int64][][]byte{}},
		clock: &clock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}}
	e.cfg = hub.Config{Domain: domain, Now: e.clock.now}
	e.polCfg = directory.PolicyConfig{Now: e.clock.now, RatePerSecond: -1}
	if tune != nil {
		tune(&e.cfg)
	}
	e.open()
	t.Cleanup(func() { e.db.Close() })
	return e
}

func (e *env) open() {
	e.t.Helper()
	db, err := sqlite.Open(context.Background(), e.path, sqlite.Options{Synchronous: "normal"})
	if err != nil {
		e.t.Fatal(err)
	}
	pol, err := directory.NewPolicy(db, e.polCfg)
	if err != nil {
		e.t.Fatal(err)
	}
	cfg := e.cfg
	cfg.Policy = pol
	h, err := hub.New(cfg, db, e.router, e.mbox)
	if err != nil {
		e.t.Fatal(err)
	}
	e.db, e.h, e.pol = db, h, pol
}

// restart closes the store and opens it again with a fresh Hub: nothing in
// memory survives.
func (e *env) restart() {
	e.t.Helper()
	if err := e.db.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.open()
}

func providerOf(uri string) string {
	p, _, _ := strings.Cut(strings.TrimPrefix(uri, "mimi://"), "/")
	return p
}

// senderOf is the Sender the socket would give for a fixture identity (a
// user URI, as in the KeyPackages the fixture's members joined with).
func (e *env) senderOf(identity string) protocol.Sender {
	return protocol.Sender{ClientID: int64(len(identity)), ClientURI: strings.Replace(identity, "/u/", "/d/", 1) + "/phone",
		UserURI: identity, Local: providerOf(identity) == e.cfg.Domain}
}

// create creates the fixture's group from its initial state.
func (e *env) create(g *tsGroup) protocol.CreateGroupResponse {
	e.t.Helper()
	req := &protocol.CreateGroupRequest{GroupInfo: g.Initial.GroupInfo, RatchetTree: g.Initial.RatchetTree, PartitionKey: g.Initial.PartitionKey}
	creator := e.senderOf(g.Creator.Identity)
	creator.Local = true // the creator's provider is the hub
	resp, err := e.h.CreateGroup(context.Background(), creator, roundTrip(e.t, req, &protocol.CreateGroupRequest{}))
	if err != nil {
		e.t.Fatalf("CreateGroup: %v", err)
	}
	return resp
}

type binaryCodec interface {
	MarshalBinary() ([]byte, error)
	UnmarshalBinary([]byte) error
}

// roundTrip encodes v and decodes it into into, as the socket would.
func roundTrip[T binaryCodec](t testing.TB, v binaryCodec, into T) T {
	t.Helper()
	b, err := v.MarshalBinary()
	if err != nil {
		t.Fatalf("marshal %T: %v", v, err)
	}
	if err := into.UnmarshalBinary(b); err != nil {
		t.Fatalf("unmarshal %T: %v", into, err)
	}
	return into
}

// sendOpts choose what a commit's CommitData carries.
type sendOpts struct {
	noGroupInfo bool // omit group_info
	noTree      bool // group_info without ratchet_tree
}

// commitData builds a step's CommitData from the fixture.
func commitData(st *tsStep, o sendOpts) *protocol.CommitData {
	cd := &protocol.CommitData{NextPartitionKey: st.After.PartitionKey}
	switch {
	case o.noGroupInfo:
	case o.noTree || st.After.GroupInfoWithTree == nil:
		cd.GroupInfo = st.After.GroupInfo
	default:
		cd.GroupInfo = st.After.GroupInfoWithTree
	}
	if w := st.Welcome; w != nil {
		wd := &protocol.WelcomeData{Welcome: w.Message}
		for _, m := range w.NewMembers {
			wd.ServiceProviders = append(wd.ServiceProviders, m.Provider)
		}
		cd.WelcomeData = wd
	}
	return cd
}

// sendStep sends one fixture step (an external commit through
// ExternalJoinRequest) and returns the counter.
func (e *env) sendStep(st *tsStep, o sendOpts) (uint32, error) {
	return e.sendStepAs(st, o, e.senderOf(st.Sender.Identity))
}

func (e *env) sendStepAs(st *tsStep, o sendOpts, s protocol.Sender) (uint32, error) {
	ctx := context.Background()
	if st.Kind == "external_commit" {
		req := &protocol.ExternalJoinRequest{Message: st.Message, CommitData: *commitData(st, o)}
		resp, err := e.h.ExternalJoin(ctx, s, roundTrip(e.t, req, &protocol.ExternalJoinRequest{}))
		return resp.Counter, err
	}
	req := &protocol.SendRequest{Message: st.Message, PartitionKey: st.PartitionKey}
	if st.After != nil {
		req.CommitData = commitData(st, o)
	}
	resp, err := e.h.Send(ctx, s, roundTrip(e.t, req, &protocol.SendRequest{}))
	return resp.Counter, err
}

// mask is the suite-1 masked key of a partition key.
func mask(t testing.TB, pk []byte) []byte {
	s, err := mls.CipherSuite(1).Suite()
	if err != nil {
		t.Fatal(err)
	}
	return s.Hash(pk)
}

// recorder is a Sink that keeps what it is offered.
type recorder struct {
	mu       sync.Mutex
	entries  []hub.Entry
	refetchs int
}

func (r *recorder) Notify(e hub.Entry) { r.mu.Lock(); r.entries = append(r.entries, e); r.mu.Unlock() }
func (r *recorder) Refetch()           { r.mu.Lock(); r.refetchs++; r.mu.Unlock() }
func (r *recorder) got() []hub.Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hub.Entry(nil), r.entries...)
}
