/*
 * testbed.h - a scripted gateway in the test process, built from the
 * library's server side: it answers the client's bytes as they are sent
 * (M2 and M3 after M1; Ready, the key bundle of bundle-ok.txt, Groups and
 * deliveries after M4; a SendAck after each Send) and queues what it says
 * for the client's recv. Test code.
 */
#ifndef COMM_TESTBED_H
#define COMM_TESTBED_H

#include "comm/comm.h"

#define TB_OUT_MAX (1 << 20)

struct testbed {
	comm_backend be;
	/* from bundle-ok.txt */
	uint8_t ks_pk[32], member_seed[32], wrap_sk[32], bundle[COMM_BUNDLE_SIZE], group[16], group_key[32];
	uint32_t epoch;
	comm_identity other; /* the sender of the deliveries */
	/* the gateway */
	uint8_t server_seed[32], server_pk[32];
	comm_hs hs;
	comm_channel ch;
	int established, deny, ping_after_ready;
	int forge; /* tb_deliver flips a bit of the next envelope's signature */
	uint8_t in[70000];
	size_t nin;
	uint8_t out[TB_OUT_MAX];
	size_t nout, rd;
	/* what it saw */
	uint64_t last_ack;
	int sends, pongs;
	uint8_t last_payload[256];
	size_t last_payload_len;
	/* replay mode: recv gives recorded bytes, send ignores */
	int replay;
	uint64_t rnd;
	/* memory store */
	uint8_t blob[65536], tmp[65536];
	size_t nblob, ntmp, rblob;
	int store_fail;
};

/* tb_init reads bundle-ok.txt from the vectors directory. */
int tb_init(struct testbed *tb, const char *vectors_dir);
void tb_io(struct testbed *tb, comm_io *io);
void tb_store(struct testbed *tb, comm_store *st);
/* tb_deliver queues a Deliver frame of an envelope from another member. */
int tb_deliver(struct testbed *tb, uint64_t cursor, uint64_t counter, const char *text);
/* tb_frame queues a frame the gateway sends. */
int tb_frame(struct testbed *tb, uint8_t type, const uint8_t *body, size_t n);

#endif
