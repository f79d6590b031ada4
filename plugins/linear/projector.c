/* Projector plugins: `linear` (BLIP-2's language_projection: nn.Linear with bias) and `mlp`
 * (Linear-act-Linear as nn.Sequential, LLaVA's mm_projector: names 0.weight, 0.bias, 2.weight,
 * 2.bias). Names are relative to the source prefix ("language_projection." in BLIP-2).
 *
 * Random init as HF's _init_weights: weights N(0, initializer_range) (the source config's key,
 * 0.02 without a config), biases zero. With a checkpoint, a spec dimension of 0 is taken from
 * the stored weight. */
#include "projector.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vcommon.h"

struct gr_projector {
    int mlp;
    int64_t in_dim, hidden_dim, out_dim;
    gr_unary_op act;
    gr_tensor *w0, *b0, *w2, *b2;
    vc_params ps;
};

/* A dimension given as 0 in the spec, read from the stored weight `name` (dim `axis`). */
static void infer_dim(const gr_model_source *src, const char *name, int axis, int64_t *dim)
{
    if (*dim > 0 || !src->weights) return;
    char full[512];
    snprintf(full, sizeof full, "%s%s", src->prefix ? src->prefix : "", name);
    const gr_weight_info *wi = gr_weights_find(src->weights, full);
    if (wi && wi->ndim == 2) *dim = wi->shape[axis];
}

static gr_status proj_open(gr_ctx *ctx, const gr_model_source *src, const gr_projector_spec *spec,
                           int mlp, gr_projector **out)
{
    *out = NULL;
    const char *who = mlp ? "mlp projector" : "linear projector";
    if (!spec) return gr_fail(GR_ERR_INVALID, "%s: no spec given", who);
    gr_projector *p = calloc(1, sizeof *p);
    if (!p) return gr_fail(GR_ERR_NOMEM, "out of memory (%s)", who);
    p->mlp = mlp;
    p->in_dim = spec->in_dim;
    p->out_dim = spec->out_dim;
    p->hidden_dim = mlp ? spec->hidden_dim : 0;
    p->act = spec->act;
    const char *first = mlp ? "0.weight" : "weight", *last = mlp ? "2.weight" : "weight";
    infer_dim(src, first, 1, &p->in_dim);
    infer_dim(src, last, 0, &p->out_dim);
    if (mlp) infer_dim(src, "0.weight", 0, &p->hidden_dim);
    if (mlp && p->hidden_dim <= 0) p->hidden_dim = p->out_dim;
    if (p->in_dim <= 0 || p->out_dim <= 0 || (unsigned)p->act >= GR_ACT_COUNT) {
        free(p);
        return gr_fail(GR_ERR_INVALID, "%s%s: invalid spec (in_dim %lld, out_dim %lld)",
                       src->prefix ? src->prefix : "", who, (long long)spec->in_dim,
                       (long long)spec->out_dim);
    }
    double std = 0.02;
    vc_cfg c = {src->config, src->config_path, ""};
    gr_status st = vc_pos_num(&c, "initializer_range", 0.02, &std);
    if (st) { free(p); return st; }
    int64_t mid = mlp ? p->hidden_dim : p->out_dim;
    p->w0 = vc_param(ctx, src, &p->ps, mlp ? "0.weight" : "weight", 2,
                     (int64_t[]){mid, p->in_dim}, VC_NORMAL, std);
    if (p->w0) p->b0 = vc_param(ctx, src, &p->ps, mlp ? "0.bias" : "bias", 1, (int64_t[]){mid},
                                VC_ZEROS, 0);
    if (mlp && p->b0) {
        p->w2 = vc_param(ctx, src, &p->ps, "2.weight", 2, (int64_t[]){p->out_dim, mid}, VC_NORMAL, std);
        if (p->w2) p->b2 = vc_param(ctx, src, &p->ps, "2.bias", 1, (int64_t[]){p->out_dim}, VC_ZEROS, 0);
    }
    if (!p->b0 || (mlp && !p->b2)) {
        st = p->ps.status ? p->ps.status : GR_ERR_INVALID;
        vc_params_free(ctx, &p->ps);
        free(p);
        return st;
    }
    *out = p;
    return GR_OK;
}

static gr_status linear_open(gr_ctx *ctx, const gr_model_source *src, const gr_projector_spec *spec,
                             gr_projector **out)
{
    return proj_open(ctx, src, spec, 0, out);
}

static gr_status mlp_open(gr_ctx *ctx, const gr_model_source *src, const gr_projector_spec *spec,
                          gr_projector **out)
{
    return proj_open(ctx, src, spec, 1, out);
}

static void proj_close(gr_projector *p, gr_ctx *ctx)
{
    if (!p) return;
    vc_params_free(ctx, &p->ps);
    free(p);
}

static void proj_params(gr_projector *p, gr_param_list *out)
{
    out->items = p->ps.items;
    out->count = p->ps.count;
}

static gr_status proj_forward(gr_projector *p, gr_ctx *ctx, gr_tensor *x, gr_tensor **y)
{
    *y = NULL;
    if (gr_ctx_status(ctx)) return gr_ctx_status(ctx);
    if (!x || x->ndim < 1 || x->shape[x->ndim - 1] != p->in_dim) {
        char got[96] = "NULL";
        if (x) gr_shape_str(x, got, sizeof got);
        return gr_ctx_fail(ctx, GR_ERR_SHAPE, "%s projector: input %s, expected [..., %lld]",
                           p->mlp ? "mlp" : "linear", got, (long long)p->in_dim);
    }
    gr_tensor *h = gr_linear(ctx, vc_f32(ctx, x), p->w0, p->b0);
    if (p->mlp) h = gr_linear(ctx, gr_act(ctx, p->act, h), p->w2, p->b2);
    gr_status st = gr_ctx_status(ctx);
    if (st) return gr_fail_context(st, "%s projector", p->mlp ? "mlp" : "linear");
    *y = h;
    return GR_OK;
}

const gr_projector_iface proj_linear_iface = {
    .struct_size = sizeof(gr_projector_iface),
    .open = linear_open,
    .close = proj_close,
    .params = proj_params,
    .forward = proj_forward,
};

const gr_projector_iface proj_mlp_iface = {
    .struct_size = sizeof(gr_projector_iface),
    .open = mlp_open,
    .close = proj_close,
    .params = proj_params,
    .forward = proj_forward,
};
