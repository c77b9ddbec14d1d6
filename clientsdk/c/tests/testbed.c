/* testbed.c - the scripted gateway of testbed.h. */
#include "testbed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/comm_sodium.h"


static int unhex(uint8_t *out, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (uint8_t)v;
	}
	return s[2 * n] == 0 || s[2 * n] == '\n' ? 0 : -1;
}

int tb_init(struct testbed *tb, const char *dir)
{
	char path[4096], line[1024];
	FILE *f;
	int got = 0;
	memset(tb, 0, sizeof *tb);
	if (comm_sodium_backend(&tb->be) != 0)
		return -1;
	snprintf(path, sizeof path, "%s/bundle-ok.txt", dir);
	f = fopen(path, "r");
	if (f == NULL) {
		perror(path);
		return -1;
	}
	while (fgets(line, sizeof line, f)) {
		char *v = strstr(line, ": ");
		if (v == NULL || line[0] == '#')
			continue;
		*v = 0;
		v += 2;
		if (strcmp(line, "keyserver_public") == 0) got += !unhex(tb->ks_pk, 32, v);
		else if (strcmp(line, "member_seed") == 0) got += !unhex(tb->member_seed, 32, v);
		else if (strcmp(line, "member_wrap_scalar") == 0) got += !unhex(tb->wrap_sk, 32, v);
		else if (strcmp(line, "bundle") == 0) got += !unhex(tb->bundle, COMM_BUNDLE_SIZE, v);
		else if (strcmp(line, "group") == 0) got += !unhex(tb->group, 16, v);
		else if (strcmp(line, "group_key") == 0) got += !unhex(tb->group_key, 32, v);
		else if (strcmp(line, "epoch") == 0) { tb->epoch = (uint32_t)strtoul(v, NULL, 10); got++; }
	}
	fclose(f);
	if (got != 7) {
		fprintf(stderr, "%s: missing fields\n", path);
		return -1;
	}
	memset(tb->server_seed, 0x5e, 32);
	{
		uint8_t seed[32], wrap[32];
		memset(seed, 0x0b, 32);
		memset(wrap, 0x0c, 32);
		if (comm_identity_init(&tb->be, &tb->other, seed, wrap) != 0)
			return -1;
	}
	return tb->be.ed25519_public(tb->be.ctx, tb->server_pk, tb->server_seed);
}

static void queue(struct testbed *tb, const uint8_t *p, size_t n)
{
	if (tb->nout + n > sizeof tb->out) {
		fprintf(stderr, "testbed: output full\n");
		exit(3);
	}
	memcpy(tb->out + tb->nout, p, n);
	tb->nout += n;
}

int tb_frame(struct testbed *tb, uint8_t type, const uint8_t *body, size_t n)
{
	static uint8_t buf[70000];
	size_t len;
	int err = comm_frame_seal(&tb->ch, buf, sizeof buf, type, body, n, &len);
	if (!err)
		queue(tb, buf, len);
	return err;
}

int tb_deliver(struct testbed *tb, uint64_t cursor, uint64_t counter, const char *text)
{
	uint8_t body[8 + COMM_ENV_OVERHEAD + 256], nonce[24];
	comm_env_header h;
	size_t n = strlen(text), len;
	int err;
	memset(nonce, 0x4e, sizeof nonce);
	memcpy(h.group, tb->group, 16);
	h.epoch = tb->epoch;
	memcpy(h.sender, tb->other.id, 32);
	h.counter = counter;
	for (int i = 7; i >= 0; i--, cursor >>= 8)
		body[i] = (uint8_t)cursor;
	err = comm_env_seal(&tb->be, body + 8, sizeof body - 8, &h, tb->group_key, nonce, (const uint8_t *)text, n,
	                    &tb->other, &len);
	if (!err && tb->forge) {
		body[8 + len - 1] ^= 1; /* in the signature: the gateway's MAC is still good */
		tb->forge = 0;
	}
	return err ? err : tb_frame(tb, COMM_FRAME_DELIVER, body, 8 + len);
}

/* after_m4: key confirmation, then what a gateway pushes at connect. */
static int after_m4(struct testbed *tb)
{
	uint8_t code[2] = {0, 4}, ping[8] = {'p', 'i', 'n', 'g', 0, 0, 0, 1};
	comm_channel_init(&tb->ch, &tb->be, &tb->hs.keys, 0);
	if (tb->deny)
		return tb_frame(tb, COMM_FRAME_ERROR, code, 2);
	tb->established = 1;
	if (tb_frame(tb, COMM_FRAME_READY, NULL, 0) || tb_frame(tb, COMM_FRAME_KEY_BUNDLE, tb->bundle, COMM_BUNDLE_SIZE) ||
	    tb_frame(tb, COMM_FRAME_GROUPS, tb->group, 16) || tb_deliver(tb, 10, 5, "from the gateway") ||
	    tb_deliver(tb, 11, 5, "from the gateway"))
		return -1;
	return tb->ping_after_ready ? tb_frame(tb, COMM_FRAME_PING, ping, 8) : 0;
}

