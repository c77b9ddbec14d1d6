/* fuzz_frame: frames from the network (5.3), on both sides; and a frame
 * sealed from the input opens to the same type, counter and body. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[COMM_FRAME_MAX_LENGTH + 4];
	const comm_backend *be = backend();
	comm_keys k;
	comm_channel rx, tx;
	comm_frame f;
	size_t rest, len;
	memset(k.c2s, 1, 32);
	memset(k.s2c, 2, 32);
	for (int client = 0; client <= 1; client++) {
		comm_channel_init(&rx, be, &k, client);
		if (comm_frame_open(&rx, data, size, &f) == 0)
			MUST(f.len + COMM_FRAME_OVERHEAD == size && f.counter == 0);
		if (size >= 4)
			(void)comm_frame_length(data, &rest);
	}
	/* round trip: type | body */
	if (size >= 1 && size - 1 <= COMM_MAX_FRAME_BODY) {
		comm_channel_init(&tx, be, &k, 0); /* the server sends */
		comm_channel_init(&rx, be, &k, 1);
		MUST(comm_frame_seal(&tx, buf, sizeof buf, data[0], data + 1, size - 1, &len) == 0);
		if (comm_frame_open(&rx, buf, len, &f) == 0)
			MUST(f.type == data[0] && f.len == size - 1 && memcmp(f.body, data + 1, size - 1) == 0);
	}
	return 0;
}
