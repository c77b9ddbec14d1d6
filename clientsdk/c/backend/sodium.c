/*
 * sodium.c - the libsodium backend of comm_backend.h.
 *
 * SHA-256, HMAC-SHA256, X25519, Ed25519 and both AEADs map to libsodium
 * one to one. libsodium's Ed25519 takes the message in one piece, so the
 * parts are joined in a buffer on the stack (at most SIGN_MAX bytes: every
 * signature input of protocol version 1 is far below it).
 *
 * Ed25519 verification: libsodium refuses small-order and non-canonical
 * public keys and R values that Go's crypto/ed25519 accepts (PROTOCOL.md
 * 2.2); signatures made as RFC 8032 says verify alike, and no test vector
 * depends on the difference.
 */
#include <string.h>

#include <sodium.h>

#include "comm/comm_sodium.h"

#define SIGN_MAX 512

static int sha256(void *ctx, uint8_t out[32], const comm_part *parts, size_t nparts)
{
	crypto_hash_sha256_state st;
	(void)ctx;
	crypto_hash_sha256_init(&st);
	for (size_t i = 0; i < nparts; i++)
		if (parts[i].n > 0)
			crypto_hash_sha256_update(&st, parts[i].p, parts[i].n);
	crypto_hash_sha256_final(&st, out);
	sodium_memzero(&st, sizeof st);
	return 0;
}

static int hmac_sha256(void *ctx, uint8_t out[32], const uint8_t *key, size_t keylen, const comm_part *parts,
                       size_t nparts)
{
	crypto_auth_hmacsha256_state st;
	static const uint8_t none[1] = {0};
	(void)ctx;
	if (crypto_auth_hmacsha256_init(&st, keylen > 0 ? key : none, keylen) != 0)
		return -1;
	for (size_t i = 0; i < nparts; i++)
		if (parts[i].n > 0)
			crypto_auth_hmacsha256_update(&st, parts[i].p, parts[i].n);
	crypto_auth_hmacsha256_final(&st, out);
	sodium_memzero(&st, sizeof st);
	return 0;
}

static int x25519(void *ctx, uint8_t out[32], const uint8_t scalar[32], const uint8_t *point)
{
	(void)ctx;
	if (point == NULL)
		return crypto_scalarmult_curve25519_base(out, scalar);
	/* libsodium returns -1 for an all-zero result and leaves it in out;
	 * the core checks for it and names it (low_order_point). */
	if (crypto_scalarmult_curve25519(out, scalar, point) != 0)
		memset(out, 0, 32);
	return 0;
}

static int ed25519_public(void *ctx, uint8_t pk[32], const uint8_t seed[32])
{
	uint8_t sk[64];
	int r;
	(void)ctx;
	r = crypto_sign_ed25519_seed_keypair(pk, sk, seed);
	sodium_memzero(sk, sizeof sk);
	return r;
}

static int join(uint8_t *buf, size_t *n, const comm_part *parts, size_t nparts)
{
	*n = 0;
	for (size_t i = 0; i < nparts; i++) {
		if (parts[i].n > SIGN_MAX - *n)
			return -1;
		if (parts[i].n > 0)
			memcpy(buf + *n, parts[i].p, parts[i].n);
		*n += parts[i].n;
	}
	return 0;
}

static int ed25519_sign(void *ctx, uint8_t sig[64], const uint8_t seed[32], const comm_part *parts, size_t nparts)
{
	uint8_t pk[32], sk[64], msg[SIGN_MAX];
	size_t n;
	int r = -1;
	(void)ctx;
	if (join(msg, &n, parts, nparts) == 0 && crypto_sign_ed25519_seed_keypair(pk, sk, seed) == 0)
		r = crypto_sign_ed25519_detached(sig, NULL, msg, n, sk);
	sodium_memzero(sk, sizeof sk);
	return r;
}

static int ed25519_verify(void *ctx, const uint8_t sig[64], const uint8_t pk[32], const comm_part *parts,
                          size_t nparts)
{
	uint8_t msg[SIGN_MAX];
	size_t n;
	(void)ctx;
	if (join(msg, &n, parts, nparts) != 0)
		return -1;
	return crypto_sign_ed25519_verify_detached(sig, msg, n, pk);
}

static int aead_seal(void *ctx, int aead, uint8_t *out, const uint8_t key[32], const uint8_t *nonce,
                     const uint8_t *ad, size_t adlen, const uint8_t *pt, size_t n)
{
	(void)ctx;
	switch (aead) {
	case COMM_AEAD_CHACHA20POLY1305:
		return crypto_aead_chacha20poly1305_ietf_encrypt_detached(out, out + n, NULL, pt, n, ad, adlen, NULL,
		                                                           nonce, key);
	case COMM_AEAD_XCHACHA20POLY1305:
		return crypto_aead_xchacha20poly1305_ietf_encrypt_detached(out, out + n, NULL, pt, n, ad, adlen, NULL,
		                                                            nonce, key);
	}
	return -1;
}

static int aead_open(void *ctx, int aead, uint8_t *out, const uint8_t key[32], const uint8_t *nonce,
                     const uint8_t *ad, size_t adlen, const uint8_t *ct, size_t n)
{
	(void)ctx;
	if (n < 16)
		return -1;
	switch (aead) {
	case COMM_AEAD_CHACHA20POLY1305:
		return crypto_aead_chacha20poly1305_ietf_decrypt_detached(out, NULL, ct, n - 16, ct + n - 16, ad, adlen,
		                                                           nonce, key);
	case COMM_AEAD_XCHACHA20POLY1305:
		return crypto_aead_xchacha20poly1305_ietf_decrypt_detached(out, NULL, ct, n - 16, ct + n - 16, ad,
		                                                            adlen, nonce, key);
	}
	return -1;
}

int comm_sodium_backend(comm_backend *be)
{
	if (sodium_init() < 0)
		return -1;
	memset(be, 0, sizeof *be);
	be->sha256 = sha256;
	be->hmac_sha256 = hmac_sha256;
	be->x25519 = x25519;
	be->ed25519_public = ed25519_public;
	be->ed25519_sign = ed25519_sign;
	be->ed25519_verify = ed25519_verify;
	be->aead_seal = aead_seal;
	be->aead_open = aead_open;
	return 0;
}
