package protocol

// The KeyPackage fetch protocol in TLS presentation language (RFC 9420 §2.1, with §2.1.2
// variable-length integers for every <V> vector). KeyPackageRequest and
// KeyPackageResponse are exactly draft-mcmillion-mimi-delivery-service-00's; the bundle,
// result, discovery and notice structs are mimids':
//
//	struct {
//	    opaque user_id<V>;            // the user's MIMI URI, mimi://<provider>/u/<user>
//	    opaque bearer_token<V>;       // from DiscoveryResponse
//	    ProtocolVersion version;
//	    CipherSuite cipher_suite;
//	} KeyPackageRequest;
//
//	struct { KeyPackage key_package; } KeyPackageResponse;
//
//	struct { KeyPackageRequest requests<V>; } KeyPackageRequestBundle;   // 1..100 requests
//
//	struct {
//	    uint16 status;                // FetchStatus
//	    select (status) {
//	        case 0:  KeyPackageResponse response;
//	        default: opaque message<V>;   // UTF-8, for humans
//	    };
//	} KeyPackageResult;
//
//	struct { KeyPackageResult results<V>; } KeyPackageResponseBundle;  // results[i] answers requests[i]
//
//	struct { opaque user_id<V>; opaque provider<V>; opaque bearer_token<V>; } DiscoveryResponse;
//
//	struct { CipherSuite cipher_suite; uint32 remaining; } KeyPackagesLow;  // mailbox kind 4
//
//	enum { last_resort_served(1), claims_limited(2), (255) } ExhaustedReason;
//	struct { CipherSuite cipher_suite; ExhaustedReason reason; } KeyPackagesExhausted;  // mailbox kind 5
//
// A KeyPackage has no length prefix of its own; a decoder finds its end by decoding it.
// The upload bodies of the client socket are in upload.go.

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mimids/mimids/mls"
)

// Limits of the fetch protocol.
const (
	// MaxBundleRequests bounds the requests (and so the results) of one bundle.
	MaxBundleRequests = 100
	// MaxUserIDLen bounds a user_id.
	MaxUserIDLen = 1024
	// MaxBearerTokenLen bounds a bearer_token.
	MaxBearerTokenLen = 512
	// MaxProviderLen bounds a provider domain.
	MaxProviderLen = 255
	// MaxKeyPackageSize bounds one encoded KeyPackage (uploaded or served).
	MaxKeyPackageSize = 64 << 10
	// MaxResultMessageLen bounds a KeyPackageResult message.
	MaxResultMessageLen = 1024
	// MaxRefLen bounds a KeyPackageRef (the largest suite hash is 64 bytes).
	MaxRefLen = 64
)

var (
	// ErrBundleTooLarge reports a bundle of more than MaxBundleRequests requests, or an
	// upload of more than the configured number of KeyPackages.
	ErrBundleTooLarge = NewError(CodeTooLarge, "protocol: too many items in one bundle")
)

// The errors a FetchStatus stands for: a *FetchError matches the one of its status
// with errors.Is (StatusMalformed matches ErrMalformed).
var (
	ErrUnknownUser  = errors.New("protocol: unknown user")
	ErrBadToken     = errors.New("protocol: bearer token unknown, expired or not valid for this user; discover again")
	ErrRevokedToken = errors.New("protocol: bearer token revoked; discover again")
	ErrNoKeyPackage = errors.New("protocol: no KeyPackage for this version and cipher suite")
	ErrRateLimited  = errors.New("protocol: rate limited")
)

// FetchError is a KeyPackageResult that is not StatusOK, as a Go error. It matches the
// sentinel of its status with errors.Is (StatusUnknownUser matches ErrUnknownUser, ...).
type FetchError struct {
	Status  FetchStatus
	Message string
}

func (e *FetchError) Error() string {
	return fmt.Sprintf("protocol: fetch: %s: %s", e.Status, e.Message)
}

// Is matches the sentinel of e.Status.
func (e *FetchError) Is(target error) bool {
	s, ok := statusErrors[target]
	return ok && s == e.Status
}

var statusErrors = map[error]FetchStatus{
	ErrUnknownUser: StatusUnknownUser, ErrBadToken: StatusBadToken, ErrRevokedToken: StatusRevokedToken,
	ErrNoKeyPackage: StatusNoKeyPackage, ErrMalformed: StatusMalformed, ErrRateLimited: StatusRateLimited,
}

