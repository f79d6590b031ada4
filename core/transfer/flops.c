/* The analytic FLOP model (see flops.h). Each pass walks the plugin's forward in order, matmul
 * by matmul, carrying "does this activation need a gradient" the way the tape decides it. */
#include <stdlib.h>
#include <string.h>

#include "base/fsutil.h"
#include "transfer/flops.h"

double gr_flop_forward(const gr_flop_count *c) { return c->forward_frozen + c->forward_trainable; }

double gr_flop_total(const gr_flop_count *c)
{
    return c->forward_frozen + c->forward_trainable + c->backward_input + c->backward_param;
}

void gr_flop_add(gr_flop_count *acc, const gr_flop_count *x, double times)
{
    acc->forward_frozen += times * x->forward_frozen;
    acc->forward_trainable += times * x->forward_trainable;
    acc->backward_input += times * x->backward_input;
    acc->backward_param += times * x->backward_param;
}

/* ---------------------------------------------------------------- primitives ---- */

typedef struct walk {
    gr_flop_count *c;
    int backward;
} walk;

/* y = x W^T over `rows` rows, W [out, in]. xg: x needs a gradient; wt: W is trainable.
 * Returns whether y needs a gradient. */
static int lin(walk *w, double rows, double in, double out, int xg, int wt)
{
    double f = 2.0 * rows * in * out;
    if (xg || wt) w->c->forward_trainable += f;
    else w->c->forward_frozen += f;
    if (w->backward && xg) w->c->backward_input += f;  /* dX = dY W */
    if (w->backward && wt) w->c->backward_param += f;  /* dW = dY^T X */
    return xg || wt;
}

/* C [batch, m, n] = A [batch, m, k] B [batch, k, n], both activations. */
static int bmm(walk *w, double batch, double m, double n, double k, int ag, int bg)
{
    double f = 2.0 * batch * m * n * k;
    if (ag || bg) w->c->forward_trainable += f;
    else w->c->forward_frozen += f;
    if (w->backward && ag) w->c->backward_input += f;
    if (w->backward && bg) w->c->backward_input += f;
    return ag || bg;
}

/* softmax(q k^T) v over heads: q [B, H, Tq, D], k/v [B, H, Tk, D] (GQA repeats k/v first, so
 * the products are per query head). */
static int attention(walk *w, double B, double H, double Tq, double Tk, double D, int qg, int kg, int vg)
{
    int sg = bmm(w, B * H, Tq, Tk, D, qg, kg);
    return bmm(w, B * H, Tq, D, Tk, sg, vg);
}

/* T5 self-attention adds a learned position bias to the scores: when that bias is trained the
 * scores need a gradient even if q and k do not. */
static int attention_bias(walk *w, double B, double H, double Tq, double Tk, double D, int qg, int kg, int vg, int bg)
{
    int sg = bmm(w, B * H, Tq, Tk, D, qg, kg) || bg;
    return bmm(w, B * H, Tq, D, Tk, sg, vg);
}

/* ---------------------------------------------------------------- shapes ---- */

static int64_t geti(const json_t *o, const char *k, int64_t def)
{
    const json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? json_integer_value(v) : def;
}

static int getb(const json_t *o, const char *k, int def)
{
    const json_t *v = json_object_get(o, k);
    return json_is_boolean(v) ? json_is_true(v) : def;
}

static const char *gets(const json_t *o, const char *k, const char *def)
{
    const json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : def;
}

static gr_status positive(const char *path, const char *what, int64_t v)
{
    return v > 0 ? GR_OK : gr_fail(GR_ERR_INVALID, "%s: %s must be positive (got %lld)", path, what, (long long)v);
}

