/*
 * Drawing of each defect class into the renderer's sharp (pre-blur) layer S. A drawing changes S only inside its
 * footprint and records, pixel by pixel, how much it changed it (Layer.delta): that record is what makes the masks
 * exact (render.ts blurs it with the image's blur and thresholds it). Every drawing takes its shape from its own
 * random stream, so adding a defect to an item never changes how the others look.
 */
import type { DefectClass, InspectedDefect } from "../../core/types.js";
import type { Rng } from "../rng.js";
import type { HardKind, ResolvedOptions } from "./options.js";
import { clipRect, lineCoverage, type Rect, ridge, segmentDistance, smoothstep } from "./raster.js";
import { alphaAt, bgAt, itemToPixel, pixelToItem, profileAt, type Scene, sceneValue } from "./scene.js";

/** One defect as it will be drawn (after the hard-case choice), in pixels. */
export interface DefectPlan {
  /** Index in the event's `defects`. */
  index: number;
  cls: DefectClass;
  /** Size as drawn (a "small" hard case changes it). */
  sizeMm: number;
  sizePx: number;
  /** Item coordinates as drawn (an "overlap" hard case moves the defect). */
  x: number;
  y: number;
  /** Anchor in px: the centre, or the point of the outline for chip and deformation. */
  cx: number;
  cy: number;
  hard: HardKind | null;
  /** A chip in the rim of the finish (rather than in a side wall). */
  onRim: boolean;
  /** Contrast factor applied to the drawing (≈ 1; 0.1–0.5 for a low-contrast hard case). */
  contrast: number;
  rng: Rng;
}

/** What one drawing changed: a patch of the frame and the change of every pixel in it. */
export interface Layer {
  plan: DefectPlan;
  x0: number;
  y0: number;
  w: number;
  h: number;
  delta: Float32Array;
  /** true when the drawing is already optically blurred (the analytic outline of a deformation). */
  preBlurred: boolean;
}

/**
 * Order in which classes are drawn (later ones on top): the shape of the item first, then bulk glass, then surface
 * and inclusions, thin lines last. Within a class, event order.
 */
export const DRAW_ORDER: readonly DefectClass[] = [
  "deformation",
  "chip",
  "cloudiness",
  "stain",
  "bubble",
  "stone",
  "crack",
  "scratch",
];

/** Smallest drawn size (px) per class: below it a defect is below the camera's resolution. */
const MIN_PX: Readonly<Record<DefectClass, number>> = {
  crack: 4,
  bubble: 1.5,
  chip: 2,
  cloudiness: 4,
  deformation: 4,
  stain: 3,
  stone: 1.5,
  scratch: 4,
};

/** Size range (px) of a "small" hard case. */
const SMALL_PX: Readonly<Record<DefectClass, [number, number]>> = {
  crack: [5, 9],
  bubble: [2, 3.5],
  chip: [2, 3.5],
  cloudiness: [6, 10],
  deformation: [6, 10],
  stain: [3, 5],
  stone: [1.8, 3],
  scratch: [5, 9],
};

/**
 * Contrast range of a "low_contrast" hard case: a few grey levels above the noise for the strong classes, about half
 * for the faint ones. Chip and deformation change the outline, which cannot fade: theirs is a shallow notch / warp.
 */
const LOW_CONTRAST: Readonly<Record<DefectClass, [number, number]>> = {
  crack: [0.1, 0.18],
  bubble: [0.1, 0.18],
  chip: [1, 1],
  cloudiness: [0.35, 0.5],
  deformation: [1, 1],
  stain: [0.3, 0.45],
  stone: [0.08, 0.14],
  scratch: [0.3, 0.45],
};

const lerp = (r: [number, number], t: number) => r[0] + (r[1] - r[0]) * t;

/**
 * Plans every defect of an event: hard-case choice, drawn size and position. `stream(i)` is defect i's own random
 * stream; planning draws a fixed count from it so the drawing that continues on it is the same whatever the plan.
 */
