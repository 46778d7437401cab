import type { Config } from "../config/index.js";
import type { Sample } from "../core/types.js";
import { FeatureExtractor, type FeatureExtractorOptions, type FeatureVector } from "./feature-extractor.js";
import { TagWindows, type TagWindowsOptions } from "./tag-windows.js";

/**
 * The features stage as the pipeline uses it: accepted samples in (`push`), one feature vector per tick out
 * (`compute`). Owns one {@link TagWindows} and one {@link FeatureExtractor} built from the same config, so the
 * window length and the tag dictionary cannot disagree. Shaped to fit the pipeline's `features` port.
 */
export class FeatureStage {
  readonly windows: TagWindows;
  readonly extractor: FeatureExtractor;

  constructor(windows: TagWindows, extractor: FeatureExtractor) {
    this.windows = windows;
    this.extractor = extractor;
  }

  /** Builds windows and extractor from a validated config (`tags`, `pipeline.window_s`, `validation.stale_factor`). */
  static fromConfig(
    config: Config,
    opts: { windows?: Partial<TagWindowsOptions>; extractor?: FeatureExtractorOptions } = {},
  ): FeatureStage {
    return new FeatureStage(
      TagWindows.fromConfig(config, opts.windows),
      FeatureExtractor.fromConfig(config, opts.extractor),
    );
  }

  /** Stores validated samples; returns how many were accepted. */
  push(samples: Iterable<Sample>): number {
    return this.windows.pushMany(samples);
  }

  /**
   * Refills the windows from storage after a restart, so the first ticks do not start from empty windows: each tag
   * as far back from `now` as its window keeps samples (window + stale horizon; the slow tags' longer horizons are
   * what the sensor graph reads). `range(tag, fromTs, toTs)` returns the stored samples in [fromTs, toTs].
   * Returns how many samples were accepted.
   */
  refill(range: (tag: string, fromTs: number, toTs: number) => Iterable<Sample>, now: number): number {
    let n = 0;
    for (const tag of this.windows.tags) n += this.push(range(tag, now - this.windows.retentionMs(tag)!, now));
    return n;
  }

  /** The feature vector for the window ending at `ts` (ms). */
  compute(ts: number, out?: Float32Array): FeatureVector {
    return this.extractor.compute(this.windows, ts, out);
  }

  /** Feature names in vector order. */
  get names(): readonly string[] {
    return this.extractor.names;
  }
}