// StatusOf maps an error to its FetchStatus: StatusOK for nil, the status of a
// *FetchError or of a sentinel it wraps, StatusInternal for anything else.
func StatusOf(err error) FetchStatus {
	if err == nil {
		return StatusOK
	}
	var fe *FetchError
	if errors.As(err, &fe) {
		return fe.Status
	}
	for target, s := range statusErrors {
		if errors.Is(err, target) {
			return s
		}
	}
	return StatusInternal
}

// KeyPackageStock is what one client has stored for one cipher suite.
type KeyPackageStock struct {
	CipherSuite mls.CipherSuite
	Available   int  // not last resort, not expired
	LastResort  bool // an unexpired last resort is stored
}

// FetchStatus is a KeyPackageResult's status.
type FetchStatus uint16

const (
	// StatusOK: the result carries a KeyPackageResponse.
	StatusOK FetchStatus = 0
	// StatusUnknownUser: no such user at this provider.
	StatusUnknownUser FetchStatus = 1
	// StatusBadToken: the bearer token is unknown, expired or not valid for this user.
	// Discover the user again.
	StatusBadToken FetchStatus = 2
	// StatusRevokedToken: the bearer token was revoked. Discover the user again.
	StatusRevokedToken FetchStatus = 3
	// StatusNoKeyPackage: the user has no KeyPackage for this version and cipher suite.
	StatusNoKeyPackage FetchStatus = 4
	// StatusMalformed: the request is not acceptable (a field over its limit).
	StatusMalformed FetchStatus = 5
	// StatusRateLimited: too many requests; retry later.
	StatusRateLimited FetchStatus = 6
	// StatusInternal: the provider failed; the request may be retried.
	StatusInternal FetchStatus = 7
)

var statusNames = [...]string{"ok", "unknown_user", "bad_token", "revoked_token",
	"no_key_package", "malformed", "rate_limited", "internal"}

func (s FetchStatus) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("status(%d)", uint16(s))
}

// DiscoverAgain reports whether the requester must run discovery again to get a new
// bearer token.
func (s FetchStatus) DiscoverAgain() bool { return s == StatusBadToken || s == StatusRevokedToken }

// KeyPackageRequest is the draft's KeyPackageRequest.
type KeyPackageRequest struct {
	UserID      string
	BearerToken string
	Version     mls.ProtocolVersion
	CipherSuite mls.CipherSuite
}

// Check reports a field over its limit.
func (q *KeyPackageRequest) Check() error {
	switch {
	case len(q.UserID) > MaxUserIDLen:
		return fmt.Errorf("%w: user_id of %d bytes, limit %d", ErrTooLarge, len(q.UserID), MaxUserIDLen)
	case len(q.BearerToken) > MaxBearerTokenLen:
		return fmt.Errorf("%w: bearer_token of %d bytes, limit %d", ErrTooLarge, len(q.BearerToken), MaxBearerTokenLen)
	}
	return nil
}

func (q *KeyPackageRequest) encode(w *Writer) {
	w.String(q.UserID)
	w.String(q.BearerToken)
	w.U16(uint16(q.Version))
	w.U16(uint16(q.CipherSuite))
}

func (q *KeyPackageRequest) decode(r *Reader) {
	q.UserID = string(r.OpaqueMax("KeyPackageRequest.user_id", MaxUserIDLen))
	q.BearerToken = string(r.OpaqueMax("KeyPackageRequest.bearer_token", MaxBearerTokenLen))
	q.Version = mls.ProtocolVersion(r.U16("KeyPackageRequest.version"))
	q.CipherSuite = mls.CipherSuite(r.U16("KeyPackageRequest.cipher_suite"))
}

// MarshalBinary encodes q.
func (q KeyPackageRequest) MarshalBinary() ([]byte, error) {
	if err := q.Check(); err != nil {
		return nil, err
	}
	w := NewWriter(make([]byte, 0, 8+len(q.UserID)+len(q.BearerToken)))
	q.encode(w)
	return w.Bytes(), nil
}

// UnmarshalBinary decodes exactly one KeyPackageRequest from b.
func (q *KeyPackageRequest) UnmarshalBinary(b []byte) error {
	r := NewReader(b)
	q.decode(r)
	return done(r, "KeyPackageRequest")
}

// KeyPackageResponse is the draft's KeyPackageResponse. KeyPackage is the TLS encoding of
// exactly one (bare) KeyPackage; after UnmarshalBinary it aliases the input.
type KeyPackageResponse struct {
	KeyPackage []byte
}