export function planDefects(
  defects: readonly InspectedDefect[],
  s: Scene,
  o: ResolvedOptions,
  stream: (i: number) => Rng,
): DefectPlan[] {
  const plans: DefectPlan[] = [];
  defects.forEach((d, index) => {
    const rng = stream(index);
    const hardRoll = rng.next();
    const kindRoll = rng.next();
    const c1 = rng.next();
    const s1 = rng.next();
    const ox = rng.next() - 0.5;
    const oy = rng.next() - 0.5;
    let hard: HardKind | null = null;
    if (hardRoll < o.hard) {
      const kinds = o.hardKinds.filter((k) => k !== "overlap" || index > 0);
      if (kinds.length) hard = kinds[Math.min(kinds.length - 1, Math.floor(kindRoll * kinds.length))] ?? null;
    }
    const cls = d.class;
    const contrast = hard === "low_contrast" ? lerp(LOW_CONTRAST[cls], c1) : 0.85 + 0.3 * c1;
    let sizePx = d.size_mm / s.mmPerPx;
    if (hard === "small") sizePx = lerp(SMALL_PX[cls], s1);
    sizePx = Math.min(Math.max(sizePx, MIN_PX[cls]), 0.8 * s.itemH);
    let { x, y } = d;
    if (hard === "overlap") {
      // On top of the first defect, offset by up to ±30 % of its size.
      const first = plans[0] as DefectPlan;
      const p = pixelToItem(s, first.cx + ox * 0.6 * first.sizePx, first.cy + oy * 0.6 * first.sizePx);
      x = p.x;
      y = p.y;
    }
    let cx: number;
    let cy: number;
    const onRim = cls === "chip" && y < TOP_CHIP_Y;
    if (cls === "chip" || cls === "deformation") {
      const a = wallAnchor(s, onRim, x, y);
      cx = a.x;
      cy = a.y;
    } else {
      const p = itemToPixel(s, x, y);
      cx = p.px;
      cy = p.py;
    }
    plans.push({
      index,
      cls,
      sizeMm: sizePx * s.mmPerPx,
      sizePx,
      x,
      y,
      cx,
      cy,
      hard,
      onRim,
      contrast,
      rng,
    });
  });
  return plans;
}

/** Chips near the top of the finish notch its rim; otherwise chips and deformations sit on the nearer side wall. */
const TOP_CHIP_Y = 0.04;

function wallAnchor(s: Scene, onRim: boolean, x: number, y: number): { x: number; y: number } {
  if (onRim) {
    const { r } = profileAt(s, s.yTop + 0.5);
    return { x: s.cx + (2 * x - 1) * 0.85 * r, y: s.yTop };
  }
  const py = s.yTop + Math.min(0.97, Math.max(0.03, y)) * s.itemH;
  const { r } = profileAt(s, py);
  return { x: s.cx + (x < 0.5 ? -r : r), y: py };
}

/** Drawing context: the scene, the sharp layer and the blur radius that pads every patch. */
export interface DrawContext {
  s: Scene;
  S: Float32Array;
  pad: number;
}

function newLayer(ctx: DrawContext, plan: DefectPlan, fp: Rect, preBlurred: boolean): Layer {
  const p = preBlurred ? 0 : ctx.pad;
  const r = clipRect({ x0: fp.x0 - p, y0: fp.y0 - p, x1: fp.x1 + p, y1: fp.y1 + p }, ctx.s.W, ctx.s.H);
  const w = Math.max(0, r.x1 - r.x0);
  const h = Math.max(0, r.y1 - r.y0);
  return { plan, x0: r.x0, y0: r.y0, w, h, delta: new Float32Array(w * h), preBlurred };
}

function put(ctx: DrawContext, L: Layer, x: number, y: number, value: number): void {
  const i = y * ctx.s.W + x;
  const d = value - (ctx.S[i] as number);
  if (d === 0) return;
  ctx.S[i] = value;
  const j = (y - L.y0) * L.w + (x - L.x0);
  L.delta[j] = (L.delta[j] as number) + d;
}

/** mul/add of one sample of a drawing: new = old·mul + add (before contrast and glass clipping). */
type Field = (fx: number, fy: number, out: Float64Array) => void;

const sample = new Float64Array(2);

/**
 * Applies a field over a footprint, supersampled ss×ss per pixel: new = old + contrast·α·((old·mul + add) − old),
 * α the glass coverage when `clip` (defects in the glass stop at its outline).
 */
