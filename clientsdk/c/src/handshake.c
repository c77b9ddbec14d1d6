/*
 * handshake.c - the handshake M1..M4 and key confirmation (PROTOCOL.md 4).
 *
 *   client                                    server
 *   M1 = hdr(1) | Pk_Cn | Q_A        ---->
 *                                    <----    M2 = hdr(2) | Pk_S | Q_B
 *                                    <----    M3 = hdr(3) | Sig(Sk_S, LabelServerSig | v | suite | th2)
 *   M4 = hdr(4) | Sig(Sk_Cn, LabelClientSig | v | suite | th3)  ---->
 *   z = X25519(a, Q_B); PRK = HKDF-Extract(th4, z); K_dir = HKDF-Expand(PRK, label | v | suite, 32)
 *                                    <----    frame 0: Ready, MAC'd with K_s2c
 *
 * Each step checks the state first and refuses to run out of order; any
 * failure wipes every secret and leaves the handshake FAILED for good.
 * The transcript buffer holds M1..M4 (272 bytes): th2, th3 and th4 are
 * hashes of its prefixes.
 */
#include "internal.h"

static int fail(comm_hs *hs, int err)
{
	comm_hs_wipe(hs);
	hs->state = COMM_HS_FAILED;
	return err;
}

void comm_hs_wipe(comm_hs *hs)
{
	comm_wipe(hs->seed, sizeof hs->seed);
	comm_wipe(hs->eph, sizeof hs->eph);
	comm_wipe(hs->z, sizeof hs->z);
	comm_wipe(&hs->keys, sizeof hs->keys);
}

int comm_hs_header(const uint8_t hdr[4], size_t *body)
{
	if (hdr[0] != COMM_VERSION)
		return COMM_E_UNSUPPORTED_VERSION;
	if (hdr[1] == COMM_HS_ERROR) {
		*body = COMM_HS_ERROR_SIZE - COMM_HS_HEADER_SIZE;
		return COMM_OK;
	}
	if (get16(hdr + 2) != COMM_SUITE)
		return COMM_E_UNSUPPORTED_SUITE;
	if (hdr[1] < COMM_HS_M1 || hdr[1] > COMM_HS_M4)
		return COMM_E_UNEXPECTED_MESSAGE;
	*body = COMM_HS_MSG_SIZE - COMM_HS_HEADER_SIZE;
	return COMM_OK;
}

/* read_msg applies 4.3 to a complete message: header, exact length, the
 * peer's error message, and the expected type. */
static int read_msg(const uint8_t *msg, size_t n, uint8_t want)
{
	size_t body;
	int err;
	if (n < COMM_HS_HEADER_SIZE)
		return COMM_E_MESSAGE_LENGTH;
	err = comm_hs_header(msg, &body);
	if (err)
		return err;
	if (n != COMM_HS_HEADER_SIZE + body)
		return COMM_E_MESSAGE_LENGTH;
	if (msg[1] == COMM_HS_ERROR)
		return comm_err_peer(get16(msg + 4));
	if (msg[1] != want)
		return COMM_E_UNEXPECTED_MESSAGE;
	return COMM_OK;
}

static void header(uint8_t *m, uint8_t type)
{
	m[0] = COMM_VERSION;
	m[1] = type;
	put16(m + 2, COMM_SUITE);
}

/* 4.5: the canonical encoding of a field element. */
static int canonical(const uint8_t s[32])
{
	int all_ff = 1;
	if (s[31] & 0x80)
		return 0;
	for (int i = 1; i <= 30; i++)
		all_ff &= s[i] == 0xff;
	return !(s[31] == 0x7f && all_ff && s[0] >= 0xed);
}

static int dh(comm_hs *hs, const uint8_t *share)
{
	const comm_backend *be = hs->be;
	int err = be->x25519(be->ctx, hs->z, hs->eph, share) ? COMM_E_CRYPTO : COMM_OK;
	comm_wipe(hs->eph, sizeof hs->eph);
	if (!err && is_zero32(hs->z))
		err = COMM_E_LOW_ORDER_POINT;
	return err;
}

