/*
 * comm_config.h - implementation limits of the C library, fixed at
 * compile time. Override any of them with -D (or in a header included
 * first through COMM_CONFIG_FILE). They size comm_state and the buffers;
 * nothing is allocated at run time.
 */
#ifndef COMM_CONFIG_H
#define COMM_CONFIG_H

#ifdef COMM_CONFIG_FILE
#include COMM_CONFIG_FILE
#endif

/* Groups the client keeps state for (keys, send counter, windows). */
#ifndef COMM_MAX_GROUPS
#define COMM_MAX_GROUPS 8
#endif

/* Senders per group whose replay windows are kept. A message from one
 * more sender is refused (state_full) rather than let a replay through:
 * size it to the largest group the device joins. */
#ifndef COMM_MAX_SENDERS
#define COMM_MAX_SENDERS 16
#endif

/* Epoch keys kept per group (8.3; 4 by default, at most 16). */
#ifndef COMM_MAX_EPOCHS
#define COMM_MAX_EPOCHS 4
#endif

/* Block reservation of send counters (8.4): counters reserved per write. */
#ifndef COMM_RESERVE
#define COMM_RESERVE 64
#endif

/* Messages per group the client tracks while they wait for their SendAck.
 * A send past it is refused with inflight_full until an answer comes. */
#ifndef COMM_MAX_PENDING
#define COMM_MAX_PENDING 4
#endif

/* The largest frame body the client can receive: the caller's receive
 * buffer must hold COMM_FRAME_OVERHEAD + this. The protocol allows 65536;
 * a device that only exchanges short messages may lower it, and then
 * fails a connection whose server sends a larger frame (frame_too_large). */
#ifndef COMM_RX_MAX_BODY
#define COMM_RX_MAX_BODY 65536u
#endif

/* Define COMM_CLIENT_ONLY to leave out what only tests use: the server
 * side of the handshake and HPKE seal (the footprint is measured so). */

#if COMM_MAX_EPOCHS < 2 || COMM_MAX_EPOCHS > 16
#error "COMM_MAX_EPOCHS must be 2..16"
#endif
#if COMM_MAX_GROUPS < 1 || COMM_MAX_GROUPS > 255
#error "COMM_MAX_GROUPS must be 1..255"
#endif
#if COMM_MAX_SENDERS < 1 || COMM_MAX_SENDERS > 65535
#error "COMM_MAX_SENDERS must be 1..65535"
#endif

#endif
