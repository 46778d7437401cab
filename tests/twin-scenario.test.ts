import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { DEFAULT_TAGS } from "../src/config/default-tags.js";
import { DEFECT_CLASSES } from "../src/core/types.js";
import { LineModel, TwinLine } from "../src/twin/index.js";
import { main } from "../src/twin/scenario/cli.js";
import {
  builtinScenarios,
  loadScenario,
  parseScenario,
  runScenario,
  type Scenario,
  ScenarioError,
  ScenarioRunner,
} from "../src/twin/scenario/index.js";

const SEC = 1000;
const MIN = 60 * SEC;
const HOUR = 60 * MIN;
const T0 = Date.UTC(2026, 0, 1);

const BUILTIN = [
  "steady",
  "furnace_drift",
  "fan_failure",
  "belt_speed_push",
  "batch_change",
  "sensor_faults",
  "mixed_shift",
];

function twin(seed = 42): TwinLine {
  return new TwinLine({ tags: DEFAULT_TAGS, seed, speed: 1, stepMs: 1000, itemsPerMin: 30, startTs: T0 });
}

/** The issues of a scenario text that must not validate, as "path: message" lines. */
function issues(text: string): string[] {
  try {
    parseScenario(text, "test.yaml");
  } catch (err) {
    assert.instance(err, ScenarioError);
    return (err as ScenarioError).issues.map((i) => `${i.path}: ${i.message}`);
  }
  assert.unreachable(`should not validate:\n${text}`);
  return [];
}

const yaml = (events: string, head = "name: t\nduration_hours: 2\n") => `${head}events:\n${events}`;

// --- built-ins ---

test("every built-in scenario is listed, validates, and runs with its expected signature", () => {
  const all = builtinScenarios();
  assert.equal(all.map((s) => s.name).sort(), [...BUILTIN].sort());
  const results = new Map<string, ReturnType<typeof runScenario>>();
  for (const b of all) {
    assert.ok(b.description.length > 20, `${b.name} has a description`);
    const s = loadScenario(b.name);
    assert.is(s.name, b.name);
    assert.ok((s.duration_hours ?? 0) >= 6, `${b.name} lasts a shift`);
    const r = runScenario(s, { hours: s.duration_hours!, seed: 42, itemsPerMin: 15 });
    assert.is(r.hourly.length, Math.ceil(s.duration_hours!));
    assert.ok(r.total.items > 800 * s.duration_hours!, `${b.name}: ${r.total.items} items`);
    results.set(b.name, r);
  }
  const rate = (name: string, cls: (typeof DEFECT_CLASSES)[number], from = 0, to = 99) =>
    results
      .get(name)!
      .hourly.slice(from, to)
      .reduce((a, h) => a + h.classRates[cls] * h.items, 0) /
    results
      .get(name)!
      .hourly.slice(from, to)
      .reduce((a, h) => a + h.items, 0);
  const steady = results.get("steady")!.total;
  assert.ok(steady.defective >= 0.01 && steady.defective <= 0.05, `steady: ${steady.defective}`);
  assert.ok(rate("fan_failure", "crack", 3, 5) > 10 * rate("steady", "crack"), "fan failure → cracks");
  assert.ok(
    rate("belt_speed_push", "deformation", 2, 4) > 5 * rate("steady", "deformation"),
    "belt push → deformation",
  );
  assert.ok(rate("furnace_drift", "bubble", 5, 8) > 2.5 * rate("steady", "bubble"), "furnace drift → bubbles");
  assert.ok(rate("batch_change", "bubble", 4, 10) > 2 * rate("steady", "bubble"), "batch change → bubbles");
  assert.ok(rate("mixed_shift", "stain", 2, 5) > 3 * rate("steady", "stain"), "humid afternoon → stains");
  // Sensor faults show in the measurements only: the defects are those of the steady line, item for item.
  assert.equal(
    results.get("sensor_faults")!.total.classRates,
    runScenario(loadScenario("steady"), { hours: 6, seed: 42 }).total.classRates,
  );
  assert.ok(results.get("sensor_faults")!.hourly[2]!.droppedSamples === 900, "cooling_rate dropout: 30 min at 2 s");
});

// --- schema errors name the path ---

