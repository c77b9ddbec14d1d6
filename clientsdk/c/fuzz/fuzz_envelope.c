/* fuzz_envelope: envelopes from the network (6.4): verified and opened in
 * place; and a payload sealed (and signed) from the input opens to itself. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t env[COMM_ENV_MAX_SIZE + 1];
	const comm_backend *be = backend();
	uint8_t key[32], nonce[24], seed[32], *payload;
	static comm_identity id;
	comm_env_header h;
	size_t plen, len;
	memset(key, 7, 32);
	memset(nonce, 8, 24);
	memset(seed, 9, 32);
	if (id.id[0] == 0 && id.id[1] == 0)
		comm_identity_init(be, &id, seed, seed);
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
		memcpy(h.sender, id.id, 32);
		MUST(comm_env_seal(be, env, sizeof env, &h, key, nonce, data, size, &id, &len) == 0);
		MUST(comm_env_open(be, env, len, key, &h, &payload, &plen) == 0);
		MUST(plen == size && (size == 0 || memcmp(payload, data, size) == 0));
	}
	return 0;
}
