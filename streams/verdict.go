package streams

// Verdict is a relay's answer to an inbound envelope, sent back to the
// gateway in the Comm-Status header.
type Verdict string

// The verdicts.
const (
	VerdictAccepted  Verdict = "accepted"  // stored for delivery
	VerdictDuplicate Verdict = "duplicate" // this very envelope was accepted before; not stored again
	VerdictRefused   Verdict = "refused"   // not relayed; the Reason says why
	VerdictRetry     Verdict = "retry"     // not decided (storage unavailable); send the same envelope again later
)

// ParseVerdict reads a Comm-Status header; anything unknown is a retry
// (the sender keeps its envelope and asks again).
func ParseVerdict(s string) Verdict {
	switch v := Verdict(s); v {
	case VerdictAccepted, VerdictDuplicate, VerdictRefused:
		return v
	}
	return VerdictRetry
}

// Reason says why a message was refused or must be retried: for logs and
// metrics, never for the sender beyond its verdict.
type Reason string

// The relay's reasons.
const (
	ReasonMalformedEnvelope     Reason = "malformed_envelope"      // the clear header does not parse
	ReasonNoAuthenticatedSender Reason = "no_authenticated_sender" // no Comm-Sender from the gateway
	ReasonSenderMismatch        Reason = "sender_mismatch"         // the envelope names another sender than the authenticated one
	ReasonBadSignature          Reason = "bad_signature"           // the envelope is not signed by the sender it names
	ReasonUnknownSender         Reason = "unknown_sender"
	ReasonSenderRevoked         Reason = "sender_revoked"
	ReasonUnknownGroup          Reason = "unknown_group"
	ReasonGroupDeleted          Reason = "group_deleted"
	ReasonNotMember             Reason = "not_member"
	ReasonFutureEpoch           Reason = "future_epoch"      // an epoch the relay's view of the log has not reached
	ReasonOldEpoch              Reason = "old_epoch"         // an epoch before the current one, past the grace, or before the sender's last
	ReasonEpochPending          Reason = "epoch_pending"     // the relay is applying the epoch change that decides the grace (retry)
	ReasonReplayedCounter       Reason = "replayed_counter"  // a counter not above the last accepted
	ReasonCounterJump           Reason = "counter_jump"      // a counter more than protocol.MaxCounterJump above the last accepted
	ReasonCounterExhausted      Reason = "counter_exhausted" // counter 2^64-1, which no sender may use
	ReasonCounterContended      Reason = "counter_contended" // other relays kept storing first (retry)
	ReasonLeaseLapsed           Reason = "lease_lapsed"      // the relay's lease of the partition may have expired (retry)
	ReasonStoreUnavailable      Reason = "store_unavailable"
	ReasonRecordForged          Reason = "record_forged" // the (group, sender)'s last stored messages are forged past what a relay reads back
	ReasonRelayBusy             Reason = "relay_busy"    // the worker's queue or the wait for epochs is full, or the relay is closing
)

// The gateway's reasons for a retry the relay did not decide.
const (
	ReasonPublishFailed Reason = "publish_failed" // the request could not be sent
	ReasonNoRelay       Reason = "no_relay"       // no relay owns the partition
	ReasonTimeout       Reason = "timeout"        // no verdict within the send timeout
)
