package mls

import "errors"

// ErrExtensionNotFound is returned by the typed extension accessors when the
// list has no extension of the requested type.
var ErrExtensionNotFound = errors.New("mls: extension not present")

// Extension is RFC 9420's Extension (§7.2). ExtensionData is kept as bytes
// for every type, known or not, so unknown extensions round-trip.
type Extension struct {
	ExtensionType ExtensionType
	ExtensionData []byte
}

func (e *Extension) encode(w *writer) {
	w.u16(uint16(e.ExtensionType))
	w.opaque("Extension.extension_data", e.ExtensionData)
}

func (e *Extension) decode(r *reader) {
	e.ExtensionType = ExtensionType(r.u16("Extension.extension_type"))
	e.ExtensionData = r.opaque("Extension.extension_data")
}

// Extensions is an Extension extensions<V> list.
type Extensions []Extension

func (l Extensions) encode(w *writer, field string) {
	start := w.beginVec()
	for i := range l {
		l[i].encode(w)
	}
	w.endVec(field, start)
}

func decodeExtensions(r *reader, field string) Extensions {
	saved := r.enterVec(field)
	var l Extensions
	for r.more() {
		var e Extension
		e.decode(r)
		l = append(l, e)
	}
	r.leaveVec(saved)
	return l
}

// Find returns the first extension of type t.
func (l Extensions) Find(t ExtensionType) (*Extension, bool) {
	for i := range l {
		if l[i].ExtensionType == t {
			return &l[i], true
		}
	}
	return nil, false
}

// Has reports whether the list holds an extension of type t.
func (l Extensions) Has(t ExtensionType) bool {
	_, ok := l.Find(t)
	return ok
}

// decodeExt finds extension t and decodes its data into v, which must be
// exactly the extension data.
func (l Extensions) decodeExt(t ExtensionType, v codec, name string) error {
	e, ok := l.Find(t)
	if !ok {
		return &DecodeError{Field: name, Err: ErrExtensionNotFound}
	}
	return unmarshal(v, e.ExtensionData, name)
}

// RatchetTree decodes the ratchet_tree extension (§12.4.3.3).
func (l Extensions) RatchetTree() (RatchetTree, error) {
	var t RatchetTree
	if err := l.decodeExt(ExtensionTypeRatchetTree, &t, "ratchet_tree"); err != nil {
		return nil, err
	}
	return t, nil
}

// RequiredCapabilities decodes the required_capabilities extension (§11.1).
func (l Extensions) RequiredCapabilities() (*RequiredCapabilities, error) {
	var rc RequiredCapabilities
	if err := l.decodeExt(ExtensionTypeRequiredCapabilities, &rc, "RequiredCapabilities"); err != nil {
		return nil, err
	}
	return &rc, nil
}

// ExternalPub decodes the external_pub extension (§12.4.3.2).
func (l Extensions) ExternalPub() (*ExternalPub, error) {
	var ep ExternalPub
	if err := l.decodeExt(ExtensionTypeExternalPub, &ep, "ExternalPub"); err != nil {
		return nil, err
	}
	return &ep, nil
}

// ExternalSenders decodes the external_senders extension (§12.1.8.1).
func (l Extensions) ExternalSenders() (ExternalSenders, error) {
	var es ExternalSenders
	if err := l.decodeExt(ExtensionTypeExternalSenders, &es, "external_senders"); err != nil {
		return nil, err
	}
	return es, nil
}

// ApplicationID decodes the application_id extension (§5.3.3).
func (l Extensions) ApplicationID() ([]byte, error) {
	var a ApplicationID
	if err := l.decodeExt(ExtensionTypeApplicationID, &a, "application_id"); err != nil {
		return nil, err
	}
	return a, nil
}

// ApplicationID is the body of the application_id extension: opaque<V>.
type ApplicationID []byte

func (a *ApplicationID) encode(w *writer) { w.opaque("application_id", *a) }
func (a *ApplicationID) decode(r *reader) { *a = r.opaque("application_id") }

// Marshal encodes the extension body.
func (a *ApplicationID) Marshal() ([]byte, error) { return marshal(a) }

// Unmarshal decodes the extension body.
func (a *ApplicationID) Unmarshal(b []byte) error { return unmarshal(a, b, "application_id") }

// RequiredCapabilities is RFC 9420's RequiredCapabilities (§11.1).
type RequiredCapabilities struct {
	ExtensionTypes  []ExtensionType
	ProposalTypes   []ProposalType
	CredentialTypes []CredentialType
}

func (rc *RequiredCapabilities) encode(w *writer) {
	putU16Vec(w, "RequiredCapabilities.extension_types", rc.ExtensionTypes)
	putU16Vec(w, "RequiredCapabilities.proposal_types", rc.ProposalTypes)
	putU16Vec(w, "RequiredCapabilities.credential_types", rc.CredentialTypes)
}

func (rc *RequiredCapabilities) decode(r *reader) {
	rc.ExtensionTypes = u16Vec[ExtensionType](r, "RequiredCapabilities.extension_types")
	rc.ProposalTypes = u16Vec[ProposalType](r, "RequiredCapabilities.proposal_types")
	rc.CredentialTypes = u16Vec[CredentialType](r, "RequiredCapabilities.credential_types")
}

// Marshal encodes rc.
func (rc *RequiredCapabilities) Marshal() ([]byte, error) { return marshal(rc) }

// Unmarshal decodes rc from exactly b.
func (rc *RequiredCapabilities) Unmarshal(b []byte) error {
	return unmarshal(rc, b, "RequiredCapabilities")
}

// ExternalPub is RFC 9420's ExternalPub (§12.4.3.2).
type ExternalPub struct {
	ExternalPub []byte // HPKEPublicKey
}

func (e *ExternalPub) encode(w *writer) { w.opaque("ExternalPub.external_pub", e.ExternalPub) }
func (e *ExternalPub) decode(r *reader) { e.ExternalPub = r.opaque("ExternalPub.external_pub") }

// Marshal encodes e.
func (e *ExternalPub) Marshal() ([]byte, error) { return marshal(e) }

// Unmarshal decodes e from exactly b.
func (e *ExternalPub) Unmarshal(b []byte) error { return unmarshal(e, b, "ExternalPub") }

// ExternalSender is RFC 9420's ExternalSender (§12.1.8.1).
type ExternalSender struct {
	SignatureKey []byte // SignaturePublicKey
	Credential   Credential
}

func (e *ExternalSender) encode(w *writer) {
	w.opaque("ExternalSender.signature_key", e.SignatureKey)
	e.Credential.encode(w)
}

func (e *ExternalSender) decode(r *reader) {
	e.SignatureKey = r.opaque("ExternalSender.signature_key")
	e.Credential.decode(r)
}

// ExternalSenders is the body of the external_senders extension:
// ExternalSender external_senders<V>.
type ExternalSenders []ExternalSender

func (l *ExternalSenders) encode(w *writer) {
	start := w.beginVec()
	for i := range *l {
		(*l)[i].encode(w)
	}
	w.endVec("external_senders", start)
}

func (l *ExternalSenders) decode(r *reader) {
	saved := r.enterVec("external_senders")
	var out ExternalSenders
	for r.more() {
		var e ExternalSender
		e.decode(r)
		out = append(out, e)
	}
	r.leaveVec(saved)
	*l = out
}

// Marshal encodes l.
func (l *ExternalSenders) Marshal() ([]byte, error) { return marshal(l) }

// Unmarshal decodes l from exactly b.
func (l *ExternalSenders) Unmarshal(b []byte) error { return unmarshal(l, b, "external_senders") }
