/* T5 / Flan-T5 (T5ForConditionalGeneration) as transformers computes it: RMS layer norms
 * without bias, no 1/sqrt(d) in attention, relative position bias from block 0 of each stack
 * (bidirectional buckets in the encoder, causal in the decoder; float32 log and truncation as
 * HF), relu or gated feed-forward (feed_forward_proj, explicit dense_act_fn / is_gated_act win),
 * decoder inputs = labels shifted right, output head per tie_word_embeddings (4.x) or
 * scale_decoder_outputs (5.x). The soft prompt goes in front of the ENCODER input. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graft/plugin.h"
#include "lm_common.h"

typedef struct t5_block {
    gr_tensor *ln0, *q, *k, *v, *o;          /* self-attention */
    gr_tensor *ln1, *cq, *ck, *cv, *co;      /* cross-attention (decoder) */
    gr_tensor *lnf, *wi, *wi0, *wi1, *wo;    /* feed-forward */
} t5_block;

struct gr_lm {
    lmc_lm base;                 /* first: the common slots (lm_common) take the gr_lm */
    int64_t d, dkv, heads, inner, dff, vocab;
    int enc_layers, dec_layers, buckets, max_dist, gated, scale_out;
    float eps;
    gr_unary_op act;
    int32_t pad_id, eos_id, start_id;
    gr_tensor *enc_bias, *dec_bias, *enc_final, *dec_final, *head;  /* base.embed: shared */
    t5_block *enc, *dec;
    gr_tensor **enc_hs;
};

struct gr_lm_cache {
    lmc_kv self, cross;
};

/* ------------------------------------------------------------------ config ---- */

static gr_status read_config(gr_lm *m, const gr_model_source *src)
{
    lmc_cfg c = {src->config, src->config_path};
    int64_t nl, ndl, nb, md;
    double eps;
    const char *ffp;
    gr_status s;
    if ((s = lmc_int(&c, "d_model", 512, 0, &m->d)) || (s = lmc_positive(&c, "d_model", m->d)) ||
        (s = lmc_int(&c, "d_kv", 64, 0, &m->dkv)) || (s = lmc_positive(&c, "d_kv", m->dkv)) ||
        (s = lmc_int(&c, "d_ff", 2048, 0, &m->dff)) || (s = lmc_positive(&c, "d_ff", m->dff)) ||
        (s = lmc_int(&c, "num_heads", 8, 0, &m->heads)) || (s = lmc_positive(&c, "num_heads", m->heads)) ||
        (s = lmc_int(&c, "num_layers", 6, 0, &nl)) || (s = lmc_int(&c, "num_decoder_layers", nl, 0, &ndl)) ||
        (s = lmc_int(&c, "vocab_size", 32128, 0, &m->vocab)) || (s = lmc_positive(&c, "vocab_size", m->vocab)) ||
        (s = lmc_int(&c, "relative_attention_num_buckets", 32, 0, &nb)) ||
        (s = lmc_positive(&c, "relative_attention_num_buckets", nb)) ||
        (s = lmc_int(&c, "relative_attention_max_distance", 128, 0, &md)) ||
        (s = lmc_num(&c, "layer_norm_epsilon", 1e-6, &eps)) ||
        (s = lmc_str(&c, "feed_forward_proj", "relu", &ffp)) ||
        (s = lmc_token(&c, "pad_token_id", 0, &m->pad_id)) || (s = lmc_token(&c, "eos_token_id", 1, &m->eos_id)) ||
        (s = lmc_token(&c, "decoder_start_token_id", -1, &m->start_id)))
        return s;
    if (nl < 0 || nl > 100000 || ndl < 0 || ndl > 100000)
        return gr_fail(GR_ERR_INVALID, "%s: key 'num_layers' / 'num_decoder_layers' out of range", c.path);
    m->enc_layers = (int)nl;
    m->dec_layers = (int)ndl;
    m->buckets = (int)nb;
    m->max_dist = (int)md;
    m->eps = (float)eps;
    m->inner = m->heads * m->dkv;
    if (nb < 2) return gr_fail(GR_ERR_INVALID, "%s: key 'relative_attention_num_buckets' must be >= 2", c.path);
    /* feed_forward_proj: "ACT" or "gated-ACT"; "gated-gelu" means gelu_new (T5Config). */
    char act[64];
    const char *dash = strchr(ffp, '-');
    if (dash && (strncmp(ffp, "gated-", 6) != 0 || strchr(dash + 1, '-')))
        return gr_fail(GR_ERR_INVALID, "%s: key 'feed_forward_proj': '%s' is not ACT or gated-ACT", c.path, ffp);
    m->gated = dash != NULL;
    snprintf(act, sizeof act, "%s", dash ? dash + 1 : ffp);
    if (strcmp(ffp, "gated-gelu") == 0) snprintf(act, sizeof act, "gelu_new");
    const char *act_name = act, *act_key = "feed_forward_proj";
    if (lmc_has(&c, "dense_act_fn")) {
        if ((s = lmc_str(&c, "dense_act_fn", act, &act_name))) return s;
        act_key = "dense_act_fn";
    }
    if ((s = lmc_bool(&c, "is_gated_act", m->gated, &m->gated))) return s;
    if ((s = lmc_act(&c, act_key, act_name, &m->act))) return s;
    return GR_OK;
}

