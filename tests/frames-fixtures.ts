/*
 * Shared parts of the frames suites: real JPEG/PNG files (and the bad ones a camera share sees: truncated,
 * corrupt, random bytes, a decompression-bomb header, empty), a real LMDB Store in a temp dir and a started
 * FrameIntake on it. Not a suite itself (no .test.ts).
 */
import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { crc32, deflateSync } from "node:zlib";
import sharp from "sharp";
import { defaultConfig } from "../src/config/validate.js";
import type { Clock } from "../src/core/clock.js";
import { FrameIntake, type FramesConfig, resolveFramesConfig } from "../src/ingest/frames/index.js";
import { Store } from "../src/storage/index.js";

const dirs: string[] = [];

export function tempDir(prefix = "glassd-frames-"): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

export function removeTempDirs(): void {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function waitUntil<T>(cond: () => T | Promise<T>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** A noisy image (compresses like a camera frame, not like a flat fill); deterministic per seed. */
export function noiseImage(
  width: number,
  height: number,
  format: "jpeg" | "png",
  channels: 1 | 3 = 3,
  seed = 1,
): Promise<Buffer> {
  const px = randomBytes(width * height * channels, seed);
  // Smooth the noise a little around mid-grey, as a backlit bottle looks.
  for (let i = 0; i < px.length; i++) px[i] = 64 + ((px[i] as number) >> 1);
  const img = sharp(px, { raw: { width, height, channels } });
  const g = channels === 1 ? img.toColourspace("b-w") : img;
  return format === "jpeg" ? g.jpeg({ quality: 85 }).toBuffer() : g.png().toBuffer();
}

/** A flat colour image. */
export function solidImage(
  width: number,
  height: number,
  rgb: [number, number, number],
  format: "jpeg" | "png" = "png",
): Promise<Buffer> {
  const img = sharp({ create: { width, height, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } });
  return format === "jpeg" ? img.jpeg({ quality: 100 }).toBuffer() : img.png().toBuffer();
}

export function truncated(b: Buffer, keep = 0.6): Buffer {
  return Buffer.from(b.subarray(0, Math.floor(b.length * keep)));
}

/** Complete JPEG (SOI … EOI) with a run of flipped bytes in the entropy-coded data. */
export function corruptJpeg(b: Buffer): Buffer {
  const c = Buffer.from(b);
  const from = Math.floor(c.length * 0.4);
  for (let i = from; i < from + 200; i++) c[i] = (c[i] as number) ^ 0xff;
  return c;
}

/** Bytes that are no image at all (first byte forced off every known magic). */
export function randomBytes(n: number, seed = 7): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  b[0] = 0x00;
  return b;
}

function pngChunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, "latin1"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td) >>> 0);
  return Buffer.concat([len, td, crc]);
}

/**
 * A decompression bomb: a valid PNG header announcing width × height grey pixels with a small, highly compressed
 * IDAT (zeros) — a few KB on disk, 400 MB of pixels for 20000 × 20000 if anyone decoded it.
 */
export function bombPng(width = 20000, height = 20000): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // grey
  const rows = Buffer.alloc((width + 1) * 64); // the first 64 rows; enough for a header-only attack
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk("IHDR", ihdr),
    pngChunk("IDAT", deflateSync(rows, { level: 9 })),
    pngChunk("IEND", Buffer.alloc(0)),
  ]);
}

/** The producer side of the protocol: write `<name>.tmp`, then rename to `<name>`. */
export function dropFile(dir: string, name: string, data: Uint8Array): string {
  const final = join(dir, name);
  writeFileSync(`${final}.tmp`, data);
  renameSync(`${final}.tmp`, final);
  return final;
}

export interface Harness {
  store: Store;
  intake: FrameIntake;
  dataDir: string;
  config: FramesConfig;
  stop(): Promise<void>;
}

/** A started Store + FrameIntake over fresh temp dirs. `frames` is a raw `frames` section (defaults filled). */
export async function startIntake(
  frames: Record<string, unknown> = {},
  opts: { clock?: Clock; dataDir?: string } = {},
): Promise<Harness> {
  const dataDir = opts.dataDir ?? tempDir("glassd-frames-data-");
  const store = new Store({
    dataDir,
    storage: defaultConfig().storage,
    autoRetention: false,
    ...(opts.clock ? { clock: opts.clock } : {}),
  });
  await store.open();
  const config = resolveFramesConfig({ enabled: true, ...frames });
  const intake = new FrameIntake({ config, dataDir, store, ...(opts.clock ? { clock: opts.clock } : {}) });
  await intake.start(new AbortController().signal);
  return {
    store,
    intake,
    dataDir,
    config,
    async stop() {
      await intake.stop();
      await store.close();
    },
  };
}