function applyField(ctx: DrawContext, L: Layer, fp: Rect, ss: number, k: number, clip: boolean, field: Field): void {
  const { s, S } = ctx;
  const r = clipRect(fp, s.W, s.H);
  const n = ss * ss;
  for (let y = r.y0; y < r.y1; y++) {
    for (let x = r.x0; x < r.x1; x++) {
      let m = 0;
      let a = 0;
      for (let sy = 0; sy < ss; sy++) {
        for (let sx = 0; sx < ss; sx++) {
          field(x + (sx + 0.5) / ss, y + (sy + 0.5) / ss, sample);
          m += sample[0] as number;
          a += sample[1] as number;
        }
      }
      m /= n;
      a /= n;
      if (m === 1 && a === 0) continue;
      const alpha = clip ? alphaAt(s, x, y) : 1;
      if (alpha === 0) continue;
      const old = S[y * s.W + x] as number;
      put(ctx, L, x, y, old + k * alpha * (old * m + a - old));
    }
  }
}

const ssFor = (radiusPx: number) => (radiusPx < 8 ? 4 : radiusPx < 24 ? 2 : 1);

const around = (cx: number, cy: number, rx: number, ry = rx): Rect => ({
  x0: cx - rx - 1,
  y0: cy - ry - 1,
  x1: cx + rx + 1,
  y1: cy + ry + 1,
});

/** Bubble (seed/blister): a gas lens — bright centre, dark refracting ring, thin bright rim, a specular glint. */
function drawBubble(ctx: DrawContext, p: DefectPlan): Layer {
  const g = p.rng;
  const R = p.sizePx / 2;
  const aspect = 1 + 0.35 * g.next();
  const th = Math.PI / 2 + 0.4 * g.gaussian(); // seeds are drawn out along the forming direction
  const ringDepth = 0.55 + 0.15 * g.next();
  const rimGain = 0.5 + 0.25 * g.next();
  const ringW = Math.max(0.13, 0.6 / R);
  const rimW = Math.max(0.08, 0.7 / R);
  const cut = Math.max(1.35, 1 + 4 * rimW, 0.8 + 4 * ringW);
  const ca = Math.cos(th);
  const sa = Math.sin(th);
  const hx = p.cx - 0.35 * R;
  const hy = p.cy - 0.35 * R;
  const hw = 0.16 * R + 0.3;
  const reach = R * aspect * cut;
  const fp = around(p.cx, p.cy, reach);
  const L = newLayer(ctx, p, fp, false);
  applyField(ctx, L, fp, ssFor(R), p.contrast, true, (fx, fy, o) => {
    const dx = fx - p.cx;
    const dy = fy - p.cy;
    const u = (dx * ca + dy * sa) / aspect;
    const w = -dx * sa + dy * ca;
    const rho = Math.sqrt(u * u + w * w) / R;
    const hd = Math.hypot(fx - hx, fy - hy);
    o[1] = 70 * ridge(hd, 0, hw);
    if (rho >= cut) {
      o[0] = 1;
      return;
    }
    o[0] =
      1 +
      0.14 * (1 - smoothstep(0.3, 0.6, rho)) -
      ringDepth * ridge(rho, 0.76, ringW) +
      rimGain * ridge(rho, 1.02, rimW);
  });
  return L;
}

