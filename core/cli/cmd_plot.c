/* graft plot: training curves of one or more runs as a PNG. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fsutil.h"
#include "commands.h"
#include "graft/status.h"
#include "run/plot.h"
#include "run/runlog.h"

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "graft: plot: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see 'graft plot --help')\n");
    return 2;
}

static int run_plot(int argc, char **argv)
{
    const char **runs = calloc((size_t)argc, sizeof *runs);
    const char **labels = calloc((size_t)argc, sizeof *labels);
    const char **metrics = calloc((size_t)argc, sizeof *metrics);
    if (!runs || !labels || !metrics) {
        free(runs), free(labels), free(metrics);
        gr_fail(GR_ERR_NOMEM, "plot: out of memory");
        return gr_cli_error();
    }
    gr_plot_opts o = {.runs = runs, .metrics = metrics, .x = GR_PLOT_X_BOTH};
    int nlabels = 0, status = 0;
    char *default_out = NULL;
    for (int i = 1; i < argc && status == 0; i++) {
        const char *a = argv[i];
        int has_value = i + 1 < argc;
        if (strcmp(a, "--out") == 0 || strcmp(a, "-o") == 0) {
            if (!has_value) status = usage_error("%s needs a file name", a);
            else o.out = argv[++i];
        } else if (strcmp(a, "--metric") == 0 || strcmp(a, "-m") == 0) {
            if (!has_value) status = usage_error("%s needs a metric name", a);
            else metrics[o.metric_count++] = argv[++i];
        } else if (strcmp(a, "--label") == 0) {
            if (!has_value) status = usage_error("%s needs a name", a);
            else labels[nlabels++] = argv[++i];
        } else if (strcmp(a, "--title") == 0) {
            if (!has_value) status = usage_error("%s needs a text", a);
            else o.title = argv[++i];
        } else if (strcmp(a, "--x") == 0) {
            const char *v = has_value ? argv[++i] : "";
            if (strcmp(v, "epoch") == 0) o.x = GR_PLOT_X_EPOCH;
            else if (strcmp(v, "flops") == 0) o.x = GR_PLOT_X_FLOPS;
            else if (strcmp(v, "both") == 0) o.x = GR_PLOT_X_BOTH;
            else status = usage_error("--x '%s': expected epoch, flops or both", v);
        } else if (strcmp(a, "--size") == 0) {
            const char *v = has_value ? argv[++i] : "";
            char tail;
            if (sscanf(v, "%dx%d%c", &o.width, &o.height, &tail) != 2 || o.width <= 0 || o.height <= 0)
                status = usage_error("--size '%s': expected WIDTHxHEIGHT in pixels, e.g. 1200x800", v);
        } else if (a[0] == '-' && a[1] != '\0') {
            status = usage_error("unknown option '%s'", a);
        } else {
            runs[o.run_count++] = a;
        }
    }
    if (status == 0 && o.run_count == 0) status = usage_error("%s", "no run directory given");
    if (status == 0 && nlabels > o.run_count) status = usage_error("%s", "more --label than runs");
    if (status == 0 && !o.out) {
        if (o.run_count > 1) {
            status = usage_error("%s", "--out FILE.png is needed with several runs");
        } else {
            /* one run: its own plots/ folder */
            char *dir = gr_path_join(runs[0], GR_RUN_PLOTS);
            default_out = dir ? gr_path_join(dir, "curves.png") : NULL;
            if (dir && gr_is_dir(runs[0]) && !gr_is_dir(dir) && gr_mkdirs(dir) != GR_OK) status = gr_cli_error();
            free(dir);
            if (!default_out && status == 0) { gr_fail(GR_ERR_NOMEM, "plot: out of memory"); status = gr_cli_error(); }
            o.out = default_out;
        }
    }
    if (status == 0) {
        o.labels = nlabels ? labels : NULL;
        if (gr_plot_runs(&o) != GR_OK) status = gr_cli_error();
        else printf("%s\n", o.out);
    }
    free(default_out);
    free(runs);
    free(labels);
    free(metrics);
    return status;
}

const gr_command gr_cmd_plot = {
    "plot", run_plot, "draw training curves of runs (loss and eval metrics vs epochs and FLOPs) as a PNG",
    "usage: graft plot RUN_DIR [RUN_DIR...] [--out FILE.png] [--metric NAME]...\n"
    "                  [--x epoch|flops|both] [--label NAME]... [--size WxH] [--title TEXT]\n\n"
    "Reads RUN_DIR/metrics.jsonl of each run and draws one panel per quantity: the training loss\n"
    "(faint per-step values under a smoothed curve) and each evaluation metric per split, against\n"
    "epochs and/or cumulative FLOPs (log scale). Runs share the panels, one colour each, named in\n"
    "the legend after their directory or the --label given in the same order.\n\n"
    "  --out FILE.png   output (default with one run: RUN_DIR/plots/curves.png)\n"
    "  --metric NAME    only these panels, repeatable: 'loss' (training loss), a metric name\n"
    "                   (every split that has it, e.g. CIDEr) or SPLIT/NAME (e.g. val/CIDEr)\n"
    "  --x MODE         epoch, flops or both (default: both, as two columns)\n"
    "  --label NAME     legend name of the next run, repeatable\n"
    "  --size WxH       image size in pixels (default: from the number of panels)\n"
    "  --title TEXT     a title above the legend\n",
};
