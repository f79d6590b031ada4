/* Speed-up accounting on run logs written with the run-log writer: the paper's rule in epochs
 * and FLOPs, extra (converter) and source FLOPs, losses, the epoch limit, seeds, and errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fsutil.h"
#include "run/runlog.h"
#include "transfer/speedup.h"

static int checks, failures;
static void check(int ok, const char *what)
{
    checks++;
    if (!ok) failures++;
    printf("%s %s%s%s\n", ok ? "ok  " : "FAIL", what, ok ? "" : " -- last error: ", ok ? "" : gr_last_error());
}
static int near(double a, double b) { return fabs(a - b) <= 1e-9 * (1 + fabs(b)); }

static char root[400];

/* A run of `n` epochs, one step an epoch costing flops[e], evaluated after each epoch (and at
 * epoch 0 with value v0 when v0 >= 0) with CIDEr = cider[e] and loss = loss[e]. */
static char *make_run(const char *name, int n, const double *flops, const double *cider, const double *loss,
                      double v0)
{
    static char dirs[16][512];
    static int k;
    char *dir = dirs[k++ % 16];
    snprintf(dir, 512, "%s/%s", root, name);
    gr_runlog *log = NULL;
    if (gr_runlog_open(dir, GR_RUN_NEW, &log) != GR_OK) { printf("FAIL open %s: %s\n", dir, gr_last_error()); exit(1); }
    if (v0 >= 0) {
        gr_metric m[1] = {{"CIDEr", v0}};
        gr_runlog_eval(log, "val", 0, 0.0, m, 1);
    }
    for (int e = 0; e < n; e++) {
        gr_step_record r = {0};
        r.step = e + 1;
        r.epoch = e + 1;
        r.stage = e == 0 ? "warmup" : "finetune";
        r.loss = loss[e];
        r.flops.fwd_frozen = flops[e] / 2;
        r.flops.bwd_param = flops[e] / 2;
        if (gr_runlog_step(log, &r) != GR_OK) { printf("FAIL step: %s\n", gr_last_error()); exit(1); }
        gr_metric m[2] = {{"CIDEr", cider[e]}, {"loss", loss[e]}};
        if (gr_runlog_eval(log, "val", e + 1, e + 1, m, 2) != GR_OK) { printf("FAIL eval: %s\n", gr_last_error()); exit(1); }
    }
    gr_runlog_close(log);
    return dir;
}

