package mls

import (
	"fmt"
	"testing"
)

// BenchmarkProcessCommit1000 applies an empty commit with an UpdatePath
// from one member of a 1,000-member group whose parent nodes are all
// populated (every member committed once while the group was built). The
// message is decoded from bytes each iteration, as a DS receives it.
func BenchmarkProcessCommit1000(b *testing.B) {
	for _, cs := range []CipherSuite{MLS128DHKEMX25519AES128GCMSHA256Ed25519, MLS128DHKEMP256AES128GCMSHA256P256} {
		b.Run(fmt.Sprintf("suite%d", cs), func(b *testing.B) {
			tg := newTestGroup(b, cs, 1000, true, nil)
			g := tg.g
			raw, err := (&MLSMessage{Version: ProtocolVersionMLS10, WireFormat: WireFormatPublicMessage,
				PublicMessage: tg.commit(g, 517, nil, true)}).Marshal()
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				m, err := DecodeMLSMessage(raw)
				if err != nil {
					b.Fatal(err)
				}
				if _, _, err := g.ProcessCommit(m.PublicMessage); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkNewPublicGroup1000 builds the public state of a 1,000-member
// group from its GroupInfo and tree (full §12.4.3.1 validation: 1,000 leaf
// signatures, parent hashes).
func BenchmarkNewPublicGroup1000(b *testing.B) {
	tg := newTestGroup(b, MLS128DHKEMX25519AES128GCMSHA256Ed25519, 1000, true, nil)
	gi := &GroupInfo{GroupContext: tg.g.GroupContext(), ConfirmationTag: randBytes(32)}
	tg.signGroupInfo(gi, 0)
	rt := tg.g.RatchetTree()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewPublicGroup(gi, rt, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClone1000 measures the copy a hub makes to keep a fork's parent
// state (ProcessCommit itself does one).
func BenchmarkClone1000(b *testing.B) {
	tg := newTestGroup(b, MLS128DHKEMX25519AES128GCMSHA256Ed25519, 1000, false, nil)
	b.ReportAllocs()
	for b.Loop() {
		tg.g.Clone()
	}
}
