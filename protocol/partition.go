package protocol

import "context"

// What a provider's roles (hub and follower) share about groups: who sends, and a
// partition's log as pushed to subscribers.

// Sender is who hands a request to a group's hub: one of this provider's clients
// (Local, authenticated by its socket; ClientID names it in this provider's store,
// ClientURI and UserURI are its MIMI URIs), or a follower acting for one of its own
// users (not Local: ClientID is 0, ClientURI is empty, and UserURI, where known, is
// vouched for by the follower's provider). The hub requires the credentials a Local
// sender introduces for itself to name ClientURI or UserURI, and those a sender
// forwarded by Peer introduces to name a user of Peer (UserURI's user).
type Sender struct {
	ClientID  int64
	ClientURI string // mimi://<domain>/d/<user>/<client>
	UserURI   string // mimi://<domain>/u/<user>
	Local     bool
	// Peer is, for a request a follower forwarded over the federation link, the
	// domain the link proved (UserURI is a user of it); empty otherwise.
	Peer string
}

// PartitionEntry is one message sequenced to a partition, as pushed to subscribers,
// or the partition's terminated event.
type PartitionEntry struct {
	Counter    uint32
	Terminated bool    // the partition was terminated after Counter messages
	Message    Message // the draft's Message; zero for the terminated event
}

// PartitionSink receives a partition's entries in counter order, right after they
// are committed. Notify and Refetch must not block.
type PartitionSink interface {
	Notify(e PartitionEntry)
	// Refetch says entries may exist that were never offered (another process wrote
	// them, or offers were dropped): read the log after the last counter seen.
	Refetch()
}

// GroupHandler serves one group method for a role of the provider (hub or follower):
// the request body in, the answer body out. Errors carry their wire code.
type GroupHandler func(ctx context.Context, s Sender, body []byte) ([]byte, error)

// GroupMethods is the table of group methods a role serves. The gateway routes each
// socket request of these methods by the table, so a new group method is the
// protocol's struct and method number, the hub's implementation with its line in
// the hub's table, and the client's call.
type GroupMethods map[Method]GroupHandler