gr_status gr_lm_shape_from_config(const json_t *c, const char *path, gr_lm_shape *m)
{
    memset(m, 0, sizeof *m);
    const char *mt = gets(c, "model_type", "");
    if (strcmp(mt, "opt") == 0) {
        m->arch = GR_LM_OPT;
        m->d = geti(c, "hidden_size", 768);
        m->heads = geti(c, "num_attention_heads", 12);
        m->ffn = geti(c, "ffn_dim", 3072);
        m->vocab = geti(c, "vocab_size", 50272);
        m->layers = (int)geti(c, "num_hidden_layers", 12);
        m->embed_dim = geti(c, "word_embed_proj_dim", m->d);
        m->ffn_mats = 2;
        m->qkv_norm_weight = getb(c, "do_layer_norm_before", 1) && getb(c, "layer_norm_elementwise_affine", 1);
        m->tied = getb(c, "tie_word_embeddings", 1);
    } else if (strcmp(mt, "llama") == 0) {
        m->arch = GR_LM_LLAMA;
        m->d = geti(c, "hidden_size", 4096);
        m->heads = geti(c, "num_attention_heads", 32);
        m->kv_heads = geti(c, "num_key_value_heads", m->heads);
        m->head_dim = geti(c, "head_dim", m->heads > 0 ? m->d / m->heads : 0);
        m->ffn = geti(c, "intermediate_size", 11008);
        m->vocab = geti(c, "vocab_size", 32000);
        m->layers = (int)geti(c, "num_hidden_layers", 32);
        m->embed_dim = m->d;
        m->ffn_mats = 3;
        m->qkv_norm_weight = 1;
        m->tied = getb(c, "tie_word_embeddings", 0);
    } else if (strcmp(mt, "t5") == 0) {
        m->arch = GR_LM_T5;
        m->d = geti(c, "d_model", 512);
        m->heads = geti(c, "num_heads", 8);
        m->head_dim = geti(c, "d_kv", 64);
        m->ffn = geti(c, "d_ff", 2048);
        m->vocab = geti(c, "vocab_size", 32128);
        m->enc_layers = (int)geti(c, "num_layers", 6);
        m->layers = (int)geti(c, "num_decoder_layers", m->enc_layers);
        m->embed_dim = m->d;
        m->ffn_mats = getb(c, "is_gated_act", strncmp(gets(c, "feed_forward_proj", "relu"), "gated-", 6) == 0) ? 3 : 2;
        m->qkv_norm_weight = 1;
        m->tied = getb(c, "tie_word_embeddings", 1);
    } else {
        return gr_fail(GR_ERR_UNSUPPORTED, "%s: model_type '%s' is not a language model graft knows (opt, llama, t5)",
                       path, mt);
    }
    if (m->arch != GR_LM_LLAMA) {
        m->kv_heads = m->heads;
        if (m->arch == GR_LM_OPT) m->head_dim = m->heads > 0 ? m->d / m->heads : 0;
    }
    gr_status s;
    if ((s = positive(path, "hidden size", m->d)) || (s = positive(path, "attention heads", m->heads)) ||
        (s = positive(path, "key/value heads", m->kv_heads)) || (s = positive(path, "head dim", m->head_dim)) ||
        (s = positive(path, "intermediate size", m->ffn)) || (s = positive(path, "vocab_size", m->vocab)) ||
        (s = positive(path, "embedding width", m->embed_dim)))
        return s;
    if (m->layers < 0 || m->enc_layers < 0) return gr_fail(GR_ERR_INVALID, "%s: negative layer count", path);
    return GR_OK;
}

gr_status gr_lm_shape_from_dir(const char *dir, gr_lm_shape *out)
{
    char *path = gr_path_join(dir, "config.json");
    if (!path) return gr_fail(GR_ERR_NOMEM, "out of memory");
    json_error_t je;
    json_t *cfg = json_load_file(path, 0, &je);
    gr_status s;
    if (!cfg) s = gr_path_exists(path) ? gr_fail(GR_ERR_FORMAT, "%s:%d: %s", path, je.line, je.text)
                                       : gr_fail(GR_ERR_NOT_FOUND, "%s: not found", path);
    else s = gr_lm_shape_from_config(cfg, path, out);
    json_decref(cfg);
    free(path);
    return s;
}

double gr_lm_shape_params(const gr_lm_shape *s)
{
    double d = (double)s->d, q = (double)(s->heads * s->head_dim), kv = (double)(s->kv_heads * s->head_dim);
    double attn = d * q + 2 * d * kv + q * d, ffn = (double)s->ffn_mats * d * (double)s->ffn;
    double per = attn + ffn, total = (double)s->layers * per;
    if (s->arch == GR_LM_T5) total += (double)s->enc_layers * per + (double)s->layers * (attn); /* cross */
    total += (double)s->vocab * (double)s->embed_dim * (s->tied ? 1 : 2);                        /* embeddings, head */
    if (s->embed_dim != s->d) total += 2 * d * (double)s->embed_dim;                              /* project_in/out */
    return total;
}

gr_status gr_vit_shape_from_config(const json_t *c, const char *path, gr_vit_shape *v)
{
    memset(v, 0, sizeof *v);
    const char *mt = gets(c, "model_type", "");
    int clip = strcmp(mt, "clip_vision_model") == 0;
    if (!clip && strcmp(mt, "blip_2_vision_model") != 0)
        return gr_fail(GR_ERR_UNSUPPORTED, "%s: model_type '%s' is not an image tower (clip_vision_model, "
                       "blip_2_vision_model)", path, mt);
    v->d = geti(c, "hidden_size", clip ? 768 : 1408);
    v->ffn = geti(c, "intermediate_size", clip ? 3072 : 6144);
    v->layers = geti(c, "num_hidden_layers", clip ? 12 : 39);
    v->heads = geti(c, "num_attention_heads", clip ? 12 : 16);
    v->image = geti(c, "image_size", 224);
    v->patch = geti(c, "patch_size", clip ? 32 : 14);
    v->channels = geti(c, "num_channels", 3);
    gr_status s;
    if ((s = positive(path, "hidden_size", v->d)) || (s = positive(path, "num_attention_heads", v->heads)) ||
        (s = positive(path, "patch_size", v->patch)) || (s = positive(path, "image_size", v->image)))
        return s;
    return GR_OK;
}

