/* OPT (OPTForCausalLM) as transformers computes it: learned positions following the mask
 * (row = cumsum(mask) * mask - 1 + 2), optional project_in/project_out, pre- or post-LN layers,
 * q scaled by head_dim^-0.5 before q.k, lm_head tied to embed_tokens unless
 * tie_word_embeddings is false. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "graft/plugin.h"
#include "lm_common.h"

#define OPT_LN_EPS 1e-5f
#define OPT_POS_OFFSET 2

typedef struct opt_layer {
    gr_tensor *ln1_w, *ln1_b, *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b;
    gr_tensor *ln2_w, *ln2_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b;
} opt_layer;

struct gr_lm {
    int64_t d, heads, head_dim, ffn, vocab, word_dim, max_pos;
    int layers, pre_ln, final_ln, bias, affine, tied;
    gr_unary_op act;
    int32_t pad_id, bos_id, eos_id;
    lmc_loader L;
    gr_tensor *embed, *pos, *proj_in, *proj_out, *final_w, *final_b, *head;
    opt_layer *layer;
    int *order, norder;
    gr_tensor **hs;           /* hidden_states of the last forward (valid until the next) */
};

struct gr_lm_cache {
    lmc_kv kv;
};

static gr_status read_config(gr_lm *m, const gr_model_source *src)
{
    lmc_cfg c = {src->config, src->config_path};
    int64_t v;
    gr_status s;
    const char *act;
    if ((s = lmc_int(&c, "hidden_size", 768, 0, &m->d)) || (s = lmc_positive(&c, "hidden_size", m->d)) ||
        (s = lmc_int(&c, "num_attention_heads", 12, 0, &m->heads)) ||
        (s = lmc_positive(&c, "num_attention_heads", m->heads)) ||
        (s = lmc_int(&c, "ffn_dim", 3072, 0, &m->ffn)) || (s = lmc_positive(&c, "ffn_dim", m->ffn)) ||
        (s = lmc_int(&c, "num_hidden_layers", 12, 0, &v)) ||
        (s = lmc_int(&c, "vocab_size", 50272, 0, &m->vocab)) || (s = lmc_positive(&c, "vocab_size", m->vocab)) ||
        (s = lmc_int(&c, "max_position_embeddings", 2048, 0, &m->max_pos)) ||
        (s = lmc_int(&c, "word_embed_proj_dim", m->d, 0, &m->word_dim)) ||
        (s = lmc_bool(&c, "do_layer_norm_before", 1, &m->pre_ln)) ||
        (s = lmc_bool(&c, "_remove_final_layer_norm", 0, &m->final_ln)) ||
        (s = lmc_bool(&c, "enable_bias", 1, &m->bias)) ||
        (s = lmc_bool(&c, "layer_norm_elementwise_affine", 1, &m->affine)) ||
        (s = lmc_bool(&c, "tie_word_embeddings", 1, &m->tied)) ||
        (s = lmc_str(&c, "activation_function", "relu", &act)) ||
        (s = lmc_act(&c, "activation_function", act, &m->act)) ||
        (s = lmc_token(&c, "pad_token_id", 1, &m->pad_id)) || (s = lmc_token(&c, "bos_token_id", 2, &m->bos_id)) ||
        (s = lmc_token(&c, "eos_token_id", 2, &m->eos_id)))
        return s;
    if (v < 0 || v > 100000) return gr_fail(GR_ERR_INVALID, "%s: key 'num_hidden_layers' out of range", c.path);
    m->layers = (int)v;
    m->final_ln = m->pre_ln && !m->final_ln; /* decoder-level final LN: pre-LN without _remove_ */
    if (m->d % m->heads)
        return gr_fail(GR_ERR_INVALID, "%s: key 'hidden_size' (%lld) is not a multiple of 'num_attention_heads' (%lld)",
                       c.path, (long long)m->d, (long long)m->heads);
    if ((s = lmc_positive(&c, "word_embed_proj_dim", m->word_dim)) != GR_OK) return s;
    if (m->max_pos < 0) return gr_fail(GR_ERR_INVALID, "%s: key 'max_position_embeddings' is negative", c.path);
    m->head_dim = m->d / m->heads;
    return GR_OK;
}

