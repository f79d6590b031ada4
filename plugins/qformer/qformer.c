/* Plugin `qformer`: the BLIP-2 Q-Former (HF Blip2QFormerModel) with its query tokens.
 *
 * Query-only input, as Blip2ForConditionalGeneration runs it: query_tokens [1, Q, H] ->
 * qformer.layernorm -> layers of self-attention, cross-attention to the image features when
 * layer % cross_attention_frequency == 0, and the query feed-forward (intermediate_query /
 * output_query); every block is LayerNorm(dense(x) + residual) (post-LN) and scores are divided
 * by sqrt(head_dim). With query-only input no position embedding is added, and the image mask
 * is all ones. The text-side weights of a checkpoint (intermediate.*, output.*) are unused.
 *
 * Config: a `blip_2_qformer` object, or a whole `blip-2` config (then qformer_config is read,
 * encoder_hidden_size is the vision hidden size as Blip2Config sets it, num_query_tokens and
 * initializer_range come from the top level). Names: `query_tokens`, `qformer.*` (relative to
 * the source prefix), as in Blip2ForConditionalGeneration. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graft/plugin.h"
#include "vcommon.h"

typedef struct qf_block { /* Blip2QFormerAttention: attention.{query,key,value} + output.{dense,LayerNorm} */
    gr_tensor *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b, *ln_w, *ln_b;
} qf_block;

typedef struct qf_layer {
    qf_block self, cross;
    int has_cross;
    gr_tensor *fc1_w, *fc1_b, *fc2_w, *fc2_b, *ln_w, *ln_b;
} qf_layer;

struct gr_vision {
    int64_t dim, heads, layers, inter, enc_dim, queries, cross_freq;
    float eps;
    gr_unary_op act;
    gr_tensor *query_tokens, *ln_w, *ln_b;
    qf_layer *layer;
    vc_params ps;
    gr_tensor **hidden;
};

static gr_status qf_config(gr_vision *q, const gr_model_source *src, double *init_std, char *scope,
                           size_t scap)
{
    vc_cfg root = {src->config, src->config_path, ""}, c = root;
    const char *mt = NULL, *pet = NULL;
    gr_status st = vc_str(&root, "model_type", NULL, &mt);
    if (st) return st;
    int composite = mt && strcmp(mt, "blip-2") == 0;
    if (composite) {
        vc_cfg vis;
        char vscope[64];
        const char *vmt = NULL;
        if ((st = vc_sub(&root, "qformer_config", &c, scope, scap)) ||
            (st = vc_sub(&root, "vision_config", &vis, vscope, sizeof vscope)) ||
            (st = vc_str(&vis, "model_type", "blip_2_vision_model", &vmt)) ||
            (st = vc_int(&vis, "hidden_size", strcmp(vmt, "clip_vision_model") == 0 ? 768 : 1408, 1,
                         &q->enc_dim)) ||
            (st = vc_int(&root, "num_query_tokens", 32, 1, &q->queries)) ||
            (st = vc_pos_num(&root, "initializer_range", 0.02, init_std)))
            return st;
        if ((st = vc_str(&c, "model_type", NULL, &mt))) return st;
    } else {
        if ((st = vc_int(&c, "encoder_hidden_size", 1408, 1, &q->enc_dim)) ||
            (st = vc_int(&c, "num_query_tokens", 32, 1, &q->queries)) ||
            (st = vc_pos_num(&c, "initializer_range", 0.02, init_std)))
            return st;
    }
    if (mt && strcmp(mt, "blip_2_qformer") != 0)
        return vc_bad(&c, "model_type", "'%s' is not a Q-Former config (expected 'blip_2_qformer')", mt);
    double eps;
    if ((st = vc_int(&c, "hidden_size", 768, 1, &q->dim)) ||
        (st = vc_int(&c, "num_hidden_layers", 12, 0, &q->layers)) ||
        (st = vc_int(&c, "num_attention_heads", 12, 1, &q->heads)) ||
        (st = vc_int(&c, "intermediate_size", 3072, 1, &q->inter)) ||
        (st = vc_act(&c, "hidden_act", "gelu", &q->act)) ||
        (st = vc_pos_num(&c, "layer_norm_eps", 1e-12, &eps)) ||
        (st = vc_int(&c, "cross_attention_frequency", 2, 1, &q->cross_freq)) ||
        (st = vc_str(&c, "position_embedding_type", "absolute", &pet)))
        return st;
    /* relative_key(_query) adds distance embeddings to the scores: not implemented. */
    if (strcmp(pet, "absolute") != 0)
        return vc_bad(&c, "position_embedding_type", "'%s' is not supported (only 'absolute')", pet);
    if (q->dim % q->heads)
        return vc_bad(&c, "num_attention_heads", "hidden_size %lld is not divisible by %lld heads",
                      (long long)q->dim, (long long)q->heads);
    q->eps = (float)eps;
    return GR_OK;
}

static void qf_close(gr_vision *q, gr_ctx *ctx)
{
    if (!q) return;
    vc_params_free(ctx, &q->ps);
    free(q->layer);
    free(q->hidden);
    free(q);
}

