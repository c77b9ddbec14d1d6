/*
 * client.c - one connection of a client to a gateway, over the caller's
 * transport (PROTOCOL.md 4, 5, 7.5, 8.2, 8.4):
 *
 *   comm_client_connect   M1 ->, <- M2, <- M3, M4 ->, <- Ready
 *   comm_client_poll      one frame: KeyBundle (verify, unwrap, install),
 *                         Groups, Deliver (open, check, persist, hand over,
 *                         DeliverAck), SendAck, Ping (Pong), Error, Close
 *   comm_client_send      seal under the newest epoch with a reserved
 *                         counter, Send ->
 *
 * The receive buffer holds one frame at a time; a delivered envelope is
 * opened in place and handed over from it. The send buffer keeps the last
 * Send frame so that its envelope can be sent again byte for byte.
 */
#include "internal.h"

static int fail(comm_client *c, int err)
{
	comm_hs_wipe(&c->hs);
	comm_channel_wipe(&c->ch);
	c->phase = COMM_CLIENT_CLOSED;
	return err;
}

int comm_client_init(comm_client *c, const comm_client_config *cfg)
{
	memset(c, 0, sizeof *c);
	if (cfg->be == NULL || cfg->io == NULL || cfg->store == NULL || cfg->identity == NULL ||
	    cfg->server_pk == NULL || cfg->keyserver_pk == NULL || cfg->state == NULL || cfg->rx == NULL ||
	    cfg->tx == NULL || cfg->io->send == NULL || cfg->io->recv == NULL || cfg->io->random == NULL)
		return COMM_E_ARG;
	if (cfg->rx_cap < COMM_FRAME_OVERHEAD + COMM_BUNDLE_SIZE || cfg->tx_cap < COMM_TX_BUFFER_SIZE(0))
		return COMM_E_BUFFER;
	c->cfg = *cfg;
	c->phase = COMM_CLIENT_IDLE;
	c->ch.closed = 1;
	return COMM_OK;
}

/* read_exact reads n bytes: COMM_E_CLOSED if the stream ends before the
 * first, COMM_E_TRUNCATED_FRAME inside, COMM_E_TIMEOUT if the transport's
 * wait passes (*begun says whether a byte had come). */
static int read_exact(comm_client *c, uint8_t *p, size_t n, int *begun)
{
	size_t got = 0;
	*begun = 0;
	while (got < n) {
		int k = c->cfg.io->recv(c->cfg.io->ctx, p + got, n - got);
		if (k == 0)
			return got == 0 ? COMM_E_CLOSED : COMM_E_TRUNCATED_FRAME;
		if (k == COMM_E_TIMEOUT)
			return COMM_E_TIMEOUT;
		if (k < 0 || (size_t)k > n - got)
			return COMM_E_IO;
		got += (size_t)k;
		*begun = 1;
	}
	return COMM_OK;
}

static int send_all(comm_client *c, const uint8_t *p, size_t n)
{
	return c->cfg.io->send(c->cfg.io->ctx, p, n) == 0 ? COMM_OK : COMM_E_IO;
}

/* ---- handshake ---- */

/* hs_read reads one handshake message into rx as 4.3 says, over a stream. */
static int hs_read(comm_client *c, size_t *n)
{
	size_t body = 0;
	int begun, err = read_exact(c, c->cfg.rx, COMM_HS_HEADER_SIZE, &begun);
	if (err == COMM_E_CLOSED)
		return COMM_E_CLOSED_IN_HANDSHAKE;
	if (err == COMM_E_TRUNCATED_FRAME)
		return COMM_E_TRUNCATED_MESSAGE;
	if (!err)
		err = comm_hs_header(c->cfg.rx, &body);
	if (!err)
		err = read_exact(c, c->cfg.rx + COMM_HS_HEADER_SIZE, body, &begun);
	if (err == COMM_E_CLOSED || err == COMM_E_TRUNCATED_FRAME)
		return COMM_E_TRUNCATED_MESSAGE;
	*n = COMM_HS_HEADER_SIZE + body;
	return err;
}

/* frame_read reads one frame into rx: its length field first (5.3 steps 1-3). */
static int frame_read(comm_client *c, size_t *n, int *begun)
{
	size_t rest = 0;
	int b2, err = read_exact(c, c->cfg.rx, 4, begun);
	if (!err)
		err = comm_frame_length(c->cfg.rx, &rest);
	if (!err && 4 + rest > c->cfg.rx_cap)
		err = COMM_E_FRAME_TOO_LARGE; /* larger than this device receives (COMM_RX_MAX_BODY) */
	if (!err) {
		err = read_exact(c, c->cfg.rx + 4, rest, &b2);
		if (err == COMM_E_CLOSED)
			err = COMM_E_TRUNCATED_FRAME;
		*begun = 1;
	}
	*n = 4 + rest;
	return err;
}