static gr_status load(gr_lm *m, gr_ctx *ctx, const gr_model_source *src)
{
    lmc_loader *L = &m->L;
    double std;
    lmc_cfg c = {src->config, src->config_path};
    gr_status s = lmc_num(&c, "init_std", 0.02, &std);
    if (s) return s;
    /* Old OPT checkpoints (facebook/opt-*) store the decoder without the "model." prefix. */
    char pfx[512];
    snprintf(pfx, sizeof pfx, "%s", src->prefix ? src->prefix : "");
    lmc_loader_init(L, ctx, src, pfx);
    const char *base = "model.decoder.";
    if (src->weights && !lmc_stored(L, "model.decoder.embed_tokens.weight") && lmc_stored(L, "decoder.embed_tokens.weight"))
        base = "decoder.";
    int64_t d = m->d, wd = m->word_dim;
    int64_t emb[2] = {m->vocab, wd}, posd[2] = {m->max_pos + OPT_POS_OFFSET, d};
    int64_t dd[2] = {d, d}, dv[1] = {d}, f1[2] = {m->ffn, d}, f2[2] = {d, m->ffn}, fv[1] = {m->ffn};
    char name[512];
    snprintf(name, sizeof name, "%sembed_tokens.weight", base);
    m->embed = lmc_param(L, name, 2, emb, LMC_NORMAL, std, m->pad_id);
    snprintf(name, sizeof name, "%sembed_positions.weight", base);
    m->pos = lmc_param(L, name, 2, posd, LMC_NORMAL, std, -1);
    if (wd != d) {
        int64_t pin[2] = {d, wd}, pout[2] = {wd, d};
        m->proj_in = lmc_paramf(L, 2, pin, LMC_NORMAL, std, "%sproject_in.weight", base);
        m->proj_out = lmc_paramf(L, 2, pout, LMC_NORMAL, std, "%sproject_out.weight", base);
    }
    m->layer = calloc((size_t)(m->layers ? m->layers : 1), sizeof *m->layer);
    if (!m->layer) return gr_fail(GR_ERR_NOMEM, "out of memory");
    for (int i = 0; i < m->layers; i++) {
        opt_layer *y = &m->layer[i];
        const char *lp = base;
#define W(field, nd, shape, init, fmt) y->field = lmc_paramf(L, nd, shape, init, std, "%slayers.%d." fmt, lp, i)
        if (m->affine) {
            W(ln1_w, 1, dv, LMC_ONES, "self_attn_layer_norm.weight");
            W(ln1_b, 1, dv, LMC_ZEROS, "self_attn_layer_norm.bias");
        }
        W(q_w, 2, dd, LMC_NORMAL, "self_attn.q_proj.weight");
        W(k_w, 2, dd, LMC_NORMAL, "self_attn.k_proj.weight");
        W(v_w, 2, dd, LMC_NORMAL, "self_attn.v_proj.weight");
        W(o_w, 2, dd, LMC_NORMAL, "self_attn.out_proj.weight");
        W(fc1_w, 2, f1, LMC_NORMAL, "fc1.weight");
        W(fc2_w, 2, f2, LMC_NORMAL, "fc2.weight");
        if (m->bias) {
            W(q_b, 1, dv, LMC_ZEROS, "self_attn.q_proj.bias");
            W(k_b, 1, dv, LMC_ZEROS, "self_attn.k_proj.bias");
            W(v_b, 1, dv, LMC_ZEROS, "self_attn.v_proj.bias");
            W(o_b, 1, dv, LMC_ZEROS, "self_attn.out_proj.bias");
            W(fc1_b, 1, fv, LMC_ZEROS, "fc1.bias");
            W(fc2_b, 1, dv, LMC_ZEROS, "fc2.bias");
        }
        if (m->affine) {
            W(ln2_w, 1, dv, LMC_ONES, "final_layer_norm.weight");
            W(ln2_b, 1, dv, LMC_ZEROS, "final_layer_norm.bias");
        }
#undef W
    }
    if (m->final_ln && m->affine) {
        m->final_w = lmc_paramf(L, 1, dv, LMC_ONES, 0, "%sfinal_layer_norm.weight", base);
        m->final_b = lmc_paramf(L, 1, dv, LMC_ZEROS, 0, "%sfinal_layer_norm.bias", base);
    }
    /* A stored lm_head.weight next to a tied embedding is ignored, as HF ties it. */
    m->head = m->tied ? m->embed : lmc_param(L, "lm_head.weight", 2, emb, LMC_NORMAL, std, -1);
    return L->status;
}

