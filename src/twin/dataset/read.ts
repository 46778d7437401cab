import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type NpyArray, readNpy } from "../../core/npy.js";
import { FORMAT_NAME, FORMAT_VERSION } from "./generate.js";

/*
 * Reading a dataset back (tests, tools, the daemon's golden-file tests): the manifest, any listed array, and a
 * check that every array listed in the manifest exists with the dtype and shape the manifest gives.
 */

export interface DatasetManifest {
  format: string;
  format_version: number;
  files: Record<string, { shape: number[]; dtype: string; description: string }>;
  [key: string]: unknown;
}

/** Reads and sanity-checks `DIR/manifest.json`. @throws Error naming the problem. */
export function readManifest(dir: string): DatasetManifest {
  const path = join(dir, "manifest.json");
  if (!existsSync(path)) throw new Error(`${path} is missing: not a dataset, or an unfinished one`);
  const m = JSON.parse(readFileSync(path, "utf8")) as DatasetManifest;
  if (m.format !== FORMAT_NAME) throw new Error(`${path}: format is ${JSON.stringify(m.format)}, not ${FORMAT_NAME}`);
  if (m.format_version !== FORMAT_VERSION) {
    throw new Error(`${path}: format_version ${m.format_version} is not supported (this reader: ${FORMAT_VERSION})`);
  }
  return m;
}

/** Reads one array of a dataset by its manifest path (e.g. "features/X.npy"). */
export function readDatasetArray(dir: string, rel: string): NpyArray {
  return readNpy(join(dir, rel));
}

/** Every `.npy` listed in the manifest, read and compared with its manifest entry; returns the problems found. */
export function checkDataset(dir: string): string[] {
  const m = readManifest(dir);
  const problems: string[] = [];
  for (const [rel, f] of Object.entries(m.files)) {
    if (!rel.endsWith(".npy")) {
      if (!existsSync(join(dir, rel))) problems.push(`${rel}: missing`);
      continue;
    }
    try {
      const a = readDatasetArray(dir, rel);
      if (a.dtype !== f.dtype) problems.push(`${rel}: dtype ${a.dtype}, manifest says ${f.dtype}`);
      if (JSON.stringify(a.shape) !== JSON.stringify(f.shape)) {
        problems.push(`${rel}: shape (${a.shape.join(", ")}), manifest says (${f.shape.join(", ")})`);
      }
    } catch (err) {
      problems.push(`${rel}: ${(err as Error).message}`);
    }
  }
  return problems;
}
