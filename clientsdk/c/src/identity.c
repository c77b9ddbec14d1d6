/* identity.c - a client's identity: Sk_Cn's seed, its ClientID, the key-wrap key. */
#include "internal.h"

int comm_identity_init(const comm_backend *be, comm_identity *id, const uint8_t seed[32], const uint8_t wrap_sk[32])
{
	memset(id, 0, sizeof *id);
	memcpy(id->seed, seed, 32);
	memcpy(id->wrap_sk, wrap_sk, 32);
	if (be->ed25519_public(be->ctx, id->id, seed)) {
		comm_wipe(id, sizeof *id);
		return COMM_E_CRYPTO;
	}
	return COMM_OK;
}
