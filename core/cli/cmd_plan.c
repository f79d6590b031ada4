/* `graft plan`: predicted FLOPs and time of scratch vs TaS/TaT vs surrogate grafting before any
 * training (core/transfer/plan.h, docs/planning.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_config.h"
#include "commands.h"
#include "data/dataset.h"
#include "plugin/registry.h"
#include "transfer/plan.h"

extern const gr_command gr_cmd_plan;

/* The training engine declares the model.* / data.* / train.* keys; when it is linked in, `-c`
 * configs of `graft train` work here unchanged (a weak reference: the planner does not depend
 * on the engine being built). */
extern gr_status gr_engine_schema(void) __attribute__((weak));

#define MAX_RANGES 16

typedef struct plan_args {
    const char *target, *vision, *qformer, *source, *source_vision, *source_qformer, *backend;
    gr_surrogate_range ranges[MAX_RANGES];
    int n_ranges, mlp, no_cache;
    int64_t samples, tokens, rows;
    int epochs, source_epochs, stage2_epochs, s1, s2, s3, enc_layers;
} plan_args;

static int int_arg(const char *flag, const char *v, int64_t min, int64_t *out)
{
    char *end;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || x < min) {
        fprintf(stderr, "graft: plan: %s '%s': expected an integer >= %lld\n", flag, v, (long long)min);
        return 0;
    }
    *out = x;
    return 1;
}

static int is_blip2(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_t *c = json_load_file(path, 0, NULL);
    const json_t *mt = json_object_get(c, "model_type");
    int r = json_is_string(mt) && strcmp(json_string_value(mt), "blip-2") == 0;
    json_decref(c);
    return r;
}

static const char *cfg_str(const gr_config *cfg, const char *key)
{
    return gr_config_schema_find(key) && gr_config_is_set(cfg, key) ? gr_config_string(cfg, key) : NULL;
}

/* model.<role>.* from a config (when the engine declared them). */
static void from_config(const gr_config *cfg, plan_args *a)
{
    const char *v;
    if ((v = cfg_str(cfg, "model.target.blip2")) && *v) a->target = v;
    else if ((v = cfg_str(cfg, "model.target.lm_dir")) && *v) a->target = v;
    if ((v = cfg_str(cfg, "model.target.vision_dir")) && *v) a->vision = v;
    if ((v = cfg_str(cfg, "model.target.qformer_dir")) && *v) a->qformer = v;
    if ((v = cfg_str(cfg, "model.source.blip2")) && *v) a->source = v;
    else if ((v = cfg_str(cfg, "model.source.lm_dir")) && *v) a->source = v;
    if ((v = cfg_str(cfg, "model.source.vision_dir")) && *v) a->source_vision = v;
    if ((v = cfg_str(cfg, "model.source.qformer_dir")) && *v) a->source_qformer = v;
    if ((v = cfg_str(cfg, "model.target.projector")) && strcmp(v, "mlp") == 0) a->mlp = 1;
    if (gr_config_schema_find("train.epochs")) a->epochs = (int)gr_config_int(cfg, "train.epochs");
    if (gr_config_schema_find("data.max_text_tokens")) a->tokens = gr_config_int(cfg, "data.max_text_tokens");
    if (gr_config_schema_find("data.cache_features")) a->no_cache = !gr_config_bool(cfg, "data.cache_features");
    const char *train = cfg_str(cfg, "data.train");
    if (train && *train) {
        gr_dataset_spec spec = {.path = train};
        const char *fmt = cfg_str(cfg, "data.format");
        spec.format = !fmt || strcmp(fmt, "karpathy") == 0 ? GR_DATASET_KARPATHY
                      : strcmp(fmt, "jsonl") == 0          ? GR_DATASET_JSONL
                      : strcmp(fmt, "coco") == 0           ? GR_DATASET_COCO_CAPTIONS
                                                           : GR_DATASET_VQAV2;
        gr_dataset *ds;
        if (gr_dataset_open(&spec, &ds) == GR_OK) {
            a->samples = (int64_t)gr_dataset_size(ds);
            gr_dataset_free(ds);
        }
    }
}

