/* `graft demo`: the whole method on the synthetic world, end to end, cached.
 *
 * Every step is an ordinary graft command run in the demo directory (a child process, its
 * output in DIR/logs/STEP.log) and skipped when its product exists, so a second run only
 * re-reports. The configurations are configs/demo/ (copied to DIR/configs on the first run;
 * edit them there to experiment). See docs/strategies.md and docs/results.md. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/fsutil.h"
#include "commands.h"
#include "run/plot.h"
#include "run/runlog.h"
#include "transfer/speedup.h"

#define MAX_SEEDS 4

typedef struct demo {
    const char *dir;
    char exe[PATH_MAX];
    int seeds;
    FILE *times;     /* DIR/logs/times.tsv: step, seconds (appended as steps run) */
    double total_s;  /* of the steps run now */
    int ran;         /* steps run (not cached) */
} demo;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st; (void)flag; (void)f;
    return remove(p);
}

/* Runs `graft ARGV...` in the demo directory unless `done` exists there. */
static gr_status step(demo *d, const char *name, const char *done, const char *clean, const char *const *argv)
{
    if (gr_path_exists(done)) {
        printf("  %-22s cached\n", name);
        return GR_OK;
    }
    if (clean && gr_path_exists(clean)) nftw(clean, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    char log[300];
    snprintf(log, sizeof log, "logs/%s.log", name);
    printf("  %-22s ...", name);
    fflush(stdout);
    double t0 = now_s();
    pid_t pid = fork();
    if (pid < 0) return gr_fail(GR_ERR_IO, "demo: cannot fork: %s", strerror(errno));
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) { dup2(fd, 1); dup2(fd, 2); close(fd); }
        char *args[40];
        int n = 0;
        args[n++] = "graft";
        for (int i = 0; argv[i] && n < 39; i++) args[n++] = (char *)argv[i];
        args[n] = NULL;
        execv(d->exe, args);
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    double dt = now_s() - t0;
    d->total_s += dt;
    d->ran++;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        printf(" failed\n");
        /* the last line of the log is the step's one-line error */
        char *text = NULL;
        const char *last = "";
        if (gr_read_file(log, &text, NULL) == GR_OK) {
            size_t n = strlen(text);
            while (n && text[n - 1] == '\n') text[--n] = 0;
            char *nl = strrchr(text, '\n');
            last = nl ? nl + 1 : text;
        }
        gr_status s = gr_fail(GR_ERR_INVALID, "demo: step %s failed (%s/%s): %s", name, d->dir, log, last);
        free(text);
        return s;
    }
    printf(" %6.1f s\n", dt);
    if (d->times) { fprintf(d->times, "%s\t%.1f\n", name, dt); fflush(d->times); }
    return GR_OK;
}

/* configs/demo next to the source tree: ./configs/demo, else beside the executable's tree. */
static int find_configs(const char *exe, char *out, size_t cap)
{
    if (gr_is_dir("configs/demo")) {
        if (realpath("configs/demo", out)) return 1;
    }
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", exe);
    char *dir = dirname(buf); /* .../build/bin */
    const char *rel[] = {"/../../configs/demo", "/../share/graft/configs/demo", "/../configs/demo"};
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
        char p[PATH_MAX + 64];
        snprintf(p, sizeof p, "%s%s", dir, rel[i]);
        if (gr_is_dir(p) && realpath(p, out)) return 1;
    }
    (void)cap;
    return 0;
}