static void opt_close(gr_lm *m, gr_ctx *ctx)
{
    if (!m) return;
    (void)ctx;
    lmc_loader_free_all(&m->L);
    free(m->layer);
    free(m->order);
    free(m->hs);
    free(m);
}

static gr_status opt_open(gr_ctx *ctx, const gr_model_source *src, gr_lm **out)
{
    *out = NULL;
    gr_lm *m = calloc(1, sizeof *m);
    if (!m) return gr_fail(GR_ERR_NOMEM, "out of memory");
    gr_status s = read_config(m, src);
    if (s == GR_OK) s = load(m, ctx, src);
    if (s == GR_OK) {
        s = lmc_set_layers(&m->order, &m->norder, m->layers, NULL, 0, "opt");
    }
    if (s != GR_OK) {
        opt_close(m, ctx);
        return s;
    }
    *out = m;
    return GR_OK;
}

static void opt_info(const gr_lm *m, gr_lm_info *o)
{
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->family = "opt";
    o->hidden_size = m->d;
    o->embed_dim = m->word_dim;
    o->vocab_size = m->vocab;
    o->num_layers = m->layers;
    o->bos_id = m->bos_id;
    o->eos_id = m->eos_id;
    o->pad_id = m->pad_id;
    o->decoder_start_id = -1;
}

static void opt_params(gr_lm *m, gr_param_list *out)
{
    out->items = m->L.items;
    out->count = m->L.count;
}

static gr_tensor *opt_input_embeddings(gr_lm *m) { return m->embed; }

static gr_status opt_set_layers(gr_lm *m, const int *layers, int count)
{
    return lmc_set_layers(&m->order, &m->norder, m->layers, layers, count, "opt");
}

static gr_tensor *layer_norm(gr_ctx *ctx, gr_tensor *x, gr_tensor *w, gr_tensor *b)
{
    return gr_layernorm(ctx, x, w, b, OPT_LN_EPS);
}

/* The decoder over x [B, T, word_dim] (new positions), with positions `pos` (host [B, T],
 * -1 for padding) and the key mask over past + new (host [B, Tk]). With kv, the past comes
 * from the cache and the new keys/values are stored. -> last hidden state [B, T, word_dim]. */
