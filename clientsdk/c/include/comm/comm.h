/*
 * comm.h - the Communicator client library for devices (C99).
 *
 * Layers, bottom up, each usable alone (the test vectors drive them so):
 *   hkdf/hpke        HKDF-SHA256 and HPKE base-mode open, on the backend
 *   handshake        M1..M4 and frame 0 (4), client side; server side for tests
 *   frame            seal and open channel frames (5)
 *   envelope         seal, parse and open group messages (6)
 *   bundle           parse, verify and unwrap key bundles (7)
 *   window           the replay window and its two stored forms (8.6)
 *   keyfile          key files (10)
 *   state            keys, floors, send counters, windows; its stored blob
 *   client           a connection: handshake, frames, bundles, Groups,
 *                    Deliver/DeliverAck, Send/SendAck, over I/O callbacks
 *
 * The core allocates nothing, has no global state and reads no clock.
 * Every buffer is the caller's; every size is a compile-time constant
 * (comm_proto.h, comm_config.h). Functions return COMM_OK or a negative
 * comm_err (comm_err.h) and leave their outputs unset (wiped) on failure.
 * Objects are not thread-safe: use one from one thread at a time.
 */
#ifndef COMM_H
#define COMM_H

#include <stddef.h>
#include <stdint.h>

#include "comm_backend.h"
#include "comm_config.h"
#include "comm_err.h"
#include "comm_proto.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- helpers ---- */

/* comm_wipe overwrites n bytes with zeros in a way the compiler keeps. */
void comm_wipe(void *p, size_t n);
/* comm_ct_equal compares in constant time: 1 if equal. */
int comm_ct_equal(const uint8_t *a, const uint8_t *b, size_t n);

/* ---- HKDF-SHA256 (RFC 5869) and HPKE (RFC 9180) ---- */

int comm_hkdf_extract(const comm_backend *be, uint8_t prk[32], const uint8_t *salt, size_t saltlen,
                      const comm_part *ikm, size_t nikm);
/* out = HKDF-Expand(prk, info parts, len), len <= 255 * 32. */
int comm_hkdf_expand(const comm_backend *be, uint8_t *out, size_t len, const uint8_t prk[32],
                     const comm_part *info, size_t ninfo);
/* HPKE OpenBase, mode_base, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
 * ChaCha20Poly1305, sequence 0, empty aad. pt gets ctlen - 16 bytes. */
int comm_hpke_open_base(const comm_backend *be, uint8_t *pt, const uint8_t enc[32], const uint8_t skr[32],
                        const uint8_t *info, size_t infolen, const uint8_t *ct, size_t ctlen);
/* HPKE SealBase with the ephemeral private key eph (random in real use). */
int comm_hpke_seal_base(const comm_backend *be, uint8_t enc[32], uint8_t *ct, const uint8_t pkr[32],
                        const uint8_t eph[32], const uint8_t *info, size_t infolen, const uint8_t *pt,
                        size_t ptlen);

/* ---- identities ---- */

typedef struct comm_identity {
	uint8_t seed[COMM_SEED_SIZE];        /* Ed25519 seed of Sk_Cn */
	uint8_t id[COMM_CLIENT_ID_SIZE];     /* Pk_Cn, the ClientID */
	uint8_t wrap_sk[32];                 /* X25519 key-wrap private key */
} comm_identity;

/* comm_identity_init fills id from the seed and derives the ClientID. */
int comm_identity_init(const comm_backend *be, comm_identity *id, const uint8_t seed[32],
                       const uint8_t wrap_sk[32]);

/* comm_ed25519_verify is the strict Ed25519 verification of PROTOCOL.md
 * 2.2, through which every signature the library checks goes: it refuses
 * a public key that is not canonical or of small order, an R of small
 * order and S >= L, then asks the backend for the equation. 0 if sig is
 * valid (what libsodium's crypto_sign_verify_detached accepts). */
int comm_ed25519_verify(const comm_backend *be, const uint8_t sig[64], const uint8_t pk[32],
                        const comm_part *parts, size_t nparts);
/* 1 if the 32 bytes encode a point of small order (the x sign bit ignored). */
int comm_ed25519_small_order(const uint8_t p[32]);
/* 1 if the encoded y (sign bit masked) is below 2^255 - 19. */
int comm_ed25519_canonical(const uint8_t p[32]);

/* ---- handshake (4) ---- */

