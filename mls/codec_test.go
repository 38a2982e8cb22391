package mls

import (
	"bytes"
	"encoding/hex"
	"errors"
	"runtime"
	"strings"
	"testing"
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

func TestVarint(t *testing.T) {
	cases := []struct {
		in   string
		want int
		err  error
	}{
		{"00", 0, nil},
		{"25", 37, nil},
		{"3f", 63, nil},
		{"4040", 64, nil},
		{"7bbd", 15293, nil},
		{"9d7f3e7d", 494878333, nil},
		{"bfffffff", maxVarint, nil},
		{"4000", 0, ErrVarintNotMinimal},
		{"403f", 0, ErrVarintNotMinimal},
		{"80000000", 0, ErrVarintNotMinimal},
		{"80003fff", 0, ErrVarintNotMinimal},
		{"c0000000", 0, ErrVarintPrefix},
		{"c000000000000040", 0, ErrVarintPrefix},
		{"ffffffff", 0, ErrVarintPrefix},
		{"", 0, ErrTruncated},
		{"40", 0, ErrTruncated},
		{"80ffff", 0, ErrTruncated},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			r := newReader(mustHex(c.in))
			got := r.varint("v")
			err := r.finish("v")
			if !errors.Is(err, c.err) || (c.err == nil && err != nil) {
				t.Fatalf("error %v, want %v", err, c.err)
			}
			if c.err == nil && got != c.want {
				t.Fatalf("got %d, want %d", got, c.want)
			}
		})
	}
}

func TestVarintEncodeLimit(t *testing.T) {
	var w writer
	w.varint("v", maxVarint+1)
	if !errors.Is(w.err, ErrVectorTooLong) {
		t.Fatalf("got %v", w.err)
	}
	for _, n := range []int{0, 63, 64, 16383, 16384, maxVarint} {
		b := appendVarint(nil, n)
		r := newReader(b)
		if got := r.varint("v"); got != n || r.finish("v") != nil {
			t.Fatalf("%d: round trip gave %d, %v", n, got, r.err)
		}
	}
}

// validMessages returns one encoded value of every kind of messages.json's
// first case, keyed by field.
func validMessages(t testing.TB) map[string][]byte {
	var cases []map[string]hexBytes
	loadCodecVectors(t, "messages.json", &cases)
	out := map[string][]byte{}
	for k, v := range cases[0] {
		out[k] = v
	}
	return out
}

// TestTruncatedAndOverlong cuts every messages.json value of the first case
// at every length, and appends a byte to each: every strict prefix fails
// with ErrTruncated, every extension with ErrTrailingData.
func TestTruncatedAndOverlong(t *testing.T) {
	for name, data := range validMessages(t) {
		t.Run(name, func(t *testing.T) {
			mk := messageFields[name]
			for n := 0; n < len(data); n++ {
				err := mk().Unmarshal(data[:n])
				if !errors.Is(err, ErrTruncated) {
					t.Fatalf("prefix of %d/%d bytes: got %v, want ErrTruncated", n, len(data), err)
				}
			}
			long := append(bytes.Clone(data), 0)
			if err := mk().Unmarshal(long); !errors.Is(err, ErrTrailingData) {
				t.Fatalf("over-long: got %v, want ErrTrailingData", err)
			}
		})
	}
}

