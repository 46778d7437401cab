import { mkdirSync } from "node:fs";
import {
  DataType,
  DataValue,
  MessageSecurityMode,
  makeAccessLevelFlag,
  makeEUInformation,
  makeRoles,
  type Namespace,
  OPCUACertificateManager,
  OPCUAServer,
  PermissionType,
  SecurityPolicy,
  type StatusCode,
  StatusCodes,
  type UAObject,
  type UAVariable,
  WellKnownRoles,
} from "node-opcua";
import type { TagConfig } from "../../config/schema.js";
import { type Logger, silentLogger } from "../../core/logger.js";
import { DEFECT_CLASSES, type InspectionEvent, type Quality, type RawSample } from "../../core/types.js";
import { VERSION } from "../../version.js";
import type { PlantRole, PlantUsers } from "./credentials.js";
import { PlantUsageError, PlantWriteError, type PlantWriteRefusal } from "./errors.js";
import type { Plant, PlantListener, PlantReading } from "./plant.js";
import { unitInfo } from "./units.js";

/*
 * The plant's OPC UA server: what a PLC on the line would expose.
 *
 * Address space (namespace 1, the server's own; string node ids):
 *   Objects/<line>                         ns=1;s=<line>                 Object
 *     <stage>/                             ns=1;s=<line>/<stage>         Object per stage of the tag dictionary
 *       <tag>                              ns=1;s=<line>.<tag>           AnalogItem Double, read-only
 *       <tag>_sp                           ns=1;s=<line>.<tag>_sp        AnalogItem Double, writable (levers only)
 *     control/                             ns=1;s=<line>/control
 *       glassd_heartbeat                   ns=1;s=<line>.glassd_heartbeat UInt32, writable
 *       remote_mode                        ns=1;s=<line>.remote_mode      Boolean, read-only
 *       heartbeat_timeout_s                ns=1;s=<line>.heartbeat_timeout_s Double, read-only
 *       sim_time                           ns=1;s=<line>.sim_time         DateTime, read-only
 *     mik_1/                               ns=1;s=<line>/mik_1
 *       items_inspected, defective_items   ns=1;s=<line>.<name>           UInt32, read-only
 *       quality_score                      ns=1;s=<line>.quality_score    Double 0..1 (good share, last 100 items)
 *       last_item_id                       ns=1;s=<line>.last_item_id     UInt32
 *       defects_per_class/<class>          ns=1;s=<line>.defects_per_class.<class> UInt32
 * A tag whose dictionary entry names another node id (sources.opcua.node_id, in namespace 1) is served there,
 * its setpoint at that id + "_sp". Object ids use "/" so they can never collide with a tag id.
 *
 * Process values: EURange = the normal band, InstrumentRange = the hard limits, EngineeringUnits from the unit
 * (UNECE code), source timestamp = the twin's simulated time, status from the sample's quality (good → Good,
 * uncertain → UncertainSensorNotAccurate, bad or non-numeric → BadSensorFailure); a sensor silent for 3 sampling
 * periods (the twin's dropout fault) keeps its last value with UncertainLastUsableValue until it reports again.
 *
 * Setpoint writes (PLC rules, see Plant.writeSetpoint), in the order they are checked:
 *   - the session's user lacks a writing role (anonymous, viewer)      → BadUserAccessDenied
 *   - not a Double                                                     → BadTypeMismatch
 *   - outside the hard limits (InstrumentRange) or not finite          → BadOutOfRange, nothing applied
 *   - plant in LOCAL mode (no heartbeat within the timeout)            → BadNotWritable, nothing applied
 *     (BadNotWritable, not BadUserAccessDenied: the refusal is about the state of the plant, not about who
 *     writes, and a client must be able to tell the two apart)
 *   - inside the hard limits but outside the actuator range (EURange)  → GoodClamped: applied clamped to the range
 *   - otherwise                                                        → Good
 * Reading a setpoint back always gives the value the plant applied.
 *
 * Security: endpoints for Basic256Sha256, Aes128_Sha256_RsaOaep and Aes256_Sha256_RsaPss with Sign and/or
 * SignAndEncrypt, a None endpoint only when asked for. None of these policies uses RSA PKCS#1 v1.5 encryption,
 * so Node 20's CVE-2023-46809 fix does not affect them and no --security-revert flag is needed (node-opcua's
 * startup warning NODE-OPCUA-W27 concerns only Basic128Rsa15, which is not offered). User tokens: user name +
 * password (from the user file), X.509 (certificate trusted in the user PKI, subject CN = a user of the file),
 * anonymous only when enabled and then read-only. The application certificate is self-signed on first start in
 * <pki>/own; client certificates must be in <pki>/trusted (unknown ones land in <pki>/rejected) unless
 * auto-accept is on.
 */

