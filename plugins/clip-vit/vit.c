/* ViT image towers with exact Hugging Face math.
 *
 * CLIPVisionModel (modeling_clip.py): conv patch embedding without bias, CLS + row-major
 * patches + learned positions, pre_layrnorm (sic), pre-LN layers with q/k/v/out_proj (q scaled
 * by head_dim^-0.5 before q.k), last_hidden_state = last layer output (no post-LN), pooler =
 * post_layernorm(CLS).
 *
 * Blip2VisionModel (modeling_blip_2.py): conv WITH bias, class_embedding [1,1,H] and
 * position_embedding [1,N+1,H] as bare parameters, no pre-LN, fused qkv Linear (bias =
 * cat(q_bias, 0, v_bias)) and `projection`, scores scaled after q.k, last_hidden_state =
 * post_layernorm(encoder output), pooler = post_layernorm(last_hidden_state[:, 0]) (the CLS
 * row is normalised twice, as HF does).
 *
 * Pixels [B, C, H, W] are patchified (gr_patchify) and multiplied by the conv weight viewed as
 * [D, C*p*p], which equals the strided convolution. */
#include "vit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vcommon.h"

typedef enum { VIT_CLIP, VIT_BLIP2 } vit_kind;

typedef struct vit_layer {
    gr_tensor *ln1_w, *ln1_b, *ln2_w, *ln2_b;
    gr_tensor *q_w, *q_b, *k_w, *k_b, *v_w, *v_b;  /* CLIP */
    gr_tensor *qkv_w, *qkv_b, *q_bias, *v_bias;    /* BLIP-2 (q_bias/v_bias: unfused files) */
    gr_tensor *o_w, *o_b;                          /* out_proj / projection */
    gr_tensor *fc1_w, *fc1_b, *fc2_w, *fc2_b;
} vit_layer;

struct gr_vision {
    vit_kind kind;
    int64_t dim, heads, layers, inter, image, patch, channels, grid;
    float eps;
    gr_unary_op act;
    int qkv_bias;
    gr_tensor *patch_w, *patch_b, *cls, *pos, *pre_w, *pre_b, *post_w, *post_b;
    vit_layer *layer;
    vc_params ps;
    gr_tensor **hidden; /* last forward's hidden_states (layers + 1) */
};

static gr_status vit_config(gr_vision *v, const gr_model_source *src, vc_cfg *c, double *init_std,
                            double *init_factor, double *lin_std, char *scope, size_t scap)
{
    vc_cfg root = {src->config, src->config_path, ""};
    const char *mt = NULL;
    gr_status st = vc_str(&root, "model_type", NULL, &mt);
    if (st) return st;
    *c = root;
    /* A composite config (CLIPModel "clip", BLIP-2 "blip-2") holds the tower in vision_config. */
    *lin_std = 0;
    if (mt && (strcmp(mt, "clip") == 0 || strcmp(mt, "blip-2") == 0)) {
        /* Blip2PreTrainedModel inits Linear/Conv with the top-level initializer_range and
         * only the embeddings with vision_config's. */
        if (strcmp(mt, "blip-2") == 0 && (st = vc_pos_num(&root, "initializer_range", 0.02, lin_std)))
            return st;
        if ((st = vc_sub(&root, "vision_config", c, scope, scap))) return st;
        if ((st = vc_str(c, "model_type", NULL, &mt))) return st;
        if (!mt && v->kind == VIT_BLIP2) mt = "blip_2_vision_model"; /* Blip2Config's default */
    }
    const char *want = v->kind == VIT_CLIP ? "clip_vision_model" : "blip_2_vision_model";
    if (mt && strcmp(mt, want) != 0)
        return vc_bad(c, "model_type", "'%s' is not a %s config (expected '%s')", mt,
                      v->kind == VIT_CLIP ? "CLIP vision" : "BLIP-2 vision", want);
    int clip = v->kind == VIT_CLIP;
    double eps;
    if ((st = vc_int(c, "hidden_size", clip ? 768 : 1408, 1, &v->dim)) ||
        (st = vc_int(c, "intermediate_size", clip ? 3072 : 6144, 1, &v->inter)) ||
        (st = vc_int(c, "num_hidden_layers", clip ? 12 : 39, 0, &v->layers)) ||
        (st = vc_int(c, "num_attention_heads", clip ? 12 : 16, 1, &v->heads)) ||
        (st = vc_int(c, "image_size", 224, 1, &v->image)) ||
        (st = vc_int(c, "patch_size", clip ? 32 : 14, 1, &v->patch)) ||
        (st = vc_act(c, "hidden_act", clip ? "quick_gelu" : "gelu", &v->act)) ||
        (st = vc_pos_num(c, "layer_norm_eps", clip ? 1e-5 : 1e-6, &eps)) ||
        (st = vc_pos_num(c, "initializer_range", clip ? 0.02 : 1e-10, init_std)))
        return st;
    *init_factor = 1.0;
    if (clip) {
        if ((st = vc_int(c, "num_channels", 3, 1, &v->channels)) ||
            (st = vc_pos_num(c, "initializer_factor", 1.0, init_factor)))
            return st;
        v->qkv_bias = 1;
    } else {
        v->channels = 3; /* Blip2VisionEmbeddings hard-codes 3 input channels */
        if ((st = vc_bool(c, "qkv_bias", 1, &v->qkv_bias))) return st;
    }
    if (v->dim % v->heads)
        return vc_bad(c, "num_attention_heads", "hidden_size %lld is not divisible by %lld heads",
                      (long long)v->dim, (long long)v->heads);
    if (v->patch > v->image)
        return vc_bad(c, "patch_size", "%lld is larger than image_size %lld",
                      (long long)v->patch, (long long)v->image);
    if (*lin_std == 0) *lin_std = *init_std;
    v->eps = (float)eps;
    v->grid = v->image / v->patch; /* the conv floors: trailing pixels are never read */
    return GR_OK;
}