static gr_status load_stack(gr_lm *m, const char *stack, int n, int is_dec, t5_block **out, gr_tensor **bias,
                            gr_tensor **final, double f)
{
    lmc_loader *L = &m->base.L;
    int64_t d = m->d, in = m->inner;
    int64_t dv[1] = {d}, wq[2] = {in, d}, wo[2] = {d, in}, wi[2] = {m->dff, d}, wff[2] = {d, m->dff};
    int64_t rb[2] = {m->buckets, m->heads};
    t5_block *b = calloc((size_t)(n + 1), sizeof *b);
    if (!b) return gr_fail(GR_ERR_NOMEM, "out of memory");
    *out = b;
    double sq = f * pow((double)(d * m->dkv), -0.5), sk = f * pow((double)d, -0.5), so = f * pow((double)in, -0.5);
    double sff = f * pow((double)m->dff, -0.5);
    for (int i = 0; i < n; i++) {
        t5_block *y = &b[i];
#define W(field, nd, shape, init, std, fmt) y->field = lmc_paramf(L, nd, shape, init, std, "%s.block.%d.layer." fmt, stack, i)
        W(ln0, 1, dv, LMC_ONES, 0, "0.layer_norm.weight");
        W(q, 2, wq, LMC_NORMAL, sq, "0.SelfAttention.q.weight");
        W(k, 2, wq, LMC_NORMAL, sk, "0.SelfAttention.k.weight");
        W(v, 2, wq, LMC_NORMAL, sk, "0.SelfAttention.v.weight");
        W(o, 2, wo, LMC_NORMAL, so, "0.SelfAttention.o.weight");
        if (i == 0) *bias = lmc_paramf(L, 2, rb, LMC_NORMAL, sk, "%s.block.0.layer.0.SelfAttention.relative_attention_bias.weight", stack);
        const char *ff = "1";
        if (is_dec) {
            W(ln1, 1, dv, LMC_ONES, 0, "1.layer_norm.weight");
            W(cq, 2, wq, LMC_NORMAL, sq, "1.EncDecAttention.q.weight");
            W(ck, 2, wq, LMC_NORMAL, sk, "1.EncDecAttention.k.weight");
            W(cv, 2, wq, LMC_NORMAL, sk, "1.EncDecAttention.v.weight");
            W(co, 2, wo, LMC_NORMAL, so, "1.EncDecAttention.o.weight");
            ff = "2";
        }
        y->lnf = lmc_paramf(L, 1, dv, LMC_ONES, 0, "%s.block.%d.layer.%s.layer_norm.weight", stack, i, ff);
        if (m->gated) {
            y->wi0 = lmc_paramf(L, 2, wi, LMC_NORMAL, sk, "%s.block.%d.layer.%s.DenseReluDense.wi_0.weight", stack, i, ff);
            y->wi1 = lmc_paramf(L, 2, wi, LMC_NORMAL, sk, "%s.block.%d.layer.%s.DenseReluDense.wi_1.weight", stack, i, ff);
        } else {
            y->wi = lmc_paramf(L, 2, wi, LMC_NORMAL, sk, "%s.block.%d.layer.%s.DenseReluDense.wi.weight", stack, i, ff);
        }
        y->wo = lmc_paramf(L, 2, wff, LMC_NORMAL, sff, "%s.block.%d.layer.%s.DenseReluDense.wo.weight", stack, i, ff);
#undef W
    }
    *final = lmc_paramf(L, 1, dv, LMC_ONES, 0, "%s.final_layer_norm.weight", stack);
    return L->status;
}