export type OpcuaSecurityMode = "none" | "sign" | "encrypt";
export const OPCUA_POLICIES = ["Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"] as const;
export type OpcuaPolicy = (typeof OPCUA_POLICIES)[number];

export interface PlantOpcuaOptions {
  /** TCP port; 0 picks a free one (see {@link PlantOpcuaServer.port}). */
  port: number;
  /** Address to bind. Default: every interface. */
  host?: string;
  /** Host name advertised in endpoint URLs and put in the certificate. Default: the machine's FQDN. */
  hostname?: string;
  security: OpcuaSecurityMode[];
  policies?: OpcuaPolicy[];
  users: PlantUsers;
  /** Anonymous sessions: refused ("off") or read-only ("read"). */
  anonymous: "off" | "read";
  /** PKI of the server: own certificate, trusted/rejected client certificates. */
  pkiDir: string;
  /** PKI for X.509 user tokens. */
  userPkiDir: string;
  /** Trust every client certificate on first sight (a development convenience; off on a real line). */
  autoAcceptClients?: boolean;
  /** Most sessions at once. Default 32. */
  maxSessions?: number;
  logger?: Logger;
}

const READ = PermissionType.Browse | PermissionType.Read | PermissionType.ReadRolePermissions;
const WRITE = READ | PermissionType.Write;
/** Roles that may write setpoints and the heartbeat; everybody else (Anonymous, Observer) only reads them. */
const WRITER_ROLES = [
  WellKnownRoles.Operator,
  WellKnownRoles.Engineer,
  WellKnownRoles.Supervisor,
  WellKnownRoles.ConfigureAdmin,
  WellKnownRoles.SecurityAdmin,
];
const WRITABLE_PERMISSIONS = [
  { roleId: WellKnownRoles.Anonymous, permissions: READ },
  { roleId: WellKnownRoles.AuthenticatedUser, permissions: READ },
  { roleId: WellKnownRoles.Observer, permissions: READ },
  ...WRITER_ROLES.map((roleId) => ({ roleId, permissions: WRITE })),
];
const ROLE_MAP: Record<PlantRole, WellKnownRoles[]> = {
  viewer: [WellKnownRoles.AuthenticatedUser, WellKnownRoles.Observer],
  operator: [WellKnownRoles.AuthenticatedUser, WellKnownRoles.Operator],
  engineer: [WellKnownRoles.AuthenticatedUser, WellKnownRoles.Engineer],
  admin: [
    WellKnownRoles.AuthenticatedUser,
    WellKnownRoles.Supervisor,
    WellKnownRoles.ConfigureAdmin,
    WellKnownRoles.SecurityAdmin,
  ],
};

const QUALITY_STATUS: Record<Quality, StatusCode> = {
  good: StatusCodes.Good,
  uncertain: StatusCodes.UncertainSensorNotAccurate,
  bad: StatusCodes.BadSensorFailure,
};

const REFUSAL_STATUS: Record<PlantWriteRefusal, StatusCode> = {
  local_mode: StatusCodes.BadNotWritable,
  out_of_range: StatusCodes.BadOutOfRange,
  invalid_value: StatusCodes.BadOutOfRange,
  unknown_tag: StatusCodes.BadNodeIdUnknown,
  not_writable: StatusCodes.BadNotWritable,
};

