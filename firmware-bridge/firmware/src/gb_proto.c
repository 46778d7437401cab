#include "gb_proto.h"

#include <string.h>

#include "gb_crc16.h"

/* ── little-endian writer / reader with bounds checks ─────────────────────────────────────────────────────────── */

typedef struct {
    uint8_t *p;
    size_t cap, len;
    int bad;
} wr_t;

static void w8(wr_t *w, uint8_t v) {
    if (w->len + 1 > w->cap) {
        w->bad = 1;
        return;
    }
    w->p[w->len++] = v;
}
static void w16(wr_t *w, uint16_t v) {
    w8(w, (uint8_t)v);
    w8(w, (uint8_t)(v >> 8));
}
static void w32(wr_t *w, uint32_t v) {
    w16(w, (uint16_t)v);
    w16(w, (uint16_t)(v >> 16));
}
static void w64(wr_t *w, uint64_t v) {
    w32(w, (uint32_t)v);
    w32(w, (uint32_t)(v >> 32));
}
static void wstr(wr_t *w, const char *s, size_t max, int allow_empty) {
    size_t n = strlen(s);
    if (n > max || (n == 0 && !allow_empty)) {
        w->bad = 1;
        return;
    }
    w8(w, (uint8_t)n);
    if (w->len + n > w->cap) {
        w->bad = 1;
        return;
    }
    memcpy(w->p + w->len, s, n);
    w->len += n;
}
static size_t wdone(const wr_t *w) { return w->bad ? 0 : w->len; }

typedef struct {
    const uint8_t *p;
    size_t len, off;
    int bad;
} rd_t;

static uint8_t r8(rd_t *r) {
    if (r->off + 1 > r->len) {
        r->bad = 1;
        return 0;
    }
    return r->p[r->off++];
}
static uint16_t r16(rd_t *r) {
    uint16_t lo = r8(r);
    return (uint16_t)(lo | (uint16_t)(r8(r) << 8));
}
static uint32_t r32(rd_t *r) {
    uint32_t lo = r16(r);
    return lo | ((uint32_t)r16(r) << 16);
}
static uint64_t r64(rd_t *r) {
    uint64_t lo = r32(r);
    return lo | ((uint64_t)r32(r) << 32);
}
static void rstr(rd_t *r, char *dst, size_t max, int allow_empty) {
    uint8_t n = r8(r);
    if (r->bad || n > max || (n == 0 && !allow_empty) || r->off + n > r->len) {
        r->bad = 1;
        dst[0] = 0;
        return;
    }
    memcpy(dst, r->p + r->off, n);
    dst[n] = 0;
    r->off += n;
}

static int device_id_ok(const char *s) {
    size_t i, n = strlen(s);
    if (n == 0 || n > GB_MAX_DEVICE_ID) return 0;
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == '-'))
            return 0;
    }
    return 1;
}

/* ── encoders ─────────────────────────────────────────────────────────────────────────────────────────────────── */

size_t gb_encode_hello(const gb_hello_t *m, uint8_t *out, size_t cap) {
    wr_t w = {0};
    uint8_t i;
    w.p = out;
    w.cap = cap;
    if (!device_id_ok(m->device_id) || m->channel_count > GB_MAX_CHANNELS) return 0;
    w8(&w, GB_T_HELLO);
    w16(&w, m->req_id);
    w8(&w, m->version);
    w8(&w, m->min_version);
    w8(&w, m->max_version);
    w8(&w, m->fw_major);
    w8(&w, m->fw_minor);
    w8(&w, m->fw_patch);
    w32(&w, m->boot_id);
    w64(&w, m->device_us);
    w32(&w, m->capabilities);
    w16(&w, m->max_packet);
    w16(&w, m->ring_capacity);
    w8(&w, m->window);
    w8(&w, 0);
    w16(&w, m->ack_timeout_ms);
    w16(&w, m->heartbeat_ms);
    wstr(&w, m->device_id, GB_MAX_DEVICE_ID, 0);
    w8(&w, m->channel_count);
    for (i = 0; i < m->channel_count; i++) {
        const gb_channel_info_t *c = &m->channels[i];
        if (c->value_type > GB_V_STATE) return 0;
        w8(&w, c->id);
        w8(&w, c->value_type);
        w32(&w, c->period_us);
        wstr(&w, c->name, GB_MAX_NAME, 1);
        wstr(&w, c->unit, GB_MAX_UNIT, 1);
    }
    return wdone(&w);
}

