/* Outbound MQTT: a durable store-and-forward queue in LMDB drained by plain-topic and Sparkplug B publishers. */
export { JsonEncoder, SparkplugEncoder } from "./encoders.js";
export { Outbound, type OutboundOptions, type OutboundStats } from "./outbound.js";
export { type Encoder, type Outgoing, type PublisherStats, QueuePublisher } from "./publisher.js";
export { OutboundQueue, type QueueEntry, type QueueStats } from "./queue.js";