/** Where a tag lives in the address space. */
export interface TagNode {
  tag: string;
  stage: string;
  nodeId: string;
  /** Setpoint node id, for levers. */
  setpointNodeId?: string;
}

/** Node ids the plant serves for a tag dictionary (also what a client should browse for). */
export function plantNodeIds(lineId: string, tags: readonly TagConfig[]): TagNode[] {
  const seen = new Map<string, string>();
  const claim = (nodeId: string, what: string) => {
    const other = seen.get(nodeId);
    if (other) throw new PlantUsageError("--config", `${what} and ${other} would share the node id ${nodeId}`);
    seen.set(nodeId, what);
  };
  for (const [k, v] of Object.entries(controlNodeIds(lineId))) claim(v, `the plant's ${k} variable`);
  for (const name of MIK_VARIABLES) claim(`ns=1;s=${lineId}.${name}`, `the MIK-1's ${name}`);
  return tags.map((t, i) => {
    const nodeId = t.sources.opcua?.node_id ?? `ns=1;s=${lineId}.${t.id}`;
    if (!/^ns=1;s=.+$/.test(nodeId)) {
      throw new PlantUsageError(
        "--config",
        `tags[${i}] (${t.id}): sources.opcua.node_id "${nodeId}" must be a string node id in namespace 1 (ns=1;s=…), the plant's own namespace`,
      );
    }
    claim(nodeId, `tags[${i}] (${t.id})`);
    if (t.actuator) claim(`${nodeId}_sp`, `the setpoint of tags[${i}] (${t.id})`);
    return {
      tag: t.id,
      stage: t.stage,
      nodeId,
      ...(t.actuator ? { setpointNodeId: `${nodeId}_sp` } : {}),
    };
  });
}

/** Names (after "ns=1;s=<line>.") of the MIK-1 variables. */
const MIK_VARIABLES = [
  "items_inspected",
  "defective_items",
  "quality_score",
  "last_item_id",
  ...DEFECT_CLASSES.map((c) => `defects_per_class.${c}`),
];

/** Node ids of the plant's control variables. */
export function controlNodeIds(lineId: string) {
  return {
    heartbeat: `ns=1;s=${lineId}.glassd_heartbeat`,
    remoteMode: `ns=1;s=${lineId}.remote_mode`,
    heartbeatTimeout: `ns=1;s=${lineId}.heartbeat_timeout_s`,
    simTime: `ns=1;s=${lineId}.sim_time`,
  };
}

export class PlantOpcuaServer implements PlantListener {
  private readonly plant: Plant;
  private readonly opts: PlantOpcuaOptions;
  private readonly log: Logger;
  private server: OPCUAServer | undefined;
  private readonly tagVars = new Map<string, UAVariable>();
  private readonly setpointVars = new Map<string, UAVariable>();
  private readonly mikVars = new Map<string, UAVariable>();
  private remoteVar: UAVariable | undefined;
  private simTimeVar: UAVariable | undefined;
  private removeListener: (() => void) | undefined;
  private readonly counters = { writes_good: 0, writes_clamped: 0, writes_refused: 0, heartbeats: 0, sessions: 0 };

  constructor(plant: Plant, opts: PlantOpcuaOptions) {
    if (opts.security.length === 0) throw new PlantUsageError("--opcua-security", "at least one mode is needed");
    this.plant = plant;
    this.opts = opts;
    this.log = opts.logger ?? silentLogger;
  }

