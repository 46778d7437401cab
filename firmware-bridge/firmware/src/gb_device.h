/*
 * The device side of the protocol as a state machine with no OS dependencies: the platform gives it bytes received,
 * samples taken and the time; it gives the platform frames to send and commands to execute. Nothing here blocks,
 * allocates or reads a clock. One gb_device_t per serial link.
 *
 * Typical main loop:
 *     gb_device_init(&dev, &cfg, &platform, ring_slots, RING_SLOTS);
 *     on port open:    gb_device_link_up(&dev, now);
 *     on bytes:        gb_device_rx(&dev, bytes, n, now);
 *     on a sample:     gb_device_sample(&dev, channel, raw, quality, t_us);
 *     every ms or so:  gb_device_poll(&dev, now);      (closes aged batches, heartbeats, resends, sends)
 *     on port closed:  gb_device_link_down(&dev);
 */
#ifndef GB_DEVICE_H
#define GB_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "gb_proto.h"
#include "gb_ring.h"

typedef struct {
    void *ctx;
    /* Bytes the link can accept right now without blocking. */
    size_t (*tx_space)(void *ctx);
    /* Sends a whole frame; only called with len <= tx_space(ctx). */
    void (*tx)(void *ctx, const uint8_t *frame, size_t len);
    /* Executes a validated command; returns GB_E_OK or an error code (BUSY, HARDWARE, ...). */
    uint8_t (*command)(void *ctx, const gb_command_t *cmd, uint64_t now_us);
    /* Optional diagnostics hook (may be NULL): "session", "drop", "resend", "link_up", "bad_version". */
    void (*event)(void *ctx, const char *what, uint32_t a, uint32_t b);
} gb_platform_t;

typedef struct {
    const char *device_id;
    uint8_t fw_major, fw_minor, fw_patch;
    uint32_t boot_id; /* random per power-up, never 0 */
    uint8_t min_version, max_version;
    uint32_t capabilities;
    const gb_channel_info_t *channels; /* the platform may change period_us (SET_PERIOD); HELLO reports it */
    uint8_t channel_count;
    uint8_t window;
    uint16_t ack_timeout_ms;
    uint16_t heartbeat_ms;
    uint8_t batch_max;         /* samples per batch, 1..GB_MAX_BATCH */
    uint32_t batch_max_age_us; /* a batch is closed this long after its first sample */
} gb_config_t;

typedef struct {
    gb_config_t cfg;
    gb_platform_t pf;
    gb_ring_t ring;
    gb_rx_t rx;
    uint8_t link_up, session, version;
    uint32_t next_seq;         /* seq the next closed batch gets */
    uint32_t samples_produced; /* index of the next sample */
    gb_batch_t open;           /* batch being filled */
    uint32_t send_seq;         /* next batch to send */
    uint32_t high_sent;        /* newest batch ever sent (0: none) */
    uint32_t acked_seq;        /* last cumulative ACK (0: none) */
    uint64_t last_progress_us;
    uint8_t backoff;
    uint64_t next_hb_us;
    uint32_t dropped_batches, dropped_samples;
    uint32_t rx_other_errors; /* unknown type, malformed body, wrong direction */
    uint32_t frames_sent, batches_sent, resends, acks;
    uint8_t pkt[GB_MAX_PACKET];
    uint8_t frame[GB_MAX_FRAME];
} gb_device_t;

void gb_device_init(gb_device_t *d, const gb_config_t *cfg, const gb_platform_t *pf, gb_batch_t *ring_slots,
                    uint16_t ring_slots_count);
void gb_device_link_up(gb_device_t *d, uint64_t now_us);
void gb_device_link_down(gb_device_t *d);
void gb_device_rx(gb_device_t *d, const uint8_t *data, size_t len, uint64_t now_us);
/* Adds one sample taken at t_us (device clock). Returns 0, or -1 for an unknown channel / bad quality. */
int gb_device_sample(gb_device_t *d, uint8_t channel, uint32_t raw, uint8_t quality, uint64_t t_us);
void gb_device_poll(gb_device_t *d, uint64_t now_us);
/* Closes the open batch now (e.g. before a planned stop). */
void gb_device_flush(gb_device_t *d);
/* Free ring slots (a producer that must not drop can wait for room). */
uint16_t gb_device_ring_free(const gb_device_t *d);
void gb_device_heartbeat_info(const gb_device_t *d, uint64_t now_us, gb_heartbeat_t *hb);

#endif
