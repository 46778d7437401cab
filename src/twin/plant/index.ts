/*
 * The twin as a plant over real protocols (`glassd twin serve`): an OPC UA server a PLC would be, MQTT publishers
 * (plain JSON and Sparkplug B) an IoT gateway would be, and a hook for MIK-1 frames. Public API only.
 */
export { main, parseServeArgs, type RunningPlant, SERVE_HELP, type ServeConfig, startPlant } from "./cli.js";
export {
  isLoose,
  PLANT_ROLES,
  type PlantRole,
  type PlantUser,
  PlantUsers,
  readMqttCredentials,
  readUserFile,
} from "./credentials.js";
export { PlantUsageError, PlantWriteError, type PlantWriteRefusal } from "./errors.js";
export {
  DirectoryFrameSink,
  type EncodedFrame,
  type FrameSink,
  PlantFrames,
  type PlantFramesOptions,
  writeFileAtomic,
} from "./frames.js";
export { checkBrokerUrl, type MqttBrokerOptions } from "./mqtt-connection.js";
export { PlantMqttJson, type PlantMqttJsonOptions } from "./mqtt-json.js";
export {
  controlNodeIds,
  OPCUA_POLICIES,
  type OpcuaPolicy,
  type OpcuaSecurityMode,
  type PlantOpcuaOptions,
  PlantOpcuaServer,
  plantNodeIds,
  statusForRefusal,
  type TagNode,
} from "./opcua-server.js";
export {
  type MikCounters,
  Plant,
  type PlantListener,
  type PlantOptions,
  type PlantReading,
  QUALITY_WINDOW,
  STALE_AFTER_PERIODS,
} from "./plant.js";
export { RemoteMode, type RemoteModeOptions } from "./remote-mode.js";
export { SPARKPLUG_ID, SparkplugEdgeNode, type SparkplugLayout, type SparkplugOptions } from "./sparkplug.js";
