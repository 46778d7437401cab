/*
 * Bounded ring of closed, unacknowledged sample batches with consecutive sequence numbers. The storage is given by
 * the caller (static on an MCU); when full, pushing drops the oldest batch, which the caller counts.
 */
#ifndef GB_RING_H
#define GB_RING_H

#include <stdint.h>

#include "gb_proto.h"

typedef struct {
    uint32_t seq;
    uint32_t first_sample;
    uint64_t base_us;
    uint8_t count;
    uint8_t sent; /* sent at least once: later sends are flagged RESENT */
    gb_sample_t samples[GB_MAX_BATCH];
} gb_batch_t;

typedef struct {
    gb_batch_t *slots;
    uint16_t cap;
    uint16_t head; /* index of the oldest batch */
    uint16_t used;
} gb_ring_t;

void gb_ring_init(gb_ring_t *r, gb_batch_t *slots, uint16_t cap);
/*
 * Slot for a new newest batch (NULL when cap is 0). When full, the oldest batch is dropped first: *dropped_samples
 * gets its sample count (0 when nothing was dropped).
 */
gb_batch_t *gb_ring_push(gb_ring_t *r, uint16_t *dropped_samples);
/* i-th batch from the oldest (0 = oldest), or NULL. */
gb_batch_t *gb_ring_at(const gb_ring_t *r, uint16_t i);
/* Frees every batch whose seq is at or before seq (serial arithmetic); returns how many. */
uint16_t gb_ring_ack(gb_ring_t *r, uint32_t seq);

#endif
