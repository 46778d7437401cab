/*
 * `glassd twin gym` with scenarios (reset.options.scenario, PROTOCOL.md "Scenarios"), over a real child process:
 * the episode length follows the scenario, scenario minute 0 is the first observation, a scenario setpoint write
 * wins for the steps it writes and then stays the baseline the agent's action is applied to, ramps own their lever,
 * auto-reset replays the scenario, "dataset_mix" draws the dataset generator's mix per episode seed, bad scenarios
 * are refused naming the field and leave the previous envs intact.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { DEFAULT_TAGS } from "../src/config/default-tags.js";
import { datasetMix } from "../src/twin/dataset/mix.js";
import { buildGymSpec, episodeScenario, GymClient, type GymReply, type TypedArray } from "../src/twin/gym/index.js";

const SERVER_ARGS = ["--import", "tsx", "src/main.ts", "twin", "gym", "--log-level", "silent"];
const spec = buildGymSpec(DEFAULT_TAGS);
const A = spec.actDim;
const D = spec.obsDim;
const LEVER = Object.fromEntries(spec.levers.map((l, j) => [l.tag, j]));
const TAG = Object.fromEntries(spec.tags.map((t, i) => [t.id, i]));

let gym: GymClient;
const dir = mkdtempSync(join(tmpdir(), "glassd-gym-scn-"));
test.before(() => {
  gym = GymClient.spawn({ args: SERVER_ARGS, stderr: "pipe", replyTimeoutMs: 60_000 });
  gym.child.stderr!.resume();
});
test.after(async () => {
  if (gym.child.exitCode === null && gym.child.signalCode === null) gym.child.kill("SIGKILL");
  await gym.exited;
  rmSync(dir, { recursive: true, force: true });
});

function arr(r: GymReply, name: string): TypedArray {
  const a = r.arrays.get(name);
  if (!a) throw new Error(`reply ${JSON.stringify(r.header)} has no array ${name}`);
  return a.data;
}
function expectType(r: GymReply, type: string): void {
  assert.is(r.header.type, type, `expected a ${type} reply, got ${JSON.stringify(r.header)}`);
}
/** Lever j's setpoint in env i, in its unit, from the observation (actuator-normalised there). */
function setpoint(obs: TypedArray, i: number, tag: string): number {
  const j = LEVER[tag]!;
  const l = spec.levers[j]!;
  return l.min + ((obs[i * D + spec.offsets.setpoints + j]! + 1) / 2) * (l.max - l.min);
}
function act(n: number, set: Record<string, number> = {}): Float32Array {
  const a = new Float32Array(n * A);
  for (let i = 0; i < n; i++) for (const [tag, v] of Object.entries(set)) a[i * A + LEVER[tag]!] = v;
  return a;
}
async function reset(n: number, seed: number, options: Record<string, unknown>): Promise<GymReply> {
  const r = await gym.request({ type: "reset", n_envs: n, seed, options });
  expectType(r, "reset");
  return r;
}
async function step(n: number, a: Float32Array): Promise<GymReply> {
  const r = await gym.step(a, n, A);
  expectType(r, "step");
  return r;
}

/** A short inline scenario: a belt step change at minute 5, a mold ramp from minute 10 over 5 min. */
const SCRIPT = {
  name: "gym_test",
  duration_hours: 0.5,
  events: [
    { type: "setpoint", at_min: 5, tag: "belt_speed", value: 180 },
    { type: "setpoint", at_min: 10, tag: "mold_temperature", value: 340, ramp_min: 5 },
  ],
};

test("a scenario sets the episode length and is described in the reset reply", async () => {
  const r = await reset(2, 3, { scenario: "fan_failure" });
  const opts = r.header.options as { episode_hours: number; scenario: string };
  assert.is(opts.episode_hours, 8, "fan_failure lasts 8 h");
  assert.is(opts.scenario, "fan_failure");
  const info = r.header.scenario as { name: string; duration_hours: number; events: number };
  assert.is(info.name, "fan_failure");
  assert.is(info.duration_hours, 8);
  assert.is(info.events, 1);
  // episode_hours given: it wins over the scenario's duration
  const r2 = await reset(1, 3, { scenario: "mixed_shift", episode_hours: 2 });
  assert.is((r2.header.options as { episode_hours: number }).episode_hours, 2);
  const r3 = await reset(1, 3, { scenario: SCRIPT });
  assert.is((r3.header.options as { episode_hours: number }).episode_hours, 0.5);
  assert.is((r3.header.scenario as { source: string }).source, "inline");
  const none = await reset(1, 3, {});
  assert.is(none.header.scenario, null);
});

