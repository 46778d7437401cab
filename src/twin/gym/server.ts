import type { TagConfig } from "../../config/schema.js";
import { type Logger, silentLogger } from "../../core/logger.js";
import { VERSION } from "../../version.js";
import { GymError } from "./errors.js";
import { decodeArrays, encodeFrame, type Frame, FrameReader, type ParseResult, type WireArray } from "./frame.js";
import { DEFAULT_GYM_OPTIONS, OPTION_DOCS, parseGymReset } from "./options.js";
import { REWARD_FORMULA, REWARD_TERMS } from "./reward.js";
import { describeGymScenario } from "./scenario.js";
import { buildGymSpec, type GymSpec } from "./spaces.js";
import { GlassVecEnv } from "./vec-env.js";

/** Protocol name and version in `hello`; the version changes when a message or array changes meaning. */
export const GYM_PROTOCOL = "glassd-twin-gym";
export const GYM_PROTOCOL_VERSION = 1;
export const DEFAULT_MAX_ENVS = 1024;

export interface GymServerOptions {
  tags: readonly TagConfig[];
  log?: Logger;
  /** Largest n_envs a reset may ask for. Default 1024. */
  maxEnvs?: number;
}

const REQUEST_KEYS: Record<string, ReadonlySet<string>> = {
  hello: new Set(["type", "id", "version"]),
  reset: new Set(["type", "id", "n_envs", "seed", "options"]),
  step: new Set(["type", "id", "arrays"]),
  close: new Set(["type", "id"]),
};

/**
 * The protocol's state machine, transport-free: one reply frame per request frame (or per reader error). Every
 * failure becomes an `error` reply and leaves the server ready for the next request.
 */
export class GymServer {
  readonly spec: GymSpec;
  readonly vec: GlassVecEnv;
  /** Set once a `close` request has been answered. */
  closed = false;
  private readonly log: Logger;
  private readonly maxEnvs: number;
  private readonly hello: Record<string, unknown>;

  constructor(opts: GymServerOptions) {
    this.spec = buildGymSpec(opts.tags);
    this.vec = new GlassVecEnv(this.spec);
    this.log = opts.log ?? silentLogger;
    this.maxEnvs = opts.maxEnvs ?? DEFAULT_MAX_ENVS;
    this.hello = describeSpaces(this.spec, this.maxEnvs);
  }

  /** The reply to one reader result. */
  reply(result: ParseResult): Buffer {
    if ("error" in result) {
      this.log.warn({ code: result.error.code }, result.error.message);
      return encodeFrame({ type: "error", ...result.error, request: null });
    }
    const { header } = result.frame;
    const type = header.type as string;
    const id = header.id;
    try {
      const [h, arrays] = this.handle(type, result.frame);
      return encodeFrame(id === undefined ? h : { ...h, id }, arrays);
    } catch (err) {
      const known = err instanceof GymError;
      if (known) this.log.debug({ code: err.code, request: type }, err.message);
      else this.log.error({ err, request: type }, "gym request failed unexpectedly; the server keeps running");
      const reply = {
        type: "error",
        code: known ? err.code : "internal_error",
        message: (err as Error).message,
        request: type,
      };
      return encodeFrame(id === undefined ? reply : { ...reply, id });
    }
  }

  private handle(type: string, frame: Frame): [Record<string, unknown>, WireArray[]] {
    const allowed = REQUEST_KEYS[type];
    if (!allowed) {
      throw new GymError(
        "unknown_type",
        `unknown message type ${JSON.stringify(type)}; valid: ${Object.keys(REQUEST_KEYS).join(", ")}`,
      );
    }
    for (const key of Object.keys(frame.header)) {
      if (!allowed.has(key)) {
        throw new GymError(
          "bad_request",
          `${type}.${key} is not a field of ${type}; valid: ${[...allowed].join(", ")}`,
        );
      }
    }
    if (type !== "step" && frame.body.length) {
      throw new GymError("bad_request", `${type} carries no arrays, got a ${frame.body.length}-byte body`);
    }
    switch (type) {
      case "hello":
        return [this.onHello(frame.header), []];
      case "reset":
        return this.onReset(frame.header);
      case "step":
        return this.onStep(frame);
      default:
        this.closed = true;
        this.log.info("close requested");
        return [{ type: "close" }, []];
    }
  }

  private onHello(h: Record<string, unknown>): Record<string, unknown> {
    if (h.version !== undefined && h.version !== GYM_PROTOCOL_VERSION) {
      throw new GymError(
        "bad_request",
        `hello.version ${JSON.stringify(h.version)} is not supported; this server speaks version ${GYM_PROTOCOL_VERSION}`,
      );
    }
    return this.hello;
  }

