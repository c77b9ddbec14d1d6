package protocol

import (
	"errors"
	"fmt"
)

// Code is the generic error code a peer is told. It says as little as
// possible: the precise reason goes to the local log and metrics only.
type Code uint16

// The codes, stable on the wire.
const (
	CodeProtocol Code = 1 // malformed, unexpected or unauthentic input
	CodeVersion  Code = 2 // unsupported version or suite
	CodeBusy     Code = 3 // overloaded; retry later with backoff
	CodeDenied   Code = 4 // authenticated, but not admitted
	CodeTimeout  Code = 5 // a deadline passed
	CodeSlow     Code = 6 // the peer did not read fast enough
	CodeShutdown Code = 7 // the sender is going away
)

var codeNames = map[Code]string{
	CodeProtocol: "protocol", CodeVersion: "version", CodeBusy: "busy",
	CodeDenied: "denied", CodeTimeout: "timeout", CodeSlow: "slow",
	CodeShutdown: "shutdown",
}

func (c Code) String() string {
	if n, ok := codeNames[c]; ok {
		return n
	}
	return fmt.Sprintf("code(%d)", uint16(c))
}

// Error is a precise local failure. Name is the stable reason used in logs,
// metrics and test vectors; Code is what the peer may be told.
type Error struct {
	Name string
	Code Code
	msg  string
}

func (e *Error) Error() string { return "protocol: " + e.msg }

var registry = map[string]*Error{}

func newError(name string, code Code, msg string) *Error {
	e := &Error{Name: name, Code: code, msg: msg}
	if registry[name] != nil {
		panic("protocol: duplicate error name " + name)
	}
	registry[name] = e
	return e
}

// ErrorByName returns the error with the given stable name, or nil.
func ErrorByName(name string) *Error { return registry[name] }

// Handshake errors.
var (
	ErrUnsupportedVersion = newError("unsupported_version", CodeVersion, "unsupported protocol version")
	ErrUnsupportedSuite   = newError("unsupported_suite", CodeVersion, "unsupported suite")
	ErrUnexpectedMessage  = newError("unexpected_message", CodeProtocol, "unexpected handshake message type")
	ErrMessageLength      = newError("message_length", CodeProtocol, "handshake message has the wrong length")
	ErrOutOfOrder         = newError("out_of_order", CodeProtocol, "handshake step out of order")
	ErrNonCanonicalPoint  = newError("noncanonical_point", CodeProtocol, "malformed X25519 public value")
	ErrLowOrderPoint      = newError("low_order_point", CodeProtocol, "X25519 result is all zero")
	ErrWrongServerKey     = newError("wrong_server_key", CodeProtocol, "server identity is not the expected key")
	ErrBadServerSignature = newError("bad_server_signature", CodeProtocol, "server signature does not verify")
	ErrBadClientSignature = newError("bad_client_signature", CodeProtocol, "client signature does not verify")
	ErrNoKeyConfirmation  = newError("no_key_confirmation", CodeProtocol, "server's first frame is not Ready")
	ErrHandshakeTimeout   = newError("handshake_timeout", CodeTimeout, "handshake deadline passed")
	ErrM1Timeout          = newError("m1_timeout", CodeTimeout, "M1 did not arrive whole before the server's M1 deadline")
	ErrTruncatedMessage   = newError("truncated_message", CodeProtocol, "stream ended inside a handshake message")
	ErrClosedInHandshake  = newError("closed_in_handshake", CodeProtocol, "peer closed the connection before the handshake completed")
	ErrDenied             = newError("denied", CodeDenied, "client not admitted")
)

// Handshake admission: why a server turned a connection away before or
// during its handshake. The client is told CodeBusy.
var (
	ErrBusy       = newError("busy", CodeBusy, "too many handshakes in progress")
	ErrBusySource = newError("busy_source", CodeBusy, "the source address holds its share of the handshakes in progress")
	ErrEvicted    = newError("evicted", CodeBusy, "handshake evicted to make room for a source with fewer in progress")
)

// Connection errors a server reports when it drops a client.
var (
	ErrSlowClient  = newError("slow_client", CodeSlow, "client did not read fast enough")
	ErrIdle        = newError("idle", CodeTimeout, "connection idle for too long")
	ErrShutdown    = newError("shutdown", CodeShutdown, "server shutting down")
	ErrUnavailable = newError("unavailable", CodeBusy, "server cannot serve the connection now; reconnect later")
	// ErrAckBeyondDelivered: a DeliverAck for a cursor past every delivery
	// of the channel (PROTOCOL.md §5.6).
	ErrAckBeyondDelivered = newError("ack_beyond_delivered", CodeProtocol, "DeliverAck past the deliveries")
)

