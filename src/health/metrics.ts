import { monitorEventLoopDelay } from "node:perf_hooks";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

/**
 * The daemon's Prometheus registry. Names follow DOMAIN.md: `glassd_` prefix, base units, `_total` counters.
 * Counters owned by other modules (validator, store, hub) are read at scrape time through `collect` callbacks,
 * so there is one source of truth per number.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly stageSeconds: Histogram<"stage">;
  readonly tickSeconds: Histogram<"trigger">;
  readonly ticksTotal: Counter<"trigger" | "outcome">;
  readonly queueDropsTotal: Counter<"queue" | "policy">;
  private readonly loopDelay = monitorEventLoopDelay({ resolution: 20 });
  /** A second histogram for health, so a Prometheus scrape (which resets the first) does not change health. */
  private readonly healthLoop = monitorEventLoopDelay({ resolution: 20 });
  private healthWindowStart = Date.now();
  private healthPrevP99Ms = 0;

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: "glassd_" });
    const buckets = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
    const histogram = <L extends string>(name: string, help: string, label: L) =>
      new Histogram<L>({ name, help, labelNames: [label], buckets, registers: [this.registry] });
    this.stageSeconds = histogram(
      "glassd_pipeline_stage_duration_seconds",
      "Duration of each pipeline stage per tick.",
      "stage",
    );
    this.tickSeconds = histogram(
      "glassd_pipeline_tick_duration_seconds",
      "Duration of a whole pipeline tick.",
      "trigger",
    );
    this.ticksTotal = new Counter({
      name: "glassd_pipeline_ticks_total",
      help: "Pipeline ticks by trigger and outcome.",
      labelNames: ["trigger", "outcome"],
      registers: [this.registry],
    });
    this.queueDropsTotal = new Counter({
      name: "glassd_queue_drops_total",
      help: "Items dropped by a bounded queue or buffer, by queue and drop policy.",
      labelNames: ["queue", "policy"],
      registers: [this.registry],
    });
    this.loopDelay.enable();
    this.healthLoop.enable();
    const loop = this.loopDelay;
    new Gauge({
      name: "glassd_event_loop_delay_p99_seconds",
      help: "p99 event-loop delay since the previous scrape.",
      registers: [this.registry],
      collect() {
        this.set(loop.percentile(99) / 1e9);
        loop.reset();
      },
    });
  }

  /** Registers a gauge whose labelled values are read at scrape time. */
  gaugeFrom(
    name: string,
    help: string,
    labelNames: string[],
    read: () => Array<[Record<string, string>, number]>,
  ): void {
    new Gauge({
      name,
      help,
      labelNames,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [labels, v] of read()) this.set(labels, v);
      },
    });
  }

  /** Registers a counter mirrored from a module's own running total at scrape time. */
  counterFrom(
    name: string,
    help: string,
    labelNames: string[],
    read: () => Array<[Record<string, string>, number]>,
  ): void {
    new Counter({
      name,
      help,
      labelNames,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [labels, v] of read()) this.inc(labels, v);
      },
    });
  }

  /** Event-loop delay p99 in ms over the last 10–20 s (health check); independent of scrapes. */
  eventLoopP99Ms(): number {
    const current = (this.healthLoop.percentile(99) || 0) / 1e6;
    if (Date.now() - this.healthWindowStart >= 10_000) {
      this.healthPrevP99Ms = current;
      this.healthLoop.reset();
      this.healthWindowStart = Date.now();
    }
    return Math.max(current, this.healthPrevP99Ms);
  }

  close(): void {
    this.loopDelay.disable();
    this.healthLoop.disable();
    this.registry.clear();
  }
}
