/*
 * glassd firmware bridge protocol, version 1 (see ../../PROTOCOL.md): message layouts, encoders and decoders,
 * and the frame wrapper (CRC-16 + COBS + 0x00 delimiters). Portable C99, no allocation, no OS calls.
 *
 * A "packet" is type + body; a "frame" is 0x00 COBS(packet ‖ crc16_le) 0x00 as it goes on the wire.
 */
#ifndef GB_PROTO_H
#define GB_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "gb_cobs.h"

#define GB_PROTOCOL_VERSION 1u
#define GB_MAX_PACKET 1024u
#define GB_CRC_LEN 2u
/* Largest COBS-encoded packet + CRC between two delimiters. */
#define GB_MAX_ENCODED GB_COBS_MAX_ENCODED(GB_MAX_PACKET + GB_CRC_LEN)
/* Largest frame on the wire: leading and trailing delimiter. */
#define GB_MAX_FRAME (GB_MAX_ENCODED + 2u)

#define GB_MAX_BATCH 100u
#define GB_MAX_CHANNELS 32u
#define GB_MAX_DEVICE_ID 32u
#define GB_MAX_NAME 16u
#define GB_MAX_UNIT 8u
#define GB_SAMPLE_SIZE 10u
#define GB_SAMPLES_HEADER 22u

enum gb_type {
    GB_T_HELLO = 0x01,
    GB_T_SAMPLES = 0x02,
    GB_T_HEARTBEAT = 0x03,
    GB_T_CMD_ACK = 0x04,
    GB_T_TIME_SYNC_REPLY = 0x05,
    GB_T_ERROR = 0x06,
    GB_T_HOST_HELLO = 0x81,
    GB_T_ACK = 0x82,
    GB_T_TIME_SYNC = 0x83,
    GB_T_COMMAND = 0x84
};

enum gb_error {
    GB_E_OK = 0,
    GB_E_UNKNOWN_TYPE = 1,
    GB_E_MALFORMED = 2,
    GB_E_VERSION = 3,
    GB_E_NO_SESSION = 4,
    GB_E_UNKNOWN_COMMAND = 5,
    GB_E_BAD_ARGUMENT = 6,
    GB_E_BUSY = 7,
    GB_E_HARDWARE = 8,
    GB_E_UNSUPPORTED = 9
};

enum gb_value_type { GB_V_F32 = 0, GB_V_U32 = 1, GB_V_I32 = 2, GB_V_STATE = 3 };
enum gb_quality { GB_Q_GOOD = 0, GB_Q_UNCERTAIN = 1, GB_Q_BAD = 2 };
enum gb_command_code { GB_CMD_REJECT_PULSE = 0x01, GB_CMD_LIGHT_TOWER = 0x02, GB_CMD_SET_PERIOD = 0x03 };
enum gb_lamp { GB_LAMP_OFF = 0, GB_LAMP_ON = 1, GB_LAMP_BLINK = 2 };

#define GB_CAP_SAMPLES (1u << 0)
#define GB_CAP_TIME_SYNC (1u << 1)
#define GB_CAP_REJECT_PULSE (1u << 2)
#define GB_CAP_LIGHT_TOWER (1u << 3)
#define GB_CAP_SET_PERIOD (1u << 4)
#define GB_CAP_RESEND (1u << 5)

#define GB_FLAG_RESENT 0x01u

typedef struct {
    uint8_t id;
    uint8_t value_type;
    uint32_t period_us;
    char name[GB_MAX_NAME + 1];
    char unit[GB_MAX_UNIT + 1];
} gb_channel_info_t;

typedef struct {
    uint16_t req_id;
    uint8_t version, min_version, max_version;
    uint8_t fw_major, fw_minor, fw_patch;
    uint32_t boot_id;
    uint64_t device_us;
    uint32_t capabilities;
    uint16_t max_packet;
    uint16_t ring_capacity;
    uint8_t window;
    uint16_t ack_timeout_ms;
    uint16_t heartbeat_ms;
    char device_id[GB_MAX_DEVICE_ID + 1];
    uint8_t channel_count;
    gb_channel_info_t channels[GB_MAX_CHANNELS];
} gb_hello_t;

typedef struct {
    uint8_t channel;
    uint8_t quality;
    uint32_t offset_us;
    uint32_t raw; /* the 4 value bytes as a little-endian u32 (f32 bit pattern for f32 channels) */
} gb_sample_t;

typedef struct {
    uint32_t seq, oldest, first_sample;
    uint64_t base_us;
    uint8_t flags;
    uint8_t count;
    gb_sample_t samples[GB_MAX_BATCH];
} gb_samples_t;

typedef struct {
    uint64_t uptime_us;
    uint32_t last_seq, acked_seq, samples_produced;
    uint16_t ring_used;
    uint32_t dropped_batches, dropped_samples, rx_bad_crc, rx_errors;
} gb_heartbeat_t;

