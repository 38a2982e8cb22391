package natsbus

import (
	"errors"
	"fmt"

	"github.com/mimids/mimids/hub"
	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/protocol"
)

// The first octet of every message says what it is.
const (
	kindEntry   = 1 // a partition entry, whole: masked, counter, content type, public, message, next, GroupInfo
	kindNotice  = 2 // a partition's length (and whether it is terminated): read the store
	kindEntries = 3 // a client's mailbox has new entries: client id
	kindAll     = 4 // every mailbox may have new entries
	kindRevoked = 5 // a client's token was revoked: client id
)

// appendEntry encodes e whole; terminated events go as notices.
func appendEntry(buf []byte, e hub.Entry) []byte {
	w := protocol.NewWriter(buf)
	w.U8(kindEntry)
	w.Opaque(e.Masked)
	w.U32(e.Counter)
	w.U8(uint8(e.ContentType))
	w.U8(b2u(e.Public))
	w.Opaque(e.Message)
	w.Opaque(e.NextMasked)
	w.Opaque(e.GroupInfo)
	return w.Bytes()
}

// appendNotice encodes a partition's length after e: counter + 1 for a message,
// counter for the terminated event (which stands after the last message).
func appendNotice(buf []byte, masked []byte, length uint32, terminated bool) []byte {
	w := protocol.NewWriter(buf)
	w.U8(kindNotice)
	w.Opaque(masked)
	w.U32(length)
	w.U8(b2u(terminated))
	return w.Bytes()
}

func appendClient(buf []byte, kind uint8, clientID int64) []byte {
	w := protocol.NewWriter(buf)
	w.U8(kind)
	w.U64(uint64(clientID))
	return w.Bytes()
}

func readBool(r *protocol.Reader, field string) bool {
	switch r.U8(field) {
	case 0:
		return false
	case 1:
		return true
	}
	r.Fail(field, errors.New("not 0 or 1"))
	return false
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// message is one decoded notification.
type message struct {
	kind       uint8
	entry      hub.Entry // kindEntry
	masked     []byte    // kindNotice
	length     uint32    // kindNotice
	terminated bool      // kindNotice
	clientID   int64     // kindEntries, kindRevoked
	peer       string    // kindQueued
}

// decode reads a notification; the entry's slices alias data.
func decode(data []byte) (message, error) {
	r := protocol.NewReader(data)
	m := message{kind: r.U8("kind")}
	switch m.kind {
	case kindEntry:
		e := &m.entry
		e.Masked = r.Opaque("masked")
		e.Counter = r.U32("counter")
		e.ContentType = mls.ContentType(r.U8("content_type"))
		e.Public = readBool(r, "public")
		e.Message = r.Opaque("message")
		if next := r.Opaque("next"); len(next) > 0 {
			e.NextMasked = next
		}
		if gi := r.Opaque("group_info"); len(gi) > 0 {
			e.GroupInfo = gi
		}
	case kindNotice:
		m.masked = r.Opaque("masked")
		m.length = r.U32("length")
		m.terminated = readBool(r, "terminated")
	case kindEntries, kindRevoked:
		m.clientID = int64(r.U64("client_id"))
	case kindAll:
	case kindQueued:
		m.peer = string(r.OpaqueMax("peer", 255))
	case kindCopy:
		m.masked = r.OpaqueMax("masked", protocol.MaxMaskedLen)
	default:
		return m, fmt.Errorf("natsbus: unknown message kind %d", m.kind)
	}
	if err := r.Done(); err != nil {
		return m, fmt.Errorf("natsbus: decode: %w", err)
	}
	return m, nil
}
