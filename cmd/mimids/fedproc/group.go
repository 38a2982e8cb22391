package fedproc

import (
	"context"
	"errors"

	"github.com/mimids/mimids/client"
	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/mls/mlstest"
	"github.com/mimids/mimids/protocol"
)

// UploadKeyPackage uploads one fresh KeyPackage for identity through c and returns
// its ref.
func UploadKeyPackage(ctx context.Context, c *client.Client, identity string) ([]byte, error) {
	b, _, err := mlstest.NewKeyPackage(mlstest.KeyPackageOptions{Identity: identity})
	if err != nil {
		return nil, err
	}
	refs, err := c.UploadKeyPackages(ctx, [][]byte{b})
	if err != nil {
		return nil, err
	}
	return refs[0], nil
}

// FetchRef discovers uri at domain and fetches one of its KeyPackages through r
// (the relay of the asking client's own provider); it returns its ref.
func FetchRef(ctx context.Context, r *client.Remote, domain, uri string) ([]byte, error) {
	dis, err := r.Discover(ctx, domain, nil, uri)
	if err != nil {
		return nil, err
	}
	res, err := r.FetchKeyPackages(ctx, domain, nil, []protocol.KeyPackageRequest{{UserID: dis.UserID, BearerToken: dis.BearerToken,
		Version: mls.ProtocolVersionMLS10, CipherSuite: mls.MLS128DHKEMX25519AES128GCMSHA256Ed25519}})
	if err != nil {
		return nil, err
	}
	if err := res[0].Err(); err != nil {
		return nil, err
	}
	suite, _ := mls.MLS128DHKEMX25519AES128GCMSHA256Ed25519.Suite()
	return mls.MakeKeyPackageRef(suite, res[0].Response.KeyPackage), nil
}

// WelcomeFor is a Welcome naming each ref as a new member. The Delivery Service
// routes it by those refs and never decrypts it, so its secrets are random bytes.
func WelcomeFor(refs [][]byte) ([]byte, error) {
	w := &mls.Welcome{CipherSuite: mls.MLS128DHKEMX25519AES128GCMSHA256Ed25519, EncryptedGroupInfo: mlstest.NewPartitionKey()}
	for _, ref := range refs {
		w.Secrets = append(w.Secrets, mls.EncryptedGroupSecrets{NewMember: ref,
			EncryptedGroupSecrets: mls.HPKECiphertext{KEMOutput: mlstest.NewPartitionKey(), Ciphertext: mlstest.NewPartitionKey()}})
	}
	b, err := (&mls.MLSMessage{Version: mls.ProtocolVersionMLS10, WireFormat: mls.WireFormatWelcome, Welcome: w}).Marshal()
	if err != nil {
		return nil, errors.New("fedproc: welcome: " + err.Error())
	}
	return b, nil
}
