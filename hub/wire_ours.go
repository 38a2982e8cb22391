package hub

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/mimids/mimids/mls"
)

var errNotGroupInfo = errors.New("not a GroupInfo")

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
	w := writer{buf: make([]byte, 0, len(c.GroupInfo)+len(c.RatchetTree)+32)}
	w.raw(c.GroupInfo)
	w.optional(c.RatchetTree != nil)
	w.raw(c.RatchetTree)
	w.opaque("partition_key", c.PartitionKey)
	w.optional(c.WelcomeData != nil)
	if c.WelcomeData != nil {
		c.WelcomeData.encode(&w)
	}
	return w.result()
}

// UnmarshalBinary decodes c; the fields alias b.
func (c *CreateGroupRequest) UnmarshalBinary(b []byte) error {
	*c = CreateGroupRequest{}
	r := reader{buf: b}
	c.GroupInfo, c.groupInfo = r.mlsMessage("CreateGroupRequest.group_info")
	if r.err == nil && c.groupInfo.WireFormat != mls.WireFormatGroupInfo {
		r.fail("CreateGroupRequest.group_info", errNotGroupInfo)
	}
	if r.optional("CreateGroupRequest.ratchet_tree") {
		c.RatchetTree, c.tree = r.ratchetTree("CreateGroupRequest.ratchet_tree")
	}
	c.PartitionKey = r.partitionKey("CreateGroupRequest.partition_key")
	if r.optional("CreateGroupRequest.welcome_data") {
		c.WelcomeData = new(WelcomeData)
		c.WelcomeData.decode(&r)
	}
	return r.finish("CreateGroupRequest")
}

// CreateGroupResponse answers a CreateGroupRequest (ours).
//
//	struct { MaskedPartitionKey masked_partition_key; } CreateGroupResponse;
type CreateGroupResponse struct {
	MaskedPartitionKey []byte
}

// MarshalBinary encodes c.
func (c *CreateGroupResponse) MarshalBinary() ([]byte, error) {
	w := writer{}
	w.opaque("masked_partition_key", c.MaskedPartitionKey)
	return w.result()
}

// UnmarshalBinary decodes c.
func (c *CreateGroupResponse) UnmarshalBinary(b []byte) error {
	r := reader{buf: b}
	c.MaskedPartitionKey = r.opaque("CreateGroupResponse.masked_partition_key", maxMasked)
	return r.finish("CreateGroupResponse")
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
	w := writer{}
	w.u8(uint8(p.Kind))
	w.opaque("group_id", p.GroupID)
	w.opaque("subject", p.Subject)
	w.opaque("reason", []byte(p.Reason))
	return w.result()
}

// UnmarshalBinary decodes p and checks its kind and reason.
func (p *Report) UnmarshalBinary(b []byte) error {
	r := reader{buf: b}
	p.Kind = ReportKind(r.u8("Report.kind"))
	p.GroupID = r.opaque("Report.group_id", maxGroupID)
	p.Subject = r.opaque("Report.subject", maxReportText)
	p.Reason = string(r.opaque("Report.reason", maxReportText))
	if err := r.finish("Report"); err != nil {
		return err
	}
	return p.validate()
}

func (p *Report) validate() error {
	switch {
	case p.Kind < ReportMember || p.Kind > ReportFollower:
		return fmt.Errorf("%w: Report.kind %d", ErrMalformed, p.Kind)
	case len(p.GroupID) > maxGroupID || len(p.Subject) > maxReportText || len(p.Reason) > maxReportText:
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
	w := writer{}
	w.opaque("masked_partition_key", t.MaskedPartitionKey)
	w.u32(t.Counter)
	return w.result()
}

// UnmarshalBinary decodes t.
func (t *PartitionTerminated) UnmarshalBinary(b []byte) error {
	r := reader{buf: b}
	t.MaskedPartitionKey = r.opaque("PartitionTerminated.masked_partition_key", maxMasked)
	t.Counter = r.u32("PartitionTerminated.counter")
	return r.finish("PartitionTerminated")
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
	w := writer{buf: make([]byte, 0, len(d.Welcome)+len(d.GroupID)+64)}
	w.opaque("group_id", d.GroupID)
	w.vector("key_package_refs", func(w *writer) {
		for _, ref := range d.KeyPackageRefs {
			w.opaque("KeyPackageRef", ref)
		}
	})
	w.raw(d.Welcome)
	return w.result()
}

// UnmarshalBinary decodes d.
func (d *WelcomeDelivery) UnmarshalBinary(b []byte) error {
	*d = WelcomeDelivery{}
	r := reader{buf: b}
	d.GroupID = r.opaque("WelcomeDelivery.group_id", maxGroupID)
	d.KeyPackageRefs = decodeRefs(&r, "WelcomeDelivery.key_package_refs")
	var m *mls.MLSMessage
	d.Welcome, m = r.mlsMessage("WelcomeDelivery.welcome")
	if r.err == nil && m.WireFormat != mls.WireFormatWelcome {
		r.fail("WelcomeDelivery.welcome", fmt.Errorf("wire format %s", m.WireFormat))
	}
	return r.finish("WelcomeDelivery")
}

func decodeRefs(r *reader, field string) [][]byte {
	v := r.vector(field)
	var refs [][]byte
	for v.more() {
		refs = append(refs, v.opaque("KeyPackageRef", maxRef))
	}
	r.absorb(v)
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
	w := writer{}
	w.vector("key_package_refs", func(w *writer) {
		for _, ref := range q.KeyPackageRefs {
			w.opaque("KeyPackageRef", ref)
		}
	})
	return w.result()
}

// UnmarshalBinary decodes q.
func (q *WelcomeInitRequest) UnmarshalBinary(b []byte) error {
	r := reader{buf: b}
	q.KeyPackageRefs = decodeRefs(&r, "WelcomeInitRequest.key_package_refs")
	return r.finish("WelcomeInitRequest")
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
	w := writer{}
	for _, list := range [][]string{l.Banned, l.Muted} {
		w.vector("ModerationList", func(w *writer) {
			for _, u := range list {
				w.opaque("UserURI.uri", []byte(u))
			}
		})
	}
	return w.result()
}

// UnmarshalBinary decodes l.
func (l *ModerationList) UnmarshalBinary(b []byte) error {
	*l = ModerationList{}
	r := reader{buf: b}
	for _, dst := range []*[]string{&l.Banned, &l.Muted} {
		v := r.vector("ModerationList")
		for v.more() {
			u := v.opaque("UserURI.uri", maxUserURI)
			if v.err == nil && !utf8.Valid(u) {
				v.fail("UserURI.uri", errors.New("not UTF-8"))
			}
			*dst = append(*dst, string(u))
		}
		r.absorb(v)
	}
	return r.finish("ModerationList")
}
