/* The cost planner (see plan.h and docs/planning.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/fsutil.h"
#include "graft/ops.h"
#include "transfer/plan.h"

static json_t *load_config(const char *dir, char **path_out, gr_status *s)
{
    char *path = gr_path_join(dir, "config.json");
    *path_out = path;
    if (!path) { *s = gr_fail(GR_ERR_NOMEM, "out of memory"); return NULL; }
    json_error_t je;
    json_t *cfg = json_load_file(path, 0, &je);
    if (!cfg) *s = gr_path_exists(path) ? gr_fail(GR_ERR_FORMAT, "%s:%d: %s", path, je.line, je.text)
                                        : gr_fail(GR_ERR_NOT_FOUND, "%s: not found", path);
    return cfg;
}

static int64_t int_or(const json_t *o, const char *k, int64_t def)
{
    const json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? json_integer_value(v) : def;
}

gr_status gr_plan_vlm_open(const char *blip2_dir, const char *vision_dir, const char *qformer_dir,
                           const char *lm_dir, int mlp, gr_plan_vlm *v)
{
    memset(v, 0, sizeof *v);
    v->mlp = mlp;
    gr_status s = GR_OK;
    char *path = NULL;
    json_t *cfg = NULL;
    if (blip2_dir && *blip2_dir) {
        if (!(cfg = load_config(blip2_dir, &path, &s))) goto done;
        const json_t *vc = json_object_get(cfg, "vision_config"), *qc = json_object_get(cfg, "qformer_config"),
                     *tc = json_object_get(cfg, "text_config");
        if (!json_is_object(vc) || !json_is_object(qc) || !json_is_object(tc)) {
            s = gr_fail(GR_ERR_FORMAT, "%s: a BLIP-2 config needs vision_config, qformer_config and text_config", path);
            goto done;
        }
        v->has_vision = v->has_qformer = 1;
        if ((s = gr_vit_shape_from_config(vc, path, &v->vit)) ||
            (s = gr_qformer_shape_from_config(qc, path, v->vit.d, int_or(cfg, "num_query_tokens", 32), &v->qformer)) ||
            (s = gr_lm_shape_from_config(tc, path, &v->lm)))
            goto done;
        goto done;
    }
    if (!lm_dir || !*lm_dir) return gr_fail(GR_ERR_INVALID, "plan: no language model directory given");
    if (vision_dir && *vision_dir) {
        if (!(cfg = load_config(vision_dir, &path, &s)) || (s = gr_vit_shape_from_config(cfg, path, &v->vit))) goto done;
        v->has_vision = 1;
        json_decref(cfg);
        free(path);
        cfg = NULL;
        path = NULL;
    }
    if (qformer_dir && *qformer_dir) {
        if (!(cfg = load_config(qformer_dir, &path, &s))) goto done;
        int64_t enc = v->has_vision ? v->vit.d : int_or(cfg, "encoder_hidden_size", 1408);
        if ((s = gr_qformer_shape_from_config(cfg, path, enc, int_or(cfg, "num_query_tokens", 32), &v->qformer))) goto done;
        v->has_qformer = 1;
        json_decref(cfg);
        free(path);
        cfg = NULL;
        path = NULL;
    }
    s = gr_lm_shape_from_dir(lm_dir, &v->lm);
done:
    json_decref(cfg);
    free(path);
    return s;
}

void gr_plan_vlm_surrogate(const gr_plan_vlm *t, const gr_surrogate_layout *lay, gr_plan_vlm *out)
{
    *out = *t;
    out->lm.layers = lay->num_kept;
}

double gr_plan_tower(const gr_plan_vlm *v)
{
    if (!v->has_vision) return 0;
    gr_flop_count c;
    gr_flops_vit(&v->vit, 1, 0, 0, &c);
    return gr_flop_total(&c);
}

void gr_plan_step_flops(const gr_plan_vlm *v, const gr_plan_step *st, int64_t text_tokens, int cached, gr_flop_count *out)
{
    memset(out, 0, sizeof *out);
    gr_flop_count c;
    int backward = st->vpg || st->projector || st->vision_last > 0 || st->train_translators || st->train_lm;
    int64_t feat_rows = 0, feat_dim = 0;
    if (v->has_vision) {
        int64_t g = v->vit.image / v->vit.patch;
        feat_rows = g * g + 1;
        feat_dim = v->vit.d;
        if (!cached || st->vision_last > 0) {
            gr_flops_vit(&v->vit, 1, st->vision_last, backward, &c);
            gr_flop_add(out, &c, 1);
        }
    }
    int grad = st->vision_last > 0;
    if (v->has_qformer) {
        gr_flops_qformer(&v->qformer, 1, feat_rows, grad, st->vpg, backward, &c);
        gr_flop_add(out, &c, 1);
        grad = grad || st->vpg;
        feat_rows = v->qformer.queries;
        feat_dim = v->qformer.d;
    }
    if (feat_rows) {
        gr_flops_projector(feat_rows, feat_dim, v->proj_hidden, v->lm.embed_dim, v->mlp, grad, st->projector, backward, &c);
        gr_flop_add(out, &c, 1);
        grad = grad || st->projector;
    }
    gr_lm_pass p = {.batch = 1, .prefix = feat_rows, .seq = text_tokens, .prefix_grad = grad,
                    .train_all = st->train_lm, .want_loss = backward};
    if (v->lm.arch == GR_LM_T5) { /* prefix-LM split at a random word in [0, len/2]: a quarter on average */
        p.seq = text_tokens / 4;
        p.label_len = text_tokens - p.seq;
    }
    unsigned char *train = NULL;
    if (st->layout) {
        p.layers = st->layout->kept;
        p.num_layers = st->layout->num_kept;
        if (st->train_translators && (train = calloc((size_t)st->layout->num_kept, 1)) != NULL) {
            for (int i = 0; i < st->layout->num_translators; i++) train[st->layout->translators[i]] = 1;
            p.train_layer = train;
        }
    }
    gr_flops_lm(&v->lm, &p, &c);
    gr_flop_add(out, &c, 1);
    free(train);
}

