/*
 * commclient-c - the C library's example client: what `commclient send`
 * and `commclient listen` do, with the same flags, environment variables
 * and key files (PROTOCOL.md 10), over POSIX TCP (posix.c).
 *
 *   commclient-c keygen --out PREFIX
 *   commclient-c send   [flags] GROUP MESSAGE...   (GROUP - reads stdin)
 *   commclient-c listen [flags] [--count N] [--for SECONDS]
 *   commclient-c groups [flags]
 *
 * Its state file (default PREFIX.cstate) is this library's format, not the
 * Go client's: never point both at one file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm/comm.h"
#include "comm/comm_sodium.h"
#include "posix.h"

#define MAX_MSG COMM_MAX_PAYLOAD

static const char usage[] =
    "Usage:\n"
    "  commclient-c keygen --out PREFIX\n"
    "  commclient-c send [flags] GROUP MESSAGE...   (or GROUP - to read the message from stdin)\n"
    "  commclient-c listen [flags] [--count N] [--for SECONDS]\n"
    "  commclient-c groups [flags]\n"
    "Flags (each also read from the environment variable shown; a flag wins):\n"
    "  --gateway HOST:PORT    the gateway [COMM_GATEWAY] (default 127.0.0.1:7400)\n"
    "  --key FILE             this client's identity, PREFIX.key [COMM_CLIENT_KEY]\n"
    "  --server-pub FILE      the gateway's public key, gateway.pub [COMM_SERVER_PUB]\n"
    "  --keyserver-pub FILE   the keyserver's public key, keyserver.pub [COMM_KEYSERVER_PUB]\n"
    "  --state FILE           this client's state [COMM_STATE] (default PREFIX.cstate)\n"
    "  --timeout SECONDS      bound on connecting and on each wait (default 15)\n"
    "Exit status: 0 done; 1 error (also a refused message); 2 usage error.\n";

struct opts {
	const char *cmd, *gateway, *key, *server_pub, *keyserver_pub, *state, *out;
	int timeout_s, count, for_s;
	char *pos[64];
	int npos;
	char state_buf[4096];
};

/* the program's whole state: static, so that the 64 KiB buffers are not on the stack */
static struct app {
	comm_backend be;
	comm_identity id;
	uint8_t server_pk[32], ks_pk[32];
	comm_state state;
	comm_store store;
	struct posix_store pstore;
	comm_io io;
	struct posix_net net;
	comm_events ev;
	comm_client c;
	uint8_t rx[COMM_RX_BUFFER_SIZE];
	uint8_t tx[COMM_TX_BUFFER_SIZE(MAX_MSG)];
	/* what the events saw */
	int received;
	const char *prefix; /* before each message line ("" for listen) */
	FILE *msg_out;
	int acked;
	uint16_t ack_status;
	uint64_t want_counter;
	int bundle_err;
	int key_for_held; /* a key arrived while a delivery was held for one */
} A;

static int die_usage(const char *msg)
{
	fprintf(stderr, "commclient-c: %s\n%s", msg, usage);
	return 2;
}

static const char *env_or(const char *v, const char *env, const char *def)
{
	const char *e = getenv(env);
	return v ? v : (e && *e ? e : def);
}

