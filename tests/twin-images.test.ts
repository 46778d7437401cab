import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { ValidationError } from "../src/core/errors.js";
import {
  DEFECT_CLASSES,
  DEFECT_SEVERITY,
  type DefectClass,
  type InspectedDefect,
  type InspectionEvent,
} from "../src/core/types.js";
import {
  encodeLabelPng,
  encodeMaskPng,
  LABEL_PRECEDENCE,
  type RenderOptions,
  type RenderResult,
  renderClean,
  renderInspection,
  sampleInspection,
} from "../src/twin/images/index.js";

const d = (cls: DefectClass, size_mm: number, x: number, y: number): InspectedDefect => ({
  class: cls,
  size_mm,
  x,
  y,
  severity: DEFECT_SEVERITY[cls],
});
const ev = (defects: InspectedDefect[], item_id = 1): InspectionEvent => ({
  item_id,
  ts: Date.UTC(2026, 0, 1),
  defects,
  ok: defects.length === 0,
});

/** One defect of every class, two of them overlapping a third (stain under a bubble, crack across cloudiness). */
const ALL = ev(
  [
    d("crack", 12, 0.35, 0.62),
    d("bubble", 3, 0.62, 0.5),
    d("chip", 5, 0.1, 0.3),
    d("cloudiness", 15, 0.4, 0.64),
    d("deformation", 14, 0.9, 0.75),
    d("stain", 8, 0.62, 0.52),
    d("stone", 2.5, 0.7, 0.85),
    d("scratch", 16, 0.5, 0.9),
  ],
  7,
);
const QUIET: RenderOptions = { width: 384, height: 384, format: "raw", noise: 0 };

function anyMask(r: RenderResult): Uint8Array {
  const u = new Uint8Array(r.width * r.height);
  for (const m of Object.values(r.masks)) for (let i = 0; i < u.length; i++) u[i] = (u[i] as number) | (m[i] as number);
  return u;
}

/** Per pixel, the largest difference over channels between two renders. */
function diff(a: RenderResult, b: RenderResult): Int16Array {
  const n = a.width * a.height;
  const C = a.channels;
  const out = new Int16Array(n);
  for (let i = 0; i < n; i++) {
    let m = 0;
    for (let c = 0; c < C; c++)
      m = Math.max(m, Math.abs((a.pixels[i * C + c] as number) - (b.pixels[i * C + c] as number)));
    out[i] = m;
  }
  return out;
}

function stats(mask: Uint8Array, w: number): { area: number; cx: number; cy: number } {
  let area = 0;
  let sx = 0;
  let sy = 0;
  for (let i = 0; i < mask.length; i++) {
    if (!mask[i]) continue;
    area++;
    sx += (i % w) + 0.5;
    sy += Math.floor(i / w) + 0.5;
  }
  return { area, cx: sx / area, cy: sy / area };
}

function throwsValidation(fn: () => Promise<unknown>, path: string, re: RegExp): Promise<void> {
  return fn().then(
    () => assert.unreachable(`expected a ValidationError at ${path}`),
    (err: unknown) => {
      assert.instance(err, ValidationError);
      const e = err as ValidationError;
      assert.ok(
        e.issues.some((i) => i.path === path),
        `issue paths ${JSON.stringify(e.issues)} should include ${path}`,
      );
      assert.match(e.message, re);
    },
  );
}

test("the same seed and item give byte-identical image, masks and label; another item or seed does not", async () => {
  const opts: RenderOptions = { width: 256, height: 256, format: "png" };
  const a = await renderInspection(ALL, opts);
  const b = await renderInspection(ALL, opts);
  assert.ok(a.image.equals(b.image), "PNG bytes differ between two renders");
  for (const c of DEFECT_CLASSES)
    assert.equal(Buffer.compare(a.masks[c] as Uint8Array, b.masks[c] as Uint8Array), 0, c);
  assert.equal(Buffer.compare(a.label, b.label), 0);
  assert.equal(a.boxes, b.boxes);
  const jpegA = await renderInspection(ALL, { ...opts, format: "jpeg", color: "rgb" });
  const jpegB = await renderInspection(ALL, { ...opts, format: "jpeg", color: "rgb" });
  assert.ok(jpegA.image.equals(jpegB.image), "JPEG bytes differ between two renders");
  const other = await renderInspection({ ...ALL, item_id: 8 }, opts);
  assert.not.ok(other.pixels.equals(a.pixels), "another item must look different (texture, noise, shapes)");
  const seed = await renderInspection(ALL, { ...opts, seed: 1 });
  assert.not.ok(seed.pixels.equals(a.pixels), "another seed must look different");
});

