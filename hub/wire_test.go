package hub_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/mimids/mimids/hub"
	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/protocol"
)

// wireSamples are valid encodings of every struct, from the fixtures.
type wireSamples struct {
	send, sendCommit, join, create, receive, giResp, report, delivery, welcomeInit, moderation [][]byte
}

func samples(t testing.TB) wireSamples {
	t.Helper()
	g := loadFixture(t, "create-2.json")
	ej := loadFixture(t, "external-join.json")
	var s wireSamples
	enc := func(v interface{ MarshalBinary() ([]byte, error) }) []byte {
		b, err := v.MarshalBinary()
		if err != nil {
			t.Fatalf("%T: %v", v, err)
		}
		return b
	}
	for i := range g.Steps {
		st := &g.Steps[i]
		req := &protocol.SendRequest{Message: st.Message, PartitionKey: st.PartitionKey}
		if st.After != nil {
			req.CommitData = commitData(st, sendOpts{})
			s.sendCommit = append(s.sendCommit, enc(req))
			req.CommitData = commitData(st, sendOpts{noGroupInfo: true})
			s.sendCommit = append(s.sendCommit, enc(req))
			continue
		}
		s.send = append(s.send, enc(req))
	}
	for i := range ej.Steps {
		if st := &ej.Steps[i]; st.Kind == "external_commit" {
			s.join = append(s.join, enc(&protocol.ExternalJoinRequest{Message: st.Message, CommitData: *commitData(st, sendOpts{noTree: true})}))
		}
	}
	s.create = [][]byte{
		enc(&protocol.CreateGroupRequest{GroupInfo: g.Initial.GroupInfo, RatchetTree: g.Initial.RatchetTree, PartitionKey: g.Initial.PartitionKey}),
		enc(&protocol.CreateGroupRequest{GroupInfo: g.Initial.GroupInfoWithTree, PartitionKey: g.Initial.PartitionKey,
			WelcomeData: commitData(&g.Steps[1], sendOpts{}).WelcomeData}),
	}
	s.receive = [][]byte{enc(&protocol.ReceiveResponse{
		Epoch: protocol.Epoch{Messages: []protocol.Message{
			{Message: g.Steps[0].Message, ContentType: mls.ContentTypeApplication},
			{Message: g.Steps[1].Message, ContentType: mls.ContentTypeCommit, NextPartitionKey: g.Steps[1].After.MaskedKey, GroupInfo: g.Steps[1].After.GroupInfo},
			{Message: g.Steps[5].Message, ContentType: mls.ContentTypeCommit, NextPartitionKey: g.Steps[5].After.MaskedKey},
		}},
		Hints: []protocol.HintedEpoch{{MaskedPartitionKey: g.Steps[1].After.MaskedKey, Epoch: protocol.Epoch{Messages: []protocol.Message{
			{Message: g.Steps[4].Message, ContentType: mls.ContentTypeProposal}}}}},
	}), enc(&protocol.ReceiveResponse{})}
	s.giResp = [][]byte{enc(&protocol.GroupInfoResponse{GroupInfo: g.Initial.GroupInfo, RatchetTree: g.Initial.RatchetTree}),
		enc(&protocol.GroupInfoResponse{GroupInfo: g.Initial.GroupInfoWithTree})}
	s.report = [][]byte{enc(&protocol.Report{Kind: protocol.ReportMessage, GroupID: g.GroupID, Subject: g.Steps[0].Message[:40], Reason: "spam"})}
	s.delivery = [][]byte{enc(&protocol.WelcomeDelivery{GroupID: g.GroupID, KeyPackageRefs: [][]byte{g.Steps[1].Welcome.NewMembers[0].Ref},
		Welcome: g.Steps[1].Welcome.Message})}
	s.welcomeInit = [][]byte{enc(&protocol.WelcomeInitRequest{KeyPackageRefs: [][]byte{make([]byte, 32), make([]byte, 32)}}), enc(&protocol.WelcomeInitRequest{})}
	s.moderation = [][]byte{enc(&protocol.ModerationList{Banned: []string{"mimi://a.example/u/carol"}, Muted: []string{"mimi://b.example/u/bob", "x"}})}
	return s
}

func TestWireRoundTrip(t *testing.T) {
	s := samples(t)
	for _, tc := range []struct {
		name string
		in   [][]byte
		new  func() binaryCodec
	}{
		{"SendRequest", s.send, func() binaryCodec { return new(protocol.SendRequest) }},
		{"SendRequest commit", s.sendCommit, func() binaryCodec { return new(protocol.SendRequest) }},
		{"ExternalJoinRequest", s.join, func() binaryCodec { return new(protocol.ExternalJoinRequest) }},
		{"CreateGroupRequest", s.create, func() binaryCodec { return new(protocol.CreateGroupRequest) }},
		{"ReceiveResponse", s.receive, func() binaryCodec { return new(protocol.ReceiveResponse) }},
		{"GroupInfoResponse", s.giResp, func() binaryCodec { return new(protocol.GroupInfoResponse) }},
		{"Report", s.report, func() binaryCodec { return new(protocol.Report) }},
		{"WelcomeDelivery", s.delivery, func() binaryCodec { return new(protocol.WelcomeDelivery) }},
		{"WelcomeInitRequest", s.welcomeInit, func() binaryCodec { return new(protocol.WelcomeInitRequest) }},
		{"ModerationList", s.moderation, func() binaryCodec { return new(protocol.ModerationList) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.in) == 0 {
				t.Fatal("no samples")
			}
			for _, b := range tc.in {
				v := tc.new()
				if err := v.UnmarshalBinary(b); err != nil {
					t.Fatal(err)
				}
				out, err := v.MarshalBinary()
				if err != nil || !bytes.Equal(out, b) {
					t.Fatalf("re-encoding differs: %v", err)
				}
				// Every proper prefix fails, and so does a trailing byte.
				for _, cut := range []int{0, 1, len(b) / 2, len(b) - 1} {
					if cut < len(b) && tc.new().UnmarshalBinary(b[:cut]) == nil && cut > 0 {
						t.Fatalf("prefix of %d bytes decoded", cut)
					}
				}
				if err := tc.new().UnmarshalBinary(append(append([]byte(nil), b...), 0)); !errors.Is(err, hub.ErrMalformed) {
					t.Fatalf("trailing byte: %v", err)
				}
			}
		})
	}
}

