/* Training curves of one or more runs as a PNG (cairo): a panel for the training loss and one
 * per evaluation metric, against epochs and/or cumulative FLOPs (log axis), one colour per run
 * with a shared legend. Used by `graft plot` and by the demo. */
#ifndef GRAFT_CORE_RUN_PLOT_H
#define GRAFT_CORE_RUN_PLOT_H

#include "graft/status.h"

typedef enum gr_plot_x {
    GR_PLOT_X_EPOCH = 1,
    GR_PLOT_X_FLOPS = 2,
    GR_PLOT_X_BOTH = 3 /* two columns: epochs left, FLOPs right */
} gr_plot_x;

typedef struct gr_plot_opts {
    const char *const *runs;   /* run directories (or metrics.jsonl files) */
    int run_count;
    const char *const *labels; /* NULL, or one per run (a NULL entry: the directory's name) */
    /* Panels: NULL/0 = "loss" (training loss) plus every evaluation metric found. Otherwise
     * each entry names a metric ("CIDEr": on every split that has it; "val/CIDEr": one split;
     * "loss": the training loss and any evaluation metric called "loss"). */
    const char *const *metrics;
    int metric_count;
    gr_plot_x x;               /* 0 = GR_PLOT_X_BOTH */
    int width, height;         /* pixels; 0 = from the number of panels */
    const char *title;         /* NULL: none */
    const char *out;           /* PNG path, written atomically */
} gr_plot_opts;

gr_status gr_plot_runs(const gr_plot_opts *opts);

#endif