/** Stone (inclusion): an opaque, irregular dark core with a grey halo and a thin refracting ring. */
function drawStone(ctx: DrawContext, p: DefectPlan): Layer {
  const g = p.rng;
  const R = p.sizePx / 2;
  const h2 = 0.12 * g.next();
  const h3 = 0.1 * g.next();
  const h5 = 0.06 * g.next();
  const f2 = 2 * Math.PI * g.next();
  const f3 = 2 * Math.PI * g.next();
  const f5 = 2 * Math.PI * g.next();
  const core = 12 + 16 * g.next();
  const haloDepth = 0.3 + 0.15 * g.next();
  const ringGain = 0.15 + 0.15 * g.next();
  const ringW = Math.max(0.06, 0.5 / R);
  const halo = 2.6;
  const fp = around(p.cx, p.cy, R * 1.3 * halo);
  const L = newLayer(ctx, p, fp, false);
  applyField(ctx, L, fp, ssFor(R), p.contrast, true, (fx, fy, o) => {
    const dx = fx - p.cx;
    const dy = fy - p.cy;
    const t = Math.atan2(dy, dx);
    const rr = R * (1 + h2 * Math.cos(2 * t + f2) + h3 * Math.cos(3 * t + f3) + h5 * Math.cos(5 * t + f5));
    const rho = Math.sqrt(dx * dx + dy * dy) / rr;
    if (rho < 1) {
      o[0] = 0;
      o[1] = core + 8 * (1 - rho) * (1 - rho);
      return;
    }
    o[1] = 0;
    if (rho >= halo) {
      o[0] = 1;
      return;
    }
    const fade = 1 - smoothstep(1, halo, rho);
    o[0] = 1 - haloDepth * fade * fade + ringGain * ridge(rho, 1.12, ringW) * fade;
  });
  return L;
}

interface Segment {
  ax: number;
  ay: number;
  bx: number;
  by: number;
  w: number;
}

/** Coverage (max over segments) of a footprint, in a w×h buffer at (r.x0, r.y0). */
function segmentsCoverage(segs: readonly Segment[], r: Rect): Float32Array {
  const w = r.x1 - r.x0;
  const h = r.y1 - r.y0;
  const cov = new Float32Array(Math.max(0, w * h));
  for (const sg of segs) {
    const reach = sg.w / 2 + 1;
    const sx0 = Math.max(r.x0, Math.floor(Math.min(sg.ax, sg.bx) - reach));
    const sx1 = Math.min(r.x1, Math.ceil(Math.max(sg.ax, sg.bx) + reach));
    const sy0 = Math.max(r.y0, Math.floor(Math.min(sg.ay, sg.by) - reach));
    const sy1 = Math.min(r.y1, Math.ceil(Math.max(sg.ay, sg.by) + reach));
    for (let y = sy0; y < sy1; y++) {
      for (let x = sx0; x < sx1; x++) {
        const { d } = segmentDistance(x + 0.5, y + 0.5, sg.ax, sg.ay, sg.bx, sg.by);
        const c = lineCoverage(d, sg.w);
        const i = (y - r.y0) * w + (x - r.x0);
        if (c > (cov[i] as number)) cov[i] = c;
      }
    }
  }
  return cov;
}

function segmentsRect(segs: readonly Segment[], s: Scene): Rect {
  let x0 = Number.POSITIVE_INFINITY;
  let y0 = Number.POSITIVE_INFINITY;
  let x1 = Number.NEGATIVE_INFINITY;
  let y1 = Number.NEGATIVE_INFINITY;
  for (const g of segs) {
    const m = g.w / 2 + 1;
    x0 = Math.min(x0, g.ax - m, g.bx - m);
    y0 = Math.min(y0, g.ay - m, g.by - m);
    x1 = Math.max(x1, g.ax + m, g.bx + m);
    y1 = Math.max(y1, g.ay + m, g.by + m);
  }
  return clipRect({ x0, y0, x1, y1 }, s.W, s.H);
}

/** Applies dark (mul) and bright (add) line coverages over a rect: new = old + k·α·(old·(1 − dark·c) + bright·b − old). */
function applyLines(
  ctx: DrawContext,
  L: Layer,
  r: Rect,
  dark: Float32Array,
  darkDepth: number,
  bright: Float32Array | null,
  brightAmp: number,
  k: number,
): void {
  const { s, S } = ctx;
  const w = r.x1 - r.x0;
  for (let y = r.y0; y < r.y1; y++) {
    for (let x = r.x0; x < r.x1; x++) {
      const i = (y - r.y0) * w + (x - r.x0);
      const c = dark[i] as number;
      const b = bright ? (bright[i] as number) : 0;
      if (c === 0 && b === 0) continue;
      const alpha = alphaAt(s, x, y);
      if (alpha === 0) continue;
      const old = S[y * s.W + x] as number;
      put(ctx, L, x, y, old + k * alpha * (-old * darkDepth * c + brightAmp * b));
    }
  }
}

