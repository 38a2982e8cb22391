package directory_test

import (
	"bytes"
	"encoding"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/mls"
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
	req := directory.KeyPackageRequest{UserID: "mimi://b.example/u/bob", BearerToken: "mbt_x", Version: mls10, CipherSuite: suite1}
	t.Run("request", func(t *testing.T) {
		b := roundTrip[directory.KeyPackageRequest](t, req)
		// Exactly the draft's layout: opaque<V>, opaque<V>, uint16, uint16.
		want := append(append(append([]byte{22}, "mimi://b.example/u/bob"...), 5), "mbt_x"...)
		want = append(want, 0, 1, 0, 1)
		if !bytes.Equal(b, want) {
			t.Fatalf("KeyPackageRequest = %x, want %x", b, want)
		}
	})
	t.Run("response", func(t *testing.T) {
		b := roundTrip[directory.KeyPackageResponse](t, directory.KeyPackageResponse{KeyPackage: kp})
		if !bytes.Equal(b, kp) {
			t.Fatal("KeyPackageResponse is not the bare KeyPackage")
		}
		got := directory.KeyPackageResponse{KeyPackage: kp}
		if dec, err := got.Decode(); err != nil || dec.CipherSuite != suite1 {
			t.Fatalf("Decode = %v, %v", dec, err)
		}
	})
	t.Run("request bundle", func(t *testing.T) {
		reqs := make([]directory.KeyPackageRequest, directory.MaxBundleRequests)
		for i := range reqs {
			reqs[i] = req
			reqs[i].CipherSuite = mls.CipherSuite(i)
		}
		roundTrip[directory.KeyPackageRequestBundle](t, directory.KeyPackageRequestBundle{Requests: reqs[:1]})
		roundTrip[directory.KeyPackageRequestBundle](t, directory.KeyPackageRequestBundle{Requests: reqs})
	})
	t.Run("response bundle", func(t *testing.T) {
		results := []directory.KeyPackageResult{
			{Status: directory.StatusOK, Response: directory.KeyPackageResponse{KeyPackage: kp}},
			{Status: directory.StatusOK, Response: directory.KeyPackageResponse{KeyPackage: kp2}},
			{Status: directory.StatusRevokedToken, Message: "bearer token revoked; discover again"},
			{Status: directory.StatusOK, Response: directory.KeyPackageResponse{KeyPackage: kp}},
			{Status: 999, Message: ""},
		}
		roundTrip[directory.KeyPackageResponseBundle](t, directory.KeyPackageResponseBundle{Results: results})
		last := []directory.KeyPackageResult{results[2], results[1]} // a KeyPackage that ends the input
		roundTrip[directory.KeyPackageResponseBundle](t, directory.KeyPackageResponseBundle{Results: last})
	})
	t.Run("discovery", func(t *testing.T) {
		roundTrip[directory.DiscoveryResponse](t, directory.DiscoveryResponse{UserID: "mimi://b.example/u/bob", Provider: "b.example", BearerToken: "mbt_abc"})
	})
	t.Run("low notice", func(t *testing.T) {
		b := roundTrip[directory.KeyPackagesLow](t, directory.KeyPackagesLow{CipherSuite: suite2, Remaining: 4})
		if !bytes.Equal(b, []byte{0, 2, 0, 0, 0, 4}) {
			t.Fatalf("KeyPackagesLow = %x", b)
		}
	})
	t.Run("upload", func(t *testing.T) {
		roundTrip[directory.KeyPackageUpload](t, directory.KeyPackageUpload{KeyPackages: [][]byte{f.KeyPackages[0].KeyPackage, kp}})
		roundTrip[directory.KeyPackageUploadResult](t, directory.KeyPackageUploadResult{Refs: [][]byte{f.KeyPackages[0].KeyPackageRef}})
		roundTrip[directory.KeyPackageStock](t, directory.KeyPackageStock{CipherSuite: suite1, Available: 7, LastResort: true})
	})
}

