/* `graft plot` on generated runs: a valid PNG of the requested size that actually shows every
 * run's colour, the default layout, and one-line errors for bad input.
 * usage: test_plot GRAFT_BINARY [KEEP_DIR]  (KEEP_DIR: write the runs and PNGs there and keep them) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cairo.h>

#include "base/fsutil.h"
#include "run/runlog.h"

static int checks, failures;
static const char *graft;
static char root[512];
static char err[4096];

static void check(int ok, const char *what)
{
    checks++;
    if (!ok) failures++;
    printf("%s: %s\n", ok ? "ok" : "FAIL", what);
}

static const char *at(const char *name)
{
    static char buf[8][700];
    static int k;
    char *s = buf[k++ % 8];
    snprintf(s, 700, "%s/%s", root, name);
    return s;
}

/* Runs `graft plot ARGS` (ARGS already quoted), keeps stderr in err[], returns the exit code. */
static int plot(const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' plot %s >/dev/null 2>stderr.txt", root, graft, args);
    int rc = system(cmd);
    err[0] = '\0';
    FILE *f = fopen(at("stderr.txt"), "r");
    if (f) {
        size_t n = fread(err, 1, sizeof err - 1, f);
        err[n] = '\0';
        fclose(f);
    }
    printf("  graft plot %s -> %d %s", args, WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, err[0] ? err : "\n");
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static int one_line_error(const char *must_contain)
{
    size_t n = strlen(err);
    return n > 0 && err[n - 1] == '\n' && strchr(err, '\n') == err + n - 1 && strncmp(err, "graft: ", 7) == 0 &&
           strstr(err, must_contain) != NULL;
}

/* A synthetic run: loss decaying towards `floor` with noise, CIDEr/Bleu_4 rising, on
 * `epochs` epochs of 200 steps, each step costing `step_flops` of which `frozen` is frozen. */
static void make_run(const char *name, double floor_loss, double speed, double step_flops, double frozen, int evals, int epochs)
{
    gr_runlog *log;
    if (gr_runlog_open(at(name), GR_RUN_NEW, &log) != GR_OK) { printf("%s\n", gr_last_error()); exit(1); }
    unsigned seed = 12345;
    int steps = 200 * epochs;
    if (evals) {
        gr_metric m[2] = {{"CIDEr", 0.02}, {"Bleu_4", 0.01}};
        gr_runlog_eval(log, "val", 0, 0, m, 2);
    }
    for (int s = 1; s <= steps; s++) {
        seed = seed * 1103515245u + 12345u;
        double noise = ((double)(seed >> 16 & 0x7fff) / 32768.0 - 0.5) * 0.35;
        double t = (double)s / 200.0;
        gr_step_record r = {
            .step = s, .epoch = t, .stage = "train", .loss = floor_loss + 4.0 * exp(-speed * t) + noise,
            .lr = 1e-4, .grad_norm = 1, .tokens_per_s = 2000, .examples_per_s = 50,
            .flops = {step_flops * frozen, step_flops * (1 - frozen) / 3, step_flops * (1 - frozen) / 3,
                      step_flops * (1 - frozen) / 3},
        };
        gr_runlog_step(log, &r);
        if (evals && s % 100 == 0) {
            double q = 1 - exp(-speed * t * 0.8);
            gr_metric m[2] = {{"CIDEr", 0.02 + (0.9 - floor_loss * 0.2) * q}, {"Bleu_4", 0.01 + 0.25 * q}};
            gr_runlog_eval(log, "val", s, t, m, 2);
        }
    }
    gr_runlog_close(log);
}

static int png_size(const char *path, int *w, int *h)
{
    unsigned char head[24];
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(head, 1, sizeof head, f);
    fclose(f);
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n != 24 || memcmp(head, sig, 8) != 0 || memcmp(head + 12, "IHDR", 4) != 0) return 0;
    *w = head[16] << 24 | head[17] << 16 | head[18] << 8 | head[19];
    *h = head[20] << 24 | head[21] << 16 | head[22] << 8 | head[23];
    return 1;
}

/* Pixels within a small distance of an opaque run colour (line interiors). */
static long colour_pixels(cairo_surface_t *s, int r, int g, int b)
{
    int w = cairo_image_surface_get_width(s), h = cairo_image_surface_get_height(s);
    int stride = cairo_image_surface_get_stride(s);
    unsigned char *data = cairo_image_surface_get_data(s);
    long n = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint32_t p = *(uint32_t *)(data + (size_t)y * (size_t)stride + (size_t)x * 4);
            int pr = p >> 16 & 255, pg = p >> 8 & 255, pb = p & 255;
            if (abs(pr - r) + abs(pg - g) + abs(pb - b) < 30) n++;
        }
    return n;
}

