package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"sync"
	"testing"

	"github.com/mimids/mimids/protocol"
)

// A store that went back in time hands out seqs the client already handled to new
// entries; with a new incarnation in auth_ok the client takes them instead of
// dropping them as duplicates. The same incarnation keeps the duplicate filter.
func TestStoreResetStartsMarksOver(t *testing.T) {
	incA, incB := bytes.Repeat([]byte{0xaa}, 16), bytes.Repeat([]byte{0xbb}, 16)
	var mu sync.Mutex
	inc := incA
	s := newFakeServer(t, func(s *fakeServer) {
		s.incarnation = func(int) []byte { mu.Lock(); defer mu.Unlock(); return inc }
	})
	s.pushNotices(3)
	var got []uint64
	var gmu sync.Mutex
	cfg := testConfig(s, func(_ context.Context, d *Delivery) error {
		gmu.Lock()
		got = append(got, d.Seq)
		gmu.Unlock()
		return nil
	})
	cfg.LastSeq, cfg.Incarnation = 3, hex.EncodeToString(incA)
	c := dial(t, cfg)
	waitFor(t, "duplicates of the earlier run", func() bool { return c.Stats().Duplicates == 3 })
	if si := c.Session(); si.StoreReset || si.Incarnation != hex.EncodeToString(incA) {
		t.Fatalf("same incarnation: %+v", si)
	}

	// The store goes back: its mailbox now holds two new entries, seqs 1 and 2.
	mu.Lock()
	inc = incB
	mu.Unlock()
	s.mu.Lock()
	s.entries, s.acked = nil, 0
	s.mu.Unlock()
	s.pushNotices(2)
	s.conn(1).close(protocol.CloseGoingAway, "restart")
	waitFor(t, "the new entries", func() bool { gmu.Lock(); defer gmu.Unlock(); return len(got) == 2 })
	gmu.Lock()
	if got[0] != 1 || got[1] != 2 {
		t.Fatalf("handled %v after the reset, want [1 2]", got)
	}
	gmu.Unlock()
	si := c.Session()
	if !si.StoreReset || si.Incarnation != hex.EncodeToString(incB) || c.Incarnation() != si.Incarnation {
		t.Fatalf("after the reset: session %+v, Incarnation() %q", si, c.Incarnation())
	}
	if st := c.Stats(); st.StoreResets != 1 || c.LastSeq() != 2 {
		t.Fatalf("stats %+v, LastSeq %d", st, c.LastSeq())
	}
	s.checkAcks(t)
}

func TestConfigIncarnationMustBeHex(t *testing.T) {
	cfg := Config{URL: "ws://127.0.0.1:1/v1/socket", Token: "mdt_x", Incarnation: "not hex"}
	if err := cfg.Validate(); err == nil {
		t.Fatal("accepted a non-hex incarnation")
	}
}

// The server may pack the first deliver frames into auth_ok's WebSocket message
// (docs/protocol.md §1.3): the client takes them, on the first connection.
func TestDeliveriesPackedWithAuthOK(t *testing.T) {
	s := newFakeServer(t, func(s *fakeServer) { s.packAuth = true })
	s.pushNotices(3)
	var mu sync.Mutex
	var got []uint64
	c := dial(t, testConfig(s, func(_ context.Context, d *Delivery) error {
		mu.Lock()
		got = append(got, d.Seq)
		mu.Unlock()
		return nil
	}))
	waitFor(t, "the packed entries", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 3 })
	s.pushNotices(1)
	waitFor(t, "a live entry", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 4 })
	if st := c.Stats(); st.Connects != 1 || st.Disconnects != 0 || st.Duplicates != 0 {
		t.Fatalf("stats %+v", st)
	}
	s.checkAcks(t)
}
