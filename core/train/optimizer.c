#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/optimizer.h"

typedef struct opt_slot {
    gr_tensor *param, *m, *v;
    double lr_scale;
    int decays;
} opt_slot;

struct gr_optimizer {
    gr_ctx *ctx;
    gr_adamw_config cfg;
    opt_slot *slots;
    int count;
    int64_t steps;
    gr_tensor *norm_scratch; /* [1] F32 */
};

static int name_has(const char *name, const char *part)
{
    return name && strstr(name, part) != NULL;
}

int gr_param_decays(const gr_tensor *t)
{
    /* LAVIS: `p.ndim < 2 or "bias" in n or "ln" in n or "bn" in n` -> no decay; HF names
     * spell norms "layer_norm"/"layernorm"/"LayerNorm"/"norm", which the ndim rule covers. */
    if (t->ndim < 2) return 0;
    if (name_has(t->name, "bias") || name_has(t->name, "ln") || name_has(t->name, "bn")) return 0;
    return 1;
}

gr_status gr_optimizer_create(gr_ctx *ctx, const gr_adamw_config *cfg, gr_tensor *const *params,
                              const double *lr_scale, int count, gr_optimizer **out)
{
    gr_optimizer *o = calloc(1, sizeof *o);
    if (!o) return gr_fail(GR_ERR_NOMEM, "optimizer: out of memory");
    o->ctx = ctx;
    o->cfg = *cfg;
    o->count = count;
    o->slots = calloc((size_t)(count ? count : 1), sizeof *o->slots);
    if (!o->slots) { free(o); return gr_fail(GR_ERR_NOMEM, "optimizer: out of memory"); }
    for (int i = 0; i < count; i++) {
        gr_tensor *p = params[i];
        if (!gr_is_trainable(p) || p->dtype != GR_F32) {
            gr_optimizer_free(o);
            return gr_fail(GR_ERR_INVALID, "optimizer: tensor %s must be a trainable F32 parameter",
                           p->name ? p->name : "?");
        }
        char name[512];
        snprintf(name, sizeof name, "optimizer.m.%s", p->name ? p->name : "?");
        o->slots[i].m = gr_param_new(ctx, name, GR_F32, p->ndim, p->shape);
        snprintf(name, sizeof name, "optimizer.v.%s", p->name ? p->name : "?");
        o->slots[i].v = gr_param_new(ctx, name, GR_F32, p->ndim, p->shape);
        if (!o->slots[i].m || !o->slots[i].v) { gr_optimizer_free(o); return gr_ctx_status(ctx); }
        gr_backend *be = gr_ctx_backend(ctx);
        gr_status s = be->iface->fill(be->ctx, o->slots[i].m, 0.0f);
        if (s == GR_OK) s = be->iface->fill(be->ctx, o->slots[i].v, 0.0f);
        if (s != GR_OK) { gr_optimizer_free(o); return s; }
        o->slots[i].param = p;
        o->slots[i].lr_scale = lr_scale ? lr_scale[i] : 1.0;
        o->slots[i].decays = gr_param_decays(p);
    }
    o->norm_scratch = gr_param_new(ctx, "optimizer.norm", GR_F32, 1, (int64_t[]){1});
    if (!o->norm_scratch) { gr_optimizer_free(o); return gr_ctx_status(ctx); }
    *out = o;
    return GR_OK;
}

void gr_optimizer_free(gr_optimizer *o)
{
    if (!o) return;
    for (int i = 0; i < o->count; i++) {
        if (o->slots[i].m) gr_tensor_free(o->ctx, o->slots[i].m);
        if (o->slots[i].v) gr_tensor_free(o->ctx, o->slots[i].v);
    }
    if (o->norm_scratch) gr_tensor_free(o->ctx, o->norm_scratch);
    free(o->slots);
    free(o);
}

void gr_optimizer_zero_grad(gr_optimizer *o)
{
    for (int i = 0; i < o->count; i++) gr_zero_grad(o->ctx, o->slots[i].param);
}

gr_status gr_optimizer_step(gr_optimizer *o, double lr, int accum, gr_step_result *res)
{
    gr_backend *be = gr_ctx_backend(o->ctx);
    if (accum < 1) accum = 1;
    /* Global norm over every gradient, accumulated in double on the host. */
    double sumsq = 0.0;
    for (int i = 0; i < o->count; i++) {
        gr_tensor *g = gr_grad(o->slots[i].param);
        if (!g) continue;
        gr_status s = be->iface->sum_squares(be->ctx, o->norm_scratch, g);
        float part = 0.0f;
        if (s == GR_OK) s = be->iface->download(be->ctx, o->norm_scratch->buffer,
                                                o->norm_scratch->offset, &part, sizeof part);
        if (s != GR_OK) return s;
        sumsq += (double)part;
    }
    double avg = 1.0 / (double)accum;
    double norm = sqrt(sumsq) * avg;
    memset(res, 0, sizeof *res);
    res->grad_norm = norm;
    res->clip_coef = 1.0;
    if (!isfinite(norm)) {
        res->skipped = 1;
        gr_optimizer_zero_grad(o);
        return GR_OK;
    }
    /* torch.nn.utils.clip_grad_norm_: coef = max_norm / (norm + 1e-6), applied when < 1. */
    if (o->cfg.grad_clip > 0.0) {
        double coef = o->cfg.grad_clip / (norm + 1e-6);
        if (coef < 1.0) res->clip_coef = coef;
    }
    o->steps++;
    double bc1 = 1.0 - pow(o->cfg.beta1, (double)o->steps);
    double bc2 = 1.0 - pow(o->cfg.beta2, (double)o->steps);
    for (int i = 0; i < o->count; i++) {
        opt_slot *sl = &o->slots[i];
        gr_tensor *g = gr_grad(sl->param);
        if (!g) continue; /* untouched this step: torch skips params whose grad is None */
        gr_adamw_args a = {
            .param = sl->param, .grad = g, .m = sl->m, .v = sl->v,
            .lr = (float)(lr * sl->lr_scale),
            .beta1 = (float)o->cfg.beta1, .beta2 = (float)o->cfg.beta2, .eps = (float)o->cfg.eps,
            .weight_decay = sl->decays ? (float)o->cfg.weight_decay : 0.0f,
            .bias_correction1 = (float)bc1, .bias_correction2 = (float)bc2,
            .grad_scale = (float)(avg * res->clip_coef),
        };
        gr_status s = be->iface->adamw(be->ctx, &a);
        if (s != GR_OK) return s;
    }
    gr_optimizer_zero_grad(o);
    return GR_OK;
}

int64_t gr_optimizer_steps(const gr_optimizer *o) { return o->steps; }
void gr_optimizer_set_steps(gr_optimizer *o, int64_t steps) { o->steps = steps; }
int gr_optimizer_count(const gr_optimizer *o) { return o->count; }
gr_tensor *gr_optimizer_param(const gr_optimizer *o, int i) { return o->slots[i].param; }
gr_tensor *gr_optimizer_m(const gr_optimizer *o, int i) { return o->slots[i].m; }
gr_tensor *gr_optimizer_v(const gr_optimizer *o, int i) { return o->slots[i].v; }