test("schema errors name the path and say what is wrong", () => {
  assert.equal(
    issues(
      yaml(
        "  - {type: setpoint, at_min: 0, tag: belt_speed, value: 160}\n  - {type: fan_failure, at_min: 1}\n  - {type: burner_trip, at_min: -5}\n",
      ),
    ),
    ["/events/2/at_min: must be >= 0"],
  );
  assert.equal(issues(yaml("  - {type: fan_failure, at_min: 1, colour: red}\n")), ["/events/0/colour: unknown key"]);
  assert.equal(issues(yaml("  - {type: setpoint, at_min: 1, value: 3}\n")), ["/events/0/tag: is required"]);
  assert.match(
    issues(yaml("  - {type: volcano, at_min: 1}\n"))[0]!,
    /^\/events\/0\/type: unknown event type "volcano"; one of setpoint, batch_change/,
  );
  assert.match(issues(yaml("  - {at_min: 1}\n"))[0]!, /^\/events\/0\/type: is required/);
  assert.match(
    issues(yaml("  - {type: sensor_fault, at_min: 1, tag: belt_speed, fault: melted}\n"))[0]!,
    /^\/events\/0\/fault: unknown fault "melted"; one of stuck, drift, spike, dropout, noise_burst/,
  );
  assert.equal(issues(yaml("  - {type: sensor_fault, at_min: 1, tag: belt_speed, fault: drift}\n")), [
    "/events/0/rate_per_min: is required",
  ]);
  assert.equal(issues(yaml("  - {type: sensor_fault, at_min: 1, tag: belt_speed, fault: dropout, sigma: 2}\n")), [
    "/events/0/sigma: unknown key",
  ]);
  assert.equal(issues(yaml("  - {type: cullet_change, at_min: 1, cullet_fraction: 1.5}\n")), [
    "/events/0/cullet_fraction: must be <= 0.95",
  ]);
  assert.equal(issues(yaml("  - {type: setpoint, at_min: 1, tag: belt_speed, value: .nan}\n")), [
    "/events/0/value: must be a finite number",
  ]);
  assert.equal(issues("name: Bad Name\nevents: []\nextra: 1\n").sort(), [
    "/extra: unknown key",
    '/name: must match pattern "^[a-z][a-z0-9_]*$"',
  ]);
  assert.equal(issues("name: t\n"), ["/events: is required"]);
  assert.equal(issues("- 1\n- 2\n"), ["/: must be an object"]);
  assert.match(issues("name: t\nevents: [\n")[0]!, /^\/: not valid YAML\/JSON: /);
  assert.equal(issues('{"name": "t", "events": [{"type": "humidity", "at_min": 0, "value": 120}]}'), [
    "/events/0/value: must be <= 100",
  ]);
});

test("tag checks: unknown tags, tags without a lever, impossible setpoints, events after the end", () => {
  assert.match(
    issues(yaml("  - {type: setpoint, at_min: 1, tag: belt_sped, value: 160}\n"))[0]!,
    /^\/events\/0\/tag: unknown tag "belt_sped"; known tags: batch_flow/,
  );
  assert.match(
    issues(yaml("  - {type: setpoint, at_min: 1, tag: humidity, value: 60}\n"))[0]!,
    /^\/events\/0\/tag: "humidity" is not writable \(no actuator\); writable: batch_flow/,
  );
  assert.equal(issues(yaml("  - {type: setpoint, at_min: 1, tag: belt_speed, value: 500}\n")), [
    "/events/0/value: 500 m/min is outside belt_speed's actuator range 80..220 m/min",
  ]);
  assert.equal(issues(yaml("  - {type: fan_failure, at_min: 200}\n")), [
    "/events/0/at_min: 200 is after the end of the scenario (duration_hours 2 = 120 min)",
  ]);
  assert.match(
    issues(yaml("  - {type: sensor_fault, at_min: 1, tag: nope, fault: dropout}\n"))[0]!,
    /^\/events\/0\/tag: unknown tag "nope"/,
  );
  // A runner checks against the line it is attached to: a tag that line does not have is refused there.
  const scenario = parseScenario(yaml("  - {type: setpoint, at_min: 1, tag: belt_speed, value: 160}\n"));
  const small = new LineModel({ tags: DEFAULT_TAGS.filter((t) => t.id !== "belt_speed"), seed: 1 });
  assert.throws(() => new ScenarioRunner(scenario).attach(small), /\/events\/0\/tag: unknown tag "belt_speed"/);
  assert.throws(
    () => loadScenario("no_such_scenario"),
    /cannot read "no_such_scenario" \(ENOENT\); built-in scenarios: batch_change/,
  );
  assert.throws(
    () => new ScenarioRunner({ name: "x", events: [] }, { loop: true }),
    /\/duration_hours: is required to loop/,
  );
});

