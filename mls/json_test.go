package mls

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestRenderJSONSmall(t *testing.T) {
	m := &MLSMessage{Version: ProtocolVersionMLS10, WireFormat: WireFormatPublicMessage, PublicMessage: &PublicMessage{
		Content: FramedContent{
			GroupID: []byte{0xab}, Epoch: 3, Sender: Sender{SenderType: SenderTypeMember, LeafIndex: 2},
			ContentType: ContentTypeProposal,
			Proposal:    &Proposal{ProposalType: ProposalTypeRemove, Remove: &Remove{Removed: 5}},
		},
		Auth:          FramedContentAuthData{Signature: []byte{1, 2}},
		MembershipTag: []byte{0xff},
	}}
	got, err := RenderJSON(m)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"version":"mls10","wire_format":"mls_public_message","public_message":{"content":{"group_id":"ab","epoch":3,` +
		`"sender":{"sender_type":"member","leaf_index":2},"authenticated_data":"","content_type":"proposal",` +
		`"proposal":{"proposal_type":"remove","remove":{"removed":5}}},"auth":{"signature":"0102"},"membership_tag":"ff"}}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// TestRenderJSONVectors renders every messages.json MLSMessage of the first
// cases and checks the JSON is valid and uses RFC names.
func TestRenderJSONVectors(t *testing.T) {
	var cases []map[string]hexBytes
	loadCodecVectors(t, "messages.json", &cases)
	wantIn := map[string][]string{
		"mls_welcome":                {`"wire_format":"mls_welcome"`, `"new_member":`, `"encrypted_group_info":`},
		"mls_group_info":             {`"wire_format":"mls_group_info"`, `"confirmed_transcript_hash":`, `"signer":`},
		"mls_key_package":            {`"wire_format":"mls_key_package"`, `"leaf_node_source":"key_package"`, `"not_after":`},
		"public_message_application": {`"content_type":"application"`, `"application_data":`},
		"public_message_proposal":    {`"content_type":"proposal"`, `"proposal_type":`},
		"public_message_commit":      {`"content_type":"commit"`, `"confirmation_tag":`, `"proposals":`},
		"private_message":            {`"wire_format":"mls_private_message"`, `"encrypted_sender_data":`},
	}
	for _, c := range cases[:10] {
		for field, wants := range wantIn {
			m, err := DecodeMLSMessage(c[field])
			if err != nil {
				t.Fatal(err)
			}
			out, err := RenderJSON(m)
			if err != nil {
				t.Fatalf("%s: %v", field, err)
			}
			if !json.Valid(out) {
				t.Fatalf("%s: invalid JSON", field)
			}
			for _, w := range wants {
				if !strings.Contains(string(out), w) {
					t.Errorf("%s: JSON lacks %s", field, w)
				}
			}
		}
	}
}

func TestRenderJSONExtensions(t *testing.T) {
	tree, err := (&RatchetTree{{NodeType: NodeTypeLeaf, Leaf: &newTestKeyPackage(t, 1, nil).kp.LeafNode}}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	gi := &GroupInfo{GroupContext: GroupContext{Version: 1, CipherSuite: 1, Extensions: Extensions{
		{ExtensionType: ExtensionTypeExternalSenders, ExtensionData: []byte{5, 0x01, 0xaa, 0, 1, 0}},
		{ExtensionType: ExtensionTypeRequiredCapabilities, ExtensionData: []byte{2, 0xf0, 0x00, 0, 2, 0, 1}},
	}}, Extensions: Extensions{
		{ExtensionType: ExtensionTypeRatchetTree, ExtensionData: tree},
		{ExtensionType: ExtensionTypeExternalPub, ExtensionData: []byte{1, 9}},
		{ExtensionType: 0x0a0a, ExtensionData: []byte{1}},
		{ExtensionType: ExtensionTypeApplicationID, ExtensionData: []byte{5}},
	}}
	out, err := RenderJSON(gi)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{
		`"external_senders":[{"signature_key":"aa","credential":{"credential_type":"basic","identity":""}}]`,
		`"required_capabilities":{"extension_types":["unknown(0xf000)"],"proposal_types":[],"credential_types":["basic"]}`,
		`"ratchet_tree":[{"node_type":"leaf","leaf_node":{`,
		`"external_pub":{"external_pub":"09"}`,
		`{"extension_type":"grease(0x0a0a)","extension_data":"01"}`,
		`"extension_type":"application_id","extension_data":"05","decode_error":"mls: decode application_id: truncated at offset 0"`,
	} {
		if !strings.Contains(string(out), w) {
			t.Errorf("JSON lacks %s\n%s", w, out)
		}
	}
}

func TestRenderJSONUnsupported(t *testing.T) {
	if _, err := RenderJSON(42); err == nil {
		t.Fatal("rendered an int")
	}
}
