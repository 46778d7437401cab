import { DEFAULT_TAGS } from "../../config/default-tags.js";
import type { TagConfig } from "../../config/schema.js";
import { DEFECT_CLASSES, type DefectClass } from "../../core/types.js";
import { TwinLine } from "../twin-line.js";
import { ScenarioRunner } from "./runner.js";
import type { Scenario } from "./schema.js";

const MIN = 60_000;

/** Tags whose hourly mean a summary reports (measured, so sensor faults show) when the dictionary has them. */
export const SUMMARY_TAGS = ["furnace_temperature", "furnace_power", "belt_speed", "mold_temperature", "cooling_rate"];

/** Process states whose hourly mean a summary reports (true values). */
export const SUMMARY_STATES = ["seedIndex", "unmeltedIndex", "deformationIndex", "residualStressMPa"] as const;

/** One hour of a scenario run. */
export interface ScenarioHour {
  hour: number;
  items: number;
  /** Share of items with at least one defect. */
  defective: number;
  /** Share of items with a defect of each class. */
  classRates: Record<DefectClass, number>;
  /** Mean of the measured samples of each summary tag (NaN when none arrived, e.g. a dropout). */
  tags: Record<string, number>;
  /** Mean of the process states, sampled every minute. */
  states: Record<(typeof SUMMARY_STATES)[number], number>;
  samples: number;
  droppedSamples: number;
  /** Indices of the scenario events in force at some minute of the hour. */
  events: number[];
}

export interface ScenarioRunResult {
  scenario: string;
  seed: number;
  hours: number;
  hourly: ScenarioHour[];
  total: { items: number; defective: number; classRates: Record<DefectClass, number>; samples: number };
}

export interface RunScenarioOptions {
  hours: number;
  seed: number;
  tags?: TagConfig[];
  stepMs?: number;
  itemsPerMin?: number;
  startTs?: number;
}

/** Runs `scenario` on a fresh twin in manual mode (no timers) and summarises it hour by hour. Deterministic. */
export function runScenario(scenario: Scenario, opts: RunScenarioOptions): ScenarioRunResult {
  if (!(opts.hours > 0 && Number.isFinite(opts.hours))) throw new RangeError(`hours must be > 0, got ${opts.hours}`);
  const tags = opts.tags ?? DEFAULT_TAGS;
  const twin = new TwinLine({
    tags,
    seed: opts.seed,
    speed: 1,
    stepMs: opts.stepMs ?? 1000,
    itemsPerMin: opts.itemsPerMin ?? 15,
    startTs: opts.startTs ?? Date.UTC(2026, 0, 1),
  });
  const runner = new ScenarioRunner(scenario).attach(twin);
  const wanted = SUMMARY_TAGS.filter((t) => tags.some((c) => c.id === t));
  const hourly: ScenarioHour[] = [];
  const total = { items: 0, defective: 0, counts: new Float64Array(DEFECT_CLASSES.length), samples: 0 };
  const minutes = Math.round(opts.hours * 60);
  for (let h = 0; h * 60 < minutes; h++) {
    const sums = new Map<string, { s: number; n: number }>(wanted.map((t) => [t, { s: 0, n: 0 }]));
    const stateSums = new Float64Array(SUMMARY_STATES.length);
    const counts = new Float64Array(DEFECT_CLASSES.length);
    const events = new Set<number>();
    let items = 0;
    let defective = 0;
    let samples = 0;
    const dropped0 = twin.stats().droppedSamples;
    const mins = Math.min(60, minutes - h * 60);
    for (let m = 0; m < mins; m++) {
      for (const e of runner.activeEvents()) events.add(e.index);
      const out = twin.advance(MIN);
      samples += out.samples.length;
      for (const s of out.samples) {
        const acc = sums.get(s.tag);
        if (acc) {
          acc.s += s.value as number;
          acc.n++;
        }
      }
      for (const e of out.inspections) {
        items++;
        if (!e.ok) defective++;
        const seen = new Set(e.defects.map((d) => d.class));
        for (const c of seen) counts[DEFECT_CLASSES.indexOf(c)]!++;
      }
      const st = twin.model.state;
      SUMMARY_STATES.forEach((k, i) => {
        stateSums[i]! += st[k];
      });
    }
    const classRates = {} as Record<DefectClass, number>;
    DEFECT_CLASSES.forEach((c, i) => {
      classRates[c] = items ? counts[i]! / items : 0;
      total.counts[i]! += counts[i]!;
    });
    hourly.push({
      hour: h,
      items,
      defective: items ? defective / items : 0,
      classRates,
      tags: Object.fromEntries([...sums].map(([t, a]) => [t, a.n ? a.s / a.n : Number.NaN])),
      states: Object.fromEntries(SUMMARY_STATES.map((k, i) => [k, stateSums[i]! / mins])) as ScenarioHour["states"],
      samples,
      droppedSamples: twin.stats().droppedSamples - dropped0,
      events: [...events].sort((a, b) => a - b),
    });
    total.items += items;
    total.defective += defective;
    total.samples += samples;
  }
  const classRates = {} as Record<DefectClass, number>;
  DEFECT_CLASSES.forEach((c, i) => {
    classRates[c] = total.items ? total.counts[i]! / total.items : 0;
  });
  return {
    scenario: scenario.name,
    seed: opts.seed,
    hours: opts.hours,
    hourly,
    total: {
      items: total.items,
      defective: total.items ? total.defective / total.items : 0,
      classRates,
      samples: total.samples,
    },
  };
}

