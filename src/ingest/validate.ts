import type { Config, TagConfig } from "../config/schema.js";
import type { Clock } from "../core/clock.js";
import type { Quality, RawSample, Sample } from "../core/types.js";
import type { Rejected } from "../storage/index.js";
import type { SampleSink } from "./ports.js";

/*
 * Sample validation: every RawSample comes out either as a normalised Sample or as a rejection with a reason and a
 * human detail; nothing is dropped silently, and every outcome is counted.
 *
 * Checks, in this order (the first failing one names the reason):
 *   1. bad_envelope    the sample is not an object, `source` is not a non-empty string (≤ 128 chars, no control
 *                      characters) or `seq` is not a safe integer ≥ 0. Not plant data: the adapter is broken.
 *   2. unknown_tag     `tag` is not a string or not in the tag dictionary.
 *   3. bad_timestamp   `ts` is not a finite number, or lies outside 2000-01-01 … 2200-01-01 (catches seconds and
 *                      micro/nanoseconds passed as ms). A fractional ms is fine and is rounded to the nearest ms.
 *   4. bad_quality     `quality` is given (null counts as given) but is not good | uncertain | bad.
 *   5. wrong_type      `value` is not a JS number. Numeric strings ("12.5") are rejected too: parsing is the
 *                      adapter's job, where the wire format is known; guessing here would hide a broken adapter.
 *   6. not_finite      NaN, +Infinity, -Infinity.
 *   7. out_of_range    outside the tag's hard limits (closed interval).
 *   8. future          ts > now + validation.future_tolerance_ms.
 *   9. stale           ts < now − (tag.stale_after_ms ?? validation.stale_factor × tag.period_ms).
 *  10. rate_of_change  |Δvalue| / |Δt| > tag.max_rate_per_s against the reference sample of the tag.
 *
 * Structure comes first (nothing else can be trusted without it), then what the value is, then when it was taken,
 * and the one stateful check last, so that only a sample that passed everything else is compared with, or becomes,
 * the reference.
 *
 * Rate of change, the details:
 * - The reference is the accepted sample of the tag with the greatest ts whose quality is not "bad" (a value the
 *   source itself flags as bad must not become the yardstick for the next good one). Tags without max_rate_per_s
 *   are not checked. The first sample of a tag has no reference and is accepted (seed it with `seed()` after a
 *   restart, e.g. from Store.latest()).
 * - Out-of-order samples (ts before the reference) are checked with |Δt| and never move the reference back.
 * - Δt = 0: any change is an infinite rate and is rejected; the same value again is accepted.
 * - A rejection never updates the reference, so a genuine step change is quarantined only until enough time has
 *   passed for |Δv| ≤ max_rate × Δt (e.g. 300 °C at 2 °C/s: 150 s); the check cannot lock a tag out for good.
 * - A relative tolerance of 1e-9 keeps float noise at exactly the limit from flapping.
 */

