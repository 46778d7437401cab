import { test } from "uvu";
import * as assert from "uvu/assert";
import { DEFAULT_TAGS } from "../src/config/default-tags.js";
import type { TagConfig } from "../src/config/schema.js";
import { defaultConfig } from "../src/config/validate.js";
import type { DefectClass, InspectionEvent, RawSample } from "../src/core/types.js";
import { Validator } from "../src/ingest/validate.js";
import { DelayBuffer } from "../src/twin/delay-buffer.js";
import {
  BASE_DEFECT_RATE,
  Rng,
  STAGE_TIMING,
  TwinLine,
  type TwinLineOptions,
  TwinTagError,
  twinOptionsFromConfig,
} from "../src/twin/index.js";

const SEC = 1000;
const MIN = 60 * SEC;
const HOUR = 60 * MIN;
const T0 = Date.UTC(2026, 0, 1);

function twin(overrides: Partial<TwinLineOptions> = {}): TwinLine {
  return new TwinLine({
    tags: DEFAULT_TAGS,
    seed: 42,
    speed: 1,
    stepMs: 1000,
    itemsPerMin: 15,
    startTs: T0,
    ...overrides,
  });
}

/** Advances in `everyMs` chunks, recording a probe after each; `at` runs before the chunk that starts at its time. */
function trace<T>(
  tw: TwinLine,
  durationMs: number,
  everyMs: number,
  probe: (tw: TwinLine) => T,
  at: Record<number, (tw: TwinLine) => void> = {},
): { t: number; v: T; samples: RawSample[]; inspections: InspectionEvent[] }[] {
  const out = [];
  for (let elapsed = 0; elapsed < durationMs; elapsed += everyMs) {
    at[elapsed]?.(tw);
    const o = tw.advance(everyMs);
    out.push({ t: tw.now() - T0, v: probe(tw), ...o });
  }
  return out;
}

function rateOf(items: InspectionEvent[], cls: DefectClass, fromMs: number, toMs: number): number {
  const w = items.filter((e) => e.ts >= T0 + fromMs && e.ts < T0 + toMs);
  assert.ok(w.length > 0, `no items in [${fromMs}, ${toMs})`);
  return w.filter((e) => e.defects.some((d) => d.class === cls)).length / w.length;
}

function tagConfig(id: string): TagConfig {
  const t = DEFAULT_TAGS.find((x) => x.id === id);
  if (!t) throw new Error(`no default tag ${id}`);
  return t;
}

/** Largest |Δvalue| / (max_rate_per_s × Δt) between consecutive samples of the same tag. */
function worstRateFraction(samples: RawSample[]): { frac: number; tag: string } {
  const last = new Map<string, RawSample>();
  let worst = { frac: 0, tag: "" };
  for (const s of samples) {
    const prev = last.get(s.tag);
    if (prev) {
      const rate = Math.abs((s.value as number) - (prev.value as number)) / ((s.ts - prev.ts) / SEC);
      const frac = rate / tagConfig(s.tag).max_rate_per_s!;
      if (frac > worst.frac) worst = { frac, tag: s.tag };
    }
    last.set(s.tag, s);
  }
  return worst;
}

// --- building blocks ---

test("Rng: same seed gives the same stream, streams differ, gaussian is standard normal", () => {
  const a = new Rng(7);
  const b = new Rng(7);
  const xs = Array.from({ length: 5 }, () => a.next());
  assert.equal(
    xs,
    Array.from({ length: 5 }, () => b.next()),
  );
  assert.not.equal(xs[0], new Rng(8).next());
  assert.not.equal(Rng.derive(7, 1).next(), Rng.derive(7, 2).next());
  const g = new Rng(1);
  let sum = 0;
  let sq = 0;
  const n = 20_000;
  for (let i = 0; i < n; i++) {
    const u = g.next();
    assert.ok(u >= 0 && u < 1);
    const z = g.gaussian();
    sum += z;
    sq += z * z;
  }
  assert.ok(Math.abs(sum / n) < 0.03, `mean ${sum / n}`);
  assert.ok(Math.abs(Math.sqrt(sq / n) - 1) < 0.03, `sd ${Math.sqrt(sq / n)}`);
});