static gr_tensor *decoder(gr_lm *m, gr_ctx *ctx, gr_tensor *x, int64_t B, int64_t T, const int32_t *pos,
                          const int32_t *key_mask, int64_t Tk, lmc_kv *kv, gr_tensor ***hs)
{
    int32_t *rows = malloc((size_t)(B * T + 1) * sizeof *rows);
    if (!rows) { gr_ctx_fail(ctx, GR_ERR_NOMEM, "out of memory"); return NULL; }
    for (int64_t i = 0; i < B * T; i++) rows[i] = pos[i] + OPT_POS_OFFSET;
    for (int64_t i = 0; i < B * T; i++)
        if (rows[i] >= m->max_pos + OPT_POS_OFFSET) {
            gr_ctx_fail(ctx, GR_ERR_INVALID, "opt: position %d exceeds max_position_embeddings (%lld)",
                        rows[i] - OPT_POS_OFFSET, (long long)m->max_pos);
            free(rows);
            return NULL;
        }
    int64_t ps[2] = {B, T};
    gr_tensor *pos_ids = gr_from_host(ctx, GR_I32, 2, ps, rows);
    free(rows);
    gr_tensor *h = x;
    if (m->proj_in) h = gr_linear(ctx, h, m->proj_in, NULL);
    h = gr_add(ctx, h, gr_embedding(ctx, m->pos, pos_ids, -1));
    gr_tensor *mask = gr_attention_mask(ctx, B, T, Tk, key_mask, 1);
    float scale = 1.0f / sqrtf((float)m->head_dim);
    for (int li = 0; li < m->norder; li++) {
        const opt_layer *y = &m->layer[m->order[li]];
        if (hs) (*hs)[li] = h;
        gr_tensor *res = h;
        gr_tensor *a = m->pre_ln ? layer_norm(ctx, h, y->ln1_w, y->ln1_b) : h;
        gr_tensor *q = gr_linear(ctx, a, y->q_w, y->q_b);
        gr_tensor *k = gr_linear(ctx, a, y->k_w, y->k_b);
        gr_tensor *v = gr_linear(ctx, a, y->v_w, y->v_b);
        if (kv) {
            gr_tensor *pk, *pv;
            if (gr_ctx_status(ctx) || lmc_kv_load(ctx, kv, li, &pk, &pv) || lmc_kv_store(ctx, kv, li, k, v, T))
                return NULL;
            if (pk) { k = gr_concat(ctx, pk, k, 1); v = gr_concat(ctx, pv, v, 1); }
        }
        gr_tensor *att = lmc_attention(ctx, lmc_heads(ctx, q, B, T, m->heads, m->head_dim),
                                       lmc_heads(ctx, k, B, Tk, m->heads, m->head_dim),
                                       lmc_heads(ctx, v, B, Tk, m->heads, m->head_dim), scale, 1, mask, NULL);
        h = gr_add(ctx, res, gr_linear(ctx, att, y->o_w, y->o_b));
        if (!m->pre_ln) h = layer_norm(ctx, h, y->ln1_w, y->ln1_b);
        res = h;
        a = m->pre_ln ? layer_norm(ctx, h, y->ln2_w, y->ln2_b) : h;
        a = gr_linear(ctx, gr_act(ctx, m->act, gr_linear(ctx, a, y->fc1_w, y->fc1_b)), y->fc2_w, y->fc2_b);
        h = gr_add(ctx, res, a);
        if (!m->pre_ln) h = layer_norm(ctx, h, y->ln2_w, y->ln2_b);
    }
    if (m->final_ln) h = layer_norm(ctx, h, m->final_w, m->final_b);
    if (m->proj_out) h = gr_linear(ctx, h, m->proj_out, NULL);
    if (hs) (*hs)[m->norder] = h;
    return h;
}

/* OPT positions: cumsum(mask) * mask - 1 (padding -1), counting from `start` real tokens. */
static void positions(const int32_t *mask, int64_t B, int64_t T, const int32_t *start, int32_t *pos)
{
    for (int64_t b = 0; b < B; b++) {
        int32_t c = start ? start[b] : 0;
        for (int64_t t = 0; t < T; t++) {
            c += mask[b * T + t] != 0;
            pos[b * T + t] = mask[b * T + t] ? c - 1 : -1;
        }
    }
}

