/*
 * Consistent Overhead Byte Stuffing (Cheshire & Baker 1999): removes every 0x00 from a block so that 0x00 can
 * delimit frames. Same algorithm as firmware-bridge/firmware/src/gb_cobs.c.
 */

/** Largest encoding of `n` bytes. */
export const cobsMaxEncoded = (n: number): number => n + Math.floor(n / 254) + 1;

/** Encodes `src[0, len)` into `out` at `at` (room for `cobsMaxEncoded(len)`); returns the end offset in `out`. */
export function cobsEncodeInto(src: Uint8Array, len: number, out: Uint8Array, at: number): number {
  let codeAt = at;
  let w = at + 1;
  let code = 1;
  for (let r = 0; r < len; r++) {
    const b = src[r]!;
    if (b === 0) {
      out[codeAt] = code;
      codeAt = w++;
      code = 1;
    } else {
      out[w++] = b;
      if (++code === 0xff) {
        out[codeAt] = code;
        codeAt = w++;
        code = 1;
      }
    }
  }
  out[codeAt] = code;
  return w;
}

/** Encodes `src` into a new array. */
export function cobsEncode(src: Uint8Array): Uint8Array {
  const out = new Uint8Array(cobsMaxEncoded(src.length));
  return out.subarray(0, cobsEncodeInto(src, src.length, out, 0));
}

/**
 * Decodes `src[start, end)` (no delimiter) into `out`; returns the decoded length, or -1 when the input is malformed
 * (a 0x00 inside, a code byte pointing past the end) or longer than `out`.
 */
export function cobsDecodeInto(src: Uint8Array, start: number, end: number, out: Uint8Array): number {
  let r = start;
  let w = 0;
  const cap = out.length;
  while (r < end) {
    const code = src[r++]!;
    if (code === 0 || code - 1 > end - r) return -1;
    const runEnd = r + code - 1;
    if (w + (code - 1) > cap) return -1;
    for (; r < runEnd; r++) {
      const b = src[r]!;
      if (b === 0) return -1;
      out[w++] = b;
    }
    if (code !== 0xff && r < end) {
      if (w >= cap) return -1;
      out[w++] = 0;
    }
  }
  return w;
}
