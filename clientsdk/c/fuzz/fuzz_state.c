/* fuzz_state: the client's stored state blob: a blob that loads saves to
 * the same bytes, and one that does not leaves nothing half-built. */
#include "fuzz.h"

static uint8_t out[1 << 16];
static size_t nout;
static int s_begin(void *c) { (void)c; nout = 0; return 0; }
static int s_write(void *c, const uint8_t *p, size_t n)
{
	(void)c;
	if (nout + n > sizeof out)
		return -1;
	memcpy(out + nout, p, n);
	nout += n;
	return 0;
}
static int s_commit(void *c) { (void)c; return 0; }
static int s_read(void *c, uint8_t *p, size_t n) { (void)c, (void)p, (void)n; return 0; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static comm_state st, empty;
	const comm_store store = {NULL, s_begin, s_write, s_commit, s_read};
	if (comm_state_decode(&st, data, size) != 0) {
		MUST(memcmp(&st, &empty, sizeof st) == 0);
		return 0;
	}
	if (size == 0)
		return 0;
	MUST(comm_state_save(&st, &store) == 0);
	MUST(nout == size && memcmp(out, data, size) == 0);
	return 0;
}
