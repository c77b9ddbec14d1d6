/*
 * stackpaint.c - measures the peak stack of a client's handshake, of a
 * key bundle's installation, of a delivery and of a send, with the
 * libsodium backend, by stack painting: each step runs on a stack of its
 * own filled with a pattern, and the deepest byte no longer holding the
 * pattern is its peak.
 *
 * Two passes. The first runs the client against the scripted gateway
 * (testbed.c) and records what the gateway sends; the second runs the same
 * client (same deterministic randomness, so the same bytes) against the
 * recording, so that only the client's code and its backend run on the
 * painted stacks, and the transport and store callbacks are a memcpy.
 *
 *   stackpaint [VECTORS_DIR]   prints one line per step; fails above LIMIT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#include "testbed.h"

#ifndef VECTORS_DIR
#define VECTORS_DIR "../../protocol/testdata/vectors"
#endif

#define STACK_SIZE (64 * 1024)
#define PAINT 0xa5
#define LIMIT (16 * 1024) /* the README's promise: a step fits in 16 KiB with libsodium */

static struct testbed tb;
static comm_state state;
static comm_client client;
static comm_identity id;
static comm_io io;
static comm_store store;
static uint8_t rx[COMM_RX_BUFFER_SIZE], tx[COMM_TX_BUFFER_SIZE(256)];
static uint8_t stack[STACK_SIZE] __attribute__((aligned(64)));
static ucontext_t main_ctx, step_ctx;
static int (*step_fn)(void);
static int step_result;

static void trampoline(void) { step_result = step_fn(); }

/* painted runs fn on the painted stack and returns its peak use. */
static size_t painted(int (*fn)(void), int *result)
{
	size_t used = 0;
	memset(stack, PAINT, sizeof stack);
	getcontext(&step_ctx);
	step_ctx.uc_stack.ss_sp = stack;
	step_ctx.uc_stack.ss_size = sizeof stack;
	step_ctx.uc_link = &main_ctx;
	step_fn = fn;
	makecontext(&step_ctx, trampoline, 0);
	swapcontext(&main_ctx, &step_ctx);
	*result = step_result;
	for (size_t i = 0; i < sizeof stack; i++) { /* the stack grows down */
		if (stack[i] != PAINT) {
			used = sizeof stack - i;
			break;
		}
	}
	return used;
}

static int do_connect(void) { return comm_client_connect(&client); }
static int do_poll(void) { return comm_client_poll(&client); }
static int do_send(void)
{
	uint64_t c;
	return comm_client_send(&client, tb.group, (const uint8_t *)"measured", 8, &c);
}

static void setup(void)
{
	comm_client_config cfg;
	comm_state_init(&state);
	memset(&cfg, 0, sizeof cfg);
	cfg.be = &tb.be;
	cfg.io = &io;
	cfg.store = &store;
	cfg.identity = &id;
	cfg.server_pk = tb.server_pk;
	cfg.keyserver_pk = tb.ks_pk;
	cfg.state = &state;
	cfg.rx = rx;
	cfg.rx_cap = sizeof rx;
	cfg.tx = tx;
	cfg.tx_cap = sizeof tx;
	tb.rnd = 0;
	tb.rd = 0;
	if (comm_client_init(&client, &cfg) != 0)
		exit(2);
}

struct step {
	const char *name;
	int (*fn)(void);
	int want; /* the step's result */
};

int main(int argc, char **argv)
{
	const struct step steps[] = {
	    {"handshake (comm_client_connect: M1..M4, Ready)", do_connect, 0},
	    {"key bundle (poll: verify, HPKE open, install, store)", do_poll, COMM_FRAME_KEY_BUNDLE},
	    {"groups (poll)", do_poll, COMM_FRAME_GROUPS},
	    {"receive (poll: Deliver, open, window, store, DeliverAck)", do_poll, COMM_FRAME_DELIVER},
	    {"receive a replay (poll: Deliver, verified, refused before opening)", do_poll, COMM_FRAME_DELIVER},
	    {"send (comm_client_send: counter, seal, Send)", do_send, 0},
	    {"send ack (poll)", do_poll, COMM_FRAME_SEND_ACK},
	};
	size_t peak = 0;
	int bad = 0;
	if (tb_init(&tb, argc > 1 ? argv[1] : VECTORS_DIR) != 0)
		return 2;
	tb_io(&tb, &io);
	tb_store(&tb, &store);
	comm_identity_init(&tb.be, &id, tb.member_seed, tb.wrap_sk);

	/* pass 1: record the gateway */
	setup();
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		int r = steps[i].fn();
		if (r != steps[i].want) {
			fprintf(stderr, "pass 1: %s: %d, want %d\n", steps[i].name, r, steps[i].want);
			return 1;
		}
	}
	/* pass 2: replay it on painted stacks */
	tb.replay = 1;
	tb.nblob = 0;
	setup();
	printf("peak stack per step, x86-64, libsodium backend included:\n");
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		int r;
		size_t used = painted(steps[i].fn, &r);
		printf("  %6zu bytes  %s\n", used, steps[i].name);
		if (r != steps[i].want) {
			fprintf(stderr, "pass 2: %s: %d, want %d\n", steps[i].name, r, steps[i].want);
			bad = 1;
		}
		if (used > peak)
			peak = used;
	}
	printf("  %6zu bytes  peak\n", peak);
	if (peak > LIMIT) {
		fprintf(stderr, "peak stack %zu above %d\n", peak, LIMIT);
		bad = 1;
	}
	return bad;
}
