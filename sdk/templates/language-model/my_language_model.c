/* Template: a language-model adapter ("my-language-model").
 *
 * The language model is the frozen part a VLM is grafted onto: the soft prompt (projected
 * vision tokens) goes in front of the text, the loss is HF's causal-LM loss on the caption,
 * and gradients flow through the frozen LM to the prompt. docs/language-models.md explains
 * what OPT, T5 and Llama do differently and what an adapter must expose; read it first.
 *
 * This one is a deliberately tiny decoder-only transformer so that every slot is shown
 * working: token embeddings (tied to the output head), one pre-LN causal self-attention
 * block with a residual, a final LayerNorm. Config keys (config.json): vocab_size,
 * hidden_size, num_attention_heads, bos_token_id, eos_token_id, pad_token_id. Parameter
 * names: embed_tokens.weight [V, E]; layer.ln.{weight,bias} [E];
 * layer.{q,k,v,o}_proj.weight [E, E]; final_norm.{weight,bias} [E].
 * Replace build/forward with your family's code; keep the contracts below.
 *
 * What the core guarantees:
 *  - open() once per instance, close() once per successful open(), same ctx; calls on one
 *    instance never overlap. src->config lives during open(); src->weights until close().
 *  - Inputs are checked by you, not by the core: batch, seq, ids in [0, vocab) (gr_embedding
 *    reports an id out of range), prefix [B, P, embed_dim] F32.
 *  - The engine trains nothing of the LM unless a strategy asks (by parameter name); when the
 *    prefix needs a gradient, every gr_* operation of forward() is recorded and the core
 *    computes dL/dprefix without ever computing a gradient for a frozen weight.
 *  - Generation: the core calls generate_begin once, then generate_step per new token,
 *    cache_reorder between steps for beam search, and always cache_free at the end.
 *
 * What this plugin must do (forward):
 *  - decoder-only: the sequence is [prefix; text]; logits cover all P + seq positions;
 *    labels [B, seq] are aligned with the text, shifted inside (position t predicts label
 *    t + 1), -100 and the prefix positions ignored, the loss is their mean (HF's);
 *  - mask [B, seq] (1 = real token) hides padded keys; the prefix is always attended;
 *  - want_hidden_states: HF's output_hidden_states (embeddings, then each layer: L + 1);
 *  - never exit; every failure is a gr_status with a one-line gr_fail() message. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graft/model.h"
#include "graft/plugin.h"
#include "graft/rng.h"

#define IGNORE_INDEX (-100)
#define MAX_ORDER 16

enum { EMBED, LN_W, LN_B, Q_W, K_W, V_W, O_W, FIN_W, FIN_B, NPARAMS };
static const char *const param_names[NPARAMS] = {
    "embed_tokens.weight", "layer.ln.weight", "layer.ln.bias", "layer.q_proj.weight",
    "layer.k_proj.weight", "layer.v_proj.weight", "layer.o_proj.weight", "final_norm.weight",
    "final_norm.bias"};

struct gr_lm {
    int64_t vocab, dim, heads;
    int32_t bos, eos, pad;
    gr_tensor *params[NPARAMS];
    int order[MAX_ORDER], norder;     /* layers to run (set_layers); one layer here */
    gr_tensor *hidden_states[MAX_ORDER + 1];
};

/* The KV cache of a real adapter holds keys and values per layer; this one keeps the input
 * embeddings and recomputes (correct, O(T^2) per token: fine for a template, not for speed). */
struct gr_lm_cache {
    int64_t batch, len, cap;
    float *emb;     /* [batch, cap, dim] */
    int32_t *mask;  /* [batch, cap] */
};

/* ------------------------------------------------------------------ loading ---- */