static int th(comm_hs *hs, size_t msgs, uint8_t out[32])
{
	comm_part p[] = {PART(hs->transcript, msgs * COMM_HS_MSG_SIZE)};
	return hs->be->sha256(hs->be->ctx, out, p, 1) ? COMM_E_CRYPTO : COMM_OK;
}

/* sig_input parts: label | version | suite | th (4.4). */
static void sig_parts(comm_part p[3], uint8_t vs[3], const char *label, size_t labellen, const uint8_t *h)
{
	vs[0] = COMM_VERSION;
	put16(vs + 1, COMM_SUITE);
	p[0] = (comm_part)PART(label, labellen);
	p[1] = (comm_part)PART(vs, 3);
	p[2] = (comm_part)PART(h, 32);
}

static int sign(comm_hs *hs, uint8_t *m, uint8_t type, const char *label, size_t labellen, size_t msgs)
{
	uint8_t h[32], vs[3];
	comm_part p[3];
	int err = th(hs, msgs, h);
	if (err)
		return err;
	header(m, type);
	sig_parts(p, vs, label, labellen, h);
	return hs->be->ed25519_sign(hs->be->ctx, m + 4, hs->seed, p, 3) ? COMM_E_CRYPTO : COMM_OK;
}

static int verify(comm_hs *hs, const uint8_t *m, const char *label, size_t labellen, size_t msgs,
                  const uint8_t pk[32], int bad)
{
	uint8_t h[32], vs[3];
	comm_part p[3];
	int err = th(hs, msgs, h);
	if (err)
		return err;
	sig_parts(p, vs, label, labellen, h);
	return comm_ed25519_verify(hs->be, m + 4, pk, p, 3) ? bad : COMM_OK;
}

/* derive computes K_c2s and K_s2c from z and th4 (4.6), then wipes z. */
static int derive(comm_hs *hs)
{
	uint8_t h[32], prk[32], vs[3];
	int err = th(hs, 4, h);
	comm_part ikm[] = {PART(hs->z, 32)};
	vs[0] = COMM_VERSION;
	put16(vs + 1, COMM_SUITE);
	if (!err)
		err = comm_hkdf_extract(hs->be, prk, h, 32, ikm, 1);
	if (!err) {
		comm_part c2s[] = {PART(COMM_LABEL_KEY_C2S, COMM_LABEL_LEN(COMM_LABEL_KEY_C2S)), PART(vs, 3)};
		err = comm_hkdf_expand(hs->be, hs->keys.c2s, 32, prk, c2s, 2);
	}
	if (!err) {
		comm_part s2c[] = {PART(COMM_LABEL_KEY_S2C, COMM_LABEL_LEN(COMM_LABEL_KEY_S2C)), PART(vs, 3)};
		err = comm_hkdf_expand(hs->be, hs->keys.s2c, 32, prk, s2c, 2);
	}
	comm_wipe(prk, sizeof prk);
	comm_wipe(hs->z, sizeof hs->z);
	return err;
}

static int init(comm_hs *hs, const comm_backend *be, const uint8_t seed[32], const uint8_t eph[32], int server)
{
	memset(hs, 0, sizeof *hs);
	hs->be = be;
	hs->server = server;
	memcpy(hs->seed, seed, 32);
	memcpy(hs->eph, eph, 32);
	if (be->ed25519_public(be->ctx, hs->own_pk, seed))
		return fail(hs, COMM_E_CRYPTO);
	return COMM_OK;
}

/* step checks that hs is the right side in the right state. */
static int step(comm_hs *hs, int server, int state)
{
	if (hs->server != server || hs->state != state) {
		fail(hs, COMM_E_OUT_OF_ORDER);
		return 0;
	}
	return 1;
}

