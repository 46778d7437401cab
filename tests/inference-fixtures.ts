import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { DEFECT_CLASSES } from "../src/core/types.js";
import type { ManifestEntry } from "../src/inference/manifest.js";
import type { RegistryOptions } from "../src/inference/registry.js";

/*
 * Fixtures for the inference tests: REAL trained models only (never random weights). The source is the repo's
 * models/manifest.json; GLASSD_TEST_MODELS_DIR may point at another factory output (e.g. a quick build) while the
 * repo has none. Tests that need a broken model copy a real one into a temp dir and corrupt the copy.
 */

const ROOT = new URL("..", import.meta.url).pathname;

export function modelsDir(): string {
  const candidates = [join(ROOT, "models"), process.env.GLASSD_TEST_MODELS_DIR].filter((d): d is string => !!d);
  for (const d of candidates) {
    const f = join(d, "manifest.json");
    if (existsSync(f) && (JSON.parse(readFileSync(f, "utf8")) as { models: unknown[] }).models.length > 0) return d;
  }
  throw new Error(
    "no trained model: models/manifest.json lists none (build them: cd models/factory && .venv/bin/python -m glass_factory build --quick), or set GLASSD_TEST_MODELS_DIR",
  );
}

export function manifestEntries(dir = modelsDir()): ManifestEntry[] {
  return (JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")) as { models: ManifestEntry[] }).models;
}

/** The smallest real model (fast to load), preferring the forecaster. */
export function smallModel(dir = modelsDir()): ManifestEntry {
  const all = manifestEntries(dir);
  return all.find((e) => e.name === "forecaster") ?? [...all].sort((a, b) => a.bytes - b.bytes)[0]!;
}

export const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/**
 * Copies a real model (file + golden) into `toDir` as `version`; `mutate` may change the bytes (sha256 and bytes
 * are then recomputed only when `keepSha` is false), `patch` may change the entry. Returns the new entry.
 */
export function copyModel(
  src: ManifestEntry,
  fromDir: string,
  toDir: string,
  version: string,
  opts: { mutate?: (b: Buffer) => Buffer; keepSha?: boolean; patch?: (e: ManifestEntry) => void } = {},
): ManifestEntry {
  const rel = `${src.name}/${version}`;
  mkdirSync(join(toDir, rel), { recursive: true });
  const bytes = readFileSync(join(fromDir, src.file));
  const out = opts.mutate ? opts.mutate(Buffer.from(bytes)) : bytes;
  writeFileSync(join(toDir, rel, "model.onnx"), out);
  const e: ManifestEntry = structuredClone(src);
  e.version = version;
  e.file = `${rel}/model.onnx`;
  if (!opts.keepSha) {
    e.sha256 = sha256(out);
    e.bytes = out.length;
  }
  if (src.golden) {
    const gdir = dirname(join(fromDir, src.golden));
    cpSync(join(gdir, "golden.json"), join(toDir, rel, "golden.json"));
    cpSync(join(gdir, "golden"), join(toDir, rel, "golden"), { recursive: true });
    e.golden = `${rel}/golden.json`;
  }
  opts.patch?.(e);
  return e;
}

export function writeManifest(dir: string, models: ManifestEntry[]): void {
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, ".manifest.json.tmp");
  writeFileSync(tmp, JSON.stringify({ format: "glassd-models", format_version: 1, models }, null, 1));
  cpSync(tmp, join(dir, "manifest.json"));
}

export function registryOptions(dirs: string[], over: Partial<RegistryOptions> = {}): RegistryOptions {
  return {
    dirs,
    threads: 1,
    isolation: "worker",
    queue: { capacity: 16, policy: "reject_newest", max_batch: 1 },
    expectClasses: { forecaster: DEFECT_CLASSES, vision: DEFECT_CLASSES, ensemble: DEFECT_CLASSES },
    watchIntervalMs: 0,
    onUpdate: "activate",
    shadowAgreementAbs: 1e-6,
    ...over,
  };
}
