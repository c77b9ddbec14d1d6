/*
 * state.c - what a client remembers between runs besides its identity
 * (PROTOCOL.md 8.2-8.4): per group the keys of its recent epochs and the
 * floor below which it installs none, the reserved mark of its send
 * counter, and per sender the replay window.
 *
 * Every change that must survive a restart is persisted before the
 * caller may act on it; if persisting fails the change is undone and the
 * caller gets COMM_E_STORE.
 *
 * Stored blob (local to this library; integers big-endian):
 *
 *   "CMST" | version 2 | ngroups (1) | group * ngroups | crc32 (4, over everything before)
 *   group  = id (16) | floor (4) | newest (4) | since (4) | reserved (8) | nkeys (1) | (epoch (4) | key (32)) * nkeys
 *            | nsenders (2) | (tag (8) | epoch (4) | wlen (1) | window, binary form 8.6 (wlen)) * nsenders
 *
 * The send counter resumes at the reserved mark after a load (8.4).
 */
#include "internal.h"

#define BLOB_MAGIC "CMST"
#define BLOB_VERSION 2

void comm_state_init(comm_state *st) { memset(st, 0, sizeof *st); }

void comm_state_wipe(comm_state *st) { comm_wipe(st, sizeof *st); }

static comm_group_state *find(const comm_state *st, const uint8_t id[16])
{
	for (int i = 0; i < COMM_MAX_GROUPS; i++)
		if (st->groups[i].used && memcmp(st->groups[i].id, id, 16) == 0)
			return (comm_group_state *)&st->groups[i];
	return NULL;
}

static comm_group_state *find_or_add(comm_state *st, const uint8_t id[16])
{
	comm_group_state *g = find(st, id);
	for (int i = 0; g == NULL && i < COMM_MAX_GROUPS; i++) {
		if (!st->groups[i].used) {
			g = &st->groups[i];
			memset(g, 0, sizeof *g);
			g->used = 1;
			memcpy(g->id, id, 16);
			g->reserved = 1;
			g->next = 1;
		}
	}
	return g;
}

/* ---- writing ---- */

struct writer {
	const comm_store *store;
	uint8_t buf[64];
	size_t n;
	uint32_t crc;
	int err;
};

static void flush(struct writer *w)
{
	if (!w->err && w->n > 0 && w->store->write(w->store->ctx, w->buf, w->n) != 0)
		w->err = COMM_E_STORE;
	comm_wipe(w->buf, w->n);
	w->n = 0;
}

static void out(struct writer *w, const uint8_t *p, size_t n)
{
	w->crc = comm_crc32(w->crc, p, n);
	while (n > 0) {
		size_t k = sizeof w->buf - w->n;
		if (k > n)
			k = n;
		memcpy(w->buf + w->n, p, k);
		w->n += k;
		p += k;
		n -= k;
		if (w->n == sizeof w->buf)
			flush(w);
	}
}

static void out_uint(struct writer *w, uint64_t v, int size)
{
	uint8_t b[8];
	for (int i = size - 1; i >= 0; i--, v >>= 8)
		b[i] = (uint8_t)v;
	out(w, b, (size_t)size);
}

static void out_group(struct writer *w, const comm_group_state *g)
{
	out(w, g->id, 16);
	out_uint(w, g->floor, 4);
	out_uint(w, g->newest, 4);
	out_uint(w, g->since, 4);
	out_uint(w, g->reserved, 8);
	out_uint(w, g->nkeys, 1);
	for (int k = 0; k < g->nkeys; k++) {
		out_uint(w, g->keys[k].epoch, 4);
		out(w, g->keys[k].key, 32);
	}
	out_uint(w, g->nsenders, 2);
	for (int s = 0; s < g->nsenders; s++) {
		uint8_t wb[COMM_WINDOW_BINARY_MAX];
		size_t wl = comm_window_binary(&g->senders[s].w, wb);
		out(w, g->senders[s].tag, 8);
		out_uint(w, g->senders[s].epoch, 4);
		out_uint(w, wl, 1);
		out(w, wb, wl);
	}
}

int comm_state_save(const comm_state *st, const comm_store *store)
{
	struct writer w;
	uint8_t n = 0, crc[4];
	memset(&w, 0, sizeof w);
	w.store = store;
	for (int i = 0; i < COMM_MAX_GROUPS; i++)
		n = (uint8_t)(n + st->groups[i].used);
	if (store->begin(store->ctx) != 0)
		return COMM_E_STORE;
	out(&w, (const uint8_t *)BLOB_MAGIC, 4);
	out_uint(&w, BLOB_VERSION, 1);
	out_uint(&w, n, 1);
	for (int i = 0; i < COMM_MAX_GROUPS; i++)
		if (st->groups[i].used)
			out_group(&w, &st->groups[i]);
	put32(crc, w.crc);
	out(&w, crc, 4);
	flush(&w);
	if (w.err || store->commit(store->ctx) != 0)
		return COMM_E_STORE;
	return COMM_OK;
}