static int handshake(comm_client *c)
{
	uint8_t eph[32];
	size_t n = 0;
	int begun, err;
	if (c->cfg.io->random(c->cfg.io->ctx, eph, sizeof eph) != 0)
		return COMM_E_CRYPTO;
	err = comm_hs_client_init(&c->hs, c->cfg.be, c->cfg.identity->seed, c->cfg.server_pk, eph);
	comm_wipe(eph, sizeof eph);
	if (!err)
		err = comm_hs_client_m1(&c->hs, c->cfg.rx);
	if (!err)
		err = send_all(c, c->cfg.rx, COMM_HS_MSG_SIZE);
	if (!err)
		err = hs_read(c, &n);
	if (!err)
		err = comm_hs_client_read_m2(&c->hs, c->cfg.rx, n);
	if (!err)
		err = hs_read(c, &n);
	if (!err)
		err = comm_hs_client_read_m3(&c->hs, c->cfg.rx, n);
	if (!err)
		err = comm_hs_client_m4(&c->hs, c->cfg.rx);
	if (!err)
		err = send_all(c, c->cfg.rx, COMM_HS_MSG_SIZE);
	if (!err) {
		err = frame_read(c, &n, &begun);
		if (err == COMM_E_CLOSED)
			err = COMM_E_CLOSED_IN_HANDSHAKE;
	}
	if (!err)
		err = comm_hs_client_read_frame0(&c->hs, c->cfg.rx, n);
	if (err == COMM_E_TIMEOUT)
		err = COMM_E_HANDSHAKE_TIMEOUT;
	return err;
}

int comm_client_connect(comm_client *c)
{
	int err;
	if (c->phase == COMM_CLIENT_OPEN)
		return COMM_E_OUT_OF_ORDER;
	err = handshake(c);
	if (err)
		return fail(c, err);
	comm_channel_init(&c->ch, c->cfg.be, &c->hs.keys, 1);
	c->ch.recv_expected = 1; /* frame 0 was the Ready */
	comm_hs_wipe(&c->hs);
	c->phase = COMM_CLIENT_OPEN;
	c->groups_known = 0;
	c->ngroups = 0;
	c->processed = c->acked = c->hold = 0;
	/* pending messages and the last Send stay: they are sent again (5.5) */
	return COMM_OK;
}

/* ---- frames the client sends ---- */

static int send_ctl(comm_client *c, uint8_t type, const uint8_t *body, size_t n)
{
	size_t len;
	int err = comm_frame_seal(&c->ch, c->ctl, sizeof c->ctl, type, body, n, &len);
	if (!err)
		err = send_all(c, c->ctl, len);
	return err;
}

int comm_client_ping(comm_client *c, const uint8_t opaque[8])
{
	int err;
	if (c->phase != COMM_CLIENT_OPEN)
		return COMM_E_CHANNEL_CLOSED;
	err = send_ctl(c, COMM_FRAME_PING, opaque, 8);
	return err ? fail(c, err) : COMM_OK;
}

void comm_client_close(comm_client *c)
{
	if (c->phase == COMM_CLIENT_OPEN)
		(void)send_ctl(c, COMM_FRAME_CLOSE, NULL, 0);
	fail(c, COMM_OK);
}

int comm_client_is_member(const comm_client *c, const uint8_t group[16])
{
	for (int i = 0; i < c->ngroups && i < COMM_MAX_GROUPS; i++)
		if (memcmp(c->groups[i], group, 16) == 0)
			return 1;
	return 0;
}

/* ---- frames the client receives ---- */

static void on_bundle(comm_client *c, const uint8_t *body, size_t n)
{
	comm_bundle b;
	uint8_t key[32];
	int err = comm_bundle_parse(body, n, &b);
	if (!err)
		err = comm_bundle_open(c->cfg.be, &b, c->cfg.keyserver_pk, c->cfg.identity, key);
	if (!err)
		err = comm_state_install(c->cfg.state, c->cfg.store, b.group, b.epoch, key);
	comm_wipe(key, sizeof key);
	if (c->cfg.events && c->cfg.events->on_bundle)
		c->cfg.events->on_bundle(c->cfg.events->ctx, b.group, b.epoch, err);
}