test("mask rule, noise off: mask pixels differ from the clean render by more than the threshold, all others do not", async () => {
  for (const o of [
    QUIET,
    { ...QUIET, color: "rgb" as const, glass: "amber" as const },
    { ...QUIET, maskThreshold: 8 },
  ]) {
    const r = await renderInspection(ALL, o);
    const clean = await renderClean(ALL, o);
    const T = o.maskThreshold ?? 2;
    assert.is(r.maskThreshold, T);
    const dv = diff(r, clean);
    const u = anyMask(r);
    let inside = 0;
    for (let i = 0; i < u.length; i++) {
      const m = u[i] === 1;
      if (m) inside++;
      if (m && !((dv[i] as number) > T)) assert.unreachable(`mask pixel ${i} differs by only ${dv[i]} (T ${T})`);
      if (!m && (dv[i] as number) > T) assert.unreachable(`pixel ${i} differs by ${dv[i]} > ${T} outside every mask`);
      if ((r.label[i] !== 0) !== m) assert.unreachable(`label map and masks disagree at ${i}`);
    }
    assert.ok(inside > 500, `masks too small (${inside} px)`);
    for (const b of r.boxes) assert.ok(b.visible && b.area_px > 0, `${b.class} drew nothing visible`);
  }
});

test("mask rule: pixels that only the sum of faint overlapping defects makes visible are still masked", async () => {
  // Four faint hazes and a stain on one spot with a high threshold: at their soft edges no single one changes a
  // pixel by more than T/2, but together they change some by more than T (this item has a handful of such pixels).
  const e = ev(
    [
      d("cloudiness", 20, 0.5, 0.6),
      d("cloudiness", 18, 0.52, 0.61),
      d("stain", 16, 0.48, 0.6),
      d("cloudiness", 22, 0.5, 0.62),
    ],
    6,
  );
  const o: RenderOptions = { ...QUIET, maskThreshold: 10, hard: 1, hardKinds: ["low_contrast"] };
  const r = await renderInspection(e, o);
  const dv = diff(r, await renderClean(e, o));
  const u = anyMask(r);
  for (let i = 0; i < u.length; i++) {
    if ((u[i] === 1) !== (dv[i] as number) > 10) assert.unreachable(`pixel ${i}: mask ${u[i]}, differs by ${dv[i]}`);
  }
});

test("mask rule with the same sensor noise in both renders: outside the masks only rounding differs", async () => {
  const o: RenderOptions = { width: 384, height: 384, format: "png" };
  const r = await renderInspection(ALL, o);
  const clean = await renderClean(ALL, o);
  const dv = diff(r, clean);
  const u = anyMask(r);
  let inside = 0;
  let strong = 0;
  for (let i = 0; i < u.length; i++) {
    if (u[i]) {
      inside++;
      if ((dv[i] as number) >= 2) strong++;
    } else if ((dv[i] as number) > 3) assert.unreachable(`pixel ${i} differs by ${dv[i]} outside every mask`);
  }
  assert.ok(strong / inside > 0.99, `only ${strong}/${inside} mask pixels still differ with noise`);
  // And the noise is really there: the clean render is not flat.
  const flat = await renderClean(ALL, { ...o, noise: 0 });
  assert.ok(
    diff(clean, flat).some((v) => v >= 3),
    "noise option had no effect",
  );
});

test("renderClean is exactly the render of the same item with no defects", async () => {
  const o: RenderOptions = { width: 200, height: 300, format: "png", color: "rgb" };
  const clean = await renderClean(ALL, o);
  const none = await renderInspection({ ...ALL, defects: [] }, o);
  assert.ok(clean.image.equals(none.image));
  assert.equal(clean.boxes, []);
  assert.ok(clean.label.every((v) => v === 0));
});