typedef struct {
    uint16_t req_id;
    uint8_t command;
    uint8_t status;
    uint64_t device_us;
} gb_cmd_ack_t;

typedef struct {
    uint16_t req_id;
    uint64_t host_unix_ms;
    uint64_t device_us;
} gb_time_sync_reply_t;

typedef struct {
    uint16_t req_id;
    uint8_t code;
    uint8_t ref_type;
    uint16_t detail;
} gb_error_t;

typedef struct {
    uint16_t req_id;
    uint8_t min_version, max_version;
    uint64_t host_unix_ms;
} gb_host_hello_t;

typedef struct {
    uint32_t seq;
} gb_ack_t;

typedef struct {
    uint16_t req_id;
    uint64_t host_unix_ms;
} gb_time_sync_t;

typedef struct {
    uint16_t req_id;
    uint8_t command;
    union {
        struct {
            uint16_t duration_ms;
        } reject_pulse;
        struct {
            uint8_t red, amber, green, buzzer;
        } light_tower;
        struct {
            uint8_t channel;
            uint32_t period_us;
        } set_period;
    } args;
} gb_command_t;

typedef struct {
    uint8_t type;
    union {
        gb_hello_t hello;
        gb_samples_t samples;
        gb_heartbeat_t heartbeat;
        gb_cmd_ack_t cmd_ack;
        gb_time_sync_reply_t time_sync_reply;
        gb_error_t error;
        gb_host_hello_t host_hello;
        gb_ack_t ack;
        gb_time_sync_t time_sync;
        gb_command_t command;
    } u;
} gb_msg_t;

/*
 * Encoders write type + body into out (capacity cap) and return the packet length, or 0 when it does not fit or
 * a field is out of range (too many samples, a string too long).
 */
size_t gb_encode_hello(const gb_hello_t *m, uint8_t *out, size_t cap);
/* SAMPLES from a header and a separate sample array (the ring's storage), without copying the samples. */
size_t gb_encode_samples_parts(uint32_t seq, uint32_t oldest, uint32_t first_sample, uint64_t base_us, uint8_t flags,
                               const gb_sample_t *samples, uint8_t count, uint8_t *out, size_t cap);
size_t gb_encode_samples(const gb_samples_t *m, uint8_t *out, size_t cap);
size_t gb_encode_heartbeat(const gb_heartbeat_t *m, uint8_t *out, size_t cap);
size_t gb_encode_cmd_ack(const gb_cmd_ack_t *m, uint8_t *out, size_t cap);
size_t gb_encode_time_sync_reply(const gb_time_sync_reply_t *m, uint8_t *out, size_t cap);
size_t gb_encode_error(const gb_error_t *m, uint8_t *out, size_t cap);
size_t gb_encode_host_hello(const gb_host_hello_t *m, uint8_t *out, size_t cap);
size_t gb_encode_ack(const gb_ack_t *m, uint8_t *out, size_t cap);
size_t gb_encode_time_sync(const gb_time_sync_t *m, uint8_t *out, size_t cap);
size_t gb_encode_command(const gb_command_t *m, uint8_t *out, size_t cap);
size_t gb_encode_msg(const gb_msg_t *m, uint8_t *out, size_t cap);

/*
 * Decodes a packet (type + body, CRC already checked and removed). Returns GB_E_OK, GB_E_UNKNOWN_TYPE or
 * GB_E_MALFORMED. Body bytes beyond the known fields are ignored (forward compatibility within a version).
 */
int gb_decode(const uint8_t *packet, size_t len, gb_msg_t *out);

/* Frame = 0x00 COBS(packet ‖ crc16_le) 0x00. out needs GB_MAX_FRAME bytes for any valid packet. Returns its length. */
size_t gb_frame_wrap(const uint8_t *packet, size_t len, uint8_t *out, size_t cap);

/*
 * Checks and unwraps the bytes between two delimiters (exclusive) into packet (capacity cap, may alias in).
 * Returns the packet length (> 0), or -1 malformed (COBS or shorter than type + CRC), -2 bad CRC.
 */
long gb_frame_unwrap(const uint8_t *in, size_t len, uint8_t *packet, size_t cap);

/* Streaming receiver: collects bytes up to a delimiter, unwraps, counts failures. */
typedef struct {
    uint8_t buf[GB_MAX_ENCODED];
    size_t len;
    uint8_t overflow; /* discarding until the next delimiter */
    uint32_t frames_ok, bad_crc, malformed, oversize;
} gb_rx_t;

void gb_rx_init(gb_rx_t *rx);
/*
 * Feeds one byte. Returns the packet length when a frame completed (the packet is then in rx->buf, valid until the
 * next call), 0 otherwise; failures are counted.
 */
size_t gb_rx_byte(gb_rx_t *rx, uint8_t byte);

/* Little-endian helpers for value bits. */
uint32_t gb_f32_bits(float f);
float gb_bits_f32(uint32_t bits);

#endif
