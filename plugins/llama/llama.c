/* Llama (LlamaForCausalLM) as transformers computes it: RMSNorm, SwiGLU, GQA, rotary
 * embeddings with HF's rotate-half pairing and float32 cos/sin tables (default, linear and
 * llama3 rope types; 4.x rope_theta/rope_scaling and 5.x rope_parameters layouts). forward uses
 * position_ids 0..T-1; generation follows the mask (cumsum(mask) - 1) as generate() does. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graft/plugin.h"
#include "lm_common.h"

typedef struct llama_layer {
    gr_tensor *ln1, *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b;
    gr_tensor *ln2, *gate_w, *gate_b, *up_w, *up_b, *down_w, *down_b;
} llama_layer;

struct gr_lm {
    lmc_causal c;             /* first: the common slots (lm_common) take the gr_lm */
    int64_t d, heads, kv_heads, head_dim, ffn, vocab;
    int layers, tied, attn_bias, mlp_bias, rot_dim;
    float eps;
    gr_unary_op act;
    int32_t pad_id, bos_id, eos_id;
    float *inv_freq;          /* [rot_dim / 2], float32 exactly as HF */
    gr_tensor *norm;
    llama_layer *layer;
};

/* ------------------------------------------------------------------ RoPE ---- */

static gr_status rope_config(gr_lm *m, const lmc_cfg *c)
{
    /* Rule (reference README): take rope_scaling if it is a non-empty dict, else
     * rope_parameters; rope_theta from that dict, else top level, else 10000; type from
     * rope_type, else type. */
    const char *dict_key = "rope_scaling";
    json_t *r = json_object_get(c->obj, "rope_scaling");
    if (r && !json_is_null(r) && !json_is_object(r))
        return gr_fail(GR_ERR_INVALID, "%s: key 'rope_scaling' must be an object or null", c->path);
    if (!r || !json_is_object(r) || json_object_size(r) == 0) {
        dict_key = "rope_parameters";
        r = json_object_get(c->obj, "rope_parameters");
        if (r && !json_is_null(r) && !json_is_object(r))
            return gr_fail(GR_ERR_INVALID, "%s: key 'rope_parameters' must be an object or null", c->path);
        if (r && (!json_is_object(r) || json_object_size(r) == 0)) r = NULL;
    }
    lmc_cfg rc = {r, c->path};
    const char *type = "default";
    double theta, top_theta, partial;
    gr_status s = lmc_num(c, "rope_theta", 10000.0, &top_theta);
    if (s) return s;
    if (r) {
        if ((s = lmc_num(&rc, "rope_theta", top_theta, &theta))) return s;
        const char *t1 = NULL;
        if ((s = lmc_str(&rc, "rope_type", NULL, &t1))) return s;
        if (!t1 && (s = lmc_str(&rc, "type", NULL, &t1))) return s;
        if (!t1)
            return gr_fail(GR_ERR_INVALID, "%s: key '%s' has no 'rope_type' (or 'type'): its scaling keys would be ignored",
                           c->path, dict_key);
        type = t1;
    } else {
        theta = top_theta;
    }
    if ((s = lmc_num(c, "partial_rotary_factor", 1.0, &partial))) return s;
    if (r && lmc_has(&rc, "partial_rotary_factor") && (s = lmc_num(&rc, "partial_rotary_factor", partial, &partial)))
        return s;
    int dim = (int)((double)m->head_dim * partial);
    if (dim <= 0 || dim > m->head_dim || dim % 2)
        return gr_fail(GR_ERR_INVALID, "%s: key 'partial_rotary_factor' gives a rotary dim of %d for head_dim %lld",
                       c->path, dim, (long long)m->head_dim);
    m->rot_dim = dim;
    m->inv_freq = malloc((size_t)(dim / 2) * sizeof *m->inv_freq);
    if (!m->inv_freq) return gr_fail(GR_ERR_NOMEM, "out of memory");
    /* inv_freq = 1 / base^(arange(0, dim, 2).float() / dim), every step in float32. */
    float base = (float)theta;
    for (int i = 0; i < dim / 2; i++) {
        float e = (float)(2 * i) / (float)dim;
        m->inv_freq[i] = 1.0f / powf(base, e);
    }
    if (strcmp(type, "default") == 0) return GR_OK;
    double factor;
    if (strcmp(type, "linear") == 0) {
        if ((s = lmc_num(&rc, "factor", NAN, &factor))) return s;
        if (!(factor > 0))
            return gr_fail(GR_ERR_INVALID, "%s: key '%s.factor' must be a positive number", c->path, dict_key);
        for (int i = 0; i < dim / 2; i++) m->inv_freq[i] = m->inv_freq[i] / (float)factor;
        return GR_OK;
    }
    if (strcmp(type, "llama3") == 0) {
        double lo, hi, old;
        if ((s = lmc_num(&rc, "factor", NAN, &factor)) || (s = lmc_num(&rc, "low_freq_factor", NAN, &lo)) ||
            (s = lmc_num(&rc, "high_freq_factor", NAN, &hi)) ||
            (s = lmc_num(&rc, "original_max_position_embeddings", NAN, &old)))
            return s;
        const char *names[4] = {"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"};
        double vals[4] = {factor, lo, hi, old};
        for (int i = 0; i < 4; i++)
            if (!(vals[i] > 0))
                return gr_fail(GR_ERR_INVALID, "%s: key '%s.%s' must be a positive number (llama3 rope)", c->path,
                               dict_key, names[i]);
        if (!(hi > lo))
            return gr_fail(GR_ERR_INVALID, "%s: key '%s.high_freq_factor' must exceed low_freq_factor", c->path, dict_key);
        /* _compute_llama3_parameters: tensor ops in float32, python scalars cast to float32. */
        float low_wl = (float)(old / lo), high_wl = (float)(old / hi);
        float two_pi = (float)(2 * 3.141592653589793);
        float ff = (float)factor, oldf = (float)old, lof = (float)lo, span = (float)(hi - lo);
        for (int i = 0; i < dim / 2; i++) {
            float inv = m->inv_freq[i];
            float wl = two_pi / inv;
            float inv_l = wl > low_wl ? inv / ff : inv;
            float smooth = (oldf / wl - lof) / span;
            float smoothed = (1.0f - smooth) * inv_l / ff + smooth * inv_l;
            int medium = !(wl < high_wl) && !(wl > low_wl);
            m->inv_freq[i] = medium ? smoothed : inv_l;
        }
        return GR_OK;
    }
    return gr_fail(GR_ERR_UNSUPPORTED, "%s: key '%s.rope_type': '%s' is not supported (default, linear, llama3)",
                   c->path, dict_key, type);
}