test("setpoint events: the write wins in its step, then it is the baseline the action is applied to", async () => {
  const n = 2;
  const r = await reset(n, 7, { scenario: SCRIPT, start_spread: 0 });
  let obs = arr(r, "obs");
  const belt0 = setpoint(obs, 0, "belt_speed");
  const mold0 = setpoint(obs, 0, "mold_temperature");
  assert.ok(Math.abs(belt0 - 150) < 1e-3, `nominal belt setpoint ${belt0}`);
  const flags: number[][] = [];
  const belt: number[] = [];
  const mold: number[] = [];
  for (let k = 0; k < 20; k++) {
    // the agent holds the belt except at step 7 (−1 = −10 m/min) and pushes the mold up (+1 = +10 °C) at 10..16
    const a = act(n, { belt_speed: k === 7 ? -1 : 0, mold_temperature: k >= 10 && k <= 16 ? 1 : 0 });
    const s = await step(n, a);
    obs = arr(s, "obs");
    const ov = arr(s, "setpoint_overridden");
    flags.push([ov[LEVER.belt_speed!]!, ov[LEVER.mold_temperature!]!]);
    belt.push(setpoint(obs, 0, "belt_speed"));
    mold.push(setpoint(obs, 0, "mold_temperature"));
    assert.equal(ov[A + LEVER.belt_speed!], ov[LEVER.belt_speed!], "both envs run the same script");
  }
  const near = (x: number, y: number, what: string) => assert.ok(Math.abs(x - y) < 1e-3, `${what}: ${x} vs ${y}`);
  // steps 0..4 (minutes 0..5): nothing; step 5 (minute 5..6): the belt write, flagged
  for (let k = 0; k < 5; k++) near(belt[k]!, 150, `belt before the event, step ${k}`);
  near(belt[5]!, 180, "belt at the event");
  assert.equal(
    flags.map((f) => f[0]),
    [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    "belt overridden only in the event's step",
  );
  near(belt[6]!, 180, "the write stays in force (not overwritten by a stale copy)");
  near(belt[7]!, 170, "the agent's −10 m/min applies to the scenario's 180");
  near(belt[19]!, 170, "and stays");
  // the mold ramp owns the lever for minutes 10..15: steps 10..14 follow the ramp whatever the agent asks. The ramp
  // starts from the register at its start, which already holds the agent's +10 °C of step 10 (written first).
  const from = mold0 + 10;
  for (let k = 10; k < 15; k++) near(mold[k]!, from + ((340 - from) * (k + 1 - 10)) / 5, `mold ramp step ${k}`);
  assert.equal(
    flags.map((f) => f[1]),
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0],
    "mold overridden during the ramp only",
  );
  // after the ramp the agent's +10 °C per step applies again, from the ramp's end value
  near(mold[15]!, 350, "first agent step after the ramp");
  near(mold[16]!, 360, "second");
  near(mold[17]!, 360, "held");
});

test("auto-reset replays the scenario on the new line", async () => {
  const script = {
    name: "short",
    duration_hours: 0.25,
    events: [{ type: "setpoint", at_min: 2, tag: "forming_pressure", value: 60 }],
  };
  const r = await reset(1, 11, { scenario: script, start_spread: 0 });
  assert.is((r.header.options as { episode_hours: number }).episode_hours, 0.25);
  const hits: number[] = [];
  const ended: number[] = [];
  for (let k = 0; k < 30; k++) {
    const s = await step(1, act(1));
    if (arr(s, "setpoint_overridden")[LEVER.forming_pressure!]) hits.push(k);
    if (s.header.final) {
      ended.push(k);
      assert.equal((s.header.final as { reason: string }[])[0]!.reason, "time_limit");
    }
  }
  assert.equal(ended, [14, 29], "15 steps of 60 s each");
  assert.equal(hits, [2, 17], "the event in each episode's step 2");
});

test("a scenario changes the line, deterministically per seed", async () => {
  const fan = {
    name: "early_fan",
    duration_hours: 1,
    events: [{ type: "fan_failure", at_min: 1, cooling_rate_increase: 4 }],
  };
  const run = async (options: Record<string, unknown>) => {
    await reset(2, 21, { ...options, start_spread: 0 });
    const rows: number[] = [];
    for (let k = 0; k < 20; k++) rows.push(...arr(await step(2, act(2)), "obs"));
    return rows;
  };
  const a = await run({ scenario: fan });
  const b = await run({ scenario: fan });
  const none = await run({ episode_hours: 1 });
  assert.equal(a, b, "same seed and scenario: identical observations");
  const cr = (rows: number[]) => rows[19 * 2 * D + TAG.cooling_rate!]!;
  assert.ok(cr(a) - cr(none) > 1, `cooling rate (band-normalised) ${cr(a)} with the fan failure vs ${cr(none)}`);
});