static gr_status vit_open(gr_ctx *ctx, const gr_model_source *src, vit_kind kind, gr_vision **out)
{
    *out = NULL;
    gr_vision *v = calloc(1, sizeof *v);
    if (!v) return gr_fail(GR_ERR_NOMEM, "out of memory (vision tower)");
    v->kind = kind;
    vc_cfg c;
    char scope[64];
    double std, factor, lin;
    gr_status st = vit_config(v, src, &c, &std, &factor, &lin, scope, sizeof scope);
    if (st) { free(v); return st; }

    /* Names are "vision_model.*" (CLIPVisionModel, and every tower inside BLIP-2); a bare
     * Blip2VisionModel checkpoint stores them without that prefix. */
    const char *base = "vision_model.";
    if (src->weights && !vc_has(src, "vision_model.embeddings.patch_embedding.weight") &&
        vc_has(src, "embeddings.patch_embedding.weight"))
        base = "";

    v->layer = calloc((size_t)v->layers ? (size_t)v->layers : 1, sizeof *v->layer);
    v->hidden = calloc((size_t)v->layers + 1, sizeof *v->hidden);
    if (!v->layer || !v->hidden) {
        free(v->layer); free(v->hidden); free(v);
        return gr_fail(GR_ERR_NOMEM, "out of memory (vision tower)");
    }
    int64_t d = v->dim, f = v->inter, p = v->patch, n = v->grid * v->grid + 1;
    int clip = kind == VIT_CLIP;
    char name[256];
    int ok = 1;
#define P(field, ndim, init, sd, ...)                                                          \
    do {                                                                                   \
        if (!ok) break;                                                                    \
        field = vc_param(ctx, src, &v->ps, name, ndim, (int64_t[]){__VA_ARGS__}, init, sd); \
        ok = field != NULL;                                                                \
    } while (0)
#define N(...) snprintf(name, sizeof name, __VA_ARGS__)
    /* HF init: CLIP scales by initializer_factor and width; BLIP-2 uses initializer_range. */
    double emb_std = clip ? std * factor : lin; /* CLIP: patch + positions; BLIP-2: the conv */
    N("%sembeddings.class_embedding", base);
    if (clip) P(v->cls, 1, VC_NORMAL, pow((double)d, -0.5) * factor, d);
    else P(v->cls, 3, VC_TRUNC_NORMAL, std, 1, 1, d);
    N("%sembeddings.patch_embedding.weight", base);
    P(v->patch_w, 4, VC_NORMAL, emb_std, d, v->channels, p, p);
    if (!clip) {
        N("%sembeddings.patch_embedding.bias", base);
        P(v->patch_b, 1, VC_ZEROS, 0, d);
    }
    if (clip) {
        N("%sembeddings.position_embedding.weight", base);
        P(v->pos, 2, VC_NORMAL, emb_std, n, d);
        N("%spre_layrnorm.weight", base);
        P(v->pre_w, 1, VC_ONES, 0, d);
        N("%spre_layrnorm.bias", base);
        P(v->pre_b, 1, VC_ZEROS, 0, d);
    } else {
        N("%sembeddings.position_embedding", base);
        P(v->pos, 3, VC_TRUNC_NORMAL, std, 1, n, d);
    }
    double layers2 = 2.0 * (double)(v->layers ? v->layers : 1);
    double in_std = clip ? pow((double)d, -0.5) * pow(layers2, -0.5) * factor : lin;
    double out_std = clip ? pow((double)d, -0.5) * factor : lin;
    double fc_std = clip ? pow(2.0 * (double)d, -0.5) * factor : lin;
    for (int64_t i = 0; i < v->layers && ok; i++) {
        vit_layer *L = &v->layer[i];
        char lp[160];
        snprintf(lp, sizeof lp, "%sencoder.layers.%lld.", base, (long long)i);
        N("%slayer_norm1.weight", lp); P(L->ln1_w, 1, VC_ONES, 0, d);
        N("%slayer_norm1.bias", lp);   P(L->ln1_b, 1, VC_ZEROS, 0, d);
        if (clip) {
            N("%sself_attn.q_proj.weight", lp);   P(L->q_w, 2, VC_NORMAL, in_std, d, d);
            N("%sself_attn.q_proj.bias", lp);     P(L->q_b, 1, VC_ZEROS, 0, d);
            N("%sself_attn.k_proj.weight", lp);   P(L->k_w, 2, VC_NORMAL, in_std, d, d);
            N("%sself_attn.k_proj.bias", lp);     P(L->k_b, 1, VC_ZEROS, 0, d);
            N("%sself_attn.v_proj.weight", lp);   P(L->v_w, 2, VC_NORMAL, in_std, d, d);
            N("%sself_attn.v_proj.bias", lp);     P(L->v_b, 1, VC_ZEROS, 0, d);
            N("%sself_attn.out_proj.weight", lp); P(L->o_w, 2, VC_NORMAL, out_std, d, d);
            N("%sself_attn.out_proj.bias", lp);   P(L->o_b, 1, VC_ZEROS, 0, d);
        } else {
            N("%sself_attn.qkv.weight", lp); P(L->qkv_w, 2, VC_NORMAL, lin, 3 * d, d);
            if (v->qkv_bias && ok) {
                char qb[200], vb[200];
                snprintf(qb, sizeof qb, "%sself_attn.q_bias", lp);
                snprintf(vb, sizeof vb, "%sself_attn.v_bias", lp);
                N("%sself_attn.qkv.bias", lp);
                if (src->weights && !vc_has(src, name) && vc_has(src, qb) && vc_has(src, vb)) {
                    /* transformers < 4.31 stored q_bias and v_bias; the bias is cat(q, 0, v). */
                    L->q_bias = vc_param(ctx, src, &v->ps, qb, 1, (int64_t[]){d}, VC_ZEROS, 0);
                    L->v_bias = L->q_bias ? vc_param(ctx, src, &v->ps, vb, 1, (int64_t[]){d},
                                                     VC_ZEROS, 0) : NULL;
                    ok = L->v_bias != NULL;
                } else {
                    P(L->qkv_b, 1, VC_ZEROS, 0, 3 * d);
                }
            }
            N("%sself_attn.projection.weight", lp); P(L->o_w, 2, VC_NORMAL, lin, d, d);
            N("%sself_attn.projection.bias", lp);   P(L->o_b, 1, VC_ZEROS, 0, d);
        }
        N("%slayer_norm2.weight", lp); P(L->ln2_w, 1, VC_ONES, 0, d);
        N("%slayer_norm2.bias", lp);   P(L->ln2_b, 1, VC_ZEROS, 0, d);
        N("%smlp.fc1.weight", lp); P(L->fc1_w, 2, VC_NORMAL, fc_std, f, d);
        N("%smlp.fc1.bias", lp);   P(L->fc1_b, 1, VC_ZEROS, 0, f);
        N("%smlp.fc2.weight", lp); P(L->fc2_w, 2, VC_NORMAL, in_std, d, f);
        N("%smlp.fc2.bias", lp);   P(L->fc2_b, 1, VC_ZEROS, 0, d);
    }
    N("%spost_layernorm.weight", base); P(v->post_w, 1, VC_ONES, 0, d);
    N("%spost_layernorm.bias", base);   P(v->post_b, 1, VC_ZEROS, 0, d);
#undef P
#undef N
    if (!ok) {
        gr_status code = v->ps.status ? v->ps.status : GR_ERR_INVALID;
        vc_params_free(ctx, &v->ps);
        free(v->layer); free(v->hidden); free(v);
        return code;
    }
    *out = v;
    return GR_OK;
}

