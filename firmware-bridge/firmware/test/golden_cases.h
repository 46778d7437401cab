/* The golden messages: fixed field values, one per message type (and variants), shared by gen_golden and the test. */
#ifndef GOLDEN_CASES_H
#define GOLDEN_CASES_H

#include <stdio.h>

#include "../src/gb_proto.h"

typedef struct {
    const char *name;
    const char *description;
    gb_msg_t msg;
} golden_case_t;

/* Fills the cases (static storage); returns how many. */
int golden_cases(const golden_case_t **out);
/* Writes the message fields as a JSON object in the shape the TypeScript frame value type uses. */
void golden_write_message_json(FILE *f, const gb_msg_t *m);

#endif
