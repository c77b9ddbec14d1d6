/*
 * bundle.c - key bundles (PROTOCOL.md 7), 229 bytes:
 *
 *   | version (1) | group (16) | epoch (4) | member (32) | members (32) | enc (32) | wrapped (48) | sig (64) |
 *   sig = Ed25519(Sk_Ks, LabelBundleSig | bytes 0..164)
 *   key = HPKE-OpenBase(enc, skR, info = LabelBundleWrap | version | group | epoch | member, wrapped)
 *
 * Nothing of a bundle is used before its signature verifies, and no key is
 * unwrapped for a bundle addressed to another member (7.5).
 */
#include "internal.h"

int comm_bundle_parse(const uint8_t *b, size_t n, comm_bundle *out)
{
	uint32_t epoch;
	memset(out, 0, sizeof *out);
	if (n != COMM_BUNDLE_SIZE)
		return COMM_E_BUNDLE_LENGTH;
	if (b[0] != COMM_BUNDLE_VERSION)
		return COMM_E_BUNDLE_VERSION;
	epoch = get32(b + COMM_BUNDLE_OFF_EPOCH);
	if (epoch == 0 || epoch == 0xffffffffu)
		return COMM_E_BAD_EPOCH;
	memcpy(out->group, b + COMM_BUNDLE_OFF_GROUP, 16);
	out->epoch = epoch;
	memcpy(out->member, b + COMM_BUNDLE_OFF_MEMBER, 32);
	memcpy(out->members, b + COMM_BUNDLE_OFF_MEMBERS, 32);
	memcpy(out->enc, b + COMM_BUNDLE_OFF_ENC, 32);
	memcpy(out->wrapped, b + COMM_BUNDLE_OFF_WRAPPED, COMM_BUNDLE_WRAPPED_SIZE);
	memcpy(out->sig, b + COMM_BUNDLE_OFF_SIG, 64);
	return COMM_OK;
}

void comm_bundle_encode(const comm_bundle *b, uint8_t out[COMM_BUNDLE_SIZE])
{
	out[0] = COMM_BUNDLE_VERSION;
	memcpy(out + COMM_BUNDLE_OFF_GROUP, b->group, 16);
	put32(out + COMM_BUNDLE_OFF_EPOCH, b->epoch);
	memcpy(out + COMM_BUNDLE_OFF_MEMBER, b->member, 32);
	memcpy(out + COMM_BUNDLE_OFF_MEMBERS, b->members, 32);
	memcpy(out + COMM_BUNDLE_OFF_ENC, b->enc, 32);
	memcpy(out + COMM_BUNDLE_OFF_WRAPPED, b->wrapped, COMM_BUNDLE_WRAPPED_SIZE);
	memcpy(out + COMM_BUNDLE_OFF_SIG, b->sig, 64);
}

int comm_bundle_open(const comm_backend *be, const comm_bundle *b, const uint8_t ks_pk[32],
                     const comm_identity *id, uint8_t key[32])
{
	uint8_t enc[COMM_BUNDLE_SIZE];
	uint8_t info[COMM_BUNDLE_WRAP_INFO_SIZE];
	const size_t ll = COMM_LABEL_LEN(COMM_LABEL_BUNDLE_WRAP);
	int err;
	comm_bundle_encode(b, enc);
	{
		comm_part p[] = {PART(COMM_LABEL_BUNDLE_SIG, COMM_LABEL_LEN(COMM_LABEL_BUNDLE_SIG)),
		                 PART(enc, COMM_BUNDLE_SIGNED_SIZE)};
		if (comm_ed25519_verify(be, b->sig, ks_pk, p, NPARTS(p)))
			return COMM_E_BAD_BUNDLE_SIGNATURE;
	}
	if (!comm_ct_equal(b->member, id->id, 32))
		return COMM_E_WRONG_MEMBER;
	memcpy(info, COMM_LABEL_BUNDLE_WRAP, ll);
	info[ll] = COMM_BUNDLE_VERSION;
	memcpy(info + ll + 1, b->group, 16);
	put32(info + ll + 17, b->epoch);
	memcpy(info + ll + 21, b->member, 32);
	err = comm_hpke_open_base(be, key, b->enc, id->wrap_sk, info, sizeof info, b->wrapped,
	                          COMM_BUNDLE_WRAPPED_SIZE);
	if (err)
		comm_wipe(key, 32);
	return err == COMM_OK ? COMM_OK : COMM_E_UNWRAP;
}

static int cmp32(const uint8_t *a, const uint8_t *b)
{
	return memcmp(a, b, 32);
}

int comm_member_digest(const comm_backend *be, uint8_t *ids, size_t count, uint8_t out[32])
{
	uint8_t n4[4], t[32];
	comm_part p[3];
	/* insertion sort: member lists are small, and this needs no memory */
	for (size_t i = 1; i < count; i++) {
		for (size_t j = i; j > 0 && cmp32(ids + 32 * (j - 1), ids + 32 * j) > 0; j--) {
			memcpy(t, ids + 32 * j, 32);
			memcpy(ids + 32 * j, ids + 32 * (j - 1), 32);
			memcpy(ids + 32 * (j - 1), t, 32);
		}
	}
	put32(n4, (uint32_t)count);
	p[0] = (comm_part)PART(COMM_LABEL_MEMBER_DIGEST, COMM_LABEL_LEN(COMM_LABEL_MEMBER_DIGEST));
	p[1] = (comm_part)PART(n4, 4);
	p[2] = (comm_part)PART(ids, 32 * count);
	return be->sha256(be->ctx, out, p, 3) ? COMM_E_CRYPTO : COMM_OK;
}