gr_status gr_qformer_shape_from_config(const json_t *c, const char *path, int64_t enc_dim, int64_t queries,
                                       gr_qformer_shape *q)
{
    memset(q, 0, sizeof *q);
    q->d = geti(c, "hidden_size", 768);
    q->layers = geti(c, "num_hidden_layers", 12);
    q->heads = geti(c, "num_attention_heads", 12);
    q->ffn = geti(c, "intermediate_size", 3072);
    q->cross_freq = geti(c, "cross_attention_frequency", 2);
    q->enc_dim = enc_dim > 0 ? enc_dim : geti(c, "encoder_hidden_size", 1408);
    q->queries = queries > 0 ? queries : 32;
    gr_status s;
    if ((s = positive(path, "hidden_size", q->d)) || (s = positive(path, "num_attention_heads", q->heads)) ||
        (s = positive(path, "cross_attention_frequency", q->cross_freq)))
        return s;
    return GR_OK;
}

/* ---------------------------------------------------------------- LMs ---- */

/* One decoder-only layer (OPT pre/post-LN or Llama) over `rows` = B*T rows; g: the layer input
 * needs a gradient. Returns whether the output does. */
static int causal_layer(walk *w, const gr_lm_shape *s, double B, double T, int g, int tr)
{
    double rows = B * T, d = (double)s->d, q = (double)(s->heads * s->head_dim), kv = (double)(s->kv_heads * s->head_dim);
    int post_ln = s->arch == GR_LM_OPT && !s->qkv_norm_weight; /* OPT post-LN (or LN without weights) */
    int xg = g || (tr && s->qkv_norm_weight);
    int qg = lin(w, rows, d, q, xg, tr), kg = lin(w, rows, d, kv, xg, tr), vg = lin(w, rows, d, kv, xg, tr);
    int ag = attention(w, B, (double)s->heads, T, T, (double)s->head_dim, qg, kg, vg);
    int og = lin(w, rows, q, d, ag, tr);
    int g2 = g || og || (post_ln && tr);
    int fx = g2 || (tr && s->qkv_norm_weight);
    int hg = 0;
    for (int i = 0; i + 1 < s->ffn_mats; i++) hg |= lin(w, rows, d, (double)s->ffn, fx, tr);
    int fg = lin(w, rows, (double)s->ffn, d, hg, tr);
    return g2 || fg || (post_ln && tr);
}

/* T5 self-attention + feed-forward block (encoder) or with cross-attention (decoder). */
static int t5_block(walk *w, const gr_lm_shape *s, double B, double T, int g, int tr, int cross, double S, int eg,
                    int bias_grad)
{
    double rows = B * T, d = (double)s->d, in = (double)(s->heads * s->head_dim), H = (double)s->heads;
    int xg = g || tr;
    int qg = lin(w, rows, d, in, xg, tr), kg = lin(w, rows, d, in, xg, tr), vg = lin(w, rows, d, in, xg, tr);
    int ag = attention_bias(w, B, H, T, T, (double)s->head_dim, qg, kg, vg, bias_grad);
    g = lin(w, rows, in, d, ag, tr) || g;
    if (cross) {
        int cq = lin(w, rows, d, in, g || tr, tr);
        int ck = lin(w, B * S, d, in, eg, tr), cv = lin(w, B * S, d, in, eg, tr);
        int cg = attention(w, B, H, T, S, (double)s->head_dim, cq, ck, cv);
        g = lin(w, rows, in, d, cg, tr) || g;
    }
    int hg = 0;
    for (int i = 0; i + 1 < s->ffn_mats; i++) hg |= lin(w, rows, d, (double)s->ffn, g || tr, tr);
    return lin(w, rows, (double)s->ffn, d, hg, tr) || g;
}