int main(int argc, char **argv)
{
    if (argc < 2) { fprintf(stderr, "usage: test_plot GRAFT [KEEP_DIR]\n"); return 2; }
    graft = argv[1];
    int keep = argc > 2;
    if (keep) {
        snprintf(root, sizeof root, "%s", argv[2]);
        char cmd[700];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
        if (system(cmd) != 0 || gr_mkdirs(root) != GR_OK) return 1;
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(root, sizeof root, "%s/graft-plot-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
        if (!mkdtemp(root)) { perror("mkdtemp"); return 1; }
    }
    /* three strategies at different costs: scratch (all trainable), TaS (frozen LLM), TaT */
    make_run("scratch", 2.2, 0.6, 4e9, 0.0, 1, 10);
    make_run("tas", 1.6, 1.5, 2.5e9, 0.6, 1, 4);
    make_run("tat", 1.5, 2.5, 2.5e9, 0.6, 1, 3);
    make_run("noeval", 2.0, 1.0, 1e9, 0.5, 0, 2);

    int w = 0, h = 0;
    check(plot("scratch tas tat --out curves.png --size 1100x1150 --label scratch --label 'TaS (frozen LM)' --title 'graft test'") == 0 &&
              png_size(at("curves.png"), &w, &h) && w == 1100 && h == 1150,
          "three runs: PNG with signature and the requested 1100x1150");
    cairo_surface_t *img = cairo_image_surface_create_from_png(at("curves.png"));
    int decoded = cairo_surface_status(img) == CAIRO_STATUS_SUCCESS;
    check(decoded && cairo_image_surface_get_width(img) == 1100, "PNG decodes completely (cairo/libpng)");
    if (decoded) {
        /* tab10 blue, orange and green: each run's curves are really drawn */
        long blue = colour_pixels(img, 31, 119, 180), orange = colour_pixels(img, 255, 127, 14), green = colour_pixels(img, 44, 160, 44);
        long red = colour_pixels(img, 214, 39, 40);
        printf("  run colour pixels: %ld %ld %ld (unused 4th colour: %ld)\n", blue, orange, green, red);
        check(blue > 500 && orange > 500 && green > 500 && red == 0, "each run's colour is on the figure, a 4th is not");
    }
    cairo_surface_destroy(img);

    check(plot("tas --metric CIDEr --x flops --out cider.png") == 0 && png_size(at("cider.png"), &w, &h) && w == 520 && h > 340,
          "one metric against FLOPs: one default-sized panel");
    check(plot("noeval") == 0 && png_size(at("noeval/plots/curves.png"), &w, &h) && w == 1040,
          "a run without evaluations still plots its loss (default out: RUN_DIR/plots/curves.png)");
    check(plot("tas noeval --metric val/Bleu_4 --metric loss --x epoch --out mixed.png") == 0 && png_size(at("mixed.png"), &w, &h),
          "runs with and without a metric on one figure");

    /* errors: one line naming what is wrong */
    check(plot("missing --out x.png") == 1 && one_line_error("missing/metrics.jsonl"), "missing run named");
    gr_mkdirs(at("emptyrun"));
    FILE *f = fopen(at("emptyrun/metrics.jsonl"), "w");
    fclose(f);
    check(plot("emptyrun --out x.png") == 1 && one_line_error("emptyrun/metrics.jsonl: no step or eval records"), "empty log named");
    gr_mkdirs(at("badrun"));
    f = fopen(at("badrun/metrics.jsonl"), "w");
    fputs("{\"type\":\"step\",\"step\":1}\n{\"type\":\"step\"}\n", f);
    fclose(f);
    check(plot("badrun --out x.png") == 1 && one_line_error("badrun/metrics.jsonl:1:"), "malformed log: file:line");
    check(plot("tas --metric METEOR --out x.png") == 1 && one_line_error("--metric METEOR: no run has it (available: loss, val/CIDEr, val/Bleu_4)"),
          "unknown metric lists the available ones");
    check(plot("tas --x time --out x.png") == 2 && one_line_error("--x 'time'"), "bad --x is a usage error");
    check(plot("tas --size 50x50 --out x.png") == 1 && one_line_error("out of range"), "absurd size refused");
    check(plot("tas tat") == 2 && one_line_error("--out"), "several runs need --out");
    check(plot("tas --out no/such/dir/x.png") == 1 && one_line_error("no/such/dir/x.png: no such directory"), "unwritable output named");
    check(!gr_path_exists(at("x.png")), "no PNG left behind by failures");

    if (!keep) {
        char cmd[700];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
        if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", root);
    } else {
        printf("kept in %s\n", root);
    }
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures ? 1 : 0;
}
