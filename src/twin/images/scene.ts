/*
 * The defect-free MIK-1 scene: a glass container seen from the side against a diffuse backlight panel, standing on a
 * dark conveyor. Under backlight the body is bright where light crosses both walls at normal incidence and dark in a
 * band along the silhouette, where grazing rays are refracted away from the lens; the finish rings, the shoulder and
 * the thick base are darker. The optical blur of this clean scene is applied analytically (edges follow Φ(d/σ), the
 * texture is band-limited), so only the defect layers need a numerical blur (render.ts).
 */
import { ValidationError } from "../../core/errors.js";
import type { Rng } from "../rng.js";
import type { Glass, Product, ResolvedOptions } from "./options.js";
import { phi, ridge, smoothstep, ValueNoise } from "./raster.js";

interface ProductSpec {
  heightMm: number;
  /** Largest radius (body), mm. */
  radiusMm: number;
  /** Wall thickness, mm: sets the width of the dark band along the silhouette. */
  wallMm: number;
  /** Outline radius (mm) at v = 0 (top of the finish) .. 1 (base). */
  radius(v: number): number;
  /** Transmission factor of the row at v (finish rings, thick base). */
  shade(v: number): number;
}

const smoother = (t: number) => (t <= 0 ? 0 : t >= 1 ? 1 : t * t * t * (t * (6 * t - 15) + 10));

function heel(v: number, start: number, heightMm: number, radiusMm: number): number {
  const hr = (1 - start) * heightMm;
  const dv = Math.min(v - start, 1 - start) * heightMm;
  return radiusMm - hr + Math.sqrt(Math.max(0, hr * hr - dv * dv));
}

/** A 330 ml long-neck bottle: 240 mm tall, 66 mm across, 3 mm wall. */
const BOTTLE: ProductSpec = {
  heightMm: 240,
  radiusMm: 33,
  wallMm: 3,
  radius(v) {
    if (v < 0.08) return 14 + 1.4 * ridge(v, 0.01, 0.011) + 1.1 * ridge(v, 0.056, 0.008);
    if (v < 0.3) return 14 + ((v - 0.08) / 0.22) * 1.5;
    if (v < 0.47) return 15.5 + 17.5 * smoother((v - 0.3) / 0.17);
    if (v < 0.955) return 33;
    return heel(v, 0.955, 240, 33);
  },
  shade(v) {
    const rings = 1 - 0.45 * ridge(v, 0.01, 0.012) - 0.35 * ridge(v, 0.056, 0.01) - 0.15 * ridge(v, 0.079, 0.005);
    return rings * (1 - 0.55 * smoothstep(0.935, 1, v));
  },
};

/** A 500 ml jar: 130 mm tall, 84 mm across, 4 mm wall, three thread turns on a 70 mm finish. */
const JAR: ProductSpec = {
  heightMm: 130,
  radiusMm: 42,
  wallMm: 4,
  radius(v) {
    const threads = 1.3 * (ridge(v, 0.035, 0.009) + ridge(v, 0.07, 0.009) + ridge(v, 0.105, 0.009));
    if (v < 0.16) return 35 - 1.5 * smoothstep(0.125, 0.145, v) + threads;
    if (v < 0.25) return 33.5 + 8.5 * smoother((v - 0.16) / 0.09);
    if (v < 0.94) return 42;
    return heel(v, 0.94, 130, 42);
  },
  shade(v) {
    const t = 0.28 * (ridge(v, 0.035, 0.012) + ridge(v, 0.07, 0.012) + ridge(v, 0.105, 0.012));
    return (1 - 0.4 * ridge(v, 0.008, 0.012) - t - 0.2 * ridge(v, 0.14, 0.01)) * (1 - 0.55 * smoothstep(0.91, 1, v));
  },
};

export const PRODUCTS: Readonly<Record<Product, ProductSpec>> = { bottle: BOTTLE, jar: JAR };

