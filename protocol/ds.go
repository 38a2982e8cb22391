package protocol

import (
	"errors"
	"fmt"

	"github.com/mimids/mimids/mls"
)

// PartitionKeySize is the length of a partition key: the members export it
// with MLS-Exporter("mimi partition key", "", 16).
const PartitionKeySize = 16

// Field limits of the decoders of groups' structs (the KeyPackage structs' limits
// and the user and provider limits they share are in keypackages.go). Messages,
// GroupInfos and trees are bounded by the hub's configuration instead (and by the
// socket's frame limit).
const (
	MaxGroupIDLen    = 1024 // opaque group_id<V>
	MaxMaskedLen     = 64   // MaskedPartitionKey: the largest suite hash
	MaxReportTextLen = 4096 // Report subject and reason
)

// Errors of the groups' structs, wrapped in ErrMalformed by the decoders.
var (
	// ErrNotFramed: a message that must be a PublicMessage or PrivateMessage is not.
	ErrNotFramed = errors.New("protocol: not a PublicMessage or PrivateMessage")
	// ErrNotGroupInfo: a message that must be a GroupInfo is not.
	ErrNotGroupInfo = errors.New("protocol: not a GroupInfo")
)

// contentType returns the content type of a PublicMessage or PrivateMessage
// (in the clear in both).
func contentType(m *mls.MLSMessage) (mls.ContentType, error) {
	switch {
	case m.WireFormat == mls.WireFormatPublicMessage && m.PublicMessage != nil:
		return m.PublicMessage.Content.ContentType, nil
	case m.WireFormat == mls.WireFormatPrivateMessage && m.PrivateMessage != nil:
		return m.PrivateMessage.ContentType, nil
	}
	return 0, fmt.Errorf("%w (%s)", ErrNotFramed, m.WireFormat)
}

// WelcomeData is the draft's WelcomeData:
//
//	struct {
//	  MLSMessage welcome; // Welcome
//	  ServiceProviderId service_providers<V>;
//	} WelcomeData;
//
// service_providers[i] is the provider of the new member of secrets[i].
type WelcomeData struct {
	Welcome          []byte // encoded MLSMessage(Welcome)
	ServiceProviders []string

	welcome *mls.MLSMessage // set by the decoder
}

func (d *WelcomeData) encode(w *Writer) {
	w.Raw(d.Welcome)
	w.Vector(func(w *Writer) {
		for _, p := range d.ServiceProviders {
			w.Opaque([]byte(p))
		}
	})
}

func (d *WelcomeData) decode(r *Reader) {
	d.Welcome, d.welcome = r.MLSMessage("WelcomeData.welcome")
	if r.err == nil && d.welcome.WireFormat != mls.WireFormatWelcome {
		r.Fail("WelcomeData.welcome", fmt.Errorf("wire format %s", d.welcome.WireFormat))
		return
	}
	v := r.Vector("WelcomeData.service_providers")
	for v.More() {
		d.ServiceProviders = append(d.ServiceProviders, string(v.OpaqueMax("ServiceProviderId", MaxProviderLen)))
	}
}

// CommitData is the draft's CommitData:
//
//	struct {
//	  PartitionKey next_partition_key;
//	  optional<MLSMessage> group_info; // GroupInfo
//	  optional<WelcomeData> welcome_data;
//	} CommitData;
type CommitData struct {
	NextPartitionKey []byte
	GroupInfo        []byte // encoded MLSMessage(GroupInfo); nil when absent
	WelcomeData      *WelcomeData

	groupInfo *mls.MLSMessage // set by the decoder
}

func (c *CommitData) encode(w *Writer) {
	w.Opaque(c.NextPartitionKey)
	w.Optional(c.GroupInfo != nil)
	w.Raw(c.GroupInfo)
	w.Optional(c.WelcomeData != nil)
	if c.WelcomeData != nil {
		c.WelcomeData.encode(w)
	}
}

func (c *CommitData) decode(r *Reader) {
	c.NextPartitionKey = r.PartitionKey("CommitData.next_partition_key")
	if r.Optional("CommitData.group_info") {
		c.GroupInfo, c.groupInfo = r.MLSMessage("CommitData.group_info")
		if r.err == nil && c.groupInfo.WireFormat != mls.WireFormatGroupInfo {
			r.Fail("CommitData.group_info", fmt.Errorf("wire format %s", c.groupInfo.WireFormat))
			return
		}
	}
	if r.Optional("CommitData.welcome_data") {
		c.WelcomeData = new(WelcomeData)
		c.WelcomeData.decode(r)
	}
}

