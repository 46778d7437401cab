/*
 * Unit tests of the portable core: CRC, COBS, the streaming receiver, encoders/decoders against the golden frames,
 * the ring and the device state machine (through a fake platform that records what the device sends).
 * Usage: test_core GOLDEN_DIR        exit 0 when every check passed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/gb_cobs.h"
#include "../src/gb_crc16.h"
#include "../src/gb_device.h"
#include "../src/gb_proto.h"
#include "../src/gb_ring.h"
#include "golden_cases.h"

static int checks = 0, failures = 0;
#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        checks++;                                                                                                      \
        if (!(cond)) {                                                                                                 \
            failures++;                                                                                                \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                                            \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fputc('\n', stderr);                                                                                       \
        }                                                                                                              \
    } while (0)

static uint32_t rs = 12345;
static uint32_t rnd(void) {
    rs ^= rs << 13;
    rs ^= rs >> 17;
    rs ^= rs << 5;
    return rs;
}

/* ── CRC ──────────────────────────────────────────────────────────────────────────────────────────────────────── */

static void test_crc(void) {
    uint8_t buf[300];
    int i;
    CHECK(gb_crc16((const uint8_t *)"123456789", 9) == 0x29B1, "check value %04x", gb_crc16((const uint8_t *)"123456789", 9));
    CHECK(gb_crc16(NULL, 0) == 0xFFFF, "empty input gives init");
    for (i = 0; i < (int)sizeof buf; i++) buf[i] = (uint8_t)rnd();
    for (i = 0; i < (int)sizeof buf; i += 37)
        CHECK(gb_crc16_update(0xFFFF, buf, (size_t)i) == gb_crc16_update_bitwise(0xFFFF, buf, (size_t)i),
              "table and bitwise agree at %d", i);
}

/* ── COBS ─────────────────────────────────────────────────────────────────────────────────────────────────────── */

static void cobs_roundtrip(const uint8_t *in, size_t n, const char *what) {
    static uint8_t enc[4096], dec[4096];
    size_t e = gb_cobs_encode(in, n, enc), i;
    long d;
    int zero = 0;
    for (i = 0; i < e; i++)
        if (enc[i] == 0) zero = 1;
    CHECK(!zero, "%s: no 0x00 in the encoding", what);
    CHECK(e <= GB_COBS_MAX_ENCODED(n), "%s: encoded %zu within bound %zu", what, e, (size_t)GB_COBS_MAX_ENCODED(n));
    d = gb_cobs_decode(enc, e, dec, sizeof dec);
    CHECK(d == (long)n && memcmp(dec, in, n) == 0, "%s: round trip (n=%zu, got %ld)", what, n, d);
}

static void test_cobs(void) {
    static uint8_t buf[2048];
    static uint8_t out[16];
    size_t n;
    int k;
    const uint8_t bad1[] = {0x03, 0x11}; /* code points past the end */
    const uint8_t bad2[] = {0x03, 0x00, 0x11};
    const uint8_t ex_in[] = {0x11, 0x22, 0x00, 0x33};
    const uint8_t ex_out[] = {0x03, 0x11, 0x22, 0x02, 0x33};
    cobs_roundtrip(buf, 0, "empty");
    for (n = 1; n < 1100; n += (n < 600 ? 1 : 97)) {
        for (k = 0; k < (int)n; k++) buf[k] = (uint8_t)(rnd() % 4 == 0 ? 0 : rnd());
        cobs_roundtrip(buf, n, "random");
    }
    for (n = 250; n <= 512; n++) {
        memset(buf, 0x5A, n);
        cobs_roundtrip(buf, n, "nonzero run");
        memset(buf, 0, n);
        cobs_roundtrip(buf, n, "zeros");
    }
    n = gb_cobs_encode(ex_in, sizeof ex_in, buf);
    CHECK(n == sizeof ex_out && memcmp(buf, ex_out, n) == 0, "textbook example 11 22 00 33");
    CHECK(gb_cobs_decode(bad1, sizeof bad1, out, sizeof out) == -1, "code past end is malformed");
    CHECK(gb_cobs_decode(bad2, sizeof bad2, out, sizeof out) == -1, "zero inside is malformed");
    CHECK(gb_cobs_decode(ex_out, sizeof ex_out, out, 2) == -1, "output capacity respected");
}

