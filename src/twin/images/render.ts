/*
 * MIK-1 inspection images with pixel-accurate masks.
 *
 * How one image is made:
 *   1. The clean scene of the item (scene.ts) is rendered into `base` (grey levels, analytic blur).
 *   2. Each defect is drawn (defects.ts) into a sharp layer S, in DRAW_ORDER; each drawing records the change it
 *      made in its own patch (Layer.delta). The change is blurred with the image's Gaussian blur (blur is linear, so
 *      blurring each change and adding them up equals blurring the whole drawing) and added to F = base + Σ changes.
 *   3. F and base are quantised to 8 bits; noise (counter-based, the same field for the defect and the clean render)
 *      is added to F for the image. sharp encodes: one pipeline per image.
 *
 * The mask rule (exact, not approximate). Let Q(v) = round(clamp(v, 0, 255)) and, for a pixel p,
 * diff(p) = max over channels |Q(F(p)) − Q(base(p))|: how much the noise-free image differs from the noise-free
 * clean render of the same item. Let Δ_d(p) be defect d's own blurred change (luminance grey levels). Then p belongs
 * to the mask of class c iff
 *     diff(p) > T (maskThreshold, default 2 grey levels)   and
 *     some defect d of class c claims p: |Δ_d(p)| > T/2, or d has the largest |Δ| of all defects at p (ties: the one
 *     drawn first).
 * Consequences, both tested: every mask pixel differs from the clean render by more than T, and every pixel that
 * differs by more than T is in at least one mask — with noise disabled exactly, and with the same noise field (the
 * default: renderClean uses it) up to the ±1 of rounding and clipping. Masks may overlap (a bubble inside a haze is
 * in both). The label map holds one class per pixel, 1..8 in DEFECT_CLASSES order (0 background); where masks overlap
 * the class earliest in LABEL_PRECEDENCE wins.
 */
import sharp from "sharp";
import { DEFECT_CLASSES, type DefectClass, type InspectionEvent } from "../../core/types.js";
import { Rng } from "../rng.js";
import { type DefectPlan, DRAW_ORDER, drawDefect, type Layer, planDefects } from "./defects.js";
import {
  type Glass,
  type HardKind,
  type ImageFormat,
  type Product,
  type RenderOptions,
  type ResolvedOptions,
  resolveOptions,
  validateEvent,
} from "./options.js";
import { blurPatch, gaussianKernel, gaussTable, hash32, NOISE_MASK } from "./raster.js";
import { buildScene, renderBase, type Scene } from "./scene.js";

/**
 * Label-map precedence where masks overlap: severity family first (critical, major, minor), within a family the
 * class with the smaller typical footprint, so a thin crack across a haze keeps its pixels.
 */
export const LABEL_PRECEDENCE: readonly DefectClass[] = [
  "crack",
  "stone",
  "deformation",
  "chip",
  "bubble",
  "scratch",
  "stain",
  "cloudiness",
];

/** Where one defect was drawn and which mask pixels it claimed. Box half-open: x0 ≤ x < x1, y0 ≤ y < y1. */
export interface DefectBox {
  /** Index in the event's `defects`. */
  index: number;
  class: DefectClass;
  x0: number;
  y0: number;
  x1: number;
  y1: number;
  /** Mask pixels this defect claimed (0 when it changed no pixel by more than the threshold). */
  area_px: number;
  visible: boolean;
  /** Anchor of the drawing, px: the centre, or the point of the outline for chip and deformation. */
  cx: number;
  cy: number;
  /** Size and item position as drawn (hard cases change them). */
  size_mm: number;
  size_px: number;
  x: number;
  y: number;
  hard: HardKind | null;
}

export interface RenderResult {
  /** The encoded image (PNG or JPEG), or the raw pixels for format "raw". */
  image: Buffer;
  /** Raw 8-bit pixels (row-major, channels interleaved): exactly what was encoded. */
  pixels: Buffer;
  width: number;
  height: number;
  channels: 1 | 3;
  format: ImageFormat;
  /** One 0/1 mask (width × height) per class of the event (all eight with `allMasks`). */
  masks: Partial<Record<DefectClass, Uint8Array>>;
  /** 0 background, 1..8 = DEFECT_CLASSES index + 1; overlaps resolved by LABEL_PRECEDENCE. */
  label: Uint8Array;
  /** One per event defect, in event order. */
  boxes: DefectBox[];
  mmPerPx: number;
  product: Product;
  glass: Glass;
  maskThreshold: number;
}