static gr_status opt_forward(gr_lm *m, gr_ctx *ctx, const gr_lm_inputs *in, gr_lm_outputs *out)
{
    memset(out, 0, sizeof *out);
    out->struct_size = sizeof *out;
    if (gr_ctx_status(ctx)) return gr_ctx_status(ctx);
    if (lmc_check_inputs(ctx, in, m->word_dim, m->vocab, "opt")) return gr_ctx_status(ctx);
    int64_t B = in->batch, P = lmc_prefix_len(in), T;
    gr_tensor *x = lmc_input_embeds(ctx, in, m->embed, m->word_dim, m->pad_id, &T);
    int32_t *mask = lmc_full_mask(in, P), *pos = malloc((size_t)(B * T + 1) * sizeof *pos);
    int32_t *labels = lmc_full_labels(in, P);
    if (!mask || !pos || (in->labels && !labels)) {
        free(mask); free(pos); free(labels);
        return gr_ctx_fail(ctx, GR_ERR_NOMEM, "out of memory");
    }
    positions(mask, B, T, NULL, pos);
    gr_tensor **hs = NULL;
    if (in->want_hidden_states) {
        free(m->hs);
        hs = m->hs = calloc((size_t)m->norder + 1, sizeof *hs);
        if (!hs) { free(mask); free(pos); free(labels); return gr_ctx_fail(ctx, GR_ERR_NOMEM, "out of memory"); }
    }
    gr_tensor *h = decoder(m, ctx, x, B, T, pos, mask, T, NULL, hs ? &hs : NULL);
    out->last_hidden_state = h;
    out->logits = gr_linear(ctx, h, m->head, NULL);
    if (labels) out->loss = lmc_causal_loss(ctx, out->logits, labels, B, T);
    out->hidden_states = hs;
    out->num_hidden_states = hs ? m->norder + 1 : 0;
    free(mask); free(pos); free(labels);
    return gr_ctx_status(ctx);
}

static gr_tensor *last_logits(gr_lm *m, gr_ctx *ctx, gr_tensor *h, int64_t B, int64_t T)
{
    gr_tensor *l = gr_linear(ctx, gr_slice(ctx, h, 1, T - 1, 1), m->head, NULL);
    int64_t shape[2] = {B, m->vocab};
    return gr_reshape(ctx, l, 2, shape);
}

static gr_status step_common(gr_lm *m, gr_ctx *ctx, gr_lm_cache *c, gr_tensor *x, const int32_t *new_mask,
                             int64_t T, gr_tensor **logits)
{
    lmc_kv *kv = &c->kv;
    int64_t B = kv->B;
    if (kv->layers != m->norder)
        return gr_ctx_fail(ctx, GR_ERR_INVALID, "opt: set_layers changed the layers since generate_begin");
    if (lmc_kv_reserve(kv, new_mask, T)) return gr_ctx_fail(ctx, GR_ERR_NOMEM, "%s", gr_last_error());
    int64_t Tk = kv->T + T;
    int32_t *km = malloc((size_t)(B * Tk) * sizeof *km), *pos = malloc((size_t)(B * T) * sizeof *pos);
    if (!km || !pos) { free(km); free(pos); return gr_ctx_fail(ctx, GR_ERR_NOMEM, "out of memory"); }
    for (int64_t b = 0; b < B; b++) memcpy(km + b * Tk, kv->mask + b * kv->cap, (size_t)Tk * sizeof *km);
    int32_t *nm = malloc((size_t)(B * T) * sizeof *nm);
    if (!nm) { free(km); free(pos); return gr_ctx_fail(ctx, GR_ERR_NOMEM, "out of memory"); }
    for (int64_t b = 0; b < B; b++) memcpy(nm + b * T, km + b * Tk + kv->T, (size_t)T * sizeof *nm);
    positions(nm, B, T, kv->pos, pos);
    gr_tensor *h = decoder(m, ctx, x, B, T, pos, km, Tk, kv, NULL);
    free(km); free(pos); free(nm);
    if (gr_ctx_status(ctx)) return gr_ctx_status(ctx);
    lmc_kv_commit(kv, T);
    *logits = last_logits(m, ctx, h, B, T);
    return gr_ctx_status(ctx);
}

