/* The analytic FLOP model: matmul FLOPs of graft's model plugins, from config.json dimensions.
 *
 * Counts are exactly what the core counts in gr_ctx_flops (2*m*n*k per matmul kernel), split the
 * same way: forward matmuls are "trainable" when an operand needs a gradient, else "frozen";
 * backward FLOPs are "input" (gradients of activations: frozen parts pass dL/dx through) or
 * "param" (weight gradients of trainable parameters). Element-wise work, norms, softmax and the
 * loss are not counted (they are O(tokens * width), matmuls are O(tokens * width^2)).
 *
 * The model follows gradient flow exactly: a linear's dX is computed only when its input needs a
 * gradient, dW only when its weight is trainable; an attention matmul propagates to each operand
 * that needs it. So the same pass function gives inference, a frozen LM under a trainable soft
 * prompt (backward to inputs only), a trainable translator inside frozen layers, and full
 * fine-tuning. tests/plan checks every case against the measured counts of the real plugins. */
#ifndef GRAFT_CORE_TRANSFER_FLOPS_H
#define GRAFT_CORE_TRANSFER_FLOPS_H

#include <jansson.h>
#include <stdint.h>

#include "graft/status.h"

typedef struct gr_flop_count {
    double forward_frozen, forward_trainable;
    double backward_input, backward_param;
} gr_flop_count;

double gr_flop_total(const gr_flop_count *c);
double gr_flop_forward(const gr_flop_count *c);
/* acc += times * x */
void gr_flop_add(gr_flop_count *acc, const gr_flop_count *x, double times);

/* ---------------------------------------------------------------- shapes ---- */

typedef enum gr_lm_arch { GR_LM_OPT = 1, GR_LM_LLAMA = 2, GR_LM_T5 = 3 } gr_lm_arch;

typedef struct gr_lm_shape {
    gr_lm_arch arch;
    int64_t d;            /* hidden size (T5: d_model) */
    int64_t heads, kv_heads, head_dim;
    int64_t ffn;          /* intermediate size */
    int ffn_mats;         /* 2 (fc1/fc2) or 3 (gated) */
    int64_t vocab;
    int layers;           /* decoder layers */
    int enc_layers;       /* T5 */
    int64_t embed_dim;    /* OPT word_embed_proj_dim (project_in/out when != d); others d */
    int qkv_norm_weight;  /* the norm in front of q/k/v has weights (so a trainable layer's q/k/v
                             inputs need gradients even when the layer input does not) */
    int tied;             /* the head is the embedding table */
} gr_lm_shape;

typedef struct gr_vit_shape {
    int64_t d, heads, ffn, layers, image, patch, channels;
} gr_vit_shape;

typedef struct gr_qformer_shape {
    int64_t d, heads, ffn, layers, cross_freq, enc_dim, queries;
} gr_qformer_shape;

/* From a family config (model_type opt / llama / t5), with HF's defaults for absent keys. */
gr_status gr_lm_shape_from_config(const json_t *cfg, const char *path, gr_lm_shape *out);
/* clip_vision_model / blip_2_vision_model configs. */
gr_status gr_vit_shape_from_config(const json_t *cfg, const char *path, gr_vit_shape *out);
/* blip_2_qformer config; enc_dim and queries come from the caller (BLIP-2 sets them at the top
 * level: vision hidden size, num_query_tokens). */
gr_status gr_qformer_shape_from_config(const json_t *cfg, const char *path, int64_t enc_dim, int64_t queries,
                                       gr_qformer_shape *out);
/* Reads DIR/config.json as an LM config. */
gr_status gr_lm_shape_from_dir(const char *dir, gr_lm_shape *out);
/* Parameters of the LM (for reports; embeddings and head counted once when tied is unknown). */
double gr_lm_shape_params(const gr_lm_shape *s);

/* ---------------------------------------------------------------- passes ---- */

typedef struct gr_lm_pass {
    int64_t batch;
    int64_t prefix;        /* soft-prompt rows in front of the text (T5: of the encoder input) */
    int64_t seq;           /* text tokens (decoder-only) / encoder text tokens (T5) */
    int64_t label_len;     /* T5: decoder tokens */
    int prefix_grad;       /* the soft prompt needs a gradient (a trainable VPG / projector) */
    const int *layers;     /* decoder layers run, in order (set_layers); NULL: all */
    int num_layers;
    const unsigned char *train_layer; /* per entry of the run order: trainable (NULL: none) */
    int train_all;         /* every parameter trainable (full fine-tuning; embeddings and head) */
    int want_loss;         /* a backward pass runs (else forward only) */
} gr_lm_pass;

/* Forward (+ backward when want_loss and anything needs a gradient) of one LM call. */
void gr_flops_lm(const gr_lm_shape *s, const gr_lm_pass *p, gr_flop_count *out);

/* Vision tower on `batch` images; the last `train_last` layers trainable (0: frozen, forward
 * only). backward: a loss is backpropagated (only matters with train_last > 0). */
void gr_flops_vit(const gr_vit_shape *s, int64_t batch, int train_last, int backward, gr_flop_count *out);
/* Q-Former over encoder features of `enc_tokens` rows; input_grad: the features need gradients;
 * trainable: the Q-Former's parameters (and query tokens) are trained. */
void gr_flops_qformer(const gr_qformer_shape *s, int64_t batch, int64_t enc_tokens, int input_grad, int trainable,
                      int backward, gr_flop_count *out);
/* Projector on `rows` rows: linear in -> out, or mlp in -> hidden -> out. */
void gr_flops_projector(int64_t rows, int64_t in, int64_t hidden, int64_t out, int mlp, int input_grad,
                        int trainable, int backward, gr_flop_count *count);

#endif
