import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import * as ort from "onnxruntime-node";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { defaultConfig } from "../src/config/index.js";
import { readNpy } from "../src/core/npy.js";
import { type Feeds, openSession, sessionOptions, type TensorData, type TypedData } from "../src/inference/host.js";
import { goldenCompare } from "../src/inference/instance.js";
import { type ManifestEntry, readGoldenDoc } from "../src/inference/manifest.js";
import { type ModelAlarm, ModelRegistry } from "../src/inference/registry.js";
import type { WorkerSession } from "../src/inference/worker-session.js";
import {
  copyModel,
  manifestEntries,
  modelsDir,
  registryOptions,
  sha256,
  smallModel,
  writeManifest,
} from "./inference-fixtures.js";

/*
 * The registry on real trained models: every manifest entry loads in onnxruntime-node with its sha256 and
 * reproduces the factory's golden outputs; broken copies (corrupt bytes, wrong shapes, wrong class order) are
 * refused with a clear error while the live version keeps serving and an alarm is raised; hot swaps under load
 * drop no call; shadow candidates are compared and promoted only on request.
 */

const SRC = modelsDir();
const tmp: string[] = [];
const registries: ModelRegistry[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "glassd-inf-"));
  tmp.push(d);
  return d;
}
function registry(dirs: string[], over = {}): { r: ModelRegistry; alarms: ModelAlarm[] } {
  const r = new ModelRegistry(registryOptions(dirs, over));
  const alarms: ModelAlarm[] = [];
  r.onAlarm((a) => alarms.push(a));
  registries.push(r);
  return { r, alarms };
}
test.after(async () => {
  for (const r of registries) await r.stop();
  for (const d of tmp) rmSync(d, { recursive: true, force: true });
});

/** Golden inputs of an entry as feeds (first row only when `one`). */
function goldenFeeds(goldenPath: string, one = false): Feeds {
  const doc = readGoldenDoc(goldenPath);
  const feeds: Feeds = {};
  for (const i of doc.inputs) {
    const a = readNpy(join(dirname(goldenPath), i.file));
    if (!one) feeds[i.name] = { data: a.data as TypedData, dims: a.shape };
    else {
      const per = a.data.length / a.shape[0]!;
      feeds[i.name] = { data: a.data.slice(0, per) as TypedData, dims: [1, ...a.shape.slice(1)] };
    }
  }
  return feeds;
}

test("a model the factory rejected is refused unless allowed, and says why", async () => {
  // A real model marked rejected the way the factory marks it (acceptance.ok false with the failed check), in a
  // models dir of its own, plus whatever the shipped manifest itself lists as rejected.
  const dir = tempDir();
  const marked = copyModel(smallModel(SRC), SRC, dir, "9.9.9", {
    patch: (e) => {
      e.acceptance = { ok: false, checks: { beats_baseline: false, parity: true } };
    },
  });
  const shipped = manifestEntries(SRC).filter((e) => e.acceptance?.ok === false);
  const cases: [string, ManifestEntry][] = [[dir, marked], ...shipped.map((e): [string, ManifestEntry] => [SRC, e])];
  writeManifest(dir, [marked]);
  for (const [d, e] of cases) {
    const { r, alarms } = registry([d]);
    await r.start();
    const st = r.statusOf(e.name);
    assert.is.not(st.status, "loaded", `${e.name} ${e.version} must not serve`);
    const why = r.unavailableReason(e.name) ?? "";
    assert.match(why, /rejected/);
    if (e === marked) assert.match(why, /beats_baseline/, "the failed check is named");
    assert.ok(
      alarms.some((a) => a.model === e.name),
      `alarm for ${e.name}`,
    );
    const { r: allowed } = registry([d], { allowRejected: [e.name] });
    await allowed.start();
    assert.is(allowed.statusOf(e.name).status, "loaded");
    assert.is(allowed.statusOf(e.name).version, e.version);
  }
});