const SHORT: Record<DefectClass, string> = {
  crack: "crack",
  bubble: "bubble",
  chip: "chip",
  cloudiness: "cloud",
  deformation: "deform",
  stain: "stain",
  stone: "stone",
  scratch: "scratch",
};

const TAG_SHORT: Record<string, string> = {
  furnace_temperature: "T_melt",
  furnace_power: "power",
  belt_speed: "belt",
  mold_temperature: "mold",
  cooling_rate: "cool",
};

/** A compact text table of a run: defect rates per class per hour (%), key tags, states and events. */
export function formatScenarioRun(r: ScenarioRunResult, scenario: Scenario): string {
  const pct = (x: number) => (x * 100).toFixed(1).padStart(6);
  const tagCols = Object.keys(r.hourly[0]?.tags ?? {});
  const head = [
    "hour",
    " items",
    " def%",
    ...DEFECT_CLASSES.map((c) => SHORT[c].padStart(6)),
    " |",
    ...tagCols.map((t) => (TAG_SHORT[t] ?? t).padStart(7)),
    "  seeds",
    " unmelt",
    " deform",
    "  σ_MPa",
    "  events",
  ].join(" ");
  const lines = [
    `scenario ${r.scenario}, seed ${r.seed}, ${r.hours} h${scenario.description ? `: ${scenario.description.trim()}` : ""}`,
    "defect rates: % of items with each class; tags: hourly means of the measured samples; seeds, unmelt, deform:",
    "process-state indices (1 = nominal); σ: residual stress from the lehr.",
    head,
  ];
  for (const h of r.hourly) {
    lines.push(
      [
        String(h.hour).padStart(4),
        String(h.items).padStart(6),
        pct(h.defective).slice(1),
        ...DEFECT_CLASSES.map((c) => pct(h.classRates[c])),
        " |",
        ...tagCols.map((t) => fmt(h.tags[t]!, 7)),
        fmt(h.states.seedIndex, 7, 2),
        fmt(h.states.unmeltedIndex, 7, 2),
        fmt(h.states.deformationIndex, 7, 2),
        fmt(h.states.residualStressMPa, 7, 1),
        `  ${h.events.map((i) => describeEvent(scenario, i)).join(", ") || "-"}${h.droppedSamples ? ` (${h.droppedSamples} samples dropped)` : ""}`,
      ].join(" "),
    );
  }
  lines.push(
    [
      "all ",
      String(r.total.items).padStart(6),
      pct(r.total.defective).slice(1),
      ...DEFECT_CLASSES.map((c) => pct(r.total.classRates[c])),
    ].join(" "),
  );
  return lines.join("\n");
}

function fmt(x: number, width: number, digits = 1): string {
  return (Number.isFinite(x) ? x.toFixed(digits) : "-").padStart(width);
}

function describeEvent(s: Scenario, i: number): string {
  const e = s.events[i]!;
  if (e.type === "setpoint") return `${e.tag}→${e.value}`;
  if (e.type === "sensor_fault") return `${e.fault}(${e.tag})`;
  return e.type;
}
