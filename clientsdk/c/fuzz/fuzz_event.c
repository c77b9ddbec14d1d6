/* fuzz_event: event records from the log (15.4): a record that decodes
 * encodes to exactly its body (the one encoding), its aggregate and
 * subject agree, and reading it in full never crashes. */
#include "comm/comm_event.h"
#include "fuzz.h"

static uint8_t body[COMM_EVENT_MAX_SIZE];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const comm_backend *be = backend();
	comm_event e;
	char agg[COMM_EVENT_AGGREGATE_MAX], subject[12 + COMM_EVENT_AGGREGATE_MAX];
	uint8_t head[32] = {0};
	size_t n, sl;
	if (comm_event_decode(data, size, &e) != 0)
		return 0;
	MUST(comm_event_type_name(e.type) != NULL);
	MUST(comm_event_encode(&e, body, sizeof body, &n) == 0);
	MUST(n == size - COMM_EVENT_SIG_SIZE && memcmp(body, data, n) == 0);
	comm_event_aggregate(&e, agg);
	sl = strlen(agg);
	memcpy(subject, "comm.events.", 12);
	memcpy(subject + 12, agg, sl);
	MUST(comm_event_check_subject(&e, subject, 12 + sl) == 0);
	MUST(comm_event_check_subject(&e, subject, 11 + sl) != 0);
	memcpy(head, e.prev, 32);
	/* any key: the signature rarely holds */
	(void)comm_event_read(be, data, size, subject, 12 + sl, e.seq - 1, head, e.actor, &e);
	return 0;
}
