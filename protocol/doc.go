// Package protocol holds every message of the mimids Delivery Service protocol and
// its one codec: the draft's structs (draft-mcmillion-mimi-delivery-service:
// SendRequest, CommitData, WelcomeData, ReceiveRequest/ReceiveResponse,
// GroupInfoRequest, ExternalJoinRequest, WelcomeInitRequest, KeyPackageRequest/
// KeyPackageResponse, ...), mimids' own structs (CreateGroupRequest, Report, the
// KeyPackage upload and discovery bodies, the moderation list), the client socket's
// frames, methods, error codes and close codes, the mailbox entry kinds, MIMI URIs,
// and the HTTP paths of the Oblivious HTTP flows. Everything is encoded in the TLS
// presentation language of RFC 9420 §2.1 (with §2.1.2 variable-length integers) by
// one Reader and Writer (codec.go).
//
// Domain errors carry their wire code: packages declare sentinels with NewError and
// the edges answer any error by CodeOf. A role's group methods are served from a
// GroupMethods table, so the gateway (and the federation link) route by method.
//
// # Groups' structs
//
// The draft's structs (SendRequest, CommitData, WelcomeData, ReceiveRequest,
// Message, Epoch, HintedEpoch, ReceiveResponse, ExternalJoinRequest,
// GroupInfoRequest, GroupInfoResponse, WelcomeInitRequest) and ours
// (CreateGroupRequest/Response, SendResponse, ExternalJoinResponse, Report,
// PartitionTerminated, WelcomeDelivery, ModerationList) are encoded in the
// TLS presentation language of RFC 9420 §2.1, with §2.1.2 variable-length
// integers, minimal encodings only and no trailing bytes; each type's
// comment gives its struct. Decisions where the draft is loose:
//
//   - An MLSMessage field is the encoded MLSMessage itself, without a length
//     prefix (it is self-delimiting); optional<MLSMessage> is a presence
//     octet then the message. RatchetTree is RFC 9420's
//     `optional<Node> ratchet_tree<V>`, the body of the ratchet_tree
//     extension.
//   - `opaque PartitionKey<16>` is a variable-length vector whose length
//     must be exactly 16: one length octet 0x10, then the 16 bytes. Any
//     other length is malformed.
//   - The draft's `select (...content_type) { case application: case
//     proposal: case commit: CommitData commit_data; }` is read as: only
//     commits carry CommitData. Likewise only commits carry
//     next_partition_key and group_info in a Message. The content type is
//     in the clear in both PublicMessage and PrivateMessage.
//   - MaskedPartitionKey is Hash(partition_key) with the group cipher
//     suite's hash. The hub stores and logs only masked keys. A receiver
//     names a partition by its key; the hub tries each supported hash
//     (SHA-256, -384, -512), which cannot collide across lengths.
//
// It is a pure codec: it imports only mls and the standard library, does no I/O and
// no logging. docs/protocol.md is its prose form.
package protocol
