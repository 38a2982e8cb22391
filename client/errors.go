package client

import (
	"errors"
	"fmt"

	"github.com/coder/websocket"

	"github.com/mimids/mimids/protocol"
)

// Terminal errors: the client stops reconnecting and Err reports one of them.
var (
	// ErrAuthFailed: the server refused the device token (error frame unauthorized
	// or close code 4001).
	ErrAuthFailed = errors.New("client: authentication failed")
	// ErrRevoked: the token was revoked while connected (close code 4003).
	ErrRevoked = errors.New("client: token revoked")
	// ErrFrameTooBig: the server sent a frame over Config.ReadLimit. Reconnecting
	// would meet the same frame again; raise ReadLimit.
	ErrFrameTooBig = errors.New("client: frame from server over the read limit")
	// ErrRejected: the server answered the WebSocket handshake with an HTTP client
	// error (wrong path, origin not allowed...).
	ErrRejected = errors.New("client: handshake rejected")
	// ErrSubprotocol: the server did not select subprotocol mimids.v1.
	ErrSubprotocol = errors.New("client: server did not select subprotocol " + protocol.Subprotocol)
	// ErrGaveUp: Config.MaxReconnectAttempts consecutive reconnects failed.
	ErrGaveUp = errors.New("client: gave up reconnecting")
)

// Errors of single calls.
var (
	// ErrClosed: the client was closed (or ended with a terminal error; see Err).
	ErrClosed = errors.New("client: closed")
	// ErrDisconnected: the connection carrying a request was lost before the answer
	// arrived. The request may or may not have been processed.
	ErrDisconnected = errors.New("client: disconnected")
	// ErrTooLarge: a request would exceed the server's max_frame_size.
	ErrTooLarge = errors.New("client: request over max_frame_size")
	// ErrAckAhead: Ack named a seq the handler has not seen yet.
	ErrAckAhead = errors.New("client: ack beyond the last delivered seq")
	// ErrProtocol: the server sent something the protocol does not allow.
	ErrProtocol = errors.New("client: protocol violation by server")
	// ErrHandler: the delivery handler failed; the client reconnects.
	ErrHandler = errors.New("client: delivery handler failed")
)

// errResync ends a session whose delivery queue overflowed; the client reconnects
// at once and the server replays what was dropped.
var errResync = errors.New("client: delivery queue overflow, resyncing")

// errClosing ends a session because Close was called.
var errClosing = errors.New("client: closing")

// DisconnectError describes a connection that ended: the close code and reason the
// server sent (Code -1 when the connection ended without a close frame) and the
// connection-level error frame that preceded the close, if any.
type DisconnectError struct {
	Code   int
	Reason string
	Frame  *protocol.Error
	Err    error
}

func (e *DisconnectError) Error() string {
	s := "client: connection lost"
	if e.Code >= 0 {
		s = fmt.Sprintf("client: connection closed %d (%s)", e.Code, protocol.CloseReason(e.Code))
		if e.Reason != "" {
			s += ": " + e.Reason
		}
	}
	if e.Frame != nil {
		s += "; server error: " + e.Frame.Error()
	}
	if e.Code < 0 && e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the underlying error and the error frame, if any.
func (e *DisconnectError) Unwrap() []error {
	errs := make([]error, 0, 2)
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	if e.Frame != nil {
		errs = append(errs, e.Frame)
	}
	return errs
}

// terminal reports whether err must stop the reconnect loop.
func terminal(err error) bool {
	for _, t := range []error{ErrAuthFailed, ErrRevoked, ErrFrameTooBig, ErrRejected, ErrSubprotocol, ErrGaveUp} {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

// classifyRead turns the error that ended a connection's read loop into the cause
// reported for it. connErr is the request_id-0 error frame seen before, if any.
func classifyRead(err error, connErr *protocol.Error) error {
	if errors.Is(err, websocket.ErrMessageTooBig) {
		return fmt.Errorf("%w: %w", ErrFrameTooBig, err)
	}
	de := &DisconnectError{Code: -1, Frame: connErr, Err: err}
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		de.Code, de.Reason = int(ce.Code), ce.Reason
	}
	switch {
	case de.Code == protocol.CloseAuthFailed:
		return fmt.Errorf("%w: %w", ErrAuthFailed, de)
	case de.Code == protocol.CloseRevoked:
		return fmt.Errorf("%w: %w", ErrRevoked, de)
	case connErr != nil && connErr.Code == protocol.CodeUnauthorized && de.Code < 0:
		return fmt.Errorf("%w: %w", ErrAuthFailed, de)
	}
	return de
}