test("every class draws a non-empty mask at its position, on the side and at the height given", async () => {
  const W = 512;
  const H = 512;
  for (const cls of DEFECT_CLASSES) {
    for (const [x, y] of [
      [0.25, 0.55],
      [0.75, 0.8],
    ] as const) {
      const size = { crack: 10, bubble: 3, chip: 5, cloudiness: 14, deformation: 14, stain: 8, stone: 3, scratch: 14 }[
        cls
      ];
      const r = await renderInspection(ev([d(cls, size, x, y)], 3), { width: W, height: H, format: "raw" });
      const m = r.masks[cls] as Uint8Array;
      const st = stats(m, W);
      assert.ok(st.area > 0, `${cls} mask is empty`);
      assert.equal(Object.keys(r.masks), [cls]);
      const box = r.boxes[0]!;
      assert.is(box.area_px, st.area);
      // Where the position should land: the bottle (240 mm, 33 mm body radius) stands centred (±2 % jitter), its
      // finish at 45 % of the top margin; x runs across the body at that height, wall to wall.
      const itemH = 240 / r.mmPerPx;
      const yTop = (H - itemH) * 0.45;
      const rBody = 33 / r.mmPerPx;
      const wall = cls === "chip" || cls === "deformation";
      const ex = W / 2 + (wall ? (x < 0.5 ? -1 : 1) : (2 * x - 1) * 0.92) * rBody;
      const ey = yTop + y * itemH;
      const jitter = 0.02 * W + 1;
      assert.ok(
        Math.abs(box.cx - ex) <= jitter && Math.abs(box.cy - ey) <= 1,
        `${cls} anchor ${box.cx},${box.cy} vs ${ex},${ey}`,
      );
      // Lines wander (crack) or are long (scratch): the mask centroid is within half the size of the anchor.
      const tol = Math.max(3, 0.5 * box.size_px);
      assert.ok(
        Math.hypot(st.cx - box.cx, st.cy - box.cy) <= tol,
        `${cls} mask centroid ${st.cx.toFixed(1)},${st.cy.toFixed(1)} is far from ${box.cx},${box.cy}`,
      );
      assert.ok(x < 0.5 ? st.cx < W / 2 : st.cx > W / 2, `${cls} on the wrong side`);
      // Box contains the mask.
      for (let i = 0; i < m.length; i++) {
        if (!m[i]) continue;
        const px = i % W;
        const py = Math.floor(i / W);
        if (px < box.x0 || px >= box.x1 || py < box.y0 || py >= box.y1)
          assert.unreachable(`${cls} mask outside its box`);
      }
    }
  }
});

test("each class has its look: opaque stone, bubble rim and ring, chip lets the backlight through, thin lines", async () => {
  const o: RenderOptions = { width: 512, height: 512, format: "raw", noise: 0 };
  const look = async (cls: DefectClass, size: number, x = 0.6, y = 0.6) => {
    const e = ev([d(cls, size, x, y)], 11);
    const r = await renderInspection(e, o);
    const c = await renderClean(e, o);
    const m = r.masks[cls] as Uint8Array;
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < m.length; i++) {
      if (!m[i]) continue;
      const v = (r.pixels[i] as number) - (c.pixels[i] as number);
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    return { lo, hi, box: r.boxes[0]!, clean: c };
  };
  const stone = await look("stone", 4);
  assert.ok(stone.lo < -90, `stone not dark/opaque (${stone.lo})`);
  const bubble = await look("bubble", 5);
  assert.ok(
    bubble.hi > 15 && bubble.lo < -30,
    `bubble needs a bright rim and a dark ring (${bubble.lo}..${bubble.hi})`,
  );
  const chip = await look("chip", 6, 0.9, 0.6);
  assert.ok(chip.hi > 60, `chip should open the outline to the backlight (${chip.hi})`);
  const deform = await look("deformation", 14, 0.9, 0.7);
  assert.ok(deform.hi > 60 || deform.lo < -60, "deformation should move the outline");
  for (const cls of ["crack", "scratch"] as const) {
    const l = await look(cls, 20);
    const b = l.box;
    const extent = Math.hypot(b.x1 - b.x0, b.y1 - b.y0);
    assert.ok(b.area_px / extent < 7, `${cls} should be thin (${b.area_px} px over ${extent.toFixed(0)} px)`);
  }
  for (const cls of ["cloudiness", "stain"] as const) {
    const l = await look(cls, 14);
    assert.ok(Math.max(-l.lo, l.hi) < 70, `${cls} should be soft and low-contrast (${l.lo}..${l.hi})`);
  }
});