int main(int argc, char **argv)
{
    if (argc != 2) { fprintf(stderr, "usage: test_speedup SCRATCH_DIR\n"); return 2; }
    snprintf(root, sizeof root, "%s/%d", argv[1], (int)getpid());
    if (gr_mkdirs(root) != GR_OK) { printf("FAIL %s\n", gr_last_error()); return 1; }

    /* scratch: best CIDEr 0.35 first reached at epoch 4 (cumulative 40 FLOPs); a later tie
     * does not move it; its loss is lowest (1.0) at epoch 5. */
    const double fl[6] = {10, 10, 10, 10, 10, 10};
    const double c_s[6] = {0.10, 0.20, 0.30, 0.35, 0.35, 0.34};
    const double l_s[6] = {3.0, 2.0, 1.5, 1.2, 1.0, 1.1};
    /* transfer: a cheap warm-up epoch (2 FLOPs), then 10 an epoch; reaches 0.35 (a tie
     * counts) at epoch 3 = 22 FLOPs; a zero-shot evaluation at epoch 0 of 0.9 is ignored. */
    const double fl_t[6] = {2, 10, 10, 10, 10, 10};
    const double c_t[6] = {0.25, 0.30, 0.35, 0.40, 0.41, 0.41};
    const double l_t[6] = {2.5, 1.6, 1.3, 1.15, 0.99, 1.2};
    const char *scr = make_run("scratch", 6, fl, c_s, l_s, 0.0);
    const char *tr = make_run("tas", 6, fl_t, c_t, l_t, 0.9);

    gr_speedup_input in = {0};
    in.scratch = &scr; in.n_scratch = 1;
    in.transfer = &tr; in.n_transfer = 1;
    in.split = "val";
    in.extra_flops = 3;   /* the converter */
    in.source_flops = 50; /* the source VPG's training */
    gr_speedup r;
    gr_status s = gr_speedup_compute(&in, "CIDEr", &r);
    printf("  CIDEr: best %.3f at e%g (%g FLOPs); transfer e%g (%g FLOPs): x%.3f epochs, x%.3f FLOPs, x%.3f with source\n",
           r.scratch_best, r.scratch_epoch, r.scratch_flops, r.transfer_epoch, r.transfer_flops, r.speedup_epochs,
           r.speedup_flops, r.speedup_flops_with_source);
    check(s == GR_OK && near(r.scratch_best, 0.35) && near(r.scratch_epoch, 4) && near(r.scratch_flops, 40),
          "scratch best and the first epoch reaching it (ties keep the earliest)");
    check(s == GR_OK && r.reached && near(r.transfer_epoch, 3) && near(r.transfer_flops, 22 + 3),
          "transfer: first epoch >= p, zero-shot epoch 0 ignored, converter FLOPs added");
    check(near(r.speedup_epochs, 4.0 / 3.0) && near(r.speedup_flops, 40.0 / 25.0) &&
              near(r.speedup_flops_with_source, 40.0 / 75.0),
          "speed-ups: e_scratch/e_transfer, FLOPs, FLOPs with the source's training");
    check(near(r.transfer_best, 0.41), "transfer's own best kept");

    /* lower is better for a loss: scratch best 1.0 at epoch 5; transfer reaches <= 1.0 at 5 */
    s = gr_speedup_compute(&in, "loss", &r);
    check(s == GR_OK && near(r.scratch_best, 1.0) && near(r.scratch_epoch, 5) && r.reached &&
              near(r.transfer_epoch, 5) && near(r.speedup_epochs, 1.0),
          "a loss: lowest is best, reaching means <=");

    /* the epoch limit: best within 2 epochs is 0.20 at epoch 2; transfer has 0.25 at epoch 1 */
    in.max_epochs = 2;
    s = gr_speedup_compute(&in, "CIDEr", &r);
    check(s == GR_OK && near(r.scratch_best, 0.20) && near(r.scratch_epoch, 2) && near(r.transfer_epoch, 1) &&
              near(r.speedup_epochs, 2.0),
          "scratch's best within max_epochs");
    in.max_epochs = 0;

    /* never reached */
    const double c_low[6] = {0.1, 0.1, 0.1, 0.2, 0.3, 0.34};
    const char *tl = make_run("low", 6, fl_t, c_low, l_t, -1);
    in.transfer = &tl;
    s = gr_speedup_compute(&in, "CIDEr", &r);
    const char *names[16];
    double vals[16];
    int nf = gr_speedup_fields(&r, names, vals, 16);
    int has_epochs = 0, has_reached0 = 0;
    for (int i = 0; i < nf; i++) {
        has_epochs |= strcmp(names[i], "epochs") == 0;
        has_reached0 |= strcmp(names[i], "reached") == 0 && vals[i] == 0;
    }
    check(s == GR_OK && !r.reached && !has_epochs && has_reached0, "never reached: no speed-up fields, reached = 0");
    const char *labels[2] = {"OPT-s -> OPT-l", "never"};
    gr_speedup rows[2];
    in.transfer = &tr;
    gr_speedup_compute(&in, "CIDEr", &rows[0]);
    rows[1] = r;
    gr_speedup_print_table(stdout, "table:", labels, rows, 2);

    /* two seeds a side: curves averaged point by point; per-seed speed-ups kept */
    const double c_s2[6] = {0.10, 0.20, 0.30, 0.33, 0.37, 0.34}; /* mean with c_s: best 0.36 at e5 */
    const double c_t2[6] = {0.25, 0.30, 0.37, 0.38, 0.41, 0.41}; /* mean with c_t: .25 .30 .36 ... */
    const char *scr2[2] = {scr, make_run("scratch_s2", 6, fl, c_s2, l_s, -1)};
    const char *tr2[2] = {tr, make_run("tas_s2", 6, fl_t, c_t2, l_t, -1)};
    in.scratch = scr2; in.n_scratch = 2;
    in.transfer = tr2; in.n_transfer = 2;
    s = gr_speedup_compute(&in, "CIDEr", &r);
    printf("  two seeds: best %.4f at e%g, transfer e%g, x%.3f; seeds x%.3f x%.3f\n", r.scratch_best, r.scratch_epoch,
           r.transfer_epoch, r.speedup_epochs, r.seed_speedup_epochs[0], r.seed_speedup_epochs[1]);
    check(s == GR_OK && r.n_seeds == 2 && near(r.scratch_best, 0.36) && near(r.scratch_epoch, 5) &&
              near(r.transfer_epoch, 3) && near(r.speedup_epochs, 5.0 / 3.0),
          "two seeds: the rule on the mean curves");
    check(near(r.seed_speedup_epochs[0], 4.0 / 3.0) && near(r.seed_speedup_epochs[1], 5.0 / 3.0),
          "two seeds: each seed pair's own speed-up");

    /* report.json supplies extra and source FLOPs when asked (< 0) */
    gr_report *rep = gr_report_new();
    gr_report_set_number(rep, "transfer.extra_flops", 7);
    gr_report_set_number(rep, "transfer.source_flops", 100);
    char *rp = gr_path_join(tr, GR_RUN_REPORT);
    gr_report_write(rep, rp);
    free(rp);
    gr_report_free(rep);
    in.scratch = &scr; in.n_scratch = 1;
    in.transfer = &tr; in.n_transfer = 1;
    in.extra_flops = -1; in.source_flops = -1;
    s = gr_speedup_compute(&in, "CIDEr", &r);
    check(s == GR_OK && near(r.transfer_flops, 29) && near(r.source_flops, 100) &&
              near(r.speedup_flops_with_source, 40.0 / 129.0),
          "extra and source FLOPs read from the transfer run's report.json");

    /* errors name the run and the metric */
    s = gr_speedup_compute(&in, "SPICE", &r);
    check(s == GR_ERR_NOT_FOUND && strstr(gr_last_error(), "SPICE") && strstr(gr_last_error(), "scratch"),
          "a metric the run never evaluated: error naming it and the run");
    const double c_short[3] = {0.1, 0.2, 0.3};
    const double fl3[3] = {1, 1, 1};
    char odd[512];
    snprintf(odd, sizeof odd, "%s", make_run("odd", 3, fl3, c_short, l_s, -1));
    /* shift its epochs: a run evaluated at 2, 4, 6 cannot be averaged with 1, 2, 3 */
    gr_runlog *lg = NULL;
    char odd2[600];
    snprintf(odd2, sizeof odd2, "%s/odd2", root);
    gr_runlog_open(odd2, GR_RUN_NEW, &lg);
    for (int e = 0; e < 3; e++) {
        gr_metric m[1] = {{"CIDEr", 0.1 * e}};
        gr_runlog_eval(lg, "val", e + 1, 2.0 * (e + 1), m, 1);
    }
    gr_runlog_close(lg);
    const char *mix[2] = {odd, odd2};
    in.scratch = mix; in.n_scratch = 2;
    s = gr_speedup_compute(&in, "CIDEr", &r);
    check(s == GR_ERR_INVALID && strstr(gr_last_error(), "odd2") && strstr(gr_last_error(), "epoch"),
          "seeds evaluated at different epochs: error naming the run");
    const char *none = "/nonexistent/run";
    in.scratch = &none; in.n_scratch = 1;
    s = gr_speedup_compute(&in, "CIDEr", &r);
    check(s != GR_OK && strstr(gr_last_error(), "/nonexistent/run"), "a missing run: error naming it");

    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures ? 1 : 0;
}
