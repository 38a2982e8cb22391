package ohttp

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

// TestRotation: a request encapsulated to the old key succeeds during the
// grace period and fails with ErrUnknownKeyID after it.
func TestRotation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const grace = time.Hour
		ks := NewKeySet(grace)
		old, err := ks.Rotate(KEMX25519HKDFSHA256, nil, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		client, err := NewClient(ks.MarshalConfigs())
		if err != nil {
			t.Fatal(err)
		}
		if client.Config().KeyID != old.ID() {
			t.Fatalf("client uses key %d, want %d", client.Config().KeyID, old.ID())
		}
		encrypt := func() []byte {
			b, _, err := client.EncapsulateRequest([]byte("req"))
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		time.Sleep(10 * time.Minute)
		rotatedAt := time.Now()
		cur, err := ks.Rotate(KEMP256HKDFSHA256, nil, rotatedAt)
		if err != nil {
			t.Fatal(err)
		}
		if ks.Current() != cur || cur.ID() == old.ID() {
			t.Fatalf("current = %v, want the new key", ks.Current())
		}
		if cs := ks.Configs(); len(cs) != 1 || cs[0].KeyID != cur.ID() {
			t.Fatalf("published %+v, want only the new key", cs)
		}
		time.Sleep(grace - time.Second)
		if got, _, err := ks.DecapsulateRequest(encrypt()); err != nil || string(got) != "req" {
			t.Fatalf("old key within grace: %q, %v", got, err)
		}
		if ids := ks.Prune(time.Now()); len(ids) != 0 {
			t.Fatalf("pruned %v within grace", ids)
		}
		time.Sleep(time.Second)
		if _, _, err := ks.DecapsulateRequest(encrypt()); !errors.Is(err, ErrUnknownKeyID) {
			t.Fatalf("old key after grace: %v", err)
		}
		st := ks.States()
		if len(st) != 2 || !st[0].Retired.Equal(rotatedAt) || !st[0].Expires.Equal(rotatedAt.Add(grace)) || !st[1].Retired.IsZero() {
			t.Fatalf("states = %+v", st)
		}
		if ids := ks.Prune(time.Now()); !slices.Equal(ids, []uint8{old.ID()}) {
			t.Fatalf("pruned %v, want [%d]", ids, old.ID())
		}
		if len(ks.States()) != 1 {
			t.Fatalf("states after prune = %+v", ks.States())
		}
	})
}

