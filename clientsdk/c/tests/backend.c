/*
 * backend.c - the libsodium backend's Ed25519 over parts against
 * libsodium's own crypto_sign_detached and crypto_sign_verify_detached:
 * the same signatures for messages of every size cut anywhere, and
 * refusals of altered ones. Then the strict rules of PROTOCOL.md 2.2
 * (comm_ed25519_verify over the backend) against
 * crypto_sign_verify_detached: every encoding the core refuses as of small
 * order or not canonical, libsodium refuses too, also in signatures whose
 * equation holds; keys with a small-order component verify alike.
 */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "comm/comm.h"
#include "comm/comm_sodium.h"

static uint8_t msg[70000];
static comm_backend be;
static int failures;

#define CHECK(cond, ...)                                                                                   \
	do {                                                                                               \
		if (!(cond)) {                                                                             \
			fprintf(stderr, "FAIL: " __VA_ARGS__);                                             \
			fputc('\n', stderr);                                                               \
			failures++;                                                                        \
		}                                                                                          \
	} while (0)

static const uint8_t identity[32] = {1};

/* times: q = [n]t by additions (n < 8; t of small order); -1 if t is no point. */
static int times(uint8_t q[32], unsigned n, const uint8_t t[32])
{
	memcpy(q, identity, 32);
	for (unsigned i = 0; i < n; i++)
		if (crypto_core_ed25519_add(q, q, t) != 0)
			return -1;
	return 0;
}

/* challenge: k = SHA-512(R | A | m) mod L. */
static void challenge(uint8_t k[32], const uint8_t r[32], const uint8_t a[32], const uint8_t *m, size_t n)
{
	uint8_t h[64];
	crypto_hash_sha512_state st;
	crypto_hash_sha512_init(&st);
	crypto_hash_sha512_update(&st, r, 32);
	crypto_hash_sha512_update(&st, a, 32);
	crypto_hash_sha512_update(&st, m, n);
	crypto_hash_sha512_final(&st, h);
	crypto_core_ed25519_scalar_reduce(k, h);
}

/* both: the outcome of comm_ed25519_verify and of libsodium (0 valid), and
 * whether the equation alone (the backend) holds. */
static void both(const uint8_t sig[64], const uint8_t pk[32], const uint8_t *m, size_t n, int *ours, int *sodium,
                 int *equation)
{
	comm_part part = {m, n};
	*ours = comm_ed25519_verify(&be, sig, pk, &part, 1) != 0;
	*sodium = crypto_sign_verify_detached(sig, m, n, pk) != 0;
	*equation = be.ed25519_verify(be.ctx, sig, pk, &part, 1) != 0;
}

/* strict: the blocklist, the canonical check and keys with a small-order
 * component, each against libsodium. */