static void on_groups(comm_client *c, const uint8_t *body, size_t n)
{
	size_t count = n / COMM_GROUP_ID_SIZE;
	c->ngroups = 0;
	for (size_t i = 0; i < count && i < COMM_MAX_GROUPS; i++)
		memcpy(c->groups[c->ngroups++], body + 16 * i, 16);
	c->groups_known = 1;
	if (c->cfg.events && c->cfg.events->on_groups)
		c->cfg.events->on_groups(c->cfg.events->ctx, body, count);
}

static void on_send_ack(comm_client *c, const uint8_t *body)
{
	uint64_t counter = get64(body + 16);
	uint16_t status = get16(body + 24);
	if (status != COMM_ACK_RETRY) { /* every other status answers the message (5.5) */
		for (int i = 0; i < c->npending; i++) {
			if (c->pending[i].counter == counter && memcmp(c->pending[i].group, body, 16) == 0) {
				c->pending[i] = c->pending[--c->npending];
				break;
			}
		}
	}
	if (c->cfg.events && c->cfg.events->on_send_ack)
		c->cfg.events->on_send_ack(c->cfg.events->ctx, body, counter, status);
}

/* key_never_comes: a delivery whose epoch key is missing although the
 * group holds a newer one, or below the floor, will never open. */
static int key_never_comes(const comm_state *st, const comm_env_header *h)
{
	for (int i = 0; i < COMM_MAX_GROUPS; i++) {
		const comm_group_state *g = &st->groups[i];
		if (g->used && memcmp(g->id, h->group, 16) == 0)
			return h->epoch < g->floor || (g->nkeys > 0 && h->epoch < g->keys[g->nkeys - 1].epoch);
	}
	return 0;
}

/* deliver applies 8.2 to one envelope, in place in rx. It returns 0 when
 * the delivery is processed (handed over or dropped), 1 to hold it: its
 * key may still come, or its state could not be persisted; a held
 * delivery is not acknowledged and comes again after a reconnect. */
static int deliver(comm_client *c, uint8_t *env, size_t n)
{
	comm_env_header h;
	const uint8_t *key = NULL;
	uint8_t *payload;
	size_t plen;
	/* the fields and the sender's signature, before anything else (8.2) */
	int err = comm_env_verify(c->cfg.be, env, n, &h);
	if (!err) {
		err = comm_state_key(c->cfg.state, h.group, h.epoch, &key);
		if ((err == COMM_E_UNKNOWN_GROUP || err == COMM_E_UNKNOWN_EPOCH) && !key_never_comes(c->cfg.state, &h))
			return 1;
	}
	if (!err)
		err = comm_state_check(c->cfg.state, &h); /* refuse early, record nothing (8.2 step 4) */
	if (!err)
		err = comm_env_open_verified(c->cfg.be, env, n, key, &payload, &plen);
	if (!err) {
		err = comm_state_accept(c->cfg.state, c->cfg.store, &h);
		if (err == COMM_E_STORE)
			return 1;
	}
	if (err) {
		if (c->cfg.events && c->cfg.events->on_drop)
			c->cfg.events->on_drop(c->cfg.events->ctx, &h, err);
		return 0;
	}
	if (c->cfg.events && c->cfg.events->on_message)
		c->cfg.events->on_message(c->cfg.events->ctx, &h, payload, plen);
	comm_wipe(payload, plen);
	return 0;
}

static int on_deliver(comm_client *c, uint8_t *body, size_t n)
{
	uint64_t cursor = get64(body), ackable;
	uint8_t ack[8];
	if (deliver(c, body + 8, n - 8)) {
		if (c->hold == 0)
			c->hold = cursor;
	} else if (cursor > c->processed) {
		c->processed = cursor;
	}
	ackable = c->hold ? c->hold - 1 : c->processed;
	if (ackable <= c->acked)
		return COMM_OK;
	c->acked = ackable;
	put64(ack, ackable);
	return send_ctl(c, COMM_FRAME_DELIVER_ACK, ack, 8);
}

