/* Run directory, metrics.jsonl writer/reader, truncation on resume and report.json. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fsutil.h"
#include "run/runlog.h"

static int checks, failures;

static void check(int ok, const char *what)
{
    checks++;
    if (!ok) failures++;
    printf("%s: %s%s%s\n", ok ? "ok" : "FAIL", what, ok ? "" : " -- last error: ", ok ? "" : gr_last_error());
}

static int msg_has(const char *a, const char *b)
{
    const char *m = gr_last_error();
    return strstr(m, a) && (!b || strstr(m, b));
}

static char root[256];

static char *path2(const char *a, const char *b)
{
    static char buf[16][512]; /* a ring: callers keep a result only across a few calls */
    static int k;
    char *s = buf[k++ % 16];
    snprintf(s, 512, "%s/%s%s%s", root, a, b ? "/" : "", b ? b : "");
    return s;
}

static void append_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "ab");
    fputs(text, f);
    fclose(f);
}

static void rm_rf(const char *p)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", p);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", p);
}

/* A deterministic step record for step s of a run with 8 steps per epoch. */
static gr_step_record rec_for(int64_t s)
{
    gr_step_record r = {
        .step = s, .epoch = (double)s / 8.0, .stage = s <= 4 ? "warmup" : "main",
        .loss = 3.0 / (1.0 + 0.1 * (double)s) + 0.01 * sin((double)s),
        .lr = 1e-4 * (double)s / 10.0, .grad_norm = 1.0 / 3.0, .tokens_per_s = 1234.5, .examples_per_s = 0.1,
        .flops = {1e9, 2.5e8, 3e8 + (double)s, 5e8},
    };
    return r;
}

static double step_flops(int64_t s)
{
    gr_step_record r = rec_for(s);
    return r.flops.fwd_frozen + r.flops.fwd_trainable + r.flops.bwd_input + r.flops.bwd_param;
}

/* Summed in step order, as the log accumulates them. */
static double sum_flops(int64_t from, int64_t to)
{
    double t = 0;
    for (int64_t s = from; s <= to; s++) t += step_flops(s);
    return t;
}

/* Logs steps from..to with an evaluation every 5 steps; a checkpoint (sync) at `sync_at`. */
static int log_steps(gr_runlog *log, int64_t from, int64_t to, int64_t sync_at)
{
    for (int64_t s = from; s <= to; s++) {
        gr_step_record r = rec_for(s);
        if (gr_runlog_step(log, &r) != GR_OK) return 0;
        if (s % 5 == 0) {
            gr_metric m[2] = {{"CIDEr", 0.1 * (double)s}, {"Bleu_4", 1.0 / (double)s}};
            if (gr_runlog_eval(log, "val", s, r.epoch, m, 2) != GR_OK) return 0;
        }
        if (s == sync_at && gr_runlog_sync(log) != GR_OK) return 0;
    }
    return 1;
}

static int same_double(double a, double b) { return memcmp(&a, &b, sizeof a) == 0 || (isnan(a) && isnan(b)); }

static int same_curves(const gr_run_data *a, const gr_run_data *b)
{
    if (a->step_count != b->step_count || a->series_count != b->series_count) return 0;
    for (size_t i = 0; i < a->step_count; i++) {
        const gr_step_row *x = &a->steps[i], *y = &b->steps[i];
        if (x->step != y->step || !same_double(x->epoch, y->epoch) || !same_double(x->loss, y->loss) ||
            !same_double(x->lr, y->lr) || !same_double(x->flops_total, y->flops_total) ||
            strcmp(a->stages[x->stage], b->stages[y->stage]) != 0)
            return 0;
    }
    for (size_t i = 0; i < a->series_count; i++) {
        const gr_series *x = &a->series[i], *y = &b->series[i];
        if (strcmp(x->metric, y->metric) || strcmp(x->split, y->split) || x->count != y->count) return 0;
        for (size_t k = 0; k < x->count; k++)
            if (x->step[k] != y->step[k] || !same_double(x->value[k], y->value[k]) || !same_double(x->flops[k], y->flops[k]))
                return 0;
    }
    return 1;
}

