/*
 * state.c - the client state's rules (PROTOCOL.md 8.2-8.4) and its blob:
 * key installation (stale, conflict, the same key again, MaxEpochs, the
 * floor), retirement by sender and by count (8.3), replays refused across a
 * reload, block reservation across a reload, a failed store undone, and a
 * corrupt or truncated blob refused whole.
 */
#include <stdio.h>
#include <string.h>

#include "comm/comm.h"

static int failures;

#define CHECK(cond, what)                                                  \
	do {                                                                   \
		if (!(cond)) {                                                     \
			fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, what); \
			failures++;                                                    \
		}                                                                  \
	} while (0)

static uint8_t blob[65536], tmp[65536];
static size_t nblob, ntmp, rd;
static int fail_store;

static int s_begin(void *c) { (void)c; ntmp = 0; return fail_store ? -1 : 0; }
static int s_write(void *c, const uint8_t *p, size_t n) { (void)c; memcpy(tmp + ntmp, p, n); ntmp += n; return 0; }
static int s_commit(void *c) { (void)c; memcpy(blob, tmp, ntmp); nblob = ntmp; return 0; }
static int s_read(void *c, uint8_t *p, size_t n)
{
	size_t k = nblob - rd < n ? nblob - rd : n;
	(void)c;
	memcpy(p, blob + rd, k);
	rd += k;
	return (int)k;
}
static const comm_store store = {NULL, s_begin, s_write, s_commit, s_read};

static comm_state st, back;

static void reload(void)
{
	rd = 0;
	CHECK(comm_state_load(&back, &store) == 0, "load");
}

