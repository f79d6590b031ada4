/* Template: a vision-encoder plugin ("my-vision-encoder").
 *
 * A vision encoder turns pixels [B, 3, H, W] (F32, already resized and normalised by the
 * core's image pipeline) into tokens [B, N, hidden] that a Q-Former or a projector consumes.
 * (The Q-Former is a vision-encoder plugin too: it takes another encoder's features instead
 * of pixels; see docs/plugins.md.)
 *
 * This one is the smallest useful tower: non-overlapping patches -> Linear (the strided conv
 * of a ViT, as a matmul: gr_patchify orders each patch (c, ky, kx) like a conv weight
 * [D, 3, p, p]) -> + learned position embeddings -> LayerNorm. Parameter names:
 * patch_embed.weight [D, 3*p*p], patch_embed.bias [D], pos_embed [N, D], norm.weight [D],
 * norm.bias [D]. Its config (config.json of the model directory, or the part of a bigger
 * config the core hands over) holds hidden_size, image_size and patch_size.
 *
 * What the core guarantees:
 *  - open() once per instance, close() once per successful open() with the same ctx; calls
 *    on one instance never overlap.
 *  - src->config is a JSON object that lives until open() returns (copy what you keep);
 *    src->weights (NULL: initialise randomly from src->seed) stays mapped until close().
 *  - The input of forward() is F32 [B, 3, image_size, image_size]: the core sizes images from
 *    info().image_size and normalises them with the model's preprocessing config.
 *  - Parameters are frozen unless a strategy trains them (the engine marks them by the names
 *    params() reports); the core derives every backward pass from the gr_* operations.
 *
 * What this plugin must do:
 *  - validate the config and say which key is wrong, in which file (src->config_path);
 *  - report through info() what the rest of the model needs: hidden_size (width of
 *    last_hidden_state), num_tokens (its rows), image_size and patch_size;
 *  - never exit or abort; errors are a gr_status plus a one-line gr_fail() message. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graft/model.h"
#include "graft/plugin.h"
#include "graft/rng.h"

enum { PATCH_W, PATCH_B, POS, NORM_W, NORM_B, NPARAMS };
static const char *const param_names[NPARAMS] = {"patch_embed.weight", "patch_embed.bias",
                                                 "pos_embed", "norm.weight", "norm.bias"};

struct gr_vision {
    int64_t hidden, image_size, patch, tokens;
    gr_tensor *params[NPARAMS];
    gr_tensor *hidden_states[1]; /* output_hidden_states: the embeddings before the norm */
};

/* A positive integer from the config, or `fallback` when the key is absent. */
static gr_status config_int(const gr_model_source *src, const char *key, int64_t fallback,
                            int64_t *out)
{
    const json_t *v = src->config ? json_object_get(src->config, key) : NULL;
    if (!v) { *out = fallback; return GR_OK; }
    if (!json_is_integer(v) || json_integer_value(v) <= 0)
        return gr_fail(GR_ERR_FORMAT, "%s: '%s' must be a positive integer",
                       src->config_path ? src->config_path : "config", key);
    *out = json_integer_value(v);
    return GR_OK;
}

static gr_status make_param(gr_ctx *ctx, const gr_model_source *src, int index, int ndim,
                            const int64_t *shape, gr_tensor **out)
{
    const char *name = param_names[index];
    if (src->weights) {
        char full[512];
        snprintf(full, sizeof full, "%s%s", src->prefix ? src->prefix : "", name);
        const gr_weight_info *wi = gr_weights_find(src->weights, full);
        if (!wi) return gr_fail(GR_ERR_NOT_FOUND, "%s: tensor '%s' is missing", src->dir, full);
        int same = wi->ndim == ndim;
        for (int i = 0; same && i < ndim; i++) same = wi->shape[i] == shape[i];
        if (!same) {
            char got[96];
            gr_tensor view = {.ndim = wi->ndim};
            memcpy(view.shape, wi->shape, sizeof view.shape);
            return gr_fail(GR_ERR_SHAPE, "%s: tensor '%s' has shape %s, the config implies "
                           "%lld x %lld", wi->file, full, gr_shape_str(&view, got, sizeof got),
                           (long long)shape[0], (long long)(ndim > 1 ? shape[1] : 1));
        }
        *out = gr_param_from_host(ctx, name, wi->dtype, ndim, shape, wi->data);
        return *out ? GR_OK : gr_fail_context(gr_ctx_status(ctx), "%s: loading '%s'", wi->file, full);
    }
    gr_tensor *t = gr_param_new(ctx, name, GR_F32, ndim, shape);
    if (!t) return gr_fail_context(gr_ctx_status(ctx), "creating '%s'", name);
    int64_t n = gr_numel(t);
    float *host = malloc((size_t)n * sizeof *host);
    if (!host) { gr_tensor_free(ctx, t); return gr_fail(GR_ERR_NOMEM, "initialising '%s'", name); }
    gr_rng rng;
    gr_rng_seed_stream(&rng, src->seed, (uint64_t)index);
    for (int64_t i = 0; i < n; i++)
        host[i] = index == NORM_W ? 1.0f
                : index == PATCH_B || index == NORM_B ? 0.0f
                : (float)(0.02 * gr_rng_normal(&rng));
    gr_status s = gr_upload(ctx, t, host);
    free(host);
    if (s != GR_OK) { gr_tensor_free(ctx, t); return s; }
    *out = t;
    return GR_OK;
}