static gr_status copy_tree(const char *from, const char *to)
{
    gr_status s = gr_mkdirs(to);
    if (s != GR_OK) return s;
    /* the demo's configuration files (a few KB) */
    static const char *const files[] = {
        "common.inc", "source.cfg", "scratch_large.cfg", "scratch_llama.cfg", "scratch_deep.cfg", "tas.cfg",
        "tat.cfg", "surrogate.cfg", "pretrain_opt_small.cfg", "pretrain_opt_large.cfg",
        "pretrain_llama_small.cfg", "pretrain_opt_deep.cfg", "parts/vision/config.json",
        "parts/qformer/config.json", NULL};
    for (int i = 0; files[i] && s == GR_OK; i++) {
        char src[PATH_MAX + 64], dst[PATH_MAX + 64];
        snprintf(src, sizeof src, "%s/%s", from, files[i]);
        snprintf(dst, sizeof dst, "%s/%s", to, files[i]);
        char *text = NULL;
        size_t len = 0;
        s = gr_read_file(src, &text, &len);
        char *slash = strrchr(dst, '/');
        if (s == GR_OK && slash) { *slash = 0; s = gr_mkdirs(dst); *slash = '/'; }
        if (s == GR_OK) s = gr_write_file_atomic(dst, text, len);
        free(text);
    }
    return s;
}

/* ------------------------------------------------------------------------ tables ---- */

static const char *const table_metrics[] = {"CIDEr", "Bleu_4", "ROUGE_L"};
#define N_TABLE_METRICS 3

static gr_status speedup_rows(const char *label, const char *scratch, const char *transfer, int seeds,
                              gr_speedup *rows, const char **labels, int *n)
{
    char sbuf[MAX_SEEDS][64], tbuf[MAX_SEEDS][64];
    const char *sr[MAX_SEEDS], *tr[MAX_SEEDS];
    for (int i = 0; i < seeds; i++) {
        snprintf(sbuf[i], sizeof sbuf[i], "runs/%s_s%d", scratch, i + 1);
        snprintf(tbuf[i], sizeof tbuf[i], "runs/%s_s%d", transfer, i + 1);
        sr[i] = sbuf[i];
        tr[i] = tbuf[i];
    }
    gr_speedup_input in = {0};
    in.scratch = sr;
    in.n_scratch = seeds;
    in.transfer = tr;
    in.n_transfer = seeds;
    in.split = "val";
    in.extra_flops = -1;  /* the converter, from each run's report.json */
    in.source_flops = -1; /* the source VPG's training */
    for (int m = 0; m < N_TABLE_METRICS; m++) {
        gr_status s = gr_speedup_compute(&in, table_metrics[m], &rows[*n]);
        if (s != GR_OK) return s;
        labels[*n] = label;
        (*n)++;
    }
    return GR_OK;
}

static double report_num(const char *run, const char *path)
{
    char *rp = gr_path_join(run, GR_RUN_REPORT);
    gr_report *r = NULL;
    double v = NAN;
    if (rp && gr_report_load(rp, &r) == GR_OK && gr_report_get_number(r, path, &v) != GR_OK) v = NAN;
    gr_report_free(r);
    free(rp);
    gr_clear_error();
    return v;
}

static gr_status tables(demo *d, FILE *out)
{
    gr_speedup rows[16];
    const char *labels[16];
    int n = 0;
    gr_status s = speedup_rows("TaS OPT-2x64 -> OPT-4x128", "scratch_large", "tas", d->seeds, rows, labels, &n);
    if (s == GR_OK) s = speedup_rows("TaT OPT-2x64 -> Llama-2x64", "scratch_llama", "tat", d->seeds, rows, labels, &n);
    if (s != GR_OK) return s;
    char title[200];
    snprintf(title, sizeof title,
             "Speed-up (val, mean of %d seed(s); x epochs = e_scratch / e_transfer; x FLOPs with the converter and "
             "every stage; x +src also counts the source VPG's training):", d->seeds);
    gr_speedup_print_table(out, title, labels, rows, n);
    fprintf(out, "per-seed x epochs:");
    for (int i = 0; i < n; i++) {
        fprintf(out, "%s %s/%s", i ? ";" : "", labels[i][2] == 'S' ? "TaS" : "TaT", rows[i].metric);
        for (int k = 0; k < rows[i].n_seeds; k++) fprintf(out, " %.2f", rows[i].seed_speedup_epochs[k]);
    }
    fprintf(out, "\n\n");

    /* surrogate vs grafted vs scratch (test split) */
    const char *su = "runs/surrogate", *sc = "runs/scratch_deep_s1";
    fprintf(out, "Surrogate grafting on OPT-8x64 (test split; surrogate = layers 0-1 + translator 2 + layer 7):\n");
    fprintf(out, "%-10s %15s %15s %17s %15s\n", "metric", "surrogate pair", "grafted 0-shot", "scratch on target",
            "source on small");
    for (int m = 0; m < N_TABLE_METRICS; m++) {
        char k1[100], k2[100], k3[100];
        snprintf(k1, sizeof k1, "surrogate.pair.%s", table_metrics[m]);
        snprintf(k2, sizeof k2, "surrogate.grafted.%s", table_metrics[m]);
        snprintf(k3, sizeof k3, "final.test.%s.value", table_metrics[m]);
        fprintf(out, "%-10s %15.4f %15.4f %17.4f %15.4f\n", table_metrics[m], report_num(su, k1), report_num(su, k2),
                report_num(sc, k3), report_num("runs/source", k3));
    }
    double fs = report_num(su, "surrogate.flops_surrogate"), ft = report_num(sc, "totals.flops");
    fprintf(out, "training FLOPs: surrogate %.3g, scratch on the target %.3g (ratio %.2f)\n\n", fs, ft, fs / ft);
    return GR_OK;
}

