package protocol

// Protocol constants: changing any of these changes the wire format and
// needs a new Version.
const (
	// Version is the protocol version carried in every handshake message and
	// covered by every signature, and the version byte of envelopes, key
	// bundles and key files. Changelog (PROTOCOL.md §1.5): 2 = first
	// released version, every group message signed by its sender.
	Version byte = 2

	// SuiteX25519Ed25519 is suite 1: X25519, Ed25519, SHA-256, HMAC-SHA256,
	// HKDF-SHA256. Room is left for P-256 (suite 2) and a hybrid
	// post-quantum X25519MLKEM768 suite (3) without changing the flow.
	SuiteX25519Ed25519 Suite = 1
)

// Suite identifies the algorithms of a handshake.
type Suite uint16

// Domain-separation labels. Each signature, KDF output and HPKE context
// starts with exactly one of these ASCII strings; none is a prefix of another.
const (
	LabelServerSig    = "communicator/2 handshake server signature"
	LabelClientSig    = "communicator/2 handshake client signature"
	LabelKeyC2S       = "communicator/2 channel key client to server"
	LabelKeyS2C       = "communicator/2 channel key server to client"
	LabelBundleSig    = "communicator/2 key bundle signature"
	LabelBundleWrap   = "communicator/2 key bundle wrap"
	LabelMemberDigest = "communicator/2 epoch member list"
	LabelEvent        = "communicator/2 keyserver event"
	LabelAdmin        = "communicator/2 admin request"
	LabelCheckpoint   = "communicator/2 event log checkpoint"
	LabelEscrowKey    = "communicator/2 keyserver escrow key"
	LabelEnvelopeSig  = "communicator/2 group message signature"
)

// Counter rules of group messages (PROTOCOL.md §8.1, §8.4).
const (
	// MaxCounterJump bounds how far one accepted counter may be above the
	// last one accepted for its (group, sender): one envelope can then
	// never spend a sender's counter space. Block reservation skips at
	// most a block per reboot (64 by default), far below it.
	MaxCounterJump uint64 = 1 << 32
	// ExhaustedCounter is never used by a sender nor accepted.
	ExhaustedCounter uint64 = 1<<64 - 1
)

// Sizes of suite 1 values, in bytes.
const (
	PublicKeySize = 32 // Ed25519 and X25519 public keys
	SignatureSize = 64 // Ed25519 signature
	HashSize      = 32 // SHA-256
	MACSize       = 32 // HMAC-SHA256 tag
	GroupKeySize  = 32 // a group's symmetric key
	GroupIDSize   = 16
)

// Implementation limits: a peer must respect them, and they may grow in a
// later version without changing the layouts.
const (
	// MaxFrameBody is the largest frame body either side sends or accepts.
	MaxFrameBody = 64 * 1024
	// MaxPayload is the largest plaintext a group message may carry, chosen
	// so that a delivery frame of the largest envelope fits MaxFrameBody.
	MaxPayload = 60 * 1024
)

// Retirement of a previous epoch's key (PROTOCOL.md §8.3), the same rule
// at clients and relays, counted in messages because a client has no
// clock.
const (
	// RetireAfter is how many messages of a group a receiver accepts from
	// its first message of the newest epoch on (that one included) before
	// it drops the keys of older epochs: the previous epoch's grace, and
	// the bound on what a removed member can still get accepted under it.
	RetireAfter = 256
)
