/*
 * envelope.c - group messages (PROTOCOL.md 6).
 *
 *   | version (1) | group (16) | epoch (4) | sender (32) | counter (8) | nonce (24) | ciphertext | tag (16) | signature (64) |
 *   AD = bytes 0..60; XChaCha20-Poly1305 under the group key of (group, epoch)
 *   signature = Ed25519(sender's identity key, LabelEnvelopeSig | version | suite | bytes 0 .. before the signature)
 *
 * A reader checks the fields (comm_env_parse), then the signature under the
 * ClientID the envelope names (comm_env_verify), and only then opens the
 * AEAD (comm_env_open_verified); comm_env_open does all three.
 */
#include "internal.h"

int comm_env_parse(const uint8_t *env, size_t n, comm_env_header *h)
{
	uint32_t epoch;
	memset(h, 0, sizeof *h);
	if (n < COMM_ENV_OVERHEAD || n > COMM_ENV_MAX_SIZE)
		return COMM_E_ENVELOPE_LENGTH;
	if (env[0] != COMM_ENV_VERSION)
		return COMM_E_ENVELOPE_VERSION;
	if (get64(env + COMM_ENV_OFF_COUNTER) == 0)
		return COMM_E_ZERO_COUNTER;
	epoch = get32(env + COMM_ENV_OFF_EPOCH);
	if (epoch == 0 || epoch == 0xffffffffu)
		return COMM_E_BAD_EPOCH;
	memcpy(h->group, env + COMM_ENV_OFF_GROUP, COMM_GROUP_ID_SIZE);
	h->epoch = epoch;
	memcpy(h->sender, env + COMM_ENV_OFF_SENDER, COMM_CLIENT_ID_SIZE);
	h->counter = get64(env + COMM_ENV_OFF_COUNTER);
	return COMM_OK;
}

/* sig_parts: LabelEnvelopeSig | version | suite | env[0 .. n - 65]. */
static void sig_parts(comm_part p[3], uint8_t vs[3], const uint8_t *env, size_t n)
{
	vs[0] = COMM_VERSION;
	put16(vs + 1, COMM_SUITE);
	p[0] = (comm_part)PART(COMM_LABEL_ENVELOPE_SIG, COMM_LABEL_LEN(COMM_LABEL_ENVELOPE_SIG));
	p[1] = (comm_part)PART(vs, 3);
	p[2] = (comm_part)PART(env, n - COMM_ENV_SIG_SIZE);
}

int comm_env_verify(const comm_backend *be, const uint8_t *env, size_t n, comm_env_header *h)
{
	int err = comm_env_parse(env, n, h);
	if (!err) {
		uint8_t vs[3];
		comm_part p[3];
		sig_parts(p, vs, env, n);
		if (comm_ed25519_verify(be, env + n - COMM_ENV_SIG_SIZE, h->sender, p, 3) != 0) {
			memset(h, 0, sizeof *h);
			err = COMM_E_BAD_ENVELOPE_SIGNATURE;
		}
	}
	return err;
}

int comm_env_seal(const comm_backend *be, uint8_t *out, size_t cap, const comm_env_header *h, const uint8_t key[32],
                  const uint8_t nonce[24], const uint8_t *pt, size_t n, const comm_identity *signer, size_t *outlen)
{
	size_t len = n + COMM_ENV_OVERHEAD;
	if (n > COMM_MAX_PAYLOAD)
		return COMM_E_PAYLOAD_TOO_LARGE;
	if (h->counter == 0)
		return COMM_E_ZERO_COUNTER;
	if (h->counter == COMM_EXHAUSTED_COUNTER)
		return COMM_E_COUNTER_EXHAUSTED;
	if (h->epoch == 0 || h->epoch == 0xffffffffu)
		return COMM_E_BAD_EPOCH;
	if (signer == NULL || !comm_ct_equal(signer->id, h->sender, 32))
		return COMM_E_WRONG_SIGNER;
	if (cap < len)
		return COMM_E_BUFFER;
	if (n > 0 && pt != out + COMM_ENV_OFF_CT)
		memmove(out + COMM_ENV_OFF_CT, pt, n);
	out[0] = COMM_ENV_VERSION;
	memcpy(out + COMM_ENV_OFF_GROUP, h->group, COMM_GROUP_ID_SIZE);
	put32(out + COMM_ENV_OFF_EPOCH, h->epoch);
	memcpy(out + COMM_ENV_OFF_SENDER, h->sender, COMM_CLIENT_ID_SIZE);
	put64(out + COMM_ENV_OFF_COUNTER, h->counter);
	memcpy(out + COMM_ENV_OFF_NONCE, nonce, COMM_ENV_NONCE_SIZE);
	if (be->aead_seal(be->ctx, COMM_AEAD_XCHACHA20POLY1305, out + COMM_ENV_OFF_CT, key, out + COMM_ENV_OFF_NONCE,
	                  out, COMM_ENV_HEADER_SIZE, out + COMM_ENV_OFF_CT, n)) {
		comm_wipe(out, len);
		return COMM_E_CRYPTO;
	}
	{
		uint8_t vs[3];
		comm_part p[3];
		sig_parts(p, vs, out, len);
		if (be->ed25519_sign(be->ctx, out + len - COMM_ENV_SIG_SIZE, signer->seed, p, 3) != 0) {
			comm_wipe(out, len);
			return COMM_E_CRYPTO;
		}
	}
	*outlen = len;
	return COMM_OK;
}

int comm_env_open_verified(const comm_backend *be, uint8_t *env, size_t n, const uint8_t key[32], uint8_t **payload,
                           size_t *plen)
{
	size_t ct = n - COMM_ENV_OFF_CT - COMM_ENV_SIG_SIZE; /* ciphertext and tag */
	*payload = NULL;
	*plen = 0;
	if (n < COMM_ENV_OVERHEAD || n > COMM_ENV_MAX_SIZE)
		return COMM_E_ENVELOPE_LENGTH;
	if (be->aead_open(be->ctx, COMM_AEAD_XCHACHA20POLY1305, env + COMM_ENV_OFF_CT, key, env + COMM_ENV_OFF_NONCE,
	                  env, COMM_ENV_HEADER_SIZE, env + COMM_ENV_OFF_CT, ct)) {
		comm_wipe(env + COMM_ENV_OFF_CT, ct);
		return COMM_E_DECRYPT;
	}
	*payload = env + COMM_ENV_OFF_CT;
	*plen = n - COMM_ENV_OVERHEAD;
	return COMM_OK;
}

int comm_env_open(const comm_backend *be, uint8_t *env, size_t n, const uint8_t key[32], comm_env_header *h,
                  uint8_t **payload, size_t *plen)
{
	int err = comm_env_verify(be, env, n, h);
	*payload = NULL;
	*plen = 0;
	if (!err)
		err = comm_env_open_verified(be, env, n, key, payload, plen);
	if (err)
		memset(h, 0, sizeof *h);
	return err;
}
