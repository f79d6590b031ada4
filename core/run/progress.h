/* Training progress on the console.
 *
 * On a terminal: one line redrawn in place (at most ~10 times a second) with a bar, step/total,
 * epoch, loss, lr, tokens/s and ETA. Elsewhere (a log file, a pipe, CI): plain lines every N
 * steps or T seconds, whichever comes first. Quiet: nothing. The loss shown is the mean over
 * the steps since the previous display, so it is not just one noisy batch.
 *
 * The trainer calls gr_progress_step after every optimizer step and prints its own lines
 * (evaluation results, warnings) through gr_progress_print, which keeps the bar intact. */
#ifndef GRAFT_CORE_RUN_PROGRESS_H
#define GRAFT_CORE_RUN_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

#include "run/runlog.h"

typedef enum gr_progress_mode {
    GR_PROGRESS_AUTO = 0,  /* BAR when `out` is a terminal (and TERM is not "dumb"), else LINES */
    GR_PROGRESS_BAR = 1,
    GR_PROGRESS_LINES = 2,
    GR_PROGRESS_QUIET = 3
} gr_progress_mode;

typedef struct gr_progress_opts {
    gr_progress_mode mode;
    FILE *out;             /* NULL: stderr */
    int64_t total_steps;   /* steps of the whole run; 0 = unknown (no bar, no ETA) */
    int64_t every_steps;   /* LINES: a line every N steps; 0 = 50 */
    double every_seconds;  /* LINES: ... or when T seconds passed since the last; 0 = 30 */
    int width;             /* BAR: line width; 0 = the terminal's (80 if unknown) */
} gr_progress_opts;

typedef struct gr_progress gr_progress;

/* NULL only when out of memory (callers may then run without progress). */
gr_progress *gr_progress_new(const gr_progress_opts *opts);
void gr_progress_step(gr_progress *p, const gr_step_record *rec);
/* The same with an explicit monotonic time in seconds (tests drive the clock). */
void gr_progress_step_at(gr_progress *p, const gr_step_record *rec, double now);
/* A message on its own line (not shown in quiet mode); the bar is redrawn below it. */
void gr_progress_print(gr_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Shows the final state (ending the bar's line) and frees; NULL is fine. */
void gr_progress_end(gr_progress *p);
void gr_progress_end_at(gr_progress *p, double now);

/* "1h02m", "3m07s", "42s": durations as the progress line shows them (buf >= 16 bytes). */
const char *gr_format_duration(double seconds, char *buf, size_t cap);
/* "12.3k", "4.56M": counts and rates with an SI suffix (buf >= 16 bytes). */
const char *gr_format_si(double v, char *buf, size_t cap);

#endif