static gr_status plots(demo *d)
{
    gr_status s = gr_mkdirs("plots");
    struct { const char *file, *title, *a, *b; } sets[] = {
        {"plots/tas.png", "TaS: OPT-2x64 -> OPT-4x128 vs scratch", "scratch_large", "tas"},
        {"plots/tat.png", "TaT: OPT-2x64 -> Llama-2x64 vs scratch", "scratch_llama", "tat"},
    };
    for (size_t k = 0; s == GR_OK && k < sizeof sets / sizeof sets[0]; k++) {
        char names[2 * MAX_SEEDS][64];
        const char *runs[2 * MAX_SEEDS];
        int n = 0;
        for (int i = 0; i < d->seeds; i++) {
            snprintf(names[n], sizeof names[n], "runs/%s_s%d", sets[k].a, i + 1); runs[n] = names[n]; n++;
            snprintf(names[n], sizeof names[n], "runs/%s_s%d", sets[k].b, i + 1); runs[n] = names[n]; n++;
        }
        static const char *const metrics[] = {"loss", "val/CIDEr", "val/Bleu_4"};
        gr_plot_opts o = {0};
        o.runs = runs;
        o.run_count = n;
        o.metrics = metrics;
        o.metric_count = 3;
        o.x = GR_PLOT_X_BOTH;
        o.title = sets[k].title;
        o.out = sets[k].file;
        s = gr_plot_runs(&o);
    }
    if (s == GR_OK) {
        const char *runs[] = {"runs/scratch_deep_s1", "runs/surrogate"};
        const char *labels[] = {"scratch on OPT-8x64", "surrogate (stages 1-2), then the graft"};
        static const char *const metrics[] = {"loss", "CIDEr"};
        gr_plot_opts o = {0};
        o.runs = runs;
        o.labels = labels;
        o.run_count = 2;
        o.metrics = metrics;
        o.metric_count = 2;
        o.title = "Surrogate grafting on OPT-8x64";
        o.out = "plots/surrogate.png";
        s = gr_plot_runs(&o);
    }
    return s;
}

/* ---------------------------------------------------------------------- command ---- */

