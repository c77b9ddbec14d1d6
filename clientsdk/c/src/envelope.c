/*
 * envelope.c - group messages (PROTOCOL.md 6).
 *
 *   | version (1) | group (16) | epoch (4) | sender (32) | counter (8) | nonce (24) | ciphertext | tag (16) |
 *   AD = bytes 0..60; XChaCha20-Poly1305 under the group key of (group, epoch)
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

int comm_env_seal(const comm_backend *be, uint8_t *out, size_t cap, const comm_env_header *h,
                  const uint8_t key[32], const uint8_t nonce[24], const uint8_t *pt, size_t n, size_t *outlen)
{
	if (n > COMM_MAX_PAYLOAD)
		return COMM_E_PAYLOAD_TOO_LARGE;
	if (h->counter == 0)
		return COMM_E_ZERO_COUNTER;
	if (h->counter == COMM_EXHAUSTED_COUNTER)
		return COMM_E_COUNTER_EXHAUSTED;
	if (h->epoch == 0 || h->epoch == 0xffffffffu)
		return COMM_E_BAD_EPOCH;
	if (cap < n + COMM_ENV_OVERHEAD)
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
		comm_wipe(out, n + COMM_ENV_OVERHEAD);
		return COMM_E_CRYPTO;
	}
	*outlen = n + COMM_ENV_OVERHEAD;
	return COMM_OK;
}

int comm_env_open(const comm_backend *be, uint8_t *env, size_t n, const uint8_t key[32], comm_env_header *h,
                  uint8_t **payload, size_t *plen)
{
	int err = comm_env_parse(env, n, h);
	*payload = NULL;
	*plen = 0;
	if (err)
		return err;
	if (be->aead_open(be->ctx, COMM_AEAD_XCHACHA20POLY1305, env + COMM_ENV_OFF_CT, key, env + COMM_ENV_OFF_NONCE,
	                  env, COMM_ENV_HEADER_SIZE, env + COMM_ENV_OFF_CT, n - COMM_ENV_OFF_CT)) {
		comm_wipe(env + COMM_ENV_OFF_CT, n - COMM_ENV_OFF_CT);
		return COMM_E_DECRYPT;
	}
	*payload = env + COMM_ENV_OFF_CT;
	*plen = n - COMM_ENV_OVERHEAD;
	return COMM_OK;
}
