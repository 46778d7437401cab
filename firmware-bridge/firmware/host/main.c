/*
 * Host build of the reference firmware: the portable core (../src) on a POSIX serial device, typically one end of
 * a socat pseudo-terminal pair, with simulated channels standing in for the MCU's sensors and actuators.
 *
 *   1  furnace_temp   f32    °C     100 ms   slow sine around 1520 °C with noise
 *   2  line_pressure  f32    kPa     50 ms   101.3 kPa with a 30 s wave and noise
 *   3  photo_eye      u32    count  250 ms   items counted by the photo-eye (4 per second)
 *   4  reject_gate    state  -      100 ms   1 while a REJECT_PULSE is energising the gate, else 0
 *
 * The device survives its port vanishing (USB unplugged, PTY removed): it keeps sampling into its ring, reopens the
 * path every --reopen-ms and resumes. SIGTERM/SIGINT end it cleanly with a JSON summary on stderr.
 * Run with --help for the options.
 */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "../src/gb_device.h"

#define FW_MAJOR 1
#define FW_MINOR 0
#define FW_PATCH 0
#define RING_MAX 1024
#define TXBUF (256u * 1024u)
#define NCH 4

static volatile sig_atomic_t stop_requested = 0;
static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

/* ── options ──────────────────────────────────────────────────────────────────────────────────────────────────── */

static struct {
    const char *port;
    long baud;
    const char *device_id;
    uint32_t boot_id;
    double speed;
    double period_ms[NCH];
    int max_rate;
    long long limit;
    int ring;
    int window;
    int ack_timeout_ms;
    int heartbeat_ms;
    int batch_max;
    double batch_ms;
    int reopen_ms;
    unsigned seed;
    int events;
    int min_version, max_version;
} opt = {NULL, 115200, "glassbridge-sim", 0, 1.0, {100, 50, 250, 100}, 0, -1, 64, 8, 500, 1000, 50, 100, 50, 1, 0,
         GB_PROTOCOL_VERSION, GB_PROTOCOL_VERSION};

static void usage(FILE *f) {
    fputs("usage: glassbridge-host --port PATH [options]\n"
          "  --baud N            line speed (default 115200; ignored by pseudo-terminals)\n"
          "  --device-id ID      device id announced in HELLO (default glassbridge-sim)\n"
          "  --boot-id N         boot id (default random, never 0)\n"
          "  --speed X           divide every sampling period by X (default 1)\n"
          "  --period CH=MS      sampling period of channel CH (1-4) in ms\n"
          "  --max-rate          ignore periods: produce full batches as fast as ACKs free the ring (never drops)\n"
          "  --limit N           stop sampling after N samples (keeps delivering and resending)\n"
          "  --ring N            ring capacity in batches (1-1024, default 64)\n"
          "  --window N          batches in flight (1-255, default 8)\n"
          "  --ack-timeout-ms N  resend after this long without ACK progress (default 500)\n"
          "  --heartbeat-ms N    heartbeat period (default 1000)\n"
          "  --batch-max N       samples per batch (1-100, default 50)\n"
          "  --batch-ms X        close a batch this long after its first sample (default 100)\n"
          "  --reopen-ms N       retry period while the port is missing (default 50)\n"
          "  --seed N            noise seed (default 1)\n"
          "  --versions MIN-MAX  protocol versions to speak (default 1-1; e.g. 2-3 to play a newer device)\n"
          "  --events            print JSON event lines on stderr (link, session, command, drop, resend)\n",
          f);
}

static long num(const char *s, long lo, long hi, const char *what) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == 0 || *end != 0 || v < lo || v > hi) {
        fprintf(stderr, "glassbridge-host: %s must be an integer in [%ld, %ld], got '%s'\n", what, lo, hi, s);
        exit(2);
    }
    return v;
}

static double fnum(const char *s, double lo, const char *what) {
    char *end;
    double v = strtod(s, &end);
    if (*s == 0 || *end != 0 || !(v >= lo)) {
        fprintf(stderr, "glassbridge-host: %s must be a number >= %g, got '%s'\n", what, lo, s);
        exit(2);
    }
    return v;
}

