/*
 * vectors.c - runs every file of protocol/testdata/vectors as PROTOCOL.md
 * 11.3 says, with the C library and the libsodium backend.
 *
 *   vectors DIR
 *
 * A case passes if the name of its outcome (9.2) equals its expect: line.
 * A file of an unknown kind, an expect: that is not a known name, a field
 * that does not match a computed value, or fewer than 50 files fail the
 * run. Kinds event and checkpoint run as 15.9 says. Test code: it
 * allocates freely.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/comm.h"
#include "comm/comm_event.h"
#include "comm/comm_sodium.h"

static comm_backend be;

/* ---- the file format (11.2) ---- */

#define MAX_FIELDS 128

struct field {
	char *name;
	char *value;
};

struct vec {
	const char *file;
	struct field f[MAX_FIELDS];
	int n;
	char *mismatch; /* a computed value that differs: a bug, never an outcome */
};

static int parse_file(struct vec *v, char *text)
{
	char *line = text;
	v->n = 0;
	while (line && *line) {
		char *next = strchr(line, '\n');
		char *sep;
		if (next)
			*next++ = 0;
		if (*line == 0 || *line == '#') {
			line = next;
			continue;
		}
		sep = strstr(line, ": ");
		if (sep == NULL) {
			/* "name:" at the end of a line with an empty value is written "name: " */
			fprintf(stderr, "%s: line without \": \": %s\n", v->file, line);
			return -1;
		}
		if (v->n == MAX_FIELDS)
			return -1;
		*sep = 0;
		v->f[v->n].name = line;
		v->f[v->n].value = sep + 2;
		v->n++;
		line = next;
	}
	return 0;
}

/* get returns the value of the idx-th field called name, or NULL. */
static const char *get_nth(const struct vec *v, const char *name, int idx)
{
	for (int i = 0; i < v->n; i++)
		if (strcmp(v->f[i].name, name) == 0 && idx-- == 0)
			return v->f[i].value;
	return NULL;
}

static const char *get(const struct vec *v, const char *name) { return get_nth(v, name, 0); }

static int count(const struct vec *v, const char *name)
{
	int c = 0;
	while (get_nth(v, name, c))
		c++;
	return c;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* hex decodes s into a fresh buffer (n bytes); NULL s is an empty field. */
static uint8_t *hex(const char *s, size_t *n)
{
	size_t l = s ? strlen(s) : 0;
	uint8_t *b = malloc(l / 2 + 1);
	*n = l / 2;
	if (l % 2) {
		fprintf(stderr, "odd hex length\n");
		exit(2);
	}
	for (size_t i = 0; i < l / 2; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			fprintf(stderr, "bad hex: %s\n", s);
			exit(2);
		}
		b[i] = (uint8_t)(hi << 4 | lo);
	}
	return b;
}

/* field decodes a hex field of exactly want bytes (want 0: any). */
static uint8_t *field(struct vec *v, const char *name, size_t want, size_t *n)
{
	size_t got;
	const char *s = get(v, name);
	uint8_t *b;
	if (s == NULL) {
		fprintf(stderr, "%s: no field %s\n", v->file, name);
		exit(2);
	}
	b = hex(s, &got);
	if (want && got != want) {
		fprintf(stderr, "%s: field %s is %zu bytes, want %zu\n", v->file, name, got, want);
		exit(2);
	}
	if (n)
		*n = got;
	return b;
}

static void must_equal(struct vec *v, const char *what, const uint8_t *a, const uint8_t *b, size_t n)
{
	if (memcmp(a, b, n) != 0 && v->mismatch == NULL)
		v->mismatch = strdup(what);
}

static void must_equal_field(struct vec *v, const char *name, const uint8_t *got, size_t n)
{
	size_t fn;
	uint8_t *f = field(v, name, 0, &fn);
	if (fn != n)
		v->mismatch = v->mismatch ? v->mismatch : strdup(name);
	else
		must_equal(v, name, got, f, n);
	free(f);
}

