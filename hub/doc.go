// Package hub hosts groups: a provider is the hub of every group its users
// create (draft-mcmillion-mimi-delivery-service-00). It sequences each
// message into the partition (one epoch of one fork) that its sender names,
// keeps every partition's log, opens the partitions commits create, tracks
// each partition's public group state where handshakes are PublicMessages,
// enforces negative policy in the indicated fork, routes Welcomes, serves
// GroupInfo for external joins, and terminates forks on an admin's order.
// Storage is the Store interface (sqlite implements it; hubtest is the
// conformance suite); the gateway serves clients from the hub's method table
// (Methods) and pushes partition logs to subscribers (Log). The provider's
// own bans and rate limits come in as Config.Policy.
//
// # Wire formats
//
// The structs the hub reads and answers are in package protocol, with the
// decisions taken where the draft is loose.
//
// # Sequencing
//
// A message is sequenced in one store transaction (group-committed with
// concurrent ones) and its counter (its position in the partition's log,
// from 0) is returned only after the commit; live subscribers are notified
// in commit order right after it. A request is identified by the SHA-256 of
// its partition (or, for an external join, its group), its message and its
// commit data with the next partition key masked: a retry is answered with
// the first counter and sequenced once, also after a restart or after the
// partition was terminated. A commit's CommitData opens the partition of
// next_partition_key, whose epoch is the commit's plus one. Two commits to
// one partition make a fork: both are kept in sequence order, each opens
// its own partition with its own state. A next_partition_key that names an
// existing partition (or the commit's own) is refused.
//
// Handshake messages (proposals, commits) must carry the partition's epoch
// (ErrWrongPartition otherwise); application messages are not checked
// against it, since members may keep old epochs' keys. Application messages
// must be PrivateMessages (RFC 9420 §6.2).
//
// # Several nodes
//
// Several Hubs (nodes of one provider) may share a store. Each caches its own
// partition states, so each state carries the counter after the last
// handshake it reflects: before checking a handshake, under the partition's
// lock, the hub applies the proposals sequenced since (Store.HandshakesFrom),
// and appends on condition that no handshake was sequenced meanwhile
// (AppendRequest.Checked); if one was (ErrStale), it applies it and checks the
// request again, at most 8 times. Every handshake is so checked against the
// end of its partition's log, whichever node sequenced the rest. Application
// messages skip both steps.
//
// # Public group state and the rule for invalid handshakes
//
// For each partition the hub keeps an mls.PublicGroup when it can: the
// first partition's from its GroupInfo and tree; a following partition's by
// applying the PublicMessage commit that opened it to the parent's state
// (with the proposals sequenced before it in the parent), or else from the
// commit's GroupInfo and tree. States are cached (Config.StateCacheSize,
// least recently used) and rebuilt from the store after a restart: from the
// nearest partition up the chain with a stored GroupInfo and tree, applying
// the stored commits and proposals.
//
// The rule: when the hub has the partition's state, a PublicMessage
// proposal or commit that fails any check of RFC 9420 a DS can make (sender
// leaf, signature, proposal validity and list rules, path requirement,
// parent hashes, tree validity of new leaves, unknown proposal reference)
// is refused with ErrInvalidMessage wrapping the mls error that names the
// check (ErrRemovedSender for a blank or out-of-range sender leaf). It
// is sequenced unchecked when the hub cannot tell: PrivateMessage
// handshakes, partitions without a state, and a commit referring to an
// unknown proposal in a partition where a PrivateMessage proposal was
// sequenced (it may cover that one). ts-mls quirks follow mls.Options'
// lenient defaults (GroupContextExtensions commits without a path,
// compressed ECDSA keys).
//
// # GroupInfo
//
// When the hub computed a commit's result, CommitData.group_info must match
// it exactly: the whole GroupContext (version, suite, group ID, epoch, tree
// hash, confirmed transcript hash, extensions), the commit's confirmation
// tag, and a signature by the signer's leaf in the new tree; a ratchet_tree
// extension must hash to tree_hash (ErrTreeMismatch). Without a computed
// result, the GroupInfo must verify on its own (mls.NewPublicGroup: tree
// hash, tree validity, signature) and its group ID, suite and epoch must fit
// the commit. A GroupInfo without ratchet_tree is accepted only when the hub
// infers the tree: the tree it computed from the commit, or the parent's
// tree when tree_hash matches it; otherwise ErrTreeRequired asks for the
// tree. An inferred or separately given tree is stored beside the GroupInfo
// and served in GroupInfoResponse.ratchet_tree.
//
// # Welcomes
//
// WelcomeData.service_providers must have one entry per Welcome secret
// (ErrWelcomeMismatch), with no repeated KeyPackageRef; the Welcome's suite
// must be the group's. When the hub verified the commit, the Welcome's
// KeyPackageRefs must equal the refs of the commit's Adds as sets; a
// Welcome on a commit without Adds is refused, a commit with Adds and no
// Welcome is not. A CreateGroupRequest's Welcome has no commit to match:
// each of its refs of our domain must be a KeyPackage the WelcomeRouter says
// this provider served, whose leaf (by the recorded hash of its signature
// key) is in the new tree (ErrWelcomeMismatch). Entries whose provider is
// Config.Domain go to the client the KeyPackage was served to, as a
// WelcomeDelivery in its mailbox (kind 2); in a commit's Welcome, refs of
// our domain we never served are dropped and logged. The others are stored per provider for the federation's
// WelcomeInitRequest (PendingWelcomes, RemoteWelcome, WelcomeDelivered; the
// federation wiring in cmd/provider sends them, docs/protocol.md §5.9). Every Welcome is
// stored in the sequencing transaction; local ones are moved to mailboxes
// right after it and, if that fails or the process dies, by Run /
// RedeliverWelcomes (at least once). A Mailbox that is also a MailboxRoom
// is asked first whether each local delivery fits its recipient's quota: if
// one does not, the request is refused with that error (mailbox_full) and
// nothing is stored or sequenced.
//
// # Identities
//
// A local sender (protocol.Sender.Local: authenticated by its socket) must
// name itself in every leaf it introduces for itself: a BasicCredential
// whose identity is its ClientURI or UserURI (ErrIdentityMismatch
// otherwise). Checked: the GroupInfo signer's leaf at CreateGroup, and in
// PublicMessages a commit's UpdatePath leaf (member or external joiner), an
// Update proposal's leaf and a new_member_proposal Add. Remote senders are
// vouched for by their provider, for its own users only: a sender a peer
// forwarded (protocol.Sender.Peer) must name the forwarded user in the same
// leaves, and a user of the peer's domain in the member leaf its public
// commits and proposals come from (ErrForeignIdentity for another
// provider's user, ErrIdentityMismatch for another user of the peer).
//
// # External joins and GroupInfo requests
//
// GroupInfoRequest is answered from the group's newest partition (the tip of
// its main line: at each fork, the live partition the first sequenced commit
// opened; Store.NewestPartition), with the stored tree when
// its GroupInfo has none; ErrNoGroupInfo if that partition has no GroupInfo.
// ExternalJoinRequest must carry a PublicMessage commit from a
// new_member_commit sender; it is sequenced to the newest partition and
// checked like any public commit; ExternalJoinResponse names that partition.
// So that one joiner cannot take the group's GroupInfo away, an external
// commit (through ExternalJoin or Send) is refused where the hub has no
// public state to verify it against (ErrNoGroupInfo) and must publish the
// new epoch's GroupInfo, matching the computed state and carrying
// external_pub (ErrInvalidGroupInfo): a refused join leaves the group as it
// was, a sequenced one leaves it joinable.
//
// # Fork termination
//
// Terminate (an admin action) blocks a partition: sends are refused with
// ErrTerminated, its log stays readable, subscribers get an Entry with
// Terminated set (PartitionTerminated on the wire, with the final length),
// and Partition reports it.
//
// # Policy (negative only, per fork)
//
// A partition's moderation list is the 0xF0A0 GroupContext extension
// (ModerationList: banned and muted user URIs) of its state, fixed when the
// partition opens: a ban made in one fork does not apply in its sibling.
// In the indicated partition the hub refuses: application messages from a
// banned (ErrBanned) or muted (ErrMuted) user, where it knows the sender
// (the socket's user for local senders; PublicMessage application data is
// refused anyway); public commits and Add proposals adding a user banned
// in the partition or by the commit's own new list; commits installing a
// malformed list; PublicMessages from removed members. The provider's own
// policy (Config.Policy: directory.Policy, which also keeps the reports) adds
// its provider-wide bans, which refuse everything from a banned local user
// and, where visible, Adds of and handshakes from banned users, and the rate
// limit of local senders. Member identities are mapped to user URIs by
// protocol.UserOf (mimi://p/d/u/c -> mimi://p/u/u).
//
// # Receiving
//
// Receive returns the partition's messages from the request's counter, at
// most Config.ReceiveMaxMessages (1000) and ReceiveMaxBytes (8 MiB, always
// at least one message), and hints: for each of the first HintPartitions
// (8) commits among them, the first HintMessages (64) messages of the
// partition it opened, within the rest of the byte budget; empty hinted
// partitions are left out. Live delivery is Subscribe/Fetch: a sink is
// offered entries in counter order as they commit and refetches by counter
// when it falls behind.
package hub
