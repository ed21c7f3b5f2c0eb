package testenv_test

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"

	"github.com/jobpacer/pacer/internal/testenv"
)

func TestNewTLSFilesVerify(t *testing.T) {
	t.Parallel()
	f := testenv.NewTLSFiles(t)
	pem, err := os.ReadFile(f.CA)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatalf("%s holds no PEM certificate", f.CA)
	}
	for _, c := range []struct {
		cert, key, name string
		usage           x509.ExtKeyUsage
	}{
		{f.ServerCert, f.ServerKey, "127.0.0.1", x509.ExtKeyUsageServerAuth},
		{f.ServerCert, f.ServerKey, "localhost", x509.ExtKeyUsageServerAuth},
		{f.ClientCert, f.ClientKey, "", x509.ExtKeyUsageClientAuth},
	} {
		pair, err := tls.LoadX509KeyPair(c.cert, c.key)
		if err != nil {
			t.Fatalf("LoadX509KeyPair(%s, %s): %v", c.cert, c.key, err)
		}
		leaf, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: c.name, KeyUsages: []x509.ExtKeyUsage{c.usage}}); err != nil {
			t.Errorf("%s for %q: Verify = %v, want nil", c.cert, c.name, err)
		}
	}
}

func TestFreePortDistinct(t *testing.T) {
	t.Parallel()
	seen := map[int]bool{}
	for range 50 {
		p := testenv.FreePort(t)
		if seen[p] {
			t.Fatalf("FreePort returned %d twice", p)
		}
		seen[p] = true
	}
}
