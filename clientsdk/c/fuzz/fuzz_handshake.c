/* fuzz_handshake: handshake messages from the network: the header reader,
 * a client reading the input as M2 then M3, a server reading it as M1 and
 * then as M4, and a client reading it as frame 0. No input may crash,
 * and a failed step leaves the handshake failed for good. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const comm_backend *be = backend();
	uint8_t seed[32], spk[32], eph[32], m[68];
	size_t body;
	comm_hs hs;
	memset(seed, 3, 32);
	memset(eph, 4, 32);
	be->ed25519_public(be->ctx, spk, seed);
	if (size >= 4)
		(void)comm_hs_header(data, &body);
	/* client: input = M2 | M3 */
	comm_hs_client_init(&hs, be, seed, spk, eph);
	MUST(comm_hs_client_m1(&hs, m) == 0);
	if (comm_hs_client_read_m2(&hs, data, size < 68 ? size : 68) == 0 && size > 68)
		(void)comm_hs_client_read_m3(&hs, data + 68, size - 68);
	if (hs.state == COMM_HS_FAILED)
		MUST(comm_hs_client_m4(&hs, m) == COMM_E_OUT_OF_ORDER);
	/* server: input = M1, then M4 */
	comm_hs_server_init(&hs, be, seed, eph);
	if (comm_hs_server_read_m1(&hs, data, size) == 0 && comm_hs_server_m2(&hs, m) == 0 &&
	    comm_hs_server_m3(&hs, m) == 0)
		MUST(comm_hs_server_read_m4(&hs, data, size) != 0); /* an M1 is never an M4 */
	/* client at frame 0 */
	comm_hs_client_init(&hs, be, seed, spk, eph);
	hs.state = COMM_HS_SENT_M4;
	(void)comm_hs_client_read_frame0(&hs, data, size);
	return 0;
}
