package protocol

import "fmt"

// Group requests forwarded from a follower to a group's hub over the federation
// link (docs/protocol.md §5.10), and the socket methods that name the hub.
const (
	// EnvelopeGroupRequest (follower to hub) carries one client request for a
	// group the receiving provider hosts: body GroupRequest, ack body the method's
	// answer body, or an error envelope with the hub's code.
	EnvelopeGroupRequest EnvelopeType = 0x0101
)

// Socket methods that name a group's hub, for a provider that has never seen the
// group (docs/protocol.md §4): body HubHinted, answer as the unhinted method's.
const (
	// MethodGroupInfoAt is group_info with the hub named: body HubHinted over a
	// GroupInfoRequest.
	MethodGroupInfoAt Method = 0x0209
	// MethodExternalJoinAt is external_join with the hub named: body HubHinted over
	// an ExternalJoinRequest.
	MethodExternalJoinAt Method = 0x020a
	// MethodSubscribeAt is subscribe with the partition's hub named: body HubHinted
	// over a SubscribeRequest (docs/protocol.md §5.12).
	MethodSubscribeAt Method = 0x020b
)

// MaxUserURISize bounds the sender_user_uri of a GroupRequest.
const MaxUserURISize = 512

// MaxDomainSize bounds a domain name on the wire (RFC 1035).
const MaxDomainSize = 253

// ForwardedMethods are the methods a follower forwards in a group_request: the
// group methods a client may use for a group hosted elsewhere (creating a group
// always makes its creator's provider the hub).
var ForwardedMethods = []Method{MethodSend, MethodReceive, MethodGroupInfo, MethodExternalJoin}

// Forwardable reports whether m may travel in a group_request.
func Forwardable(m Method) bool {
	for _, f := range ForwardedMethods {
		if f == m {
			return true
		}
	}
	return false
}

// GroupRequest is the body of a group_request envelope: the method, the user the
// follower's provider vouches for (a user of the sending provider's domain), and
// the request body exactly as the client sent it.
//
//	struct {
//	  uint16 method;
//	  opaque sender_user_uri<V>;
//	  opaque body<V>;
//	} GroupRequest;
type GroupRequest struct {
	Method  Method
	UserURI string
	Body    []byte
}

// MarshalBinary encodes g.
func (g *GroupRequest) MarshalBinary() ([]byte, error) {
	w := NewWriter(make([]byte, 0, 2+2+len(g.UserURI)+4+len(g.Body)))
	w.U16(uint16(g.Method))
	w.String(g.UserURI)
	w.Opaque(g.Body)
	return w.Result()
}

// UnmarshalBinary decodes g.
func (g *GroupRequest) UnmarshalBinary(b []byte) error {
	*g = GroupRequest{}
	r := NewReader(b)
	g.Method = Method(r.U16("GroupRequest.method"))
	g.UserURI = string(r.OpaqueMax("GroupRequest.sender_user_uri", MaxUserURISize))
	g.Body = r.Opaque("GroupRequest.body")
	return r.Done()
}

// HubHinted is the body of group_info_at and external_join_at: the domain of the
// group's hub, then the unhinted method's request body.
//
//	struct {
//	  opaque hub<V>;     // a domain, at most MaxDomainSize bytes
//	  opaque body<V>;
//	} HubHinted;
type HubHinted struct {
	Hub  string
	Body []byte
}

// MarshalBinary encodes h.
func (h *HubHinted) MarshalBinary() ([]byte, error) {
	if len(h.Hub) == 0 || len(h.Hub) > MaxDomainSize {
		return nil, fmt.Errorf("%w: hub domain of %d bytes", ErrMalformed, len(h.Hub))
	}
	w := NewWriter(make([]byte, 0, 2+len(h.Hub)+4+len(h.Body)))
	w.String(h.Hub)
	w.Opaque(h.Body)
	return w.Result()
}

// UnmarshalBinary decodes h.
func (h *HubHinted) UnmarshalBinary(b []byte) error {
	*h = HubHinted{}
	r := NewReader(b)
	h.Hub = string(r.OpaqueMax("HubHinted.hub", MaxDomainSize))
	h.Body = r.Opaque("HubHinted.body")
	if err := r.Done(); err != nil {
		return err
	}
	if h.Hub == "" {
		return fmt.Errorf("%w: HubHinted.hub: empty", ErrMalformed)
	}
	return nil
}
