package mls

import "fmt"

// ConfirmedTranscriptHashInput is RFC 9420's ConfirmedTranscriptHashInput
// (§8.2). Content must carry a Commit.
type ConfirmedTranscriptHashInput struct {
	WireFormat WireFormat
	Content    FramedContent
	Signature  []byte
}

func (c *ConfirmedTranscriptHashInput) encode(w *writer) {
	if c.Content.ContentType != ContentTypeCommit {
		w.fail("ConfirmedTranscriptHashInput.content", ErrNotCommit)
		return
	}
	w.u16(uint16(c.WireFormat))
	c.Content.encode(w)
	w.opaque("ConfirmedTranscriptHashInput.signature", c.Signature)
}

func (c *ConfirmedTranscriptHashInput) decode(r *reader) {
	c.WireFormat = WireFormat(r.u16("ConfirmedTranscriptHashInput.wire_format"))
	off := r.off
	c.Content.decode(r)
	if r.err == nil && c.Content.ContentType != ContentTypeCommit {
		r.fail("ConfirmedTranscriptHashInput.content", off, ErrNotCommit, c.Content.ContentType.String())
		return
	}
	c.Signature = r.opaque("ConfirmedTranscriptHashInput.signature")
}

// Marshal encodes c.
func (c *ConfirmedTranscriptHashInput) Marshal() ([]byte, error) { return marshal(c) }

// Unmarshal decodes c from exactly b.
func (c *ConfirmedTranscriptHashInput) Unmarshal(b []byte) error {
	return unmarshal(c, b, "ConfirmedTranscriptHashInput")
}

// InterimTranscriptHashInput is RFC 9420's InterimTranscriptHashInput (§8.2).
type InterimTranscriptHashInput struct {
	ConfirmationTag []byte
}

func (c *InterimTranscriptHashInput) encode(w *writer) {
	w.opaque("InterimTranscriptHashInput.confirmation_tag", c.ConfirmationTag)
}

func (c *InterimTranscriptHashInput) decode(r *reader) {
	c.ConfirmationTag = r.opaque("InterimTranscriptHashInput.confirmation_tag")
}

// Marshal encodes c.
func (c *InterimTranscriptHashInput) Marshal() ([]byte, error) { return marshal(c) }

// Unmarshal decodes c from exactly b.
func (c *InterimTranscriptHashInput) Unmarshal(b []byte) error {
	return unmarshal(c, b, "InterimTranscriptHashInput")
}

// ConfirmedTranscriptHash computes
// Hash(interim_transcript_hash_[epoch-1] || ConfirmedTranscriptHashInput)
// for the commit a carries (§8.2).
func ConfirmedTranscriptHash(s *Suite, interimBefore []byte, a *AuthenticatedContent) ([]byte, error) {
	in := ConfirmedTranscriptHashInput{WireFormat: a.WireFormat, Content: a.Content, Signature: a.Auth.Signature}
	w := writer{buf: make([]byte, 0, len(interimBefore)+512)}
	w.bytes(interimBefore)
	in.encode(&w)
	if w.err != nil {
		return nil, fmt.Errorf("mls: confirmed transcript hash: %w", w.err)
	}
	return s.Hash(w.buf), nil
}

// InterimTranscriptHash computes
// Hash(confirmed_transcript_hash_[epoch] || InterimTranscriptHashInput)
// (§8.2).
func InterimTranscriptHash(s *Suite, confirmed, confirmationTag []byte) []byte {
	w := writer{buf: make([]byte, 0, len(confirmed)+len(confirmationTag)+4)}
	w.bytes(confirmed)
	w.opaque("InterimTranscriptHashInput.confirmation_tag", confirmationTag)
	return s.Hash(w.buf)
}

// UpdateTranscriptHashes advances both transcript hashes over the commit a
// carries: it returns the new confirmed and interim transcript hashes given
// the interim transcript hash of the previous epoch.
func UpdateTranscriptHashes(s *Suite, interimBefore []byte, a *AuthenticatedContent) (confirmed, interim []byte, err error) {
	confirmed, err = ConfirmedTranscriptHash(s, interimBefore, a)
	if err != nil {
		return nil, nil, err
	}
	return confirmed, InterimTranscriptHash(s, confirmed, a.Auth.ConfirmationTag), nil
}