/* cos/sin [B, T, rot_dim/2] for positions pos (host [B, T]): freqs = inv_freq * pos in float32. */
static void rope_tables(const gr_lm *m, gr_ctx *ctx, const int32_t *pos, int64_t B, int64_t T, gr_tensor **cos_t,
                        gr_tensor **sin_t)
{
    int64_t h = m->rot_dim / 2, n = B * T * h;
    float *c = malloc((size_t)(n + 1) * sizeof *c), *s = malloc((size_t)(n + 1) * sizeof *s);
    *cos_t = *sin_t = NULL;
    if (!c || !s) { free(c); free(s); gr_ctx_fail(ctx, GR_ERR_NOMEM, "out of memory"); return; }
    for (int64_t i = 0; i < B * T; i++)
        for (int64_t j = 0; j < h; j++) {
            float f = m->inv_freq[j] * (float)pos[i];
            c[i * h + j] = cosf(f);
            s[i * h + j] = sinf(f);
        }
    int64_t shape[3] = {B, T, h};
    *cos_t = gr_from_host(ctx, GR_F32, 3, shape, c);
    *sin_t = gr_from_host(ctx, GR_F32, 3, shape, s);
    free(c);
    free(s);
}

/* ------------------------------------------------------------------ config ---- */

static gr_status read_config(gr_lm *m, const gr_model_source *src)
{
    lmc_cfg c = {src->config, src->config_path};
    int64_t v;
    double eps;
    const char *act;
    gr_status s;
    if ((s = lmc_int(&c, "hidden_size", 4096, 0, &m->d)) || (s = lmc_positive(&c, "hidden_size", m->d)) ||
        (s = lmc_int(&c, "intermediate_size", 11008, 0, &m->ffn)) || (s = lmc_positive(&c, "intermediate_size", m->ffn)) ||
        (s = lmc_int(&c, "num_hidden_layers", 32, 0, &v)) ||
        (s = lmc_int(&c, "num_attention_heads", 32, 0, &m->heads)) ||
        (s = lmc_positive(&c, "num_attention_heads", m->heads)) ||
        (s = lmc_int(&c, "num_key_value_heads", m->heads, 0, &m->kv_heads)) ||
        (s = lmc_positive(&c, "num_key_value_heads", m->kv_heads)) ||
        (s = lmc_int(&c, "vocab_size", 32000, 0, &m->vocab)) || (s = lmc_positive(&c, "vocab_size", m->vocab)) ||
        (s = lmc_num(&c, "rms_norm_eps", 1e-6, &eps)) || (s = lmc_bool(&c, "tie_word_embeddings", 0, &m->tied)) ||
        (s = lmc_bool(&c, "attention_bias", 0, &m->attn_bias)) || (s = lmc_bool(&c, "mlp_bias", 0, &m->mlp_bias)) ||
        (s = lmc_str(&c, "hidden_act", "silu", &act)) || (s = lmc_act(&c, "hidden_act", act, &m->act)) ||
        (s = lmc_token(&c, "pad_token_id", -1, &m->pad_id)) || (s = lmc_token(&c, "bos_token_id", 1, &m->bos_id)) ||
        (s = lmc_token(&c, "eos_token_id", 2, &m->eos_id)))
        return s;
    if (v < 0 || v > 100000) return gr_fail(GR_ERR_INVALID, "%s: key 'num_hidden_layers' out of range", c.path);
    m->layers = (int)v;
    m->eps = (float)eps;
    if (m->heads % m->kv_heads)
        return gr_fail(GR_ERR_INVALID, "%s: key 'num_attention_heads' (%lld) is not a multiple of 'num_key_value_heads' (%lld)",
                       c.path, (long long)m->heads, (long long)m->kv_heads);
    if ((s = lmc_int(&c, "head_dim", 0, 0, &m->head_dim))) return s;
    if (m->head_dim == 0) {
        if (m->d % m->heads)
            return gr_fail(GR_ERR_INVALID, "%s: key 'hidden_size' is not a multiple of 'num_attention_heads'", c.path);
        m->head_dim = m->d / m->heads;
    }
    if ((s = lmc_positive(&c, "head_dim", m->head_dim))) return s;
    if (m->pad_id >= m->vocab) m->pad_id = -1; /* nn.Embedding would reject it; no padding row */
    return rope_config(m, &c);
}

