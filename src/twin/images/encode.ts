import sharp from "sharp";
import { ValidationError } from "../../core/errors.js";
import { DEFECT_CLASSES, type DefectClass } from "../../core/types.js";
import type { RenderResult } from "./render.js";

function checkSize(what: string, data: Uint8Array, w: number, h: number): void {
  if (!Number.isInteger(w) || !Number.isInteger(h) || w < 1 || h < 1 || data.length !== w * h) {
    throw new ValidationError(`${what}: ${data.length} bytes do not make a ${w}×${h} image`, [
      { path: "length", message: `must be width × height = ${w * h}` },
    ]);
  }
}

/** PNG (8-bit grey) of a 0/1 mask, written as 0/255 so that it can be looked at; read it back as `value > 127`. */
export async function encodeMaskPng(mask: Uint8Array, width: number, height: number): Promise<Buffer> {
  checkSize("encodeMaskPng", mask, width, height);
  const px = Buffer.allocUnsafe(mask.length);
  for (let i = 0; i < mask.length; i++) px[i] = mask[i] ? 255 : 0;
  return sharp(px, { raw: { width, height, channels: 1 } })
    .toColourspace("b-w")
    .png({ compressionLevel: 9 })
    .toBuffer();
}

/** PNG (8-bit grey) of a label map with its values as they are: 0 background, 1..8 the DEFECT_CLASSES index + 1. */
export async function encodeLabelPng(label: Uint8Array, width: number, height: number): Promise<Buffer> {
  checkSize("encodeLabelPng", label, width, height);
  return sharp(Buffer.from(label.buffer, label.byteOffset, label.length), { raw: { width, height, channels: 1 } })
    .toColourspace("b-w")
    .png({ compressionLevel: 9 })
    .toBuffer();
}

/** Display colour of each class in overlays. */
export const CLASS_COLORS: Readonly<Record<DefectClass, [number, number, number]>> = {
  crack: [230, 30, 30],
  bubble: [0, 200, 230],
  chip: [255, 140, 0],
  cloudiness: [170, 120, 255],
  deformation: [240, 0, 200],
  stain: [200, 170, 0],
  stone: [40, 80, 255],
  scratch: [0, 200, 60],
};

/**
 * RGB PNG for a person to check a render: the image with the label map tinted in class colours (outlines opaque,
 * insides at 35 %) and each defect's box drawn in its class colour.
 */
export async function encodeOverlayPng(r: RenderResult): Promise<Buffer> {
  const { width: W, height: H, channels: C, pixels, label } = r;
  const out = Buffer.allocUnsafe(W * H * 3);
  for (let i = 0; i < W * H; i++) {
    for (let ch = 0; ch < 3; ch++) out[i * 3 + ch] = pixels[C === 1 ? i : i * 3 + ch] as number;
  }
  const colorOf = (v: number) => CLASS_COLORS[DEFECT_CLASSES[v - 1] as DefectClass];
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const i = y * W + x;
      const v = label[i] as number;
      if (v === 0) continue;
      const edge =
        x === 0 ||
        y === 0 ||
        x === W - 1 ||
        y === H - 1 ||
        label[i - 1] !== v ||
        label[i + 1] !== v ||
        label[i - W] !== v ||
        label[i + W] !== v;
      const a = edge ? 1 : 0.35;
      const col = colorOf(v);
      for (let ch = 0; ch < 3; ch++) {
        const o = i * 3 + ch;
        out[o] = Math.round((out[o] as number) * (1 - a) + (col[ch] as number) * a);
      }
    }
  }
  for (const b of r.boxes) {
    if (!b.visible) continue;
    const col = CLASS_COLORS[b.class];
    const x0 = Math.max(0, b.x0 - 3);
    const y0 = Math.max(0, b.y0 - 3);
    const x1 = Math.min(W - 1, b.x1 + 2);
    const y1 = Math.min(H - 1, b.y1 + 2);
    const dot = (x: number, y: number) => {
      // Dashed, so the defect under the box stays visible.
      if (((x + y) & 3) > 1) return;
      for (let ch = 0; ch < 3; ch++) out[(y * W + x) * 3 + ch] = col[ch] as number;
    };
    for (let x = x0; x <= x1; x++) {
      dot(x, y0);
      dot(x, y1);
    }
    for (let y = y0; y <= y1; y++) {
      dot(x0, y);
      dot(x1, y);
    }
  }
  return sharp(out, { raw: { width: W, height: H, channels: 3 } })
    .png()
    .toBuffer();
}