static int parse(struct opts *o, int argc, char **argv)
{
	memset(o, 0, sizeof *o);
	o->timeout_s = 15;
	if (argc < 2)
		return die_usage("missing command");
	o->cmd = argv[1];
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		const char **s = NULL;
		int *n = NULL;
		if (strcmp(a, "--") == 0) {
			while (++i < argc && o->npos < 64)
				o->pos[o->npos++] = argv[i];
			break;
		}
		if (strcmp(a, "--gateway") == 0) s = &o->gateway;
		else if (strcmp(a, "--key") == 0) s = &o->key;
		else if (strcmp(a, "--server-pub") == 0) s = &o->server_pub;
		else if (strcmp(a, "--keyserver-pub") == 0) s = &o->keyserver_pub;
		else if (strcmp(a, "--state") == 0) s = &o->state;
		else if (strcmp(a, "--out") == 0) s = &o->out;
		else if (strcmp(a, "--timeout") == 0) n = &o->timeout_s;
		else if (strcmp(a, "--count") == 0) n = &o->count;
		else if (strcmp(a, "--for") == 0) n = &o->for_s;
		else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			fputs(usage, stdout);
			exit(0);
		} else if (a[0] == '-' && a[1] == '-') {
			return die_usage("unknown flag");
		} else if (o->npos < 64) {
			o->pos[o->npos++] = argv[i];
			continue;
		}
		if (++i >= argc)
			return die_usage("a flag without its value");
		if (s)
			*s = argv[i];
		else if ((*n = atoi(argv[i])) < 0)
			return die_usage("negative number");
	}
	o->gateway = env_or(o->gateway, "COMM_GATEWAY", "127.0.0.1:7400");
	o->key = env_or(o->key, "COMM_CLIENT_KEY", NULL);
	o->server_pub = env_or(o->server_pub, "COMM_SERVER_PUB", NULL);
	o->keyserver_pub = env_or(o->keyserver_pub, "COMM_KEYSERVER_PUB", NULL);
	o->state = env_or(o->state, "COMM_STATE", NULL);
	if (o->timeout_s <= 0)
		return die_usage("--timeout must be positive");
	return 0;
}

static const char *ename(int e)
{
	static char buf[48];
	return comm_err_name(e, buf, sizeof buf);
}

static void hexs(char *out, const uint8_t *p, size_t n)
{
	static const char d[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = d[p[i] >> 4];
		out[2 * i + 1] = d[p[i] & 15];
	}
	out[2 * n] = 0;
}

static int unhex(uint8_t *out, const char *s, size_t n)
{
	if (strlen(s) != 2 * n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1 || !strchr("0123456789abcdef", s[2 * i]) ||
		    !strchr("0123456789abcdef", s[2 * i + 1]))
			return -1;
		out[i] = (uint8_t)v;
	}
	return 0;
}

/* ---- keygen ---- */

static int keygen(const struct opts *o)
{
	uint8_t secret[64], pub[64], file[COMM_KEYFILE_MAX_SIZE];
	char path[4096];
	size_t n;
	int err = 0;
	if (o->out == NULL)
		return die_usage("keygen needs --out PREFIX");
	if (posix_random(NULL, secret, sizeof secret) != 0 || A.be.ed25519_public(A.be.ctx, pub, secret) != 0 ||
	    A.be.x25519(A.be.ctx, pub + 32, secret + 32, NULL) != 0)
		err = COMM_E_CRYPTO;
	if (!err)
		err = comm_keyfile_encode(&A.be, COMM_KIND_CLIENT_IDENTITY, secret, 64, file, sizeof file, &n);
	snprintf(path, sizeof path, "%s.key", o->out);
	if (!err && posix_write_file(path, file, n, 0600) != 0) {
		fprintf(stderr, "commclient-c: cannot create %s (does it exist already?)\n", path);
		return 1;
	}
	comm_wipe(secret, sizeof secret);
	comm_wipe(file, sizeof file);
	if (!err)
		err = comm_keyfile_encode(&A.be, COMM_KIND_CLIENT_PUBLIC, pub, 64, file, sizeof file, &n);
	snprintf(path, sizeof path, "%s.pub", o->out);
	if (!err && posix_write_file(path, file, n, 0644) != 0) {
		fprintf(stderr, "commclient-c: cannot create %s\n", path);
		return 1;
	}
	if (err) {
		fprintf(stderr, "commclient-c: keygen: %s\n", ename(err));
		return 1;
	}
	hexs(path, pub, 32);
	printf("client id %s\nwrote %s.key (secret, 0600) and %s.pub (register it: ksctl client register %s.pub --name NAME)\n",
	       path, o->out, o->out, o->out);
	return 0;
}

/* ---- events ---- */