static gr_status load(gr_lm *m, gr_ctx *ctx, const gr_model_source *src)
{
    lmc_loader *L = &m->c.base.L;
    double std;
    lmc_cfg c = {src->config, src->config_path};
    gr_status s = lmc_num(&c, "initializer_range", 0.02, &std);
    if (s) return s;
    lmc_loader_init(L, ctx, src, src->prefix);
    int64_t d = m->d, qd = m->heads * m->head_dim, kd = m->kv_heads * m->head_dim;
    int64_t emb[2] = {m->vocab, d}, dv[1] = {d}, wq[2] = {qd, d}, wk[2] = {kd, d}, wo[2] = {d, qd};
    int64_t qv[1] = {qd}, kvv[1] = {kd}, up[2] = {m->ffn, d}, down[2] = {d, m->ffn}, fv[1] = {m->ffn};
    m->c.base.embed = lmc_param(L, "model.embed_tokens.weight", 2, emb, LMC_NORMAL, std, m->pad_id);
    m->layer = calloc((size_t)(m->layers ? m->layers : 1), sizeof *m->layer);
    if (!m->layer) return gr_fail(GR_ERR_NOMEM, "out of memory");
    for (int i = 0; i < m->layers; i++) {
        llama_layer *y = &m->layer[i];
#define W(field, nd, shape, init, fmt) y->field = lmc_paramf(L, nd, shape, init, std, "model.layers.%d." fmt, i)
        W(ln1, 1, dv, LMC_ONES, "input_layernorm.weight");
        W(q_w, 2, wq, LMC_NORMAL, "self_attn.q_proj.weight");
        W(k_w, 2, wk, LMC_NORMAL, "self_attn.k_proj.weight");
        W(v_w, 2, wk, LMC_NORMAL, "self_attn.v_proj.weight");
        W(o_w, 2, wo, LMC_NORMAL, "self_attn.o_proj.weight");
        if (m->attn_bias) {
            W(q_b, 1, qv, LMC_ZEROS, "self_attn.q_proj.bias");
            W(k_b, 1, kvv, LMC_ZEROS, "self_attn.k_proj.bias");
            W(v_b, 1, kvv, LMC_ZEROS, "self_attn.v_proj.bias");
            W(o_b, 1, dv, LMC_ZEROS, "self_attn.o_proj.bias");
        }
        W(ln2, 1, dv, LMC_ONES, "post_attention_layernorm.weight");
        W(gate_w, 2, up, LMC_NORMAL, "mlp.gate_proj.weight");
        W(up_w, 2, up, LMC_NORMAL, "mlp.up_proj.weight");
        W(down_w, 2, down, LMC_NORMAL, "mlp.down_proj.weight");
        if (m->mlp_bias) {
            W(gate_b, 1, fv, LMC_ZEROS, "mlp.gate_proj.bias");
            W(up_b, 1, fv, LMC_ZEROS, "mlp.up_proj.bias");
            W(down_b, 1, dv, LMC_ZEROS, "mlp.down_proj.bias");
        }
#undef W
    }
    m->norm = lmc_param(L, "model.norm.weight", 1, dv, LMC_ONES, 0, -1);
    m->c.head = m->tied ? m->c.base.embed : lmc_param(L, "lm_head.weight", 2, emb, LMC_NORMAL, std, -1);
    return L->status;
}

