// Package hubtest is the conformance suite every hub.Store backend must pass.
package hubtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mimids/mimids/hub"
	"github.com/mimids/mimids/mls"
)

var at = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func key(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

func newGroup(t *testing.T, s hub.Store, name string) hub.Partition {
	t.Helper()
	g := hub.Group{GroupID: []byte(name), CipherSuite: 1, CreatorClient: 7, CreatorUser: "mimi://a.example/u/alice", CreatedAt: at}
	p := hub.Partition{Masked: key(name + "/0"), Epoch: 3, Verified: true, GroupInfo: []byte("gi"), RatchetTree: []byte("tree")}
	if _, err := s.CreateGroup(context.Background(), g, p, nil); err != nil {
		t.Fatalf("CreateGroup(%s): %v", name, err)
	}
	p.GroupID = g.GroupID
	return p
}

func app(masked []byte, id string) hub.AppendRequest {
	return hub.AppendRequest{Masked: masked, RequestHash: key("req/" + id), ContentType: mls.ContentTypeApplication,
		Message: []byte("message " + id), SenderClient: 7, At: at}
}

func commit(masked []byte, id string, next []byte) hub.AppendRequest {
	a := app(masked, id)
	a.ContentType, a.Public = mls.ContentTypeCommit, true
	a.Next = &hub.Partition{Masked: next, GroupID: nil, Epoch: 4, Verified: true, GroupInfo: []byte("gi " + id)}
	return a
}

// Run runs the suite; newStore returns an empty store that lives for the test.
func Run(t *testing.T, newStore func(t *testing.T) hub.Store) {
	t.Run("groups and partitions", func(t *testing.T) { testGroups(t, newStore(t)) })
	t.Run("append order and publish", func(t *testing.T) { testAppendOrder(t, newStore(t)) })
	t.Run("duplicate request", func(t *testing.T) { testDuplicate(t, newStore(t)) })
	t.Run("commit opens partition and forks", func(t *testing.T) { testCommit(t, newStore(t)) })
	t.Run("terminate", func(t *testing.T) { testTerminate(t, newStore(t)) })
	t.Run("main line across forks", func(t *testing.T) { testMainLine(t, newStore(t)) })
	t.Run("entries and handshakes", func(t *testing.T) { testEntries(t, newStore(t)) })
	t.Run("welcomes", func(t *testing.T) { testWelcomes(t, newStore(t)) })
	t.Run("conditional handshakes", func(t *testing.T) { testChecked(t, newStore(t)) })
	t.Run("concurrent conditional commits", func(t *testing.T) { testCheckedRace(t, newStore(t)) })
}

func testGroups(t *testing.T, s hub.Store) {
	ctx := context.Background()
	p := newGroup(t, s, "g1")
	newGroup(t, s, "g2")
	g, err := s.Group(ctx, []byte("g1"))
	if err != nil || g.CipherSuite != 1 || g.CreatorClient != 7 || g.CreatorUser != "mimi://a.example/u/alice" || !g.CreatedAt.Equal(at) {
		t.Fatalf("Group = %+v, %v", g, err)
	}
	if _, err := s.Group(ctx, []byte("nope")); !errors.Is(err, hub.ErrUnknownGroup) {
		t.Fatalf("unknown group: %v", err)
	}
	if gs, err := s.Groups(ctx, nil, 10); err != nil || len(gs) != 2 || string(gs[0].GroupID) != "g1" {
		t.Fatalf("Groups = %+v, %v", gs, err)
	}
	if gs, _ := s.Groups(ctx, []byte("g1"), 10); len(gs) != 1 || string(gs[0].GroupID) != "g2" {
		t.Fatalf("Groups after g1 = %+v", gs)
	}
	got, err := s.Partition(ctx, p.Masked)
	if err != nil || string(got.GroupID) != "g1" || got.Parent != nil || got.Epoch != 3 || !got.Verified ||
		string(got.GroupInfo) != "gi" || string(got.RatchetTree) != "tree" || got.Length != 0 || got.Terminated {
		t.Fatalf("Partition = %+v, %v", got, err)
	}
	if _, err := s.Partition(ctx, key("nope")); !errors.Is(err, hub.ErrUnknownPartition) {
		t.Fatalf("unknown partition: %v", err)
	}
	// A reused group ID, and a reused partition key, write nothing.
	_, err = s.CreateGroup(ctx, hub.Group{GroupID: []byte("g1"), CipherSuite: 1, CreatedAt: at}, hub.Partition{Masked: key("other")}, nil)
	if !errors.Is(err, hub.ErrGroupExists) {
		t.Fatalf("reused group ID: %v", err)
	}
	_, err = s.CreateGroup(ctx, hub.Group{GroupID: []byte("g3"), CipherSuite: 1, CreatedAt: at}, hub.Partition{Masked: p.Masked}, nil)
	if !errors.Is(err, hub.ErrPartitionExists) {
		t.Fatalf("reused partition key: %v", err)
	}
	if _, err := s.Group(ctx, []byte("g3")); !errors.Is(err, hub.ErrUnknownGroup) {
		t.Fatalf("failed CreateGroup left a group: %v", err)
	}
	if _, err := s.Append(ctx, app(key("nope"), "x"), nil); !errors.Is(err, hub.ErrUnknownPartition) {
		t.Fatalf("append to unknown partition: %v", err)
	}
}

func testAppendOrder(t *testing.T, s hub.Store) {
	ctx := context.Background()
	p := newGroup(t, s, "g")
	var mu sync.Mutex
	var published []uint32
	pub := func(e hub.Entry) {
		mu.Lock()
		published = append(published, e.Counter)
		mu.Unlock()
	}
	const n = 64
	var wg sync.WaitGroup
	counters := make([]uint32, n)
	for i := range n {
		wg.Go(func() {
			res, err := s.Append(ctx, app(p.Masked, fmt.Sprint(i)), pub)
			if err != nil || res.Duplicate || !bytes.Equal(res.Masked, p.Masked) {
				t.Errorf("append %d: %+v, %v", i, res, err)
			}
			counters[i] = res.Counter
		})
	}
	wg.Wait()
	seen := map[uint32]bool{}
	for _, c := range counters {
		if c >= n || seen[c] {
			t.Fatalf("counters %v are not a permutation of 0..%d", counters, n-1)
		}
		seen[c] = true
	}
	for i, c := range published {
		if c != uint32(i) {
			t.Fatalf("published out of order: %v", published)
		}
	}
	if len(published) != n {
		t.Fatalf("published %d entries, want %d", len(published), n)
	}
	es, err := s.Entries(ctx, p.Masked, -1, 1000, 1<<20)
	if err != nil || len(es) != n {
		t.Fatalf("Entries = %d, %v", len(es), err)
	}
	for i, e := range es {
		if e.Counter != uint32(i) || e.ContentType != mls.ContentTypeApplication || !bytes.Equal(e.Masked, p.Masked) {
			t.Fatalf("entry %d = %+v", i, e)
		}
		if want := "message " + fmt.Sprint(indexOf(counters, e.Counter)); string(e.Message) != want {
			t.Fatalf("entry %d message %q, want %q", i, e.Message, want)
		}
	}
	if got, _ := s.Partition(ctx, p.Masked); got.Length != n {
		t.Fatalf("length %d, want %d", got.Length, n)
	}
}

func indexOf(cs []uint32, c uint32) int {
	for i, x := range cs {
		if x == c {
			return i
		}
	}
	return -1
}

func testDuplicate(t *testing.T, s hub.Store) {
	ctx := context.Background()
	p := newGroup(t, s, "g")
	published := 0
	pub := func(hub.Entry) { published++ }
	first, err := s.Append(ctx, app(p.Masked, "a"), pub)
	if err != nil || first.Duplicate {
		t.Fatal(first, err)
	}
	s.Append(ctx, app(p.Masked, "b"), pub)
	again, err := s.Append(ctx, app(p.Masked, "a"), pub)
	if err != nil || !again.Duplicate || again.Counter != first.Counter || !bytes.Equal(again.Masked, p.Masked) {
		t.Fatalf("retry = %+v, %v", again, err)
	}
	if published != 2 {
		t.Fatalf("published %d, want 2 (a retry is not published)", published)
	}
	masked, c, ok, err := s.FindRequest(ctx, key("req/a"))
	if err != nil || !ok || c != first.Counter || !bytes.Equal(masked, p.Masked) {
		t.Fatalf("FindRequest = %x %d %v %v", masked, c, ok, err)
	}
	if _, _, ok, err := s.FindRequest(ctx, key("req/none")); ok || err != nil {
		t.Fatalf("FindRequest(unknown) = %v, %v", ok, err)
	}
	if got, _ := s.Partition(ctx, p.Masked); got.Length != 2 {
		t.Fatalf("length %d, want 2", got.Length)
	}
}

func testCommit(t *testing.T, s hub.Store) {
	ctx := context.Background()
	p := newGroup(t, s, "g")
	s.Append(ctx, app(p.Masked, "0"), nil)
	var pubs []hub.Entry
	res, err := s.Append(ctx, commit(p.Masked, "c1", key("next1")), func(e hub.Entry) { pubs = append(pubs, e) })
	if err != nil || res.Counter != 1 || res.Fork {
		t.Fatalf("commit: %+v, %v", res, err)
	}
	if len(pubs) != 1 || !bytes.Equal(pubs[0].NextMasked, key("next1")) || string(pubs[0].GroupInfo) != "gi c1" {
		t.Fatalf("published %+v", pubs)
	}
	n1, err := s.Partition(ctx, key("next1"))
	if err != nil || !bytes.Equal(n1.Parent, p.Masked) || n1.OpenedBy != 1 || n1.Epoch != 4 || string(n1.GroupID) != "g" ||
		!n1.Verified || string(n1.GroupInfo) != "gi c1" || n1.Length != 0 {
		t.Fatalf("next partition = %+v, %v", n1, err)
	}
	res2, err := s.Append(ctx, commit(p.Masked, "c2", key("next2")), nil)
	if err != nil || res2.Counter != 2 || !res2.Fork {
		t.Fatalf("second commit (fork): %+v, %v", res2, err)
	}
	_, err = s.Append(ctx, commit(p.Masked, "c3", key("next1")), nil)
	if !errors.Is(err, hub.ErrPartitionExists) {
		t.Fatalf("commit to a used next key: %v", err)
	}
	if got, _ := s.Partition(ctx, p.Masked); got.Length != 3 {
		t.Fatalf("a refused commit changed the length: %d", got.Length)
	}
	ps, err := s.Partitions(ctx, []byte("g"))
	if err != nil || len(ps) != 3 || !bytes.Equal(ps[1].Masked, key("next1")) || !bytes.Equal(ps[2].Masked, key("next2")) {
		t.Fatalf("Partitions = %+v, %v", ps, err)
	}
	// The main line takes the first sequenced commit at a fork: next1, although
	// next2 opened later.
	newest, err := s.NewestPartition(ctx, []byte("g"))
	if err != nil || !bytes.Equal(newest.Masked, key("next1")) {
		t.Fatalf("NewestPartition = %x, %v; want next1 (the first sequenced commit's)", newest.Masked, err)
	}
	es, _ := s.Entries(ctx, p.Masked, 0, 10, 1<<20)
	if len(es) != 2 || !bytes.Equal(es[0].NextMasked, key("next1")) || string(es[0].GroupInfo) != "gi c1" || !es[0].Public {
		t.Fatalf("commit entries = %+v", es)
	}
}

// testMainLine: NewestPartition is the tip of the main line, which takes at each
// fork the live partition the first sequenced commit opened, however many
// partitions opened later elsewhere; a terminated branch is left for the next.
func testMainLine(t *testing.T, s hub.Store) {
	ctx := context.Background()
	p := newGroup(t, s, "g")
	newest := func(want string) {
		t.Helper()
		got, err := s.NewestPartition(ctx, []byte("g"))
		if err != nil || !bytes.Equal(got.Masked, key(want)) {
			t.Fatalf("NewestPartition = %x, %v; want %s", got.Masked, err, want)
		}
	}
	mustAppend := func(a hub.AppendRequest) {
		t.Helper()
		if _, err := s.Append(ctx, a, nil); err != nil {
			t.Fatalf("append %x: %v", a.RequestHash, err)
		}
	}
	mustAppend(commit(p.Masked, "a", key("a")))   // main line: g/0 -> a
	mustAppend(commit(p.Masked, "b", key("b")))   // fork of g/0
	mustAppend(commit(key("b"), "b1", key("b1"))) // the fork goes on
	mustAppend(commit(key("b1"), "b2", key("b2")))
	newest("a")
	mustAppend(commit(key("a"), "a1", key("a1")))
	mustAppend(commit(key("a"), "a1x", key("a1x"))) // a fork of a, opened after
	newest("a1")
	if _, err := s.Terminate(ctx, key("a1"), at, nil); err != nil {
		t.Fatal(err)
	}
	newest("a1x")
	if _, err := s.Terminate(ctx, key("a"), at, nil); err != nil {
		t.Fatal(err)
	}
	newest("b2") // a's branch is gone: the next fork of g/0 is the main line
	if _, err := s.Terminate(ctx, p.Masked, at, nil); err != nil {
		t.Fatal(err)
	}
	newest("a1x") // the first partition terminated: the most recently opened live one
}

func testTerminate(t *testing.T, s hub.Store) {
	ctx := context.Background()
	p := newGroup(t, s, "g")
	s.Append(ctx, app(p.Masked, "0"), nil)
	s.Append(ctx, commit(p.Masked, "c", key("next")), nil)
	var events []hub.Entry
	pub := func(e hub.Entry) { events = append(events, e) }
	changed, err := s.Terminate(ctx, key("next"), at, pub)
	if err != nil || !changed || len(events) != 1 || !events[0].Terminated || events[0].Counter != 0 || !bytes.Equal(events[0].Masked, key("next")) {
		t.Fatalf("Terminate = %v, %v, events %+v", changed, err, events)
	}
	if changed, err := s.Terminate(ctx, key("next"), at, pub); changed || err != nil || len(events) != 1 {
		t.Fatalf("second Terminate = %v, %v", changed, err)
	}
	if _, err := s.Append(ctx, app(key("next"), "late"), nil); !errors.Is(err, hub.ErrTerminated) {
		t.Fatalf("append to terminated: %v", err)
	}
	got, _ := s.Partition(ctx, key("next"))
	if !got.Terminated || !got.TerminatedAt.Equal(at) {
		t.Fatalf("terminated partition = %+v", got)
	}
	newest, err := s.NewestPartition(ctx, []byte("g"))
	if err != nil || !bytes.Equal(newest.Masked, p.Masked) {
		t.Fatalf("NewestPartition skips terminated: %x, %v", newest.Masked, err)
	}
	s.Terminate(ctx, p.Masked, at, nil)
	if _, err := s.NewestPartition(ctx, []byte("g")); !errors.Is(err, hub.ErrUnknownPartition) {
		t.Fatalf("NewestPartition with all terminated: %v", err)
	}
	// A retry of a request sequenced before the termination is still answered.
	if res, err := s.Append(ctx, app(p.Masked, "0"), nil); err != nil || !res.Duplicate || res.Counter != 0 {
		t.Fatalf("retry after termination: %+v, %v", res, err)
	}
	if _, err := s.Terminate(ctx, key("nope"), at, nil); !errors.Is(err, hub.ErrUnknownPartition) {
		t.Fatalf("terminate unknown: %v", err)
	}
}

func testEntries(t *testing.T, s hub.Store) {
	ctx := context.Background()
	p := newGroup(t, s, "g")
	kinds := []mls.ContentType{mls.ContentTypeApplication, mls.ContentTypeProposal, mls.ContentTypeApplication, mls.ContentTypeProposal}
	for i, k := range kinds {
		a := app(p.Masked, fmt.Sprint(i))
		a.ContentType = k
		s.Append(ctx, a, nil)
	}
	s.Append(ctx, commit(p.Masked, "c", key("n")), nil)
	for _, tc := range []struct {
		name            string
		after           int64
		limit, maxBytes int
		want            []uint32
	}{
		{"all", -1, 100, 1 << 20, []uint32{0, 1, 2, 3, 4}},
		{"after", 2, 100, 1 << 20, []uint32{3, 4}},
		{"limit", -1, 2, 1 << 20, []uint32{0, 1}},
		{"bytes stop after the entry reaching the budget", -1, 100, 12, []uint32{0, 1}},
		{"at least one", 0, 100, 1, []uint32{1}},
		{"past the end", 4, 100, 1 << 20, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es, err := s.Entries(ctx, p.Masked, tc.after, tc.limit, tc.maxBytes)
			if err != nil || len(es) != len(tc.want) {
				t.Fatalf("Entries = %d entries, %v; want %v", len(es), err, tc.want)
			}
			for i, e := range es {
				if e.Counter != tc.want[i] {
					t.Fatalf("entry %d counter %d, want %d", i, e.Counter, tc.want[i])
				}
			}
		})
	}
	hs, err := s.Handshakes(ctx, p.Masked, 4)
	if err != nil || len(hs) != 2 || hs[0].Counter != 1 || hs[1].Counter != 3 {
		t.Fatalf("Handshakes(before 4) = %+v, %v", hs, err)
	}
	if hs, _ := s.Handshakes(ctx, p.Masked, 1<<32); len(hs) != 3 || hs[2].ContentType != mls.ContentTypeCommit {
		t.Fatalf("Handshakes(all) = %+v", hs)
	}
	for _, tc := range []struct {
		from int64
		want []uint32
	}{{0, []uint32{1, 3, 4}}, {2, []uint32{3, 4}}, {3, []uint32{3, 4}}, {4, []uint32{4}}, {5, nil}} {
		hs, err := s.HandshakesFrom(ctx, p.Masked, tc.from)
		if err != nil || len(hs) != len(tc.want) {
			t.Fatalf("HandshakesFrom(%d) = %+v, %v; want %v", tc.from, hs, err, tc.want)
		}
		for i, e := range hs {
			if e.Counter != tc.want[i] || e.ContentType == mls.ContentTypeApplication {
				t.Fatalf("HandshakesFrom(%d)[%d] = %+v; want counter %d", tc.from, i, e, tc.want[i])
			}
		}
	}
	if hs, err := s.HandshakesFrom(ctx, key("nope"), 0); err != nil || len(hs) != 0 {
		t.Fatalf("HandshakesFrom(unknown) = %+v, %v", hs, err)
	}
}

