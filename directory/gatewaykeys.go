package directory

import (
	"context"
	"fmt"
	"time"

	"github.com/mimids/mimids/ohttp"
)

// The Oblivious HTTP gateway's keys (RFC 9458 §3): the store keeps them, a key set
// in memory serves them, and a rotation makes a new current key while the retired
// ones keep working for a grace period.

// StoredGatewayKey is a stored gateway key.
type StoredGatewayKey struct {
	ID        uint8
	Key       []byte // ohttp.Key.MarshalBinary
	CreatedAt time.Time
	RetiredAt time.Time // zero while active
}

// GatewayKeyStore is what GatewayKeys needs from storage.
type GatewayKeyStore interface {
	// GatewayKeys returns every stored key, oldest first.
	GatewayKeys(ctx context.Context) ([]StoredGatewayKey, error)
	// RotateGatewayKey stores k, marks every other active key retired at
	// k.CreatedAt and deletes the keys listed in drop, in one transaction.
	RotateGatewayKey(ctx context.Context, k StoredGatewayKey, drop []uint8) error
}

// GatewayKeys loads and rotates the gateway's keys.
type GatewayKeys struct {
	store GatewayKeyStore // Static after construction.
	grace time.Duration   // Static after construction.
}

// NewGatewayKeys returns the gateway keys over store; a retired key keeps working
// for grace.
func NewGatewayKeys(store GatewayKeyStore, grace time.Duration) *GatewayKeys {
	return &GatewayKeys{store: store, grace: grace}
}

// Load builds the key set from the store, creating the first key on an empty store.
func (g *GatewayKeys) Load(ctx context.Context, now time.Time) (*ohttp.KeySet, error) {
	stored, err := g.store.GatewayKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("ohttp keys: %w", err)
	}
	ks := ohttp.NewKeySet(g.grace)
	for _, s := range stored {
		k, err := ohttp.UnmarshalKey(s.Key)
		if err != nil {
			return nil, fmt.Errorf("ohttp key %d: %w", s.ID, err)
		}
		if err := ks.Add(k); err != nil {
			return nil, fmt.Errorf("ohttp key %d: %w", s.ID, err)
		}
		if !s.RetiredAt.IsZero() {
			if err := ks.Retire(s.ID, s.RetiredAt); err != nil {
				return nil, fmt.Errorf("ohttp key %d: %w", s.ID, err)
			}
		}
	}
	if ks.Current() == nil {
		if _, err := g.Rotate(ctx, ks, now); err != nil {
			return nil, err
		}
	}
	return ks, nil
}

// Rotate makes a new current key, retires the others (they keep working for the
// grace period) and drops keys past it, in the store and in ks.
func (g *GatewayKeys) Rotate(ctx context.Context, ks *ohttp.KeySet, now time.Time) (*ohttp.Key, error) {
	drop := ks.Prune(now)
	k, err := ks.Rotate(ohttp.KEMX25519HKDFSHA256, nil, now)
	if err != nil {
		return nil, fmt.Errorf("ohttp rotate: %w", err)
	}
	blob, err := k.MarshalBinary()
	if err != nil {
		return nil, err
	}
	if err := g.store.RotateGatewayKey(ctx, StoredGatewayKey{ID: k.ID(), Key: blob, CreatedAt: now}, drop); err != nil {
		return nil, fmt.Errorf("ohttp rotate: %w", err)
	}
	return k, nil
}