test("size_mm scales the mask: area ∝ size² for blobs, ∝ length for streaks", async () => {
  const o: RenderOptions = { width: 512, height: 512, format: "raw", noise: 0, mmPerPx: 0.5 };
  const area = async (cls: DefectClass, size: number) =>
    (await renderInspection(ev([d(cls, size, 0.5, 0.7)], 5), o)).boxes[0]!.area_px;
  // Blobs 10–20 px across, then twice that: the blur adds a rim of constant width, so the ratio is a little under 4.
  for (const [cls, mm] of [
    ["bubble", 9],
    ["stone", 5],
    ["stain", 8],
  ] as const) {
    const a1 = await area(cls, mm);
    const a2 = await area(cls, 2 * mm);
    assert.ok(a2 / a1 > 3 && a2 / a1 < 5, `${cls}: ${a1} → ${a2} px for 2× size`);
  }
  const s1 = await area("scratch", 10);
  const s2 = await area("scratch", 20);
  assert.ok(s2 / s1 > 1.5 && s2 / s1 < 2.6, `scratch: ${s1} → ${s2} px for 2× length`);
  const r = await renderInspection(ev([d("bubble", 3, 0.5, 0.7)], 5), o);
  assert.is(r.mmPerPx, 0.5);
  assert.is(r.boxes[0]!.size_px, 6);
});

test("one defect does not change how another one looks", async () => {
  const o: RenderOptions = { width: 384, height: 384, format: "raw" };
  const a = await renderInspection(ev([d("stone", 3, 0.3, 0.6)], 9), o);
  const b = await renderInspection(ev([d("stone", 3, 0.3, 0.6), d("bubble", 3, 0.7, 0.9)], 9), o);
  assert.equal(b.boxes[0], a.boxes[0]);
});

test("overlapping defects: both masks keep their pixels, the label map follows LABEL_PRECEDENCE", async () => {
  const e = ev([d("cloudiness", 16, 0.5, 0.6), d("crack", 10, 0.5, 0.6), d("bubble", 3, 0.52, 0.61)], 4);
  const r = await renderInspection(e, QUIET);
  const cloud = r.masks.cloudiness as Uint8Array;
  const crack = r.masks.crack as Uint8Array;
  const bubble = r.masks.bubble as Uint8Array;
  let both = 0;
  for (let i = 0; i < cloud.length; i++) {
    const present = DEFECT_CLASSES.filter((c) => r.masks[c]?.[i]);
    if (present.length === 0) continue;
    if (cloud[i] && crack[i]) both++;
    const expect = LABEL_PRECEDENCE.find((c) => present.includes(c)) as DefectClass;
    if (r.label[i] !== DEFECT_CLASSES.indexOf(expect) + 1)
      assert.unreachable(`label ${r.label[i]} at ${i}, want ${expect}`);
  }
  assert.ok(both > 0, "crack and cloudiness masks should overlap");
  assert.ok(stats(bubble, r.width).area > 0);
});

test("hard cases: small, low contrast and overlap, by probability and kind", async () => {
  const base: RenderOptions = { width: 512, height: 512, format: "raw", noise: 0 };
  const e = ev([d("stone", 5, 0.4, 0.6), d("bubble", 3, 0.6, 0.8), d("scratch", 15, 0.5, 0.3)], 12);
  const small = await renderInspection(e, { ...base, hard: 1, hardKinds: ["small"] });
  for (const b of small.boxes) {
    assert.is(b.hard, "small");
    assert.ok(b.size_px <= 9 && b.visible, `${b.class} small case ${b.size_px} px, visible ${b.visible}`);
  }
  const normal = await renderInspection(e, base);
  const [sa, na] = [small.boxes[0]!.area_px, normal.boxes[0]!.area_px];
  assert.ok(sa < 0.35 * na, `small stone covers ${sa} px, the normal one ${na} px`);
  const low = await renderInspection(e, { ...base, hard: 1, hardKinds: ["low_contrast"] });
  const clean = await renderClean(e, base);
  const peak = (r: RenderResult) => {
    const m = r.masks.stone as Uint8Array;
    let p = 0;
    for (let i = 0; i < m.length; i++)
      if (m[i]) p = Math.max(p, Math.abs((r.pixels[i] as number) - (clean.pixels[i] as number)));
    return p;
  };
  assert.ok(peak(low) < 30 && peak(low) > 4 && peak(normal) > 100, `stone contrast ${peak(normal)} → ${peak(low)}`);
  const over = await renderInspection(e, { ...base, hard: 1, hardKinds: ["overlap"] });
  assert.is(over.boxes[0]!.hard, null, "the first defect has nothing to overlap");
  for (const b of over.boxes.slice(1)) {
    assert.is(b.hard, "overlap");
    const first = over.boxes[0]!;
    assert.ok(Math.hypot(b.cx - first.cx, b.cy - first.cy) <= 0.35 * first.size_px + 1, `${b.class} not on the stone`);
  }
  const none = await renderInspection(e, { ...base, hard: 0 });
  assert.ok(none.boxes.every((b) => b.hard === null));
  const some = await Promise.all(
    [20, 21, 22, 23, 24, 25].map((id) => renderInspection({ ...e, item_id: id }, { ...base, hard: 0.5 })),
  );
  const hard = some.flatMap((r) => r.boxes).filter((b) => b.hard !== null).length;
  assert.ok(hard > 0 && hard < 18, `hard 0.5 gave ${hard}/18 hard cases`);
});

