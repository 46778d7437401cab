/*
 * `glassd twin gym` protocol contract (src/twin/gym/PROTOCOL.md), over real child processes spawned the way the
 * Python factory spawns them: hello/reset/step shapes, determinism, auto-reset, bounded actions, lever directions,
 * reward terms, malformed frames, close and EOF. Plus the frame reader on split and concatenated chunks.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { DEFAULT_TAGS } from "../src/config/default-tags.js";
import { DEFECT_CLASSES } from "../src/core/types.js";
import {
  encodeFrame,
  FrameReader,
  GymClient,
  type GymReply,
  MAGIC,
  REWARD_TERMS,
  type TypedArray,
} from "../src/twin/gym/index.js";

const SERVER_ARGS = ["--import", "tsx", "src/main.ts", "twin", "gym", "--log-level", "silent"];
const LEVERS = DEFAULT_TAGS.filter((t) => t.actuator).map((t) => t.id);
const A = LEVERS.length;
const D = DEFAULT_TAGS.length + A + DEFECT_CLASSES.length + 2;
const K = REWARD_TERMS.length;

const started: GymClient[] = [];
function spawnGym(extra: string[] = []): GymClient {
  const c = GymClient.spawn({ args: [...SERVER_ARGS, ...extra], stderr: "pipe", replyTimeoutMs: 20_000 });
  c.child.stderr!.resume(); // drained, so a chatty server can never block on a full pipe
  started.push(c);
  return c;
}

let gym: GymClient;
test.before(() => {
  gym = spawnGym();
});
test.after(async () => {
  for (const c of started) {
    if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill("SIGKILL");
    await c.exited;
  }
});

/** The server's exit, or "still running" after `ms` (then the after-hook kills it). */
async function exitOf(c: GymClient, ms = 10_000): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise((resolve) => {
    timer = setTimeout(() => resolve("still running"), ms);
  });
  const r = await Promise.race([c.exited, late]);
  clearTimeout(timer);
  return r;
}

function arr(r: GymReply, name: string): TypedArray {
  const a = r.arrays.get(name);
  if (!a) throw new Error(`reply ${JSON.stringify(r.header)} has no array ${name}`);
  return a.data;
}
function shape(r: GymReply, name: string): number[] {
  return r.arrays.get(name)?.shape ?? [];
}
function expectType(r: GymReply, type: string): void {
  assert.is(r.header.type, type, `expected a ${type} reply, got ${JSON.stringify(r.header)}`);
}
function expectError(r: GymReply, code: string, mentions: string[] = []): void {
  assert.is(r.header.type, "error", `expected an error reply, got ${JSON.stringify(r.header)}`);
  assert.is(r.header.code, code, String(r.header.message));
  for (const m of mentions) assert.ok(String(r.header.message).includes(m), `"${r.header.message}" names ${m}`);
}
function actions(n: number, fill: (i: number, j: number) => number): Float32Array {
  const a = new Float32Array(n * A);
  for (let i = 0; i < n; i++) for (let j = 0; j < A; j++) a[i * A + j] = fill(i, j);
  return a;
}
/** Seeded, reproducible action noise in [−1, 1]. */
function noise(n: number, k: number): Float32Array {
  return actions(n, (i, j) => Math.sin(1 + 12.9898 * k + 78.233 * i + 37.719 * j));
}
function bytes(a: TypedArray): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

test("frame reader: a frame split into single bytes, and frames back to back, each come out once", () => {
  const f1 = encodeFrame({ type: "step" }, [
    { name: "actions", dtype: "<f4", shape: [2, 3], data: new Float32Array(6) },
  ]);
  const f2 = encodeFrame({ type: "close" });
  const r = new FrameReader(16);
  const got: string[] = [];
  for (const b of Buffer.concat([f1, f2])) {
    r.push(Buffer.from([b]));
    for (let x = r.next(); x; x = r.next()) got.push("frame" in x ? String(x.frame.header.type) : x.error.code);
  }
  assert.equal(got, ["step", "close"]);
  assert.is(r.buffered, 0);
  // The body starts on an 8-byte boundary of the frame, so a reader holding the frame gets aligned arrays.
  assert.is((12 + f1.readUInt32LE(4)) % 8, 0);
});