static gr_tensor *decoder(gr_lm *m, gr_ctx *ctx, gr_tensor *x, int64_t B, int64_t T, const int32_t *pos,
                          const int32_t *key_mask, int64_t Tk, lmc_kv *kv, gr_tensor **hs)
{
    gr_tensor *cos_t, *sin_t;
    rope_tables(m, ctx, pos, B, T, &cos_t, &sin_t);
    gr_tensor *mask = gr_attention_mask(ctx, B, T, Tk, key_mask, 1);
    float scale = 1.0f / sqrtf((float)m->head_dim);
    gr_tensor *h = x;
    int64_t H = m->heads, Hk = m->kv_heads, D = m->head_dim;
    for (int li = 0; li < m->c.base.norder; li++) {
        const llama_layer *y = &m->layer[m->c.base.order[li]];
        if (hs) hs[li] = h;
        gr_tensor *a = gr_rmsnorm(ctx, h, y->ln1, m->eps);
        gr_tensor *q = gr_rope(ctx, lmc_heads(ctx, gr_linear(ctx, a, y->q_w, y->q_b), B, T, H, D), cos_t, sin_t, m->rot_dim);
        gr_tensor *k = gr_rope(ctx, lmc_heads(ctx, gr_linear(ctx, a, y->k_w, y->k_b), B, T, Hk, D), cos_t, sin_t, m->rot_dim);
        gr_tensor *v = lmc_heads(ctx, gr_linear(ctx, a, y->v_w, y->v_b), B, T, Hk, D);
        if (kv) {
            if (lmc_kv_append(ctx, kv, li, &k, &v, T)) return NULL;
            k = lmc_heads(ctx, k, B, Tk, Hk, D);
            v = lmc_heads(ctx, v, B, Tk, Hk, D);
        }
        gr_tensor *att = lmc_attention(ctx, q, k, v, scale, 0, mask, NULL);
        h = gr_add(ctx, h, gr_linear(ctx, att, y->o_w, y->o_b));
        a = gr_rmsnorm(ctx, h, y->ln2, m->eps);
        gr_tensor *g = gr_act(ctx, m->act, gr_linear(ctx, a, y->gate_w, y->gate_b));
        h = gr_add(ctx, h, gr_linear(ctx, gr_mul(ctx, g, gr_linear(ctx, a, y->up_w, y->up_b)), y->down_w, y->down_b));
    }
    h = gr_rmsnorm(ctx, h, m->norm, m->eps);
    if (hs) hs[m->c.base.norder] = h;
    return h;
}