static gr_status load(gr_lm *m, gr_ctx *ctx, const gr_model_source *src)
{
    lmc_cfg c = {src->config, src->config_path};
    double f;
    int tie, scale_key;
    gr_status s;
    if ((s = lmc_num(&c, "initializer_factor", 1.0, &f)) || (s = lmc_bool(&c, "tie_word_embeddings", 1, &tie)))
        return s;
    lmc_loader *L = &m->base.L;
    lmc_loader_init(L, ctx, src, src->prefix);
    int64_t emb[2] = {m->vocab, m->d};
    /* Copies of shared.weight under encoder/decoder.embed_tokens are ignored, as HF ties them. */
    m->base.embed = lmc_param(L, "shared.weight", 2, emb, LMC_NORMAL, f, -1);
    if ((s = load_stack(m, "encoder", m->enc_layers, 0, &m->enc, &m->enc_bias, &m->enc_final, f))) return s;
    if ((s = load_stack(m, "decoder", m->dec_layers, 1, &m->dec, &m->dec_bias, &m->dec_final, f))) return s;
    /* Output head (reference README, "T5 output head"). */
    scale_key = lmc_has(&c, "scale_decoder_outputs");
    int use_lm_head;
    if (scale_key) {
        if ((s = lmc_bool(&c, "scale_decoder_outputs", 1, &m->scale_out))) return s;
        use_lm_head = lmc_stored(L, "lm_head.weight");
    } else {
        m->scale_out = tie;
        use_lm_head = !tie;
    }
    m->head = use_lm_head ? lmc_param(L, "lm_head.weight", 2, emb, LMC_NORMAL, f, -1) : m->base.embed;
    return L->status;
}

static void t5_close(gr_lm *m, gr_ctx *ctx)
{
    if (!m) return;
    (void)ctx;
    lmc_lm_free(&m->base);
    free(m->enc);
    free(m->dec);
    free(m->enc_hs);
    free(m);
}

static gr_status t5_open(gr_ctx *ctx, const gr_model_source *src, gr_lm **out)
{
    *out = NULL;
    gr_lm *m = calloc(1, sizeof *m);
    if (!m) return gr_fail(GR_ERR_NOMEM, "out of memory");
    gr_status s = read_config(m, src);
    if (s == GR_OK) s = load(m, ctx, src);
    if (s == GR_OK) {
        m->base.info = (gr_lm_info){.struct_size = sizeof(gr_lm_info), .family = "t5", .hidden_size = m->d,
                                    .embed_dim = m->d, .vocab_size = m->vocab, .num_layers = m->dec_layers,
                                    .num_encoder_layers = m->enc_layers, .is_encoder_decoder = 1, .bos_id = -1,
                                    .eos_id = m->eos_id, .pad_id = m->pad_id, .decoder_start_id = m->start_id};
        s = lmc_lm_set_layers(m, NULL, 0);
    }
    if (s != GR_OK) { t5_close(m, ctx); return s; }
    *out = m;
    return GR_OK;
}

/* ------------------------------------------------------------------ compute ---- */

/* T5Attention._relative_position_bucket, with HF's float32 log and truncation. */
static int32_t bucket(int32_t rel, int bidirectional, int nb, int max_dist)
{
    int32_t ret = 0;
    if (bidirectional) {
        nb /= 2;
        if (rel > 0) ret += nb;
        rel = rel < 0 ? -rel : rel;
    } else {
        rel = rel < 0 ? -rel : 0;
    }
    int max_exact = nb / 2;
    if (rel < max_exact) return ret + rel;
    float l = logf((float)rel / (float)max_exact) / (float)log((double)max_dist / (double)max_exact) *
              (float)(nb - max_exact);
    int32_t large = max_exact + (int32_t)l;
    if (large > nb - 1) large = nb - 1;
    return ret + large;
}

