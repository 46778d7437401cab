#include "golden_cases.h"

#include <string.h>

#define NCASES 15
static golden_case_t cases[NCASES];

static void channel(gb_channel_info_t *c, uint8_t id, uint8_t vt, uint32_t period_us, const char *name,
                    const char *unit) {
    memset(c, 0, sizeof *c);
    c->id = id;
    c->value_type = vt;
    c->period_us = period_us;
    strcpy(c->name, name);
    strcpy(c->unit, unit);
}

static void hello(gb_hello_t *h, uint16_t req_id) {
    memset(h, 0, sizeof *h);
    h->req_id = req_id;
    h->version = 1;
    h->min_version = 1;
    h->max_version = 1;
    h->fw_major = 1;
    h->fw_minor = 2;
    h->fw_patch = 3;
    h->boot_id = 0xC0FFEE01u;
    h->device_us = req_id ? 5000123u : 1042u;
    h->capabilities = GB_CAP_SAMPLES | GB_CAP_TIME_SYNC | GB_CAP_REJECT_PULSE | GB_CAP_LIGHT_TOWER |
                      GB_CAP_SET_PERIOD | GB_CAP_RESEND;
    h->max_packet = GB_MAX_PACKET;
    h->ring_capacity = 64;
    h->window = 8;
    h->ack_timeout_ms = 500;
    h->heartbeat_ms = 1000;
    strcpy(h->device_id, "lehr-mcu-07");
    h->channel_count = 4;
    channel(&h->channels[0], 1, GB_V_F32, 100000, "furnace_temp", "\xC2\xB0" "C");
    channel(&h->channels[1], 2, GB_V_F32, 50000, "line_pressure", "kPa");
    channel(&h->channels[2], 3, GB_V_U32, 250000, "photo_eye", "count");
    channel(&h->channels[3], 4, GB_V_STATE, 0, "reject_gate", "");
}

