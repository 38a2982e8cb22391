package hub_test

import (
	"bytes"
	"testing"

	"github.com/mimids/mimids/protocol"
)

// fuzzDecoder checks that a decoder never panics, and that what it accepts
// re-encodes to the same bytes (the encodings are canonical).
func fuzzDecoder(f *testing.F, seeds [][]byte, newV func() binaryCodec) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Add([]byte{})
	f.Add([]byte{0x00, 0x01, 0x00, 0x02})
	f.Fuzz(func(t *testing.T, b []byte) {
		v := newV()
		if err := v.UnmarshalBinary(b); err != nil {
			return
		}
		out, err := v.MarshalBinary()
		if err != nil {
			t.Fatalf("accepted input does not re-encode: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("re-encoding differs:\n in  %x\n out %x", b, out)
		}
	})
}

func FuzzSendRequest(f *testing.F) {
	s := samples(f)
	fuzzDecoder(f, append(s.send, s.sendCommit...), func() binaryCodec { return new(protocol.SendRequest) })
}

func FuzzExternalJoinRequest(f *testing.F) {
	fuzzDecoder(f, samples(f).join, func() binaryCodec { return new(protocol.ExternalJoinRequest) })
}

func FuzzCreateGroupRequest(f *testing.F) {
	fuzzDecoder(f, samples(f).create, func() binaryCodec { return new(protocol.CreateGroupRequest) })
}

func FuzzReceiveResponse(f *testing.F) {
	fuzzDecoder(f, samples(f).receive, func() binaryCodec { return new(protocol.ReceiveResponse) })
}

func FuzzGroupInfoResponse(f *testing.F) {
	fuzzDecoder(f, samples(f).giResp, func() binaryCodec { return new(protocol.GroupInfoResponse) })
}

func FuzzWelcomeDelivery(f *testing.F) {
	fuzzDecoder(f, samples(f).delivery, func() binaryCodec { return new(protocol.WelcomeDelivery) })
}

func FuzzWelcomeInitRequest(f *testing.F) {
	fuzzDecoder(f, samples(f).welcomeInit, func() binaryCodec { return new(protocol.WelcomeInitRequest) })
}

func FuzzModerationList(f *testing.F) {
	fuzzDecoder(f, samples(f).moderation, func() binaryCodec { return new(protocol.ModerationList) })
}

func FuzzReport(f *testing.F) {
	fuzzDecoder(f, samples(f).report, func() binaryCodec { return new(protocol.Report) })
}

func FuzzReceiveRequest(f *testing.F) {
	fuzzDecoder(f, [][]byte{append(append([]byte{16}, make([]byte, 16)...), 0, 0, 0, 9)}, func() binaryCodec { return new(protocol.ReceiveRequest) })
}

func FuzzSmallResponses(f *testing.F) {
	f.Add(uint8(0), []byte{0, 0, 0, 1})
	f.Add(uint8(1), []byte{2, 1, 2, 0, 0, 0, 1})
	f.Add(uint8(2), []byte{1, 'g'})
	f.Add(uint8(3), []byte{1, 9})
	f.Add(uint8(4), []byte{1, 9, 0, 0, 0, 3})
	f.Fuzz(func(t *testing.T, which uint8, b []byte) {
		var v binaryCodec
		switch which % 5 {
		case 0:
			v = new(protocol.SendResponse)
		case 1:
			v = new(protocol.ExternalJoinResponse)
		case 2:
			v = new(protocol.GroupInfoRequest)
		case 3:
			v = new(protocol.CreateGroupResponse)
		default:
			v = new(protocol.PartitionTerminated)
		}
		if v.UnmarshalBinary(b) != nil {
			return
		}
		if out, err := v.MarshalBinary(); err != nil || !bytes.Equal(out, b) {
			t.Fatalf("round trip: %x -> %x, %v", b, out, err)
		}
	})
}
