/*
 * comm_backend.h - the crypto backend: the few primitives of PROTOCOL.md
 * 2.2 that the core needs. HKDF and HPKE are built in the core from these.
 *
 * Rules for every function:
 *  - return 0 on success, nonzero on failure (the core reports
 *    crypto_backend, or the protocol error the step defines: a failed
 *    verify is bad_*_signature, a failed open is decrypt or unwrap);
 *  - hold no state between calls beyond ctx, allocate nothing the caller
 *    must free, and be callable from one thread at a time per ctx;
 *  - inputs given as parts (comm_part) are hashed or signed as their
 *    concatenation, in order; a part may have length 0.
 * A secure element may implement ed25519_sign with a key it holds: the
 * core passes the 32-byte seed it was configured with, which such a
 * backend may treat as a key handle.
 */
#ifndef COMM_BACKEND_H
#define COMM_BACKEND_H

#include <stddef.h>
#include <stdint.h>

typedef struct comm_part {
	const uint8_t *p;
	size_t n;
} comm_part;

enum comm_aead {
	COMM_AEAD_CHACHA20POLY1305 = 1,  /* RFC 8439: 12-byte nonce (HPKE, 7.2) */
	COMM_AEAD_XCHACHA20POLY1305 = 2  /* 24-byte nonce (envelopes, 6.2) */
};

typedef struct comm_backend {
	void *ctx;
	/* SHA-256 of the parts. */
	int (*sha256)(void *ctx, uint8_t out[32], const comm_part *parts, size_t nparts);
	/* HMAC-SHA256 under key (any length, 0 allowed) over the parts. */
	int (*hmac_sha256)(void *ctx, uint8_t out[32], const uint8_t *key, size_t keylen,
	                   const comm_part *parts, size_t nparts);
	/* out = X25519(scalar, point); point NULL means the base point 9. An
	 * all-zero result is returned as such (the core refuses it). */
	int (*x25519)(void *ctx, uint8_t out[32], const uint8_t scalar[32], const uint8_t *point);
	/* The Ed25519 public key of a 32-byte seed. */
	int (*ed25519_public)(void *ctx, uint8_t pk[32], const uint8_t seed[32]);
	/* Pure Ed25519 (RFC 8032) signature of the parts' concatenation. */
	int (*ed25519_sign)(void *ctx, uint8_t sig[64], const uint8_t seed[32],
	                    const comm_part *parts, size_t nparts);
	/* 0 if the cofactorless equation of PROTOCOL.md 2.2 (rule 4) holds:
	 * the encoding of [S]B - [k]A equals R. The core calls it only after
	 * comm_ed25519_verify checked rules 1-3 (A canonical and not of small
	 * order, R not of small order, S < L); A may have a component of small
	 * order besides (libsodium accepts such keys, so the rule does). */
	int (*ed25519_verify)(void *ctx, const uint8_t sig[64], const uint8_t pk[32],
	                      const comm_part *parts, size_t nparts);
	/* AEAD seal: out (n + 16 bytes) = ciphertext | tag. out may equal pt. */
	int (*aead_seal)(void *ctx, int aead, uint8_t *out, const uint8_t key[32], const uint8_t *nonce,
	                 const uint8_t *ad, size_t adlen, const uint8_t *pt, size_t n);
	/* AEAD open of ct (n bytes, tag included, n >= 16) into out (n - 16
	 * bytes); out may equal ct. On failure out's content is undefined. */
	int (*aead_open)(void *ctx, int aead, uint8_t *out, const uint8_t key[32], const uint8_t *nonce,
	                 const uint8_t *ad, size_t adlen, const uint8_t *ct, size_t n);
} comm_backend;

#endif