static int printable(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x20 || p[i] == 0x7f)
			return 0;
	return n < 4 || memcmp(p, "hex:", 4) != 0;
}

static void on_message(void *ctx, const comm_env_header *h, const uint8_t *p, size_t n)
{
	char g[33], s[9];
	(void)ctx;
	hexs(g, h->group, 16);
	hexs(s, h->sender, 4);
	fprintf(A.msg_out, "%s%s from %s epoch %u #%llu  ", A.prefix, g, s, (unsigned)h->epoch,
	        (unsigned long long)h->counter);
	if (printable(p, n)) {
		fwrite(p, 1, n, A.msg_out);
	} else {
		fputs("hex:", A.msg_out);
		for (size_t i = 0; i < n; i++)
			fprintf(A.msg_out, "%02x", p[i]);
	}
	fputc('\n', A.msg_out);
	fflush(A.msg_out);
	A.received++;
}

static void on_send_ack(void *ctx, const uint8_t group[16], uint64_t counter, uint16_t status)
{
	(void)ctx;
	(void)group;
	if (counter == A.want_counter) {
		A.acked = 1;
		A.ack_status = status;
	}
}

static void on_bundle(void *ctx, const uint8_t group[16], uint32_t epoch, int err)
{
	char g[33];
	(void)ctx;
	if (err == 0 && A.c.hold != 0)
		A.key_for_held = 1;
	if (err == 0 || err == COMM_E_STALE_EPOCH)
		return;
	hexs(g, group, 16);
	if (A.bundle_err == 0)
		fprintf(stderr, "commclient-c: key bundle of %s epoch %u refused: %s\n", g, (unsigned)epoch, ename(err));
	A.bundle_err = err;
}

static void on_drop(void *ctx, const comm_env_header *h, int err)
{
	(void)ctx;
	(void)h;
	if (err != COMM_E_REPLAYED_MESSAGE)
		fprintf(stderr, "commclient-c: dropped a delivered message: %s\n", ename(err));
}

/* ---- connecting ---- */

static int load(struct opts *o)
{
	uint8_t buf[COMM_KEYFILE_MAX_SIZE + 1];
	const uint8_t *body;
	int err;
	const char *missing = !o->key ? "--key" : !o->server_pub ? "--server-pub" : !o->keyserver_pub ? "--keyserver-pub" : NULL;
	if (missing) {
		fprintf(stderr, "commclient-c: %s is required\n%s", missing, usage);
		return 2;
	}
	if ((err = posix_read_keyfile(&A.be, o->key, COMM_KIND_CLIENT_IDENTITY, buf, &body)) != 0) {
		fprintf(stderr, "commclient-c: --key %s: %s\n", o->key, ename(err));
		return 1;
	}
	comm_identity_init(&A.be, &A.id, body, body + 32);
	comm_wipe(buf, sizeof buf);
	if ((err = posix_read_keyfile(&A.be, o->server_pub, COMM_KIND_SERVER_PUBLIC, buf, &body)) != 0) {
		fprintf(stderr, "commclient-c: --server-pub %s: %s\n", o->server_pub, ename(err));
		return 1;
	}
	memcpy(A.server_pk, body, 32);
	if ((err = posix_read_keyfile(&A.be, o->keyserver_pub, COMM_KIND_KEYSERVER_PUBLIC, buf, &body)) != 0) {
		fprintf(stderr, "commclient-c: --keyserver-pub %s: %s\n", o->keyserver_pub, ename(err));
		return 1;
	}
	memcpy(A.ks_pk, body, 32);
	if (o->state == NULL) {
		size_t l = strlen(o->key);
		if (l > 4 && strcmp(o->key + l - 4, ".key") == 0)
			l -= 4;
		snprintf(o->state_buf, sizeof o->state_buf, "%.*s.cstate", (int)l, o->key);
		o->state = o->state_buf;
	}
	posix_store_init(&A.pstore, &A.store, o->state);
	if ((err = comm_state_load(&A.state, &A.store)) != 0) {
		fprintf(stderr, "commclient-c: --state %s: %s\n", o->state, ename(err));
		return 1;
	}
	return 0;
}

