package mls

import (
	"bytes"
	"testing"
)

// TestVectorsTranscriptHashes checks every case of transcript-hashes.json:
// the confirmation tag is the MAC of the new confirmed transcript hash, and
// both hashes are the update of the interim hash over the commit.
func TestVectorsTranscriptHashes(t *testing.T) {
	var cases []struct {
		CipherSuite                  CipherSuite `json:"cipher_suite"`
		ConfirmationKey              hexBytes    `json:"confirmation_key"`
		AuthenticatedContent         hexBytes    `json:"authenticated_content"`
		InterimTranscriptHashBefore  hexBytes    `json:"interim_transcript_hash_before"`
		ConfirmedTranscriptHashAfter hexBytes    `json:"confirmed_transcript_hash_after"`
		InterimTranscriptHashAfter   hexBytes    `json:"interim_transcript_hash_after"`
	}
	loadCodecVectors(t, "transcript-hashes.json", &cases)
	if len(cases) == 0 {
		t.Fatal("transcript-hashes.json: no cases")
	}
	seen := map[CipherSuite]bool{}
	for _, c := range cases {
		t.Run(c.CipherSuite.String(), func(t *testing.T) {
			s, err := c.CipherSuite.Suite()
			if err != nil {
				t.Fatal(err)
			}
			seen[c.CipherSuite] = true
			var ac AuthenticatedContent
			if err := ac.Unmarshal(c.AuthenticatedContent); err != nil {
				t.Fatalf("decode AuthenticatedContent: %v", err)
			}
			if ac.Content.ContentType != ContentTypeCommit {
				t.Fatalf("content type %s, want commit", ac.Content.ContentType)
			}
			if re, err := ac.Marshal(); err != nil || !bytes.Equal(re, c.AuthenticatedContent) {
				t.Fatalf("AuthenticatedContent does not round-trip (err %v)", err)
			}
			if !s.VerifyMAC(c.ConfirmationKey, c.ConfirmedTranscriptHashAfter, ac.Auth.ConfirmationTag) {
				t.Error("confirmation_tag is not MAC(confirmation_key, confirmed_transcript_hash_after)")
			}
			confirmed, interim, err := UpdateTranscriptHashes(s, c.InterimTranscriptHashBefore, &ac)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(confirmed, c.ConfirmedTranscriptHashAfter) {
				t.Errorf("confirmed %x, want %x", confirmed, []byte(c.ConfirmedTranscriptHashAfter))
			}
			if !bytes.Equal(interim, c.InterimTranscriptHashAfter) {
				t.Errorf("interim %x, want %x", interim, []byte(c.InterimTranscriptHashAfter))
			}
		})
	}
	for cs := CipherSuite(1); cs <= 7; cs++ {
		if !seen[cs] {
			t.Errorf("transcript-hashes.json has no case for suite %d", cs)
		}
	}
}

func TestTranscriptInputRejectsNonCommit(t *testing.T) {
	in := ConfirmedTranscriptHashInput{WireFormat: WireFormatPublicMessage, Content: FramedContent{
		GroupID: []byte("g"), Sender: Sender{SenderType: SenderTypeMember},
		ContentType: ContentTypeApplication, ApplicationData: []byte("x"),
	}}
	if _, err := in.Marshal(); !errorsIs(err, ErrNotCommit) {
		t.Fatalf("got %v, want ErrNotCommit", err)
	}
}
