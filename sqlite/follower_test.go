package sqlite

import (
	"context"
	"testing"

	"github.com/mimids/mimids/follower/followertest"
)

func TestFollowerConformance(t *testing.T) {
	followertest.Run(t, func(t *testing.T) (followertest.Store, func() followertest.Store) {
		db := openTest(t)
		return db, func() followertest.Store {
			again, err := Open(context.Background(), db.Path(), Options{Synchronous: "normal"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { again.Close() })
			return again
		}
	})
}
