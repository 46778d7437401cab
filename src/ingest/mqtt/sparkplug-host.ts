import {
  nextSparkplugSeq,
  parseSparkplugTopic,
  qualityFromCode,
  REBIRTH_METRIC,
  sparkplug,
  sparkplugNumber,
  type UMetric,
  type UPayload,
} from "../../core/sparkplug.js";
import type { Quality } from "../../core/types.js";
import { rawText } from "../validate.js";
import type { DecodedRejection, DecodedSample } from "./json.js";

/*
 * Sparkplug B host application logic (Sparkplug 3.0), without I/O: feed it every message of spBv1.0/… and it returns
 * the samples, the rejections and the rebirth requests to send. Per edge node it keeps the session (bdSeq from
 * NBIRTH), the last seq (0–255, wrapping) and the alias table from NBIRTH/DBIRTH.
 *
 *   NBIRTH   new session: aliases reset, seq must be 0, bdSeq remembered, metric values ingested
 *   DBIRTH   device born: its aliases added, values ingested (seq checked)
 *   NDATA/DDATA  values by alias or name (seq checked)
 *   DDEATH   the device's tags get one sample of bad quality (last value) (seq checked)
 *   NDEATH   if its bdSeq is the current session's: every tag of the node and its devices gets a bad sample; an
 *            NDEATH of an older session (late will) is ignored and counted
 *
 * A seq out of order, data before a birth, or an alias that no birth defined → rebirth request (NCMD Node
 * Control/Rebirth), at most one per node per `rebirthIntervalMs`. Data that cannot be resolved (no birth, unknown
 * alias) is rejected per message with a reason; metrics that resolve but map to no tag are counted, not stored.
 *
 * Rejection reasons: sparkplug_bad_payload, sparkplug_before_birth, sparkplug_unknown_alias, sparkplug_not_number.
 */

export const SPARKPLUG_REASONS = [
  "sparkplug_bad_payload",
  "sparkplug_before_birth",
  "sparkplug_unknown_alias",
  "sparkplug_not_number",
] as const;

export interface SparkplugHostOptions {
  /** Metric → tag id; undefined for a metric that is no tag. */
  tagOf: (metric: string, node: string, device: string | undefined) => string | undefined;
  /** Groups to follow; empty = all. */
  groups?: readonly string[];
  rebirthIntervalMs?: number;
}

export interface SparkplugResult {
  samples: DecodedSample[];
  rejected: DecodedRejection[];
  /** Edge nodes to send NCMD Node Control/Rebirth to. */
  rebirth: Array<{ group: string; node: string; reason: string }>;
}

export interface SparkplugHostStats {
  nodes_online: number;
  births: number;
  device_births: number;
  deaths: number;
  device_deaths: number;
  stale_deaths: number;
  seq_gaps: number;
  rebirths_requested: number;
  rebirths_suppressed: number;
  metrics_in: number;
  unmapped_metrics: number;
  bad_payloads: number;
  before_birth: number;
  unknown_aliases: number;
  tags_marked_bad: number;
}

interface Device {
  born: boolean;
}

interface NodeState {
  group: string;
  node: string;
  born: boolean;
  bdSeq: number | undefined;
  seq: number;
  aliases: Map<number, { name: string; device: string | undefined }>;
  devices: Map<string, Device>;
  /** Last value per tag from this node, with the device it came from (for death marking). */
  last: Map<string, { ts: number; value: number; device: string | undefined }>;
  lastRebirthAt: number;
}

function zeroCounters() {
  return {
    births: 0,
    device_births: 0,
    deaths: 0,
    device_deaths: 0,
    stale_deaths: 0,
    seq_gaps: 0,
    rebirths_requested: 0,
    rebirths_suppressed: 0,
    metrics_in: 0,
    unmapped_metrics: 0,
    bad_payloads: 0,
    before_birth: 0,
    unknown_aliases: 0,
    tags_marked_bad: 0,
  };
}

/** The host's counters before it exists (Sparkplug off or not yet connected): every figure zero. */
export function emptySparkplugHostStats(): SparkplugHostStats {
  return { nodes_online: 0, ...zeroCounters() };
}

export class SparkplugHost {
  private readonly nodes = new Map<string, NodeState>();
  private readonly groups: Set<string> | undefined;
  private readonly rebirthIntervalMs: number;
  private readonly c = zeroCounters();

  constructor(private readonly opts: SparkplugHostOptions) {
    this.groups = opts.groups?.length ? new Set(opts.groups) : undefined;
    this.rebirthIntervalMs = opts.rebirthIntervalMs ?? 5000;
  }

  stats(): SparkplugHostStats {
    let online = 0;
    for (const n of this.nodes.values()) if (n.born) online++;
    return { nodes_online: online, ...this.c };
  }

