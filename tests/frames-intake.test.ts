import { existsSync, readFileSync } from "node:fs";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { SimClock } from "../src/core/clock.js";
import { ConfigError } from "../src/core/errors.js";
import {
  DecodeLimiter,
  DropOldestQueue,
  FramePreprocessor,
  FrameRejectedError,
  FramesBusyError,
  type IntakeFrame,
  resolveFramesConfig,
} from "../src/ingest/frames/index.js";
import {
  bombPng,
  corruptJpeg,
  noiseImage,
  randomBytes,
  removeTempDirs,
  solidImage,
  startIntake,
  truncated,
} from "./frames-fixtures.js";

/*
 * MIK-1 frame intake without HTTP or the watched directory: preprocessing arithmetic (ROI, resize, NCHW, mean/std),
 * every bad-image reason, the bounded drop-oldest queue, durable storage with thumbnails, retention by age and by
 * bytes, and recovery from a crash between writing an original and committing its metadata. Real sharp, real LMDB.
 */

const test = suite("frames intake");
test.after.each(() => removeTempDirs());

async function rejection(p: Promise<unknown>): Promise<FrameRejectedError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof FrameRejectedError) return err;
    throw err;
  }
  throw new Error("expected a FrameRejectedError");
}

test("config: defaults, and cross-field errors name their path", () => {
  const c = resolveFramesConfig({});
  assert.is(c.max_width * c.max_height, 1920 * 1080);
  assert.is(c.model_input.channels, 3);
  for (const [raw, path] of [
    [{ max_width: 1920, max_height: 1920 }, "/frames/max_height"],
    [{ model_input: { channels: 1, mean: [0.5, 0.5] } }, "/frames/model_input/mean"],
    [{ max_width: 640, max_height: 480, roi: { left: 600, top: 0, width: 100, height: 10 } }, "/frames/roi/width"],
    [{ unknown_key: 1 }, "/frames/unknown_key"],
    [{ model_input: { std: [0] } }, "/frames/model_input/std/0"],
  ] as const) {
    try {
      resolveFramesConfig(raw);
      assert.unreachable(JSON.stringify(raw));
    } catch (err) {
      assert.instance(err, ConfigError);
      assert.ok(
        (err as ConfigError).issues.some((i) => i.path === path),
        `${JSON.stringify(raw)} → ${JSON.stringify((err as ConfigError).issues)}`,
      );
    }
  }
});

test("preprocess: ROI crop, resize, NCHW planes, (px/255 − mean)/std", async () => {
  // Left half black, right half (255, 0, 128): the ROI takes the right half only.
  const left = await solidImage(32, 48, [0, 0, 0]);
  const img = await (await import("sharp"))
    .default({ create: { width: 64, height: 48, channels: 3, background: { r: 255, g: 0, b: 128 } } })
    .composite([{ input: left, left: 0, top: 0 }])
    .png()
    .toBuffer();
  const mean = [0.5, 0.25, 0.1];
  const std = [0.5, 0.25, 0.2];
  const pre = new FramePreprocessor(
    resolveFramesConfig({
      roi: { left: 32, top: 0, width: 32, height: 48 },
      model_input: { width: 8, height: 8, channels: 3, mean, std },
    }),
  );
  const r = await pre.run(img);
  assert.equal(r.original, { width: 64, height: 48, format: "png", bytes: img.length });
  assert.equal(r.tensor.shape, [1, 3, 8, 8]);
  const plane = 64;
  const want = [255, 0, 128].map((v, c) => (v / 255 - mean[c]!) / std[c]!);
  for (let c = 0; c < 3; c++)
    for (let i = 0; i < plane; i++)
      assert.ok(
        Math.abs(r.tensor.data[c * plane + i]! - want[c]!) < 1e-5,
        `c${c} i${i}: ${r.tensor.data[c * plane + i]}`,
      );

  // Without the ROI the black half shows up in the left columns of every plane.
  const whole = new FramePreprocessor(
    resolveFramesConfig({ model_input: { width: 8, height: 8, channels: 1, mean: [0], std: [1] } }),
  );
  const g = await whole.run(img);
  assert.equal(g.tensor.shape, [1, 1, 8, 8]);
  assert.ok(g.tensor.data[0]! < 0.01, `left column is black: ${g.tensor.data[0]}`);
  assert.ok(g.tensor.data[7]! > 0.2, `right column is not: ${g.tensor.data[7]}`);
});