/* ---- client ---- */

int comm_hs_client_init(comm_hs *hs, const comm_backend *be, const uint8_t seed[32],
                        const uint8_t server_pk[32], const uint8_t eph[32])
{
	int err = init(hs, be, seed, eph, 0);
	if (!err)
		memcpy(hs->peer_pk, server_pk, 32);
	return err;
}

int comm_hs_client_m1(comm_hs *hs, uint8_t m1[COMM_HS_MSG_SIZE])
{
	if (!step(hs, 0, COMM_HS_START))
		return COMM_E_OUT_OF_ORDER;
	header(m1, COMM_HS_M1);
	memcpy(m1 + 4, hs->own_pk, 32);
	if (hs->be->x25519(hs->be->ctx, m1 + 36, hs->eph, NULL))
		return fail(hs, COMM_E_CRYPTO);
	memcpy(hs->transcript, m1, COMM_HS_MSG_SIZE);
	hs->state = COMM_HS_SENT_M1;
	return COMM_OK;
}

int comm_hs_client_read_m2(comm_hs *hs, const uint8_t *msg, size_t n)
{
	int err;
	if (!step(hs, 0, COMM_HS_SENT_M1))
		return COMM_E_OUT_OF_ORDER;
	err = read_msg(msg, n, COMM_HS_M2);
	if (!err && !comm_ct_equal(msg + 4, hs->peer_pk, 32))
		err = COMM_E_WRONG_SERVER_KEY;
	if (!err && !canonical(msg + 36))
		err = COMM_E_NONCANONICAL_POINT;
	if (!err)
		err = dh(hs, msg + 36);
	if (err)
		return fail(hs, err);
	memcpy(hs->transcript + COMM_HS_MSG_SIZE, msg, COMM_HS_MSG_SIZE);
	hs->state = COMM_HS_READ_M2;
	return COMM_OK;
}

int comm_hs_client_read_m3(comm_hs *hs, const uint8_t *msg, size_t n)
{
	int err;
	if (!step(hs, 0, COMM_HS_READ_M2))
		return COMM_E_OUT_OF_ORDER;
	err = read_msg(msg, n, COMM_HS_M3);
	if (!err)
		err = verify(hs, msg, COMM_LABEL_SERVER_SIG, COMM_LABEL_LEN(COMM_LABEL_SERVER_SIG), 2, hs->peer_pk,
		             COMM_E_BAD_SERVER_SIGNATURE);
	if (err)
		return fail(hs, err);
	memcpy(hs->transcript + 2 * COMM_HS_MSG_SIZE, msg, COMM_HS_MSG_SIZE);
	hs->state = COMM_HS_READ_M3;
	return COMM_OK;
}

int comm_hs_client_m4(comm_hs *hs, uint8_t m4[COMM_HS_MSG_SIZE])
{
	int err;
	if (!step(hs, 0, COMM_HS_READ_M3))
		return COMM_E_OUT_OF_ORDER;
	err = sign(hs, m4, COMM_HS_M4, COMM_LABEL_CLIENT_SIG, COMM_LABEL_LEN(COMM_LABEL_CLIENT_SIG), 3);
	if (!err) {
		memcpy(hs->transcript + 3 * COMM_HS_MSG_SIZE, m4, COMM_HS_MSG_SIZE);
		err = derive(hs);
	}
	if (err)
		return fail(hs, err);
	comm_wipe(hs->seed, sizeof hs->seed);
	hs->state = COMM_HS_SENT_M4;
	return COMM_OK;
}