/* Position bias [1, H, Tq, Tk] for queries at qoff.. and keys at 0.. */
static gr_tensor *position_bias(gr_lm *m, gr_ctx *ctx, gr_tensor *table, int64_t Tq, int64_t Tk, int64_t qoff,
                                int bidirectional)
{
    int32_t *ids = malloc((size_t)(Tq * Tk + 1) * sizeof *ids);
    if (!ids) { gr_ctx_fail(ctx, GR_ERR_NOMEM, "out of memory"); return NULL; }
    for (int64_t q = 0; q < Tq; q++)
        for (int64_t k = 0; k < Tk; k++)
            ids[q * Tk + k] = bucket((int32_t)(k - (q + qoff)), bidirectional, m->buckets, m->max_dist);
    int64_t is[2] = {Tq, Tk};
    gr_tensor *b = gr_embedding(ctx, table, gr_from_host(ctx, GR_I32, 2, is, ids), -1); /* [Tq, Tk, H] */
    free(ids);
    static const int perm[3] = {2, 0, 1};
    b = gr_permute(ctx, b, perm);
    int64_t shape[4] = {1, m->heads, Tq, Tk};
    return gr_reshape(ctx, b, 4, shape);
}

static gr_tensor *ffn(gr_lm *m, gr_ctx *ctx, const t5_block *y, gr_tensor *h)
{
    gr_tensor *x = gr_rmsnorm(ctx, h, y->lnf, m->eps);
    gr_tensor *a = m->gated ? gr_mul(ctx, gr_act(ctx, m->act, gr_linear(ctx, x, y->wi0, NULL)), gr_linear(ctx, x, y->wi1, NULL))
                            : gr_act(ctx, m->act, gr_linear(ctx, x, y->wi, NULL));
    return gr_add(ctx, h, gr_linear(ctx, a, y->wo, NULL));
}

/* T5 attention: no 1/sqrt(d) scaling. */
static gr_tensor *attend(gr_lm *m, gr_ctx *ctx, gr_tensor *q, gr_tensor *k, gr_tensor *v, gr_tensor *mask,
                         gr_tensor *bias)
{
    return lmc_mha(ctx, q, k, v, m->heads, 1.0f, 0, mask, bias);
}

static gr_tensor *encoder(gr_lm *m, gr_ctx *ctx, gr_tensor *x, int64_t B, int64_t S, const int32_t *mask, gr_tensor **hs)
{
    gr_tensor *am = gr_attention_mask(ctx, B, S, S, mask, 0);
    gr_tensor *bias = m->enc_layers ? position_bias(m, ctx, m->enc_bias, S, S, 0, 1) : NULL;
    gr_tensor *h = x;
    for (int i = 0; i < m->enc_layers; i++) {
        const t5_block *y = &m->enc[i];
        if (hs) hs[i] = h;
        gr_tensor *a = gr_rmsnorm(ctx, h, y->ln0, m->eps);
        gr_tensor *att = attend(m, ctx, gr_linear(ctx, a, y->q, NULL), gr_linear(ctx, a, y->k, NULL),
                                gr_linear(ctx, a, y->v, NULL), am, bias);
        h = gr_add(ctx, h, gr_linear(ctx, att, y->o, NULL));
        h = ffn(m, ctx, y, h);
    }
    h = gr_rmsnorm(ctx, h, m->enc_final, m->eps);
    if (hs) hs[m->enc_layers] = h;
    return h;
}

/* Decoder over T new positions. Without caches: enc [B, S, d] with enc_mask. With caches, the
 * cross keys/values and mask come from c->cross and self-attention appends to c->self. */