static uint64_t num(struct vec *v, const char *name)
{
	const char *s = get(v, name);
	if (s == NULL) {
		fprintf(stderr, "%s: no field %s\n", v->file, name);
		exit(2);
	}
	return strtoull(s, NULL, 10);
}

/* ---- handshake ---- */

static int hs_client(struct vec *v)
{
	uint8_t *seed = field(v, "client_seed", 32, NULL), *eph = field(v, "client_ephemeral", 32, NULL);
	uint8_t *spk = field(v, "server_public", 32, NULL);
	size_t n2, n3;
	uint8_t *m2 = field(v, "m2", 0, &n2), *m3 = field(v, "m3", 0, &n3);
	uint8_t m1[68], m4[68];
	comm_hs hs;
	int err = comm_hs_client_init(&hs, &be, seed, spk, eph);
	if (!err)
		err = comm_hs_client_m1(&hs, m1);
	if (!err)
		must_equal_field(v, "m1", m1, 68);
	if (!err)
		err = comm_hs_client_read_m2(&hs, m2, n2);
	if (!err)
		err = comm_hs_client_read_m3(&hs, m3, n3);
	if (!err)
		err = comm_hs_client_m4(&hs, m4);
	free(seed), free(eph), free(spk), free(m2), free(m3);
	return err;
}

static int hs_server(struct vec *v)
{
	uint8_t *seed = field(v, "server_seed", 32, NULL), *eph = field(v, "server_ephemeral", 32, NULL);
	size_t n1, n4;
	uint8_t *m1 = field(v, "m1", 0, &n1), *m4 = field(v, "m4", 0, &n4);
	uint8_t m2[68], m3[68];
	comm_hs hs;
	int err = comm_hs_server_init(&hs, &be, seed, eph);
	if (!err)
		err = comm_hs_server_read_m1(&hs, m1, n1);
	if (!err)
		err = comm_hs_server_m2(&hs, m2);
	if (!err)
		err = comm_hs_server_m3(&hs, m3);
	if (!err)
		err = comm_hs_server_read_m4(&hs, m4, n4);
	free(seed), free(eph), free(m1), free(m4);
	return err;
}

/* hs_full runs both sides against each other and checks every
 * intermediate value; z and th* are recomputed outside the handshake. */
