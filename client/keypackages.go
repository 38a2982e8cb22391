package client

import (
	"context"
	"fmt"

	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/protocol"
)

// KeyPackage methods of the client socket (docs/protocol.md, KeyPackages): the bodies
// are directory's KeyPackageUpload, KeyPackageUploadResult and KeyPackageCount.

// UploadKeyPackages stores KeyPackages of this client at its provider and returns
// their KeyPackageRefs, in upload order. Each element is an MLSMessage carrying a
// KeyPackage or a bare KeyPackage; its credential must name this client's user, and
// at most one per cipher suite may carry the last_resort extension. The provider
// validates them all and stores all or none: a refused upload is a *protocol.Error with
// protocol.CodeKeyPackageRejected (validation), CodeConflict (a duplicate), or
// CodeTooLarge (too many); see ErrorCode.
func (c *Client) UploadKeyPackages(ctx context.Context, kps [][]byte) ([][]byte, error) {
	if len(kps) == 0 {
		return nil, nil
	}
	body, err := protocol.KeyPackageUpload{KeyPackages: kps}.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("client: upload key packages: %w", err)
	}
	resp, err := c.Do(ctx, protocol.MethodKeyPackageUpload, body)
	if err != nil {
		return nil, fmt.Errorf("client: upload key packages: %w", err)
	}
	var res protocol.KeyPackageUploadResult
	if err := res.UnmarshalBinary(resp); err != nil {
		return nil, fmt.Errorf("%w: upload key packages: %w", ErrProtocol, err)
	}
	if len(res.Refs) != len(kps) {
		return nil, fmt.Errorf("%w: upload key packages: %d refs for %d KeyPackages", ErrProtocol, len(res.Refs), len(kps))
	}
	return res.Refs, nil
}

// KeyPackageCount asks how many KeyPackages of this client the provider still holds
// for a cipher suite: Available counts those that can be served (the last resort not
// included), LastResort says whether a last-resort KeyPackage is stored.
func (c *Client) KeyPackageCount(ctx context.Context, suite mls.CipherSuite) (protocol.KeyPackageStock, error) {
	var st protocol.KeyPackageStock
	w := protocol.NewWriter(make([]byte, 0, 2))
	w.U16(uint16(suite))
	resp, err := c.Do(ctx, protocol.MethodKeyPackageCount, w.Bytes())
	if err != nil {
		return st, fmt.Errorf("client: key package count: %w", err)
	}
	if err := st.UnmarshalBinary(resp); err != nil {
		return st, fmt.Errorf("%w: key package count: %w", ErrProtocol, err)
	}
	if st.CipherSuite != suite {
		return st, fmt.Errorf("%w: key package count for suite %d answered for %d", ErrProtocol, suite, st.CipherSuite)
	}
	return st, nil
}

// KeyPackagesLow decodes the payload of a protocol.KindKeyPackagesLow entry: the
// provider warns that this client has only Remaining KeyPackages left for
// CipherSuite (the last resort not counted). Upload more with UploadKeyPackages.
func (d *Delivery) KeyPackagesLow() (protocol.KeyPackagesLow, error) {
	var n protocol.KeyPackagesLow
	if d.Kind != protocol.KindKeyPackagesLow {
		return n, fmt.Errorf("%w: delivery %d is %s, not key_packages_low", ErrProtocol, d.Seq, d.Kind)
	}
	if err := n.UnmarshalBinary(d.Payload); err != nil {
		return n, fmt.Errorf("%w: delivery %d: %w", ErrProtocol, d.Seq, err)
	}
	return n, nil
}

// KeyPackagesExhausted decodes the payload of a protocol.KindKeyPackagesExhausted
// entry: this client's last resort was served for want of one-time KeyPackages
// (ExhaustedLastResortServed), or its user's KeyPackages are being claimed faster than
// the provider allows (ExhaustedClaimsLimited: a drain attempt). Upload more with
// UploadKeyPackages.
func (d *Delivery) KeyPackagesExhausted() (protocol.KeyPackagesExhausted, error) {
	var n protocol.KeyPackagesExhausted
	if d.Kind != protocol.KindKeyPackagesExhausted {
		return n, fmt.Errorf("%w: delivery %d is %s, not key_packages_exhausted", ErrProtocol, d.Seq, d.Kind)
	}
	if err := n.UnmarshalBinary(d.Payload); err != nil {
		return n, fmt.Errorf("%w: delivery %d: %w", ErrProtocol, d.Seq, err)
	}
	return n, nil
}