test("DelayBuffer: holds the initial value for the dead time, then replays the signal (growing as needed)", () => {
  const d = new DelayBuffer(10_000, 0, [5], 2);
  const out = new Float64Array(1);
  const seen: number[] = [];
  for (let t = 1000; t <= 30_000; t += 1000) {
    d.push(t, [t >= 3000 ? 100 : 5]);
    d.read(t, out);
    seen.push(out[0]!);
  }
  // Input stepped at t=3000 (from 5 at t=2000); output steps between t=12000 and t=13000.
  assert.equal(seen.slice(0, 12), Array(12).fill(5));
  assert.equal(seen.slice(12), Array(18).fill(100));
  const half = new DelayBuffer(1000, 0, [0]);
  half.push(1000, [10]);
  half.push(2000, [20]);
  half.read(2500, out);
  assert.is(out[0], 15);
});

test("determinism: same seed and same writes give identical samples and inspections; another seed differs", async () => {
  const run = async (seed: number) => {
    const tw = twin({ seed, itemsPerMin: 60 });
    const a = tw.advance(20 * MIN);
    await tw.write("belt_speed", 175);
    await tw.write("furnace_power", 90);
    const b = tw.advance(20 * MIN);
    return { samples: [...a.samples, ...b.samples], inspections: [...a.inspections, ...b.inspections] };
  };
  const x = await run(42);
  const y = await run(42);
  const z = await run(43);
  assert.ok(x.samples.length > 10_000 && x.inspections.length > 2_000);
  assert.equal(x, y);
  assert.is(x.samples.length, z.samples.length, "the sampling grid does not depend on the seed");
  assert.ok(
    x.samples.some((s, i) => s.value !== z.samples[i]!.value),
    "different seeds must give different values",
  );
  assert.not.equal(
    x.inspections.map((e) => e.defects),
    z.inspections.map((e) => e.defects),
  );
});

test("advance carries a partial step over: two half steps equal one step", () => {
  const a = twin();
  const b = twin();
  const halves = [...a.advance(500).samples, ...a.advance(500).samples];
  assert.is(a.advance(0).samples.length, 0);
  assert.equal(halves, b.advance(1000).samples);
  assert.is(a.now(), T0 + 1000);
});

// --- steady state ---

test("steady state: samples stay in their normal band and hard limits; 1–5 % defective, bubbles most common", () => {
  for (const seed of [42, 7]) {
    const tw = twin({ seed });
    const samples: RawSample[] = [];
    const inspections: InspectionEvent[] = [];
    let pBubbleSum = 0;
    for (let m = 0; m < 180; m++) {
      const o = tw.advance(MIN);
      samples.push(...o.samples);
      inspections.push(...o.inspections);
      pBubbleSum += tw.defects.probability("bubble");
    }
    for (const s of samples) {
      const cfg = tagConfig(s.tag);
      const v = s.value as number;
      assert.ok(v >= cfg.limits.min && v <= cfg.limits.max, `${s.tag}=${v} outside hard limits`);
      assert.ok(v >= cfg.normal.min && v <= cfg.normal.max, `seed ${seed}: ${s.tag}=${v} outside normal band`);
    }
    // 15 items/min at 150 m/min.
    assert.ok(Math.abs(inspections.length - 15 * 180) <= 30, `items: ${inspections.length}`);
    const defective = inspections.filter((e) => !e.ok).length / inspections.length;
    assert.ok(defective >= 0.01 && defective <= 0.05, `seed ${seed}: defective ${defective}`);
    for (const e of inspections) assert.is(e.ok, e.defects.length === 0);
    const counts = new Map<string, number>();
    for (const e of inspections) for (const d of e.defects) counts.set(d.class, (counts.get(d.class) ?? 0) + 1);
    const bubbles = counts.get("bubble") ?? 0;
    for (const [cls, n] of counts) if (cls !== "bubble") assert.ok(bubbles > n, `bubble ${bubbles} vs ${cls} ${n}`);
    // The seed population wanders with the melt temperature (±4 °C), so the bubble hazard wanders around its base.
    const pBubble = tw.defects.probability("bubble");
    assert.ok(Math.abs(pBubble - BASE_DEFECT_RATE.bubble) < 0.004, `steady bubble probability ${pBubble}`);
    const mean = pBubbleSum / 180;
    assert.ok(Math.abs(mean - BASE_DEFECT_RATE.bubble) < 0.0015, `mean steady bubble probability ${mean}`);
  }
});

