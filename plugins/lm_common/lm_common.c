/* Shared pieces of the language-model plugins; see lm_common.h. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lm_common.h"

/* ---------------------------------------------------------------- config ---- */

static const json_t *get(const lmc_cfg *c, const char *key)
{
    const json_t *v = json_object_get(c->obj, key);
    return (v && !json_is_null(v)) ? v : NULL;
}

int lmc_has(const lmc_cfg *c, const char *key) { return get(c, key) != NULL; }

gr_status lmc_int(const lmc_cfg *c, const char *key, int64_t def, int required, int64_t *out)
{
    const json_t *v = get(c, key);
    if (!v) {
        if (required) return gr_fail(GR_ERR_INVALID, "%s: missing key '%s'", c->path, key);
        *out = def;
        return GR_OK;
    }
    /* HF configs sometimes write integral floats (e.g. 4096.0). */
    if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) && fabs(json_real_value(v)) < 9e15) {
        *out = (int64_t)json_real_value(v);
        return GR_OK;
    }
    if (!json_is_integer(v)) return gr_fail(GR_ERR_INVALID, "%s: key '%s' must be an integer", c->path, key);
    *out = json_integer_value(v);
    return GR_OK;
}

gr_status lmc_num(const lmc_cfg *c, const char *key, double def, double *out)
{
    const json_t *v = get(c, key);
    if (!v) { *out = def; return GR_OK; }
    if (!json_is_number(v)) return gr_fail(GR_ERR_INVALID, "%s: key '%s' must be a number", c->path, key);
    *out = json_number_value(v);
    return GR_OK;
}

gr_status lmc_bool(const lmc_cfg *c, const char *key, int def, int *out)
{
    const json_t *v = get(c, key);
    if (!v) { *out = def; return GR_OK; }
    if (!json_is_boolean(v)) return gr_fail(GR_ERR_INVALID, "%s: key '%s' must be true or false", c->path, key);
    *out = json_is_true(v);
    return GR_OK;
}

gr_status lmc_str(const lmc_cfg *c, const char *key, const char *def, const char **out)
{
    const json_t *v = get(c, key);
    if (!v) { *out = def; return GR_OK; }
    if (!json_is_string(v)) return gr_fail(GR_ERR_INVALID, "%s: key '%s' must be a string", c->path, key);
    *out = json_string_value(v);
    return GR_OK;
}

gr_status lmc_token(const lmc_cfg *c, const char *key, int32_t def, int32_t *out)
{
    const json_t *v = get(c, key);
    if (v && json_is_array(v)) v = json_array_size(v) ? json_array_get(v, 0) : NULL;
    if (!v) { *out = def; return GR_OK; }
    if (!json_is_integer(v)) return gr_fail(GR_ERR_INVALID, "%s: key '%s' must be a token id", c->path, key);
    *out = (int32_t)json_integer_value(v);
    return GR_OK;
}

