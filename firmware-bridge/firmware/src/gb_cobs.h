/* Consistent Overhead Byte Stuffing (Cheshire & Baker 1999): removes every 0x00 from a block of bytes. */
#ifndef GB_COBS_H
#define GB_COBS_H

#include <stddef.h>
#include <stdint.h>

/* Largest encoding of n bytes: one code byte per started run of 254 (n + 1 for n < 254). */
#define GB_COBS_MAX_ENCODED(n) ((n) + (n) / 254u + 1u)

/* Encodes len bytes of in into out (room for GB_COBS_MAX_ENCODED(len)); returns the encoded length. No 0x00 in out. */
size_t gb_cobs_encode(const uint8_t *in, size_t len, uint8_t *out);

/*
 * Decodes len bytes (no delimiter) into out (at most out_cap bytes). Returns the decoded length, or -1 when the
 * input is malformed (a 0x00 inside, a code byte pointing past the end) or does not fit. in and out may be the same
 * buffer: decoding never writes ahead of reading.
 */
long gb_cobs_decode(const uint8_t *in, size_t len, uint8_t *out, size_t out_cap);

#endif
