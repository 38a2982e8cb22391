package protocol_test

import (
	"bytes"
	"encoding"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/mls/mlstest"
	"github.com/mimids/mimids/protocol"
)

type codecValue interface {
	encoding.BinaryMarshaler
}

// roundTrip encodes v, decodes into fresh, compares, and re-encodes.
func roundTrip[T any, P interface {
	*T
	encoding.BinaryUnmarshaler
}](t *testing.T, v codecValue) []byte {
	t.Helper()
	b, err := v.MarshalBinary()
	if err != nil {
		t.Fatalf("MarshalBinary(%+v): %v", v, err)
	}
	got := P(new(T))
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatalf("UnmarshalBinary: %v", err)
	}
	if !reflect.DeepEqual(*got, v) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", *got, v)
	}
	again, err := any(*got).(codecValue).MarshalBinary()
	if err != nil || !bytes.Equal(again, b) {
		t.Fatalf("re-encoding differs: %x vs %x (%v)", again, b, err)
	}
	return b
}

func TestCodecRoundTrip(t *testing.T) {
	f := loadFixtures(t)
	kp := []byte(f.KeyPackages[0].KeyPackageBare)
	kp2 := []byte(f.KeyPackages[2].KeyPackageBare)
	req := protocol.KeyPackageRequest{UserID: "mimi://b.example/u/bob", BearerToken: "mbt_x", Version: mls10, CipherSuite: suite1}
	t.Run("request", func(t *testing.T) {
		b := roundTrip[protocol.KeyPackageRequest](t, req)
		// Exactly the draft's layout: opaque<V>, opaque<V>, uint16, uint16.
		want := append(append(append([]byte{22}, "mimi://b.example/u/bob"...), 5), "mbt_x"...)
		want = append(want, 0, 1, 0, 1)
		if !bytes.Equal(b, want) {
			t.Fatalf("KeyPackageRequest = %x, want %x", b, want)
		}
	})
	t.Run("response", func(t *testing.T) {
		b := roundTrip[protocol.KeyPackageResponse](t, protocol.KeyPackageResponse{KeyPackage: kp})
		if !bytes.Equal(b, kp) {
			t.Fatal("KeyPackageResponse is not the bare KeyPackage")
		}
		got := protocol.KeyPackageResponse{KeyPackage: kp}
		if dec, err := got.Decode(); err != nil || dec.CipherSuite != suite1 {
			t.Fatalf("Decode = %v, %v", dec, err)
		}
	})
	t.Run("request bundle", func(t *testing.T) {
		reqs := make([]protocol.KeyPackageRequest, protocol.MaxBundleRequests)
		for i := range reqs {
			reqs[i] = req
			reqs[i].CipherSuite = mls.CipherSuite(i)
		}
		roundTrip[protocol.KeyPackageRequestBundle](t, protocol.KeyPackageRequestBundle{Requests: reqs[:1]})
		roundTrip[protocol.KeyPackageRequestBundle](t, protocol.KeyPackageRequestBundle{Requests: reqs})
	})
	t.Run("response bundle", func(t *testing.T) {
		results := []protocol.KeyPackageResult{
			{Status: protocol.StatusOK, Response: protocol.KeyPackageResponse{KeyPackage: kp}},
			{Status: protocol.StatusOK, Response: protocol.KeyPackageResponse{KeyPackage: kp2}},
			{Status: protocol.StatusRevokedToken, Message: "bearer token revoked; discover again"},
			{Status: protocol.StatusOK, Response: protocol.KeyPackageResponse{KeyPackage: kp}},
			{Status: 999, Message: ""},
		}
		roundTrip[protocol.KeyPackageResponseBundle](t, protocol.KeyPackageResponseBundle{Results: results})
		last := []protocol.KeyPackageResult{results[2], results[1]} // a KeyPackage that ends the input
		roundTrip[protocol.KeyPackageResponseBundle](t, protocol.KeyPackageResponseBundle{Results: last})
	})
	t.Run("discovery", func(t *testing.T) {
		roundTrip[protocol.DiscoveryResponse](t, protocol.DiscoveryResponse{UserID: "mimi://b.example/u/bob", Provider: "b.example", BearerToken: "mbt_abc"})
	})
	t.Run("low notice", func(t *testing.T) {
		b := roundTrip[protocol.KeyPackagesLow](t, protocol.KeyPackagesLow{CipherSuite: suite2, Remaining: 4})
		if !bytes.Equal(b, []byte{0, 2, 0, 0, 0, 4}) {
			t.Fatalf("KeyPackagesLow = %x", b)
		}
	})
	t.Run("exhausted notice", func(t *testing.T) {
		b := roundTrip[protocol.KeyPackagesExhausted](t, protocol.KeyPackagesExhausted{CipherSuite: suite2, Reason: protocol.ExhaustedClaimsLimited})
		if !bytes.Equal(b, []byte{0, 2, 2}) || protocol.ExhaustedClaimsLimited.String() != "claims_limited" ||
			protocol.KindKeyPackagesExhausted.String() != "key_packages_exhausted" {
			t.Fatalf("KeyPackagesExhausted = %x", b)
		}
	})
	t.Run("upload", func(t *testing.T) {
		roundTrip[protocol.KeyPackageUpload](t, protocol.KeyPackageUpload{KeyPackages: [][]byte{f.KeyPackages[0].KeyPackage, kp}})
		roundTrip[protocol.KeyPackageUploadResult](t, protocol.KeyPackageUploadResult{Refs: [][]byte{f.KeyPackages[0].KeyPackageRef}})
		roundTrip[protocol.KeyPackageStock](t, protocol.KeyPackageStock{CipherSuite: suite1, Available: 7, LastResort: true})
	})
}

