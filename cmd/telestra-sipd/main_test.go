package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFlags(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("[tcp-settings]\nprot = 1\n[rtp-settings]\nport-min = 17001\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	warn := filepath.Join(dir, "warn.toml")
	if err := os.WriteFile(warn, []byte("[audio.channels.ch1]\nsink = \"usb\"\n[accounts.a]\nuser = \"1\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tlsPlan := tlsPlans(t, dir)
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr []string
	}{
		{name: "version", args: []string{"-version"}, wantCode: 0, wantStdout: "telestra-sipd "},
		{name: "check quick-start plan", args: []string{"-check", "-plan", "../../testdata/quickstart.toml"}, wantCode: 0, wantStdout: "OK\n"},
		{name: "check packaged default", args: []string{"-check", "-plan", "../../packaging/sipplan.toml"}, wantCode: 0, wantStdout: "OK\n"},
		{name: "check reports every problem", args: []string{"-check", "-plan", bad}, wantCode: 1,
			wantStderr: []string{"tcp-settings.prot", "rtp-settings.port-min", bad + ":2"}},
		{name: "check missing file", args: []string{"-check", "-plan", filepath.Join(dir, "none.toml")}, wantCode: 1,
			wantStderr: []string{"none.toml"}},
		{name: "start on an invalid plan exits 78 with every problem", args: []string{"-plan", bad}, wantCode: 78,
			wantStderr: []string{"level=ERROR", "SIP plan invalid: " + bad + ":2", "rtp-settings.port-min"}},
		{name: "check warns about settings without effect", args: []string{"-check", "-plan", warn}, wantCode: 0, wantStdout: "OK (1 warning)\n",
			wantStderr: []string{warn + `:2: audio.channels.ch1.sink: warning: ignored: the backend is "loopback", the default`}},
		{name: "check loads the TLS files", args: []string{"-check", "-plan", tlsPlan("valid")}, wantCode: 0, wantStdout: "OK\n"},
		{name: "check a TLS key that is not there", args: []string{"-check", "-plan", tlsPlan("typo")}, wantCode: 1,
			wantStderr: []string{tlsPlan("typo") + ":4: sip-settings.tls-key: " + filepath.Join(dir, "sip.kye") + ": no such file or directory"}},
		{name: "check a key of another certificate", args: []string{"-check", "-plan", tlsPlan("other-key")}, wantCode: 1,
			wantStderr: []string{tlsPlan("other-key") + ":4: sip-settings.tls-key: " + filepath.Join(dir, "other.key") + ": tls: private key does not match public key"}},
		{name: "check an expired certificate", args: []string{"-check", "-plan", tlsPlan("expired")}, wantCode: 1,
			wantStderr: []string{tlsPlan("expired") + ":3: sip-settings.tls-certificate: " + filepath.Join(dir, "expired.pem") + ": the certificate expired on "}},
		{name: "check a CA file without certificates", args: []string{"-check", "-plan", tlsPlan("ca-key")}, wantCode: 1,
			wantStderr: []string{tlsPlan("ca-key") + ":5: sip-settings.tls-ca: " + filepath.Join(dir, "sip.key") + ": no PEM certificate in it"}},
		{name: "check every TLS problem", args: []string{"-check", "-plan", tlsPlan("all")}, wantCode: 1,
			wantStderr: []string{":4: sip-settings.tls-key: ", ":5: sip-settings.tls-ca: "}},
		{name: "check warns about a certificate that expires soon", args: []string{"-check", "-plan", tlsPlan("soon")}, wantCode: 0, wantStdout: "OK (1 warning)\n",
			wantStderr: []string{tlsPlan("soon") + ":3: sip-settings.tls-certificate: warning: " + filepath.Join(dir, "soon.pem") + ": the certificate expires on "}},
		// A TLS file the UA cannot load is a plan that cannot start: 78,
		// which the unit does not retry, with the key and line.
		{name: "start on a TLS key that is not there exits 78", args: []string{"-plan", tlsPlan("typo")}, wantCode: 78,
			wantStderr: []string{"level=ERROR", "SIP plan invalid: " + tlsPlan("typo") + ":4: sip-settings.tls-key: " + filepath.Join(dir, "sip.kye")}},
		{name: "check leaves TLS files without transport tls alone, as the daemon", args: []string{"-check", "-plan", tlsPlan("no-tls")}, wantCode: 0, wantStdout: "OK\n"},
		{name: "stray argument", args: []string{"extra"}, wantCode: 64, wantStderr: []string{`unexpected argument "extra"`, "telestra-sipd -h"}},
		{name: "plan without -plan", args: []string{"-check", "my.toml"}, wantCode: 64,
			wantStderr: []string{`unexpected argument "my.toml": give the plan with -plan, e.g. telestra-sipd -check -plan my.toml`}},
		{name: "devices without check", args: []string{"-devices"}, wantCode: 64, wantStderr: []string{"-devices only goes with -check"}},
		{name: "debug endpoint not loopback", args: []string{"-debug-addr", "0.0.0.0:0", "-plan", "../../testdata/quickstart.toml"}, wantCode: 1,
			wantStderr: []string{"only loopback"}},
		{name: "unknown flag", args: []string{"-bogus"}, wantCode: 64, wantStderr: []string{"bogus"}},
		{name: "help", args: []string{"-h"}, wantCode: 0, wantStdout: "usage: telestra-sipd [-plan FILE]\n"},
		{name: "help long", args: []string{"--help"}, wantCode: 0, wantStdout: "usage: telestra-sipd"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(tc.args, &out, &errb)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tc.wantCode, errb.String())
			}
			if !strings.HasPrefix(out.String(), tc.wantStdout) || tc.wantStdout == "" && out.Len() > 0 {
				t.Errorf("stdout %q, want prefix %q", out.String(), tc.wantStdout)
			}
			if tc.wantStderr == nil && errb.Len() > 0 {
				t.Errorf("stderr %q, want nothing", errb.String())
			}
			for _, w := range tc.wantStderr {
				if !strings.Contains(errb.String(), w) {
					t.Errorf("stderr %q lacks %q", errb.String(), w)
				}
			}
		})
	}
}

