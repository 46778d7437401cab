import fc from "fast-check";
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { TagConfig } from "../src/config/schema.js";
import { defaultConfig } from "../src/config/validate.js";
import { SimClock } from "../src/core/clock.js";
import type { RawSample, Sample } from "../src/core/types.js";
import {
  MAX_RAW_TEXT,
  REJECT_REASONS,
  type RejectedSample,
  type RejectReason,
  rawText,
  type ValidationResult,
  Validator,
  validatingSink,
} from "../src/ingest/validate.js";

const NOW = Date.UTC(2026, 0, 1, 12);
const config = defaultConfig();
const TAGS = config.tags;
const tagById = new Map(TAGS.map((t) => [t.id, t]));
// furnace_temperature: limits 1000..1800, period 1 s, max 2 °C/s, stale after 3 × 1 s (default stale_factor 3).
const FT = "furnace_temperature";

function setup(tags: TagConfig[] = TAGS) {
  const clock = new SimClock(NOW);
  return { clock, v: new Validator(tags, config.validation, clock) };
}

let seq = 0;
function raw(over: Partial<Record<keyof RawSample, unknown>> = {}): RawSample {
  return { tag: FT, ts: NOW, value: 1500, source: "twin", seq: ++seq, ...over } as RawSample;
}

function expectReject(r: ValidationResult, reason: RejectReason, detail?: RegExp): void {
  if (r.ok) assert.unreachable(`expected ${reason}, got accepted ${JSON.stringify(r.sample)}`);
  else {
    assert.is(r.reason, reason, r.detail);
    if (detail) assert.match(r.detail, detail);
  }
}

function expectCounts(v: Validator, expected: Partial<Record<RejectReason | "accepted", number>>): void {
  const c = v.counters();
  for (const k of ["accepted", ...REJECT_REASONS] as const) assert.is(c[k], expected[k] ?? 0, `counter ${k}`);
}

test("an accepted sample is normalised: ts rounded to ms, quality defaults to good, -0 folded, extras dropped", () => {
  const { v } = setup();
  const r = v.validate({ ...raw({ ts: NOW - 0.4, seq: 7 }), extra: "x" } as RawSample);
  assert.ok(r.ok);
  if (r.ok) assert.equal(r.sample, { tag: FT, ts: NOW, value: 1500, quality: "good", source: "twin", seq: 7 });
  const z = v.validate(raw({ tag: "furnace_power", value: -0, quality: "uncertain" }));
  assert.ok(z.ok && Object.is(z.sample.value, 0) && z.sample.quality === "uncertain");
  expectCounts(v, { accepted: 2 });
});

test("bad_envelope: not an object, empty or non-string source, negative or fractional seq", () => {
  const { v } = setup();
  expectReject(v.validate(null as unknown as RawSample), "bad_envelope", /must be an object, got null/);
  expectReject(v.validate(raw({ source: "" })), "bad_envelope", /source must not be empty/);
  expectReject(v.validate(raw({ source: 42 })), "bad_envelope", /source must be a string/);
  expectReject(v.validate(raw({ source: "a\u0000b" })), "bad_envelope", /control characters/);
  expectReject(v.validate(raw({ seq: -1 })), "bad_envelope", /seq must be a safe integer/);
  expectReject(v.validate(raw({ seq: 1.5 })), "bad_envelope", /got 1\.5/);
  expectCounts(v, { bad_envelope: 6 });
});

test("unknown_tag: a tag outside the dictionary or not a string", () => {
  const { v } = setup();
  expectReject(v.validate(raw({ tag: "furnace_temp" })), "unknown_tag", /"furnace_temp" is not in the tag dictionary/);
  expectReject(v.validate(raw({ tag: 17 })), "unknown_tag", /must be a string, got 17/);
  expectReject(v.validate(raw({ tag: "__proto__" })), "unknown_tag");
  expectCounts(v, { unknown_tag: 3 });
});

