/* fuzz_keyfile: key files (10.3): a file that reads encodes to itself. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const comm_backend *be = backend();
	uint8_t out[COMM_KEYFILE_MAX_SIZE];
	const uint8_t *body;
	size_t bl, n;
	int kind;
	if (comm_keyfile_parse(be, data, size, 0, &kind, &body, &bl) != 0)
		return 0;
	MUST(comm_keyfile_encode(be, kind, body, bl, out, sizeof out, &n) == 0);
	MUST(n == size && memcmp(out, data, n) == 0);
	return 0;
}