/** Crack (check): thin dark fracture lines from an origin, wandering, kinking and branching; a glint along one side. */
function drawCrack(ctx: DrawContext, p: DefectPlan): Layer {
  const g = p.rng;
  const len = p.sizePx;
  const w0 = 0.9 + 0.5 * g.next();
  const depth = 0.6 + 0.2 * g.next();
  const glint = g.next() < 0.5;
  const th0 = Math.PI * g.next();
  const step = Math.max(1.2, Math.min(4, len / 30));
  const segs: Segment[] = [];
  const main: Segment[] = [];
  const grow = (x: number, y: number, th: number, l: number, w: number, level: number) => {
    const n = Math.max(1, Math.ceil(l / step));
    for (let i = 0; i < n; i++) {
      th += 0.22 * g.gaussian();
      if (g.next() < 0.06) th += (g.next() < 0.5 ? -1 : 1) * 0.5;
      const nx = x + Math.cos(th) * step;
      const ny = y + Math.sin(th) * step;
      const sg = { ax: x, ay: y, bx: nx, by: ny, w: Math.max(0.5, w * (1 - (0.5 * i) / n)) };
      segs.push(sg);
      if (level === 0) main.push(sg);
      if (level < 2 && g.next() < 0.08) {
        const turn = (g.next() < 0.5 ? -1 : 1) * (0.45 + 0.5 * g.next());
        grow(nx, ny, th + turn, (l - i * step) * (0.3 + 0.3 * g.next()), w * 0.75, level + 1);
      }
      x = nx;
      y = ny;
    }
  };
  const a1 = 0.8 + 0.4 * g.next();
  grow(p.cx, p.cy, th0, (len / 2) * a1, w0, 0);
  grow(p.cx, p.cy, th0 + Math.PI + 0.3 * g.gaussian(), (len / 2) * (2 - a1), w0, 0);
  const glints: Segment[] = [];
  if (glint) {
    for (const sg of main) {
      const dx = sg.bx - sg.ax;
      const dy = sg.by - sg.ay;
      const l = Math.hypot(dx, dy) || 1;
      const off = sg.w / 2 + 0.9;
      const nx = (-dy / l) * off;
      const ny = (dx / l) * off;
      glints.push({ ax: sg.ax + nx, ay: sg.ay + ny, bx: sg.bx + nx, by: sg.by + ny, w: 0.7 });
    }
  }
  const r = segmentsRect([...segs, ...glints], ctx.s);
  const L = newLayer(ctx, p, r, false);
  const dark = segmentsCoverage(segs, r);
  const bright = glint ? segmentsCoverage(glints, r) : null;
  if (bright) for (let i = 0; i < bright.length; i++) if ((dark[i] as number) > 0.3) bright[i] = 0;
  applyLines(ctx, L, r, dark, depth, bright, 45, p.contrast);
  return L;
}

