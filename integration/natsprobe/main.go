// Command natsprobe is the fault tests' probe of TLS on the NATS nodes of
// the compose stack, run in a container on the stack's network (nodes 2
// and 3 are not reachable otherwise):
//
//	natsprobe plain HOST:PORT --seed FILE
//	natsprobe tls URL --seed FILE --ca FILE
//	natsprobe route HOST:PORT --user USER --pass PASS --ca FILE
//
// plain speaks NATS to a client port without TLS, with valid credentials:
// it reads the server's INFO, sends CONNECT and PING in the clear, and
// prints "refused: ..." (exit 0) only if the server announced that TLS is
// required and ended the connection without a PONG; a PONG prints
// "accepted" (exit 1); anything else (no server, no INFO, no answer)
// exits 2. tls connects with nats.go over TLS, verifying the server
// against the CA, with the same credentials, and prints "accepted: ..."
// (exit 0) after a round trip, or the error (exit 1). Together they show
// that a refusal is about TLS and nothing else.
//
// route probes a route port, where TLS comes before any NATS: it sends a
// route's CONNECT (the routes' password) and PING in the clear and wants
// the connection closed without a byte of NATS in return, then starts
// TLS on a new connection and wants the node's certificate to verify
// against the CA; it prints "refused: ..." (exit 0) when both hold.
package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

const timeout = 10 * time.Second

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: natsprobe plain HOST:PORT --seed FILE | tls URL --seed FILE --ca FILE | route HOST:PORT --user U --pass P --ca FILE")
		os.Exit(2)
	}
	mode, target := os.Args[1], os.Args[2]
	fs := flag.NewFlagSet("natsprobe", flag.ExitOnError)
	seed := fs.String("seed", "", "nkey seed file")
	user := fs.String("user", "", "user name (routes)")
	pass := fs.String("pass", "", "password (routes)")
	ca := fs.String("ca", "", "CA certificate file")
	fs.Parse(os.Args[3:])
	var code int
	switch mode {
	case "plain":
		code = plain(target, *seed, *user, *pass)
	case "tls":
		code = secure(target, *seed, *ca)
	case "route":
		code = route(target, *user, *pass, *ca)
	default:
		fmt.Fprintf(os.Stderr, "natsprobe: unknown mode %q\n", mode)
		code = 2
	}
	os.Exit(code)
}

type info struct {
	ServerName  string `json:"server_name"`
	TLSRequired bool   `json:"tls_required"`
	Nonce       string `json:"nonce"`
}

func plain(addr, seed, user, pass string) int {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		fmt.Println("error:", err)
		return 2
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "INFO ") {
		fmt.Printf("error: no INFO from %s: %q %v\n", addr, line, err)
		return 2
	}
	var in info
	if err := json.Unmarshal([]byte(strings.TrimSpace(line[5:])), &in); err != nil {
		fmt.Println("error: INFO:", err)
		return 2
	}
	connect, err := connectLine(in, seed, user, pass)
	if err != nil {
		fmt.Println("error:", err)
		return 2
	}
	if _, err := io.WriteString(conn, connect+"\r\nPING\r\n"); err != nil {
		fmt.Println("error: write:", err)
		return 2
	}
	rest, err := io.ReadAll(r)
	var ne net.Error
	switch {
	case strings.Contains(string(rest), "PONG"):
		fmt.Printf("accepted: %s answered PONG in plaintext (tls_required %v)\n", in.ServerName, in.TLSRequired)
		return 1
	case errors.As(err, &ne) && ne.Timeout():
		fmt.Printf("error: %s neither answered nor closed within %v: %q\n", in.ServerName, timeout, rest)
		return 2
	case !in.TLSRequired:
		fmt.Printf("error: %s closed the connection but does not announce tls_required: %q %v\n", in.ServerName, rest, err)
		return 2
	}
	fmt.Printf("refused: %s announced tls_required and closed the plaintext connection without a PONG (read %q)\n", in.ServerName, rest)
	return 0
}

// connectLine is a CONNECT with an nkey's signature of the nonce, or a
// user and password.
func connectLine(in info, seed, user, pass string) (string, error) {
	c := map[string]any{"verbose": false, "pedantic": false, "tls_required": false, "name": "natsprobe", "lang": "go", "version": "0", "protocol": 1}
	if seed != "" {
		data, err := os.ReadFile(seed)
		if err != nil {
			return "", err
		}
		kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(data))))
		if err != nil {
			return "", err
		}
		pub, _ := kp.PublicKey()
		sig, err := kp.Sign([]byte(in.Nonce))
		if err != nil {
			return "", err
		}
		c["nkey"], c["sig"] = pub, base64.RawURLEncoding.EncodeToString(sig)
	} else {
		c["user"], c["pass"] = user, pass
	}
	b, err := json.Marshal(c)
	return "CONNECT " + string(b), err
}

func secure(url, seed, ca string) int {
	auth, err := nats.NkeyOptionFromSeed(seed)
	if err != nil {
		fmt.Println("error:", err)
		return 2
	}
	nc, err := nats.Connect(url, auth, nats.RootCAs(ca), nats.Timeout(timeout), nats.Name("natsprobe"))
	if err == nil {
		err = nc.FlushTimeout(timeout)
	}
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	defer nc.Close()
	state, err := nc.TLSConnectionState()
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Printf("accepted: %s over TLS (version %#x), server certificate %s verified\n", nc.ConnectedServerName(), state.Version, state.PeerCertificates[0].Subject.CommonName)
	return 0
}

func route(addr, user, pass, ca string) int {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		fmt.Println("error:", err)
		return 2
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	connect, _ := connectLine(info{}, "", user, pass)
	if _, err := io.WriteString(conn, connect+"\r\nPING\r\n"); err != nil {
		fmt.Println("error: write:", err)
		return 2
	}
	rest, err := io.ReadAll(conn)
	var ne net.Error
	switch {
	case strings.Contains(string(rest), "INFO") || strings.Contains(string(rest), "PONG"):
		fmt.Printf("accepted: %s spoke NATS in plaintext: %q\n", addr, rest)
		return 1
	case errors.As(err, &ne) && ne.Timeout():
		fmt.Printf("error: %s neither answered nor closed within %v: %q\n", addr, timeout, rest)
		return 2
	}
	name, err := routeCert(addr, ca)
	if err != nil {
		fmt.Printf("error: %s closed the plaintext connection but TLS fails: %v\n", addr, err)
		return 2
	}
	fmt.Printf("refused: %s closed the plaintext route connection without a byte of NATS (read %q); over TLS it presents %s, verified\n", addr, rest, name)
	return 0
}

// routeCert starts TLS with a route port and returns the common name of
// the certificate it presents, verified against the CA for its host.
// The node then wants our certificate, which we do not have: only the
// server's side is checked here.
func routeCert(addr, ca string) (string, error) {
	pem, err := os.ReadFile(ca)
	if err != nil {
		return "", err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return "", errors.New("no certificate in " + ca)
	}
	host, _, _ := net.SplitHostPort(addr)
	d := &net.Dialer{Timeout: timeout}
	conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: roots, ServerName: host, MinVersion: tls.VersionTLS12})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
}