static gr_status config_int(const gr_model_source *src, const char *key, int64_t fallback,
                            int64_t min, int64_t *out)
{
    const json_t *v = src->config ? json_object_get(src->config, key) : NULL;
    if (!v || json_is_null(v)) { *out = fallback; return GR_OK; }
    if (!json_is_integer(v) || json_integer_value(v) < min)
        return gr_fail(GR_ERR_FORMAT, "%s: '%s' must be an integer >= %lld",
                       src->config_path ? src->config_path : "config", key, (long long)min);
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
        if (!same)
            return gr_fail(GR_ERR_SHAPE, "%s: tensor '%s' does not have the shape the config "
                           "implies (%lld x %lld)", wi->file, full, (long long)shape[0],
                           (long long)(ndim > 1 ? shape[1] : 1));
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
    int ones = index == LN_W || index == FIN_W, zeros = index == LN_B || index == FIN_B;
    for (int64_t i = 0; i < n; i++)
        host[i] = ones ? 1.0f : zeros ? 0.0f : (float)(0.02 * gr_rng_normal(&rng));
    gr_status s = gr_upload(ctx, t, host);
    free(host);
    if (s != GR_OK) { gr_tensor_free(ctx, t); return s; }
    *out = t;
    return GR_OK;
}

static void my_close(gr_lm *lm, gr_ctx *ctx)
{
    if (!lm) return;
    for (int i = 0; i < NPARAMS; i++) gr_tensor_free(ctx, lm->params[i]);
    free(lm);
}

static gr_status my_open(gr_ctx *ctx, const gr_model_source *src, gr_lm **out)
{
    *out = NULL;
    gr_lm *lm = calloc(1, sizeof *lm);
    if (!lm) return gr_fail(GR_ERR_NOMEM, "my-language-model: out of memory");
    int64_t bos = -1, eos = -1, pad = -1;
    gr_status s = config_int(src, "vocab_size", 0, 1, &lm->vocab);
    if (s == GR_OK) s = config_int(src, "hidden_size", 0, 1, &lm->dim);
    if (s == GR_OK) s = config_int(src, "num_attention_heads", 1, 1, &lm->heads);
    if (s == GR_OK) s = config_int(src, "bos_token_id", -1, -1, &bos);
    if (s == GR_OK) s = config_int(src, "eos_token_id", -1, -1, &eos);
    if (s == GR_OK) s = config_int(src, "pad_token_id", -1, -1, &pad);
    if (s == GR_OK && (lm->vocab == 0 || lm->dim == 0))
        s = gr_fail(GR_ERR_FORMAT, "%s: vocab_size and hidden_size are required",
                    src->config_path ? src->config_path : "config");
    if (s == GR_OK && lm->dim % lm->heads != 0)
        s = gr_fail(GR_ERR_FORMAT, "%s: hidden_size %lld is not a multiple of num_attention_heads "
                    "%lld", src->config_path ? src->config_path : "config", (long long)lm->dim,
                    (long long)lm->heads);
    if (s != GR_OK) { free(lm); return s; }
    lm->bos = (int32_t)bos, lm->eos = (int32_t)eos, lm->pad = (int32_t)pad;
    const int64_t E = lm->dim, table[2] = {lm->vocab, E}, sq[2] = {E, E}, vec[1] = {E};
    for (int i = 0; i < NPARAMS && s == GR_OK; i++) {
        int is_vec = i == LN_W || i == LN_B || i == FIN_W || i == FIN_B;
        s = make_param(ctx, src, i, is_vec ? 1 : 2, i == EMBED ? table : is_vec ? vec : sq,
                       &lm->params[i]);
    }
    if (s != GR_OK) { my_close(lm, ctx); return s; }
    lm->order[0] = 0;
    lm->norder = 1;
    *out = lm;
    return GR_OK;
}

static void my_info(const gr_lm *lm, gr_lm_info *out)
{
    uint32_t size = out->struct_size && out->struct_size < sizeof *out ? out->struct_size
                                                                       : (uint32_t)sizeof *out;
    gr_lm_info info = {
        .struct_size = size, .family = "my-language-model", .hidden_size = lm->dim,
        .embed_dim = lm->dim, .vocab_size = lm->vocab, .num_layers = 1,
        .num_encoder_layers = 0, .is_encoder_decoder = 0, .bos_id = lm->bos, .eos_id = lm->eos,
        .pad_id = lm->pad, .decoder_start_id = -1,
    };
    memcpy(out, &info, size);
}

