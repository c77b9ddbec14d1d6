/*
 * comm_event.h - the keyserver's event records and log checkpoints
 * (PROTOCOL.md 15): decode, encode, check subject, chain and signature,
 * hash, log hash, checkpoints. The audit part of the library (audit/): no
 * device needs it, and the core's footprint figures leave it out. Like the
 * core it allocates nothing: a decoded event points into its record.
 */
#ifndef COMM_EVENT_H
#define COMM_EVENT_H

#include "comm.h"

#ifdef __cplusplus
extern "C" {
#endif

#define COMM_EVENT_VERSION COMM_VERSION
#define COMM_EVENT_HEADER_SIZE 98
#define COMM_EVENT_MIN_SIZE 178     /* a group.deleted record: 98 + 16 + 64 */
#define COMM_EVENT_MAX_SIZE 1048576 /* JetStream's default maximum message size */
#define COMM_EVENT_SIG_SIZE 64
#define COMM_EVENT_AGGREGATE_MAX 72 /* "client." + 64 hex digits + NUL */
#define COMM_CHECKPOINT_SIZE 105
#define COMM_CHECKPOINT_SIGNED_SIZE 41

enum comm_event_type {
	COMM_EVENT_CLIENT_REGISTERED = 1,
	COMM_EVENT_CLIENT_REVOKED = 2,
	COMM_EVENT_GROUP_CREATED = 3,
	COMM_EVENT_MEMBERS_ADDED = 4,
	COMM_EVENT_MEMBERS_REMOVED = 5,
	COMM_EVENT_GROUP_REKEYED = 6,
	COMM_EVENT_GROUP_DELETED = 7
};

/* A decoded event (15.2, 15.3). Fields a type has no use for are zero. */
typedef struct comm_event {
	uint8_t type;
	uint64_t seq;
	uint8_t prev[32];
	int64_t time;         /* Unix nanoseconds */
	uint8_t actor[32];
	uint8_t request[16];
	uint8_t client[32];   /* types 1, 2 */
	uint8_t wrap[32];     /* type 1 */
	uint8_t group[16];    /* types 3..7 */
	uint64_t max_messages; /* type 3 */
	int64_t max_age;      /* type 3, nanoseconds */
	uint32_t epoch;       /* types 4..6 */
	uint8_t digest[32];   /* types 4..6 */
	uint32_t count;       /* types 4..6: clients holds count x 32 bytes */
	const uint8_t *clients;
	const uint8_t *name;  /* types 1, 3 */
	size_t name_len;
	const uint8_t *reason; /* types 2, 4..6 */
	size_t reason_len;
} comm_event;

/* comm_event_decode is 15.4 steps 1-5: event_malformed or event_version,
 * or the event (pointing into rec, which must outlive it). On failure e is
 * zeroed. */
int comm_event_decode(const uint8_t *rec, size_t n, comm_event *e);
/* comm_event_encode writes the body (15.2) of e: the one encoding of the
 * event, without the signature. buffer_too_small if cap is short,
 * event_malformed if e is no event (a type outside 1..7, seq 0, epoch 0
 * or 2^32-1, a rekey naming clients, a string over 65535 bytes). */
int comm_event_encode(const comm_event *e, uint8_t *out, size_t cap, size_t *outlen);
/* The stable name of a type ("client.registered", ...), or NULL. */
const char *comm_event_type_name(int type);
/* comm_event_aggregate writes "client.<hex>" or "group.<hex>" (15.3). */
void comm_event_aggregate(const comm_event *e, char out[COMM_EVENT_AGGREGATE_MAX]);
/* Step 6: subject (n bytes) is "comm.events." + the aggregate, else
 * event_wrong_subject. */
int comm_event_check_subject(const comm_event *e, const char *subject, size_t n);
/* Step 7: seq is head_seq + 1 and prev is head_hash, else event_chain_broken. */
int comm_event_follows(const comm_event *e, uint64_t head_seq, const uint8_t head_hash[32]);
/* Step 8: the last 64 bytes of rec are Pk_Ks's signature over LabelEvent |
 * body (strict, 2.2), else bad_event_signature. */
int comm_event_verify(const comm_backend *be, const uint8_t *rec, size_t n, const uint8_t ks_pk[32]);
/* comm_event_read is steps 1-8 in order; the first failure is returned. */
int comm_event_read(const comm_backend *be, const uint8_t *rec, size_t n, const char *subject,
                    size_t subject_len, uint64_t head_seq, const uint8_t head_hash[32], const uint8_t ks_pk[32],
                    comm_event *e);
/* hash(record) = SHA-256 of the whole record (15.6). */
int comm_event_hash(const comm_backend *be, const uint8_t *rec, size_t n, uint8_t out[32]);
/* log = SHA-256(log | uint64(stream_seq) | hash): the log hash after one
 * more applied record (15.6); start from 32 zero bytes. */
int comm_event_log_next(const comm_backend *be, uint8_t log[32], uint64_t stream_seq, const uint8_t hash[32]);

typedef struct comm_checkpoint {
	uint64_t seq;
	uint8_t log[32];
} comm_checkpoint;

/* comm_checkpoint_decode: checkpoint_malformed unless 105 bytes of version
 * Version; no signature check. */
int comm_checkpoint_decode(const uint8_t *cp, size_t n, comm_checkpoint *out);
/* comm_checkpoint_read decodes and verifies under Pk_Ks (15.6):
 * checkpoint_malformed or bad_checkpoint_signature. On failure out is zeroed. */
int comm_checkpoint_read(const comm_backend *be, const uint8_t *cp, size_t n, const uint8_t ks_pk[32],
                         comm_checkpoint *out);

/* comm_event_err_name is comm_err_name, which names the event_* and
 * *checkpoint* errors too (15.7). */
const char *comm_event_err_name(int e, char *buf, unsigned len);

#ifdef __cplusplus
}
#endif

#endif