gr_status lmc_act(const lmc_cfg *c, const char *key, const char *name, gr_unary_op *out)
{
    static const struct { const char *name; gr_unary_op op; } t[] = {
        {"relu", GR_ACT_RELU},           {"gelu", GR_ACT_GELU_ERF},       {"gelu_new", GR_ACT_GELU_TANH},
        {"gelu_pytorch_tanh", GR_ACT_GELU_TANH}, {"quick_gelu", GR_ACT_QUICK_GELU},
        {"silu", GR_ACT_SILU},           {"swish", GR_ACT_SILU},          {"sigmoid", GR_ACT_SIGMOID},
        {"tanh", GR_ACT_TANH},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (strcmp(name, t[i].name) == 0) { *out = t[i].op; return GR_OK; }
    return gr_fail(GR_ERR_UNSUPPORTED, "%s: key '%s': activation '%s' is not supported", c->path, key, name);
}

gr_status lmc_positive(const lmc_cfg *c, const char *key, int64_t v)
{
    if (v <= 0) return gr_fail(GR_ERR_INVALID, "%s: key '%s' must be positive (is %lld)", c->path, key, (long long)v);
    return GR_OK;
}

/* ---------------------------------------------------------------- params ---- */

void lmc_loader_init(lmc_loader *L, gr_ctx *ctx, const gr_model_source *src, const char *prefix)
{
    memset(L, 0, sizeof *L);
    L->ctx = ctx;
    L->src = src;
    L->prefix = prefix ? prefix : "";
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double uniform01(uint64_t *s) { return ((double)(splitmix(s) >> 11) + 0.5) * 0x1.0p-53; }

static char *full_name(const lmc_loader *L, const char *name)
{
    size_t n = strlen(L->prefix) + strlen(name) + 1;
    char *f = malloc(n);
    if (f) snprintf(f, n, "%s%s", L->prefix, name);
    return f;
}

int lmc_stored(const lmc_loader *L, const char *name)
{
    if (!L->src->weights) return 0;
    char *f = full_name(L, name);
    int found = f && gr_weights_find(L->src->weights, f) != NULL;
    free(f);
    return found;
}

static gr_status push(lmc_loader *L, gr_tensor *t)
{
    if (L->count == L->cap) {
        int cap = L->cap ? 2 * L->cap : 64;
        gr_tensor **p = realloc(L->items, (size_t)cap * sizeof *p);
        if (!p) return gr_fail(GR_ERR_NOMEM, "out of memory");
        L->items = p;
        L->cap = cap;
    }
    L->items[L->count++] = t;
    return GR_OK;
}

/* A failed load leaves the ctx usable (the message is the thread's); L->status says it. */
static gr_tensor *fail(lmc_loader *L, gr_status s)
{
    L->status = s;
    return NULL;
}

gr_tensor *lmc_param(lmc_loader *L, const char *name, int ndim, const int64_t *shape, lmc_init init,
                     double std, int64_t padding_row)
{
    if (L->status != GR_OK) return NULL;
    gr_tensor *t = NULL;
    if (L->src->weights) {
        gr_status s = gr_weights_param(L->ctx, L->src->weights, L->prefix, name, ndim, shape, &t);
        if (s != GR_OK) {
            /* A shape that disagrees with the config: say which config. */
            if (s == GR_ERR_SHAPE) gr_fail_context(s, "%s", L->src->config_path);
            return fail(L, s);
        }
    } else {
        int64_t n = 1;
        for (int i = 0; i < ndim; i++) n *= shape[i];
        float *h = malloc((size_t)(n + 1) * sizeof *h);
        if (!h) return fail(L, gr_fail(GR_ERR_NOMEM, "%s: out of memory", name));
        /* Seeded per name, so one parameter's values do not depend on which others exist. */
        uint64_t s = L->src->seed ^ 0x6a09e667f3bcc908ULL;
        for (const char *p = name; *p; p++) s = (s ^ (uint8_t)*p) * 0x100000001b3ULL;
        for (int64_t i = 0; i < n; i++) {
            if (init == LMC_ONES) h[i] = 1.0f;
            else if (init == LMC_ZEROS) h[i] = 0.0f;
            else {
                double u1 = uniform01(&s), u2 = uniform01(&s);
                h[i] = (float)(std * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
            }
        }
        if (padding_row >= 0 && ndim == 2 && padding_row < shape[0])
            memset(h + padding_row * shape[1], 0, (size_t)shape[1] * sizeof *h);
        t = gr_param_new(L->ctx, name, GR_F32, ndim, shape);
        gr_status st = t ? gr_upload(L->ctx, t, h) : GR_ERR_NOMEM;
        free(h);
        if (st != GR_OK) return fail(L, gr_ctx_status(L->ctx) ? gr_ctx_status(L->ctx) : st);
    }
    gr_status s = push(L, t);
    if (s != GR_OK) { gr_tensor_free(L->ctx, t); return fail(L, s); }
    return t;
}

gr_tensor *lmc_paramf(lmc_loader *L, int ndim, const int64_t *shape, lmc_init init, double std,
                      const char *fmt, ...)
{
    char name[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return lmc_param(L, name, ndim, shape, init, std, -1);
}

void lmc_loader_free_all(lmc_loader *L)
{
    for (int i = 0; i < L->count; i++) gr_tensor_free(L->ctx, L->items[i]);
    free(L->items);
    L->items = NULL;
    L->count = L->cap = 0;
}

/* ---------------------------------------------------------------- compute ---- */

gr_tensor *lmc_heads(gr_ctx *ctx, gr_tensor *x, int64_t B, int64_t T, int64_t H, int64_t D)
{
    int64_t shape[4] = {B, T, H, D};
    return gr_reshape(ctx, x, 4, shape);
}

gr_tensor *lmc_attention(gr_ctx *ctx, gr_tensor *q, gr_tensor *k, gr_tensor *v, float scale,
                         int scale_q, gr_tensor *add_mask, gr_tensor *bias)
{
    if (!q || !k || !v) return NULL;
    static const int bhtd[4] = {0, 2, 1, 3};
    int64_t B = q->shape[0], Tq = q->shape[1], H = q->shape[2], D = q->shape[3];
    int64_t Hkv = k->shape[2];
    if (scale_q && scale != 1.0f) q = gr_scale(ctx, q, scale);
    gr_tensor *qh = gr_permute(ctx, q, bhtd);
    gr_tensor *kh = gr_permute(ctx, k, bhtd);
    gr_tensor *vh = gr_permute(ctx, v, bhtd);
    if (Hkv != H) {
        kh = gr_repeat_interleave(ctx, kh, 1, (int)(H / Hkv));
        vh = gr_repeat_interleave(ctx, vh, 1, (int)(H / Hkv));
    }
    gr_tensor *s = gr_matmul(ctx, qh, kh, 0, 1); /* [B, H, Tq, Tk] */
    if (!scale_q && scale != 1.0f) s = gr_scale(ctx, s, scale);
    if (bias) s = gr_add(ctx, s, bias);
    if (add_mask) s = gr_add(ctx, s, add_mask);
    gr_tensor *p = gr_softmax(ctx, s);
    gr_tensor *o = gr_matmul(ctx, p, vh, 0, 0);  /* [B, H, Tq, D] */
    o = gr_permute(ctx, o, bhtd);                 /* [B, Tq, H, D] */
    int64_t shape[3] = {B, Tq, H * D};
    return gr_reshape(ctx, o, 3, shape);
}

gr_tensor *lmc_mha(gr_ctx *ctx, gr_tensor *q, gr_tensor *k, gr_tensor *v, int64_t heads, float scale,
                   int scale_q, gr_tensor *add_mask, gr_tensor *bias)
{
    if (!q || !k || !v) return NULL;
    int64_t B = q->shape[0], D = q->shape[2] / heads;
    return lmc_attention(ctx, lmc_heads(ctx, q, B, q->shape[1], heads, D),
                         lmc_heads(ctx, k, B, k->shape[1], k->shape[2] / D, D),
                         lmc_heads(ctx, v, B, v->shape[1], v->shape[2] / D, D), scale, scale_q, add_mask, bias);
}

static gr_tensor *ce(gr_ctx *ctx, gr_tensor *logits, int32_t *lab, int64_t B, int64_t T)
{
    int64_t shape[2] = {B, T};
    gr_tensor *labels = gr_from_host(ctx, GR_I32, 2, shape, lab);
    free(lab);
    return gr_cross_entropy(ctx, logits, labels, LMC_IGNORE);
}

gr_tensor *lmc_causal_loss(gr_ctx *ctx, gr_tensor *logits, const int32_t *labels, int64_t B, int64_t T)
{
    if (!logits) return NULL;
    int32_t *lab = malloc((size_t)(B * T) * sizeof *lab);
    if (!lab) { gr_ctx_fail(ctx, GR_ERR_NOMEM, "out of memory"); return NULL; }
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++)
            lab[b * T + t] = t + 1 < T ? labels[b * T + t + 1] : LMC_IGNORE;
    return ce(ctx, logits, lab, B, T);
}

gr_tensor *lmc_seq2seq_loss(gr_ctx *ctx, gr_tensor *logits, const int32_t *labels, int64_t B, int64_t T)
{
    if (!logits) return NULL;
    int32_t *lab = malloc((size_t)(B * T) * sizeof *lab);
    if (!lab) { gr_ctx_fail(ctx, GR_ERR_NOMEM, "out of memory"); return NULL; }
    memcpy(lab, labels, (size_t)(B * T) * sizeof *lab);
    return ce(ctx, logits, lab, B, T);
}

int64_t lmc_prefix_len(const gr_lm_inputs *in) { return in->prefix ? in->prefix->shape[1] : 0; }

gr_status lmc_check_inputs(gr_ctx *ctx, const gr_lm_inputs *in, int64_t E, int64_t vocab, const char *family)
{
    if (in->batch <= 0 || in->seq < 0)
        return gr_ctx_fail(ctx, GR_ERR_INVALID, "%s: batch %lld / seq %lld out of range", family,
                           (long long)in->batch, (long long)in->seq);
    if (!in->ids && !in->inputs_embeds && in->seq > 0)
        return gr_ctx_fail(ctx, GR_ERR_INVALID, "%s: neither ids nor inputs_embeds given", family);
    if (in->inputs_embeds) {
        const gr_tensor *x = in->inputs_embeds;
        if (x->ndim != 3 || x->shape[0] != in->batch || x->shape[1] != in->seq || x->shape[2] != E)
            return gr_ctx_fail(ctx, GR_ERR_SHAPE, "%s: inputs_embeds must be [%lld, %lld, %lld]", family,
                               (long long)in->batch, (long long)in->seq, (long long)E);
    } else {
        for (int64_t i = 0; i < in->batch * in->seq; i++)
            if (in->ids[i] < 0 || in->ids[i] >= vocab)
                return gr_ctx_fail(ctx, GR_ERR_INVALID, "%s: token id %d at position %lld is outside the vocabulary (%lld)",
                                   family, in->ids[i], (long long)i, (long long)vocab);
    }
    if (in->prefix) {
        const gr_tensor *x = in->prefix;
        if (x->ndim != 3 || x->shape[0] != in->batch || x->shape[2] != E)
            return gr_ctx_fail(ctx, GR_ERR_SHAPE, "%s: prefix must be [%lld, P, %lld]", family,
                               (long long)in->batch, (long long)E);
    }
    return GR_OK;
}

gr_tensor *lmc_input_embeds(gr_ctx *ctx, const gr_lm_inputs *in, gr_tensor *table, int64_t E,
                            int32_t padding_idx, int64_t *ntok)
{
    gr_tensor *x = in->inputs_embeds;
    if (!x && in->seq > 0) {
        int64_t shape[2] = {in->batch, in->seq};
        gr_tensor *ids = gr_from_host(ctx, GR_I32, 2, shape, in->ids);
        x = gr_embedding(ctx, table, ids, padding_idx);
    }
    if (x && x->dtype != GR_F32) x = gr_convert(ctx, x, GR_F32);
    gr_tensor *p = in->prefix;
    if (p && p->dtype != GR_F32) p = gr_convert(ctx, p, GR_F32);
    *ntok = lmc_prefix_len(in) + in->seq;
    (void)E;
    if (p && x) return gr_concat(ctx, p, x, 1);
    return p ? p : x;
}

int32_t *lmc_full_mask(const gr_lm_inputs *in, int64_t P)
{
    int64_t T = P + in->seq;
    int32_t *m = malloc((size_t)(in->batch * T + 1) * sizeof *m);
    if (!m) return NULL;
    for (int64_t b = 0; b < in->batch; b++)
        for (int64_t t = 0; t < T; t++)
            m[b * T + t] = t < P ? 1 : (in->mask ? (in->mask[b * in->seq + t - P] != 0) : 1);
    return m;
}

int32_t *lmc_full_labels(const gr_lm_inputs *in, int64_t P)
{
    if (!in->labels) return NULL;
    int64_t T = P + in->seq;
    int32_t *l = malloc((size_t)(in->batch * T + 1) * sizeof *l);
    if (!l) return NULL;
    for (int64_t b = 0; b < in->batch; b++)
        for (int64_t t = 0; t < T; t++)
            l[b * T + t] = t < P ? LMC_IGNORE : in->labels[b * in->seq + t - P];
    return l;
}

gr_status lmc_set_layers(int **order, int *norder, int nlayers, const int *layers, int count, const char *family)
{
    int all = !layers || count == 0;
    int n = all ? nlayers : count;
    if (n < 0) return gr_fail(GR_ERR_INVALID, "%s: set_layers: %d layers", family, n);
    int *o = malloc((size_t)n * sizeof *o + 1);
    if (!o) return gr_fail(GR_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        o[i] = all ? i : layers[i];
        if (o[i] < 0 || o[i] >= nlayers) {
            free(o);
            return gr_fail(GR_ERR_INVALID, "%s: set_layers: layer %d outside 0..%d", family, layers[i], nlayers - 1);
        }
    }
    free(*order);
    *order = o;
    *norder = n;
    return GR_OK;
}

/* ---------------------------------------------------------------- KV cache ---- */

/* A kernel argument viewing t's memory from element `at` with another shape (backends read
 * only dtype, shape, buffer and offset). */
static gr_tensor kv_desc(const gr_tensor *t, int64_t at, int64_t rows, int64_t cols)
{
    gr_tensor d = *t;
    d.ndim = 2;
    d.shape[0] = rows;
    d.shape[1] = cols;
    d.offset += (size_t)at * sizeof(float);
    return d;
}

/* dst[b, dt + i, :] = src[b, st + i, :] for b < B, i < n: one copy_strided on the device. */
static gr_status kv_copy(gr_ctx *ctx, const gr_tensor *dst, int64_t dcap, int64_t dt, const gr_tensor *src,
                         int64_t scap, int64_t st, int64_t B, int64_t n, int64_t W)
{
    if (B == 0 || n == 0 || W == 0) return GR_OK;
    gr_backend *be = gr_ctx_backend(ctx);
    gr_tensor d = kv_desc(dst, dt * W, B, dcap * W), s = kv_desc(src, st * W, B, scap * W);
    gr_copy_args a = {.dst = &d, .src = &s, .ndim = 3, .shape = {B, n, W},
                      .dst_strides = {dcap * W, W, 1}, .src_strides = {scap * W, W, 1}};
    gr_status st_ = be->iface->copy_strided(be->ctx, &a);
    return st_ ? gr_ctx_fail(ctx, st_, "KV cache: %s", gr_last_error()) : GR_OK;
}

static gr_tensor *kv_tensor(gr_ctx *ctx, int64_t B, int64_t cap, int64_t W)
{
    int64_t shape[3] = {B, cap, W};
    return gr_param_new(ctx, "kv_cache", GR_F32, 3, shape);
}

gr_status lmc_kv_init(gr_ctx *ctx, lmc_kv *kv, int layers, int64_t B, int64_t width)
{
    memset(kv, 0, sizeof *kv);
    kv->layers = layers;
    kv->B = B;
    kv->width = width;
    kv->k = calloc((size_t)layers + 1, sizeof *kv->k);
    kv->v = calloc((size_t)layers + 1, sizeof *kv->v);
    kv->pos = calloc((size_t)B + 1, sizeof *kv->pos);
    if (!kv->k || !kv->v || !kv->pos) return gr_ctx_fail(ctx, GR_ERR_NOMEM, "KV cache: out of memory");
    return GR_OK;
}

void lmc_kv_free(gr_ctx *ctx, lmc_kv *kv)
{
    for (int l = 0; l < kv->layers; l++) {
        if (kv->k) gr_tensor_free(ctx, kv->k[l]);
        if (kv->v) gr_tensor_free(ctx, kv->v[l]);
    }
    free(kv->k);
    free(kv->v);
    free(kv->mask);
    free(kv->pos);
    memset(kv, 0, sizeof *kv);
}

/* Regrows the device tensors and the host mask to hold `need` positions (doubling). */
static gr_status kv_grow(gr_ctx *ctx, lmc_kv *kv, int64_t need)
{
    if (need <= kv->cap) return GR_OK;
    int64_t cap = kv->cap ? 2 * kv->cap : 16;
    while (cap < need) cap *= 2;
    if (!kv->cap) cap = need; /* the prompt: exactly its length (T5's cross cache never grows) */
    int32_t *m = calloc((size_t)(kv->B * cap) + 1, sizeof *m);
    if (!m) return gr_ctx_fail(ctx, GR_ERR_NOMEM, "KV cache: out of memory");
    for (int64_t b = 0; b < kv->B && kv->mask; b++)
        memcpy(m + b * cap, kv->mask + b * kv->cap, (size_t)kv->T * sizeof *m);
    for (int l = 0; l < kv->layers; l++) {
        gr_tensor **arrs[2] = {&kv->k[l], &kv->v[l]};
        for (int a = 0; a < 2; a++) {
            gr_tensor *n = kv_tensor(ctx, kv->B, cap, kv->width);
            if (!n || (*arrs[a] && kv_copy(ctx, n, cap, 0, *arrs[a], kv->cap, 0, kv->B, kv->T, kv->width))) {
                gr_tensor_free(ctx, n);
                free(m);
                return gr_ctx_status(ctx) ? gr_ctx_status(ctx) : gr_ctx_fail(ctx, GR_ERR_NOMEM, "KV cache: out of memory");
            }
            gr_tensor_free(ctx, *arrs[a]);
            *arrs[a] = n;
        }
    }
    free(kv->mask);
    kv->mask = m;
    kv->cap = cap;
    return GR_OK;
}

gr_status lmc_kv_reserve(gr_ctx *ctx, lmc_kv *kv, const int32_t *mask, int64_t Tn)
{
    if (gr_ctx_status(ctx)) return gr_ctx_status(ctx);
    gr_status s = kv_grow(ctx, kv, kv->T + Tn);
    if (s != GR_OK) return s;
    for (int64_t b = 0; b < kv->B; b++)
        for (int64_t t = 0; t < Tn; t++)
            kv->mask[b * kv->cap + kv->T + t] = mask ? (mask[b * Tn + t] != 0) : 1;
    return GR_OK;
}

/* Positions 0..n of a layer tensor as a transient [B, n, width]. */
static gr_tensor *kv_prefix(gr_ctx *ctx, lmc_kv *kv, gr_tensor *t, int64_t n)
{
    int64_t shape[3] = {kv->B, kv->cap, kv->width};
    gr_tensor *all = gr_reshape(ctx, t, 3, shape); /* a transient view of the persistent tensor */
    return n == kv->cap ? all : gr_slice(ctx, all, 1, 0, n);
}

gr_status lmc_kv_append(gr_ctx *ctx, lmc_kv *kv, int layer, gr_tensor **k, gr_tensor **v, int64_t Tn)
{
    if (gr_ctx_status(ctx)) return gr_ctx_status(ctx);
    gr_tensor **news[2] = {k, v}, *dst[2] = {kv->k[layer], kv->v[layer]};
    for (int a = 0; a < 2; a++) {
        gr_tensor *x = *news[a];
        if (x->dtype != GR_F32 || gr_numel(x) != kv->B * Tn * kv->width || kv->T + Tn > kv->cap)
            return gr_ctx_fail(ctx, GR_ERR_SHAPE, "KV cache: %lld new positions do not fit layer %d", (long long)Tn, layer);
        if (kv_copy(ctx, dst[a], kv->cap, kv->T, x, Tn, 0, kv->B, Tn, kv->width)) return gr_ctx_status(ctx);
        *news[a] = kv_prefix(ctx, kv, dst[a], kv->T + Tn);
    }
    return gr_ctx_status(ctx);
}

gr_status lmc_kv_past(gr_ctx *ctx, lmc_kv *kv, int layer, gr_tensor **k, gr_tensor **v)
{
    *k = *v = NULL;
    if (gr_ctx_status(ctx)) return gr_ctx_status(ctx);
    if (kv->T == 0) return gr_ctx_fail(ctx, GR_ERR_INVALID, "KV cache: layer %d is empty", layer);
    *k = kv_prefix(ctx, kv, kv->k[layer], kv->T);
    *v = kv_prefix(ctx, kv, kv->v[layer], kv->T);
    return gr_ctx_status(ctx);
}

void lmc_kv_commit(lmc_kv *kv, int64_t Tn)
{
    for (int64_t b = 0; b < kv->B; b++)
        for (int64_t t = 0; t < Tn; t++) kv->pos[b] += kv->mask[b * kv->cap + kv->T + t] != 0;
    kv->T += Tn;
}

gr_status lmc_kv_reorder(gr_ctx *ctx, lmc_kv *kv, const int32_t *rows, int64_t count)
{
    if (gr_ctx_status(ctx)) return gr_ctx_status(ctx);
    if (count <= 0 || count > (int64_t)1 << 30)
        return gr_ctx_fail(ctx, GR_ERR_INVALID, "cache_reorder: %lld rows", (long long)count);
    for (int64_t i = 0; i < count; i++)
        if (rows[i] < 0 || rows[i] >= kv->B)
            return gr_ctx_fail(ctx, GR_ERR_INVALID, "cache_reorder: row %d outside the batch of %lld", rows[i],
                               (long long)kv->B);
    int64_t cap = kv->cap, W = kv->width;
    int32_t *m = calloc((size_t)(count * cap) + 1, sizeof *m);
    int32_t *pos = calloc((size_t)count, sizeof *pos);
    gr_tensor **nk = calloc((size_t)kv->layers + 1, sizeof *nk), **nv = calloc((size_t)kv->layers + 1, sizeof *nv);
    gr_status s = (!m || !pos || !nk || !nv) ? gr_ctx_fail(ctx, GR_ERR_NOMEM, "KV cache: out of memory") : GR_OK;
    for (int64_t i = 0; s == GR_OK && i < count; i++) {
        if (cap) memcpy(m + i * cap, kv->mask + rows[i] * cap, (size_t)cap * sizeof *m);
        pos[i] = kv->pos[rows[i]];
    }
    /* One gather of whole rows [cap * width] per tensor, with the row ids on the device. */
    int64_t n = count;
    gr_tensor *ids = s == GR_OK && cap ? gr_from_host(ctx, GR_I32, 1, &n, rows) : NULL;
    if (s == GR_OK && cap && !ids) s = gr_ctx_status(ctx);
    gr_backend *be = gr_ctx_backend(ctx);
    for (int l = 0; s == GR_OK && cap && l < kv->layers; l++) {
        gr_tensor *src[2] = {kv->k[l], kv->v[l]}, **dst[2] = {&nk[l], &nv[l]};
        for (int a = 0; s == GR_OK && a < 2; a++) {
            *dst[a] = kv_tensor(ctx, count, cap, W);
            if (!*dst[a]) { s = gr_ctx_status(ctx); break; }
            gr_tensor out = kv_desc(*dst[a], 0, count, cap * W), table = kv_desc(src[a], 0, kv->B, cap * W);
            gr_status ks = be->iface->gather_rows(be->ctx, &out, &table, ids);
            if (ks) s = gr_ctx_fail(ctx, ks, "cache_reorder: %s", gr_last_error());
        }
    }
    if (s != GR_OK) {
        for (int l = 0; nk && nv && l < kv->layers; l++) { gr_tensor_free(ctx, nk[l]); gr_tensor_free(ctx, nv[l]); }
        free(nk); free(nv); free(m); free(pos);
        return s;
    }
    for (int l = 0; l < kv->layers; l++) {
        gr_tensor_free(ctx, kv->k[l]);
        gr_tensor_free(ctx, kv->v[l]);
    }
    free(kv->k); free(kv->v); free(kv->mask); free(kv->pos);
    kv->k = nk;
    kv->v = nv;
    kv->mask = m;
    kv->pos = pos;
    kv->B = count;
    return GR_OK;
}

/* ---------------------------------------------------------------- ABI ---- */

void lmc_fill(void *dst, const void *own, size_t own_size)
{
    uint32_t host;
    memcpy(&host, dst, sizeof host);
    size_t n = host && host < own_size ? host : own_size;
    if (n < sizeof host) return; /* not even struct_size fits: nothing can be said */
    memcpy(dst, own, n);
    host = (uint32_t)n;
    memcpy(dst, &host, sizeof host);
}

/* ---------------------------------------------------------------- common slots ---- */

static lmc_lm *base_of(gr_lm *m) { return (lmc_lm *)(void *)m; }
static const lmc_lm *cbase_of(const gr_lm *m) { return (const lmc_lm *)(const void *)m; }

void lmc_lm_info(const gr_lm *m, gr_lm_info *out) { lmc_fill(out, &cbase_of(m)->info, sizeof *out); }

void lmc_lm_params(gr_lm *m, gr_param_list *out)
{
    out->items = base_of(m)->L.items;
    out->count = base_of(m)->L.count;
}

gr_tensor *lmc_lm_input_embeddings(gr_lm *m) { return base_of(m)->embed; }

gr_status lmc_lm_set_layers(gr_lm *m, const int *layers, int count)
{
    lmc_lm *b = base_of(m);
    return lmc_set_layers(&b->order, &b->norder, b->info.num_layers, layers, count, b->info.family);
}

gr_tensor **lmc_lm_hidden(gr_ctx *ctx, lmc_lm *b)
{
    free(b->hs);
    b->hs = calloc((size_t)b->norder + 1, sizeof *b->hs);
    if (!b->hs) gr_ctx_fail(ctx, GR_ERR_NOMEM, "%s: out of memory", b->info.family);
    return b->hs;
}

void lmc_lm_free(lmc_lm *b)
{
    lmc_loader_free_all(&b->L);
    free(b->order);
    free(b->hs);
    b->order = NULL;
    b->hs = NULL;
}

/* ---------------------------------------------------------------- decoder-only ---- */

static lmc_causal *causal_of(gr_lm *m) { return (lmc_causal *)(void *)m; }
static lmc_kv *kv_of(gr_lm_cache *c) { return (lmc_kv *)(void *)c; }

gr_status lmc_causal_forward(gr_lm *m, gr_ctx *ctx, const gr_lm_inputs *in, gr_lm_outputs *out)
{
    lmc_causal *c = causal_of(m);
    lmc_lm *b = &c->base;
    gr_lm_outputs o = {.struct_size = sizeof o};
    int64_t B = in->batch, P = lmc_prefix_len(in), T = 0;
    int32_t *mask = NULL, *pos = NULL, *labels = NULL;
    gr_tensor **hs = NULL;
    if (gr_ctx_status(ctx) || lmc_check_inputs(ctx, in, b->info.embed_dim, b->info.vocab_size, b->info.family))
        goto done;
    gr_tensor *x = lmc_input_embeds(ctx, in, b->embed, b->info.embed_dim, b->info.pad_id, &T);
    mask = lmc_full_mask(in, P);
    pos = malloc((size_t)(B * T + 1) * sizeof *pos);
    labels = lmc_full_labels(in, P);
    if (!mask || !pos || (in->labels && !labels)) {
        gr_ctx_fail(ctx, GR_ERR_NOMEM, "%s: out of memory", b->info.family);
        goto done;
    }
    c->positions(mask, B, T, NULL, 0, pos);
    if (in->want_hidden_states && !(hs = lmc_lm_hidden(ctx, b))) goto done;
    o.last_hidden_state = c->stack(m, ctx, x, B, T, pos, mask, T, NULL, hs);
    o.logits = gr_linear(ctx, o.last_hidden_state, c->head, NULL);
    if (labels) o.loss = lmc_causal_loss(ctx, o.logits, labels, B, T);
    o.hidden_states = hs;
    o.num_hidden_states = hs ? b->norder + 1 : 0;
done:
    free(mask);
    free(pos);
    free(labels);
    if (gr_ctx_status(ctx)) memset(&o, 0, sizeof o);
    lmc_fill(out, &o, sizeof o);
    return gr_ctx_status(ctx);
}

/* T new positions x (mask host [B, T], NULL: all real) through the stack with the cache;
 * *logits = the last position's [B, vocab]. */
static gr_status causal_advance(gr_lm *m, gr_ctx *ctx, lmc_kv *kv, gr_tensor *x, const int32_t *new_mask, int64_t T,
                                gr_tensor **logits)
{
    lmc_causal *c = causal_of(m);
    const char *family = c->base.info.family;
    int64_t B = kv->B;
    if (kv->layers != c->base.norder)
        return gr_ctx_fail(ctx, GR_ERR_INVALID, "%s: set_layers changed the layers since generate_begin", family);
    if (lmc_kv_reserve(ctx, kv, new_mask, T)) return gr_ctx_status(ctx);
    int64_t Tk = kv->T + T;
    int32_t *km = malloc((size_t)(B * Tk) * sizeof *km), *nm = malloc((size_t)(B * T) * sizeof *nm);
    int32_t *pos = malloc((size_t)(B * T) * sizeof *pos);
    if (!km || !nm || !pos) {
        free(km); free(nm); free(pos);
        return gr_ctx_fail(ctx, GR_ERR_NOMEM, "%s: out of memory", family);
    }
    for (int64_t b = 0; b < B; b++) {
        memcpy(km + b * Tk, kv->mask + b * kv->cap, (size_t)Tk * sizeof *km);
        memcpy(nm + b * T, km + b * Tk + kv->T, (size_t)T * sizeof *nm);
    }
    c->positions(nm, B, T, kv->pos, 1, pos);
    gr_tensor *h = c->stack(m, ctx, x, B, T, pos, km, Tk, kv, NULL);
    free(km); free(nm); free(pos);
    if (gr_ctx_status(ctx)) return gr_ctx_status(ctx);
    lmc_kv_commit(kv, T);
    gr_tensor *l = gr_linear(ctx, gr_slice(ctx, h, 1, T - 1, 1), c->head, NULL);
    int64_t shape[2] = {B, c->base.info.vocab_size};
    *logits = gr_reshape(ctx, l, 2, shape);
    return gr_ctx_status(ctx);
}

gr_status lmc_causal_begin(gr_lm *m, gr_ctx *ctx, const gr_lm_inputs *in, gr_lm_cache **cache, gr_tensor **logits)
{
    lmc_causal *c = causal_of(m);
    const gr_lm_info *I = &c->base.info;
    *cache = NULL;
    *logits = NULL;
    if (gr_ctx_status(ctx)) return gr_ctx_status(ctx);
    if (lmc_check_inputs(ctx, in, I->embed_dim, I->vocab_size, I->family)) return gr_ctx_status(ctx);
    int64_t P = lmc_prefix_len(in), T;
    if (P + in->seq == 0) return gr_ctx_fail(ctx, GR_ERR_INVALID, "%s: generate_begin: empty prompt", I->family);
    lmc_kv *kv = calloc(1, sizeof *kv);
    if (!kv) return gr_ctx_fail(ctx, GR_ERR_NOMEM, "%s: out of memory", I->family);
    int prev = gr_ctx_set_grad_enabled(ctx, 0);
    int32_t *mask = NULL;
    if (lmc_kv_init(ctx, kv, c->base.norder, in->batch, c->kv_width) == GR_OK) {
        gr_tensor *x = lmc_input_embeds(ctx, in, c->base.embed, I->embed_dim, I->pad_id, &T);
        mask = lmc_full_mask(in, P);
        if (!mask) gr_ctx_fail(ctx, GR_ERR_NOMEM, "%s: out of memory", I->family);
        else causal_advance(m, ctx, kv, x, mask, T, logits);
    }
    free(mask);
    gr_ctx_set_grad_enabled(ctx, prev);
    gr_status s = gr_ctx_status(ctx);
    if (s != GR_OK) {
        lmc_kv_free(ctx, kv);
        free(kv);
        *logits = NULL;
        return s;
    }
    *cache = (gr_lm_cache *)(void *)kv;
    return GR_OK;
}

gr_status lmc_causal_step(gr_lm *m, gr_ctx *ctx, gr_lm_cache *cache, const int32_t *next_ids, gr_tensor **logits)
{
    lmc_causal *c = causal_of(m);
    lmc_kv *kv = kv_of(cache);
    *logits = NULL;
    if (gr_ctx_status(ctx)) return gr_ctx_status(ctx);
    int64_t B = kv->B, shape[2] = {B, 1};
    for (int64_t b = 0; b < B; b++)
        if (next_ids[b] < 0 || next_ids[b] >= c->base.info.vocab_size)
            return gr_ctx_fail(ctx, GR_ERR_INVALID, "%s: token id %d outside the vocabulary", c->base.info.family,
                               next_ids[b]);
    int prev = gr_ctx_set_grad_enabled(ctx, 0);
    gr_tensor *x = gr_embedding(ctx, c->base.embed, gr_from_host(ctx, GR_I32, 2, shape, next_ids), c->base.info.pad_id);
    gr_status s = causal_advance(m, ctx, kv, x, NULL, 1, logits);
    gr_ctx_set_grad_enabled(ctx, prev);
    return s;
}

gr_status lmc_causal_reorder(gr_lm *m, gr_ctx *ctx, gr_lm_cache *cache, const int32_t *rows, int64_t count)
{
    (void)m;
    return lmc_kv_reorder(ctx, kv_of(cache), rows, count);
}

void lmc_causal_free(gr_lm *m, gr_ctx *ctx, gr_lm_cache *cache)
{
    (void)m;
    if (!cache) return;
    lmc_kv_free(ctx, kv_of(cache));
    free(cache);
}