static void my_params(gr_lm *lm, gr_param_list *out)
{
    out->items = lm->params;
    out->count = NPARAMS;
}

static gr_tensor *my_input_embeddings(gr_lm *lm) { return lm->params[EMBED]; }

/* ------------------------------------------------------------------ forward ---- */

/* x [B, T, E] -> final hidden states [B, T, E]; key_mask host [B, T]. Fills hidden_states
 * (embeddings, then each layer's output) when `hs` is not NULL. */
static gr_tensor *run_stack(gr_lm *lm, gr_ctx *ctx, gr_tensor *x, const int32_t *key_mask,
                            gr_tensor **hs)
{
    if (!x) return NULL;
    int64_t B = x->shape[0], T = x->shape[1], E = lm->dim, H = lm->heads, D = E / H;
    gr_tensor **p = lm->params;
    gr_tensor *mask = gr_attention_mask(ctx, B, T, T, key_mask, 1);  /* [B, 1, T, T] */
    static const int to_heads[4] = {0, 2, 1, 3};
    if (hs) hs[0] = x;
    for (int l = 0; l < lm->norder; l++) {
        gr_tensor *h = gr_layernorm(ctx, x, p[LN_W], p[LN_B], 1e-5f);
        gr_tensor *q = gr_linear(ctx, h, p[Q_W], NULL), *k = gr_linear(ctx, h, p[K_W], NULL);
        gr_tensor *v = gr_linear(ctx, h, p[V_W], NULL);
        const int64_t split[4] = {B, T, H, D};
        q = gr_permute(ctx, gr_reshape(ctx, q, 4, split), to_heads);  /* [B, H, T, D] */
        k = gr_permute(ctx, gr_reshape(ctx, k, 4, split), to_heads);
        v = gr_permute(ctx, gr_reshape(ctx, v, 4, split), to_heads);
        gr_tensor *scores = gr_add(ctx, gr_scale(ctx, gr_matmul(ctx, q, k, 0, 1),
                                                 (float)(1.0 / sqrt((double)D))), mask);
        gr_tensor *o = gr_matmul(ctx, gr_softmax(ctx, scores), v, 0, 0);
        o = gr_reshape(ctx, gr_permute(ctx, o, to_heads), 3, (int64_t[]){B, T, E});
        x = gr_add(ctx, x, gr_linear(ctx, o, p[O_W], NULL));
        if (hs) hs[l + 1] = x;
    }
    return gr_layernorm(ctx, x, p[FIN_W], p[FIN_B], 1e-5f);
}

/* The input sequence [prefix; text] as embeddings [B, P + seq, E], and its key mask. */
static gr_tensor *embed_inputs(gr_lm *lm, gr_ctx *ctx, const gr_lm_inputs *in, int32_t **mask_out)
{
    int64_t B = in->batch, S = in->seq, P = in->prefix ? in->prefix->shape[1] : 0;
    gr_tensor *x = NULL;
    if (S > 0 && in->ids) {
        gr_tensor *ids = gr_from_host(ctx, GR_I32, 2, (int64_t[]){B, S}, in->ids);
        x = gr_embedding(ctx, lm->params[EMBED], ids, -1);
    } else if (S > 0) {
        x = in->inputs_embeds;
    }
    if (in->prefix) x = x ? gr_concat(ctx, in->prefix, x, 1) : in->prefix;
    int32_t *m = malloc((size_t)(B * (P + S)) * sizeof *m);
    if (!m) { gr_ctx_fail(ctx, GR_ERR_NOMEM, "my-language-model: out of memory"); return NULL; }
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < P + S; t++)
            m[b * (P + S) + t] = t < P || !in->mask ? 1 : in->mask[b * S + t - P] != 0;
    *mask_out = m;
    return x;
}

