package protocol

import "fmt"

// Policy across providers (docs/protocol.md §5.11): the hub hands each follower
// its terms for the follower's users, which the follower enforces before it
// forwards their requests.
const (
	// EnvelopeTerms (hub to follower) carries the hub's current terms for the
	// follower's users: body Terms, ack body TermsApplied. Each terms envelope
	// replaces the previous one of the same hub.
	EnvelopeTerms EnvelopeType = 0x0204
)

// MaxTermsBans bounds the banned users of one Terms: a hub with more bans of one
// follower's users sends the first MaxTermsBans in byte order (and logs it).
const MaxTermsBans = 4096

// RateMilliUnit is the unit of Terms.RateMilli: thousandths of a request per second.
const RateMilliUnit = 1000

// Terms is the body of a terms envelope.
//
//	struct {
//	  uint32 rate_milli;         // per-user requests/s × 1000; 0: no rate limit
//	  uint32 burst;              // per-user bucket size, >= 1 when rate_milli > 0
//	  opaque banned<V>;          // a vector of opaque user_uri<V>, at most MaxTermsBans
//	} Terms;
type Terms struct {
	RateMilli uint32
	Burst     uint32
	Banned    []string
}

// Rate is the per-user rate in requests per second (0: none).
func (t *Terms) Rate() float64 { return float64(t.RateMilli) / RateMilliUnit }

// MarshalBinary encodes t.
func (t *Terms) MarshalBinary() ([]byte, error) {
	if err := t.validate(); err != nil {
		return nil, err
	}
	w := NewWriter(nil)
	w.U32(t.RateMilli)
	w.U32(t.Burst)
	w.Vector(func(w *Writer) {
		for _, u := range t.Banned {
			w.String(u)
		}
	})
	return w.Result()
}

// UnmarshalBinary decodes t.
func (t *Terms) UnmarshalBinary(b []byte) error {
	*t = Terms{}
	r := NewReader(b)
	t.RateMilli = r.U32("Terms.rate_milli")
	t.Burst = r.U32("Terms.burst")
	v := r.Vector("Terms.banned")
	for v.More() && len(t.Banned) <= MaxTermsBans {
		t.Banned = append(t.Banned, string(v.OpaqueMax("Terms.banned.user_uri", MaxUserURISize)))
	}
	if err := r.Done(); err != nil {
		return err
	}
	return t.validate()
}

func (t *Terms) validate() error {
	switch {
	case len(t.Banned) > MaxTermsBans:
		return fmt.Errorf("%w: Terms.banned: more than %d users", ErrMalformed, MaxTermsBans)
	case t.RateMilli > 0 && t.Burst < 1:
		return fmt.Errorf("%w: Terms: a rate limit without a burst", ErrMalformed)
	}
	for _, u := range t.Banned {
		if len(u) == 0 || len(u) > MaxUserURISize {
			return fmt.Errorf("%w: Terms.banned: user URI of %d bytes", ErrMalformed, len(u))
		}
	}
	return nil
}

// TermsApplied is the ack body of a terms envelope: what the follower applied.
//
//	struct {
//	  uint32 rate_milli;   // the rate it enforces, as received
//	  uint32 burst;
//	  uint32 banned;       // banned users it enforces
//	  uint32 ignored;      // entries it ignored: not users of its own domain
//	} TermsApplied;
type TermsApplied struct {
	RateMilli, Burst, Banned, Ignored uint32
}

// MarshalBinary encodes a.
func (a *TermsApplied) MarshalBinary() ([]byte, error) {
	w := NewWriter(make([]byte, 0, 16))
	w.U32(a.RateMilli)
	w.U32(a.Burst)
	w.U32(a.Banned)
	w.U32(a.Ignored)
	return w.Result()
}

// UnmarshalBinary decodes a.
func (a *TermsApplied) UnmarshalBinary(b []byte) error {
	r := NewReader(b)
	a.RateMilli = r.U32("TermsApplied.rate_milli")
	a.Burst = r.U32("TermsApplied.burst")
	a.Banned = r.U32("TermsApplied.banned")
	a.Ignored = r.U32("TermsApplied.ignored")
	return r.Done()
}
