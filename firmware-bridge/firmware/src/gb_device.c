#include "gb_device.h"

#include <string.h>

static void event(gb_device_t *d, const char *what, uint32_t a, uint32_t b) {
    if (d->pf.event) d->pf.event(d->pf.ctx, what, a, b);
}

/* Wraps pkt[0..len) into a frame and sends it if the link has room; returns 1 when sent. */
static int send_packet(gb_device_t *d, size_t len) {
    size_t n;
    if (len == 0 || !d->link_up) return 0;
    n = gb_frame_wrap(d->pkt, len, d->frame, sizeof d->frame);
    if (n == 0 || d->pf.tx_space(d->pf.ctx) < n) return 0;
    d->pf.tx(d->pf.ctx, d->frame, n);
    d->frames_sent++;
    return 1;
}

static void send_error(gb_device_t *d, uint16_t req_id, uint8_t code, uint8_t ref_type, uint16_t detail) {
    gb_error_t e;
    e.req_id = req_id;
    e.code = code;
    e.ref_type = ref_type;
    e.detail = detail;
    (void)send_packet(d, gb_encode_error(&e, d->pkt, sizeof d->pkt));
}

static void send_hello(gb_device_t *d, uint16_t req_id, uint8_t version, uint64_t now_us) {
    /* static: a HELLO with 32 channels is ~1 KB, kept off a small MCU stack. One device per program is assumed. */
    static gb_hello_t h;
    uint8_t i;
    memset(&h, 0, sizeof h);
    h.req_id = req_id;
    h.version = version;
    h.min_version = d->cfg.min_version;
    h.max_version = d->cfg.max_version;
    h.fw_major = d->cfg.fw_major;
    h.fw_minor = d->cfg.fw_minor;
    h.fw_patch = d->cfg.fw_patch;
    h.boot_id = d->cfg.boot_id;
    h.device_us = now_us;
    h.capabilities = d->cfg.capabilities;
    h.max_packet = GB_MAX_PACKET;
    h.ring_capacity = d->ring.cap;
    h.window = d->cfg.window;
    h.ack_timeout_ms = d->cfg.ack_timeout_ms;
    h.heartbeat_ms = d->cfg.heartbeat_ms;
    strncpy(h.device_id, d->cfg.device_id, GB_MAX_DEVICE_ID);
    h.channel_count = d->cfg.channel_count;
    for (i = 0; i < d->cfg.channel_count && i < GB_MAX_CHANNELS; i++) h.channels[i] = d->cfg.channels[i];
    (void)send_packet(d, gb_encode_hello(&h, d->pkt, sizeof d->pkt));
}

static uint32_t oldest_seq(const gb_device_t *d) {
    const gb_batch_t *b = gb_ring_at(&d->ring, 0);
    return b ? b->seq : d->next_seq;
}

/* Keeps send_seq inside [oldest, next_seq] after the ring changed at its old end. */
static void clamp_send(gb_device_t *d) {
    uint32_t oldest = oldest_seq(d);
    if ((int32_t)(d->send_seq - oldest) < 0) d->send_seq = oldest;
}

static void close_batch(gb_device_t *d) {
    uint16_t dropped = 0;
    gb_batch_t *b;
    if (d->open.count == 0) return;
    b = gb_ring_push(&d->ring, &dropped);
    if (b == NULL) return;
    if (dropped) {
        d->dropped_batches++;
        d->dropped_samples += dropped;
        event(d, "drop", d->dropped_batches, dropped);
    }
    memcpy(b, &d->open, offsetof(gb_batch_t, samples) + (size_t)d->open.count * sizeof(gb_sample_t));
    b->seq = d->next_seq++;
    b->sent = 0;
    d->open.count = 0;
    clamp_send(d);
}

void gb_device_init(gb_device_t *d, const gb_config_t *cfg, const gb_platform_t *pf, gb_batch_t *ring_slots,
                    uint16_t ring_slots_count) {
    memset(d, 0, sizeof *d);
    d->cfg = *cfg;
    d->pf = *pf;
    if (d->cfg.batch_max == 0 || d->cfg.batch_max > GB_MAX_BATCH) d->cfg.batch_max = GB_MAX_BATCH;
    if (d->cfg.window == 0) d->cfg.window = 1;
    if (d->cfg.min_version == 0) d->cfg.min_version = GB_PROTOCOL_VERSION;
    if (d->cfg.max_version == 0) d->cfg.max_version = GB_PROTOCOL_VERSION;
    gb_ring_init(&d->ring, ring_slots, ring_slots_count);
    gb_rx_init(&d->rx);
    d->next_seq = 1;
    d->send_seq = 1;
    d->backoff = 1;
}

void gb_device_link_up(gb_device_t *d, uint64_t now_us) {
    d->link_up = 1;
    d->session = 0;
    gb_rx_init(&d->rx);
    event(d, "link_up", 0, 0);
    send_hello(d, 0, d->cfg.max_version, now_us);
}

