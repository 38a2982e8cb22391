package follower_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/mimids/mimids/follower"
	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/protocol"
)

// servedRefs is a fixed record of served refs.
type servedRefs map[string]int64

func (s servedRefs) ServedClient(_ context.Context, ref []byte) (int64, bool, error) {
	if string(ref) == "broken" {
		return 0, false, errors.New("store down")
	}
	c, ok := s[string(ref)]
	return c, ok, nil
}

// mailbox records deliveries; clients in full refuse with mailbox_full.
type mailbox struct {
	got  map[int64][]protocol.WelcomeDelivery
	full map[int64]bool
}

func (m *mailbox) Deliver(_ context.Context, client int64, kind uint16, payload []byte) error {
	if m.full[client] {
		return protocol.NewError(protocol.CodeMailboxFull, "full")
	}
	if kind != uint16(protocol.KindWelcome) {
		return fmt.Errorf("kind %d", kind)
	}
	var d protocol.WelcomeDelivery
	if err := d.UnmarshalBinary(payload); err != nil {
		return err
	}
	m.got[client] = append(m.got[client], d)
	return nil
}

func welcomeBytes(t *testing.T) []byte {
	w := &mls.Welcome{CipherSuite: 1, EncryptedGroupInfo: []byte{1}, Secrets: []mls.EncryptedGroupSecrets{{NewMember: []byte("r1"),
		EncryptedGroupSecrets: mls.HPKECiphertext{KEMOutput: []byte{4}, Ciphertext: []byte{5}}}}}
	b, err := (&mls.MLSMessage{Version: mls.ProtocolVersionMLS10, WireFormat: mls.WireFormatWelcome, Welcome: w}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func refs(ss ...string) [][]byte {
	var out [][]byte
	for _, s := range ss {
		out = append(out, []byte(s))
	}
	return out
}

// TestWelcomes: the follower accepts and delivers only refs it served, grouped per
// client; a store failure is uncoded (retried), a bad body malformed.
func TestWelcomes(t *testing.T) {
	ctx := context.Background()
	served := servedRefs{"r1": 1, "r2": 1, "r3": 2, "r4": 3}
	wb := welcomeBytes(t)
	for _, c := range []struct {
		name     string
		refs     [][]byte
		accepted [][]byte           // Init's answer; nil: refused with code
		code     protocol.Code      // Init's and Deliver's refusal (0: none; 7: uncoded)
		clients  map[int64][][]byte // Deliver: refs per client mailbox
		full     int64
	}{
		{"all served", refs("r1", "r3", "r2"), refs("r1", "r3", "r2"), 0, map[int64][][]byte{1: refs("r1", "r2"), 2: refs("r3")}, 0},
		{"some served", refs("x", "r3", "y"), refs("r3"), 0, map[int64][][]byte{2: refs("r3")}, 0},
		{"repeated ref", refs("r3", "r3"), refs("r3"), 0, map[int64][][]byte{2: refs("r3")}, 0},
		{"none served", refs("x", "y"), nil, protocol.CodeNotFound, nil, 0},
		{"store down", refs("r1", "broken"), nil, protocol.CodeInternal, nil, 0},
		{"full mailbox skipped", refs("r1", "r4"), refs("r1", "r4"), 0, map[int64][][]byte{1: refs("r1")}, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			mb := &mailbox{got: map[int64][]protocol.WelcomeDelivery{}, full: map[int64]bool{c.full: true}}
			w := follower.NewWelcomes(served, mb, nil, nil)
			init, _ := (&protocol.WelcomeInit{WelcomeID: 9, Request: protocol.WelcomeInitRequest{KeyPackageRefs: c.refs}}).MarshalBinary()
			ans, err := w.Init(ctx, "hub.example", init)
			checkCode(t, "init", err, c.code)
			if err == nil {
				var a protocol.WelcomeInitAnswer
				if err := a.UnmarshalBinary(ans); err != nil || fmt.Sprint(a.Accepted) != fmt.Sprint(c.accepted) {
					t.Errorf("accepted %q (%v), want %q", a.Accepted, err, c.accepted)
				}
			}
			push, _ := (&protocol.WelcomePush{WelcomeID: 9, Delivery: protocol.WelcomeDelivery{GroupID: []byte("g"),
				KeyPackageRefs: c.refs, Welcome: wb}}).MarshalBinary()
			_, err = w.Deliver(ctx, "hub.example", push)
			checkCode(t, "deliver", err, c.code)
			if len(mb.got) != len(c.clients) {
				t.Fatalf("delivered to %d clients, want %d", len(mb.got), len(c.clients))
			}
			for client, want := range c.clients {
				got := mb.got[client]
				if len(got) != 1 || fmt.Sprint(got[0].KeyPackageRefs) != fmt.Sprint(want) || string(got[0].GroupID) != "g" {
					t.Errorf("client %d got %+v, want one Welcome with %q", client, got, want)
				}
			}
		})
	}
	w := follower.NewWelcomes(served, &mailbox{}, nil, nil)
	for _, h := range []func(context.Context, string, []byte) ([]byte, error){w.Init, w.Deliver} {
		_, err := h(ctx, "hub.example", []byte{1, 2})
		checkCode(t, "garbage", err, protocol.CodeMalformed)
	}
}

func checkCode(t *testing.T, what string, err error, want protocol.Code) {
	t.Helper()
	code, coded := protocol.CodeOf(err)
	switch {
	case want == 0 && err != nil:
		t.Errorf("%s: %v", what, err)
	case want == protocol.CodeInternal && (err == nil || (coded && code != protocol.CodeInternal)):
		t.Errorf("%s: %v, want an uncoded error", what, err)
	case want != 0 && want != protocol.CodeInternal && (!coded || code != want):
		t.Errorf("%s: %v, want code %v", what, err, want)
	}
}
