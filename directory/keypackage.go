package directory

import (
	"context"
	"fmt"
	"time"

	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/protocol"
)

// ExtensionTypeLastResort is the last_resort KeyPackage extension
// (draft-ietf-mls-extensions, 0x000A, empty data). A KeyPackage that carries it is its
// client's last resort for its cipher suite: served only when no other is left, and
// never deleted by a fetch.
const ExtensionTypeLastResort mls.ExtensionType = 0x000A

// Errors of KeyPackage upload and fetch. The first five are the protocol's fetch
// statuses (protocol.StatusOf maps each to its FetchStatus).
var (
	ErrUnknownUser = protocol.ErrUnknownUser
	// ErrTokenInvalid: the bearer token is unknown, forged, expired, or was issued for
	// another user (whether that user exists or not). The requester must discover the
	// user again.
	ErrTokenInvalid = protocol.ErrBadToken
	// ErrTokenRevoked: the bearer token was revoked. The requester must discover the user
	// again.
	ErrTokenRevoked = protocol.ErrRevokedToken
	// ErrNoKeyPackage: the user has no usable KeyPackage for the version and cipher suite.
	ErrNoKeyPackage = protocol.ErrNoKeyPackage
	// ErrRateLimited: too many requests (a bearer token's claims of one user, or one
	// source's discoveries); retry later (StatusRateLimited).
	ErrRateLimited = protocol.ErrRateLimited
	// ErrBundleRepeats: a bundle names one user, version and suite more often than the
	// user has clients. It is refused whole (wraps ErrMalformed).
	ErrBundleRepeats = fmt.Errorf("%w: a bundle names one user more often than the user has clients", protocol.ErrMalformed)
	// ErrMalformed: a request that does not decode or breaks a limit of the protocol.
	ErrMalformed = protocol.ErrMalformed

	// ErrInvalidKeyPackage wraps the mls error of a KeyPackage that fails RFC 9420 §10.1
	// (test the cause with errors.Is, e.g. mls.ErrKeyPackageExpired) or does not decode.
	ErrInvalidKeyPackage = protocol.NewError(protocol.CodeKeyPackageRejected, "directory: invalid KeyPackage")
	// ErrIdentityMismatch: the KeyPackage's credential is not a BasicCredential naming the
	// uploading user's URI.
	ErrIdentityMismatch = protocol.NewError(protocol.CodeKeyPackageRejected, "directory: KeyPackage credential does not name the uploading user")
	// ErrDuplicateKeyPackage: a KeyPackage with the same KeyPackageRef is stored, was
	// served, or appears twice in the upload.
	ErrDuplicateKeyPackage = protocol.NewError(protocol.CodeConflict, "directory: KeyPackage already uploaded")
	// ErrLastResortConflict: one upload carries two last-resort KeyPackages of one suite.
	ErrLastResortConflict = protocol.NewError(protocol.CodeKeyPackageRejected, "directory: two last-resort KeyPackages for one cipher suite in one upload")
	// ErrKeyPackageLimit: the upload would leave the client with more KeyPackages stored
	// than the limit.
	ErrKeyPackageLimit = protocol.NewError(protocol.CodeTooLarge, "directory: too many KeyPackages stored for this client")
)

// UploadError says which KeyPackage of an upload was refused. Uploads are all or
// nothing: when Upload fails, nothing of it was stored.
type UploadError struct {
	Index int // position in the upload
	Err   error
}

func (e *UploadError) Error() string { return fmt.Sprintf("key package %d: %v", e.Index, e.Err) }

// Unwrap returns the cause.
func (e *UploadError) Unwrap() error { return e.Err }

// StoredKeyPackage is one KeyPackage in the store.
type StoredKeyPackage struct {
	Ref         []byte // KeyPackageRef (RFC 9420 §5.2)
	ClientID    int64
	Version     mls.ProtocolVersion
	CipherSuite mls.CipherSuite
	NotAfter    time.Time // lifetime end, whole seconds
	LastResort  bool
	Data        []byte // the encoded (bare) KeyPackage, served as it is
	// LeafKeyHash is the SHA-256 of the leaf node's signature key, kept in the served
	// record so the hub can find the KeyPackage's leaf in a group's tree (nil for
	// KeyPackages stored before it was recorded).
	LeafKeyHash []byte
}

