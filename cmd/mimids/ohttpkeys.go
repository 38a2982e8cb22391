package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/ohttp"
	"github.com/mimids/mimids/sqlite"
)

// ChangeOHTTPKeys tells a running server that the gateway keys were rotated.
const ChangeOHTTPKeys = "ohttp_keys"

// loadKeySet builds the gateway key set from the store, creating the first key on an
// empty store.
func loadKeySet(ctx context.Context, db *sqlite.DB, grace time.Duration, now time.Time) (*ohttp.KeySet, error) {
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
		if _, err := rotateKey(ctx, db, ks, now); err != nil {
			return nil, err
		}
	}
	return ks, nil
}

// rotateKey makes a new current key, retires the others (they keep working for the
// grace period) and drops keys past it, in the store and in ks.
func rotateKey(ctx context.Context, db *sqlite.DB, ks *ohttp.KeySet, now time.Time) (*ohttp.Key, error) {
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

func keysCommand(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	verb, rest := sub(args)
	var grace *time.Duration
	setup := func(fs *flag.FlagSet) {
		grace = fs.Duration("grace", 24*time.Hour, "how long a retired key keeps working")
	}
	switch verb {
	case "list", "rotate":
		return storeCommand("keys "+verb, rest, stdout, stderr, setup, func(ctx context.Context, _ Config, db *sqlite.DB, _ *directory.Directory, _ []string) error {
			now := time.Now()
			ks, err := loadKeySet(ctx, db, *grace, now)
			if err != nil {
				return err
			}
			if verb == "rotate" {
				k, err := rotateKey(ctx, db, ks, now)
				if err != nil {
					return err
				}
				if err := db.RecordChange(ctx, ChangeOHTTPKeys, 0, now); err != nil {
					return err
				}
				fmt.Fprintf(stdout, "new current key %d; older keys stay valid for %s\n", k.ID(), *grace)
			}
			for _, st := range ks.States() {
				state := "current"
				if !st.Retired.IsZero() {
					state = "retired " + st.Retired.Format(time.RFC3339) + ", expires " + st.Expires.Format(time.RFC3339)
				}
				fmt.Fprintf(stdout, "key %d\tcreated %s\t%s\n", st.Key.ID(), st.Key.Created().Format(time.RFC3339), state)
			}
			return nil
		})
	}
	fmt.Fprintln(stderr, "usage: mimids keys list|rotate [-grace DURATION] [flags]")
	return 2
}