// kpMessage returns a framed KeyPackage and its bare encoding.
func kpMessage(t *testing.T) []byte {
	t.Helper()
	tk := newTestKeyPackage(t, 1, nil)
	b, err := (&MLSMessage{Version: ProtocolVersionMLS10, WireFormat: WireFormatKeyPackage, KeyPackage: tk.kp}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBadInput gives each malformed construction its own case and checks
// the typed error and the field it names.
func TestBadInput(t *testing.T) {
	kp := kpMessage(t)
	// Offsets inside kp: version(2) wire_format(2) version(2) suite(2)
	// init_key(1+32) then the LeafNode: encryption_key(1+32) signature_key(1+32).
	const leafStart = 4 + 4 + 33
	nonMinimal := append(append(bytes.Clone(kp[:leafStart]), 0x40, 0x20), kp[leafStart+1:]...)
	overLimit := append(append(bytes.Clone(kp[:leafStart]), 0xc0, 0, 0, 0x20), kp[leafStart+1:]...)
	hugeLen := append(append(bytes.Clone(kp[:leafStart]), 0xbf, 0xff, 0xff, 0xff), kp[leafStart+1:]...)
	truncSigKey := bytes.Clone(kp[:leafStart+33+10])
	leaf, err := newTestKeyPackage(t, 1, nil).kp.LeafNode.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	tree := func(nodes ...[]byte) []byte {
		body := bytes.Join(nodes, nil)
		return append(appendVarint(nil, len(body)), body...)
	}
	leafNode := append([]byte{1, 1}, leaf...)
	trailingBlank := tree(leafNode, []byte{0})
	leafAtParent := tree(leafNode, leafNode)
	cases := []struct {
		name  string
		v     roundTripper
		in    []byte
		want  error
		field string
	}{
		{"non-minimal varint", new(MLSMessage), nonMinimal, ErrVarintNotMinimal, "LeafNode.encryption_key"},
		{"varint over the 30-bit limit", new(MLSMessage), overLimit, ErrVarintPrefix, "LeafNode.encryption_key"},
		{"length beyond the input", new(MLSMessage), hugeLen, ErrTruncated, "LeafNode.encryption_key"},
		{"truncated signature key", new(MLSMessage), truncSigKey, ErrTruncated, "LeafNode.signature_key"},
		{"unsupported version", new(MLSMessage), mustHex("00020001"), ErrUnsupportedVersion, "MLSMessage.version"},
		{"unknown wire format", new(MLSMessage), mustHex("00010006"), ErrUnknownWireFormat, "MLSMessage.wire_format"},
		{"private wire format range", new(MLSMessage), mustHex("0001f000"), ErrUnknownWireFormat, "MLSMessage.wire_format"},
		{"unknown content type", new(MLSMessage), mustHex("00010001 0167 0000000000000000 0100000000 00 04"), ErrUnknownContentType, "FramedContent.content_type"},
		{"reserved content type", new(MLSMessage), mustHex("00010001 0167 0000000000000000 0100000000 00 00"), ErrUnknownContentType, "FramedContent.content_type"},
		{"unknown sender type", new(MLSMessage), mustHex("00010001 0167 0000000000000000 05"), ErrUnknownSenderType, "Sender.sender_type"},
		{"private message content type", new(MLSMessage), mustHex("00010002 0167 0000000000000000 07 00 00 00"), ErrUnknownContentType, "PrivateMessage.content_type"},
		{"unknown leaf node source", new(LeafNode), mustHex("00 00 0001 00 0000000000 04 00 00"), ErrUnknownLeafNodeSource, "LeafNode.leaf_node_source"},
		{"odd capabilities vector", new(LeafNode), mustHex("00 00 0001 00 03000100 00000000"), ErrVectorElement, "Capabilities.versions"},
		{"unknown PSK type", new(PreSharedKey), mustHex("03 00"), ErrUnknownPSKType, "PreSharedKeyID.psktype"},
		{"unknown ProposalOrRef type", new(Commit), mustHex("02 03 00 00"), ErrUnknownProposalOrRefType, "ProposalOrRef.type"},
		{"optional presence 2", new(Commit), mustHex("00 02"), ErrInvalidOptional, "Commit.path"},
		{"unknown node type", new(RatchetTree), mustHex("02 01 03"), ErrUnknownNodeType, "Node.node_type"},
		{"empty ratchet tree", new(RatchetTree), mustHex("00"), ErrMalformedTree, "ratchet_tree"},
		{"tree ending in a blank", new(RatchetTree), trailingBlank, ErrMalformedTree, "ratchet_tree"},
		{"parent at a leaf position", new(RatchetTree), mustHex("05 01 02 00 00 00"), ErrMalformedTree, "ratchet_tree"},
		{"leaf at a parent position", new(RatchetTree), leafAtParent, ErrMalformedTree, "ratchet_tree"},
		{"unmerged_leaves not whole uint32s", new(ParentNode), mustHex("00 00 03 000000"), ErrVectorElement, "ParentNode.unmerged_leaves"},
		{"element overruns its vector", new(Welcome), mustHex("0001 02 0000 00"), ErrTruncated, "HPKECiphertext.ciphertext"},
		{"trailing bytes", new(Remove), mustHex("0000000100"), ErrTrailingData, "Remove"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.v.Unmarshal(c.in)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			var de *DecodeError
			if !errors.As(err, &de) || de.Field != c.field {
				t.Fatalf("error %v names %q, want %q", err, de.Field, c.field)
			}
			if !strings.HasPrefix(err.Error(), "mls: decode "+c.field+": ") {
				t.Fatalf("message %q", err)
			}
		})
	}
}

func TestDecodeErrorMessage(t *testing.T) {
	kp := kpMessage(t)
	err := new(MLSMessage).Unmarshal(kp[:4+4+33+33+10])
	want := "mls: decode LeafNode.signature_key: truncated at offset 74"
	// 74 = MLSMessage header (4) + version and suite (4) + init_key (33) +
	// encryption_key (33): where signature_key's length prefix starts.
	if err == nil || err.Error() != want {
		t.Fatalf("got %q, want %q", err, want)
	}
}

// TestHugeLengthDoesNotAllocate checks that a length prefix is checked
// against the input before anything is allocated.
func TestHugeLengthDoesNotAllocate(t *testing.T) {
	for _, in := range [][]byte{
		mustHex("0001 bfffffff 00"),              // Welcome.secrets
		mustHex("0001 01 bfffffff"),              // EncryptedGroupSecrets.new_member
		mustHex("0001 0003 bfffffff"),            // MLSMessage(Welcome)
		mustHex("0001 0001 01 00 bfffffff 0000"), // FramedContent.group_id
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range 100 {
			var m MLSMessage
			var w Welcome
			if m.Unmarshal(in) == nil && w.Unmarshal(in) == nil {
				t.Fatalf("%x accepted", in)
			}
		}
		runtime.ReadMemStats(&after)
		if perRun := (after.TotalAlloc - before.TotalAlloc) / 200; perRun > 1024 {
			t.Fatalf("%x: %d bytes allocated per decode", in, perRun)
		}
	}
}

// TestUnknownValuesRoundTrip checks that the codec keeps what it does not
// interpret: unknown proposal, credential and extension types, GREASE in
// capabilities.
func TestUnknownValuesRoundTrip(t *testing.T) {
	kp := newTestKeyPackage(t, 1, func(kp *KeyPackage) {
		kp.LeafNode.Credential = Credential{CredentialType: 0xf00d, Data: []byte("opaque credential")}
		kp.LeafNode.Capabilities.Credentials = append(kp.LeafNode.Capabilities.Credentials, 0xf00d)
		kp.Extensions = append(kp.Extensions, Extension{ExtensionType: 0x0a0a, ExtensionData: []byte("grease")})
	}).kp
	commit := &Commit{Proposals: []ProposalOrRef{
		{Type: ProposalOrRefTypeProposal, Proposal: &Proposal{ProposalType: 0xf123, Unknown: []byte("custom")}},
		{Type: ProposalOrRefTypeProposal, Proposal: &Proposal{ProposalType: ProposalTypeAdd, Add: &Add{KeyPackage: *kp}}},
		{Type: ProposalOrRefTypeReference, Reference: bytes.Repeat([]byte{7}, 32)},
	}}
	b, err := commit.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeCommit(b)
	if err != nil {
		t.Fatal(err)
	}
	if p := got.Proposals[0].Proposal; p.ProposalType != 0xf123 || string(p.Unknown) != "custom" {
		t.Fatalf("unknown proposal %+v", p)
	}
	c := got.Proposals[1].Proposal.Add.KeyPackage.LeafNode.Credential
	if c.CredentialType != 0xf00d || string(c.Data) != "opaque credential" {
		t.Fatalf("unknown credential %+v", c)
	}
	re, err := got.Marshal()
	if err != nil || !bytes.Equal(re, b) {
		t.Fatalf("round trip: %v", err)
	}
}

func TestX509CredentialRoundTrip(t *testing.T) {
	c := Credential{CredentialType: CredentialTypeX509, Certificates: []Certificate{{CertData: []byte("leaf")}, {CertData: []byte("ca")}}}
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if want := mustHex("0002 08 04 6c656166 02 6361"); !bytes.Equal(b, want) {
		t.Fatalf("got %x, want %x", b, want)
	}
	var got Credential
	if err := got.Unmarshal(b); err != nil || len(got.Certificates) != 2 || string(got.Certificates[1].CertData) != "ca" {
		t.Fatalf("%v %+v", err, got)
	}
}

// TestEncodeInconsistent checks that values whose selector and contents
// disagree are refused rather than encoded wrongly.
func TestEncodeInconsistent(t *testing.T) {
	cases := []struct {
		name string
		v    interface{ Marshal() ([]byte, error) }
		want error
	}{
		{"proposal type add without Add", &Proposal{ProposalType: ProposalTypeAdd}, ErrInconsistent},
		{"commit content without Commit", &FramedContent{Sender: Sender{SenderType: SenderTypeMember}, ContentType: ContentTypeCommit}, ErrInconsistent},
		{"unknown content type", &FramedContent{Sender: Sender{SenderType: SenderTypeMember}, ContentType: 9}, ErrUnknownContentType},
		{"unknown sender type", &FramedContent{Sender: Sender{SenderType: 9}}, ErrUnknownSenderType},
		{"welcome wire format without Welcome", &MLSMessage{Version: 1, WireFormat: WireFormatWelcome}, ErrInconsistent},
		{"unknown wire format", &MLSMessage{Version: 1, WireFormat: 77}, ErrUnknownWireFormat},
		{"leaf node without source", &LeafNode{}, ErrUnknownLeafNodeSource},
		{"node without leaf", &RatchetTree{{NodeType: NodeTypeLeaf}}, ErrInconsistent},
		{"psk without type", &PreSharedKeyID{}, ErrUnknownPSKType},
		{"ProposalOrRef without type", &Commit{Proposals: []ProposalOrRef{{}}}, ErrUnknownProposalOrRefType},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := c.v.Marshal(); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

// TestVectorsAllMessagesRoundTrip decodes and re-encodes every MLSMessage
// and ratchet tree of the working group's other vector files: the Welcomes,
// proposals and commits of the passive-client scenarios, and the trees and
// UpdatePaths of tree-validation, tree-operations and treekem.
func TestVectorsAllMessagesRoundTrip(t *testing.T) {
	counts := map[string]int{}
	for _, item := range collectVectorMessages(t) {
		v := item.new()
		if err := v.Unmarshal(item.data); err != nil {
			t.Fatalf("%s: %v", item.origin, err)
		}
		re, err := v.Marshal()
		if err != nil || !bytes.Equal(re, item.data) {
			t.Fatalf("%s: does not round-trip (%v)", item.origin, err)
		}
		counts[item.kind]++
	}
	t.Logf("round-tripped: %v", counts)
	for _, k := range []string{"MLSMessage", "RatchetTree", "UpdatePath", "Proposal"} {
		if counts[k] == 0 {
			t.Errorf("no %s found in the vectors", k)
		}
	}
}

// TestAllocationAmplification decodes inputs made of the smallest possible
// vector elements, the worst case for memory per input byte, and checks the
// bound the package documents: at most 200 bytes allocated (in total, growth
// included) per input byte. Real messages allocate about one byte per byte.
func TestAllocationAmplification(t *testing.T) {
	const n = 20000
	vec := func(elem []byte, tail ...byte) []byte {
		body := bytes.Repeat(elem, n)
		return append(append(appendVarint(nil, len(body)), body...), tail...)
	}
	cases := []struct {
		name string
		v    func() roundTripper
		in   []byte
	}{
		{"commit of empty references", func() roundTripper { return new(Commit) }, vec([]byte{2, 0}, 0)},
		{"ratchet tree of blanks", func() roundTripper { return new(RatchetTree) }, vec([]byte{0})},
		{"empty extensions", func() roundTripper { return new(GroupContextExtensions) }, vec([]byte{0, 9, 0})},
		{"empty welcome secrets", func() roundTripper { return new(Welcome) }, append([]byte{0, 1}, vec([]byte{0, 0, 0}, 0)...)},
		{"empty x509 certificates", func() roundTripper { return new(Credential) }, append([]byte{0, 2}, vec([]byte{0})...)},
		{"empty psks", func() roundTripper { return new(GroupSecrets) }, append([]byte{0, 0}, vec([]byte{1, 0, 0})...)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			const runs = 5
			for range runs {
				c.v().Unmarshal(c.in)
			}
			runtime.ReadMemStats(&after)
			per := float64(after.TotalAlloc-before.TotalAlloc) / runs / float64(len(c.in))
			t.Logf("%.1f bytes allocated per input byte", per)
			if per > 200 {
				t.Fatalf("%.1f bytes allocated per input byte", per)
			}
		})
	}
}