size_t gb_encode_samples_parts(uint32_t seq, uint32_t oldest, uint32_t first_sample, uint64_t base_us, uint8_t flags,
                               const gb_sample_t *samples, uint8_t count, uint8_t *out, size_t cap) {
    wr_t w = {0};
    uint8_t i;
    w.p = out;
    w.cap = cap;
    if (count == 0 || count > GB_MAX_BATCH) return 0;
    w8(&w, GB_T_SAMPLES);
    w32(&w, seq);
    w32(&w, oldest);
    w32(&w, first_sample);
    w64(&w, base_us);
    w8(&w, flags);
    w8(&w, count);
    for (i = 0; i < count; i++) {
        if (samples[i].quality > GB_Q_BAD) return 0;
        w8(&w, samples[i].channel);
        w8(&w, samples[i].quality);
        w32(&w, samples[i].offset_us);
        w32(&w, samples[i].raw);
    }
    return wdone(&w);
}

size_t gb_encode_samples(const gb_samples_t *m, uint8_t *out, size_t cap) {
    return gb_encode_samples_parts(m->seq, m->oldest, m->first_sample, m->base_us, m->flags, m->samples, m->count, out,
                                   cap);
}

size_t gb_encode_heartbeat(const gb_heartbeat_t *m, uint8_t *out, size_t cap) {
    wr_t w = {0};
    w.p = out;
    w.cap = cap;
    w8(&w, GB_T_HEARTBEAT);
    w64(&w, m->uptime_us);
    w32(&w, m->last_seq);
    w32(&w, m->acked_seq);
    w32(&w, m->samples_produced);
    w16(&w, m->ring_used);
    w16(&w, 0);
    w32(&w, m->dropped_batches);
    w32(&w, m->dropped_samples);
    w32(&w, m->rx_bad_crc);
    w32(&w, m->rx_errors);
    return wdone(&w);
}

size_t gb_encode_cmd_ack(const gb_cmd_ack_t *m, uint8_t *out, size_t cap) {
    wr_t w = {0};
    w.p = out;
    w.cap = cap;
    w8(&w, GB_T_CMD_ACK);
    w16(&w, m->req_id);
    w8(&w, m->command);
    w8(&w, m->status);
    w64(&w, m->device_us);
    return wdone(&w);
}

size_t gb_encode_time_sync_reply(const gb_time_sync_reply_t *m, uint8_t *out, size_t cap) {
    wr_t w = {0};
    w.p = out;
    w.cap = cap;
    w8(&w, GB_T_TIME_SYNC_REPLY);
    w16(&w, m->req_id);
    w64(&w, m->host_unix_ms);
    w64(&w, m->device_us);
    return wdone(&w);
}

size_t gb_encode_error(const gb_error_t *m, uint8_t *out, size_t cap) {
    wr_t w = {0};
    w.p = out;
    w.cap = cap;
    if (m->code == GB_E_OK) return 0;
    w8(&w, GB_T_ERROR);
    w16(&w, m->req_id);
    w8(&w, m->code);
    w8(&w, m->ref_type);
    w16(&w, m->detail);
    return wdone(&w);
}

size_t gb_encode_host_hello(const gb_host_hello_t *m, uint8_t *out, size_t cap) {
    wr_t w = {0};
    w.p = out;
    w.cap = cap;
    w8(&w, GB_T_HOST_HELLO);
    w16(&w, m->req_id);
    w8(&w, m->min_version);
    w8(&w, m->max_version);
    w64(&w, m->host_unix_ms);
    return wdone(&w);
}

size_t gb_encode_ack(const gb_ack_t *m, uint8_t *out, size_t cap) {
    wr_t w = {0};
    w.p = out;
    w.cap = cap;
    w8(&w, GB_T_ACK);
    w32(&w, m->seq);
    return wdone(&w);
}

size_t gb_encode_time_sync(const gb_time_sync_t *m, uint8_t *out, size_t cap) {
    wr_t w = {0};
    w.p = out;
    w.cap = cap;
    w8(&w, GB_T_TIME_SYNC);
    w16(&w, m->req_id);
    w64(&w, m->host_unix_ms);
    return wdone(&w);
}

size_t gb_encode_command(const gb_command_t *m, uint8_t *out, size_t cap) {
    wr_t w = {0};
    w.p = out;
    w.cap = cap;
    w8(&w, GB_T_COMMAND);
    w16(&w, m->req_id);
    w8(&w, m->command);
    switch (m->command) {
    case GB_CMD_REJECT_PULSE:
        w16(&w, m->args.reject_pulse.duration_ms);
        break;
    case GB_CMD_LIGHT_TOWER:
        w8(&w, m->args.light_tower.red);
        w8(&w, m->args.light_tower.amber);
        w8(&w, m->args.light_tower.green);
        w8(&w, m->args.light_tower.buzzer);
        break;
    case GB_CMD_SET_PERIOD:
        w8(&w, m->args.set_period.channel);
        w32(&w, m->args.set_period.period_us);
        break;
    default:
        break; /* unknown commands carry no arguments we know of */
    }
    return wdone(&w);
}

