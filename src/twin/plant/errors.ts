import { GlassdError } from "../../core/errors.js";

/** A bad `glassd twin serve` argument or input file; the message names the flag or the field. */
export class PlantUsageError extends GlassdError {
  readonly flag: string;
  constructor(flag: string, message: string, cause?: unknown) {
    super(`${flag}: ${message}`, { status: 400, code: "usage", details: { flag }, cause });
    this.flag = flag;
  }
}

/** Why the plant refused a setpoint write. */
export type PlantWriteRefusal =
  /** The plant is in LOCAL mode (no heartbeat from the remote controller): no remote setpoint changes. */
  | "local_mode"
  /** Outside the tag's hard limits (what the instrument can represent); a PLC rejects it instead of clamping. */
  | "out_of_range"
  /** Not a finite number. */
  | "invalid_value"
  | "unknown_tag"
  | "not_writable";

/** A setpoint write the plant refused; nothing was applied. */
export class PlantWriteError extends GlassdError {
  readonly reason: PlantWriteRefusal;
  readonly tag: string;
  constructor(reason: PlantWriteRefusal, tag: string, message: string) {
    super(message, { status: reason === "unknown_tag" ? 404 : 409, code: reason, details: { tag } });
    this.reason = reason;
    this.tag = tag;
  }
}
