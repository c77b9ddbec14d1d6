/*
 * sodium.c - the libsodium backend of comm_backend.h.
 *
 * SHA-256, HMAC-SHA256, X25519, Ed25519 and both AEADs map to libsodium
 * one to one, except Ed25519: libsodium's takes the message in one piece,
 * so sign and verify are RFC 8032 written out on libsodium's SHA-512 and
 * group operations, over the parts as they come (no copy, no buffer).
 */
#include <string.h>

#include <sodium.h>

#include "comm/comm_sodium.h"

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

/* sha512_reduce: SHA-512 of p1 | p2 | the parts, reduced mod L. */
static void sha512_reduce(uint8_t out[32], const uint8_t *p1, size_t n1, const uint8_t *p2, size_t n2,
                          const comm_part *parts, size_t nparts)
{
	crypto_hash_sha512_state st;
	uint8_t h[64];
	crypto_hash_sha512_init(&st);
	crypto_hash_sha512_update(&st, p1, n1);
	if (n2 > 0)
		crypto_hash_sha512_update(&st, p2, n2);
	for (size_t i = 0; i < nparts; i++)
		if (parts[i].n > 0)
			crypto_hash_sha512_update(&st, parts[i].p, parts[i].n);
	crypto_hash_sha512_final(&st, h);
	crypto_core_ed25519_scalar_reduce(out, h);
	sodium_memzero(h, sizeof h);
	sodium_memzero(&st, sizeof st);
}

/* ed25519_sign is RFC 8032's Ed25519 (5.1.6) over the parts, with
 * libsodium's SHA-512 and group operations: libsodium's own
 * crypto_sign_detached wants the message in one piece, and an envelope's
 * signed bytes are up to 60 KiB behind a label. Deterministic: the same
 * signature as crypto_sign_detached (tests/backend.c checks it). */
static int ed25519_sign(void *ctx, uint8_t sig[64], const uint8_t seed[32], const comm_part *parts, size_t nparts)
{
	uint8_t az[64], a[64], pk[32], sk[64], r[32], k[32], ka[32];
	int err;
	(void)ctx;
	crypto_hash_sha512(az, seed, 32);
	az[0] &= 248;
	az[31] &= 127;
	az[31] |= 64;
	memset(a, 0, sizeof a);
	memcpy(a, az, 32);
	crypto_core_ed25519_scalar_reduce(a, a);
	err = crypto_sign_ed25519_seed_keypair(pk, sk, seed);
	sha512_reduce(r, az + 32, 32, NULL, 0, parts, nparts);
	if (!err)
		err = crypto_scalarmult_ed25519_base_noclamp(sig, r); /* R = rB */
	if (!err) {
		sha512_reduce(k, sig, 32, pk, 32, parts, nparts);
		crypto_core_ed25519_scalar_mul(ka, k, a);
		crypto_core_ed25519_scalar_add(sig + 32, r, ka); /* S = r + ka mod L */
	}
	sodium_memzero(az, sizeof az);
	sodium_memzero(a, sizeof a);
	sodium_memzero(sk, sizeof sk);
	sodium_memzero(r, sizeof r);
	sodium_memzero(ka, sizeof ka);
	return err ? -1 : 0;
}

/* scalarmult_any: q = [k]A for any point A, k < L. libsodium's
 * crypto_scalarmult_ed25519_noclamp refuses a point outside the main
 * subgroup, and a result or a k of 0; such a key (not of small order, but
 * with a small-order component) is valid by PROTOCOL.md 2.2, as
 * crypto_sign_verify_detached has it, so it takes a plain double-and-add
 * on crypto_core_ed25519_add (variable time: A and k are public). */
static int scalarmult_any(uint8_t q[32], const uint8_t k[32], const uint8_t a[32])
{
	static const uint8_t identity[32] = {1};
	if (sodium_is_zero(k, 32)) {
		memcpy(q, identity, 32);
		return 0;
	}
	if (crypto_core_ed25519_is_valid_point(a))
		return crypto_scalarmult_ed25519_noclamp(q, k, a);
	memcpy(q, identity, 32);
	for (int i = 255; i >= 0; i--) {
		if (crypto_core_ed25519_add(q, q, q) != 0)
			return -1;
		if ((k[i / 8] >> (i % 8)) & 1)
			if (crypto_core_ed25519_add(q, q, a) != 0)
				return -1; /* A is no point */
	}
	return 0;
}

/* ed25519_verify is rule 4 of PROTOCOL.md 2.2 (the core checked rules
 * 1-3, comm_ed25519_verify): the encoding of [S]B - [k]A, with k =
 * SHA-512(R | A | message) mod L, equals R, as in libsodium's
 * crypto_sign_verify_detached (and Go's crypto/ed25519). S < L is checked
 * again here, so that the equation is never computed on a wider S. */
static int ed25519_verify(void *ctx, const uint8_t sig[64], const uint8_t pk[32], const comm_part *parts,
                          size_t nparts)
{
	static const uint8_t identity[32] = {1};
	uint8_t s[64], k[32], sb[32], ka[32], check[32];
	(void)ctx;
	memset(s, 0, sizeof s);
	memcpy(s, sig + 32, 32);
	crypto_core_ed25519_scalar_reduce(s, s);
	if (sodium_memcmp(s, sig + 32, 32) != 0)
		return -1; /* S >= L */
	sha512_reduce(k, sig, 32, pk, 32, parts, nparts);
	if (sodium_is_zero(sig + 32, 32))
		memcpy(sb, identity, 32); /* [0]B: libsodium's base multiplication refuses a zero scalar */
	else if (crypto_scalarmult_ed25519_base_noclamp(sb, sig + 32) != 0)
		return -1;
	if (scalarmult_any(ka, k, pk) != 0 || crypto_core_ed25519_sub(check, sb, ka) != 0)
		return -1;
	return sodium_memcmp(check, sig, 32) == 0 ? 0 : -1;
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