static void test_layout(void)
{
    gr_runlog *log;
    char dir[512];
    snprintf(dir, sizeof dir, "%s", path2("a/b/run1", NULL));
    check(gr_runlog_open(dir, GR_RUN_NEW, &log) == GR_OK, "new run directory created (with parents)");
    check(gr_is_dir(path2("a/b/run1", "checkpoints")) && gr_is_dir(path2("a/b/run1", "plots")) &&
              gr_path_exists(path2("a/b/run1", "metrics.jsonl")) && !gr_path_exists(path2("a/b/run1", "config.cfg")),
          "layout: checkpoints/, plots/, metrics.jsonl; config.cfg left to the trainer");
    char *cfg = gr_runlog_path(log, GR_RUN_CONFIG);
    check(cfg && strcmp(cfg, path2("a/b/run1", "config.cfg")) == 0, "gr_runlog_path names RUN_DIR/config.cfg");
    free(cfg);
    check(gr_runlog_close(log) == GR_OK, "close");

    gr_runlog *again = NULL;
    check(gr_runlog_open(dir, GR_RUN_NEW, &again) == GR_ERR_INVALID && !again && msg_has(dir, "already holds a run"),
          "an existing run is not clobbered (message names the directory)");
    gr_mkdirs(path2("empty", NULL));
    check(gr_runlog_open(path2("empty", NULL), GR_RUN_NEW, &log) == GR_OK, "an existing empty directory is fine");
    gr_runlog_close(log);
    check(gr_runlog_open(path2("nope", NULL), GR_RUN_RESUME, &log) == GR_ERR_NOT_FOUND && msg_has(path2("nope", NULL), NULL),
          "resume of a missing directory names it");
    gr_mkdirs(path2("notrun", NULL));
    check(gr_runlog_open(path2("notrun", NULL), GR_RUN_RESUME, &log) == GR_ERR_NOT_FOUND && msg_has("notrun", "metrics.jsonl"),
          "resume of a directory without metrics.jsonl is refused");
    append_text(path2("afile", NULL), "x");
    check(gr_runlog_open(path2("afile", NULL), GR_RUN_NEW, &log) == GR_ERR_INVALID && msg_has("afile", "not a directory"),
          "a file in the way is refused");
}

