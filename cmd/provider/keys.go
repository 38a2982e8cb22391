package provider

import (
	"context"
	"fmt"
	"time"

	"github.com/mimids/mimids/ohttp"
	"github.com/mimids/mimids/sqlite"
)

// ChangeOHTTPKeys tells a running server that the gateway keys were rotated.
const ChangeOHTTPKeys = "ohttp_keys"

// LoadKeySet builds the gateway key set from the store, creating the first key on an
// empty store.
func LoadKeySet(ctx context.Context, db *sqlite.DB, grace time.Duration, now time.Time) (*ohttp.KeySet, error) {
	stored, err := db.OHTTPKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("ohttp keys: %w", err)
	}
	ks := ohttp.NewKeySet(grace)
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
		if _, err := RotateKey(ctx, db, ks, now); err != nil {
			return nil, err
		}
	}
	return ks, nil
}

// RotateKey makes a new current key, retires the others (they keep working for the
// grace period) and drops keys past it, in the store and in ks.
func RotateKey(ctx context.Context, db *sqlite.DB, ks *ohttp.KeySet, now time.Time) (*ohttp.Key, error) {
	drop := ks.Prune(now)
	k, err := ks.Rotate(ohttp.KEMX25519HKDFSHA256, nil, now)
	if err != nil {
		return nil, fmt.Errorf("ohttp rotate: %w", err)
	}
	blob, err := k.MarshalBinary()
	if err != nil {
		return nil, err
	}
	if err := db.RotateOHTTPKey(ctx, sqlite.OHTTPKey{ID: k.ID(), Key: blob, CreatedAt: now}, drop); err != nil {
		return nil, fmt.Errorf("ohttp rotate: %w", err)
	}
	return k, nil
}