test("dataset_mix: the dataset generator's mix of each episode's seed, setpoint excursions included", async () => {
  const n = 6;
  const seed = 40;
  const r = await reset(n, seed, { scenario: "dataset_mix", start_spread: 0, episode_hours: 8 });
  assert.equal(r.header.scenario, {
    name: "dataset_mix",
    per_episode: true,
    note: "drawn from each episode's seed (mix.ts)",
  });
  const flagged = Array.from({ length: n }, () => new Set<string>());
  for (let k = 0; k < 480; k++) {
    const ov = arr(await step(n, act(n)), "setpoint_overridden");
    for (let i = 0; i < n; i++) for (let j = 0; j < A; j++) if (ov[i * A + j]) flagged[i]!.add(spec.levers[j]!.tag);
  }
  let events = 0;
  for (let i = 0; i < n; i++) {
    // the levers env i's mix moves within the episode (a ramp back may fall after its end: only the starts count)
    const mix = datasetMix(seed + i, 8, DEFAULT_TAGS);
    const moved = new Set(mix.events.flatMap((e) => (e.type === "setpoint" ? [e.tag] : [])));
    events += moved.size;
    assert.equal([...flagged[i]!].sort(), [...moved].sort(), `env ${i}: overridden levers = the mix's setpoint events`);
  }
  assert.ok(events > 0, "the seeds' mixes move some lever");
});

test("mix_rate packs more of the mix into an episode; only with dataset_mix", async () => {
  const plan = { kind: "mix" as const };
  const one = episodeScenario(plan, 9, 8, DEFAULT_TAGS);
  const three = episodeScenario(plan, 9, 8, DEFAULT_TAGS, 3);
  const long = datasetMix(9, 24, DEFAULT_TAGS);
  assert.equal(one, datasetMix(9, 8, DEFAULT_TAGS));
  assert.is(three.duration_hours, 8);
  assert.is(three.events.length, long.events.length);
  assert.ok(three.events.length > one.events.length, `${three.events.length} vs ${one.events.length} events`);
  three.events.forEach((e, k) => {
    const src = long.events[k]!;
    assert.ok(Math.abs(e.at_min - src.at_min / 3) <= 0.005, `event ${k} starts at a third of ${src.at_min}`);
    assert.is(e.duration_min, src.duration_min, `event ${k} keeps its duration`);
    assert.ok(e.at_min < 8 * 60);
  });
  const r = await reset(2, 9, { scenario: "dataset_mix", mix_rate: 3 });
  assert.is((r.header.options as { mix_rate: number }).mix_rate, 3);
  for (const options of [
    { scenario: "fan_failure", mix_rate: 2 },
    { mix_rate: 2 },
    { scenario: "dataset_mix", mix_rate: 11 },
  ]) {
    const bad = await gym.request({ type: "reset", n_envs: 1, seed: 1, options });
    assert.is(bad.header.code, "bad_option", JSON.stringify(bad.header));
    assert.ok(String(bad.header.message).includes("reset.options.mix_rate"), String(bad.header.message));
  }
});

test("bad scenarios are refused naming the field; the previous envs keep running", async () => {
  await reset(2, 5, { scenario: SCRIPT });
  const expectBad = async (options: Record<string, unknown>, mentions: string[]) => {
    const r = await gym.request({ type: "reset", n_envs: 3, seed: 1, options });
    assert.is(r.header.type, "error", JSON.stringify(r.header));
    assert.is(r.header.code, "bad_option");
    for (const m of mentions) assert.ok(String(r.header.message).includes(m), `"${r.header.message}" names ${m}`);
  };
  await expectBad({ scenario: "no_such_scenario" }, ["reset.options.scenario", "fan_failure"]);
  await expectBad({ scenario: 42 }, ["reset.options.scenario"]);
  await expectBad({ scenario: ["fan_failure"] }, ["reset.options.scenario"]);
  await expectBad({ scenario: { name: "x", events: [{ type: "setpoint", at_min: 1, tag: "nope", value: 1 }] } }, [
    "/events/0/tag",
    "nope",
  ]);
  await expectBad(
    { scenario: { name: "x", events: [{ type: "setpoint", at_min: 1, tag: "belt_speed", value: 999 }] } },
    ["/events/0/value"],
  );
  const file = join(dir, "broken.yaml");
  writeFileSync(file, "name: broken\nevents:\n  - type: fan_failure\n    at_min: -3\n");
  await expectBad({ scenario: file }, ["/events/0/at_min"]);
  // a valid file path works
  const good = join(dir, "good.yaml");
  writeFileSync(good, "name: good\nduration_hours: 0.1\nevents:\n  - type: fan_failure\n    at_min: 1\n");
  const ok = await reset(1, 1, { scenario: good });
  assert.is((ok.header.scenario as { name: string }).name, "good");
  // refused resets left the 1-env server stepping
  const s = await step(1, act(1));
  assert.is(arr(s, "obs").length, D);
});

test.run();
