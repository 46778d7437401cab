import type { TensorData } from "./host.js";

/*
 * Vision postprocessing: per-class masks [C, H, W] (probabilities) and per-image class scores [C] → a defect list.
 * Each class's mask is thresholded and split into 4-connected components; every component of at least
 * `minPixels` model pixels is one defect with its class, score (mean mask probability over the component, times
 * nothing else: the image score is reported separately), bounding box and area in the ORIGINAL frame's pixels and
 * mm² (pixel_size_mm is the size of one original pixel on the glass), and its mask as a run-length encoding.
 *
 * RLE: `{size: [h, w], counts: [...]}` over the model-resolution mask in row-major order, alternating runs that
 * start with a run of 0s (possibly of length 0): [3, 2, 5] = 3 zeros, 2 ones, 5 zeros.
 */

export interface VisionPostOptions {
  classes: readonly string[];
  /** Mask probability above which a pixel belongs to the class. */
  maskThreshold: number;
  /** Image-level class score needed before that class's components are reported (0 = masks alone decide). */
  scoreThreshold: number;
  /** Components smaller than this many model pixels are ignored (noise). */
  minPixels: number;
  /** Size of one pixel of the original frame on the glass, mm (config: inference.pixel_size_mm). */
  pixelSizeMm: number;
  /** Original frame size (the model sees it resized to its input). */
  originalWidth: number;
  originalHeight: number;
}

export interface Rle {
  size: [number, number];
  counts: number[];
}

export interface Defect {
  class: string;
  score: number;
  /** [x, y, width, height] in original-frame pixels. */
  box: [number, number, number, number];
  area_px: number;
  area_mm2: number;
  mask: Rle;
}

export interface VisionResult {
  defects: Defect[];
  /** Per-class image scores. */
  scores: Record<string, number>;
  /** Classes with at least one reported defect. */
  present: string[];
}

/** Row-major RLE of a binary mask, starting with a zero run. */
export function rleEncode(mask: Uint8Array, h: number, w: number): Rle {
  const counts: number[] = [];
  let cur = 0;
  let run = 0;
  for (let i = 0; i < h * w; i++) {
    const v = mask[i] ? 1 : 0;
    if (v === cur) run++;
    else {
      counts.push(run);
      cur = v;
      run = 1;
    }
  }
  counts.push(run);
  return { size: [h, w], counts };
}

export function rleDecode(r: Rle): Uint8Array {
  const out = new Uint8Array(r.size[0] * r.size[1]);
  let o = 0;
  let v = 0;
  for (const c of r.counts) {
    if (v) out.fill(1, o, o + c);
    o += c;
    v ^= 1;
  }
  return out;
}

/**
 * 4-connected components of `bin` (1 = set). Returns a label image (0 = background, 1..n) and n. Iterative
 * flood fill with an explicit stack: no recursion depth limit on large blobs.
 */
export function components(bin: Uint8Array, h: number, w: number): { labels: Int32Array; count: number } {
  const labels = new Int32Array(h * w);
  const stack = new Int32Array(h * w);
  let count = 0;
  for (let start = 0; start < h * w; start++) {
    if (!bin[start] || labels[start]) continue;
    count++;
    let sp = 0;
    stack[sp++] = start;
    labels[start] = count;
    while (sp > 0) {
      const p = stack[--sp]!;
      const y = (p / w) | 0;
      const x = p - y * w;
      if (x > 0 && bin[p - 1] && !labels[p - 1]) {
        labels[p - 1] = count;
        stack[sp++] = p - 1;
      }
      if (x + 1 < w && bin[p + 1] && !labels[p + 1]) {
        labels[p + 1] = count;
        stack[sp++] = p + 1;
      }
      if (y > 0 && bin[p - w] && !labels[p - w]) {
        labels[p - w] = count;
        stack[sp++] = p - w;
      }
      if (y + 1 < h && bin[p + w] && !labels[p + w]) {
        labels[p + w] = count;
        stack[sp++] = p + w;
      }
    }
  }
  return { labels, count };
}

/**
 * One image's masks ([C, H, W] or [1, C, H, W], probabilities) and scores ([C] or [1, C]) → defects. Class order
 * is the manifest's (checked against the daemon's at load).
 */
export function postprocess(masks: TensorData, scores: TensorData | undefined, o: VisionPostOptions): VisionResult {
  const d = masks.dims;
  const [C, H, W] = d.length === 4 ? [d[1]!, d[2]!, d[3]!] : [d[0]!, d[1]!, d[2]!];
  if (C !== o.classes.length) throw new RangeError(`masks have ${C} classes, expected ${o.classes.length}`);
  const sx = o.originalWidth / W;
  const sy = o.originalHeight / H;
  const pxArea = sx * sy * o.pixelSizeMm * o.pixelSizeMm;
  const data = masks.data as Float32Array;
  const result: VisionResult = { defects: [], scores: {}, present: [] };
  const bin = new Uint8Array(H * W);
  for (let c = 0; c < C; c++) {
    const cls = o.classes[c]!;
    const score = scores ? Number(scores.data[c]) : Number.NaN;
    result.scores[cls] = score;
    if (scores && !(score >= o.scoreThreshold)) continue;
    const base = c * H * W;
    let any = false;
    for (let i = 0; i < H * W; i++) {
      const on = data[base + i]! > o.maskThreshold ? 1 : 0;
      bin[i] = on;
      if (on) any = true;
    }
    if (!any) continue;
    const { labels, count } = components(bin, H, W);
    const stat = Array.from({ length: count }, () => ({ n: 0, sum: 0, x0: W, y0: H, x1: -1, y1: -1 }));
    for (let i = 0; i < H * W; i++) {
      const l = labels[i]!;
      if (!l) continue;
      const s = stat[l - 1]!;
      const y = (i / W) | 0;
      const x = i - y * W;
      s.n++;
      s.sum += data[base + i]!;
      if (x < s.x0) s.x0 = x;
      if (x > s.x1) s.x1 = x;
      if (y < s.y0) s.y0 = y;
      if (y > s.y1) s.y1 = y;
    }
    stat.forEach((s, k) => {
      if (s.n < o.minPixels) return;
      const own = new Uint8Array(H * W);
      for (let i = 0; i < H * W; i++) if (labels[i] === k + 1) own[i] = 1;
      result.defects.push({
        class: cls,
        score: s.sum / s.n,
        box: [
          Math.round(s.x0 * sx),
          Math.round(s.y0 * sy),
          Math.round((s.x1 - s.x0 + 1) * sx),
          Math.round((s.y1 - s.y0 + 1) * sy),
        ],
        area_px: Math.round(s.n * sx * sy),
        area_mm2: s.n * pxArea,
        mask: rleEncode(own, H, W),
      });
    });
    if (result.defects.some((x) => x.class === cls)) result.present.push(cls);
  }
  return result;
}
