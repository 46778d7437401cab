import { existsSync, readFileSync } from "node:fs";
import { isAbsolute, join, normalize, resolve } from "node:path";
import { type Static, Type } from "@sinclair/typebox";
import { Ajv } from "ajv";
import { ajvIssues } from "../core/ajv-issues.js";
import type { Issue } from "../core/errors.js";

/*
 * models/manifest.json as the model factory writes it (models/factory/glass_factory/common/artifacts.py, format
 * "glassd-models" v1). The daemon reads one manifest per models directory: the repo's models/ and, for field
 * updates, a configured directory with the same layout (<dir>/manifest.json, <dir>/<name>/<version>/model.onnx …).
 * Unknown keys are kept (the factory may add some); missing or mistyped required keys are refused, naming the field.
 */

export const MANIFEST_FORMAT = "glassd-models";
export const MANIFEST_VERSION = 1;

/** Tensor element types the daemon feeds and reads. */
export const IO_DTYPES = ["float32", "float64", "int64", "int32", "uint8", "bool"] as const;
export type IoDtype = (typeof IO_DTYPES)[number];

const IoSpecSchema = Type.Object({
  name: Type.String({ minLength: 1 }),
  shape: Type.Array(Type.Integer({ minimum: -1 }), { description: "-1 = dynamic (batch) dimension" }),
  dtype: Type.Union(IO_DTYPES.map((d) => Type.Literal(d))),
  description: Type.Optional(Type.String()),
});
export type IoSpec = Static<typeof IoSpecSchema>;

const EntrySchema = Type.Object({
  name: Type.String({ minLength: 1, pattern: "^[A-Za-z0-9_.-]+$" }),
  version: Type.String({ minLength: 1, pattern: "^[A-Za-z0-9_.+-]+$" }),
  file: Type.String({ minLength: 1 }),
  sha256: Type.String({ pattern: "^[0-9a-f]{64}$" }),
  bytes: Type.Integer({ minimum: 1 }),
  variant: Type.String(),
  opset: Type.Integer({ minimum: 1 }),
  inputs: Type.Array(IoSpecSchema, { minItems: 1 }),
  outputs: Type.Array(IoSpecSchema, { minItems: 1 }),
  classes: Type.Union([Type.Array(Type.String()), Type.Null()]),
  feature_order: Type.Union([Type.Array(Type.String()), Type.Null()]),
  normalisation: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
  extra: Type.Record(Type.String(), Type.Unknown()),
  golden: Type.Union([Type.String(), Type.Null()]),
  card: Type.Union([Type.String(), Type.Null()]),
  metrics: Type.Record(Type.String(), Type.Unknown()),
  data: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  trained_at: Type.Optional(Type.String()),
  /** The factory's verdict: parity, beating the baselines, size. A rejected model serves only when allowed. */
  acceptance: Type.Optional(
    Type.Object({ ok: Type.Boolean(), checks: Type.Optional(Type.Record(Type.String(), Type.Unknown())) }),
  ),
});
export type ManifestEntry = Static<typeof EntrySchema>;

const ManifestSchema = Type.Object({
  format: Type.Literal(MANIFEST_FORMAT),
  format_version: Type.Literal(MANIFEST_VERSION),
  models: Type.Array(Type.Unknown()),
});

const ajv = new Ajv({ allErrors: true, strict: false });
const checkManifest = ajv.compile(ManifestSchema);
const checkEntry = ajv.compile(EntrySchema);

/** A manifest entry with where it was found: the models directory and the absolute paths of its files. */
export interface ModelRef extends ManifestEntry {
  /** The models directory whose manifest lists it. */
  dir: string;
  /** Absolute path of the ONNX file. */
  path: string;
  /** Absolute path of golden.json, or null. */
  goldenPath: string | null;
  /** Index of `dir` in the registry's directory list (later = field update, preferred on ties). */
  dirRank: number;
}

/** A manifest that could not be read as a whole, or one bad entry in it. */
export interface ManifestProblem {
  dir: string;
  /** Entry index, or -1 for the manifest itself. */
  index: number;
  name?: string;
  issues: Issue[];
}

export interface ManifestScan {
  models: ModelRef[];
  problems: ManifestProblem[];
  /** Directories without a manifest.json (not an error: an empty field-update directory is normal). */
  missing: string[];
}

/** Resolves `rel` inside `dir`; refuses absolute paths and `..` escapes (a manifest must not point elsewhere). */
function inside(dir: string, rel: string): string | undefined {
  if (isAbsolute(rel)) return undefined;
  const n = normalize(rel);
  if (n.startsWith("..")) return undefined;
  return join(dir, n);
}

