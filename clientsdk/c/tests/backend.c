/*
 * backend.c - the libsodium backend's Ed25519 over parts against
 * libsodium's own crypto_sign_detached and crypto_sign_verify_detached:
 * the same signatures for messages of every size cut anywhere, and
 * refusals of altered ones.
 */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "comm/comm_sodium.h"

static uint8_t msg[70000];

int main(void)
{
	comm_backend be;
	int failures = 0;
	if (comm_sodium_backend(&be) != 0)
		return 2;
	for (int i = 0; i < 300; i++) {
		uint8_t seed[32], pk[32], sk[64], want[64], got[64];
		size_t n = i < 290 ? randombytes_uniform(600) : sizeof msg - randombytes_uniform(100);
		size_t cut1 = randombytes_uniform((uint32_t)n + 1), cut2 = cut1 + randombytes_uniform((uint32_t)(n - cut1) + 1);
		comm_part parts[3] = {{msg, cut1}, {msg + cut1, cut2 - cut1}, {msg + cut2, n - cut2}};
		randombytes_buf(seed, sizeof seed);
		randombytes_buf(msg, n);
		crypto_sign_ed25519_seed_keypair(pk, sk, seed);
		crypto_sign_ed25519_detached(want, NULL, msg, n, sk);
		if (be.ed25519_sign(be.ctx, got, seed, parts, 3) != 0 || memcmp(got, want, 64) != 0) {
			fprintf(stderr, "FAIL: signature of %zu bytes differs from crypto_sign_detached\n", n);
			failures++;
		}
		if (be.ed25519_verify(be.ctx, want, pk, parts, 3) != 0) {
			fprintf(stderr, "FAIL: a valid signature of %zu bytes refused\n", n);
			failures++;
		}
		want[randombytes_uniform(64)] ^= (uint8_t)(1u << randombytes_uniform(8));
		if (be.ed25519_verify(be.ctx, want, pk, parts, 3) == 0) {
			fprintf(stderr, "FAIL: an altered signature verifies\n");
			failures++;
		}
		if (n > 0) {
			crypto_sign_ed25519_detached(want, NULL, msg, n, sk);
			msg[randombytes_uniform((uint32_t)n)] ^= 1;
			if (be.ed25519_verify(be.ctx, want, pk, parts, 3) == 0) {
				fprintf(stderr, "FAIL: the signature of an altered message verifies\n");
				failures++;
			}
		}
	}
	if (failures)
		return 1;
	printf("backend: ok\n");
	return 0;
}