export const REJECT_REASONS = [
  "bad_envelope",
  "unknown_tag",
  "bad_timestamp",
  "bad_quality",
  "wrong_type",
  "not_finite",
  "out_of_range",
  "future",
  "stale",
  "rate_of_change",
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

/** Outcome of `Validator.validate`. */
export type ValidationResult = { ok: true; sample: Sample } | { ok: false; reason: RejectReason; detail: string };

/** Counts per outcome since the validator was built; a plain object for metrics. */
export type ValidationCounters = Record<RejectReason | "accepted", number>;

/** A rejected sample ready for the quarantine (`Store.appendBatch`). */
export interface RejectedSample extends Rejected {
  reason: RejectReason;
}

/** `Validator.validateBatch` output: every input is in exactly one of the two lists, in input order. */
export interface ValidatedBatch {
  accepted: Sample[];
  rejected: RejectedSample[];
}

/** Earliest/latest plausible source timestamps (ms epoch). */
export const MIN_TS = Date.UTC(2000, 0, 1);
export const MAX_TS = Date.UTC(2200, 0, 1);

/** Longest raw-value text kept in a rejection, and longest detail. */
export const MAX_RAW_TEXT = 256;
const MAX_DETAIL = 256;
const MAX_ID = 128;

interface Rule {
  min: number;
  max: number;
  staleAfterMs: number;
  maxRatePerS: number | undefined;
}

interface Reference {
  ts: number;
  value: number;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what is refused
const CONTROL = /[\u0000-\u001f\u007f]/;

/** A tag's stale horizon (ms): how old a sample may be, in line time, before it is rejected. */
export function staleAfterMs(tag: TagConfig, config: Pick<Config["validation"], "stale_factor">): number {
  return tag.stale_after_ms ?? config.stale_factor * tag.period_ms;
}

/** The shortest stale horizon over the tags (ms): how old a sample may be, in line time, before it is rejected. */
export function shortestStaleMs(
  tags: readonly TagConfig[],
  config: Pick<Config["validation"], "stale_factor">,
): number {
  let min = Number.POSITIVE_INFINITY;
  for (const t of tags) min = Math.min(min, staleAfterMs(t, config));
  return min;
}

/**
 * Validates raw samples against the tag dictionary. Holds per-tag rate-of-change references, so use one instance
 * per pipeline and feed it samples in arrival order. `validate` never throws.
 */
export class Validator {
  private readonly rules = new Map<string, Rule>();
  private readonly refs = new Map<string, Reference>();
  private readonly counts: ValidationCounters = zeroCounters();
  private readonly futureToleranceMs: number;
  /** References moved by the batch being validated with `defer`, not yet committed. */
  private pending: Map<string, Reference> | undefined;

  constructor(
    tags: readonly TagConfig[],
    config: Config["validation"],
    private readonly clock: Clock,
  ) {
    this.futureToleranceMs = config.future_tolerance_ms;
    for (const t of tags)
      this.rules.set(t.id, {
        min: t.limits.min,
        max: t.limits.max,
        staleAfterMs: staleAfterMs(t, config),
        maxRatePerS: t.max_rate_per_s,
      });
  }

  /** Validates one sample against the clock's current time. */
  validate(raw: RawSample): ValidationResult {
    return this.run(raw, this.clock.now());
  }

  /**
   * Validates a batch in order (one clock reading for all of it) and splits it into accepted samples and
   * quarantine-ready rejections stamped with `received_at`.
   */
  validateBatch(batch: readonly RawSample[]): ValidatedBatch;
  /**
   * With `defer`, the rate-of-change references this batch would move are held aside (later samples of the same
   * batch still see them) and applied only by `commit()`: call it once the batch is durable, and never for a batch
   * that was refused or failed to store, so a reading that was never stored cannot become the next reference.
   */
  validateBatch(batch: readonly RawSample[], opts: { defer: true }): ValidatedBatch & { commit(): void };
  validateBatch(batch: readonly RawSample[], opts?: { defer?: boolean }): ValidatedBatch & { commit?(): void } {
    const now = this.clock.now();
    const accepted: Sample[] = [];
    const rejected: RejectedSample[] = [];
    const pending = opts?.defer ? new Map<string, Reference>() : undefined;
    this.pending = pending;
    try {
      for (const raw of batch) {
        const r = this.run(raw, now);
        if (r.ok) accepted.push(r.sample);
        else rejected.push(toRejected(raw, r.reason, r.detail, now));
      }
    } finally {
      this.pending = undefined;
    }
    if (!pending) return { accepted, rejected };
    return {
      accepted,
      rejected,
      commit: () => {
        for (const [tag, ref] of pending) this.remember(tag, ref.ts, ref.value);
      },
    };
  }

  /** Sets the rate-of-change reference of `tag` (only if newer than the current one), e.g. after a restart. */
  seed(sample: Pick<Sample, "tag" | "ts" | "value">): void {
    if (!this.rules.has(sample.tag) || !Number.isFinite(sample.ts) || !Number.isFinite(sample.value)) return;
    this.remember(sample.tag, sample.ts, sample.value);
  }

  /** A copy of the counters. */
  counters(): ValidationCounters {
    return { ...this.counts };
  }

  private run(raw: RawSample, now: number): ValidationResult {
    let r: ValidationResult;
    try {
      r = this.check(raw, now);
    } catch (e) {
      // Only reachable with exotic inputs (a throwing getter or proxy); still an outcome, never an exception.
      r = { ok: false, reason: "bad_envelope", detail: clip(`sample could not be read: ${errorText(e)}`, MAX_DETAIL) };
    }
    this.counts[r.ok ? "accepted" : r.reason]++;
    return r;
  }

  private check(raw: RawSample, now: number): ValidationResult {
    if (typeof raw !== "object" || raw === null)
      return reject("bad_envelope", `a sample must be an object, got ${typeName(raw)}`);
    const { tag, ts, value, quality, source, seq } = raw as unknown as Record<string, unknown>;

    const sp = sourceProblem(source);
    if (sp) return reject("bad_envelope", `source ${sp}`);
    if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 0)
      return reject("bad_envelope", `seq must be a safe integer >= 0, got ${rawText(seq, 40)}`);

    if (typeof tag !== "string") return reject("unknown_tag", `tag must be a string, got ${rawText(tag, 64)}`);
    const rule = this.rules.get(tag);
    if (!rule) return reject("unknown_tag", `tag ${JSON.stringify(clip(tag, 64))} is not in the tag dictionary`);

    if (typeof ts !== "number" || !Number.isFinite(ts))
      return reject("bad_timestamp", `ts must be a finite number of ms since the epoch, got ${rawText(ts, 64)}`);
    if (ts < MIN_TS)
      return reject(
        "bad_timestamp",
        ts >= MIN_TS / 1000 && ts < MAX_TS / 1000
          ? `ts ${ts} is before 2000-01-01; it looks like seconds, ts must be milliseconds`
          : `ts ${ts} is before 2000-01-01`,
      );
    if (ts >= MAX_TS)
      return reject("bad_timestamp", `ts ${ts} is after 2200-01-01; microseconds or nanoseconds instead of ms?`);
    const t = Math.round(ts);

    if (quality !== undefined && quality !== "good" && quality !== "uncertain" && quality !== "bad")
      return reject("bad_quality", `quality must be good, uncertain or bad, got ${rawText(quality, 64)}`);

    if (typeof value !== "number") {
      if (typeof value === "string" && value.trim() !== "" && Number.isFinite(Number(value)))
        return reject(
          "wrong_type",
          `value is the numeric string ${rawText(value, 64)}; values must arrive as numbers (the adapter parses them)`,
        );
      return reject("wrong_type", `value must be a number, got ${typeName(value)}`);
    }
    if (!Number.isFinite(value)) return reject("not_finite", `value is ${value}`);
    if (value < rule.min || value > rule.max)
      return reject("out_of_range", `value ${value} is outside the hard limits [${rule.min}, ${rule.max}] of ${tag}`);

    if (t > now + this.futureToleranceMs)
      return reject("future", `ts is ${t - now} ms ahead of the clock (tolerance ${this.futureToleranceMs} ms)`);
    if (t < now - rule.staleAfterMs)
      return reject("stale", `sample is ${now - t} ms old; ${tag} is stale after ${rule.staleAfterMs} ms`);

    const v = value === 0 ? 0 : value; // folds -0 into 0
    const q: Quality = quality ?? "good";
    if (rule.maxRatePerS !== undefined) {
      const ref = this.pending?.get(tag) ?? this.refs.get(tag);
      if (ref) {
        const dtS = Math.abs(t - ref.ts) / 1000;
        const dv = Math.abs(v - ref.value);
        const allowed = rule.maxRatePerS * dtS;
        if (dv > allowed + 1e-9 * Math.max(1, allowed, Math.abs(v), Math.abs(ref.value)))
          return reject(
            "rate_of_change",
            dtS === 0
              ? `value changed by ${fmt(dv)} with no time elapsed since the reference sample at the same ts`
              : `value changed by ${fmt(dv)} in ${fmt(dtS)} s (${fmt(dv / dtS)}/s); ${tag} changes at most ${rule.maxRatePerS}/s`,
          );
      }
      if (q !== "bad") this.remember(tag, t, v, this.pending);
    }
    return { ok: true, sample: { tag, ts: t, value: v, quality: q, source: source as string, seq } };
  }

  /** Moves the reference of `tag` forward (never back) in `into`: the committed map, or a deferred batch's map. */
  private remember(tag: string, ts: number, value: number, into: Map<string, Reference> = this.refs): void {
    const current = into.get(tag) ?? this.refs.get(tag);
    if (current && ts < current.ts) return;
    const own = into.get(tag);
    if (own) {
      // Mutated in place: one object per tag, not one per sample.
      own.ts = ts;
      own.value = value;
    } else into.set(tag, { ts, value });
  }
}

/**
 * The SampleSink that sources attach to: validates the batch and hands both halves to `append` (normally
 * `store.appendBatch`), resolving only when that does, i.e. when the batch is durable.
 */
export function validatingSink(
  validator: Validator,
  append: (accepted: Sample[], rejected: RejectedSample[]) => Promise<unknown>,
): SampleSink {
  return async (batch) => {
    const { accepted, rejected, commit } = validator.validateBatch(batch, { defer: true });
    await append(accepted, rejected);
    commit();
  };
}

function zeroCounters(): ValidationCounters {
  const c = { accepted: 0 } as ValidationCounters;
  for (const r of REJECT_REASONS) c[r] = 0;
  return c;
}

function reject(reason: RejectReason, detail: string): ValidationResult {
  return { ok: false, reason, detail: clip(detail, MAX_DETAIL) };
}

function sourceProblem(source: unknown): string | undefined {
  if (typeof source !== "string") return `must be a string, got ${rawText(source, 40)}`;
  if (source.length === 0) return "must not be empty";
  if (source.length > MAX_ID) return `must be at most ${MAX_ID} characters`;
  if (CONTROL.test(source)) return "must not contain control characters";
  return undefined;
}

/** Builds the quarantine record; reads the raw sample defensively (it failed validation, anything goes). */
function toRejected(raw: unknown, reason: RejectReason, detail: string, receivedAt: number): RejectedSample {
  const base = { received_at: receivedAt, reason, detail };
  try {
    if (typeof raw !== "object" || raw === null)
      return { ...base, tag: "", ts: null, raw_value: rawText(raw), source: "", seq: null };
    const o = raw as Record<string, unknown>;
    return {
      ...base,
      tag: typeof o.tag === "string" ? clip(o.tag, MAX_ID) : rawText(o.tag, MAX_ID),
      ts: typeof o.ts === "number" && Number.isFinite(o.ts) ? o.ts : null,
      raw_value: rawText(o.value),
      source: typeof o.source === "string" ? clip(o.source, MAX_ID) : rawText(o.source, MAX_ID),
      seq: typeof o.seq === "number" && Number.isSafeInteger(o.seq) && o.seq >= 0 ? o.seq : null,
    };
  } catch (e) {
    return { ...base, tag: "", ts: null, raw_value: `[unreadable: ${errorText(e)}]`, source: "", seq: null };
  }
}

/**
 * A value as bounded, JSON-safe text: numbers as JS prints them (NaN, Infinity, -0 spelled out), strings quoted so
 * "12" and 12 stay distinguishable, objects as JSON (bigint, non-finite numbers and cycles made printable).
 */
export function rawText(v: unknown, max = MAX_RAW_TEXT): string {
  let s: string;
  switch (typeof v) {
    case "number":
      s = Object.is(v, -0) ? "-0" : String(v);
      break;
    case "string":
      s = JSON.stringify(v.length > max ? v.slice(0, max) : v);
      break;
    case "bigint":
      s = `${v}n`;
      break;
    case "boolean":
      s = String(v);
      break;
    case "undefined":
      s = "undefined";
      break;
    case "symbol":
      s = v.toString();
      break;
    case "function":
      s = "[function]";
      break;
    default:
      s = v === null ? "null" : objectText(v as object);
  }
  return clip(s, max);
}

function objectText(o: object): string {
  try {
    const seen = new WeakSet<object>();
    const text = JSON.stringify(o, (_k, x: unknown) => {
      if (typeof x === "bigint") return `${x}n`;
      if (typeof x === "number" && !Number.isFinite(x)) return String(x);
      if (typeof x === "object" && x !== null) {
        if (seen.has(x)) return "[circular]";
        seen.add(x);
      }
      return x;
    });
    return text ?? Object.prototype.toString.call(o);
  } catch {
    return Object.prototype.toString.call(o);
  }
}

function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  return typeof v;
}

function errorText(e: unknown): string {
  try {
    return e instanceof Error ? e.message : String(e);
  } catch {
    return "unprintable error";
  }
}

function fmt(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toPrecision(6).replace(/\.?0+$/, "");
}

/** Bounds `s` to `max` UTF-16 units without splitting a surrogate pair. */
function clip(s: string, max: number): string {
  if (s.length <= max) return s;
  let end = max;
  const c = s.charCodeAt(end - 1);
  if (c >= 0xd800 && c <= 0xdbff) end--;
  return `${s.slice(0, end)}…`;
}
