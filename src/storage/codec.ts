import type { Quality, Sample } from "../core/types.js";

/*
 * Layout of the sample ring (sub-database `samples`):
 *
 *   key   = [tag, ts, source, seq]   (lmdb-js ordered-binary: strings as UTF-8, numbers as 9 bytes inside an array,
 *                                     elements separated by one 0x00 byte)
 *   value = 9 bytes: quality code (1 byte) + value as little-endian float64 (8 bytes)
 *
 * Tag-major keys make `range(tag, from, to)` and `latest(tag)` a single cursor walk, and every tag's oldest entries
 * sit together at the head of its key range, so eviction deletes contiguous runs and frees whole pages. The value is
 * a fixed binary layout rather than MessagePack so that the size of every entry is known exactly (MessagePack's
 * integer sizes depend on encoder options) and a float64 round-trips bit for bit.
 */

/** An array element greater than any string or number: closes a key range "after everything with this prefix". */
export const KEY_MAX: Uint8Array = new Uint8Array([0xff]);

export const VALUE_BYTES = 9;

/**
 * LMDB leaf-node overhead per entry: the 8-byte node header (lo/hi size, flags, key size) plus the 2-byte slot in
 * the page's pointer array. Page headers and free space inside pages (page slack) are not per-entry and are not
 * counted; `StoreStats.samples.tree_bytes` reports what LMDB really uses.
 */
export const LMDB_NODE_OVERHEAD = 10;

/** Ordered-binary size of a number inside an array key. */
const KEY_NUMBER_BYTES = 9;

const QUALITY_CODE: Record<Quality, number> = { good: 0, uncertain: 1, bad: 2 };
const QUALITY_BY_CODE: readonly Quality[] = ["good", "uncertain", "bad"];

export type SampleKey = [string, number, string, number];

export function sampleKey(s: Sample): SampleKey {
  return [s.tag, s.ts, s.source, s.seq];
}

/** Encodes `s`'s value into `target` at `offset` (VALUE_BYTES bytes). */
export function writeSampleValue(s: Sample, target: Buffer, offset: number): void {
  target[offset] = QUALITY_CODE[s.quality];
  target.writeDoubleLE(s.value, offset + 1);
}

export function decodeSample(key: SampleKey, value: Uint8Array): Sample {
  const buf = Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  return {
    tag: key[0],
    ts: key[1],
    value: buf.readDoubleLE(1),
    quality: QUALITY_BY_CODE[buf[0] ?? 0] ?? "bad",
    source: key[2],
    seq: key[3],
  };
}

// UTF-8 length of tag and source ids, cached: there are few distinct ones and Buffer.byteLength is not free.
const utf8Cache = new Map<string, number>();
function utf8Bytes(s: string): number {
  let n = utf8Cache.get(s);
  if (n === undefined) {
    n = Buffer.byteLength(s, "utf8");
    if (utf8Cache.size < 10_000) utf8Cache.set(s, n);
  }
  return n;
}

/** Exact encoded size of a sample key (ids are checked to hold no control characters, which would be escaped). */
export function sampleKeyBytes(tag: string, source: string): number {
  return utf8Bytes(tag) + utf8Bytes(source) + 2 * KEY_NUMBER_BYTES + 3;
}

/**
 * Bytes one sample costs in the ring, as counted against `storage.max_sample_bytes`: encoded key + 9-byte value +
 * LMDB node overhead. For a 20-character tag and source "twin" that is 45 + 9 + 10 = 64 bytes.
 */
export function sampleEntryBytes(s: Pick<Sample, "tag" | "source">): number {
  return sampleKeyBytes(s.tag, s.source) + VALUE_BYTES + LMDB_NODE_OVERHEAD;
}

/** Longest tag/source id the store accepts (keeps every key well under LMDB's 1 978-byte key limit). */
export const MAX_ID_LENGTH = 128;

// Control characters are refused in ids: ordered-binary escapes some of them (so sizes would be off) and they have
// no business in tag or source names.
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what is refused
const CONTROL = /[\u0000-\u001f\u007f]/;

// Ids already found usable: there are few distinct tags and sources, and this check runs for every sample.
const goodIds = new Set<string>();

/** Why `id` cannot be used in a key, or undefined when it can. */
export function idProblem(id: unknown): string | undefined {
  if (typeof id === "string" && goodIds.has(id)) return undefined;
  const p = checkId(id);
  if (p === undefined && goodIds.size < 10_000) goodIds.add(id as string);
  return p;
}

function checkId(id: unknown): string | undefined {
  if (typeof id !== "string") return `must be a string, got ${typeof id}`;
  if (id.length === 0) return "must not be empty";
  if (id.length > MAX_ID_LENGTH) return `must be at most ${MAX_ID_LENGTH} characters`;
  if (CONTROL.test(id)) return "must not contain control characters";
  return undefined;
}

/** Makes arbitrary text usable inside a quarantine index key: control characters replaced, length bounded. */
export function keySafe(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: replacing exactly those characters is the point
  const clean = text.replace(/[\u0000-\u001f\u007f]/g, "\ufffd");
  return clean.length > MAX_ID_LENGTH ? clean.slice(0, MAX_ID_LENGTH) : clean;
}

export function isQuality(q: unknown): q is Quality {
  return q === "good" || q === "uncertain" || q === "bad";
}
