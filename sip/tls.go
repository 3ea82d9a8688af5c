// tls.go owns SIP over TLS (RFC 3261 §26.2, RFC 5630): the certificate and
// key of our listener (also offered as a client certificate), the CAs that
// verify servers, and re-reading them on reload. A certificate error is a
// failed request (a fail and an account_status), never a fallback to TCP.
package sip

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// TLSConfig names the files of [sip-settings] tls-*.
type TLSConfig struct {
	Certificate string // PEM certificate chain of the listener and client certificate
	Key         string // PEM private key of Certificate
	CA          string // PEM CAs that verify servers; empty: the system pool
	// Verify checks the server's certificate chain and name (tls-verify);
	// false accepts any certificate (a lab with self-signed PBXes).
	Verify bool
}

// tlsMaterial is one reading of the files, with the configuration that
// named them.
type tlsMaterial struct {
	cfg   TLSConfig
	cert  *tls.Certificate // nil: none configured
	roots *x509.CertPool
}

// tlsStore serves the current material to handshakes; reload swaps it.
type tlsStore struct {
	cur atomic.Pointer[tlsMaterial]
}

// TLSFileError is a problem with a file of the TLS settings: Key is the
// setting that names File ("tls-certificate", "tls-key" or "tls-ca").
type TLSFileError struct {
	Key  string
	File string // "" for the system CA pool
	Err  error
}

func (e *TLSFileError) Error() string { return e.Key + " " + e.Detail() }

func (e *TLSFileError) Unwrap() error { return e.Err }

// Detail is the error without the key: "FILE: what is wrong".
func (e *TLSFileError) Detail() string {
	err := e.Err
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err // the path is File
	}
	if e.File == "" {
		return err.Error()
	}
	return e.File + ": " + err.Error()
}

// loadTLS reads the files c names. The error joins a *TLSFileError for
// each file that does not load.
func loadTLS(c TLSConfig) (*tlsMaterial, error) {
	m := &tlsMaterial{cfg: c}
	var errs []error
	if c.Certificate != "" || c.Key != "" {
		cert, err := loadKeyPair(c.Certificate, c.Key)
		errs = append(errs, err...)
		m.cert = cert
	}
	roots, err := loadRoots(c.CA)
	if err != nil {
		errs = append(errs, err)
	}
	m.roots = roots
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return m, nil
}

// loadKeyPair is tls.LoadX509KeyPair with each problem put on the file
// that has it.
func loadKeyPair(certFile, keyFile string) (*tls.Certificate, []error) {
	var errs []error
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		errs = append(errs, &TLSFileError{"tls-certificate", certFile, err})
	} else if _, err := parseCertificates(certPEM); err != nil {
		errs = append(errs, &TLSFileError{"tls-certificate", certFile, err})
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		errs = append(errs, &TLSFileError{"tls-key", keyFile, err})
	}
	if len(errs) > 0 {
		return nil, errs
	}
	// The certificate parses: what X509KeyPair finds is the key's.
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, []error{&TLSFileError{"tls-key", keyFile, err}}
	}
	return &cert, nil
}

var errNoPEMCertificate = errors.New("no PEM certificate in it")

// parseCertificates parses every CERTIFICATE block of data.
func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	key := false
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			key = key || strings.HasSuffix(b.Type, "PRIVATE KEY")
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	switch {
	case len(certs) == 0 && key:
		return nil, fmt.Errorf("%w, only a private key (are tls-certificate and tls-key swapped?)", errNoPEMCertificate)
	case len(certs) == 0:
		return nil, errNoPEMCertificate
	}
	return certs, nil
}

// loadRoots reads the CAs of tls-ca, or the system pool for none.
func loadRoots(ca string) (*x509.CertPool, error) {
	if ca == "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			return nil, &TLSFileError{"tls-ca", "", fmt.Errorf("system CA pool: %w", err)}
		}
		return pool, nil
	}
	data, err := os.ReadFile(ca)
	if err != nil {
		return nil, &TLSFileError{"tls-ca", ca, err}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, &TLSFileError{"tls-ca", ca, errNoPEMCertificate}
	}
	return pool, nil
}

// certExpiryWarning is how long before its end CheckTLS warns about a
// certificate: time to renew it.
const certExpiryWarning = 30 * 24 * time.Hour

// CheckTLS loads the files c names as Start and a reload do, and checks
// the validity period of the certificate chain at now, which they do not
// (a certificate past its end loads, and peers refuse it). Each problem is
// a *TLSFileError, and so is each warning: a certificate that ends within
// 30 days.
func CheckTLS(c TLSConfig, now time.Time) (problems, warnings []*TLSFileError) {
	m, err := loadTLS(c)
	if err != nil {
		return TLSFileErrors(err), nil
	}
	return certValidity(c, m, now)
}

// CheckTLSStart is CheckTLS for a start: only a file that does not load is
// a problem (the UA could not start on it); a certificate outside its
// validity period is a warning, as the other transports serve all the same
// (peers refuse the certificate, as they would a wrong one).
func CheckTLSStart(c TLSConfig, now time.Time) (problems, warnings []*TLSFileError) {
	m, err := loadTLS(c)
	if err != nil {
		return TLSFileErrors(err), nil
	}
	invalid, soon := certValidity(c, m, now)
	return nil, append(invalid, soon...)
}

