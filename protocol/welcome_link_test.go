package protocol

import (
	"bytes"
	"encoding/hex"
	"reflect"
	"testing"

	"github.com/mimids/mimids/mls"
)

func testWelcome(t *testing.T) []byte {
	t.Helper()
	w := &mls.Welcome{CipherSuite: 1, EncryptedGroupInfo: []byte{1, 2, 3}, Secrets: []mls.EncryptedGroupSecrets{{NewMember: []byte{0xaa, 0xbb},
		EncryptedGroupSecrets: mls.HPKECiphertext{KEMOutput: []byte{4}, Ciphertext: []byte{5}}}}}
	b, err := (&mls.MLSMessage{Version: mls.ProtocolVersionMLS10, WireFormat: mls.WireFormatWelcome, Welcome: w}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWelcomeLinkBytes pins the encodings docs/protocol.md §5.9 describes.
func TestWelcomeLinkBytes(t *testing.T) {
	wb := testWelcome(t)
	refs := [][]byte{{0xaa, 0xbb}, {0xcc}}
	for _, c := range []struct {
		name string
		v    interface{ MarshalBinary() ([]byte, error) }
		want string
	}{
		{"welcome_init", &WelcomeInit{WelcomeID: 258, Request: WelcomeInitRequest{KeyPackageRefs: refs}}, "0000000000000102" + "05" + "02aabb" + "01cc"},
		{"welcome_init_answer", &WelcomeInitAnswer{Accepted: refs[:1]}, "03" + "02aabb"},
		{"welcome_push", &WelcomePush{WelcomeID: 7, Delivery: WelcomeDelivery{GroupID: []byte{9}, KeyPackageRefs: refs[:1], Welcome: wb}},
			"0000000000000007" + "0109" + "03" + "02aabb" + hex.EncodeToString(wb)},
		{"welcome_push_answer", &WelcomePushAnswer{Delivered: 3}, "00000003"},
	} {
		b, err := c.v.MarshalBinary()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := hex.EncodeToString(b); got != c.want {
			t.Errorf("%s = %s, want %s", c.name, got, c.want)
		}
	}
}

func TestWelcomeLinkRoundTrip(t *testing.T) {
	wb := testWelcome(t)
	in := &WelcomeInit{WelcomeID: 1 << 40, Request: WelcomeInitRequest{KeyPackageRefs: [][]byte{{1}, {2, 3}}}}
	b, _ := in.MarshalBinary()
	var gotIn WelcomeInit
	if err := gotIn.UnmarshalBinary(b); err != nil || !reflect.DeepEqual(&gotIn, in) {
		t.Fatalf("welcome_init: %v %+v", err, gotIn)
	}
	push := &WelcomePush{WelcomeID: 5, Delivery: WelcomeDelivery{GroupID: []byte("g"), KeyPackageRefs: [][]byte{{1}}, Welcome: wb}}
	b, _ = push.MarshalBinary()
	var gotPush WelcomePush
	if err := gotPush.UnmarshalBinary(b); err != nil || !reflect.DeepEqual(&gotPush, push) {
		t.Fatalf("welcome: %v %+v", err, gotPush)
	}
	// Truncated or trailing bytes are refused.
	for _, bad := range [][]byte{b[:5], b[:len(b)-1], append(bytes.Clone(b), 0)} {
		if err := gotPush.UnmarshalBinary(bad); err == nil {
			t.Errorf("welcome of %d bytes accepted", len(bad))
		}
	}
	b, _ = in.MarshalBinary()
	if err := gotIn.UnmarshalBinary(append(b, 1)); err == nil {
		t.Error("welcome_init with a trailing byte accepted")
	}
	var a WelcomePushAnswer
	if err := a.UnmarshalBinary([]byte{0, 0, 1}); err == nil {
		t.Error("short welcome answer accepted")
	}
}