/* ── golden frames ────────────────────────────────────────────────────────────────────────────────────────────── */

static long read_file(const char *path, uint8_t *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    long n;
    if (!f) return -1;
    n = (long)fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

static void test_golden(const char *dir) {
    const golden_case_t *cases;
    int n = golden_cases(&cases), i;
    CHECK(n >= 10, "at least one golden case per message type");
    for (i = 0; i < n; i++) {
        static uint8_t packet[GB_MAX_PACKET + GB_CRC_LEN + 1], frame[GB_MAX_FRAME], file[8192], re[GB_MAX_PACKET + GB_CRC_LEN],
            json[65536];
        static gb_msg_t m;
        char path[4096], hexs[2 * GB_MAX_FRAME + 1];
        size_t plen = gb_encode_msg(&cases[i].msg, packet, sizeof packet), flen, k, cut;
        long got, un, jl;
        flen = gb_frame_wrap(packet, plen, frame, sizeof frame);
        CHECK(plen > 0 && flen > plen + 4 && flen <= plen + 2 + 2 + 1 + (plen + 2) / 254, "%s encodes (%zu → %zu)", cases[i].name, plen, flen);
        CHECK(frame[0] == 0 && frame[flen - 1] == 0, "%s: delimiters", cases[i].name);

        snprintf(path, sizeof path, "%s/%s.bin", dir, cases[i].name);
        got = read_file(path, file, sizeof file);
        CHECK(got == (long)flen && memcmp(file, frame, flen) == 0,
              "%s: encoding equals the golden frame %s (run `make golden` only for an intended protocol change)",
              cases[i].name, path);

        /* Decode the golden frame and re-encode it. */
        un = gb_frame_unwrap(file + 1, got > 2 ? (size_t)got - 2 : 0, packet, sizeof packet);
        CHECK(un == (long)plen, "%s: golden frame unwraps (%ld)", cases[i].name, un);
        if (un > 0) {
            CHECK(gb_decode(packet, (size_t)un, &m) == GB_E_OK, "%s: decodes", cases[i].name);
            CHECK(gb_encode_msg(&m, re, sizeof re) == (size_t)un && memcmp(re, packet, (size_t)un) == 0,
                  "%s: decode → encode is the identity", cases[i].name);
            /* Every truncation is malformed; trailing bytes are ignored (same version, newer peer). */
            for (cut = 1; cut < (size_t)un; cut++)
                CHECK(gb_decode(packet, cut, &m) == GB_E_MALFORMED, "%s: truncated at %zu is malformed",
                      cases[i].name, cut);
            packet[un] = 0xAB;
            CHECK(gb_decode(packet, (size_t)un + 1, &m) == GB_E_OK, "%s: a trailing byte is ignored", cases[i].name);
            /* A flipped bit anywhere in the frame is caught (CRC or COBS). */
            for (k = 1; k + 1 < flen; k += 7) {
                uint8_t save = file[k];
                file[k] ^= 0x10;
                if (file[k] != 0)
                    CHECK(gb_frame_unwrap(file + 1, flen - 2, re, sizeof re) < 0, "%s: flipped bit at %zu caught",
                          cases[i].name, k);
                file[k] = save;
            }
        }

        snprintf(path, sizeof path, "%s/%s.json", dir, cases[i].name);
        jl = read_file(path, json, sizeof json - 1);
        CHECK(jl > 0, "%s exists", path);
        if (jl > 0) {
            json[jl] = 0;
            for (k = 0; k < flen; k++) sprintf(hexs + 2 * k, "%02x", frame[k]);
            CHECK(strstr((char *)json, hexs) != NULL, "%s: frame_hex matches the .bin", path);
        }
    }
}

/* ── streaming receiver ───────────────────────────────────────────────────────────────────────────────────────── */

static void test_rx(void) {
    static gb_rx_t rx;
    static uint8_t stream[65536], frame[GB_MAX_FRAME], pkt[64];
    size_t len = 0, i, f;
    int got = 0, want = 0, k;
    gb_rx_init(&rx);
    for (k = 0; k < 200; k++) {
        size_t g = rnd() % 40, plen = 5 + rnd() % 40;
        for (i = 0; i < g; i++) stream[len++] = (uint8_t)rnd(); /* garbage, zeros included */
        pkt[0] = GB_T_ACK;
        for (i = 1; i < plen; i++) pkt[i] = (uint8_t)k;
        f = gb_frame_wrap(pkt, plen, frame, sizeof frame);
        memcpy(stream + len, frame, f);
        len += f;
        want++;
    }
    for (i = 0; i < len; i++) {
        size_t n = gb_rx_byte(&rx, stream[i]);
        if (n && rx.buf[0] == GB_T_ACK && n >= 5 && rx.buf[1] == rx.buf[n - 1] && rx.buf[1] == (uint8_t)got) got++;
    }
    CHECK(got == want, "every frame after garbage recovered (%d of %d)", got, want);
    CHECK(rx.bad_crc + rx.malformed > 0, "garbage counted (bad crc %u, malformed %u)", rx.bad_crc, rx.malformed);

    gb_rx_init(&rx);
    for (i = 0; i < GB_MAX_ENCODED + 10; i++) gb_rx_byte(&rx, 0x41);
    CHECK(rx.oversize == 1, "oversize counted once");
    pkt[0] = GB_T_ACK;
    pkt[1] = 1;
    pkt[2] = pkt[3] = pkt[4] = 0;
    f = gb_frame_wrap(pkt, 5, frame, sizeof frame);
    for (i = 1; i < f; i++) got = (int)gb_rx_byte(&rx, frame[i]); /* the first 0x00 ends the oversize run */
    CHECK(got == 0, "the frame glued to the oversize run is discarded with it");
    for (i = 0; i < f; i++) got = (int)gb_rx_byte(&rx, frame[i]);
    CHECK(got == 5, "the next frame is received");
}

/* ── ring ─────────────────────────────────────────────────────────────────────────────────────────────────────── */

static void test_ring(void) {
    static gb_batch_t slots[4];
    gb_ring_t r;
    uint16_t dropped;
    uint32_t s;
    gb_ring_init(&r, slots, 4);
    for (s = 0xFFFFFFFEu; s != 3u; s++) { /* 6 pushes across the wrap: FFFFFFFE FFFFFFFF 0 1 2 */
        gb_batch_t *b = gb_ring_push(&r, &dropped);
        b->seq = s;
        b->count = 10;
    }
    CHECK(r.used == 4 && gb_ring_at(&r, 0)->seq == 0xFFFFFFFFu, "full ring dropped the oldest");
    CHECK(dropped == 10, "dropped sample count reported");
    CHECK(gb_ring_ack(&r, 0) == 2 && gb_ring_at(&r, 0)->seq == 1, "ACK across the wrap frees FFFFFFFF and 0");
    CHECK(gb_ring_ack(&r, 0) == 0, "a repeated ACK frees nothing");
    CHECK(gb_ring_ack(&r, 5) == 2 && r.used == 0, "ACK past the newest frees all");
}

/* ── device state machine through a fake platform ─────────────────────────────────────────────────────────────── */

typedef struct {
    gb_msg_t msgs[256];
    int n;
    gb_rx_t rx;
    uint8_t cmd_status;
    int commands;
} fake_t;

static size_t f_space(void *ctx) {
    (void)ctx;
    return 1 << 20;
}
static void f_tx(void *ctx, const uint8_t *data, size_t len) {
    fake_t *f = ctx;
    size_t i;
    for (i = 0; i < len; i++) {
        size_t n = gb_rx_byte(&f->rx, data[i]);
        if (n && f->n < 256) {
            CHECK(gb_decode(f->rx.buf, n, &f->msgs[f->n]) == GB_E_OK, "device sends decodable frames");
            f->n++;
        }
    }
}
static uint8_t f_cmd(void *ctx, const gb_command_t *c, uint64_t now) {
    fake_t *f = ctx;
    (void)c;
    (void)now;
    f->commands++;
    return f->cmd_status;
}

static void host_send(gb_device_t *d, const gb_msg_t *m, uint64_t now) {
    static uint8_t pkt[GB_MAX_PACKET], frame[GB_MAX_FRAME];
    size_t n = gb_encode_msg(m, pkt, sizeof pkt);
    size_t f = gb_frame_wrap(pkt, n, frame, sizeof frame);
    gb_device_rx(d, frame, f, now);
}

static int count_type(const fake_t *f, int from, uint8_t type) {
    int i, c = 0;
    for (i = from; i < f->n; i++)
        if (f->msgs[i].type == type) c++;
    return c;
}

static const gb_msg_t *last_of(const fake_t *f, uint8_t type) {
    int i;
    for (i = f->n - 1; i >= 0; i--)
        if (f->msgs[i].type == type) return &f->msgs[i];
    return NULL;
}

static void test_device(void) {
    static gb_device_t d;
    static gb_batch_t slots[4];
    static fake_t f;
    gb_channel_info_t ch[2];
    gb_config_t cfg;
    gb_platform_t pf;
    gb_msg_t m;
    const gb_msg_t *r;
    uint64_t t = 1000;
    int i, mark;

    memset(&f, 0, sizeof f);
    gb_rx_init(&f.rx);
    memset(ch, 0, sizeof ch);
    ch[0].id = 1;
    ch[0].value_type = GB_V_F32;
    strcpy(ch[0].name, "t");
    ch[1].id = 2;
    ch[1].value_type = GB_V_U32;
    memset(&cfg, 0, sizeof cfg);
    cfg.device_id = "unit";
    cfg.boot_id = 77;
    cfg.capabilities = GB_CAP_SAMPLES | GB_CAP_LIGHT_TOWER | GB_CAP_REJECT_PULSE | GB_CAP_RESEND;
    cfg.channels = ch;
    cfg.channel_count = 2;
    cfg.window = 2;
    cfg.ack_timeout_ms = 100;
    cfg.heartbeat_ms = 1000;
    cfg.batch_max = 5;
    cfg.batch_max_age_us = 1000000;
    memset(&pf, 0, sizeof pf);
    pf.ctx = &f;
    pf.tx_space = f_space;
    pf.tx = f_tx;
    pf.command = f_cmd;
    gb_device_init(&d, &cfg, &pf, slots, 4);

    gb_device_link_up(&d, t);
    r = last_of(&f, GB_T_HELLO);
    CHECK(f.n == 1 && r && r->u.hello.req_id == 0 && r->u.hello.boot_id == 77, "unsolicited HELLO on link up");

    for (i = 0; i < 12; i++) CHECK(gb_device_sample(&d, (uint8_t)(1 + i % 2), (uint32_t)i, 0, t + (uint64_t)i) == 0, "sample");
    CHECK(gb_device_sample(&d, 9, 0, 0, t) == -1, "unknown channel refused");
    gb_device_poll(&d, t += 10);
    CHECK(count_type(&f, 0, GB_T_SAMPLES) == 0, "no batch before the handshake");

    memset(&m, 0, sizeof m);
    m.type = GB_T_TIME_SYNC;
    m.u.time_sync.req_id = 5;
    host_send(&d, &m, t);
    r = last_of(&f, GB_T_ERROR);
    CHECK(r && r->u.error.code == GB_E_NO_SESSION && r->u.error.req_id == 5, "TIME_SYNC before HELLO → NO_SESSION");

    memset(&m, 0, sizeof m);
    m.type = GB_T_HOST_HELLO;
    m.u.host_hello.req_id = 6;
    m.u.host_hello.min_version = 2;
    m.u.host_hello.max_version = 3;
    host_send(&d, &m, t);
    r = last_of(&f, GB_T_ERROR);
    CHECK(r && r->u.error.code == GB_E_VERSION && r->u.error.req_id == 6 && r->u.error.detail == 0x0101,
          "no common version → ERROR VERSION with the device's range");
    CHECK(!d.session, "no session after a version mismatch");

    m.u.host_hello.req_id = 7;
    m.u.host_hello.min_version = 1;
    m.u.host_hello.max_version = 4;
    mark = f.n;
    host_send(&d, &m, t);
    r = last_of(&f, GB_T_HELLO);
    CHECK(r && r->u.hello.req_id == 7 && r->u.hello.version == 1 && r->u.hello.channel_count == 2,
          "HELLO answers HOST_HELLO with the negotiated version");
    gb_device_poll(&d, t += 1);
    CHECK(count_type(&f, mark, GB_T_HEARTBEAT) == 1, "heartbeat right after the handshake");
    CHECK(count_type(&f, mark, GB_T_SAMPLES) == 2, "window of 2 batches sent");
    r = last_of(&f, GB_T_SAMPLES);
    CHECK(r && r->u.samples.seq == 2 && r->u.samples.oldest == 1 && r->u.samples.first_sample == 5 &&
              r->u.samples.count == 5 && r->u.samples.flags == 0,
          "second batch: seq 2, oldest 1, samples 5..9");

    /* No ACK: after the timeout the device goes back to the oldest and resends, flagged. */
    mark = f.n;
    gb_device_poll(&d, t += 50000);
    CHECK(count_type(&f, mark, GB_T_SAMPLES) == 0, "nothing resent before the timeout");
    gb_device_poll(&d, t += 60000);
    CHECK(count_type(&f, mark, GB_T_SAMPLES) == 2 && last_of(&f, GB_T_SAMPLES)->u.samples.flags == GB_FLAG_RESENT,
          "resent after ack_timeout with the RESENT flag");
    CHECK(d.backoff == 2, "backoff doubled");

    memset(&m, 0, sizeof m);
    m.type = GB_T_ACK;
    m.u.ack.seq = 1;
    mark = f.n;
    host_send(&d, &m, t);
    gb_device_poll(&d, t += 1);
    CHECK(d.ring.used == 1 && d.backoff == 1, "ACK 1 frees batch 1 and resets the backoff");
    CHECK(count_type(&f, mark, GB_T_SAMPLES) == 0, "batch 3 (open) is not sent before it closes");
    gb_device_flush(&d);
    gb_device_poll(&d, t += 1);
    r = last_of(&f, GB_T_SAMPLES);
    CHECK(r && r->u.samples.seq == 3 && r->u.samples.count == 2, "flushed batch 3 with 2 samples sent");
    m.u.ack.seq = 99;
    host_send(&d, &m, t);
    CHECK(d.ring.used == 2, "an ACK beyond anything sent is ignored");
    m.u.ack.seq = 3;
    host_send(&d, &m, t);
    CHECK(d.ring.used == 0 && d.acked_seq == 3, "ACK 3 frees everything");

    /* Ring overflow: 6 batches into 4 slots while the host is gone. */
    gb_device_link_down(&d);
    for (i = 0; i < 30; i++) gb_device_sample(&d, 1, 0, 0, t + (uint64_t)i);
    CHECK(d.dropped_batches == 2 && d.dropped_samples == 10, "two batches dropped when the ring overflowed (%u)",
          d.dropped_batches);
    gb_device_link_up(&d, t);
    memset(&m, 0, sizeof m);
    m.type = GB_T_HOST_HELLO;
    m.u.host_hello.req_id = 8;
    m.u.host_hello.min_version = 1;
    m.u.host_hello.max_version = 1;
    mark = f.n;
    host_send(&d, &m, t);
    gb_device_poll(&d, t += 1);
    r = last_of(&f, GB_T_HEARTBEAT);
    CHECK(r && r->u.heartbeat.dropped_batches == 2 && r->u.heartbeat.dropped_samples == 10 &&
              r->u.heartbeat.samples_produced == 42 && r->u.heartbeat.ring_used == 4,
          "heartbeat reports drops and the ring");
    for (i = mark; i < f.n; i++)
        if (f.msgs[i].type == GB_T_SAMPLES) break;
    CHECK(i < f.n && f.msgs[i].u.samples.seq == 6 && f.msgs[i].u.samples.oldest == 6 &&
              f.msgs[i].u.samples.first_sample == 22,
          "after reconnecting the device resumes at its oldest batch (6, samples from 22)");

    /* Commands. */
    memset(&m, 0, sizeof m);
    m.type = GB_T_COMMAND;
    m.u.command.req_id = 40;
    m.u.command.command = GB_CMD_LIGHT_TOWER;
    m.u.command.args.light_tower.red = 1;
    host_send(&d, &m, t);
    r = last_of(&f, GB_T_CMD_ACK);
    CHECK(r && r->u.cmd_ack.req_id == 40 && r->u.cmd_ack.status == GB_E_OK && f.commands == 1, "light tower done");
    m.u.command.req_id = 41;
    m.u.command.args.light_tower.red = 3;
    host_send(&d, &m, t);
    r = last_of(&f, GB_T_CMD_ACK);
    CHECK(r && r->u.cmd_ack.req_id == 41 && r->u.cmd_ack.status == GB_E_BAD_ARGUMENT && f.commands == 1,
          "lamp value 3 → BAD_ARGUMENT, not executed");
    m.u.command.req_id = 42;
    m.u.command.command = GB_CMD_SET_PERIOD;
    m.u.command.args.set_period.channel = 1;
    m.u.command.args.set_period.period_us = 5000;
    host_send(&d, &m, t);
    r = last_of(&f, GB_T_CMD_ACK);
    CHECK(r && r->u.cmd_ack.status == GB_E_UNSUPPORTED, "SET_PERIOD without the capability → UNSUPPORTED");
    m.u.command.req_id = 43;
    m.u.command.command = 0x77;
    host_send(&d, &m, t);
    r = last_of(&f, GB_T_CMD_ACK);
    CHECK(r && r->u.cmd_ack.req_id == 43 && r->u.cmd_ack.status == GB_E_UNKNOWN_COMMAND, "unknown command");
    f.cmd_status = GB_E_BUSY;
    m.u.command.req_id = 44;
    m.u.command.command = GB_CMD_REJECT_PULSE;
    m.u.command.args.reject_pulse.duration_ms = 100;
    host_send(&d, &m, t);
    r = last_of(&f, GB_T_CMD_ACK);
    CHECK(r && r->u.cmd_ack.req_id == 44 && r->u.cmd_ack.status == GB_E_BUSY, "actuator status passed through");

    {
        /* An unknown request type (0x90, req_id 0x0203) is answered with UNKNOWN_TYPE echoing its req_id. */
        static uint8_t frame[64];
        const uint8_t pkt[] = {0x90, 0x03, 0x02, 0xEE};
        size_t n = gb_frame_wrap(pkt, sizeof pkt, frame, sizeof frame);
        gb_device_rx(&d, frame, n, t);
        r = last_of(&f, GB_T_ERROR);
        CHECK(r && r->u.error.code == GB_E_UNKNOWN_TYPE && r->u.error.req_id == 0x0203 && r->u.error.ref_type == 0x90,
              "unknown type answered");
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_core GOLDEN_DIR\n");
        return 2;
    }
    test_crc();
    test_cobs();
    test_golden(argv[1]);
    test_rx();
    test_ring();
    test_device();
    printf("test_core: %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