test("samples: seq strictly increasing, each tag on its own period grid, well-formed", () => {
  const tw = twin();
  const { samples } = tw.advance(30 * MIN);
  let seq = 0;
  const byTag = new Map<string, number[]>();
  for (const s of samples) {
    assert.ok(s.seq > seq, `seq ${s.seq} after ${seq}`);
    seq = s.seq;
    assert.is(s.source, "twin");
    assert.is(s.quality, "good");
    assert.type(s.value, "number");
    byTag.set(s.tag, [...(byTag.get(s.tag) ?? []), s.ts]);
  }
  assert.is(byTag.size, DEFAULT_TAGS.length);
  for (const tag of DEFAULT_TAGS) {
    const ts = byTag.get(tag.id)!;
    assert.is(ts.length, Math.floor((30 * MIN) / tag.period_ms) + 1, tag.id);
    assert.equal(
      ts,
      Array.from(ts, (_, i) => T0 + i * tag.period_ms),
      tag.id,
    );
  }
});

test("sample jumps stay well below max_rate_per_s in steady state and below it for full-range setpoint jumps", async () => {
  const steady = worstRateFraction(twin({ seed: 3 }).advance(2 * HOUR).samples);
  assert.ok(steady.frac < 0.5, `steady: ${steady.tag} at ${steady.frac} of max_rate_per_s`);

  const tw = twin({ seed: 3 });
  const samples = tw.advance(10 * MIN).samples;
  for (const tag of tw.writableTags()) await tw.write(tag, tagConfig(tag).actuator!.max);
  samples.push(...tw.advance(20 * MIN).samples);
  for (const tag of tw.writableTags()) await tw.write(tag, tagConfig(tag).actuator!.min);
  samples.push(...tw.advance(20 * MIN).samples);
  const jumps = worstRateFraction(samples);
  assert.ok(jumps.frac < 1, `transient: ${jumps.tag} at ${jumps.frac} of max_rate_per_s`);
  for (const s of samples) {
    const cfg = tagConfig(s.tag);
    assert.ok((s.value as number) >= cfg.limits.min && (s.value as number) <= cfg.limits.max, s.tag);
  }
});

// --- actuation ---

