/* fuzz_checkpoint: log checkpoints (15.6): only 105 bytes of version
 * Version decode, to their own fields, and verifying never crashes. */
#include "comm/comm_event.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const comm_backend *be = backend();
	comm_checkpoint c;
	uint8_t ks[32];
	if (comm_checkpoint_decode(data, size, &c) != 0)
		return 0;
	MUST(size == COMM_CHECKPOINT_SIZE && data[0] == COMM_VERSION);
	MUST(memcmp(c.log, data + 9, 32) == 0);
	memcpy(ks, data + 9, 32); /* any key: the signature rarely holds */
	(void)comm_checkpoint_read(be, data, size, ks, &c);
	return 0;
}