// --- the runner ---

test("runner: a setpoint change acts from its minute; a ramp is linear; duration_min returns to the old value", () => {
  const s = parseScenario(
    yaml(
      "  - {type: setpoint, at_min: 10, tag: mold_temperature, value: 340}\n" +
        "  - {type: setpoint, at_min: 20, tag: belt_speed, value: 170, ramp_min: 10, duration_min: 30}\n",
    ),
  );
  const tw = twin();
  new ScenarioRunner(s).attach(tw);
  const sp = (tag: string, atMin: number) => {
    tw.advance(T0 + atMin * MIN - tw.now());
    return tw.readSetpoint(tag);
  };
  assert.is(sp("mold_temperature", 10), 320, "not before its minute");
  assert.is(sp("mold_temperature", 10 + 1 / 60), 340, "in the first step of its minute");
  assert.is(sp("belt_speed", 20), 150);
  assert.is(sp("belt_speed", 25), 160, "half-way up the ramp");
  assert.is(sp("belt_speed", 30), 170);
  assert.is(sp("belt_speed", 50), 170, "held for duration_min");
  assert.is(sp("belt_speed", 55), 160, "ramping back");
  assert.is(sp("belt_speed", 61), 150, "back to the value before the event");
});

test("runner: disturbances and sensor faults start and end at their exact times, labels follow", () => {
  const s = parseScenario(
    yaml(
      "  - {type: burner_trip, at_min: 5, duration_min: 10, power_loss: 0.5, recovery_min: 0}\n" +
        "  - {type: sensor_fault, at_min: 30, tag: belt_speed, fault: dropout, duration_min: 5}\n",
    ),
  );
  const tw = twin();
  const runner = new ScenarioRunner(s).attach(tw);
  const out = tw.advance(HOUR);
  const belt = out.samples.filter((x) => x.tag === "belt_speed").map((x) => x.ts - T0);
  assert.is(belt.length, 3601 - 5 * 60, "no belt samples for 5 min");
  assert.ok(
    !belt.some((t) => t >= 30 * MIN && t < 35 * MIN) && belt.includes(35 * MIN) && belt.includes(30 * MIN - SEC),
  );
  assert.equal(
    tw.model.activeDisturbances(T0 + 10 * MIN).map((d) => d.kind),
    ["burner_trip"],
  );
  assert.equal(tw.model.activeDisturbances(T0 + 15 * MIN), []);
  assert.is(tw.model.sensorFaultAt("belt_speed", T0 + 32 * MIN), "dropout");
  assert.equal(
    runner.activeEvents(T0 + 12 * MIN).map((e) => e.index),
    [0],
  );
  assert.equal(
    runner.activeEvents(T0 + 31 * MIN).map((e) => e.index),
    [1],
  );
  assert.equal(runner.activeEvents(T0 + 40 * MIN), []);
});

test("runner: the same seed and scenario give the same line, sample for sample; another seed differs", () => {
  const s = loadScenario("mixed_shift");
  const run = (seed: number) => {
    const tw = twin(seed);
    new ScenarioRunner(s).attach(tw);
    // Jump to the busy part of the shift: the burner trip, then the belt push.
    tw.advance(170 * MIN);
    return tw.advance(2.5 * HOUR);
  };
  const a = run(7);
  const b = run(7);
  assert.ok(a.samples.length > 50_000 && a.inspections.length > 4000, `${a.samples.length}, ${a.inspections.length}`);
  assert.equal(a, b);
  const c = run(8);
  assert.ok(a.samples.some((x, i) => x.value !== c.samples[i]?.value));
  // A scenario run differs from the plain line with the same seed (the events act).
  const plain = twin(7);
  plain.advance(170 * MIN);
  assert.ok(
    plain.advance(2.5 * HOUR).inspections.filter((e) => !e.ok).length < a.inspections.filter((e) => !e.ok).length,
  );
});

test("runner: loop mode replays the scenario every duration_hours from the setpoints found at attach", () => {
  const s = parseScenario(
    yaml("  - {type: setpoint, at_min: 30, tag: forming_pressure, value: 55}\n", "name: loop\nduration_hours: 1\n"),
  );
  const tw = twin();
  new ScenarioRunner(s, { loop: true }).attach(tw);
  const at = (m: number) => {
    tw.advance(T0 + m * MIN - tw.now());
    return tw.readSetpoint("forming_pressure");
  };
  assert.equal([at(29), at(31), at(61), at(89), at(91)], [50, 55, 50, 50, 55]);
});