static gr_status clip_open(gr_ctx *ctx, const gr_model_source *src, gr_vision **out)
{
    return vit_open(ctx, src, VIT_CLIP, out);
}

static gr_status blip2_open(gr_ctx *ctx, const gr_model_source *src, gr_vision **out)
{
    return vit_open(ctx, src, VIT_BLIP2, out);
}

static void vit_close(gr_vision *v, gr_ctx *ctx)
{
    if (!v) return;
    vc_params_free(ctx, &v->ps);
    free(v->layer);
    free(v->hidden);
    free(v);
}

static void vit_info(const gr_vision *v, gr_vision_info *out)
{
    gr_vision_info i = {.struct_size = sizeof i, .family = v->kind == VIT_CLIP ? "clip-vit" : "blip2-vit",
                        .hidden_size = v->dim, .input_dim = v->channels, .image_size = v->image,
                        .patch_size = v->patch, .num_tokens = v->grid * v->grid + 1, .num_layers = (int)v->layers};
    lmc_fill(out, &i, sizeof i);
}

static void vit_params(gr_vision *v, gr_param_list *out)
{
    out->items = v->ps.items;
    out->count = v->ps.count;
}

static gr_tensor *vit_layer_forward(gr_vision *v, gr_ctx *ctx, const vit_layer *L, gr_tensor *h)
{
    int64_t d = v->dim, hd = d / v->heads;
    gr_tensor *x = gr_layernorm(ctx, h, L->ln1_w, L->ln1_b, v->eps), *a;
    float scale = (float)pow((double)hd, -0.5);
    if (v->kind == VIT_CLIP) { /* q scaled before q.k */
        a = lmc_mha(ctx, gr_linear(ctx, x, L->q_w, L->q_b), gr_linear(ctx, x, L->k_w, L->k_b),
                    gr_linear(ctx, x, L->v_w, L->v_b), v->heads, scale, 1, NULL, NULL);
    } else {
        gr_tensor *bias = L->qkv_b;
        if (L->q_bias) {
            gr_tensor *zeros = gr_zeros(ctx, GR_F32, 1, (int64_t[]){d});
            bias = gr_concat(ctx, gr_concat(ctx, vc_f32(ctx, L->q_bias), zeros, 0),
                             vc_f32(ctx, L->v_bias), 0);
        }
        gr_tensor *qkv = gr_linear(ctx, x, L->qkv_w, bias); /* [B, T, 3D]: q | k | v */
        a = lmc_mha(ctx, gr_slice(ctx, qkv, 2, 0, d), gr_slice(ctx, qkv, 2, d, d),
                    gr_slice(ctx, qkv, 2, 2 * d, d), v->heads, scale, 0, NULL, NULL);
    }
    h = gr_add(ctx, h, gr_linear(ctx, a, L->o_w, L->o_b));
    x = gr_layernorm(ctx, h, L->ln2_w, L->ln2_b, v->eps);
    x = gr_linear(ctx, gr_act(ctx, v->act, gr_linear(ctx, x, L->fc1_w, L->fc1_b)), L->fc2_w, L->fc2_b);
    return gr_add(ctx, h, x);
}