// certValidity checks the validity period of m's certificate chain at now.
func certValidity(c TLSConfig, m *tlsMaterial, now time.Time) (problems, warnings []*TLSFileError) {
	if m.cert == nil {
		return nil, nil
	}
	for i, der := range m.cert.Certificate {
		cert, err := x509.ParseCertificate(der)
		if err != nil { // X509KeyPair parsed the first only
			problems = append(problems, &TLSFileError{"tls-certificate", c.Certificate, err})
			continue
		}
		which := "the certificate"
		if i > 0 {
			which = fmt.Sprintf("certificate %d of the chain (%s)", i+1, cert.Subject)
		}
		at := func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 MST") }
		switch left := cert.NotAfter.Sub(now); {
		case now.Before(cert.NotBefore):
			problems = append(problems, &TLSFileError{"tls-certificate", c.Certificate,
				fmt.Errorf("%s is not valid before %s", which, at(cert.NotBefore))})
		case left < 0:
			problems = append(problems, &TLSFileError{"tls-certificate", c.Certificate,
				fmt.Errorf("%s expired on %s", which, at(cert.NotAfter))})
		case left < certExpiryWarning:
			warnings = append(warnings, &TLSFileError{"tls-certificate", c.Certificate,
				fmt.Errorf("%s expires on %s, in %d days: renew it", which, at(cert.NotAfter), int(left.Hours()/24))})
		}
	}
	return problems, warnings
}

// TLSFileErrors is every *TLSFileError in err's tree.
func TLSFileErrors(err error) []*TLSFileError {
	var out []*TLSFileError
	var walk func(error)
	walk = func(err error) {
		if fe, ok := err.(*TLSFileError); ok {
			out = append(out, fe)
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return out
}

func newTLSStore(c TLSConfig) (*tlsStore, error) {
	s := &tlsStore{}
	if err := s.load(c); err != nil {
		return nil, err
	}
	return s, nil
}

// load reads the files c names and puts them in force for the next
// handshake; on an error the running material stays.
func (s *tlsStore) load(c TLSConfig) error {
	m, err := loadTLS(c)
	if err != nil {
		return err
	}
	s.cur.Store(m)
	return nil
}

var errNoCertificate = errors.New("no tls-certificate configured")

// serverConfig is the listener's: the certificate is looked up per
// handshake, so a reload takes effect for the next connection.
func (s *tlsStore) serverConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			if m := s.cur.Load(); m.cert != nil {
				return m.cert, nil
			}
			return nil, errNoCertificate
		},
	}
}

// The client side: which CAs verify servers (tls-ca) and whether they
// are verified at all (tls-verify) follow a reload from the next
// connection. sipgo keeps the one configuration it is given for its life
// and clones it per connection, so none of its fields may change; and
// crypto/tls gives a verification callback no way to learn the IP address
// dialled (ConnectionState.ServerName is the SNI, which is empty for an
// IP). Hence two configurations, each verifying with the material in
// force at its handshake:
//
//   - dialConfig, for the connections we dial ourselves (streams.go: every
//     IP address), made per connection with the host it dials;
//   - clientConfig, which sipgo keeps for those it dials itself (host
//     names): the name to check is the SNI it sent.
//
// Both leave crypto/tls's own check off and make the same check
// (verifyServer), with the same error.

// clientConfig is the configuration sipgo keeps and clones per connection.
func (s *tlsStore) clientConfig() *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, //nolint:gosec // VerifyConnection verifies, with the material in force
		VerifyConnection: func(cs tls.ConnectionState) error {
			return s.cur.Load().verifyServer(cs, cs.ServerName)
		},
		GetClientCertificate: s.clientCertificate,
	}
}

// dialConfig is the configuration of one connection we dial to host (a
// host name or IP address): verified with the material in force now.
func (s *tlsStore) dialConfig(host string) *tls.Config {
	m := s.cur.Load()
	return &tls.Config{
		MinVersion:           tls.VersionTLS12,
		ServerName:           host,
		InsecureSkipVerify:   true, //nolint:gosec // VerifyConnection verifies, with the material in force
		VerifyConnection:     func(cs tls.ConnectionState) error { return m.verifyServer(cs, host) },
		GetClientCertificate: s.clientCertificate,
	}
}

func (s *tlsStore) clientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	if m := s.cur.Load(); m.cert != nil {
		return m.cert, nil
	}
	return &tls.Certificate{}, nil // none: the server decides
}

var errNoServerName = errors.New("tls: no server name to verify the certificate against")

// verifyServer is crypto/tls's verification of a server (a chain to the
// roots, server-auth usage, the name or IP address dialled), with its
// error, or nothing when tls-verify is false (the operator's explicit
// choice).
func (m *tlsMaterial) verifyServer(cs tls.ConnectionState, name string) error {
	if !m.cfg.Verify {
		return nil
	}
	switch {
	case len(cs.PeerCertificates) == 0:
		return errors.New("tls: server sent no certificate")
	case name == "":
		return errNoServerName
	}
	opts := x509.VerifyOptions{Roots: m.roots, DNSName: name, Intermediates: x509.NewCertPool()}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
		return &tls.CertificateVerificationError{UnverifiedCertificates: cs.PeerCertificates, Err: err}
	}
	return nil
}

// ReloadTLS re-reads the certificate, key and CA files in force (on every
// reload: a renewed certificate keeps its path). A file that does not load
// keeps the running material and returns the error.
func (u *UA) ReloadTLS() error {
	if u.tls == nil {
		return nil
	}
	c := u.tls.cur.Load().cfg
	if err := u.tls.load(c); err != nil {
		return fmt.Errorf("sip: TLS: %w (the running certificates are kept)", err)
	}
	u.log.Info("TLS certificates re-read", "certificate", c.Certificate, "ca", c.CA)
	return nil
}