static gr_status check_inputs(gr_lm *lm, gr_ctx *ctx, const gr_lm_inputs *in)
{
    if (!in || in->struct_size < sizeof *in || in->batch <= 0 || in->seq < 0 ||
        (in->seq == 0 && !in->prefix))
        return gr_ctx_fail(ctx, GR_ERR_INVALID, "my-language-model: empty or malformed inputs");
    if (in->seq > 0 && !in->ids && !in->inputs_embeds)
        return gr_ctx_fail(ctx, GR_ERR_INVALID, "my-language-model: neither ids nor inputs_embeds");
    const gr_tensor *parts[2] = {in->prefix, in->ids ? NULL : in->inputs_embeds};
    for (int i = 0; i < 2; i++)
        if (parts[i] && (parts[i]->ndim != 3 || parts[i]->shape[0] != in->batch ||
                         parts[i]->shape[2] != lm->dim || parts[i]->dtype != GR_F32)) {
            char got[96];
            return gr_ctx_fail(ctx, GR_ERR_SHAPE, "my-language-model: %s is %s, expected F32 "
                               "[%lld, N, %lld]", i ? "inputs_embeds" : "prefix",
                               gr_shape_str(parts[i], got, sizeof got), (long long)in->batch,
                               (long long)lm->dim);
        }
    return GR_OK;
}

static gr_status my_forward(gr_lm *lm, gr_ctx *ctx, const gr_lm_inputs *in, gr_lm_outputs *out)
{
    uint32_t size = out->struct_size && out->struct_size < sizeof *out ? out->struct_size
                                                                       : (uint32_t)sizeof *out;
    memset(out, 0, size);
    out->struct_size = size;
    gr_status s = check_inputs(lm, ctx, in);
    if (s != GR_OK) return s;
    int64_t B = in->batch, S = in->seq, P = in->prefix ? in->prefix->shape[1] : 0, T = P + S;
    int32_t *mask = NULL;
    gr_tensor *x = embed_inputs(lm, ctx, in, &mask);
    gr_tensor *hidden = run_stack(lm, ctx, x, mask, in->want_hidden_states ? lm->hidden_states : NULL);
    free(mask);
    gr_tensor *logits = gr_linear(ctx, hidden, lm->params[EMBED], NULL); /* tied head */
    gr_tensor *loss = NULL;
    if (in->labels && logits) {
        /* Position t predicts the label of t + 1; prefix positions and the last one ignored. */
        int32_t *shifted = malloc((size_t)(B * T) * sizeof *shifted);
        if (!shifted) return gr_ctx_fail(ctx, GR_ERR_NOMEM, "my-language-model: out of memory");
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = 0; t < T; t++)
                shifted[b * T + t] = t + 1 < T && t + 1 >= P ? in->labels[b * S + t + 1 - P]
                                                             : IGNORE_INDEX;
        gr_tensor *lab = gr_from_host(ctx, GR_I32, 2, (int64_t[]){B, T}, shifted);
        free(shifted);
        loss = gr_cross_entropy(ctx, logits, lab, IGNORE_INDEX);
    }
    s = gr_ctx_status(ctx);
    if (s != GR_OK) return gr_fail_context(s, "my-language-model");
    out->logits = logits;
    out->loss = loss;
    out->last_hidden_state = hidden;
    if (in->want_hidden_states) {
        out->hidden_states = lm->hidden_states;
        out->num_hidden_states = lm->norder + 1;
    }
    return GR_OK;
}