const RANK = new Map(LABEL_PRECEDENCE.map((c, i) => [c, i]));
const LABEL_VALUE = new Map(DEFECT_CLASSES.map((c, i) => [c, i + 1]));
const CLASS_OF_LABEL = [undefined, ...DEFECT_CLASSES] as const;

// Work buffers, reused across renders: every use is synchronous (before the await on sharp), so concurrent calls
// cannot interleave on them.
let base = new Float32Array(0);
let sharpLayer = new Float32Array(0);
let final = new Float32Array(0);
const kernels = new Map<number, Float32Array>();

function workBuffers(n: number): void {
  if (base.length < n) {
    base = new Float32Array(n);
    sharpLayer = new Float32Array(n);
    final = new Float32Array(n);
  }
}

/** 32-bit key of an item id (ids above 2^32 are folded in by Rng's seeding). */
const itemKey = (itemId: number) => Math.floor(new Rng(itemId).next() * 4_294_967_296) >>> 0;
const STREAM_SCENE = 0;
const STREAM_NOISE = 1;
const STREAM_DEFECT = 100;
function stream(seed: number, key: number, s: number): Rng {
  return Rng.derive(seed, (key ^ Math.imul(s + 1, 0x9e3779b1)) >>> 0);
}

const q = (v: number) => (v <= 0 ? 0 : v >= 255 ? 255 : (v + 0.5) | 0);

interface Prepared {
  o: ResolvedOptions;
  s: Scene;
  key: number;
  n: number;
}

function prepare(event: InspectionEvent, options: RenderOptions | undefined): Prepared {
  const o = resolveOptions(options);
  validateEvent(event);
  const key = itemKey(event.item_id);
  const s = buildScene(o, stream(o.seed, key, STREAM_SCENE));
  const n = o.width * o.height;
  workBuffers(n);
  renderBase(s, base);
  return { o, s, key, n };
}

/** RGB gains of the glass: full tint where the glass darkens the backlight as much as clean glass does, none on bare backlight. */
function tint(s: Scene, v: number, bg: number, ch: number): number {
  const w = Math.min(1, Math.max(0, (bg - v) / (bg * (1 - s.tc))));
  return v * (1 + w * ((s.chroma[ch] as number) - 1));
}

function backlight(s: Scene, x: number, y: number): number {
  const panel = s.b0 * (s.bgRow[y] as number) * (s.bgCol[x] as number);
  const c = s.convRow[y] as number;
  // Only the tint weight uses it; over the dark conveyor the weight is 0 either way.
  return c === 0 ? panel : panel * (1 - c) + 30 * c;
}

/** Quantises `src` (+ noise) into 8-bit pixels. */
function quantise(p: Prepared, src: Float32Array): Buffer {
  const { o, s, n } = p;
  const C = o.channels;
  const out = Buffer.allocUnsafe(n * C);
  const noiseSeed = Math.floor(stream(o.seed, p.key, STREAM_NOISE).next() * 4_294_967_296) | 0;
  const sigma = new Float32Array(256);
  // Read noise 1.2 levels plus shot noise (variance ∝ signal): σ ≈ 3 levels on the backlight at noise = 1.
  for (let v = 0; v < 256; v++) sigma[v] = o.noise * Math.sqrt(1.44 + 0.035 * v);
  const W = o.width;
  const H = o.height;
  if (o.noise === 0) {
    if (C === 1) for (let i = 0; i < n; i++) out[i] = q(src[i] as number);
    else {
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < W; x++) {
          const i = y * W + x;
          const v = src[i] as number;
          const bg = backlight(s, x, y);
          for (let ch = 0; ch < 3; ch++) out[i * 3 + ch] = q(tint(s, v, bg, ch));
        }
      }
    }
    return out;
  }
  const table = gaussTable();
  for (let y = 0; y < H; y++) {
    // Per row, a run of the Gaussian table from an offset hashed from (noise seed, row).
    const off = hash32(noiseSeed ^ Math.imul(y + 1, 0x9e3779b1));
    const row = y * W;
    if (C === 1) {
      for (let x = 0; x < W; x++) {
        const v = src[row + x] as number;
        const sg = sigma[v <= 0 ? 0 : v >= 255 ? 255 : v | 0] as number;
        out[row + x] = q(v + sg * (table[(off + x) & NOISE_MASK] as number));
      }
      continue;
    }
    for (let x = 0; x < W; x++) {
      const v = src[row + x] as number;
      const bg = backlight(s, x, y);
      for (let ch = 0; ch < 3; ch++) {
        const c = tint(s, v, bg, ch);
        const sg = sigma[c <= 0 ? 0 : c >= 255 ? 255 : c | 0] as number;
        out[(row + x) * 3 + ch] = q(c + sg * (table[(off + x * 3 + ch) & NOISE_MASK] as number));
      }
    }
  }
  return out;
}

