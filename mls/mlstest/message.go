package mlstest

import (
	"fmt"

	"github.com/mimids/mimids/mls"
)

// encryptedSenderDataSize is the size of a real PrivateMessage's
// encrypted_sender_data for the 128-bit suites: SenderData (leaf_index,
// generation, 4-byte reuse_guard: 12 bytes) plus a 16-byte AEAD tag.
const encryptedSenderDataSize = 28

// Application returns an application PrivateMessage of g's group ID and
// epoch, as an encoded MLSMessage, whose ciphertext is a copy of ciphertext.
// The rest (encrypted sender data) is random, so two calls never give the
// same message even for the same ciphertext. The ciphertext is the last
// field of a PrivateMessage, so the encoded message ends with it.
func (g *Group) Application(ciphertext []byte) ([]byte, error) {
	return ApplicationMessage(g.GroupID, g.Epoch, ciphertext)
}

// RandomApplication returns an application PrivateMessage of g's group ID
// and epoch with n random bytes of ciphertext.
func (g *Group) RandomApplication(n int) ([]byte, error) {
	if n < 0 {
		return nil, fmt.Errorf("%w: ciphertext of %d bytes", ErrOptions, n)
	}
	return ApplicationMessage(g.GroupID, g.Epoch, random(n))
}

// ApplicationMessage is Application for any group ID and epoch.
func ApplicationMessage(groupID []byte, epoch uint64, ciphertext []byte) ([]byte, error) {
	m := &mls.MLSMessage{Version: mls.ProtocolVersionMLS10, WireFormat: mls.WireFormatPrivateMessage,
		PrivateMessage: &mls.PrivateMessage{GroupID: groupID, Epoch: epoch, ContentType: mls.ContentTypeApplication,
			AuthenticatedData: []byte{}, EncryptedSenderData: random(encryptedSenderDataSize), Ciphertext: ciphertext}}
	b, err := m.Marshal()
	if err != nil {
		return nil, fmt.Errorf("mlstest: encode PrivateMessage: %w", err)
	}
	return b, nil
}