  /** Creates the PKI (and a self-signed application certificate on first start), the address space, and listens. */
  async start(): Promise<void> {
    const o = this.opts;
    mkdirSync(o.pkiDir, { recursive: true, mode: 0o700 });
    mkdirSync(o.userPkiDir, { recursive: true, mode: 0o700 });
    const serverCertificateManager = new OPCUACertificateManager({
      rootFolder: o.pkiDir,
      automaticallyAcceptUnknownCertificate: o.autoAcceptClients ?? false,
    });
    const userCertificateManager = new OPCUACertificateManager({
      rootFolder: o.userPkiDir,
      automaticallyAcceptUnknownCertificate: false,
    });
    const modes = o.security.map(
      (m) =>
        ({
          none: MessageSecurityMode.None,
          sign: MessageSecurityMode.Sign,
          encrypt: MessageSecurityMode.SignAndEncrypt,
        })[m],
    );
    const users = o.users;
    const line = this.plant.lineId;
    const server = new OPCUAServer({
      port: o.port,
      ...(o.host ? { host: o.host } : {}),
      ...(o.hostname ? { hostname: o.hostname } : {}),
      serverCertificateManager,
      userCertificateManager,
      securityModes: modes,
      securityPolicies: (o.policies ?? [...OPCUA_POLICIES]).map((p) => SecurityPolicy[p]),
      allowAnonymous: o.anonymous === "read",
      userManager: {
        isValidUser: (name: string, password: string) => users.verify(name, password),
        getUserRoles: (name: string) => {
          const role = users.role(name);
          // A trusted X.509 user certificate whose CN is not in the user file only reads.
          return makeRoles(role ? ROLE_MAP[role] : ROLE_MAP.viewer);
        },
      },
      serverInfo: {
        applicationUri: `urn:${o.hostname ?? "%FQDN%"}:glassd:twin-plant:${line}`,
        productUri: "urn:glassd:twin-plant",
        applicationName: { text: `glassd twin plant ${line}`, locale: "en" },
      },
      buildInfo: { productName: "glassd twin plant", manufacturerName: "glassd", softwareVersion: VERSION },
      serverCapabilities: { maxSessions: o.maxSessions ?? 32 },
    });
    this.server = server;
    server.on("session_activated", () => {
      this.counters.sessions++;
    });
    try {
      await server.initialize();
      this.buildAddressSpace(server);
      await server.start();
    } catch (err) {
      await server.shutdown(0).catch(() => {});
      this.server = undefined;
      throw err;
    }
    this.removeListener = this.plant.addListener(this);
    this.log.info(
      { endpoint: this.endpointUrl, port: this.port, security: o.security, anonymous: o.anonymous, users: users.size },
      "OPC UA server listening",
    );
  }

  /** Announces the shutdown to clients for up to `graceMs`, then closes every channel. Idempotent. */
  async stop(graceMs = 500): Promise<void> {
    this.removeListener?.();
    this.removeListener = undefined;
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    await server.shutdown(graceMs);
  }

  /** The port actually listened on. */
  get port(): number {
    return this.server?.endpoints[0]?.port ?? 0;
  }

  /** opc.tcp://host:port of the server. */
  get endpointUrl(): string {
    return this.server?.getEndpointUrl() ?? "";
  }

  /** PEM file of the server's application certificate (clients trust it explicitly). */
  get certificateFile(): string {
    if (!this.server) throw new Error("PlantOpcuaServer: not started");
    return this.server.certificateFile;
  }

  stats() {
    return { ...this.counters };
  }

  // --- PlantListener ---

  onSamples(batch: readonly RawSample[]): void {
    // Only the last sample of each tag in a batch reaches the address space: a PLC exposes the current value, and
    // a subscriber samples it (the MQTT fronts publish every sample).
    const last = new Map<string, RawSample>();
    for (const s of batch) last.set(s.tag, s);
    for (const [tag, s] of last) {
      const v = this.tagVars.get(tag);
      if (!v) continue;
      const value = typeof s.value === "number" ? s.value : Number.NaN;
      const status = Number.isFinite(value) ? QUALITY_STATUS[s.quality ?? "good"] : StatusCodes.BadSensorFailure;
      // A bad sample keeps the last value with a Bad status, as a PLC reports a failed input.
      v.setValueFromSource(
        Number.isFinite(value) ? { dataType: DataType.Double, value } : v.readValue().value,
        status,
        new Date(s.ts),
      );
    }
    this.simTimeVar?.setValueFromSource(
      { dataType: DataType.DateTime, value: new Date(this.plant.now()) },
      StatusCodes.Good,
      new Date(this.plant.now()),
    );
  }

