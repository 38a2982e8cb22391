package ohttp

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// KeySet holds the keys of a gateway. Several keys are held at once so that
// keys rotate without failing requests in flight: a new key becomes current
// and is published, while a retired key is no longer published but still
// decapsulates requests for the key set's grace period, so clients holding
// the old configuration keep working until they refetch it.
//
// Lookups are lock-free (they read an immutable snapshot); changes are
// serialized and publish a new snapshot. A KeySet is safe for concurrent use.
type KeySet struct {
	grace time.Duration // Static after construction.

	mu   sync.Mutex                  // Serializes writers.
	snap atomic.Pointer[keySnapshot] // Replaced under mu.
}

// KeyState is a key with its place in the rotation, for persistence and
// administration.
type KeyState struct {
	Key *Key
	// Retired is when the key stopped being current, zero while it is
	// active.
	Retired time.Time
	// Expires is Retired plus the grace period: from then on requests to
	// the key fail with ErrUnknownKeyID. Zero while the key is active.
	Expires time.Time
}

type keyEntry struct {
	key     *Key
	retired time.Time // zero while active
}

type keySnapshot struct {
	byID    [256]*keyEntry
	order   []uint8 // ids by creation time, then order of addition
	configs []byte  // application/ohttp-keys of the active keys, newest first
}

// NewKeySet returns an empty key set whose retired keys stay valid for grace.
func NewKeySet(grace time.Duration) *KeySet {
	ks := &KeySet{grace: max(grace, 0)}
	ks.snap.Store(&keySnapshot{})
	return ks
}

// Grace returns the grace period of retired keys.
func (ks *KeySet) Grace() time.Duration { return ks.grace }

// update applies f to a copy of the snapshot and publishes it.
func (ks *KeySet) update(f func(s *keySnapshot) error) error {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	old := ks.snap.Load()
	s := &keySnapshot{byID: old.byID, order: slices.Clone(old.order)}
	if err := f(s); err != nil {
		return err
	}
	s.order = slices.DeleteFunc(s.order, func(id uint8) bool { return s.byID[id] == nil })
	slices.SortStableFunc(s.order, func(a, b uint8) int {
		return s.byID[a].key.created.Compare(s.byID[b].key.created)
	})
	var cs []KeyConfig
	for i := len(s.order) - 1; i >= 0; i-- {
		if e := s.byID[s.order[i]]; e.retired.IsZero() {
			cs = append(cs, e.key.config)
		}
	}
	b, err := MarshalKeyConfigs(cs)
	if err != nil {
		return err
	}
	s.configs = b
	ks.snap.Store(s)
	return nil
}

// Add adds an active key. The current key is the active key created last
// (ties go to the one added last), so keys restored from storage may be
// added in any order. It fails with ErrKeyIDInUse when the set holds a key
// (active or in its grace period) with that id.
func (ks *KeySet) Add(k *Key) error {
	return ks.update(func(s *keySnapshot) error {
		if s.byID[k.id] != nil {
			return fmt.Errorf("%w: %d", ErrKeyIDInUse, k.id)
		}
		s.byID[k.id] = &keyEntry{key: k}
		s.order = append(s.order, k.id)
		return nil
	})
}

// Retire stops publishing key id as of at; requests to it keep working
// until at plus the grace period. Retiring a retired key keeps the earlier
// time. Restoring a persisted set is Add followed by Retire with the stored
// time.
func (ks *KeySet) Retire(id uint8, at time.Time) error {
	return ks.update(func(s *keySnapshot) error {
		e := s.byID[id]
		if e == nil {
			return fmt.Errorf("%w: %d", ErrUnknownKeyID, id)
		}
		if e.retired.IsZero() || at.Before(e.retired) {
			s.byID[id] = &keyEntry{key: e.key, retired: at}
		}
		return nil
	})
}

// Remove drops key id at once, without grace. It reports whether the set
// held it.
func (ks *KeySet) Remove(id uint8) bool {
	held := false
	_ = ks.update(func(s *keySnapshot) error {
		held = s.byID[id] != nil
		s.byID[id] = nil
		return nil
	})
	return held
}

