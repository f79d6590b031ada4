/* Template: a projector plugin ("my-projector").
 *
 * A projector maps the vision side's output tokens [B, Q, in_dim] (Q-Former queries, or ViT
 * patches) to soft-prompt tokens [B, Q, out_dim] in the language model's embedding space
 * (out_dim = the LM's embed_dim). It is usually the one module every transfer strategy trains.
 *
 * This one is LayerNorm(in_dim) then Linear(in_dim -> out_dim), with parameters named as
 * PyTorch would name `nn.Sequential(norm=LayerNorm, proj=Linear)`: norm.weight, norm.bias,
 * proj.weight [out, in], proj.bias. Replace the body of forward() (and the parameter list)
 * with your own module; everything else stays.
 *
 * What the core guarantees:
 *  - open() is called once per model instance; close() exactly once for each successful
 *    open(), with the same ctx. Nothing is called concurrently on one instance.
 *  - src->weights, when not NULL, stays mapped until close(); tensor names inside it are
 *    "<src->prefix><your name>" (the prefix is e.g. "language_projection." in a BLIP-2
 *    checkpoint, "" in a file of your own).
 *  - Parameters are frozen when created; the engine makes the ones a strategy trains
 *    trainable by name (the names params() reports), allocates optimizer state for them and
 *    writes them to checkpoints under those names.
 *  - forward() is called with gradients enabled when the engine trains: every gr_* operation
 *    records itself on the tape and the core derives the backward pass. Never write one.
 *
 * What this plugin must do:
 *  - never exit or abort: return a gr_status with a one-line message from gr_fail() naming
 *    the tensor, file or setting involved;
 *  - own what it allocates and free it in close() (parameters with gr_tensor_free);
 *  - keep params() stable: same tensors, same order, for the life of the instance. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graft/model.h"
#include "graft/plugin.h"
#include "graft/rng.h"

#define NPARAMS 4

struct gr_projector {
    int64_t in_dim, out_dim;
    gr_tensor *params[NPARAMS]; /* norm.weight, norm.bias, proj.weight, proj.bias */
};

enum { NORM_W, NORM_B, PROJ_W, PROJ_B };
static const char *const param_names[NPARAMS] = {"norm.weight", "norm.bias", "proj.weight",
                                                 "proj.bias"};

/* A parameter from the checkpoint (any float dtype; operations convert on use), checked
 * against the shape the spec implies. The tensor keeps the name without the prefix. */
static gr_status load_param(gr_ctx *ctx, const gr_model_source *src, const char *name, int ndim,
                            const int64_t *shape, gr_tensor **out)
{
    char full[512];
    snprintf(full, sizeof full, "%s%s", src->prefix ? src->prefix : "", name);
    const gr_weight_info *wi = gr_weights_find(src->weights, full);
    if (!wi) return gr_fail(GR_ERR_NOT_FOUND, "%s: tensor '%s' is missing", src->dir, full);
    int same = wi->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = wi->shape[i] == shape[i];
    if (!same || (wi->dtype != GR_F32 && wi->dtype != GR_F16 && wi->dtype != GR_BF16))
        return gr_fail(GR_ERR_SHAPE, "%s: tensor '%s' is %s with %d dims, expected a float "
                       "tensor of %lld x %lld", wi->file, full, gr_dtype_name(wi->dtype),
                       wi->ndim, (long long)shape[0], (long long)(ndim > 1 ? shape[1] : 1));
    *out = gr_param_from_host(ctx, name, wi->dtype, ndim, shape, wi->data);
    return *out ? GR_OK : gr_fail_context(gr_ctx_status(ctx), "%s: loading '%s'", wi->file, full);
}

/* A fresh F32 parameter: N(0, std) when std > 0, else every element = fill. Random numbers
 * come from graft's generator seeded by (src->seed, parameter index), so a seed gives the
 * same initialisation on every machine. */
static gr_status init_param(gr_ctx *ctx, const gr_model_source *src, int index, int ndim,
                            const int64_t *shape, double std, float fill, gr_tensor **out)
{
    gr_tensor *t = gr_param_new(ctx, param_names[index], GR_F32, ndim, shape);
    if (!t) return gr_fail_context(gr_ctx_status(ctx), "creating '%s'", param_names[index]);
    int64_t n = gr_numel(t);
    float *host = malloc((size_t)n * sizeof *host);
    if (!host) {
        gr_tensor_free(ctx, t);
        return gr_fail(GR_ERR_NOMEM, "out of memory initialising '%s'", param_names[index]);
    }
    gr_rng rng;
    gr_rng_seed_stream(&rng, src->seed, (uint64_t)index);
    for (int64_t i = 0; i < n; i++) host[i] = std > 0 ? (float)(std * gr_rng_normal(&rng)) : fill;
    gr_status s = gr_upload(ctx, t, host);
    free(host);
    if (s != GR_OK) { gr_tensor_free(ctx, t); return s; }
    *out = t;
    return GR_OK;
}