static int hs_full(struct vec *v)
{
	uint8_t *cseed = field(v, "client_seed", 32, NULL), *ceph = field(v, "client_ephemeral", 32, NULL);
	uint8_t *sseed = field(v, "server_seed", 32, NULL), *seph = field(v, "server_ephemeral", 32, NULL);
	uint8_t pk[32], m[4][68], z[32], h[32];
	size_t nf;
	comm_hs c, s;
	comm_channel cch, sch;
	comm_frame fr;
	int err;
	be.ed25519_public(be.ctx, pk, cseed);
	must_equal_field(v, "client_public", pk, 32);
	be.ed25519_public(be.ctx, pk, sseed);
	must_equal_field(v, "server_public", pk, 32);
	err = comm_hs_client_init(&c, &be, cseed, pk, ceph);
	if (!err)
		err = comm_hs_server_init(&s, &be, sseed, seph);
	if (!err)
		err = comm_hs_client_m1(&c, m[0]);
	if (!err)
		err = comm_hs_server_read_m1(&s, m[0], 68);
	if (!err)
		err = comm_hs_server_m2(&s, m[1]);
	if (!err)
		err = comm_hs_server_m3(&s, m[2]);
	if (!err)
		err = comm_hs_client_read_m2(&c, m[1], 68);
	if (!err)
		err = comm_hs_client_read_m3(&c, m[2], 68);
	if (!err)
		err = comm_hs_client_m4(&c, m[3]);
	if (!err)
		err = comm_hs_server_read_m4(&s, m[3], 68);
	if (err)
		goto out;
	must_equal_field(v, "m1", m[0], 68);
	must_equal_field(v, "m2", m[1], 68);
	must_equal_field(v, "m3", m[2], 68);
	must_equal_field(v, "m4", m[3], 68);
	be.x25519(be.ctx, z, ceph, m[1] + 36);
	must_equal_field(v, "shared_secret", z, 32);
	be.x25519(be.ctx, z, seph, m[0] + 36);
	must_equal_field(v, "shared_secret", z, 32);
	for (int k = 2; k <= 4; k++) {
		comm_part p[] = {{&m[0][0], (size_t)k * 68}};
		char name[4] = {'t', 'h', (char)('0' + k), 0};
		be.sha256(be.ctx, h, p, 1);
		must_equal_field(v, name, h, 32);
	}
	must_equal_field(v, "key_c2s", c.keys.c2s, 32);
	must_equal_field(v, "key_s2c", c.keys.s2c, 32);
	must_equal_field(v, "key_c2s", s.keys.c2s, 32);
	must_equal_field(v, "key_s2c", s.keys.s2c, 32);
	{
		uint8_t *f0 = field(v, "frame_s2c_0", 0, &nf);
		comm_channel_init(&sch, &be, &s.keys, 0);
		err = comm_hs_client_read_frame0(&c, f0, nf);
		free(f0);
	}
	if (!err) {
		uint8_t *f1 = field(v, "frame_c2s_0", 0, &nf);
		err = comm_frame_open(&sch, f1, nf, &fr);
		if (!err && (fr.type != COMM_FRAME_PING || fr.counter != 0 || fr.len != 8 ||
		             memcmp(fr.body, "ping0001", 8) != 0))
			v->mismatch = strdup("frame_c2s_0");
		free(f1);
	}
	comm_channel_init(&cch, &be, &c.keys, 1);
	(void)cch;
out:
	free(cseed), free(ceph), free(sseed), free(seph);
	return err;
}

static int run_handshake(struct vec *v)
{
	const char *side = get(v, "side");
	if (side == NULL)
		return hs_full(v);
	if (strcmp(side, "client") == 0)
		return hs_client(v);
	if (strcmp(side, "server") == 0)
		return hs_server(v);
	fprintf(stderr, "%s: unknown side %s\n", v->file, side);
	exit(2);
}

/* ---- frame ---- */

static int run_frame(struct vec *v)
{
	const char *dir = get(v, "direction");
	uint8_t *key = field(v, "key", 32, NULL), *own = field(v, "own_key", 32, NULL);
	comm_keys k;
	comm_channel ch;
	comm_frame fr;
	int err = 0, frames = count(v, "frame"), client;
	if (dir == NULL || (strcmp(dir, "c2s") != 0 && strcmp(dir, "s2c") != 0)) {
		fprintf(stderr, "%s: bad direction\n", v->file);
		exit(2);
	}
	client = strcmp(dir, "s2c") == 0; /* the receiver of s2c frames is the client */
	memcpy(client ? k.s2c : k.c2s, key, 32);
	memcpy(client ? k.c2s : k.s2c, own, 32);
	comm_channel_init(&ch, &be, &k, client);
	for (int i = 0; i < frames; i++) {
		size_t n;
		uint8_t *f = hex(get_nth(v, "frame", i), &n);
		err = comm_frame_open(&ch, f, n, &fr);
		if (i == frames - 1 && !err && get(v, "type")) {
			if (fr.type != num(v, "type") || fr.counter != num(v, "counter"))
				v->mismatch = strdup("type/counter");
			must_equal_field(v, "body", fr.body, fr.len);
		}
		free(f);
		if (err && i < frames - 1) {
			v->mismatch = strdup("a frame before the last failed");
			break;
		}
	}
	free(key), free(own);
	return err;
}

/* ---- envelope ---- */

