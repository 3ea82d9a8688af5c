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

// clientConfig is the dial configuration sipgo clones per connection (it
// sets ServerName to the host dialled). The CA pool is read when the UA
// starts: sipgo keeps this configuration for its life. The client
// certificate follows reloads.
func (s *tlsStore) clientConfig() *tls.Config {
	m := s.cur.Load()
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		RootCAs:            m.roots,
		InsecureSkipVerify: !m.cfg.Verify, //nolint:gosec // tls-verify = false is the operator's explicit choice
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if m := s.cur.Load(); m.cert != nil {
				return m.cert, nil
			}
			return &tls.Certificate{}, nil // none: the server decides
		},
	}
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