  onInspection(e: InspectionEvent): void {
    const m = this.plant.mikCounters();
    const ts = new Date(e.ts);
    const set = (name: string, dataType: DataType, value: number) =>
      this.mikVars.get(name)?.setValueFromSource({ dataType, value }, StatusCodes.Good, ts);
    set("items_inspected", DataType.UInt32, m.itemsInspected >>> 0);
    set("defective_items", DataType.UInt32, m.defectiveItems >>> 0);
    set("quality_score", DataType.Double, m.qualityScore);
    set("last_item_id", DataType.UInt32, m.lastItemId >>> 0);
    for (const d of e.defects) set(`defects_per_class.${d.class}`, DataType.UInt32, m.defectsPerClass[d.class] >>> 0);
  }

  onSensorStale(tag: string, last: PlantReading): void {
    // A silent sensor keeps its last value, flagged as the last usable one (its source timestamp tells how old).
    const v = this.tagVars.get(tag);
    if (!v || !Number.isFinite(last.value)) return;
    v.setValueFromSource(
      { dataType: DataType.Double, value: last.value },
      StatusCodes.UncertainLastUsableValue,
      new Date(last.ts),
    );
  }

  onRemoteMode(remote: boolean, ts: number): void {
    this.remoteVar?.setValueFromSource({ dataType: DataType.Boolean, value: remote }, StatusCodes.Good, new Date(ts));
  }

  // --- address space ---

  private buildAddressSpace(server: OPCUAServer): void {
    const addressSpace = server.engine.addressSpace;
    if (!addressSpace) throw new Error("OPC UA server has no address space after initialize()");
    const ns = addressSpace.getOwnNamespace();
    // The dictionary's node ids say ns=1: the server's own namespace must be the first after the standard one.
    if (ns.index !== 1) throw new Error(`the plant's namespace has index ${ns.index}, expected 1`);
    const plant = this.plant;
    const line = plant.lineId;
    const lineObj = ns.addObject({
      organizedBy: addressSpace.rootFolder.objects,
      browseName: line,
      nodeId: `s=${line}`,
      description: `Production line ${line} (glassd digital twin)`,
    });
    const stages = new Map<string, UAObject>();
    const stageObj = (stage: string): UAObject => {
      let o = stages.get(stage);
      if (!o) {
        o = ns.addObject({ componentOf: lineObj, browseName: stage, nodeId: `s=${line}/${stage}` });
        stages.set(stage, o);
      }
      return o;
    };
    const nodes = plantNodeIds(line, plant.tags);
    for (const n of nodes) {
      const t = plant.tag(n.tag)!;
      const parent = stageObj(n.stage);
      const r = plant.reading(t.id)!;
      const v = this.analog(ns, parent, t, n.nodeId, {
        eu: t.normal,
        readOnly: true,
        description: t.description || t.id,
      });
      v.setValueFromSource({ dataType: DataType.Double, value: r.value }, StatusCodes.Good, new Date(r.ts));
      this.tagVars.set(t.id, v);
      if (n.setpointNodeId && t.actuator && plant.writableTags().includes(t.id)) {
        const sp = this.analog(ns, parent, t, n.setpointNodeId, {
          eu: t.actuator,
          readOnly: false,
          description: `Setpoint of ${t.id} (writes are clamped to ${t.actuator.min}…${t.actuator.max} ${t.unit}; refused outside ${t.limits.min}…${t.limits.max} or in LOCAL mode)`,
          bind: {
            timestamped_get: () => {
              const s = plant.setpoint(t.id);
              return new DataValue({
                value: { dataType: DataType.Double, value: s.value },
                sourceTimestamp: new Date(s.ts),
                statusCode: StatusCodes.Good,
              });
            },
            timestamped_set: (dv: DataValue) => this.writeSetpoint(t.id, dv),
          },
        });
        this.setpointVars.set(t.id, sp);
      }
    }
    this.buildControl(ns, lineObj);
    this.buildMik(ns, lineObj);
  }