/** Central transmission of the two walls, and colour (luminance-normalised RGB gains) per glass. */
const GLASS: Readonly<Record<Glass, { tc: number; chroma: [number, number, number] }>> = {
  flint: { tc: 0.84, chroma: [0.97, 1.01, 1.0] },
  green: { tc: 0.6, chroma: [0.62, 1.2, 0.72] },
  amber: { tc: 0.45, chroma: [1.55, 0.92, 0.32] },
};

/** Fraction of the frame height the item fills at the default scale. */
export const DEFAULT_FILL = 0.86;

export interface Scene {
  W: number;
  H: number;
  product: Product;
  glass: Glass;
  spec: ProductSpec;
  mmPerPx: number;
  /** Item axis (px) and the top of the finish / the base (px, continuous). */
  cx: number;
  yTop: number;
  yBot: number;
  itemH: number;
  /** Wall thickness in px. */
  tpx: number;
  /** Edge blur: √(σ² + 1/12), the optical blur and the pixel's own box filter. */
  sigmaE: number;
  tc: number;
  chroma: [number, number, number];
  /** Per row: clean outline radius (px), its slope dr/dy, shade, top/bottom coverage, ripple, backlight, conveyor. */
  rowR: Float32Array;
  rowSlope: Float32Array;
  rowShade: Float32Array;
  covTB: Float32Array;
  rowRipple: Float32Array;
  bgRow: Float32Array;
  convRow: Float32Array;
  /** Per column: backlight, conveyor. */
  bgCol: Float32Array;
  convCol: Float32Array;
  b0: number;
  convPeriod: number;
  convPhase: number;
  seamX: number;
  seamAmp: number;
  texA: ValueNoise;
  texB: ValueNoise;
}

/** Outline radius (px) and slope at a continuous row position py (px). */
export function profileAt(s: Scene, py: number): { r: number; slope: number } {
  const v = Math.min(1, Math.max(0, (py - s.yTop) / s.itemH));
  const dv = 1e-4;
  const r = s.spec.radius(v) / s.mmPerPx;
  const a = s.spec.radius(Math.max(0, v - dv));
  const b = s.spec.radius(Math.min(1, v + dv));
  const span = Math.min(1, v + dv) - Math.max(0, v - dv);
  const slope = (b - a) / span / s.spec.heightMm;
  return { r, slope: Math.max(-60, Math.min(60, slope)) };
}