static gr_status run_demo(demo *d)
{
    char seedbuf[MAX_SEEDS][32], rd[MAX_SEEDS][6][64];
    gr_status s = gr_mkdirs("logs");
    d->times = fopen("logs/times.tsv", "a");
#define STEP(NAME, DONE, CLEAN, ...)                                                \
    do {                                                                            \
        const char *const a_[] = {__VA_ARGS__, NULL};                               \
        if (s == GR_OK) s = step(d, NAME, DONE, CLEAN, a_);                         \
    } while (0)
    printf("world, tokenizers, language models:\n");
    STEP("synth", "world/world.json", "world", "synth", "--out", "world", "--size", "600", "--image-size", "32", "--val", "0.25");
    STEP("tokenizer_opt", "tokenizers/opt/tokenizer.json", NULL, "tokenizer", "train", "--corpus", "world/corpus.txt",
         "--vocab-size", "1024", "--type", "bytelevel", "--family", "opt", "--out", "tokenizers/opt");
    /* byte-level as Llama 3's (a metaspace "\n" is two tokens, which caption stopping refuses) */
    STEP("tokenizer_llama", "tokenizers/llama/tokenizer.json", NULL, "tokenizer", "train", "--corpus",
         "world/corpus.txt", "--vocab-size", "768", "--type", "bytelevel", "--family", "llama", "--out",
         "tokenizers/llama");
    STEP("pretrain_opt_small", "lms/opt_small/model.safetensors", "lms/opt_small", "pretrain", "-c",
         "configs/pretrain_opt_small.cfg");
    STEP("pretrain_opt_large", "lms/opt_large/model.safetensors", "lms/opt_large", "pretrain", "-c",
         "configs/pretrain_opt_large.cfg");
    STEP("pretrain_llama_small", "lms/llama_small/model.safetensors", "lms/llama_small", "pretrain", "-c",
         "configs/pretrain_llama_small.cfg");
    STEP("pretrain_opt_deep", "lms/opt_deep/model.safetensors", "lms/opt_deep", "pretrain", "-c",
         "configs/pretrain_opt_deep.cfg");
    STEP("surrogate_analyze", "analysis/opt_deep/trajectory.json", NULL, "surrogate", "analyze", "lms/opt_deep",
         "--data", "world/corpus_val.txt", "--max-tokens", "20000", "--out", "analysis/opt_deep");
    STEP("surrogate_build", "lms/opt_deep_surrogate/surrogate.json", "lms/opt_deep_surrogate", "surrogate", "build",
         "lms/opt_deep", "--range", "2:7", "--out", "lms/opt_deep_surrogate");
    printf("vision-language training (logs in %s/logs):\n", d->dir);
    STEP("source", "runs/source/report.json", "runs/source", "train", "-c", "configs/source.cfg", "--run-dir",
         "runs/source");
    static const char *const kinds[4][2] = {
        {"scratch_large", "configs/scratch_large.cfg"}, {"tas", "configs/tas.cfg"},
        {"scratch_llama", "configs/scratch_llama.cfg"}, {"tat", "configs/tat.cfg"}};
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < d->seeds && s == GR_OK; i++) {
            snprintf(seedbuf[i], sizeof seedbuf[i], "data.seed=%d", i + 1);
            snprintf(rd[i][0], sizeof rd[i][0], "runs/%s_s%d", kinds[k][0], i + 1);
            snprintf(rd[i][1], sizeof rd[i][1], "runs/%s_s%d/report.json", kinds[k][0], i + 1);
            snprintf(rd[i][2], sizeof rd[i][2], "%s_s%d", kinds[k][0], i + 1);
            STEP(rd[i][2], rd[i][1], rd[i][0], "train", "-c", kinds[k][1], "-s", seedbuf[i], "--run-dir", rd[i][0]);
        }
    STEP("scratch_deep_s1", "runs/scratch_deep_s1/report.json", "runs/scratch_deep_s1", "train", "-c",
         "configs/scratch_deep.cfg", "-s", "data.seed=1", "--run-dir", "runs/scratch_deep_s1");
    STEP("surrogate", "runs/surrogate/report.json", "runs/surrogate", "train", "-c", "configs/surrogate.cfg", "-s",
         "data.seed=1", "--run-dir", "runs/surrogate");
#undef STEP
    if (d->times) fclose(d->times);
    d->times = NULL;
    if (s != GR_OK) return s;
    if (d->ran) printf("steps run now: %d, %.1f s\n", d->ran, d->total_s);
    else printf("every step was cached (times of the first run: %s/logs/times.tsv)\n", d->dir);
    printf("\n");
    s = plots(d);
    if (s != GR_OK) return s;
    s = tables(d, stdout);
    if (s != GR_OK) return s;
    FILE *f = fopen("results.txt", "w");
    if (f) { tables(d, f); fclose(f); }
    printf("curves: %s/plots/{tas,tat,surrogate}.png; tables: %s/results.txt; trajectory: "
           "%s/analysis/opt_deep/trajectory.png\n", d->dir, d->dir, d->dir);
    return GR_OK;
}