// Channel (frame) errors.
var (
	ErrFrameTooLarge    = newError("frame_too_large", CodeProtocol, "frame length over the limit")
	ErrFrameTooShort    = newError("frame_too_short", CodeProtocol, "frame length under the minimum")
	ErrTruncatedFrame   = newError("truncated_frame", CodeProtocol, "frame truncated")
	ErrBadMAC           = newError("bad_mac", CodeProtocol, "frame MAC does not verify")
	ErrReflectedFrame   = newError("reflected_frame", CodeProtocol, "frame was sent by this side (reflected)")
	ErrReplayedFrame    = newError("replayed_frame", CodeProtocol, "frame counter below the expected one (replay)")
	ErrSkippedFrame     = newError("skipped_frame", CodeProtocol, "frame counter above the expected one (frame lost or dropped)")
	ErrUnknownFrameType = newError("unknown_frame_type", CodeProtocol, "unknown frame type")
	ErrFrameBody        = newError("frame_body", CodeProtocol, "frame body malformed for its type")
	ErrChannelClosed    = newError("channel_closed", CodeProtocol, "channel is closed")
	ErrCounterExhausted = newError("counter_exhausted", CodeProtocol, "counter space exhausted")
	ErrBodyTooLarge     = newError("body_too_large", CodeProtocol, "frame body over the limit")
	ErrUnexpectedFrame  = newError("unexpected_frame", CodeProtocol, "frame type not allowed in this direction")
)

// Group message (envelope) errors.
var (
	ErrEnvelopeLength  = newError("envelope_length", CodeProtocol, "envelope has the wrong length")
	ErrEnvelopeVersion = newError("envelope_version", CodeProtocol, "unknown envelope version")
	ErrDecrypt         = newError("decrypt", CodeProtocol, "envelope does not decrypt (wrong key or altered)")
	ErrPayloadTooLarge = newError("payload_too_large", CodeProtocol, "payload over the limit")
	ErrZeroCounter     = newError("zero_counter", CodeProtocol, "message counter is zero")
	ErrBadEpoch        = newError("bad_epoch", CodeProtocol, "epoch 0 or 2^32-1 (epochs run from 1 to 2^32-2)")
	// ErrBadEnvelopeSignature: the envelope's signature does not verify
	// under the ClientID it names as sender (PROTOCOL.md §6.4).
	ErrBadEnvelopeSignature = newError("bad_envelope_signature", CodeProtocol, "envelope not signed by its sender")
	// ErrWrongSigner: sealing with a signing key that is not the header's
	// sender (local).
	ErrWrongSigner = newError("wrong_signer", CodeProtocol, "signing key is not the envelope's sender")
)

// Key bundle errors.
var (
	ErrBundleLength       = newError("bundle_length", CodeProtocol, "key bundle has the wrong length")
	ErrBundleVersion      = newError("bundle_version", CodeProtocol, "unknown key bundle version")
	ErrBadBundleSignature = newError("bad_bundle_signature", CodeProtocol, "key bundle signature does not verify")
	ErrWrongMember        = newError("wrong_member", CodeProtocol, "key bundle is for another member")
	ErrUnwrap             = newError("unwrap", CodeProtocol, "wrapped group key does not open")
	ErrStaleEpoch         = newError("stale_epoch", CodeProtocol, "key bundle for an epoch already dropped")
	ErrEpochConflict      = newError("epoch_conflict", CodeProtocol, "a different key is installed for this epoch")
)

// Client state errors.
var (
	ErrReplayedMessage = newError("replayed_message", CodeProtocol, "message counter not above the last one seen (replay)")
	// ErrCounterJump: a message counter more than MaxCounterJump above the
	// last one accepted from its sender in its group (PROTOCOL.md §8.1, §8.2).
	ErrCounterJump  = newError("counter_jump", CodeProtocol, "message counter too far above the last one accepted")
	ErrUnknownEpoch = newError("unknown_epoch", CodeProtocol, "no key for this epoch")
	// ErrRetiredEpoch: a message of an epoch the client retired for its
	// sender or its group (PROTOCOL.md §8.3).
	ErrRetiredEpoch = newError("retired_epoch", CodeProtocol, "message of a retired epoch")
	ErrUnknownGroup = newError("unknown_group", CodeProtocol, "no key for this group")
	ErrStateCorrupt = newError("state_corrupt", CodeProtocol, "stored client state is corrupt")
)

// Key file errors.
var (
	ErrKeyFileForeign   = newError("keyfile_foreign", CodeProtocol, "not a Communicator key file")
	ErrKeyFileVersion   = newError("keyfile_version", CodeProtocol, "unknown key file version")
	ErrKeyFileKind      = newError("keyfile_kind", CodeProtocol, "key file holds another kind of key")
	ErrKeyFileTruncated = newError("keyfile_truncated", CodeProtocol, "key file truncated or of the wrong length")
	ErrKeyFileChecksum  = newError("keyfile_checksum", CodeProtocol, "key file checksum mismatch (corrupt)")
	ErrKeyFileMode      = newError("keyfile_mode", CodeProtocol, "private key file is readable by others")
)

// PeerError is the generic code the peer sent us in an Error frame or a
// handshake error message.
type PeerError struct{ Code Code }

func (e *PeerError) Error() string { return "protocol: peer reported error: " + e.Code.String() }

// CodeOf returns the generic code to tell the peer about err.
func CodeOf(err error) Code {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Code
	}
	return CodeProtocol
}

// Reason returns the stable name of err for logs and metrics, "peer_<code>"
// for a PeerError, or "other".
func Reason(err error) string {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Name
	}
	var peer *PeerError
	if errors.As(err, &peer) {
		return "peer_" + peer.Code.String()
	}
	return "other"
}
