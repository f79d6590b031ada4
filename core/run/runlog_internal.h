/* Shared by the writer and the reader of metrics.jsonl (not part of the run API). */
#ifndef GRAFT_CORE_RUN_RUNLOG_INTERNAL_H
#define GRAFT_CORE_RUN_RUNLOG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "graft/status.h"

typedef enum { GR_REC_STEP, GR_REC_EVAL, GR_REC_EVENT } gr_record_kind;

typedef struct gr_json_record {
    json_t *obj; /* owned by the caller on success, NULL on failure */
    gr_record_kind kind;
    int64_t step;
    int has_flops_total;
    double flops_total;
} gr_json_record;

/* Parses one line (without its newline) and checks the fields every record has: "type" and a
 * non-negative integer "step". Errors name path:line. */
gr_status gr_json_parse_record(const char *path, long line, const char *text, size_t len, gr_json_record *rec);

/* A finite number as a JSON real, anything else as null. */
json_t *gr_json_number(double v);
/* json_dumps with `flags` and the fewest digits (15..17) that round-trip every real. */
char *gr_json_dump_exact(const json_t *obj, size_t flags);

#endif