static int qf_block_open(gr_ctx *ctx, const gr_model_source *src, vc_params *ps, qf_block *b,
                         const char *bp, int64_t h, int64_t kv, double std)
{
    char n[256];
#define P(field, ndim, init, sd, ...)                                                          \
    do {                                                                                   \
        field = vc_param(ctx, src, ps, n, ndim, (int64_t[]){__VA_ARGS__}, init, sd);        \
        if (!field) return 0;                                                              \
    } while (0)
    snprintf(n, sizeof n, "%s.attention.query.weight", bp); P(b->q_w, 2, VC_NORMAL, std, h, h);
    snprintf(n, sizeof n, "%s.attention.query.bias", bp);   P(b->q_b, 1, VC_ZEROS, 0, h);
    snprintf(n, sizeof n, "%s.attention.key.weight", bp);   P(b->k_w, 2, VC_NORMAL, std, h, kv);
    snprintf(n, sizeof n, "%s.attention.key.bias", bp);     P(b->k_b, 1, VC_ZEROS, 0, h);
    snprintf(n, sizeof n, "%s.attention.value.weight", bp); P(b->v_w, 2, VC_NORMAL, std, h, kv);
    snprintf(n, sizeof n, "%s.attention.value.bias", bp);   P(b->v_b, 1, VC_ZEROS, 0, h);
    snprintf(n, sizeof n, "%s.output.dense.weight", bp);    P(b->o_w, 2, VC_NORMAL, std, h, h);
    snprintf(n, sizeof n, "%s.output.dense.bias", bp);      P(b->o_b, 1, VC_ZEROS, 0, h);
    snprintf(n, sizeof n, "%s.output.LayerNorm.weight", bp); P(b->ln_w, 1, VC_ONES, 0, h);
    snprintf(n, sizeof n, "%s.output.LayerNorm.bias", bp);  P(b->ln_b, 1, VC_ZEROS, 0, h);
    return 1;
#undef P
}

static gr_status qf_open(gr_ctx *ctx, const gr_model_source *src, gr_vision **out)
{
    *out = NULL;
    gr_vision *q = calloc(1, sizeof *q);
    if (!q) return gr_fail(GR_ERR_NOMEM, "out of memory (qformer)");
    char scope[64];
    double std;
    gr_status st = qf_config(q, src, &std, scope, sizeof scope);
    if (st) { free(q); return st; }
    q->layer = calloc((size_t)q->layers + 1, sizeof *q->layer);
    q->hidden = calloc((size_t)q->layers + 1, sizeof *q->hidden);
    if (!q->layer || !q->hidden) {
        qf_close(q, ctx);
        return gr_fail(GR_ERR_NOMEM, "out of memory (qformer)");
    }
    int64_t h = q->dim, f = q->inter;
    char n[256];
    int ok = 1;
#define P(field, ndim, init, sd, ...)                                                          \
    do {                                                                                   \
        field = vc_param(ctx, src, &q->ps, n, ndim, (int64_t[]){__VA_ARGS__}, init, sd);    \
        if (!field) goto fail;                                                             \
    } while (0)
    /* HF init (Blip2PreTrainedModel): Linear N(0, initializer_range), LayerNorm 1/0, and the
     * query tokens N(0, initializer_range) as LAVIS initialises them. */
    ok = ok && (q->query_tokens = vc_param(ctx, src, &q->ps, "query_tokens", 3,
                                           (int64_t[]){1, q->queries, h}, VC_NORMAL, std));
    ok = ok && (q->ln_w = vc_param(ctx, src, &q->ps, "qformer.layernorm.weight", 1, (int64_t[]){h},
                                   VC_ONES, 0));
    ok = ok && (q->ln_b = vc_param(ctx, src, &q->ps, "qformer.layernorm.bias", 1, (int64_t[]){h},
                                   VC_ZEROS, 0));
    for (int64_t i = 0; i < q->layers && ok; i++) {
        qf_layer *L = &q->layer[i];
        char lp[128], bp[160];
        snprintf(lp, sizeof lp, "qformer.encoder.layer.%lld.", (long long)i);
        snprintf(bp, sizeof bp, "%sattention", lp);
        ok = qf_block_open(ctx, src, &q->ps, &L->self, bp, h, h, std);
        L->has_cross = i % q->cross_freq == 0;
        if (ok && L->has_cross) {
            snprintf(bp, sizeof bp, "%scrossattention", lp);
            ok = qf_block_open(ctx, src, &q->ps, &L->cross, bp, h, q->enc_dim, std);
        }
        if (!ok) break;
        snprintf(n, sizeof n, "%sintermediate_query.dense.weight", lp); P(L->fc1_w, 2, VC_NORMAL, std, f, h);
        snprintf(n, sizeof n, "%sintermediate_query.dense.bias", lp);   P(L->fc1_b, 1, VC_ZEROS, 0, f);
        snprintf(n, sizeof n, "%soutput_query.dense.weight", lp);       P(L->fc2_w, 2, VC_NORMAL, std, h, f);
        snprintf(n, sizeof n, "%soutput_query.dense.bias", lp);         P(L->fc2_b, 1, VC_ZEROS, 0, h);
        snprintf(n, sizeof n, "%soutput_query.LayerNorm.weight", lp);   P(L->ln_w, 1, VC_ONES, 0, h);
        snprintf(n, sizeof n, "%soutput_query.LayerNorm.bias", lp);     P(L->ln_b, 1, VC_ZEROS, 0, h);
        continue;
    fail:
        ok = 0;
    }
    if (!ok) {
        st = q->ps.status ? q->ps.status : GR_ERR_INVALID;
        qf_close(q, ctx);
        return st;
    }
#undef P
    *out = q;
    return GR_OK;
}

