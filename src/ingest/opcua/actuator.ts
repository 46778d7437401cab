import { GlassdError, UnavailableError } from "../../core/errors.js";
import { type Logger, silentLogger } from "../../core/logger.js";
import type { ActuatorSink, WriteResult } from "../ports.js";
import type { OpcuaSource } from "./source.js";

/*
 * Setpoint writes over the OPC UA source's session, with read-back. ONLY the autonomy layer's actuation gate may
 * call write() (and construct this at all): it checks the safety envelope, rate limits and the autonomy mode
 * first. Nothing else in glassd writes to the plant.
 *
 * A write is a Double to the lever's setpoint node (the tag's node + source.opcua.setpoint_suffix). The server's
 * answer:
 *   - Good                → applied as requested
 *   - GoodClamped (or any Good-severity code other than Good) → the PLC applied a different value (e.g. clamped to
 *                           the actuator range); the value read back is the applied one, and the result says so
 *   - Bad…                → refused, nothing applied: OpcuaWriteError with the status name (BadOutOfRange,
 *                           BadNotWritable — e.g. the PLC in LOCAL mode —, BadUserAccessDenied, …)
 * Then the setpoint is read back (MaxAge 0); `applied` and `readBack` are that value.
 *
 * Optional controller heartbeat: a UInt32 counter written every interval while connected (PLCs that fall back to
 * LOCAL mode when the remote controller goes quiet, like the twin's plant). The gate starts it when it may act.
 */

export interface OpcuaActuatorOptions {
  logger?: Logger;
  /** Controller heartbeat: node id of the counter and the write period (ms). */
  heartbeat?: { nodeId: string; intervalMs: number };
}

export class OpcuaWriteError extends GlassdError {
  /** OPC UA status name of the refusal, e.g. BadOutOfRange; "not_connected" / "not_writable" before a write. */
  readonly reason: string;
  constructor(message: string, reason: string, status = 409) {
    super(message, { status, code: "opcua_write_refused", details: { reason } });
    this.reason = reason;
  }
}

export class OpcuaActuator implements ActuatorSink {
  readonly id: string;
  private readonly log: Logger;
  private hbTimer: NodeJS.Timeout | undefined;
  private hbCounter = 0;
  private readonly counters = { writes: 0, writes_clamped: 0, writes_refused: 0, heartbeats: 0, heartbeat_failures: 0 };

  constructor(
    private readonly source: OpcuaSource,
    private readonly opts: OpcuaActuatorOptions = {},
  ) {
    this.id = source.id;
    this.log = opts.logger ?? silentLogger;
    const hb = opts.heartbeat;
    if (hb && !(Number.isInteger(hb.intervalMs) && hb.intervalMs >= 50))
      throw new RangeError(`heartbeat.intervalMs must be an integer >= 50, got ${hb.intervalMs}`);
  }

  writableTags(): string[] {
    return this.source.leverTags();
  }

  /** Last setpoint value seen (monitored, or read back after a write). */
  readSetpoint(tag: string): number {
    const s = this.source.setpointState(tag);
    if (!this.source.leverTags().includes(tag))
      throw new OpcuaWriteError(
        `tag "${tag}" has no OPC UA setpoint (no actuator or no sources.opcua)`,
        "not_writable",
        404,
      );
    if (s?.value === undefined)
      throw new UnavailableError(
        `setpoint of ${tag} not known yet: the OPC UA source is not connected`,
        "opcua_not_connected",
      );
    return s.value;
  }

  async write(tag: string, value: number): Promise<WriteResult> {
    if (!this.source.leverTags().includes(tag))
      throw new OpcuaWriteError(
        `tag "${tag}" has no OPC UA setpoint (no actuator or no sources.opcua)`,
        "not_writable",
        404,
      );
    if (typeof value !== "number" || !Number.isFinite(value))
      throw new OpcuaWriteError(`setpoint for ${tag} must be a finite number`, "invalid_value", 400);
    const session = this.source.liveSession();
    if (!session)
      throw new OpcuaWriteError(`OPC UA source ${this.id} is not connected: ${tag} not written`, "not_connected", 503);
    const sp = this.source.setpointState(tag);
    if (!sp)
      throw new OpcuaWriteError(`the setpoint node of ${tag} did not resolve on the server`, "not_writable", 503);
    const ua = this.source.uaModule();
    this.counters.writes++;
    const status = await session.write({
      nodeId: sp.nodeId,
      attributeId: ua.AttributeIds.Value,
      value: { value: { dataType: ua.DataType.Double, value } },
    });
    const severity = (status.value >>> 30) & 3;
    if (severity !== 0) {
      this.counters.writes_refused++;
      this.log.warn({ tag, requested: value, status: status.name }, "setpoint write refused by the server");
      throw new OpcuaWriteError(`the server refused ${tag} = ${value}: ${status.name}`, status.name);
    }
    const dv = await session.read({ nodeId: sp.nodeId, attributeId: ua.AttributeIds.Value }, 0);
    const readBack = typeof dv.value?.value === "number" ? dv.value.value : Number.NaN;
    const ts = dv.sourceTimestamp?.getTime() ?? Date.now();
    if (!dv.statusCode.isGoodish() || !Number.isFinite(readBack)) {
      throw new OpcuaWriteError(
        `${tag} was written (${status.name}) but reading it back failed: ${dv.statusCode.name}`,
        dv.statusCode.name,
        502,
      );
    }
    this.source.noteSetpoint(tag, readBack, ts);
    const clamped = status.name !== "Good" || readBack !== value;
    if (clamped) {
      this.counters.writes_clamped++;
      this.log.warn({ tag, requested: value, applied: readBack, status: status.name }, "setpoint applied differently");
    } else this.log.info({ tag, value }, "setpoint written");
    return { tag, requested: value, applied: readBack, readBack, ts };
  }

  /** Starts the controller heartbeat (no-op without `heartbeat` in the options). */
  startHeartbeat(): void {
    const hb = this.opts.heartbeat;
    if (!hb || this.hbTimer) return;
    const beat = async () => {
      const session = this.source.liveSession();
      if (!session) return;
      const ua = this.source.uaModule();
      this.hbCounter = (this.hbCounter + 1) >>> 0;
      try {
        const s = await session.write({
          nodeId: hb.nodeId,
          attributeId: ua.AttributeIds.Value,
          value: { value: { dataType: ua.DataType.UInt32, value: this.hbCounter } },
        });
        if (((s.value >>> 30) & 3) === 0) this.counters.heartbeats++;
        else {
          this.counters.heartbeat_failures++;
          this.log.warn({ status: s.name }, "controller heartbeat refused");
        }
      } catch (err) {
        this.counters.heartbeat_failures++;
        this.log.debug({ err: (err as Error).message }, "controller heartbeat failed");
      }
    };
    void beat();
    this.hbTimer = setInterval(() => void beat(), hb.intervalMs);
  }

  stopHeartbeat(): void {
    clearInterval(this.hbTimer);
    this.hbTimer = undefined;
  }

  stats() {
    return { ...this.counters, heartbeat_running: this.hbTimer !== undefined };
  }
}