static gr_tensor *decoder(gr_lm *m, gr_ctx *ctx, gr_tensor *x, int64_t B, int64_t T, gr_tensor *enc, int64_t S,
                          const int32_t *enc_mask, gr_lm_cache *c, gr_tensor **hs)
{
    int64_t past = c ? c->self.T : 0, Tk = past + T;
    gr_tensor *self_mask = gr_attention_mask(ctx, B, T, Tk, NULL, 1);
    gr_tensor *cross_mask = gr_attention_mask(ctx, B, T, S, enc_mask, 0);
    gr_tensor *bias = m->dec_layers ? position_bias(m, ctx, m->dec_bias, T, Tk, past, 0) : NULL;
    gr_tensor *h = x;
    for (int li = 0; li < m->base.norder; li++) {
        const t5_block *y = &m->dec[m->base.order[li]];
        if (hs) hs[li] = h;
        gr_tensor *a = gr_rmsnorm(ctx, h, y->ln0, m->eps);
        gr_tensor *k = gr_linear(ctx, a, y->k, NULL), *v = gr_linear(ctx, a, y->v, NULL);
        if (c && lmc_kv_append(ctx, &c->self, li, &k, &v, T)) return NULL;
        gr_tensor *att = attend(m, ctx, gr_linear(ctx, a, y->q, NULL), k, v, self_mask, bias);
        h = gr_add(ctx, h, gr_linear(ctx, att, y->o, NULL));
        a = gr_rmsnorm(ctx, h, y->ln1, m->eps);
        gr_tensor *ck, *cv;
        if (c) {
            if (lmc_kv_past(ctx, &c->cross, li, &ck, &cv)) return NULL;
        } else {
            ck = gr_linear(ctx, enc, y->ck, NULL);
            cv = gr_linear(ctx, enc, y->cv, NULL);
        }
        att = attend(m, ctx, gr_linear(ctx, a, y->cq, NULL), ck, cv, cross_mask, NULL);
        h = gr_add(ctx, h, gr_linear(ctx, att, y->co, NULL));
        h = ffn(m, ctx, y, h);
    }
    h = gr_rmsnorm(ctx, h, m->dec_final, m->eps);
    if (hs) hs[m->base.norder] = h;
    return h;
}

static gr_tensor *head(gr_lm *m, gr_ctx *ctx, gr_tensor *h)
{
    if (m->scale_out) h = gr_scale(ctx, h, (float)(1.0 / sqrt((double)m->d)));
    return gr_linear(ctx, h, m->head, NULL);
}

static gr_status forward(gr_lm *m, gr_ctx *ctx, const gr_lm_inputs *in, gr_lm_outputs *out)
{
    if (gr_ctx_status(ctx)) return gr_ctx_status(ctx);
    if (lmc_check_inputs(ctx, in, m->d, m->vocab, "t5")) return gr_ctx_status(ctx);
    int64_t B = in->batch, P = lmc_prefix_len(in), S;
    if (in->labels && in->label_len <= 0)
        return gr_ctx_fail(ctx, GR_ERR_INVALID, "t5: labels given with label_len %lld", (long long)in->label_len);
    if (m->start_id < 0)
        return gr_ctx_fail(ctx, GR_ERR_INVALID, "t5: the config has no 'decoder_start_token_id' (needed for decoder inputs)");
    gr_tensor *x = lmc_input_embeds(ctx, in, m->base.embed, m->d, -1, &S);
    int32_t *mask = lmc_full_mask(in, P);
    int64_t L = in->labels ? in->label_len : 1;
    int32_t *dec_ids = malloc((size_t)(B * L) * sizeof *dec_ids);
    if (!mask || !dec_ids) { free(mask); free(dec_ids); return gr_ctx_fail(ctx, GR_ERR_NOMEM, "out of memory"); }
    /* _shift_right(labels): decoder_start first, -100 -> pad. Without labels: the start token. */
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < L; t++) {
            int32_t v = t == 0 ? m->start_id : in->labels[b * L + t - 1];
            dec_ids[b * L + t] = v == LMC_IGNORE ? m->pad_id : v;
        }
    for (int64_t i = 0; i < B * L; i++)
        if (dec_ids[i] < 0 || dec_ids[i] >= m->vocab) {
            gr_ctx_fail(ctx, GR_ERR_INVALID, "t5: label %d at position %lld is outside the vocabulary", dec_ids[i], (long long)i);
            free(mask); free(dec_ids);
            return gr_ctx_status(ctx);
        }
    gr_tensor **hs = NULL;
    if (in->want_hidden_states) {
        free(m->enc_hs);
        m->enc_hs = calloc((size_t)m->enc_layers + 1, sizeof *m->enc_hs);
        hs = lmc_lm_hidden(ctx, &m->base);
        if (!hs || !m->enc_hs) { free(mask); free(dec_ids); return gr_ctx_fail(ctx, GR_ERR_NOMEM, "out of memory"); }
    }
    gr_tensor *enc = encoder(m, ctx, x, B, S, mask, hs ? m->enc_hs : NULL);
    int64_t ds[2] = {B, L};
    gr_tensor *dx = gr_embedding(ctx, m->base.embed, gr_from_host(ctx, GR_I32, 2, ds, dec_ids), -1);
    free(dec_ids);
    gr_tensor *h = decoder(m, ctx, dx, B, L, enc, S, mask, NULL, hs);
    free(mask);
    out->encoder_last_hidden_state = enc;
    out->last_hidden_state = h;
    out->logits = head(m, ctx, h);
    if (in->labels) out->loss = lmc_seq2seq_loss(ctx, out->logits, in->labels, B, L);
    if (hs) {
        out->hidden_states = hs;
        out->num_hidden_states = m->base.norder + 1;
        out->encoder_hidden_states = m->enc_hs;
        out->num_encoder_hidden_states = m->enc_layers + 1;
    }
    return gr_ctx_status(ctx);
}