static gr_status forward(gr_vision *v, gr_ctx *ctx, gr_tensor *input, int want_hidden_states,
                         gr_vision_outputs *out)
{
    if (gr_ctx_status(ctx)) return gr_ctx_status(ctx);
    if (!input || input->ndim != 4 || input->shape[1] != v->channels ||
        input->shape[2] != v->image || input->shape[3] != v->image) {
        char got[96] = "NULL";
        if (input) gr_shape_str(input, got, sizeof got);
        return gr_ctx_fail(ctx, GR_ERR_SHAPE,
                           "%s: pixel_values %s, expected [batch, %lld, %lld, %lld] (image_size)",
                           v->kind == VIT_CLIP ? "clip-vit" : "blip2-vit", got,
                           (long long)v->channels, (long long)v->image, (long long)v->image);
    }
    int64_t b = input->shape[0], d = v->dim, p = v->patch, n = v->grid * v->grid;
    gr_tensor *x = vc_f32(ctx, input);
    if (v->grid * p != v->image) { /* the strided conv never reads the trailing pixels */
        x = gr_slice(ctx, x, 2, 0, v->grid * p);
        x = gr_slice(ctx, x, 3, 0, v->grid * p);
    }
    gr_tensor *patches = gr_patchify(ctx, x, (int)p); /* [B, N, C*p*p] */
    gr_tensor *w = gr_reshape(ctx, v->patch_w, 2, (int64_t[]){d, v->channels * p * p});
    gr_tensor *emb = gr_linear(ctx, patches, w, v->patch_b);
    gr_tensor *cls = gr_reshape(ctx, vc_f32(ctx, v->cls), 3, (int64_t[]){1, 1, d});
    gr_tensor *h = gr_concat(ctx, gr_repeat_interleave(ctx, cls, 0, (int)b), emb, 1);
    gr_tensor *pos = gr_reshape(ctx, vc_f32(ctx, v->pos), 2, (int64_t[]){n + 1, d});
    h = gr_add(ctx, h, pos);
    if (v->kind == VIT_CLIP) h = gr_layernorm(ctx, h, v->pre_w, v->pre_b, v->eps);
    for (int64_t i = 0; i < v->layers; i++) {
        v->hidden[i] = h;
        h = vit_layer_forward(v, ctx, &v->layer[i], h);
    }
    v->hidden[v->layers] = h;
    gr_tensor *last = v->kind == VIT_BLIP2 ? gr_layernorm(ctx, h, v->post_w, v->post_b, v->eps) : h;
    gr_tensor *cls_row = gr_reshape(ctx, gr_slice(ctx, last, 1, 0, 1), 2, (int64_t[]){b, d});
    gr_tensor *pooled = gr_layernorm(ctx, cls_row, v->post_w, v->post_b, v->eps);
    gr_status st = gr_ctx_status(ctx);
    if (st) return gr_fail_context(st, "%s forward", v->kind == VIT_CLIP ? "clip-vit" : "blip2-vit");
    out->last_hidden_state = last;
    out->pooler_output = pooled;
    if (want_hidden_states) {
        out->hidden_states = v->hidden;
        out->num_hidden_states = (int)v->layers + 1;
    }
    return GR_OK;
}

static gr_status vit_forward(gr_vision *v, gr_ctx *ctx, gr_tensor *input, int want_hidden_states,
                             gr_vision_outputs *out)
{
    gr_vision_outputs o = {.struct_size = sizeof o};
    gr_status st = forward(v, ctx, input, want_hidden_states, &o);
    lmc_fill(out, &o, sizeof o);
    return st;
}

const gr_vision_iface vit_clip_iface = {
    .struct_size = sizeof(gr_vision_iface),
    .open = clip_open,
    .close = vit_close,
    .info = vit_info,
    .params = vit_params,
    .forward = vit_forward,
};

const gr_vision_iface vit_blip2_iface = {
    .struct_size = sizeof(gr_vision_iface),
    .open = blip2_open,
    .close = vit_close,
    .info = vit_info,
    .params = vit_params,
    .forward = vit_forward,
};
