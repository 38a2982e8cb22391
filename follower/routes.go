package follower

import (
	"context"
	"crypto/sha256"
)

// Routes is the follower's durable record of where groups hosted elsewhere live
// (docs/protocol.md §5.10). Every Set/Add keeps the first route learned: a peer
// cannot take over a group or partition another peer was found to host.
type Routes interface {
	// SetGroupHub records that hub hosts the group, unless a hub is recorded.
	SetGroupHub(ctx context.Context, groupID []byte, hub string) error
	// GroupHub returns the hub recorded for the group; ok is false if none is.
	GroupHub(ctx context.Context, groupID []byte) (hub string, ok bool, err error)
	// SetPartitionHub records that hub hosts the partition whose key has digest
	// (KeyDigest), unless a hub is recorded.
	SetPartitionHub(ctx context.Context, digest []byte, hub string) error
	// PartitionHub returns the hub recorded for the partition key digest.
	PartitionHub(ctx context.Context, digest []byte) (hub string, ok bool, err error)
	// AddClientHub records that hub hosts a group the client was welcomed to or
	// joined.
	AddClientHub(ctx context.Context, clientID int64, hub string) error
	// ClientHubs returns up to limit hubs of the client's groups, the most
	// recently learned first.
	ClientHubs(ctx context.Context, clientID int64, limit int) ([]string, error)
}

// KeyDigest is what Routes keys a partition by: the SHA-256 of its partition key,
// so the store never holds a key.
func KeyDigest(partitionKey []byte) []byte {
	d := sha256.Sum256(partitionKey)
	return d[:]
}
