import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { NpyWriter } from "../../core/npy.js";
import { DEFECT_CLASSES, type InspectionEvent } from "../../core/types.js";
import { encodeLabelPng, renderInspection } from "../images/index.js";
import { Rng } from "../rng.js";
import type { FileEntry } from "./generate.js";

/*
 * Images of a dataset: N of the run's inspected items rendered by the twin's MIK-1 renderer (src/twin/images), with
 * one per-pixel class bitmask each. Selection oversamples defective items: min(defective, round(N/2)) defective
 * items and the rest good ones (more defective ones when good items run short), each group picked by stratified
 * sampling (one random item per equal slice of the group in time order), so the picks spread over the whole run.
 */

export interface ImageOptions {
  n: number;
  width: number;
  height: number;
  seed: number;
  progress?: (line: string) => void;
}

export interface ImageSummary {
  files: Record<string, FileEntry>;
  meta: {
    count: number;
    requested: number;
    defective: number;
    width: number;
    height: number;
    channels: 1;
    color: "gray";
    selection: string;
    renderer: string;
    mask_threshold: number;
    images_per_s: number;
  };
}

/** Items picked for rendering (sorted by item order): see the file comment. */
export function selectImageItems(items: readonly InspectionEvent[], n: number, seed: number): InspectionEvent[] {
  const bad = items.filter((e) => e.defects.length > 0);
  const good = items.filter((e) => e.defects.length === 0);
  let nBad = Math.min(bad.length, Math.round(n / 2));
  const nGood = Math.min(good.length, n - nBad);
  nBad = Math.min(bad.length, n - nGood);
  const rng = Rng.derive(seed, 0x696d6167);
  const pick = (list: readonly InspectionEvent[], k: number): InspectionEvent[] => {
    const out: InspectionEvent[] = [];
    for (let s = 0; s < k; s++) {
      const lo = Math.floor((s * list.length) / k);
      const hi = Math.floor(((s + 1) * list.length) / k);
      out.push(list[lo + Math.floor(rng.next() * (hi - lo))]!);
    }
    return out;
  };
  return [...pick(bad, nBad), ...pick(good, nGood)].sort((a, b) => a.item_id - b.item_id);
}

const CONCURRENCY = 4;

/** Renders the selected items into `dir` (images.npy, masks.npy, item_id.npy, labels.npy, png/, masks/). */
export async function writeImages(
  dir: string,
  items: readonly InspectionEvent[],
  o: ImageOptions,
): Promise<ImageSummary> {
  const t0 = performance.now();
  const picked = selectImageItems(items, o.n, o.seed);
  const N = picked.length;
  const { width: W, height: H } = o;
  mkdirSync(join(dir, "png"), { recursive: true });
  mkdirSync(join(dir, "masks"), { recursive: true });
  const imgs = new NpyWriter(join(dir, "images.npy"), "uint8", [H, W]);
  const masks = new NpyWriter(join(dir, "masks.npy"), "uint8", [H, W]);
  const ids = new NpyWriter(join(dir, "item_id.npy"), "int64");
  const labels = new NpyWriter(join(dir, "labels.npy"), "uint8", [DEFECT_CLASSES.length]);
  const boxes: unknown[] = [];
  let maskThreshold = 2;
  let defective = 0;
  let lastReport = performance.now();

  const render = (e: InspectionEvent) =>
    renderInspection(
      // The twin's sizes are rounded to 0.1 mm; the renderer needs a positive size.
      { ...e, defects: e.defects.map((d) => (d.size_mm > 0 ? d : { ...d, size_mm: 0.1 })) },
      { width: W, height: H, seed: o.seed, format: "png", color: "gray", allMasks: true },
    );
  // A few renders in flight (sharp encodes on its thread pool), written strictly in order.
  const inFlight: ReturnType<typeof render>[] = [];
  let next = 0;
  for (let k = 0; k < N; k++) {
    while (next < N && inFlight.length < CONCURRENCY) inFlight.push(render(picked[next++]!));
    const r = await inFlight.shift()!;
    const e = picked[k]!;
    const bits = new Uint8Array(W * H);
    const present = new Uint8Array(DEFECT_CLASSES.length);
    DEFECT_CLASSES.forEach((c, ci) => {
      const m = r.masks[c];
      if (!m) return;
      const bit = 1 << ci;
      for (let p = 0; p < m.length; p++) {
        if (m[p]) {
          bits[p]! |= bit;
          present[ci] = 1;
        }
      }
    });
    if (e.defects.length > 0) defective++;
    maskThreshold = r.maskThreshold;
    imgs.append(new Uint8Array(r.pixels.buffer, r.pixels.byteOffset, r.pixels.length));
    masks.append(bits);
    ids.push(e.item_id);
    labels.append(present);
    const name = String(k).padStart(6, "0");
    writeFileSync(join(dir, "png", `${name}.png`), r.image);
    writeFileSync(join(dir, "masks", `${name}.png`), await encodeLabelPng(bits, W, H));
    boxes.push({
      index: k,
      item_id: e.item_id,
      boxes: r.boxes.map((b) => ({
        class: b.class,
        x0: b.x0,
        y0: b.y0,
        x1: b.x1,
        y1: b.y1,
        area_px: b.area_px,
        visible: b.visible,
      })),
    });
    if (o.progress && performance.now() - lastReport > 2000) {
      lastReport = performance.now();
      o.progress(`rendered ${k + 1} of ${N} images`);
    }
  }
  writeFileSync(join(dir, "boxes.json"), JSON.stringify(boxes));
  const files: Record<string, FileEntry> = {
    "images/images.npy": {
      shape: imgs.close(),
      dtype: "uint8",
      description: "grey MIK-1 renders [N, H, W] (twin renderer, 8-bit, sensor noise and blur included)",
    },
    "images/masks.npy": {
      shape: masks.close(),
      dtype: "uint8",
      description: "per-pixel class bitmask: bit c set = class defect_classes[c] at that pixel (overlaps allowed)",
    },
    "images/item_id.npy": { shape: ids.close(), dtype: "int64", description: "item id of each image (items/)" },
    "images/labels.npy": {
      shape: labels.close(),
      dtype: "uint8",
      description: "1 when the class has at least one mask pixel in the image (a drawn defect can be invisible)",
    },
    "images/boxes.json": {
      shape: [N],
      dtype: "json",
      description:
        "per image: [{index, item_id, boxes: [{class, x0, y0, x1, y1, area_px, visible}]}], boxes half-open px",
    },
    "images/png/": { shape: [N], dtype: "png", description: "the images as PNG, NNNNNN.png = row NNNNNN" },
    "images/masks/": {
      shape: [N],
      dtype: "png",
      description: "the bitmasks as 8-bit grey PNG with the raw bit values (stretch the contrast to look at them)",
    },
  };
  const wallS = (performance.now() - t0) / 1000;
  return {
    files,
    meta: {
      count: N,
      requested: o.n,
      defective,
      width: W,
      height: H,
      channels: 1,
      color: "gray",
      selection:
        "defective items oversampled to about half (min(defective, round(N/2))), stratified over the run, rest good items",
      renderer: "src/twin/images renderInspection (seed = dataset seed)",
      mask_threshold: maskThreshold,
      images_per_s: Math.round((N / Math.max(wallS, 1e-9)) * 10) / 10,
    },
  };
}