static int run_envelope(struct vec *v)
{
	size_t n, plen;
	uint8_t *key = field(v, "key", 32, NULL), *env = field(v, "envelope", 0, &n), *payload;
	uint8_t *orig = malloc(n + 1);
	comm_env_header h;
	int err;
	memcpy(orig, env, n);
	err = comm_env_open(&be, env, n, key, &h, &payload, &plen);
	if (!err)
		must_equal_field(v, "payload", payload, plen);
	if (!err && get(v, "nonce")) {
		uint8_t *g = field(v, "group", 16, NULL), *s = field(v, "sender", 32, NULL);
		uint8_t *nonce = field(v, "nonce", 24, NULL);
		uint8_t *out = malloc(n + 1);
		size_t outlen;
		comm_identity signer, *sp = NULL;
		must_equal(v, "group", h.group, g, 16);
		must_equal(v, "sender", h.sender, s, 32);
		if (h.epoch != num(v, "epoch") || h.counter != num(v, "counter"))
			v->mismatch = strdup("epoch/counter");
		if (get(v, "sender_seed")) { /* the sender signs (6.3) */
			uint8_t *seed = field(v, "sender_seed", 32, NULL), wrap[32] = {0};
			comm_identity_init(&be, &signer, seed, wrap);
			sp = &signer;
			free(seed);
		}
		if (get(v, "signed")) { /* the bytes the signature covers (6) */
			size_t sl;
			uint8_t *want = field(v, "signed", 0, &sl);
			size_t ll = COMM_LABEL_LEN(COMM_LABEL_ENVELOPE_SIG);
			uint8_t *got = malloc(ll + 3 + n);
			memcpy(got, COMM_LABEL_ENVELOPE_SIG, ll);
			got[ll] = COMM_VERSION;
			got[ll + 1] = COMM_SUITE >> 8;
			got[ll + 2] = COMM_SUITE & 0xff;
			memcpy(got + ll + 3, orig, n - COMM_ENV_SIG_SIZE);
			if (sl != ll + 3 + n - COMM_ENV_SIG_SIZE)
				v->mismatch = strdup("signed (length)");
			else
				must_equal(v, "signed", got, want, sl);
			free(want), free(got);
		}
		if (comm_env_seal(&be, out, n, &h, key, nonce, payload, plen, sp, &outlen) != 0 || outlen != n)
			v->mismatch = strdup("seal");
		else
			must_equal(v, "sealed envelope", out, orig, n);
		free(g), free(s), free(nonce), free(out);
	}
	free(key), free(env), free(orig);
	return err;
}

/* ---- bundle ---- */

static int run_bundle(struct vec *v)
{
	size_t n;
	uint8_t *ks = field(v, "keyserver_public", 32, NULL), *seed = field(v, "member_seed", 32, NULL);
	uint8_t *wrap = field(v, "member_wrap_scalar", 32, NULL), *raw = field(v, "bundle", 0, &n);
	uint8_t again[COMM_BUNDLE_SIZE], key[32];
	comm_bundle b;
	comm_identity id;
	int err = comm_bundle_parse(raw, n, &b);
	if (!err) {
		comm_bundle_encode(&b, again);
		must_equal(v, "encoded again", again, raw, COMM_BUNDLE_SIZE);
		err = comm_identity_init(&be, &id, seed, wrap);
	}
	if (!err)
		err = comm_bundle_open(&be, &b, ks, &id, key);
	if (!err && get(v, "group_key")) {
		size_t ml;
		uint8_t *list = field(v, "member_list", 0, &ml), d[32];
		must_equal_field(v, "group_key", key, 32);
		must_equal_field(v, "group", b.group, 16);
		if (b.epoch != num(v, "epoch"))
			v->mismatch = strdup("epoch");
		comm_member_digest(&be, list, ml / 32, d);
		must_equal_field(v, "members_digest", d, 32);
		must_equal(v, "members", b.members, d, 32);
		free(list);
	}
	free(ks), free(seed), free(wrap), free(raw);
	return err;
}

