import { type Issue, ValidationError } from "../../core/errors.js";
import { DEFECT_CLASSES, type DefectClass, type InspectionEvent } from "../../core/types.js";

export type ImageFormat = "png" | "jpeg" | "raw";
export type ImageColor = "gray" | "rgb";
export type Product = "bottle" | "jar";
export type Glass = "flint" | "green" | "amber";
/** Hard cases: a defect drawn a few pixels across, at a fraction of its usual contrast, or on top of another one. */
export type HardKind = "small" | "low_contrast" | "overlap";
export const HARD_KINDS: readonly HardKind[] = ["small", "low_contrast", "overlap"];

/** Options of one render. Every field is optional; the defaults model one MIK-1 camera on a flint-bottle line. */
export interface RenderOptions {
  /** Pixels, 64..1920 each side and at most 1920×1080 in all (portrait 1080×1920 is fine). Default 512. */
  width?: number;
  /** Default 512. */
  height?: number;
  /** Grey (1 channel) or RGB (3 channels). Default "gray". */
  color?: ImageColor;
  /** Encoding of `image`: PNG, JPEG or the raw 8-bit pixels (no encoding). Default "png". */
  format?: ImageFormat;
  /** JPEG quality 1..100. Default 90. */
  quality?: number;
  /** zlib level 0..9 of the image PNG. Default 6 (sharp's default). */
  pngCompressionLevel?: number;
  /** With the item id, the only source of randomness: the same (seed, item_id, options) give byte-identical output. Default 0. */
  seed?: number;
  /**
   * Millimetres per pixel at the item. Default: the item fills 86 % of the frame height (or 80 % of its width when
   * the frame is narrow): a 240 mm bottle in a 1080-px frame → 0.258 mm/px, in 512 px → 0.545 mm/px; a 130 mm jar in
   * 1080 px → 0.140 mm/px. An explicit value must let the whole item fit the frame.
   */
  mmPerPx?: number;
  /** Optical blur (Gaussian σ, px), 0..4. Default 0.8. */
  blurSigma?: number;
  /** Sensor noise multiplier, 0 (none) .. 10. Default 1 (σ ≈ 3 grey levels on the backlight). */
  noise?: number;
  /**
   * Mask threshold in grey levels, 0..50: a pixel belongs to a mask only where the noise-free defect render differs
   * from the noise-free clean render by more than this (see render.ts for the whole rule). Default 2.
   */
  maskThreshold?: number;
  /** Probability 0..1 that a defect is drawn as a hard case. Default 0. */
  hard?: number;
  /** Which hard cases may be drawn. Default all. */
  hardKinds?: readonly HardKind[];
  /** Container type, or "mixed" for a per-item choice. Default "bottle". */
  product?: Product | "mixed";
  /** Glass colour, or "mixed" for a per-item choice. Default "flint". */
  glass?: Glass | "mixed";
  /** true: `masks` has all eight classes (empty for absent ones); false: only the classes in the event. Default false. */
  allMasks?: boolean;
}

export interface ResolvedOptions {
  width: number;
  height: number;
  channels: 1 | 3;
  format: ImageFormat;
  quality: number;
  pngCompressionLevel: number;
  seed: number;
  mmPerPx: number | undefined;
  blurSigma: number;
  noise: number;
  maskThreshold: number;
  hard: number;
  hardKinds: readonly HardKind[];
  product: Product | "mixed";
  glass: Glass | "mixed";
  allMasks: boolean;
}

export const MIN_SIDE = 64;
export const MAX_SIDE = 1920;
export const MAX_PIXELS = 1920 * 1080;

const OPTION_KEYS = new Set([
  "width",
  "height",
  "color",
  "format",
  "quality",
  "pngCompressionLevel",
  "seed",
  "mmPerPx",
  "blurSigma",
  "noise",
  "maskThreshold",
  "hard",
  "hardKinds",
  "product",
  "glass",
  "allMasks",
]);

function fail(issues: Issue[], what: string): never {
  throw new ValidationError(`${what}: ${issues.map((i) => `${i.path}: ${i.message}`).join("; ")}`, issues);
}

const show = (v: unknown) => (typeof v === "number" ? String(v) : JSON.stringify(v));