static int parse(int argc, char **argv, plan_args *a)
{
    int64_t v;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        int has = i + 1 < argc;
        const char **str = strcmp(f, "--target") == 0          ? &a->target
                           : strcmp(f, "--vision") == 0        ? &a->vision
                           : strcmp(f, "--qformer") == 0       ? &a->qformer
                           : strcmp(f, "--source") == 0        ? &a->source
                           : strcmp(f, "--source-vision") == 0 ? &a->source_vision
                           : strcmp(f, "--source-qformer") == 0 ? &a->source_qformer
                           : strcmp(f, "--backend") == 0       ? &a->backend
                                                               : NULL;
        struct { const char *flag; int64_t min; int64_t *i64; int *i32; } nums[] = {
            {"--images", 1, &a->samples, NULL}, {"--tokens", 1, &a->tokens, NULL}, {"--measure-rows", 1, &a->rows, NULL},
            {"--epochs", 1, NULL, &a->epochs}, {"--source-epochs", 0, NULL, &a->source_epochs},
            {"--stage2-epochs", 0, NULL, &a->stage2_epochs}, {"--sur-stage1", 0, NULL, &a->s1},
            {"--sur-stage2", 0, NULL, &a->s2}, {"--sur-stage3", 0, NULL, &a->s3},
            {"--sur-encoder-layers", 0, NULL, &a->enc_layers},
        };
        int done = 0;
        if (str && has) {
            *str = argv[++i];
            done = 1;
        }
        for (size_t k = 0; !done && k < sizeof nums / sizeof *nums; k++)
            if (strcmp(f, nums[k].flag) == 0 && has) {
                if (!int_arg(f, argv[++i], nums[k].min, &v) || v > 1000000000) return 2;
                if (nums[k].i64) *nums[k].i64 = v;
                else *nums[k].i32 = (int)v;
                done = 1;
            }
        if (done) continue;
        if (strcmp(f, "--surrogate-range") == 0 && has) {
            if (a->n_ranges == MAX_RANGES) return fprintf(stderr, "graft: plan: too many ranges\n"), 2;
            if (gr_surrogate_parse_range(argv[++i], "--surrogate-range", &a->ranges[a->n_ranges++]) != GR_OK)
                return gr_cli_error();
        } else if (strcmp(f, "--mlp") == 0) {
            a->mlp = 1;
        } else if (strcmp(f, "--no-cache") == 0) {
            a->no_cache = 1;
        } else {
            fprintf(stderr, "graft: plan: unknown option or missing value '%s' (see 'graft help plan')\n", f);
            return 2;
        }
    }
    return 0;
}

static void human(double f, char *buf, size_t cap)
{
    const char *u[] = {"", "K", "M", "G", "T", "P", "E"};
    int k = 0;
    while (f >= 1000 && k < 6) { f /= 1000; k++; }
    snprintf(buf, cap, "%.3g %sFLOP", f, u[k]);
}

static void seconds(double s, char *buf, size_t cap)
{
    if (s < 120) snprintf(buf, cap, "%.1f s", s);
    else if (s < 7200) snprintf(buf, cap, "%.1f min", s / 60);
    else if (s < 48 * 3600) snprintf(buf, cap, "%.1f h", s / 3600);
    else snprintf(buf, cap, "%.1f days", s / 86400);
}

