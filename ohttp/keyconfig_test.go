package ohttp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func TestKeyConfigRoundTrip(t *testing.T) {
	for _, kem := range allKEMs {
		k := newTestKey(t, 200, kem)
		cfg := k.Config()
		b, err := cfg.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		p, _ := kem.params()
		if len(b) != 1+2+p.npk+2+4*len(AllAlgorithms()) {
			t.Errorf("%v: config of %d bytes", kem, len(b))
		}
		got, err := UnmarshalKeyConfig(b)
		if err != nil {
			t.Fatal(err)
		}
		if got.KeyID != 200 || got.KEM != kem || !bytes.Equal(got.PublicKey, cfg.PublicKey) || len(got.Algorithms) != 9 {
			t.Errorf("%v: decoded %+v", kem, got)
		}
	}
}

func TestKeyConfigList(t *testing.T) {
	a := newTestKey(t, 1, KEMX25519HKDFSHA256).Config()
	b := newTestKey(t, 2, KEMP256HKDFSHA256).Config()
	list, err := MarshalKeyConfigs([]KeyConfig{a, b})
	if err != nil {
		t.Fatal(err)
	}
	one, _ := a.MarshalBinary()
	if int(binary.BigEndian.Uint16(list)) != len(one) || !bytes.Equal(list[2:2+len(one)], one) {
		t.Fatalf("list does not start with the length-prefixed first config")
	}
	got, err := UnmarshalKeyConfigs(list)
	if err != nil || len(got) != 2 || got[0].KeyID != 1 || got[1].KeyID != 2 {
		t.Fatalf("list = %+v, %v", got, err)
	}
	// A configuration with an unknown KEM is framed by its length and
	// skipped; one with only unknown pairs is skipped too.
	unknownKEM := append([]byte{0, 8, 9, 0x00, 0x99}, 1, 2, 3, 4, 5)
	onlyUnknownPairs := a
	onlyUnknownPairs.Algorithms = []SymmetricAlgorithm{{0x77, 0x77}}
	oup, _ := MarshalKeyConfigs([]KeyConfig{onlyUnknownPairs})
	mixed := append(append(bytes.Clone(unknownKEM), oup...), list...)
	if got, err := UnmarshalKeyConfigs(mixed); err != nil || len(got) != 2 {
		t.Fatalf("mixed list = %+v, %v", got, err)
	}
	if _, err := UnmarshalKeyConfigs(append(unknownKEM, oup...)); !errors.Is(err, ErrNoUsableKey) {
		t.Errorf("no usable: %v", err)
	}
}

func TestKeyConfigErrors(t *testing.T) {
	good, _ := newTestKey(t, 1, KEMX25519HKDFSHA256).Config().MarshalBinary()
	withAlgLen := func(n uint16) []byte {
		b := bytes.Clone(good[:35])
		b = binary.BigEndian.AppendUint16(b, n)
		return append(b, make([]byte, n)...)
	}
	badPoint, _ := newTestKey(t, 1, KEMP256HKDFSHA256).Config().MarshalBinary()
	badPoint[3] = 0x05 // not an uncompressed point
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"short header", good[:2], ErrTruncated},
		{"short key", good[:20], ErrTruncated},
		{"no algorithms length", good[:35], ErrTruncated},
		{"algorithms cut", good[:len(good)-1], ErrTruncated},
		{"trailing byte", append(bytes.Clone(good), 0), ErrInvalidKeyConfig},
		{"zero algorithms", withAlgLen(0), ErrInvalidKeyConfig},
		{"algorithms not a multiple of 4", withAlgLen(6), ErrInvalidKeyConfig},
		{"unknown KEM", []byte{1, 0, 0x99, 1, 2}, ErrUnsupportedSuite},
		{"invalid P-256 point", badPoint, ErrInvalidKeyConfig},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := UnmarshalKeyConfig(tc.in); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	lists := []struct {
		name string
		in   []byte
	}{
		{"empty list", nil},
		{"one byte", []byte{0}},
		{"length past end", append([]byte{0, 50}, good...)},
		{"inner trailing byte", append(binary.BigEndian.AppendUint16(nil, uint16(len(good)+1)), append(bytes.Clone(good), 0)...)},
		{"good then garbage", append(append(binary.BigEndian.AppendUint16(nil, uint16(len(good))), good...), 0, 3, 1, 0, 0x20)},
	}
	for _, tc := range lists {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := UnmarshalKeyConfigs(tc.in); !errors.Is(err, ErrInvalidKeyConfig) {
				t.Fatalf("err = %v, want ErrInvalidKeyConfig", err)
			}
		})
	}
	encodeErrs := []KeyConfig{
		{KEM: 0x99, PublicKey: make([]byte, 32), Algorithms: AllAlgorithms()},
		{KEM: KEMX25519HKDFSHA256, PublicKey: make([]byte, 31), Algorithms: AllAlgorithms()},
		{KEM: KEMX25519HKDFSHA256, PublicKey: make([]byte, 32)},
	}
	for i, c := range encodeErrs {
		if _, err := c.MarshalBinary(); !errors.Is(err, ErrInvalidKeyConfig) {
			t.Errorf("encode %d: %v", i, err)
		}
	}
}