enum comm_hs_state {
	COMM_HS_START = 0,
	COMM_HS_SENT_M1,
	COMM_HS_READ_M1 = COMM_HS_SENT_M1,
	COMM_HS_READ_M2,
	COMM_HS_SENT_M2 = COMM_HS_READ_M2,
	COMM_HS_READ_M3,
	COMM_HS_SENT_M3 = COMM_HS_READ_M3,
	COMM_HS_SENT_M4,
	COMM_HS_READ_M4 = COMM_HS_SENT_M4,
	COMM_HS_ESTABLISHED,
	COMM_HS_FAILED
};

/* The directional channel keys a handshake yields. */
typedef struct comm_keys {
	uint8_t c2s[32];
	uint8_t s2c[32];
} comm_keys;

typedef struct comm_hs {
	const comm_backend *be;
	int state;
	int server; /* 0: client side */
	uint8_t seed[32];      /* own Ed25519 seed */
	uint8_t own_pk[32];
	uint8_t peer_pk[32];   /* client: the expected Pk_S; server: Pk_Cn of M1 */
	uint8_t eph[32];       /* own ephemeral X25519 private key, wiped once z is known */
	uint8_t z[32];
	uint8_t transcript[4 * COMM_HS_MSG_SIZE];
	comm_keys keys;
} comm_hs;

/* comm_hs_header reads a handshake header as 4.3 steps 1-5 say and gives
 * the body size to read next. */
int comm_hs_header(const uint8_t hdr[4], size_t *body);

/* Client side. eph is the ephemeral private key (32 random bytes). */
int comm_hs_client_init(comm_hs *hs, const comm_backend *be, const uint8_t seed[32],
                        const uint8_t server_pk[32], const uint8_t eph[32]);
int comm_hs_client_m1(comm_hs *hs, uint8_t m1[COMM_HS_MSG_SIZE]);
int comm_hs_client_read_m2(comm_hs *hs, const uint8_t *msg, size_t n);
int comm_hs_client_read_m3(comm_hs *hs, const uint8_t *msg, size_t n);
int comm_hs_client_m4(comm_hs *hs, uint8_t m4[COMM_HS_MSG_SIZE]);
/* Reads frame 0 (4.7); on success the channel keys are in hs->keys. */
int comm_hs_client_read_frame0(comm_hs *hs, const uint8_t *frame, size_t n);

/* Server side (for tests and the vectors; a device never runs it). */
int comm_hs_server_init(comm_hs *hs, const comm_backend *be, const uint8_t seed[32], const uint8_t eph[32]);
int comm_hs_server_read_m1(comm_hs *hs, const uint8_t *msg, size_t n);
int comm_hs_server_m2(comm_hs *hs, uint8_t m2[COMM_HS_MSG_SIZE]);
int comm_hs_server_m3(comm_hs *hs, uint8_t m3[COMM_HS_MSG_SIZE]);
int comm_hs_server_read_m4(comm_hs *hs, const uint8_t *msg, size_t n);

/* comm_hs_wipe wipes every secret of hs. */
void comm_hs_wipe(comm_hs *hs);

/* ---- channel frames (5) ---- */

typedef struct comm_channel {
	const comm_backend *be;
	uint8_t send_key[32];
	uint8_t recv_key[32];
	uint64_t send_counter;
	uint64_t recv_expected;
	int client; /* 1: this side is the client */
	int closed;
} comm_channel;

typedef struct comm_frame {
	uint8_t type;
	uint64_t counter;
	const uint8_t *body; /* inside the frame's buffer */
	size_t len;
} comm_frame;

void comm_channel_init(comm_channel *ch, const comm_backend *be, const comm_keys *k, int client);
void comm_channel_wipe(comm_channel *ch);
/* comm_frame_length checks the 4-byte length field (5.3 step 2) and
 * gives the bytes that follow it. */
int comm_frame_length(const uint8_t len4[4], size_t *rest);
/* comm_frame_seal writes a frame of type with body (n bytes) into buf
 * (cap bytes, at least n + 45). body may already be at buf + 13. */
int comm_frame_seal(comm_channel *ch, uint8_t *buf, size_t cap, uint8_t type, const uint8_t *body,
                    size_t n, size_t *outlen);
/* comm_frame_open checks a complete frame as 5.3 says. Any failure closes
 * the channel and wipes its keys. */
int comm_frame_open(comm_channel *ch, const uint8_t *frame, size_t n, comm_frame *out);

/* ---- envelopes (6) ---- */

