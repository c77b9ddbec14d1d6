/* fuzz_bundle: key bundles from the network (7.5): a parsed bundle encodes
 * to the same bytes, and opening never crashes. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const comm_backend *be = backend();
	uint8_t again[COMM_BUNDLE_SIZE], key[32], seed[32], wrap[32], ks[32];
	comm_bundle b;
	comm_identity id;
	if (comm_bundle_parse(data, size, &b) != 0)
		return 0;
	comm_bundle_encode(&b, again);
	MUST(memcmp(again, data, COMM_BUNDLE_SIZE) == 0);
	memset(seed, 5, 32);
	memset(wrap, 6, 32);
	memcpy(ks, data + COMM_BUNDLE_OFF_MEMBERS, 32); /* any key: the signature rarely holds */
	comm_identity_init(be, &id, seed, wrap);
	(void)comm_bundle_open(be, &b, ks, &id, key);
	return 0;
}
