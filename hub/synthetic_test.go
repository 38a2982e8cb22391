package hub_test

import (
	"crypto/rand"
	"encoding/binary"
	"testing"

	"github.com/mimids/mimids/mls"
)

// syntheticGroup builds a valid one-member group of suite 1 in Go: its
// GroupInfo (with ratchet_tree) and a random partition key. HPKE keys are
// random bytes: the hub never uses them.
func syntheticGroup(tb testing.TB, groupID []byte) (groupInfo, partitionKey []byte) {
	tb.Helper()
	s, err := mls.CipherSuite(1).Suite()
	if err != nil {
		tb.Fatal(err)
	}
	priv, pub, err := s.GenerateSignatureKey()
	if err != nil {
		tb.Fatal(err)
	}
	ln := &mls.LeafNode{
		EncryptionKey: random(32), SignatureKey: pub,
		Credential: mls.Credential{CredentialType: mls.CredentialTypeBasic, Identity: []byte("mimi://a.example/u/alice")},
		Capabilities: mls.Capabilities{Versions: []mls.ProtocolVersion{mls.ProtocolVersionMLS10},
			CipherSuites: []mls.CipherSuite{1}, Credentials: []mls.CredentialType{mls.CredentialTypeBasic}},
		LeafNodeSource: mls.LeafNodeSourceKeyPackage,
		Lifetime:       mls.Lifetime{NotBefore: 0, NotAfter: 1<<63 - 1},
	}
	tbs, err := ln.TBS(groupID, 0)
	if err != nil {
		tb.Fatal(err)
	}
	if ln.Signature, err = s.SignWithLabel(priv, mls.LeafNodeTBSLabel, tbs); err != nil {
		tb.Fatal(err)
	}
	rt := mls.RatchetTree{&mls.Node{NodeType: mls.NodeTypeLeaf, Leaf: ln}}
	tree, err := mls.NewTree(1, rt)
	if err != nil {
		tb.Fatal(err)
	}
	rtBytes, err := rt.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	gi := &mls.GroupInfo{
		GroupContext: mls.GroupContext{Version: mls.ProtocolVersionMLS10, CipherSuite: 1, GroupID: groupID,
			TreeHash: tree.TreeHash(), ConfirmedTranscriptHash: []byte{}},
		Extensions:      mls.Extensions{{ExtensionType: mls.ExtensionTypeRatchetTree, ExtensionData: rtBytes}},
		ConfirmationTag: random(32),
	}
	if tbs, err = gi.TBS(); err != nil {
		tb.Fatal(err)
	}
	if gi.Signature, err = s.SignWithLabel(priv, mls.GroupInfoTBSLabel, tbs); err != nil {
		tb.Fatal(err)
	}
	b, err := (&mls.MLSMessage{Version: mls.ProtocolVersionMLS10, WireFormat: mls.WireFormatGroupInfo, GroupInfo: gi}).Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	return b, random(16)
}

// syntheticApp is an application PrivateMessage of n bytes of ciphertext,
// made unique by i.
func syntheticApp(tb testing.TB, groupID []byte, i uint64, n int) []byte {
	ct := make([]byte, n)
	binary.BigEndian.PutUint64(ct, i)
	m := &mls.MLSMessage{Version: mls.ProtocolVersionMLS10, WireFormat: mls.WireFormatPrivateMessage,
		PrivateMessage: &mls.PrivateMessage{GroupID: groupID, ContentType: mls.ContentTypeApplication,
			AuthenticatedData: []byte{}, EncryptedSenderData: make([]byte, 28), Ciphertext: ct}}
	b, err := m.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