test("bad_timestamp: NaN, a date string, seconds instead of ms, microseconds", () => {
  const { v } = setup();
  expectReject(v.validate(raw({ ts: Number.NaN })), "bad_timestamp", /finite number/);
  expectReject(v.validate(raw({ ts: "2026-01-01T12:00:00Z" })), "bad_timestamp", /got "2026-01-01T12:00:00Z"/);
  expectReject(v.validate(raw({ ts: NOW / 1000 })), "bad_timestamp", /looks like seconds/);
  expectReject(v.validate(raw({ ts: NOW * 1000 })), "bad_timestamp", /microseconds/);
  expectCounts(v, { bad_timestamp: 4 });
});

test("bad_quality: given but not good|uncertain|bad (null counts as given)", () => {
  const { v } = setup();
  expectReject(v.validate(raw({ quality: "GOOD" })), "bad_quality", /got "GOOD"/);
  expectReject(v.validate(raw({ quality: null })), "bad_quality");
  assert.ok(v.validate(raw({ quality: "bad" })).ok, "quality bad is a valid quality");
  expectCounts(v, { bad_quality: 2, accepted: 1 });
});

test("wrong_type: numeric strings, booleans, null, objects and arrays are rejected", () => {
  const { v } = setup();
  expectReject(v.validate(raw({ value: "1500" })), "wrong_type", /numeric string "1500"/);
  expectReject(v.validate(raw({ value: true })), "wrong_type", /got boolean/);
  expectReject(v.validate(raw({ value: null })), "wrong_type", /got null/);
  expectReject(v.validate(raw({ value: { v: 1500 } })), "wrong_type", /got object/);
  expectReject(v.validate(raw({ value: [1500] })), "wrong_type", /got array/);
  expectReject(v.validate(raw({ value: 1500n })), "wrong_type", /got bigint/);
  expectCounts(v, { wrong_type: 6 });
});

test("not_finite: NaN and both infinities", () => {
  const { v } = setup();
  expectReject(v.validate(raw({ value: Number.NaN })), "not_finite", /NaN/);
  expectReject(v.validate(raw({ value: Number.POSITIVE_INFINITY })), "not_finite", /Infinity/);
  expectReject(v.validate(raw({ value: Number.NEGATIVE_INFINITY })), "not_finite", /-Infinity/);
  expectCounts(v, { not_finite: 3 });
});

test("out_of_range: outside the hard limits; the limits themselves are inside", () => {
  const { v } = setup();
  expectReject(v.validate(raw({ value: 999.9 })), "out_of_range", /outside the hard limits \[1000, 1800\]/);
  expectReject(v.validate(raw({ value: 1800.0001 })), "out_of_range");
  assert.ok(v.validate(raw({ tag: "belt_speed", value: 50 })).ok);
  assert.ok(v.validate(raw({ tag: "mold_temperature", value: 500 })).ok);
  expectCounts(v, { out_of_range: 2, accepted: 2 });
});

test("future: beyond future_tolerance_ms ahead of the clock; at the tolerance is fine", () => {
  const { v } = setup();
  const tol = config.validation.future_tolerance_ms;
  expectReject(v.validate(raw({ ts: NOW + tol + 1 })), "future", new RegExp(`${tol + 1} ms ahead`));
  assert.ok(v.validate(raw({ ts: NOW + tol })).ok);
  expectCounts(v, { future: 1, accepted: 1 });
});

test("stale: older than stale_factor × period_ms, or the tag's own stale_after_ms", () => {
  const { v } = setup();
  expectReject(v.validate(raw({ ts: NOW - 3001 })), "stale", /3001 ms old; furnace_temperature is stale after 3000 ms/);
  assert.ok(v.validate(raw({ ts: NOW - 3000 })).ok);
  const custom = { ...tagById.get("humidity")!, stale_after_ms: 500 };
  const { v: v2 } = setup([custom]);
  expectReject(v2.validate(raw({ tag: "humidity", value: 50, ts: NOW - 501 })), "stale", /stale after 500 ms/);
  assert.ok(v2.validate(raw({ tag: "humidity", value: 50, ts: NOW - 500 })).ok);
  expectCounts(v, { stale: 1, accepted: 1 });
});