int comm_hs_client_read_frame0(comm_hs *hs, const uint8_t *frame, size_t n)
{
	comm_channel ch;
	comm_frame f;
	int err;
	if (!step(hs, 0, COMM_HS_SENT_M4))
		return COMM_E_OUT_OF_ORDER;
	comm_channel_init(&ch, hs->be, &hs->keys, 1);
	err = comm_frame_open(&ch, frame, n, &f);
	comm_channel_wipe(&ch);
	if (!err && f.type == COMM_FRAME_ERROR)
		err = comm_err_peer(get16(f.body));
	else if (!err && f.type != COMM_FRAME_READY)
		err = COMM_E_NO_KEY_CONFIRMATION;
	if (err)
		return fail(hs, err);
	hs->state = COMM_HS_ESTABLISHED;
	return COMM_OK;
}

/* ---- server (tests and vectors) ---- */

#ifndef COMM_CLIENT_ONLY

int comm_hs_server_init(comm_hs *hs, const comm_backend *be, const uint8_t seed[32], const uint8_t eph[32])
{
	return init(hs, be, seed, eph, 1);
}

int comm_hs_server_read_m1(comm_hs *hs, const uint8_t *msg, size_t n)
{
	int err;
	if (!step(hs, 1, COMM_HS_START))
		return COMM_E_OUT_OF_ORDER;
	err = read_msg(msg, n, COMM_HS_M1);
	if (!err && !canonical(msg + 36))
		err = COMM_E_NONCANONICAL_POINT;
	if (err)
		return fail(hs, err);
	memcpy(hs->peer_pk, msg + 4, 32);
	memcpy(hs->transcript, msg, COMM_HS_MSG_SIZE);
	hs->state = COMM_HS_READ_M1;
	return COMM_OK;
}

int comm_hs_server_m2(comm_hs *hs, uint8_t m2[COMM_HS_MSG_SIZE])
{
	int err;
	if (!step(hs, 1, COMM_HS_READ_M1))
		return COMM_E_OUT_OF_ORDER;
	header(m2, COMM_HS_M2);
	memcpy(m2 + 4, hs->own_pk, 32);
	err = hs->be->x25519(hs->be->ctx, m2 + 36, hs->eph, NULL) ? COMM_E_CRYPTO : COMM_OK;
	if (!err)
		err = dh(hs, hs->transcript + 36);
	if (err)
		return fail(hs, err);
	memcpy(hs->transcript + COMM_HS_MSG_SIZE, m2, COMM_HS_MSG_SIZE);
	hs->state = COMM_HS_SENT_M2;
	return COMM_OK;
}

int comm_hs_server_m3(comm_hs *hs, uint8_t m3[COMM_HS_MSG_SIZE])
{
	int err;
	if (!step(hs, 1, COMM_HS_SENT_M2))
		return COMM_E_OUT_OF_ORDER;
	err = sign(hs, m3, COMM_HS_M3, COMM_LABEL_SERVER_SIG, COMM_LABEL_LEN(COMM_LABEL_SERVER_SIG), 2);
	if (err)
		return fail(hs, err);
	memcpy(hs->transcript + 2 * COMM_HS_MSG_SIZE, m3, COMM_HS_MSG_SIZE);
	hs->state = COMM_HS_SENT_M3;
	return COMM_OK;
}

int comm_hs_server_read_m4(comm_hs *hs, const uint8_t *msg, size_t n)
{
	int err;
	if (!step(hs, 1, COMM_HS_SENT_M3))
		return COMM_E_OUT_OF_ORDER;
	err = read_msg(msg, n, COMM_HS_M4);
	if (!err)
		err = verify(hs, msg, COMM_LABEL_CLIENT_SIG, COMM_LABEL_LEN(COMM_LABEL_CLIENT_SIG), 3, hs->peer_pk,
		             COMM_E_BAD_CLIENT_SIGNATURE);
	if (!err) {
		memcpy(hs->transcript + 3 * COMM_HS_MSG_SIZE, msg, COMM_HS_MSG_SIZE);
		err = derive(hs);
	}
	if (err)
		return fail(hs, err);
	comm_wipe(hs->seed, sizeof hs->seed);
	hs->state = COMM_HS_ESTABLISHED;
	return COMM_OK;
}

#endif /* COMM_CLIENT_ONLY */
