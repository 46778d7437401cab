import { type Stats, unwatchFile, watchFile } from "node:fs";
import { readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { GlassdError, NotFoundError, UnavailableError } from "../core/errors.js";
import { round3 } from "../core/latency.js";
import { type Logger, silentLogger } from "../core/logger.js";
import type { Service } from "../core/service.js";
import type { Feeds, Isolation } from "./host.js";
import { type LoadOptions, loadInstance, type ModelInstance, ModelLoadError } from "./instance.js";
import { compareVersions, type ManifestProblem, type ModelRef, scanManifests } from "./manifest.js";
import type { DropPolicy } from "./queue.js";
import { ShadowStats } from "./shadow.js";

/*
 * The model registry: which versions exist (models/manifest.json of each models directory), which one is live per
 * model, the one before it (kept loaded for an instant rollback) and an optional shadow candidate. Loading is
 * checked end to end (instance.ts); a version that fails any check is never served: the live one keeps serving,
 * an alarm is raised, and a model with no live version reports `unavailable` with the reason.
 *
 * Swaps are atomic: `activate` loads and warms the new version first, then replaces the live reference in one
 * assignment. A tick takes the live instances once at its start (`snapshot`) and finishes on them, so a swap
 * lands between ticks; calls already queued on the old version complete on it (it is closed only after draining,
 * when a later swap retires it).
 */

export type ModelState = "loaded" | "unavailable" | "failed";

export interface ModelAlarm {
  /** ms epoch (wall clock). */
  ts: number;
  model: string;
  version: string | null;
  severity: "warning" | "critical";
  /** load_failed | run_failed | latency | queue_drops | no_model | manifest */
  code: string;
  message: string;
  /** false when a condition (latency) has cleared. */
  active: boolean;
}

export interface QueueSettings {
  capacity: number;
  policy: DropPolicy;
  max_batch: number;
}

export interface RegistryOptions {
  /** Models directories in order: the repo's models/ first, the field-update directory last (wins ties). */
  dirs: string[];
  /** Where the chosen versions are remembered across restarts (JSON); none = always the newest. */
  statePath?: string;
  threads: number;
  /** Per-model intra-op threads (e.g. vision: 2). */
  threadsByModel?: Record<string, number>;
  isolation: Isolation;
  /** Per-model isolation (e.g. vision: worker), else `isolation`. */
  isolationByModel?: Record<string, Isolation>;
  queue: QueueSettings;
  queueByModel?: Record<string, Partial<QueueSettings>>;
  /** Class order the daemon's code assumes, per model name. */
  expectClasses?: Record<string, readonly string[]>;
  /** Poll interval of the manifest watch, ms; 0 = no watch. */
  watchIntervalMs: number;
  /** What a new or changed manifest entry does: go live, run as shadow candidate, or nothing. */
  onUpdate: "activate" | "shadow" | "ignore";
  /** Latency alarm: raised when a model's p99 exceeds it (ms), cleared below 80 % of it. */
  latencyAlarmMs?: Record<string, number>;
  /** Shadow agreement: outputs agree when |active − candidate| ≤ this. */
  shadowAgreementAbs: number;
  log?: Logger;
  /**
   * Models the factory rejected (manifest `acceptance.ok: false`) that may serve anyway; by default a rejected
   * model is refused with the failed checks as the reason (it would show numbers its card says not to trust).
   */
  allowRejected?: readonly string[];
  /** Drop counter hook (e.g. the daemon's glassd_queue_drops_total). */
  onDrop?: (queue: string, policy: DropPolicy) => void;
}

interface Slot {
  name: string;
  active?: ModelInstance;
  previous?: ModelInstance;
  candidate?: { inst: ModelInstance; stats: ShadowStats };
  /** Last refusal per version#sha (never retried by the watch until the entry changes). */
  failed: Map<string, { version: string; reason: string; stage: string; at: string }>;
  lastError?: { version: string; reason: string; at: string };
  latencyAlarm: boolean;
  lastRunAlarm: number;
  lastDropAlarm: number;
  runs: number;
  failures: number;
  drops: number;
}

const ALARM_REPEAT_MS = 60_000;

export class ModelRegistry implements Service {
  readonly name = "models";
  private readonly slots = new Map<string, Slot>();
  private refs: ModelRef[] = [];
  private problems: ManifestProblem[] = [];
  private readonly alarmHandlers = new Set<(a: ModelAlarm) => void>();
  private readonly alarms: ModelAlarm[] = [];
  private chain: Promise<unknown> = Promise.resolve();
  private watching: string[] = [];
  private watchTimer: NodeJS.Timeout | undefined;
  private chosen: Record<string, string> = {};
  private stopped = false;
  private readonly log: Logger;

  constructor(readonly opts: RegistryOptions) {
    this.log = opts.log ?? silentLogger;
  }

  /** Subscribes to alarms (the daemon publishes them on WebSocket/MQTT); returns the unsubscribe function. */
  onAlarm(handler: (a: ModelAlarm) => void): () => void {
    this.alarmHandlers.add(handler);
    return () => this.alarmHandlers.delete(handler);
  }

  /** Reads the manifests and loads the chosen (else newest loadable) version of every model; starts the watch. */
  async start(signal?: AbortSignal): Promise<void> {
    this.stopped = false;
    if (this.opts.statePath) {
      try {
        this.chosen = JSON.parse(await readFile(this.opts.statePath, "utf8")) as Record<string, string>;
      } catch {
        this.chosen = {};
      }
    }
    await this.serial(async () => {
      this.rescan();
      for (const name of this.names()) {
        if (signal?.aborted) throw signal.reason;
        await this.loadBest(name, true);
      }
    });
    if (this.opts.watchIntervalMs > 0) {
      for (const dir of this.opts.dirs) {
        const file = join(dir, "manifest.json");
        watchFile(file, { interval: this.opts.watchIntervalMs, persistent: false }, (cur: Stats, prev: Stats) => {
          if (cur.mtimeMs === prev.mtimeMs && cur.size === prev.size && cur.ino === prev.ino) return;
          clearTimeout(this.watchTimer);
          this.watchTimer = setTimeout(() => {
            this.reload().catch((err) => this.log.error({ err }, "model reload failed"));
          }, 200);
        });
        this.watching.push(file);
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.watchTimer);
    for (const f of this.watching) unwatchFile(f);
    this.watching = [];
    await this.chain.catch(() => {});
    const all: ModelInstance[] = [];
    for (const s of this.slots.values()) {
      for (const i of [s.active, s.previous, s.candidate?.inst]) if (i) all.push(i);
      s.active = undefined;
      s.previous = undefined;
      s.candidate = undefined;
    }
    await Promise.all(all.map((i) => i.close().catch(() => {})));
  }

  /**
   * Re-reads the manifests (what the watch calls). A model whose newest entry differs from the live one (new
   * version, or the same version rebuilt with a new sha256) is activated, shadowed or ignored per `onUpdate`;
   * an entry that already failed with the same sha256 is not retried.
   */
  reload(): Promise<void> {
    return this.serial(async () => {
      if (this.stopped) return;
      this.rescan();
      for (const name of this.names()) {
        const slot = this.slot(name);
        const best = this.versions(name).at(-1);
        if (!best) continue;
        const key = `${best.version}#${best.sha256}`;
        if (slot.active?.key === key || slot.candidate?.inst.key === key || slot.failed.has(key)) continue;
        if (!slot.active) {
          await this.loadBest(name, false);
          continue;
        }
        if (this.opts.onUpdate === "ignore") continue;
        try {
          if (this.opts.onUpdate === "shadow") await this.shadowLocked(name, best);
          else await this.swapLocked(name, best);
        } catch {
          // refused: alarm raised, the live version keeps serving
        }
      }
    });
  }

  /** Models named in any manifest or loaded, sorted. */
  names(): string[] {
    return [...new Set([...this.refs.map((r) => r.name), ...this.slots.keys()])].sort();
  }

  /** Versions of a model on disk, oldest first. */
  versions(name: string): ModelRef[] {
    return this.refs.filter((r) => r.name === name).sort(compareVersions);
  }

  /** The live instance of a model, if any. */
  active(name: string): ModelInstance | undefined {
    return this.slots.get(name)?.active;
  }

  /** Why a model has no live version (undefined when it has one). */
  unavailableReason(name: string): string | undefined {
    const s = this.slots.get(name);
    if (s?.active) return undefined;
    if (s?.lastError) return `${name}: no version could be loaded; last refusal: ${s.lastError.reason}`;
    const bad = this.problems.find((p) => p.name === name);
    if (bad)
      return `${name}: its manifest entry is invalid: ${bad.issues.map((i) => `${i.path} ${i.message}`).join("; ")}`;
    return `${name}: no model of this name in ${this.opts.dirs.map((d) => join(d, "manifest.json")).join(" or ")}`;
  }

  /** The live instances now, for one tick: later swaps do not change what this tick uses. */
  snapshot(): ReadonlyMap<string, ModelInstance> {
    const m = new Map<string, ModelInstance>();
    for (const [k, s] of this.slots) if (s.active) m.set(k, s.active);
    return m;
  }

  /**
   * Runs the live version (or the given snapshot's instance) and, when a shadow candidate exists, the candidate on
   * the same inputs afterwards (not awaited; its agreement and latency are recorded).
   */
  async run(name: string, feeds: Feeds, inst = this.active(name)): Promise<Feeds> {
    if (!inst) throw new UnavailableError(this.unavailableReason(name) ?? `${name} is not loaded`, "model_unavailable");
    const slot = this.slot(name);
    slot.runs++;
    let out: Feeds;
    try {
      out = await inst.run(feeds);
    } catch (err) {
      if ((err as GlassdError).code === "queue_full") {
        slot.drops++;
        if (Date.now() - slot.lastDropAlarm > ALARM_REPEAT_MS) {
          slot.lastDropAlarm = Date.now();
          this.alarm(name, inst.version, "warning", "queue_drops", (err as Error).message);
        }
      } else if ((err as GlassdError).code !== "model_input") {
        slot.failures++;
        if (Date.now() - slot.lastRunAlarm > ALARM_REPEAT_MS) {
          slot.lastRunAlarm = Date.now();
          this.alarm(
            name,
            inst.version,
            "critical",
            "run_failed",
            `${name}@${inst.version}: ${(err as Error).message}`,
          );
        }
        if (inst.session.dead && slot.active === inst) void this.recover(name, inst);
      }
      throw err;
    }
    this.checkLatency(name, inst);
    const cand = slot.candidate;
    if (cand && cand.inst !== inst) {
      const t0 = performance.now();
      cand.inst.run(feeds).then(
        (o) => cand.stats.observe(out, o, performance.now() - t0),
        (err: Error) => cand.stats.failed(err),
      );
    }
    return out;
  }

  /** `POST /api/models/{name}/activate`: loads, checks and warms `version`, then swaps it live. */
  activate(name: string, version: string): Promise<ModelStatus> {
    return this.serial(async () => {
      const ref = this.findRef(name, version);
      const slot = this.slot(name);
      if (slot.active?.key === `${ref.version}#${ref.sha256}`) return this.statusOf(name);
      if (slot.candidate?.inst.key === `${ref.version}#${ref.sha256}`) return this.promoteLocked(name);
      await this.swapLocked(name, ref);
      await this.remember(name, ref.version);
      return this.statusOf(name);
    });
  }

  /** `POST /api/models/{name}/rollback`: the previous version goes live again (it stayed loaded). */
  rollback(name: string): Promise<ModelStatus> {
    return this.serial(async () => {
      const slot = this.slots.get(name);
      if (!slot?.previous)
        throw new GlassdError(`${name} has no previous version to roll back to`, { status: 409, code: "no_previous" });
      const prev = slot.previous;
      slot.previous = slot.active;
      slot.active = prev;
      this.log.warn({ model: name, version: prev.version, from: slot.previous?.version }, "model rolled back");
      await this.remember(name, prev.version);
      return this.statusOf(name);
    });
  }

  /** `POST /api/models/{name}/shadow`: loads `version` as a candidate that runs beside the live one. */
  shadow(name: string, version: string): Promise<ModelStatus> {
    return this.serial(async () => {
      await this.shadowLocked(name, this.findRef(name, version));
      return this.statusOf(name);
    });
  }

  /** `DELETE /api/models/{name}/shadow`: stops and unloads the candidate. */
  stopShadow(name: string): Promise<ModelStatus> {
    return this.serial(async () => {
      const slot = this.slots.get(name);
      const c = slot?.candidate;
      if (!slot || !c) throw new GlassdError(`${name} has no shadow candidate`, { status: 409, code: "no_candidate" });
      slot.candidate = undefined;
      await c.inst.close();
      return this.statusOf(name);
    });
  }

  /** `POST /api/models/{name}/promote`: the shadow candidate goes live (explicitly; never automatically). */
  promote(name: string): Promise<ModelStatus> {
    return this.serial(async () => {
      const s = await this.promoteLocked(name);
      const active = this.slots.get(name)?.active;
      if (active) await this.remember(name, active.version);
      return s;
    });
  }

  /** Status of every model (`GET /api/models`). */
  status(): { models: ModelStatus[]; alarms: ModelAlarm[]; manifest_problems: ManifestProblem[]; dirs: string[] } {
    return {
      models: this.names().map((n) => this.statusOf(n)),
      alarms: this.alarms.slice(-50).reverse(),
      manifest_problems: this.problems,
      dirs: this.opts.dirs,
    };
  }

  statusOf(name: string): ModelStatus {
    const slot = this.slots.get(name);
    const a = slot?.active;
    const inst = (i: ModelInstance | undefined) =>
      i
        ? {
            version: i.version,
            sha256: i.ref.sha256,
            variant: i.ref.variant,
            loaded_at: i.loadedAt,
            dir: i.ref.dir,
          }
        : null;
    const lat = a?.latency.summary();
    const versions = this.versions(name).map((r) => {
      const key = `${r.version}#${r.sha256}`;
      const f = slot?.failed.get(key);
      return {
        version: r.version,
        sha256: r.sha256,
        variant: r.variant,
        dir: r.dir,
        metrics: r.metrics,
        trained_at: r.trained_at ?? null,
        state:
          a?.key === key
            ? "active"
            : slot?.previous?.key === key
              ? "previous"
              : slot?.candidate?.inst.key === key
                ? "candidate"
                : f
                  ? "failed"
                  : "available",
        ...(f ? { reason: f.reason } : {}),
      };
    });
    const state: ModelState = a ? "loaded" : slot?.lastError ? "failed" : "unavailable";
    return {
      name,
      status: state,
      version: a?.version ?? null,
      variant: a?.ref.variant ?? null,
      reason: a ? null : (this.unavailableReason(name) ?? null),
      metrics: a?.ref.metrics ?? null,
      classes: a?.ref.classes ?? null,
      inputs: a?.ref.inputs ?? null,
      outputs: a?.ref.outputs ?? null,
      latency_ms: lat
        ? { count: lat.count, p50: lat.p50_ms, p99: lat.p99_ms, mean: lat.mean_ms, max: lat.max_ms }
        : null,
      golden: a?.golden ?? null,
      loaded_at: a?.loadedAt ?? null,
      isolation: a?.session.isolation ?? null,
      queue: a
        ? {
            ...a.queue.stats(),
            capacity: a.queue.opts.capacity,
            policy: a.queue.opts.policy,
            max_batch: a.queue.opts.maxBatch,
          }
        : null,
      runs: slot?.runs ?? 0,
      failures: slot?.failures ?? 0,
      drops: slot?.drops ?? 0,
      active: inst(a),
      previous: inst(slot?.previous),
      candidate: slot?.candidate
        ? {
            ...inst(slot.candidate.inst)!,
            shadow: slot.candidate.stats.summary(a?.ref.metrics ?? {}, slot.candidate.inst.ref.metrics),
          }
        : null,
      last_error: slot?.lastError ?? null,
      versions,
    };
  }

  // --- internals (the *Locked methods run inside `serial`) ---

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn);
    this.chain = run.catch(() => {});
    return run;
  }

  private rescan(): void {
    const scan = scanManifests(this.opts.dirs);
    this.refs = scan.models;
    const fresh = scan.problems.filter(
      (p) =>
        !this.problems.some(
          (q) => q.dir === p.dir && q.index === p.index && JSON.stringify(q.issues) === JSON.stringify(p.issues),
        ),
    );
    this.problems = scan.problems;
    for (const p of fresh) {
      const text = p.issues.map((i) => `${i.path}: ${i.message}`).join("; ");
      this.alarm(p.name ?? "manifest", null, "warning", "manifest", `${join(p.dir, "manifest.json")}: ${text}`);
    }
  }

  private slot(name: string): Slot {
    let s = this.slots.get(name);
    if (!s) {
      s = {
        name,
        failed: new Map(),
        latencyAlarm: false,
        lastRunAlarm: 0,
        lastDropAlarm: 0,
        runs: 0,
        failures: 0,
        drops: 0,
      };
      this.slots.set(name, s);
    }
    return s;
  }

  private findRef(name: string, version: string): ModelRef {
    const all = this.versions(name);
    if (all.length === 0) throw new NotFoundError(this.unavailableReason(name) ?? `no model ${name}`);
    const ref = all.filter((r) => r.version === version).at(-1);
    if (!ref)
      throw new NotFoundError(`${name} has no version ${version}; available: ${all.map((r) => r.version).join(", ")}`);
    return ref;
  }

  private loadOptions(name: string): LoadOptions {
    const q = { ...this.opts.queue, ...(this.opts.queueByModel?.[name] ?? {}) };
    const expect = this.opts.expectClasses?.[name];
    return {
      threads: this.opts.threadsByModel?.[name] ?? this.opts.threads,
      isolation: this.opts.isolationByModel?.[name] ?? this.opts.isolation,
      queue: { capacity: q.capacity, policy: q.policy, maxBatch: q.max_batch },
      ...(expect ? { expectClasses: expect } : {}),
      onDrop: (policy) => this.opts.onDrop?.(`model:${name}`, policy),
    };
  }

  private async load(ref: ModelRef): Promise<ModelInstance> {
    const slot = this.slot(ref.name);
    try {
      if (ref.acceptance?.ok === false && !(this.opts.allowRejected ?? []).includes(ref.name)) {
        const failed = Object.entries(ref.acceptance.checks ?? {})
          .filter(([, v]) => v === false)
          .map(([k]) => k);
        throw new ModelLoadError(
          ref.name,
          ref.version,
          "acceptance",
          `the model factory rejected this version (failed: ${failed.join(", ") || "see its card"}; ${ref.card ?? "no card"}); serve it anyway with inference.allow_rejected`,
        );
      }
      const inst = await loadInstance(ref, this.loadOptions(ref.name));
      slot.failed.delete(`${ref.version}#${ref.sha256}`);
      return inst;
    } catch (err) {
      const e = err as Error;
      const stage = err instanceof ModelLoadError ? err.stage : "load";
      const at = new Date().toISOString();
      slot.failed.set(`${ref.version}#${ref.sha256}`, { version: ref.version, reason: e.message, stage, at });
      slot.lastError = { version: ref.version, reason: e.message, at };
      const serving = slot.active ? `; ${ref.name}@${slot.active.version} keeps serving` : "; the model is unavailable";
      // A version the factory rejected is an expected state (a warning); a broken file or model is critical.
      const rejected = stage === "acceptance";
      this.alarm(
        ref.name,
        ref.version,
        rejected ? "warning" : "critical",
        rejected ? "rejected_by_factory" : "load_failed",
        `${e.message}${serving}`,
      );
      this.log[rejected ? "warn" : "error"](
        { model: ref.name, version: ref.version, stage, err: e.message },
        "model refused",
      );
      throw err;
    }
  }

  /** First load of a model: the remembered version, else the newest; older ones when those fail. */
  private async loadBest(name: string, useChoice: boolean): Promise<void> {
    const all = this.versions(name);
    const chosen = useChoice ? all.filter((r) => r.version === this.chosen[name]).at(-1) : undefined;
    const order = [...(chosen ? [chosen] : []), ...all.filter((r) => r !== chosen).reverse()];
    const slot = this.slot(name);
    for (const ref of order) {
      if (slot.failed.has(`${ref.version}#${ref.sha256}`)) continue;
      try {
        slot.active = await this.load(ref);
        slot.lastError = undefined;
        this.log.info({ model: name, version: ref.version, variant: ref.variant }, "model loaded");
        return;
      } catch {
        // next older version
      }
    }
  }

  private async swapLocked(name: string, ref: ModelRef): Promise<void> {
    const inst = await this.load(ref);
    const slot = this.slot(name);
    const retired = slot.previous;
    slot.previous = slot.active;
    slot.active = inst;
    slot.lastError = undefined;
    slot.latencyAlarm = false;
    this.log.info({ model: name, version: ref.version, from: slot.previous?.version }, "model swapped");
    if (retired && retired !== inst) await retired.close();
  }

  private async shadowLocked(name: string, ref: ModelRef): Promise<void> {
    const slot = this.slot(name);
    if (!slot.active)
      throw new GlassdError(`${name} has no live version to shadow; activate one first`, {
        status: 409,
        code: "no_active",
      });
    if (slot.active.key === `${ref.version}#${ref.sha256}`)
      throw new GlassdError(`${name}@${ref.version} is already live`, { status: 409, code: "already_active" });
    const inst = await this.load(ref);
    const old = slot.candidate;
    slot.candidate = { inst, stats: new ShadowStats(this.opts.shadowAgreementAbs) };
    if (old) await old.inst.close();
  }

  private async promoteLocked(name: string): Promise<ModelStatus> {
    const slot = this.slots.get(name);
    const c = slot?.candidate;
    if (!slot || !c)
      throw new GlassdError(`${name} has no shadow candidate to promote`, { status: 409, code: "no_candidate" });
    const retired = slot.previous;
    slot.previous = slot.active;
    slot.active = c.inst;
    slot.candidate = undefined;
    this.log.info({ model: name, version: c.inst.version }, "shadow candidate promoted");
    if (retired) await retired.close();
    return this.statusOf(name);
  }

  /** The live version's session died (worker crash): reload the same version in a fresh session. */
  private recover(name: string, dead: ModelInstance): Promise<void> {
    return this.serial(async () => {
      const slot = this.slot(name);
      if (slot.active !== dead) return;
      try {
        const inst = await this.load(dead.ref);
        slot.active = inst;
      } catch {
        slot.active = undefined;
      }
      await dead.close().catch(() => {});
    });
  }

  private checkLatency(name: string, inst: ModelInstance): void {
    const limit = this.opts.latencyAlarmMs?.[name];
    if (!limit) return;
    const slot = this.slot(name);
    const s = inst.latency.summary();
    if (s.count % 50 !== 0 || s.count === 0 || s.p99_ms === null) return;
    if (!slot.latencyAlarm && s.p99_ms > limit) {
      slot.latencyAlarm = true;
      this.alarm(name, inst.version, "warning", "latency", `${name} p99 ${round3(s.p99_ms)} ms > ${limit} ms`);
    } else if (slot.latencyAlarm && s.p99_ms < 0.8 * limit) {
      slot.latencyAlarm = false;
      this.alarm(
        name,
        inst.version,
        "warning",
        "latency",
        `${name} p99 ${round3(s.p99_ms)} ms back under ${limit} ms`,
        false,
      );
    }
  }

  private alarm(
    model: string,
    version: string | null,
    severity: ModelAlarm["severity"],
    code: string,
    message: string,
    active = true,
  ): void {
    const a: ModelAlarm = { ts: Date.now(), model, version, severity, code, message, active };
    this.alarms.push(a);
    if (this.alarms.length > 200) this.alarms.splice(0, this.alarms.length - 200);
    for (const h of this.alarmHandlers) {
      try {
        h(a);
      } catch (err) {
        this.log.error({ err }, "model alarm handler failed");
      }
    }
  }

  private async remember(name: string, version: string): Promise<void> {
    this.chosen[name] = version;
    const p = this.opts.statePath;
    if (!p) return;
    const tmp = `${p}.tmp`;
    await writeFile(tmp, `${JSON.stringify(this.chosen, null, 1)}\n`);
    await rename(tmp, p);
  }
}

export interface ModelStatus {
  name: string;
  status: ModelState;
  version: string | null;
  variant: string | null;
  reason: string | null;
  metrics: Record<string, unknown> | null;
  classes: string[] | null;
  inputs: unknown;
  outputs: unknown;
  latency_ms: { count: number; p50: number | null; p99: number | null; mean: number | null; max: number | null } | null;
  golden: unknown;
  loaded_at: string | null;
  isolation: Isolation | null;
  queue: unknown;
  runs: number;
  failures: number;
  drops: number;
  active: unknown;
  previous: unknown;
  candidate: unknown;
  last_error: { version: string; reason: string; at: string } | null;
  versions: unknown[];
}