/* poll_until polls until *flag is set or the deadline passes. */
static int poll_until(const int *flag, long long deadline)
{
	while (!*flag) {
		long long left = deadline - posix_now_ms();
		int r;
		if (left <= 0)
			return COMM_E_TIMEOUT;
		A.net.wait_ms = left > 1000 ? 1000 : (int)left;
		r = comm_client_poll(&A.c);
		if (r < 0 && r != COMM_E_TIMEOUT)
			return r;
	}
	return 0;
}

static int dial(struct opts *o)
{
	comm_client_config cfg;
	int err;
	if (posix_dial(&A.net, o->gateway, o->timeout_s * 1000) != 0) {
		fprintf(stderr, "commclient-c: cannot reach the gateway at %s (is it running? check --gateway or COMM_GATEWAY)\n",
		        o->gateway);
		return 1;
	}
	posix_io(&A.io, &A.net);
	A.net.wait_ms = o->timeout_s * 1000; /* the handshake's deadline, per read */
	A.ev.on_message = on_message;
	A.ev.on_send_ack = on_send_ack;
	A.ev.on_bundle = on_bundle;
	A.ev.on_drop = on_drop;
	memset(&cfg, 0, sizeof cfg);
	cfg.be = &A.be;
	cfg.io = &A.io;
	cfg.store = &A.store;
	cfg.events = &A.ev;
	cfg.identity = &A.id;
	cfg.server_pk = A.server_pk;
	cfg.keyserver_pk = A.ks_pk;
	cfg.state = &A.state;
	cfg.rx = A.rx;
	cfg.rx_cap = sizeof A.rx;
	cfg.tx = A.tx;
	cfg.tx_cap = sizeof A.tx;
	err = comm_client_init(&A.c, &cfg);
	if (!err)
		err = comm_client_connect(&A.c);
	if (comm_err_is_peer(err) && comm_err_peer_code(err) == 4) {
		char id[65];
		hexs(id, A.id.id, 32);
		fprintf(stderr, "commclient-c: the gateway does not admit this client (id %s): is it registered?\n", id);
		return 1;
	}
	if (err == COMM_E_WRONG_SERVER_KEY || err == COMM_E_BAD_SERVER_SIGNATURE) {
		fprintf(stderr, "commclient-c: the server at %s is not the gateway of --server-pub %s\n", o->gateway, o->server_pub);
		return 1;
	}
	if (err) {
		fprintf(stderr, "commclient-c: handshake with %s: %s\n", o->gateway, ename(err));
		return 1;
	}
	/* the first Groups frame says every key the server holds was pushed (8.4) */
	err = poll_until(&A.c.groups_known, posix_now_ms() + o->timeout_s * 1000LL);
	if (err) {
		fprintf(stderr, "commclient-c: the gateway at %s did not send this client's keys and groups: %s\n", o->gateway,
		        ename(err));
		return 1;
	}
	if (A.bundle_err == COMM_E_BAD_BUNDLE_SIGNATURE) {
		fprintf(stderr, "commclient-c: --keyserver-pub %s is not the key that signs this client's bundles\n", o->keyserver_pub);
		return 1;
	}
	return 0;
}

/* ---- send ---- */

static int read_message(const struct opts *o, uint8_t *msg, size_t *n)
{
	*n = 0;
	if (o->npos == 2 && strcmp(o->pos[1], "-") == 0) {
		size_t k = fread(msg, 1, MAX_MSG + 2, stdin);
		if (k >= 1 && msg[k - 1] == '\n')
			k--;
		if (k >= 1 && msg[k - 1] == '\r')
			k--;
		*n = k;
	} else {
		for (int i = 1; i < o->npos; i++) {
			size_t l = strlen(o->pos[i]);
			if (*n + l + (i > 1) > MAX_MSG + 1)
				return -1;
			if (i > 1)
				msg[(*n)++] = ' ';
			memcpy(msg + *n, o->pos[i], l);
			*n += l;
		}
	}
	if (*n == 0 || *n > MAX_MSG) {
		fprintf(stderr, "commclient-c: the message is empty or over %u bytes\n", MAX_MSG);
		return -1;
	}
	return 0;
}