  /** Edge nodes with a live session: `group/node` → bdSeq and devices born. */
  sessions(): Record<string, { bdSeq: number | undefined; seq: number; devices: string[] }> {
    const out: Record<string, { bdSeq: number | undefined; seq: number; devices: string[] }> = {};
    for (const [k, n] of this.nodes)
      if (n.born)
        out[k] = {
          bdSeq: n.bdSeq,
          seq: n.seq,
          devices: [...n.devices].filter(([, d]) => d.born).map(([id]) => id),
        };
    return out;
  }

  /** Whether a topic is this host's business (a well-formed edge-node topic of a followed group). */
  follows(topic: string): boolean {
    const t = parseSparkplugTopic(topic);
    return t !== undefined && (!this.groups || this.groups.has(t.group));
  }

  /** Forgets every session (after the host's own connection was lost: births will be requested again). */
  reset(): void {
    for (const n of this.nodes.values()) n.born = false;
  }

  handle(topic: string, payload: Buffer, now: number, out: SparkplugResult): void {
    const t = parseSparkplugTopic(topic);
    if (!t || (this.groups && !this.groups.has(t.group))) return;
    if (t.type === "NCMD" || t.type === "DCMD") return;
    const key = `${t.group}/${t.node}`;
    let decoded: UPayload;
    try {
      decoded = sparkplug.decodePayload(payload);
    } catch (err) {
      this.c.bad_payloads++;
      out.rejected.push(
        rej("", null, now, "sparkplug_bad_payload", `${topic}: not a Sparkplug B payload (${(err as Error).message})`, {
          bytes: payload.length,
        }),
      );
      return;
    }
    let n = this.nodes.get(key);
    if (!n) {
      n = {
        group: t.group,
        node: t.node,
        born: false,
        bdSeq: undefined,
        seq: 0,
        aliases: new Map(),
        devices: new Map(),
        last: new Map(),
        lastRebirthAt: -Infinity,
      };
      this.nodes.set(key, n);
    }
    const metrics = decoded.metrics ?? [];
    const seq = sparkplugNumber(decoded.seq);
    const payloadTs = sparkplugNumber(decoded.timestamp) ?? now;

    switch (t.type) {
      case "NBIRTH": {
        this.c.births++;
        n.born = true;
        n.aliases.clear();
        n.devices.clear();
        const bd = metrics.find((m) => m.name === "bdSeq");
        n.bdSeq = bd ? sparkplugNumber(bd.value) : undefined;
        n.seq = seq ?? 0;
        if (seq !== undefined && seq !== 0) this.gap(n, now, out, `NBIRTH with seq ${seq} (must be 0)`);
        this.learnAliases(n, metrics, undefined);
        this.values(n, undefined, metrics, payloadTs, now, topic, out);
        return;
      }
      case "NDEATH": {
        const bd = metrics.find((m) => m.name === "bdSeq");
        const bdSeq = bd ? sparkplugNumber(bd.value) : undefined;
        if (!n.born || (bdSeq !== undefined && n.bdSeq !== undefined && bdSeq !== n.bdSeq)) {
          this.c.stale_deaths++;
          return;
        }
        this.c.deaths++;
        n.born = false;
        this.markBad(n, undefined, now, out);
        return;
      }
      default:
        break;
    }

    // Everything else belongs to a live session.
    if (!n.born) {
      this.c.before_birth++;
      out.rejected.push(
        rej("", null, now, "sparkplug_before_birth", `${topic}: ${t.type} before NBIRTH; rebirth requested`, {
          metrics: metrics.length,
          seq,
        }),
      );
      this.rebirth(n, now, out, `${t.type} before NBIRTH`);
      return;
    }
    const expected = nextSparkplugSeq(n.seq);
    if (seq !== undefined) {
      if (seq !== expected) this.gap(n, now, out, `${t.type} seq ${seq}, expected ${expected}`);
      n.seq = seq;
    }
    const device = t.device;
    switch (t.type) {
      case "DBIRTH": {
        this.c.device_births++;
        n.devices.set(device!, { born: true });
        this.learnAliases(n, metrics, device);
        this.values(n, device, metrics, payloadTs, now, topic, out);
        return;
      }
      case "DDEATH": {
        this.c.device_deaths++;
        const d = n.devices.get(device!);
        if (d) d.born = false;
        this.markBad(n, device, now, out);
        return;
      }
      case "DDATA": {
        if (!n.devices.get(device!)?.born) {
          this.c.before_birth++;
          out.rejected.push(
            rej("", null, now, "sparkplug_before_birth", `${topic}: DDATA before DBIRTH; rebirth requested`, {
              metrics: metrics.length,
              seq,
            }),
          );
          this.rebirth(n, now, out, `DDATA of ${device} before DBIRTH`);
          return;
        }
        this.values(n, device, metrics, payloadTs, now, topic, out);
        return;
      }
      case "NDATA":
        this.values(n, undefined, metrics, payloadTs, now, topic, out);
        return;
      default:
        return;
    }
  }