/* forward(): position_ids 0..T-1 whatever the padding. generate(): cumsum(mask) - 1, padding
 * positions set to 1, continuing from the real tokens already cached. */
static void positions(const int32_t *mask, int64_t B, int64_t T, const int32_t *start, int generating, int32_t *pos)
{
    for (int64_t b = 0; b < B; b++) {
        int32_t cnt = start ? start[b] : 0;
        for (int64_t t = 0; t < T; t++) {
            int real = mask[b * T + t] != 0;
            cnt += real;
            pos[b * T + t] = !generating ? (int32_t)t : real ? cnt - 1 : 1;
        }
    }
}

static void llama_close(gr_lm *m, gr_ctx *ctx)
{
    if (!m) return;
    (void)ctx;
    lmc_lm_free(&m->c.base);
    free(m->layer);
    free(m->inv_freq);
    free(m);
}

static gr_status llama_open(gr_ctx *ctx, const gr_model_source *src, gr_lm **out)
{
    *out = NULL;
    gr_lm *m = calloc(1, sizeof *m);
    if (!m) return gr_fail(GR_ERR_NOMEM, "out of memory");
    gr_status s = read_config(m, src);
    if (s == GR_OK) s = load(m, ctx, src);
    if (s == GR_OK) {
        m->c.base.info = (gr_lm_info){.struct_size = sizeof(gr_lm_info), .family = "llama", .hidden_size = m->d,
                                      .embed_dim = m->d, .vocab_size = m->vocab, .num_layers = m->layers,
                                      .bos_id = m->bos_id, .eos_id = m->eos_id, .pad_id = m->pad_id,
                                      .decoder_start_id = -1};
        m->c.kv_width = m->kv_heads * m->head_dim;
        m->c.stack = decoder;
        m->c.positions = positions;
        s = lmc_lm_set_layers(m, NULL, 0);
    }
    if (s != GR_OK) { llama_close(m, ctx); return s; }
    *out = m;
    return GR_OK;
}

static const gr_lm_iface llama_iface = {
    .struct_size = sizeof(gr_lm_iface),
    .open = llama_open,
    .close = llama_close,
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

static const gr_plugin_descriptor llama_desc = GR_PLUGIN_DESCRIPTOR(
    GR_PLUGIN_LANGUAGE_MODEL, "llama", "Llama decoder-only language model (LlamaForCausalLM)", &llama_iface);

GR_PLUGIN_EXPORT const gr_plugin_descriptor *graft_plugin_entry(void) { return &llama_desc; }
