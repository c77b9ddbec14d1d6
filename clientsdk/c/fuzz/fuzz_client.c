/* fuzz_client: a connected client fed frames whose bodies come from the
 * input, correctly MAC'd by the scripted gateway, so that the handlers of
 * KeyBundle, Groups, Deliver, SendAck, Ping, Error and Close see any body.
 * Input: records of type (1) | length (2) | body. */
#include "fuzz.h"
#include "../tests/testbed.h"

static struct testbed tb;
static comm_state state;
static comm_client client;
static comm_identity id;
static comm_io io;
static comm_store store;
static uint8_t rx[COMM_RX_BUFFER_SIZE], tx[COMM_TX_BUFFER_SIZE(64)];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	comm_client_config cfg;
	uint64_t c;
	if (tb_init(&tb, COMM_VECTORS_DIR) != 0)
		abort();
	tb_io(&tb, &io);
	tb_store(&tb, &store);
	comm_identity_init(&tb.be, &id, tb.member_seed, tb.wrap_sk);
	comm_state_init(&state);
	memset(&cfg, 0, sizeof cfg);
	cfg.be = &tb.be, cfg.io = &io, cfg.store = &store, cfg.identity = &id;
	cfg.server_pk = tb.server_pk, cfg.keyserver_pk = tb.ks_pk, cfg.state = &state;
	cfg.rx = rx, cfg.rx_cap = sizeof rx, cfg.tx = tx, cfg.tx_cap = sizeof tx;
	MUST(comm_client_init(&client, &cfg) == 0);
	MUST(comm_client_connect(&client) == 0);
	while (comm_client_poll(&client) > 0)
		;
	for (size_t i = 0; i + 3 <= size;) {
		uint8_t type = data[i];
		size_t n = (size_t)data[i + 1] << 8 | data[i + 2];
		i += 3;
		if (n > size - i)
			n = size - i;
		tb_frame(&tb, type, data + i, n);
		i += n;
		if (comm_client_poll(&client) < 0 && client.phase == COMM_CLIENT_CLOSED)
			break;
		(void)comm_client_send(&client, tb.group, data, size < 16 ? size : 16, &c);
	}
	comm_client_close(&client);
	return 0;
}
