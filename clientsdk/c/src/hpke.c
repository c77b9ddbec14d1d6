/*
 * hpke.c - HKDF-SHA256 (RFC 5869) and HPKE base mode (RFC 9180) with
 * DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and ChaCha20Poly1305, built on
 * the backend's HMAC, X25519 and AEAD. Only what key bundles need:
 * single-shot seal and open at sequence number 0, empty aad.
 */
#include "internal.h"

int comm_hkdf_extract(const comm_backend *be, uint8_t prk[32], const uint8_t *salt, size_t saltlen,
                      const comm_part *ikm, size_t nikm)
{
	/* An empty salt is HMAC's empty key, which HMAC pads exactly as the
	 * 32 zero bytes RFC 5869 names. */
	return be->hmac_sha256(be->ctx, prk, salt, saltlen, ikm, nikm) ? COMM_E_CRYPTO : COMM_OK;
}

#define HKDF_MAX_INFO_PARTS 8

int comm_hkdf_expand(const comm_backend *be, uint8_t *out, size_t len, const uint8_t prk[32],
                     const comm_part *info, size_t ninfo)
{
	uint8_t t[32];
	uint8_t ctr = 0;
	comm_part parts[HKDF_MAX_INFO_PARTS + 2];
	if (len > 255 * 32 || ninfo > HKDF_MAX_INFO_PARTS)
		return COMM_E_ARG;
	for (size_t done = 0; done < len; done += 32) {
		size_t np = 0;
		ctr++;
		if (ctr > 1)
			parts[np++] = (comm_part)PART(t, 32);
		for (size_t i = 0; i < ninfo; i++)
			parts[np++] = info[i];
		parts[np++] = (comm_part)PART(&ctr, 1);
		if (be->hmac_sha256(be->ctx, t, prk, 32, parts, np)) {
			comm_wipe(t, sizeof t);
			comm_wipe(out, len);
			return COMM_E_CRYPTO;
		}
		memcpy(out + done, t, len - done < 32 ? len - done : 32);
	}
	comm_wipe(t, sizeof t);
	return COMM_OK;
}

static const uint8_t hpke_v1[7] = {'H', 'P', 'K', 'E', '-', 'v', '1'};
/* "KEM" | kem_id 0x0020 */
static const uint8_t suite_kem[5] = {'K', 'E', 'M', 0x00, 0x20};
/* "HPKE" | kem_id 0x0020 | kdf_id 0x0001 | aead_id 0x0003 */
static const uint8_t suite_hpke[10] = {'H', 'P', 'K', 'E', 0x00, 0x20, 0x00, 0x01, 0x00, 0x03};

/* LabeledExtract(salt, label, ikm) = Extract(salt, "HPKE-v1" | suite | label | ikm) */
static int labeled_extract(const comm_backend *be, uint8_t prk[32], const uint8_t *salt, size_t saltlen,
                           const uint8_t *suite, size_t suitelen, const char *label, const uint8_t *ikm,
                           size_t ikmlen)
{
	comm_part parts[] = {PART(hpke_v1, 7), PART(suite, suitelen), PART(label, strlen(label)),
	                     PART(ikm, ikmlen)};
	return comm_hkdf_extract(be, prk, salt, saltlen, parts, NPARTS(parts));
}

/* LabeledExpand(prk, label, info, L) = Expand(prk, I2OSP(L, 2) | "HPKE-v1" | suite | label | info, L) */
static int labeled_expand(const comm_backend *be, uint8_t *out, size_t len, const uint8_t prk[32],
                          const uint8_t *suite, size_t suitelen, const char *label, const uint8_t *info,
                          size_t infolen)
{
	uint8_t l2[2];
	put16(l2, (uint16_t)len);
	comm_part parts[] = {PART(l2, 2), PART(hpke_v1, 7), PART(suite, suitelen), PART(label, strlen(label)),
	                     PART(info, infolen)};
	return comm_hkdf_expand(be, out, len, prk, parts, NPARTS(parts));
}

