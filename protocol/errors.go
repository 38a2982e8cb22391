package protocol

import "errors"

// Domain errors carry their wire code: each package declares its sentinel errors with
// NewError, and the gateway (or a federation link) answers any error that wraps one
// with that code (CodeOf). This is the one table of error codes.

// codedError is a sentinel error with its wire code.
type codedError struct {
	code Code
	text string
}

func (e *codedError) Error() string  { return e.text }
func (e *codedError) WireCode() Code { return e.code }

// NewError returns a sentinel error that answers with code on the wire. Compare with
// errors.Is, as with any sentinel.
func NewError(code Code, text string) error { return &codedError{code: code, text: text} }

// CodeOf returns the wire code of the first error in err's tree that carries one; ok
// is false when none does (an internal failure).
func CodeOf(err error) (code Code, ok bool) {
	var c interface{ WireCode() Code }
	if errors.As(err, &c) {
		return c.WireCode(), true
	}
	return CodeInternal, false
}

// Refusal reports whether err refuses bad input or policy (it carries a wire code
// other than CodeInternal), as opposed to a failure of the server.
func Refusal(err error) bool {
	code, ok := CodeOf(err)
	return ok && code != CodeInternal
}
