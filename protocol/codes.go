package protocol

import "fmt"

// Method names a request. Ranges: 0x00xx core, 0x01xx KeyPackages and discovery,
// 0x02xx groups (hub and follower).
type Method uint16

const (
	// MethodPing echoes its body. Clients use it to measure latency.
	MethodPing Method = 0x0001
	// MethodMailboxStatus answers MailboxStatus for the authenticated client.
	MethodMailboxStatus Method = 0x0002
	// MethodKeyPackageUpload stores KeyPackages of the caller (KeyPackages section).
	MethodKeyPackageUpload Method = 0x0101
	// MethodKeyPackageCount reports the caller's stock per cipher suite.
	MethodKeyPackageCount Method = 0x0102
	// MethodRelay forwards an Oblivious HTTP request to a peer provider's gateway.
	MethodRelay Method = 0x0110
	// MethodCreateGroup makes this provider the hub of a new group (groups section).
	MethodCreateGroup Method = 0x0201
	// MethodSend sequences a message (the draft's SendRequest).
	MethodSend Method = 0x0202
	// MethodReceive reads a partition (the draft's ReceiveRequest/ReceiveResponse).
	MethodReceive Method = 0x0203
	// MethodSubscribe pushes a partition's messages to this socket from a counter on.
	MethodSubscribe Method = 0x0204
	// MethodUnsubscribe stops the pushes of a partition.
	MethodUnsubscribe Method = 0x0205
	// MethodGroupInfo answers the draft's GroupInfoRequest.
	MethodGroupInfo Method = 0x0206
	// MethodExternalJoin sequences the draft's ExternalJoinRequest.
	MethodExternalJoin Method = 0x0207
	// MethodReport files a report about a member, a message, a hub or a follower.
	MethodReport Method = 0x0208
)

func (m Method) String() string {
	switch m {
	case MethodPing:
		return "ping"
	case MethodMailboxStatus:
		return "mailbox_status"
	case MethodKeyPackageUpload:
		return "key_package_upload"
	case MethodKeyPackageCount:
		return "key_package_count"
	case MethodRelay:
		return "relay"
	case MethodCreateGroup:
		return "create_group"
	case MethodSend:
		return "send"
	case MethodReceive:
		return "receive"
	case MethodGroupInfo:
		return "group_info"
	case MethodExternalJoin:
		return "external_join"
	case MethodReport:
		return "report"
	case MethodSubscribe:
		return "subscribe"
	case MethodUnsubscribe:
		return "unsubscribe"
	case MethodGroupInfoAt:
		return "group_info_at"
	case MethodExternalJoinAt:
		return "external_join_at"
	case MethodSubscribeAt:
		return "subscribe_at"
	}
	return fmt.Sprintf("method(0x%04x)", uint16(m))
}

// Code is an error code carried in an Error frame.
type Code uint16

const (
	CodeMalformed     Code = 1  // the frame or request body does not parse
	CodeUnauthorized  Code = 2  // missing, wrong or revoked token
	CodeUnknownMethod Code = 3  // the method is not defined
	CodeNotFound      Code = 4  // the named thing does not exist
	CodeTooLarge      Code = 5  // a frame or field is over its limit
	CodeRateLimited   Code = 6  // slow down; the request was not processed
	CodeInternal      Code = 7  // the server failed; the request may be retried
	CodeConflict      Code = 8  // the request conflicts with existing state
	CodeUnavailable   Code = 9  // the server is shutting down or overloaded; retry later
	CodeInvalid       Code = 10 // the request parses but is not acceptable
	CodeProtocol      Code = 11 // the frame is not allowed in this state (e.g. request before auth)

	// Groups (hub) codes.
	CodeTreeRequired   Code = 32 // the GroupInfo needs a ratchet_tree the hub cannot infer; resend with it
	CodeTerminated     Code = 33 // the partition was terminated by the hub
	CodeWrongPartition Code = 34 // the message does not belong to the indicated partition (epoch or group)
	CodePolicy         Code = 35 // refused by policy: banned, muted, or not a member
	CodeInvalidMLS     Code = 36 // an MLS message or GroupInfo the hub can tell is invalid

	// KeyPackage codes.
	CodeKeyPackageRejected Code = 40 // a KeyPackage failed validation (see the message)

	// Mailbox codes.
	CodeMailboxFull Code = 48 // a recipient's mailbox is at its quota; nothing was done
)

var codeNames = map[Code]string{
	CodeMalformed: "malformed", CodeUnauthorized: "unauthorized", CodeUnknownMethod: "unknown_method",
	CodeNotFound: "not_found", CodeTooLarge: "too_large", CodeRateLimited: "rate_limited",
	CodeInternal: "internal", CodeConflict: "conflict", CodeUnavailable: "unavailable",
	CodeInvalid: "invalid", CodeProtocol: "protocol",
	CodeTreeRequired: "tree_required", CodeTerminated: "terminated", CodeWrongPartition: "wrong_partition",
	CodePolicy: "policy", CodeInvalidMLS: "invalid_mls", CodeKeyPackageRejected: "key_package_rejected",
	CodeMailboxFull: "mailbox_full",
}

func (c Code) String() string {
	if s, ok := codeNames[c]; ok {
		return s
	}
	return fmt.Sprintf("code(%d)", uint16(c))
}