/** Scratch: thin straight streaks, mostly along the circumference (horizontal), often a few in parallel, broken. */
function drawScratch(ctx: DrawContext, p: DefectPlan): Layer {
  const g = p.rng;
  const len = p.sizePx;
  const th = g.next() < 0.7 ? 0.3 * g.gaussian() : Math.PI * g.next();
  const nLines = g.next() < 0.35 ? 2 + Math.floor(3 * g.next()) : 1;
  const spacing = 1.5 + 2 * g.next();
  const brightPolarity = g.next() < 0.25;
  const depth = 0.3 + 0.15 * g.next();
  const amp = 45 + 25 * g.next();
  const ux = Math.cos(th);
  const uy = Math.sin(th);
  interface Streak {
    ax: number;
    ay: number;
    bx: number;
    by: number;
    w: number;
    f: number;
    ph: number;
    gaps: [number, number][];
  }
  const streaks: Streak[] = [];
  for (let j = 0; j < nLines; j++) {
    const off = (j - (nLines - 1) / 2) * spacing;
    const l = len * (j === 0 ? 1 : 0.6 + 0.4 * g.next());
    const shift = (j === 0 ? 0 : 0.15 * (g.next() * 2 - 1)) * len;
    const mx = p.cx - uy * off + ux * shift;
    const my = p.cy + ux * off + uy * shift;
    const gaps: [number, number][] = [];
    const nGaps = Math.floor(3 * g.next());
    for (let k = 0; k < nGaps; k++) {
      const c = 0.15 + 0.7 * g.next();
      const hw = 0.025 + 0.035 * g.next();
      gaps.push([c - hw, c + hw]);
    }
    streaks.push({
      ax: mx - (ux * l) / 2,
      ay: my - (uy * l) / 2,
      bx: mx + (ux * l) / 2,
      by: my + (uy * l) / 2,
      w: 0.6 + 0.5 * g.next(),
      f: 2 + 3 * g.next(),
      ph: 2 * Math.PI * g.next(),
      gaps,
    });
  }
  const r = segmentsRect(streaks, ctx.s);
  const L = newLayer(ctx, p, r, false);
  const w = r.x1 - r.x0;
  const cov = new Float32Array(Math.max(0, w * (r.y1 - r.y0)));
  for (const st of streaks) {
    for (let y = r.y0; y < r.y1; y++) {
      for (let x = r.x0; x < r.x1; x++) {
        const { d, t } = segmentDistance(x + 0.5, y + 0.5, st.ax, st.ay, st.bx, st.by);
        let c = lineCoverage(d, st.w);
        if (c === 0) continue;
        let gap = 1;
        for (const [g0, g1] of st.gaps)
          gap = Math.min(gap, 1 - smoothstep(g0 - 0.02, g0, t) * smoothstep(g1 + 0.02, g1, t));
        c *=
          smoothstep(0, 0.08, t) *
          smoothstep(1, 0.92, t) *
          (0.65 + 0.35 * Math.sin(2 * Math.PI * st.f * t + st.ph)) *
          gap;
        const i = (y - r.y0) * w + (x - r.x0);
        if (c > (cov[i] as number)) cov[i] = c;
      }
    }
  }
  if (brightPolarity) applyLines(ctx, L, r, new Float32Array(cov.length), 0, cov, amp, p.contrast);
  else applyLines(ctx, L, r, cov, depth, null, 0, p.contrast);
  return L;
}

/** Stain: a soft, irregular, mottled blotch with a darker drying ring. */
function drawStain(ctx: DrawContext, p: DefectPlan): Layer {
  const g = p.rng;
  const R = p.sizePx / 2;
  const harm = [2, 3, 5, 7].map((k) => ({ k, a: (0.22 / k) * (0.3 + g.next()), ph: 2 * Math.PI * g.next() }));
  const depth = 0.16 + 0.14 * g.next();
  const ring = 0.3 + 0.3 * g.next();
  const mf = 2.5 / R;
  const m1 = 2 * Math.PI * g.next();
  const m2 = 2 * Math.PI * g.next();
  const fp = around(p.cx, p.cy, R * 1.5 * 1.4);
  const L = newLayer(ctx, p, fp, false);
  applyField(ctx, L, fp, ssFor(R), p.contrast, true, (fx, fy, o) => {
    const dx = fx - p.cx;
    const dy = fy - p.cy;
    const t = Math.atan2(dy, dx);
    let rr = 1;
    for (const h of harm) rr += h.a * Math.cos(h.k * t + h.ph);
    const rho = Math.sqrt(dx * dx + dy * dy) / (R * rr);
    o[1] = 0;
    if (rho >= 1.4) {
      o[0] = 1;
      return;
    }
    const mottle = Math.sin(mf * dx + m1) * Math.sin(mf * dy + m2);
    const a = (1 - smoothstep(0.7, 1.05, rho)) * (0.78 + 0.22 * mottle) + ring * ridge(rho, 0.92, 0.09);
    o[0] = 1 - depth * a;
  });
  return L;
}

