/*
 * OPC UA client source (node-opcua): OpcuaSource (SampleSource), OpcuaActuator (setpoint writes with read-back, for
 * the actuation gate only), the `source.opcua` config section and glassd's PKI folder helpers (`glassd pki`).
 */
export { OpcuaActuator, type OpcuaActuatorOptions, OpcuaWriteError } from "./actuator.js";
export {
  checkSettings,
  type OpcuaIdentity,
  type OpcuaSection,
  OpcuaSectionSchema,
  type OpcuaSettings,
  SECURITY_MODES,
  SECURITY_POLICIES,
  settingsFromConfig,
} from "./config.js";
export {
  type CertInfo,
  defaultApplicationUri,
  describeCert,
  findCert,
  listCerts,
  normaliseThumbprint,
  openPki,
  PkiError,
  pkiPaths,
  rejectCert,
  thumbprintOf,
  trustCert,
} from "./pki.js";
export { qualityOf, sampleValue } from "./quality.js";
export {
  OpcuaConnectError,
  type OpcuaGap,
  OpcuaSource,
  type OpcuaSourceEvents,
  type OpcuaSourceOptions,
  type OpcuaSourceStats,
  type OpcuaStateStore,
} from "./source.js";
