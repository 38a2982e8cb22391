package protocol

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/mimids/mimids/mls"
)

// CreateGroupRequest creates a group hosted by the creator's provider (ours):
// the first GroupInfo (its group ID names the group), its ratchet tree
// unless the GroupInfo carries one, the first partition key, and the
// Welcome for members already in that epoch, if any.
//
//	struct {
//	  MLSMessage group_info; // GroupInfo
//	  optional<RatchetTree> ratchet_tree;
//	  PartitionKey partition_key;
//	  optional<WelcomeData> welcome_data;
//	} CreateGroupRequest;
type CreateGroupRequest struct {
	GroupInfo    []byte
	RatchetTree  []byte // encoded RatchetTree; nil when absent
	PartitionKey []byte
	WelcomeData  *WelcomeData

	groupInfo *mls.MLSMessage
	tree      mls.RatchetTree
}

// MarshalBinary encodes c.
func (c *CreateGroupRequest) MarshalBinary() ([]byte, error) {
	w := NewWriter(make([]byte, 0, len(c.GroupInfo)+len(c.RatchetTree)+32))
	w.Raw(c.GroupInfo)
	w.Optional(c.RatchetTree != nil)
	w.Raw(c.RatchetTree)
	w.Opaque(c.PartitionKey)
	w.Optional(c.WelcomeData != nil)
	if c.WelcomeData != nil {
		c.WelcomeData.encode(w)
	}
	return w.Result()
}

// UnmarshalBinary decodes c; the fields alias b.
func (c *CreateGroupRequest) UnmarshalBinary(b []byte) error {
	*c = CreateGroupRequest{}
	r := NewReader(b)
	c.GroupInfo, c.groupInfo = r.MLSMessage("CreateGroupRequest.group_info")
	if r.err == nil && c.groupInfo.WireFormat != mls.WireFormatGroupInfo {
		r.Fail("CreateGroupRequest.group_info", ErrNotGroupInfo)
	}
	if r.Optional("CreateGroupRequest.ratchet_tree") {
		c.RatchetTree, c.tree = r.RatchetTree("CreateGroupRequest.ratchet_tree")
	}
	c.PartitionKey = r.PartitionKey("CreateGroupRequest.partition_key")
	if r.Optional("CreateGroupRequest.welcome_data") {
		c.WelcomeData = new(WelcomeData)
		c.WelcomeData.decode(r)
	}
	return r.Done()
}

// ParsedGroupInfo returns the decoded group_info (see SendRequest.Parsed).
func (c *CreateGroupRequest) ParsedGroupInfo() (*mls.MLSMessage, error) {
	return parseOnce(&c.groupInfo, c.GroupInfo, "CreateGroupRequest.group_info")
}

// ParsedTree returns the decoded ratchet_tree, nil when there is none.
func (c *CreateGroupRequest) ParsedTree() (mls.RatchetTree, error) {
	if c.tree == nil && c.RatchetTree != nil {
		t, err := mls.DecodeRatchetTree(c.RatchetTree)
		if err != nil {
			return nil, fmt.Errorf("%w: CreateGroupRequest.ratchet_tree: %w", ErrMalformed, err)
		}
		c.tree = t
	}
	return c.tree, nil
}

// CreateGroupResponse answers a CreateGroupRequest (ours).
//
//	struct { MaskedPartitionKey masked_partition_key; } CreateGroupResponse;
type CreateGroupResponse struct {
	MaskedPartitionKey []byte
}

// MarshalBinary encodes c.
func (c *CreateGroupResponse) MarshalBinary() ([]byte, error) {
	w := NewWriter(nil)
	w.Opaque(c.MaskedPartitionKey)
	return w.Result()
}

// UnmarshalBinary decodes c.
func (c *CreateGroupResponse) UnmarshalBinary(b []byte) error {
	r := NewReader(b)
	c.MaskedPartitionKey = r.OpaqueMax("CreateGroupResponse.masked_partition_key", MaxMaskedLen)
	return r.Done()
}

