/*
 * session.c - a client session against the scripted gateway (testbed.c):
 * handshake, bundle, Groups, deliveries (and a replayed one), DeliverAck,
 * Send/SendAck, Ping/Pong, the state persisted and read back, and the
 * failures a client must see: a delivery with a forged signature, wrong
 * server key, denied, a tampered frame.
 *
 *   session_test [VECTORS_DIR]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testbed.h"

#ifndef VECTORS_DIR
#define VECTORS_DIR "../../protocol/testdata/vectors"
#endif

static int failures;

#define CHECK(cond, ...)                                       \
	do {                                                       \
		if (!(cond)) {                                         \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__);                      \
			fputc('\n', stderr);                               \
			failures++;                                        \
		}                                                      \
	} while (0)

static struct testbed tb;
static comm_state state;
static comm_client client;
static uint8_t rx[COMM_RX_BUFFER_SIZE], tx[COMM_TX_BUFFER_SIZE(1024)];
static int messages, drops, forged, bundles, groups;
static uint16_t ack_status = 0xffff;
static char last_text[256];

static void on_message(void *ctx, const comm_env_header *h, const uint8_t *p, size_t n)
{
	(void)ctx, (void)h;
	messages++;
	memcpy(last_text, p, n < 255 ? n : 255);
	last_text[n < 255 ? n : 255] = 0;
}
static void on_drop(void *ctx, const comm_env_header *h, int err)
{
	(void)ctx, (void)h;
	drops += err == COMM_E_REPLAYED_MESSAGE;
	forged += err == COMM_E_BAD_ENVELOPE_SIGNATURE;
}
static void on_bundle(void *ctx, const uint8_t g[16], uint32_t e, int err)
{
	(void)ctx, (void)g, (void)e;
	bundles += err == 0;
}
static void on_groups(void *ctx, const uint8_t *ids, size_t n)
{
	(void)ctx, (void)ids;
	groups += (int)n;
}
static void on_ack(void *ctx, const uint8_t g[16], uint64_t c, uint16_t s)
{
	(void)ctx, (void)g, (void)c;
	ack_status = s;
}

static comm_io io;
static comm_store store;
static comm_events ev = {NULL, on_message, on_ack, on_groups, on_bundle, on_drop};
static comm_identity id;

static int start(const char *dir, const uint8_t *server_pk)
{
	comm_client_config cfg;
	if (tb_init(&tb, dir) != 0)
		exit(2);
	tb_io(&tb, &io);
	tb_store(&tb, &store);
	comm_identity_init(&tb.be, &id, tb.member_seed, tb.wrap_sk);
	comm_state_init(&state);
	memset(&cfg, 0, sizeof cfg);
	cfg.be = &tb.be;
	cfg.io = &io;
	cfg.store = &store;
	cfg.events = &ev;
	cfg.identity = &id;
	cfg.server_pk = server_pk ? server_pk : tb.server_pk;
	cfg.keyserver_pk = tb.ks_pk;
	cfg.state = &state;
	cfg.rx = rx;
	cfg.rx_cap = sizeof rx;
	cfg.tx = tx;
	cfg.tx_cap = sizeof tx;
	return comm_client_init(&client, &cfg);
}

static void happy(const char *dir)
{
	uint64_t counter;
	int r;
	comm_state back;
	const uint8_t *key;
	uint32_t epoch;
	CHECK(start(dir, NULL) == 0, "init");
	tb.ping_after_ready = 1;
	CHECK((r = comm_client_connect(&client)) == 0, "connect: %d", r);
	while ((r = comm_client_poll(&client)) > 0)
		;
	CHECK(r == COMM_E_TIMEOUT, "poll ends with the queue: %d", r);
	CHECK(bundles == 1 && groups == 1 && client.groups_known, "bundle %d groups %d", bundles, groups);
	CHECK(messages == 1 && strcmp(last_text, "from the gateway") == 0, "messages %d %s", messages, last_text);
	CHECK(drops == 1, "the replayed delivery is dropped: %d", drops);
	CHECK(tb.last_ack == 11, "DeliverAck covers both deliveries: %llu", (unsigned long long)tb.last_ack);
	CHECK(tb.pongs == 1, "Pong: %d", tb.pongs);
	CHECK(comm_client_send(&client, tb.group, (const uint8_t *)"hello", 5, &counter) == 0, "send");
	CHECK(counter == 1, "first counter %llu", (unsigned long long)counter);
	CHECK(comm_client_poll(&client) == COMM_FRAME_SEND_ACK && ack_status == 0, "SendAck %u", ack_status);
	CHECK(tb.sends == 1 && tb.last_payload_len == 5 && memcmp(tb.last_payload, "hello", 5) == 0, "gateway got it");
	CHECK(comm_client_resend(&client) == 0 && tb.sends == 2, "resend: the same envelope opens again");
	comm_client_poll(&client);
	/* the state blob read back */
	CHECK(comm_state_decode(&back, tb.blob, tb.nblob) == 0, "blob decodes");
	CHECK(comm_state_current(&back, tb.group, &epoch, &key) == 0 && epoch == tb.epoch &&
	          memcmp(key, tb.group_key, 32) == 0,
	      "the key survives");
	CHECK(back.groups[0].reserved == 1 + COMM_RESERVE && back.groups[0].next == back.groups[0].reserved,
	      "reserved mark %llu", (unsigned long long)back.groups[0].reserved);
	CHECK(back.groups[0].nsenders == 1 && back.groups[0].senders[0].w.top == 5, "window of the other sender");
	/* a delivery whose signature does not verify is dropped, not counted */
	tb.forge = 1;
	tb_deliver(&tb, 12, 7, "forged");
	CHECK(comm_client_poll(&client) == COMM_FRAME_DELIVER, "a forged delivery does not end the channel");
	CHECK(forged == 1 && messages == 1, "dropped as bad_envelope_signature: %d", forged);
	CHECK(state.groups[0].senders[0].w.top == 5, "its counter is not recorded");
	CHECK(tb.last_ack == 12, "and acknowledged as processed: %llu", (unsigned long long)tb.last_ack);
	/* a tampered frame ends the channel */
	tb_deliver(&tb, 13, 6, "tampered");
	tb.out[tb.nout - 1] ^= 1;
	CHECK(comm_client_poll(&client) == COMM_E_BAD_MAC, "tampered frame");
	CHECK(comm_client_poll(&client) == COMM_E_CHANNEL_CLOSED, "closed after it");
	comm_client_close(&client);
}

