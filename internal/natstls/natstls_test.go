package natstls_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/commsec/communicator/internal/natstls"
)

func pool(t *testing.T, ca *natstls.CA) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(ca.CertPEM()) {
		t.Fatal("the CA certificate does not parse")
	}
	return p
}

func pair(t *testing.T, ca *natstls.CA, names ...string) tls.Certificate {
	t.Helper()
	certPEM, keyPEM, err := ca.Issue(names, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// handshake runs a TLS handshake over a pipe: the server presents srv and,
// like a NATS route listener with verify, wants a client certificate from
// the CA; the client verifies the server as name.
func handshake(t *testing.T, roots *x509.CertPool, srv, cli tls.Certificate, name string) (serverErr, clientErr error) {
	t.Helper()
	a, b := net.Pipe()
	done := make(chan error, 1)
	go func() {
		s := tls.Server(a, &tls.Config{Certificates: []tls.Certificate{srv}, ClientCAs: roots, ClientAuth: tls.RequireAndVerifyClientCert})
		err := s.Handshake()
		a.Close()
		done <- err
	}()
	c := tls.Client(b, &tls.Config{RootCAs: roots, ServerName: name, Certificates: []tls.Certificate{cli}})
	clientErr = c.Handshake()
	b.Close()
	return <-done, clientErr
}

// TestRoutesAndClients: a node's certificate serves its clients under
// every name it was issued for (service name, localhost, 127.0.0.1) and
// authenticates it on the routes in both directions.
func TestRoutesAndClients(t *testing.T) {
	ca, err := natstls.NewCA("test CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	roots := pool(t, ca)
	n1, n2 := pair(t, ca, "nats-1", "localhost", "127.0.0.1"), pair(t, ca, "nats-2", "localhost", "127.0.0.1")
	for _, name := range []string{"nats-1", "localhost", "127.0.0.1"} {
		if se, ce := handshake(t, roots, n1, n2, name); se != nil || ce != nil {
			t.Errorf("route nats-2 → %s: server %v, client %v", name, se, ce)
		}
	}
	if _, ce := handshake(t, roots, n1, n2, "nats-3"); ce == nil {
		t.Error("nats-1's certificate was accepted as nats-3")
	}
}

// TestForeignCA: a certificate of another CA is refused on both sides.
func TestForeignCA(t *testing.T) {
	ca, _ := natstls.NewCA("ours", time.Now())
	other, _ := natstls.NewCA("theirs", time.Now())
	roots := pool(t, ca)
	ours, theirs := pair(t, ca, "nats-1"), pair(t, other, "nats-1")
	if _, ce := handshake(t, roots, theirs, ours, "nats-1"); ce == nil {
		t.Error("a client trusted a server certificate of another CA")
	}
	if se, _ := handshake(t, roots, ours, theirs, "nats-1"); se == nil {
		t.Error("a route accepted a client certificate of another CA")
	}
}

func TestCertificateFields(t *testing.T) {
	now := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	ca, err := natstls.NewCA("test CA", now)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue([]string{"nats-1", "127.0.0.1"}, now)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if cert.IsCA || len(cert.DNSNames) != 1 || len(cert.IPAddresses) != 1 || !cert.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("names %v %v, CA %v", cert.DNSNames, cert.IPAddresses, cert.IsCA)
	}
	if !cert.NotAfter.Equal(ca.NotAfter()) || !cert.NotAfter.Equal(now.Add(natstls.Validity)) || cert.NotBefore.After(now) {
		t.Errorf("valid %v to %v, CA until %v", cert.NotBefore, cert.NotAfter, ca.NotAfter())
	}
	if !strings.HasPrefix(string(keyPEM), "-----BEGIN PRIVATE KEY-----") {
		t.Errorf("key is not PKCS#8 PEM: %.40q", keyPEM)
	}
	if _, err := x509.ParseCertificate(must(pem.Decode(ca.CertPEM())).Bytes); err != nil {
		t.Error(err)
	}
	if _, _, err := ca.Issue(nil, now); err == nil {
		t.Error("a certificate without a name was issued")
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool(t, ca), CurrentTime: now.Add(natstls.Validity + time.Hour)}); !errors.As(err, new(x509.CertificateInvalidError)) {
		t.Errorf("expired certificate: %v", err)
	}
}

func must(b *pem.Block, _ []byte) *pem.Block { return b }
