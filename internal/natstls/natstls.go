// Package natstls makes the TLS certificates of a NATS deployment with
// crypto/x509 alone: a certificate authority, one certificate per server
// (for its clients and for the routes between the servers, which
// authenticate each other with it), and the CA certificate every client
// verifies the servers against. comminit writes them for the docker
// compose cluster; the tests start TLS servers with them.
//
// Keys are ECDSA P-256, which every TLS stack nats-server and its clients
// use supports. The CA's private key is meant to be thrown away once the
// servers' certificates are issued: renewing means issuing everything
// again (comminit --force), so no long-lived key can mint a certificate
// for a NATS server.
package natstls

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// Validity is how long the CA and the certificates it issues are valid:
// two years, then `comminit --force` issues new ones.
const Validity = 2 * 365 * 24 * time.Hour

// backdate covers clocks that run a little behind the issuer's.
const backdate = time.Hour

// CA is a certificate authority for one deployment.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

// NewCA makes a self-signed CA valid from now (less an hour) for Validity.
func NewCA(name string, now time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("natstls: CA key: %w", err)
	}
	tmpl, err := template(pkix.Name{CommonName: name}, now)
	if err != nil {
		return nil, err
	}
	tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.MaxPathLenZero = true, true, true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("natstls: CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("natstls: CA certificate: %w", err)
	}
	return &CA{cert: cert, key: key, pem: pemBlock("CERTIFICATE", der)}, nil
}

// CertPEM is the CA certificate that clients verify the servers with.
func (ca *CA) CertPEM() []byte { return ca.pem }

// NotAfter is when the CA, and so every certificate it issued, expires.
func (ca *CA) NotAfter() time.Time { return ca.cert.NotAfter }

// Issue makes a server's key and certificate, valid until the CA expires,
// for the host names and IP addresses in names (at least one). The
// certificate serves both TLS roles: a server's towards its clients and
// the routes it accepts, and a client's on the routes it opens.
func (ca *CA) Issue(names []string, now time.Time) (certPEM, keyPEM []byte, err error) {
	if len(names) == 0 {
		return nil, nil, errors.New("natstls: a certificate needs at least one name")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("natstls: key: %w", err)
	}
	tmpl, err := template(pkix.Name{CommonName: names[0]}, now)
	if err != nil {
		return nil, nil, err
	}
	tmpl.NotAfter = ca.cert.NotAfter
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("natstls: certificate for %s: %w", names[0], err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("natstls: key for %s: %w", names[0], err)
	}
	defer clear(pkcs8)
	return pemBlock("CERTIFICATE", der), pemBlock("PRIVATE KEY", pkcs8), nil
}

func template(subject pkix.Name, now time.Time) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("natstls: serial: %w", err)
	}
	subject.Organization = []string{"Communicator"}
	return &x509.Certificate{SerialNumber: serial, Subject: subject,
		NotBefore: now.Add(-backdate), NotAfter: now.Add(Validity)}, nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