/* on_frame handles one complete frame from the client. */
static int on_frame(struct testbed *tb, const uint8_t *p, size_t n)
{
	comm_frame f;
	comm_env_header h;
	uint8_t *payload, ack[COMM_SEND_ACK_SIZE], env[COMM_ENV_OVERHEAD + 256];
	size_t plen;
	int err = comm_frame_open(&tb->ch, p, n, &f);
	if (err)
		return err;
	switch (f.type) {
	case COMM_FRAME_DELIVER_ACK:
		tb->last_ack = ((uint64_t)f.body[0] << 56) | ((uint64_t)f.body[1] << 48) | ((uint64_t)f.body[2] << 40) |
		               ((uint64_t)f.body[3] << 32) | ((uint64_t)f.body[4] << 24) | ((uint64_t)f.body[5] << 16) |
		               ((uint64_t)f.body[6] << 8) | f.body[7];
		break;
	case COMM_FRAME_PONG:
		tb->pongs++;
		break;
	case COMM_FRAME_SEND:
		if (f.len > sizeof env)
			return -1;
		memcpy(env, f.body, f.len);
		err = comm_env_open(&tb->be, env, f.len, tb->group_key, &h, &payload, &plen);
		if (err)
			return err;
		tb->sends++;
		memcpy(tb->last_payload, payload, plen);
		tb->last_payload_len = plen;
		memcpy(ack, h.group, 16);
		for (int i = 0; i < 8; i++)
			ack[16 + i] = (uint8_t)(h.counter >> (56 - 8 * i));
		ack[24] = 0;
		ack[25] = COMM_ACK_ACCEPTED;
		return tb_frame(tb, COMM_FRAME_SEND_ACK, ack, sizeof ack);
	}
	return 0;
}

/* consume handles whole messages at the start of the input. */
static int consume(struct testbed *tb)
{
	uint8_t m[68];
	for (;;) {
		size_t need;
		int err;
		if (tb->hs.state == COMM_HS_START || tb->hs.state == COMM_HS_SENT_M3)
			need = COMM_HS_MSG_SIZE;
		else if (tb->nin >= 4)
			need = 4 + (((size_t)tb->in[0] << 24) | ((size_t)tb->in[1] << 16) | ((size_t)tb->in[2] << 8) | tb->in[3]);
		else
			return 0;
		if (tb->nin < need)
			return 0;
		if (tb->hs.state == COMM_HS_START) {
			uint8_t eph[32];
			memset(eph, 0x77, sizeof eph);
			err = comm_hs_server_init(&tb->hs, &tb->be, tb->server_seed, eph);
			if (!err)
				err = comm_hs_server_read_m1(&tb->hs, tb->in, need);
			if (!err)
				err = comm_hs_server_m2(&tb->hs, m);
			if (!err) {
				queue(tb, m, 68);
				err = comm_hs_server_m3(&tb->hs, m);
			}
			if (!err)
				queue(tb, m, 68);
		} else if (tb->hs.state == COMM_HS_SENT_M3) {
			err = comm_hs_server_read_m4(&tb->hs, tb->in, need);
			if (!err)
				err = after_m4(tb);
		} else {
			err = on_frame(tb, tb->in, need);
		}
		if (err)
			return err;
		memmove(tb->in, tb->in + need, tb->nin - need);
		tb->nin -= need;
	}
}

static int tb_send(void *ctx, const uint8_t *p, size_t n)
{
	struct testbed *tb = ctx;
	if (tb->replay)
		return 0;
	if (tb->nin + n > sizeof tb->in)
		return -1;
	memcpy(tb->in + tb->nin, p, n);
	tb->nin += n;
	return consume(tb) ? -1 : 0;
}

static int tb_recv(void *ctx, uint8_t *p, size_t n)
{
	struct testbed *tb = ctx;
	size_t k = tb->nout - tb->rd;
	if (k == 0)
		return COMM_E_TIMEOUT;
	if (k > n)
		k = n;
	memcpy(p, tb->out + tb->rd, k);
	tb->rd += k;
	return (int)k;
}

/* tb_random is deterministic, so that a replayed run sends the same bytes. */
static int tb_random(void *ctx, uint8_t *p, size_t n)
{
	struct testbed *tb = ctx;
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(++tb->rnd * 131 + 7);
	return 0;
}

void tb_io(struct testbed *tb, comm_io *io)
{
	io->ctx = tb;
	io->send = tb_send;
	io->recv = tb_recv;
	io->random = tb_random;
}

static int st_begin(void *ctx)
{
	struct testbed *tb = ctx;
	tb->ntmp = 0;
	return tb->store_fail ? -1 : 0;
}

static int st_write(void *ctx, const uint8_t *p, size_t n)
{
	struct testbed *tb = ctx;
	if (tb->ntmp + n > sizeof tb->tmp)
		return -1;
	memcpy(tb->tmp + tb->ntmp, p, n);
	tb->ntmp += n;
	return 0;
}

static int st_commit(void *ctx)
{
	struct testbed *tb = ctx;
	memcpy(tb->blob, tb->tmp, tb->ntmp);
	tb->nblob = tb->ntmp;
	tb->rblob = 0;
	return 0;
}

static int st_read(void *ctx, uint8_t *p, size_t n)
{
	struct testbed *tb = ctx;
	size_t k = tb->nblob - tb->rblob;
	if (k > n)
		k = n;
	memcpy(p, tb->blob + tb->rblob, k);
	tb->rblob += k;
	return (int)k;
}

void tb_store(struct testbed *tb, comm_store *st)
{
	st->ctx = tb;
	st->begin = st_begin;
	st->write = st_write;
	st->commit = st_commit;
	st->read = st_read;
}