func TestCodecRefusals(t *testing.T) {
	f := loadFixtures(t)
	kp := []byte(f.KeyPackages[0].KeyPackageBare)
	long := strings.Repeat("x", protocol.MaxUserIDLen+1)
	encodeTests := []struct {
		name string
		v    codecValue
		want error
	}{
		{"empty request bundle", protocol.KeyPackageRequestBundle{}, protocol.ErrMalformed},
		{"oversized request bundle", protocol.KeyPackageRequestBundle{Requests: make([]protocol.KeyPackageRequest, 101)}, protocol.ErrBundleTooLarge},
		{"long user id", protocol.KeyPackageRequest{UserID: long}, protocol.ErrTooLarge},
		{"long token", protocol.KeyPackageRequest{BearerToken: long}, protocol.ErrTooLarge},
		{"empty response", protocol.KeyPackageResponse{}, protocol.ErrMalformed},
		{"empty response bundle", protocol.KeyPackageResponseBundle{}, protocol.ErrMalformed},
		{"long message", protocol.KeyPackageResponseBundle{Results: []protocol.KeyPackageResult{{Status: 2, Message: long}}}, protocol.ErrTooLarge},
		{"long provider", protocol.DiscoveryResponse{Provider: long}, protocol.ErrTooLarge},
		{"negative count", protocol.KeyPackageStock{Available: -1}, protocol.ErrTooLarge},
	}
	for _, tc := range encodeTests {
		t.Run("encode "+tc.name, func(t *testing.T) {
			if _, err := tc.v.MarshalBinary(); !errors.Is(err, tc.want) {
				t.Fatalf("MarshalBinary = %v, want %v", err, tc.want)
			}
		})
	}
	oneReq, _ := protocol.KeyPackageRequestBundle{Requests: []protocol.KeyPackageRequest{{UserID: "u", BearerToken: "t"}}}.MarshalBinary()
	big := make([]protocol.KeyPackageRequest, 101)
	bigBody := []byte{}
	for range big {
		bigBody = append(bigBody, 1, 'u', 1, 't', 0, 1, 0, 1)
	}
	bigBundle := append([]byte{0x40 | byte(len(bigBody)>>8), byte(len(bigBody))}, bigBody...)
	okResult, _ := protocol.KeyPackageResponseBundle{Results: []protocol.KeyPackageResult{{Response: protocol.KeyPackageResponse{KeyPackage: kp}}}}.MarshalBinary()
	decodeTests := []struct {
		name string
		v    encoding.BinaryUnmarshaler
		in   []byte
		want error
	}{
		{"bundle of 101", new(protocol.KeyPackageRequestBundle), bigBundle, protocol.ErrBundleTooLarge},
		{"empty bundle", new(protocol.KeyPackageRequestBundle), []byte{0}, protocol.ErrMalformed},
		{"truncated bundle", new(protocol.KeyPackageRequestBundle), oneReq[:len(oneReq)-1], protocol.ErrMalformed},
		{"trailing byte", new(protocol.KeyPackageRequestBundle), append(append([]byte{}, oneReq...), 0), protocol.ErrMalformed},
		{"non-minimal varint", new(protocol.KeyPackageRequest), []byte{0x40, 1, 'u', 1, 't', 0, 1, 0, 1}, protocol.ErrMalformed},
		{"varint prefix 11", new(protocol.KeyPackageRequest), []byte{0xc0, 0, 0, 0, 0, 0, 0, 1}, protocol.ErrMalformed},
		{"long user id", new(protocol.KeyPackageRequest), append([]byte{0x44, 0x01}, make([]byte, 0x401+6)...), protocol.ErrMalformed},
		{"huge length", new(protocol.KeyPackageRequest), []byte{0xbf, 0xff, 0xff, 0xff}, protocol.ErrMalformed},
		{"response garbage", new(protocol.KeyPackageResponse), []byte{0, 1, 0, 1, 7}, protocol.ErrMalformed},
		{"response trailing", new(protocol.KeyPackageResponse), append(append([]byte{}, kp...), 9), protocol.ErrMalformed},
		{"response bundle truncated", new(protocol.KeyPackageResponseBundle), okResult[:len(okResult)-3], protocol.ErrMalformed},
		{"result status only", new(protocol.KeyPackageResponseBundle), []byte{1, 0}, protocol.ErrMalformed},
		{"empty response bundle", new(protocol.KeyPackageResponseBundle), []byte{0}, protocol.ErrMalformed},
		{"discovery truncated", new(protocol.DiscoveryResponse), []byte{3, 'a', 'b'}, protocol.ErrMalformed},
		{"low notice short", new(protocol.KeyPackagesLow), []byte{0, 1, 0, 0, 0}, protocol.ErrMalformed},
		{"exhausted notice long", new(protocol.KeyPackagesExhausted), []byte{0, 1, 1, 0}, protocol.ErrMalformed},
		{"count bad bool", new(protocol.KeyPackageStock), []byte{0, 1, 0, 0, 0, 1, 2}, protocol.ErrMalformed},
		{"upload truncated", new(protocol.KeyPackageUpload), []byte{2, 5, 1}, protocol.ErrMalformed},
	}
	for _, tc := range decodeTests {
		t.Run("decode "+tc.name, func(t *testing.T) {
			if err := tc.v.UnmarshalBinary(tc.in); !errors.Is(err, tc.want) {
				t.Fatalf("UnmarshalBinary = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestStatus(t *testing.T) {
	tests := []struct {
		err  error
		want protocol.FetchStatus
	}{
		{nil, protocol.StatusOK},
		{protocol.ErrUnknownUser, protocol.StatusUnknownUser},
		{protocol.ErrBadToken, protocol.StatusBadToken},
		{protocol.ErrRevokedToken, protocol.StatusRevokedToken},
		{protocol.ErrNoKeyPackage, protocol.StatusNoKeyPackage},
		{protocol.ErrMalformed, protocol.StatusMalformed},
		{protocol.ErrRateLimited, protocol.StatusRateLimited},
		{errors.New("disk on fire"), protocol.StatusInternal},
		{&protocol.FetchError{Status: protocol.StatusRevokedToken}, protocol.StatusRevokedToken},
	}
	for _, tc := range tests {
		t.Run(tc.want.String(), func(t *testing.T) {
			if got := protocol.StatusOf(tc.err); got != tc.want {
				t.Fatalf("StatusOf(%v) = %s, want %s", tc.err, got, tc.want)
			}
		})
	}
	r := protocol.KeyPackageResult{Status: protocol.StatusRevokedToken, Message: "m"}
	if err := r.Err(); !errors.Is(err, protocol.ErrRevokedToken) || errors.Is(err, protocol.ErrBadToken) || !r.Status.DiscoverAgain() {
		t.Fatalf("Err() = %v", err)
	}
	if protocol.FetchStatus(42).String() != "status(42)" || protocol.StatusNoKeyPackage.DiscoverAgain() {
		t.Fatal("status names")
	}
}

// fuzzRoundTrip decodes data; what decodes must re-encode to the same bytes.
func fuzzRoundTrip[T any, P interface {
	*T
	encoding.BinaryUnmarshaler
}](t *testing.T, data []byte) {
	v := P(new(T))
	if err := v.UnmarshalBinary(data); err != nil {
		return
	}
	b, err := any(*v).(codecValue).MarshalBinary()
	if err != nil {
		t.Fatalf("decoded value does not encode: %v", err)
	}
	if !bytes.Equal(b, data) {
		t.Fatalf("re-encoding differs:\n in  %x\n out %x", data, b)
	}
}

func seeds(f *testing.F, vs ...codecValue) {
	for _, v := range vs {
		b, err := v.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte{})
	f.Add([]byte{0x40, 0x01})
}

func fixtureKPs(f *testing.F) ([]byte, []byte) {
	fx := loadFixtures(f)
	return fx.KeyPackages[0].KeyPackageBare, fx.KeyPackages[2].KeyPackageBare
}

func FuzzKeyPackageRequest(f *testing.F) {
	seeds(f, protocol.KeyPackageRequest{UserID: "mimi://b.example/u/bob", BearerToken: "mbt_x", Version: 1, CipherSuite: 1})
	f.Fuzz(fuzzRoundTrip[protocol.KeyPackageRequest])
}

func FuzzKeyPackageRequestBundle(f *testing.F) {
	q := protocol.KeyPackageRequest{UserID: "mimi://b.example/u/bob", BearerToken: "mbt_x", Version: 1, CipherSuite: 1}
	seeds(f, protocol.KeyPackageRequestBundle{Requests: []protocol.KeyPackageRequest{q, q, {}}})
	f.Fuzz(fuzzRoundTrip[protocol.KeyPackageRequestBundle])
}

func FuzzKeyPackageResponse(f *testing.F) {
	a, b := fixtureKPs(f)
	seeds(f, protocol.KeyPackageResponse{KeyPackage: a}, protocol.KeyPackageResponse{KeyPackage: b})
	f.Fuzz(fuzzRoundTrip[protocol.KeyPackageResponse])
}

func FuzzKeyPackageResponseBundle(f *testing.F) {
	a, b := fixtureKPs(f)
	seeds(f, protocol.KeyPackageResponseBundle{Results: []protocol.KeyPackageResult{
		{Response: protocol.KeyPackageResponse{KeyPackage: a}}, {Status: 4, Message: "none"},
		{Response: protocol.KeyPackageResponse{KeyPackage: b}}}})
	f.Fuzz(fuzzRoundTrip[protocol.KeyPackageResponseBundle])
}

func FuzzDiscoveryResponse(f *testing.F) {
	seeds(f, protocol.DiscoveryResponse{UserID: "mimi://b.example/u/bob", Provider: "b.example", BearerToken: "mbt_x"})
	f.Fuzz(fuzzRoundTrip[protocol.DiscoveryResponse])
}

func FuzzKeyPackagesLow(f *testing.F) {
	seeds(f, protocol.KeyPackagesLow{CipherSuite: 1, Remaining: 3})
	f.Fuzz(fuzzRoundTrip[protocol.KeyPackagesLow])
}

func FuzzKeyPackagesExhausted(f *testing.F) {
	seeds(f, protocol.KeyPackagesExhausted{CipherSuite: 1, Reason: protocol.ExhaustedLastResortServed})
	f.Fuzz(fuzzRoundTrip[protocol.KeyPackagesExhausted])
}

func FuzzKeyPackageUpload(f *testing.F) {
	a, b := fixtureKPs(f)
	seeds(f, protocol.KeyPackageUpload{KeyPackages: [][]byte{a, b}}, protocol.KeyPackageUploadResult{Refs: [][]byte{{1, 2}}})
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRoundTrip[protocol.KeyPackageUpload](t, data)
		fuzzRoundTrip[protocol.KeyPackageUploadResult](t, data)
		fuzzRoundTrip[protocol.KeyPackageStock](t, data)
	})
}

// loadFixtures reads the ts-mls KeyPackages (mls/testdata/tsmls/keypackages.json).
func loadFixtures(t testing.TB) mlstest.KeyPackageFixtures {
	t.Helper()
	f, err := mlstest.LoadKeyPackageFixtures(filepath.Join("..", "mls", "testdata", "tsmls", "keypackages.json"))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

const (
	suite1 = mls.MLS128DHKEMX25519AES128GCMSHA256Ed25519
	suite2 = mls.MLS128DHKEMP256AES128GCMSHA256P256
	mls10  = mls.ProtocolVersionMLS10
)