/** Parses one manifest document (already JSON-decoded); bad entries are reported and skipped, good ones kept. */
export function parseManifest(
  doc: unknown,
  dir: string,
  dirRank = 0,
): { models: ModelRef[]; problems: ManifestProblem[] } {
  const absDir = resolve(dir);
  if (!checkManifest(doc)) {
    return {
      models: [],
      problems: [{ dir: absDir, index: -1, issues: ajvIssues(checkManifest.errors) }],
    };
  }
  const models: ModelRef[] = [];
  const problems: ManifestProblem[] = [];
  (doc.models as unknown[]).forEach((raw: unknown, index: number) => {
    const name = (raw as { name?: unknown } | null)?.name;
    const label = typeof name === "string" ? name : undefined;
    if (!checkEntry(raw)) {
      problems.push({
        dir: absDir,
        index,
        ...(label ? { name: label } : {}),
        issues: ajvIssues(checkEntry.errors).map((i) => ({
          ...i,
          path: `/models/${index}${i.path === "/" ? "" : i.path}`,
        })),
      });
      return;
    }
    const e = raw as ManifestEntry;
    const path = inside(absDir, e.file);
    const goldenPath = e.golden === null ? null : inside(absDir, e.golden);
    const issues: Issue[] = [];
    if (!path) issues.push({ path: `/models/${index}/file`, message: `must be a path inside ${absDir}` });
    if (goldenPath === undefined)
      issues.push({ path: `/models/${index}/golden`, message: `must be a path inside ${absDir}` });
    if (issues.length) {
      problems.push({ dir: absDir, index, name: e.name, issues });
      return;
    }
    models.push({ ...e, dir: absDir, path: path!, goldenPath: goldenPath ?? null, dirRank });
  });
  return { models, problems };
}

/** Reads `<dir>/manifest.json` for every directory (in order; later directories are field updates). */
export function scanManifests(dirs: readonly string[]): ManifestScan {
  const out: ManifestScan = { models: [], problems: [], missing: [] };
  dirs.forEach((dir, rank) => {
    const file = join(dir, "manifest.json");
    if (!existsSync(file)) {
      out.missing.push(resolve(dir));
      return;
    }
    let doc: unknown;
    try {
      doc = JSON.parse(readFileSync(file, "utf8"));
    } catch (err) {
      out.problems.push({
        dir: resolve(dir),
        index: -1,
        issues: [{ path: "/", message: `${file} is not readable JSON: ${(err as Error).message}` }],
      });
      return;
    }
    const r = parseManifest(doc, dir, rank);
    out.models.push(...r.models);
    out.problems.push(...r.problems);
  });
  return out;
}

/**
 * Orders versions: numeric dot-separated parts compared as numbers, a pre-release suffix ("-quick") below the
 * release, then the directory rank (a field update wins a tie). Returns < 0 when a is older than b.
 */
export function compareVersions(a: Pick<ModelRef, "version" | "dirRank">, b: Pick<ModelRef, "version" | "dirRank">) {
  const split = (v: string) => {
    const [core = "", pre] = v.split(/-(.*)/s, 2);
    return { parts: core.split(".").map((p) => (/^\d+$/.test(p) ? Number(p) : p)), pre };
  };
  const x = split(a.version);
  const y = split(b.version);
  for (let i = 0; i < Math.max(x.parts.length, y.parts.length); i++) {
    const p = x.parts[i] ?? 0;
    const q = y.parts[i] ?? 0;
    if (p === q) continue;
    if (typeof p === "number" && typeof q === "number") return p - q;
    return String(p) < String(q) ? -1 : 1;
  }
  if (x.pre !== y.pre) {
    if (x.pre === undefined) return 1;
    if (y.pre === undefined) return -1;
    return x.pre < y.pre ? -1 : 1;
  }
  return a.dirRank - b.dirRank;
}

/** Golden I/O as the factory writes it (golden.json next to golden/*.npy). */
export interface GoldenDoc {
  inputs: { name: string; file: string; shape: number[]; dtype: string }[];
  outputs: { name: string; file: string; shape: number[]; dtype: string }[];
  tolerance: { abs: number; rel: number };
}

const GoldenSchema = Type.Object({
  inputs: Type.Array(
    Type.Object({ name: Type.String(), file: Type.String(), shape: Type.Array(Type.Integer()), dtype: Type.String() }),
  ),
  outputs: Type.Array(
    Type.Object({ name: Type.String(), file: Type.String(), shape: Type.Array(Type.Integer()), dtype: Type.String() }),
  ),
  tolerance: Type.Object({ abs: Type.Number({ minimum: 0 }), rel: Type.Number({ minimum: 0 }) }),
});
const checkGolden = ajv.compile(GoldenSchema);

/** Reads golden.json; throws an Error naming the file and field when it is malformed. */
export function readGoldenDoc(path: string): GoldenDoc {
  const doc = JSON.parse(readFileSync(path, "utf8")) as unknown;
  if (!checkGolden(doc)) {
    const issues = ajvIssues(checkGolden.errors);
    throw new Error(`${path}: ${issues.map((i) => `${i.path}: ${i.message}`).join("; ")}`);
  }
  return doc as GoldenDoc;
}