test("hello: protocol, version, and spaces with names, units and bounds", async () => {
  const r = await gym.request({ type: "hello", version: 1, id: "h1" });
  expectType(r, "hello");
  assert.is(r.header.id, "h1");
  assert.is(r.header.protocol, "glassd-twin-gym");
  assert.is(r.header.version, 1);
  const obs = r.header.observation as { dim: number; names: string[]; units: string[]; low: number[]; high: number[] };
  assert.is(obs.dim, D);
  for (const k of ["names", "units", "low", "high"] as const) assert.is(obs[k].length, D, `observation.${k}`);
  for (let i = 0; i < D; i++) assert.ok(obs.low[i]! < obs.high[i]!, `bounds of ${obs.names[i]}`);
  assert.is(obs.names[0], `tag:${DEFAULT_TAGS[0]!.id}`);
  assert.ok(obs.names.includes("defect_pct:bubble") && obs.names.includes("episode_time"));
  const act = r.header.action as { dim: number; names: string[]; max_step: number[]; low: number; high: number };
  assert.is(act.dim, A);
  assert.equal(act.names, LEVERS);
  assert.equal(
    act.max_step,
    DEFAULT_TAGS.filter((t) => t.actuator).map((t) => t.actuator!.max_step),
  );
  assert.is(act.low, -1);
  assert.is(act.high, 1);
  const reward = r.header.reward as { terms: string[]; formula: string };
  assert.equal(reward.terms, [...REWARD_TERMS]);
  assert.ok(reward.formula.includes("throughput"));
  expectError(await gym.request({ type: "hello", version: 99 }), "bad_request", ["version"]);
});

test("step before any reset is refused with not_reset", async () => {
  expectError(await gym.step(new Float32Array(A), 1, A), "not_reset");
});

test("reset and step: array names, dtypes and shapes; observations inside their bounds", async () => {
  const hello = await gym.request({ type: "hello" });
  const { low, high } = hello.header.observation as { low: number[]; high: number[] };
  const n = 3;
  const r = await gym.request({ type: "reset", n_envs: n, seed: 5 });
  expectType(r, "reset");
  assert.is(r.header.n_envs, n);
  assert.is(r.header.obs_dim, D);
  assert.is(r.header.act_dim, A);
  assert.is((r.header.options as { model_step_s: number }).model_step_s, 10);
  assert.equal(shape(r, "obs"), [n, D]);
  assert.ok(arr(r, "obs") instanceof Float32Array);
  const s = await gym.step(noise(n, 0), n, A);
  expectType(s, "step");
  assert.equal(
    [...s.arrays.keys()],
    [
      "obs",
      "reward",
      "terminated",
      "truncated",
      "reward_terms",
      "items_inspected",
      "items_defective",
      "setpoint_overridden",
    ],
  );
  assert.equal(shape(s, "obs"), [n, D]);
  assert.equal(shape(s, "reward"), [n]);
  assert.equal(shape(s, "terminated"), [n]);
  assert.ok(arr(s, "terminated") instanceof Uint8Array);
  assert.equal(shape(s, "reward_terms"), [n, K]);
  assert.ok(arr(s, "items_inspected") instanceof Int32Array);
  assert.is(s.header.final, undefined);
  for (const o of [arr(r, "obs"), arr(s, "obs")]) {
    o.forEach((v, k) => {
      assert.ok(Number.isFinite(v) && v >= low[k % D]! && v <= high[k % D]!, `obs[${k}] = ${v} within bounds`);
    });
  }
  // 60 s at 15 items/min and ~150 m/min: about 15 items per env step.
  for (const c of arr(s, "items_inspected")) assert.ok(c >= 5 && c <= 30, `items_inspected ${c}`);
  const t = arr(s, "obs")[D - 1]!;
  assert.ok(Math.abs(t - 1 / 480) < 1e-6, `episode_time after one step of 480: ${t}`);
});

