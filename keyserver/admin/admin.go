// Package admin is the keyserver's admin API over NATS request/reply: the
// signed requests an operator sends (ksctl), their verification by the
// keyserver, and the replies.
//
// A request is msgpack(Request) | signature(64), where the signature is
// Ed25519(operator key, protocol.LabelAdmin | subject | 0x00 | msgpack(Request)).
// The keyserver accepts it only if the operator key is listed in its
// configuration, the subject is the one the request names and its time is
// within the allowed clock skew. An unauthorized request changes nothing
// and is told why.
//
// A request's nonce is its id: the keyserver records each request it
// takes, and its outcome, by nonce. The very same signed bytes sent again
// (Client.Do retries after a timeout) are answered with the first outcome
// and change nothing more, even past the clock window; another request
// with a used nonce is refused as a replay.
package admin

import (
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/commsec/communicator/internal/msgpacksafe"
	"github.com/commsec/communicator/streams"

	"github.com/commsec/communicator/protocol"
	"github.com/commsec/communicator/protocol/keys"
)

// The operations.
const (
	OpRegister = "client.register"
	OpRevoke   = "client.revoke"
	OpCreate   = "group.create"
	OpAdd      = "group.add"
	OpRemove   = "group.remove"
	OpRekey    = "group.rekey"
	OpDelete   = "group.delete"
	OpList     = "list"
)

// Ops lists every operation.
var Ops = []string{OpRegister, OpRevoke, OpCreate, OpAdd, OpRemove, OpRekey, OpDelete, OpList}

// Subject is the request subject of op.
func Subject(op string) string { return streams.AdminSubject(op) }

// MaxRequestSize bounds a request before it is decoded (a 10,000-member
// add with hex ids is about 700 KB).
const MaxRequestSize = 1 << 20

// Request is one signed admin request.
type Request struct {
	Op       string `msgpack:"op"`
	Operator []byte `msgpack:"by"`
	Nonce    []byte `msgpack:"nonce"`
	Time     int64  `msgpack:"ts"`
	Args     Args   `msgpack:"args"`
}

// Args are the arguments of all operations; each uses some of them.
// Clients and groups are named by name or by hex id.
type Args struct {
	Client      []byte        `msgpack:"client,omitempty"` // register: the client's public key file
	Name        string        `msgpack:"name,omitempty"`
	Group       string        `msgpack:"group,omitempty"`
	Clients     []string      `msgpack:"clients,omitempty"`
	Reason      string        `msgpack:"reason,omitempty"`
	MaxMessages uint64        `msgpack:"max_messages,omitempty"`
	MaxAge      time.Duration `msgpack:"max_age,omitempty"`
}

// Reply is the answer to a successful request.
type Reply struct {
	Message string       `msgpack:"msg,omitempty"`
	Status  string       `msgpack:"status,omitempty"` // how the answer came about: "" (the request ran now), StatusRecorded, StatusInterrupted
	Group   string       `msgpack:"group,omitempty"`  // hex id
	Epoch   uint32       `msgpack:"epoch,omitempty"`
	Clients []ClientInfo `msgpack:"clients,omitempty"`
	Groups  []GroupInfo  `msgpack:"groups,omitempty"`
}

// ClientInfo describes a client in a list.
type ClientInfo struct {
	ID      string    `msgpack:"id" json:"id"`
	Name    string    `msgpack:"name" json:"name"`
	Revoked bool      `msgpack:"revoked" json:"revoked"`
	Since   time.Time `msgpack:"since" json:"registered"`
}

// GroupInfo describes a group in a list.
type GroupInfo struct {
	ID          string        `msgpack:"id" json:"id"`
	Name        string        `msgpack:"name" json:"name"`
	Epoch       uint32        `msgpack:"epoch" json:"epoch"`
	Members     []string      `msgpack:"members" json:"members"` // names, or hex ids of unnamed clients
	MaxMessages uint64        `msgpack:"max_messages" json:"max_messages,omitempty"`
	MaxAge      time.Duration `msgpack:"max_age" json:"max_age,omitempty"`
}

// The statuses of a Reply that did not come from running the request now.
const (
	// StatusRecorded: the request had run; this is its first answer,
	// from the keyserver's record.
	StatusRecorded = "recorded"
	// StatusInterrupted: the request was interrupted (the keyserver
	// stopped while it ran) after its change was committed; Message says
	// what the event log shows.
	StatusInterrupted = "interrupted"
)

// HeaderStatus is set on the keyserver's refusal of a retried request to
// the status its answer has (StatusRecorded: the refusal is the first
// attempt's); Client.Do reads it into Error.Status.
const HeaderStatus = "Comm-Admin-Status"

