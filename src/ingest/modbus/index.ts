/*
 * Modbus RTU for off-the-shelf serial instruments: config section, request planning / value decoding, and
 * ModbusRtuSource, the SampleSource the daemon uses.
 */
export { type Block, type BlockTag, engineeringValue, planBlocks, rawValue } from "./blocks.js";
export {
  MODBUS_VALUE_TYPES,
  type ModbusConfig,
  ModbusConfigSchema,
  type ModbusTagConfig,
  ModbusTagSchema,
  type ModbusValueType,
  modbusConfigIssues,
  registerWidth,
  resolveModbusConfig,
} from "./config.js";
export {
  type ModbusRtuOptions,
  ModbusRtuSource,
  type ModbusSourceEvents,
  type ModbusSourceStats,
  type ModbusStateStore,
} from "./source.js";