/* ExtractAndExpand(dh, enc | pkR): the KEM's shared secret. */
static int kem_shared(const comm_backend *be, uint8_t ss[32], const uint8_t dh[32], const uint8_t enc[32],
                      const uint8_t pkr[32])
{
	uint8_t prk[32], ctx[64];
	int err;
	if (is_zero32(dh))
		return COMM_E_LOW_ORDER_POINT;
	memcpy(ctx, enc, 32);
	memcpy(ctx + 32, pkr, 32);
	err = labeled_extract(be, prk, NULL, 0, suite_kem, sizeof suite_kem, "eae_prk", dh, 32);
	if (!err)
		err = labeled_expand(be, ss, 32, prk, suite_kem, sizeof suite_kem, "shared_secret", ctx, 64);
	comm_wipe(prk, sizeof prk);
	return err;
}

/* KeySchedule for mode_base: key (32) and base_nonce (12). */
static int key_schedule(const comm_backend *be, uint8_t key[32], uint8_t nonce[12], const uint8_t ss[32],
                        const uint8_t *info, size_t infolen)
{
	uint8_t ksc[65], secret[32];
	int err;
	ksc[0] = 0x00; /* mode_base */
	err = labeled_extract(be, ksc + 1, NULL, 0, suite_hpke, sizeof suite_hpke, "psk_id_hash", NULL, 0);
	if (!err)
		err = labeled_extract(be, ksc + 33, NULL, 0, suite_hpke, sizeof suite_hpke, "info_hash", info,
		                      infolen);
	if (!err)
		err = labeled_extract(be, secret, ss, 32, suite_hpke, sizeof suite_hpke, "secret", NULL, 0);
	if (!err)
		err = labeled_expand(be, key, 32, secret, suite_hpke, sizeof suite_hpke, "key", ksc, sizeof ksc);
	if (!err)
		err = labeled_expand(be, nonce, 12, secret, suite_hpke, sizeof suite_hpke, "base_nonce", ksc,
		                     sizeof ksc);
	comm_wipe(secret, sizeof secret);
	return err;
}

int comm_hpke_open_base(const comm_backend *be, uint8_t *pt, const uint8_t enc[32], const uint8_t skr[32],
                        const uint8_t *info, size_t infolen, const uint8_t *ct, size_t ctlen)
{
	uint8_t dh[32], pkr[32], ss[32], key[32], nonce[12];
	int err = COMM_E_CRYPTO;
	if (ctlen < 16)
		return COMM_E_UNWRAP;
	if (be->x25519(be->ctx, dh, skr, enc) == 0 && be->x25519(be->ctx, pkr, skr, NULL) == 0)
		err = kem_shared(be, ss, dh, enc, pkr);
	if (!err)
		err = key_schedule(be, key, nonce, ss, info, infolen);
	if (!err && be->aead_open(be->ctx, COMM_AEAD_CHACHA20POLY1305, pt, key, nonce, NULL, 0, ct, ctlen))
		err = COMM_E_UNWRAP;
	comm_wipe(dh, sizeof dh);
	comm_wipe(ss, sizeof ss);
	comm_wipe(key, sizeof key);
	if (err)
		comm_wipe(pt, ctlen - 16);
	return err;
}

#ifndef COMM_CLIENT_ONLY
/* Seal is for tests: a client only opens bundles. */
int comm_hpke_seal_base(const comm_backend *be, uint8_t enc[32], uint8_t *ct, const uint8_t pkr[32],
                        const uint8_t eph[32], const uint8_t *info, size_t infolen, const uint8_t *pt,
                        size_t ptlen)
{
	uint8_t dh[32], ss[32], key[32], nonce[12];
	int err = COMM_E_CRYPTO;
	if (be->x25519(be->ctx, enc, eph, NULL) == 0 && be->x25519(be->ctx, dh, eph, pkr) == 0)
		err = kem_shared(be, ss, dh, enc, pkr);
	if (!err)
		err = key_schedule(be, key, nonce, ss, info, infolen);
	if (!err && be->aead_seal(be->ctx, COMM_AEAD_CHACHA20POLY1305, ct, key, nonce, NULL, 0, pt, ptlen))
		err = COMM_E_CRYPTO;
	comm_wipe(dh, sizeof dh);
	comm_wipe(ss, sizeof ss);
	comm_wipe(key, sizeof key);
	return err;
}
#endif