static void test_roundtrip(void)
{
    gr_runlog *log;
    const char *dir = path2("rt", NULL);
    gr_runlog_open(dir, GR_RUN_NEW, &log);
    gr_metric m0[1] = {{"CIDEr", 0.0125}};
    check(gr_runlog_eval(log, "val", 0, 0.0, m0, 1) == GR_OK, "eval before training (step 0)");
    check(gr_runlog_event(log, 0, 0.0, "stage_start", "stage %s", "warmup") == GR_OK, "event");
    int ok = log_steps(log, 1, 12, -1);
    gr_step_record bad = rec_for(13);
    bad.loss = NAN;
    bad.grad_norm = INFINITY;
    ok = ok && gr_runlog_step(log, &bad) == GR_OK;
    ok = ok && gr_runlog_event(log, 13, 13 / 8.0, "skip_nonfinite", "loss=nan") == GR_OK;
    check(ok, "12 steps, evals every 5, a non-finite step and an event written");
    check(gr_runlog_flops_total(log) == sum_flops(1, 13),
          "cumulative FLOPs = sum of the steps' parts");
    gr_step_record back = rec_for(12);
    check(gr_runlog_step(log, &back) == GR_ERR_INVALID && msg_has("step 12 logged after step 13", NULL),
          "records out of step order are refused");
    gr_step_record neg = rec_for(14);
    neg.flops.bwd_param = -1;
    check(gr_runlog_step(log, &neg) == GR_ERR_INVALID && msg_has("FLOP", NULL), "negative FLOPs refused");
    gr_metric dup[2] = {{"CIDEr", 1}, {"CIDEr", 2}};
    check(gr_runlog_eval(log, "val", 14, 1, dup, 2) == GR_ERR_INVALID && msg_has("'CIDEr'", "repeated"), "repeated metric refused");
    check(gr_runlog_close(log) == GR_OK, "close");

    /* the line format is the contract with other tools: pin the first step line */
    char *text;
    gr_read_file(path2("rt", "metrics.jsonl"), &text, NULL);
    const char *want =
        "{\"type\":\"step\",\"step\":1,\"epoch\":0.125,\"stage\":\"warmup\",\"loss\":2.735687437120806,"
        "\"lr\":1e-5,\"grad_norm\":0.3333333333333333,\"tokens_per_s\":1234.5,\"examples_per_s\":0.1,"
        "\"flops\":{\"fwd_frozen\":1000000000.0,\"fwd_trainable\":250000000.0,\"bwd_input\":300000001.0,"
        "\"bwd_param\":500000000.0},\"flops_total\":2050000001.0,\"time\":";
    char *line3 = strstr(text, "{\"type\":\"step\"");
    check(line3 && strncmp(line3, want, strlen(want)) == 0, "step line format (shortest exact numbers)");
    if (line3 && strncmp(line3, want, strlen(want)) != 0) printf("  got: %.300s\n", line3);
    check(strstr(text, "\"loss\":null,\"lr\":0.00013000000000000002,\"grad_norm\":null") != NULL, "non-finite values written as null; 17 digits only where needed");
    free(text);

    gr_run_data *d;
    check(gr_run_data_read(dir, &d) == GR_OK, "read back (directory given)");
    if (!d) return;
    int same = d->step_count == 13;
    for (int s = 1; same && s <= 12; s++) {
        gr_step_record r = rec_for(s);
        const gr_step_row *w = &d->steps[s - 1];
        same = w->step == s && same_double(w->epoch, r.epoch) && same_double(w->loss, r.loss) && same_double(w->lr, r.lr) &&
               same_double(w->grad_norm, r.grad_norm) && same_double(w->tokens_per_s, r.tokens_per_s) &&
               same_double(w->examples_per_s, r.examples_per_s) && same_double(w->flops.bwd_input, r.flops.bwd_input) &&
               strcmp(d->stages[w->stage], r.stage) == 0 && w->time > 1e9;
    }
    check(same, "every step field reads back bit for bit");
    check(isnan(d->steps[12].loss) && isnan(d->steps[12].grad_norm), "null reads back as NaN");
    const gr_series *c = gr_run_data_series(d, "val", "CIDEr"), *b = gr_run_data_series(d, NULL, "Bleu_4");
    check(c && c->count == 3 && c->step[0] == 0 && c->value[0] == 0.0125 && c->step[2] == 10 && c->value[2] == 1.0 &&
              c->flops[0] == 0 && c->flops[1] == d->steps[4].flops_total && c->epoch[2] == 1.25,
          "CIDEr series: step, epoch, FLOPs stamp, value");
    check(b && b->count == 2 && b->value[1] == 0.1, "Bleu_4 series (any split)");
    check(c && gr_series_first_reaching(c, 0.5) == 1 && gr_series_first_reaching(c, 0.51) == 2 &&
              gr_series_first_reaching(c, 2) == -1,
          "first point reaching a score (speed-up accounting)");
    gr_series lossy = {.metric = "val_loss", .count = 3, .value = (double[]){3, 2, 1}};
    check(gr_series_first_reaching(&lossy, 2) == 1 && gr_metric_lower_is_better("ppl") && !gr_metric_lower_is_better("CIDEr"),
          "lower-is-better metrics reach a target from above");
    check(!gr_run_data_series(d, "test", "CIDEr"), "no series on another split");
    check(d->event_count == 2 && strcmp(d->events[0].event, "stage_start") == 0 &&
              strcmp(d->events[0].message, "stage warmup") == 0 && strcmp(d->events[1].event, "skip_nonfinite") == 0,
          "events read back");
    check(d->stage_count == 2 && !d->torn_tail, "two stages, no torn tail");
    gr_run_data_free(d);
}

