package directory

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/protocol"
)

// An upload is checked cheapest first, so that a flood of uploads that will be refused
// costs little: the per-client rate limit, then decoding, KeyPackageRefs, duplicates
// (in the upload and in the store) and the per-client stock limit, and only then the
// rest of RFC 9420 §10.1 with the two signatures of each KeyPackage, and the credential. The store checks
// duplicates and the stock limit again when it writes, atomically.

// ErrUploadRateLimited refuses an upload over the client's rate limit; nothing of it
// was looked at.
var ErrUploadRateLimited = protocol.NewError(protocol.CodeRateLimited, "directory: too many KeyPackage uploads")

// Defaults of the per-client upload limit that the provider's configuration uses: a
// client uploads when it starts and when its stock runs low, so one upload a second
// with bursts of 10 leaves room for retries.
const (
	DefaultUploadRate  = 1.0
	DefaultUploadBurst = 10
)

// KeyPackageRefStore is what the upload's early duplicate check needs from storage.
type KeyPackageRefStore interface {
	// KnownKeyPackageRefs reports, for each ref, whether a KeyPackage with that
	// KeyPackageRef is stored or was served.
	KnownKeyPackageRefs(ctx context.Context, refs [][]byte) ([]bool, error)
}

// uploadItem is one KeyPackage of an upload, decoded but not yet verified.
type uploadItem struct {
	kp   *mls.KeyPackage
	ref  []byte
	data []byte // the encoded bare KeyPackage
}

// allowUpload takes a token from the client's upload bucket.
func (k *KeyPackages) allowUpload(c Client) error {
	if k.uploads.Allow(strconv.FormatInt(c.ID, 10)) {
		return nil
	}
	return fmt.Errorf("%w: client %d over %g uploads/s (burst %d)", ErrUploadRateLimited, c.ID, k.cfg.UploadRate, k.cfg.UploadBurst)
}

// precheck decodes an upload and refuses it for what needs no signature check: an
// undecodable or oversized KeyPackage, an unknown suite, a ref twice in the upload or
// already known to the store, two last resorts of one suite, and a stock that would
// pass MaxPerClient.
func (k *KeyPackages) precheck(ctx context.Context, c Client, kps [][]byte, now time.Time) ([]uploadItem, error) {
	items := make([]uploadItem, len(kps))
	refs := make([][]byte, len(kps))
	seen := make(map[string]struct{}, len(kps))
	lastResort := make(map[mls.CipherSuite]struct{})
	for i, b := range kps {
		it, err := decodeUpload(b)
		if err != nil {
			return nil, &UploadError{Index: i, Err: err}
		}
		if _, dup := seen[string(it.ref)]; dup {
			return nil, &UploadError{Index: i, Err: fmt.Errorf("%w: twice in this upload", ErrDuplicateKeyPackage)}
		}
		seen[string(it.ref)] = struct{}{}
		if it.kp.Extensions.Has(ExtensionTypeLastResort) {
			if _, dup := lastResort[it.kp.CipherSuite]; dup {
				return nil, &UploadError{Index: i, Err: ErrLastResortConflict}
			}
			lastResort[it.kp.CipherSuite] = struct{}{}
		}
		items[i], refs[i] = it, it.ref
	}
	known, err := k.store.KnownKeyPackageRefs(ctx, refs)
	if err != nil {
		return nil, fmt.Errorf("directory: keypackages: upload: %w", err)
	}
	for i, dup := range known {
		if dup {
			return nil, &UploadError{Index: i, Err: ErrDuplicateKeyPackage}
		}
	}
	if err := k.checkStock(ctx, c, len(kps), lastResort, now); err != nil {
		return nil, err
	}
	return items, nil
}

// decodeUpload decodes one uploaded KeyPackage and computes its ref, without verifying
// anything signed.
func decodeUpload(b []byte) (uploadItem, error) {
	if len(b) > protocol.MaxKeyPackageSize+4 {
		return uploadItem{}, fmt.Errorf("%w: %d bytes, limit %d", ErrInvalidKeyPackage, len(b), protocol.MaxKeyPackageSize)
	}
	kp, err := mls.DecodeKeyPackageMessage(b)
	if err != nil {
		return uploadItem{}, fmt.Errorf("%w: %w", ErrInvalidKeyPackage, err)
	}
	suite, err := kp.CipherSuite.Suite()
	if err != nil {
		return uploadItem{}, fmt.Errorf("%w: %w", ErrInvalidKeyPackage, err)
	}
	data, err := kp.Marshal()
	if err != nil {
		return uploadItem{}, fmt.Errorf("%w: %w", ErrInvalidKeyPackage, err)
	}
	return uploadItem{kp: kp, ref: mls.MakeKeyPackageRef(suite, data), data: data}, nil
}

// checkStock refuses an upload of n KeyPackages that would leave the client with more
// than MaxPerClient stored, counting the last resorts it replaces.
func (k *KeyPackages) checkStock(ctx context.Context, c Client, n int, lastResort map[mls.CipherSuite]struct{}, now time.Time) error {
	stock, err := k.store.KeyPackageStock(ctx, c.ID, now)
	if err != nil {
		return fmt.Errorf("directory: keypackages: upload: %w", err)
	}
	total := n
	for _, s := range stock {
		total += int(s.Available)
		if s.LastResort {
			total++
			if _, replaced := lastResort[s.CipherSuite]; replaced {
				total--
			}
		}
	}
	if total > k.cfg.MaxPerClient {
		return &UploadError{Index: -1, Err: fmt.Errorf("%w: %d stored after this upload, limit %d", ErrKeyPackageLimit, total, k.cfg.MaxPerClient)}
	}
	return nil
}
