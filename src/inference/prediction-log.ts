import type { Database } from "lmdb";
import type { Logger } from "../core/logger.js";
import { silentLogger } from "../core/logger.js";
import type { Store } from "../storage/index.js";
import type { ModelPredictions } from "./stage.js";

/** One stored prediction: the tick's time and what the models answered (unavailable parts keep their reason). */
export interface PredictionRecord {
  ts: number;
  forecast: ModelPredictions["forecast"];
  sensor_graph: ModelPredictions["sensor_graph"];
  vision: ModelPredictions["vision"];
  risk: ModelPredictions["risk"];
}

/**
 * Predictions in LMDB (sub-database `predictions`, keyed by tick time), for trends and for judging models after the
 * fact against what the MIK-1 saw. One record per `everyMs` of line time (default a minute: the forecaster's row
 * stride), kept for `retentionMs`; a write is durable when `record` resolves.
 */
export class PredictionLog {
  private readonly db: Database<PredictionRecord, number>;
  private lastTs = Number.NEGATIVE_INFINITY;
  private readonly log: Logger;
  private written = 0;
  private failed = 0;

  constructor(
    store: Pick<Store, "openDatabase">,
    private readonly opts: { everyMs?: number; retentionMs: number; logger?: Logger },
  ) {
    this.db = store.openDatabase<PredictionRecord, number>("predictions", { encoding: "msgpack" });
    this.log = opts.logger ?? silentLogger;
    for (const k of this.db.getKeys({ reverse: true, limit: 1 })) this.lastTs = k;
  }

  /** Stores the tick's predictions when at least one part answered and a record is due. */
  async record(ts: number, p: ModelPredictions): Promise<boolean> {
    if (p.status !== "ok" || ts < this.lastTs + (this.opts.everyMs ?? 60_000)) return false;
    this.lastTs = ts;
    try {
      await this.db.put(ts, { ts, forecast: p.forecast, sensor_graph: p.sensor_graph, vision: p.vision, risk: p.risk });
      this.written++;
      // Retention: whatever fell out of the window, in the same pass (a minute's record is small; few per pass).
      const cutoff = ts - this.opts.retentionMs;
      for (const k of this.db.getKeys({ end: cutoff, limit: 1000 })) await this.db.remove(k);
      return true;
    } catch (err) {
      this.failed++;
      this.log.warn({ err }, "prediction not stored");
      return false;
    }
  }

  /** Records in [from, to], oldest first. */
  range(from: number, to: number, limit: number): PredictionRecord[] {
    return [...this.db.getRange({ start: from, end: to + 1, limit })].map((e) => e.value);
  }

  stats(): { written: number; failed: number; entries: number } {
    return { written: this.written, failed: this.failed, entries: this.db.getCount() };
  }
}
