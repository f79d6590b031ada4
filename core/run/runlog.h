/* Run directories and training logs.
 *
 * A run lives in one directory (see docs/runs.md):
 *
 *   RUN_DIR/config.cfg      resolved configuration (written by the trainer, gr_config_write)
 *   RUN_DIR/metrics.jsonl   one JSON object per line: step, eval and event records
 *   RUN_DIR/checkpoints/    checkpoints (written by the trainer)
 *   RUN_DIR/report.json     summary: final and best metrics, totals, timings
 *   RUN_DIR/plots/          curves drawn by `graft plot` / gr_plot_runs
 *
 * The writer appends each record with one write(2) of a complete line, so a SIGKILL loses at
 * most the line being written; gr_runlog_sync (called at checkpoints) makes the lines durable.
 * On resume, gr_runlog_truncate_after(step of the checkpoint) cuts the log back so the curves of
 * a resumed run equal those of an uninterrupted one, and restores the cumulative FLOP count.
 *
 * The reader parses metrics.jsonl into rows and series (for plots, speed-up accounting and
 * tests). It ignores a torn last line with a warning and is strict otherwise: a malformed line
 * is an error naming file:line. */
#ifndef GRAFT_CORE_RUN_RUNLOG_H
#define GRAFT_CORE_RUN_RUNLOG_H

#include <stddef.h>
#include <stdint.h>

#include "graft/status.h"

/* Names inside a run directory. */
#define GR_RUN_CONFIG "config.cfg"
#define GR_RUN_METRICS "metrics.jsonl"
#define GR_RUN_CHECKPOINTS "checkpoints"
#define GR_RUN_REPORT "report.json"
#define GR_RUN_PLOTS "plots"

/* ---- writing ---------------------------------------------------------------------------- */

typedef struct gr_runlog gr_runlog;

typedef enum gr_run_mode {
    GR_RUN_NEW = 0,   /* create RUN_DIR (and parents); refuse if it already holds a run */
    GR_RUN_RESUME = 1, /* RUN_DIR must hold a run; a torn last line of metrics.jsonl is cut */
    GR_RUN_FOLLOW = 2  /* a data-parallel rank other than 0 (docs/distributed.md): writes
                          nothing, anywhere; records only advance the in-memory totals, and
                          truncate_after reads rank 0's log (read-only) to restore them */
} gr_run_mode;

/* FLOPs of one optimizer step (all micro-batches of it), split as the cost model sees them:
 * forward through frozen and trainable modules, backward to inputs (activation gradients,
 * also through frozen modules that sit below trainable ones) and to parameters. */
typedef struct gr_step_flops {
    double fwd_frozen, fwd_trainable, bwd_input, bwd_param;
} gr_step_flops;

/* One optimizer step. Non-finite numbers are written as null and read back as NaN. */
typedef struct gr_step_record {
    int64_t step;        /* optimizer steps completed, counting this one (first step: 1) */
    double epoch;        /* epochs completed, fractional: 0.25 = a quarter into the first */
    const char *stage;   /* stage name ("tas", "pretrain", ...); NULL or "" = omitted */
    double loss, lr, grad_norm;
    double tokens_per_s, examples_per_s;
    gr_step_flops flops; /* of this step; the log keeps the cumulative total */
} gr_step_record;

typedef struct gr_metric {
    const char *name; /* "CIDEr", "Bleu_4", "vqa_acc", "loss", ... */
    double value;
} gr_metric;

/* Opens RUN_DIR: GR_RUN_NEW creates it with checkpoints/ and plots/ and an empty
 * metrics.jsonl; it fails, naming the directory, if RUN_DIR already holds any of the run's
 * files (an empty or unrelated directory is fine). GR_RUN_RESUME opens an existing run for
 * appending; call gr_runlog_truncate_after with the checkpoint's step before logging. */
gr_status gr_runlog_open(const char *run_dir, gr_run_mode mode, gr_runlog **out);
/* Closes (with a final fsync) and frees; NULL is fine. */
gr_status gr_runlog_close(gr_runlog *log);

const char *gr_runlog_dir(const gr_runlog *log);
/* RUN_DIR/name (one of the GR_RUN_* names) into a malloc'd string; NULL when out of memory. */
char *gr_runlog_path(const gr_runlog *log, const char *name);

/* Appends a step record; adds its FLOPs to the cumulative total it also writes. */
gr_status gr_runlog_step(gr_runlog *log, const gr_step_record *rec);
/* Appends an evaluation on `split` ("val", "test", ...) after `step` steps, at `epoch`,
 * stamped with the cumulative FLOPs so far. Metric names must be unique and non-empty. */
gr_status gr_runlog_eval(gr_runlog *log, const char *split, int64_t step, double epoch,
                         const gr_metric *metrics, int count);
