import type { TagConfig } from "../../config/schema.js";
import type { Quality } from "../../core/types.js";
import type { Rejected } from "../../storage/index.js";
import { rawText } from "../validate.js";
import type { JsonTopicRule } from "./config.js";

/*
 * Plain JSON topics → samples. A rule names a topic filter (wildcards allowed), where the tag id comes from (fixed,
 * a topic level, or a path in the payload) and the dotted paths of value, timestamp and quality. The tag
 * dictionary's `sources.mqtt {topic, path}` entries become fixed-tag rules. One message may feed several tags
 * (several rules on one topic). Whatever cannot become a sample is a rejection with an MQTT reason:
 *
 *   mqtt_bad_json       the payload is not UTF-8 JSON
 *   mqtt_missing_path   the value path (or the tag path / tag level) is not in the message
 *   mqtt_not_number     the value is there but is not a JSON number (string, bool, null, object)
 *   mqtt_bad_timestamp  the timestamp is there but is neither a number nor an ISO-8601 date
 *
 * The validator then applies the usual checks (unknown tag, limits, staleness …) to the samples.
 */

export const MQTT_JSON_REASONS = [
  "mqtt_bad_json",
  "mqtt_missing_path",
  "mqtt_not_number",
  "mqtt_bad_timestamp",
] as const;
export type MqttJsonReason = (typeof MQTT_JSON_REASONS)[number];

/** A sample decoded from a message; the source stamps `source` and `seq`. */
export interface DecodedSample {
  tag: string;
  ts: number;
  value: unknown;
  quality?: Quality;
}

/** A rejection before the source stamps it (`source`, `seq: null`). */
export type DecodedRejection = Omit<Rejected, "source" | "seq"> & { reason: MqttJsonReason | string };

interface CompiledRule {
  filter: string;
  levels: string[];
  tag: string | undefined;
  tagLevel: number | undefined;
  tagPath: string[] | undefined;
  valuePath: string[];
  tsPath: string[];
  tsScale: number;
  qualityPath: string[];
}

/** Does an MQTT topic filter match a topic (MQTT 5 §4.7; '$' topics never match a leading wildcard)? */
export function topicMatches(filter: string, topic: string): boolean {
  return levelsMatch(filter.split("/"), topic.split("/"));
}

function levelsMatch(f: readonly string[], t: readonly string[]): boolean {
  if (t[0]?.startsWith("$") && (f[0] === "+" || f[0] === "#")) return false;
  for (let i = 0; i < f.length; i++) {
    const fl = f[i]!;
    if (fl === "#") return true;
    if (i >= t.length) return false;
    if (fl !== "+" && fl !== t[i]) return false;
  }
  return f.length === t.length;
}

/** Whether every topic that `f` matches is also matched by `g`. */
export function filterCovers(g: string, f: string): boolean {
  const gl = g.split("/");
  const fl = f.split("/");
  for (let i = 0; i < gl.length; i++) {
    const a = gl[i]!;
    if (a === "#") return !(i === 0 && fl[0] !== "#" && fl[0]!.startsWith("$"));
    if (i >= fl.length) return false;
    const b = fl[i]!;
    if (b === "#") return false;
    if (a === "+") {
      if (i === 0 && b.startsWith("$")) return false;
      continue;
    }
    if (a !== b) return false;
  }
  return gl.length === fl.length;
}

/** Checks a topic filter; returns a problem or undefined. */
export function filterProblem(filter: string): string | undefined {
  if (filter.length === 0 || filter.length > 65_535) return "must be 1..65535 characters";
  const levels = filter.split("/");
  for (let i = 0; i < levels.length; i++) {
    const l = levels[i]!;
    if (l === "#" && i !== levels.length - 1) return "# must be the last level";
    if (l !== "#" && l !== "+" && (l.includes("#") || l.includes("+"))) return "wildcards must occupy a whole level";
  }
  return undefined;
}

export class JsonTopicMapper {
  private readonly exact = new Map<string, CompiledRule[]>();
  private readonly wild: CompiledRule[] = [];
  /** Distinct subscription filters. */
  readonly filters: string[];

  /** Throws RangeError naming the rule for a malformed filter or a rule that does not say where its tag is. */
  constructor(rules: readonly JsonTopicRule[], tags: readonly TagConfig[]) {
    const all: Array<{ rule: JsonTopicRule; where: string }> = rules.map((rule, i) => ({
      rule,
      where: `source.mqtt.json.topics[${i}]`,
    }));
    for (const t of tags) {
      const m = t.sources?.mqtt;
      if (!m) continue;
      all.push({
        rule: {
          filter: m.topic,
          tag: t.id,
          value_path: m.path ?? "value",
          ts_path: "ts",
          ts_unit: "ms",
          quality_path: "quality",
        },
        where: `tags[${t.id}].sources.mqtt`,
      });
    }
    const filters = new Set<string>();
    for (const { rule, where } of all) {
      const p = filterProblem(rule.filter);
      if (p) throw new RangeError(`${where}: topic filter "${rule.filter}" ${p}`);
      const ways = [rule.tag, rule.tag_level, rule.tag_path].filter((x) => x !== undefined).length;
      if (ways !== 1) throw new RangeError(`${where}: give exactly one of tag, tag_level, tag_path`);
      const levels = rule.filter.split("/");
      const wildcard = levels.some((l) => l === "+" || l === "#");
      const c: CompiledRule = {
        filter: rule.filter,
        levels,
        tag: rule.tag,
        tagLevel: rule.tag_level,
        tagPath: rule.tag_path?.split("."),
        valuePath: rule.value_path.split("."),
        tsPath: rule.ts_path.split("."),
        tsScale: rule.ts_unit === "s" ? 1000 : 1,
        qualityPath: rule.quality_path.split("."),
      };
      if (wildcard) this.wild.push(c);
      else {
        const list = this.exact.get(rule.filter);
        if (list) list.push(c);
        else this.exact.set(rule.filter, [c]);
      }
      filters.add(rule.filter);
    }
    // Overlapping subscriptions would have the broker deliver a message once per matching filter: subscribe
    // only to the filters no other one covers.
    const list = [...filters];
    this.filters = list.filter(
      (f, i) => !list.some((g, j) => j !== i && filterCovers(g, f) && (!filterCovers(f, g) || j < i)),
    );
  }

