package sip

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// writeSelfSigned writes a self-signed certificate for 127.0.0.1 with
// common name cn to dir and returns the certificate and key paths.
func writeSelfSigned(t *testing.T, dir, cn string) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	cert, keyPath := filepath.Join(dir, "sip.pem"), filepath.Join(dir, "sip.key")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, keyPath
}

func served(t *testing.T, s *tlsStore) string {
	t.Helper()
	c, err := s.serverConfig().GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf.Subject.CommonName
}

// The listener's certificate follows a reload; files that do not load keep
// the running one.
func TestTLSReload(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeSelfSigned(t, dir, "first")
	u := &UA{log: testLogger(t)}
	st, err := newTLSStore(TLSConfig{Certificate: cert, Key: key, CA: cert, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	u.tls = st
	if cn := served(t, st); cn != "first" {
		t.Fatalf("serves %q", cn)
	}
	writeSelfSigned(t, dir, "renewed")
	if err := u.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	if cn := served(t, st); cn != "renewed" {
		t.Fatalf("after reload serves %q, want the renewed certificate", cn)
	}
	if err := os.WriteFile(key, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := u.ReloadTLS(); err == nil {
		t.Fatal("a broken key reloaded without an error")
	}
	if cn := served(t, st); cn != "renewed" {
		t.Fatalf("a failed reload replaced the certificate: %q", cn)
	}
	for _, bad := range []TLSConfig{
		{Certificate: cert, Key: filepath.Join(dir, "missing.key")},
		{Certificate: cert, Key: key, CA: filepath.Join(dir, "missing-ca.pem")},
		{CA: key}, // no PEM certificate in it
	} {
		if _, err := newTLSStore(bad); err == nil {
			t.Errorf("%+v loaded", bad)
		}
	}
}

// A reload naming other certificate files serves them from the next
// handshake; files that do not load reject the Reconfigure and keep the
// running ones (and the settings in force).
func TestReconfigureTLSFiles(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	cert, key := writeSelfSigned(t, dir, "first")
	cert2, key2 := writeSelfSigned(t, other, "second")
	cfg := testConfig(Config{Address: "127.0.0.1", Transports: []string{"udp", "tls"},
		TLS: TLSConfig{Certificate: cert, Key: key, CA: cert, Verify: true}})
	u, err := newUA(cfg, nil, nil, testLogger(t), &fakeAlloc{})
	if err != nil {
		t.Fatal(err)
	}
	if u.tls, err = newTLSStore(cfg.TLS); err != nil {
		t.Fatal(err)
	}
	next := cfg
	next.TLS.Certificate, next.TLS.Key = cert2, key2
	if err := u.Reconfigure(next); err != nil {
		t.Fatal(err)
	}
	if cn := served(t, u.tls); cn != "second" {
		t.Fatalf("after the reload serves %q, want the new files'", cn)
	}
	bad := next
	bad.TLS.Key = filepath.Join(other, "missing.key")
	bad.UserAgent = "not applied"
	if err := u.Reconfigure(bad); err == nil {
		t.Fatal("a missing key was reconfigured without an error")
	}
	if cn := served(t, u.tls); cn != "second" || u.cur().UserAgent == "not applied" {
		t.Fatalf("a rejected Reconfigure changed what is in force: serves %q, user agent %q", cn, u.cur().UserAgent)
	}
}

// handshake dials addr with cfg and reports the handshake's error.
func handshake(t *testing.T, addr string, cfg *tls.Config) error {
	t.Helper()
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte("x")) // TLS 1.3: the server's verdict comes with the first read or write
	return err
}

// The client check follows a reload: a server certificate from a CA the
// reload no longer trusts fails the next handshake, one from a CA it adds
// passes, tls-verify = false accepts anything; the name checked is the IP
// address dialled (our own dials) or the SNI (sipgo's, host names), and a
// connection with neither fails.
func TestTLSClientFollowsReload(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	srvCert, srvKey := writeSelfSigned(t, dir, "pbx") // for IP 127.0.0.1
	otherCA, _ := writeSelfSigned(t, other, "other CA")
	kp, err := tls.LoadX509KeyPair(srvCert, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{kp}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.(*tls.Conn).Handshake()
				_, _ = c.Read(make([]byte, 1))
			}()
		}
	}()
	addr := ln.Addr().String()

	st, err := newTLSStore(TLSConfig{CA: otherCA, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	var ve *tls.CertificateVerificationError
	if err := handshake(t, addr, st.dialConfig("127.0.0.1")); !errors.As(err, &ve) {
		t.Fatalf("a server from a CA not trusted: %v, want a certificate verification error", err)
	}
	if err := st.load(TLSConfig{CA: srvCert, Verify: true}); err != nil {
		t.Fatal(err)
	}
	if err := handshake(t, addr, st.dialConfig("127.0.0.1")); err != nil {
		t.Fatalf("after the reload trusted its CA: %v", err)
	}
	if err := handshake(t, addr, st.dialConfig("127.0.0.2")); !errors.As(err, &ve) {
		t.Errorf("an IP the certificate does not name: %v, want a verification error", err)
	}
	// sipgo's configuration: the name is the SNI, which an IP never is.
	named := st.clientConfig().Clone()
	named.ServerName = "pbx.example.com"
	if err := handshake(t, addr, named); !errors.As(err, &ve) {
		t.Errorf("a host name the certificate does not name: %v, want a verification error", err)
	}
	byIP := st.clientConfig().Clone()
	byIP.ServerName = "127.0.0.1"
	if err := handshake(t, addr, byIP); !errors.Is(err, errNoServerName) {
		t.Errorf("sipgo's configuration dialling an IP: %v, want errNoServerName", err)
	}
	if err := st.load(TLSConfig{CA: otherCA, Verify: false}); err != nil {
		t.Fatal(err)
	}
	if err := handshake(t, addr, st.dialConfig("127.0.0.2")); err != nil {
		t.Errorf("tls-verify = false: %v", err)
	}
}

// writeCert writes a self-signed certificate made from tmpl (the names,
// addresses and validity it sets; an hour either side of now if it sets
// none) and its key to dir as base.pem and base.key.
func writeCert(t *testing.T, dir, base string, tmpl x509.Certificate) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	if tmpl.Subject.CommonName == "" {
		tmpl.Subject.CommonName = base
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = time.Now().Add(-time.Hour)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = time.Now().Add(time.Hour)
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	tmpl.BasicConstraintsValid, tmpl.IsCA = true, true
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, &tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, keyPath := filepath.Join(dir, base+".pem"), filepath.Join(dir, base+".key")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, keyPath
}

// countingListener counts the connections it accepts.
type countingListener struct {
	net.Listener
	n atomic.Int32
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// serveTLS has p also serve SIP over TLS, on a port of its own, with the
// certificates in certs and keys (crypto/tls picks the one for the SNI);
// the listener counts the connections made to it.
func (p *peer) serveTLS(t *testing.T, certs, keys []string) (int, *countingListener) {
	t.Helper()
	cfg := &tls.Config{}
	for i := range certs {
		kp, err := tls.LoadX509KeyPair(certs[i], keys[i])
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = append(cfg.Certificates, kp)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: l}
	done := make(chan struct{})
	go func() { defer close(done); _ = p.srv.ServeTLS(p.streams.listener("tls", cl)) }()
	t.Cleanup(func() { l.Close(); <-done })
	return l.Addr().(*net.TCPAddr).Port, cl
}

// A TLS connection is reused only for a server name it was verified for.
// sipgo pools connections by address: without that, a.test's connection
// carried the REGISTER of an account at b.test, the same address, whose
// server never proved that name (RFC 5922 §4). With a certificate for both
// names the connection is shared; a server given by IP address proves
// that address.
func TestTLSPooledConnectionPerName(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	a, b := x509.Certificate{DNSNames: []string{"a.test"}}, x509.Certificate{DNSNames: []string{"b.test"}}
	ip := x509.Certificate{IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	for _, tc := range []struct {
		name   string
		certs  []x509.Certificate // the server's, chosen by SNI
		first  string             // the host of the account registered first
		second string             // the host of the account added next
		ok     bool               // the second registers
		conns  int32              // connections the server accepted
	}{
		{"certificate names the first name only", []x509.Certificate{a}, "a.test", "b.test", false, 2},
		{"certificate names both", []x509.Certificate{{DNSNames: []string{"a.test", "b.test"}}}, "a.test", "b.test", true, 1},
		{"each name its own certificate", []x509.Certificate{a, b}, "a.test", "b.test", true, 2},
		{"same name twice", []x509.Certificate{a}, "a.test", "a.test", true, 1},
		{"by IP address, then a name it does not show", []x509.Certificate{ip}, "127.0.0.1", "a.test", false, 2},
		{"by IP address twice", []x509.Certificate{ip}, "127.0.0.1", "127.0.0.1", true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var certs, keys []string
			var ca []byte
			for i, c := range tc.certs {
				cert, key := writeCert(t, dir, "pbx"+strconv.Itoa(i), c)
				certs, keys = append(certs, cert), append(keys, key)
				pem, err := os.ReadFile(cert)
				if err != nil {
					t.Fatal(err)
				}
				ca = append(ca, pem...)
			}
			caFile := filepath.Join(dir, "ca.pem")
			if err := os.WriteFile(caFile, ca, 0o600); err != nil {
				t.Fatal(err)
			}
			ourCert, ourKey := writeSelfSigned(t, t.TempDir(), "ua")
			p := newPeer(t)
			port, ln := p.serveTLS(t, certs, keys)
			var mu sync.Mutex
			registered := map[string]bool{}
			p.handle(sip.REGISTER, func(req *sip.Request, tx sip.ServerTransaction) {
				mu.Lock()
				registered[req.To().Address.User] = true
				mu.Unlock()
				res := sip.NewResponseFromRequest(req, 200, "OK", nil)
				if ct := req.Contact(); ct != nil {
					res.AppendHeader(sip.NewHeader("Contact", "<"+ct.Address.String()+">;expires=3600"))
				}
				tx.Respond(res)
			})
			server := func(host string) string { return "tls:" + net.JoinHostPort(host, strconv.Itoa(port)) }
			first := Account{Name: "a1", User: "3001", Pass: "pw", Register: true, Server: server(tc.first)}
			h := startUA(t, []Account{first}, func(c *Config, _ *UA) {
				if c != nil {
					c.Transports = []string{"udp", "tls"}
					c.TLS = TLSConfig{Certificate: ourCert, Key: ourKey, CA: caFile, Verify: true}
					c.Resolver = &mutableResolver{m: map[string][]netip.Addr{"a.test": {lo}, "b.test": {lo}}}
				}
			})
			eventually(t, "a1 registered", 5*time.Second, func() bool { return h.status(t, "a1").Code == 200 })
			second := Account{Name: "a2", User: "3002", Pass: "pw", Register: true, Server: server(tc.second)}
			if err := h.ua.Reload([]Account{first, second}); err != nil {
				t.Fatal(err)
			}
			eventually(t, "a2's first registration", 5*time.Second, func() bool {
				st := h.status(t, "a2")
				return st.Code == 200 || st.Registration.LastError != ""
			})
			mu.Lock()
			got := registered["3002"]
			mu.Unlock()
			switch r := h.status(t, "a2"); {
			case tc.ok && (r.Code != 200 || !got):
				t.Errorf("a2: %d %+v, want registered", r.Code, r.Registration)
			case !tc.ok && got:
				t.Errorf("the server got a2's REGISTER (%d %+v): it went over the connection verified for %s", r.Code, r.Registration, tc.first)
			case !tc.ok && !strings.Contains(r.Registration.LastError, "certificate"):
				t.Errorf("a2: %+v, want a certificate error", r.Registration)
			}
			if n := ln.n.Load(); n != tc.conns {
				t.Errorf("the server accepted %d connections, want %d", n, tc.conns)
			}
		})
	}
}

// CheckTLS finds what Start would refuse, each problem on the setting
// that names the file, and what Start accepts but peers refuse: a
// certificate outside its validity period (and warns 30 days ahead).
func TestCheckTLS(t *testing.T) {
	now := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	valid := func(from, to time.Duration) x509.Certificate {
		return x509.Certificate{NotBefore: now.Add(from), NotAfter: now.Add(to)}
	}
	cert, key := writeCert(t, dir, "good", valid(-24*time.Hour, 365*24*time.Hour))
	_, otherKey := writeCert(t, dir, "other", valid(-24*time.Hour, 365*24*time.Hour))
	expired, expiredKey := writeCert(t, dir, "expired", valid(-48*time.Hour, -24*time.Hour))
	early, earlyKey := writeCert(t, dir, "early", valid(24*time.Hour, 48*time.Hour))
	soon, soonKey := writeCert(t, dir, "soon", valid(-24*time.Hour, 10*24*time.Hour))
	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, []byte("not PEM\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	chain := filepath.Join(dir, "chain.pem") // a leaf, then an expired certificate
	a, _ := os.ReadFile(cert)
	b, _ := os.ReadFile(expired)
	if err := os.WriteFile(chain, append(a, b...), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	type finding struct{ key, file, msg string }
	for _, tc := range []struct {
		name     string
		cfg      TLSConfig
		problems []finding
		warnings []finding
		loads    bool // by the UA at start
	}{
		{name: "valid", cfg: TLSConfig{Certificate: cert, Key: key, CA: cert}, loads: true},
		{name: "missing certificate", cfg: TLSConfig{Certificate: missing, Key: key, CA: cert},
			problems: []finding{{"tls-certificate", missing, "no such file"}}},
		{name: "missing key and CA", cfg: TLSConfig{Certificate: cert, Key: missing, CA: missing},
			problems: []finding{{"tls-key", missing, "no such file"}, {"tls-ca", missing, "no such file"}}},
		{name: "key of another certificate", cfg: TLSConfig{Certificate: cert, Key: otherKey, CA: cert},
			problems: []finding{{"tls-key", otherKey, "private key does not match public key"}}},
		{name: "certificate and key swapped", cfg: TLSConfig{Certificate: key, Key: cert, CA: cert},
			problems: []finding{{"tls-certificate", key, "swapped"}}},
		{name: "certificate not PEM", cfg: TLSConfig{Certificate: empty, Key: key, CA: cert},
			problems: []finding{{"tls-certificate", empty, "no PEM certificate"}}},
		{name: "CA without a certificate", cfg: TLSConfig{Certificate: cert, Key: key, CA: key},
			problems: []finding{{"tls-ca", key, "no PEM certificate"}}},
		{name: "expired", cfg: TLSConfig{Certificate: expired, Key: expiredKey, CA: cert},
			problems: []finding{{"tls-certificate", expired, "the certificate expired on 2030-05-31 12:00 UTC"}}, loads: true},
		{name: "not valid yet", cfg: TLSConfig{Certificate: early, Key: earlyKey, CA: cert},
			problems: []finding{{"tls-certificate", early, "not valid before 2030-06-02 12:00 UTC"}}, loads: true},
		{name: "expires soon", cfg: TLSConfig{Certificate: soon, Key: soonKey, CA: cert},
			warnings: []finding{{"tls-certificate", soon, "expires on 2030-06-11 12:00 UTC, in 10 days"}}, loads: true},
		{name: "expired certificate in the chain", cfg: TLSConfig{Certificate: chain, Key: key, CA: cert},
			problems: []finding{{"tls-certificate", chain, "certificate 2 of the chain (CN=expired) expired"}}, loads: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			probs, warns := CheckTLS(tc.cfg, now)
			check := func(what string, got []*TLSFileError, want []finding) {
				t.Helper()
				if len(got) != len(want) {
					t.Fatalf("%s: %v, want %d", what, got, len(want))
				}
				for i, w := range want {
					if g := got[i]; g.Key != w.key || g.File != w.file || !strings.Contains(g.Detail(), w.msg) ||
						!strings.HasPrefix(g.Detail(), w.file+": ") {
						t.Errorf("%s %d: %s %q, want %s %s: ...%s...", what, i, g.Key, g.Detail(), w.key, w.file, w.msg)
					}
				}
			}
			check("problems", probs, tc.problems)
			check("warnings", warns, tc.warnings)
			// The UA's loader refuses what CheckTLS finds in the files
			// and loads a certificate outside its validity period.
			_, err := newTLSStore(tc.cfg)
			if fe := TLSFileErrors(err); (err == nil) != tc.loads || !tc.loads && len(fe) != len(probs) {
				t.Errorf("the UA's loader: %v (%d file errors), want loaded %v", err, len(fe), tc.loads)
			}
			// At start only what the UA cannot load is a problem; the
			// validity findings are warnings.
			probs, warns = CheckTLSStart(tc.cfg, now)
			if tc.loads {
				check("start problems", probs, nil)
				check("start warnings", warns, append(append([]finding(nil), tc.problems...), tc.warnings...))
			} else {
				check("start problems", probs, tc.problems)
				check("start warnings", warns, nil)
			}
		})
	}
}