/** Cloudiness: a low-contrast milky haze (scatter lifts the darks, dims the brights), wavy cords (striae), or both. */
function drawCloudiness(ctx: DrawContext, p: DefectPlan): Layer {
  const g = p.rng;
  const s = ctx.s;
  const R = p.sizePx / 2;
  const mode = g.next();
  const haze = mode < 0.8;
  const cords = mode >= 0.5;
  const aspect = 1 + 0.8 * g.next();
  const th = Math.PI * g.next();
  const amp = 0.3 + 0.2 * g.next();
  const nf = 2.2 / R;
  const n1 = 2 * Math.PI * g.next();
  const n2 = 2 * Math.PI * g.next();
  const cth = Math.PI / 2 + 0.5 * g.gaussian();
  const nc = 3 + Math.floor(4 * g.next());
  const list = Array.from({ length: nc }, () => ({
    off: (g.next() * 2 - 1) * 0.7 * R,
    A: (0.05 + 0.13 * g.next()) * R,
    lam: (0.5 + 0.6 * g.next()) * R,
    ph: 2 * Math.PI * g.next(),
    w: 0.8 + g.next() + 0.02 * R,
    str: (8 + 8 * g.next()) * (g.next() < 0.5 ? -1 : 1),
  }));
  const ca = Math.cos(th);
  const sa = Math.sin(th);
  const cc = Math.cos(cth);
  const sc = Math.sin(cth);
  const fp = around(p.cx, p.cy, R * Math.max(aspect, 1.15) + 3);
  const L = newLayer(ctx, p, fp, false);
  applyField(ctx, L, fp, ssFor(R), p.contrast, true, (fx, fy, o) => {
    const dx = fx - p.cx;
    const dy = fy - p.cy;
    let m = 1;
    let add = 0;
    if (haze) {
      const u = (dx * ca + dy * sa) / aspect;
      const w = -dx * sa + dy * ca;
      const rho = Math.sqrt(u * u + w * w) / R;
      if (rho < 1) {
        const n = Math.sin(nf * dx + n1) * Math.sin(nf * dy + n2);
        const a = amp * (1 - smoothstep(0.25, 1, rho)) * (0.7 + 0.3 * n);
        m = 1 - a;
        add = a * 0.62 * bgAt(s, Math.min(s.W - 1, Math.max(0, fx | 0)), Math.min(s.H - 1, Math.max(0, fy | 0)));
      }
    }
    if (cords) {
      const along = dx * cc + dy * sc;
      const across = -dx * sc + dy * cc;
      const env = (1 - smoothstep(0.55, 1, Math.abs(along) / R)) * (1 - smoothstep(0.85, 1.1, Math.abs(across) / R));
      if (env > 0) {
        for (const c of list) {
          const sd = (across - c.off - c.A * Math.sin((2 * Math.PI * along) / c.lam + c.ph)) / c.w;
          if (sd * sd < 16) add += env * c.str * sd * Math.exp(0.5 - 0.5 * sd * sd);
        }
      }
    }
    o[0] = m;
    o[1] = add;
  });
  return L;
}

/** Chip: a conchoidal bite out of the outline (the backlight shows through) with a dark fracture rim. */
function drawChip(ctx: DrawContext, p: DefectPlan): Layer {
  const g = p.rng;
  const s = ctx.s;
  const shallow = p.hard === "low_contrast";
  const a = (p.sizePx / 2) * (shallow ? 0.6 : 1);
  const b = p.sizePx * (0.3 + 0.15 * g.next()) * (shallow ? 0.35 : 1);
  const ph1 = 2 * Math.PI * g.next();
  const ph2 = 2 * Math.PI * g.next();
  const rimW = Math.max(1.2, 0.12 * p.sizePx);
  const rimDark = 0.45 + 0.2 * g.next();
  let tx: number;
  let ty: number;
  let nx: number;
  let ny: number;
  if (p.onRim) {
    tx = 1;
    ty = 0;
    nx = 0;
    ny = 1;
  } else {
    const side = p.cx < s.cx ? -1 : 1;
    const { slope } = profileAt(s, p.cy);
    const l = Math.hypot(1, slope);
    tx = (side * slope) / l;
    ty = 1 / l;
    nx = -side / l;
    ny = slope / l;
  }
  const outside = 4 * s.sigmaE + 1.5;
  const reach = Math.hypot(a, b + rimW) + outside + 1;
  const fp = around(p.cx, p.cy, reach);
  const L = newLayer(ctx, p, fp, false);
  applyField(ctx, L, fp, ssFor(a), 1, false, (fx, fy, o) => {
    const dx = fx - p.cx;
    const dy = fy - p.cy;
    const along = dx * tx + dy * ty;
    const dep = dx * nx + dy * ny;
    o[0] = 1;
    o[1] = 0;
    const t = along / a;
    if (t <= -1 || t >= 1 || dep < -outside) return;
    const q =
      b * Math.sqrt(1 - t * t) * (1 + 0.12 * Math.sin(2.3 * Math.PI * t + ph1) + 0.06 * Math.sin(5.3 * t + ph2));
    if (dep < q) {
      o[0] = 0;
      o[1] = bgAt(s, Math.min(s.W - 1, Math.max(0, fx | 0)), Math.min(s.H - 1, Math.max(0, fy | 0)));
      return;
    }
    const taper = Math.sqrt(1 - t * t);
    o[0] = 1 - rimDark * taper * ridge(dep - q, 0.35 * rimW, 0.55 * rimW);
  });
  return L;
}

