package streams

import (
	"encoding/binary"
	"strconv"
	"strings"

	"github.com/commsec/communicator/protocol"
)

// Stream and bucket names. Every stream lives alone in a NATS account of
// its own, named after it (package natsauth).
const (
	Events      = "COMM_EVENTS"            // the keyserver's signed, hash-chained event log
	Checkpoints = "COMM_EVENT_CHECKPOINTS" // signed log hashes that spare a cold start most signature checks
	Bundles     = "COMM_BUNDLES"           // group keys wrapped to each member, signed by the keyserver
	// AdminRequests records every signed admin request the keyserver
	// took, by nonce, before it runs, so that no request runs twice.
	AdminRequests = "COMM_ADMIN_REQUESTS"
	Accepted      = "COMM_ACCEPTED" // a key-value bucket: its stream is AcceptedStream
	Relays        = "COMM_RELAYS"   // a key-value bucket: relay presence and partition leases
	Cursors       = "COMM_CURSORS"  // a key-value bucket: each client's delivery cursor
	// KeyserverKV holds the keyserver's bookkeeping (which epoch's bundles
	// are completely published).
	KeyserverKV = "COMM_KEYSERVER"
)

// KVStream is the stream behind a key-value bucket.
func KVStream(bucket string) string { return "KV_" + bucket }

// KVPrefix is the subject prefix of a key-value bucket's keys.
func KVPrefix(bucket string) string { return "$KV." + bucket + "." }

// The event log's subjects: one per aggregate ("client.<id>", "group.<id>").
const (
	EventPrefix       = "comm.events."
	AllEvents         = EventPrefix + ">"
	CheckpointSubject = "comm.event-checkpoints"
)

// EventSubject is the subject of an aggregate's events.
func EventSubject(aggregate string) string { return EventPrefix + aggregate }

// ParseEventSubject returns the aggregate of an event's subject.
func ParseEventSubject(subject string) (string, bool) {
	return strings.CutPrefix(subject, EventPrefix)
}

// Message headers.
const (
	HeaderEpoch = "Comm-Epoch" // on accepted messages: the envelope's epoch
	// HeaderWindow is on accepted messages: the (group, sender)'s replay
	// window after this one was accepted (replay.Window's text form), so
	// that the stored message is also the record of every counter taken.
	HeaderWindow = "Comm-Window"
	HeaderSender = "Comm-Sender" // on inbound messages: the authenticated sender (hex)
	HeaderStatus = "Comm-Status" // on relay replies: the Verdict
	HeaderReason = "Comm-Reason" // on relay replies: the Reason of a refusal or retry (for logs and metrics)
)

// Partitions is the number of relay partitions. Every gateway and relay
// must agree on it; changing it needs all of them restarted together.
const Partitions = 64

// Partition is the relay partition of a group.
func Partition(g protocol.GroupID) int {
	return int(binary.BigEndian.Uint32(g[:4]) % Partitions)
}

// Inbound request subjects: gateways send clients' envelopes to the relay
// owning the group's partition, and wait for its verdict.
const (
	InboundPrefix = "comm.in."
	AllInbound    = InboundPrefix + "*"
)

// InboundSubject is where gateways send the envelopes clients send to g.
func InboundSubject(g protocol.GroupID) string { return PartitionSubject(Partition(g)) }

// PartitionSubject is the inbound subject of relay partition p.
func PartitionSubject(p int) string { return InboundPrefix + strconv.Itoa(p) }

// The admin API's request subjects (package keyserver/admin names the
// operations): ksctl → keyserver.
const (
	AdminPrefix = "comm.admin."
	AllAdmin    = AdminPrefix + ">"
)

// AdminSubject is the request subject of an admin operation.
func AdminSubject(op string) string { return AdminPrefix + op }

// The admin request records' subjects: one per request nonce.
const (
	AdminRequestPrefix = "comm.admin-requests."
	AllAdminRequests   = AdminRequestPrefix + "*"
)