test("rate_of_change: the first sample has no reference; the limit is |Δv|/Δt against the last accepted one", () => {
  const { v, clock } = setup();
  const t0 = NOW;
  assert.ok(v.validate(raw({ ts: t0, value: 1500 })).ok, "first sample of a tag is accepted");
  clock.set(t0 + 1000);
  assert.ok(v.validate(raw({ ts: t0 + 1000, value: 1502 })).ok, "exactly 2 °C/s is allowed");
  clock.set(t0 + 2000);
  expectReject(v.validate(raw({ ts: t0 + 2000, value: 1504.5 })), "rate_of_change", /2\.5 in 1 s \(2\.5\/s\)/);
  // The rejection did not move the reference: 1504 is 2 °C from 1502 over 1 s.
  assert.ok(v.validate(raw({ ts: t0 + 2000, value: 1504 })).ok);
  expectCounts(v, { accepted: 3, rate_of_change: 1 });
});

test("rate_of_change: Δt = 0 allows only the same value", () => {
  const { v } = setup();
  assert.ok(v.validate(raw({ value: 1500 })).ok);
  expectReject(v.validate(raw({ value: 1500.5 })), "rate_of_change", /no time elapsed/);
  assert.ok(v.validate(raw({ value: 1500 })).ok, "a repeat of the same value at the same ts is fine");
});

test("rate_of_change: out-of-order samples are checked with |Δt| and do not move the reference back", () => {
  const { v } = setup();
  assert.ok(v.validate(raw({ ts: NOW, value: 1500 })).ok);
  assert.ok(v.validate(raw({ ts: NOW - 1000, value: 1498.5 })).ok, "1.5 °C one second earlier");
  expectReject(v.validate(raw({ ts: NOW - 1000, value: 1495 })), "rate_of_change");
  // Reference is still (NOW, 1500): 1501 at NOW+500 is 2 °C/s.
  assert.ok(v.validate(raw({ ts: NOW + 500, value: 1501 })).ok);
});

test("rate_of_change: a genuine step is accepted once enough time has passed (no permanent lockout)", () => {
  const { v, clock } = setup();
  assert.ok(v.validate(raw({ ts: NOW, value: 1500 })).ok);
  for (let s = 1; s < 50; s++) {
    clock.set(NOW + s * 1000);
    expectReject(v.validate(raw({ ts: NOW + s * 1000, value: 1600 })), "rate_of_change");
  }
  clock.set(NOW + 50_000);
  assert.ok(v.validate(raw({ ts: NOW + 50_000, value: 1600 })).ok, "100 °C at 2 °C/s passes after 50 s");
});

test("rate_of_change: a sample of quality bad is stored but never becomes the reference; seed() sets one", () => {
  const { v } = setup();
  assert.ok(v.validate(raw({ ts: NOW - 1000, value: 1500 })).ok);
  assert.ok(v.validate(raw({ ts: NOW - 500, value: 1500.5, quality: "bad" })).ok);
  expectReject(v.validate(raw({ ts: NOW, value: 1503 })), "rate_of_change", /3 in 1 s/);
  const { v: v2 } = setup();
  v2.seed({ tag: FT, ts: NOW - 1000, value: 1200 });
  expectReject(v2.validate(raw({ value: 1500 })), "rate_of_change");
});

test("order of checks: the first failing check names the reason", () => {
  const { v } = setup();
  expectReject(v.validate(raw({ source: "", tag: "nope", value: Number.NaN })), "bad_envelope");
  expectReject(v.validate(raw({ tag: "nope", ts: Number.NaN })), "unknown_tag");
  expectReject(v.validate(raw({ ts: "x", quality: "meh" })), "bad_timestamp");
  expectReject(v.validate(raw({ quality: "meh", value: "1" })), "bad_quality");
  expectReject(v.validate(raw({ value: Number.NaN, ts: NOW - 1e6 })), "not_finite");
  expectReject(v.validate(raw({ value: 5000, ts: NOW + 1e6 })), "out_of_range");
  expectReject(v.validate(raw({ ts: NOW + 1e6 })), "future");
});

