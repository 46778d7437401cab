/*
 * CRC-16/CCITT-FALSE (reveng: CRC-16/IBM-3740): width 16, poly 0x1021, init 0xFFFF, refin false, refout false,
 * xorout 0x0000. The firmware bridge appends it little-endian to every packet (PROTOCOL.md §1).
 */

/** CRC of ASCII "123456789", the catalogue's check value. */
export const CRC16_CHECK = 0x29b1;

const TABLE = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 8;
    for (let b = 0; b < 8; b++) c = c & 0x8000 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff;
    t[i] = c;
  }
  return t;
})();

/** CRC of `data[start, end)`, continuing from `crc` (0xFFFF for a fresh one). */
export function crc16(data: Uint8Array, start = 0, end = data.length, crc = 0xffff): number {
  let c = crc;
  for (let i = start; i < end; i++) c = ((c << 8) & 0xff00) ^ TABLE[((c >> 8) ^ data[i]!) & 0xff]!;
  return c;
}
