/* Shared helpers of the vision-side plugins: config keys, parameters, attention. */
#include "vcommon.h"

#include "graft/rng.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ config ---- */

static const json_t *vc_get(const vc_cfg *c, const char *key)
{
    if (!c->obj) return NULL;
    const json_t *v = json_object_get(c->obj, key);
    return (v && !json_is_null(v)) ? v : NULL;
}

gr_status vc_bad(const vc_cfg *c, const char *key, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return gr_fail(GR_ERR_INVALID, "%s: %s%s: %s", c->path ? c->path : "config", c->scope,
                   key, msg);
}

gr_status vc_int(const vc_cfg *c, const char *key, int64_t def, int64_t min, int64_t *out)
{
    const json_t *v = vc_get(c, key);
    int64_t x = def;
    if (v) {
        if (json_is_integer(v)) {
            x = (int64_t)json_integer_value(v);
        } else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
                   fabs(json_real_value(v)) < 9e15) {
            x = (int64_t)json_real_value(v);
        } else {
            return vc_bad(c, key, "expected an integer");
        }
    }
    if (x < min) return vc_bad(c, key, "%lld is out of range (minimum %lld)", (long long)x,
                               (long long)min);
    *out = x;
    return GR_OK;
}

gr_status vc_pos_num(const vc_cfg *c, const char *key, double def, double *out)
{
    const json_t *v = vc_get(c, key);
    double x = def;
    if (v) {
        if (!json_is_number(v)) return vc_bad(c, key, "expected a number");
        x = json_number_value(v);
    }
    if (!(x > 0) || !isfinite(x)) return vc_bad(c, key, "%g must be a positive number", x);
    *out = x;
    return GR_OK;
}

gr_status vc_bool(const vc_cfg *c, const char *key, int def, int *out)
{
    const json_t *v = vc_get(c, key);
    if (!v) { *out = def; return GR_OK; }
    if (!json_is_boolean(v)) return vc_bad(c, key, "expected true or false");
    *out = json_is_true(v);
    return GR_OK;
}

gr_status vc_str(const vc_cfg *c, const char *key, const char *def, const char **out)
{
    const json_t *v = vc_get(c, key);
    if (!v) { *out = def; return GR_OK; }
    if (!json_is_string(v)) return vc_bad(c, key, "expected a string");
    *out = json_string_value(v);
    return GR_OK;
}

gr_status vc_act(const vc_cfg *c, const char *key, const char *def, gr_unary_op *out)
{
    static const struct { const char *name; gr_unary_op op; } acts[] = {
        {"gelu", GR_ACT_GELU_ERF},           {"gelu_new", GR_ACT_GELU_TANH},
        {"gelu_pytorch_tanh", GR_ACT_GELU_TANH}, {"quick_gelu", GR_ACT_QUICK_GELU},
        {"relu", GR_ACT_RELU},               {"silu", GR_ACT_SILU},
        {"swish", GR_ACT_SILU},              {"sigmoid", GR_ACT_SIGMOID},
        {"tanh", GR_ACT_TANH},
    };
    const char *name = def;
    gr_status st = vc_str(c, key, def, &name);
    if (st) return st;
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++)
        if (strcmp(acts[i].name, name) == 0) { *out = acts[i].op; return GR_OK; }
    return vc_bad(c, key, "activation '%s' is not supported (gelu, gelu_new, gelu_pytorch_tanh, "
                  "quick_gelu, relu, silu, swish, sigmoid, tanh)", name);
}

gr_status vc_sub(const vc_cfg *c, const char *key, vc_cfg *sub, char *scope_buf, size_t cap)
{
    const json_t *v = vc_get(c, key);
    if (v && !json_is_object(v)) return vc_bad(c, key, "expected an object");
    snprintf(scope_buf, cap, "%s%s.", c->scope, key);
    sub->obj = v;
    sub->path = c->path;
    sub->scope = scope_buf;
    return GR_OK;
}

/* ------------------------------------------------------------------------ random ---- */