static void test_torn_and_malformed(void)
{
    gr_runlog *log;
    const char *dir = path2("torn", NULL);
    const char *file = path2("torn", "metrics.jsonl");
    gr_runlog_open(dir, GR_RUN_NEW, &log);
    log_steps(log, 1, 6, -1);
    gr_runlog_close(log);
    append_text(file, "{\"type\":\"step\",\"step\":7,\"epoch\":0.8");
    gr_run_data *d = NULL;
    check(gr_run_data_read(file, &d) == GR_OK && d->step_count == 6 && d->torn_tail, "torn last line ignored");
    gr_run_data_free(d);

    check(gr_runlog_open(dir, GR_RUN_RESUME, &log) == GR_OK && gr_runlog_last_step(log) == 6, "resume cuts the torn line");
    check(gr_runlog_flops_total(log) == sum_flops(1, 6),
          "resume restores the FLOP total");
    log_steps(log, 7, 8, -1);
    gr_runlog_close(log);
    check(gr_run_data_read(file, &d) == GR_OK && d->step_count == 8 && !d->torn_tail, "appends after the cut read cleanly");
    gr_run_data_free(d);

    /* a complete record missing only its newline is a record, not a torn line */
    char *text;
    size_t len;
    gr_read_file(file, &text, &len);
    gr_write_file_atomic(file, text, len - 1);
    check(gr_run_data_read(file, &d) == GR_OK && d->step_count == 8 && !d->torn_tail, "unterminated whole last line kept");
    gr_run_data_free(d);
    check(gr_runlog_open(dir, GR_RUN_RESUME, &log) == GR_OK && gr_runlog_last_step(log) == 8, "resume completes it");
    log_steps(log, 9, 9, -1);
    gr_runlog_close(log);
    check(gr_run_data_read(file, &d) == GR_OK && d->step_count == 9, "and appends on a new line");
    gr_run_data_free(d);

    /* strict everywhere else: each error names file:line */
    struct { const char *line; const char *msg; } bad[] = {
        {"{\"type\":\"step\",\"step\":10,\"epoch\":1\n", "not JSON"},
        {"\n", "not JSON"},
        {"[1,2]\n", "must be a JSON object"},
        {"{\"type\":\"stpe\",\"step\":10}\n", "\"type\""},
        {"{\"type\":\"eval\",\"step\":-1}\n", "\"step\""},
        {"{\"type\":\"eval\",\"step\":10,\"split\":\"val\",\"epoch\":1,\"flops_total\":5,\"metrics\":{\"CIDEr\":\"high\"}}\n", "\"CIDEr\""},
        {"{\"type\":\"step\",\"step\":10,\"epoch\":1}\n", "\"loss\" is missing"},
        {"{\"type\":\"event\",\"step\":3,\"epoch\":1,\"event\":\"x\"}\n", "out of order"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        gr_write_file_atomic(file, text, len);
        append_text(file, bad[i].line);
        append_text(file, "{\"type\":\"event\",\"step\":20,\"epoch\":2,\"event\":\"end\"}\n");
        char where[600];
        snprintf(where, sizeof where, "%s:10:", file);
        d = NULL;
        gr_status st = gr_run_data_read(file, &d);
        char what[200];
        snprintf(what, sizeof what, "malformed line %zu (%s) is an error naming file:line", i, bad[i].msg);
        check(st == GR_ERR_FORMAT && !d && msg_has(where, bad[i].msg), what);
        if (i == 0) {
            check(gr_runlog_open(dir, GR_RUN_RESUME, &log) == GR_ERR_FORMAT && msg_has(where, NULL),
                  "resume refuses a log malformed in the middle");
        }
    }
    free(text);
    check(gr_run_data_read(path2("nowhere", "metrics.jsonl"), &d) == GR_ERR_IO && msg_has("nowhere/metrics.jsonl", NULL),
          "missing file named");
    append_text(path2("emptyfile.jsonl", NULL), "");
    check(gr_run_data_read(path2("emptyfile.jsonl", NULL), &d) == GR_OK && d->step_count == 0 && d->series_count == 0,
          "empty file reads as no records");
    gr_run_data_free(d);
}

static void test_truncate_resume(void)
{
    /* uninterrupted reference run */
    gr_runlog *log;
    gr_runlog_open(path2("full", NULL), GR_RUN_NEW, &log);
    log_steps(log, 1, 20, -1);
    gr_runlog_close(log);

    /* a run killed after step 13 whose last checkpoint is step 10 (after its evaluation) */
    gr_runlog_open(path2("killed", NULL), GR_RUN_NEW, &log);
    log_steps(log, 1, 13, 10);
    gr_runlog_close(log);
    append_text(path2("killed", "metrics.jsonl"), "{\"type\":\"step\",\"st");

    check(gr_runlog_open(path2("killed", NULL), GR_RUN_RESUME, &log) == GR_OK, "resume the killed run");
    check(gr_runlog_truncate_after(log, 25) == GR_ERR_FORMAT && msg_has("ends at step 13", "step 25"),
          "a checkpoint newer than the log is an error");
    check(gr_runlog_truncate_after(log, 10) == GR_OK && gr_runlog_last_step(log) == 10, "truncate after step 10");
    check(gr_runlog_flops_total(log) == sum_flops(1, 10), "FLOP total restored to step 10's");
    gr_runlog_event(log, 10, 1.25, "resume", "from checkpoint step 10");
    check(log_steps(log, 11, 20, -1), "continue to step 20");
    gr_runlog_close(log);

    gr_run_data *a = NULL, *b = NULL;
    gr_run_data_read(path2("full", NULL), &a);
    gr_run_data_read(path2("killed", NULL), &b);
    check(a && b && same_curves(a, b), "resumed run's curves equal the uninterrupted run's");
    check(b && b->event_count == 1 && strcmp(b->events[0].event, "resume") == 0, "the resume is recorded as an event");
    gr_run_data_free(a);
    gr_run_data_free(b);

    gr_runlog_open(path2("killed", NULL), GR_RUN_RESUME, &log);
    check(gr_runlog_truncate_after(log, 0) == GR_OK && gr_runlog_last_step(log) == 0 && gr_runlog_flops_total(log) == 0,
          "truncate to step 0 empties the log");
    gr_runlog_close(log);
    char *text;
    size_t len;
    gr_read_file(path2("killed", "metrics.jsonl"), &text, &len);
    check(len == 0, "file is empty");
    free(text);
}

/* A real SIGKILL while a child logs as fast as it can: the log holds whole records and at
 * most one torn line, and resumes cleanly from any step that is in it. */
static void test_sigkill(void)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s", path2("sigkill", NULL));
    gr_runlog *log;
    if (gr_runlog_open(dir, GR_RUN_NEW, &log) != GR_OK) { check(0, "open"); return; }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        for (int64_t s = 1;; s++) {
            gr_step_record r = rec_for(s);
            r.stage = "a long stage name so that lines are long and a kill can land inside one write";
            if (gr_runlog_step(log, &r) != GR_OK) _exit(1);
        }
    }
    gr_runlog_close(log);
    /* wait until the child has written something, then kill it mid-stream */
    for (int i = 0; i < 2000; i++) {
        struct stat st;
        if (stat(path2("sigkill", "metrics.jsonl"), &st) == 0 && st.st_size > 200000) break;
        usleep(1000);
    }
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    check(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child killed with SIGKILL while logging");
    gr_run_data *d = NULL;
    check(gr_run_data_read(dir, &d) == GR_OK && d->step_count > 100, "log readable after the kill");
    int64_t n = d ? (int64_t)d->step_count : 0;
    int dense = d != NULL;
    for (int64_t i = 0; dense && i < n; i++) dense = d->steps[i].step == i + 1;
    check(dense, "every record before the kill is whole and in order");
    printf("  %lld steps logged before the kill%s\n", (long long)n, d && d->torn_tail ? ", torn last line" : "");
    gr_run_data_free(d);
    int64_t ckpt = n / 2;
    check(gr_runlog_open(dir, GR_RUN_RESUME, &log) == GR_OK && gr_runlog_truncate_after(log, ckpt) == GR_OK &&
              gr_runlog_flops_total(log) == sum_flops(1, ckpt),
          "resume after the kill: truncated to the checkpoint with its FLOP total");
    gr_runlog_close(log);
}