int golden_cases(const golden_case_t **out) {
    int n = 0, i;
    golden_case_t *c;
    memset(cases, 0, sizeof cases);

    c = &cases[n++];
    c->name = "hello";
    c->description = "HELLO answering HOST_HELLO req_id 1: firmware 1.2.3, 4 channels (one unit in UTF-8, one empty)";
    c->msg.type = GB_T_HELLO;
    hello(&c->msg.u.hello, 1);

    c = &cases[n++];
    c->name = "hello_announce";
    c->description = "unsolicited HELLO (req_id 0) sent at boot or when the port opens";
    c->msg.type = GB_T_HELLO;
    hello(&c->msg.u.hello, 0);

    c = &cases[n++];
    c->name = "samples";
    c->description = "SAMPLES batch 7 (oldest held 5), resent, three samples: f32 1520.25, u32 42, state 1 (uncertain)";
    c->msg.type = GB_T_SAMPLES;
    {
        gb_samples_t *s = &c->msg.u.samples;
        s->seq = 7;
        s->oldest = 5;
        s->first_sample = 300;
        s->base_us = 12345678u;
        s->flags = GB_FLAG_RESENT;
        s->count = 3;
        s->samples[0].channel = 1;
        s->samples[0].quality = GB_Q_GOOD;
        s->samples[0].offset_us = 0;
        s->samples[0].raw = gb_f32_bits(1520.25f);
        s->samples[1].channel = 3;
        s->samples[1].quality = GB_Q_GOOD;
        s->samples[1].offset_us = 250;
        s->samples[1].raw = 42;
        s->samples[2].channel = 4;
        s->samples[2].quality = GB_Q_UNCERTAIN;
        s->samples[2].offset_us = 100000;
        s->samples[2].raw = 1;
    }

    c = &cases[n++];
    c->name = "samples_full";
    c->description = "SAMPLES with the most samples a batch may hold (100): a 1023-byte packet, COBS runs over 254";
    c->msg.type = GB_T_SAMPLES;
    {
        gb_samples_t *s = &c->msg.u.samples;
        s->seq = 0xFFFFFFFFu; /* the last sequence number before the wrap */
        s->oldest = 0xFFFFFFF0u;
        s->first_sample = 0xFFFFFFC0u;
        s->base_us = 0x0000012345678ABCull;
        s->flags = 0;
        s->count = GB_MAX_BATCH;
        for (i = 0; i < (int)GB_MAX_BATCH; i++) {
            s->samples[i].channel = (uint8_t)(1 + i % 4);
            s->samples[i].quality = (uint8_t)(i % 3);
            s->samples[i].offset_us = (uint32_t)i * 1001u + 0x01010101u;
            s->samples[i].raw = 0x80808080u ^ (uint32_t)(i * 0x01020304u);
        }
    }

    c = &cases[n++];
    c->name = "heartbeat";
    c->description = "HEARTBEAT after 1 h: batch 3600 produced, 3598 acknowledged, one batch dropped";
    c->msg.type = GB_T_HEARTBEAT;
    {
        gb_heartbeat_t *h = &c->msg.u.heartbeat;
        h->uptime_us = 3600000000ull;
        h->last_seq = 3600;
        h->acked_seq = 3598;
        h->samples_produced = 158400;
        h->ring_used = 2;
        h->dropped_batches = 1;
        h->dropped_samples = 44;
        h->rx_bad_crc = 3;
        h->rx_errors = 1;
    }

    c = &cases[n++];
    c->name = "cmd_ack";
    c->description = "CMD_ACK of a LIGHT_TOWER command (req_id 0x1234), done";
    c->msg.type = GB_T_CMD_ACK;
    c->msg.u.cmd_ack.req_id = 0x1234;
    c->msg.u.cmd_ack.command = GB_CMD_LIGHT_TOWER;
    c->msg.u.cmd_ack.status = GB_E_OK;
    c->msg.u.cmd_ack.device_us = 7200000001ull;

    c = &cases[n++];
    c->name = "cmd_ack_busy";
    c->description = "CMD_ACK of a REJECT_PULSE refused with BUSY (the gate is still energised)";
    c->msg.type = GB_T_CMD_ACK;
    c->msg.u.cmd_ack.req_id = 0xFFFF;
    c->msg.u.cmd_ack.command = GB_CMD_REJECT_PULSE;
    c->msg.u.cmd_ack.status = GB_E_BUSY;
    c->msg.u.cmd_ack.device_us = 99;

    c = &cases[n++];
    c->name = "time_sync_reply";
    c->description = "TIME_SYNC_REPLY echoing host time 2026-01-01T00:00:00.250Z at device time 61.5 s";
    c->msg.type = GB_T_TIME_SYNC_REPLY;
    c->msg.u.time_sync_reply.req_id = 9;
    c->msg.u.time_sync_reply.host_unix_ms = 1767225600250ull;
    c->msg.u.time_sync_reply.device_us = 61500000ull;

    c = &cases[n++];
    c->name = "error_version";
    c->description = "ERROR VERSION answering HOST_HELLO req_id 2: the device speaks versions 2-3 only";
    c->msg.type = GB_T_ERROR;
    c->msg.u.error.req_id = 2;
    c->msg.u.error.code = GB_E_VERSION;
    c->msg.u.error.ref_type = GB_T_HOST_HELLO;
    c->msg.u.error.detail = 2 | (3 << 8);

    c = &cases[n++];
    c->name = "host_hello";
    c->description = "HOST_HELLO req_id 1, versions 1-1, host time 2026-01-01T00:00:00Z";
    c->msg.type = GB_T_HOST_HELLO;
    c->msg.u.host_hello.req_id = 1;
    c->msg.u.host_hello.min_version = 1;
    c->msg.u.host_hello.max_version = 1;
    c->msg.u.host_hello.host_unix_ms = 1767225600000ull;

    c = &cases[n++];
    c->name = "ack";
    c->description = "ACK: every batch up to 7 is durable";
    c->msg.type = GB_T_ACK;
    c->msg.u.ack.seq = 7;

    c = &cases[n++];
    c->name = "time_sync";
    c->description = "TIME_SYNC req_id 9 at host time 2026-01-01T00:00:00.250Z";
    c->msg.type = GB_T_TIME_SYNC;
    c->msg.u.time_sync.req_id = 9;
    c->msg.u.time_sync.host_unix_ms = 1767225600250ull;

    c = &cases[n++];
    c->name = "command_reject_pulse";
    c->description = "COMMAND REJECT_PULSE for 150 ms, req_id 0x0100";
    c->msg.type = GB_T_COMMAND;
    c->msg.u.command.req_id = 0x0100;
    c->msg.u.command.command = GB_CMD_REJECT_PULSE;
    c->msg.u.command.args.reject_pulse.duration_ms = 150;

    c = &cases[n++];
    c->name = "command_light_tower";
    c->description = "COMMAND LIGHT_TOWER red on, amber off, green blink, buzzer off, req_id 0x1234";
    c->msg.type = GB_T_COMMAND;
    c->msg.u.command.req_id = 0x1234;
    c->msg.u.command.command = GB_CMD_LIGHT_TOWER;
    c->msg.u.command.args.light_tower.red = GB_LAMP_ON;
    c->msg.u.command.args.light_tower.amber = GB_LAMP_OFF;
    c->msg.u.command.args.light_tower.green = GB_LAMP_BLINK;
    c->msg.u.command.args.light_tower.buzzer = GB_LAMP_OFF;

    c = &cases[n++];
    c->name = "command_set_period";
    c->description = "COMMAND SET_PERIOD channel 2 to 20 ms, req_id 3";
    c->msg.type = GB_T_COMMAND;
    c->msg.u.command.req_id = 3;
    c->msg.u.command.command = GB_CMD_SET_PERIOD;
    c->msg.u.command.args.set_period.channel = 2;
    c->msg.u.command.args.set_period.period_us = 20000;

    *out = cases;
    return n;
}