/** Builds the scene of one item; draws from `rng` in a fixed order whatever the options. */
export function buildScene(o: ResolvedOptions, rng: Rng): Scene {
  const W = o.width;
  const H = o.height;
  const pr = rng.next();
  const pg = rng.next();
  const product: Product = o.product === "mixed" ? (pr < 0.6 ? "bottle" : "jar") : o.product;
  const glass: Glass = o.glass === "mixed" ? (pg < 0.5 ? "flint" : pg < 0.8 ? "green" : "amber") : o.glass;
  const spec = PRODUCTS[product];
  const fitMmPerPx = Math.max(spec.heightMm / (DEFAULT_FILL * H), (2 * spec.radiusMm) / (0.8 * W));
  const mmPerPx = o.mmPerPx ?? fitMmPerPx;
  const itemH = spec.heightMm / mmPerPx;
  const itemW = (2 * spec.radiusMm) / mmPerPx;
  if (itemH > H - 2 || itemW > W - 2) {
    const need = Math.max(spec.heightMm / (H - 2), (2 * spec.radiusMm) / (W - 2));
    throw new ValidationError(
      `invalid render options: mmPerPx: ${mmPerPx} mm/px makes the ${spec.heightMm} mm ${product} ` +
        `${Math.round(itemW)}×${Math.round(itemH)} px, more than the ${W}×${H} frame; use at least ${need.toFixed(3)}`,
      [{ path: "mmPerPx", message: `must be ≥ ${need.toFixed(3)} for a ${product} in ${W}×${H}` }],
    );
  }
  const jx = rng.next() * 2 - 1;
  const slackX = (W - itemW) / 2 - 1;
  const cx = W / 2 + jx * Math.min(0.02 * W, slackX);
  const yTop = (H - itemH) * 0.45;
  const yBot = yTop + itemH;
  const sigmaE = Math.sqrt(o.blurSigma * o.blurSigma + 1 / 12);

  const b0 = 206 + 12 * rng.next();
  const gx = (rng.next() * 2 - 1) * 0.06;
  const gy = (rng.next() * 2 - 1) * 0.05;
  const vig = 0.08 + 0.08 * rng.next();
  const f1 = 14 + 16 * rng.next();
  const p1 = 2 * Math.PI * rng.next();
  const f2 = 40 + 30 * rng.next();
  const p2 = 2 * Math.PI * rng.next();
  const seamOn = rng.next() < 0.5;
  const seamU = (rng.next() * 2 - 1) * 0.6;
  const convPeriod = Math.max(6, (12 + 6 * rng.next()) / mmPerPx);
  const convPhase = rng.next() * convPeriod;
  const textureCell = Math.max(4, itemH / 12);
  const texA = new ValueNoise(rng, W, H, textureCell);
  const texB = new ValueNoise(rng, W, H, Math.max(2, textureCell / 3.5));

  const rowR = new Float32Array(H);
  const rowSlope = new Float32Array(H);
  const rowShade = new Float32Array(H);
  const covTB = new Float32Array(H);
  const rowRipple = new Float32Array(H);
  const bgRow = new Float32Array(H);
  const convRow = new Float32Array(H);
  const bgCol = new Float32Array(W);
  const convCol = new Float32Array(W);
  const convTop = yBot;
  const convBot = Math.min(H + 10, yBot + 0.06 * H);
  const g = GLASS[glass];
  const scene: Scene = {
    W,
    H,
    product,
    glass,
    spec,
    mmPerPx,
    cx,
    yTop,
    yBot,
    itemH,
    tpx: spec.wallMm / mmPerPx,
    sigmaE,
    tc: g.tc,
    chroma: g.chroma,
    rowR,
    rowSlope,
    rowShade,
    covTB,
    rowRipple,
    bgRow,
    convRow,
    bgCol,
    convCol,
    b0,
    convPeriod,
    convPhase,
    seamX: 0,
    seamAmp: seamOn ? 0.05 : 0,
    texA,
    texB,
  };
  const bodyR = spec.radiusMm / mmPerPx;
  scene.seamX = cx + seamU * bodyR;
  for (let y = 0; y < H; y++) {
    const py = y + 0.5;
    const v = Math.min(1, Math.max(0, (py - yTop) / itemH));
    const { r, slope } = profileAt(scene, py);
    rowR[y] = r;
    rowSlope[y] = slope;
    // The shoulder and the heel tilt the surface: light is refracted away from the lens.
    rowShade[y] = spec.shade(v) / (1 + 3 * slope * slope);
    covTB[y] = phi((py - yTop) / sigmaE) * phi((yBot - py) / sigmaE);
    rowRipple[y] = 0.007 * Math.sin(2 * Math.PI * v * f1 + p1) + 0.004 * Math.sin(2 * Math.PI * v * f2 + p2);
    const yn = (py / H) * 2 - 1;
    bgRow[y] = (1 + gy * yn) * (1 - vig * yn * yn);
    convRow[y] = phi((py - convTop) / sigmaE) * phi((convBot - py) / sigmaE);
  }
  for (let x = 0; x < W; x++) {
    const xn = ((x + 0.5) / W) * 2 - 1;
    bgCol[x] = (1 + gx * xn) * (1 - vig * xn * xn);
    convCol[x] = 26 + 14 * (0.5 + 0.5 * Math.cos((2 * Math.PI * (x + 0.5 + convPhase)) / convPeriod));
  }
  return scene;
}

/** Conveyor chain under the item: dark links with a period of 12–18 mm. */
function conveyorValue(s: Scene, x: number): number {
  return s.convCol[x] as number;
}

/** What the camera sees at (x, y) with no glass in front: backlight panel or conveyor. */
export function bgAt(s: Scene, x: number, y: number): number {
  const panel = s.b0 * (s.bgRow[y] as number) * (s.bgCol[x] as number);
  const c = s.convRow[y] as number;
  return c === 0 ? panel : panel + c * (conveyorValue(s, x) - panel);
}