void gb_device_link_down(gb_device_t *d) {
    d->link_up = 0;
    d->session = 0;
}

static void handle_ack(gb_device_t *d, uint32_t seq, uint64_t now_us) {
    uint16_t freed;
    /* An ACK beyond anything ever sent is bogus (a host confused about our boot): ignore it. */
    if (d->high_sent == 0 || (int32_t)(seq - d->high_sent) > 0) return;
    d->acks++;
    if (d->acked_seq == 0 || (int32_t)(seq - d->acked_seq) > 0) d->acked_seq = seq;
    freed = gb_ring_ack(&d->ring, seq);
    if (freed) {
        d->last_progress_us = now_us;
        d->backoff = 1;
    }
    clamp_send(d);
}

static uint8_t check_command(const gb_device_t *d, const gb_command_t *c) {
    uint8_t i;
    switch (c->command) {
    case GB_CMD_REJECT_PULSE:
        if (!(d->cfg.capabilities & GB_CAP_REJECT_PULSE)) return GB_E_UNSUPPORTED;
        if (c->args.reject_pulse.duration_ms < 1 || c->args.reject_pulse.duration_ms > 10000) return GB_E_BAD_ARGUMENT;
        return GB_E_OK;
    case GB_CMD_LIGHT_TOWER:
        if (!(d->cfg.capabilities & GB_CAP_LIGHT_TOWER)) return GB_E_UNSUPPORTED;
        if (c->args.light_tower.red > GB_LAMP_BLINK || c->args.light_tower.amber > GB_LAMP_BLINK ||
            c->args.light_tower.green > GB_LAMP_BLINK || c->args.light_tower.buzzer > GB_LAMP_BLINK)
            return GB_E_BAD_ARGUMENT;
        return GB_E_OK;
    case GB_CMD_SET_PERIOD:
        if (!(d->cfg.capabilities & GB_CAP_SET_PERIOD)) return GB_E_UNSUPPORTED;
        if (c->args.set_period.period_us < 1000) return GB_E_BAD_ARGUMENT;
        for (i = 0; i < d->cfg.channel_count; i++)
            if (d->cfg.channels[i].id == c->args.set_period.channel) return GB_E_OK;
        return GB_E_BAD_ARGUMENT;
    default: return GB_E_UNKNOWN_COMMAND;
    }
}

static void handle_packet(gb_device_t *d, const uint8_t *p, size_t len, uint64_t now_us) {
    /* static: gb_msg_t holds a full SAMPLES batch (~1.2 KB); kept off a small MCU stack. */
    static gb_msg_t m;
    int rc = gb_decode(p, len, &m);
    uint8_t type = p[0];
    /* Every host-to-device request except ACK starts its body with req_id: refusals can echo it. */
    uint16_t req_id = len >= 3 ? (uint16_t)(p[1] | (p[2] << 8)) : 0;
    if (rc != GB_E_OK || type < 0x80) {
        d->rx_other_errors++;
        if (type >= 0x80 && type != GB_T_ACK && req_id != 0)
            send_error(d, req_id, rc == GB_E_UNKNOWN_TYPE || type < 0x80 ? GB_E_UNKNOWN_TYPE : GB_E_MALFORMED, type,
                       0);
        return;
    }
    switch (m.type) {
    case GB_T_HOST_HELLO: {
        uint8_t lo = m.u.host_hello.min_version > d->cfg.min_version ? m.u.host_hello.min_version : d->cfg.min_version;
        uint8_t v = m.u.host_hello.max_version < d->cfg.max_version ? m.u.host_hello.max_version : d->cfg.max_version;
        if (v < lo) {
            d->session = 0;
            event(d, "bad_version", m.u.host_hello.min_version, m.u.host_hello.max_version);
            send_error(d, m.u.host_hello.req_id, GB_E_VERSION, type,
                       (uint16_t)(d->cfg.min_version | (d->cfg.max_version << 8)));
            return;
        }
        d->session = 1;
        d->version = v;
        d->send_seq = oldest_seq(d);
        d->backoff = 1;
        d->last_progress_us = now_us;
        send_hello(d, m.u.host_hello.req_id, v, now_us);
        d->next_hb_us = now_us; /* first heartbeat right away: the host learns the ring state */
        event(d, "session", v, d->ring.used);
        return;
    }
    case GB_T_ACK:
        if (d->session) handle_ack(d, m.u.ack.seq, now_us);
        return;
    case GB_T_TIME_SYNC: {
        gb_time_sync_reply_t r;
        if (!d->session) {
            send_error(d, m.u.time_sync.req_id, GB_E_NO_SESSION, type, 0);
            return;
        }
        r.req_id = m.u.time_sync.req_id;
        r.host_unix_ms = m.u.time_sync.host_unix_ms;
        r.device_us = now_us;
        (void)send_packet(d, gb_encode_time_sync_reply(&r, d->pkt, sizeof d->pkt));
        return;
    }
    case GB_T_COMMAND: {
        gb_cmd_ack_t a;
        if (!d->session) {
            send_error(d, m.u.command.req_id, GB_E_NO_SESSION, type, 0);
            return;
        }
        a.req_id = m.u.command.req_id;
        a.command = m.u.command.command;
        a.status = check_command(d, &m.u.command);
        if (a.status == GB_E_OK) a.status = d->pf.command ? d->pf.command(d->pf.ctx, &m.u.command, now_us) : GB_E_UNSUPPORTED;
        a.device_us = now_us;
        (void)send_packet(d, gb_encode_cmd_ack(&a, d->pkt, sizeof d->pkt));
        return;
    }
    default: d->rx_other_errors++; return;
    }
}

