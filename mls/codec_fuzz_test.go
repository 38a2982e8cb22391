package mls

import (
	"bytes"
	"errors"
	"testing"
)

// fuzzSeeds returns the values of kind found in the vectors: the
// messages.json fields that hold it (the first 20 cases) and, for
// MLSMessage, RatchetTree and UpdatePath, those of the other vector files.
func fuzzSeeds(f *testing.F, kind string, fields ...string) [][]byte {
	var cases []map[string]hexBytes
	loadCodecVectors(f, "messages.json", &cases)
	var out [][]byte
	for _, c := range cases[:20] {
		for _, name := range fields {
			out = append(out, c[name])
		}
	}
	n := 0
	for _, m := range collectVectorMessages(f) {
		if m.kind == kind && n < 200 {
			out = append(out, m.data)
			n++
		}
	}
	return out
}

// innerSeeds decodes MLSMessage seeds and re-encodes the part pick selects,
// giving bare KeyPackages, GroupInfos, Welcomes, Commits, Proposals and
// LeafNodes.
func innerSeeds(f *testing.F, pick func(*MLSMessage) roundTripper) [][]byte {
	var out [][]byte
	for _, b := range fuzzSeeds(f, "MLSMessage", "mls_welcome", "mls_group_info", "mls_key_package",
		"public_message_proposal", "public_message_commit") {
		m, err := DecodeMLSMessage(b)
		if err != nil {
			continue
		}
		if v := pick(m); v != nil {
			if enc, err := v.Marshal(); err == nil {
				out = append(out, enc)
			}
		}
	}
	if len(out) == 0 {
		f.Fatal("no seeds")
	}
	return out
}

// fuzzRoundTrip runs the decoder of T on arbitrary input: it must not
// panic, must fail only with a *DecodeError, and whatever it accepts must
// re-encode to the same bytes.
func fuzzRoundTrip[T any, PT interface {
	*T
	roundTripper
}](f *testing.F, seeds [][]byte, extra func(t *testing.T, v PT)) {
	if len(seeds) == 0 {
		f.Fatal("no seeds")
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v := PT(new(T))
		if err := v.Unmarshal(data); err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error is not a *DecodeError: %v", err)
			}
			return
		}
		out, err := v.Marshal()
		if err != nil {
			t.Fatalf("accepted input does not encode: %v", err)
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("re-encoding differs\n in %x\nout %x", data, out)
		}
		if extra != nil {
			extra(t, v)
		}
	})
}

func FuzzMLSMessage(f *testing.F) {
	seeds := fuzzSeeds(f, "MLSMessage", "mls_welcome", "mls_group_info", "mls_key_package",
		"public_message_application", "public_message_proposal", "public_message_commit", "private_message")
	fuzzRoundTrip(f, seeds, func(t *testing.T, m *MLSMessage) {
		if _, err := RenderJSON(m); err != nil {
			t.Fatalf("RenderJSON: %v", err)
		}
		if m.KeyPackage != nil {
			ValidateKeyPackage(m.KeyPackage, testClock) // must not panic
		}
		if pm := m.PublicMessage; pm != nil {
			if s, err := MLS128DHKEMX25519AES128GCMSHA256Ed25519.Suite(); err == nil {
				VerifyPublicMessage(s, pm, make([]byte, 32), &GroupContext{GroupID: pm.Content.GroupID, Epoch: pm.Content.Epoch})
			}
		}
	})
}

func FuzzKeyPackage(f *testing.F) {
	seeds := innerSeeds(f, func(m *MLSMessage) roundTripper {
		if m.KeyPackage != nil {
			return m.KeyPackage
		}
		return nil
	})
	fuzzRoundTrip(f, seeds, func(t *testing.T, kp *KeyPackage) {
		ValidateKeyPackage(kp, testClock) // must not panic
	})
}

func FuzzLeafNode(f *testing.F) {
	seeds := innerSeeds(f, func(m *MLSMessage) roundTripper {
		if m.KeyPackage != nil {
			return &m.KeyPackage.LeafNode
		}
		if pm := m.PublicMessage; pm != nil && pm.Content.Commit != nil && pm.Content.Commit.Path != nil {
			return &pm.Content.Commit.Path.LeafNode
		}
		return nil
	})
	fuzzRoundTrip(f, seeds, func(t *testing.T, ln *LeafNode) {
		if s, err := MLS128DHKEMX25519AES128GCMSHA256Ed25519.Suite(); err == nil {
			ln.VerifySignature(s, []byte("g"), 0) // must not panic
		}
	})
}

func FuzzProposal(f *testing.F) {
	seeds := innerSeeds(f, func(m *MLSMessage) roundTripper {
		if pm := m.PublicMessage; pm != nil && pm.Content.Proposal != nil {
			return pm.Content.Proposal
		}
		return nil
	})
	for _, m := range collectVectorMessages(f) {
		if m.kind == "Proposal" {
			seeds = append(seeds, m.data)
		}
	}
	fuzzRoundTrip[Proposal](f, seeds, nil)
}

func FuzzCommit(f *testing.F) {
	var cases []map[string]hexBytes
	loadCodecVectors(f, "messages.json", &cases)
	var seeds [][]byte
	for _, c := range cases[:20] {
		seeds = append(seeds, c["commit"])
	}
	seeds = append(seeds, innerSeeds(f, func(m *MLSMessage) roundTripper {
		if pm := m.PublicMessage; pm != nil && pm.Content.Commit != nil {
			return pm.Content.Commit
		}
		return nil
	})...)
	fuzzRoundTrip[Commit](f, seeds, nil)
}

func FuzzGroupInfo(f *testing.F) {
	seeds := innerSeeds(f, func(m *MLSMessage) roundTripper {
		if m.GroupInfo != nil {
			return m.GroupInfo
		}
		return nil
	})
	fuzzRoundTrip(f, seeds, func(t *testing.T, g *GroupInfo) {
		g.GroupContext.Extensions.RatchetTree()     // must not panic
		g.GroupContext.Extensions.ExternalSenders() // must not panic
		g.Extensions.ExternalPub()                  // must not panic
	})
}

func FuzzWelcome(f *testing.F) {
	seeds := innerSeeds(f, func(m *MLSMessage) roundTripper {
		if m.Welcome != nil {
			return m.Welcome
		}
		return nil
	})
	fuzzRoundTrip(f, seeds, func(t *testing.T, w *Welcome) {
		if len(w.KeyPackageRefs()) != len(w.Secrets) {
			t.Fatal("KeyPackageRefs length")
		}
		if info, err := w.Info(); err == nil && len(info.KeyPackageRefs) != len(w.Secrets) {
			t.Fatal("Info refs length")
		}
	})
}

func FuzzRatchetTree(f *testing.F) {
	fuzzRoundTrip[RatchetTree](f, fuzzSeeds(f, "RatchetTree", "ratchet_tree"), nil)
}

func FuzzGroupSecrets(f *testing.F) {
	fuzzRoundTrip[GroupSecrets](f, fuzzSeeds(f, "", "group_secrets"), nil)
}

func FuzzUpdatePath(f *testing.F) {
	fuzzRoundTrip[UpdatePath](f, fuzzSeeds(f, "UpdatePath"), nil)
}

func FuzzAuthenticatedContent(f *testing.F) {
	var cases []struct {
		AuthenticatedContent hexBytes `json:"authenticated_content"`
	}
	loadCodecVectors(f, "transcript-hashes.json", &cases)
	var seeds [][]byte
	for _, c := range cases {
		seeds = append(seeds, c.AuthenticatedContent)
	}
	fuzzRoundTrip[AuthenticatedContent](f, seeds, nil)
}