// ServedKeyPackage is what the store keeps about a KeyPackage it served.
type ServedKeyPackage struct {
	Client      Client // whose KeyPackage it is
	LeafKeyHash []byte // StoredKeyPackage.LeafKeyHash; nil if not recorded
}

// ClaimRequest asks the store for one KeyPackage of a user.
type ClaimRequest struct {
	UserID      int64
	Version     mls.ProtocolVersion
	CipherSuite mls.CipherSuite
	// LastResortOnly serves a last resort even if one-time KeyPackages are left: the
	// user's one-time KeyPackages are being claimed faster than the provider allows.
	LastResortOnly bool
}

// Claim is the store's answer to one ClaimRequest.
type Claim struct {
	KeyPackage StoredKeyPackage
	// Remaining counts the serving client's non-last-resort, unexpired KeyPackages of
	// the version and suite left after this claim.
	Remaining int
	// Low is set on the first claim that left the client with fewer than the threshold
	// since its stock last reached it: the client is to be notified, once.
	Low bool
	// Exhausted is set on the first claim that served the client's last resort because
	// it had no one-time KeyPackage of the suite left, since it last had one served:
	// the client is to be told, once.
	Exhausted bool
	// Err is ErrNoKeyPackage; the other fields are then zero.
	Err error
}

// PurgeStats counts what a purge removed.
type PurgeStats struct {
	KeyPackages int // expired, or of revoked clients
	Served      int // served-ref records whose KeyPackage expired
	Tokens      int // revocation-list entries whose token has expired
}

// KeyPackageStore is what the KeyPackage service needs from storage. Every method is
// atomic.
type KeyPackageStore interface {
	DiscoveryStore
	KeyPackageRefStore
	// AddKeyPackages stores kps for the client, all or none. It refuses (with an
	// *UploadError naming the first offender) a ref that is stored or was served
	// (ErrDuplicateKeyPackage) and an upload that would leave the client with more than
	// maxPerClient KeyPackages (ErrKeyPackageLimit, Index -1). A last resort replaces the
	// client's stored last resort of the same suite. When the client's unexpired,
	// non-last-resort stock of a suite reaches lowThreshold, the low-stock mark of that
	// suite is cleared.
	AddKeyPackages(ctx context.Context, clientID int64, kps []StoredKeyPackage, maxPerClient, lowThreshold int, now time.Time) error
	// KeyPackageStock returns the client's stock per cipher suite, suites in order.
	KeyPackageStock(ctx context.Context, clientID int64, now time.Time) ([]protocol.KeyPackageStock, error)
	// ClaimKeyPackages answers each request in one transaction: it picks an unexpired
	// non-last-resort KeyPackage of an active client of the user for the version and
	// suite, from the client with the most such KeyPackages (a backend may count expired
	// ones it has not deleted yet), soonest expiring first, and deletes it; if there is
	// none (or the request is LastResortOnly), an unexpired last resort (the one served
	// least often), which stays. Requests of one call for the same user, version and
	// suite are served by distinct clients: a client that served one is skipped for the
	// others (which get ErrNoKeyPackage once every client has served). Expired
	// KeyPackages are never served. It records ref -> client for every KeyPackage served.
	// A claim that leaves the serving client below lowThreshold sets the client's
	// low-stock mark for the suite and reports Low if the mark was not set. A last
	// resort served for want of one-time KeyPackages sets the client's exhausted mark
	// and reports Exhausted if it was not set; a one-time KeyPackage served clears it.
	ClaimKeyPackages(ctx context.Context, reqs []ClaimRequest, lowThreshold int, now time.Time) ([]Claim, error)
	// ClearLowStock clears the low-stock and exhausted marks of a client's suite (used
	// when a notice could not be queued).
	ClearLowStock(ctx context.Context, clientID int64, suite mls.CipherSuite) error
	// ServedKeyPackage returns the record of the served KeyPackage with this ref: its
	// client and leaf key hash (ErrNotFound if none was served).
	ServedKeyPackage(ctx context.Context, ref []byte) (ServedKeyPackage, error)
	// PurgeKeyPackages deletes expired KeyPackages and those of revoked clients, served
	// records whose KeyPackage expired, and revocation-list entries past their Until.
	PurgeKeyPackages(ctx context.Context, now time.Time) (PurgeStats, error)
}
