package storetest

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/mimids/mimids/directory"
)

// RunGatewayKeys runs the suite of directory.GatewayKeyStore; newStore returns an
// empty store that lives for the test.
func RunGatewayKeys(t *testing.T, newStore func(t *testing.T) directory.GatewayKeyStore) {
	ctx := context.Background()
	at := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	t.Run("empty", func(t *testing.T) {
		ks, err := newStore(t).GatewayKeys(ctx)
		if err != nil || len(ks) != 0 {
			t.Fatalf("GatewayKeys = %+v, %v", ks, err)
		}
	})
	t.Run("rotate retires and drops", func(t *testing.T) {
		s := newStore(t)
		key := func(id uint8, created time.Time) directory.StoredGatewayKey {
			return directory.StoredGatewayKey{ID: id, Key: []byte{id, 1, 2, 3}, CreatedAt: created}
		}
		if err := s.RotateGatewayKey(ctx, key(1, at), nil); err != nil {
			t.Fatal(err)
		}
		if err := s.RotateGatewayKey(ctx, key(2, at.Add(time.Hour)), nil); err != nil {
			t.Fatal(err)
		}
		ks, err := s.GatewayKeys(ctx)
		if err != nil || len(ks) != 2 || ks[0].ID != 1 || ks[1].ID != 2 {
			t.Fatalf("after two rotations: %+v, %v", ks, err)
		}
		if !ks[0].RetiredAt.Equal(at.Add(time.Hour)) || !ks[1].RetiredAt.IsZero() {
			t.Fatalf("retirement: first %v, second %v", ks[0].RetiredAt, ks[1].RetiredAt)
		}
		if !bytes.Equal(ks[1].Key, []byte{2, 1, 2, 3}) || !ks[1].CreatedAt.Equal(at.Add(time.Hour)) {
			t.Fatalf("stored key %+v", ks[1])
		}
		// A third rotation drops key 1; key 2 keeps its first retirement time.
		if err := s.RotateGatewayKey(ctx, key(3, at.Add(2*time.Hour)), []uint8{1}); err != nil {
			t.Fatal(err)
		}
		ks, err = s.GatewayKeys(ctx)
		if err != nil || len(ks) != 2 || ks[0].ID != 2 || ks[1].ID != 3 || !ks[0].RetiredAt.Equal(at.Add(2*time.Hour)) {
			t.Fatalf("after the third rotation: %+v, %v", ks, err)
		}
	})
}
