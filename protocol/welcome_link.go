package protocol

// Welcomes across providers over the federation link (docs/protocol.md §5.9): the
// hub offers a Welcome's KeyPackageRefs to the provider WelcomeData names for them,
// the provider answers with the refs it served, and the hub sends the Welcome for
// those refs only.
const (
	// EnvelopeWelcomeInit (hub to follower) offers a stored Welcome: body
	// WelcomeInit, ack body WelcomeInitAnswer.
	EnvelopeWelcomeInit EnvelopeType = 0x0201
	// EnvelopeWelcome (hub to follower) carries the Welcome for the refs the
	// follower accepted: body WelcomePush, ack body WelcomePushAnswer.
	EnvelopeWelcome EnvelopeType = 0x0202
)

// WelcomeInit is the body of a welcome_init envelope: the hub's id of the stored
// Welcome, then the WelcomeInitRequest naming the refs of the receiving provider.
//
//	struct {
//	  uint64 welcome_id;
//	  WelcomeInitRequest request;
//	} WelcomeInit;
type WelcomeInit struct {
	WelcomeID uint64
	Request   WelcomeInitRequest
}

// MarshalBinary encodes m.
func (m *WelcomeInit) MarshalBinary() ([]byte, error) {
	w := NewWriter(nil)
	w.U64(m.WelcomeID)
	writeRefs(w, m.Request.KeyPackageRefs)
	return w.Result()
}

// UnmarshalBinary decodes m.
func (m *WelcomeInit) UnmarshalBinary(b []byte) error {
	*m = WelcomeInit{}
	r := NewReader(b)
	m.WelcomeID = r.U64("WelcomeInit.welcome_id")
	m.Request.KeyPackageRefs = decodeRefs(r, "WelcomeInit.request.key_package_refs")
	return r.Done()
}

// WelcomeInitAnswer is the ack body of a welcome_init envelope: the offered refs
// the follower served, in the offer's order; it refuses the others.
//
//	struct { KeyPackageRef accepted<V>; } WelcomeInitAnswer;
type WelcomeInitAnswer struct {
	Accepted [][]byte
}

// MarshalBinary encodes a.
func (a *WelcomeInitAnswer) MarshalBinary() ([]byte, error) {
	w := NewWriter(nil)
	writeRefs(w, a.Accepted)
	return w.Result()
}

// UnmarshalBinary decodes a.
func (a *WelcomeInitAnswer) UnmarshalBinary(b []byte) error {
	*a = WelcomeInitAnswer{}
	r := NewReader(b)
	a.Accepted = decodeRefs(r, "WelcomeInitAnswer.accepted")
	return r.Done()
}

// WelcomePush is the body of a welcome envelope: the Welcome, with the refs the
// follower accepted, as a WelcomeDelivery.
//
//	struct {
//	  uint64 welcome_id;
//	  WelcomeDelivery delivery;
//	} WelcomePush;
type WelcomePush struct {
	WelcomeID uint64
	Delivery  WelcomeDelivery
}

// MarshalBinary encodes m.
func (m *WelcomePush) MarshalBinary() ([]byte, error) {
	d, err := m.Delivery.MarshalBinary()
	if err != nil {
		return nil, err
	}
	w := NewWriter(make([]byte, 0, 8+len(d)))
	w.U64(m.WelcomeID)
	w.Raw(d)
	return w.Result()
}

// UnmarshalBinary decodes m.
func (m *WelcomePush) UnmarshalBinary(b []byte) error {
	*m = WelcomePush{}
	r := NewReader(b)
	m.WelcomeID = r.U64("WelcomePush.welcome_id")
	if err := r.Err(); err != nil {
		return err
	}
	return m.Delivery.UnmarshalBinary(b[8:])
}

// WelcomePushAnswer is the ack body of a welcome envelope: how many of the
// follower's clients got the Welcome in their mailbox.
//
//	struct { uint32 delivered; } WelcomePushAnswer;
type WelcomePushAnswer struct {
	Delivered uint32
}

// MarshalBinary encodes a.
func (a *WelcomePushAnswer) MarshalBinary() ([]byte, error) {
	w := NewWriter(nil)
	w.U32(a.Delivered)
	return w.Result()
}

// UnmarshalBinary decodes a.
func (a *WelcomePushAnswer) UnmarshalBinary(b []byte) error {
	r := NewReader(b)
	a.Delivered = r.U32("WelcomePushAnswer.delivered")
	return r.Done()
}

func writeRefs(w *Writer, refs [][]byte) {
	w.Vector(func(w *Writer) {
		for _, ref := range refs {
			w.Opaque(ref)
		}
	})
}