test("every manifest entry loads in onnxruntime-node, sha256 matches, golden outputs reproduced", async () => {
  const entries = manifestEntries(SRC);
  assert.ok(entries.length > 0);
  // Every entry, the factory's rejected ones included (allowed here): the load path and the numbers are the test.
  const { r, alarms } = registry([SRC], { allowRejected: entries.map((e) => e.name) });
  await r.start();
  assert.equal(alarms, [], JSON.stringify(alarms));
  for (const e of entries) {
    assert.is(sha256(readFileSync(join(SRC, e.file))), e.sha256, `${e.name} sha256`);
    const s = r.statusOf(e.name);
    assert.is(s.status, "loaded", `${e.name}: ${s.reason}`);
    assert.is(s.version, e.version);
    assert.ok(e.golden, `${e.name} ships golden I/O`);
    // the registry checked golden at load; check again here, output by output, through the live path
    const gp = join(SRC, e.golden!);
    const doc = readGoldenDoc(gp);
    const out = await r.run(e.name, goldenFeeds(gp));
    for (const o of doc.outputs) {
      const want = readNpy(join(dirname(gp), o.file));
      const got = out[o.name];
      assert.ok(got, `${e.name} output ${o.name}`);
      const c = goldenCompare(got!, want, doc.tolerance);
      assert.ok(c.ok, `${e.name}.${o.name}: ${c.detail} (max |Δ| ${c.max_abs})`);
    }
  }
});

test("corrupt model file: refused (sha256), alarm raised, previous version keeps serving", async () => {
  const e = smallModel(SRC);
  const dir = tempDir();
  const good = copyModel(e, SRC, dir, "1.0.0");
  writeManifest(dir, [good]);
  const { r, alarms } = registry([dir]);
  await r.start();
  assert.is(r.statusOf(e.name).version, "1.0.0");
  const feeds = goldenFeeds(join(dir, good.golden!), true);
  const before = await r.run(e.name, feeds);

  // version 1.1.0: the same model with flipped bytes, the manifest still naming the good file's sha256
  const bad = copyModel(e, SRC, dir, "1.1.0", {
    keepSha: true,
    mutate: (b) => {
      for (let i = b.length >> 1; i < (b.length >> 1) + 64; i++) b[i] = b[i]! ^ 0xff;
      return b;
    },
  });
  writeManifest(dir, [good, bad]);
  await r.reload();
  const s = r.statusOf(e.name);
  assert.is(s.status, "loaded");
  assert.is(s.version, "1.0.0", "the previous version keeps serving");
  const alarm = alarms.find((a) => a.code === "load_failed" && a.version === "1.1.0");
  assert.ok(alarm, "alarm raised");
  assert.match(alarm!.message, /sha256/);
  assert.match(alarm!.message, /keeps serving/);
  assert.is((s.versions as { version: string; state: string }[]).find((v) => v.version === "1.1.0")?.state, "failed");
  const after = await r.run(e.name, feeds);
  for (const k of Object.keys(before))
    assert.equal(Array.from(after[k]!.data as Float32Array), Array.from(before[k]!.data as Float32Array));

  // the API path: activating it answers 422 naming the check
  try {
    await r.activate(e.name, "1.1.0");
    assert.unreachable("activate must refuse");
  } catch (err) {
    assert.is((err as { status: number }).status, 422);
    assert.match((err as Error).message, /sha256/);
  }

  // corrupt bytes with a matching sha256 (a bad build): onnxruntime (or the golden check) refuses it
  const garbage = copyModel(e, SRC, dir, "1.2.0", { mutate: (b) => b.subarray(0, b.length >> 1) });
  writeManifest(dir, [good, bad, garbage]);
  await r.reload();
  assert.is(r.statusOf(e.name).version, "1.0.0");
  const a2 = alarms.find((a) => a.version === "1.2.0");
  assert.ok(a2, "second alarm");
  assert.match(a2!.message, /onnxruntime refused|golden/);
});

