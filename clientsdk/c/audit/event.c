/*
 * event.c - the keyserver's event records and log checkpoints, from
 * PROTOCOL.md 15 alone: the reader of 15.4 as a sequence of bounds-checked
 * reads, the writer of the one encoding, hashes, the log hash and
 * checkpoints. Allocates nothing; a decoded event points into its record.
 */
#include <string.h>

#include "comm/comm_event.h"

static uint32_t rd32(const uint8_t *b)
{
	return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
}
static uint64_t rd64(const uint8_t *b) { return ((uint64_t)rd32(b) << 32) | rd32(b + 4); }
static void wr16(uint8_t *b, uint16_t v)
{
	b[0] = (uint8_t)(v >> 8);
	b[1] = (uint8_t)v;
}
static void wr32(uint8_t *b, uint32_t v)
{
	b[0] = (uint8_t)(v >> 24);
	b[1] = (uint8_t)(v >> 16);
	b[2] = (uint8_t)(v >> 8);
	b[3] = (uint8_t)v;
}
static void wr64(uint8_t *b, uint64_t v)
{
	wr32(b, (uint32_t)(v >> 32));
	wr32(b + 4, (uint32_t)v);
}

/* ---- reading (15.4 steps 1-5) ---- */

/* A reader over the body's payload: every take is checked against the
 * bytes left before the signature. */
struct reader {
	const uint8_t *p;
	size_t left;
};

static const uint8_t *take(struct reader *r, size_t k)
{
	const uint8_t *q = r->p;
	if (k > r->left)
		return NULL;
	r->p += k;
	r->left -= k;
	return q;
}

/* string: uint16(n) | n bytes. */
static int string(struct reader *r, const uint8_t **s, size_t *n)
{
	const uint8_t *l = take(r, 2);
	if (l == NULL)
		return COMM_E_EVENT_MALFORMED;
	*n = (size_t)((l[0] << 8) | l[1]);
	*s = take(r, *n);
	return *s == NULL ? COMM_E_EVENT_MALFORMED : COMM_OK;
}

static int fixed(struct reader *r, uint8_t *out, size_t k)
{
	const uint8_t *q = take(r, k);
	if (q == NULL)
		return COMM_E_EVENT_MALFORMED;
	memcpy(out, q, k);
	return COMM_OK;
}

static int epoch_payload(struct reader *r, comm_event *e)
{
	const uint8_t *q;
	if (fixed(r, e->group, 16) || (q = take(r, 4)) == NULL)
		return COMM_E_EVENT_MALFORMED;
	e->epoch = rd32(q);
	if (e->epoch == 0 || e->epoch == 0xffffffffu)
		return COMM_E_EVENT_MALFORMED;
	if (fixed(r, e->digest, 32) || (q = take(r, 4)) == NULL)
		return COMM_E_EVENT_MALFORMED;
	e->count = rd32(q);
	/* the list's size against the bytes left before anything is made of it */
	if ((uint64_t)e->count * 32u > r->left)
		return COMM_E_EVENT_MALFORMED;
	if (e->type == COMM_EVENT_GROUP_REKEYED && e->count != 0)
		return COMM_E_EVENT_MALFORMED;
	e->clients = take(r, (size_t)e->count * 32u);
	return string(r, &e->reason, &e->reason_len);
}

static int payload(struct reader *r, comm_event *e)
{
	const uint8_t *q;
	switch (e->type) {
	case COMM_EVENT_CLIENT_REGISTERED:
		if (fixed(r, e->client, 32) || fixed(r, e->wrap, 32))
			return COMM_E_EVENT_MALFORMED;
		return string(r, &e->name, &e->name_len);
	case COMM_EVENT_CLIENT_REVOKED:
		if (fixed(r, e->client, 32))
			return COMM_E_EVENT_MALFORMED;
		return string(r, &e->reason, &e->reason_len);
	case COMM_EVENT_GROUP_CREATED:
		if (fixed(r, e->group, 16) || (q = take(r, 16)) == NULL)
			return COMM_E_EVENT_MALFORMED;
		e->max_messages = rd64(q);
		e->max_age = (int64_t)rd64(q + 8);
		return string(r, &e->name, &e->name_len);
	case COMM_EVENT_MEMBERS_ADDED:
	case COMM_EVENT_MEMBERS_REMOVED:
	case COMM_EVENT_GROUP_REKEYED:
		return epoch_payload(r, e);
	case COMM_EVENT_GROUP_DELETED:
		return fixed(r, e->group, 16);
	}
	return COMM_E_EVENT_MALFORMED;
}

