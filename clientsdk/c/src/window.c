/*
 * window.c - the replay window of a (group, sender) (PROTOCOL.md 8.6):
 * top, the highest counter accepted, and one bit per counter top - d,
 * 0 <= d < 256. Its binary form is this library's stored form, its text
 * form the relays' Comm-Window header; both are canonical only.
 */
#include "internal.h"

#define WORDS (COMM_WINDOW_SIZE / 64)
#define MAX_HOLES 16
#define BITMAP_MODE 0xff

static int bit(const comm_window *w, uint64_t d) { return (int)((w->seen[d / 64] >> (d % 64)) & 1u); }

int comm_window_check(const comm_window *w, uint64_t c)
{
	if (c == 0 || c == COMM_EXHAUSTED_COUNTER)
		return COMM_EXHAUSTED;
	if (c > w->top)
		return c - w->top > COMM_MAX_COUNTER_JUMP ? COMM_JUMP : COMM_FRESH;
	if (w->top - c >= COMM_WINDOW_SIZE)
		return COMM_OLD;
	return bit(w, w->top - c) ? COMM_DUPLICATE : COMM_FRESH;
}

static void shift(comm_window *w, uint64_t n)
{
	uint64_t words = n / 64;
	unsigned r = (unsigned)(n % 64);
	if (n >= COMM_WINDOW_SIZE) {
		memset(w->seen, 0, sizeof w->seen);
		return;
	}
	for (int i = WORDS - 1; i >= 0; i--) {
		uint64_t v = 0;
		int j = i - (int)words;
		if (j >= 0) {
			v = w->seen[j] << r;
			if (r > 0 && j > 0)
				v |= w->seen[j - 1] >> (64 - r);
		}
		w->seen[i] = v;
	}
}

void comm_window_accept(comm_window *w, uint64_t c)
{
	uint64_t d;
	if (c > w->top) {
		shift(w, c - w->top);
		w->top = c;
	}
	d = w->top - c;
	w->seen[d / 64] |= (uint64_t)1 << (d % 64);
}