test("preprocess: every bad frame is refused with its reason, cheapest check first", async () => {
  const pre = new FramePreprocessor(resolveFramesConfig({ max_width: 640, max_height: 480, max_bytes: 1_000_000 }));
  const jpeg = await noiseImage(320, 240, "jpeg");
  const png = await noiseImage(320, 240, "png");
  const cases: Array<[string, Uint8Array, string, ("jpeg" | "png")?]> = [
    ["zero bytes", Buffer.alloc(0), "empty"],
    ["random bytes", randomBytes(5000), "wrong_format"],
    ["GIF", Buffer.from("GIF89a\x01\x00\x01\x00", "latin1"), "wrong_format"],
    ["PNG declared as JPEG", png, "wrong_format", "jpeg"],
    ["truncated JPEG", truncated(jpeg), "truncated"],
    ["truncated PNG", truncated(png), "truncated"],
    ["JPEG cut after its header", truncated(jpeg, 0.05), "truncated"],
    ["corrupt JPEG (bad entropy data, EOI present)", corruptJpeg(jpeg), "corrupt"],
    ["20000×20000 PNG header (bomb)", bombPng(), "oversized"],
    ["real 800×600 frame on a 640×480 camera", await noiseImage(800, 600, "jpeg"), "oversized"],
    ["more bytes than max_bytes", Buffer.concat([png, Buffer.alloc(1_000_000)]), "too_many_bytes"],
  ];
  for (const [what, data, reason, declared] of cases) {
    const err = await rejection(pre.run(data, declared)).catch((e: Error) => {
      throw new Error(`${what}: ${e.message}`);
    });
    assert.is(err.reason, reason, `${what}: ${err.message}`);
    assert.ok(err.status >= 400 && err.status < 500, what);
  }
  // The good ones pass.
  assert.is((await pre.run(jpeg, "jpeg")).original.format, "jpeg");
  assert.is((await pre.run(png)).original.format, "png");
  // An ROI beyond a smaller frame.
  const roi = new FramePreprocessor(resolveFramesConfig({ roi: { left: 300, top: 0, width: 100, height: 100 } }));
  assert.is((await rejection(roi.run(jpeg))).reason, "roi_outside");
});

test("queue: drop-oldest keeps the newest; limiter bounds the wait list", async () => {
  const q = new DropOldestQueue<number>(3);
  const dropped: number[] = [];
  for (let i = 1; i <= 7; i++) {
    const d = q.push(i);
    if (d !== undefined) dropped.push(d);
  }
  assert.equal(dropped, [1, 2, 3, 4]);
  assert.equal([q.shift(), q.shift(), q.shift(), q.shift()], [5, 6, 7, undefined]);

  const lim = new DecodeLimiter(1, 1);
  const a = await lim.tryAcquire()!;
  const b = lim.tryAcquire();
  assert.ok(b, "one may wait");
  assert.is(lim.tryAcquire(), undefined, "the second waiter is refused");
  a();
  (await b!)();
  assert.is(lim.running, 0);
});

test("submit: stored durably with a thumbnail, counted, busy when decoders and wait list are full", async () => {
  const h = await startIntake({ max_concurrent_decodes: 1, max_waiting: 0 });
  try {
    const jpeg = await noiseImage(1920, 1080, "jpeg");
    const ts = Date.now() - 1000;
    const rec = await h.intake.submit(jpeg, { item_id: "42", ts: String(ts), camera: "mik1" }, "jpeg");
    assert.is(rec.item_id, 42);
    assert.is(rec.ts, ts);
    assert.equal([rec.width, rec.height, rec.format], [1920, 1080, "jpeg"]);
    assert.equal(readFileSync(h.intake.originalPath(rec)), jpeg, "original kept byte for byte");
    assert.match(rec.path, new RegExp(`^${new Date(ts).toISOString().slice(0, 10)}/${rec.id}\\.jpg$`));
    const thumb = h.intake.thumbnail(rec.id)!;
    const meta = await (await import("sharp")).default(thumb).metadata();
    assert.equal([meta.format, meta.width, meta.height], ["jpeg", 160, 90]);

    // Two at once with one decoder and no wait list: the second is refused, not queued.
    const first = h.intake.submit(jpeg, {});
    try {
      await h.intake.submit(jpeg, {});
      assert.unreachable("second push should be busy");
    } catch (err) {
      assert.instance(err, FramesBusyError);
      assert.is((err as FramesBusyError).status, 503);
    }
    await first;

    for (const [m, field] of [
      [{ ts: "2026-01-01T00:00:00" }, "ts"], // no zone
      [{ ts: String(Date.now() + 3_600_000) }, "ts"], // future
      [{ ts: "1999-12-31T00:00:00Z" }, "ts"],
      [{ item_id: "-1" }, "item_id"],
      [{ camera: "bad camera!" }, "camera"],
    ] as const) {
      const err = await rejection(h.intake.submit(jpeg, m));
      assert.is(err.reason, "bad_metadata");
      assert.is(err.field, field, JSON.stringify(m));
    }
    await rejection(h.intake.submit(truncated(jpeg), {}));
    const s = h.intake.stats();
    assert.is(s.accepted, 2);
    assert.is(s.busy, 1);
    assert.is(s.rejected.bad_metadata, 5);
    assert.is(s.rejected.truncated, 1);
    assert.is(s.rejected_total, 6);
    assert.is(s.received, 9);
    assert.is(s.stored_frames, 2);
    assert.is(s.stored_bytes, 2 * jpeg.length + 2 * thumb.length);
    assert.is(s.dropped_oldest, 0, "no handler: nothing queued, nothing dropped");
    assert.is(s.queue_depth, 0);
    assert.equal(
      h.intake.recent(10).map((r) => r.id),
      [rec.id + 1, rec.id],
    );
  } finally {
    await h.stop();
  }
});

