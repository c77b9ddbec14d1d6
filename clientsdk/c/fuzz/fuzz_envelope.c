/* fuzz_envelope: envelopes from the network (6.4), opened in place; and a
 * payload sealed from the input opens to itself. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t env[COMM_ENV_MAX_SIZE + 1];
	const comm_backend *be = backend();
	uint8_t key[32], nonce[24], *payload;
	comm_env_header h;
	size_t plen, len;
	memset(key, 7, 32);
	memset(nonce, 8, 24);
	if (size <= sizeof env) {
		memcpy(env, data, size);
		if (comm_env_open(be, env, size, key, &h, &payload, &plen) == 0)
			MUST(plen + COMM_ENV_OVERHEAD == size);
		if (comm_env_parse(data, size, &h) == 0)
			MUST(h.counter != 0 && h.epoch != 0);
	}
	if (size <= COMM_MAX_PAYLOAD) {
		memset(&h, 0, sizeof h);
		h.epoch = 1;
		h.counter = 1 + size;
		MUST(comm_env_seal(be, env, sizeof env, &h, key, nonce, data, size, &len) == 0);
		MUST(comm_env_open(be, env, len, key, &h, &payload, &plen) == 0);
		MUST(plen == size && (size == 0 || memcmp(payload, data, size) == 0));
	}
	return 0;
}