static void wrong_server(const char *dir)
{
	uint8_t other[32];
	int r;
	memset(other, 0x11, sizeof other);
	CHECK(start(dir, other) == 0, "init");
	CHECK((r = comm_client_connect(&client)) == COMM_E_WRONG_SERVER_KEY, "wrong server key: %d", r);
}

static void denied(const char *dir)
{
	int r;
	CHECK(start(dir, NULL) == 0, "init");
	tb.deny = 1;
	CHECK((r = comm_client_connect(&client)) == comm_err_peer(4), "denied: %d", r);
}

static void store_fails(const char *dir)
{
	uint64_t counter;
	int r;
	CHECK(start(dir, NULL) == 0, "init");
	CHECK(comm_client_connect(&client) == 0, "connect");
	while (comm_client_poll(&client) > 0)
		;
	tb.store_fail = 1;
	CHECK((r = comm_client_send(&client, tb.group, (const uint8_t *)"x", 1, &counter)) == COMM_E_STORE,
	      "no send without a reserved counter: %d", r);
	CHECK(tb.sends == 0, "nothing sent");
	tb.store_fail = 0;
	CHECK(comm_client_send(&client, tb.group, (const uint8_t *)"x", 1, &counter) == 0 && counter == 1,
	      "then counter 1: %llu", (unsigned long long)counter);
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : VECTORS_DIR;
	happy(dir);
	wrong_server(dir);
	denied(dir);
	store_fails(dir);
	if (failures) {
		fprintf(stderr, "%d failures\n", failures);
		return 1;
	}
	printf("session: ok\n");
	return 0;
}