/** Deformation: the outline of one wall bulges out or caves in over the defect's height (a warped silhouette). */
function drawDeformation(ctx: DrawContext, p: DefectPlan): Layer {
  const g = p.rng;
  const s = ctx.s;
  const side = p.cx < s.cx ? -1 : 1;
  const sign = g.next() < 0.6 ? 1 : -1;
  const half = p.sizePx / 2;
  const A = sign * (p.hard === "low_contrast" ? 1 : Math.max(1.2, p.sizePx * (0.15 + 0.13 * g.next())));
  const y0 = Math.max(0, Math.floor(p.cy - half));
  const y1 = Math.min(s.H, Math.ceil(p.cy + half));
  const inner = 3.6 * s.tpx + Math.abs(A) + 3;
  const outer = Math.abs(A) + 4 * s.sigmaE + 2;
  let rMin = Number.POSITIVE_INFINITY;
  let rMax = 0;
  for (let y = y0; y < y1; y++) {
    rMin = Math.min(rMin, s.rowR[y] as number);
    rMax = Math.max(rMax, s.rowR[y] as number);
  }
  const fp: Rect =
    side > 0
      ? { x0: s.cx + rMin - inner, x1: s.cx + rMax + outer, y0, y1 }
      : { x0: s.cx - rMax - outer, x1: s.cx - rMin + inner, y0, y1 };
  const r = clipRect(fp, s.W, s.H);
  const L = newLayer(ctx, p, r, true);
  const k = Math.PI / 2 / half;
  for (let y = r.y0; y < r.y1; y++) {
    if ((s.covTB[y] as number) === 0) continue;
    const e = (y + 0.5 - p.cy) / half;
    if (e <= -1 || e >= 1) continue;
    const c = Math.cos((Math.PI / 2) * e);
    const bump = c * c;
    const dbump = -k * Math.sin(Math.PI * e);
    const rr = s.rowR[y] as number;
    const sl = s.rowSlope[y] as number;
    const r2 = rr + A * bump;
    const sl2 = sl + A * dbump;
    for (let x = r.x0; x < r.x1; x++) {
      const clean = sceneValue(s, x, y, rr, rr, sl, sl);
      const warped = side < 0 ? sceneValue(s, x, y, r2, rr, sl2, sl) : sceneValue(s, x, y, rr, r2, sl, sl2);
      const d = warped - clean;
      if (d !== 0) put(ctx, L, x, y, (ctx.S[y * s.W + x] as number) + d);
    }
  }
  return L;
}

/** Draws one planned defect into ctx.S and returns what it changed. */
export function drawDefect(ctx: DrawContext, p: DefectPlan): Layer {
  switch (p.cls) {
    case "bubble":
      return drawBubble(ctx, p);
    case "stone":
      return drawStone(ctx, p);
    case "crack":
      return drawCrack(ctx, p);
    case "scratch":
      return drawScratch(ctx, p);
    case "stain":
      return drawStain(ctx, p);
    case "cloudiness":
      return drawCloudiness(ctx, p);
    case "chip":
      return drawChip(ctx, p);
    case "deformation":
      return drawDeformation(ctx, p);
  }
}