static gr_status t5_forward(gr_lm *m, gr_ctx *ctx, const gr_lm_inputs *in, gr_lm_outputs *out)
{
    gr_lm_outputs o = {.struct_size = sizeof o};
    gr_status s = forward(m, ctx, in, &o);
    if (s != GR_OK) memset(&o, 0, sizeof o);
    lmc_fill(out, &o, sizeof o);
    return s;
}

/* ------------------------------------------------------------------ generation ---- */

static gr_status dec_step(gr_lm *m, gr_ctx *ctx, gr_lm_cache *c, const int32_t *ids, gr_tensor **logits)
{
    int64_t B = c->self.B, shape[2] = {B, 1};
    for (int64_t b = 0; b < B; b++)
        if (ids[b] < 0 || ids[b] >= m->vocab)
            return gr_ctx_fail(ctx, GR_ERR_INVALID, "t5: token id %d outside the vocabulary", ids[b]);
    if (c->self.layers != m->base.norder)
        return gr_ctx_fail(ctx, GR_ERR_INVALID, "t5: set_layers changed the layers since generate_begin");
    if (lmc_kv_reserve(ctx, &c->self, NULL, 1)) return gr_ctx_status(ctx);
    int64_t S = c->cross.T;
    int32_t *em = malloc((size_t)(B * S) * sizeof *em);
    if (!em) return gr_ctx_fail(ctx, GR_ERR_NOMEM, "out of memory");
    for (int64_t b = 0; b < B; b++) memcpy(em + b * S, c->cross.mask + b * c->cross.cap, (size_t)S * sizeof *em);
    gr_tensor *x = gr_embedding(ctx, m->base.embed, gr_from_host(ctx, GR_I32, 2, shape, ids), -1);
    gr_tensor *h = decoder(m, ctx, x, B, 1, NULL, S, em, c, NULL);
    free(em);
    if (gr_ctx_status(ctx)) return gr_ctx_status(ctx);
    lmc_kv_commit(&c->self, 1);
    int64_t ls[2] = {B, m->vocab};
    *logits = gr_reshape(ctx, head(m, ctx, h), 2, ls);
    return gr_ctx_status(ctx);
}

static void t5_cache_free(gr_lm *m, gr_ctx *ctx, gr_lm_cache *c)
{
    (void)m;
    if (!c) return;
    lmc_kv_free(ctx, &c->self);
    lmc_kv_free(ctx, &c->cross);
    free(c);
}

/* Encodes the prompt once: the cross-attention keys/values of every decoder layer go into
 * c->cross; then the decoder start token. */
