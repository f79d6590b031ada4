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
    lmc_causal c;             /* first: the common slots (lm_common) take the gr_lm */
    int64_t d, heads, head_dim, ffn, vocab, word_dim, max_pos;
    int layers, pre_ln, final_ln, bias, affine, tied;
    gr_unary_op act;
    int32_t pad_id, bos_id, eos_id;
    gr_tensor *pos, *proj_in, *proj_out, *final_w, *final_b;
    opt_layer *layer;
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
    lmc_loader *L = &m->c.base.L;
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
    m->c.base.embed = lmc_param(L, name, 2, emb, LMC_NORMAL, std, m->pad_id);
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
    m->c.head = m->tied ? m->c.base.embed : lmc_param(L, "lm_head.weight", 2, emb, LMC_NORMAL, std, -1);
    return L->status;
}

static gr_tensor *layer_norm(gr_ctx *ctx, gr_tensor *x, gr_tensor *w, gr_tensor *b)
{
    return gr_layernorm(ctx, x, w, b, OPT_LN_EPS);
}

/* The decoder over x [B, T, word_dim] (new positions), with positions `pos` (host [B, T],
 * -1 for padding) and the key mask over past + new (host [B, Tk]). With kv, the past comes
 * from the cache and the new keys/values are stored. -> last hidden state [B, T, word_dim]. */
static gr_tensor *decoder(gr_lm *m, gr_ctx *ctx, gr_tensor *x, int64_t B, int64_t T, const int32_t *pos,
                          const int32_t *key_mask, int64_t Tk, lmc_kv *kv, gr_tensor **hs)
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
    for (int li = 0; li < m->c.base.norder; li++) {
        const opt_layer *y = &m->layer[m->c.base.order[li]];
        if (hs) hs[li] = h;
        gr_tensor *res = h;
        gr_tensor *a = m->pre_ln ? layer_norm(ctx, h, y->ln1_w, y->ln1_b) : h;
        gr_tensor *q = gr_linear(ctx, a, y->q_w, y->q_b);
        gr_tensor *k = gr_linear(ctx, a, y->k_w, y->k_b);
        gr_tensor *v = gr_linear(ctx, a, y->v_w, y->v_b);
        if (kv && lmc_kv_append(ctx, kv, li, &k, &v, T)) return NULL;
        gr_tensor *att = lmc_mha(ctx, q, k, v, m->heads, scale, 1, mask, NULL);
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
    if (hs) hs[m->c.base.norder] = h;
    return h;
}

/* OPT positions, in forward and generation alike: cumsum(mask) * mask - 1 (padding -1),
 * counting from `start` real tokens. */
static void positions(const int32_t *mask, int64_t B, int64_t T, const int32_t *start, int generating, int32_t *pos)
{
    (void)generating;
    for (int64_t b = 0; b < B; b++) {
        int32_t c = start ? start[b] : 0;
        for (int64_t t = 0; t < T; t++) {
            c += mask[b * T + t] != 0;
            pos[b * T + t] = mask[b * T + t] ? c - 1 : -1;
        }
    }
}

static void opt_close(gr_lm *m, gr_ctx *ctx)
{
    if (!m) return;
    (void)ctx;
    lmc_lm_free(&m->c.base);
    free(m->layer);
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
        m->c.base.info = (gr_lm_info){.struct_size = sizeof(gr_lm_info), .family = "opt", .hidden_size = m->d,
                                      .embed_dim = m->word_dim, .vocab_size = m->vocab, .num_layers = m->layers,
                                      .bos_id = m->bos_id, .eos_id = m->eos_id, .pad_id = m->pad_id,
                                      .decoder_start_id = -1};
        m->c.kv_width = m->d;
        m->c.stack = decoder;
        m->c.positions = positions;
        s = lmc_lm_set_layers(m, NULL, 0);
    }
    if (s != GR_OK) {
        opt_close(m, ctx);
        return s;
    }
    *out = m;
    return GR_OK;
}

static const gr_lm_iface opt_iface = {
    .struct_size = sizeof(gr_lm_iface),
    .open = opt_open,
    .close = opt_close,
    .info = lmc_lm_info,
    .params = lmc_lm_params,
    .input_embeddings = lmc_lm_input_embeddings,
    .forward = lmc_causal_forward,
    .set_layers = lmc_lm_set_layers,
    .generate_begin = lmc_causal_begin,
    .generate_step = lmc_causal_step,
    .cache_reorder = lmc_causal_reorder,
    .cache_free = lmc_causal_free,
};

static const gr_plugin_descriptor opt_desc =
    GR_PLUGIN_DESCRIPTOR(GR_PLUGIN_LANGUAGE_MODEL, "opt", "OPT decoder-only language model (OPTForCausalLM)", &opt_iface);

GR_PLUGIN_EXPORT const gr_plugin_descriptor *graft_plugin_entry(void) { return &opt_desc; }