// Note is what an operator should be told besides the reply itself: ""
// for a request that ran now.
func (r *Reply) Note() string {
	switch r.Status {
	case StatusRecorded:
		return "the keyserver had already run this request; this is its first answer"
	case StatusInterrupted:
		return r.Message
	}
	return ""
}

// Sign builds the wire form of a request for op with a fresh nonce,
// signed by operator.
func Sign(op string, args Args, operator *keys.SigningKey, now time.Time) ([]byte, error) {
	req := Request{Op: op, Nonce: make([]byte, 16), Time: now.UnixNano(), Args: args}
	if _, err := rand.Read(req.Nonce); err != nil {
		return nil, err
	}
	return SignRequest(&req, operator)
}

// SignRequest builds the wire form of req, setting its operator to
// operator's public key. The caller chose its nonce: a nonce is the
// request's id, and another request with the same nonce is refused.
func SignRequest(req *Request, operator *keys.SigningKey) ([]byte, error) {
	pub := operator.Public()
	req.Operator = pub[:]
	data, err := msgpack.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("admin: encode: %w", err)
	}
	sig := operator.Sign(signedInput(Subject(req.Op), data))
	return append(data, sig[:]...), nil
}

func signedInput(subject string, data []byte) []byte {
	b := make([]byte, 0, len(protocol.LabelAdmin)+len(subject)+1+len(data))
	b = append(b, protocol.LabelAdmin...)
	b = append(b, subject...)
	b = append(b, 0)
	return append(b, data...)
}

// ErrUnauthorized is the class of every refusal of a request's origin.
var ErrUnauthorized = errors.New("unauthorized")

// Verifier checks requests for the keyserver. It is safe for concurrent
// use. It does not know which nonces were used: the keyserver's record of
// requests does (package keyserver).
type Verifier struct {
	operators map[[32]byte]bool
	window    time.Duration
}

// NewVerifier accepts requests signed by operators within window of the
// keyserver's clock.
func NewVerifier(operators [][32]byte, window time.Duration) *Verifier {
	v := &Verifier{operators: map[[32]byte]bool{}, window: window}
	for _, op := range operators {
		v.operators[op] = true
	}
	return v
}

// Verify checks a request received on subject at time now: Authenticate,
// then Fresh.
func (v *Verifier) Verify(subject string, wire []byte, now time.Time) (*Request, error) {
	req, err := v.Authenticate(subject, wire)
	if err != nil {
		return nil, err
	}
	return req, v.Fresh(req, now)
}

// Authenticate checks a request's form, subject, operator and signature,
// not its time: the keyserver answers a retry of a request it recorded
// whenever it comes.
func (v *Verifier) Authenticate(subject string, wire []byte) (*Request, error) {
	req, err := decode(wire)
	if err != nil {
		return nil, err
	}
	if Subject(req.Op) != subject {
		return nil, fmt.Errorf("%w: request for %q sent to %s", ErrUnauthorized, req.Op, subject)
	}
	op := [32]byte(req.Operator)
	if !v.operators[op] {
		return nil, fmt.Errorf("%w: operator key %x… is not listed in the keyserver's configuration", ErrUnauthorized, op[:4])
	}
	data := wire[:len(wire)-protocol.SignatureSize]
	sig := [protocol.SignatureSize]byte(wire[len(data):])
	if !keys.Verify(&op, signedInput(subject, data), &sig) {
		return nil, fmt.Errorf("%w: signature does not verify", ErrUnauthorized)
	}
	return req, nil
}

// Fresh refuses a request whose time is outside the clock window of now.
func (v *Verifier) Fresh(req *Request, now time.Time) error {
	at := time.Unix(0, req.Time)
	if d := now.Sub(at); d > v.window || d < -v.window {
		return fmt.Errorf("%w: request time %s is %v away from the keyserver's clock (allowed %v)", ErrUnauthorized, at.UTC().Format(time.RFC3339), d.Round(time.Second), v.window)
	}
	return nil
}

func decode(wire []byte) (*Request, error) {
	if len(wire) <= protocol.SignatureSize || len(wire) > MaxRequestSize {
		return nil, fmt.Errorf("%w: request of %d bytes", ErrUnauthorized, len(wire))
	}
	var req Request
	if err := msgpacksafe.Unmarshal(wire[:len(wire)-protocol.SignatureSize], &req); err != nil {
		return nil, fmt.Errorf("%w: malformed request: %v", ErrUnauthorized, err)
	}
	if len(req.Operator) != protocol.PublicKeySize || len(req.Nonce) != 16 {
		return nil, fmt.Errorf("%w: malformed request: operator or nonce", ErrUnauthorized)
	}
	return &req, nil
}