// ReportKind says what a Report is about.
type ReportKind uint8

const (
	ReportMember   ReportKind = 1 // subject: the member's user URI
	ReportMessage  ReportKind = 2 // subject: the reported MLSMessage or a reference to it
	ReportHub      ReportKind = 3 // subject: the hub's provider domain
	ReportFollower ReportKind = 4 // subject: the follower's provider domain
)

func (k ReportKind) String() string {
	switch k {
	case ReportMember:
		return "member"
	case ReportMessage:
		return "message"
	case ReportHub:
		return "hub"
	case ReportFollower:
		return "follower"
	}
	return fmt.Sprintf("report_kind(%d)", uint8(k))
}

// Report is a client's complaint to its own provider (ours):
//
//	enum { member(1), message(2), hub(3), follower(4), (255) } ReportKind;
//	struct {
//	  ReportKind kind;
//	  opaque group_id<V>;
//	  opaque subject<V>;  // at most 4096 bytes
//	  opaque reason<V>;   // UTF-8, at most 4096 bytes
//	} Report;
type Report struct {
	Kind    ReportKind
	GroupID []byte
	Subject []byte
	Reason  string
}

// MarshalBinary encodes p.
func (p *Report) MarshalBinary() ([]byte, error) {
	w := NewWriter(nil)
	w.U8(uint8(p.Kind))
	w.Opaque(p.GroupID)
	w.Opaque(p.Subject)
	w.Opaque([]byte(p.Reason))
	return w.Result()
}

// UnmarshalBinary decodes p and checks its kind and reason.
func (p *Report) UnmarshalBinary(b []byte) error {
	r := NewReader(b)
	p.Kind = ReportKind(r.U8("Report.kind"))
	p.GroupID = r.OpaqueMax("Report.group_id", MaxGroupIDLen)
	p.Subject = r.OpaqueMax("Report.subject", MaxReportTextLen)
	p.Reason = string(r.OpaqueMax("Report.reason", MaxReportTextLen))
	if err := r.Done(); err != nil {
		return err
	}
	return p.Validate()
}

func (p *Report) Validate() error {
	switch {
	case p.Kind < ReportMember || p.Kind > ReportFollower:
		return fmt.Errorf("%w: Report.kind %d", ErrMalformed, p.Kind)
	case len(p.GroupID) > MaxGroupIDLen || len(p.Subject) > MaxReportTextLen || len(p.Reason) > MaxReportTextLen:
		return fmt.Errorf("%w: Report field over its limit", ErrMalformed)
	case !utf8.ValidString(p.Reason):
		return fmt.Errorf("%w: Report.reason is not UTF-8", ErrMalformed)
	}
	return nil
}

// PartitionTerminated tells receivers that the hub terminated a partition
// (ours); counter is the length of its log, which is final.
//
//	struct {
//	  MaskedPartitionKey masked_partition_key;
//	  uint32 counter;
//	} PartitionTerminated;
type PartitionTerminated struct {
	MaskedPartitionKey []byte
	Counter            uint32
}

// MarshalBinary encodes t.
func (t *PartitionTerminated) MarshalBinary() ([]byte, error) {
	w := NewWriter(nil)
	w.Opaque(t.MaskedPartitionKey)
	w.U32(t.Counter)
	return w.Result()
}

// UnmarshalBinary decodes t.
func (t *PartitionTerminated) UnmarshalBinary(b []byte) error {
	r := NewReader(b)
	t.MaskedPartitionKey = r.OpaqueMax("PartitionTerminated.masked_partition_key", MaxMaskedLen)
	t.Counter = r.U32("PartitionTerminated.counter")
	return r.Done()
}

// WelcomeDelivery is the payload of a mailbox entry of kind welcome (2): a
// Welcome for the receiving client, with the KeyPackageRefs of that client
// it names (ours).
//
//	struct {
//	  opaque group_id<V>;
//	  KeyPackageRef key_package_refs<V>;
//	  MLSMessage welcome; // Welcome
//	} WelcomeDelivery;
type WelcomeDelivery struct {
	GroupID        []byte
	KeyPackageRefs [][]byte
	Welcome        []byte
}

