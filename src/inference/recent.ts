import { DEFECT_CLASSES, type DefectClass, type InspectionEvent } from "../core/types.js";

const CLASS_BIT = new Map<DefectClass, number>(DEFECT_CLASSES.map((c, i) => [c, 1 << i]));

/**
 * MIK-1 results as the forecaster's `recent` input: per horizon h and class c, the fraction of items inspected in
 * (now − h, now] that had at least one defect of class c — the same definition as the dataset's labels
 * (src/twin/dataset/FORMAT.md), NaN when no item was inspected in the horizon. Keeps the items of the longest
 * horizon (a class bitmask per item, so 240 min at 600 items/min is 144 k small entries).
 */
export class RecentDefectRates {
  private ts: number[] = [];
  private mask: number[] = [];
  private head = 0;

  constructor(private readonly keepMs: number) {}

  add(ev: InspectionEvent): void {
    let m = 0;
    for (const d of ev.defects) m |= CLASS_BIT.get(d.class) ?? 0;
    this.ts.push(ev.ts);
    this.mask.push(m);
  }

  /** [H × C] row-major (horizon, class), in `horizonsMin` and DEFECT_CLASSES order. */
  rates(now: number, horizonsMin: readonly number[]): Float32Array {
    this.evict(now - this.keepMs);
    const C = DEFECT_CLASSES.length;
    const out = new Float32Array(horizonsMin.length * C);
    horizonsMin.forEach((h, hi) => {
      const from = now - h * 60_000;
      const counts = new Float64Array(C);
      let n = 0;
      for (let i = this.ts.length - 1; i >= this.head; i--) {
        const t = this.ts[i] as number;
        if (t > now) continue;
        if (t <= from) break;
        n++;
        const m = this.mask[i] as number;
        if (m) for (let c = 0; c < C; c++) if (m & (1 << c)) counts[c] = (counts[c] as number) + 1;
      }
      for (let c = 0; c < C; c++) out[hi * C + c] = n ? (counts[c] as number) / n : Number.NaN;
    });
    return out;
  }

  size(): number {
    return this.ts.length - this.head;
  }

  private evict(before: number): void {
    while (this.head < this.ts.length && (this.ts[this.head] as number) <= before) this.head++;
    if (this.head > 4096 && this.head * 2 > this.ts.length) {
      this.ts = this.ts.slice(this.head);
      this.mask = this.mask.slice(this.head);
      this.head = 0;
    }
  }
}
