import { existsSync, linkSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { DEFAULT_TAGS } from "../src/config/default-tags.js";
import type { InspectionEvent } from "../src/core/types.js";
import { renderInspection } from "../src/twin/images/index.js";
import { DirectoryFrameSink, PlantFrames } from "../src/twin/plant/frames.js";
import { Plant } from "../src/twin/plant/plant.js";
import {
  bombPng,
  dropFile,
  noiseImage,
  randomBytes,
  removeTempDirs,
  startIntake,
  tempDir,
  truncated,
  waitUntil,
} from "./frames-fixtures.js";

/*
 * The watched directory with real producers: the twin plant's MIK-1 frame writer (render → sidecar → write-then-
 * rename), hand-made bad files, files that arrived while glassd was down, a crash between commit and removal, and
 * a directory removed and made again (no inotify event reaches the old watch; the periodic rescan finds the file).
 */

const test = suite("frames directory");
test.after.each(() => removeTempDirs());

const RENDER = { width: 320, height: 240, format: "png" as const, seed: 5 };

test("twin plant as the producer: every frame it writes is taken via inotify, with its sidecar metadata", async () => {
  const watched = tempDir("glassd-frames-watch-");
  // A long rescan period: only inotify can deliver these within the test.
  const h = await startIntake({ directory: { path: watched, rescan_interval_ms: 3_600_000 } });
  const events: InspectionEvent[] = [];
  const plant = new Plant({
    lineId: "Line_A",
    tags: DEFAULT_TAGS,
    seed: 3,
    speed: 30,
    stepMs: 1000,
    itemsPerMin: 300,
    heartbeatTimeoutMs: 60_000,
    // In the past, so that 30× simulated time never runs ahead of the wall clock.
    startTs: Date.now() - 3_600_000,
  });
  plant.addListener({ onInspection: (e) => void events.push(e) });
  const frames = new PlantFrames(
    plant,
    new DirectoryFrameSink(
      watched,
      "Line_A",
      async (e) => {
        const r = await renderInspection(e, RENDER);
        return { data: r.image, format: "png" };
      },
      { sidecar: true },
    ),
  );
  const ac = new AbortController();
  try {
    frames.start();
    await plant.start(ac.signal);
    await waitUntil(() => frames.stats().delivered >= 6, 20_000, "6 frames from the plant");
    await plant.stop();
    await frames.stop();
    const written = frames.stats().delivered;
    await waitUntil(() => h.intake.stats().accepted >= written, 10_000, `${written} frames taken`);
    const s = h.intake.stats();
    assert.is(s.accepted, written);
    assert.is(s.rejected_total, 0);
    assert.is(s.received_directory, written);
    assert.is(s.scans >= 2, true);
    assert.ok(s.watching);
    // Taken files (and sidecars) are gone from the share; only the rejected/ folder is left.
    assert.equal(readdirSync(watched), ["rejected"]);
    const recs = h.intake.recent(100).reverse();
    assert.is(recs.length, written);
    for (const rec of recs) {
      const e = events.find((x) => x.item_id === rec.item_id);
      assert.ok(e, `item ${rec.item_id} was inspected by the plant`);
      assert.is(rec.ts, e!.ts, "capture time from the sidecar");
      assert.is(rec.camera, "mik1");
      assert.is(rec.name, `Line_A_${String(e!.item_id).padStart(10, "0")}.png`);
      assert.equal([rec.width, rec.height, rec.format], [320, 240, "png"]);
      // The renderer is deterministic: the stored original is byte for byte what the plant wrote.
      const again = await renderInspection(e!, RENDER);
      assert.ok(readFileSync(h.intake.originalPath(rec)).equals(again.image), `item ${rec.item_id} bytes`);
    }
  } finally {
    ac.abort();
    await plant.stop().catch(() => {});
    await frames.stop().catch(() => {});
    await h.stop();
  }
});

test("bad files go to rejected/ with a reason file; incomplete names are left alone", async () => {
  const watched = tempDir("glassd-frames-watch-");
  const h = await startIntake({ directory: { path: watched, rescan_interval_ms: 3_600_000 } });
  try {
    const jpeg = await noiseImage(320, 240, "jpeg");
    const png = await noiseImage(320, 240, "png");
    writeFileSync(join(watched, ".grabber-writing.png"), truncated(png));
    writeFileSync(join(watched, "frame-0099.png.tmp"), truncated(png));
    const bad: Array<[string, Uint8Array, string]> = [
      ["a-truncated.jpg", truncated(jpeg), "truncated"],
      ["b-truncated.png", truncated(png), "truncated"],
      ["c-random.jpg", randomBytes(4096), "wrong_format"],
      ["d-bomb.png", bombPng(), "oversized"],
      ["e-empty.png", Buffer.alloc(0), "empty"],
      ["f-notes.txt", Buffer.from("not a frame\n"), "wrong_format"],
      ["g-png-named.jpg", png, "wrong_format"],
      ["h-bad-sidecar.png", png, "bad_metadata"],
    ];
    writeFileSync(join(watched, "h-bad-sidecar.json"), "{ not json");
    for (const [name, data] of bad) dropFile(watched, name, data);
    dropFile(watched, "z-good.jpg", jpeg);
    await waitUntil(
      () => h.intake.stats().rejected_total === bad.length && h.intake.stats().accepted === 1,
      10_000,
      "every dropped file handled",
    );
    const s = h.intake.stats();
    assert.equal(Object.fromEntries(Object.entries(s.rejected).filter(([, n]) => n > 0)), {
      truncated: 2,
      wrong_format: 3,
      oversized: 1,
      empty: 1,
      bad_metadata: 1,
    });
    const rej = join(watched, "rejected");
    const files = readdirSync(rej);
    for (const [name, data, reason] of bad) {
      const moved = files.find((f) => f.endsWith(`-${name}`));
      assert.ok(moved, `${name} moved to rejected/`);
      assert.ok(readFileSync(join(rej, moved!)).equals(Buffer.from(data)), `${name} kept intact`);
      const why = readFileSync(join(rej, `${moved}.reason.txt`), "utf8");
      assert.match(why, new RegExp(`^reason: ${reason}\\n`), name);
      assert.match(why, /\ndetail: \S/);
    }
    assert.ok(
      files.some((f) => f.endsWith("-h-bad-sidecar.json")),
      "the bad sidecar went with its image",
    );
    assert.equal(readdirSync(watched).sort(), [".grabber-writing.png", "frame-0099.png.tmp", "rejected"]);
    assert.is(h.intake.recent(5)[0]?.name, "z-good.jpg");
  } finally {
    await h.stop();
  }
});

test("restart: files that came while down are taken; a file stored just before a crash is not stored twice", async () => {
  const watched = tempDir("glassd-frames-watch-");
  const frames = { directory: { path: watched, rescan_interval_ms: 3_600_000 } };
  const first = await startIntake(frames);
  const png = await noiseImage(200, 150, "png", 3, 9);
  dropFile(watched, "one.png", png);
  await waitUntil(() => first.intake.stats().accepted === 1, 10_000, "one.png taken");
  const rec = first.intake.recent(1)[0]!;
  await first.stop();

  // Crash between commit and removal: the watched name still points at the stored original (same inode).
  linkSync(first.intake.originalPath(rec), join(watched, "one.png"));
  dropFile(watched, "two.png", await noiseImage(200, 150, "png", 3, 10));
  dropFile(watched, "three.jpg", await noiseImage(200, 150, "jpeg", 3, 11));

  const second = await startIntake(frames, { dataDir: first.dataDir });
  try {
    const s = second.intake.stats();
    assert.is(s.already_stored, 1, "one.png recognised by its identity and only removed");
    assert.is(s.accepted, 2, "the two that came while down were taken at start");
    assert.is(s.stored_frames, 3);
    assert.equal(
      second.intake.recent(10).map((r) => r.name),
      ["two.png", "three.jpg", "one.png"], // taken in name order at start: three.jpg, then two.png
    );
    assert.equal(readdirSync(watched), ["rejected"]);
    assert.ok(readFileSync(second.intake.originalPath(rec)).equals(png), "the stored original is intact");
  } finally {
    await second.stop();
  }
});

test("directory removed and made again: the periodic rescan still finds new frames", async () => {
  const base = tempDir("glassd-frames-watch-");
  const watched = join(base, "share");
  const h = await startIntake({ directory: { path: watched, rescan_interval_ms: 150 } });
  try {
    const jpeg = await noiseImage(160, 120, "jpeg");
    dropFile(watched, "before.jpg", jpeg);
    await waitUntil(() => h.intake.stats().accepted === 1, 10_000, "before.jpg taken");
    rmSync(watched, { recursive: true });
    mkdirSync(watched);
    // Written elsewhere and renamed in, as an rsync from the camera PC would.
    writeFileSync(join(base, "after.jpg.tmp"), jpeg);
    renameSync(join(base, "after.jpg.tmp"), join(watched, "after.jpg"));
    await waitUntil(() => h.intake.stats().accepted === 2, 10_000, "after.jpg taken");
    assert.not.ok(existsSync(join(watched, "after.jpg")));
    assert.is(h.intake.recent(1)[0]?.name, "after.jpg");
  } finally {
    await h.stop();
  }
});

test.run();