// MarshalBinary encodes d.
func (d *WelcomeDelivery) MarshalBinary() ([]byte, error) {
	w := NewWriter(make([]byte, 0, len(d.Welcome)+len(d.GroupID)+64))
	w.Opaque(d.GroupID)
	w.Vector(func(w *Writer) {
		for _, ref := range d.KeyPackageRefs {
			w.Opaque(ref)
		}
	})
	w.Raw(d.Welcome)
	return w.Result()
}

// UnmarshalBinary decodes d.
func (d *WelcomeDelivery) UnmarshalBinary(b []byte) error {
	*d = WelcomeDelivery{}
	r := NewReader(b)
	d.GroupID = r.OpaqueMax("WelcomeDelivery.group_id", MaxGroupIDLen)
	d.KeyPackageRefs = decodeRefs(r, "WelcomeDelivery.key_package_refs")
	var m *mls.MLSMessage
	d.Welcome, m = r.MLSMessage("WelcomeDelivery.welcome")
	if r.err == nil && m.WireFormat != mls.WireFormatWelcome {
		r.Fail("WelcomeDelivery.welcome", fmt.Errorf("wire format %s", m.WireFormat))
	}
	return r.Done()
}

func decodeRefs(r *Reader, field string) [][]byte {
	v := r.Vector(field)
	var refs [][]byte
	for v.More() {
		refs = append(refs, v.OpaqueMax("KeyPackageRef", MaxRefLen))
	}
	return refs
}

// WelcomeInitRequest is the draft's WelcomeInitRequest, sent by the hub to a
// follower before it pushes a Welcome:
//
//	struct { KeyPackageRef key_package_refs<V>; } WelcomeInitRequest;
type WelcomeInitRequest struct {
	KeyPackageRefs [][]byte
}

// MarshalBinary encodes q.
func (q *WelcomeInitRequest) MarshalBinary() ([]byte, error) {
	w := NewWriter(nil)
	w.Vector(func(w *Writer) {
		for _, ref := range q.KeyPackageRefs {
			w.Opaque(ref)
		}
	})
	return w.Result()
}

// UnmarshalBinary decodes q.
func (q *WelcomeInitRequest) UnmarshalBinary(b []byte) error {
	r := NewReader(b)
	q.KeyPackageRefs = decodeRefs(r, "WelcomeInitRequest.key_package_refs")
	return r.Done()
}

// ModerationExtensionType is the GroupContext extension (private range) that
// carries a group's ban and mute lists.
const ModerationExtensionType mls.ExtensionType = 0xF0A0

// ModerationList is the body of the 0xF0A0 GroupContext extension: user
// URIs (mimi://<provider>/u/<user>) banned from and muted in the group.
//
//	struct { opaque uri<V>; } UserURI;
//	struct { UserURI banned<V>; UserURI muted<V>; } ModerationList;
type ModerationList struct {
	Banned []string
	Muted  []string
}

// MarshalBinary encodes l.
func (l *ModerationList) MarshalBinary() ([]byte, error) {
	w := NewWriter(nil)
	for _, list := range [][]string{l.Banned, l.Muted} {
		w.Vector(func(w *Writer) {
			for _, u := range list {
				w.Opaque([]byte(u))
			}
		})
	}
	return w.Result()
}

// UnmarshalBinary decodes l.
func (l *ModerationList) UnmarshalBinary(b []byte) error {
	*l = ModerationList{}
	r := NewReader(b)
	for _, dst := range []*[]string{&l.Banned, &l.Muted} {
		v := r.Vector("ModerationList")
		for v.More() {
			u := v.OpaqueMax("UserURI.uri", MaxUserIDLen)
			if v.err == nil && !utf8.Valid(u) {
				v.Fail("UserURI.uri", errors.New("not UTF-8"))
			}
			*dst = append(*dst, string(u))
		}
	}
	return r.Done()
}