// checked is a handshake appended on condition that none was sequenced from seen on.
func checked(a hub.AppendRequest, ct mls.ContentType, seen uint32) hub.AppendRequest {
	a.ContentType, a.Public, a.Checked, a.HandshakesSeen = ct, true, true, seen
	return a
}

// testChecked: a Checked append succeeds when no handshake was sequenced from
// HandshakesSeen on (application messages do not count), and otherwise fails with
// ErrStale, writing nothing: no counter, no partition, no publication.
func testChecked(t *testing.T, s hub.Store) {
	ctx := context.Background()
	p := newGroup(t, s, "g")
	if _, err := s.Append(ctx, checked(app(p.Masked, "p0"), mls.ContentTypeProposal, 0), nil); err != nil {
		t.Fatalf("first checked proposal: %v", err)
	}
	s.Append(ctx, app(p.Masked, "a1"), nil) // counter 1: an application message does not make the state stale
	if res, err := s.Append(ctx, checked(app(p.Masked, "p2"), mls.ContentTypeProposal, 1), nil); err != nil || res.Counter != 2 {
		t.Fatalf("checked proposal after an application message: %+v, %v", res, err)
	}
	published := 0
	stale := checked(commit(p.Masked, "c", key("n1")), mls.ContentTypeCommit, 1) // did not see counter 2
	if res, err := s.Append(ctx, stale, func(hub.Entry) { published++ }); !errors.Is(err, hub.ErrStale) {
		t.Fatalf("commit behind the log = %+v, %v; want ErrStale", res, err)
	}
	if published != 0 {
		t.Fatal("a stale append was published")
	}
	if got, _ := s.Partition(ctx, p.Masked); got.Length != 3 {
		t.Fatalf("length after a stale append = %d, want 3", got.Length)
	}
	if _, err := s.Partition(ctx, key("n1")); !errors.Is(err, hub.ErrUnknownPartition) {
		t.Fatalf("a stale commit opened its partition: %v", err)
	}
	if _, _, ok, _ := s.FindRequest(ctx, stale.RequestHash); ok {
		t.Fatal("a stale request is in the log")
	}
	stale.HandshakesSeen = 3
	if res, err := s.Append(ctx, stale, nil); err != nil || res.Counter != 3 || res.Duplicate {
		t.Fatalf("commit checked again at the end of the log = %+v, %v", res, err)
	}
	if res, err := s.Append(ctx, stale, nil); err != nil || !res.Duplicate || res.Counter != 3 {
		t.Fatalf("retried checked commit = %+v, %v; want the duplicate", res, err)
	}
}