  private learnAliases(n: NodeState, metrics: readonly UMetric[], device: string | undefined): void {
    for (const m of metrics) {
      const alias = sparkplugNumber(m.alias);
      if (alias !== undefined && typeof m.name === "string") n.aliases.set(alias, { name: m.name, device });
    }
  }

  private values(
    n: NodeState,
    device: string | undefined,
    metrics: readonly UMetric[],
    payloadTs: number,
    now: number,
    topic: string,
    out: SparkplugResult,
  ): void {
    let unknown: number[] | undefined;
    for (const m of metrics) {
      this.c.metrics_in++;
      let name = typeof m.name === "string" && m.name !== "" ? m.name : undefined;
      if (name === undefined) {
        const alias = sparkplugNumber(m.alias);
        const a = alias === undefined ? undefined : n.aliases.get(alias);
        if (!a) {
          unknown ??= [];
          unknown.push(alias ?? -1);
          continue;
        }
        name = a.name;
      }
      if (name === "bdSeq") continue;
      const tag = this.opts.tagOf(name, n.node, device);
      if (tag === undefined) {
        this.c.unmapped_metrics++;
        continue;
      }
      const ts = sparkplugNumber(m.timestamp) ?? payloadTs;
      let quality: Quality | undefined;
      const qp = m.properties?.Quality;
      if (qp) {
        const code = sparkplugNumber(qp.value);
        if (code !== undefined) quality = qualityFromCode(code);
      }
      let value: number | undefined;
      if (!m.isNull) {
        const v = m.value;
        if (typeof v === "boolean") value = v ? 1 : 0;
        else value = sparkplugNumber(v);
      }
      if (value === undefined) {
        out.rejected.push(
          rej(
            tag,
            ts,
            now,
            "sparkplug_not_number",
            `${topic}: metric "${name}" (${m.type}) has ${m.isNull || m.value == null ? "no value (isNull)" : "a non-numeric value"}${quality && quality !== "good" ? `, quality ${quality}` : ""}`,
            m.isNull ? null : m.value,
          ),
        );
        continue;
      }
      const s: DecodedSample = { tag, ts, value };
      if (quality) s.quality = quality;
      out.samples.push(s);
      const prev = n.last.get(tag);
      if (!prev || ts >= prev.ts) n.last.set(tag, { ts, value, device });
    }
    if (unknown) {
      this.c.unknown_aliases += unknown.length;
      out.rejected.push(
        rej(
          "",
          null,
          now,
          "sparkplug_unknown_alias",
          `${topic}: ${unknown.length} metric(s) with aliases no birth defined (${unknown.slice(0, 8).join(", ")}); rebirth requested`,
          { aliases: unknown.slice(0, 32) },
        ),
      );
      this.rebirth(n, now, out, "unknown alias");
    }
  }

  /** One bad-quality sample (last value) per tag of the node (device undefined: all of it) or of one device. */
  private markBad(n: NodeState, device: string | undefined, now: number, out: SparkplugResult): void {
    for (const [tag, l] of n.last) {
      if (device !== undefined && l.device !== device) continue;
      const ts = Math.max(now, l.ts + 1);
      out.samples.push({ tag, ts, value: l.value, quality: "bad" });
      l.ts = ts;
      this.c.tags_marked_bad++;
    }
  }

  private gap(n: NodeState, now: number, out: SparkplugResult, why: string): void {
    this.c.seq_gaps++;
    this.rebirth(n, now, out, why);
  }

  private rebirth(n: NodeState, now: number, out: SparkplugResult, reason: string): void {
    if (now - n.lastRebirthAt < this.rebirthIntervalMs) {
      this.c.rebirths_suppressed++;
      return;
    }
    n.lastRebirthAt = now;
    this.c.rebirths_requested++;
    out.rebirth.push({ group: n.group, node: n.node, reason });
  }
}

/** The NCMD payload that asks an edge node for its births. */
export function rebirthPayload(now: number): Uint8Array {
  return sparkplug.encodePayload({
    timestamp: now,
    metrics: [{ name: REBIRTH_METRIC, timestamp: now, type: "Boolean", value: true }],
  });
}

function rej(
  tag: string,
  ts: number | null,
  receivedAt: number,
  reason: (typeof SPARKPLUG_REASONS)[number],
  detail: string,
  raw: unknown,
): DecodedRejection {
  return { tag, ts, received_at: receivedAt, reason, detail, raw_value: rawText(raw) };
}