/* Appends a free-form event: `event` is a short name ("stage_start", "stage_end",
 * "skip_nonfinite", "resume", "stop"), the message printf-style (may be NULL). */
gr_status gr_runlog_event(gr_runlog *log, int64_t step, double epoch, const char *event,
                          const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* fsync of metrics.jsonl: call when a checkpoint is written, so the log is at least as durable
 * as the checkpoint it will be truncated back to. */
gr_status gr_runlog_sync(gr_runlog *log);
/* Drops every record after step `step` (records are in step order; a record at `step` itself
 * stays, so checkpoint after the evaluation of that step) and restores the FLOP total and
 * last step from what remains. A log that ends before `step` is an error: the checkpoint is
 * newer than its log. */
gr_status gr_runlog_truncate_after(gr_runlog *log, int64_t step);

/* Cumulative FLOPs and last logged step so far (restored on resume). */
double gr_runlog_flops_total(const gr_runlog *log);
int64_t gr_runlog_last_step(const gr_runlog *log);

/* ---- reading ---------------------------------------------------------------------------- */

typedef struct gr_step_row {
    int64_t step;
    double epoch;
    int stage;           /* index into gr_run_data.stages, -1 when the record had none */
    double loss, lr, grad_norm, tokens_per_s, examples_per_s;
    gr_step_flops flops;
    double flops_total;
    double time;         /* wall clock, seconds since 1970, when written */
} gr_step_row;

/* One metric on one split, in log order: x in steps, epochs and cumulative FLOPs. */
typedef struct gr_series {
    char *split;
    char *metric;
    size_t count;
    int64_t *step;
    double *epoch, *flops, *value;
} gr_series;

typedef struct gr_event_row {
    int64_t step;
    double epoch;
    char *event;
    char *message; /* "" when none */
} gr_event_row;

typedef struct gr_run_data {
    char *path;            /* the metrics.jsonl read */
    size_t step_count;
    gr_step_row *steps;
    size_t stage_count;
    char **stages;
    size_t series_count;   /* eval series, in order of first appearance */
    gr_series *series;
    size_t event_count;
    gr_event_row *events;
    int torn_tail;         /* 1 when a torn last line was ignored */
} gr_run_data;

/* Reads a metrics.jsonl file, or RUN_DIR/metrics.jsonl when `path` is not an existing file. A
 * missing file is an error naming it; an empty one reads as no records. */
gr_status gr_run_data_read(const char *path, gr_run_data **out);
void gr_run_data_free(gr_run_data *d);
/* The series of `metric` on `split` (NULL split: the first split that has it), or NULL. */
const gr_series *gr_run_data_series(const gr_run_data *d, const char *split, const char *metric);

/* 1 for metrics where lower is better (name contains "loss", "ppl" or "perplexity"). */
int gr_metric_lower_is_better(const char *metric);
/* Index of the first point of `s` that reaches `target` (>= it, or <= it for a lower-is-better
 * metric), or -1: what a speed-up is measured with (FLOPs or epochs to reach a score). */
long gr_series_first_reaching(const gr_series *s, double target);

/* ---- report.json ------------------------------------------------------------------------- */

/* A JSON object addressed by dotted paths ("totals.flops", "best.CIDEr.epoch"); intermediate
 * objects are created on demand. Path components must be non-empty (a metric name with a '.'
 * cannot be a component). */
typedef struct gr_report gr_report;

gr_report *gr_report_new(void);
gr_status gr_report_load(const char *path, gr_report **out);
/* Atomic: temporary file, fsync, rename (gr_write_file_atomic). Keys keep insertion order. */
gr_status gr_report_write(const gr_report *r, const char *path);
void gr_report_free(gr_report *r);

gr_status gr_report_set_number(gr_report *r, const char *path, double value);
gr_status gr_report_set_int(gr_report *r, const char *path, int64_t value);
gr_status gr_report_set_string(gr_report *r, const char *path, const char *value);
/* GR_ERR_NOT_FOUND (message names the path) when absent, GR_ERR_FORMAT when of another type. */
gr_status gr_report_get_number(const gr_report *r, const char *path, double *value);
gr_status gr_report_get_string(const gr_report *r, const char *path, const char **value);
/* Fills, from a run's log: "final.<split>.<metric>" = {value, step, epoch, flops} (the last
 * evaluation), "best.<split>.<metric>" = the same at the best value (highest; lowest for
 * metrics whose name contains "loss", "ppl" or "perplexity"; the earliest on ties), and
 * "totals" = {steps, epochs, flops, skipped_steps} (skipped_steps counts "skip_nonfinite"
 * events). Timings are the trainer's to set ("timings.train_s", ...). */
gr_status gr_report_fill_from_log(gr_report *r, const gr_run_data *d);

#endif