test("reward terms add up to the reward, and the reward is finite", async () => {
  const n = 4;
  expectType(await gym.request({ type: "reset", n_envs: n, seed: 11 }), "reset");
  for (let k = 0; k < 20; k++) {
    const s = await gym.step(noise(n, k), n, A);
    const reward = arr(s, "reward");
    const terms = arr(s, "reward_terms");
    for (let i = 0; i < n; i++) {
      let sum = 0;
      for (let j = 0; j < K; j++) sum += terms[i * K + j]!;
      assert.ok(Number.isFinite(reward[i]!), `reward of env ${i}`);
      assert.ok(
        Math.abs(sum - reward[i]!) <= 1e-4 * Math.max(1, Math.abs(reward[i]!)),
        `Σ terms ${sum} vs ${reward[i]}`,
      );
    }
  }
});

test("determinism: same seed and actions give identical observations and rewards, across processes too", async () => {
  const other = spawnGym();
  const run = async (c: GymClient, seed: number) => {
    const out: Buffer[] = [bytes(arr(await c.request({ type: "reset", n_envs: 2, seed }), "obs"))];
    for (let k = 0; k < 15; k++) {
      const s = await c.step(noise(2, k), 2, A);
      out.push(bytes(arr(s, "obs")), bytes(arr(s, "reward")), bytes(arr(s, "reward_terms")));
    }
    return Buffer.concat(out);
  };
  const a = await run(gym, 123);
  const b = await run(gym, 123);
  const c = await run(other, 123);
  const d = await run(gym, 124);
  assert.ok(a.equals(b), "same server, same seed");
  assert.ok(a.equals(c), "another server process, same seed");
  assert.not.ok(a.equals(d), "another seed differs");
  // Env i of seed s is env 0 of seed s + i: every env is seeded seed + index.
  const r0 = arr(await gym.request({ type: "reset", n_envs: 2, seed: 7 }), "obs");
  const r1 = arr(await gym.request({ type: "reset", n_envs: 1, seed: 8 }), "obs");
  assert.ok(bytes(r0.subarray(D, 2 * D)).equals(bytes(r1)), "env 1 of seed 7 = env 0 of seed 8");
  // EOF on stdin: the server exits 0.
  assert.equal(await other.end(), { code: 0, signal: null });
});

test("auto-reset on truncation: final_obs and final info, next episode starts at time 0", async () => {
  const n = 2;
  const opts = { episode_hours: 0.05, control_interval_s: 60 }; // 3 steps
  expectType(await gym.request({ type: "reset", n_envs: n, seed: 3, options: opts }), "reset");
  let s = await gym.step(noise(n, 0), n, A);
  s = await gym.step(noise(n, 1), n, A);
  assert.equal([...arr(s, "truncated")], [0, 0]);
  s = await gym.step(noise(n, 2), n, A);
  assert.equal([...arr(s, "truncated")], [1, 1]);
  assert.equal([...arr(s, "terminated")], [0, 0]);
  const final = s.header.final as { env: number; reason: string; episode_length: number; episode_return: number }[];
  assert.equal(
    final.map((f) => [f.env, f.reason, f.episode_length]),
    [
      [0, "time_limit", 3],
      [1, "time_limit", 3],
    ],
  );
  assert.equal(shape(s, "final_obs"), [n, D]);
  const fo = arr(s, "final_obs");
  const obs = arr(s, "obs");
  for (let i = 0; i < n; i++) {
    assert.is(fo[i * D + D - 1], 1, "the final observation is at the end of the episode");
    assert.is(obs[i * D + D - 1], 0, "the returned observation starts the next episode");
  }
  // The next episode is a new one: its seed comes from the env's stream, so it differs from the first.
  const first = arr(await gym.request({ type: "reset", n_envs: n, seed: 3, options: opts }), "obs");
  assert.not.ok(bytes(first).equals(bytes(obs)));
  s = await gym.step(noise(n, 0), n, A);
  assert.is(s.header.final, undefined);
});