// AdminRequestSubject is the record subject of a request nonce (hex).
func AdminRequestSubject(nonceHex string) string { return AdminRequestPrefix + nonceHex }

// The key bundles' subjects: comm.bundles.<member>.<group>. The member
// comes first so that a gateway finds all of one member's bundles under
// one prefix.
const (
	BundlePrefix = "comm.bundles."
	AllBundles   = BundlePrefix + "*.*"
)

// BundleSubject is where the keyserver publishes member's bundles of g.
func BundleSubject(g protocol.GroupID, member protocol.ClientID) string {
	return BundlePrefix + member.String() + "." + g.String()
}

// MemberBundles filters every bundle of one member.
func MemberBundles(member protocol.ClientID) string { return BundlePrefix + member.String() + ".*" }

// GroupBundles filters every bundle of one group.
func GroupBundles(g protocol.GroupID) string { return BundlePrefix + "*." + g.String() }

// ParseBundle reads the member and group of a bundle's subject.
func ParseBundle(subject string) (protocol.ClientID, protocol.GroupID, bool) {
	rest, ok := strings.CutPrefix(subject, BundlePrefix)
	m, g, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 {
		return protocol.ClientID{}, protocol.GroupID{}, false
	}
	mid, err := protocol.ParseClientID(m)
	gid, err2 := protocol.ParseGroupID(g)
	return mid, gid, err == nil && err2 == nil
}

// The accepted envelopes' stream and subjects: $KV.COMM_ACCEPTED.<group>.<sender>.
const (
	AcceptedStream = "KV_" + Accepted
	AcceptedPrefix = "$KV." + Accepted + "."
	AllAccepted    = AcceptedPrefix + "*.*"
)

// AcceptedKey is the COMM_ACCEPTED key of (g, sender).
func AcceptedKey(g protocol.GroupID, sender protocol.ClientID) string {
	return g.String() + "." + sender.String()
}

// AcceptedSubject is where relays store the envelopes of sender in g.
func AcceptedSubject(g protocol.GroupID, sender protocol.ClientID) string {
	return AcceptedPrefix + AcceptedKey(g, sender)
}

// GroupAccepted filters the accepted envelopes of g.
func GroupAccepted(g protocol.GroupID) string { return AcceptedPrefix + g.String() + ".*" }

// ParseAccepted reads the group and sender of an accepted envelope's subject.
func ParseAccepted(subject string) (protocol.GroupID, protocol.ClientID, bool) {
	rest, ok := strings.CutPrefix(subject, AcceptedPrefix)
	if !ok {
		return protocol.GroupID{}, protocol.ClientID{}, false
	}
	return ParseAcceptedKey(rest)
}

// ParseAcceptedKey reads the group and sender of a COMM_ACCEPTED key.
func ParseAcceptedKey(key string) (protocol.GroupID, protocol.ClientID, bool) {
	g, s, ok := strings.Cut(key, ".")
	if !ok {
		return protocol.GroupID{}, protocol.ClientID{}, false
	}
	gid, err := protocol.ParseGroupID(g)
	sid, err2 := protocol.ParseClientID(s)
	return gid, sid, err == nil && err2 == nil
}

// ResponsePrefix starts the reply subject of every request that crossed
// from one NATS account into another: the server maps the answer back
// into the requester's account (nats-server's service import responses).
const ResponsePrefix = "_R_."

// ReplyAllowed reports whether a service may answer a request on reply:
// only a cross-account response subject, or an inbox under one of the
// callers' inbox prefixes (a deployment in one account, as in unit
// tests). Anything else (a stream's subject, a JetStream API subject)
// would have the service write there with its own rights.
func ReplyAllowed(reply string, inboxPrefixes ...string) bool {
	if strings.HasPrefix(reply, ResponsePrefix) && len(reply) > len(ResponsePrefix) {
		return true
	}
	for _, p := range inboxPrefixes {
		if strings.HasPrefix(reply, p+".") && len(reply) > len(p)+1 {
			return true
		}
	}
	return false
}
