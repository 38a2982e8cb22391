package hub

import (
	"errors"
	"fmt"

	"github.com/mimids/mimids/mls"
)

// PartitionKeySize is the length of a partition key: the members export it
// with MLS-Exporter("mimi partition key", "", 16).
const PartitionKeySize = 16

// Field limits of the decoders. Messages, GroupInfos and trees are bounded
// by Config instead (and by the socket's frame limit).
const (
	maxGroupID    = 1024 // opaque group_id<V>
	maxProviderID = 255  // ServiceProviderId
	maxMasked     = 64   // MaskedPartitionKey: the largest suite hash
	maxRef        = 64   // KeyPackageRef: the largest suite hash
	maxReportText = 4096 // Report subject and reason
	maxUserURI    = 1024 // UserURI in a ModerationList
)

var errNotFramed = errors.New("not a PublicMessage or PrivateMessage")

// contentType returns the content type of a PublicMessage or PrivateMessage
// (in the clear in both).
func contentType(m *mls.MLSMessage) (mls.ContentType, error) {
	switch {
	case m.WireFormat == mls.WireFormatPublicMessage && m.PublicMessage != nil:
		return m.PublicMessage.Content.ContentType, nil
	case m.WireFormat == mls.WireFormatPrivateMessage && m.PrivateMessage != nil:
		return m.PrivateMessage.ContentType, nil
	}
	return 0, fmt.Errorf("%w (%s)", errNotFramed, m.WireFormat)
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

func (d *WelcomeData) encode(w *writer) {
	w.raw(d.Welcome)
	w.vector("service_providers", func(w *writer) {
		for _, p := range d.ServiceProviders {
			w.opaque("ServiceProviderId", []byte(p))
		}
	})
}

func (d *WelcomeData) decode(r *reader) {
	d.Welcome, d.welcome = r.mlsMessage("WelcomeData.welcome")
	if r.err == nil && d.welcome.WireFormat != mls.WireFormatWelcome {
		r.fail("WelcomeData.welcome", fmt.Errorf("wire format %s", d.welcome.WireFormat))
		return
	}
	v := r.vector("WelcomeData.service_providers")
	for v.more() {
		d.ServiceProviders = append(d.ServiceProviders, string(v.opaque("ServiceProviderId", maxProviderID)))
	}
	r.absorb(v)
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

func (c *CommitData) encode(w *writer) {
	w.opaque("next_partition_key", c.NextPartitionKey)
	w.optional(c.GroupInfo != nil)
	w.raw(c.GroupInfo)
	w.optional(c.WelcomeData != nil)
	if c.WelcomeData != nil {
		c.WelcomeData.encode(w)
	}
}

func (c *CommitData) decode(r *reader) {
	c.NextPartitionKey = r.partitionKey("CommitData.next_partition_key")
	if r.optional("CommitData.group_info") {
		c.GroupInfo, c.groupInfo = r.mlsMessage("CommitData.group_info")
		if r.err == nil && c.groupInfo.WireFormat != mls.WireFormatGroupInfo {
			r.fail("CommitData.group_info", fmt.Errorf("wire format %s", c.groupInfo.WireFormat))
			return
		}
	}
	if r.optional("CommitData.welcome_data") {
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
	m, err := s.parsed()
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
	w := writer{buf: make([]byte, 0, len(s.Message)+32)}
	w.raw(s.Message)
	w.opaque("partition_key", s.PartitionKey)
	if s.CommitData != nil {
		s.CommitData.encode(&w)
	}
	return w.result()
}

// UnmarshalBinary decodes exactly one SendRequest from b; the fields alias b.
func (s *SendRequest) UnmarshalBinary(b []byte) error {
	*s = SendRequest{}
	r := reader{buf: b}
	s.Message, s.msg = r.mlsMessage("SendRequest.message")
	ct := decodeContentType(&r, s.msg, "SendRequest.message")
	s.PartitionKey = r.partitionKey("SendRequest.partition_key")
	if ct == mls.ContentTypeCommit {
		s.CommitData = new(CommitData)
		s.CommitData.decode(&r)
	}
	return r.finish("SendRequest")
}

// parsed returns the decoded message, decoding Message if needed.
func (s *SendRequest) parsed() (*mls.MLSMessage, error) {
	if s.msg == nil {
		m, err := mls.DecodeMLSMessage(s.Message)
		if err != nil {
			return nil, fmt.Errorf("%w: SendRequest.message: %w", ErrMalformed, err)
		}
		s.msg = m
	}
	return s.msg, nil
}

func decodeContentType(r *reader, m *mls.MLSMessage, field string) mls.ContentType {
	if r.err != nil {
		return 0
	}
	ct, err := contentType(m)
	if err != nil {
		r.fail(field, err)
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
	w := writer{buf: make([]byte, 0, 4)}
	w.u32(s.Counter)
	return w.result()
}

// UnmarshalBinary decodes s.
func (s *SendResponse) UnmarshalBinary(b []byte) error {
	r := reader{buf: b}
	s.Counter = r.u32("SendResponse.counter")
	return r.finish("SendResponse")
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
	w := writer{buf: make([]byte, 0, len(j.Message)+len(j.CommitData.GroupInfo)+32)}
	w.raw(j.Message)
	j.CommitData.encode(&w)
	return w.result()
}

// UnmarshalBinary decodes exactly one ExternalJoinRequest from b.
func (j *ExternalJoinRequest) UnmarshalBinary(b []byte) error {
	*j = ExternalJoinRequest{}
	r := reader{buf: b}
	j.Message, j.msg = r.mlsMessage("ExternalJoinRequest.message")
	if r.err == nil && j.msg.WireFormat != mls.WireFormatPublicMessage {
		r.fail("ExternalJoinRequest.message", fmt.Errorf("wire format %s, want mls_public_message", j.msg.WireFormat))
	}
	j.CommitData.decode(&r)
	return r.finish("ExternalJoinRequest")
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
	w := writer{}
	w.opaque("masked_partition_key", e.MaskedPartitionKey)
	w.u32(e.Counter)
	return w.result()
}

// UnmarshalBinary decodes e.
func (e *ExternalJoinResponse) UnmarshalBinary(b []byte) error {
	r := reader{buf: b}
	e.MaskedPartitionKey = r.opaque("ExternalJoinResponse.masked_partition_key", maxMasked)
	e.Counter = r.u32("ExternalJoinResponse.counter")
	return r.finish("ExternalJoinResponse")
}

// GroupInfoRequest is the draft's GroupInfoRequest:
//
//	struct { opaque group_id<V>; } GroupInfoRequest;
type GroupInfoRequest struct {
	GroupID []byte
}

// MarshalBinary encodes g.
func (g *GroupInfoRequest) MarshalBinary() ([]byte, error) {
	w := writer{}
	w.opaque("group_id", g.GroupID)
	return w.result()
}

// UnmarshalBinary decodes g.
func (g *GroupInfoRequest) UnmarshalBinary(b []byte) error {
	r := reader{buf: b}
	g.GroupID = r.opaque("GroupInfoRequest.group_id", maxGroupID)
	return r.finish("GroupInfoRequest")
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
	w := writer{buf: make([]byte, 0, len(g.GroupInfo)+len(g.RatchetTree)+1)}
	w.raw(g.GroupInfo)
	w.optional(g.RatchetTree != nil)
	w.raw(g.RatchetTree)
	return w.result()
}

// UnmarshalBinary decodes g.
func (g *GroupInfoResponse) UnmarshalBinary(b []byte) error {
	*g = GroupInfoResponse{}
	r := reader{buf: b}
	var m *mls.MLSMessage
	g.GroupInfo, m = r.mlsMessage("GroupInfoResponse.group_info")
	if r.err == nil && m.WireFormat != mls.WireFormatGroupInfo {
		r.fail("GroupInfoResponse.group_info", fmt.Errorf("wire format %s", m.WireFormat))
	}
	if r.optional("GroupInfoResponse.ratchet_tree") {
		g.RatchetTree, _ = r.ratchetTree("GroupInfoResponse.ratchet_tree")
	}
	return r.finish("GroupInfoResponse")
}

// ratchetTree reads a RatchetTree vector whole and decodes it.
func (r *reader) ratchetTree(field string) ([]byte, mls.RatchetTree) {
	start := r.off
	r.take(field, r.varint(field))
	if r.err != nil {
		return nil, nil
	}
	raw := r.buf[start:r.off:r.off]
	t, err := mls.DecodeRatchetTree(raw)
	if err != nil {
		r.fail(field, err)
		return nil, nil
	}
	return raw, t
}