int comm_event_decode(const uint8_t *rec, size_t n, comm_event *e)
{
	struct reader r;
	int err;
	memset(e, 0, sizeof *e);
	if (n < COMM_EVENT_MIN_SIZE || n > COMM_EVENT_MAX_SIZE)
		return COMM_E_EVENT_MALFORMED; /* 1 */
	if (rec[0] != COMM_EVENT_VERSION)
		return COMM_E_EVENT_VERSION; /* 2 */
	e->type = rec[1];
	if (e->type < COMM_EVENT_CLIENT_REGISTERED || e->type > COMM_EVENT_GROUP_DELETED)
		err = COMM_E_EVENT_MALFORMED; /* 3 */
	else if ((e->seq = rd64(rec + 2)) == 0)
		err = COMM_E_EVENT_MALFORMED; /* 4 */
	else {
		memcpy(e->prev, rec + 10, 32);
		e->time = (int64_t)rd64(rec + 42);
		memcpy(e->actor, rec + 50, 32);
		memcpy(e->request, rec + 82, 16);
		r.p = rec + COMM_EVENT_HEADER_SIZE;
		r.left = n - COMM_EVENT_SIG_SIZE - COMM_EVENT_HEADER_SIZE;
		err = payload(&r, e); /* 5 */
		if (!err && r.left != 0)
			err = COMM_E_EVENT_MALFORMED;
	}
	if (err)
		memset(e, 0, sizeof *e);
	return err;
}

/* ---- writing ---- */

int comm_event_encode(const comm_event *e, uint8_t *out, size_t cap, size_t *outlen)
{
	size_t n = COMM_EVENT_HEADER_SIZE, at;
	*outlen = 0;
	if (e->type < COMM_EVENT_CLIENT_REGISTERED || e->type > COMM_EVENT_GROUP_DELETED || e->seq == 0 ||
	    e->name_len > 0xffff || e->reason_len > 0xffff)
		return COMM_E_EVENT_MALFORMED;
	switch (e->type) {
	case COMM_EVENT_CLIENT_REGISTERED:
		n += 64 + 2 + e->name_len;
		break;
	case COMM_EVENT_CLIENT_REVOKED:
		n += 32 + 2 + e->reason_len;
		break;
	case COMM_EVENT_GROUP_CREATED:
		n += 32 + 2 + e->name_len;
		break;
	case COMM_EVENT_GROUP_DELETED:
		n += 16;
		break;
	default:
		if (e->epoch == 0 || e->epoch == 0xffffffffu || (e->type == COMM_EVENT_GROUP_REKEYED && e->count != 0))
			return COMM_E_EVENT_MALFORMED;
		if ((uint64_t)e->count * 32u > COMM_EVENT_MAX_SIZE)
			return COMM_E_EVENT_MALFORMED;
		n += 16 + 4 + 32 + 4 + (size_t)e->count * 32u + 2 + e->reason_len;
	}
	if (n + COMM_EVENT_SIG_SIZE > COMM_EVENT_MAX_SIZE)
		return COMM_E_EVENT_MALFORMED;
	if (n > cap)
		return COMM_E_BUFFER;
	out[0] = COMM_EVENT_VERSION;
	out[1] = e->type;
	wr64(out + 2, e->seq);
	memcpy(out + 10, e->prev, 32);
	wr64(out + 42, (uint64_t)e->time);
	memcpy(out + 50, e->actor, 32);
	memcpy(out + 82, e->request, 16);
	at = COMM_EVENT_HEADER_SIZE;
	switch (e->type) {
	case COMM_EVENT_CLIENT_REGISTERED:
		memcpy(out + at, e->client, 32);
		memcpy(out + at + 32, e->wrap, 32);
		wr16(out + at + 64, (uint16_t)e->name_len);
		if (e->name_len)
			memcpy(out + at + 66, e->name, e->name_len);
		break;
	case COMM_EVENT_CLIENT_REVOKED:
		memcpy(out + at, e->client, 32);
		wr16(out + at + 32, (uint16_t)e->reason_len);
		if (e->reason_len)
			memcpy(out + at + 34, e->reason, e->reason_len);
		break;
	case COMM_EVENT_GROUP_CREATED:
		memcpy(out + at, e->group, 16);
		wr64(out + at + 16, e->max_messages);
		wr64(out + at + 24, (uint64_t)e->max_age);
		wr16(out + at + 32, (uint16_t)e->name_len);
		if (e->name_len)
			memcpy(out + at + 34, e->name, e->name_len);
		break;
	case COMM_EVENT_GROUP_DELETED:
		memcpy(out + at, e->group, 16);
		break;
	default:
		memcpy(out + at, e->group, 16);
		wr32(out + at + 16, e->epoch);
		memcpy(out + at + 20, e->digest, 32);
		wr32(out + at + 52, e->count);
		at += 56;
		if (e->count)
			memcpy(out + at, e->clients, (size_t)e->count * 32u);
		at += (size_t)e->count * 32u;
		wr16(out + at, (uint16_t)e->reason_len);
		if (e->reason_len)
			memcpy(out + at + 2, e->reason, e->reason_len);
	}
	*outlen = n;
	return COMM_OK;
}