  private analog(
    ns: Namespace,
    parent: UAObject,
    t: TagConfig,
    nodeId: string,
    o: {
      eu: { min: number; max: number };
      readOnly: boolean;
      description: string;
      bind?: { timestamped_get: () => DataValue; timestamped_set: (dv: DataValue) => Promise<StatusCode> };
    },
  ): UAVariable {
    const u = unitInfo(t.unit);
    const engineeringUnits = makeEUInformation(u.code ?? "", u.symbol, u.name);
    engineeringUnits.namespaceUri = "http://www.opcfoundation.org/UA/units/un/cefact";
    if (!u.code) engineeringUnits.unitId = -1;
    const access = o.readOnly ? "CurrentRead" : "CurrentRead | CurrentWrite";
    return ns.addAnalogDataItem({
      componentOf: parent,
      browseName: nodeId.slice(nodeId.lastIndexOf(".") + 1),
      nodeId: nodeId.slice("ns=1;".length),
      description: o.description,
      dataType: "Double",
      engineeringUnitsRange: { low: o.eu.min, high: o.eu.max },
      instrumentRange: { low: t.limits.min, high: t.limits.max },
      engineeringUnits,
      accessLevel: makeAccessLevelFlag(access),
      userAccessLevel: makeAccessLevelFlag(access),
      // A bound getter is polled at the sampling interval; a plain variable notifies on every change.
      minimumSamplingInterval: o.bind ? 100 : 0,
      ...(o.readOnly ? {} : { rolePermissions: WRITABLE_PERMISSIONS }),
      ...(o.bind ? { value: o.bind } : {}),
    });
  }

  private async writeSetpoint(tag: string, dv: DataValue): Promise<StatusCode> {
    const requested = dv.value.value as number;
    try {
      const r = await this.plant.writeSetpoint(tag, requested);
      // The variable caches what the write carried: make that the applied value, not the requested one.
      dv.value.value = r.applied;
      dv.sourceTimestamp = new Date(r.ts);
      if (r.applied !== requested) {
        this.counters.writes_clamped++;
        return StatusCodes.GoodClamped;
      }
      this.counters.writes_good++;
      return StatusCodes.Good;
    } catch (err) {
      this.counters.writes_refused++;
      if (err instanceof PlantWriteError) return REFUSAL_STATUS[err.reason];
      this.log.error({ err, tag }, "setpoint write failed");
      return StatusCodes.BadInternalError;
    }
  }