/* Must: run only these layers in this order (NULL/0: all) until the next call. */
static gr_status my_set_layers(gr_lm *lm, const int *layers, int count)
{
    if (!layers || count == 0) { lm->order[0] = 0; lm->norder = 1; return GR_OK; }
    if (count < 0 || count > MAX_ORDER)
        return gr_fail(GR_ERR_INVALID, "my-language-model: set_layers: %d layers (at most %d)",
                       count, MAX_ORDER);
    for (int i = 0; i < count; i++)
        if (layers[i] != 0)
            return gr_fail(GR_ERR_INVALID, "my-language-model: set_layers: layer %d outside 0..0",
                           layers[i]);
    memcpy(lm->order, layers, (size_t)count * sizeof *layers);
    lm->norder = count;
    return GR_OK;
}

/* --------------------------------------------------------------- generation ---- */

/* Logits [B, V] of the last position of the cached sequence. */
static gr_status cache_logits(gr_lm *lm, gr_ctx *ctx, gr_lm_cache *c, gr_tensor **logits)
{
    int64_t B = c->batch, T = c->len, E = lm->dim;
    float *emb = malloc((size_t)(B * T * E) * sizeof *emb);
    int32_t *mask = malloc((size_t)(B * T) * sizeof *mask);
    if (!emb || !mask) { free(emb); free(mask); return gr_fail(GR_ERR_NOMEM, "out of memory"); }
    for (int64_t b = 0; b < B; b++) {
        memcpy(emb + b * T * E, c->emb + b * c->cap * E, (size_t)(T * E) * sizeof *emb);
        memcpy(mask + b * T, c->mask + b * c->cap, (size_t)T * sizeof *mask);
    }
    gr_tensor *x = gr_from_host(ctx, GR_F32, 3, (int64_t[]){B, T, E}, emb);
    gr_tensor *h = gr_slice(ctx, run_stack(lm, ctx, x, mask, NULL), 1, T - 1, 1);
    gr_tensor *l = gr_linear(ctx, gr_reshape(ctx, h, 2, (int64_t[]){B, E}), lm->params[EMBED], NULL);
    free(emb);
    free(mask);
    gr_status s = gr_ctx_status(ctx);
    if (s != GR_OK) return gr_fail_context(s, "my-language-model: generation");
    *logits = l;
    return GR_OK;
}

/* Appends [B, n, E] embeddings (a transient tensor) with mask values to the cache. */
static gr_status cache_append(gr_ctx *ctx, gr_lm_cache *c, gr_tensor *x, int64_t E,
                              const int32_t *mask)
{
    int64_t B = c->batch, n = x->shape[1];
    if (c->len + n > c->cap) {
        int64_t cap = (c->len + n) * 2;
        float *emb = calloc((size_t)(B * cap * E), sizeof *emb);
        int32_t *m = calloc((size_t)(B * cap), sizeof *m);
        if (!emb || !m) { free(emb); free(m); return gr_fail(GR_ERR_NOMEM, "out of memory"); }
        for (int64_t b = 0; b < B; b++) {
            if (c->emb) memcpy(emb + b * cap * E, c->emb + b * c->cap * E, (size_t)(c->len * E) * sizeof *emb);
            if (c->mask) memcpy(m + b * cap, c->mask + b * c->cap, (size_t)c->len * sizeof *m);
        }
        free(c->emb);
        free(c->mask);
        c->emb = emb, c->mask = m, c->cap = cap;
    }
    float *host = malloc((size_t)(B * n * E) * sizeof *host);
    if (!host) return gr_fail(GR_ERR_NOMEM, "out of memory");
    gr_status s = gr_to_host_f32(ctx, x, host);
    for (int64_t b = 0; s == GR_OK && b < B; b++) {
        memcpy(c->emb + (b * c->cap + c->len) * E, host + b * n * E, (size_t)(n * E) * sizeof *host);
        for (int64_t t = 0; t < n; t++) c->mask[b * c->cap + c->len + t] = mask ? mask[b * n + t] : 1;
    }
    free(host);
    if (s == GR_OK) c->len += n;
    return s;
}

static void my_cache_free(gr_lm *lm, gr_ctx *ctx, gr_lm_cache *c)
{
    (void)lm, (void)ctx;
    if (!c) return;
    free(c->emb);
    free(c->mask);
    free(c);
}