/* ---- names, subject, chain, signature (steps 6-8) ---- */

static const char *const type_names[] = {
	NULL, "client.registered", "client.revoked", "group.created", "group.members_added",
	"group.members_removed", "group.rekeyed", "group.deleted",
};

const char *comm_event_type_name(int type)
{
	return type >= COMM_EVENT_CLIENT_REGISTERED && type <= COMM_EVENT_GROUP_DELETED ? type_names[type] : NULL;
}

void comm_event_aggregate(const comm_event *e, char out[COMM_EVENT_AGGREGATE_MAX])
{
	static const char digits[] = "0123456789abcdef";
	int client = e->type == COMM_EVENT_CLIENT_REGISTERED || e->type == COMM_EVENT_CLIENT_REVOKED;
	const uint8_t *id = client ? e->client : e->group;
	size_t idlen = client ? 32 : 16, at;
	const char *prefix = client ? "client." : "group.";
	at = strlen(prefix);
	memcpy(out, prefix, at);
	for (size_t i = 0; i < idlen; i++) {
		out[at++] = digits[id[i] >> 4];
		out[at++] = digits[id[i] & 15];
	}
	out[at] = 0;
}

int comm_event_check_subject(const comm_event *e, const char *subject, size_t n)
{
	static const char prefix[] = "comm.events.";
	const size_t pl = sizeof prefix - 1;
	char agg[COMM_EVENT_AGGREGATE_MAX];
	size_t al;
	comm_event_aggregate(e, agg);
	al = strlen(agg);
	if (n != pl + al || memcmp(subject, prefix, pl) != 0 || memcmp(subject + pl, agg, al) != 0)
		return COMM_E_EVENT_WRONG_SUBJECT;
	return COMM_OK;
}

int comm_event_follows(const comm_event *e, uint64_t head_seq, const uint8_t head_hash[32])
{
	if (head_seq == UINT64_MAX || e->seq != head_seq + 1 || memcmp(e->prev, head_hash, 32) != 0)
		return COMM_E_EVENT_CHAIN_BROKEN;
	return COMM_OK;
}

int comm_event_verify(const comm_backend *be, const uint8_t *rec, size_t n, const uint8_t ks_pk[32])
{
	comm_part p[2];
	if (n < COMM_EVENT_SIG_SIZE)
		return COMM_E_BAD_EVENT_SIGNATURE;
	p[0].p = (const uint8_t *)COMM_LABEL_EVENT;
	p[0].n = COMM_LABEL_LEN(COMM_LABEL_EVENT);
	p[1].p = rec;
	p[1].n = n - COMM_EVENT_SIG_SIZE;
	return comm_ed25519_verify(be, rec + n - COMM_EVENT_SIG_SIZE, ks_pk, p, 2) ? COMM_E_BAD_EVENT_SIGNATURE
	                                                                            : COMM_OK;
}

