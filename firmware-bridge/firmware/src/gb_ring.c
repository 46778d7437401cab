#include "gb_ring.h"

void gb_ring_init(gb_ring_t *r, gb_batch_t *slots, uint16_t cap) {
    r->slots = slots;
    r->cap = cap;
    r->head = 0;
    r->used = 0;
}

gb_batch_t *gb_ring_push(gb_ring_t *r, uint16_t *dropped_samples) {
    uint16_t idx;
    *dropped_samples = 0;
    if (r->cap == 0) return NULL;
    if (r->used == r->cap) {
        *dropped_samples = r->slots[r->head].count;
        r->head = (uint16_t)((r->head + 1u) % r->cap);
        r->used--;
    }
    idx = (uint16_t)((r->head + r->used) % r->cap);
    r->used++;
    return &r->slots[idx];
}

gb_batch_t *gb_ring_at(const gb_ring_t *r, uint16_t i) {
    if (i >= r->used) return NULL;
    return &r->slots[(r->head + i) % r->cap];
}

uint16_t gb_ring_ack(gb_ring_t *r, uint32_t seq) {
    uint16_t n = 0;
    while (r->used > 0 && (int32_t)(seq - r->slots[r->head].seq) >= 0) {
        r->head = (uint16_t)((r->head + 1u) % r->cap);
        r->used--;
        n++;
    }
    return n;
}
