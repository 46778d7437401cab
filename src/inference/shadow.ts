import { LatencyWindow } from "../core/latency.js";
import type { Feeds } from "./host.js";

/**
 * Agreement of a shadow candidate with the live version on the same inputs: per output, the share of elements
 * within `agreeAbs`, mean and max |Δ|; the candidate's latency; and the manifest metric deltas (candidate − live,
 * for the numeric headline metrics both report). Nothing here promotes anything: promotion is an explicit call.
 */
export class ShadowStats {
  private compared = 0;
  private errors = 0;
  private lastError: string | undefined;
  private readonly latency = new LatencyWindow(1024);
  private readonly per = new Map<
    string,
    { n: number; agree: number; sumAbs: number; maxAbs: number; shapeMismatch: number }
  >();

  constructor(private readonly agreeAbs: number) {}

  observe(active: Feeds, candidate: Feeds, candidateMs: number): void {
    this.compared++;
    this.latency.observe(candidateMs);
    for (const [name, a] of Object.entries(active)) {
      let s = this.per.get(name);
      if (!s) {
        s = { n: 0, agree: 0, sumAbs: 0, maxAbs: 0, shapeMismatch: 0 };
        this.per.set(name, s);
      }
      const c = candidate[name];
      if (!c || c.data.length !== a.data.length) {
        s.shapeMismatch++;
        continue;
      }
      for (let i = 0; i < a.data.length; i++) {
        const d = Math.abs(Number(a.data[i]) - Number(c.data[i]));
        if (Number.isNaN(d)) continue;
        s.n++;
        s.sumAbs += d;
        if (d > s.maxAbs) s.maxAbs = d;
        if (d <= this.agreeAbs) s.agree++;
      }
    }
  }

  failed(err: Error): void {
    this.errors++;
    this.lastError = err.message;
  }

  summary(activeMetrics: Record<string, unknown>, candidateMetrics: Record<string, unknown>) {
    const outputs: Record<string, unknown> = {};
    for (const [k, s] of this.per)
      outputs[k] = {
        agreement: s.n ? s.agree / s.n : null,
        mean_abs_delta: s.n ? s.sumAbs / s.n : null,
        max_abs_delta: s.n ? s.maxAbs : null,
        shape_mismatches: s.shapeMismatch,
      };
    const deltas: Record<string, number> = {};
    for (const [k, v] of Object.entries(candidateMetrics)) {
      const w = activeMetrics[k];
      if (typeof v === "number" && typeof w === "number") deltas[k] = v - w;
    }
    const lat = this.latency.summary();
    return {
      compared: this.compared,
      errors: this.errors,
      last_error: this.lastError ?? null,
      agreement_abs: this.agreeAbs,
      outputs,
      latency_ms: { p50: lat.p50_ms, p99: lat.p99_ms },
      metric_deltas: deltas,
    };
  }
}