test("missing file at start: the model is unavailable with the reason, an older good version is used if any", async () => {
  const e = smallModel(SRC);
  const dir = tempDir();
  const good = copyModel(e, SRC, dir, "1.0.0");
  const gone = copyModel(e, SRC, dir, "2.0.0");
  rmSync(join(dir, gone.file));
  writeManifest(dir, [good, gone]);
  const { r, alarms } = registry([dir]);
  await r.start();
  assert.is(r.statusOf(e.name).version, "1.0.0", "falls back to the newest version that loads");
  assert.match(alarms.find((a) => a.version === "2.0.0")!.message, /cannot read .*ENOENT/);

  const dir2 = tempDir();
  const only = copyModel(e, SRC, dir2, "2.0.0");
  rmSync(join(dir2, only.file));
  writeManifest(dir2, [only]);
  const { r: r2 } = registry([dir2]);
  await r2.start();
  const s = r2.statusOf(e.name);
  assert.is(s.status, "failed");
  assert.is(s.version, null);
  assert.match(s.reason ?? "", /ENOENT/);
  try {
    await r2.run(e.name, goldenFeeds(join(SRC, e.golden!), true));
    assert.unreachable();
  } catch (err) {
    assert.is((err as { status: number }).status, 503);
  }
  assert.match(r2.unavailableReason("vision") ?? "", /no model of this name/);
});

