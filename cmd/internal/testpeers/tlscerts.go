package testpeers

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCA is a certificate authority made with openssl for one test: its
// certificate signs the server and client certificates of the test's
// Kamailio, baresip and daemon.
type TestCA struct {
	t       testing.TB
	dir     string
	openssl string
	// Cert is the CA certificate (PEM), what tls-ca and sip_cafile name.
	Cert string
	key  string
}

// NewTestCA makes a CA (EC P-256, valid two days) in a folder of its own.
func NewTestCA(t testing.TB, name string) *TestCA {
	t.Helper()
	ca := &TestCA{t: t, openssl: RequireBinary(t, "openssl", "openssl"), dir: LogDir(t, "tls-"+name)}
	ca.Cert = filepath.Join(ca.dir, "ca.pem")
	ca.key = filepath.Join(ca.dir, "ca.key")
	ca.run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
		"-keyout", ca.key, "-out", ca.Cert, "-days", "2", "-subj", "/CN=telestra test CA "+name,
		"-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
	return ca
}

// Issue makes a certificate for name valid for the given SANs ("IP:127.0.0.1",
// "DNS:localhost"), for server and client use; it returns the PEM
// certificate and key paths.
func (ca *TestCA) Issue(name string, sans ...string) (cert, key string) {
	ca.t.Helper()
	cert = filepath.Join(ca.dir, name+".pem")
	key = filepath.Join(ca.dir, name+".key")
	csr := filepath.Join(ca.dir, name+".csr")
	ext := filepath.Join(ca.dir, name+".ext")
	if err := os.WriteFile(ext, []byte("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"+
		"extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName="+strings.Join(sans, ",")+"\n"), 0o644); err != nil {
		ca.t.Fatalf("testpeers: %v", err)
	}
	ca.run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
		"-keyout", key, "-out", csr, "-subj", "/CN="+name)
	ca.run("x509", "-req", "-in", csr, "-CA", ca.Cert, "-CAkey", ca.key, "-CAcreateserial",
		"-out", cert, "-days", "2", "-extfile", ext)
	return cert, key
}

func (ca *TestCA) run(args ...string) {
	ca.t.Helper()
	cmd := exec.Command(ca.openssl, args...)
	cmd.Dir = ca.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		ca.t.Fatalf("testpeers: openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