// Rotate generates a key for kem and algs (nil means AllAlgorithms) with a
// free key id, adds it as current and retires every other active key as
// of now. It returns the new key, to be persisted by the caller.
func (ks *KeySet) Rotate(kem KEMID, algs []SymmetricAlgorithm, now time.Time) (*Key, error) {
	var k *Key
	err := ks.update(func(s *keySnapshot) error {
		id, ok := s.freeID()
		if !ok {
			return ErrKeyIDsExhausted
		}
		var err error
		if k, err = GenerateKey(id, kem, algs, now); err != nil {
			return err
		}
		for i, e := range s.byID {
			if e != nil && e.retired.IsZero() {
				s.byID[i] = &keyEntry{key: e.key, retired: now}
			}
		}
		s.byID[id] = &keyEntry{key: k}
		s.order = append(s.order, id)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return k, nil
}

// freeID returns the first free id after the newest key's, wrapping around,
// so that ids are not reused sooner than necessary.
func (s *keySnapshot) freeID() (uint8, bool) {
	start := 0
	if n := len(s.order); n > 0 {
		start = int(s.order[n-1]) + 1
	}
	for i := range 256 {
		id := uint8(start + i)
		if s.byID[id] == nil {
			return id, true
		}
	}
	return 0, false
}

// Prune drops the keys whose grace period has ended at now and returns
// their ids, so the caller can delete them from storage.
func (ks *KeySet) Prune(now time.Time) []uint8 {
	var ids []uint8
	_ = ks.update(func(s *keySnapshot) error {
		for i, e := range s.byID {
			if e != nil && ks.expired(e, now) {
				ids = append(ids, uint8(i))
				s.byID[i] = nil
			}
		}
		return nil
	})
	return ids
}

func (ks *KeySet) expired(e *keyEntry, now time.Time) bool {
	return !e.retired.IsZero() && !now.Before(e.retired.Add(ks.grace))
}

// Current returns the active key created last, or nil when there is none.
func (ks *KeySet) Current() *Key {
	s := ks.snap.Load()
	for i := len(s.order) - 1; i >= 0; i-- {
		if e := s.byID[s.order[i]]; e.retired.IsZero() {
			return e.key
		}
	}
	return nil
}

// Lookup returns key id if it is active, or retired less than the grace
// period before now; otherwise it fails with ErrUnknownKeyID.
func (ks *KeySet) Lookup(id uint8, now time.Time) (*Key, error) {
	e := ks.snap.Load().byID[id]
	if e == nil || ks.expired(e, now) {
		return nil, fmt.Errorf("%w: %d", ErrUnknownKeyID, id)
	}
	return e.key, nil
}

// States returns every held key with its rotation state, by creation time.
func (ks *KeySet) States() []KeyState {
	s := ks.snap.Load()
	out := make([]KeyState, 0, len(s.order))
	for _, id := range s.order {
		e := s.byID[id]
		st := KeyState{Key: e.key, Retired: e.retired}
		if !e.retired.IsZero() {
			st.Expires = e.retired.Add(ks.grace)
		}
		out = append(out, st)
	}
	return out
}

// Configs returns the configurations of the active keys, newest first:
// what the gateway publishes.
func (ks *KeySet) Configs() []KeyConfig {
	s := ks.snap.Load()
	var cs []KeyConfig
	for i := len(s.order) - 1; i >= 0; i-- {
		if e := s.byID[s.order[i]]; e.retired.IsZero() {
			cs = append(cs, e.key.Config())
		}
	}
	return cs
}

// MarshalConfigs returns the application/ohttp-keys encoding of Configs.
// The result is shared: callers must not modify it.
func (ks *KeySet) MarshalConfigs() []byte { return ks.snap.Load().configs }

// DecapsulateRequest opens an Encapsulated Request with the key its header
// names, as of time.Now.
func (ks *KeySet) DecapsulateRequest(encRequest []byte) ([]byte, *ResponseContext, error) {
	er, err := ParseEncapsulatedRequest(encRequest)
	if err != nil {
		return nil, nil, err
	}
	k, err := ks.Lookup(er.KeyID, time.Now())
	if err != nil {
		return nil, nil, err
	}
	return k.open(er)
}