// SendRequest is the draft's SendRequest. Only commits carry CommitData:
//
//	struct {
//	  MLSMessage message; // PublicMessage or PrivateMessage
//	  PartitionKey partition_key;
//	  select (SendRequest.message.content_type) {
//	    case application:
//	    case proposal:
//	    case commit:
//	      CommitData commit_data;
//	  }
//	} SendRequest;
type SendRequest struct {
	Message      []byte // encoded MLSMessage
	PartitionKey []byte
	CommitData   *CommitData // commits only

	msg *mls.MLSMessage // set by the decoder
}

// MarshalBinary encodes s. CommitData must be set exactly for commits.
func (s *SendRequest) MarshalBinary() ([]byte, error) {
	m, err := s.Parsed()
	if err != nil {
		return nil, err
	}
	ct, err := contentType(m)
	if err != nil {
		return nil, fmt.Errorf("%w: SendRequest.message: %w", ErrMalformed, err)
	}
	if (ct == mls.ContentTypeCommit) != (s.CommitData != nil) {
		return nil, fmt.Errorf("%w: SendRequest: commit_data must be present exactly for commits", ErrMalformed)
	}
	w := NewWriter(make([]byte, 0, len(s.Message)+32))
	w.Raw(s.Message)
	w.Opaque(s.PartitionKey)
	if s.CommitData != nil {
		s.CommitData.encode(w)
	}
	return w.Result()
}

// UnmarshalBinary decodes exactly one SendRequest from b; the fields alias b.
func (s *SendRequest) UnmarshalBinary(b []byte) error {
	*s = SendRequest{}
	r := NewReader(b)
	s.Message, s.msg = r.MLSMessage("SendRequest.message")
	ct := decodeContentType(r, s.msg, "SendRequest.message")
	s.PartitionKey = r.PartitionKey("SendRequest.partition_key")
	if ct == mls.ContentTypeCommit {
		s.CommitData = new(CommitData)
		s.CommitData.decode(r)
	}
	return r.Done()
}

// Parsed returns the decoded message: the decoder's, or Message decoded once when s
// was built rather than decoded.
func (s *SendRequest) Parsed() (*mls.MLSMessage, error) {
	return parseOnce(&s.msg, s.Message, "SendRequest.message")
}

// Parsed returns the decoded message (see SendRequest.Parsed).
func (j *ExternalJoinRequest) Parsed() (*mls.MLSMessage, error) {
	return parseOnce(&j.msg, j.Message, "ExternalJoinRequest.message")
}

// ParsedGroupInfo returns the decoded group_info (see SendRequest.Parsed); it is not
// checked to be a GroupInfo when c was built rather than decoded.
func (c *CommitData) ParsedGroupInfo() (*mls.MLSMessage, error) {
	return parseOnce(&c.groupInfo, c.GroupInfo, "CommitData.group_info")
}

// ParsedWelcome returns the decoded welcome (see SendRequest.Parsed).
func (d *WelcomeData) ParsedWelcome() (*mls.MLSMessage, error) {
	return parseOnce(&d.welcome, d.Welcome, "WelcomeData.welcome")
}

// parseOnce returns *cache, decoding b into it first if it is nil.
func parseOnce(cache **mls.MLSMessage, b []byte, field string) (*mls.MLSMessage, error) {
	if *cache == nil {
		m, err := mls.DecodeMLSMessage(b)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrMalformed, field, err)
		}
		*cache = m
	}
	return *cache, nil
}

func decodeContentType(r *Reader, m *mls.MLSMessage, field string) mls.ContentType {
	if r.err != nil {
		return 0
	}
	ct, err := contentType(m)
	if err != nil {
		r.Fail(field, err)
	}
	return ct
}

// SendResponse answers a SendRequest (ours): the message's position in the
// partition log, counting from 0.
//
//	struct { uint32 counter; } SendResponse;
type SendResponse struct {
	Counter uint32
}

// MarshalBinary encodes s.
func (s SendResponse) MarshalBinary() ([]byte, error) {
	w := NewWriter(make([]byte, 0, 4))
	w.U32(s.Counter)
	return w.Result()
}

// UnmarshalBinary decodes s.
func (s *SendResponse) UnmarshalBinary(b []byte) error {
	r := NewReader(b)
	s.Counter = r.U32("SendResponse.counter")
	return r.Done()
}

