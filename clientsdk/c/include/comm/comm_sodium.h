/*
 * comm_sodium.h - the libsodium backend (libsodium >= 1.0.18).
 * Call sodium_init() (or comm_sodium_backend, which does) before use.
 */
#ifndef COMM_SODIUM_H
#define COMM_SODIUM_H

#include "comm_backend.h"

/* comm_sodium_backend fills be with the libsodium backend; it returns 0,
 * or -1 if libsodium cannot be initialised. */
int comm_sodium_backend(comm_backend *be);

#endif
