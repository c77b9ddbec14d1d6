/*
 * posix.h - a port of the library to POSIX: TCP transport, file store,
 * getrandom. A device port replaces this file (README.md, "Porting").
 */
#ifndef COMM_POSIX_H
#define COMM_POSIX_H

#include "comm/comm.h"

struct posix_net {
	int fd;
	int wait_ms; /* recv waits at most this long for the first byte of a call */
};

struct posix_store {
	const char *path;
	char tmp[4096];
	int wfd; /* the temporary file being written */
	int rfd; /* the blob being loaded */
};

int posix_dial(struct posix_net *n, const char *hostport, int timeout_ms);
void posix_close(struct posix_net *n);
void posix_io(comm_io *io, struct posix_net *n);
void posix_store_init(struct posix_store *s, comm_store *st, const char *path);
int posix_random(void *ctx, uint8_t *p, size_t n);
/* posix_read_keyfile reads a key file of kind want into buf (refusing a
 * private kind readable by group or others) and gives its body. */
int posix_read_keyfile(const comm_backend *be, const char *path, int want, uint8_t *buf, const uint8_t **body);
int posix_write_file(const char *path, const uint8_t *p, size_t n, int mode);
long long posix_now_ms(void);

#endif
