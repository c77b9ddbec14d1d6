/* internal.h - helpers shared by the core's files; not part of the API. */
#ifndef COMM_INTERNAL_H
#define COMM_INTERNAL_H

#include <string.h>

#include "comm/comm.h"

static inline void put16(uint8_t *b, uint16_t v) { b[0] = (uint8_t)(v >> 8); b[1] = (uint8_t)v; }
static inline void put32(uint8_t *b, uint32_t v)
{
	b[0] = (uint8_t)(v >> 24); b[1] = (uint8_t)(v >> 16); b[2] = (uint8_t)(v >> 8); b[3] = (uint8_t)v;
}
static inline void put64(uint8_t *b, uint64_t v)
{
	put32(b, (uint32_t)(v >> 32));
	put32(b + 4, (uint32_t)v);
}
static inline uint16_t get16(const uint8_t *b) { return (uint16_t)((b[0] << 8) | b[1]); }
static inline uint32_t get32(const uint8_t *b)
{
	return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
}
static inline uint64_t get64(const uint8_t *b) { return ((uint64_t)get32(b) << 32) | get32(b + 4); }

static inline int is_zero32(const uint8_t *b)
{
	uint8_t acc = 0;
	for (int i = 0; i < 32; i++)
		acc |= b[i];
	return acc == 0;
}

#define PART(ptr, len) { (const uint8_t *)(ptr), (len) }
#define NPARTS(a) (sizeof(a) / sizeof((a)[0]))

/* comm_crc32 is CRC-32 (IEEE), chained: start with crc = 0. */
uint32_t comm_crc32(uint32_t crc, const uint8_t *p, size_t n);

#endif