test("1920×1080 PNG and JPEG, grey and RGB, decode with sharp to the declared size", async () => {
  for (const [format, color, w, h] of [
    ["png", "gray", 1920, 1080],
    ["jpeg", "rgb", 1920, 1080],
    ["jpeg", "gray", 640, 480],
    ["png", "rgb", 1080, 1920],
    ["png", "gray", 64, 64],
  ] as const) {
    const r = await renderInspection(sampleInspection(2, 3), { width: w, height: h, format, color, quality: 85 });
    const meta = await sharp(r.image).metadata();
    assert.is(meta.format, format);
    assert.is(meta.width, w);
    assert.is(meta.height, h);
    assert.is(r.channels, color === "rgb" ? 3 : 1);
    assert.is(meta.channels, r.channels);
    assert.is(r.label.length, w * h);
    for (const m of Object.values(r.masks)) assert.is(m.length, w * h);
    // sharp 0.35 decodes grey to sRGB unless asked for b-w.
    const raw = await (color === "gray" ? sharp(r.image).toColourspace("b-w") : sharp(r.image)).raw().toBuffer();
    assert.is(raw.length, r.pixels.length);
    if (format === "png") assert.ok(raw.equals(r.pixels), "PNG must decode to exactly the pixels");
    else {
      let err = 0;
      for (let i = 0; i < raw.length; i++) err += Math.abs((raw[i] as number) - (r.pixels[i] as number));
      assert.ok(err / raw.length < 4, `JPEG mean error ${(err / raw.length).toFixed(2)}`);
    }
  }
});

test("masks and label maps encode to PNGs that decode back", async () => {
  const r = await renderInspection(ALL, { ...QUIET, allMasks: true });
  assert.equal(Object.keys(r.masks).sort(), [...DEFECT_CLASSES].sort());
  const m = r.masks.bubble as Uint8Array;
  const png = await encodeMaskPng(m, r.width, r.height);
  const back = await sharp(png).toColourspace("b-w").raw().toBuffer();
  assert.ok(back.every((v, i) => v === (m[i] ? 255 : 0)));
  const lab = await sharp(await encodeLabelPng(r.label, r.width, r.height))
    .toColourspace("b-w")
    .raw()
    .toBuffer();
  assert.ok(lab.equals(Buffer.from(r.label)));
  await encodeMaskPng(m, r.width + 1, r.height).then(
    () => assert.unreachable("a mask of the wrong length must be refused"),
    (e: Error) => assert.match(e.message, /do not make a 385×384 image/),
  );
});