test("validateBatch splits in order, keeps raw values as JSON-safe text and stamps received_at", () => {
  const { v, clock } = setup();
  clock.set(NOW + 10);
  const circular: Record<string, unknown> = { a: 1 };
  circular.self = circular;
  const batch = [
    raw({ seq: 1, value: 1500 }),
    raw({ seq: 2, value: "1500" }),
    raw({ seq: 3, value: Number.NaN }),
    raw({ seq: 4, value: circular }),
    raw({ seq: "x" }),
    raw({ seq: 6, ts: NOW + 5, value: 1500.01 }),
    raw({ seq: 7, tag: "nope", value: 10n }),
  ];
  const { accepted, rejected } = v.validateBatch(batch);
  assert.equal(
    accepted.map((s) => s.seq),
    [1, 6],
  );
  assert.equal(
    rejected.map((r) => [r.seq, r.reason, r.raw_value]),
    [
      [2, "wrong_type", '"1500"'],
      [3, "not_finite", "NaN"],
      [4, "wrong_type", '{"a":1,"self":"[circular]"}'],
      [null, "bad_envelope", "1500"],
      [7, "unknown_tag", "10n"],
    ],
  );
  for (const r of rejected) {
    assert.is(r.received_at, NOW + 10);
    assert.is(r.source, "twin");
    assert.is(r.ts, NOW);
    assert.equal(JSON.parse(JSON.stringify(r)), r, "a rejection survives JSON unchanged");
  }
  expectCounts(v, { accepted: 2, wrong_type: 2, not_finite: 1, bad_envelope: 1, unknown_tag: 1 });
});

test("rawText is bounded and distinguishes strings from numbers", () => {
  assert.is(rawText(12), "12");
  assert.is(rawText("12"), '"12"');
  assert.is(rawText(-0), "-0");
  assert.is(rawText(undefined), "undefined");
  assert.is(rawText({ x: Number.POSITIVE_INFINITY }), '{"x":"Infinity"}');
  const long = rawText("x".repeat(10_000));
  assert.ok(long.length <= MAX_RAW_TEXT + 1, `bounded, got ${long.length}`);
});

test("validatingSink resolves only after append resolves, with the batch split", async () => {
  const { v } = setup();
  let release!: () => void;
  let got: [Sample[], RejectedSample[]] | undefined;
  const sink = validatingSink(v, (a, r) => {
    got = [a, r];
    return new Promise<void>((res) => {
      release = res;
    });
  });
  let done = false;
  const p = sink([raw({ seq: 1 }), raw({ seq: 2, value: "x" })]).then(() => {
    done = true;
  });
  await new Promise((r) => setImmediate(r));
  assert.is(done, false, "not acknowledged before the store resolved");
  assert.equal(
    got?.map((x) => x.length),
    [1, 1],
  );
  release();
  await p;
  assert.is(done, true);
});

test("counters() is a copy", () => {
  const { v } = setup();
  const c = v.counters();
  c.accepted = 99;
  assert.is(v.counters().accepted, 0);
});

// ── property tests ────────────────────────────────────────────────────────────────────────────────────────────────

const tagArb = fc.oneof(fc.constantFrom(...TAGS.map((t) => t.id)), fc.string(), fc.anything());
const tsArb = fc.oneof(
  fc.integer({ min: NOW - 20_000, max: NOW + 20_000 }),
  fc.double({ min: NOW - 1e9, max: NOW + 1e9 }),
  fc.double(),
  fc.anything(),
);
const valueArb = fc.oneof(
  fc.double(),
  fc.double({ min: -10_000, max: 10_000 }),
  fc.integer({ min: 0, max: 5000 }),
  fc.string(),
  fc.anything(),
);
// Mostly-valid samples, so that the property also exercises acceptance and the stateful rate-of-change path.
const plausibleArb = fc.constantFrom(...TAGS).chain((t) => {
  const span = t.limits.max - t.limits.min;
  return fc.record({
    tag: fc.constant(t.id),
    ts: fc.integer({ min: NOW - 2000, max: NOW + 2000 }),
    value: fc.double({ min: t.limits.min - span / 10, max: t.limits.max + span / 10, noNaN: true }),
    quality: fc.constantFrom("good", "uncertain", "bad", undefined),
    source: fc.constant("twin"),
    seq: fc.nat(),
  });
});
const rawArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 5, arbitrary: plausibleArb },
  {
    weight: 4,
    arbitrary: fc.record(
      {
        tag: tagArb,
        ts: tsArb,
        value: valueArb,
        quality: fc.oneof(fc.constantFrom("good", "uncertain", "bad", undefined), fc.anything()),
        source: fc.oneof(fc.constantFrom("twin", "mqtt"), fc.string(), fc.anything()),
        seq: fc.oneof(fc.nat(), fc.anything()),
      },
      { requiredKeys: [] },
    ),
  },
  { weight: 1, arbitrary: fc.anything() },
);