/* wait_newer_key polls up to 5 s for a key of group newer than epoch. */
static int wait_newer_key(const uint8_t group[16], uint32_t epoch)
{
	long long end = posix_now_ms() + 5000;
	uint32_t e = 0;
	const uint8_t *key;
	while (comm_state_current(&A.state, group, &e, &key) == 0 && e <= epoch) {
		long long left = end - posix_now_ms();
		int r;
		if (left <= 0)
			return 0;
		A.net.wait_ms = left > 1000 ? 1000 : (int)left;
		r = comm_client_poll(&A.c);
		if (r < 0 && r != COMM_E_TIMEOUT)
			return 0;
	}
	return e > epoch;
}

static int send_cmd(struct opts *o)
{
	static uint8_t msg[MAX_MSG + 2];
	uint8_t group[16];
	size_t n;
	int err, r;
	if (o->npos < 2)
		return die_usage("send needs GROUP and MESSAGE");
	if (unhex(group, o->pos[0], 16) != 0)
		return die_usage("GROUP: want the 32-hex-digit group id");
	if (read_message(o, msg, &n) != 0)
		return 1;
	if ((r = load(o)) != 0 || (r = dial(o)) != 0)
		return r;
	A.prefix = "received meanwhile: ";
	A.msg_out = stderr;
	if (!comm_client_is_member(&A.c, group)) {
		fprintf(stderr, "commclient-c: not a member of %s\n", o->pos[0]);
		return 1;
	}
	for (int attempt = 0, resealed = 0; attempt < 10; attempt++) {
		uint32_t sealed_epoch = 0;
		const uint8_t *key;
		if (attempt == 0 || A.ack_status == COMM_ACK_OLD_EPOCH) {
			comm_state_current(&A.state, group, &sealed_epoch, &key);
			err = comm_client_send(&A.c, group, msg, n, &A.want_counter);
		} else {
			err = comm_client_resend(&A.c); /* status 3: the same envelope again (5.5) */
		}
		if (err) {
			fprintf(stderr, "commclient-c: send: %s\n", ename(err));
			return 1;
		}
		A.acked = 0;
		err = poll_until(&A.acked, posix_now_ms() + o->timeout_s * 1000LL);
		if (err) {
			fprintf(stderr, "commclient-c: no verdict from the relay: %s (the message may or may not have been relayed)\n",
			        ename(err));
			return 1;
		}
		if (A.ack_status == COMM_ACK_OLD_EPOCH && !resealed && wait_newer_key(group, sealed_epoch)) {
			resealed = 1; /* a rekey crossed the message: seal it anew, once, under the newer key (8.4) */
			continue;
		}
		if (A.ack_status != COMM_ACK_RETRY)
			break;
		usleep(200000u << (attempt < 4 ? attempt : 4));
	}
	comm_client_close(&A.c);
	posix_close(&A.net);
	switch (A.ack_status) {
	case COMM_ACK_ACCEPTED:
	case COMM_ACK_DUPLICATE:
		printf("accepted\n");
		return 0;
	case COMM_ACK_RETRY:
		fprintf(stderr, "commclient-c: the relay kept answering retry\n");
		return 1;
	}
	switch (A.ack_status) {
	case COMM_ACK_OLD_EPOCH:
		fprintf(stderr, "commclient-c: refused: the message to %s was sealed under an epoch no longer accepted, and no newer key came\n", o->pos[0]);
		break;
	case COMM_ACK_NOT_MEMBER:
		fprintf(stderr, "commclient-c: refused: this client is not a member of %s\n", o->pos[0]);
		break;
	case COMM_ACK_REVOKED:
		fprintf(stderr, "commclient-c: refused: this client is revoked\n");
		break;
	case COMM_ACK_NO_GROUP:
		fprintf(stderr, "commclient-c: refused: group %s does not exist, or was deleted\n", o->pos[0]);
		break;
	case COMM_ACK_FUTURE_EPOCH:
		fprintf(stderr, "commclient-c: refused: the message to %s names an epoch that was never opened\n", o->pos[0]);
		break;
	default:
		fprintf(stderr, "commclient-c: refused: the relay did not accept the message to %s (status %u)\n", o->pos[0],
		        (unsigned)A.ack_status);
	}
	return 1;
}