// ExternalJoinRequest is the draft's ExternalJoinRequest:
//
//	struct {
//	  MLSMessage message; // PublicMessage
//	  CommitData commit_data;
//	} ExternalJoinRequest;
type ExternalJoinRequest struct {
	Message    []byte
	CommitData CommitData

	msg *mls.MLSMessage
}

// MarshalBinary encodes j.
func (j *ExternalJoinRequest) MarshalBinary() ([]byte, error) {
	w := NewWriter(make([]byte, 0, len(j.Message)+len(j.CommitData.GroupInfo)+32))
	w.Raw(j.Message)
	j.CommitData.encode(w)
	return w.Result()
}

// UnmarshalBinary decodes exactly one ExternalJoinRequest from b.
func (j *ExternalJoinRequest) UnmarshalBinary(b []byte) error {
	*j = ExternalJoinRequest{}
	r := NewReader(b)
	j.Message, j.msg = r.MLSMessage("ExternalJoinRequest.message")
	if r.err == nil && j.msg.WireFormat != mls.WireFormatPublicMessage {
		r.Fail("ExternalJoinRequest.message", fmt.Errorf("wire format %s, want mls_public_message", j.msg.WireFormat))
	}
	j.CommitData.decode(r)
	return r.Done()
}

// ExternalJoinResponse answers an ExternalJoinRequest (ours): the partition
// the external commit was sequenced to, and its position there.
//
//	struct {
//	  MaskedPartitionKey masked_partition_key;
//	  uint32 counter;
//	} ExternalJoinResponse;
type ExternalJoinResponse struct {
	MaskedPartitionKey []byte
	Counter            uint32
}

// MarshalBinary encodes e.
func (e *ExternalJoinResponse) MarshalBinary() ([]byte, error) {
	w := NewWriter(nil)
	w.Opaque(e.MaskedPartitionKey)
	w.U32(e.Counter)
	return w.Result()
}

// UnmarshalBinary decodes e.
func (e *ExternalJoinResponse) UnmarshalBinary(b []byte) error {
	r := NewReader(b)
	e.MaskedPartitionKey = r.OpaqueMax("ExternalJoinResponse.masked_partition_key", MaxMaskedLen)
	e.Counter = r.U32("ExternalJoinResponse.counter")
	return r.Done()
}

// GroupInfoRequest is the draft's GroupInfoRequest:
//
//	struct { opaque group_id<V>; } GroupInfoRequest;
type GroupInfoRequest struct {
	GroupID []byte
}

// MarshalBinary encodes g.
func (g *GroupInfoRequest) MarshalBinary() ([]byte, error) {
	w := NewWriter(nil)
	w.Opaque(g.GroupID)
	return w.Result()
}

// UnmarshalBinary decodes g.
func (g *GroupInfoRequest) UnmarshalBinary(b []byte) error {
	r := NewReader(b)
	g.GroupID = r.OpaqueMax("GroupInfoRequest.group_id", MaxGroupIDLen)
	return r.Done()
}

// GroupInfoResponse is the draft's GroupInfoResponse:
//
//	struct {
//	  MLSMessage group_info; // GroupInfo
//	  optional<RatchetTree> ratchet_tree;
//	} GroupInfoResponse;
//
// RatchetTree is RFC 9420's `optional<Node> ratchet_tree<V>` (the body of
// the ratchet_tree extension), carried whole, length prefix included.
type GroupInfoResponse struct {
	GroupInfo   []byte // encoded MLSMessage(GroupInfo)
	RatchetTree []byte // encoded RatchetTree; nil when absent
}

// MarshalBinary encodes g.
func (g *GroupInfoResponse) MarshalBinary() ([]byte, error) {
	w := NewWriter(make([]byte, 0, len(g.GroupInfo)+len(g.RatchetTree)+1))
	w.Raw(g.GroupInfo)
	w.Optional(g.RatchetTree != nil)
	w.Raw(g.RatchetTree)
	return w.Result()
}

// UnmarshalBinary decodes g.
func (g *GroupInfoResponse) UnmarshalBinary(b []byte) error {
	*g = GroupInfoResponse{}
	r := NewReader(b)
	var m *mls.MLSMessage
	g.GroupInfo, m = r.MLSMessage("GroupInfoResponse.group_info")
	if r.err == nil && m.WireFormat != mls.WireFormatGroupInfo {
		r.Fail("GroupInfoResponse.group_info", fmt.Errorf("wire format %s", m.WireFormat))
	}
	if r.Optional("GroupInfoResponse.ratchet_tree") {
		g.RatchetTree, _ = r.RatchetTree("GroupInfoResponse.ratchet_tree")
	}
	return r.Done()
}
