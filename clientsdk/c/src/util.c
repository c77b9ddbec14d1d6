/* util.c - wiping, constant-time comparison, CRC-32, error names. */
#include "internal.h"

void comm_wipe(void *p, size_t n)
{
	volatile uint8_t *v = (volatile uint8_t *)p;
	while (n--)
		*v++ = 0;
}

int comm_ct_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
	uint8_t d = 0;
	for (size_t i = 0; i < n; i++)
		d |= (uint8_t)(a[i] ^ b[i]);
	return d == 0;
}

uint32_t comm_crc32(uint32_t crc, const uint8_t *p, size_t n)
{
	crc = ~crc;
	while (n--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
	}
	return ~crc;
}

struct name { int e; const char *s; };

static const struct name names[] = {
	{COMM_OK, "ok"},
	{COMM_E_UNSUPPORTED_VERSION, "unsupported_version"},
	{COMM_E_UNSUPPORTED_SUITE, "unsupported_suite"},
	{COMM_E_UNEXPECTED_MESSAGE, "unexpected_message"},
	{COMM_E_MESSAGE_LENGTH, "message_length"},
	{COMM_E_OUT_OF_ORDER, "out_of_order"},
	{COMM_E_NONCANONICAL_POINT, "noncanonical_point"},
	{COMM_E_LOW_ORDER_POINT, "low_order_point"},
	{COMM_E_WRONG_SERVER_KEY, "wrong_server_key"},
	{COMM_E_BAD_SERVER_SIGNATURE, "bad_server_signature"},
	{COMM_E_BAD_CLIENT_SIGNATURE, "bad_client_signature"},
	{COMM_E_NO_KEY_CONFIRMATION, "no_key_confirmation"},
	{COMM_E_HANDSHAKE_TIMEOUT, "handshake_timeout"},
	{COMM_E_TRUNCATED_MESSAGE, "truncated_message"},
	{COMM_E_CLOSED_IN_HANDSHAKE, "closed_in_handshake"},
	{COMM_E_FRAME_TOO_LARGE, "frame_too_large"},
	{COMM_E_FRAME_TOO_SHORT, "frame_too_short"},
	{COMM_E_TRUNCATED_FRAME, "truncated_frame"},
	{COMM_E_BAD_MAC, "bad_mac"},
	{COMM_E_REFLECTED_FRAME, "reflected_frame"},
	{COMM_E_REPLAYED_FRAME, "replayed_frame"},
	{COMM_E_SKIPPED_FRAME, "skipped_frame"},
	{COMM_E_UNKNOWN_FRAME_TYPE, "unknown_frame_type"},
	{COMM_E_FRAME_BODY, "frame_body"},
	{COMM_E_CHANNEL_CLOSED, "channel_closed"},
	{COMM_E_COUNTER_EXHAUSTED, "counter_exhausted"},
	{COMM_E_BODY_TOO_LARGE, "body_too_large"},
	{COMM_E_UNEXPECTED_FRAME, "unexpected_frame"},
	{COMM_E_ENVELOPE_LENGTH, "envelope_length"},
	{COMM_E_ENVELOPE_VERSION, "envelope_version"},
	{COMM_E_DECRYPT, "decrypt"},
	{COMM_E_PAYLOAD_TOO_LARGE, "payload_too_large"},
	{COMM_E_ZERO_COUNTER, "zero_counter"},
	{COMM_E_BAD_EPOCH, "bad_epoch"},
	{COMM_E_BAD_ENVELOPE_SIGNATURE, "bad_envelope_signature"},
	{COMM_E_WRONG_SIGNER, "wrong_signer"},
	{COMM_E_BUNDLE_LENGTH, "bundle_length"},
	{COMM_E_BUNDLE_VERSION, "bundle_version"},
	{COMM_E_BAD_BUNDLE_SIGNATURE, "bad_bundle_signature"},
	{COMM_E_WRONG_MEMBER, "wrong_member"},
	{COMM_E_UNWRAP, "unwrap"},
	{COMM_E_STALE_EPOCH, "stale_epoch"},
	{COMM_E_EPOCH_CONFLICT, "epoch_conflict"},
	{COMM_E_REPLAYED_MESSAGE, "replayed_message"},
	{COMM_E_COUNTER_JUMP, "counter_jump"},
	{COMM_E_UNKNOWN_EPOCH, "unknown_epoch"},
	{COMM_E_UNKNOWN_GROUP, "unknown_group"},
	{COMM_E_STATE_CORRUPT, "state_corrupt"},
	{COMM_E_RETIRED_EPOCH, "retired_epoch"},
	{COMM_E_KEYFILE_FOREIGN, "keyfile_foreign"},
	{COMM_E_KEYFILE_VERSION, "keyfile_version"},
	{COMM_E_KEYFILE_KIND, "keyfile_kind"},
	{COMM_E_KEYFILE_TRUNCATED, "keyfile_truncated"},
	{COMM_E_KEYFILE_CHECKSUM, "keyfile_checksum"},
	{COMM_E_KEYFILE_MODE, "keyfile_mode"},
	{COMM_E_BUFFER, "buffer_too_small"},
	{COMM_E_CRYPTO, "crypto_backend"},
	{COMM_E_IO, "io"},
	{COMM_E_TIMEOUT, "timeout"},
	{COMM_E_CLOSED, "closed"},
	{COMM_E_STORE, "store"},
	{COMM_E_STATE_FULL, "state_full"},
	{COMM_E_NOT_READY, "not_ready"},
	{COMM_E_NOT_MEMBER, "not_member"},
	{COMM_E_INFLIGHT_FULL, "inflight_full"},
	{COMM_E_ARG, "bad_argument"},
};

static const char *const code_names[] = {
	NULL, "protocol", "version", "busy", "denied", "timeout", "slow", "shutdown",
};

/* append copies s to buf at *at, keeping a NUL (no stdio in the core). */
static void append(char *buf, unsigned len, unsigned *at, const char *s)
{
	while (*s && *at + 1 < len)
		buf[(*at)++] = *s++;
	buf[*at] = 0;
}

static void append_uint(char *buf, unsigned len, unsigned *at, unsigned long v, int neg)
{
	char d[24];
	int i = (int)sizeof d - 1;
	d[i] = 0;
	do {
		d[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	if (neg)
		d[--i] = '-';
	append(buf, len, at, d + i);
}

const char *comm_err_name(int e, char *buf, unsigned len)
{
	unsigned at = 0;
	if (buf == NULL || len == 0)
		return "";
	buf[0] = 0;
	if (comm_err_is_peer(e)) {
		uint16_t code = comm_err_peer_code(e);
		append(buf, len, &at, "peer_");
		if (code >= 1 && code <= 7) {
			append(buf, len, &at, code_names[code]);
		} else {
			append(buf, len, &at, "code(");
			append_uint(buf, len, &at, code, 0);
			append(buf, len, &at, ")");
		}
		return buf;
	}
	for (size_t i = 0; i < NPARTS(names); i++) {
		if (names[i].e == e) {
			append(buf, len, &at, names[i].s);
			return buf;
		}
	}
	append(buf, len, &at, "error(");
	append_uint(buf, len, &at, (unsigned long)(e < 0 ? -(long)e : e), e < 0);
	append(buf, len, &at, ")");
	return buf;
}