static void my_close(gr_vision *v, gr_ctx *ctx)
{
    if (!v) return;
    for (int i = 0; i < NPARAMS; i++) gr_tensor_free(ctx, v->params[i]);
    free(v);
}

static gr_status my_open(gr_ctx *ctx, const gr_model_source *src, gr_vision **out)
{
    *out = NULL;
    gr_vision *v = calloc(1, sizeof *v);
    if (!v) return gr_fail(GR_ERR_NOMEM, "my-vision-encoder: out of memory");
    gr_status s = config_int(src, "hidden_size", 768, &v->hidden);
    if (s == GR_OK) s = config_int(src, "image_size", 224, &v->image_size);
    if (s == GR_OK) s = config_int(src, "patch_size", 16, &v->patch);
    if (s == GR_OK && v->image_size % v->patch != 0)
        s = gr_fail(GR_ERR_FORMAT, "%s: image_size %lld is not a multiple of patch_size %lld",
                    src->config_path ? src->config_path : "config", (long long)v->image_size,
                    (long long)v->patch);
    if (s != GR_OK) { free(v); return s; }
    int64_t side = v->image_size / v->patch, D = v->hidden;
    v->tokens = side * side;
    const int64_t w[2] = {D, 3 * v->patch * v->patch}, d[1] = {D}, pos[2] = {v->tokens, D};
    const int ndims[NPARAMS] = {2, 1, 2, 1, 1};
    const int64_t *shapes[NPARAMS] = {w, d, pos, d, d};
    for (int i = 0; i < NPARAMS && s == GR_OK; i++)
        s = make_param(ctx, src, i, ndims[i], shapes[i], &v->params[i]);
    if (s != GR_OK) { my_close(v, ctx); return s; }
    *out = v;
    return GR_OK;
}

static void my_info(const gr_vision *v, gr_vision_info *out)
{
    /* The host sets struct_size to the size of its struct: write no byte past it (0: a host
     * that did not say, built from the same headers). */
    uint32_t size = out->struct_size && out->struct_size < sizeof(gr_vision_info)
                        ? out->struct_size : (uint32_t)sizeof(gr_vision_info);
    gr_vision_info info = {
        .struct_size = size,
        .family = "my-vision-encoder",
        .hidden_size = v->hidden,
        .input_dim = 3,
        .image_size = v->image_size,
        .patch_size = v->patch,
        .num_tokens = v->tokens,
        .num_layers = 0,
    };
    memcpy(out, &info, size < sizeof info ? size : sizeof info);
}

static void my_params(gr_vision *v, gr_param_list *out)
{
    out->items = v->params;
    out->count = NPARAMS;
}

/* Must: fill out->last_hidden_state [B, num_tokens, hidden_size]; pooler_output may be NULL
 * (no CLS token here); with want_hidden_states, hidden_states as HF's output_hidden_states
 * (the embeddings, then each layer's output: num_layers + 1 entries). Output tensors are
 * transient (freed by the core's gr_ctx_reset); arrays handed out belong to the plugin. */
static gr_status my_forward(gr_vision *v, gr_ctx *ctx, gr_tensor *input, int want_hidden_states,
                            gr_vision_outputs *out)
{
    uint32_t size = out->struct_size && out->struct_size < sizeof *out ? out->struct_size
                                                                       : (uint32_t)sizeof *out;
    memset(out, 0, size);
    out->struct_size = size;
    if (!input || input->ndim != 4 || input->shape[1] != 3 || input->shape[2] != v->image_size ||
        input->shape[3] != v->image_size) {
        char got[96] = "NULL";
        if (input) gr_shape_str(input, got, sizeof got);
        return gr_ctx_fail(ctx, GR_ERR_SHAPE, "my-vision-encoder: pixels %s, expected [B, 3, %lld, "
                           "%lld]", got, (long long)v->image_size, (long long)v->image_size);
    }
    gr_tensor *patches = gr_patchify(ctx, input, (int)v->patch);           /* [B, N, 3pp] */
    gr_tensor *h = gr_linear(ctx, patches, v->params[PATCH_W], v->params[PATCH_B]);
    gr_tensor *pos = v->params[POS];
    if (pos->dtype != GR_F32) pos = gr_convert(ctx, pos, GR_F32); /* element-wise ops take F32 */
    h = gr_add(ctx, h, pos);                                              /* broadcast [N, D] */
    gr_tensor *normed = gr_layernorm(ctx, h, v->params[NORM_W], v->params[NORM_B], 1e-6f);
    gr_status s = gr_ctx_status(ctx);
    if (s != GR_OK) return gr_fail_context(s, "my-vision-encoder");
    out->last_hidden_state = normed;
    if (want_hidden_states) {
        v->hidden_states[0] = h;
        out->hidden_states = v->hidden_states;
        out->num_hidden_states = 1;
    }
    return GR_OK;
}

static const gr_vision_iface iface = {
    .struct_size = sizeof(gr_vision_iface),
    .open = my_open,
    .close = my_close,
    .info = my_info,
    .params = my_params,
    .forward = my_forward,
};

static const gr_plugin_descriptor descriptor = GR_PLUGIN_DESCRIPTOR(
    GR_PLUGIN_VISION_ENCODER, "my-vision-encoder", "patch embedding + LayerNorm tower (template)",
    &iface);

GR_PLUGIN_EXPORT const gr_plugin_descriptor *graft_plugin_entry(void) { return &descriptor; }