/** Clean glass coverage (0..1) of pixel (x, y): defects inside the glass are clipped by it. */
export function alphaAt(s: Scene, x: number, y: number): number {
  const tb = s.covTB[y] as number;
  if (tb === 0) return 0;
  const sl = s.rowSlope[y] as number;
  const dn = ((s.rowR[y] as number) - Math.abs(x + 0.5 - s.cx)) / Math.sqrt(1 + sl * sl);
  return tb * phi(dn / s.sigmaE);
}

/**
 * Value of pixel (x, y) of the scene with the outline of row y at radius rL / rR (px) and slopes slL / slR on the left
 * and right: the clean scene passes the row's own radius; a deformation passes a warped one (defects.ts).
 */
export function sceneValue(s: Scene, x: number, y: number, rL: number, rR: number, slL: number, slR: number): number {
  const bg = bgAt(s, x, y);
  const tb = s.covTB[y] as number;
  if (tb === 0) return bg;
  const px = x + 0.5;
  const py = y + 0.5;
  const dx = px - s.cx;
  const left = dx < 0;
  const r = left ? rL : rR;
  const sl = left ? slL : slR;
  const dn = (r - Math.abs(dx)) / Math.sqrt(1 + sl * sl);
  const cov = tb * phi(dn / s.sigmaE);
  if (cov === 0) return bg;
  const t = s.tpx;
  const dnc = Math.max(dn, 0);
  const band = smoothstep(1.7 * t, 0.1 * t, dnc);
  const glint = ridge(dnc, 2.1 * t, 0.35 * t + 0.5);
  const u = dx / (s.rowR[y] as number);
  const lens = 1 + 0.07 * (1 - Math.min(1, u * u));
  const tex =
    1 +
    0.035 * s.texA.at(px, py) +
    0.015 * s.texB.at(px, py) +
    (s.rowRipple[y] as number) -
    s.seamAmp * ridge(px, s.seamX, 0.9);
  const shade = s.rowShade[y] as number;
  const T = s.tc * shade * (lens * tex * (1 - 0.88 * band) + 0.22 * glint);
  return bg * (1 - cov + cov * T);
}

/** Renders the clean scene into `out` (W×H grey levels, before noise). */
export function renderBase(s: Scene, out: Float32Array): void {
  const { W, H } = s;
  const reach = 4 * s.sigmaE + 1;
  for (let y = 0; y < H; y++) {
    const row = y * W;
    const panelRow = s.b0 * (s.bgRow[y] as number);
    const conv = s.convRow[y] as number;
    if (conv === 0) {
      for (let x = 0; x < W; x++) out[row + x] = panelRow * (s.bgCol[x] as number);
    } else {
      for (let x = 0; x < W; x++) {
        const panel = panelRow * (s.bgCol[x] as number);
        out[row + x] = panel + conv * (conveyorValue(s, x) - panel);
      }
    }
    if ((s.covTB[y] as number) === 0) continue;
    const r = s.rowR[y] as number;
    const sl = s.rowSlope[y] as number;
    const x0 = Math.max(0, Math.floor(s.cx - r - reach));
    const x1 = Math.min(W, Math.ceil(s.cx + r + reach));
    for (let x = x0; x < x1; x++) out[row + x] = sceneValue(s, x, y, r, r, sl, sl);
  }
}

/** Pixel position of item coordinates (x across the item at that height, y from the finish top to the base). */
export function itemToPixel(s: Scene, x: number, y: number): { px: number; py: number; r: number } {
  const py = s.yTop + Math.min(0.995, Math.max(0.005, y)) * s.itemH;
  const { r } = profileAt(s, py);
  return { px: s.cx + (2 * x - 1) * 0.92 * r, py, r };
}

/** Item coordinates of a pixel position (inverse of itemToPixel). */
export function pixelToItem(s: Scene, px: number, py: number): { x: number; y: number } {
  const y = Math.min(1, Math.max(0, (py - s.yTop) / s.itemH));
  const { r } = profileAt(s, py);
  const x = Math.min(1, Math.max(0, ((px - s.cx) / (0.92 * r) + 1) / 2));
  return { x, y };
}