  private buildControl(ns: Namespace, lineObj: UAObject): void {
    const plant = this.plant;
    const line = plant.lineId;
    const ids = controlNodeIds(line);
    const control = ns.addObject({
      componentOf: lineObj,
      browseName: "control",
      nodeId: `s=${line}/control`,
      description: "Remote/local switch and the controller heartbeat",
    });
    ns.addVariable({
      componentOf: control,
      browseName: "glassd_heartbeat",
      nodeId: ids.heartbeat.slice("ns=1;".length),
      description: `Controller heartbeat: write a changing counter at least every ${plant.remote.timeoutMs / 1000} s to keep the plant in REMOTE mode`,
      dataType: "UInt32",
      accessLevel: makeAccessLevelFlag("CurrentRead | CurrentWrite"),
      userAccessLevel: makeAccessLevelFlag("CurrentRead | CurrentWrite"),
      rolePermissions: WRITABLE_PERMISSIONS,
      minimumSamplingInterval: 100,
      value: {
        timestamped_get: () =>
          new DataValue({
            value: { dataType: DataType.UInt32, value: plant.remote.counter() ?? 0 },
            sourceTimestamp: new Date(plant.now()),
            statusCode: StatusCodes.Good,
          }),
        timestamped_set: async (dv: DataValue) => {
          this.counters.heartbeats++;
          plant.remote.heartbeat(dv.value.value as number);
          return StatusCodes.Good;
        },
      },
    });
    this.remoteVar = ns.addVariable({
      componentOf: control,
      browseName: "remote_mode",
      nodeId: ids.remoteMode.slice("ns=1;".length),
      description: "true: REMOTE (setpoints writable); false: LOCAL (heartbeat lost or never started)",
      dataType: "Boolean",
      accessLevel: makeAccessLevelFlag("CurrentRead"),
      userAccessLevel: makeAccessLevelFlag("CurrentRead"),
      minimumSamplingInterval: 0,
    });
    this.remoteVar.setValueFromSource(
      { dataType: DataType.Boolean, value: plant.remote.isRemote() },
      StatusCodes.Good,
      new Date(plant.now()),
    );
    const timeout = ns.addVariable({
      componentOf: control,
      browseName: "heartbeat_timeout_s",
      nodeId: ids.heartbeatTimeout.slice("ns=1;".length),
      dataType: "Double",
      accessLevel: makeAccessLevelFlag("CurrentRead"),
      userAccessLevel: makeAccessLevelFlag("CurrentRead"),
    });
    timeout.setValueFromSource({ dataType: DataType.Double, value: plant.remote.timeoutMs / 1000 });
    this.simTimeVar = ns.addVariable({
      componentOf: control,
      browseName: "sim_time",
      nodeId: ids.simTime.slice("ns=1;".length),
      description: "The plant's clock (simulated time; runs faster than the wall clock when the twin does)",
      dataType: "DateTime",
      accessLevel: makeAccessLevelFlag("CurrentRead"),
      userAccessLevel: makeAccessLevelFlag("CurrentRead"),
      minimumSamplingInterval: 0,
    });
    this.simTimeVar.setValueFromSource(
      { dataType: DataType.DateTime, value: new Date(plant.now()) },
      StatusCodes.Good,
      new Date(plant.now()),
    );
  }

  private buildMik(ns: Namespace, lineObj: UAObject): void {
    const line = this.plant.lineId;
    const mik = ns.addObject({
      componentOf: lineObj,
      browseName: "mik_1",
      nodeId: `s=${line}/mik_1`,
      description: "MIK-1 optical inspection station",
    });
    const t0 = new Date(this.plant.now());
    const add = (parent: UAObject, name: string, browseName: string, dataType: "UInt32" | "Double", value: number) => {
      const v = ns.addVariable({
        componentOf: parent,
        browseName,
        nodeId: `s=${line}.${name}`,
        dataType,
        accessLevel: makeAccessLevelFlag("CurrentRead"),
        userAccessLevel: makeAccessLevelFlag("CurrentRead"),
        minimumSamplingInterval: 0,
      });
      v.setValueFromSource(
        { dataType: dataType === "UInt32" ? DataType.UInt32 : DataType.Double, value },
        StatusCodes.Good,
        t0,
      );
      this.mikVars.set(name, v);
    };
    add(mik, "items_inspected", "items_inspected", "UInt32", 0);
    add(mik, "defective_items", "defective_items", "UInt32", 0);
    add(mik, "quality_score", "quality_score", "Double", 1);
    add(mik, "last_item_id", "last_item_id", "UInt32", 0);
    const perClass = ns.addObject({
      componentOf: mik,
      browseName: "defects_per_class",
      nodeId: `s=${line}/mik_1/defects_per_class`,
    });
    for (const c of DEFECT_CLASSES) add(perClass, `defects_per_class.${c}`, c, "UInt32", 0);
  }
}

/** The status a setpoint write gets for each refusal (exported for tests and docs). */
export function statusForRefusal(reason: PlantWriteRefusal): StatusCode {
  return REFUSAL_STATUS[reason];
}