  /** Whether any rule covers `topic`. */
  covers(topic: string): boolean {
    if (this.exact.has(topic)) return true;
    const t = topic.split("/");
    return this.wild.some((r) => levelsMatch(r.levels, t));
  }

  /**
   * Decodes one message. Every rule that matches the topic yields a sample or a rejection, so nothing is lost
   * without a trace. `receivedAt` stands in for a missing timestamp.
   */
  decode(
    topic: string,
    payload: Buffer,
    receivedAt: number,
    out: { samples: DecodedSample[]; rejected: DecodedRejection[] },
  ): number {
    let rules = this.exact.get(topic);
    if (this.wild.length) {
      const t = topic.split("/");
      for (const r of this.wild) if (levelsMatch(r.levels, t)) rules = rules ? [...rules, r] : [r];
    }
    if (!rules) return 0;
    const text = payload.toString("utf8");
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (err) {
      const tag = rules.length === 1 ? fixedTag(rules[0]!, topic) : undefined;
      out.rejected.push(
        reject(tag ?? "", null, receivedAt, "mqtt_bad_json", `${topic}: ${(err as Error).message}`, rawText(text)),
      );
      return 1;
    }
    let n = 0;
    // A tag named by two rules (the dictionary's topic and a wildcard rule over the same topics) is taken once,
    // from the first: exact topics before wildcards, in configuration order.
    const done = new Set<string>();
    for (const r of rules) {
      n++;
      const tag = fixedTag(r, topic) ?? (r.tagPath ? at(body, r.tagPath) : undefined);
      if (typeof tag === "string") {
        if (done.has(tag)) continue;
        done.add(tag);
      }
      if (typeof tag !== "string" || tag === "") {
        const where = r.tagPath ? `tag path "${r.tagPath.join(".")}"` : `topic level ${r.tagLevel}`;
        out.rejected.push(
          reject(
            "",
            null,
            receivedAt,
            "mqtt_missing_path",
            `${topic}: ${where} gives no tag id (${tag === undefined ? "absent" : `got ${rawText(tag, 64)}`})`,
            rawText(body),
          ),
        );
        continue;
      }
      const tsRaw = at(body, r.tsPath);
      let ts: number;
      if (tsRaw === undefined) ts = receivedAt;
      else if (typeof tsRaw === "number") ts = tsRaw * r.tsScale;
      else if (typeof tsRaw === "string" && Number.isFinite(Date.parse(tsRaw))) ts = Date.parse(tsRaw);
      else {
        out.rejected.push(
          reject(
            tag,
            null,
            receivedAt,
            "mqtt_bad_timestamp",
            `${topic}: "${r.tsPath.join(".")}" must be ms since the epoch or an ISO-8601 date, got ${rawText(tsRaw, 64)}`,
            rawText(at(body, r.valuePath)),
          ),
        );
        continue;
      }
      const value = at(body, r.valuePath);
      if (value === undefined) {
        out.rejected.push(
          reject(
            tag,
            ts,
            receivedAt,
            "mqtt_missing_path",
            `${topic}: no value at "${r.valuePath.join(".")}"`,
            rawText(body),
          ),
        );
        continue;
      }
      if (typeof value !== "number") {
        out.rejected.push(
          reject(
            tag,
            ts,
            receivedAt,
            "mqtt_not_number",
            `${topic}: "${r.valuePath.join(".")}" must be a JSON number, got ${value === null ? "null" : Array.isArray(value) ? "array" : typeof value}`,
            rawText(value),
          ),
        );
        continue;
      }
      const q = at(body, r.qualityPath);
      const s: DecodedSample = { tag, ts, value };
      // Anything but a known quality word goes on to the validator, which quarantines it as bad_quality.
      if (q !== undefined) s.quality = q as Quality;
      out.samples.push(s);
    }
    return n;
  }
}

function fixedTag(r: CompiledRule, topic: string): string | undefined {
  if (r.tag !== undefined) return r.tag;
  if (r.tagLevel !== undefined) return topic.split("/")[r.tagLevel];
  return undefined;
}

/** Value at a dotted path, or undefined. Own properties only (no prototype lookups from the payload). */
function at(body: unknown, path: readonly string[]): unknown {
  let o = body;
  for (const k of path) {
    if (typeof o !== "object" || o === null) return undefined;
    if (Array.isArray(o)) {
      const i = Number(k);
      if (!Number.isInteger(i) || i < 0 || i >= o.length) return undefined;
      o = o[i];
    } else {
      if (!Object.hasOwn(o, k)) return undefined;
      o = (o as Record<string, unknown>)[k];
    }
  }
  return o;
}

function reject(
  tag: string,
  ts: number | null,
  receivedAt: number,
  reason: MqttJsonReason,
  detail: string,
  raw: string,
): DecodedRejection {
  return { tag, ts, received_at: receivedAt, reason, detail, raw_value: raw };
}