static gr_plan_line *add_line(gr_plan *pl, const char *strategy, const char *stage, double epochs,
                              const gr_flop_count *per_sample, double samples, double extra)
{
    if (pl->n == GR_PLAN_MAX_LINES) return NULL;
    gr_plan_line *l = &pl->line[pl->n++];
    snprintf(l->strategy, sizeof l->strategy, "%s", strategy);
    snprintf(l->stage, sizeof l->stage, "%s", stage);
    l->epochs = epochs;
    if (per_sample) l->per_sample = *per_sample;
    l->flops = (per_sample ? gr_flop_total(per_sample) * samples * epochs : 0) + extra;
    return l;
}

gr_status gr_plan_compute(const gr_plan_inputs *in, gr_plan *pl)
{
    memset(pl, 0, sizeof *pl);
    if (in->samples <= 0 || in->text_tokens <= 0 || in->epochs <= 0)
        return gr_fail(GR_ERR_INVALID, "plan: samples, tokens per sample and epochs must be positive");
    double N = (double)in->samples, T = (double)in->text_tokens;
    int cached = in->cached_features;
    gr_flop_count step;
    gr_plan_step full = {.vpg = 1, .projector = 1};

    /* scratch */
    double tower = cached ? gr_plan_tower(&in->target) * N : 0;
    gr_plan_step_flops(&in->target, &full, in->text_tokens, cached, &step);
    add_line(pl, "scratch", "VPG + projector, LM frozen", in->epochs, &step, N, 0);
    if (tower > 0) add_line(pl, "scratch", "tower features (once)", 0, NULL, 0, tower);
    pl->total_scratch = pl->line[0].flops + tower;

    /* TaS / TaT */
    if (in->has_source) {
        const char *name = in->source.lm.arch == in->target.lm.arch ? "tas" : "tat";
        int conv_epochs = in->same_family ? 5 : 8;
        double ds = (double)in->source.lm.embed_dim, dt = (double)in->target.lm.embed_dim;
        /* Linear(d_src, d_tgt) over every caption token: forward + weight gradient (the
         * embeddings are inputs, no dX). */
        double conv = 4.0 * ds * dt * N * T * conv_epochs;
        char what[64];
        snprintf(what, sizeof what, "word converter (%d epochs, host)", conv_epochs);
        add_line(pl, name, what, conv_epochs, NULL, 0, conv);
        gr_plan_step proj = {.projector = 1};
        gr_plan_step_flops(&in->target, &proj, in->text_tokens, cached, &step);
        add_line(pl, name, "stage 1: projector warm-up", 1, &step, N, 0);
        gr_plan_step_flops(&in->target, &full, in->text_tokens, cached, &step);
        add_line(pl, name, "stage 2: VPG + projector", in->tas_stage2_epochs, &step, N, 0);
        if (tower > 0) add_line(pl, name, "tower features (once)", 0, NULL, 0, tower);
        pl->total_transfer = conv + tower;
        for (int i = 0; i < pl->n; i++)
            if (strcmp(pl->line[i].strategy, name) == 0 && pl->line[i].stage[0] == 's')
                pl->total_transfer += pl->line[i].flops;
        if (in->source_epochs > 0) {
            gr_plan_step_flops(&in->source, &full, in->text_tokens, cached, &step);
            double src_tower = cached ? gr_plan_tower(&in->source) * N : 0;
            gr_plan_line *l = add_line(pl, name, "source VPG training (reused)", in->source_epochs, &step, N, src_tower);
            pl->source_vpg = l ? l->flops : 0;
        }
        pl->total_transfer_with_source = pl->total_transfer + pl->source_vpg;
    }

    /* surrogate */
    if (in->n_ranges > 0) {
        gr_surrogate_layout lay;
        gr_status s = gr_surrogate_layout_make(in->target.lm.layers, in->ranges, in->n_ranges, &lay);
        if (s) return s;
        pl->surrogate_layers = lay.num_kept;
        gr_plan_step s1 = {.vpg = 1, .projector = 1, .layout = &lay, .train_translators = 1};
        gr_plan_step s2 = {.vpg = 1, .projector = 1, .layout = &lay,
                           .vision_last = in->target.has_vision ? in->sur_encoder_layers : 0};
        if (s2.vision_last > in->target.vit.layers) s2.vision_last = (int)in->target.vit.layers;
        double sum = 0;
        gr_plan_line *l;
        gr_plan_step_flops(&in->target, &s1, in->text_tokens, cached, &step);
        if ((l = add_line(pl, "surrogate", "stage 1: translator + VPG + projector", in->sur_stage1_epochs, &step, N, 0)))
            sum += l->flops;
        gr_plan_step_flops(&in->target, &s2, in->text_tokens, cached, &step);
        char what[64];
        snprintf(what, sizeof what, "stage 2: + last %d tower layers", s2.vision_last);
        if ((l = add_line(pl, "surrogate", what, in->sur_stage2_epochs, &step, N, 0))) sum += l->flops;
        if (in->sur_stage3_epochs > 0) {
            gr_plan_step_flops(&in->target, &full, in->text_tokens, cached, &step);
            if ((l = add_line(pl, "surrogate", "stage 3: on the full target", in->sur_stage3_epochs, &step, N, 0)))
                sum += l->flops;
        }
        if (tower > 0 && (l = add_line(pl, "surrogate", "tower features (once)", 0, NULL, 0, tower))) sum += l->flops;
        pl->total_surrogate = sum;
        gr_surrogate_layout_free(&lay);
    }
    return GR_OK;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

gr_status gr_plan_measure(gr_backend *be, const gr_lm_shape *lm, int64_t rows, double min_seconds, double *rate)
{
    *rate = 0;
    gr_ctx *ctx = gr_ctx_create(be);
    if (!ctx) return gr_fail(GR_ERR_NOMEM, "plan: out of memory");
    gr_ctx_set_grad_enabled(ctx, 0);
    int64_t d = lm->d, f = lm->ffn, q = lm->heads * lm->head_dim;
    /* The shapes that dominate a step: attention projections and the feed-forward. */
    int64_t xs[2] = {rows, d}, hs[2] = {rows, f}, wq[2] = {q, d}, w1[2] = {f, d}, w2[2] = {d, f};
    gr_tensor *x = gr_param_new(ctx, "x", GR_F32, 2, xs), *h = gr_param_new(ctx, "h", GR_F32, 2, hs);
    gr_tensor *Wq = gr_param_new(ctx, "wq", GR_F32, 2, wq), *W1 = gr_param_new(ctx, "w1", GR_F32, 2, w1);
    gr_tensor *W2 = gr_param_new(ctx, "w2", GR_F32, 2, w2);
    gr_status s = gr_ctx_status(ctx);
    size_t big = (size_t)(rows * (f > d ? f : d) > f * d ? rows * (f > d ? f : d) : f * d);
    float *zero = s == GR_OK ? calloc(big, sizeof *zero) : NULL;
    if (s == GR_OK && !zero) s = gr_fail(GR_ERR_NOMEM, "plan: out of memory");
    /* Defined inputs (uninitialised memory could hold denormals and slow BLAS down). */
    gr_tensor *all[5] = {x, h, Wq, W1, W2};
    for (int i = 0; i < 5 && s == GR_OK; i++) s = gr_upload(ctx, all[i], zero);
    free(zero);
    double flops = 0, t0 = now(), t = 0;
    int iters = 0;
    while (s == GR_OK && (iters < 2 || t < min_seconds)) {
        gr_linear(ctx, x, Wq, NULL);
        gr_linear(ctx, x, W1, NULL);
        gr_linear(ctx, h, W2, NULL);
        s = gr_ctx_status(ctx);
        gr_ctx_reset(ctx);
        if (iters++ == 0) t0 = now(); /* the first round warms caches and thread pools */
        else flops += 2.0 * (double)rows * ((double)d * (double)q + 2.0 * (double)d * (double)f);
        t = now() - t0;
    }
    if (s == GR_OK) *rate = t > 0 ? flops / t : 0;
    gr_ctx_destroy(ctx);
    return s;
}
