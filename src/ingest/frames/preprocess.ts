import sharp, { type Metadata, type OutputInfo } from "sharp";
import type { FramesConfig } from "./config.js";
import { FrameRejectedError } from "./reasons.js";

/*
 * Encoded frame → checked → decoded → ROI crop → resize → float32 NCHW normalised for the vision model.
 *
 * Checks run cheapest first, so that garbage costs almost nothing: byte count, magic bytes, then the header's
 * dimensions (sharp reads only the header for metadata, so a 20000×20000 PNG is refused before a pixel is
 * inflated), then the full decode with `failOn: "warning"` (a premature end or a bad Huffman code fails instead of
 * yielding a grey half-image) and `limitInputPixels` = the camera resolution as the second line of defence.
 */

export type FrameFormat = "jpeg" | "png";

export interface FrameTensor {
  /** NCHW, N = 1: `data[c·H·W + y·W + x] = (pixel/255 − mean[c]) / std[c]`. */
  data: Float32Array;
  shape: [1, number, number, number];
}

export interface Preprocessed {
  tensor: FrameTensor;
  /** The frame as it arrived. */
  original: { width: number; height: number; format: FrameFormat; bytes: number };
}

const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const PNG_IEND = Buffer.from([0, 0, 0, 0, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82]);

/** What the first bytes say the data is ("jpeg", "png", another known format's name, or "unknown"). */
export function sniffFormat(b: Uint8Array): string {
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return "jpeg";
  if (b.length >= 8 && Buffer.from(b.buffer, b.byteOffset, 8).equals(PNG_MAGIC)) return "png";
  const head = Buffer.from(b.buffer, b.byteOffset, Math.min(12, b.length)).toString("latin1");
  if (head.startsWith("GIF8")) return "gif";
  if (head.startsWith("RIFF") && head.slice(8, 12) === "WEBP") return "webp";
  if (head.startsWith("II*\0") || head.startsWith("MM\0*")) return "tiff";
  if (head.startsWith("BM")) return "bmp";
  return "unknown";
}

/** True when the data ends the way a complete file of its format does (PNG IEND chunk, JPEG EOI marker). */
export function hasTrailer(format: FrameFormat, b: Uint8Array): boolean {
  if (format === "png") {
    if (b.length < PNG_IEND.length) return false;
    return Buffer.from(b.buffer, b.byteOffset + b.length - PNG_IEND.length, PNG_IEND.length).equals(PNG_IEND);
  }
  // In entropy-coded JPEG data 0xFF is always followed by 0x00 or RSTn, so FF D9 near the end is the EOI
  // (a few bytes of padding after it are tolerated).
  for (let i = b.length - 2; i >= Math.max(0, b.length - 64); i--) if (b[i] === 0xff && b[i + 1] === 0xd9) return true;
  return false;
}

/** Preprocessor for one configuration; stateless apart from precomputed constants, safe to share. */
export class FramePreprocessor {
  private readonly c: FramesConfig;
  private readonly limitPixels: number;
  private readonly scale: Float32Array;
  private readonly offset: Float32Array;

  constructor(config: FramesConfig) {
    this.c = config;
    this.limitPixels = config.max_width * config.max_height;
    const ch = config.model_input.channels;
    this.scale = new Float32Array(ch);
    this.offset = new Float32Array(ch);
    for (let k = 0; k < ch; k++) {
      const mean = config.model_input.mean[k] ?? config.model_input.mean[0]!;
      const std = config.model_input.std[k] ?? config.model_input.std[0]!;
      this.scale[k] = 1 / (255 * std);
      this.offset[k] = -mean / std;
    }
  }