// Decode decodes the KeyPackage.
func (p *KeyPackageResponse) Decode() (*mls.KeyPackage, error) {
	return mls.DecodeKeyPackage(p.KeyPackage)
}

// Check reports an empty or oversized KeyPackage.
func (p *KeyPackageResponse) Check() error {
	switch {
	case len(p.KeyPackage) == 0:
		return fmt.Errorf("%w: empty key_package", ErrMalformed)
	case len(p.KeyPackage) > MaxKeyPackageSize:
		return fmt.Errorf("%w: key_package of %d bytes, limit %d", ErrTooLarge, len(p.KeyPackage), MaxKeyPackageSize)
	}
	return nil
}

// MarshalBinary encodes p.
func (p KeyPackageResponse) MarshalBinary() ([]byte, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	return append([]byte(nil), p.KeyPackage...), nil
}

// UnmarshalBinary decodes exactly one KeyPackageResponse from b.
func (p *KeyPackageResponse) UnmarshalBinary(b []byte) error {
	kp, rest, err := splitKeyPackage(b)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: KeyPackageResponse: %d trailing bytes", ErrMalformed, len(rest))
	}
	p.KeyPackage = kp
	return nil
}

// splitKeyPackage cuts one KeyPackage off the front of b. A KeyPackage has no length
// prefix of its own, so its end is found by decoding it with mls: a KeyPackage followed
// by more bytes decodes completely and then fails with ErrTrailingData at its end.
func splitKeyPackage(b []byte) (kp, rest []byte, err error) {
	_, derr := mls.DecodeKeyPackage(b)
	if derr == nil {
		return b, nil, sizeKeyPackage(b)
	}
	var de *mls.DecodeError
	if errors.As(derr, &de) && errors.Is(de.Err, mls.ErrTrailingData) && de.Offset > 0 && de.Offset < len(b) {
		return b[:de.Offset:de.Offset], b[de.Offset:], sizeKeyPackage(b[:de.Offset])
	}
	return nil, nil, fmt.Errorf("%w: KeyPackageResponse.key_package: %w", ErrMalformed, derr)
}

func sizeKeyPackage(kp []byte) error {
	if len(kp) > MaxKeyPackageSize {
		return fmt.Errorf("%w: key_package of %d bytes, limit %d", ErrMalformed, len(kp), MaxKeyPackageSize)
	}
	return nil
}

// KeyPackageRequestBundle is several KeyPackageRequests in one OHTTP transaction.
type KeyPackageRequestBundle struct {
	Requests []KeyPackageRequest
}

// MarshalBinary encodes b; it refuses an empty bundle or one over MaxBundleRequests.
func (b KeyPackageRequestBundle) MarshalBinary() ([]byte, error) {
	if err := CheckBundleLen(len(b.Requests)); err != nil {
		return nil, err
	}
	body := NewWriter(make([]byte, 0, 64*len(b.Requests)))
	for i := range b.Requests {
		if err := b.Requests[i].Check(); err != nil {
			return nil, fmt.Errorf("request %d: %w", i, err)
		}
		b.Requests[i].encode(body)
	}
	w := NewWriter(make([]byte, 0, len(body.Bytes())+4))
	w.Opaque(body.Bytes())
	return w.Bytes(), nil
}

// UnmarshalBinary decodes exactly one bundle from data. More than MaxBundleRequests
// requests fail with ErrBundleTooLarge, an empty bundle with ErrMalformed.
func (b *KeyPackageRequestBundle) UnmarshalBinary(data []byte) error {
	r := NewReader(data)
	body := r.Opaque("KeyPackageRequestBundle.requests")
	if err := done(r, "KeyPackageRequestBundle"); err != nil {
		return err
	}
	b.Requests = b.Requests[:0]
	br := NewReader(body)
	for br.Len() > 0 && br.Err() == nil {
		if len(b.Requests) == MaxBundleRequests {
			return fmt.Errorf("%w: more than %d requests", ErrBundleTooLarge, MaxBundleRequests)
		}
		var q KeyPackageRequest
		q.decode(br)
		b.Requests = append(b.Requests, q)
	}
	if err := done(br, "KeyPackageRequestBundle.requests"); err != nil {
		return err
	}
	if len(b.Requests) == 0 {
		return fmt.Errorf("%w: empty KeyPackageRequestBundle", ErrMalformed)
	}
	return nil
}