static void my_close(gr_projector *p, gr_ctx *ctx)
{
    if (!p) return;
    for (int i = 0; i < NPARAMS; i++) gr_tensor_free(ctx, p->params[i]);
    free(p);
}

/* Must: build the parameters from src->weights (or initialise them when src->weights is NULL)
 * for spec->in_dim -> spec->out_dim, and return the instance in *out. On failure: free
 * everything made so far, leave *out NULL, return the error. */
static gr_status my_open(gr_ctx *ctx, const gr_model_source *src, const gr_projector_spec *spec,
                         gr_projector **out)
{
    *out = NULL;
    if (!spec || spec->in_dim <= 0 || spec->out_dim <= 0)
        return gr_fail(GR_ERR_INVALID, "my-projector: in_dim and out_dim must be positive");
    gr_projector *p = calloc(1, sizeof *p);
    if (!p) return gr_fail(GR_ERR_NOMEM, "my-projector: out of memory");
    p->in_dim = spec->in_dim;
    p->out_dim = spec->out_dim;
    const int64_t vec_in[1] = {p->in_dim}, mat[2] = {p->out_dim, p->in_dim}, vec_out[1] = {p->out_dim};
    const int ndims[NPARAMS] = {1, 1, 2, 1};
    const int64_t *shapes[NPARAMS] = {vec_in, vec_in, mat, vec_out};
    gr_status s = GR_OK;
    for (int i = 0; i < NPARAMS && s == GR_OK; i++) {
        if (src->weights) {
            s = load_param(ctx, src, param_names[i], ndims[i], shapes[i], &p->params[i]);
        } else {
            /* As HF's _init_weights: LayerNorm 1 and 0, Linear weight N(0, 0.02), bias 0. */
            double std = i == PROJ_W ? 0.02 : 0.0;
            s = init_param(ctx, src, i, ndims[i], shapes[i], std, i == NORM_W ? 1.0f : 0.0f,
                           &p->params[i]);
        }
    }
    if (s != GR_OK) { my_close(p, ctx); return s; }
    *out = p;
    return GR_OK;
}

/* Must: report every parameter (HF names, no prefix), in a stable order. The array belongs to
 * the plugin and stays valid until close(). */
static void my_params(gr_projector *p, gr_param_list *out)
{
    out->items = p->params;
    out->count = NPARAMS;
}

/* Must: y = module(x) for x [..., in_dim] (F32), y [..., out_dim] F32, built only from gr_*
 * operations so the core can differentiate it. Operations are sticky on error (they return
 * NULL once one fails): check gr_ctx_status() once at the end. */
static gr_status my_forward(gr_projector *p, gr_ctx *ctx, gr_tensor *x, gr_tensor **y)
{
    *y = NULL;
    if (!x || x->ndim < 1 || x->shape[x->ndim - 1] != p->in_dim) {
        char got[96] = "NULL";
        if (x) gr_shape_str(x, got, sizeof got);
        return gr_ctx_fail(ctx, GR_ERR_SHAPE, "my-projector: input %s, expected [..., %lld]", got,
                           (long long)p->in_dim);
    }
    gr_tensor *h = gr_layernorm(ctx, x, p->params[NORM_W], p->params[NORM_B], 1e-5f);
    h = gr_linear(ctx, h, p->params[PROJ_W], p->params[PROJ_B]);
    gr_status s = gr_ctx_status(ctx);
    if (s != GR_OK) return gr_fail_context(s, "my-projector");
    *y = h;
    return GR_OK;
}

static const gr_projector_iface iface = {
    .struct_size = sizeof(gr_projector_iface),
    .open = my_open,
    .close = my_close,
    .params = my_params,
    .forward = my_forward,
};

/* The name is what configurations select (e.g. `model.projector = "my-projector";`); it must
 * be unique among projector plugins. */
static const gr_plugin_descriptor descriptor = GR_PLUGIN_DESCRIPTOR(
    GR_PLUGIN_PROJECTOR, "my-projector", "LayerNorm + Linear projector (template)", &iface);

GR_PLUGIN_EXPORT const gr_plugin_descriptor *graft_plugin_entry(void) { return &descriptor; }
