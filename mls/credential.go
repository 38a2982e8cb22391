package mls

// Certificate is RFC 9420's Certificate (§5.3): one DER certificate.
type Certificate struct {
	CertData []byte
}

// Credential is RFC 9420's Credential (§5.3).
//
// For basic credentials Identity is set; for x509 Certificates; for any other
// type the body is kept in Data as the content of an opaque<V> (the
// convention for non-RFC credential types), so it round-trips.
type Credential struct {
	CredentialType CredentialType
	Identity       []byte        // basic
	Certificates   []Certificate // x509
	Data           []byte        // other types
}

func (c *Credential) encode(w *writer) {
	w.u16(uint16(c.CredentialType))
	switch c.CredentialType {
	case CredentialTypeBasic:
		w.opaque("Credential.identity", c.Identity)
	case CredentialTypeX509:
		start := w.beginVec()
		for i := range c.Certificates {
			w.opaque("Certificate.cert_data", c.Certificates[i].CertData)
		}
		w.endVec("Credential.certificates", start)
	default:
		w.opaque("Credential.data", c.Data)
	}
}

func (c *Credential) decode(r *reader) {
	c.CredentialType = CredentialType(r.u16("Credential.credential_type"))
	switch c.CredentialType {
	case CredentialTypeBasic:
		c.Identity = r.opaque("Credential.identity")
	case CredentialTypeX509:
		saved := r.enterVec("Credential.certificates")
		for r.more() {
			c.Certificates = append(c.Certificates, Certificate{CertData: r.opaque("Certificate.cert_data")})
		}
		r.leaveVec(saved)
	default:
		c.Data = r.opaque("Credential.data")
	}
}

// Marshal encodes c.
func (c *Credential) Marshal() ([]byte, error) { return marshal(c) }

// Unmarshal decodes c from exactly b.
func (c *Credential) Unmarshal(b []byte) error { return unmarshal(c, b, "Credential") }