/* ---- reading ---- */

struct reader {
	const comm_store *store; /* or mem */
	const uint8_t *mem;
	size_t n, off;
	uint32_t crc;
	int err;
};

static int in(struct reader *r, uint8_t *p, size_t n)
{
	size_t got = 0;
	if (r->err)
		return 0;
	if (r->store == NULL) {
		if (r->n - r->off < n) {
			r->err = COMM_E_STATE_CORRUPT;
			return 0;
		}
		memcpy(p, r->mem + r->off, n);
		r->off += n;
	} else {
		while (got < n) {
			int k = r->store->read(r->store->ctx, p + got, n - got);
			if (k <= 0 || (size_t)k > n - got) {
				r->err = k < 0 ? COMM_E_STORE : COMM_E_STATE_CORRUPT;
				return 0;
			}
			got += (size_t)k;
		}
	}
	r->crc = comm_crc32(r->crc, p, n);
	return 1;
}

static uint64_t in_uint(struct reader *r, int size)
{
	uint8_t b[8];
	uint64_t v = 0;
	if (!in(r, b, (size_t)size))
		return 0;
	for (int i = 0; i < size; i++)
		v = (v << 8) | b[i];
	return v;
}

/* at_end: nothing follows the blob. */
static int at_end(struct reader *r)
{
	uint8_t b;
	if (r->err)
		return 0;
	if (r->store == NULL)
		return r->off == r->n;
	return r->store->read(r->store->ctx, &b, 1) == 0;
}

static int in_sender(struct reader *r, const comm_group_state *g, int s, comm_sender *out)
{
	uint8_t wb[COMM_WINDOW_BINARY_MAX];
	size_t wl, used;
	in(r, out->tag, 8);
	out->epoch = (uint32_t)in_uint(r, 4);
	wl = (size_t)in_uint(r, 1);
	if (r->err || wl > sizeof wb || !in(r, wb, wl))
		return 0;
	if (comm_window_parse_binary(wb, wl, &out->w, &used) != COMM_OK || used != wl || out->w.top == 0 ||
	    out->epoch == 0 || out->epoch > g->newest)
		return 0;
	for (int j = 0; j < s; j++)
		if (memcmp(g->senders[j].tag, out->tag, 8) == 0)
			return 0;
	return 1;
}

static int in_group(struct reader *r, comm_state *st, comm_group_state *g)
{
	uint8_t id[16];
	if (!in(r, id, 16) || find(st, id) != NULL)
		return 0;
	memcpy(g->id, id, 16);
	g->used = 1;
	g->floor = (uint32_t)in_uint(r, 4);
	g->newest = (uint32_t)in_uint(r, 4);
	g->since = (uint32_t)in_uint(r, 4);
	g->reserved = in_uint(r, 8);
	g->next = g->reserved;
	g->nkeys = (uint8_t)in_uint(r, 1);
	if (r->err || g->reserved == 0 || g->nkeys > COMM_MAX_EPOCHS || g->since > COMM_RETIRE_AFTER ||
	    (g->newest == 0) != (g->since == 0))
		return 0;
	for (int k = 0; k < g->nkeys; k++) {
		uint32_t e = (uint32_t)in_uint(r, 4);
		if (!in(r, g->keys[k].key, 32) || e == 0 || e == 0xffffffffu || e < g->floor ||
		    (k > 0 && e <= g->keys[k - 1].epoch))
			return 0;
		g->keys[k].epoch = e;
	}
	g->nsenders = (uint16_t)in_uint(r, 2);
	if (r->err || g->nsenders > COMM_MAX_SENDERS)
		return 0;
	for (int s = 0; s < g->nsenders; s++)
		if (!in_sender(r, g, s, &g->senders[s]))
			return 0;
	return !r->err;
}

static int decode(comm_state *st, struct reader *r)
{
	uint8_t magic[4], crc[4];
	uint32_t sum;
	int n;
	comm_state_init(st);
	if (!in(r, magic, 4)) {
		/* an empty store is an empty state */
		return r->store != NULL && r->err == COMM_E_STATE_CORRUPT && r->off == 0 ? 2 : 0;
	}
	if (memcmp(magic, BLOB_MAGIC, 4) != 0 || in_uint(r, 1) != BLOB_VERSION)
		return 0;
	n = (int)in_uint(r, 1);
	if (r->err || n > COMM_MAX_GROUPS)
		return 0;
	for (int i = 0; i < n; i++)
		if (!in_group(r, st, &st->groups[i]))
			return 0;
	sum = r->crc;
	if (!in(r, crc, 4) || get32(crc) != sum)
		return 0;
	return at_end(r);
}