int comm_client_poll(comm_client *c)
{
	comm_frame f;
	size_t n;
	int begun, err;
	if (c->phase != COMM_CLIENT_OPEN)
		return COMM_E_CHANNEL_CLOSED;
	err = frame_read(c, &n, &begun);
	if (err == COMM_E_TIMEOUT && !begun)
		return COMM_E_TIMEOUT; /* nothing arrived: the channel stands */
	if (!err)
		err = comm_frame_open(&c->ch, c->cfg.rx, n, &f);
	if (err)
		return fail(c, err);
	switch (f.type) {
	case COMM_FRAME_ERROR:
		return fail(c, comm_err_peer(get16(f.body)));
	case COMM_FRAME_CLOSE:
		return fail(c, COMM_E_CLOSED);
	case COMM_FRAME_PING:
		err = send_ctl(c, COMM_FRAME_PONG, f.body, 8);
		break;
	case COMM_FRAME_KEY_BUNDLE:
		on_bundle(c, f.body, f.len);
		break;
	case COMM_FRAME_GROUPS:
		on_groups(c, f.body, f.len);
		break;
	case COMM_FRAME_SEND_ACK:
		on_send_ack(c, f.body);
		break;
	case COMM_FRAME_DELIVER:
		err = on_deliver(c, c->cfg.rx + COMM_FRAME_HEADER_SIZE, f.len);
		break;
	}
	return err ? fail(c, err) : f.type;
}

/* ---- sending ---- */

/* room checks 8.4's MaxInflight and this client's pending table. */
static int room(const comm_client *c, const uint8_t group[16])
{
	const comm_group_state *g = NULL;
	uint64_t oldest = 0;
	if (c->npending >= COMM_MAX_PENDING)
		return 0;
	for (int i = 0; i < COMM_MAX_GROUPS; i++)
		if (c->cfg.state->groups[i].used && memcmp(c->cfg.state->groups[i].id, group, 16) == 0)
			g = &c->cfg.state->groups[i];
	for (int i = 0; i < c->npending; i++)
		if (memcmp(c->pending[i].group, group, 16) == 0 && (oldest == 0 || c->pending[i].counter < oldest))
			oldest = c->pending[i].counter;
	return g == NULL || oldest == 0 || g->next < oldest + COMM_MAX_INFLIGHT;
}

int comm_client_send(comm_client *c, const uint8_t group[16], const uint8_t *payload, size_t n, uint64_t *counter)
{
	comm_env_header h;
	const uint8_t *key;
	uint8_t nonce[COMM_ENV_NONCE_SIZE];
	size_t envlen, len;
	int err;
	*counter = 0;
	if (c->phase != COMM_CLIENT_OPEN || !c->groups_known)
		return COMM_E_NOT_READY;
	if (!comm_client_is_member(c, group))
		return COMM_E_NOT_MEMBER;
	if (n > COMM_MAX_PAYLOAD)
		return COMM_E_PAYLOAD_TOO_LARGE;
	if (c->cfg.tx_cap < COMM_TX_BUFFER_SIZE(n))
		return COMM_E_BUFFER;
	memset(&h, 0, sizeof h);
	err = comm_state_current(c->cfg.state, group, &h.epoch, &key);
	if (err)
		return err;
	if (!room(c, group))
		return COMM_E_INFLIGHT_FULL;
	if (c->cfg.io->random(c->cfg.io->ctx, nonce, sizeof nonce) != 0)
		return COMM_E_CRYPTO;
	err = comm_state_next_counter(c->cfg.state, c->cfg.store, group, &h.counter);
	if (err)
		return err;
	memcpy(h.group, group, 16);
	memcpy(h.sender, c->cfg.identity->id, 32);
	c->last_send = 0;
	err = comm_env_seal(c->cfg.be, c->cfg.tx + COMM_FRAME_HEADER_SIZE, c->cfg.tx_cap - COMM_FRAME_OVERHEAD, &h,
	                    key, nonce, payload, n, c->cfg.identity, &envlen);
	if (err)
		return err;
	err = comm_frame_seal(&c->ch, c->cfg.tx, c->cfg.tx_cap, COMM_FRAME_SEND, c->cfg.tx + COMM_FRAME_HEADER_SIZE,
	                      envlen, &len);
	if (!err)
		err = send_all(c, c->cfg.tx, len);
	if (err)
		return fail(c, err);
	memcpy(c->pending[c->npending].group, group, 16);
	c->pending[c->npending++].counter = h.counter;
	c->last_send = len;
	*counter = h.counter;
	return COMM_OK;
}

int comm_client_resend(comm_client *c)
{
	size_t len;
	int err;
	if (c->phase != COMM_CLIENT_OPEN)
		return COMM_E_CHANNEL_CLOSED;
	if (c->last_send == 0)
		return COMM_E_ARG;
	err = comm_frame_seal(&c->ch, c->cfg.tx, c->cfg.tx_cap, COMM_FRAME_SEND, c->cfg.tx + COMM_FRAME_HEADER_SIZE,
	                      c->last_send - COMM_FRAME_OVERHEAD, &len);
	if (!err)
		err = send_all(c, c->cfg.tx, len);
	return err ? fail(c, err) : COMM_OK;
}
