/*
 * frame.c - channel frames (PROTOCOL.md 5).
 *
 *   | length (4) | type (1) | counter (8) | body (n) | tag (32) |
 *   length = 1 + 8 + n + 32; tag = HMAC-SHA256(K_dir, length .. body)
 *
 * Frames are authenticated, not encrypted. Counters start at 0 in each
 * direction and must be exactly the next one. A receiver checks in the
 * order of 5.3 and closes the channel, wiping its keys, on any failure.
 */
#include "internal.h"

void comm_channel_init(comm_channel *ch, const comm_backend *be, const comm_keys *k, int client)
{
	memset(ch, 0, sizeof *ch);
	ch->be = be;
	ch->client = client;
	memcpy(ch->send_key, client ? k->c2s : k->s2c, 32);
	memcpy(ch->recv_key, client ? k->s2c : k->c2s, 32);
}

void comm_channel_wipe(comm_channel *ch)
{
	comm_wipe(ch->send_key, sizeof ch->send_key);
	comm_wipe(ch->recv_key, sizeof ch->recv_key);
	ch->closed = 1;
}

int comm_frame_length(const uint8_t len4[4], size_t *rest)
{
	uint32_t l = get32(len4);
	if (l < COMM_FRAME_MIN_LENGTH)
		return COMM_E_FRAME_TOO_SHORT;
	if (l > COMM_FRAME_MAX_LENGTH)
		return COMM_E_FRAME_TOO_LARGE;
	*rest = l;
	return COMM_OK;
}

static int mac(const comm_channel *ch, uint8_t out[32], const uint8_t *key, const uint8_t *p, size_t n)
{
	comm_part part[] = {PART(p, n)};
	return ch->be->hmac_sha256(ch->be->ctx, out, key, 32, part, 1) ? COMM_E_CRYPTO : COMM_OK;
}

int comm_frame_seal(comm_channel *ch, uint8_t *buf, size_t cap, uint8_t type, const uint8_t *body, size_t n,
                    size_t *outlen)
{
	int err;
	if (ch->closed)
		return COMM_E_CHANNEL_CLOSED;
	if (n > COMM_MAX_FRAME_BODY)
		return COMM_E_BODY_TOO_LARGE;
	if (cap < n + COMM_FRAME_OVERHEAD)
		return COMM_E_BUFFER;
	if (ch->send_counter == COMM_EXHAUSTED_COUNTER) {
		comm_channel_wipe(ch);
		return COMM_E_COUNTER_EXHAUSTED;
	}
	if (n > 0 && body != buf + COMM_FRAME_HEADER_SIZE)
		memmove(buf + COMM_FRAME_HEADER_SIZE, body, n);
	put32(buf, (uint32_t)(n + COMM_FRAME_MIN_LENGTH));
	buf[4] = type;
	put64(buf + 5, ch->send_counter);
	err = mac(ch, buf + COMM_FRAME_HEADER_SIZE + n, ch->send_key, buf, COMM_FRAME_HEADER_SIZE + n);
	if (err)
		return err;
	ch->send_counter++;
	*outlen = n + COMM_FRAME_OVERHEAD;
	return COMM_OK;
}

/* body_size_ok is 5.3 step 8. */
static int body_size_ok(uint8_t type, size_t n)
{
	switch (type) {
	case COMM_FRAME_READY:
	case COMM_FRAME_CLOSE:
		return n == 0;
	case COMM_FRAME_ERROR:
		return n == 2;
	case COMM_FRAME_PING:
	case COMM_FRAME_PONG:
	case COMM_FRAME_DELIVER_ACK:
		return n == 8;
	case COMM_FRAME_SEND_ACK:
		return n == COMM_SEND_ACK_SIZE;
	case COMM_FRAME_DELIVER:
		return n >= 8;
	case COMM_FRAME_GROUPS:
		return n % COMM_GROUP_ID_SIZE == 0;
	}
	return 1;
}

/* direction: 1 both, 2 server to client only, 3 client to server only, 0 unknown. */
static int direction(uint8_t type)
{
	switch (type) {
	case COMM_FRAME_ERROR:
	case COMM_FRAME_PING:
	case COMM_FRAME_PONG:
	case COMM_FRAME_CLOSE:
		return 1;
	case COMM_FRAME_READY:
	case COMM_FRAME_KEY_BUNDLE:
	case COMM_FRAME_SEND_ACK:
	case COMM_FRAME_DELIVER:
	case COMM_FRAME_GROUPS:
		return 2;
	case COMM_FRAME_SEND:
	case COMM_FRAME_DELIVER_ACK:
		return 3;
	}
	return 0;
}

static int check(comm_channel *ch, const uint8_t *frame, size_t n, comm_frame *out)
{
	uint8_t tag[32];
	size_t rest, body;
	uint64_t ctr;
	int err, dir;
	if (n < 4)
		return COMM_E_TRUNCATED_FRAME;
	err = comm_frame_length(frame, &rest);
	if (err)
		return err;
	if (n != 4 + rest)
		return COMM_E_TRUNCATED_FRAME;
	body = rest - COMM_FRAME_MIN_LENGTH;
	err = mac(ch, tag, ch->recv_key, frame, n - 32);
	if (err)
		return err;
	if (!comm_ct_equal(tag, frame + n - 32, 32)) {
		err = mac(ch, tag, ch->send_key, frame, n - 32);
		if (!err)
			err = comm_ct_equal(tag, frame + n - 32, 32) ? COMM_E_REFLECTED_FRAME : COMM_E_BAD_MAC;
		comm_wipe(tag, sizeof tag);
		return err;
	}
	ctr = get64(frame + 5);
	if (ctr == COMM_EXHAUSTED_COUNTER)
		return COMM_E_COUNTER_EXHAUSTED;
	if (ctr < ch->recv_expected)
		return COMM_E_REPLAYED_FRAME;
	if (ctr > ch->recv_expected)
		return COMM_E_SKIPPED_FRAME;
	dir = direction(frame[4]);
	if (dir == 0)
		return COMM_E_UNKNOWN_FRAME_TYPE;
	if ((dir == 2 && !ch->client) || (dir == 3 && ch->client) || (frame[4] == COMM_FRAME_READY && ctr != 0))
		return COMM_E_UNEXPECTED_FRAME;
	if (!body_size_ok(frame[4], body))
		return COMM_E_FRAME_BODY;
	out->type = frame[4];
	out->counter = ctr;
	out->body = frame + COMM_FRAME_HEADER_SIZE;
	out->len = body;
	return COMM_OK;
}

int comm_frame_open(comm_channel *ch, const uint8_t *frame, size_t n, comm_frame *out)
{
	int err;
	memset(out, 0, sizeof *out);
	if (ch->closed)
		return COMM_E_CHANNEL_CLOSED;
	err = check(ch, frame, n, out);
	if (err) {
		memset(out, 0, sizeof *out);
		comm_channel_wipe(ch);
		return err;
	}
	ch->recv_expected++;
	return COMM_OK;
}
