import { DEFECT_CLASSES, type DefectClass, type InspectionEvent } from "../core/types.js";
import type { InspectionSummary } from "./pipeline.js";

/** MIK-1 results over a sliding time window: items, defective items, defects per class. Bounded by time and count. */
export class InspectionWindow {
  private readonly events: InspectionEvent[] = [];
  private static readonly MAX = 100_000;

  constructor(private readonly windowMs: number) {}

  add(ev: InspectionEvent): void {
    this.events.push(ev);
    if (this.events.length > InspectionWindow.MAX) this.events.splice(0, this.events.length - InspectionWindow.MAX);
  }

  size(): number {
    return this.events.length;
  }

  summary(now: number): InspectionSummary {
    const from = now - this.windowMs;
    let drop = 0;
    while (drop < this.events.length && (this.events[drop] as InspectionEvent).ts < from) drop++;
    if (drop) this.events.splice(0, drop);
    const perClass = Object.fromEntries(DEFECT_CLASSES.map((c) => [c, 0])) as Record<DefectClass, number>;
    let defective = 0;
    let lastTs: number | null = null;
    for (const e of this.events) {
      if (!e.ok) defective++;
      for (const d of e.defects) perClass[d.class]++;
      lastTs = lastTs === null ? e.ts : Math.max(lastTs, e.ts);
    }
    const n = this.events.length;
    return {
      window_s: this.windowMs / 1000,
      items_inspected: n,
      defective_items: defective,
      defect_rate: n ? defective / n : null,
      quality_score: n ? 1 - defective / n : null,
      defects_per_class: perClass,
      last_item_ts: lastTs,
    };
  }
}
