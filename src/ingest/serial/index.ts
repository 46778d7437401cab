/*
 * The serial firmware bridge (firmware-bridge/PROTOCOL.md): layer (a) FrameParser/encodeFrame, layer (b) the
 * message value types with encodeMessage/decodeMessage, layer (c) RequestQueue, and SerialBridgeSource, the
 * SampleSource the daemon uses.
 */

export { DEFAULT_RETRY, type RetryPolicy, retryDelay } from "../../core/retry.js";
export { cobsDecodeInto, cobsEncode, cobsMaxEncoded } from "./cobs.js";
export { CRC16_CHECK, crc16 } from "./crc16.js";
export {
  encodeFrame,
  FrameParser,
  MAX_ENCODED,
  MAX_FRAME,
  MAX_PACKET,
  type PacketHandler,
  type ParserStats,
} from "./frame-parser.js";
export {
  Capability,
  type ChannelInfo,
  Command,
  decodeMessage,
  ErrorCode,
  encodeMessage,
  errorName,
  f32Bits,
  Lamp,
  MalformedPacketError,
  type Message,
  type MessageName,
  MessageType,
  PROTOCOL_VERSION,
  Quality,
  SamplesView,
  sampleValue,
  ValueType,
} from "./messages.js";
export { type Exchange, RequestQueue, type RequestQueueOptions, SerialRequestError } from "./requests.js";
export { type EpochRecord, type Gap, SequenceMapper, unwrap32 } from "./sequence.js";
export {
  type CommandResult,
  type DeviceInfo,
  type LampState,
  type SerialBridgeOptions,
  SerialBridgeSource,
  type SerialCommand,
  SerialDeviceError,
  type SerialSourceEvents,
  type SerialSourceStats,
  type SerialStateStore,
} from "./source.js";
