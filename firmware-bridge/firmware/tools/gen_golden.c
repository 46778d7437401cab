/*
 * Writes the golden frames: for every case in test/golden_cases.c, <dir>/<name>.bin (the frame exactly as on the
 * wire) and <dir>/<name>.json (description, fields, packet and frame in hex). Usage: gen_golden DIR
 */
#include <stdio.h>
#include <string.h>

#include "../src/gb_proto.h"
#include "../test/golden_cases.h"

static void hex(FILE *f, const uint8_t *p, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) fprintf(f, "%02x", p[i]);
}

int main(int argc, char **argv) {
    const golden_case_t *cases;
    int n, i;
    if (argc != 2) {
        fprintf(stderr, "usage: gen_golden DIR\n");
        return 2;
    }
    n = golden_cases(&cases);
    for (i = 0; i < n; i++) {
        static uint8_t packet[GB_MAX_PACKET], frame[GB_MAX_FRAME];
        char path[4096];
        size_t plen = gb_encode_msg(&cases[i].msg, packet, sizeof packet), flen;
        FILE *f;
        if (plen == 0) {
            fprintf(stderr, "gen_golden: case %s does not encode\n", cases[i].name);
            return 1;
        }
        flen = gb_frame_wrap(packet, plen, frame, sizeof frame);
        snprintf(path, sizeof path, "%s/%s.bin", argv[1], cases[i].name);
        f = fopen(path, "wb");
        if (!f || fwrite(frame, 1, flen, f) != flen || fclose(f) != 0) {
            perror(path);
            return 1;
        }
        snprintf(path, sizeof path, "%s/%s.json", argv[1], cases[i].name);
        f = fopen(path, "w");
        if (!f) {
            perror(path);
            return 1;
        }
        fprintf(f, "{\n  \"name\": \"%s\",\n  \"description\": \"%s\",\n  \"type\": %u,\n  \"message\": ",
                cases[i].name, cases[i].description, (unsigned)cases[i].msg.type);
        golden_write_message_json(f, &cases[i].msg);
        fputs(",\n  \"packet_hex\": \"", f);
        hex(f, packet, plen);
        fputs("\",\n  \"frame_hex\": \"", f);
        hex(f, frame, flen);
        fputs("\"\n}\n", f);
        if (fclose(f) != 0) {
            perror(path);
            return 1;
        }
        printf("%-22s packet %4zu bytes, frame %4zu bytes\n", cases[i].name, plen, flen);
    }
    return 0;
}