typedef struct comm_env_header {
	uint8_t group[COMM_GROUP_ID_SIZE];
	uint32_t epoch;
	uint8_t sender[COMM_CLIENT_ID_SIZE];
	uint64_t counter;
} comm_env_header;

/* 6.4: the fields, without cryptography. */
int comm_env_parse(const uint8_t *env, size_t n, comm_env_header *h);
/* 6.4: the fields, then the sender's signature under the
 * ClientID the envelope names. No key needed: check it before anything
 * else is done with the envelope. */
int comm_env_verify(const comm_backend *be, const uint8_t *env, size_t n, comm_env_header *h);
/* comm_env_seal writes the envelope (n + COMM_ENV_OVERHEAD bytes) into out,
 * signed by signer, which must be h->sender (wrong_signer). pt
 * may be at out + COMM_ENV_OFF_CT already. */
int comm_env_seal(const comm_backend *be, uint8_t *out, size_t cap, const comm_env_header *h,
                  const uint8_t key[32], const uint8_t nonce[24], const uint8_t *pt, size_t n,
                  const comm_identity *signer, size_t *outlen);
/* comm_env_open verifies env and opens it in place: on success *payload
 * points at env + COMM_ENV_OFF_CT and has n - COMM_ENV_OVERHEAD bytes. */
int comm_env_open(const comm_backend *be, uint8_t *env, size_t n, const uint8_t key[32],
                  comm_env_header *h, uint8_t **payload, size_t *plen);
/* comm_env_open_verified opens an envelope comm_env_verify accepted. */
int comm_env_open_verified(const comm_backend *be, uint8_t *env, size_t n, const uint8_t key[32],
                           uint8_t **payload, size_t *plen);

/* ---- key bundles (7) ---- */

typedef struct comm_bundle {
	uint8_t group[COMM_GROUP_ID_SIZE];
	uint32_t epoch;
	uint8_t member[32];
	uint8_t members[32];
	uint8_t enc[32];
	uint8_t wrapped[COMM_BUNDLE_WRAPPED_SIZE];
	uint8_t sig[64];
} comm_bundle;

int comm_bundle_parse(const uint8_t *b, size_t n, comm_bundle *out);
void comm_bundle_encode(const comm_bundle *b, uint8_t out[COMM_BUNDLE_SIZE]);
/* 7.5 steps 2-4: verify with Pk_Ks, check the member, unwrap the key. */
int comm_bundle_open(const comm_backend *be, const comm_bundle *b, const uint8_t ks_pk[32],
                     const comm_identity *id, uint8_t key[32]);
/* 7.4 over count 32-byte ids, which are sorted in place. */
int comm_member_digest(const comm_backend *be, uint8_t *ids, size_t count, uint8_t out[32]);

/* ---- replay window (8.6) ---- */

typedef struct comm_window {
	uint64_t top;
	uint64_t seen[COMM_WINDOW_SIZE / 64]; /* bit d: counter top - d */
} comm_window;

enum comm_verdict { COMM_FRESH = 0, COMM_DUPLICATE, COMM_OLD, COMM_JUMP, COMM_EXHAUSTED };

#define COMM_WINDOW_BINARY_MAX 45 /* 10 + 2 + 1 + 32 */
#define COMM_WINDOW_TEXT_MAX 86   /* 20 + 1 + 64, and a NUL */

int comm_window_check(const comm_window *w, uint64_t c);
void comm_window_accept(comm_window *w, uint64_t c);
size_t comm_window_binary(const comm_window *w, uint8_t out[COMM_WINDOW_BINARY_MAX]);
/* Parses the binary form from the start of b; *used gets its length.
 * Non-canonical forms are refused (state_corrupt). */
int comm_window_parse_binary(const uint8_t *b, size_t n, comm_window *w, size_t *used);
size_t comm_window_text(const comm_window *w, char out[COMM_WINDOW_TEXT_MAX]);
int comm_window_parse_text(const char *s, size_t n, comm_window *w);

/* ---- key files (10) ---- */

/* 10.3 steps 1-7 (want 0: any kind); *body points into f. */
int comm_keyfile_parse(const comm_backend *be, const uint8_t *f, size_t n, int want, int *kind,
                       const uint8_t **body, size_t *bodylen);
int comm_keyfile_encode(const comm_backend *be, int kind, const uint8_t *body, size_t bodylen,
                        uint8_t *out, size_t cap, size_t *outlen);

/* ---- client state ---- */