// testCheckedRace: commits checked against the same state race to one partition;
// exactly one is sequenced, the others fail with ErrStale.
func testCheckedRace(t *testing.T, s hub.Store) {
	ctx := context.Background()
	p := newGroup(t, s, "g")
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			a := checked(commit(p.Masked, fmt.Sprint("c", i), key(fmt.Sprint("n", i))), mls.ContentTypeCommit, 0)
			_, errs[i] = s.Append(ctx, a, nil)
		})
	}
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, hub.ErrStale):
			t.Fatalf("commit %d: %v", i, err)
		}
	}
	if got, _ := s.Partition(ctx, p.Masked); ok != 1 || got.Length != 1 {
		t.Fatalf("%d commits sequenced, length %d; want exactly one", ok, got.Length)
	}
}

func testWelcomes(t *testing.T, s hub.Store) {
	ctx := context.Background()
	ws := []hub.PendingWelcome{
		{GroupID: []byte("g"), Provider: "a.example", ClientID: 5, KeyPackageRefs: [][]byte{key("r1")}, Welcome: []byte("w1")},
		{GroupID: []byte("g"), Provider: "b.example", KeyPackageRefs: [][]byte{key("r2"), key("r3")}, Welcome: []byte("w1")},
	}
	ids, err := s.CreateGroup(ctx, hub.Group{GroupID: []byte("g"), CipherSuite: 1, CreatedAt: at},
		hub.Partition{Masked: key("p0"), Verified: true}, ws)
	if err != nil || len(ids) != 2 {
		t.Fatalf("CreateGroup with Welcomes: %v, %v", ids, err)
	}
	a := commit(key("p0"), "c", key("p1"))
	a.Welcomes = []hub.PendingWelcome{{GroupID: []byte("g"), Provider: "b.example", KeyPackageRefs: [][]byte{key("r4")}, Welcome: []byte("w2")}}
	res, err := s.Append(ctx, a, nil)
	if err != nil || len(res.WelcomeIDs) != 1 {
		t.Fatalf("Append with Welcome: %+v, %v", res, err)
	}
	got, err := s.PendingWelcomes(ctx, "b.example", 10)
	if err != nil || len(got) != 2 || got[0].ID != ids[1] || got[1].ID != res.WelcomeIDs[0] {
		t.Fatalf("PendingWelcomes(b) = %+v, %v", got, err)
	}
	if w := got[0]; string(w.GroupID) != "g" || w.ClientID != 0 || len(w.KeyPackageRefs) != 2 ||
		!bytes.Equal(w.KeyPackageRefs[1], key("r3")) || string(w.Welcome) != "w1" || !w.CreatedAt.Equal(at) {
		t.Fatalf("Welcome = %+v", w)
	}
	if got, _ := s.PendingWelcomes(ctx, "b.example", 1); len(got) != 1 {
		t.Fatalf("limit: %d", len(got))
	}
	if w, err := s.Welcome(ctx, ids[1]); err != nil || w.ID != ids[1] || w.Provider != "b.example" || w.ClientID != 0 ||
		len(w.KeyPackageRefs) != 2 || !bytes.Equal(w.KeyPackageRefs[1], key("r3")) || string(w.Welcome) != "w1" || !w.CreatedAt.Equal(at) {
		t.Fatalf("Welcome(%d) = %+v, %v", ids[1], w, err)
	}
	if w, err := s.Welcome(ctx, ids[0]); err != nil || w.Provider != "a.example" || w.ClientID != 5 {
		t.Fatalf("Welcome(%d) = %+v, %v", ids[0], w, err)
	}
	local, _ := s.PendingWelcomes(ctx, "a.example", 10)
	if len(local) != 1 || local[0].ClientID != 5 {
		t.Fatalf("PendingWelcomes(a) = %+v", local)
	}
	if err := s.DeleteWelcome(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteWelcome(ctx, ids[0]); !errors.Is(err, hub.ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	if _, err := s.Welcome(ctx, ids[0]); !errors.Is(err, hub.ErrNotFound) {
		t.Fatalf("Welcome after delete: %v", err)
	}
	if local, _ := s.PendingWelcomes(ctx, "a.example", 10); len(local) != 0 {
		t.Fatalf("deleted Welcome still listed: %+v", local)
	}
}
