package directory_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/mimids/mimids/directory"
)

func TestTokenBuckets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tb := directory.NewTokenBuckets(2, 3, 2, nil)
		for i := range 3 {
			if !tb.Allow("a") {
				t.Fatalf("burst request %d refused", i)
			}
		}
		if tb.Allow("a") {
			t.Fatal("request past the burst allowed")
		}
		time.Sleep(500 * time.Millisecond) // one token at 2/s
		if !tb.Allow("a") || tb.Allow("a") {
			t.Fatal("refill is not one token per half second")
		}
		if !tb.Allow("b") {
			t.Fatal("second key refused")
		}
		// Both buckets are in use: a third key waits for one to refill.
		if tb.Allow("c") {
			t.Fatal("third key allowed while both buckets are in use")
		}
		time.Sleep(2 * time.Second)
		if !tb.Allow("c") {
			t.Fatal("third key refused after the buckets refilled")
		}
	})
}

func TestTokenBucketsUnlimited(t *testing.T) {
	tb := directory.NewTokenBuckets(-1, 1, 1, nil)
	for i := range 1000 {
		if !tb.Allow("k" + string(rune('a'+i%26))) {
			t.Fatalf("request %d refused with no limit", i)
		}
	}
}
