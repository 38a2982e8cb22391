package protocol

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/mimids/mimids/mls"
)

// updateTSFixtures rewrites the TypeScript SDK's codec fixtures:
//
//	go test ./protocol -run TestTSFixtures -update-ts-fixtures
var updateTSFixtures = flag.Bool("update-ts-fixtures", false, "rewrite sdk/typescript/test/fixtures/protocol.json")

// tsFixturePath is the file the TypeScript SDK's codec tests read.
const tsFixturePath = "../sdk/typescript/test/fixtures/protocol.json"

// tsCase is one encoded value: its bytes as this package encodes them and its
// fields as the TypeScript decoder must return them (bytes in hex, uint64 as
// decimal strings, absent optionals as null).
type tsCase struct {
	Name  string         `json:"name"`
	Type  string         `json:"type"`
	Hex   string         `json:"hex"`
	Value map[string]any `json:"value"`
}

// tsMLS holds the real MLS messages (ts-mls fixtures) the cases embed.
type tsMLS struct {
	groupID, groupInfo, tree, partition, masked string
	app, commit, welcome, nextGI, nextKey       string
	kp                                          string
}

func loadTSMLS(t *testing.T) tsMLS {
	t.Helper()
	raw, err := os.ReadFile("../mls/testdata/tsmls/create-2.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		GroupID string `json:"group_id"`
		Initial struct {
			GroupInfo   string `json:"group_info"`
			RatchetTree string `json:"ratchet_tree"`
			Partition   string `json:"partition_key"`
			Masked      string `json:"masked_partition_key"`
		} `json:"initial"`
		Steps []struct {
			Message string `json:"message"`
			Welcome *struct {
				Message    string `json:"message"`
				NewMembers []struct {
					KeyPackage string `json:"key_package"`
				} `json:"new_members"`
			} `json:"welcome"`
			After struct {
				GroupInfo string `json:"group_info"`
				Partition string `json:"partition_key"`
			} `json:"after"`
		} `json:"steps"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	s := f.Steps
	return tsMLS{groupID: f.GroupID, groupInfo: f.Initial.GroupInfo, tree: f.Initial.RatchetTree,
		partition: f.Initial.Partition, masked: f.Initial.Masked, app: s[0].Message, commit: s[1].Message,
		welcome: s[1].Welcome.Message, nextGI: s[1].After.GroupInfo, nextKey: s[1].After.Partition,
		kp: s[1].Welcome.NewMembers[0].KeyPackage}
}

func unhexT(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func marshalT(t *testing.T, m interface{ MarshalBinary() ([]byte, error) }) string {
	t.Helper()
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func writerHex(fn func(w *Writer)) string {
	w := NewWriter(nil)
	fn(w)
	return hex.EncodeToString(w.Bytes())
}

func u64s(v uint64) string { return strconv.FormatUint(v, 10) }

// tsFrameCases are the socket frames.
func tsFrameCases() []tsCase {
	fr := func(name string, f Frame, v map[string]any) tsCase {
		return tsCase{Name: name, Type: "frame", Hex: hex.EncodeToString(Encode(f)), Value: v}
	}
	return []tsCase{
		fr("auth", &Auth{RequestID: 1, Token: []byte("mdt_token")}, map[string]any{"type": "auth", "requestId": 1, "token": hex.EncodeToString([]byte("mdt_token"))}),
		fr("auth_ok", &AuthOK{RequestID: 1, ClientID: "mimi://a.example/d/alice/c1", UserID: "mimi://a.example/u/alice", Pending: 3, MaxFrameSize: 1 << 20, Incarnation: bytes.Repeat([]byte{0xab}, 16)},
			map[string]any{"type": "auth_ok", "requestId": 1, "clientId": "mimi://a.example/d/alice/c1", "userId": "mimi://a.example/u/alice", "pending": "3", "maxFrameSize": 1 << 20, "incarnation": hex.EncodeToString(bytes.Repeat([]byte{0xab}, 16))}),
		fr("request", &Request{RequestID: 7, Method: MethodPing, Body: []byte{1, 2, 3}}, map[string]any{"type": "request", "requestId": 7, "method": 1, "body": "010203"}),
		fr("response", &Response{RequestID: 7, Body: []byte{1, 2, 3}}, map[string]any{"type": "response", "requestId": 7, "body": "010203"}),
		fr("error", &Error{RequestID: 9, Code: CodeWrongPartition, Message: "epoch 3 is not 2"}, map[string]any{"type": "error", "requestId": 9, "code": 34, "message": "epoch 3 is not 2"}),
		fr("deliver", &Deliver{Seq: 1 << 40, Kind: KindNotice, EnqueuedAtMS: 1795797834123, Payload: []byte{4, 'h', 'e', 'y', '!'}}, map[string]any{"type": "deliver", "seq": u64s(1 << 40), "kind": 1, "enqueuedAtMs": "1795797834123", "payload": "0468657921"}),
		fr("ack", &Ack{Seq: 300}, map[string]any{"type": "ack", "seq": "300"}),
		fr("push", &Push{Masked: bytes.Repeat([]byte{0xcd}, 32), Counter: 70000, Message: bytes.Repeat([]byte{0x5a}, 70)}, map[string]any{"type": "push", "masked": hex.EncodeToString(bytes.Repeat([]byte{0xcd}, 32)), "counter": 70000, "message": hex.EncodeToString(bytes.Repeat([]byte{0x5a}, 70))}),
		fr("partition_event", &PartitionEvent{Masked: []byte{0xaa, 0xbb}, Event: EventTerminated}, map[string]any{"type": "partition_event", "masked": "aabb", "event": 1}),
	}
}

// tsGroupCases are the group method bodies (§4.1).
func tsGroupCases(t *testing.T, m tsMLS) []tsCase {
	b := func(s string) []byte { return unhexT(t, s) }
	wd := &WelcomeData{Welcome: b(m.welcome), ServiceProviders: []string{"b.example"}}
	wdv := map[string]any{"welcome": m.welcome, "serviceProviders": []string{"b.example"}}
	cd := CommitData{NextPartitionKey: b(m.nextKey), GroupInfo: b(m.nextGI), WelcomeData: wd}
	cdv := map[string]any{"nextPartitionKey": m.nextKey, "groupInfo": m.nextGI, "welcomeData": wdv}
	cg := &CreateGroupRequest{GroupInfo: b(m.groupInfo), RatchetTree: b(m.tree), PartitionKey: b(m.partition)}
	nextMasked := hex.EncodeToString(sha256Sum(b(m.nextKey)))
	msgCommit := Message{Message: b(m.commit), ContentType: mls.ContentTypeCommit, NextPartitionKey: unhexT(t, nextMasked), GroupInfo: b(m.nextGI)}
	msgApp := Message{Message: b(m.app), ContentType: mls.ContentTypeApplication}
	rr := &ReceiveResponse{Epoch: Epoch{Messages: []Message{msgApp, msgCommit}},
		Hints: []HintedEpoch{{MaskedPartitionKey: unhexT(t, nextMasked), Epoch: Epoch{Messages: []Message{msgApp}}}}}
	appV := map[string]any{"message": m.app, "nextPartitionKey": nil, "groupInfo": nil}
	commitV := map[string]any{"message": m.commit, "nextPartitionKey": nextMasked, "groupInfo": m.nextGI}
	return []tsCase{
		{"create_group_request", "create_group_request", marshalT(t, cg), map[string]any{"groupInfo": m.groupInfo, "ratchetTree": m.tree, "partitionKey": m.partition, "welcomeData": nil}},
		{"create_group_response", "create_group_response", marshalT(t, &CreateGroupResponse{MaskedPartitionKey: b(m.masked)}), map[string]any{"maskedPartitionKey": m.masked}},
		{"send_request_application", "send_request", marshalT(t, &SendRequest{Message: b(m.app), PartitionKey: b(m.partition)}), map[string]any{"message": m.app, "partitionKey": m.partition, "commitData": nil}},
		{"send_request_commit", "send_request", marshalT(t, &SendRequest{Message: b(m.commit), PartitionKey: b(m.partition), CommitData: &cd}), map[string]any{"message": m.commit, "partitionKey": m.partition, "commitData": cdv}},
		{"send_response", "send_response", marshalT(t, SendResponse{Counter: 42}), map[string]any{"counter": 42}},
		{"receive_request", "receive_request", marshalT(t, &ReceiveRequest{PartitionKey: b(m.partition), Counter: 5}), map[string]any{"partitionKey": m.partition, "counter": 5}},
		{"receive_response", "receive_response", marshalT(t, rr), map[string]any{"epoch": []any{appV, commitV}, "hints": []any{map[string]any{"maskedPartitionKey": nextMasked, "epoch": []any{appV}}}}},
		{"message_commit", "message", marshalT(t, &msgCommit), commitV},
		{"message_application", "message", marshalT(t, &msgApp), appV},
		{"subscribe_request", "subscribe_request", writerHex(func(w *Writer) { w.Opaque(b(m.partition)); w.U32(9) }), map[string]any{"partitionKey": m.partition, "counter": 9}},
		{"subscribe_response", "subscribe_response", writerHex(func(w *Writer) { w.Opaque(b(m.masked)) }), map[string]any{"maskedPartitionKey": m.masked}},
		{"unsubscribe_request", "unsubscribe_request", writerHex(func(w *Writer) { w.Opaque(b(m.masked)) }), map[string]any{"maskedPartitionKey": m.masked}},
		{"group_info_request", "group_info_request", marshalT(t, &GroupInfoRequest{GroupID: b(m.groupID)}), map[string]any{"groupId": m.groupID}},
		{"group_info_response", "group_info_response", marshalT(t, &GroupInfoResponse{GroupInfo: b(m.groupInfo), RatchetTree: b(m.tree)}), map[string]any{"groupInfo": m.groupInfo, "ratchetTree": m.tree}},
		{"group_info_response_no_tree", "group_info_response", marshalT(t, &GroupInfoResponse{GroupInfo: b(m.groupInfo)}), map[string]any{"groupInfo": m.groupInfo, "ratchetTree": nil}},
		{"external_join_request", "external_join_request", marshalT(t, &ExternalJoinRequest{Message: b(m.commit), CommitData: CommitData{NextPartitionKey: b(m.nextKey), GroupInfo: b(m.nextGI)}}),
			map[string]any{"message": m.commit, "commitData": map[string]any{"nextPartitionKey": m.nextKey, "groupInfo": m.nextGI, "welcomeData": nil}}},
		{"external_join_response", "external_join_response", marshalT(t, &ExternalJoinResponse{MaskedPartitionKey: b(m.masked), Counter: 3}), map[string]any{"maskedPartitionKey": m.masked, "counter": 3}},
		{"report", "report", marshalT(t, &Report{Kind: ReportMessage, GroupID: b(m.groupID), Subject: []byte{0, 1}, Reason: "spam"}), map[string]any{"kind": 2, "groupId": m.groupID, "subject": "0001", "reason": "spam"}},
		{"report_response", "report_response", writerHex(func(w *Writer) { w.U64(77) }), map[string]any{"reportId": "77"}},
		{"welcome_delivery", "welcome_delivery", marshalT(t, &WelcomeDelivery{GroupID: b(m.groupID), KeyPackageRefs: [][]byte{bytes.Repeat([]byte{1}, 32)}, Welcome: b(m.welcome)}),
			map[string]any{"groupId": m.groupID, "keyPackageRefs": []string{hex.EncodeToString(bytes.Repeat([]byte{1}, 32))}, "welcome": m.welcome}},
	}
}

// tsKeyPackageCases are the mailbox payloads and KeyPackage bodies (§1, §3).
func tsKeyPackageCases(t *testing.T, m tsMLS) []tsCase {
	b := func(s string) []byte { return unhexT(t, s) }
	ref := bytes.Repeat([]byte{2}, 32)
	kpBare := hex.EncodeToString(b(m.kp)[4:])
	return []tsCase{
		{"key_package_upload", "key_package_upload", marshalT(t, KeyPackageUpload{KeyPackages: [][]byte{b(m.kp)}}), map[string]any{"keyPackages": []string{m.kp}}},
		{"key_package_upload_result", "key_package_upload_result", marshalT(t, KeyPackageUploadResult{Refs: [][]byte{ref}}), map[string]any{"refs": []string{hex.EncodeToString(ref)}}},
		{"key_package_count_request", "key_package_count_request", writerHex(func(w *Writer) { w.U16(1) }), map[string]any{"cipherSuite": 1}},
		{"key_package_count", "key_package_count", marshalT(t, KeyPackageStock{CipherSuite: 1, Available: 12, LastResort: true}), map[string]any{"cipherSuite": 1, "available": 12, "lastResort": true}},
		{"mailbox_status", "mailbox_status", marshalT(t, MailboxStatus{Pending: 2, FirstSeq: 5, LastSeq: 6}), map[string]any{"pending": "2", "firstSeq": "5", "lastSeq": "6"}},
		{"notice", "notice", marshalT(t, Notice{Text: "maintenance at 22:00 ✓"}), map[string]any{"text": "maintenance at 22:00 ✓"}},
		{"key_packages_low", "key_packages_low", marshalT(t, KeyPackagesLow{CipherSuite: 1, Remaining: 4}), map[string]any{"cipherSuite": 1, "remaining": 4}},
		{"key_packages_exhausted", "key_packages_exhausted", marshalT(t, KeyPackagesExhausted{CipherSuite: 1, Reason: ExhaustedLastResortServed}), map[string]any{"cipherSuite": 1, "reason": 1}},
		{"discovery_request", "discovery_request", writerHex(func(w *Writer) { w.String("mimi://b.example/u/bob") }), map[string]any{"userId": "mimi://b.example/u/bob"}},
		{"discovery_response", "discovery_response", marshalT(t, DiscoveryResponse{UserID: "mimi://b.example/u/bob", Provider: "b.example", BearerToken: "mbt_x"}), map[string]any{"userId": "mimi://b.example/u/bob", "provider": "b.example", "bearerToken": "mbt_x"}},
		{"key_package_request_bundle", "key_package_request_bundle", marshalT(t, KeyPackageRequestBundle{Requests: []KeyPackageRequest{{UserID: "mimi://b.example/u/bob", BearerToken: "mbt_x", Version: 1, CipherSuite: 1}}}),
			map[string]any{"requests": []any{map[string]any{"userId": "mimi://b.example/u/bob", "bearerToken": "mbt_x", "version": 1, "cipherSuite": 1}}}},
		{"key_package_response_bundle", "key_package_response_bundle", marshalT(t, KeyPackageResponseBundle{Results: []KeyPackageResult{{Status: StatusOK, Response: KeyPackageResponse{KeyPackage: b(kpBare)}}, {Status: StatusNoKeyPackage, Message: "none"}}}),
			map[string]any{"results": []any{map[string]any{"status": 0, "keyPackage": kpBare, "message": nil}, map[string]any{"status": 4, "keyPackage": nil, "message": "none"}}}},
	}
}

// TestTSFixtures checks that the TypeScript SDK's codec fixtures are what this
// package encodes today (-update-ts-fixtures rewrites them).
func TestTSFixtures(t *testing.T) {
	m := loadTSMLS(t)
	cases := append(tsFrameCases(), tsGroupCases(t, m)...)
	cases = append(cases, tsKeyPackageCases(t, m)...)
	out, err := json.MarshalIndent(map[string]any{
		"generator": "go test ./protocol -run TestTSFixtures -update-ts-fixtures",
		"cases":     cases,
	}, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, '\n')
	if *updateTSFixtures {
		if err := os.MkdirAll(filepath.Dir(tsFixturePath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(tsFixturePath, out, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	have, err := os.ReadFile(tsFixturePath)
	if err != nil {
		t.Fatalf("%v (run with -update-ts-fixtures)", err)
	}
	if !bytes.Equal(have, out) {
		t.Fatalf("%s is stale: run go test ./protocol -run TestTSFixtures -update-ts-fixtures", tsFixturePath)
	}
}

// sha256Sum is suite 1's hash: a masked partition key of the fixtures' group.
func sha256Sum(b []byte) []byte { s := sha256.Sum256(b); return s[:] }