int comm_state_decode(comm_state *st, const uint8_t *blob, size_t n)
{
	struct reader r;
	memset(&r, 0, sizeof r);
	r.mem = blob;
	r.n = n;
	if (n == 0) {
		comm_state_init(st);
		return COMM_OK;
	}
	if (decode(st, &r) != 1) {
		comm_state_wipe(st);
		return COMM_E_STATE_CORRUPT;
	}
	return COMM_OK;
}

int comm_state_load(comm_state *st, const comm_store *store)
{
	struct reader r;
	int ok;
	memset(&r, 0, sizeof r);
	r.store = store;
	ok = decode(st, &r);
	if (ok == 1)
		return COMM_OK;
	comm_state_wipe(st);
	if (ok == 2)
		return COMM_OK;
	return r.err == COMM_E_STORE ? COMM_E_STORE : COMM_E_STATE_CORRUPT;
}

/* ---- changes ---- */

/* undo holds what a change may touch in one group, to restore it when
 * persisting fails. */
struct undo {
	comm_group_state *g;
	uint8_t used, nkeys;
	uint16_t nsenders;
	uint32_t floor, newest, since;
	uint64_t reserved;
	comm_epoch_key keys[COMM_MAX_EPOCHS];
	int sender; /* index of the sender changed, or -1 */
	comm_sender sender_copy;
};

static void snapshot(struct undo *u, comm_group_state *g, int sender)
{
	u->g = g;
	u->used = g->used;
	u->nkeys = g->nkeys;
	u->nsenders = g->nsenders;
	u->floor = g->floor;
	u->newest = g->newest;
	u->since = g->since;
	u->reserved = g->reserved;
	memcpy(u->keys, g->keys, sizeof u->keys);
	u->sender = sender;
	if (sender >= 0)
		u->sender_copy = g->senders[sender];
}

static int commit_or_undo(const comm_state *st, const comm_store *store, struct undo *u)
{
	int err = comm_state_save(st, store);
	if (err) {
		comm_group_state *g = u->g;
		g->used = u->used;
		g->nkeys = u->nkeys;
		g->nsenders = u->nsenders;
		g->floor = u->floor;
		g->newest = u->newest;
		g->since = u->since;
		g->reserved = u->reserved;
		memcpy(g->keys, u->keys, sizeof g->keys);
		if (u->sender >= 0)
			g->senders[u->sender] = u->sender_copy;
	}
	comm_wipe(u->keys, sizeof u->keys);
	return err;
}

static void drop_oldest(comm_group_state *g)
{
	g->floor = g->keys[0].epoch + 1;
	comm_wipe(g->keys[0].key, 32);
	memmove(&g->keys[0], &g->keys[1], (size_t)(g->nkeys - 1) * sizeof g->keys[0]);
	g->nkeys--;
	comm_wipe(&g->keys[g->nkeys], sizeof g->keys[0]);
}

int comm_state_install(comm_state *st, const comm_store *store, const uint8_t group[16], uint32_t epoch,
                       const uint8_t key[32])
{
	comm_group_state *g;
	struct undo u;
	int i, was_used;
	if (epoch == 0 || epoch == 0xffffffffu)
		return COMM_E_BAD_EPOCH;
	g = find(st, group);
	was_used = g != NULL;
	if (g == NULL && (g = find_or_add(st, group)) == NULL)
		return COMM_E_STATE_FULL;
	if (epoch < g->floor)
		return COMM_E_STALE_EPOCH;
	for (i = 0; i < g->nkeys && g->keys[i].epoch < epoch; i++)
		;
	if (i < g->nkeys && g->keys[i].epoch == epoch)
		return comm_ct_equal(g->keys[i].key, key, 32) ? COMM_OK : COMM_E_EPOCH_CONFLICT;
	if (i == 0 && g->nkeys >= COMM_MAX_EPOCHS)
		return COMM_E_STALE_EPOCH; /* older than every key kept, and no room */
	snapshot(&u, g, -1);
	if (!was_used)
		u.used = 0;
	if (g->nkeys == COMM_MAX_EPOCHS) {
		drop_oldest(g);
		i--;
	}
	memmove(&g->keys[i + 1], &g->keys[i], (size_t)(g->nkeys - i) * sizeof g->keys[0]);
	g->keys[i].epoch = epoch;
	memcpy(g->keys[i].key, key, 32);
	g->nkeys++;
	return commit_or_undo(st, store, &u);
}

int comm_state_key(const comm_state *st, const uint8_t group[16], uint32_t epoch, const uint8_t **key)
{
	const comm_group_state *g = find(st, group);
	*key = NULL;
	if (g == NULL || g->nkeys == 0)
		return COMM_E_UNKNOWN_GROUP;
	if (epoch < g->floor)
		return COMM_E_RETIRED_EPOCH; /* dropped: it will not come back */
	for (int i = 0; i < g->nkeys; i++) {
		if (g->keys[i].epoch == epoch) {
			*key = g->keys[i].key;
			return COMM_OK;
		}
	}
	return COMM_E_UNKNOWN_EPOCH;
}