static int dir_has_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int found = 0;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".tmp")) found = 1;
    if (d) closedir(d);
    return found;
}

static void test_report(void)
{
    gr_runlog *log;
    gr_runlog_open(path2("rep", NULL), GR_RUN_NEW, &log);
    log_steps(log, 1, 15, -1);
    gr_metric m[2] = {{"CIDEr", 0.3}, {"val_loss", 0.5}};
    gr_runlog_eval(log, "test", 15, 15 / 8.0, m, 2);
    gr_runlog_event(log, 15, 15 / 8.0, "skip_nonfinite", NULL);
    gr_runlog_close(log);
    gr_run_data *d;
    if (gr_run_data_read(path2("rep", NULL), &d) != GR_OK) { check(0, "read the report's run"); return; }

    gr_report *r = gr_report_new();
    check(r && gr_report_fill_from_log(r, d) == GR_OK, "report filled from the log");
    check(gr_report_set_number(r, "timings.train_s", 12.5) == GR_OK && gr_report_set_string(r, "run.strategy", "tas") == GR_OK &&
              gr_report_set_int(r, "run.seed", 1234567890123LL) == GR_OK,
          "trainer fields set by dotted path");
    check(gr_report_set_number(r, "run.strategy.x", 1) == GR_ERR_FORMAT && msg_has("'strategy' is not an object", NULL),
          "a path through a non-object is refused");
    check(gr_report_set_number(r, "a..b", 1) == GR_ERR_INVALID && msg_has("a..b", NULL), "empty path component refused");
    const char *out = path2("rep", "report.json");
    check(gr_report_write(r, out) == GR_OK && !dir_has_tmp(path2("rep", NULL)), "report written atomically, no temp file left");
    gr_report_free(r);
    gr_run_data_free(d);

    gr_report *back;
    double v;
    const char *s;
    check(gr_report_load(out, &back) == GR_OK, "report loads");
    check(gr_report_get_number(back, "best.val.CIDEr.value", &v) == GR_OK && v == 1.5, "best CIDEr = 1.5 (step 15)");
    check(gr_report_get_number(back, "best.val.CIDEr.step", &v) == GR_OK && v == 15, "best CIDEr's step");
    check(gr_report_get_number(back, "best.val.Bleu_4.value", &v) == GR_OK && v == 0.2 &&
              gr_report_get_number(back, "best.val.Bleu_4.epoch", &v) == GR_OK && v == 5 / 8.0,
          "best Bleu_4 is the highest (step 5), with its epoch");
    check(gr_report_get_number(back, "final.val.Bleu_4.value", &v) == GR_OK && v == 1.0 / 15, "final Bleu_4 is the last");
    check(gr_report_get_number(back, "best.test.val_loss.value", &v) == GR_OK && v == 0.5, "loss-like metric on test split");
    double fl = sum_flops(1, 15);
    check(gr_report_get_number(back, "best.val.CIDEr.flops", &v) == GR_OK && v == fl, "best metric's FLOPs");
    check(gr_report_get_number(back, "totals.flops", &v) == GR_OK && v == fl && gr_report_get_number(back, "totals.steps", &v) == GR_OK &&
              v == 15 && gr_report_get_number(back, "totals.skipped_steps", &v) == GR_OK && v == 1,
          "totals: FLOPs, steps, skipped steps");
    check(gr_report_get_number(back, "totals.epochs", &v) == GR_OK && v == 15 / 8.0, "totals: epochs");
    check(gr_report_get_number(back, "run.seed", &v) == GR_OK && v == 1234567890123.0 &&
              gr_report_get_string(back, "run.strategy", &s) == GR_OK && strcmp(s, "tas") == 0,
          "trainer fields read back");
    check(gr_report_get_number(back, "timings.eval_s", &v) == GR_ERR_NOT_FOUND && msg_has("timings.eval_s", NULL),
          "a missing key is NOT_FOUND naming it");
    check(gr_report_get_string(back, "timings.train_s", &s) == GR_ERR_FORMAT, "wrong type is FORMAT");
    gr_report_free(back);

    gr_report *empty = gr_report_new();
    check(gr_report_write(empty, path2("no/such/dir", "report.json")) == GR_ERR_IO && msg_has("no/such/dir", NULL),
          "write into a missing directory names the path");
    gr_report_free(empty);
    append_text(path2("rep", "bad.json"), "{\"a\": 1,\n  \"b\": }\n");
    check(gr_report_load(path2("rep", "bad.json"), &back) == GR_ERR_FORMAT && msg_has("bad.json: line 2", NULL),
          "malformed report names file:line");
    check(gr_report_load(path2("rep", "missing.json"), &back) == GR_ERR_NOT_FOUND && msg_has("missing.json", NULL),
          "missing report named");
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(root, sizeof root, "%s/graft-runlog-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(root)) { perror("mkdtemp"); return 1; }
    test_layout();
    test_roundtrip();
    test_torn_and_malformed();
    test_truncate_resume();
    test_sigkill();
    test_report();
    rm_rf(root);
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures ? 1 : 0;
}