  private onReset(h: Record<string, unknown>): [Record<string, unknown>, WireArray[]] {
    const n = h.n_envs;
    if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > this.maxEnvs) {
      throw new GymError(
        "bad_request",
        `reset.n_envs must be an integer in 1..${this.maxEnvs}, got ${JSON.stringify(n) ?? "nothing"}`,
      );
    }
    const seed = h.seed ?? undefined;
    if (seed !== undefined && (typeof seed !== "number" || !Number.isSafeInteger(seed) || seed < 0)) {
      throw new GymError("bad_request", `reset.seed must be an integer >= 0 or absent, got ${JSON.stringify(seed)}`);
    }
    const { tags, levers } = this.spec;
    const { options, scenario } = parseGymReset(
      h.options,
      tags,
      levers.map((l) => l.tag),
    );
    this.vec.reset(n, seed as number | undefined, options, scenario);
    const scenarioInfo = describeGymScenario(scenario);
    this.log.debug({ n_envs: n, seed, options, scenario: scenarioInfo }, "reset");
    const { obsDim, actDim } = this.spec;
    return [
      {
        type: "reset",
        n_envs: n,
        obs_dim: obsDim,
        act_dim: actDim,
        seed: seed ?? null,
        options,
        scenario: scenarioInfo,
      },
      [{ name: "obs", dtype: "<f4", shape: [n, obsDim], data: this.vec.obs }],
    ];
  }

  private onStep(frame: Frame): [Record<string, unknown>, WireArray[]] {
    const vec = this.vec;
    if (!vec.ready) throw new GymError("not_reset", "step before reset: send a reset message first");
    const { obsDim: D, actDim: A } = this.spec;
    const n = vec.n;
    const arrays = decodeArrays(frame);
    const actions = arrays.get("actions");
    if (!actions || arrays.size !== 1) {
      throw new GymError(
        "bad_action_shape",
        `step needs exactly one array, "actions", dtype <f4 (or <f8), shape [${n}, ${A}]; got ${arrays.size ? [...arrays.keys()].join(", ") : "none"}`,
      );
    }
    if (actions.dtype !== "<f4" && actions.dtype !== "<f8") {
      throw new GymError("bad_action_shape", `actions must have dtype <f4 or <f8, got ${actions.dtype}`);
    }
    vec.checkActions(actions.data, actions.shape);
    vec.step(actions.data);

    const out: WireArray[] = [
      { name: "obs", dtype: "<f4", shape: [n, D], data: vec.obs },
      { name: "reward", dtype: "<f4", shape: [n], data: vec.reward },
      { name: "terminated", dtype: "|u1", shape: [n], data: vec.terminated },
      { name: "truncated", dtype: "|u1", shape: [n], data: vec.truncated },
      { name: "reward_terms", dtype: "<f4", shape: [n, REWARD_TERMS.length], data: vec.rewardTerms },
      { name: "items_inspected", dtype: "<i4", shape: [n], data: vec.itemsInspected },
      { name: "items_defective", dtype: "<i4", shape: [n], data: vec.itemsDefective },
    ];
    // Trailing (after final_obs when present), so a v1 client that reads arrays by position still works.
    const overridden: WireArray = { name: "setpoint_overridden", dtype: "|u1", shape: [n, A], data: vec.overridden };
    const finals = vec.finals;
    if (finals.length === 0) return [{ type: "step" }, [...out, overridden]];
    out.push({ name: "final_obs", dtype: "<f4", shape: [finals.length, D], data: vec.finalObs }, overridden);
    const final = finals.map((f) => ({
      env: f.env,
      reason: f.reason,
      ...(f.tag === undefined ? {} : { tag: f.tag, value: f.value }),
      episode_return: f.episodeReturn,
      episode_length: f.episodeLength,
    }));
    return [{ type: "step", final }, out];
  }
}

/** The `hello` reply: everything a client needs to build its spaces, with names, units and bounds. */
function describeSpaces(spec: GymSpec, maxEnvs: number): Record<string, unknown> {
  return {
    type: "hello",
    protocol: GYM_PROTOCOL,
    version: GYM_PROTOCOL_VERSION,
    glassd_version: VERSION,
    max_envs: maxEnvs,
    observation: {
      dim: spec.obsDim,
      dtype: "<f4",
      names: spec.obsNames,
      units: spec.obsUnits,
      low: Array.from(spec.obsLow),
      high: Array.from(spec.obsHigh),
    },
    action: {
      dim: spec.actDim,
      dtype: "<f4",
      names: spec.levers.map((l) => l.tag),
      units: spec.levers.map((l) => l.unit),
      low: -1,
      high: 1,
      max_step: spec.levers.map((l) => l.maxStep),
      actuator_min: spec.levers.map((l) => l.min),
      actuator_max: spec.levers.map((l) => l.max),
      meaning:
        "new setpoint = clamp(setpoint + action * max_step, actuator_min, actuator_max); actions outside [-1, 1] or not finite are refused",
    },
    reward: { terms: REWARD_TERMS, formula: REWARD_FORMULA, default_weights: DEFAULT_GYM_OPTIONS.reward_weights },
    options: { defaults: DEFAULT_GYM_OPTIONS, docs: OPTION_DOCS },
    autoreset:
      "same-step: an env whose episode ends is reset at once; its obs row is the new episode's first observation, the last one is in final_obs",
  };
}

/**
 * Serves the protocol over a byte stream pair (stdin/stdout for `glassd twin gym`). Resolves with the exit code:
 * 0 on `close`, on EOF of `input` and when `output` goes away (the client is gone); 1 when `input` fails.
 */
export function serveGym(
  input: NodeJS.ReadableStream,
  output: NodeJS.WritableStream,
  server: GymServer,
  log: Logger = silentLogger,
): Promise<number> {
  return new Promise((resolve) => {
    const reader = new FrameReader();
    let done = false;
    const finish = (code: number) => {
      if (done) return;
      done = true;
      input.off("data", onData);
      resolve(code);
    };
    const onData = (chunk: Buffer | string) => {
      if (done) return;
      reader.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
      for (let r = reader.next(); r; r = reader.next()) {
        output.write(server.reply(r));
        if (server.closed) return finish(0);
      }
    };
    input.on("data", onData);
    input.on("end", () => {
      if (reader.buffered) log.warn({ bytes: reader.buffered }, "input ended inside a frame; the rest is dropped");
      log.info("input closed; exiting");
      finish(0);
    });
    input.on("error", (err: Error) => {
      log.error({ err }, "reading the input failed");
      finish(1);
    });
    output.on("error", (err: Error) => {
      log.warn({ err }, "the client stopped reading; exiting");
      finish(0);
    });
  });
}