int comm_event_read(const comm_backend *be, const uint8_t *rec, size_t n, const char *subject,
                    size_t subject_len, uint64_t head_seq, const uint8_t head_hash[32], const uint8_t ks_pk[32],
                    comm_event *e)
{
	int err = comm_event_decode(rec, n, e);
	if (!err)
		err = comm_event_check_subject(e, subject, subject_len);
	if (!err)
		err = comm_event_follows(e, head_seq, head_hash);
	if (!err)
		err = comm_event_verify(be, rec, n, ks_pk);
	if (err)
		memset(e, 0, sizeof *e);
	return err;
}

/* ---- hashes and checkpoints (15.6) ---- */

int comm_event_hash(const comm_backend *be, const uint8_t *rec, size_t n, uint8_t out[32])
{
	comm_part p = {rec, n};
	return be->sha256(be->ctx, out, &p, 1) ? COMM_E_CRYPTO : COMM_OK;
}

int comm_event_log_next(const comm_backend *be, uint8_t log[32], uint64_t stream_seq, const uint8_t hash[32])
{
	uint8_t s[8], prev[32];
	comm_part p[3];
	wr64(s, stream_seq);
	memcpy(prev, log, 32);
	p[0].p = prev;
	p[0].n = 32;
	p[1].p = s;
	p[1].n = 8;
	p[2].p = hash;
	p[2].n = 32;
	return be->sha256(be->ctx, log, p, 3) ? COMM_E_CRYPTO : COMM_OK;
}

int comm_checkpoint_decode(const uint8_t *cp, size_t n, comm_checkpoint *out)
{
	memset(out, 0, sizeof *out);
	if (n != COMM_CHECKPOINT_SIZE || cp[0] != COMM_EVENT_VERSION)
		return COMM_E_CHECKPOINT_MALFORMED;
	out->seq = rd64(cp + 1);
	memcpy(out->log, cp + 9, 32);
	return COMM_OK;
}

int comm_checkpoint_read(const comm_backend *be, const uint8_t *cp, size_t n, const uint8_t ks_pk[32],
                         comm_checkpoint *out)
{
	comm_part p[2];
	int err = comm_checkpoint_decode(cp, n, out);
	if (err)
		return err;
	p[0].p = (const uint8_t *)COMM_LABEL_CHECKPOINT;
	p[0].n = COMM_LABEL_LEN(COMM_LABEL_CHECKPOINT);
	p[1].p = cp;
	p[1].n = COMM_CHECKPOINT_SIGNED_SIZE;
	if (comm_ed25519_verify(be, cp + COMM_CHECKPOINT_SIGNED_SIZE, ks_pk, p, 2)) {
		memset(out, 0, sizeof *out);
		return COMM_E_BAD_CHECKPOINT_SIGNATURE;
	}
	return COMM_OK;
}

/* ---- error names (15.7) ---- */

const char *comm_event_err_name(int e, char *buf, unsigned len)
{
	static const struct {
		int e;
		const char *s;
	} names[] = {
		{COMM_E_EVENT_MALFORMED, "event_malformed"},
		{COMM_E_EVENT_VERSION, "event_version"},
		{COMM_E_EVENT_WRONG_SUBJECT, "event_wrong_subject"},
		{COMM_E_EVENT_CHAIN_BROKEN, "event_chain_broken"},
		{COMM_E_BAD_EVENT_SIGNATURE, "bad_event_signature"},
		{COMM_E_CHECKPOINT_MALFORMED, "checkpoint_malformed"},
		{COMM_E_BAD_CHECKPOINT_SIGNATURE, "bad_checkpoint_signature"},
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (names[i].e == e && buf != NULL && len > 0) {
			size_t l = strlen(names[i].s);
			if (l >= len)
				l = len - 1;
			memcpy(buf, names[i].s, l);
			buf[l] = 0;
			return buf;
		}
	}
	return comm_err_name(e, buf, len);
}