/* ---- keyfile ---- */

static int run_keyfile(struct vec *v)
{
	size_t n, bl, outlen;
	uint8_t *f = field(v, "file", 0, &n), out[COMM_KEYFILE_MAX_SIZE];
	const uint8_t *body;
	int kind, err = comm_keyfile_parse(&be, f, n, 0, &kind, &body, &bl);
	if (!err && get(v, "key_kind")) {
		if ((uint64_t)kind != num(v, "key_kind"))
			v->mismatch = strdup("key_kind");
		must_equal_field(v, "body", body, bl);
		if (comm_keyfile_encode(&be, kind, body, bl, out, sizeof out, &outlen) != 0 || outlen != n)
			v->mismatch = strdup("encode");
		else
			must_equal(v, "encoded again", out, f, n);
	}
	free(f);
	return err;
}

/* ---- window ---- */

static const char *verdicts[] = {"fresh", "duplicate", "old", "jump", "exhausted"};

static int run_window(struct vec *v)
{
	comm_window w, back;
	uint8_t bin[COMM_WINDOW_BINARY_MAX];
	char text[COMM_WINDOW_TEXT_MAX];
	size_t bl, used;
	int steps = count(v, "counter");
	memset(&w, 0, sizeof w);
	if (steps != count(v, "verdict")) {
		fprintf(stderr, "%s: counters and verdicts do not pair\n", v->file);
		exit(2);
	}
	for (int i = 0; i < steps; i++) {
		uint64_t c = strtoull(get_nth(v, "counter", i), NULL, 10);
		int got = comm_window_check(&w, c);
		if (strcmp(verdicts[got], get_nth(v, "verdict", i)) != 0) {
			char msg[96];
			snprintf(msg, sizeof msg, "step %d: counter %llu is %s", i + 1, (unsigned long long)c, verdicts[got]);
			v->mismatch = strdup(msg);
			return COMM_OK;
		}
		if (got == COMM_FRESH)
			comm_window_accept(&w, c);
	}
	if (w.top != num(v, "top"))
		v->mismatch = strdup("top");
	bl = comm_window_binary(&w, bin);
	must_equal_field(v, "binary", bin, bl);
	comm_window_text(&w, text);
	if (strcmp(text, get(v, "text")) != 0)
		v->mismatch = strdup("text");
	if (comm_window_parse_binary(bin, bl, &back, &used) != 0 || used != bl || memcmp(&back, &w, sizeof w) != 0)
		v->mismatch = strdup("binary read back");
	if (comm_window_parse_text(text, strlen(text), &back) != 0 || memcmp(&back, &w, sizeof w) != 0)
		v->mismatch = strdup("text read back");
	return COMM_OK;
}

/* ---- event and checkpoint (15.9) ---- */

static int64_t snum(struct vec *v, const char *name)
{
	const char *s = get(v, name);
	if (s == NULL) {
		fprintf(stderr, "%s: no field %s\n", v->file, name);
		exit(2);
	}
	return strtoll(s, NULL, 10);
}

/* copy_field copies a hex field of exactly n bytes into out. */
static void copy_field(struct vec *v, const char *name, uint8_t *out, size_t n)
{
	uint8_t *b = field(v, name, n, NULL);
	memcpy(out, b, n);
	free(b);
}

/* The payload fields of each type (15.3), in the file's names. */
static const char *const payload_fields[] = {"client", "wrap", "name", "reason", "group", "max_messages",
                                             "max_age", "epoch", "digest", "count", "clients"};

