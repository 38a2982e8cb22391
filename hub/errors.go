package hub

import (
	"errors"

	"github.com/mimids/mimids/protocol"
)

// Sentinel errors. Every error the Hub returns for bad input wraps exactly one
// of them (test with errors.Is), so the socket handlers can map them to wire
// error codes; the text after the sentinel says which check failed.
var (
	// ErrMalformed means a request that does not decode (truncated, trailing
	// bytes, a non-minimal length, a wrong selector, a partition key that is
	// not 16 bytes).
	ErrMalformed = protocol.ErrMalformed
	// ErrTooLarge means a message, GroupInfo, ratchet tree or Welcome over
	// its configured limit.
	ErrTooLarge = protocol.NewError(protocol.CodeTooLarge, "hub: too large")
	// ErrUnknownGroup means a group ID this hub does not host.
	ErrUnknownGroup = protocol.NewError(protocol.CodeNotFound, "hub: unknown group")
	// ErrGroupExists means a CreateGroupRequest for a group ID already in use.
	ErrGroupExists = protocol.NewError(protocol.CodeConflict, "hub: group ID already in use")
	// ErrUnknownPartition means a partition key that names no partition.
	ErrUnknownPartition = protocol.NewError(protocol.CodeNotFound, "hub: unknown partition")
	// ErrWrongPartition means a partition of another group, or a handshake
	// message whose epoch is not the partition's epoch.
	ErrWrongPartition = protocol.NewError(protocol.CodeWrongPartition, "hub: message does not belong to the partition")
	// ErrPartitionExists means a next_partition_key (or a new group's
	// partition key) that already names a partition.
	ErrPartitionExists = protocol.NewError(protocol.CodeConflict, "hub: partition key already in use")
	// ErrPartitionFull means a partition log that reached 2^32-1 messages.
	ErrPartitionFull = protocol.NewError(protocol.CodeInvalid, "hub: partition log is full")
	// ErrTerminated means a send to a partition the hub terminated.
	ErrTerminated = protocol.NewError(protocol.CodeTerminated, "hub: partition terminated")
	// ErrTreeRequired means a GroupInfo without ratchet_tree whose tree the
	// hub cannot infer: retry with the ratchet_tree extension.
	ErrTreeRequired = protocol.NewError(protocol.CodeTreeRequired, "hub: GroupInfo needs a ratchet_tree")
	// ErrTreeMismatch means a ratchet tree whose hash is not the GroupInfo's
	// group_context.tree_hash.
	ErrTreeMismatch = protocol.NewError(protocol.CodeInvalidMLS, "hub: ratchet tree does not match tree_hash")
	// ErrInvalidGroupInfo means a GroupInfo that fails verification or does
	// not match the commit that opens its epoch.
	ErrInvalidGroupInfo = protocol.NewError(protocol.CodeInvalidMLS, "hub: invalid GroupInfo")
	// ErrNoGroupInfo means a GroupInfoRequest for a group whose newest
	// partition has no GroupInfo, or an external join to a newest partition
	// whose public state the hub does not have (it could not verify it).
	ErrNoGroupInfo = protocol.NewError(protocol.CodeNotFound, "hub: no GroupInfo published")
	// ErrWelcomeMismatch means WelcomeData whose providers do not match the
	// Welcome's secrets one to one, a Welcome whose new members are not the
	// public commit's Adds, or, at create_group, a Welcome naming a
	// KeyPackage of this provider that it never served or whose leaf is not
	// in the new group's tree.
	ErrWelcomeMismatch = protocol.NewError(protocol.CodeInvalidMLS, "hub: Welcome does not match its commit")
	// ErrInvalidMessage means an MLS message that is unambiguously invalid in
	// the indicated partition; it wraps the mls error naming the check.
	ErrInvalidMessage = protocol.NewError(protocol.CodeInvalidMLS, "hub: invalid MLS message")
	// ErrRemovedSender means a PublicMessage from a member whose leaf is
	// blank or outside the tree.
	ErrRemovedSender = protocol.NewError(protocol.CodePolicy, "hub: sender is not a member")
	// ErrBanned means a message from, or an Add of, a user banned in the
	// partition's moderation list or by the provider's admin.
	ErrBanned = protocol.NewError(protocol.CodePolicy, "hub: user is banned")
	// ErrIdentityMismatch means a leaf a local client introduces for itself
	// (its own leaf at create_group, an external join's leaf, an UpdatePath
	// or Update leaf) whose credential is not a BasicCredential naming that
	// client (its client URI or user URI).
	ErrIdentityMismatch = protocol.NewError(protocol.CodePolicy, "hub: credential does not name the sender")
	// ErrForeignIdentity means a request a peer forwarded (protocol.Sender.Peer)
	// that introduces a leaf naming a user of another provider than that peer,
	// or that commits or proposes from the leaf of another provider's user: a
	// follower acts for its own users only.
	ErrForeignIdentity = protocol.NewError(protocol.CodeUnauthorized, "hub: credential names a user of another provider than the forwarding one")
	// ErrMuted means an application message from a muted user.
	ErrMuted = protocol.NewError(protocol.CodePolicy, "hub: user is muted")
	// ErrRateLimited means a local user over the per-user rate limit; the
	// request was not sequenced.
	ErrRateLimited = protocol.NewError(protocol.CodeRateLimited, "hub: rate limited")
	// ErrStale means a handshake that stayed behind the partition's log: other
	// nodes of this provider kept sequencing handshakes to it while the hub
	// checked this one again (Config's bound on rechecks). Nothing was
	// sequenced; retry.
	ErrStale = protocol.NewError(protocol.CodeUnavailable, "hub: partition changed on another node while checking; retry")
	// ErrNotFound means an unknown pending Welcome or report.
	ErrNotFound = protocol.NewError(protocol.CodeNotFound, "hub: not found")
)

// NotHosted reports whether err says the hub hosts no such group or partition (as
// opposed to refusing a request for one it hosts): the router then asks the
// follower.
func NotHosted(err error) bool {
	return errors.Is(err, ErrUnknownGroup) || errors.Is(err, ErrUnknownPartition)
}
