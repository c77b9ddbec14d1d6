/*
 * keyfile.c - key files (PROTOCOL.md 10):
 *
 *   | "CMKY" | version (1) | kind (1) | body (32 or 64) | SHA-256(file before it)[0..3] |
 */
#include "internal.h"

static size_t body_size(int kind)
{
	switch (kind) {
	case COMM_KIND_CLIENT_IDENTITY:
	case COMM_KIND_CLIENT_PUBLIC:
		return 64;
	case COMM_KIND_SERVER_KEY:
	case COMM_KIND_SERVER_PUBLIC:
	case COMM_KIND_KEYSERVER_KEY:
	case COMM_KIND_KEYSERVER_PUBLIC:
	case COMM_KIND_OPERATOR_KEY:
	case COMM_KIND_OPERATOR_PUBLIC:
		return 32;
	}
	return 0;
}

static int check(const comm_backend *be, const uint8_t *f, size_t n, uint8_t out[4])
{
	uint8_t h[32];
	comm_part p[] = {PART(f, n)};
	if (be->sha256(be->ctx, h, p, 1))
		return COMM_E_CRYPTO;
	memcpy(out, h, 4);
	return COMM_OK;
}

int comm_keyfile_parse(const comm_backend *be, const uint8_t *f, size_t n, int want, int *kind,
                       const uint8_t **body, size_t *bodylen)
{
	uint8_t c[4];
	size_t bs;
	int err;
	*kind = 0;
	*body = NULL;
	*bodylen = 0;
	if (n < 4 || memcmp(f, COMM_KEYFILE_MAGIC, 4) != 0)
		return COMM_E_KEYFILE_FOREIGN;
	if (n < 6)
		return COMM_E_KEYFILE_TRUNCATED;
	if (f[4] != COMM_KEYFILE_VERSION)
		return COMM_E_KEYFILE_VERSION;
	bs = body_size(f[5]);
	if (bs == 0)
		return COMM_E_KEYFILE_KIND;
	if (n != 6 + bs + 4)
		return COMM_E_KEYFILE_TRUNCATED;
	err = check(be, f, 6 + bs, c);
	if (err)
		return err;
	if (!comm_ct_equal(c, f + 6 + bs, 4))
		return COMM_E_KEYFILE_CHECKSUM;
	if (want != 0 && f[5] != want)
		return COMM_E_KEYFILE_KIND;
	*kind = f[5];
	*body = f + 6;
	*bodylen = bs;
	return COMM_OK;
}

int comm_keyfile_encode(const comm_backend *be, int kind, const uint8_t *body, size_t bodylen, uint8_t *out,
                        size_t cap, size_t *outlen)
{
	size_t bs = body_size(kind);
	int err;
	if (bs == 0)
		return COMM_E_KEYFILE_KIND;
	if (bodylen != bs)
		return COMM_E_KEYFILE_TRUNCATED;
	if (cap < 10 + bs)
		return COMM_E_BUFFER;
	memcpy(out, COMM_KEYFILE_MAGIC, 4);
	out[4] = COMM_KEYFILE_VERSION;
	out[5] = (uint8_t)kind;
	memcpy(out + 6, body, bs);
	err = check(be, out, 6 + bs, out + 6 + bs);
	if (err)
		return err;
	*outlen = 10 + bs;
	return COMM_OK;
}