static int cmd_demo(int argc, char **argv)
{
    if (gr_cli_wants_help(argc, argv)) return gr_cli_usage(gr_find_command("demo"), 0);
    demo d = {0};
    d.dir = "graft-demo";
    d.seeds = 2;
    const char *configs = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) d.dir = argv[++i];
        else if (strcmp(argv[i], "--configs") == 0 && i + 1 < argc) configs = argv[++i];
        else if (strcmp(argv[i], "--seeds") == 0 && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > MAX_SEEDS) {
                gr_fail(GR_ERR_INVALID, "--seeds: '%s' is not 1..%d", argv[i], MAX_SEEDS);
                return gr_cli_error();
            }
            d.seeds = (int)v;
        } else {
            return gr_cli_usage(gr_find_command("demo"), 2);
        }
    }
    ssize_t n = readlink("/proc/self/exe", d.exe, sizeof d.exe - 1);
    if (n <= 0) { gr_fail(GR_ERR_IO, "demo: cannot find the graft executable"); return gr_cli_error(); }
    d.exe[n] = 0;
    char cfgdir[PATH_MAX];
    if (configs) {
        if (!realpath(configs, cfgdir)) { gr_fail(GR_ERR_NOT_FOUND, "%s: no such directory", configs); return gr_cli_error(); }
    } else if (!find_configs(d.exe, cfgdir, sizeof cfgdir)) {
        gr_fail(GR_ERR_NOT_FOUND, "configs/demo: not found here or beside %s (use --configs DIR)", d.exe);
        return gr_cli_error();
    }
    gr_status s = gr_mkdirs(d.dir);
    if (s != GR_OK) return gr_cli_error();
    if (chdir(d.dir) != 0) { gr_fail(GR_ERR_IO, "%s: cannot enter: %s", d.dir, strerror(errno)); return gr_cli_error(); }
    if (!gr_path_exists("configs/common.inc") && (s = copy_tree(cfgdir, "configs")) != GR_OK) return gr_cli_error();
    printf("graft demo in %s (configs: %s/configs, %d seed(s))\n", d.dir, d.dir, d.seeds);
    double t0 = now_s();
    s = run_demo(&d);
    if (s != GR_OK) return gr_cli_error();
    printf("demo: %.1f s\n", now_s() - t0);
    return 0;
}

const gr_command gr_cmd_demo = {
    "demo", cmd_demo, "the whole method on the synthetic world: tiny LMs, TaS, TaT, surrogate grafting, tables",
    "usage: graft demo [--dir DIR] [--seeds N] [--configs DIR]\n"
    "\n"
    "On the synthetic world (graft synth), pretrains four tiny LMs (OPT 2x64 and 4x128 sharing a\n"
    "tokenizer, a Llama 2x64 with its own, a deeper OPT 8x64), trains a VPG on the small OPT, then\n"
    "runs VPGTrans TaS (-> OPT 4x128) and TaT (-> Llama) against training from scratch on each\n"
    "target (N seeds, default 2), and surrogate grafting on the deep OPT (its prediction\n"
    "trajectory analysed, a surrogate built with range 2:7). Prints the speed-up table (epochs and\n"
    "FLOPs to reach scratch's best, per metric) and the surrogate table (surrogate pair vs grafted\n"
    "vs scratch), writes curves to DIR/plots and the tables to DIR/results.txt.\n"
    "\n"
    "Every step runs as a graft command in DIR (default graft-demo), its output in DIR/logs, and\n"
    "is skipped when its product exists: a second run only re-reports; delete a run directory\n"
    "to redo it. Configurations: configs/demo (copied to DIR/configs on the first run).\n"};