test("property: validate never throws; every input is accepted within limits or rejected with a known reason", () => {
  const seen = { accepted: 0, rejected: 0 };
  fc.assert(
    fc.property(fc.array(rawArb, { maxLength: 20 }), fc.integer({ min: -5000, max: 5000 }), (batch, skew) => {
      const { v, clock } = setup();
      clock.set(NOW + skew);
      for (const input of batch) {
        const r = v.validate(input as RawSample);
        seen[r.ok ? "accepted" : "rejected"]++;
        if (r.ok) {
          const rule = tagById.get(r.sample.tag);
          assert.ok(rule, "accepted tag is in the dictionary");
          assert.ok(Number.isFinite(r.sample.value), "accepted value is finite");
          assert.ok(r.sample.value >= rule!.limits.min && r.sample.value <= rule!.limits.max, "within limits");
          assert.ok(Number.isInteger(r.sample.ts), "ts is integer ms");
          assert.ok(r.sample.ts <= clock.now() + config.validation.future_tolerance_ms, "not in the future");
          assert.ok(["good", "uncertain", "bad"].includes(r.sample.quality));
          assert.ok(Number.isSafeInteger(r.sample.seq) && r.sample.seq >= 0);
        } else {
          assert.ok((REJECT_REASONS as readonly string[]).includes(r.reason), `known reason ${r.reason}`);
          assert.ok(r.detail.length > 0 && r.detail.length <= 257, "a bounded detail");
        }
      }
      const c = v.counters();
      const total = Object.values(c).reduce((a, b) => a + b, 0);
      assert.is(total, batch.length, "every input counted exactly once");
    }),
    { numRuns: 500 },
  );
  // Guard against a vacuous property: the generators must reach both outcomes.
  assert.ok(seen.accepted > 50 && seen.rejected > 50, JSON.stringify(seen));
});

test("property: validateBatch accounts for every input and its rejections are JSON-safe", () => {
  fc.assert(
    fc.property(fc.array(rawArb, { maxLength: 30 }), (batch) => {
      const { v } = setup();
      const { accepted, rejected } = v.validateBatch(batch as RawSample[]);
      assert.is(accepted.length + rejected.length, batch.length);
      for (const r of rejected) {
        assert.equal(JSON.parse(JSON.stringify(r)), r);
        assert.type(r.raw_value, "string");
        assert.ok(r.raw_value.length <= MAX_RAW_TEXT + 1);
      }
    }),
    { numRuns: 300 },
  );
});

test("regression: a refused or unstored batch does not move rate-of-change references (defer + commit)", () => {
  const { v } = setup();
  const belt = (ts: number, value: number) => raw({ tag: "belt_speed", ts, value });
  v.validateBatch([belt(NOW - 1000, 150)]); // committed reference: 150 at t-1s
  // A request whose belt_speed is valid (155) is refused because another reading failed: no commit.
  const refused = v.validateBatch([belt(NOW, 155), raw({ value: 2500 })], { defer: true });
  assert.is(refused.accepted.length, 1);
  assert.is(refused.rejected.length, 1);
  // 145 ten ms later is valid against the stored 150 (5 in 1.01 s < 10/s) but would not be against 155.
  const next = v.validateBatch([belt(NOW + 10, 145)], { defer: true });
  assert.is(next.rejected.length, 0, JSON.stringify(next.rejected));
  next.commit();
  // Within a deferred batch, later samples of a tag are checked against the earlier ones.
  const inBatch = v.validateBatch([belt(NOW + 1000, 150), belt(NOW + 1001, 170)], { defer: true });
  assert.is(inBatch.rejected[0]?.reason, "rate_of_change");
  // Not committed: the reference is still 145 at NOW+10, so 154 one second later passes.
  assert.ok(v.validate(belt(NOW + 1010, 154)).ok);
});

test.run();
