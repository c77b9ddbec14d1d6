/*
 * comm_err.h - errors. Every function returns COMM_OK (0) or a negative
 * comm_err. comm_err_name gives the stable name of PROTOCOL.md 9.2 (the
 * test vectors' expect: lines); the names after COMM_E_LOCAL are this
 * library's own and never reach a peer.
 */
#ifndef COMM_ERR_H
#define COMM_ERR_H

#include <stdint.h>

typedef enum comm_err {
	COMM_OK = 0,
	/* handshake */
	COMM_E_UNSUPPORTED_VERSION = -1,
	COMM_E_UNSUPPORTED_SUITE = -2,
	COMM_E_UNEXPECTED_MESSAGE = -3,
	COMM_E_MESSAGE_LENGTH = -4,
	COMM_E_OUT_OF_ORDER = -5,
	COMM_E_NONCANONICAL_POINT = -6,
	COMM_E_LOW_ORDER_POINT = -7,
	COMM_E_WRONG_SERVER_KEY = -8,
	COMM_E_BAD_SERVER_SIGNATURE = -9,
	COMM_E_BAD_CLIENT_SIGNATURE = -10,
	COMM_E_NO_KEY_CONFIRMATION = -11,
	COMM_E_HANDSHAKE_TIMEOUT = -12,
	COMM_E_TRUNCATED_MESSAGE = -13,
	COMM_E_CLOSED_IN_HANDSHAKE = -14,
	/* the peer's generic code: COMM_E_PEER - code (see comm_err_peer) */
	/* channel */
	COMM_E_FRAME_TOO_LARGE = -20,
	COMM_E_FRAME_TOO_SHORT = -21,
	COMM_E_TRUNCATED_FRAME = -22,
	COMM_E_BAD_MAC = -23,
	COMM_E_REFLECTED_FRAME = -24,
	COMM_E_REPLAYED_FRAME = -25,
	COMM_E_SKIPPED_FRAME = -26,
	COMM_E_UNKNOWN_FRAME_TYPE = -27,
	COMM_E_FRAME_BODY = -28,
	COMM_E_CHANNEL_CLOSED = -29,
	COMM_E_COUNTER_EXHAUSTED = -30,
	COMM_E_BODY_TOO_LARGE = -31,
	COMM_E_UNEXPECTED_FRAME = -32,
	/* envelopes */
	COMM_E_ENVELOPE_LENGTH = -40,
	COMM_E_ENVELOPE_VERSION = -41,
	COMM_E_DECRYPT = -42,
	COMM_E_PAYLOAD_TOO_LARGE = -43,
	COMM_E_ZERO_COUNTER = -44,
	COMM_E_BAD_EPOCH = -45,
	COMM_E_BAD_ENVELOPE_SIGNATURE = -46,
	COMM_E_WRONG_SIGNER = -47, /* local */
	/* key bundles */
	COMM_E_BUNDLE_LENGTH = -50,
	COMM_E_BUNDLE_VERSION = -51,
	COMM_E_BAD_BUNDLE_SIGNATURE = -52,
	COMM_E_WRONG_MEMBER = -53,
	COMM_E_UNWRAP = -54,
	COMM_E_STALE_EPOCH = -55,
	COMM_E_EPOCH_CONFLICT = -56,
	/* client state */
	COMM_E_REPLAYED_MESSAGE = -60,
	COMM_E_COUNTER_JUMP = -61,
	COMM_E_UNKNOWN_EPOCH = -62,
	COMM_E_UNKNOWN_GROUP = -63,
	COMM_E_STATE_CORRUPT = -64,
	COMM_E_RETIRED_EPOCH = -65,
	/* key files */
	COMM_E_KEYFILE_FOREIGN = -70,
	COMM_E_KEYFILE_VERSION = -71,
	COMM_E_KEYFILE_KIND = -72,
	COMM_E_KEYFILE_TRUNCATED = -73,
	COMM_E_KEYFILE_CHECKSUM = -74,
	COMM_E_KEYFILE_MODE = -75,
	/* event records and checkpoints (15.7): named by comm_event_err_name
	 * (audit/event.c), not by the core's comm_err_name */
	COMM_E_EVENT_MALFORMED = -80,
	COMM_E_EVENT_VERSION = -81,
	COMM_E_EVENT_WRONG_SUBJECT = -82,
	COMM_E_EVENT_CHAIN_BROKEN = -83,
	COMM_E_BAD_EVENT_SIGNATURE = -84,
	COMM_E_CHECKPOINT_MALFORMED = -85,
	COMM_E_BAD_CHECKPOINT_SIGNATURE = -86,
	/* this library's own (local, never sent) */
	COMM_E_LOCAL = -100,
	COMM_E_BUFFER = -101,        /* buffer_too_small: a caller's buffer cannot hold the result */
	COMM_E_CRYPTO = -102,        /* crypto_backend: the backend failed */
	COMM_E_IO = -103,            /* io: the transport failed */
	COMM_E_TIMEOUT = -104,       /* timeout: the transport's deadline passed (no byte of a frame read) */
	COMM_E_CLOSED = -105,        /* closed: the peer ended the stream between frames */
	COMM_E_STORE = -106,         /* store: persisting the state failed; nothing was used */
	COMM_E_STATE_FULL = -107,    /* state_full: no room for another group or sender */
	COMM_E_NOT_READY = -108,     /* not_ready: no Groups frame yet (8.4), or not connected */
	COMM_E_NOT_MEMBER = -109,    /* not_member: the last Groups frame does not list the group */
	COMM_E_INFLIGHT_FULL = -110, /* inflight_full: too many messages wait for an answer (8.4) */
	COMM_E_ARG = -111,           /* bad_argument */
	COMM_E_PEER = -1000          /* COMM_E_PEER - code: the peer's generic code */
} comm_err;

/* comm_err_peer is the error for a generic code received from the peer. */
static inline int comm_err_peer(uint16_t code) { return COMM_E_PEER - (int)code; }
static inline int comm_err_is_peer(int e) { return e <= COMM_E_PEER && e >= COMM_E_PEER - 65535; }
static inline uint16_t comm_err_peer_code(int e) { return (uint16_t)(COMM_E_PEER - e); }

/* comm_err_name writes the stable name of e (peer_busy, bad_mac, ...) into
 * buf (at least 24 bytes) and returns buf. */
const char *comm_err_name(int e, char *buf, unsigned len);

#endif