// tlsPlans writes TLS files to dir and a plan for each case of TestFlags,
// and returns the path of a case's plan.
func tlsPlans(t *testing.T, dir string) func(name string) string {
	t.Helper()
	day := 24 * time.Hour
	cert, key := writeCert(t, dir, "sip", 365*day)
	_, otherKey := writeCert(t, dir, "other", 365*day)
	expired, expiredKey := writeCert(t, dir, "expired", -day)
	soon, soonKey := writeCert(t, dir, "soon", 10*day)
	plans := map[string][4]string{ // transport, certificate, key, CA
		"valid":     {"tls", cert, key, cert},
		"typo":      {"tls", cert, filepath.Join(dir, "sip.kye"), cert},
		"other-key": {"tls", cert, otherKey, cert},
		"expired":   {"tls", expired, expiredKey, cert},
		"ca-key":    {"tls", cert, key, key},
		"all":       {"tls", cert, filepath.Join(dir, "sip.kye"), key},
		"soon":      {"tls", soon, soonKey, cert},
		"no-tls":    {"tcp", expired, filepath.Join(dir, "sip.kye"), key},
	}
	for name, f := range plans {
		text := fmt.Sprintf("[sip-settings]\ntransports = [\"udp\", %q]\ntls-certificate = %q\ntls-key = %q\ntls-ca = %q\n[accounts.a]\nuser = \"1\"\n",
			f[0], f[1], f[2], f[3])
		if err := os.WriteFile(filepath.Join(dir, name+".toml"), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return func(name string) string {
		if _, ok := plans[name]; !ok {
			t.Fatalf("no TLS plan %q", name)
		}
		return filepath.Join(dir, name+".toml")
	}
}

// writeCert writes a self-signed certificate for 127.0.0.1 that ends
// after left (before now if negative) and its key to dir as name.pem and
// name.key.
func writeCert(t *testing.T, dir, name string, left time.Duration) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	end := time.Now().Add(left)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: end.Add(-400 * 24 * time.Hour), NotAfter: end, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, keyPath := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, keyPath
}