typedef struct comm_epoch_key {
	uint32_t epoch;
	uint8_t key[COMM_GROUP_KEY_SIZE];
} comm_epoch_key;

/* A sender's replay window, keyed by the first 8 bytes of its ClientID
 * (as the Go client does: a collision makes the client refuse more, never
 * accept a replay). */
typedef struct comm_sender {
	uint8_t tag[8];
	uint32_t epoch; /* the newest epoch of a message accepted from it (8.3) */
	comm_window w;
} comm_sender;

typedef struct comm_group_state {
	uint8_t used;
	uint8_t nkeys;
	uint16_t nsenders;
	uint8_t id[COMM_GROUP_ID_SIZE];
	uint32_t floor;                       /* bundles below it are stale, messages retired (8.3) */
	uint32_t newest;                      /* the newest epoch of a message accepted */
	uint32_t since;                       /* messages accepted from the first of newest on, at most 256 */
	comm_epoch_key keys[COMM_MAX_EPOCHS]; /* ascending by epoch */
	uint64_t reserved;                    /* counters below it may have been sent (8.4) */
	uint64_t next;                        /* next counter to send; not stored */
	comm_sender senders[COMM_MAX_SENDERS];
} comm_group_state;

typedef struct comm_state {
	comm_group_state groups[COMM_MAX_GROUPS];
} comm_state;

/* Persistence callbacks: the state blob is written in pieces between
 * begin and commit, and must replace the previous blob atomically at
 * commit (write a temporary file or flash slot, then switch). read gives
 * up to n bytes of the stored blob and returns how many (0 at its end),
 * or < 0 on error. A store that fails makes the operation that needed it
 * fail, and the in-memory state is left as before. */
typedef struct comm_store {
	void *ctx;
	int (*begin)(void *ctx);
	int (*write)(void *ctx, const uint8_t *p, size_t n);
	int (*commit)(void *ctx);
	int (*read)(void *ctx, uint8_t *p, size_t n);
} comm_store;

void comm_state_init(comm_state *st);
void comm_state_wipe(comm_state *st);
/* comm_state_load reads the blob with store->read; an empty blob (read
 * returns 0 at once) is an empty state. A corrupt blob is state_corrupt
 * and leaves st empty. */
int comm_state_load(comm_state *st, const comm_store *store);
int comm_state_save(const comm_state *st, const comm_store *store);
/* Decode a blob from memory (the fuzz target's entry). */
int comm_state_decode(comm_state *st, const uint8_t *blob, size_t n);

/* 8.3: install a verified key. */
int comm_state_install(comm_state *st, const comm_store *store, const uint8_t group[16], uint32_t epoch,
                       const uint8_t key[32]);
/* The key of (group, epoch): unknown_group, unknown_epoch, or
 * retired_epoch for an epoch below the floor, whose key never comes back. */
int comm_state_key(const comm_state *st, const uint8_t group[16], uint32_t epoch, const uint8_t **key);
/* The newest epoch of a group and its key. */
int comm_state_current(const comm_state *st, const uint8_t group[16], uint32_t *epoch, const uint8_t **key);
/* 8.2 step 4 with 8.3's retirement, without changes. */
int comm_state_check(const comm_state *st, const comm_env_header *h);
/* 8.2 step 5: record the counter, retire keys (8.3), persist. */
int comm_state_accept(comm_state *st, const comm_store *store, const comm_env_header *h);
/* 8.4: the next send counter of a group, persisting a new block first
 * when the reserved mark is reached. */
int comm_state_next_counter(comm_state *st, const comm_store *store, const uint8_t group[16], uint64_t *c);

/* ---- client ---- */

/* I/O of a connection. send writes all n bytes (0, or < 0 on error).
 * recv reads up to n bytes and returns how many (> 0), 0 at the end of
 * the stream, COMM_E_TIMEOUT when its deadline passed with nothing read,
 * or another negative value on error. Deadlines (the handshake's, 4.9,
 * and the idle wait) are the transport's: the core reads no clock.
 * random fills n bytes from a CSPRNG (0, or < 0 on failure). */
typedef struct comm_io {
	void *ctx;
	int (*send)(void *ctx, const uint8_t *p, size_t n);
	int (*recv)(void *ctx, uint8_t *p, size_t n);
	int (*random)(void *ctx, uint8_t *p, size_t n);
} comm_io;