test("shape and class-order mismatches are refused with a clear error", async () => {
  const e = smallModel(SRC);
  const dir = tempDir();
  const wrongShape = copyModel(e, SRC, dir, "1.0.0", {
    patch: (x) => {
      const i = x.inputs[0]!;
      const k = i.shape.findIndex((d) => d > 0);
      i.shape[k] = i.shape[k]! + 1;
    },
  });
  writeManifest(dir, [wrongShape]);
  const { r, alarms } = registry([dir]);
  await r.start();
  const s = r.statusOf(e.name);
  assert.is(s.status, "failed");
  assert.match(
    s.reason ?? "",
    new RegExp(`input ${e.inputs[0]!.name} has shape \\[.*\\] in the file, the manifest says`),
  );
  assert.is(alarms[0]?.code, "load_failed");

  if (e.classes) {
    const dir2 = tempDir();
    const swapped = copyModel(e, SRC, dir2, "1.0.0", {
      patch: (x) => {
        const c = x.classes!;
        [c[0], c[1]] = [c[1]!, c[0]!];
      },
    });
    writeManifest(dir2, [swapped]);
    const { r: r2 } = registry([dir2]);
    await r2.start();
    assert.match(
      r2.statusOf(e.name).reason ?? "",
      /class order \[bubble, crack.*differs from the daemon's \[crack, bubble/,
    );
  }

  const dir3 = tempDir();
  const renamed = copyModel(e, SRC, dir3, "1.0.0", { patch: (x) => (x.outputs[0]!.name = "nope") });
  writeManifest(dir3, [renamed]);
  const { r: r3 } = registry([dir3]);
  await r3.start();
  assert.match(r3.statusOf(e.name).reason ?? "", /outputs are \[.*\] in the file, the manifest says \[nope/);

  // a call with a wrong input shape names the input
  const { r: r4 } = registry([SRC]);
  await r4.start();
  const bad = { [e.inputs[0]!.name]: { data: new Float32Array(3), dims: [1, 3] } };
  try {
    await r4.run(e.name, bad);
    assert.unreachable();
  } catch (err) {
    assert.match((err as Error).message, new RegExp(`input ${e.inputs[0]!.name} must have shape`));
  }
});

test("hot swap under load drops no call; rollback restores the previous version; watch picks up a new version", async () => {
  const e = smallModel(SRC);
  const dir = tempDir();
  const v1 = copyModel(e, SRC, dir, "1.0.0");
  const v2 = copyModel(e, SRC, dir, "1.1.0");
  writeManifest(dir, [v1]);
  const { r, alarms } = registry([dir], { watchIntervalMs: 50 });
  await r.start();
  const feeds = goldenFeeds(join(dir, v1.golden!), true);
  const expected = await r.run(e.name, feeds);
  const name0 = Object.keys(expected)[0]!;

  // load: 4 concurrent callers, each calling back to back until told to stop
  let stop = false;
  const versionsSeen = new Set<string>();
  let calls = 0;
  const caller = async () => {
    while (!stop) {
      const inst = r.active(e.name)!;
      versionsSeen.add(inst.version);
      const out = await r.run(e.name, feeds, inst);
      assert.equal(Array.from(out[name0]!.data as Float32Array), Array.from(expected[name0]!.data as Float32Array));
      calls++;
    }
  };
  const load = Promise.all([caller(), caller(), caller(), caller()]);
  writeManifest(dir, [v1, v2]); // the watch activates 1.1.0
  for (let i = 0; i < 200 && r.statusOf(e.name).version !== "1.1.0"; i++)
    await new Promise((res) => setTimeout(res, 25));
  assert.is(r.statusOf(e.name).version, "1.1.0", "watch activated the new version");
  await r.rollback(e.name);
  assert.is(r.statusOf(e.name).version, "1.0.0");
  await r.activate(e.name, "1.1.0");
  await r.rollback(e.name);
  await new Promise((res) => setTimeout(res, 50));
  stop = true;
  await load; // any dropped or failed call would have rejected here
  assert.ok(calls > 0);
  assert.ok(versionsSeen.has("1.0.0") && versionsSeen.has("1.1.0"), [...versionsSeen].join());
  const s = r.statusOf(e.name);
  assert.is(s.failures, 0);
  assert.is(s.drops, 0);
  assert.is((s.previous as { version: string }).version, "1.1.0", "kept for rollback");
  assert.equal(alarms, []);
});

test("shadow candidate: compared on the same inputs, promoted only on request", async () => {
  const e = smallModel(SRC);
  const dir = tempDir();
  const v1 = copyModel(e, SRC, dir, "1.0.0");
  const v2 = copyModel(e, SRC, dir, "2.0.0", { patch: (x) => (x.metrics = { ...x.metrics, macro_auroc: 0.9 }) });
  writeManifest(dir, [v1, v2]);
  const { r } = registry([dir]);
  await r.start();
  await r.activate(e.name, "1.0.0");
  await r.shadow(e.name, "2.0.0");
  const feeds = goldenFeeds(join(dir, v1.golden!), true);
  for (let i = 0; i < 5; i++) await r.run(e.name, feeds);
  type Cand = {
    shadow: { compared: number; outputs: Record<string, { agreement: number }>; metric_deltas: Record<string, number> };
  };
  let c: Cand | null = null;
  for (let i = 0; i < 100; i++) {
    c = r.statusOf(e.name).candidate as Cand | null;
    if (c && c.shadow.compared >= 5) break;
    await new Promise((res) => setTimeout(res, 10));
  }
  assert.is(r.statusOf(e.name).version, "1.0.0", "a candidate is never promoted on its own");
  assert.is(c!.shadow.compared, 5);
  for (const o of Object.values(c!.shadow.outputs)) assert.is(o.agreement, 1, "same weights agree");
  if (typeof e.metrics.macro_auroc === "number")
    assert.ok(Math.abs(c!.shadow.metric_deltas.macro_auroc! - (0.9 - e.metrics.macro_auroc)) < 1e-12);
  await r.promote(e.name);
  assert.is(r.statusOf(e.name).version, "2.0.0");
  assert.is((r.statusOf(e.name).previous as { version: string }).version, "1.0.0");
  assert.is(r.statusOf(e.name).candidate, null);
});

test("remembered choice survives a restart", async () => {
  const e = smallModel(SRC);
  const dir = tempDir();
  writeManifest(dir, [copyModel(e, SRC, dir, "1.0.0"), copyModel(e, SRC, dir, "2.0.0")]);
  const statePath = join(dir, "active.json");
  const { r } = registry([dir], { statePath });
  await r.start();
  assert.is(r.statusOf(e.name).version, "2.0.0", "newest by default");
  await r.activate(e.name, "1.0.0");
  await r.stop();
  const { r: again } = registry([dir], { statePath });
  await again.start();
  assert.is(again.statusOf(e.name).version, "1.0.0");
});

// --- the worker's shared-memory call path ---

/** Row `i` (dim 0) of every input. */
function row(f: Feeds, i: number): Feeds {
  const out: Feeds = {};
  for (const [k, t] of Object.entries(f)) {
    const per = t.data.length / t.dims[0]!;
    out[k] = { data: t.data.slice(i * per, (i + 1) * per) as TypedData, dims: [1, ...t.dims.slice(1)] };
  }
  return out;
}

/** Same names, dims, array type and bytes (bit for bit, NaN payloads included). */
function assertBitIdentical(got: Feeds, want: Feeds, what: string): void {
  assert.equal(Object.keys(got), Object.keys(want), `${what}: output names`);
  for (const [k, w] of Object.entries(want)) {
    const g = got[k]!;
    assert.equal([...g.dims], [...w.dims], `${what}.${k} dims`);
    assert.is(g.data.constructor, w.data.constructor, `${what}.${k} array type`);
    const gb = new Uint8Array(g.data.buffer, g.data.byteOffset, g.data.byteLength);
    const wb = new Uint8Array(w.data.buffer, w.data.byteOffset, w.data.byteLength);
    assert.ok(Buffer.compare(gb, wb) === 0, `${what}.${k}: outputs differ from bare session.run`);
  }
}

/** A bare onnxruntime-node session in this thread, with the daemon's session options. */
async function bareSession(e: ManifestEntry) {
  const s = await ort.InferenceSession.create(join(SRC, e.file), sessionOptions(1));
  return {
    run: async (f: Feeds): Promise<Feeds> => {
      const feeds = Object.fromEntries(
        Object.entries(f).map(([k, t]) => [k, new ort.Tensor(t.data as Float32Array, [...t.dims])]),
      );
      const out = await s.run(feeds);
      return Object.fromEntries(
        Object.entries(out).map(([k, t]) => [k, { data: t.data as TypedData, dims: [...t.dims] } as TensorData]),
      );
    },
    release: () => s.release(),
  };
}

/** Awaits `fn()` and checks that it rejects with a message matching `re`. */
async function rejects(fn: () => Promise<unknown>, re: RegExp): Promise<void> {
  try {
    await fn();
  } catch (err) {
    assert.match((err as Error).message, re);
    return;
  }
  assert.unreachable(`expected a rejection matching ${re}`);
}

const workerOf = (r: ModelRegistry, name: string) => r.active(name)!.session as WorkerSession;

test("per-model isolation: by default vision runs in a worker, the tabular models inline, same numbers", async () => {
  const ci = defaultConfig().inference;
  assert.is(ci.isolation, "inline");
  assert.is(ci.vision_isolation, "worker");
  const entries = manifestEntries(SRC);
  const { r } = registry([SRC], {
    isolation: ci.isolation,
    isolationByModel: { vision: ci.vision_isolation },
    allowRejected: entries.map((e) => e.name),
  });
  await r.start();
  for (const e of entries) {
    const want = e.name === "vision" ? "worker" : "inline";
    assert.is(r.statusOf(e.name).isolation, want, e.name);
    assert.is(r.active(e.name)!.session.isolation, want, e.name);
    const all = goldenFeeds(join(SRC, e.golden!));
    const bare = await bareSession(e);
    assertBitIdentical(await r.run(e.name, all), await bare.run(all), `${e.name} (${want})`);
  }
});

test("worker calls through shared memory give bit-identical outputs to a bare session.run (golden inputs)", async () => {
  const entries = manifestEntries(SRC);
  const { r } = registry([SRC], { allowRejected: entries.map((e) => e.name) });
  await r.start();
  for (const e of entries) {
    const gp = join(SRC, e.golden!);
    const all = goldenFeeds(gp);
    const bare = await bareSession(e);
    const w = workerOf(r, e.name);
    assert.is(w.isolation, "worker");
    assert.ok(w.direct, `${e.name}: the worker runs the native session synchronously`);
    const before = { ...w.counts };
    // the whole golden batch, then each of its first rows at batch 1 (the tick's shape)
    assertBitIdentical(await r.run(e.name, all), await bare.run(all), `${e.name} golden batch`);
    const rows = Math.min(4, all[Object.keys(all)[0]!]!.dims[0]!);
    for (let i = 0; i < rows; i++)
      assertBitIdentical(await r.run(e.name, row(all, i)), await bare.run(row(all, i)), `${e.name} row ${i}`);
    assert.is(w.counts.shared_in - before.shared_in, rows + 1, `${e.name}: inputs went through shared memory`);
    if (e.name !== "vision") assert.is(w.counts.shared_out - before.shared_out, rows + 1, `${e.name}: outputs too`);
    else assert.is(w.counts.port_out - before.port_out, rows + 1, "vision masks are transferred, not copied");
    // a batch larger than the channel's data region goes by message, same numbers
    if (e.name === "vision") {
      const frames = 8;
      const one = row(all, 0);
      const data = new Float32Array(one.image!.data.length * frames);
      for (let f = 0; f < frames; f++)
        data.set(row(all, f % 2).image!.data as Float32Array, f * one.image!.data.length);
      const big = { image: { data, dims: [frames, ...one.image!.dims.slice(1)] } };
      const portIn = w.counts.port_in;
      assertBitIdentical(await r.run(e.name, big), await bare.run(big), "vision batch of 8");
      assert.is(w.counts.port_in, portIn + 1, "an 8-frame batch does not fit the channel: sent by message");
    }
    await bare.release();
  }
});

test("concurrent calls from many ticks never mix responses", async () => {
  const names = ["forecaster", "gnn", "ensemble", "policy"];
  const entries = manifestEntries(SRC).filter((e) => names.includes(e.name));
  const { r } = registry([SRC], {
    allowRejected: entries.map((e) => e.name),
    queue: { capacity: 1000, policy: "reject_newest", max_batch: 1 },
  });
  await r.start();
  const cases: { name: string; inputs: Feeds[]; expected: Feeds[] }[] = [];
  for (const e of entries) {
    const all = goldenFeeds(join(SRC, e.golden!));
    const n = Math.min(8, all[Object.keys(all)[0]!]!.dims[0]!);
    const bare = await bareSession(e);
    const inputs = Array.from({ length: n }, (_, i) => row(all, i));
    const expected: Feeds[] = [];
    for (const f of inputs) expected.push(await bare.run(f));
    await bare.release();
    // distinct inputs give distinct outputs, or the check below could not see a mix-up
    assert.ok(
      n < 2 ||
        Buffer.compare(
          Buffer.from(Object.values(expected[0]!)[0]!.data.buffer),
          Buffer.from(Object.values(expected[1]!)[0]!.data.buffer),
        ) !== 0,
      `${e.name}: golden rows 0 and 1 give different outputs`,
    );
    cases.push({ name: e.name, inputs, expected });
  }
  // 60 ticks started together, each calling every model with the input of its tick, plus calls straight on the
  // sessions (past the queue, the session's own FIFO)
  const calls: Promise<void>[] = [];
  for (let t = 0; t < 60; t++)
    for (const c of cases) {
      const i = (t * 7 + c.name.length) % c.inputs.length;
      calls.push(
        (async () => {
          if (t % 3 === 0) await new Promise((res) => setImmediate(res));
          const out = t % 2 ? await r.run(c.name, c.inputs[i]!) : await workerOf(r, c.name).run(c.inputs[i]!);
          assertBitIdentical(out, c.expected[i]!, `${c.name} tick ${t} input ${i}`);
        })(),
      );
    }
  await Promise.all(calls);
  for (const c of cases) assert.is(r.statusOf(c.name).failures, 0);
});

test("a worker crash mid-call fails the waiting calls with the reason, raises an alarm, and the version comes back", async () => {
  const e = smallModel(SRC);
  const { r, alarms } = registry([SRC]);
  await r.start();
  const feeds = goldenFeeds(join(SRC, e.golden!), true);
  const before = await r.run(e.name, feeds);
  const crashed = r.active(e.name)!;
  (crashed.session as WorkerSession).injectFault("crash");
  const settled = await Promise.allSettled([r.run(e.name, feeds), r.run(e.name, feeds), r.run(e.name, feeds)]);
  for (const s of settled) assert.is(s.status, "rejected", "no call hangs or invents output");
  assert.match(String((settled[0] as PromiseRejectedResult).reason), /model worker crashed: injected fault/);
  assert.ok(crashed.session.dead, "the session is marked dead");
  const alarm = alarms.find((a) => a.code === "run_failed");
  assert.ok(alarm, "run_failed alarm");
  assert.match(alarm!.message, /crashed/);
  for (let i = 0; i < 400 && (r.active(e.name) === crashed || !r.active(e.name)); i++)
    await new Promise((res) => setTimeout(res, 25));
  const fresh = r.active(e.name);
  assert.ok(fresh && fresh !== crashed, "the same version reloaded in a fresh worker");
  assert.is(fresh!.version, crashed.version);
  assertBitIdentical(await r.run(e.name, feeds), before, "after recovery");
  assert.is(r.statusOf(e.name).status, "loaded");
});

test("a worker that stops answering is ended by the watchdog; errors surface and the channel keeps working", async () => {
  const e = manifestEntries(SRC).find((x) => x.name === "policy") ?? smallModel(SRC);
  const bytes = readFileSync(join(SRC, e.file));
  const s = (await openSession(bytes, { threads: 1, isolation: "worker", hangMs: 300 })) as WorkerSession;
  try {
    const feeds = goldenFeeds(join(SRC, e.golden!), true);
    const good = await s.run(feeds);
    const name = e.inputs[0]!.name;
    const t = feeds[name]!;
    // wrong shape (through shared memory), an input under a name the model does not have (by message), a wrong
    // array type: onnxruntime's errors, naming the input
    await rejects(
      () => s.run({ ...feeds, [name]: { data: t.data.subarray(1), dims: [1, t.data.length - 1] } }),
      new RegExp(`invalid dimensions for input: ${name}`),
    );
    await rejects(() => s.run({ nope: t }), new RegExp(`input '${name}' is missing`));
    await rejects(() => s.run({ ...feeds, [name]: { data: new Float64Array(t.data.length), dims: t.dims } }), /type/i);
    assertBitIdentical(await s.run(feeds), good, "after errors");
    s.injectFault("hang");
    await rejects(() => s.run(feeds), /did not answer within 300 ms/);
    assert.ok(s.dead);
    await rejects(() => s.run(feeds), /did not answer/);
  } finally {
    await s.close();
  }
  await rejects(() => s.run({}), /closed|did not answer/);
});

test("the worker's fallback on onnxruntime's public API (no native binding file) gives the same outputs", async () => {
  const e = smallModel(SRC);
  const s = (await openSession(readFileSync(join(SRC, e.file)), {
    threads: 1,
    isolation: "worker",
    publicApi: true,
  })) as WorkerSession;
  const bare = await bareSession(e);
  try {
    assert.not.ok(s.direct);
    const all = goldenFeeds(join(SRC, e.golden!));
    const outs = await Promise.all([0, 1, 2, 3].map((i) => s.run(row(all, i))));
    for (let i = 0; i < 4; i++) assertBitIdentical(outs[i]!, await bare.run(row(all, i)), `fallback row ${i}`);
    assert.is(s.counts.shared_in, 4);
  } finally {
    await s.close();
    await bare.release();
  }
});

test.run();
