#include "gb_cobs.h"

size_t gb_cobs_encode(const uint8_t *in, size_t len, uint8_t *out) {
    size_t r = 0, w = 1, code_at = 0;
    uint8_t code = 1;
    while (r < len) {
        if (in[r] == 0) {
            out[code_at] = code;
            code_at = w++;
            code = 1;
        } else {
            out[w++] = in[r];
            if (++code == 0xFF) {
                out[code_at] = code;
                code_at = w++;
                code = 1;
            }
        }
        r++;
    }
    out[code_at] = code;
    return w;
}

long gb_cobs_decode(const uint8_t *in, size_t len, uint8_t *out, size_t out_cap) {
    size_t r = 0, w = 0;
    while (r < len) {
        uint8_t code = in[r++];
        uint8_t i;
        if (code == 0) return -1;
        if ((size_t)(code - 1) > len - r) return -1;
        for (i = 1; i < code; i++) {
            if (in[r] == 0 || w >= out_cap) return -1;
            out[w++] = in[r++];
        }
        /* A code below 0xFF stands for a zero after its run, except at the very end of the block. */
        if (code != 0xFF && r < len) {
            if (w >= out_cap) return -1;
            out[w++] = 0;
        }
    }
    return (long)w;
}