static gr_status t5_generate_begin(gr_lm *m, gr_ctx *ctx, const gr_lm_inputs *in, gr_lm_cache **cache, gr_tensor **logits)
{
    *cache = NULL;
    *logits = NULL;
    if (gr_ctx_status(ctx)) return gr_ctx_status(ctx);
    if (lmc_check_inputs(ctx, in, m->d, m->vocab, "t5")) return gr_ctx_status(ctx);
    if (m->start_id < 0 || m->start_id >= m->vocab)
        return gr_ctx_fail(ctx, GR_ERR_INVALID, "t5: the config has no usable 'decoder_start_token_id'");
    int64_t B = in->batch, P = lmc_prefix_len(in), S;
    if (P + in->seq == 0) return gr_ctx_fail(ctx, GR_ERR_INVALID, "t5: generate_begin: empty encoder input");
    gr_lm_cache *c = calloc(1, sizeof *c);
    if (!c) return gr_ctx_fail(ctx, GR_ERR_NOMEM, "out of memory");
    int prev = gr_ctx_set_grad_enabled(ctx, 0);
    int32_t *mask = lmc_full_mask(in, P), *start = malloc((size_t)B * sizeof *start);
    if (!mask || !start) gr_ctx_fail(ctx, GR_ERR_NOMEM, "out of memory");
    if (!lmc_kv_init(ctx, &c->self, m->base.norder, B, m->inner) &&
        !lmc_kv_init(ctx, &c->cross, m->base.norder, B, m->inner)) {
        gr_tensor *x = lmc_input_embeds(ctx, in, m->base.embed, m->d, -1, &S);
        if (!lmc_kv_reserve(ctx, &c->cross, mask, S)) {
            gr_tensor *enc = encoder(m, ctx, x, B, S, mask, NULL);
            for (int li = 0; li < m->base.norder && !gr_ctx_status(ctx); li++) {
                const t5_block *y = &m->dec[m->base.order[li]];
                gr_tensor *k = gr_linear(ctx, enc, y->ck, NULL), *v = gr_linear(ctx, enc, y->cv, NULL);
                lmc_kv_append(ctx, &c->cross, li, &k, &v, S);
            }
        }
    }
    if (!gr_ctx_status(ctx)) {
        lmc_kv_commit(&c->cross, S);
        for (int64_t b = 0; b < B; b++) start[b] = m->start_id;
        dec_step(m, ctx, c, start, logits);
    }
    free(mask);
    free(start);
    gr_ctx_set_grad_enabled(ctx, prev);
    gr_status s = gr_ctx_status(ctx);
    if (s != GR_OK) { t5_cache_free(m, ctx, c); *logits = NULL; return s; }
    *cache = c;
    return GR_OK;
}

static gr_status t5_generate_step(gr_lm *m, gr_ctx *ctx, gr_lm_cache *c, const int32_t *next_ids, gr_tensor **logits)
{
    *logits = NULL;
    if (gr_ctx_status(ctx)) return gr_ctx_status(ctx);
    int prev = gr_ctx_set_grad_enabled(ctx, 0);
    gr_status s = dec_step(m, ctx, c, next_ids, logits);
    gr_ctx_set_grad_enabled(ctx, prev);
    return s;
}

static gr_status t5_cache_reorder(gr_lm *m, gr_ctx *ctx, gr_lm_cache *c, const int32_t *rows, int64_t count)
{
    (void)m;
    gr_status s = lmc_kv_reorder(ctx, &c->self, rows, count);
    return s ? s : lmc_kv_reorder(ctx, &c->cross, rows, count);
}

static const gr_lm_iface t5_iface = {
    .struct_size = sizeof(gr_lm_iface),
    .open = t5_open,
    .close = t5_close,
    .info = lmc_lm_info,
    .params = lmc_lm_params,
    .input_embeddings = lmc_lm_input_embeddings,
    .forward = t5_forward,
    .set_layers = lmc_lm_set_layers,
    .generate_begin = t5_generate_begin,
    .generate_step = t5_generate_step,
    .cache_reorder = t5_cache_reorder,
    .cache_free = t5_cache_free,
};

static const gr_plugin_descriptor t5_desc = GR_PLUGIN_DESCRIPTOR(
    GR_PLUGIN_LANGUAGE_MODEL, "t5", "T5 / Flan-T5 encoder-decoder language model (T5ForConditionalGeneration)", &t5_iface);

GR_PLUGIN_EXPORT const gr_plugin_descriptor *graft_plugin_entry(void) { return &t5_desc; }