func TestCodecRefusals(t *testing.T) {
	f := loadFixtures(t)
	kp := []byte(f.KeyPackages[0].KeyPackageBare)
	long := strings.Repeat("x", directory.MaxUserIDLen+1)
	encodeTests := []struct {
		name string
		v    codecValue
		want error
	}{
		{"empty request bundle", directory.KeyPackageRequestBundle{}, directory.ErrMalformed},
		{"oversized request bundle", directory.KeyPackageRequestBundle{Requests: make([]directory.KeyPackageRequest, 101)}, directory.ErrBundleTooLarge},
		{"long user id", directory.KeyPackageRequest{UserID: long}, directory.ErrFieldTooLarge},
		{"long token", directory.KeyPackageRequest{BearerToken: long}, directory.ErrFieldTooLarge},
		{"empty response", directory.KeyPackageResponse{}, directory.ErrMalformed},
		{"empty response bundle", directory.KeyPackageResponseBundle{}, directory.ErrMalformed},
		{"long message", directory.KeyPackageResponseBundle{Results: []directory.KeyPackageResult{{Status: 2, Message: long}}}, directory.ErrFieldTooLarge},
		{"long provider", directory.DiscoveryResponse{Provider: long}, directory.ErrFieldTooLarge},
		{"negative count", directory.KeyPackageStock{Available: -1}, directory.ErrFieldTooLarge},
	}
	for _, tc := range encodeTests {
		t.Run("encode "+tc.name, func(t *testing.T) {
			if _, err := tc.v.MarshalBinary(); !errors.Is(err, tc.want) {
				t.Fatalf("MarshalBinary = %v, want %v", err, tc.want)
			}
		})
	}
	oneReq, _ := directory.KeyPackageRequestBundle{Requests: []directory.KeyPackageRequest{{UserID: "u", BearerToken: "t"}}}.MarshalBinary()
	big := make([]directory.KeyPackageRequest, 101)
	bigBody := []byte{}
	for range big {
		bigBody = append(bigBody, 1, 'u', 1, 't', 0, 1, 0, 1)
	}
	bigBundle := append([]byte{0x40 | byte(len(bigBody)>>8), byte(len(bigBody))}, bigBody...)
	okResult, _ := directory.KeyPackageResponseBundle{Results: []directory.KeyPackageResult{{Response: directory.KeyPackageResponse{KeyPackage: kp}}}}.MarshalBinary()
	decodeTests := []struct {
		name string
		v    encoding.BinaryUnmarshaler
		in   []byte
		want error
	}{
		{"bundle of 101", new(directory.KeyPackageRequestBundle), bigBundle, directory.ErrBundleTooLarge},
		{"empty bundle", new(directory.KeyPackageRequestBundle), []byte{0}, directory.ErrMalformed},
		{"truncated bundle", new(directory.KeyPackageRequestBundle), oneReq[:len(oneReq)-1], directory.ErrMalformed},
		{"trailing byte", new(directory.KeyPackageRequestBundle), append(append([]byte{}, oneReq...), 0), directory.ErrMalformed},
		{"non-minimal varint", new(directory.KeyPackageRequest), []byte{0x40, 1, 'u', 1, 't', 0, 1, 0, 1}, directory.ErrMalformed},
		{"varint prefix 11", new(directory.KeyPackageRequest), []byte{0xc0, 0, 0, 0, 0, 0, 0, 1}, directory.ErrMalformed},
		{"long user id", new(directory.KeyPackageRequest), append([]byte{0x44, 0x01}, make([]byte, 0x401+6)...), directory.ErrMalformed},
		{"huge length", new(directory.KeyPackageRequest), []byte{0xbf, 0xff, 0xff, 0xff}, directory.ErrMalformed},
		{"response garbage", new(directory.KeyPackageResponse), []byte{0, 1, 0, 1, 7}, directory.ErrMalformed},
		{"response trailing", new(directory.KeyPackageResponse), append(append([]byte{}, kp...), 9), directory.ErrMalformed},
		{"response bundle truncated", new(directory.KeyPackageResponseBundle), okResult[:len(okResult)-3], directory.ErrMalformed},
		{"result status only", new(directory.KeyPackageResponseBundle), []byte{1, 0}, directory.ErrMalformed},
		{"empty response bundle", new(directory.KeyPackageResponseBundle), []byte{0}, directory.ErrMalformed},
		{"discovery truncated", new(directory.DiscoveryResponse), []byte{3, 'a', 'b'}, directory.ErrMalformed},
		{"low notice short", new(directory.KeyPackagesLow), []byte{0, 1, 0, 0, 0}, directory.ErrMalformed},
		{"count bad bool", new(directory.KeyPackageStock), []byte{0, 1, 0, 0, 0, 1, 2}, directory.ErrMalformed},
		{"upload truncated", new(directory.KeyPackageUpload), []byte{2, 5, 1}, directory.ErrMalformed},
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
		want directory.FetchStatus
	}{
		{nil, directory.StatusOK},
		{directory.ErrUnknownUser, directory.StatusUnknownUser},
		{directory.ErrTokenInvalid, directory.StatusBadToken},
		{directory.ErrTokenRevoked, directory.StatusRevokedToken},
		{directory.ErrNoKeyPackage, directory.StatusNoKeyPackage},
		{directory.ErrMalformed, directory.StatusMalformed},
		{directory.ErrRateLimited, directory.StatusRateLimited},
		{errors.New("disk on fire"), directory.StatusInternal},
		{&directory.FetchError{Status: directory.StatusRevokedToken}, directory.StatusRevokedToken},
	}
	for _, tc := range tests {
		t.Run(tc.want.String(), func(t *testing.T) {
			if got := directory.StatusOf(tc.err); got != tc.want {
				t.Fatalf("StatusOf(%v) = %s, want %s", tc.err, got, tc.want)
			}
		})
	}
	r := directory.KeyPackageResult{Status: directory.StatusRevokedToken, Message: "m"}
	if err := r.Err(); !errors.Is(err, directory.ErrTokenRevoked) || errors.Is(err, directory.ErrTokenInvalid) || !r.Status.DiscoverAgain() {
		t.Fatalf("Err() = %v", err)
	}
	if directory.FetchStatus(42).String() != "status(42)" || directory.StatusNoKeyPackage.DiscoverAgain() {
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
	seeds(f, directory.KeyPackageRequest{UserID: "mimi://b.example/u/bob", BearerToken: "mbt_x", Version: 1, CipherSuite: 1})
	f.Fuzz(fuzzRoundTrip[directory.KeyPackageRequest])
}

func FuzzKeyPackageRequestBundle(f *testing.F) {
	q := directory.KeyPackageRequest{UserID: "mimi://b.example/u/bob", BearerToken: "mbt_x", Version: 1, CipherSuite: 1}
	seeds(f, directory.KeyPackageRequestBundle{Requests: []directory.KeyPackageRequest{q, q, {}}})
	f.Fuzz(fuzzRoundTrip[directory.KeyPackageRequestBundle])
}

func FuzzKeyPackageResponse(f *testing.F) {
	a, b := fixtureKPs(f)
	seeds(f, directory.KeyPackageResponse{KeyPackage: a}, directory.KeyPackageResponse{KeyPackage: b})
	f.Fuzz(fuzzRoundTrip[directory.KeyPackageResponse])
}

func FuzzKeyPackageResponseBundle(f *testing.F) {
	a, b := fixtureKPs(f)
	seeds(f, directory.KeyPackageResponseBundle{Results: []directory.KeyPackageResult{
		{Response: directory.KeyPackageResponse{KeyPackage: a}}, {Status: 4, Message: "none"},
		{Response: directory.KeyPackageResponse{KeyPackage: b}}}})
	f.Fuzz(fuzzRoundTrip[directory.KeyPackageResponseBundle])
}

func FuzzDiscoveryResponse(f *testing.F) {
	seeds(f, directory.DiscoveryResponse{UserID: "mimi://b.example/u/bob", Provider: "b.example", BearerToken: "mbt_x"})
	f.Fuzz(fuzzRoundTrip[directory.DiscoveryResponse])
}

func FuzzKeyPackagesLow(f *testing.F) {
	seeds(f, directory.KeyPackagesLow{CipherSuite: 1, Remaining: 3})
	f.Fuzz(fuzzRoundTrip[directory.KeyPackagesLow])
}

func FuzzKeyPackageUpload(f *testing.F) {
	a, b := fixtureKPs(f)
	seeds(f, directory.KeyPackageUpload{KeyPackages: [][]byte{a, b}}, directory.KeyPackageUploadResult{Refs: [][]byte{{1, 2}}})
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRoundTrip[directory.KeyPackageUpload](t, data)
		fuzzRoundTrip[directory.KeyPackageUploadResult](t, data)
		fuzzRoundTrip[directory.KeyPackageStock](t, data)
	})
}