static void parse(int argc, char **argv) {
    int i;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEEDV                                                                                                          \
    if (!v) {                                                                                                          \
        fprintf(stderr, "glassbridge-host: %s needs a value\n", a);                                                  \
        exit(2);                                                                                                       \
    }                                                                                                                  \
    i++
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--port")) {
            NEEDV;
            opt.port = v;
        } else if (!strcmp(a, "--baud")) {
            NEEDV;
            opt.baud = num(v, 50, 4000000, "--baud");
        } else if (!strcmp(a, "--device-id")) {
            NEEDV;
            opt.device_id = v;
        } else if (!strcmp(a, "--boot-id")) {
            NEEDV;
            opt.boot_id = (uint32_t)strtoul(v, NULL, 0);
        } else if (!strcmp(a, "--speed")) {
            NEEDV;
            opt.speed = fnum(v, 1e-3, "--speed");
        } else if (!strcmp(a, "--period")) {
            int ch;
            const char *eq;
            NEEDV;
            eq = strchr(v, '=');
            if (!eq) {
                fprintf(stderr, "glassbridge-host: --period wants CH=MS, got '%s'\n", v);
                exit(2);
            }
            ch = (int)strtol(v, NULL, 10);
            if (ch < 1 || ch > NCH) {
                fprintf(stderr, "glassbridge-host: --period channel must be 1-%d\n", NCH);
                exit(2);
            }
            opt.period_ms[ch - 1] = fnum(eq + 1, 0.01, "--period ms");
        } else if (!strcmp(a, "--max-rate")) {
            opt.max_rate = 1;
        } else if (!strcmp(a, "--limit")) {
            NEEDV;
            opt.limit = num(v, 0, 2000000000L, "--limit");
        } else if (!strcmp(a, "--ring")) {
            NEEDV;
            opt.ring = (int)num(v, 1, RING_MAX, "--ring");
        } else if (!strcmp(a, "--window")) {
            NEEDV;
            opt.window = (int)num(v, 1, 255, "--window");
        } else if (!strcmp(a, "--ack-timeout-ms")) {
            NEEDV;
            opt.ack_timeout_ms = (int)num(v, 10, 60000, "--ack-timeout-ms");
        } else if (!strcmp(a, "--heartbeat-ms")) {
            NEEDV;
            opt.heartbeat_ms = (int)num(v, 10, 60000, "--heartbeat-ms");
        } else if (!strcmp(a, "--batch-max")) {
            NEEDV;
            opt.batch_max = (int)num(v, 1, GB_MAX_BATCH, "--batch-max");
        } else if (!strcmp(a, "--batch-ms")) {
            NEEDV;
            opt.batch_ms = fnum(v, 0, "--batch-ms");
        } else if (!strcmp(a, "--reopen-ms")) {
            NEEDV;
            opt.reopen_ms = (int)num(v, 1, 60000, "--reopen-ms");
        } else if (!strcmp(a, "--seed")) {
            NEEDV;
            opt.seed = (unsigned)num(v, 0, 2147483647L, "--seed");
        } else if (!strcmp(a, "--versions")) {
            char *end;
            long lo, hi;
            NEEDV;
            lo = strtol(v, &end, 10);
            hi = *end == '-' ? strtol(end + 1, &end, 10) : -1;
            if (*end != 0 || lo < 1 || hi < lo || hi > 255) {
                fprintf(stderr, "glassbridge-host: --versions wants MIN-MAX within 1-255, got '%s'\n", v);
                exit(2);
            }
            opt.min_version = (int)lo;
            opt.max_version = (int)hi;
        } else if (!strcmp(a, "--events")) {
            opt.events = 1;
        } else {
            fprintf(stderr, "glassbridge-host: unknown option '%s'\n", a);
            usage(stderr);
            exit(2);
        }
#undef NEEDV
    }
    if (!opt.port) {
        usage(stderr);
        exit(2);
    }
}

/* ── time, noise ──────────────────────────────────────────────────────────────────────────────────────────────── */

static struct timespec t0;
static uint64_t now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)(t.tv_sec - t0.tv_sec) * 1000000u + (uint64_t)((t.tv_nsec - t0.tv_nsec) / 1000);
}