static gr_status opt_generate_begin(gr_lm *m, gr_ctx *ctx, const gr_lm_inputs *in, gr_lm_cache **cache,
                                    gr_tensor **logits)
{
    *cache = NULL;
    *logits = NULL;
    if (gr_ctx_status(ctx)) return gr_ctx_status(ctx);
    if (lmc_check_inputs(ctx, in, m->word_dim, m->vocab, "opt")) return gr_ctx_status(ctx);
    int64_t P = lmc_prefix_len(in), T;
    if (P + in->seq == 0) return gr_ctx_fail(ctx, GR_ERR_INVALID, "opt: generate_begin: empty prompt");
    gr_lm_cache *c = calloc(1, sizeof *c);
    if (!c || lmc_kv_init(&c->kv, m->norder, in->batch, m->d)) {
        if (c) lmc_kv_free(&c->kv);
        free(c);
        return gr_ctx_fail(ctx, GR_ERR_NOMEM, "out of memory");
    }
    int prev = gr_ctx_set_grad_enabled(ctx, 0);
    gr_tensor *x = lmc_input_embeds(ctx, in, m->embed, m->word_dim, m->pad_id, &T);
    int32_t *mask = lmc_full_mask(in, P);
    gr_status s = mask ? step_common(m, ctx, c, x, mask, T, logits) : gr_ctx_fail(ctx, GR_ERR_NOMEM, "out of memory");
    free(mask);
    gr_ctx_set_grad_enabled(ctx, prev);
    if (s != GR_OK) { lmc_kv_free(&c->kv); free(c); return s; }
    *cache = c;
    return GR_OK;
}

static gr_status opt_generate_step(gr_lm *m, gr_ctx *ctx, gr_lm_cache *c, const int32_t *next_ids, gr_tensor **logits)
{
    *logits = NULL;
    if (gr_ctx_status(ctx)) return gr_ctx_status(ctx);
    int64_t B = c->kv.B, shape[2] = {B, 1};
    for (int64_t b = 0; b < B; b++)
        if (next_ids[b] < 0 || next_ids[b] >= m->vocab)
            return gr_ctx_fail(ctx, GR_ERR_INVALID, "opt: token id %d outside the vocabulary", next_ids[b]);
    int prev = gr_ctx_set_grad_enabled(ctx, 0);
    gr_tensor *x = gr_embedding(ctx, m->embed, gr_from_host(ctx, GR_I32, 2, shape, next_ids), m->pad_id);
    gr_status s = step_common(m, ctx, c, x, NULL, 1, logits);
    gr_ctx_set_grad_enabled(ctx, prev);
    return s;
}

static gr_status opt_cache_reorder(gr_lm *m, gr_ctx *ctx, gr_lm_cache *c, const int32_t *rows, int64_t count)
{
    (void)m;
    gr_status s = lmc_kv_reorder(&c->kv, rows, count);
    return s ? gr_ctx_fail(ctx, s, "%s", gr_last_error()) : GR_OK;
}

static void opt_cache_free(gr_lm *m, gr_ctx *ctx, gr_lm_cache *c)
{
    (void)m; (void)ctx;
    if (!c) return;
    lmc_kv_free(&c->kv);
    free(c);
}

static const gr_lm_iface opt_iface = {
    .struct_size = sizeof(gr_lm_iface),
    .open = opt_open,
    .close = opt_close,
    .info = opt_info,
    .params = opt_params,
    .input_embeddings = opt_input_embeddings,
    .forward = opt_forward,
    .set_layers = opt_set_layers,
    .generate_begin = opt_generate_begin,
    .generate_step = opt_generate_step,
    .cache_reorder = opt_cache_reorder,
    .cache_free = opt_cache_free,
};

static const gr_plugin_descriptor opt_desc =
    GR_PLUGIN_DESCRIPTOR(GR_PLUGIN_LANGUAGE_MODEL, "opt", "OPT decoder-only language model (OPTForCausalLM)", &opt_iface);

GR_PLUGIN_EXPORT const gr_plugin_descriptor *graft_plugin_entry(void) { return &opt_desc; }