test("bad options and events give errors naming the field", async () => {
  const one = ev([d("bubble", 1, 0.5, 0.5)]);
  await throwsValidation(() => renderInspection(one, { width: 0, height: 0 }), "width", /64\.\.1920/);
  await throwsValidation(() => renderInspection(one, { width: 10000, height: 10000 }), "height", /64\.\.1920/);
  await throwsValidation(() => renderInspection(one, { width: 1920, height: 1920 }), "width", /1920×1080/);
  await throwsValidation(() => renderInspection(one, { width: 100.5 }), "width", /integer/);
  await throwsValidation(() => renderInspection(one, { format: "gif" as "png" }), "format", /png, jpeg, raw/);
  await throwsValidation(() => renderInspection(one, { quality: 0 }), "quality", /1\.\.100/);
  await throwsValidation(() => renderInspection(one, { hardKinds: ["tiny" as "small"] }), "hardKinds", /small/);
  await throwsValidation(() => renderInspection(one, { colour: "rgb" } as RenderOptions), "colour", /unknown option/);
  await throwsValidation(() => renderInspection(one, { mmPerPx: 0.01 }), "mmPerPx", /at least/);
  await throwsValidation(
    () => renderInspection(ev([{ ...d("bubble", 1, 0.5, 0.5), class: "blister" as DefectClass }])),
    "/defects/0/class",
    /unknown class "blister"; valid: crack, bubble/,
  );
  await throwsValidation(() => renderInspection(ev([d("stone", 1, Number.NaN, 0.5)])), "/defects/0/x", /NaN/);
  await throwsValidation(() => renderInspection(ev([d("stone", 1, 0.5, 1.5)])), "/defects/0/y", /0\.\.1/);
  await throwsValidation(() => renderInspection(ev([d("stone", -2, 0.5, 0.5)])), "/defects/0/size_mm", /millimetres/);
  await throwsValidation(() => renderInspection({ ...one, item_id: Number.NaN }), "/item_id", /finite/);
  await throwsValidation(() => renderClean(one, { blurSigma: -1 }), "blurSigma", /0\.\.4/);
});

test("glassd twin render writes images, masks, label maps, overlays and JSON; bad arguments exit 2", async () => {
  const { main } = await import("../src/twin/images/cli.js");
  const dir = mkdtempSync(join(tmpdir(), "glassd-render-"));
  const write = process.stdout.write.bind(process.stdout);
  const errw = process.stderr.write.bind(process.stderr);
  let said = "";
  process.stdout.write = ((s: string) => {
    said += s;
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => {
    said += s;
    return true;
  }) as typeof process.stderr.write;
  try {
    const code = await main([
      "--out",
      dir,
      "--n",
      "3",
      "--width",
      "128",
      "--height",
      "160",
      "--seed",
      "4",
      "--format",
      "jpeg",
    ]);
    assert.is(code, 0, said);
    const files = readdirSync(dir);
    for (const stem of ["item-000001", "item-000002", "item-000003"]) {
      for (const f of [`${stem}.jpg`, `${stem}.label.png`, `${stem}.overlay.png`, `${stem}.json`]) {
        assert.ok(files.includes(f), `${f} missing`);
      }
      const meta = JSON.parse(readFileSync(join(dir, `${stem}.json`), "utf8")) as {
        boxes: unknown[];
        defects: unknown[];
        masks: Record<string, string>;
      };
      assert.is(meta.boxes.length, meta.defects.length);
      for (const f of Object.values(meta.masks)) {
        const m = await sharp(join(dir, f)).metadata();
        assert.is(m.width, 128);
        assert.is(m.height, 160);
      }
    }
    const index = JSON.parse(readFileSync(join(dir, "index.json"), "utf8")) as { items: string[]; classes: string[] };
    assert.is(index.items.length, 3);
    assert.equal(index.classes, [...DEFECT_CLASSES]);
    assert.is(await main(["--out", dir, "--width", "0"]), 2);
    assert.is(await main(["--out", dir, "--n", "two"]), 2);
    assert.is(await main(["--n", "2"]), 2);
    assert.is(await main(["--out", dir, "--bogus"]), 2);
    assert.match(said, /width: must be an integer in 64\.\.1920/);
  } finally {
    process.stdout.write = write;
    process.stderr.write = errw;
    rmSync(dir, { recursive: true, force: true });
  }
});

test("sampleInspection is deterministic and shows every class in 8 consecutive items", () => {
  const a = Array.from({ length: 8 }, (_, i) => sampleInspection(5, i + 1));
  const b = Array.from({ length: 8 }, (_, i) => sampleInspection(5, i + 1));
  assert.equal(a, b);
  assert.equal(new Set(a.map((e) => e.defects[0]!.class)).size, 8);
  const over = Array.from({ length: 8 }, (_, i) => sampleInspection(5, i + 1, { overlap: 1 }));
  assert.ok(over.every((e) => e.defects.length >= 2));
});

test.run();
