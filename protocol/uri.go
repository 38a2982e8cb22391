package protocol

import (
	"errors"
	"fmt"
	"strings"
)

// MIMI URIs name users and clients: mimi://<provider>/u/<user> and
// mimi://<provider>/d/<user>/<client>. User and client names are 1–64 of a-z 0-9 . _ -,
// starting with a letter or digit. This is the one parser of them.

var (
	// ErrBadURI reports a string that is not a MIMI user or client URI.
	ErrBadURI = errors.New("protocol: not a MIMI user or client URI")
	// ErrInvalidName reports a user or client name outside the allowed form.
	ErrInvalidName = errors.New("protocol: invalid name")
)

// ValidName reports whether s can name a user or client.
func ValidName(s string) error {
	if !validName(s) {
		return fmt.Errorf("%w: %q (want 1-64 of a-z 0-9 . _ -, starting with a letter or digit)", ErrInvalidName, s)
	}
	return nil
}

// validName is ValidName without the error: 1–64 of a-z 0-9 . _ -, the first a
// letter or digit. It is on every send's path, so it allocates nothing.
func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case (c == '.' || c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// UserURI returns mimi://<domain>/u/<user>.
func UserURI(domain, user string) string { return "mimi://" + domain + "/u/" + user }

// ClientURI returns mimi://<domain>/d/<user>/<client>.
func ClientURI(domain, user, client string) string {
	return "mimi://" + domain + "/d/" + user + "/" + client
}

// ParseURI splits a MIMI user URI (client empty) or client URI.
func ParseURI(uri string) (domain, user, client string, err error) {
	domain, user, client, ok := parseURI(uri)
	if !ok {
		return "", "", "", fmt.Errorf("%w: %q", ErrBadURI, uri)
	}
	return domain, user, client, nil
}

// parseURI is ParseURI without the error; it allocates nothing.
func parseURI(uri string) (domain, user, client string, ok bool) {
	rest, ok := strings.CutPrefix(uri, "mimi://")
	if !ok {
		return "", "", "", false
	}
	domain, rest, ok = strings.Cut(rest, "/")
	if !ok || domain == "" {
		return "", "", "", false
	}
	if user, ok = strings.CutPrefix(rest, "u/"); ok {
		return domain, user, "", validName(user)
	}
	if rest, ok = strings.CutPrefix(rest, "d/"); ok {
		user, client, ok = strings.Cut(rest, "/")
		return domain, user, client, ok && validName(user) && validName(client)
	}
	return "", "", "", false
}

// UserOf maps a credential identity to the user URI that moderation lists and bans
// name: a client URI becomes its user's URI; anything else (a user URI, or an
// identity that is no MIMI URI) is returned unchanged. A user URI costs no
// allocation.
func UserOf(identity string) string {
	if domain, user, client, ok := parseURI(identity); ok && client != "" {
		return UserURI(domain, user)
	}
	return identity
}