size_t gb_encode_msg(const gb_msg_t *m, uint8_t *out, size_t cap) {
    switch (m->type) {
    case GB_T_HELLO: return gb_encode_hello(&m->u.hello, out, cap);
    case GB_T_SAMPLES: return gb_encode_samples(&m->u.samples, out, cap);
    case GB_T_HEARTBEAT: return gb_encode_heartbeat(&m->u.heartbeat, out, cap);
    case GB_T_CMD_ACK: return gb_encode_cmd_ack(&m->u.cmd_ack, out, cap);
    case GB_T_TIME_SYNC_REPLY: return gb_encode_time_sync_reply(&m->u.time_sync_reply, out, cap);
    case GB_T_ERROR: return gb_encode_error(&m->u.error, out, cap);
    case GB_T_HOST_HELLO: return gb_encode_host_hello(&m->u.host_hello, out, cap);
    case GB_T_ACK: return gb_encode_ack(&m->u.ack, out, cap);
    case GB_T_TIME_SYNC: return gb_encode_time_sync(&m->u.time_sync, out, cap);
    case GB_T_COMMAND: return gb_encode_command(&m->u.command, out, cap);
    default: return 0;
    }
}

/* ── decoder ──────────────────────────────────────────────────────────────────────────────────────────────────── */

static int decode_hello(rd_t *r, gb_hello_t *m) {
    uint8_t i;
    m->req_id = r16(r);
    m->version = r8(r);
    m->min_version = r8(r);
    m->max_version = r8(r);
    m->fw_major = r8(r);
    m->fw_minor = r8(r);
    m->fw_patch = r8(r);
    m->boot_id = r32(r);
    m->device_us = r64(r);
    m->capabilities = r32(r);
    m->max_packet = r16(r);
    m->ring_capacity = r16(r);
    m->window = r8(r);
    (void)r8(r);
    m->ack_timeout_ms = r16(r);
    m->heartbeat_ms = r16(r);
    rstr(r, m->device_id, GB_MAX_DEVICE_ID, 0);
    if (!r->bad && !device_id_ok(m->device_id)) return GB_E_MALFORMED;
    m->channel_count = r8(r);
    if (r->bad || m->channel_count > GB_MAX_CHANNELS) return GB_E_MALFORMED;
    for (i = 0; i < m->channel_count; i++) {
        gb_channel_info_t *c = &m->channels[i];
        c->id = r8(r);
        c->value_type = r8(r);
        c->period_us = r32(r);
        rstr(r, c->name, GB_MAX_NAME, 1);
        rstr(r, c->unit, GB_MAX_UNIT, 1);
        if (r->bad || c->value_type > GB_V_STATE) return GB_E_MALFORMED;
    }
    return r->bad ? GB_E_MALFORMED : GB_E_OK;
}

static int decode_samples(rd_t *r, gb_samples_t *m) {
    uint8_t i;
    m->seq = r32(r);
    m->oldest = r32(r);
    m->first_sample = r32(r);
    m->base_us = r64(r);
    m->flags = r8(r);
    m->count = r8(r);
    if (r->bad || m->count == 0 || m->count > GB_MAX_BATCH) return GB_E_MALFORMED;
    /* oldest must not be after seq (serial arithmetic) */
    if ((int32_t)(m->seq - m->oldest) < 0) return GB_E_MALFORMED;
    for (i = 0; i < m->count; i++) {
        gb_sample_t *s = &m->samples[i];
        s->channel = r8(r);
        s->quality = r8(r);
        s->offset_us = r32(r);
        s->raw = r32(r);
        if (s->quality > GB_Q_BAD) return GB_E_MALFORMED;
    }
    return r->bad ? GB_E_MALFORMED : GB_E_OK;
}