int comm_state_current(const comm_state *st, const uint8_t group[16], uint32_t *epoch, const uint8_t **key)
{
	const comm_group_state *g = find(st, group);
	*key = NULL;
	*epoch = 0;
	if (g == NULL || g->nkeys == 0)
		return COMM_E_UNKNOWN_GROUP;
	*epoch = g->keys[g->nkeys - 1].epoch;
	*key = g->keys[g->nkeys - 1].key;
	return COMM_OK;
}

static int verdict_err(int v)
{
	switch (v) {
	case COMM_EXHAUSTED:
		return COMM_E_COUNTER_EXHAUSTED;
	case COMM_DUPLICATE:
	case COMM_OLD:
		return COMM_E_REPLAYED_MESSAGE;
	case COMM_JUMP:
		return COMM_E_COUNTER_JUMP;
	}
	return COMM_OK;
}

static int find_sender(const comm_group_state *g, const uint8_t sender[32])
{
	for (int s = 0; s < g->nsenders; s++)
		if (memcmp(g->senders[s].tag, sender, 8) == 0)
			return s;
	return -1;
}

/* check applies 8.3's retirement and 8.2 step 4 to h. */
static int check(const comm_group_state *g, const comm_env_header *h)
{
	comm_window empty;
	int s = find_sender(g, h->sender);
	if (h->epoch < g->floor)
		return COMM_E_RETIRED_EPOCH;
	if (s >= 0 && h->epoch < g->senders[s].epoch)
		return COMM_E_RETIRED_EPOCH; /* the sender has moved on to a newer epoch */
	memset(&empty, 0, sizeof empty);
	return verdict_err(comm_window_check(s >= 0 ? &g->senders[s].w : &empty, h->counter));
}

int comm_state_check(const comm_state *st, const comm_env_header *h)
{
	const comm_group_state *g = find(st, h->group);
	if (g == NULL)
		return COMM_E_UNKNOWN_GROUP;
	return check(g, h);
}

/* retire counts a message of epoch e and drops the keys 8.3 retires:
 * those below the previous epoch of the newest message accepted, and the
 * previous one too once COMM_RETIRE_AFTER messages were accepted from the
 * first of the newest epoch on; the floor rises to the oldest epoch still
 * accepted. */
static void retire(comm_group_state *g, uint32_t e)
{
	uint32_t keep;
	if (e > g->newest) {
		g->newest = e;
		g->since = 1;
	} else if (g->since < COMM_RETIRE_AFTER) {
		g->since++;
	}
	keep = g->since >= COMM_RETIRE_AFTER ? g->newest : g->newest - 1;
	while (g->nkeys > 0 && g->keys[0].epoch < keep)
		drop_oldest(g);
	if (keep > g->floor)
		g->floor = keep;
}

int comm_state_accept(comm_state *st, const comm_store *store, const comm_env_header *h)
{
	comm_group_state *g = find(st, h->group);
	struct undo u;
	int s, err;
	if (g == NULL)
		return COMM_E_UNKNOWN_GROUP;
	err = check(g, h);
	if (err)
		return err;
	s = find_sender(g, h->sender);
	if (s < 0) {
		if (g->nsenders >= COMM_MAX_SENDERS)
			return COMM_E_STATE_FULL;
		s = g->nsenders;
		snapshot(&u, g, s);
		memset(&g->senders[s], 0, sizeof g->senders[s]);
		memcpy(g->senders[s].tag, h->sender, 8);
		g->nsenders++;
	} else {
		snapshot(&u, g, s);
	}
	comm_window_accept(&g->senders[s].w, h->counter);
	if (h->epoch > g->senders[s].epoch)
		g->senders[s].epoch = h->epoch;
	retire(g, h->epoch);
	return commit_or_undo(st, store, &u);
}

int comm_state_next_counter(comm_state *st, const comm_store *store, const uint8_t group[16], uint64_t *c)
{
	comm_group_state *g = find(st, group);
	*c = 0;
	if (g == NULL)
		return COMM_E_UNKNOWN_GROUP;
	if (g->next >= g->reserved) {
		struct undo u;
		int err;
		if (g->next > COMM_EXHAUSTED_COUNTER - 1 - COMM_RESERVE)
			return COMM_E_COUNTER_EXHAUSTED;
		snapshot(&u, g, -1);
		g->reserved = g->next + COMM_RESERVE;
		err = commit_or_undo(st, store, &u);
		if (err)
			return err;
	}
	*c = g->next++;
	return COMM_OK;
}