func TestKeySetOperations(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	ks := NewKeySet(time.Minute)
	if ks.Current() != nil || len(ks.MarshalConfigs()) != 0 {
		t.Fatal("empty set has keys")
	}
	a := newTestKey(t, 10, KEMX25519HKDFSHA256)
	b := newTestKey(t, 20, KEMP256HKDFSHA256)
	if err := ks.Add(a); err != nil {
		t.Fatal(err)
	}
	if err := ks.Add(b); err != nil {
		t.Fatal(err)
	}
	if err := ks.Add(newTestKey(t, 10, KEMP256HKDFSHA256)); !errors.Is(err, ErrKeyIDInUse) {
		t.Fatalf("duplicate id: %v", err)
	}
	cs, err := UnmarshalKeyConfigs(ks.MarshalConfigs())
	if err != nil || len(cs) != 2 || cs[0].KeyID != 20 || cs[1].KeyID != 10 {
		t.Fatalf("published %+v, %v; want newest first", cs, err)
	}
	if ks.Current() != b {
		t.Fatal("current is not the newest")
	}
	if err := ks.Retire(20, now); err != nil {
		t.Fatal(err)
	}
	if err := ks.Retire(20, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if st := ks.States(); !st[1].Retired.Equal(now) {
		t.Fatalf("re-retiring moved the time: %+v", st[1])
	}
	if ks.Current() != a {
		t.Fatal("current after retiring the newest")
	}
	if err := ks.Retire(99, now); !errors.Is(err, ErrUnknownKeyID) {
		t.Fatalf("retire unknown: %v", err)
	}
	if _, err := ks.Lookup(20, now.Add(30*time.Second)); err != nil {
		t.Fatalf("lookup in grace: %v", err)
	}
	if _, err := ks.Lookup(20, now.Add(time.Minute)); !errors.Is(err, ErrUnknownKeyID) {
		t.Fatalf("lookup after grace: %v", err)
	}
	if !ks.Remove(10) || ks.Remove(10) {
		t.Fatal("remove")
	}
	if ks.Current() != nil || len(ks.MarshalConfigs()) != 0 {
		t.Fatal("keys left after removal")
	}
	// The next rotation picks the id after the newest key's.
	k, err := ks.Rotate(KEMX25519HKDFSHA256, nil, now)
	if err != nil || k.ID() != 21 {
		t.Fatalf("rotate: id %v, %v", k, err)
	}
}

func TestKeySetRestoreOrder(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	ks := NewKeySet(time.Hour)
	mk := func(id uint8, created time.Time) *Key {
		k, err := GenerateKey(id, KEMX25519HKDFSHA256, nil, created)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	newest, oldest, middle := mk(3, t0.Add(2*time.Hour)), mk(1, t0), mk(2, t0.Add(time.Hour))
	for _, k := range []*Key{newest, oldest, middle} {
		if err := ks.Add(k); err != nil {
			t.Fatal(err)
		}
	}
	if ks.Current() != newest {
		t.Fatalf("current = key %d, want the newest", ks.Current().ID())
	}
	cs := ks.Configs()
	if len(cs) != 3 || cs[0].KeyID != 3 || cs[1].KeyID != 2 || cs[2].KeyID != 1 {
		t.Fatalf("configs not newest first: %+v", cs)
	}
	if st := ks.States(); st[0].Key != oldest || st[2].Key != newest {
		t.Fatal("states not by creation time")
	}
}

func TestKeyIDsExhausted(t *testing.T) {
	ks := NewKeySet(time.Minute)
	for i := range 255 {
		if err := ks.Add(newTestKey(t, uint8(i+1), KEMX25519HKDFSHA256)); err != nil {
			t.Fatal(err)
		}
	}
	// Wraps past 255 to the free id 0.
	k, err := ks.Rotate(KEMX25519HKDFSHA256, nil, time.Now())
	if err != nil || k.ID() != 0 {
		t.Fatalf("rotate: %v, %v", k, err)
	}
	if _, err := ks.Rotate(KEMX25519HKDFSHA256, nil, time.Now()); !errors.Is(err, ErrKeyIDsExhausted) {
		t.Fatalf("rotate with 256 keys: %v", err)
	}
}

func TestKeyMarshal(t *testing.T) {
	created := time.Date(2025, 3, 4, 5, 6, 7, 890, time.UTC)
	for _, kem := range allKEMs {
		algs := []SymmetricAlgorithm{{KDFHKDFSHA512, AEADAES256GCM}, {KDFHKDFSHA256, AEADAES128GCM}}
		k, err := GenerateKey(42, kem, algs, created)
		if err != nil {
			t.Fatal(err)
		}
		b, err := k.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		got, err := UnmarshalKey(b)
		if err != nil {
			t.Fatal(err)
		}
		c1, _ := k.Config().MarshalBinary()
		c2, _ := got.Config().MarshalBinary()
		if got.ID() != 42 || got.KEM() != kem || !got.Created().Equal(created) ||
			!slices.Equal(got.Algorithms(), algs) || !bytes.Equal(c1, c2) {
			t.Fatalf("%v: restored key differs", kem)
		}
		cfg := k.Config()
		encReq, _, _ := EncapsulateRequest(&cfg, algs[0], []byte("hi"))
		if pt, _, err := got.DecapsulateRequest(encReq); err != nil || string(pt) != "hi" {
			t.Fatalf("%v: restored key does not decrypt: %v", kem, err)
		}
		again, _ := got.MarshalBinary()
		if !bytes.Equal(again, b) {
			t.Fatalf("%v: marshal not stable", kem)
		}
	}
}

func TestUnmarshalKeyErrors(t *testing.T) {
	k, _ := GenerateKey(1, KEMP256HKDFSHA256, nil, time.Unix(5, 0))
	good, _ := k.MarshalBinary()
	mod := func(i int, v byte) []byte { b := bytes.Clone(good); b[i] = v; return b }
	zeroScalar := bytes.Clone(good)
	copy(zeroScalar[18:18+32], make([]byte, 32))
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"cut", good[:len(good)-1], ErrTruncated},
		{"version", mod(0, 2), ErrInvalidKey},
		{"trailing", append(bytes.Clone(good), 0), ErrInvalidKey},
		{"nanoseconds", mod(12, 0xff), ErrInvalidKey},
		{"unknown KEM", mod(3, 0x99), ErrUnsupportedSuite},
		{"zero scalar", zeroScalar, ErrInvalidKey},
		{"unknown pair", mod(len(good)-1, 0x09), ErrUnsupportedSuite},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := UnmarshalKey(tc.in)
			if !errors.Is(err, tc.want) || !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("err = %v, want %v within ErrInvalidKey", err, tc.want)
			}
		})
	}
}

func TestGenerateKeyErrors(t *testing.T) {
	if _, err := GenerateKey(1, 0x99, nil, time.Now()); !errors.Is(err, ErrUnsupportedSuite) {
		t.Errorf("unknown KEM: %v", err)
	}
	if _, err := GenerateKey(1, KEMX25519HKDFSHA256, []SymmetricAlgorithm{}, time.Now()); !errors.Is(err, ErrUnsupportedSuite) {
		t.Errorf("no pairs: %v", err)
	}
	if _, err := NewKey(1, KEMX25519HKDFSHA256, nil, time.Now(), []byte{1}); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("short private key: %v", err)
	}
}
