package gateway

import (
	"context"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/protocol"
)

// KeyPackages is what the socket's KeyPackage methods need (directory.KeyPackages).
type KeyPackages interface {
	// Upload validates and stores KeyPackages of the client, answering their refs.
	Upload(ctx context.Context, c directory.Client, kps [][]byte) ([][]byte, error)
	// Count reports the client's stock of a cipher suite.
	Count(ctx context.Context, c directory.Client, suite mls.CipherSuite) (protocol.KeyPackageStock, error)
}

// registerKeyPackages serves the KeyPackage methods of the client socket.
func (s *Server) registerKeyPackages(kps KeyPackages) {
	s.Handle(protocol.MethodKeyPackageUpload, func(ctx context.Context, c *Caller, body []byte) ([]byte, error) {
		var up protocol.KeyPackageUpload
		if err := up.UnmarshalBinary(body); err != nil {
			return nil, &protocol.Error{Code: protocol.CodeMalformed, Message: err.Error()}
		}
		refs, err := kps.Upload(ctx, c.Client, up.KeyPackages)
		if err != nil {
			return nil, err
		}
		return protocol.KeyPackageUploadResult{Refs: refs}.MarshalBinary()
	})
	s.Handle(protocol.MethodKeyPackageCount, func(ctx context.Context, c *Caller, body []byte) ([]byte, error) {
		r := protocol.NewReader(body)
		suite := mls.CipherSuite(r.U16("key_package_count.cipher_suite"))
		if err := r.Done(); err != nil {
			return nil, &protocol.Error{Code: protocol.CodeMalformed, Message: err.Error()}
		}
		st, err := kps.Count(ctx, c.Client, suite)
		if err != nil {
			return nil, err
		}
		return st.MarshalBinary()
	})
}