func TestWireSmallStructs(t *testing.T) {
	pk := bytes.Repeat([]byte{7}, 16)
	for _, tc := range []struct {
		name string
		v    binaryCodec
		want []byte
		into binaryCodec
	}{
		{"ReceiveRequest", &protocol.ReceiveRequest{PartitionKey: pk, Counter: 258}, append(append([]byte{16}, pk...), 0, 0, 1, 2), new(protocol.ReceiveRequest)},
		{"SendResponse", &protocol.SendResponse{Counter: 7}, []byte{0, 0, 0, 7}, new(protocol.SendResponse)},
		{"ExternalJoinResponse", &protocol.ExternalJoinResponse{MaskedPartitionKey: []byte{1, 2}, Counter: 1}, []byte{2, 1, 2, 0, 0, 0, 1}, new(protocol.ExternalJoinResponse)},
		{"GroupInfoRequest", &protocol.GroupInfoRequest{GroupID: []byte("g")}, []byte{1, 'g'}, new(protocol.GroupInfoRequest)},
		{"CreateGroupResponse", &protocol.CreateGroupResponse{MaskedPartitionKey: []byte{9}}, []byte{1, 9}, new(protocol.CreateGroupResponse)},
		{"PartitionTerminated", &protocol.PartitionTerminated{MaskedPartitionKey: []byte{9}, Counter: 3}, []byte{1, 9, 0, 0, 0, 3}, new(protocol.PartitionTerminated)},
		{"Report", &protocol.Report{Kind: protocol.ReportHub, GroupID: []byte{1}, Subject: []byte("a"), Reason: "b"}, []byte{3, 1, 1, 1, 'a', 1, 'b'}, new(protocol.Report)},
		{"ModerationList", &protocol.ModerationList{Banned: []string{"ab"}}, []byte{3, 2, 'a', 'b', 0}, new(protocol.ModerationList)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.v.MarshalBinary()
			if err != nil || !bytes.Equal(b, tc.want) {
				t.Fatalf("encoding %x, %v; want %x", b, err, tc.want)
			}
			if err := tc.into.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			if b2, _ := tc.into.MarshalBinary(); !bytes.Equal(b2, b) {
				t.Fatal("round trip differs")
			}
		})
	}
}

func TestWireStrictness(t *testing.T) {
	pk := bytes.Repeat([]byte{7}, 16)
	g := loadFixture(t, "create-2.json")
	app := g.Steps[0].Message
	for _, tc := range []struct {
		name string
		in   []byte
		into binaryCodec
	}{
		{"partition key of 15 bytes", append(append([]byte{15}, pk[:15]...), 0, 0, 0, 0), new(protocol.ReceiveRequest)},
		{"partition key of 17 bytes", append(append([]byte{17}, pk...), 1, 0, 0, 0, 0), new(protocol.ReceiveRequest)},
		{"non-minimal length", append(append([]byte{0x40, 16}, pk...), 0, 0, 0, 0), new(protocol.ReceiveRequest)},
		{"length prefix 11", []byte{0xc0, 0, 0, 0, 0, 0, 0, 1, 9}, new(protocol.GroupInfoRequest)},
		{"optional octet 2", append(append([]byte{}, g.Initial.GroupInfoWithTree...), 2), new(protocol.GroupInfoResponse)},
		{"SendRequest with a Welcome as message", append(append([]byte{}, g.Steps[1].Welcome.Message...), append([]byte{16}, pk...)...), new(protocol.SendRequest)},
		{"SendRequest cut in the partition key", append(append([]byte{}, app...), 16, 1, 2), new(protocol.SendRequest)},
		{"ExternalJoinRequest with a PrivateMessage", append(append([]byte{}, app...), append(append([]byte{16}, pk...), 0, 0)...), new(protocol.ExternalJoinRequest)},
		{"GroupInfoRequest with a huge group ID", append([]byte{0x80, 0, 0x10, 0}, make([]byte, 4096)...), new(protocol.GroupInfoRequest)},
		{"Report of kind 0", []byte{0, 0, 0, 0}, new(protocol.Report)},
		{"ModerationList with invalid UTF-8", []byte{2, 1, 0xff, 0}, new(protocol.ModerationList)},
		{"empty input", nil, new(protocol.SendResponse)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.into.UnmarshalBinary(tc.in); !errors.Is(err, hub.ErrMalformed) {
				t.Fatalf("err %v, want ErrMalformed", err)
			}
		})
	}
	// A SendRequest must carry CommitData exactly for commits when encoded.
	bad := &protocol.SendRequest{Message: app, PartitionKey: pk, CommitData: &protocol.CommitData{NextPartitionKey: pk}}
	if _, err := bad.MarshalBinary(); !errors.Is(err, hub.ErrMalformed) {
		t.Fatalf("encoding CommitData on an application message: %v", err)
	}
}