void vc_randn(uint64_t seed, const char *name, float *out, int64_t n, double std, int truncate)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a of the name: the stream id */
    for (const char *p = name; *p; p++) h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
    gr_rng rng;
    gr_rng_seed_stream(&rng, seed, h);
    for (int64_t i = 0; i < n;) {
        double x = std * gr_rng_normal(&rng);
        if (truncate && (x < -2.0 || x > 2.0)) continue; /* resample, as trunc_normal_ */
        out[i++] = (float)x;
    }
}

/* ------------------------------------------------------------------------ params ---- */

static gr_status vc_push(vc_params *ps, gr_tensor *t)
{
    if (ps->count == ps->cap) {
        int cap = ps->cap ? 2 * ps->cap : 32;
        gr_tensor **items = realloc(ps->items, (size_t)cap * sizeof *items);
        if (!items) return gr_fail(GR_ERR_NOMEM, "out of memory (parameter list)");
        ps->items = items;
        ps->cap = cap;
    }
    ps->items[ps->count++] = t;
    return GR_OK;
}

int vc_has(const gr_model_source *src, const char *name)
{
    if (!src->weights) return 0;
    char full[512];
    snprintf(full, sizeof full, "%s%s", src->prefix ? src->prefix : "", name);
    return gr_weights_find(src->weights, full) != NULL;
}

static gr_tensor *vc_failed(vc_params *ps, gr_status st)
{
    if (!ps->status) ps->status = st;
    return NULL;
}

static gr_tensor *vc_load(gr_ctx *ctx, const gr_model_source *src, vc_params *ps,
                          const char *name, int ndim, const int64_t *shape)
{
    gr_tensor *t;
    gr_status st = gr_weights_param(ctx, src->weights, src->prefix, name, ndim, shape, &t);
    if (st) return vc_failed(ps, st);
    if (vc_push(ps, t)) { gr_tensor_free(ctx, t); return vc_failed(ps, GR_ERR_NOMEM); }
    return t;
}

gr_tensor *vc_param(gr_ctx *ctx, const gr_model_source *src, vc_params *ps, const char *name,
                    int ndim, const int64_t *shape, vc_init init, double std)
{
    if (src->weights) return vc_load(ctx, src, ps, name, ndim, shape);
    gr_tensor *t = gr_param_new(ctx, name, GR_F32, ndim, shape);
    if (!t) return vc_failed(ps, gr_fail_context(GR_ERR_NOMEM, "creating parameter '%s'", name));
    int64_t n = gr_numel(t);
    float *host = malloc((size_t)(n ? n : 1) * sizeof *host);
    if (!host) {
        gr_tensor_free(ctx, t);
        return vc_failed(ps, gr_fail(GR_ERR_NOMEM, "out of memory initialising '%s'", name));
    }
    if (init == VC_NORMAL || init == VC_TRUNC_NORMAL)
        vc_randn(src->seed, name, host, n, std, init == VC_TRUNC_NORMAL);
    else
        for (int64_t i = 0; i < n; i++) host[i] = init == VC_ONES ? 1.0f : 0.0f;
    gr_status st = gr_upload(ctx, t, host);
    free(host);
    if (st) {
        gr_tensor_free(ctx, t);
        return vc_failed(ps, gr_fail_context(st, "initialising '%s'", name));
    }
    if (vc_push(ps, t)) { gr_tensor_free(ctx, t); return vc_failed(ps, GR_ERR_NOMEM); }
    return t;
}

gr_tensor *vc_param_opt(gr_ctx *ctx, const gr_model_source *src, vc_params *ps,
                        const char *name, int ndim, const int64_t *shape)
{
    if (!vc_has(src, name)) return NULL;
    return vc_load(ctx, src, ps, name, ndim, shape);
}

void vc_params_free(gr_ctx *ctx, vc_params *ps)
{
    for (int i = 0; i < ps->count; i++) gr_tensor_free(ctx, ps->items[i]);
    free(ps->items);
    memset(ps, 0, sizeof *ps);
}

/* ------------------------------------------------------------------------ compute ---- */

gr_tensor *vc_f32(gr_ctx *ctx, gr_tensor *t)
{
    if (!t || t->dtype == GR_F32) return t;
    return gr_convert(ctx, t, GR_F32);
}