static int run_plan(int argc, char **argv)
{
    if (gr_engine_schema && gr_engine_schema() != GR_OK) return gr_cli_error();
    gr_config *cfg;
    if (gr_cli_config_open(&argc, argv, &cfg) != GR_OK) return gr_cli_error();
    if (gr_config_validate(cfg) != GR_OK) {
        gr_config_free(cfg);
        return gr_cli_error();
    }
    plan_args a = {.tokens = 24, .epochs = 10, .s1 = 1, .s2 = 1, .enc_layers = 8, .stage2_epochs = -1, .rows = 256};
    from_config(cfg, &a);
    int rc = parse(argc, argv, &a);
    if (rc) { gr_config_free(cfg); return rc; }
    if (!a.target || a.samples <= 0) {
        fprintf(stderr, "graft: plan: needs --target DIR and --images N (or a -c config with model.target.* and "
                        "data.train)\n");
        gr_config_free(cfg);
        return 2;
    }
    gr_plan_inputs in;
    memset(&in, 0, sizeof in);
    gr_status s = is_blip2(a.target) ? gr_plan_vlm_open(a.target, NULL, NULL, NULL, a.mlp, &in.target)
                                     : gr_plan_vlm_open(NULL, a.vision, a.qformer, a.target, a.mlp, &in.target);
    if (s == GR_OK && a.source) {
        in.has_source = 1;
        s = is_blip2(a.source) ? gr_plan_vlm_open(a.source, NULL, NULL, NULL, a.mlp, &in.source)
                               : gr_plan_vlm_open(NULL, a.source_vision ? a.source_vision : a.vision,
                                                  a.source_qformer ? a.source_qformer : a.qformer, a.source, a.mlp,
                                                  &in.source);
        in.same_family = in.source.lm.arch == in.target.lm.arch;
    }
    if (s != GR_OK) { gr_config_free(cfg); return gr_cli_error(); }
    in.ranges = a.ranges;
    in.n_ranges = a.n_ranges;
    in.samples = a.samples;
    in.text_tokens = a.tokens;
    in.cached_features = !a.no_cache;
    in.epochs = a.epochs;
    in.source_epochs = a.source_epochs;
    in.tas_stage2_epochs = a.stage2_epochs >= 0 ? a.stage2_epochs : a.epochs - 1;
    in.sur_stage1_epochs = a.s1;
    in.sur_stage2_epochs = a.s2;
    in.sur_stage3_epochs = a.s3;
    in.sur_encoder_layers = a.enc_layers;
    gr_plan pl;
    if (gr_plan_compute(&in, &pl) != GR_OK) { gr_config_free(cfg); return gr_cli_error(); }

    /* Time: the backend's matmul speed on the target LM's shapes. */
    const char *bname = a.backend ? a.backend : gr_config_string(cfg, "backend.name");
    gr_backend_options bo;
    gr_cli_backend_options(cfg, &bo);
    gr_plugins_scan();
    gr_backend *be = NULL;
    double rate = 0;
    if (gr_backend_open(bname, &bo, &be) != GR_OK || gr_plan_measure(be, &in.target.lm, a.rows, 0.3, &rate) != GR_OK) {
        if (be) gr_backend_close(be);
        gr_config_free(cfg);
        return gr_cli_error();
    }
    gr_backend_close(be);

    char b1[32], b2[32], b3[32];
    printf("plan: %lld samples x %lld text tokens, %s features; target LM %d layers (d %lld)\n", (long long)a.samples,
           (long long)a.tokens, in.cached_features ? "cached tower" : "tower every step", in.target.lm.layers,
           (long long)in.target.lm.d);
    human(rate, b1, sizeof b1);
    printf("backend %s: %s/s on the target's matmul shapes (%lld rows)\n\n", bname, b1, (long long)a.rows);
    printf("%-10s %-40s %6s %14s %14s %12s\n", "strategy", "stage", "epochs", "per sample", "total", "time");
    for (int i = 0; i < pl.n; i++) {
        const gr_plan_line *l = &pl.line[i];
        human(gr_flop_total(&l->per_sample), b1, sizeof b1);
        human(l->flops, b2, sizeof b2);
        seconds(rate > 0 ? l->flops / rate : 0, b3, sizeof b3);
        printf("%-10s %-40s %6.0f %14s %14s %12s\n", l->strategy, l->stage, l->epochs,
               gr_flop_total(&l->per_sample) > 0 ? b1 : "-", b2, b3);
    }
    printf("\n");
    human(pl.total_scratch, b1, sizeof b1);
    seconds(pl.total_scratch / rate, b2, sizeof b2);
    printf("scratch     %s  (%s)\n", b1, b2);
    if (in.has_source) {
        human(pl.total_transfer, b1, sizeof b1);
        seconds(pl.total_transfer / rate, b2, sizeof b2);
        printf("%-11s %s  (%s)  scratch / transfer = %.2fx", in.same_family ? "tas" : "tat", b1, b2,
               pl.total_scratch / pl.total_transfer);
        if (pl.source_vpg > 0) printf(", %.2fx including the source VPG", pl.total_scratch / pl.total_transfer_with_source);
        printf("\n");
    }
    if (a.n_ranges) {
        human(pl.total_surrogate, b1, sizeof b1);
        seconds(pl.total_surrogate / rate, b2, sizeof b2);
        printf("surrogate   %s  (%s)  %d of %d LM layers; scratch / surrogate = %.2fx\n", b1, b2, pl.surrogate_layers,
               in.target.lm.layers, pl.total_scratch / pl.total_surrogate);
    }
    printf("(FLOPs of the configured epochs; the speed-up a run achieves depends on when it reaches the\n"
           " scratch best: graft train reports it in report.json.)\n");
    gr_config_free(cfg);
    return 0;
}

const gr_command gr_cmd_plan = {
    "plan", run_plan, "predict FLOPs and time of scratch vs TaS/TaT vs surrogate before training",
    "usage: graft plan [-c CFG] --target DIR [--vision DIR] [--qformer DIR] [--source DIR]\n"
    "                  [--surrogate-range a:b]... --images N [--tokens T] [--epochs E]\n"
    "                  [--source-epochs E] [--stage2-epochs E] [--sur-stage1 E] [--sur-stage2 E]\n"
    "                  [--sur-stage3 E] [--sur-encoder-layers K] [--mlp] [--no-cache]\n"
    "                  [--backend NAME] [--measure-rows R]\n\n"
    "Predicts, from the models' config.json files only, the training FLOPs of\n"
    "  scratch    E epochs of VPG + projector on the frozen target LM;\n"
    "  tas / tat  the word converter (5 epochs within a family, 8 across), a 1-epoch projector\n"
    "             warm-up and --stage2-epochs (default E-1) of VPG + projector; with\n"
    "             --source-epochs also the source VPG's own training (reported separately);\n"
    "  surrogate  stage 1 (translator + VPG + projector on the surrogate), stage 2 (+ the tower's\n"
    "             last K layers, translator frozen), optional stage 3 on the full target;\n"
    "and the time on the backend from a quick matmul measurement on the target LM's shapes.\n"
    "--target/--source: an LM directory (with --vision/--qformer for the other parts) or a BLIP-2\n"
    "directory. With -c CFG (graft train's configuration) model.target.*, model.source.*,\n"
    "data.train (its size), data.max_text_tokens and train.epochs are read from it; flags win.\n"
    "The FLOP model and its exactness are described in docs/planning.md.\n",
};