static gr_status my_generate_begin(gr_lm *lm, gr_ctx *ctx, const gr_lm_inputs *prompt,
                                   gr_lm_cache **cache, gr_tensor **logits)
{
    *cache = NULL;
    gr_status s = check_inputs(lm, ctx, prompt);
    if (s != GR_OK) return s;
    gr_lm_cache *c = calloc(1, sizeof *c);
    if (!c) return gr_fail(GR_ERR_NOMEM, "out of memory");
    c->batch = prompt->batch;
    int32_t *mask = NULL;
    gr_tensor *x = embed_inputs(lm, ctx, prompt, &mask);
    s = x ? cache_append(ctx, c, x, lm->dim, mask) : gr_ctx_status(ctx);
    free(mask);
    if (s == GR_OK) s = cache_logits(lm, ctx, c, logits);
    if (s != GR_OK) { my_cache_free(lm, ctx, c); return s; }
    *cache = c;
    return GR_OK;
}

static gr_status my_generate_step(gr_lm *lm, gr_ctx *ctx, gr_lm_cache *c, const int32_t *next_ids,
                                  gr_tensor **logits)
{
    gr_tensor *ids = gr_from_host(ctx, GR_I32, 2, (int64_t[]){c->batch, 1}, next_ids);
    gr_tensor *x = gr_embedding(ctx, lm->params[EMBED], ids, -1);
    gr_status s = x ? cache_append(ctx, c, x, lm->dim, NULL) : gr_ctx_status(ctx);
    return s == GR_OK ? cache_logits(lm, ctx, c, logits) : s;
}

/* Must: row i of the cache becomes old row rows[i] (beam search keeps the best beams). */
static gr_status my_cache_reorder(gr_lm *lm, gr_ctx *ctx, gr_lm_cache *c, const int32_t *rows,
                                  int64_t count)
{
    (void)ctx;
    if (count != c->batch)
        return gr_fail(GR_ERR_INVALID, "my-language-model: reorder of %lld rows, cache has %lld",
                       (long long)count, (long long)c->batch);
    int64_t E = lm->dim, row = c->cap * E;
    float *emb = malloc((size_t)(c->batch * row) * sizeof *emb);
    int32_t *mask = malloc((size_t)(c->batch * c->cap) * sizeof *mask);
    if (!emb || !mask) { free(emb); free(mask); return gr_fail(GR_ERR_NOMEM, "out of memory"); }
    for (int64_t i = 0; i < count; i++) {
        if (rows[i] < 0 || rows[i] >= c->batch) {
            free(emb);
            free(mask);
            return gr_fail(GR_ERR_INVALID, "my-language-model: reorder row %d outside 0..%lld",
                           rows[i], (long long)c->batch - 1);
        }
        memcpy(emb + i * row, c->emb + rows[i] * row, (size_t)row * sizeof *emb);
        memcpy(mask + i * c->cap, c->mask + rows[i] * c->cap, (size_t)c->cap * sizeof *mask);
    }
    free(c->emb);
    free(c->mask);
    c->emb = emb, c->mask = mask;
    return GR_OK;
}

static const gr_lm_iface iface = {
    .struct_size = sizeof(gr_lm_iface),
    .open = my_open,
    .close = my_close,
    .info = my_info,
    .params = my_params,
    .input_embeddings = my_input_embeddings,
    .forward = my_forward,
    .set_layers = my_set_layers,
    .generate_begin = my_generate_begin,
    .generate_step = my_generate_step,
    .cache_reorder = my_cache_reorder,
    .cache_free = my_cache_free,
};

static const gr_plugin_descriptor descriptor = GR_PLUGIN_DESCRIPTOR(
    GR_PLUGIN_LANGUAGE_MODEL, "my-language-model", "one-block decoder-only transformer (template)",
    &iface);

GR_PLUGIN_EXPORT const gr_plugin_descriptor *graft_plugin_entry(void) { return &descriptor; }
