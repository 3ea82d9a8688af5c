package daemon

import (
	"context"
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

	"github.com/telestra/telestra-sip/api/client"
	"github.com/telestra/telestra-sip/cmd/internal/plan"
)

// writeCert writes a self-signed certificate for 127.0.0.1 and its key to
// dir and returns their paths.
func writeCert(t *testing.T, dir string) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sip"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, keyPath := filepath.Join(dir, "sip.pem"), filepath.Join(dir, "sip.key")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, keyPath
}

// A reload re-reads the TLS files at their paths; one that no longer
// loads keeps the running material and is a warning on the key that
// names it, the file included.
func TestReloadTLSFileWarning(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir)
	ca := filepath.Join(dir, "ca.pem")
	pemCert, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ca, pemCert, 0o600); err != nil {
		t.Fatal(err)
	}
	planPath := filepath.Join(dir, "sipplan.toml")
	apiPort, sipPort := freePort(t), freePort(t)
	settingsPlan(t, planPath, apiPort, sipPort, "", fmt.Sprintf("transports = [\"udp\", \"tls\"]\ntls-port = %d\n"+
		"tls-certificate = %q\ntls-key = %q\ntls-ca = %q\n", freePort(t), cert, key, ca), "")
	p, err := plan.Load(planPath)
	if err != nil {
		t.Fatal(err)
	}
	d := newDaemon(Options{PlanPath: planPath, Plan: p, Log: discardLogger(), Notifier: &recNotifier{}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	var cl *client.Client
	for deadline := time.Now().Add(5 * time.Second); ; {
		cl, err = client.Dial(ctx, fmt.Sprintf("127.0.0.1:%d", apiPort))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	defer cl.Close()

	if err := os.WriteFile(ca, []byte("renewed badly\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	defer rcancel()
	r, err := cl.Reload(rctx)
	if err != nil {
		t.Fatal(err)
	}
	want := "sip-settings.tls-ca: " + ca + ": no PEM certificate in it (not re-read: the running certificates are kept)"
	if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], want) {
		t.Errorf("warnings %q, want one with %q", r.Warnings, want)
	}
}
