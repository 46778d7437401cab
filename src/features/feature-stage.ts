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

  /** The feature vector for the window ending at `ts` (ms). */
  compute(ts: number, out?: Float32Array): FeatureVector {
    return this.extractor.compute(this.windows, ts, out);
  }

  /** Feature names in vector order. */
  get names(): readonly string[] {
    return this.extractor.names;
  }
}