async function encode(o: ResolvedOptions, pixels: Buffer): Promise<Buffer> {
  if (o.format === "raw") return pixels;
  // sharp 0.35 turns a 1-channel raw input into sRGB unless told otherwise: a grey camera gives grey files.
  let img = sharp(pixels, { raw: { width: o.width, height: o.height, channels: o.channels } });
  if (o.channels === 1) img = img.toColourspace("b-w");
  return o.format === "png"
    ? img.png({ compressionLevel: o.pngCompressionLevel }).toBuffer()
    : img.jpeg({ quality: o.quality }).toBuffer();
}

function emptyMasks(o: ResolvedOptions, classes: Iterable<DefectClass>): Partial<Record<DefectClass, Uint8Array>> {
  const masks: Partial<Record<DefectClass, Uint8Array>> = {};
  for (const c of o.allMasks ? DEFECT_CLASSES : classes) masks[c] = new Uint8Array(o.width * o.height);
  return masks;
}

/**
 * Renders the MIK-1 image of one inspected item with a mask per class, a label map and a box per defect.
 * Deterministic: the same (event, options) give byte-identical image, masks and label. Throws a ValidationError
 * naming the field for bad options or a malformed event.
 */
export async function renderInspection(event: InspectionEvent, options?: RenderOptions): Promise<RenderResult> {
  const p = prepare(event, options);
  const { o, s, n } = p;
  const W = o.width;
  const S = sharpLayer;
  const F = final;
  S.set(base.subarray(0, n));
  F.set(base.subarray(0, n));

  const plans = planDefects(event.defects, s, o, (i) => stream(o.seed, p.key, STREAM_DEFECT + i));
  const order = [...plans].sort((a, b) => DRAW_ORDER.indexOf(a.cls) - DRAW_ORDER.indexOf(b.cls) || a.index - b.index);
  let kernel = kernels.get(o.blurSigma);
  if (!kernel) {
    kernel = gaussianKernel(o.blurSigma);
    kernels.set(o.blurSigma, kernel);
  }
  const ctx = { s, S, pad: (kernel.length - 1) >> 1 };
  const layers: Layer[] = [];
  for (const plan of order) {
    const L = drawDefect(ctx, plan);
    if (!L.preBlurred) blurPatch(L.delta, L.w, L.h, kernel);
    for (let yy = 0; yy < L.h; yy++) {
      const row = (L.y0 + yy) * W + L.x0;
      for (let xx = 0; xx < L.w; xx++) F[row + xx] = (F[row + xx] as number) + (L.delta[yy * L.w + xx] as number);
    }
    layers.push(L);
  }

  const masks = emptyMasks(
    o,
    plans.map((pl) => pl.cls),
  );
  const label = new Uint8Array(n);
  const boxes = claimMasks(p, layers, masks, label);
  const pixels = quantise(p, F);
  const image = await encode(o, pixels);
  return {
    image,
    pixels,
    width: W,
    height: o.height,
    channels: o.channels,
    format: o.format,
    masks,
    label,
    boxes: boxes.sort((a, b) => a.index - b.index),
    mmPerPx: s.mmPerPx,
    product: s.product,
    glass: s.glass,
    maskThreshold: o.maskThreshold,
  };
}

/**
 * The defect-free render of the same item (same scene, same noise field): what renderInspection would give if the
 * event had no defects. Masks are empty (all eight with `allMasks`), the label map is all 0, there are no boxes.
 */