static size_t put_uvarint(uint8_t *b, uint64_t v)
{
	size_t i = 0;
	while (v >= 0x80) {
		b[i++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	b[i++] = (uint8_t)v;
	return i;
}

/* get_uvarint reads a minimal uvarint; 0 if malformed. */
static size_t get_uvarint(const uint8_t *b, size_t n, uint64_t *v)
{
	uint64_t x = 0;
	for (size_t i = 0; i < n && i < 10; i++) {
		if (i == 9 && b[i] > 1)
			return 0;
		x |= (uint64_t)(b[i] & 0x7f) << (7 * i);
		if (b[i] < 0x80) {
			if (i > 0 && b[i] == 0)
				return 0; /* not minimal */
			*v = x;
			return i + 1;
		}
	}
	return 0;
}

static uint64_t low(const comm_window *w)
{
	for (uint64_t d = COMM_WINDOW_SIZE - 1; d > 0; d--)
		if (bit(w, d))
			return d;
	return 0;
}

static void put_le64(uint8_t *b, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *b)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | b[i];
	return v;
}

size_t comm_window_binary(const comm_window *w, uint8_t out[COMM_WINDOW_BINARY_MAX])
{
	uint64_t lo = low(w), prev = 0;
	size_t i = put_uvarint(out, w->top), holes = 0;
	i += put_uvarint(out + i, lo);
	for (uint64_t d = 1; d < lo; d++)
		holes += !bit(w, d);
	if (holes > MAX_HOLES) {
		out[i++] = BITMAP_MODE;
		for (int j = 0; j < WORDS; j++, i += 8)
			put_le64(out + i, w->seen[j]);
		return i;
	}
	out[i++] = (uint8_t)holes;
	for (uint64_t d = 1; d < lo; d++) {
		if (!bit(w, d)) {
			i += put_uvarint(out + i, d - prev);
			prev = d;
		}
	}
	return i;
}

/* valid: the bit of top is set when top > 0, and no bit below counter 1. */
static int valid(const comm_window *w)
{
	if (w->top == 0) {
		for (int j = 0; j < WORDS; j++)
			if (w->seen[j])
				return 0;
		return 1;
	}
	if (!bit(w, 0))
		return 0;
	for (uint64_t d = w->top; d < COMM_WINDOW_SIZE; d++)
		if (bit(w, d))
			return 0;
	return 1;
}

static int parse_binary(const uint8_t *b, size_t n, comm_window *w, size_t *used)
{
	uint64_t top, lo, prev = 0;
	size_t i, k;
	uint8_t again[COMM_WINDOW_BINARY_MAX];
	memset(w, 0, sizeof *w);
	if ((i = get_uvarint(b, n, &top)) == 0)
		return 0;
	if ((k = get_uvarint(b + i, n - i, &lo)) == 0)
		return 0;
	i += k;
	if (n <= i || lo >= COMM_WINDOW_SIZE || (top == 0 && lo > 0) || (top > 0 && lo > top - 1))
		return 0;
	k = b[i++];
	w->top = top;
	if (k == BITMAP_MODE) {
		if (n < i + COMM_WINDOW_SIZE / 8)
			return 0;
		for (int j = 0; j < WORDS; j++, i += 8)
			w->seen[j] = get_le64(b + i);
	} else {
		if (k > MAX_HOLES || (top == 0 && k > 0))
			return 0;
		if (top > 0)
			for (uint64_t d = 0; d <= lo; d++)
				w->seen[d / 64] |= (uint64_t)1 << (d % 64);
		for (size_t h = 0; h < k; h++) {
			uint64_t delta;
			size_t m = get_uvarint(b + i, n - i, &delta);
			if (m == 0 || delta == 0 || delta >= lo || prev + delta >= lo)
				return 0;
			prev += delta;
			w->seen[prev / 64] &= ~((uint64_t)1 << (prev % 64));
			i += m;
		}
	}
	if (!valid(w) || comm_window_binary(w, again) != i || memcmp(again, b, i) != 0)
		return 0; /* not canonical */
	*used = i;
	return 1;
}

int comm_window_parse_binary(const uint8_t *b, size_t n, comm_window *w, size_t *used)
{
	if (!parse_binary(b, n, w, used)) {
		memset(w, 0, sizeof *w);
		*used = 0;
		return COMM_E_STATE_CORRUPT;
	}
	return COMM_OK;
}

static const char hexd[] = "0123456789abcdef";

size_t comm_window_text(const comm_window *w, char out[COMM_WINDOW_TEXT_MAX])
{
	char d[21];
	int k = 20;
	size_t i = 0;
	uint64_t t = w->top;
	uint8_t raw[8];
	d[k] = 0;
	do {
		d[--k] = (char)('0' + t % 10);
		t /= 10;
	} while (t);
	while (d[k])
		out[i++] = d[k++];
	out[i++] = '.';
	for (int j = 0; j < WORDS; j++) {
		put_le64(raw, w->seen[j]);
		for (int b = 0; b < 8; b++) {
			out[i++] = hexd[raw[b] >> 4];
			out[i++] = hexd[raw[b] & 15];
		}
	}
	out[i] = 0;
	return i;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static int parse_text(const char *s, size_t n, comm_window *w)
{
	size_t dot = 0, i;
	uint64_t t = 0;
	uint8_t raw[COMM_WINDOW_SIZE / 8];
	memset(w, 0, sizeof *w);
	while (dot < n && s[dot] != '.')
		dot++;
	if (dot == 0 || dot == n || dot > 20 || n - dot - 1 != COMM_WINDOW_SIZE / 4)
		return 0;
	if (s[0] == '0' && dot > 1)
		return 0; /* leading zero */
	for (i = 0; i < dot; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		if (t > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
			return 0;
		t = t * 10 + (uint64_t)(s[i] - '0');
	}
	for (i = 0; i < sizeof raw; i++) {
		int hi = hexval(s[dot + 1 + 2 * i]), lo = hexval(s[dot + 2 + 2 * i]);
		if (hi < 0 || lo < 0)
			return 0;
		raw[i] = (uint8_t)(hi << 4 | lo);
	}
	w->top = t;
	for (int j = 0; j < WORDS; j++)
		w->seen[j] = get_le64(raw + 8 * j);
	return valid(w);
}

int comm_window_parse_text(const char *s, size_t n, comm_window *w)
{
	if (!parse_text(s, n, w)) {
		memset(w, 0, sizeof *w);
		return COMM_E_STATE_CORRUPT;
	}
	return COMM_OK;
}