void gr_flops_lm(const gr_lm_shape *s, const gr_lm_pass *p, gr_flop_count *out)
{
    memset(out, 0, sizeof *out);
    walk w = {out, p->want_loss};
    double B = (double)p->batch;
    int all = p->train_all != 0;
    int n = p->layers ? p->num_layers : s->layers;
    if (s->arch == GR_LM_T5) {
        double S = (double)(p->prefix + p->seq), T = (double)p->label_len;
        int g = (p->prefix > 0 && p->prefix_grad) || all;
        for (int i = 0; i < s->enc_layers; i++) g = t5_block(&w, s, B, S, g, all, 0, 0, 0, all);
        int eg = g || all; /* after the encoder's final norm */
        int gd = all, bias = all;
        /* The decoder's position bias lives in block 0 and serves every block that runs. */
        for (int i = 0; i < n; i++)
            if ((p->layers ? p->layers[i] : i) == 0 && p->train_layer && p->train_layer[i]) bias = 1;
        for (int i = 0; i < n; i++) {
            int tr = all || (p->train_layer && p->train_layer[i]);
            gd = t5_block(&w, s, B, T, gd, tr, 1, S, eg, bias);
        }
        lin(&w, B * T, (double)s->d, (double)s->vocab, gd || all, all);
        return;
    }
    double T = (double)(p->prefix + p->seq), rows = B * T;
    int g = (p->prefix > 0 && p->prefix_grad) || all;
    if (s->embed_dim != s->d) g = lin(&w, rows, (double)s->embed_dim, (double)s->d, g, all); /* project_in */
    g = g || (all && s->arch == GR_LM_OPT); /* learned positions */
    for (int i = 0; i < n; i++) {
        int tr = all || (p->train_layer && p->train_layer[i]);
        g = causal_layer(&w, s, B, T, g, tr);
    }
    g = g || all; /* final norm */
    if (s->embed_dim != s->d) g = lin(&w, rows, (double)s->d, (double)s->embed_dim, g, all); /* project_out */
    lin(&w, rows, (double)s->embed_dim, (double)s->vocab, g, all);
}

/* ---------------------------------------------------------------- vision ---- */

void gr_flops_vit(const gr_vit_shape *s, int64_t batch, int train_last, int backward, gr_flop_count *out)
{
    memset(out, 0, sizeof *out);
    walk w = {out, backward};
    double B = (double)batch, grid = (double)(s->image / s->patch), N = grid * grid, T = N + 1, d = (double)s->d;
    double rows = B * T;
    lin(&w, B * N, (double)(s->channels * s->patch * s->patch), d, 0, 0); /* patch embedding */
    int g = 0;
    for (int64_t i = 0; i < s->layers; i++) {
        int tr = i >= s->layers - train_last;
        int xg = g || tr; /* layer_norm1 has weights */
        int qg = lin(&w, rows, d, d, xg, tr), kg = lin(&w, rows, d, d, xg, tr), vg = lin(&w, rows, d, d, xg, tr);
        int ag = attention(&w, B, (double)s->heads, T, T, d / (double)s->heads, qg, kg, vg);
        g = lin(&w, rows, d, d, ag, tr) || g;
        int hg = lin(&w, rows, d, (double)s->ffn, g || tr, tr);
        g = lin(&w, rows, (double)s->ffn, d, hg, tr) || g;
    }
}

void gr_flops_qformer(const gr_qformer_shape *s, int64_t batch, int64_t enc_tokens, int input_grad, int trainable,
                      int backward, gr_flop_count *out)
{
    memset(out, 0, sizeof *out);
    walk w = {out, backward};
    double B = (double)batch, Q = (double)s->queries, d = (double)s->d, H = (double)s->heads, hd = d / H;
    double rows = B * Q, Ne = (double)enc_tokens;
    int tr = trainable != 0, g = tr; /* query tokens and their LayerNorm */
    for (int64_t i = 0; i < s->layers; i++) {
        int qg = lin(&w, rows, d, d, g, tr), kg = lin(&w, rows, d, d, g, tr), vg = lin(&w, rows, d, d, g, tr);
        int ag = attention(&w, B, H, Q, Q, hd, qg, kg, vg);
        g = lin(&w, rows, d, d, ag, tr) || g || tr;
        if (i % s->cross_freq == 0) {
            int cq = lin(&w, rows, d, d, g, tr);
            int ck = lin(&w, B * Ne, (double)s->enc_dim, d, input_grad, tr);
            int cv = lin(&w, B * Ne, (double)s->enc_dim, d, input_grad, tr);
            int cg = attention(&w, B, H, Q, Ne, hd, cq, ck, cv);
            g = lin(&w, rows, d, d, cg, tr) || g || tr;
        }
        int hg = lin(&w, rows, d, (double)s->ffn, g, tr);
        g = lin(&w, rows, (double)s->ffn, d, hg, tr) || g || tr;
    }
}

void gr_flops_projector(int64_t rows, int64_t in, int64_t hidden, int64_t out, int mlp, int input_grad, int trainable,
                        int backward, gr_flop_count *count)
{
    memset(count, 0, sizeof *count);
    walk w = {count, backward};
    if (!mlp) {
        lin(&w, (double)rows, (double)in, (double)out, input_grad, trainable);
        return;
    }
    int64_t h = hidden > 0 ? hidden : out;
    int g = lin(&w, (double)rows, (double)in, (double)h, input_grad, trainable);
    lin(&w, (double)rows, (double)h, (double)out, g, trainable);
}