  /**
   * Checks the encoded frame without decoding pixels; returns format and size or throws FrameRejectedError.
   * `declared` is the format a file name or Content-Type claims, if any.
   */
  async check(data: Uint8Array, declared?: string): Promise<Preprocessed["original"]> {
    if (data.length === 0) throw new FrameRejectedError("empty", "the frame has 0 bytes");
    if (data.length > this.c.max_bytes)
      throw new FrameRejectedError(
        "too_many_bytes",
        `${data.length} bytes exceed frames.max_bytes = ${this.c.max_bytes}`,
      );
    const sniffed = sniffFormat(data);
    if (sniffed !== "jpeg" && sniffed !== "png")
      throw new FrameRejectedError(
        "wrong_format",
        `content is ${sniffed === "unknown" ? "not a known image format" : sniffed}; accepted: ${this.c.formats.join(", ")}`,
      );
    const format: FrameFormat = sniffed;
    if (!this.c.formats.includes(format))
      throw new FrameRejectedError("wrong_format", `${format} is not accepted (frames.formats: ${this.c.formats})`);
    if (declared !== undefined && declared !== format)
      throw new FrameRejectedError("wrong_format", `content is ${format} but it is declared as ${declared}`);
    let meta: Metadata;
    try {
      meta = await sharp(data, { limitInputPixels: false }).metadata();
    } catch (err) {
      throw this.decodeError(format, data, err);
    }
    const w = meta.width ?? 0;
    const h = meta.height ?? 0;
    if (w > this.c.max_width || h > this.c.max_height)
      throw new FrameRejectedError(
        "oversized",
        `${w}×${h} px exceeds the camera resolution ${this.c.max_width}×${this.c.max_height} (frames.max_width/max_height)`,
      );
    if (!(w > 0 && h > 0)) throw new FrameRejectedError("corrupt", `header gives no size (${w}×${h})`);
    const r = this.c.roi;
    if (r && (r.left + r.width > w || r.top + r.height > h))
      throw new FrameRejectedError(
        "roi_outside",
        `frames.roi ${r.width}×${r.height}+${r.left}+${r.top} does not fit inside the ${w}×${h} frame`,
      );
    return { width: w, height: h, format, bytes: data.length };
  }

  /** Full decode and preprocessing. Throws FrameRejectedError for anything the frame itself is to blame for. */
  async run(data: Uint8Array, declared?: string): Promise<Preprocessed> {
    const original = await this.check(data, declared);
    const m = this.c.model_input;
    let img = sharp(data, { limitInputPixels: this.limitPixels, failOn: "warning" });
    if (this.c.roi) img = img.extract(this.c.roi);
    img = img.resize(m.width, m.height, { fit: m.fit, background: { r: 0, g: 0, b: 0 } }).removeAlpha();
    img = m.channels === 1 ? img.greyscale() : img.toColourspace("srgb");
    let raw: { data: Buffer; info: OutputInfo };
    try {
      raw = await img.raw().toBuffer({ resolveWithObject: true });
    } catch (err) {
      throw this.decodeError(original.format, data, err);
    }
    return { tensor: this.normalise(raw.data, raw.info.channels), original };
  }

  /** Small JPEG of an already checked frame. */
  async thumbnail(data: Uint8Array): Promise<Buffer> {
    const t = this.c.thumbnail;
    return sharp(data, { limitInputPixels: this.limitPixels })
      .resize(t.size, t.size, { fit: "inside" })
      .jpeg({ quality: t.quality })
      .toBuffer();
  }

  /** Interleaved 8-bit pixels → planar float32, converting the channel count if libvips kept another one. */
  private normalise(px: Buffer, have: number): FrameTensor {
    const m = this.c.model_input;
    const C = m.channels;
    const plane = m.width * m.height;
    const out = new Float32Array(C * plane);
    for (let c = 0; c < C; c++) {
      const s = this.scale[c]!;
      const o = this.offset[c]!;
      const src = have === C ? c : have === 1 ? 0 : -1;
      const base = c * plane;
      if (src >= 0) {
        for (let i = 0, j = src; i < plane; i++, j += have) out[base + i] = px[j]! * s + o;
      } else {
        // More channels than wanted (should not happen after greyscale()): Rec. 601 luma.
        for (let i = 0, j = 0; i < plane; i++, j += have)
          out[base + i] = (0.299 * px[j]! + 0.587 * px[j + 1]! + 0.114 * px[j + 2]!) * s + o;
      }
    }
    return { data: out, shape: [1, C, m.height, m.width] };
  }

  private decodeError(format: FrameFormat, data: Uint8Array, err: unknown): FrameRejectedError {
    const msg = (err as Error).message ?? String(err);
    if (/pixel limit/i.test(msg))
      return new FrameRejectedError(
        "oversized",
        `more than ${this.limitPixels} px (camera resolution ${this.c.max_width}×${this.c.max_height}): ${msg}`,
      );
    if (!hasTrailer(format, data))
      return new FrameRejectedError("truncated", `${format} data ends early (${data.length} bytes): ${msg}`);
    return new FrameRejectedError("corrupt", `${format} does not decode: ${msg}`);
  }
}