static int type_has(int type, const char *f)
{
	static const char *const by_type[8] = {
		"", "client wrap name", "client reason", "group max_messages max_age name",
		"group epoch digest count clients reason", "group epoch digest count clients reason",
		"group epoch digest count clients reason", "group",
	};
	const char *list = by_type[type], *at = list;
	size_t l = strlen(f);
	while ((at = strstr(at, f)) != NULL) {
		if ((at == list || at[-1] == ' ') && (at[l] == ' ' || at[l] == 0))
			return 1;
		at += l;
	}
	return 0;
}

/* event_from_fields builds the event an ok case's fields describe,
 * without the decoder; the byte strings it points to are freed by the
 * caller (bufs). */
static void event_from_fields(struct vec *v, comm_event *e, uint8_t *bufs[3])
{
	memset(e, 0, sizeof *e);
	e->type = (uint8_t)num(v, "type");
	e->seq = num(v, "seq");
	copy_field(v, "prev", e->prev, 32);
	e->time = snum(v, "time");
	copy_field(v, "actor", e->actor, 32);
	copy_field(v, "request", e->request, 16);
	if (type_has(e->type, "client"))
		copy_field(v, "client", e->client, 32);
	if (type_has(e->type, "wrap"))
		copy_field(v, "wrap", e->wrap, 32);
	if (type_has(e->type, "group"))
		copy_field(v, "group", e->group, 16);
	if (type_has(e->type, "max_messages")) {
		e->max_messages = num(v, "max_messages");
		e->max_age = snum(v, "max_age");
	}
	if (type_has(e->type, "epoch")) {
		size_t cl;
		e->epoch = (uint32_t)num(v, "epoch");
		copy_field(v, "digest", e->digest, 32);
		e->count = (uint32_t)num(v, "count");
		bufs[0] = field(v, "clients", 0, &cl);
		if (cl != (size_t)e->count * 32)
			v->mismatch = strdup("count and clients");
		e->clients = bufs[0];
	}
	if (type_has(e->type, "name"))
		e->name = bufs[1] = field(v, "name", 0, &e->name_len);
	if (type_has(e->type, "reason"))
		e->reason = bufs[2] = field(v, "reason", 0, &e->reason_len);
}