test("onFrame: a slow consumer loses the oldest queued frames, counted; every frame stays stored", async () => {
  const h = await startIntake({
    queue_size: 3,
    model_input: { width: 16, height: 16, channels: 1, mean: [0], std: [1] },
  });
  try {
    const got: IntakeFrame[] = [];
    let open!: () => void;
    const gate = new Promise<void>((r) => {
      open = r;
    });
    h.intake.onFrame(async (f) => {
      got.push(f);
      await gate;
    });
    const png = await noiseImage(64, 64, "png");
    const ids: number[] = [];
    for (let i = 0; i < 8; i++) ids.push((await h.intake.submit(png, { item_id: i })).id);
    // The first is in the handler; 7 more came for 3 places.
    let s = h.intake.stats();
    assert.is(s.dropped_oldest, 4);
    assert.is(s.queue_depth, 3);
    open();
    while (h.intake.stats().delivered < 4) await new Promise((r) => setTimeout(r, 5));
    assert.equal(
      got.map((f) => f.id),
      [ids[0], ids[5], ids[6], ids[7]],
    );
    const f = got[1]!;
    assert.is(f.item_id, 5);
    assert.equal(f.tensor.shape, [1, 1, 16, 16]);
    assert.is(f.tensor.data.length, 256);
    assert.equal(f.original, { width: 64, height: 64, format: "png", bytes: png.length });
    s = h.intake.stats();
    assert.is(s.stored_frames, 8, "dropped from the queue, not from storage");
    assert.is(s.delivered, 4);
  } finally {
    await h.stop();
  }
});

test("retention: byte budget then age, oldest first; files, thumbnails and metadata go together", async () => {
  const clock = new SimClock(Date.UTC(2026, 2, 10, 12));
  const h = await startIntake({ retention: { max_bytes: 1_048_576, max_age_hours: 1 } }, { clock });
  try {
    const png = await noiseImage(400, 400, "png"); // ~ 480 KB: three exceed 1 MiB
    assert.ok(png.length > 350_000 && png.length < 1_000_000, `${png.length}`);
    const recs = [];
    for (let i = 0; i < 3; i++) {
      recs.push(await h.intake.submit(png, { ts: clock.now() }));
      clock.advance(1000);
    }
    await h.intake.enforceRetention();
    let s = h.intake.stats();
    assert.ok(s.stored_bytes <= 1_048_576, `${s.stored_bytes}`);
    assert.is(s.evicted_by_bytes, 3 - s.stored_frames);
    assert.ok(s.evicted_by_bytes >= 1);
    assert.is(h.intake.get(recs[0]!.id), undefined);
    assert.is(h.intake.thumbnail(recs[0]!.id), undefined);
    assert.not.ok(existsSync(h.intake.originalPath(recs[0]!)), "evicted original deleted");
    assert.ok(existsSync(h.intake.originalPath(recs[2]!)), "newest kept");

    clock.advance(2 * 3_600_000);
    await h.intake.enforceRetention();
    s = h.intake.stats();
    assert.is(s.stored_frames, 0);
    assert.is(s.stored_bytes, 0);
    assert.is(s.evicted, 3);
    assert.ok(s.evicted_by_age >= 1);
    assert.not.ok(existsSync(h.intake.originalPath(recs[2]!)));
  } finally {
    await h.stop();
  }
});

test("restart: stored frames survive; an original whose commit never happened is removed", async () => {
  const h = await startIntake();
  const png = await noiseImage(128, 96, "png");
  const rec = await h.intake.submit(png, { item_id: 7 });
  // A crash between writing an original and committing it leaves a file with no metadata.
  const orphan = h.intake.originalPath({
    ...rec,
    id: rec.id + 100,
    path: rec.path.replace(`${rec.id}.png`, `${rec.id + 100}.png`),
  });
  (await import("node:fs")).writeFileSync(orphan, png);
  await h.stop();

  const again = await startIntake({}, { dataDir: h.dataDir });
  try {
    const s = again.intake.stats();
    assert.is(s.orphans_removed, 1);
    assert.not.ok(existsSync(orphan));
    assert.is(s.stored_frames, 1);
    assert.equal(again.intake.get(rec.id), rec);
    assert.equal(readFileSync(again.intake.originalPath(rec)), png);
    const next = await again.intake.submit(png, {});
    assert.ok(next.id > rec.id, "ids keep growing across restarts");
  } finally {
    await again.stop();
  }
});

test.run();