/* ---- listen ---- */

static int listen_cmd(struct opts *o)
{
	long long end = o->for_s > 0 ? posix_now_ms() + o->for_s * 1000LL : 0, last = posix_now_ms();
	char id[9];
	int r;
	if (o->npos != 0)
		return die_usage("listen takes no arguments");
	A.prefix = "";
	A.msg_out = stdout;
	if ((r = load(o)) != 0 || (r = dial(o)) != 0)
		return r;
	hexs(id, A.id.id, 4);
	fprintf(stderr, "listening as client %s at %s; Ctrl-C stops\n", id, o->gateway);
	while (o->count == 0 || A.received < o->count) {
		long long now = posix_now_ms();
		if (end && now >= end)
			break;
		A.net.wait_ms = 1000;
		r = comm_client_poll(&A.c);
		if (r == COMM_E_TIMEOUT && now - last > 30000) {
			uint8_t ping[8] = {0};
			r = comm_client_ping(&A.c, ping); /* the gateway ends idle channels (9.2 idle) */
			last = now;
		}
		if (r < 0 && r != COMM_E_TIMEOUT) {
			fprintf(stderr, "commclient-c: the channel ended: %s\n", ename(r));
			return 1;
		}
		if (A.key_for_held) {
			/* a delivery came before its epoch's key and was left
			 * unacknowledged (PROTOCOL.md 5.6): the key is here now, so
			 * reconnect to have it delivered again */
			A.key_for_held = 0;
			comm_client_close(&A.c);
			posix_close(&A.net);
			if ((r = dial(o)) != 0)
				return r;
		}
	}
	comm_client_close(&A.c);
	posix_close(&A.net);
	return 0;
}

/* ---- groups ---- */

static int groups_cmd(struct opts *o)
{
	int r;
	if (o->npos != 0)
		return die_usage("groups takes no arguments");
	if ((r = load(o)) != 0 || (r = dial(o)) != 0)
		return r;
	if (A.c.ngroups == 0)
		printf("this client is in no group (an operator adds it with 'ksctl group add GROUP NAME')\n");
	for (int i = 0; i < A.c.ngroups && i < COMM_MAX_GROUPS; i++) {
		char g[33];
		uint32_t epoch = 0;
		const uint8_t *key;
		hexs(g, A.c.groups[i], 16);
		comm_state_current(&A.state, A.c.groups[i], &epoch, &key);
		printf("%s  epoch %u\n", g, (unsigned)epoch);
	}
	comm_client_close(&A.c);
	posix_close(&A.net);
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o;
	int r = parse(&o, argc, argv);
	if (r)
		return r;
	if (comm_sodium_backend(&A.be) != 0) {
		fprintf(stderr, "commclient-c: libsodium cannot be initialised\n");
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (strcmp(o.cmd, "keygen") == 0)
		r = keygen(&o);
	else if (strcmp(o.cmd, "send") == 0)
		r = send_cmd(&o);
	else if (strcmp(o.cmd, "listen") == 0)
		r = listen_cmd(&o);
	else if (strcmp(o.cmd, "groups") == 0)
		r = groups_cmd(&o);
	else
		r = die_usage("unknown command");
	comm_state_wipe(&A.state);
	comm_wipe(&A.id, sizeof A.id);
	return r;
}
