/*
 * MQTT ingest: plain JSON topics and Sparkplug B (host application) as one SampleSource, acknowledging QoS 1 messages
 * only once their samples are durable.
 */
export {
  type JsonTopicRule,
  type MqttBrokerConfig,
  MqttBrokerSchema,
  type MqttSourceConfig,
  MqttSourceSchema,
  OUTBOUND_KINDS,
  type OutboundKind,
  type OutboundMqttConfig,
  OutboundMqttSchema,
  parseMqttSourceConfig,
  parseOutboundMqttConfig,
  withLine,
} from "./config.js";
export { brokerClientOptions, safeUrl } from "./connection.js";
export { JsonTopicMapper, MQTT_JSON_REASONS, topicMatches } from "./json.js";
export { MqttSource, type MqttSourceOptions, type MqttSourceStats } from "./source.js";
export { SPARKPLUG_REASONS, SparkplugHost, type SparkplugHostStats } from "./sparkplug-host.js";
