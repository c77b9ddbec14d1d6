/* fuzz_window: the replay window's stored forms (8.6): what reads encodes
 * to the same bytes; and counters from the input keep the window valid. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t bin[COMM_WINDOW_BINARY_MAX];
	char text[COMM_WINDOW_TEXT_MAX];
	comm_window w, back;
	size_t used, n;
	if (comm_window_parse_binary(data, size, &w, &used) == 0) {
		n = comm_window_binary(&w, bin);
		MUST(n == used && memcmp(bin, data, n) == 0);
	}
	if (comm_window_parse_text((const char *)data, size, &w) == 0) {
		n = comm_window_text(&w, text);
		MUST(n == size && memcmp(text, data, n) == 0);
	}
	memset(&w, 0, sizeof w);
	for (size_t i = 0; i + 8 <= size; i += 8) {
		uint64_t c = 0;
		for (int k = 0; k < 8; k++)
			c = c << 8 | data[i + k];
		c >>= data[i] & 63; /* small counters too */
		if (comm_window_check(&w, c) == COMM_FRESH)
			comm_window_accept(&w, c);
		MUST(comm_window_check(&w, c) != COMM_FRESH || c == 0);
		n = comm_window_binary(&w, bin);
		MUST(comm_window_parse_binary(bin, n, &back, &used) == 0 && used == n);
		MUST(memcmp(&back, &w, sizeof w) == 0);
		n = comm_window_text(&w, text);
		MUST(comm_window_parse_text(text, n, &back) == 0 && memcmp(&back, &w, sizeof w) == 0);
	}
	return 0;
}