/** Checks and completes render options; throws a ValidationError naming every wrong field. */
export function resolveOptions(o: RenderOptions = {}): ResolvedOptions {
  const issues: Issue[] = [];
  for (const k of Object.keys(o)) {
    if (!OPTION_KEYS.has(k)) issues.push({ path: k, message: `unknown option; valid: ${[...OPTION_KEYS].join(", ")}` });
  }
  const num = (key: keyof RenderOptions, def: number, min: number, max: number, integer: boolean): number => {
    const v = o[key];
    if (v === undefined) return def;
    if (typeof v !== "number" || !Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v))) {
      issues.push({
        path: key,
        message: `must be ${integer ? "an integer" : "a number"} in ${min}..${max} (got ${show(v)})`,
      });
      return def;
    }
    return v;
  };
  const oneOf = <T extends string>(key: keyof RenderOptions, def: T, valid: readonly T[]): T => {
    const v = o[key];
    if (v === undefined) return def;
    if (typeof v !== "string" || !valid.includes(v as T)) {
      issues.push({ path: key, message: `must be one of ${valid.join(", ")} (got ${show(v)})` });
      return def;
    }
    return v as T;
  };
  const width = num("width", 512, MIN_SIDE, MAX_SIDE, true);
  const height = num("height", 512, MIN_SIDE, MAX_SIDE, true);
  if (issues.length === 0 && width * height > MAX_PIXELS) {
    issues.push({
      path: "width",
      message: `${width}×${height} is more than the MIK-1's 1920×1080 pixels (${MAX_PIXELS}); lower width or height`,
    });
  }
  const color = oneOf<ImageColor>("color", "gray", ["gray", "rgb"]);
  const format = oneOf<ImageFormat>("format", "png", ["png", "jpeg", "raw"]);
  const quality = num("quality", 90, 1, 100, true);
  const pngCompressionLevel = num("pngCompressionLevel", 6, 0, 9, true);
  const seed = num("seed", 0, -Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, false);
  const mmPerPx = o.mmPerPx === undefined ? undefined : num("mmPerPx", 0.25, 0.005, 50, false);
  const blurSigma = num("blurSigma", 0.8, 0, 4, false);
  const noise = num("noise", 1, 0, 10, false);
  const maskThreshold = num("maskThreshold", 2, 0, 50, false);
  const hard = num("hard", 0, 0, 1, false);
  let hardKinds: readonly HardKind[] = HARD_KINDS;
  if (o.hardKinds !== undefined) {
    if (
      !Array.isArray(o.hardKinds) ||
      o.hardKinds.length === 0 ||
      o.hardKinds.some((k) => !HARD_KINDS.includes(k as HardKind))
    ) {
      issues.push({
        path: "hardKinds",
        message: `must be a non-empty list of ${HARD_KINDS.join(", ")} (got ${show(o.hardKinds)})`,
      });
    } else hardKinds = [...o.hardKinds];
  }
  const product = oneOf<Product | "mixed">("product", "bottle", ["bottle", "jar", "mixed"]);
  const glass = oneOf<Glass | "mixed">("glass", "flint", ["flint", "green", "amber", "mixed"]);
  if (o.allMasks !== undefined && typeof o.allMasks !== "boolean") {
    issues.push({ path: "allMasks", message: `must be true or false (got ${show(o.allMasks)})` });
  }
  if (issues.length) fail(issues, "invalid render options");
  return {
    width,
    height,
    channels: color === "rgb" ? 3 : 1,
    format,
    quality,
    pngCompressionLevel,
    seed,
    mmPerPx,
    blurSigma,
    noise,
    maskThreshold,
    hard,
    hardKinds,
    product,
    glass,
    allMasks: o.allMasks === true,
  };
}

/** Checks the parts of an inspection event the renderer reads; throws a ValidationError naming every wrong field. */
export function validateEvent(e: InspectionEvent): void {
  const issues: Issue[] = [];
  if (e === null || typeof e !== "object")
    fail([{ path: "/", message: "an InspectionEvent object is needed" }], "invalid inspection event");
  if (typeof e.item_id !== "number" || !Number.isFinite(e.item_id)) {
    issues.push({ path: "/item_id", message: `must be a finite number (got ${show(e.item_id)})` });
  }
  if (!Array.isArray(e.defects)) {
    issues.push({ path: "/defects", message: "must be an array (empty for a good item)" });
  } else {
    e.defects.forEach((d, i) => {
      const p = `/defects/${i}`;
      if (d === null || typeof d !== "object") {
        issues.push({ path: p, message: "must be an object" });
        return;
      }
      if (!DEFECT_CLASSES.includes(d.class as DefectClass)) {
        issues.push({
          path: `${p}/class`,
          message: `unknown class ${show(d.class)}; valid: ${DEFECT_CLASSES.join(", ")}`,
        });
      }
      if (typeof d.size_mm !== "number" || !Number.isFinite(d.size_mm) || d.size_mm <= 0 || d.size_mm > 1000) {
        issues.push({
          path: `${p}/size_mm`,
          message: `must be a number of millimetres in (0, 1000] (got ${show(d.size_mm)})`,
        });
      }
      for (const k of ["x", "y"] as const) {
        const v = d[k];
        if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || v > 1) {
          issues.push({ path: `${p}/${k}`, message: `must be a normalised position in 0..1 (got ${show(v)})` });
        }
      }
    });
  }
  if (issues.length) fail(issues, "invalid inspection event");
}