static void jstr(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

#define U(x) ((unsigned long long)(x))

void golden_write_message_json(FILE *f, const gb_msg_t *m) {
    int i;
    switch (m->type) {
    case GB_T_HELLO: {
        const gb_hello_t *h = &m->u.hello;
        fprintf(f,
                "{\"type\": \"hello\", \"req_id\": %llu, \"version\": %llu, \"min_version\": %llu, \"max_version\": "
                "%llu, \"fw_major\": %llu, \"fw_minor\": %llu, \"fw_patch\": %llu, \"boot_id\": %llu, \"device_us\": "
                "%llu, \"capabilities\": %llu, \"max_packet\": %llu, \"ring_capacity\": %llu, \"window\": %llu, "
                "\"ack_timeout_ms\": %llu, \"heartbeat_ms\": %llu, \"device_id\": ",
                U(h->req_id), U(h->version), U(h->min_version), U(h->max_version), U(h->fw_major), U(h->fw_minor),
                U(h->fw_patch), U(h->boot_id), U(h->device_us), U(h->capabilities), U(h->max_packet),
                U(h->ring_capacity), U(h->window), U(h->ack_timeout_ms), U(h->heartbeat_ms));
        jstr(f, h->device_id);
        fputs(", \"channels\": [", f);
        for (i = 0; i < h->channel_count; i++) {
            const gb_channel_info_t *c = &h->channels[i];
            fprintf(f, "%s{\"id\": %llu, \"value_type\": %llu, \"period_us\": %llu, \"name\": ", i ? ", " : "",
                    U(c->id), U(c->value_type), U(c->period_us));
            jstr(f, c->name);
            fputs(", \"unit\": ", f);
            jstr(f, c->unit);
            fputc('}', f);
        }
        fputs("]}", f);
        return;
    }
    case GB_T_SAMPLES: {
        const gb_samples_t *s = &m->u.samples;
        fprintf(f,
                "{\"type\": \"samples\", \"seq\": %llu, \"oldest\": %llu, \"first_sample\": %llu, \"base_us\": %llu, "
                "\"flags\": %llu, \"samples\": [",
                U(s->seq), U(s->oldest), U(s->first_sample), U(s->base_us), U(s->flags));
        for (i = 0; i < s->count; i++)
            fprintf(f, "%s{\"channel\": %llu, \"quality\": %llu, \"offset_us\": %llu, \"raw\": %llu}", i ? ", " : "",
                    U(s->samples[i].channel), U(s->samples[i].quality), U(s->samples[i].offset_us),
                    U(s->samples[i].raw));
        fputs("]}", f);
        return;
    }
    case GB_T_HEARTBEAT: {
        const gb_heartbeat_t *h = &m->u.heartbeat;
        fprintf(f,
                "{\"type\": \"heartbeat\", \"uptime_us\": %llu, \"last_seq\": %llu, \"acked_seq\": %llu, "
                "\"samples_produced\": %llu, \"ring_used\": %llu, \"dropped_batches\": %llu, \"dropped_samples\": "
                "%llu, \"rx_bad_crc\": %llu, \"rx_errors\": %llu}",
                U(h->uptime_us), U(h->last_seq), U(h->acked_seq), U(h->samples_produced), U(h->ring_used),
                U(h->dropped_batches), U(h->dropped_samples), U(h->rx_bad_crc), U(h->rx_errors));
        return;
    }
    case GB_T_CMD_ACK:
        fprintf(f, "{\"type\": \"cmd_ack\", \"req_id\": %llu, \"command\": %llu, \"status\": %llu, \"device_us\": %llu}",
                U(m->u.cmd_ack.req_id), U(m->u.cmd_ack.command), U(m->u.cmd_ack.status), U(m->u.cmd_ack.device_us));
        return;
    case GB_T_TIME_SYNC_REPLY:
        fprintf(f, "{\"type\": \"time_sync_reply\", \"req_id\": %llu, \"host_unix_ms\": %llu, \"device_us\": %llu}",
                U(m->u.time_sync_reply.req_id), U(m->u.time_sync_reply.host_unix_ms),
                U(m->u.time_sync_reply.device_us));
        return;
    case GB_T_ERROR:
        fprintf(f, "{\"type\": \"error\", \"req_id\": %llu, \"code\": %llu, \"ref_type\": %llu, \"detail\": %llu}",
                U(m->u.error.req_id), U(m->u.error.code), U(m->u.error.ref_type), U(m->u.error.detail));
        return;
    case GB_T_HOST_HELLO:
        fprintf(f,
                "{\"type\": \"host_hello\", \"req_id\": %llu, \"min_version\": %llu, \"max_version\": %llu, "
                "\"host_unix_ms\": %llu}",
                U(m->u.host_hello.req_id), U(m->u.host_hello.min_version), U(m->u.host_hello.max_version),
                U(m->u.host_hello.host_unix_ms));
        return;
    case GB_T_ACK: fprintf(f, "{\"type\": \"ack\", \"seq\": %llu}", U(m->u.ack.seq)); return;
    case GB_T_TIME_SYNC:
        fprintf(f, "{\"type\": \"time_sync\", \"req_id\": %llu, \"host_unix_ms\": %llu}", U(m->u.time_sync.req_id),
                U(m->u.time_sync.host_unix_ms));
        return;
    case GB_T_COMMAND: {
        const gb_command_t *c = &m->u.command;
        fprintf(f, "{\"type\": \"command\", \"req_id\": %llu, \"command\": %llu", U(c->req_id), U(c->command));
        if (c->command == GB_CMD_REJECT_PULSE)
            fprintf(f, ", \"duration_ms\": %llu", U(c->args.reject_pulse.duration_ms));
        else if (c->command == GB_CMD_LIGHT_TOWER)
            fprintf(f, ", \"red\": %llu, \"amber\": %llu, \"green\": %llu, \"buzzer\": %llu",
                    U(c->args.light_tower.red), U(c->args.light_tower.amber), U(c->args.light_tower.green),
                    U(c->args.light_tower.buzzer));
        else if (c->command == GB_CMD_SET_PERIOD)
            fprintf(f, ", \"channel\": %llu, \"period_us\": %llu", U(c->args.set_period.channel),
                    U(c->args.set_period.period_us));
        fputc('}', f);
        return;
    }
    default: fputs("null", f); return;
    }
}