static int run_event(struct vec *v)
{
	size_t n;
	uint8_t *ks = field(v, "keyserver_public", 32, NULL), *head = field(v, "head_hash", 32, NULL);
	uint8_t *rec = field(v, "record", 0, &n), h[32];
	const char *subject = get(v, "subject");
	comm_event e, want;
	uint8_t *bufs[3] = {NULL, NULL, NULL};
	int err;
	if (subject == NULL) {
		fprintf(stderr, "%s: no field subject\n", v->file);
		exit(2);
	}
	err = comm_event_read(&be, rec, n, subject, strlen(subject), num(v, "head_seq"), head, ks, &e);
	if (!err && strcmp(get(v, "expect"), "ok") == 0) {
		char agg[COMM_EVENT_AGGREGATE_MAX];
		const char *tn = comm_event_type_name(e.type);
		uint8_t *body = malloc(n);
		size_t bl;
		/* the decoded event equals the fields */
		if (e.type != num(v, "type") || tn == NULL || strcmp(tn, get(v, "type_name") ? get(v, "type_name") : "") != 0)
			v->mismatch = strdup("type / type_name");
		comm_event_aggregate(&e, agg);
		if (get(v, "aggregate") == NULL || strcmp(agg, get(v, "aggregate")) != 0)
			v->mismatch = v->mismatch ? v->mismatch : strdup("aggregate");
		if (e.seq != num(v, "seq") || e.time != snum(v, "time"))
			v->mismatch = v->mismatch ? v->mismatch : strdup("seq / time");
		must_equal_field(v, "prev", e.prev, 32);
		must_equal_field(v, "actor", e.actor, 32);
		must_equal_field(v, "request", e.request, 16);
		for (size_t i = 0; i < sizeof payload_fields / sizeof payload_fields[0]; i++) {
			const char *f = payload_fields[i];
			if ((get(v, f) != NULL) != type_has(e.type, f)) {
				char msg[64];
				snprintf(msg, sizeof msg, "field %s for type %d", f, e.type);
				v->mismatch = v->mismatch ? v->mismatch : strdup(msg);
			}
		}
		if (type_has(e.type, "client"))
			must_equal_field(v, "client", e.client, 32);
		if (type_has(e.type, "wrap"))
			must_equal_field(v, "wrap", e.wrap, 32);
		if (type_has(e.type, "group"))
			must_equal_field(v, "group", e.group, 16);
		if (type_has(e.type, "name"))
			must_equal_field(v, "name", e.name, e.name_len);
		if (type_has(e.type, "reason"))
			must_equal_field(v, "reason", e.reason, e.reason_len);
		if (type_has(e.type, "max_messages") &&
		    (e.max_messages != num(v, "max_messages") || e.max_age != snum(v, "max_age")))
			v->mismatch = v->mismatch ? v->mismatch : strdup("max_messages / max_age");
		if (type_has(e.type, "epoch")) {
			if (e.epoch != num(v, "epoch") || e.count != num(v, "count"))
				v->mismatch = v->mismatch ? v->mismatch : strdup("epoch / count");
			must_equal_field(v, "digest", e.digest, 32);
			must_equal_field(v, "clients", e.clients, (size_t)e.count * 32);
		}
		/* encoding the fields gives the body */
		event_from_fields(v, &want, bufs);
		if (comm_event_encode(&want, body, n, &bl) != 0 || bl != n - COMM_EVENT_SIG_SIZE)
			v->mismatch = v->mismatch ? v->mismatch : strdup("encoding the fields (length)");
		else
			must_equal(v, "encoding the fields", body, rec, bl);
		/* the hash */
		comm_event_hash(&be, rec, n, h);
		must_equal_field(v, "hash", h, 32);
		free(body), free(bufs[0]), free(bufs[1]), free(bufs[2]);
	}
	free(ks), free(head), free(rec);
	return err;
}

static int run_checkpoint(struct vec *v)
{
	size_t n;
	uint8_t *ks = field(v, "keyserver_public", 32, NULL), *cp = field(v, "checkpoint", 0, &n);
	uint8_t log[32] = {0};
	int pairs = count(v, "stream_seq"), err;
	uint64_t last = 0;
	comm_checkpoint c;
	if (pairs != count(v, "record_hash") || pairs == 0) {
		fprintf(stderr, "%s: stream_seq and record_hash do not pair\n", v->file);
		exit(2);
	}
	for (int i = 0; i < pairs; i++) {
		size_t hl;
		uint8_t *h = hex(get_nth(v, "record_hash", i), &hl);
		if (hl != 32) {
			fprintf(stderr, "%s: record_hash is %zu bytes\n", v->file, hl);
			exit(2);
		}
		last = strtoull(get_nth(v, "stream_seq", i), NULL, 10);
		comm_event_log_next(&be, log, last, h);
		free(h);
	}
	must_equal_field(v, "log", log, 32);
	err = comm_checkpoint_read(&be, cp, n, ks, &c);
	if (!err) {
		if (c.seq != last)
			v->mismatch = v->mismatch ? v->mismatch : strdup("checkpoint seq");
		must_equal_field(v, "log", c.log, 32);
	}
	free(ks), free(cp);
	return err;
}

/* ---- the walk ---- */

/* known_name: expect must be ok, a name of 9.2 or peer_<code name>. */
static int known_name(const char *s)
{
	char buf[48];
	if (strcmp(s, "ok") == 0)
		return 1;
	for (int e = -1; e > COMM_E_LOCAL; e--)
		if (strcmp(comm_event_err_name(e, buf, sizeof buf), s) == 0)
			return 1;
	for (uint16_t c = 1; c <= 7; c++)
		if (strcmp(comm_err_name(comm_err_peer(c), buf, sizeof buf), s) == 0)
			return 1;
	return 0;
}