func CheckBundleLen(n int) error {
	switch {
	case n == 0:
		return fmt.Errorf("%w: empty bundle", ErrMalformed)
	case n > MaxBundleRequests:
		return fmt.Errorf("%w: %d requests, limit %d", ErrBundleTooLarge, n, MaxBundleRequests)
	}
	return nil
}

// KeyPackageResult answers one request of a bundle: a KeyPackageResponse when Status is
// StatusOK, else Message says why.
type KeyPackageResult struct {
	Status   FetchStatus
	Response KeyPackageResponse
	Message  string
}

// Err returns nil for StatusOK and otherwise the error the status stands for, wrapping
// the sentinel of StatusError.
func (r *KeyPackageResult) Err() error {
	if r.Status == StatusOK {
		return nil
	}
	return &FetchError{Status: r.Status, Message: r.Message}
}

// Check reports a field over its limit.
func (r *KeyPackageResult) Check() error {
	if r.Status == StatusOK {
		return r.Response.Check()
	}
	if len(r.Message) > MaxResultMessageLen {
		return fmt.Errorf("%w: message of %d bytes, limit %d", ErrTooLarge, len(r.Message), MaxResultMessageLen)
	}
	return nil
}

// appendTo appends the encoded result to buf. A KeyPackage has no length prefix of its
// own, so it is appended as it is.
func (r *KeyPackageResult) appendTo(buf []byte) []byte {
	buf = binary.BigEndian.AppendUint16(buf, uint16(r.Status))
	if r.Status == StatusOK {
		return append(buf, r.Response.KeyPackage...)
	}
	w := NewWriter(buf)
	w.String(r.Message)
	return w.Bytes()
}

// KeyPackageResponseBundle answers a KeyPackageRequestBundle, one result per request in
// the same order.
type KeyPackageResponseBundle struct {
	Results []KeyPackageResult
}

// MarshalBinary encodes b.
func (b KeyPackageResponseBundle) MarshalBinary() ([]byte, error) {
	if err := CheckBundleLen(len(b.Results)); err != nil {
		return nil, err
	}
	size := 0
	for i := range b.Results {
		if err := b.Results[i].Check(); err != nil {
			return nil, fmt.Errorf("result %d: %w", i, err)
		}
		size += 4 + len(b.Results[i].Response.KeyPackage) + len(b.Results[i].Message)
	}
	body := make([]byte, 0, size)
	for i := range b.Results {
		body = b.Results[i].appendTo(body)
	}
	w := NewWriter(make([]byte, 0, len(body)+4))
	w.Opaque(body)
	return w.Bytes(), nil
}

// UnmarshalBinary decodes exactly one bundle from data. KeyPackages and messages alias
// data.
func (b *KeyPackageResponseBundle) UnmarshalBinary(data []byte) error {
	r := NewReader(data)
	body := r.Opaque("KeyPackageResponseBundle.results")
	if err := done(r, "KeyPackageResponseBundle"); err != nil {
		return err
	}
	b.Results = b.Results[:0]
	for len(body) > 0 {
		if len(b.Results) == MaxBundleRequests {
			return fmt.Errorf("%w: more than %d results", ErrBundleTooLarge, MaxBundleRequests)
		}
		res, rest, err := decodeResult(body)
		if err != nil {
			return fmt.Errorf("result %d: %w", len(b.Results), err)
		}
		b.Results = append(b.Results, res)
		body = rest
	}
	if len(b.Results) == 0 {
		return fmt.Errorf("%w: empty KeyPackageResponseBundle", ErrMalformed)
	}
	return nil
}

func decodeResult(b []byte) (KeyPackageResult, []byte, error) {
	var res KeyPackageResult
	r := NewReader(b)
	res.Status = FetchStatus(r.U16("KeyPackageResult.status"))
	if r.Err() != nil {
		return res, nil, fmt.Errorf("%w: %w", ErrMalformed, r.Err())
	}
	if res.Status == StatusOK {
		kp, rest, err := splitKeyPackage(b[2:])
		res.Response.KeyPackage = kp
		return res, rest, err
	}
	msg := r.OpaqueMax("KeyPackageResult.message", MaxResultMessageLen)
	if r.Err() != nil {
		return res, nil, fmt.Errorf("%w: %w", ErrMalformed, r.Err())
	}
	res.Message = string(msg)
	return res, b[len(b)-r.Len():], nil
}

