/*
 * MIK-1 frame intake wired into the daemon: `frames.enabled` starts the intake, the routes are mounted on the API
 * (HTTP push as operator, reads as viewer), frames in the watched directory are taken, rejections are counted in
 * /metrics, and the routes are in /openapi.json. With frames disabled the routes answer 503 saying so.
 */
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import sharp from "sharp";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { type Json, TestDaemon } from "./helpers/daemon.js";

const daemons: TestDaemon[] = [];
test.after.each(async () => {
  await Promise.all(daemons.splice(0).map((d) => d.stop()));
});

async function poll<T>(cond: () => Promise<T | undefined>, what: string, timeoutMs = 15_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const jpeg = (w: number, h: number) =>
  sharp({ create: { width: w, height: h, channels: 3, background: { r: 180, g: 180, b: 180 } } })
    .jpeg()
    .toBuffer();

test("frames enabled: HTTP push and the watched directory both land; rejections counted", async () => {
  const d0 = await TestDaemon.start({ source: "none" });
  const watch = join(d0.dir, "incoming");
  await d0.stop();
  mkdirSync(watch, { recursive: true });
  const d = await TestDaemon.start({
    source: "none",
    cli: { "frames.enabled": "true", "frames.directory.path": watch, "frames.directory.rescan_interval_ms": "200" },
  });
  daemons.push(d);
  assert.is(d.load.safeMode, false, JSON.stringify(d.load.issues));
  const op = await d.tokenFor("operator");
  const push = await fetch(`${d.base}/api/frames?item_id=17&camera=mik1`, {
    method: "POST",
    headers: { authorization: `Bearer ${op}`, "content-type": "image/jpeg" },
    body: await jpeg(640, 480),
  });
  assert.is(push.status, 201, await push.clone().text());
  const viewer = await d.tokenFor("viewer");
  const denied = await fetch(`${d.base}/api/frames?item_id=18`, {
    method: "POST",
    headers: { authorization: `Bearer ${viewer}`, "content-type": "image/jpeg" },
    body: await jpeg(64, 64),
  });
  assert.is(denied.status, 403);
  const bad = await fetch(`${d.base}/api/frames?item_id=19`, {
    method: "POST",
    headers: { authorization: `Bearer ${op}`, "content-type": "image/jpeg" },
    body: Buffer.from("definitely not a jpeg"),
  });
  assert.ok(bad.status >= 400 && bad.status < 500, `bad frame status ${bad.status}`);

  // The write-then-rename protocol: written under a temporary name, renamed when complete.
  writeFileSync(join(watch, ".cam-0001.jpg.tmp"), await jpeg(320, 240));
  renameSync(join(watch, ".cam-0001.jpg.tmp"), join(watch, "cam-0001.jpg"));
  const recent = await poll(async () => {
    const r = await d.request<{ frames: Json[] }>("/api/frames/recent?limit=10", { token: viewer });
    return r.status === 200 && r.body.frames.length >= 2 ? r.body.frames : undefined;
  }, "both frames in /api/frames/recent");
  assert.ok(recent.length >= 2);
  const metrics = await (await fetch(`${d.base}/metrics`)).text();
  assert.match(metrics, /glassd_frames_received_total [3-9]/);
  assert.match(metrics, /glassd_frames_rejected_total\{reason="[a-z_]+"\} 1/);
  const openapi = (await (await fetch(`${d.base}/openapi.json`)).json()) as { paths: Record<string, unknown> };
  assert.ok(openapi.paths["/api/frames"], "POST /api/frames in the OpenAPI document");
});

test("frames disabled: the routes say so with 503", async () => {
  const d = await TestDaemon.start({ source: "none" });
  daemons.push(d);
  const r = await d.request("/api/frames/recent", { token: await d.tokenFor("viewer") });
  assert.is(r.status, 503);
  assert.is(r.body.error, "frames_disabled");
});

test("frames config errors are named (safe mode)", async () => {
  const d = await TestDaemon.start({
    source: "none",
    cli: { "frames.enabled": "true", "frames.max_width": "1920", "frames.max_height": "1920" },
  });
  daemons.push(d);
  assert.is(d.load.safeMode, true);
  assert.ok(
    d.load.issues.some((i) => i.path === "/frames/max_height"),
    JSON.stringify(d.load.issues),
  );
});

test.run();