test("write clamps to the actuator range and reads back; non-writable and unknown tags are refused", async () => {
  const tw = twin();
  assert.equal(
    tw.writableTags().sort(),
    DEFAULT_TAGS.filter((t) => t.actuator)
      .map((t) => t.id)
      .sort(),
  );
  assert.is(tw.readSetpoint("belt_speed"), 150);

  const hi = await tw.write("belt_speed", 500);
  assert.equal(hi, { tag: "belt_speed", requested: 500, applied: 220, readBack: 220, ts: T0 });
  assert.is((await tw.write("belt_speed", -5)).applied, 80);
  assert.is((await tw.write("furnace_power", 30)).applied, 40);
  assert.is((await tw.write("forming_pressure", 55)).applied, 55);
  assert.is(tw.readSetpoint("forming_pressure"), 55);
  assert.is(tw.model.setSetpoint("cooling_rate", 99), 8);
  assert.is(tw.model.setpoints().cooling_rate, 8);

  const refused = async (tag: string, value: number, code: string, msg: RegExp) => {
    try {
      await tw.write(tag, value);
      assert.unreachable(`write ${tag} should have been refused`);
    } catch (err) {
      assert.instance(err, TwinTagError);
      assert.is((err as TwinTagError).code, code);
      assert.match((err as Error).message, msg);
    }
  };
  await refused("humidity", 50, "not_writable", /"humidity" is not writable.*writable tags: batch_flow/);
  await refused("furnace_temperature", 1500, "not_writable", /not writable/);
  await refused("nope", 1, "unknown_tag", /"nope" is not in the twin's tag dictionary/);
  await refused("belt_speed", Number.NaN, "invalid_value", /finite number/);
  assert.is(tw.readSetpoint("belt_speed"), 80, "refused writes change nothing");
});

// --- dynamics ---

/** Response of `probe` to a `tag` setpoint step, as pushed − control over the same seed (the noise cancels). */
function stepResponse(
  tag: string,
  to: number,
  probe: string,
  expectedGain: number,
  durationMs: number,
  everyMs: number,
) {
  const read = (tw: TwinLine) => tw.model.reading(probe);
  const control = trace(twin(), durationMs, everyMs, read);
  const pushed = trace(twin(), durationMs, everyMs, read, { 0: (tw) => void tw.write(tag, to) });
  // Fraction of the expected final change reached at each time.
  const response = pushed.map((p, i) => ({ t: p.t, frac: (p.v - control[i]!.v) / expectedGain }));
  const t63 = response.find((r) => r.frac >= 0.632)?.t ?? Number.POSITIVE_INFINITY;
  return { t63, at: (t: number) => response.find((r) => r.t >= t)!.frac };
}

test("furnace is slow: +10 % burner power gives ~+30 °C over 1–2 h, nothing in the first minutes", () => {
  const r = stepResponse("furnace_power", 95, "furnace_temperature", 30, 3 * HOUR, MIN);
  assert.is(r.at(3 * MIN), 0, "transport delay");
  assert.ok(r.at(10 * MIN) < 0.25, `10 min: ${r.at(10 * MIN)}`);
  assert.ok(r.t63 >= 25 * MIN && r.t63 <= 60 * MIN, `t63 ${r.t63 / MIN} min`);
  assert.ok(r.at(2 * HOUR) > 0.9 && r.at(3 * HOUR) < 1.02, `2 h: ${r.at(2 * HOUR)}, 3 h: ${r.at(3 * HOUR)}`);
  // The power feedback itself follows its setpoint within seconds.
  assert.ok(stepResponse("furnace_power", 95, "furnace_power", 10, MIN, SEC).t63 <= 10 * SEC);
});

test("forming is fast: belt speed in < 60 s, forming pressure in < 5 s; mold temperature in 15–30 min", () => {
  const belt = stepResponse("belt_speed", 170, "belt_speed", 20, 5 * MIN, SEC);
  assert.ok(belt.t63 >= 2 * SEC && belt.t63 <= 30 * SEC, `belt t63 ${belt.t63 / SEC} s`);
  assert.ok(belt.at(60 * SEC) > 0.95, `belt at 60 s: ${belt.at(60 * SEC)}`);
  const fp = stepResponse("forming_pressure", 55, "forming_pressure", 5, MIN, SEC);
  assert.ok(fp.t63 >= SEC && fp.t63 <= 5 * SEC, `forming pressure t63 ${fp.t63 / SEC} s`);
  const mold = stepResponse("mold_temperature", 340, "mold_temperature", 20, 2 * HOUR, 30 * SEC);
  assert.ok(mold.t63 >= 15 * MIN && mold.t63 <= 30 * MIN, `mold t63 ${mold.t63 / MIN} min`);
});

// --- causes and delays ---

interface CausalRun {
  probs: { t: number; p: Record<DefectClass, number> }[];
  items: InspectionEvent[];
}

function causalRun(durationMs: number, itemsPerMin: number, push?: { atMs: number; tag: string; value: number }) {
  const at: Record<number, (tw: TwinLine) => void> = {};
  if (push) at[push.atMs] = (tw) => void tw.write(push.tag, push.value);
  const rows = trace(twin({ seed: 11, itemsPerMin }), durationMs, SEC, (tw) => tw.defects.probabilities(), at);
  return {
    probs: rows.map((r) => ({ t: r.t, p: r.v })),
    items: rows.flatMap((r) => r.inspections),
  } satisfies CausalRun;
}

const pAt = (run: CausalRun, t: number) => run.probs.find((r) => r.t >= t)!.p;

test("belt speed 200 m/min raises deformation after the forming delay, and not before", () => {
  const t0 = 30 * MIN;
  const delay = STAGE_TIMING.forming.delayMs;
  assert.ok(delay >= MIN && delay <= 3 * MIN, "forming delay is documented as 1–3 min");
  const control = causalRun(t0 + 30 * MIN, 120);
  const pushed = causalRun(t0 + 30 * MIN, 120, { atMs: t0, tag: "belt_speed", value: 200 });

  // Before the delay has elapsed the hazards are exactly those of the undisturbed line.
  for (let i = 0; i < pushed.probs.length && pushed.probs[i]!.t <= t0 + delay; i++) {
    assert.equal(pushed.probs[i]!.p, control.probs[i]!.p, `t=${pushed.probs[i]!.t / SEC} s`);
  }
  assert.ok(rateOf(pushed.items, "deformation", t0, t0 + delay) < 0.02, "no deformation wave before the delay");
  // After it, clearly more deformation (and chips: belt > 170).
  assert.ok(pAt(pushed, t0 + 5 * MIN).deformation > 0.04, `p ${pAt(pushed, t0 + 5 * MIN).deformation}`);
  const before = rateOf(control.items, "deformation", t0 + 5 * MIN, t0 + 30 * MIN);
  const after = rateOf(pushed.items, "deformation", t0 + 5 * MIN, t0 + 30 * MIN);
  assert.ok(after > 0.03 && after > 5 * before, `deformation rate ${after} vs control ${before}`);
  assert.ok(
    rateOf(pushed.items, "chip", t0 + 5 * MIN, t0 + 30 * MIN) > 3 * rateOf(control.items, "chip", 0, t0 + 30 * MIN),
  );
  // Faster belt, more items per minute (items scale with belt speed / 150).
  const count = (run: CausalRun) => run.items.filter((e) => e.ts >= T0 + t0 + MIN).length;
  assert.ok(
    Math.abs(count(pushed) / count(control) - 200 / 150) < 0.02,
    `item ratio ${count(pushed) / count(control)}`,
  );
});

test("cooling rate pushed to 8 °C/min raises cracks over hours (annealing delay)", () => {
  const push = { atMs: 0, tag: "cooling_rate", value: 8 };
  const control = causalRun(5 * HOUR, 60);
  const pushed = causalRun(5 * HOUR, 60, push);
  // cooling_rate passes 7 °C/min after ~1 h (τ 40 min), then 30 min of lehr transit: nothing in the first 90 min.
  assert.is(pAt(pushed, 85 * MIN).crack, pAt(control, 85 * MIN).crack);
  assert.ok(pAt(pushed, 4 * HOUR).crack > 0.04, `crack p at 4 h: ${pAt(pushed, 4 * HOUR).crack}`);
  const c = rateOf(control.items, "crack", 3 * HOUR, 5 * HOUR);
  const p = rateOf(pushed.items, "crack", 3 * HOUR, 5 * HOUR);
  assert.ok(p > 0.03 && p > 5 * c, `crack rate ${p} vs control ${c}`);
});

test("cold furnace (< 1450 °C) raises bubble, cloudiness and stone only after the furnace delay", () => {
  const push = { atMs: 0, tag: "furnace_power", value: 55 };
  const control = causalRun(4 * HOUR, 30);
  const pushed = causalRun(4 * HOUR, 30, push);
  // Less fuel shows upstream at once (O2 up, melt cooling, below 1450 °C after ~30 min) but reaches the camera
  // only after the furnace dead time.
  const delay = STAGE_TIMING.furnace.delayMs;
  assert.ok(delay >= 25 * MIN && delay <= 120 * MIN);
  for (let i = 0; i < pushed.probs.length && pushed.probs[i]!.t <= delay; i++) {
    assert.equal(pushed.probs[i]!.p, control.probs[i]!.p, `t=${pushed.probs[i]!.t / MIN} min`);
  }
  assert.ok(pushed.probs.some((r, i) => r.t <= delay + 5 * MIN && r.p.bubble > control.probs[i]!.p.bubble));
  const late = pAt(pushed, 3 * HOUR);
  const base = pAt(control, 3 * HOUR);
  for (const cls of ["bubble", "cloudiness", "stone"] as const) {
    assert.ok(late[cls] > base[cls] + 0.01, `${cls}: ${late[cls]} vs ${base[cls]}`);
  }
  const c = rateOf(control.items, "bubble", 2 * HOUR, 4 * HOUR);
  const p = rateOf(pushed.items, "bubble", 2 * HOUR, 4 * HOUR);
  assert.ok(p > 3 * c && p > 0.04, `bubble rate ${p} vs control ${c}`);
});

test("cold mold (< 280 °C) raises crack, deformation and chip within the hour", () => {
  const control = causalRun(HOUR, 15);
  const pushed = causalRun(HOUR, 15, { atMs: 0, tag: "mold_temperature", value: 250 });
  const late = pAt(pushed, 55 * MIN);
  const base = pAt(control, 55 * MIN);
  for (const cls of ["crack", "deformation", "chip"] as const) {
    assert.ok(late[cls] > base[cls] + 0.01, `${cls}: ${late[cls]} vs ${base[cls]}`);
  }
  assert.is(late.bubble, base.bubble);
});

test("humid air (> 70 %) raises stains after the forming delay", () => {
  const probe = (tw: TwinLine) => tw.defects.probabilities();
  const control = trace(twin(), 10 * MIN, SEC, probe);
  // Humidity has no lever: move the weather's mean directly (the process channels are the model's state).
  const humid = trace(twin(), 10 * MIN, SEC, probe, {
    [MIN]: (tw) => {
      tw.model.process.humidity.setpoint = 85;
    },
  });
  const at = (rows: typeof control, t: number) => rows.find((r) => r.t >= t)!.v;
  assert.equal(
    at(humid, MIN + STAGE_TIMING.forming.delayMs - SEC),
    at(control, MIN + STAGE_TIMING.forming.delayMs - SEC),
  );
  assert.ok(at(humid, 8 * MIN).stain > at(control, 8 * MIN).stain + 0.03, `stain ${at(humid, 8 * MIN).stain}`);
});

// --- configuration ---

test("a dictionary tag the physics does not know is simulated inside its band; options come from config", () => {
  const extra: TagConfig = {
    ...tagConfig("furnace_pressure"),
    id: "lehr_belt_speed",
    normal: { min: 8, max: 12 },
    limits: { min: 0, max: 30 },
    period_ms: 5000,
    max_rate_per_s: 0.5,
    actuator: { min: 5, max: 15, max_step: 1 },
  };
  const tw = twin({ tags: [...DEFAULT_TAGS, extra] });
  const own = tw.advance(HOUR).samples.filter((s) => s.tag === "lehr_belt_speed");
  assert.is(own.length, 721);
  for (const s of own) assert.ok((s.value as number) > 8 && (s.value as number) < 12, `${s.value}`);
  assert.ok(worstRateFraction(own.map((s) => ({ ...s, tag: "furnace_pressure" }))).frac < 10);
  assert.ok(tw.writableTags().includes("lehr_belt_speed"));

  const opts = twinOptionsFromConfig(defaultConfig(), { startTs: T0 });
  assert.is(opts.stepMs, 1000);
  assert.is(new TwinLine(opts).advance(MIN).samples.length > 0, true);
});

// --- real-time mode ---

async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

function timersOpen(): number {
  return process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
}

test("real-time mode emits samples through the sink with backpressure, calls handlers, and stops cleanly", async () => {
  const openBefore = timersOpen();
  const tw = twin({ speed: 2000, itemsPerMin: 60 });
  const batches: RawSample[][] = [];
  let concurrent = 0;
  let maxConcurrent = 0;
  tw.attach(async (batch) => {
    concurrent++;
    maxConcurrent = Math.max(maxConcurrent, concurrent);
    await sleep(5);
    batches.push(batch);
    concurrent--;
  });
  const items: InspectionEvent[] = [];
  tw.onInspection((e) => items.push(e));
  await tw.start(new AbortController().signal);
  await tw.start(new AbortController().signal); // idempotent
  assert.throws(() => tw.advance(1000), /stop real-time mode/);
  await sleep(300);
  await tw.stop();
  assert.is(timersOpen(), openBefore, "no timer left open");
  await tw.stop();
  const afterStop = batches.length;
  const simAfterStop = tw.now();
  await sleep(50);
  assert.is(batches.length, afterStop, "no batch after stop");
  assert.is(tw.now(), simAfterStop, "simulated time frozen after stop");

  const samples = batches.flat();
  assert.ok(samples.length > 1000, `only ${samples.length} samples`);
  assert.is(maxConcurrent, 1, "one batch at a time");
  for (let i = 1; i < samples.length; i++) assert.ok(samples[i]!.seq > samples[i - 1]!.seq);
  assert.ok(samples.every((s) => s.source === "twin" && s.ts >= T0 && s.ts <= tw.now()));
  assert.ok(items.length > 10, `items ${items.length}`);
  const st = tw.stats();
  assert.is(st.samples, samples.length);
  assert.is(st.batches, batches.length);
  assert.is(st.itemsInspected, items.length);
  // 300 ms at 2000× is ~600 simulated seconds; allow for slow hosts.
  assert.ok(tw.now() - T0 >= 60 * SEC, `simulated only ${(tw.now() - T0) / SEC} s`);
});

test("a catch-up after a stalled event loop is sent in chunks the validator does not find stale", async () => {
  // A manual wall clock: one callback owes 400 steps (10 s of wall time at 40×). From the config the twin sends at
  // most floor(shortest stale horizon / step) steps per batch, and each batch is checked on the twin's own clock as
  // the daemon's Validator does.
  const config = defaultConfig();
  let wall = T0;
  const opts = twinOptionsFromConfig(config, { startTs: T0, clock: { now: () => wall } });
  assert.is(opts.maxStepsPerSend, 3, "3 s (3 × the 1 s tags' period) / 1 s steps");
  const tw = new TwinLine({ ...opts, speed: 40 });
  const validator = new Validator(config.tags, config.validation, { now: () => tw.now() });
  const reasons = new Map<string, number>();
  let samples = 0;
  tw.attach(async (batch) => {
    for (const raw of batch) {
      samples++;
      const r = validator.validate(raw);
      if (!r.ok) reasons.set(r.reason, (reasons.get(r.reason) ?? 0) + 1);
    }
  });
  await tw.start(new AbortController().signal);
  wall += 10 * SEC;
  while (tw.now() - T0 < 400 * SEC) await sleep(5);
  await tw.stop();
  assert.ok(samples > 2000, `only ${samples} samples`);
  assert.equal([...reasons], [], "no sample rejected");

  // The same catch-up in one batch (the old behaviour) loses the oldest fast samples as stale.
  wall = T0;
  const oneBatch = new TwinLine({ ...opts, speed: 40, maxStepsPerSend: 5000 });
  const v2 = new Validator(config.tags, config.validation, { now: () => oneBatch.now() });
  let stale = 0;
  oneBatch.attach(async (batch) => {
    for (const raw of batch) {
      const r = v2.validate(raw);
      if (!r.ok && r.reason === "stale") stale++;
    }
  });
  await oneBatch.start(new AbortController().signal);
  wall += 10 * SEC;
  while (oneBatch.now() - T0 < 400 * SEC) await sleep(5);
  await oneBatch.stop();
  assert.ok(stale > 100, `stale ${stale}`);
});

test("real-time mode survives a rejecting sink and a throwing handler", async () => {
  const tw = twin({ speed: 5000 });
  let calls = 0;
  const accepted: RawSample[][] = [];
  tw.attach(async (batch) => {
    calls++;
    if (calls <= 2) throw new Error("LMDB busy");
    accepted.push(batch);
  });
  tw.onInspection(() => {
    throw new Error("handler bug");
  });
  await tw.start(new AbortController().signal);
  await sleep(200);
  await tw.stop();
  const st = tw.stats();
  assert.is(st.sinkErrors, 2);
  assert.ok(accepted.length > 0, "batches after the rejections still arrive");
  assert.ok(st.handlerErrors > 0);
});

test("start honours an aborted signal; aborting later stops the twin", async () => {
  const tw = twin({ speed: 1000 });
  const ac = new AbortController();
  ac.abort(new Error("shutdown"));
  try {
    await tw.start(ac.signal);
    assert.unreachable("start should throw");
  } catch (err) {
    assert.match((err as Error).message, /shutdown/);
  }
  await tw.stop(); // never started: no-op

  const ac2 = new AbortController();
  await tw.start(ac2.signal);
  ac2.abort();
  await sleep(20);
  const t = tw.now();
  await sleep(50);
  assert.is(tw.now(), t, "stopped by abort");
  assert.not.throws(() => tw.advance(1000));
});

test.run();