void gb_device_rx(gb_device_t *d, const uint8_t *data, size_t len, uint64_t now_us) {
    size_t i;
    for (i = 0; i < len; i++) {
        size_t n = gb_rx_byte(&d->rx, data[i]);
        if (n) handle_packet(d, d->rx.buf, n, now_us);
    }
}

int gb_device_sample(gb_device_t *d, uint8_t channel, uint32_t raw, uint8_t quality, uint64_t t_us) {
    gb_sample_t *s;
    uint8_t i, known = 0;
    for (i = 0; i < d->cfg.channel_count; i++)
        if (d->cfg.channels[i].id == channel) known = 1;
    if (!known || quality > GB_Q_BAD) return -1;
    if (d->open.count > 0 && (t_us < d->open.base_us || t_us - d->open.base_us > 0xFFFFFFFFull)) close_batch(d);
    if (d->open.count == 0) {
        d->open.base_us = t_us;
        d->open.first_sample = d->samples_produced;
    }
    s = &d->open.samples[d->open.count++];
    s->channel = channel;
    s->quality = quality;
    s->offset_us = (uint32_t)(t_us - d->open.base_us);
    s->raw = raw;
    d->samples_produced++;
    if (d->open.count >= d->cfg.batch_max) close_batch(d);
    return 0;
}

void gb_device_flush(gb_device_t *d) { close_batch(d); }

uint16_t gb_device_ring_free(const gb_device_t *d) { return (uint16_t)(d->ring.cap - d->ring.used); }

void gb_device_heartbeat_info(const gb_device_t *d, uint64_t now_us, gb_heartbeat_t *hb) {
    hb->uptime_us = now_us;
    hb->last_seq = d->next_seq - 1u;
    hb->acked_seq = d->acked_seq;
    hb->samples_produced = d->samples_produced;
    hb->ring_used = d->ring.used;
    hb->dropped_batches = d->dropped_batches;
    hb->dropped_samples = d->dropped_samples;
    hb->rx_bad_crc = d->rx.bad_crc;
    hb->rx_errors = d->rx.malformed + d->rx.oversize + d->rx_other_errors;
}

static uint32_t in_flight(const gb_device_t *d) {
    if (d->ring.used == 0) return 0;
    return d->send_seq - oldest_seq(d);
}

void gb_device_poll(gb_device_t *d, uint64_t now_us) {
    if (d->open.count > 0 && now_us - d->open.base_us >= d->cfg.batch_max_age_us) close_batch(d);
    if (!d->link_up || !d->session) return;

    if (now_us >= d->next_hb_us) {
        gb_heartbeat_t hb;
        gb_device_heartbeat_info(d, now_us, &hb);
        if (send_packet(d, gb_encode_heartbeat(&hb, d->pkt, sizeof d->pkt)))
            d->next_hb_us = now_us + (uint64_t)d->cfg.heartbeat_ms * 1000u;
    }

    /* Go back N: no ACK progress for the (backed-off) timeout while batches are in flight → resend from the oldest. */
    if (in_flight(d) > 0 && now_us - d->last_progress_us >= (uint64_t)d->cfg.ack_timeout_ms * 1000u * d->backoff) {
        d->send_seq = oldest_seq(d);
        d->last_progress_us = now_us;
        if (d->backoff < 8) d->backoff = (uint8_t)(d->backoff * 2u);
        d->resends++;
        event(d, "resend", d->send_seq, d->backoff);
    }

    while (in_flight(d) < d->cfg.window) {
        gb_batch_t *b = gb_ring_at(&d->ring, (uint16_t)in_flight(d));
        size_t len;
        if (b == NULL) break;
        len = gb_encode_samples_parts(b->seq, oldest_seq(d), b->first_sample, b->base_us, b->sent ? GB_FLAG_RESENT : 0,
                                      b->samples, b->count, d->pkt, sizeof d->pkt);
        if (!send_packet(d, len)) break;
        if (in_flight(d) == 0) d->last_progress_us = now_us; /* the timeout runs from the first batch in flight */
        b->sent = 1;
        if (d->high_sent == 0 || (int32_t)(b->seq - d->high_sent) > 0) d->high_sent = b->seq;
        d->send_seq = b->seq + 1u;
        d->batches_sent++;
    }
}
