package mlstest

import (
	"encoding/hex"
	"encoding/json"
)

// Hex is a byte string that JSON carries as lowercase hex, as the MLS working
// group's test vectors and the ts-mls fixtures (mls/testdata/tsmls) do. JSON null
// gives nil.
type Hex []byte

// UnmarshalJSON decodes a hex string.
func (h *Hex) UnmarshalJSON(b []byte) error {
	var s *string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if s == nil {
		*h = nil
		return nil
	}
	v, err := hex.DecodeString(*s)
	if err != nil {
		return err
	}
	*h = v
	return nil
}

// MarshalJSON encodes h as a hex string.
func (h Hex) MarshalJSON() ([]byte, error) {
	return json.Marshal(hex.EncodeToString(h))
}