static int run_file(const char *dir, const char *name)
{
	char path[4096], got[48];
	struct vec v;
	FILE *fp;
	long len;
	char *text;
	const char *kind, *expect;
	int err;
	memset(&v, 0, sizeof v);
	v.file = name;
	snprintf(path, sizeof path, "%s/%s", dir, name);
	fp = fopen(path, "rb");
	if (fp == NULL) {
		perror(path);
		return 0;
	}
	fseek(fp, 0, SEEK_END);
	len = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	text = calloc(1, (size_t)len + 1);
	if (fread(text, 1, (size_t)len, fp) != (size_t)len) {
		fclose(fp);
		free(text);
		return 0;
	}
	fclose(fp);
	if (parse_file(&v, text) != 0) {
		free(text);
		return 0;
	}
	kind = get(&v, "kind");
	expect = get(&v, "expect");
	if (kind == NULL || expect == NULL) {
		printf("FAIL %s: no kind or expect\n", name);
		free(text);
		return 0;
	}
	if (!known_name(expect)) {
		printf("FAIL %s: expect %s names no known error\n", name, expect);
		free(text);
		return 0;
	}
	if (strcmp(kind, "handshake") == 0)
		err = run_handshake(&v);
	else if (strcmp(kind, "frame") == 0)
		err = run_frame(&v);
	else if (strcmp(kind, "envelope") == 0)
		err = run_envelope(&v);
	else if (strcmp(kind, "bundle") == 0)
		err = run_bundle(&v);
	else if (strcmp(kind, "keyfile") == 0)
		err = run_keyfile(&v);
	else if (strcmp(kind, "window") == 0)
		err = run_window(&v);
	else if (strcmp(kind, "event") == 0)
		err = run_event(&v);
	else if (strcmp(kind, "checkpoint") == 0)
		err = run_checkpoint(&v);
	else {
		printf("FAIL %s: unknown kind %s\n", name, kind);
		free(text);
		return 0;
	}
	comm_event_err_name(err, got, sizeof got);
	if (v.mismatch) {
		printf("FAIL %s: computed %s differs from the file (outcome %s)\n", name, v.mismatch, got);
		free(v.mismatch);
		free(text);
		return 0;
	}
	if (strcmp(got, expect) != 0) {
		printf("FAIL %s: got %s, expect %s\n", name, got, expect);
		free(text);
		return 0;
	}
	printf("ok   %-58s %s\n", name, got);
	free(text);
	return 1;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv)
{
	DIR *d;
	struct dirent *e;
	char *names[1024];
	int n = 0, passed = 0;
	if (argc != 2) {
		fprintf(stderr, "usage: vectors DIR\n");
		return 2;
	}
	if (comm_sodium_backend(&be) != 0) {
		fprintf(stderr, "libsodium cannot be initialised\n");
		return 2;
	}
	d = opendir(argv[1]);
	if (d == NULL) {
		perror(argv[1]);
		return 2;
	}
	while ((e = readdir(d)) != NULL && n < 1024) {
		size_t l = strlen(e->d_name);
		if (e->d_name[0] == '.')
			continue;
		if (l < 4 || strcmp(e->d_name + l - 4, ".txt") != 0) {
			printf("FAIL %s: not a vector file (*.txt)\n", e->d_name);
			closedir(d);
			return 1;
		}
		names[n++] = strdup(e->d_name);
	}
	closedir(d);
	qsort(names, (size_t)n, sizeof names[0], by_name);
	for (int i = 0; i < n; i++) {
		passed += run_file(argv[1], names[i]);
		free(names[i]);
	}
	printf("%d of %d vector files pass\n", passed, n);
	if (n < 50) {
		printf("FAIL: fewer than 50 vector files in %s\n", argv[1]);
		return 1;
	}
	return passed == n ? 0 : 1;
}