int gb_decode(const uint8_t *packet, size_t len, gb_msg_t *out) {
    rd_t r = {0};
    int rc = GB_E_OK;
    r.p = packet;
    r.len = len;
    if (len < 1) return GB_E_MALFORMED;
    out->type = r8(&r);
    switch (out->type) {
    case GB_T_HELLO: rc = decode_hello(&r, &out->u.hello); break;
    case GB_T_SAMPLES: rc = decode_samples(&r, &out->u.samples); break;
    case GB_T_HEARTBEAT: {
        gb_heartbeat_t *m = &out->u.heartbeat;
        m->uptime_us = r64(&r);
        m->last_seq = r32(&r);
        m->acked_seq = r32(&r);
        m->samples_produced = r32(&r);
        m->ring_used = r16(&r);
        (void)r16(&r);
        m->dropped_batches = r32(&r);
        m->dropped_samples = r32(&r);
        m->rx_bad_crc = r32(&r);
        m->rx_errors = r32(&r);
        break;
    }
    case GB_T_CMD_ACK: {
        gb_cmd_ack_t *m = &out->u.cmd_ack;
        m->req_id = r16(&r);
        m->command = r8(&r);
        m->status = r8(&r);
        m->device_us = r64(&r);
        break;
    }
    case GB_T_TIME_SYNC_REPLY: {
        gb_time_sync_reply_t *m = &out->u.time_sync_reply;
        m->req_id = r16(&r);
        m->host_unix_ms = r64(&r);
        m->device_us = r64(&r);
        break;
    }
    case GB_T_ERROR: {
        gb_error_t *m = &out->u.error;
        m->req_id = r16(&r);
        m->code = r8(&r);
        m->ref_type = r8(&r);
        m->detail = r16(&r);
        if (!r.bad && m->code == GB_E_OK) rc = GB_E_MALFORMED;
        break;
    }
    case GB_T_HOST_HELLO: {
        gb_host_hello_t *m = &out->u.host_hello;
        m->req_id = r16(&r);
        m->min_version = r8(&r);
        m->max_version = r8(&r);
        m->host_unix_ms = r64(&r);
        if (!r.bad && (m->req_id == 0 || m->min_version > m->max_version)) rc = GB_E_MALFORMED;
        break;
    }
    case GB_T_ACK: out->u.ack.seq = r32(&r); break;
    case GB_T_TIME_SYNC: {
        gb_time_sync_t *m = &out->u.time_sync;
        m->req_id = r16(&r);
        m->host_unix_ms = r64(&r);
        if (!r.bad && m->req_id == 0) rc = GB_E_MALFORMED;
        break;
    }
    case GB_T_COMMAND: {
        gb_command_t *m = &out->u.command;
        m->req_id = r16(&r);
        m->command = r8(&r);
        switch (m->command) {
        case GB_CMD_REJECT_PULSE: m->args.reject_pulse.duration_ms = r16(&r); break;
        case GB_CMD_LIGHT_TOWER:
            m->args.light_tower.red = r8(&r);
            m->args.light_tower.amber = r8(&r);
            m->args.light_tower.green = r8(&r);
            m->args.light_tower.buzzer = r8(&r);
            break;
        case GB_CMD_SET_PERIOD:
            m->args.set_period.channel = r8(&r);
            m->args.set_period.period_us = r32(&r);
            break;
        default: break; /* answered with UNKNOWN_COMMAND by the device */
        }
        if (!r.bad && m->req_id == 0) rc = GB_E_MALFORMED;
        break;
    }
    default: return GB_E_UNKNOWN_TYPE;
    }
    if (r.bad) return GB_E_MALFORMED;
    return rc;
}

/* ── frames ───────────────────────────────────────────────────────────────────────────────────────────────────── */

size_t gb_frame_wrap(const uint8_t *packet, size_t len, uint8_t *out, size_t cap) {
    uint8_t tmp[GB_MAX_PACKET + GB_CRC_LEN];
    uint16_t crc;
    size_t n;
    if (len == 0 || len > GB_MAX_PACKET || cap < GB_COBS_MAX_ENCODED(len + GB_CRC_LEN) + 2u) return 0;
    memcpy(tmp, packet, len);
    crc = gb_crc16(packet, len);
    tmp[len] = (uint8_t)crc;
    tmp[len + 1] = (uint8_t)(crc >> 8);
    out[0] = 0;
    n = gb_cobs_encode(tmp, len + GB_CRC_LEN, out + 1);
    out[1 + n] = 0;
    return n + 2u;
}

long gb_frame_unwrap(const uint8_t *in, size_t len, uint8_t *packet, size_t cap) {
    long n = gb_cobs_decode(in, len, packet, cap);
    uint16_t crc;
    if (n < 3) return -1;
    crc = (uint16_t)(packet[n - 2] | (packet[n - 1] << 8));
    if (gb_crc16(packet, (size_t)n - 2u) != crc) return -2;
    return n - 2;
}

void gb_rx_init(gb_rx_t *rx) { memset(rx, 0, sizeof *rx); }

size_t gb_rx_byte(gb_rx_t *rx, uint8_t byte) {
    long n;
    if (byte != 0) {
        if (rx->overflow) return 0;
        if (rx->len >= sizeof rx->buf) {
            rx->overflow = 1;
            rx->oversize++;
            rx->len = 0;
            return 0;
        }
        rx->buf[rx->len++] = byte;
        return 0;
    }
    if (rx->overflow) {
        rx->overflow = 0;
        return 0;
    }
    if (rx->len == 0) return 0; /* idle / leading delimiter */
    n = gb_frame_unwrap(rx->buf, rx->len, rx->buf, sizeof rx->buf);
    rx->len = 0;
    if (n == -2) {
        rx->bad_crc++;
        return 0;
    }
    if (n < 1) {
        rx->malformed++;
        return 0;
    }
    rx->frames_ok++;
    return (size_t)n;
}

uint32_t gb_f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

float gb_bits_f32(uint32_t bits) {
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}