static uint32_t rng_state = 1;
static double noise(void) { /* xorshift32 → [-1, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return (double)rng_state / 2147483648.0 - 1.0;
}

static void emit(const char *fmt, ...) {
    va_list ap;
    if (!opt.events) return;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

/* ── the platform: serial port with a transmit buffer ────────────────────────────────────────────────────────── */

typedef struct {
    int fd;
    uint8_t buf[TXBUF];
    size_t head, len; /* circular */
    uint64_t gate_until_us;
    uint8_t tower[4];
} plat_t;

static plat_t P = {-1, {0}, 0, 0, 0, {0}};

static size_t pf_tx_space(void *ctx) {
    plat_t *p = ctx;
    return p->fd < 0 ? 0 : TXBUF - p->len;
}

static void pf_tx(void *ctx, const uint8_t *data, size_t n) {
    plat_t *p = ctx;
    size_t i;
    for (i = 0; i < n; i++) p->buf[(p->head + p->len + i) % TXBUF] = data[i];
    p->len += n;
}

static const char *lamp(uint8_t v) { return v == 0 ? "off" : v == 1 ? "on" : "blink"; }

static gb_channel_info_t channels[NCH];

static uint8_t pf_command(void *ctx, const gb_command_t *c, uint64_t now) {
    plat_t *p = ctx;
    int i;
    switch (c->command) {
    case GB_CMD_REJECT_PULSE:
        if (now < p->gate_until_us) return GB_E_BUSY;
        p->gate_until_us = now + (uint64_t)c->args.reject_pulse.duration_ms * 1000u;
        emit("{\"event\":\"command\",\"command\":\"reject_pulse\",\"duration_ms\":%u}", c->args.reject_pulse.duration_ms);
        return GB_E_OK;
    case GB_CMD_LIGHT_TOWER:
        p->tower[0] = c->args.light_tower.red;
        p->tower[1] = c->args.light_tower.amber;
        p->tower[2] = c->args.light_tower.green;
        p->tower[3] = c->args.light_tower.buzzer;
        emit("{\"event\":\"command\",\"command\":\"light_tower\",\"red\":\"%s\",\"amber\":\"%s\",\"green\":\"%s\","
             "\"buzzer\":\"%s\"}",
             lamp(p->tower[0]), lamp(p->tower[1]), lamp(p->tower[2]), lamp(p->tower[3]));
        return GB_E_OK;
    case GB_CMD_SET_PERIOD:
        for (i = 0; i < NCH; i++)
            if (channels[i].id == c->args.set_period.channel) {
                channels[i].period_us = c->args.set_period.period_us;
                opt.period_ms[i] = c->args.set_period.period_us / 1000.0 * opt.speed;
            }
        emit("{\"event\":\"command\",\"command\":\"set_period\",\"channel\":%u,\"period_us\":%u}",
             c->args.set_period.channel, (unsigned)c->args.set_period.period_us);
        return GB_E_OK;
    default: return GB_E_UNKNOWN_COMMAND;
    }
}

static void pf_event(void *ctx, const char *what, uint32_t a, uint32_t b) {
    (void)ctx;
    emit("{\"event\":\"%s\",\"a\":%u,\"b\":%u}", what, (unsigned)a, (unsigned)b);
}

static speed_t baud_const(long b) {
    switch (b) {
    case 9600: return B9600;
    case 19200: return B19200;
    case 38400: return B38400;
    case 57600: return B57600;
    case 230400: return B230400;
    case 460800: return B460800;
    case 921600: return B921600;
    default: return B115200;
    }
}

static int port_open(void) {
    struct termios tio;
    int fd = open(opt.port, O_RDWR | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) return -1;
    if (tcgetattr(fd, &tio) != 0) {
        close(fd);
        return -1;
    }
    cfmakeraw(&tio);
    tio.c_cflag |= CLOCAL | CREAD;
    cfsetispeed(&tio, baud_const(opt.baud));
    cfsetospeed(&tio, baud_const(opt.baud));
    tio.c_cc[VMIN] = 0;
    tio.c_cc[VTIME] = 0;
    if (tcsetattr(fd, TCSANOW, &tio) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void port_close(gb_device_t *d) {
    if (P.fd >= 0) close(P.fd);
    P.fd = -1;
    P.head = P.len = 0; /* bytes not yet written are lost with the link, like a UART FIFO on unplug */
    gb_device_link_down(d);
    emit("{\"event\":\"link_down\"}");
}

/* Writes what the line takes now; returns -1 on hangup. */
static int flush_tx(void) {
    while (P.len > 0) {
        size_t chunk = P.len;
        ssize_t n;
        if (P.head + chunk > TXBUF) chunk = TXBUF - P.head;
        n = write(P.fd, P.buf + P.head, chunk);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) return 0;
            return -1;
        }
        P.head = (P.head + (size_t)n) % TXBUF;
        P.len -= (size_t)n;
    }
    return 0;
}

/* ── simulation ───────────────────────────────────────────────────────────────────────────────────────────────── */

static uint32_t channel_value(int i, uint64_t t, uint8_t *quality) {
    double ts = (double)t / 1e6;
    *quality = GB_Q_GOOD;
    switch (i) {
    case 0: return gb_f32_bits((float)(1520.0 + 3.0 * sin(2 * M_PI * ts / 120.0) + 0.2 * noise()));
    case 1: return gb_f32_bits((float)(101.3 + 0.5 * sin(2 * M_PI * ts / 30.0) + 0.05 * noise()));
    case 2: return (uint32_t)(ts * 4.0);
    default: return t < P.gate_until_us ? 1u : 0u;
    }
}

int main(int argc, char **argv) {
    static gb_batch_t ring[RING_MAX];
    static gb_device_t dev;
    gb_config_t cfg;
    gb_platform_t pf;
    uint64_t next_due[NCH];
    uint64_t next_open_try = 0;
    long long produced = 0;
    struct sigaction sa;
    int i, rr = 0;

    parse(argc, argv);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rng_state = opt.seed ? opt.seed : 1;
    if (opt.boot_id == 0) {
        int fd = open("/dev/urandom", O_RDONLY);
        if (fd < 0 || read(fd, &opt.boot_id, sizeof opt.boot_id) != (ssize_t)sizeof opt.boot_id)
            opt.boot_id = (uint32_t)time(NULL) ^ ((uint32_t)getpid() << 16);
        if (fd >= 0) close(fd);
        if (opt.boot_id == 0) opt.boot_id = 1;
    }

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    {
        static const char *names[NCH] = {"furnace_temp", "line_pressure", "photo_eye", "reject_gate"};
        static const char *units[NCH] = {"\xC2\xB0" "C", "kPa", "count", ""};
        static const uint8_t types[NCH] = {GB_V_F32, GB_V_F32, GB_V_U32, GB_V_STATE};
        for (i = 0; i < NCH; i++) {
            memset(&channels[i], 0, sizeof channels[i]);
            channels[i].id = (uint8_t)(i + 1);
            channels[i].value_type = types[i];
            channels[i].period_us = (uint32_t)(opt.period_ms[i] * 1000.0 / opt.speed);
            strcpy(channels[i].name, names[i]);
            strcpy(channels[i].unit, units[i]);
            next_due[i] = 0;
        }
    }

    memset(&cfg, 0, sizeof cfg);
    cfg.device_id = opt.device_id;
    cfg.fw_major = FW_MAJOR;
    cfg.fw_minor = FW_MINOR;
    cfg.fw_patch = FW_PATCH;
    cfg.boot_id = opt.boot_id;
    cfg.min_version = (uint8_t)opt.min_version;
    cfg.max_version = (uint8_t)opt.max_version;
    cfg.capabilities = GB_CAP_SAMPLES | GB_CAP_TIME_SYNC | GB_CAP_REJECT_PULSE | GB_CAP_LIGHT_TOWER |
                       GB_CAP_SET_PERIOD | GB_CAP_RESEND;
    cfg.channels = channels;
    cfg.channel_count = NCH;
    cfg.window = (uint8_t)opt.window;
    cfg.ack_timeout_ms = (uint16_t)opt.ack_timeout_ms;
    cfg.heartbeat_ms = (uint16_t)opt.heartbeat_ms;
    cfg.batch_max = (uint8_t)opt.batch_max;
    cfg.batch_max_age_us = (uint32_t)(opt.batch_ms * 1000.0);
    pf.ctx = &P;
    pf.tx_space = pf_tx_space;
    pf.tx = pf_tx;
    pf.command = pf_command;
    pf.event = pf_event;
    gb_device_init(&dev, &cfg, &pf, ring, (uint16_t)opt.ring);
    emit("{\"event\":\"boot\",\"boot_id\":%u,\"device_id\":\"%s\"}", (unsigned)opt.boot_id, opt.device_id);

    while (!stop_requested) {
        uint64_t now = now_us();
        struct pollfd pfd;
        int timeout_ms = 1, rc;

        if (P.fd < 0 && now >= next_open_try) {
            P.fd = port_open();
            if (P.fd >= 0) {
                /* Discard whatever a previous peer left in the line buffers. */
                tcflush(P.fd, TCIOFLUSH);
                gb_device_link_up(&dev, now);
            } else {
                next_open_try = now + (uint64_t)opt.reopen_ms * 1000u;
            }
        }

        /* Sampling. */
        if (opt.max_rate) {
            int burst = 0;
            while (burst < 4 && gb_device_ring_free(&dev) >= 2 && (opt.limit < 0 || produced < opt.limit)) {
                int k;
                for (k = 0; k < opt.batch_max && (opt.limit < 0 || produced < opt.limit); k++) {
                    uint8_t q;
                    uint32_t raw = channel_value(rr, now, &q);
                    gb_device_sample(&dev, channels[rr].id, raw, q, now);
                    rr = (rr + 1) % NCH;
                    produced++;
                }
                burst++;
            }
        } else {
            for (i = 0; i < NCH; i++) {
                uint64_t period = channels[i].period_us ? channels[i].period_us : 1000u;
                int catchup = 0;
                while (next_due[i] <= now && catchup < 1000 && (opt.limit < 0 || produced < opt.limit)) {
                    uint8_t q;
                    uint32_t raw = channel_value(i, next_due[i], &q);
                    gb_device_sample(&dev, channels[i].id, raw, q, next_due[i]);
                    next_due[i] += period;
                    produced++;
                    catchup++;
                }
                if (catchup == 1000) next_due[i] = now + period; /* fell far behind (suspended): skip ahead */
            }
        }
        if (opt.limit >= 0 && produced >= opt.limit) gb_device_flush(&dev);

        gb_device_poll(&dev, now);

        if (P.fd >= 0) {
            if (flush_tx() < 0) {
                port_close(&dev);
                continue;
            }
            pfd.fd = P.fd;
            pfd.events = POLLIN | (P.len ? POLLOUT : 0);
            pfd.revents = 0;
            if (opt.max_rate && gb_device_ring_free(&dev) >= 2 && (opt.limit < 0 || produced < opt.limit))
                timeout_ms = 0;
            rc = poll(&pfd, 1, timeout_ms);
            if (rc < 0 && errno != EINTR) break;
            if (rc > 0 && (pfd.revents & POLLIN)) {
                uint8_t in[4096];
                ssize_t n = read(P.fd, in, sizeof in);
                if (n > 0)
                    gb_device_rx(&dev, in, (size_t)n, now_us());
                else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                    port_close(&dev);
                    continue;
                }
            }
            if (rc > 0 && (pfd.revents & (POLLHUP | POLLERR | POLLNVAL)) && !(pfd.revents & POLLIN)) {
                port_close(&dev);
                continue;
            }
        } else {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }

    {
        gb_heartbeat_t hb;
        gb_device_heartbeat_info(&dev, now_us(), &hb);
        fprintf(stderr,
                "{\"event\":\"exit\",\"boot_id\":%u,\"produced_samples\":%lld,\"last_seq\":%u,\"acked_seq\":%u,"
                "\"ring_used\":%u,\"dropped_batches\":%u,\"dropped_samples\":%u,\"batches_sent\":%u,\"resends\":%u,"
                "\"rx_bad_crc\":%u,\"rx_errors\":%u}\n",
                (unsigned)opt.boot_id, produced, (unsigned)hb.last_seq, (unsigned)hb.acked_seq,
                (unsigned)hb.ring_used, (unsigned)hb.dropped_batches, (unsigned)hb.dropped_samples,
                (unsigned)dev.batches_sent, (unsigned)dev.resends, (unsigned)hb.rx_bad_crc, (unsigned)hb.rx_errors);
    }
    if (P.fd >= 0) close(P.fd);
    return 0;
}