// DiscoveryResponse answers a discovery request for a user of this provider.
type DiscoveryResponse struct {
	UserID      string // mimi://<provider>/u/<user>
	Provider    string
	BearerToken string
}

// MarshalBinary encodes d.
func (d DiscoveryResponse) MarshalBinary() ([]byte, error) {
	switch {
	case len(d.UserID) > MaxUserIDLen:
		return nil, fmt.Errorf("%w: user_id of %d bytes", ErrTooLarge, len(d.UserID))
	case len(d.Provider) > MaxProviderLen:
		return nil, fmt.Errorf("%w: provider of %d bytes", ErrTooLarge, len(d.Provider))
	case len(d.BearerToken) > MaxBearerTokenLen:
		return nil, fmt.Errorf("%w: bearer_token of %d bytes", ErrTooLarge, len(d.BearerToken))
	}
	w := NewWriter(make([]byte, 0, 8+len(d.UserID)+len(d.Provider)+len(d.BearerToken)))
	w.String(d.UserID)
	w.String(d.Provider)
	w.String(d.BearerToken)
	return w.Bytes(), nil
}

// UnmarshalBinary decodes exactly one DiscoveryResponse from b.
func (d *DiscoveryResponse) UnmarshalBinary(b []byte) error {
	r := NewReader(b)
	d.UserID = string(r.OpaqueMax("DiscoveryResponse.user_id", MaxUserIDLen))
	d.Provider = string(r.OpaqueMax("DiscoveryResponse.provider", MaxProviderLen))
	d.BearerToken = string(r.OpaqueMax("DiscoveryResponse.bearer_token", MaxBearerTokenLen))
	return done(r, "DiscoveryResponse")
}

// KeyPackagesLow is the payload of a key_packages_low mailbox entry: the client has
// Remaining usable KeyPackages left for CipherSuite (last resort not counted).
type KeyPackagesLow struct {
	CipherSuite mls.CipherSuite
	Remaining   uint32
}

// MarshalBinary encodes n.
func (n KeyPackagesLow) MarshalBinary() ([]byte, error) {
	w := NewWriter(make([]byte, 0, 6))
	w.U16(uint16(n.CipherSuite))
	w.U32(n.Remaining)
	return w.Bytes(), nil
}

// UnmarshalBinary decodes n.
func (n *KeyPackagesLow) UnmarshalBinary(b []byte) error {
	r := NewReader(b)
	n.CipherSuite = mls.CipherSuite(r.U16("KeyPackagesLow.cipher_suite"))
	n.Remaining = r.U32("KeyPackagesLow.remaining")
	return done(r, "KeyPackagesLow")
}

// ExhaustedReason says why a key_packages_exhausted notice was sent.
type ExhaustedReason uint8

const (
	// ExhaustedLastResortServed: the client had no one-time KeyPackage of the suite left
	// and its last resort was served. Upload more.
	ExhaustedLastResortServed ExhaustedReason = 1
	// ExhaustedClaimsLimited: the user's one-time KeyPackages were claimed faster than
	// the provider allows (a drain attempt, or a very busy requester); requests are
	// served the last resort for now. Sent to every client of the user.
	ExhaustedClaimsLimited ExhaustedReason = 2
)

func (r ExhaustedReason) String() string {
	switch r {
	case ExhaustedLastResortServed:
		return "last_resort_served"
	case ExhaustedClaimsLimited:
		return "claims_limited"
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// KeyPackagesExhausted is the payload of a key_packages_exhausted mailbox entry.
type KeyPackagesExhausted struct {
	CipherSuite mls.CipherSuite
	Reason      ExhaustedReason
}

// MarshalBinary encodes n.
func (n KeyPackagesExhausted) MarshalBinary() ([]byte, error) {
	w := NewWriter(make([]byte, 0, 3))
	w.U16(uint16(n.CipherSuite))
	w.U8(uint8(n.Reason))
	return w.Bytes(), nil
}

// UnmarshalBinary decodes n.
func (n *KeyPackagesExhausted) UnmarshalBinary(b []byte) error {
	r := NewReader(b)
	n.CipherSuite = mls.CipherSuite(r.U16("KeyPackagesExhausted.cipher_suite"))
	n.Reason = ExhaustedReason(r.U8("KeyPackagesExhausted.reason"))
	return done(r, "KeyPackagesExhausted")
}

// done finishes a decode: the first error or trailing bytes, naming the struct.
func done(r *Reader, name string) error {
	if err := r.Done(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}
