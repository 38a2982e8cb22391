package protocol

import (
	"errors"
	"fmt"
	"regexp"
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

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ValidName reports whether s can name a user or client.
func ValidName(s string) error {
	if !nameRE.MatchString(s) {
		return fmt.Errorf("%w: %q (want 1-64 of a-z 0-9 . _ -, starting with a letter or digit)", ErrInvalidName, s)
	}
	return nil
}

// UserURI returns mimi://<domain>/u/<user>.
func UserURI(domain, user string) string { return "mimi://" + domain + "/u/" + user }

// ClientURI returns mimi://<domain>/d/<user>/<client>.
func ClientURI(domain, user, client string) string {
	return "mimi://" + domain + "/d/" + user + "/" + client
}

// ParseURI splits a MIMI user URI (client empty) or client URI.
func ParseURI(uri string) (domain, user, client string, err error) {
	rest, ok := strings.CutPrefix(uri, "mimi://")
	if !ok {
		return "", "", "", fmt.Errorf("%w: %q", ErrBadURI, uri)
	}
	parts := strings.Split(rest, "/")
	switch {
	case len(parts) == 3 && parts[1] == "u" && parts[0] != "" && ValidName(parts[2]) == nil:
		return parts[0], parts[2], "", nil
	case len(parts) == 4 && parts[1] == "d" && parts[0] != "" && ValidName(parts[2]) == nil && ValidName(parts[3]) == nil:
		return parts[0], parts[2], parts[3], nil
	}
	return "", "", "", fmt.Errorf("%w: %q", ErrBadURI, uri)
}

// UserOf maps a credential identity to the user URI that moderation lists and bans
// name: a client URI becomes its user's URI; anything else (a user URI, or an
// identity that is no MIMI URI) is returned unchanged.
func UserOf(identity string) string {
	if domain, user, client, err := ParseURI(identity); err == nil && client != "" {
		return UserURI(domain, user)
	}
	return identity
}