test("runner: attach twice is refused; detach stops further events", () => {
  const s = parseScenario(yaml("  - {type: setpoint, at_min: 10, tag: belt_speed, value: 160}\n"));
  const tw = twin();
  const r = new ScenarioRunner(s).attach(tw);
  assert.throws(() => r.attach(tw), /already attached/);
  r.detach();
  tw.advance(20 * MIN);
  assert.is(tw.readSetpoint("belt_speed"), 150);
});

// --- command line ---

function cli(argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  return main(argv, { out: (s) => out.push(s), err: (s) => err.push(s) }).then((code) => ({
    code,
    out: out.join("\n"),
    err: err.join("\n"),
  }));
}

test("CLI: list, check, run", async () => {
  const list = await cli(["list"]);
  assert.is(list.code, 0);
  for (const n of BUILTIN) assert.match(list.out, new RegExp(`^${n} `, "m"));

  const dir = mkdtempSync(join(tmpdir(), "glassd-scenario-"));
  try {
    const good = join(dir, "good.json");
    writeFileSync(
      good,
      JSON.stringify({ name: "good", events: [{ type: "fan_failure", at_min: 5 }] } satisfies Scenario),
    );
    const bad = join(dir, "bad.yaml");
    writeFileSync(
      bad,
      yaml("  - {type: setpoint, at_min: 1, tag: belt_speed, value: 160}\n  - {type: fan_failure, at_min: -1}\n"),
    );
    const ok = await cli(["check", good, "steady"]);
    assert.is(ok.code, 0);
    assert.match(ok.out, /good\.json: ok \(scenario "good", 1 events\)/);
    const no = await cli(["check", good, bad]);
    assert.is(no.code, 1);
    assert.match(no.err, /bad\.yaml: invalid scenario\n {2}\/events\/1\/at_min: must be >= 0/);
    const missing = await cli(["check", join(dir, "nope.yaml")]);
    assert.is(missing.code, 1);
    assert.match(missing.err, /cannot read .*nope\.yaml" \(ENOENT\)/);

    const run = await cli(["run", good, "--hours", "1", "--seed", "3"]);
    assert.is(run.code, 0, run.err);
    assert.match(run.out, /scenario good, seed 3, 1 h/);
    assert.match(
      run.out,
      /hour +items +def% +crack +bubble +chip +cloud +deform +stain +stone +scratch +\| +T_melt +power +belt/,
    );
    assert.match(run.out, /^ {3}0 +\d+ /m);
    assert.match(run.out, /fan_failure/);
    const json = await cli(["run", "steady", "--hours", "0.5", "--json"]);
    const parsed = JSON.parse(json.out);
    assert.is(parsed.scenario, "steady");
    assert.is(parsed.seed, 42);
    assert.equal(Object.keys(parsed.total.classRates), [...DEFECT_CLASSES]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("CLI: bad arguments are usage errors (exit 2) that name the argument", async () => {
  const cases: [string[], RegExp][] = [
    [[], /a command is needed: list, check or run/],
    [["fly"], /unknown command "fly"; valid: list, check, run/],
    [["run"], /run needs exactly one NAME or FILE/],
    [["run", "steady", "--hours=-1"], /--hours expects hours > 0 \(at most 8760\), got "-1"/],
    [["run", "steady", "--hours", "-1"], /Option '--hours' argument is ambiguous/],
    [["run", "steady", "--hours", "abc"], /--hours expects hours > 0 \(at most 8760\), got "abc"/],
    [["run", "steady", "--seed", "1.5"], /--seed expects an integer, got "1.5"/],
    [["run", "steady", "--step-ms", "5"], /--step-ms expects an integer 10\.\.60000/],
    [["run", "steady", "--colour"], /Unknown option '--colour'/],
    [["check"], /check needs at least one FILE/],
    [["list", "x"], /list takes no argument/],
  ];
  for (const [argv, msg] of cases) {
    const r = await cli(argv);
    assert.is(r.code, 2, argv.join(" "));
    assert.match(r.err, msg);
    assert.match(r.err, /Try 'glassd twin scenario --help'/);
  }
  const help = await cli(["--help"]);
  assert.is(help.code, 0);
  assert.match(help.out, /glassd twin scenario run NAME\|FILE/);
  const unknown = await cli(["run", "no_such_scenario"]);
  assert.is(unknown.code, 1);
  assert.match(unknown.err, /cannot read "no_such_scenario"/);
});

test.run();
