/* fuzz.h - shared by the libFuzzer targets: the backend, set up once. */
#ifndef COMM_FUZZ_H
#define COMM_FUZZ_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "comm/comm.h"
#include "comm/comm_sodium.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static comm_backend fuzz_be;

static inline const comm_backend *backend(void)
{
	static int ready;
	if (!ready) {
		if (comm_sodium_backend(&fuzz_be) != 0)
			abort();
		ready = 1;
	}
	return &fuzz_be;
}

#define MUST(c)          \
	do {                 \
		if (!(c))        \
			abort(); \
	} while (0)

#endif