export async function renderClean(event: InspectionEvent, options?: RenderOptions): Promise<RenderResult> {
  const p = prepare(event, options);
  const { o, s, n } = p;
  const pixels = quantise(p, base);
  const image = await encode(o, pixels);
  return {
    image,
    pixels,
    width: o.width,
    height: o.height,
    channels: o.channels,
    format: o.format,
    masks: emptyMasks(
      o,
      event.defects.map((d) => d.class),
    ),
    label: new Uint8Array(n),
    boxes: [],
    mmPerPx: s.mmPerPx,
    product: s.product,
    glass: s.glass,
    maskThreshold: o.maskThreshold,
  };
}

/** The mask rule of the file comment: fills masks and label, returns one box per defect. */
function claimMasks(
  p: Prepared,
  layers: readonly Layer[],
  masks: Partial<Record<DefectClass, Uint8Array>>,
  label: Uint8Array,
): DefectBox[] {
  const { o, s } = p;
  const W = o.width;
  const T = o.maskThreshold;
  const half = T / 2;
  const F = final;
  const rgb = o.channels === 3;
  const diffAt = (i: number, x: number, y: number): number => {
    const a = F[i] as number;
    const b = base[i] as number;
    if (!rgb) return Math.abs(q(a) - q(b));
    const bg = backlight(s, x, y);
    let m = 0;
    for (let ch = 0; ch < 3; ch++) m = Math.max(m, Math.abs(q(tint(s, a, bg, ch)) - q(tint(s, b, bg, ch))));
    return m;
  };
  const boxes: DefectBox[] = [];
  for (let li = 0; li < layers.length; li++) {
    const L = layers[li] as Layer;
    const plan: DefectPlan = L.plan;
    const mask = masks[plan.cls] as Uint8Array;
    const value = LABEL_VALUE.get(plan.cls) as number;
    const rank = RANK.get(plan.cls) as number;
    let area = 0;
    let x0 = W;
    let y0 = o.height;
    let x1 = 0;
    let y1 = 0;
    for (let yy = 0; yy < L.h; yy++) {
      const y = L.y0 + yy;
      for (let xx = 0; xx < L.w; xx++) {
        const dv = L.delta[yy * L.w + xx] as number;
        if (dv === 0) continue;
        const x = L.x0 + xx;
        const i = y * W + x;
        if (diffAt(i, x, y) <= T) continue;
        const ad = Math.abs(dv);
        if (ad <= half && !isLargest(layers, li, ad, x, y)) continue;
        mask[i] = 1;
        const cur = label[i] as number;
        if (cur === 0 || rank < (RANK.get(CLASS_OF_LABEL[cur] as DefectClass) as number)) label[i] = value;
        area++;
        if (x < x0) x0 = x;
        if (x >= x1) x1 = x + 1;
        if (y < y0) y0 = y;
        if (y >= y1) y1 = y + 1;
      }
    }
    const visible = area > 0;
    boxes.push({
      index: plan.index,
      class: plan.cls,
      x0: visible ? x0 : 0,
      y0: visible ? y0 : 0,
      x1: visible ? x1 : 0,
      y1: visible ? y1 : 0,
      area_px: area,
      visible,
      cx: round2(plan.cx),
      cy: round2(plan.cy),
      size_mm: round2(plan.sizeMm),
      size_px: round2(plan.sizePx),
      x: round4(plan.x),
      y: round4(plan.y),
      hard: plan.hard,
    });
  }
  return boxes;
}

/** Whether layer li has the largest |Δ| at (x, y) among all layers (ties: the earlier layer). */
function isLargest(layers: readonly Layer[], li: number, ad: number, x: number, y: number): boolean {
  for (let e = 0; e < layers.length; e++) {
    if (e === li) continue;
    const L = layers[e] as Layer;
    const xx = x - L.x0;
    const yy = y - L.y0;
    if (xx < 0 || yy < 0 || xx >= L.w || yy >= L.h) continue;
    const ae = Math.abs(L.delta[yy * L.w + xx] as number);
    if (ae > ad || (ae === ad && e < li)) return false;
  }
  return true;
}

const round2 = (v: number) => Math.round(v * 100) / 100;
const round4 = (v: number) => Math.round(v * 10000) / 10000;
