/* Shared helpers of the benches (not a bench itself: bench/run.ts runs only bench/*.ts). */
export { best, median, quantile, type Summary, sortedCopy, summarize } from "./stats.js";
export { type Cell, ms, pct, rate, type TableOptions, table, us } from "./table.js";