test("termination on a hard-limit breach: terminated, the tag named, penalty in the terms", async () => {
  const dir = mkdtempSync(join(tmpdir(), "glassd-gym-"));
  try {
    // The melt cannot go below 1440 °C on this (test) line: starving the burners must end the episode.
    const tags = DEFAULT_TAGS.map((t) =>
      t.id === "furnace_temperature" ? { ...t, limits: { min: 1440, max: 1800 } } : t,
    );
    const cfg = join(dir, "config.json");
    writeFileSync(cfg, JSON.stringify({ tags }));
    const c = spawnGym(["--config", cfg]);
    const opts = { control_interval_s: 600, model_step_s: 30, start_spread: 0, warmup_min: 0 };
    expectType(await c.request({ type: "reset", n_envs: 1, seed: 1, options: opts }), "reset");
    const power = LEVERS.indexOf("furnace_power");
    let end: { reason: string; tag: string; value: number } | undefined;
    let s: GymReply | undefined;
    for (let k = 0; k < 30 && !end; k++) {
      s = await c.step(
        actions(1, (_, j) => (j === power ? -1 : 0)),
        1,
        A,
      );
      end = (s.header.final as { reason: string; tag: string; value: number }[] | undefined)?.[0];
    }
    assert.ok(end && s, "the episode ended");
    assert.is(end.reason, "hard_limit");
    assert.is(end.tag, "furnace_temperature");
    assert.ok(end.value < 1440);
    assert.equal([...arr(s, "terminated")], [1]);
    assert.equal([...arr(s, "truncated")], [0]);
    assert.is(arr(s, "reward_terms")[REWARD_TERMS.indexOf("termination")], -10);
    assert.equal(await c.end(), { code: 0, signal: null });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("each lever's action moves its own tag in the action's direction", async () => {
  const opts = { start_spread: 0, warmup_min: 0 };
  expectType(await gym.request({ type: "reset", n_envs: 2, seed: 21, options: opts }), "reset");
  let s: GymReply | undefined;
  // Env 0 pushes every lever up for 8 steps, env 1 down; then both hold for 30 min.
  for (let k = 0; k < 38; k++)
    s = await gym.step(
      actions(2, (i) => (k < 8 ? (i === 0 ? 1 : -1) : 0)),
      2,
      A,
    );
  const obs = arr(s!, "obs");
  for (const [j, tag] of LEVERS.entries()) {
    const t = DEFAULT_TAGS.findIndex((x) => x.id === tag);
    assert.ok(obs[t]! > obs[D + t]!, `${tag}: up (${obs[t]}) above down (${obs[D + t]})`);
    const sp = DEFAULT_TAGS.length + j;
    assert.ok(obs[sp]! > obs[D + sp]!, `${tag} setpoint`);
  }
});

test("bounded actions: ±1 clamps at the actuator limit; out of range and NaN are refused and nothing steps", async () => {
  const n = 2;
  expectType(
    await gym.request({ type: "reset", n_envs: n, seed: 4, options: { start_spread: 0, warmup_min: 0 } }),
    "reset",
  );
  const belt = LEVERS.indexOf("belt_speed");
  const tag = DEFAULT_TAGS.find((t) => t.id === "belt_speed")!;
  const sp = DEFAULT_TAGS.length + belt;
  const range = tag.actuator!.max - tag.actuator!.min;
  let s = await gym.step(
    actions(n, (_, j) => (j === belt ? 1 : 0)),
    n,
    A,
  );
  // One step of +1 = +max_step; the setpoint observation is scaled to the actuator range.
  const expected = ((150 + tag.actuator!.max_step - tag.actuator!.min) / range) * 2 - 1;
  assert.ok(Math.abs(arr(s, "obs")[sp]! - expected) < 1e-6, `setpoint obs ${arr(s, "obs")[sp]} vs ${expected}`);
  for (let k = 0; k < 10; k++)
    s = await gym.step(
      actions(n, (_, j) => (j === belt ? 1 : 0)),
      n,
      A,
    );
  assert.is(arr(s, "obs")[sp], 1, "clamped at the actuator max");
  const limitTerm = arr(s, "reward_terms")[REWARD_TERMS.indexOf("actuator_limit")]!;
  assert.ok(Math.abs(limitTerm + 0.05) < 1e-6, `actuator_limit term ${limitTerm}`);
  const time = arr(s, "obs")[D - 1]!;

  const bad = actions(n, () => 0);
  bad[A + 2] = 1.0001;
  expectError(await gym.step(bad, n, A), "action_out_of_range", ["actions[1][2]", LEVERS[2]!]);
  bad[A + 2] = -1.5;
  expectError(await gym.step(bad, n, A), "action_out_of_range", ["-1.5"]);
  bad[A + 2] = Number.NaN;
  expectError(await gym.step(bad, n, A), "bad_action_value", ["actions[1][2]", "NaN"]);
  bad[A + 2] = Number.POSITIVE_INFINITY;
  expectError(await gym.step(bad, n, A), "bad_action_value");
  expectError(await gym.step(new Float32Array(n * (A - 1)), n, A - 1), "bad_action_shape", [`[${n}, ${A}]`]);
  // The server survived, and the refused steps did not advance any env.
  s = await gym.step(new Float32Array(n * A), n, A);
  expectType(s, "step");
  assert.ok(Math.abs(arr(s, "obs")[D - 1]! - (time + 1 / 480)) < 1e-6, "one step further, not four");
});

test("malformed frames and requests answer an error and the server keeps serving", async () => {
  const alive = async () => expectType(await gym.request({ type: "hello" }), "hello");
  expectError(await gym.sendRaw(Buffer.from("hello\n")), "bad_magic");
  await alive();
  const header = (text: string) => {
    const h = Buffer.from(text);
    const p = Buffer.alloc(12);
    MAGIC.copy(p);
    p.writeUInt32LE(h.length, 4);
    return Buffer.concat([p, h]);
  };
  expectError(await gym.sendRaw(header("{not json")), "bad_header");
  expectError(await gym.sendRaw(header("[1,2]")), "bad_header");
  expectError(await gym.sendRaw(header('{"id":1}')), "bad_header", ["type"]);
  const huge = Buffer.alloc(12);
  MAGIC.copy(huge);
  huge.writeUInt32LE(0xffffffff, 4);
  expectError(await gym.sendRaw(huge), "frame_too_large");
  await alive();
  expectError(await gym.request({ type: "jump" }), "unknown_type", ["jump", "step"]);
  expectError(await gym.request({ type: "reset", n_envs: 0 }), "bad_request", ["n_envs"]);
  expectError(await gym.request({ type: "reset", n_envs: 2, seed: -1 }), "bad_request", ["seed"]);
  expectError(await gym.request({ type: "reset", n_envs: 2, colour: 1 }), "bad_request", ["colour"]);
  expectError(await gym.request({ type: "reset", n_envs: 2, options: { model_step_s: 7 } }), "bad_option", [
    "model_step_s",
  ]);
  expectError(await gym.request({ type: "reset", n_envs: 2, options: { warp: 9 } }), "bad_option", ["warp"]);
  expectError(
    await gym.request({ type: "reset", n_envs: 2, options: { reward_weights: { band: -1 } } }),
    "bad_option",
    ["reward_weights.band"],
  );
  expectError(await gym.request({ type: "reset", n_envs: 2, options: { reward_weights: { fun: 1 } } }), "bad_option", [
    "reward_weights.fun",
  ]);
  expectType(await gym.request({ type: "reset", n_envs: 2, seed: 1 }), "reset");
  const wrongDtype = { name: "actions", dtype: "<i4" as const, shape: [2, A], data: new Int32Array(2 * A) };
  expectError(await gym.request({ type: "step" }, [wrongDtype]), "bad_action_shape", ["dtype"]);
  // A body shorter than its declared arrays.
  const frame = encodeFrame({ type: "step" }, [
    { name: "actions", dtype: "<f4", shape: [2, A], data: new Float32Array(2 * A) },
  ]);
  const cut = Buffer.from(frame.subarray(0, frame.length - 4));
  cut.writeUInt32LE(cut.readUInt32LE(8) - 4, 8);
  expectError(await gym.sendRaw(cut), "bad_body", ["actions"]);
  // Garbage, then a good frame in the same write: one error for the garbage, then the reply.
  gym.child.stdin!.write(Buffer.concat([Buffer.from("xxxxGLG"), encodeFrame({ type: "hello" })]));
  expectError(await gym.nextReply(), "bad_magic");
  expectType(await gym.nextReply(), "hello");
  expectType(await gym.step(new Float32Array(2 * A), 2, A), "step");
});

test("close: answered, then the server exits 0", async () => {
  const r = await gym.request({ type: "close", id: 9 });
  expectType(r, "close");
  assert.is(r.header.id, 9);
  assert.equal(await exitOf(gym), { code: 0, signal: null });
});

test.run();
