// tls.go owns SIP over TLS (RFC 3261 §26.2, RFC 5630): the certificate and
// key of our listener (also offered as a client certificate), the CAs that
// verify servers, and re-reading them on reload. A certificate error is a
// failed request (a fail and an account_status), never a fallback to TCP.
package sip

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
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

func loadTLS(c TLSConfig) (*tlsMaterial, error) {
	m := &tlsMaterial{cfg: c}
	if c.Certificate != "" || c.Key != "" {
		cert, err := tls.LoadX509KeyPair(c.Certificate, c.Key)
		if err != nil {
			return nil, fmt.Errorf("tls-certificate %s / tls-key %s: %w", c.Certificate, c.Key, err)
		}
		m.cert = &cert
	}
	if c.CA == "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			return nil, fmt.Errorf("system CA pool: %w", err)
		}
		m.roots = pool
		return m, nil
	}
	pem, err := os.ReadFile(c.CA)
	if err != nil {
		return nil, fmt.Errorf("tls-ca: %w", err)
	}
	m.roots = x509.NewCertPool()
	if !m.roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls-ca %s: no PEM certificate in it", c.CA)
	}
	return m, nil
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