/* Events of a connection, called from comm_client_poll. Any may be NULL.
 * on_message gets a payload that is only valid during the call; the
 * state was persisted before it is called (8.2). */
typedef struct comm_events {
	void *ctx;
	void (*on_message)(void *ctx, const comm_env_header *h, const uint8_t *payload, size_t n);
	void (*on_send_ack)(void *ctx, const uint8_t group[16], uint64_t counter, uint16_t status);
	void (*on_groups)(void *ctx, const uint8_t *ids, size_t count);
	/* a bundle was installed (err 0) or refused (err < 0, 7.5) */
	void (*on_bundle)(void *ctx, const uint8_t group[16], uint32_t epoch, int err);
	/* a delivered message was dropped (err: replayed_message, decrypt, ...) */
	void (*on_drop)(void *ctx, const comm_env_header *h, int err);
} comm_events;

typedef struct comm_pending {
	uint8_t group[16];
	uint64_t counter;
} comm_pending;

#define COMM_RX_BUFFER_SIZE (COMM_FRAME_OVERHEAD + COMM_RX_MAX_BODY)
#define COMM_TX_BUFFER_SIZE(max_payload) (COMM_FRAME_OVERHEAD + COMM_ENV_OVERHEAD + (max_payload))

typedef struct comm_client_config {
	const comm_backend *be;
	const comm_io *io;
	const comm_store *store;
	const comm_events *events;
	const comm_identity *identity;
	const uint8_t *server_pk;    /* Pk_S, 32 bytes */
	const uint8_t *keyserver_pk; /* Pk_Ks, 32 bytes */
	comm_state *state;           /* loaded by the caller (comm_state_load) */
	uint8_t *rx;                 /* receive buffer, rx_cap >= COMM_FRAME_OVERHEAD + COMM_BUNDLE_SIZE */
	size_t rx_cap;
	uint8_t *tx;                 /* send buffer of the last Send frame: COMM_TX_BUFFER_SIZE(payload) */
	size_t tx_cap;
} comm_client_config;

enum comm_client_phase { COMM_CLIENT_IDLE = 0, COMM_CLIENT_OPEN, COMM_CLIENT_CLOSED };

typedef struct comm_client {
	comm_client_config cfg;
	int phase;
	comm_hs hs;
	comm_channel ch;
	uint8_t ctl[64];             /* control frames: Pong, DeliverAck, Close */
	int groups_known;            /* a Groups frame arrived on this connection */
	uint16_t ngroups;            /* groups listed (at most COMM_MAX_GROUPS kept) */
	uint8_t groups[COMM_MAX_GROUPS][COMM_GROUP_ID_SIZE];
	uint64_t processed;          /* last cursor processed */
	uint64_t acked;              /* last cursor acknowledged */
	uint64_t hold;               /* first cursor held for its key (0: none) */
	size_t last_send;            /* length of the last Send frame in tx (0: none) */
	comm_pending pending[COMM_MAX_PENDING];
	uint8_t npending;
} comm_client;

/* comm_client_init checks the configuration; nothing is sent. */
int comm_client_init(comm_client *c, const comm_client_config *cfg);
/* comm_client_connect runs the handshake over cfg.io up to the server's
 * Ready (4.10). The transport must already be connected. */
int comm_client_connect(comm_client *c);
/* comm_client_poll reads one frame and handles it (bundles, Groups,
 * deliveries, SendAcks, Ping). It returns the frame's type (> 0), or
 * COMM_E_TIMEOUT if the transport's wait passed with no frame begun (not
 * fatal: the caller may ping), or another error, which ends the channel. */
int comm_client_poll(comm_client *c);
/* comm_client_send seals payload to group under its newest epoch with a
 * fresh counter (8.4) and sends it; *counter gets the counter. The answer
 * arrives as on_send_ack. The frame stays in tx for comm_client_resend. */
int comm_client_send(comm_client *c, const uint8_t group[16], const uint8_t *payload, size_t n,
                     uint64_t *counter);
/* comm_client_resend sends the last envelope again, byte for byte (after
 * SendAck status 3, 5.5), in a new frame. */
int comm_client_resend(comm_client *c);
int comm_client_ping(comm_client *c, const uint8_t opaque[8]);
/* comm_client_close sends Close (best effort) and wipes the channel. */
void comm_client_close(comm_client *c);
/* 1 if the last Groups frame lists group. */
int comm_client_is_member(const comm_client *c, const uint8_t group[16]);

#ifdef __cplusplus
}
#endif

#endif