// Error makes *Error usable as a Go error on the client side.
func (e *Error) Error() string {
	return fmt.Sprintf("mimids: %s: %s", e.Code, e.Message)
}

// Close codes the server uses when it ends a socket (RFC 6455 private range 4000-4999,
// plus the standard 1001 going away on shutdown and 1009 for a frame over the limit).
const (
	CloseProtocolError = 4000 // a frame failed to decode or was not allowed in this state
	CloseAuthFailed    = 4001 // the auth frame carried an unknown or revoked token
	CloseAuthTimeout   = 4002 // no auth frame arrived within the deadline
	CloseRevoked       = 4003 // the client's token was revoked while connected
	CloseSlowConsumer  = 4008 // the client did not read fast enough; reconnect and resume
	CloseTooMany       = 4009 // the client or its user has as many sockets as allowed; close one first
	CloseOverloaded    = 4010 // the server's send queues are over budget and this one was among the largest; reconnect and resume
	CloseGoingAway     = 1001 // the server is shutting down; reconnect later
	CloseTooBig        = 1009 // a frame exceeded max_frame_size
)

// CloseReason names a close code for logs and metrics.
func CloseReason(code int) string {
	switch code {
	case CloseProtocolError:
		return "protocol_error"
	case CloseAuthFailed:
		return "auth_failed"
	case CloseAuthTimeout:
		return "auth_timeout"
	case CloseRevoked:
		return "revoked"
	case CloseSlowConsumer:
		return "slow_consumer"
	case CloseTooMany:
		return "too_many_sockets"
	case CloseOverloaded:
		return "overloaded"
	case CloseGoingAway:
		return "going_away"
	case CloseTooBig:
		return "too_big"
	case 1000:
		return "normal"
	}
	return fmt.Sprintf("close(%d)", code)
}

// Kind says what a mailbox entry's payload is.
type Kind uint16

const (
	// KindNotice is an operator notice; its payload is a Notice.
	KindNotice Kind = 1
	// KindWelcome is an MLS Welcome for this client (payload: WelcomeDelivery, hub issue).
	KindWelcome Kind = 2
	// KindGroupMessage is a sequenced group message (payload defined by the hub issue).
	KindGroupMessage Kind = 3
	// KindKeyPackagesLow warns that the client's KeyPackage stock is low.
	KindKeyPackagesLow Kind = 4
	// KindKeyPackagesExhausted tells that the client's last resort was served for want
	// of one-time KeyPackages, or that the user's KeyPackages are being claimed faster
	// than the provider allows (payload: KeyPackagesExhausted).
	KindKeyPackagesExhausted Kind = 5
)

func (k Kind) String() string {
	switch k {
	case KindNotice:
		return "notice"
	case KindWelcome:
		return "welcome"
	case KindGroupMessage:
		return "group_message"
	case KindKeyPackagesLow:
		return "key_packages_low"
	case KindKeyPackagesExhausted:
		return "key_packages_exhausted"
	}
	return fmt.Sprintf("kind(%d)", uint16(k))
}

// Notice is the payload of a KindNotice entry:
//
//	struct { opaque text<V>; } Notice;
type Notice struct {
	Text string
}

// MarshalBinary encodes n.
func (n Notice) MarshalBinary() ([]byte, error) {
	w := NewWriter(nil)
	w.String(n.Text)
	return w.Bytes(), nil
}

// UnmarshalBinary decodes n.
func (n *Notice) UnmarshalBinary(b []byte) error {
	r := NewReader(b)
	text := r.Opaque("notice.text")
	if err := r.Done(); err != nil {
		return fmt.Errorf("wire: decode notice: %w", err)
	}
	n.Text = string(text)
	return nil
}

// MailboxStatus answers MethodMailboxStatus:
//
//	struct { uint64 pending; uint64 first_seq; uint64 last_seq; } MailboxStatus;
//
// first_seq and last_seq are 0 when nothing is pending.
type MailboxStatus struct {
	Pending  uint64
	FirstSeq uint64
	LastSeq  uint64
}

// MarshalBinary encodes s.
func (s MailboxStatus) MarshalBinary() ([]byte, error) {
	w := NewWriter(make([]byte, 0, 24))
	w.U64(s.Pending)
	w.U64(s.FirstSeq)
	w.U64(s.LastSeq)
	return w.Bytes(), nil
}

// UnmarshalBinary decodes s.
func (s *MailboxStatus) UnmarshalBinary(b []byte) error {
	r := NewReader(b)
	s.Pending, s.FirstSeq, s.LastSeq = r.U64("pending"), r.U64("first_seq"), r.U64("last_seq")
	if err := r.Done(); err != nil {
		return fmt.Errorf("wire: decode mailbox_status: %w", err)
	}
	return nil
}

// HTTP paths of the Oblivious HTTP flows (docs/protocol.md §3): the relay a provider
// runs for its own clients, and the inner routes its gateway serves.
const (
	// RelayPathPrefix is followed by the target provider's domain:
	// POST /v1/ohttp-relay/<domain>.
	RelayPathPrefix = "/v1/ohttp-relay/"
	// InnerKeyPackagesPath takes a KeyPackageRequestBundle.
	InnerKeyPackagesPath = "/v1/keypackages"
	// InnerDiscoverPath takes struct { opaque user_id<V>; }.
	InnerDiscoverPath = "/v1/discover"
	// InnerContentType is the content type of inner bodies.
	InnerContentType = "application/octet-stream"
)
