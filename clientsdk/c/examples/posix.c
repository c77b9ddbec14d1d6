/*
 * posix.c - the library's callbacks on a POSIX system: a TCP socket with a
 * wait per call (poll), the state blob in a file replaced atomically
 * (temporary file, fsync, rename, fsync of the directory), getrandom.
 */
#include "posix.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

long long posix_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int wait_fd(int fd, short events, int ms)
{
	struct pollfd p = {fd, events, 0};
	int r;
	do {
		r = poll(&p, 1, ms);
	} while (r < 0 && errno == EINTR);
	return r;
}

int posix_dial(struct posix_net *n, const char *hostport, int timeout_ms)
{
	char host[256];
	const char *colon = strrchr(hostport, ':');
	struct addrinfo hints, *res, *ai;
	int fd = -1;
	n->fd = -1;
	if (colon == NULL || (size_t)(colon - hostport) >= sizeof host)
		return -1;
	memcpy(host, hostport, (size_t)(colon - hostport));
	host[colon - hostport] = 0;
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, colon + 1, &hints, &res) != 0)
		return -1;
	for (ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
		int err = 0;
		socklen_t el = sizeof err;
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK, ai->ai_protocol);
		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 &&
		    (errno != EINPROGRESS || wait_fd(fd, POLLOUT, timeout_ms) <= 0 ||
		     getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err != 0)) {
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	if (fd < 0)
		return -1;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	n->fd = fd;
	return 0;
}

void posix_close(struct posix_net *n)
{
	if (n->fd >= 0)
		close(n->fd);
	n->fd = -1;
}

static int net_send(void *ctx, const uint8_t *p, size_t len)
{
	struct posix_net *n = ctx;
	while (len > 0) {
		ssize_t k = send(n->fd, p, len, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return COMM_E_IO;
		p += k;
		len -= (size_t)k;
	}
	return 0;
}

static int net_recv(void *ctx, uint8_t *p, size_t len)
{
	struct posix_net *n = ctx;
	ssize_t k;
	int r = wait_fd(n->fd, POLLIN, n->wait_ms);
	if (r == 0)
		return COMM_E_TIMEOUT;
	if (r < 0)
		return COMM_E_IO;
	do {
		k = recv(n->fd, p, len, 0);
	} while (k < 0 && errno == EINTR);
	if (k < 0)
		return COMM_E_IO;
	return (int)k;
}

int posix_random(void *ctx, uint8_t *p, size_t n)
{
	(void)ctx;
	while (n > 0) {
		ssize_t k = getrandom(p, n, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

void posix_io(comm_io *io, struct posix_net *n)
{
	io->ctx = n;
	io->send = net_send;
	io->recv = net_recv;
	io->random = posix_random;
}

/* ---- the state file ---- */

static int st_begin(void *ctx)
{
	struct posix_store *s = ctx;
	s->wfd = open(s->tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	return s->wfd < 0 ? -1 : 0;
}

static int st_write(void *ctx, const uint8_t *p, size_t n)
{
	struct posix_store *s = ctx;
	while (n > 0) {
		ssize_t k = write(s->wfd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static int fsync_dir(const char *path)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');
	int fd, r;
	if (slash == NULL) {
		strcpy(dir, ".");
	} else {
		size_t l = (size_t)(slash - path);
		if (l >= sizeof dir)
			return -1;
		memcpy(dir, path, l);
		dir[l ? l : 1] = 0;
		if (l == 0)
			dir[0] = '/';
	}
	fd = open(dir, O_RDONLY);
	if (fd < 0)
		return -1;
	r = fsync(fd);
	close(fd);
	return r;
}

static int st_commit(void *ctx)
{
	struct posix_store *s = ctx;
	int r = fsync(s->wfd);
	r |= close(s->wfd);
	s->wfd = -1;
	if (r == 0)
		r = rename(s->tmp, s->path);
	if (r == 0)
		r = fsync_dir(s->path);
	if (r != 0)
		unlink(s->tmp);
	return r ? -1 : 0;
}

static int st_read(void *ctx, uint8_t *p, size_t n)
{
	struct posix_store *s = ctx;
	ssize_t k;
	if (s->rfd < 0) {
		s->rfd = open(s->path, O_RDONLY);
		if (s->rfd < 0)
			return errno == ENOENT ? 0 : -1;
	}
	do {
		k = read(s->rfd, p, n);
	} while (k < 0 && errno == EINTR);
	return k < 0 ? -1 : (int)k;
}

void posix_store_init(struct posix_store *s, comm_store *st, const char *path)
{
	s->path = path;
	snprintf(s->tmp, sizeof s->tmp, "%s.tmp", path);
	s->wfd = s->rfd = -1;
	st->ctx = s;
	st->begin = st_begin;
	st->write = st_write;
	st->commit = st_commit;
	st->read = st_read;
}

/* ---- key files ---- */

int posix_read_keyfile(const comm_backend *be, const char *path, int want, uint8_t *buf, const uint8_t **body)
{
	struct stat sb;
	ssize_t n;
	size_t bl;
	int kind, err, fd = open(path, O_RDONLY);
	if (fd < 0)
		return COMM_E_IO;
	if (fstat(fd, &sb) != 0) {
		close(fd);
		return COMM_E_IO;
	}
	n = read(fd, buf, COMM_KEYFILE_MAX_SIZE + 1);
	close(fd);
	if (n < 0)
		return COMM_E_IO;
	err = comm_keyfile_parse(be, buf, (size_t)n, want, &kind, body, &bl);
	if (!err && (kind % 2) == 1 && (sb.st_mode & 077) != 0)
		err = COMM_E_KEYFILE_MODE; /* odd kinds are private (10.2) */
	return err;
}

int posix_write_file(const char *path, const uint8_t *p, size_t n, int mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
	ssize_t k;
	if (fd < 0)
		return -1;
	k = write(fd, p, n);
	if (k != (ssize_t)n || fsync(fd) != 0) {
		close(fd);
		unlink(path);
		return -1;
	}
	return close(fd);
}