static void strict(void)
{
	static const uint8_t small_y[7][32] = {
	    {0x00},
	    {0x01},
	    {0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0,
	     0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05},
	    {0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f,
	     0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a},
	    {0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
	    {0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
	    {0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
	};
	uint8_t m[8] = "message", sig[64], pk[32], a[32], r[32], k[32], t[32], q[32], ab[32];
	int ours, sodium, eq, small_points = 0, agree_ok = 0, agree_bad = 0;

	/* The identity as key, R = identity, S = 0: the equation holds for every message. */
	memset(sig, 0, sizeof sig);
	sig[0] = 1;
	both(sig, identity, m, sizeof m, &ours, &sodium, &eq);
	CHECK(eq == 0, "the equation fails for the identity key and R = identity, S = 0");
	CHECK(ours && sodium, "the identity key with R = identity, S = 0 verifies (ours %d, libsodium %d)", !ours,
	      !sodium);

	for (int i = 0; i < 14; i++) {
		const uint8_t *e = t;
		memcpy(t, small_y[i / 2], 32);
		t[31] |= (uint8_t)((i & 1) << 7);
		CHECK(comm_ed25519_small_order(e), "blocklist entry %d not of small order", i);
		if (times(q, 8, e) != 0)
			continue; /* no point (x = 0 with the sign bit set): refused either way */
		CHECK(memcmp(q, identity, 32) == 0, "blocklist entry %d: [8]T is not the identity", i);
		small_points++;
		/* As the key A = T, with R = rB, S = r: the equation holds when [k]T = identity. */
		crypto_core_ed25519_scalar_random(r);
		crypto_scalarmult_ed25519_base_noclamp(sig, r);
		memcpy(sig + 32, r, 32);
		for (int j = 0; j < 256; j++) {
			m[7] = (uint8_t)j;
			challenge(k, sig, e, m, sizeof m);
			times(q, k[0] & 7u, e);
			if (memcmp(q, identity, 32) == 0)
				break;
		}
		both(sig, e, m, sizeof m, &ours, &sodium, &eq);
		CHECK(eq == 0, "blocklist entry %d as key: no signature found whose equation holds", i);
		CHECK(ours && sodium, "blocklist entry %d as key verifies (ours %d, libsodium %d)", i, !ours, !sodium);
		/* As R = T, under A = aB - T, S = ka: the equation gives [k]T, = R when k = 1 mod 8. */
		crypto_core_ed25519_scalar_random(a);
		crypto_scalarmult_ed25519_base_noclamp(ab, a);
		crypto_core_ed25519_sub(pk, ab, e);
		memcpy(sig, e, 32);
		for (int j = 0; j < 256; j++) {
			m[7] = (uint8_t)j;
			challenge(k, sig, pk, m, sizeof m);
			times(q, k[0] & 7u, e);
			if (memcmp(q, e, 32) == 0)
				break;
		}
		crypto_core_ed25519_scalar_mul(sig + 32, k, a);
		both(sig, pk, m, sizeof m, &ours, &sodium, &eq);
		/* R is compared as bytes: only a canonical encoding can equal [S]B - [k]A */
		times(q, 1, e);
		CHECK(eq == 0 || memcmp(q, e, 32) != 0, "blocklist entry %d as R: no signature found whose equation holds",
		      i);
		CHECK(ours && sodium, "blocklist entry %d as R verifies (ours %d, libsodium %d)", i, !ours, !sodium);
	}
	CHECK(small_points >= 12, "only %d blocklist entries decode", small_points);

	/* Not canonical: y (sign masked) in p .. 2^255-1, as the key. */
	for (int i = 0; i < 38; i++) {
		uint8_t e[32];
		memset(e, 0xff, sizeof e);
		e[0] = (uint8_t)(0xed + i / 2);
		e[31] = (uint8_t)(0x7f | (i & 1) << 7);
		CHECK(!comm_ed25519_canonical(e), "y = p + %d is canonical", i / 2);
		crypto_core_ed25519_scalar_random(r);
		crypto_scalarmult_ed25519_base_noclamp(sig, r);
		memcpy(sig + 32, r, 32);
		both(sig, e, m, sizeof m, &ours, &sodium, &eq);
		CHECK(ours && sodium, "non-canonical key y = p + %d verifies (ours %d, libsodium %d)", i / 2, !ours, !sodium);
	}
	memset(t, 0xff, sizeof t);
	t[0] = 0xec;
	t[31] = 0x7f;
	CHECK(comm_ed25519_canonical(t), "y = p - 1 is not canonical");

	/* A key with a component of order 8, A = aB + T8, R = rB, S = r + ka:
	 * the equation holds exactly when 8 divides k; ours and libsodium agree. */
	for (int j = 0; j < 48; j++) {
		crypto_core_ed25519_scalar_random(a);
		crypto_core_ed25519_scalar_random(r);
		crypto_scalarmult_ed25519_base_noclamp(ab, a);
		crypto_core_ed25519_add(pk, ab, small_y[2]);
		crypto_scalarmult_ed25519_base_noclamp(sig, r);
		challenge(k, sig, pk, m, sizeof m);
		crypto_core_ed25519_scalar_mul(q, k, a);
		crypto_core_ed25519_scalar_add(sig + 32, r, q);
		both(sig, pk, m, sizeof m, &ours, &sodium, &eq);
		CHECK(ours == sodium, "a key with an order-8 component: ours %d, libsodium %d (k mod 8 = %u)", !ours, !sodium,
		      k[0] & 7u);
		if (!sodium)
			agree_ok++;
		else
			agree_bad++;
	}
	CHECK(agree_ok > 0 && agree_bad > 0, "keys with an order-8 component: %d valid, %d refused", agree_ok, agree_bad);
}

int main(void)
{
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
	strict();
	if (failures)
		return 1;
	printf("backend: ok\n");
	return 0;
}