static void qf_info(const gr_vision *q, gr_vision_info *out)
{
    gr_vision_info i = {.struct_size = sizeof i, .family = "qformer", .hidden_size = q->dim,
                        .input_dim = q->enc_dim, .num_tokens = q->queries, .num_layers = (int)q->layers};
    lmc_fill(out, &i, sizeof i);
}

static void qf_params(gr_vision *q, gr_param_list *out)
{
    out->items = q->ps.items;
    out->count = q->ps.count;
}

/* Blip2QFormerAttention: LayerNorm(dense(attention(h, kv)) + h). */
static gr_tensor *qf_block_forward(const gr_vision *q, gr_ctx *ctx, const qf_block *b, gr_tensor *h,
                                   gr_tensor *kv)
{
    float scale = (float)(1.0 / sqrt((double)(q->dim / q->heads)));
    gr_tensor *a = lmc_mha(ctx, gr_linear(ctx, h, b->q_w, b->q_b), gr_linear(ctx, kv, b->k_w, b->k_b),
                           gr_linear(ctx, kv, b->v_w, b->v_b), q->heads, scale, 0, NULL, NULL);
    return gr_layernorm(ctx, gr_add(ctx, gr_linear(ctx, a, b->o_w, b->o_b), h), b->ln_w, b->ln_b, q->eps);
}

static gr_status forward(gr_vision *q, gr_ctx *ctx, gr_tensor *input, int want_hidden_states,
                         gr_vision_outputs *out)
{
    if (gr_ctx_status(ctx)) return gr_ctx_status(ctx);
    if (!input || input->ndim != 3 || input->shape[2] != q->enc_dim) {
        char got[96] = "NULL";
        if (input) gr_shape_str(input, got, sizeof got);
        return gr_ctx_fail(ctx, GR_ERR_SHAPE, "qformer: image features %s, expected [batch, tokens, %lld] "
                           "(encoder_hidden_size)", got, (long long)q->enc_dim);
    }
    gr_tensor *img = vc_f32(ctx, input);
    gr_tensor *h = gr_layernorm(ctx, vc_f32(ctx, q->query_tokens), q->ln_w, q->ln_b, q->eps);
    h = gr_repeat_interleave(ctx, h, 0, (int)input->shape[0]); /* [B, Q, H] */
    for (int64_t i = 0; i < q->layers; i++) {
        const qf_layer *L = &q->layer[i];
        q->hidden[i] = h;
        h = qf_block_forward(q, ctx, &L->self, h, h);
        if (L->has_cross) h = qf_block_forward(q, ctx, &L->cross, h, img);
        gr_tensor *x = gr_act(ctx, q->act, gr_linear(ctx, h, L->fc1_w, L->fc1_b));
        h = gr_layernorm(ctx, gr_add(ctx, gr_linear(ctx, x, L->fc2_w, L->fc2_b), h), L->ln_w, L->ln_b, q->eps);
    }
    q->hidden[q->layers] = h;
    gr_status st = gr_ctx_status(ctx);
    if (st) return gr_fail_context(st, "qformer forward");
    out->last_hidden_state = h;
    if (want_hidden_states) {
        out->hidden_states = q->hidden;
        out->num_hidden_states = (int)q->layers + 1;
    }
    return GR_OK;
}

static gr_status qf_forward(gr_vision *q, gr_ctx *ctx, gr_tensor *input, int want_hidden_states,
                            gr_vision_outputs *out)
{
    gr_vision_outputs o = {.struct_size = sizeof o};
    gr_status st = forward(q, ctx, input, want_hidden_states, &o);
    lmc_fill(out, &o, sizeof o);
    return st;
}

static const gr_vision_iface qformer_iface = {
    .struct_size = sizeof(gr_vision_iface),
    .open = qf_open,
    .close = qf_close,
    .info = qf_info,
    .params = qf_params,
    .forward = qf_forward,
};

static const gr_plugin_descriptor desc = GR_PLUGIN_DESCRIPTOR(
    GR_PLUGIN_VISION_ENCODER, "qformer",
    "BLIP-2 Q-Former (HF Blip2QFormerModel) with its query tokens: image features -> queries",
    &qformer_iface);

GR_PLUGIN_EXPORT const gr_plugin_descriptor *graft_plugin_entry(void) { return &desc; }