int main(void)
{
	uint8_t g[16] = {1, 2, 3}, k1[32], k2[32], sender[32] = {9, 9};
	const uint8_t *key;
	uint64_t c;
	comm_env_header h;
	memset(k1, 1, 32);
	memset(k2, 2, 32);
	comm_state_init(&st);

	rd = 0;
	CHECK(comm_state_load(&back, &store) == 0 && !back.groups[0].used, "an empty store is an empty state");
	CHECK(comm_state_install(&st, &store, g, 0, k1) == COMM_E_BAD_EPOCH, "epoch 0");
	CHECK(comm_state_install(&st, &store, g, 3, k1) == 0, "install 3");
	CHECK(comm_state_install(&st, &store, g, 3, k1) == 0, "the same key again");
	CHECK(comm_state_install(&st, &store, g, 3, k2) == COMM_E_EPOCH_CONFLICT, "another key for 3");
	for (uint32_t e = 4; e <= 6; e++)
		CHECK(comm_state_install(&st, &store, g, e, k2) == 0, "install 4..6");
	CHECK(comm_state_install(&st, &store, g, 2, k1) == COMM_E_STALE_EPOCH, "older than all four, no room");
	CHECK(comm_state_install(&st, &store, g, 7, k1) == 0, "a fifth drops the oldest");
	CHECK(st.groups[0].floor == 4 && st.groups[0].nkeys == COMM_MAX_EPOCHS, "floor above the dropped epoch");
	CHECK(comm_state_install(&st, &store, g, 3, k1) == COMM_E_STALE_EPOCH, "below the floor");
	CHECK(comm_state_key(&st, g, 3, &key) == COMM_E_RETIRED_EPOCH, "3 is gone, retired");
	CHECK(comm_state_key(&st, sender, 3, &key) == COMM_E_UNKNOWN_GROUP, "unknown group");

	memset(&h, 0, sizeof h);
	memcpy(h.group, g, 16);
	memcpy(h.sender, sender, 32);
	h.epoch = 7;
	h.counter = 10;
	CHECK(comm_state_accept(&st, &store, &h) == 0, "accept 10 in epoch 7");
	CHECK(st.groups[0].nkeys == 2 && st.groups[0].keys[0].epoch == 6 && st.groups[0].floor == 6,
	      "epochs below 6 drained");
	CHECK(comm_state_accept(&st, &store, &h) == COMM_E_REPLAYED_MESSAGE, "10 again");
	h.counter = 9;
	CHECK(comm_state_accept(&st, &store, &h) == 0, "9 after 10: inside the window");
	h.counter = 10 + COMM_MAX_COUNTER_JUMP + 1;
	CHECK(comm_state_accept(&st, &store, &h) == COMM_E_COUNTER_JUMP, "a jump");
	{
		/* 8.3: a sender that moved on cannot go back; the
		 * previous epoch's key retires after COMM_RETIRE_AFTER messages */
		comm_env_header t = h;
		h.epoch = 6;
		h.counter = 11;
		CHECK(comm_state_check(&st, &h) == COMM_E_RETIRED_EPOCH, "the sender is in epoch 7 now");
		t.sender[0] = 0x77; /* another sender, still in the previous epoch */
		t.epoch = 6;
		t.counter = 1;
		CHECK(comm_state_accept(&st, &store, &t) == 0, "another sender's epoch 6 is accepted");
		t.epoch = 7;
		for (uint64_t i = 2; st.groups[0].since < COMM_RETIRE_AFTER; i++) {
			t.counter = i;
			if (comm_state_accept(&st, &store, &t) != 0)
				break;
		}
		CHECK(st.groups[0].since == COMM_RETIRE_AFTER, "counted up to RetireAfter");
		CHECK(comm_state_key(&st, g, 6, &key) == COMM_E_RETIRED_EPOCH && st.groups[0].floor == 7,
		      "epoch 6 retired");
		t.sender[0] = 0x78;
		t.epoch = 6;
		t.counter = 1;
		CHECK(comm_state_check(&st, &t) == COMM_E_RETIRED_EPOCH, "a new sender's epoch 6 too");
		h.epoch = 7;
	}

	CHECK(comm_state_next_counter(&st, &store, g, &c) == 0 && c == 1, "first counter 1");
	CHECK(st.groups[0].reserved == 1 + COMM_RESERVE, "a block reserved");
	CHECK(comm_state_next_counter(&st, &store, g, &c) == 0 && c == 2, "then 2");
	reload();
	CHECK(comm_state_next_counter(&back, &store, g, &c) == 0 && c == 1 + COMM_RESERVE, "resumes at the mark");
	h.counter = 10;
	CHECK(comm_state_check(&back, &h) == COMM_E_REPLAYED_MESSAGE, "the window survives a reload");
	CHECK(comm_state_key(&back, g, 7, &key) == 0 && memcmp(key, k1, 32) == 0, "the key survives");

	/* a failed store changes nothing */
	fail_store = 1;
	h.counter = 11;
	CHECK(comm_state_accept(&st, &store, &h) == COMM_E_STORE, "accept needs the store");
	CHECK(comm_state_check(&st, &h) == 0, "11 still fresh");
	CHECK(comm_state_install(&st, &store, g, 8, k2) == COMM_E_STORE, "install needs the store");
	CHECK(comm_state_key(&st, g, 8, &key) == COMM_E_UNKNOWN_EPOCH, "8 not installed");
	fail_store = 0;

	/* corrupt and truncated blobs are refused whole */
	for (size_t i = 0; i < nblob; i++) {
		blob[i] ^= 0x20;
		CHECK(comm_state_decode(&back, blob, nblob) == COMM_E_STATE_CORRUPT, "a flipped byte");
		CHECK(!back.groups[0].used, "nothing half-built");
		blob[i] ^= 0x20;
	}
	for (size_t n = 1; n < nblob; n++)
		CHECK(comm_state_decode(&back, blob, n) == COMM_E_STATE_CORRUPT, "a truncated blob");
	CHECK(comm_state_decode(&back, blob, nblob) == 0, "the blob itself");

	printf("sizeof(comm_state) = %zu bytes (%d groups x %d senders, %d epoch keys each)\n", sizeof(comm_state),
	       COMM_MAX_GROUPS, COMM_MAX_SENDERS, COMM_MAX_EPOCHS);
	if (failures) {
		fprintf(stderr, "%d failures\n", failures);
		return 1;
	}
	printf("state: ok\n");
	return 0;
}
