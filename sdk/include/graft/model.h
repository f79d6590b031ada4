/* graft — interfaces of the model plugin kinds: language model, vision encoder, projector.
 *
 * A model plugin reads a Hugging Face config (a jansson object) and weights (gr_weights, with
 * a name prefix such as "language_model." inside a BLIP-2 checkpoint), builds its parameters
 * as gr_tensors in a gr_ctx, and implements forward passes with the operations of ops.h. The
 * core derives every backward pass. Parameters are frozen by default; the engine makes any of
 * them trainable by name (HF names, without the source prefix).
 *
 * Every interface struct starts with struct_size and only grows at the end (see plugin.h). */
#ifndef GRAFT_MODEL_H
#define GRAFT_MODEL_H

#include "graft/ops.h"
#include "graft/weights.h"

#ifdef __cplusplus
extern "C" {
#endif

struct json_t; /* jansson */

/* Where a model comes from. With weights == NULL the plugin initialises its parameters
 * randomly as HF does for that family (seeded), e.g. a fresh projector or an LM to pretrain. */
typedef struct gr_model_source {
    uint32_t struct_size;
    const char *dir;                 /* model directory (for messages and side files) */
    const struct json_t *config;     /* the family's config object */
    const char *config_path;         /* file the config came from (for messages) */
    const gr_weights *weights;       /* NULL: random init */
    const char *prefix;              /* tensor-name prefix inside `weights` ("" if none) */
    uint64_t seed;                   /* for random init */
} gr_model_source;

/* A parameter list a plugin exposes: HF names (without prefix), in a stable order. */
typedef struct gr_param_list {
    gr_tensor **items;
    int count;
} gr_param_list;

/* ------------------------------------------------------------- language model ---- */

typedef struct gr_lm gr_lm;        /* plugin-defined instance */
typedef struct gr_lm_cache gr_lm_cache;

typedef struct gr_lm_info {
    uint32_t struct_size;
    const char *family;              /* "opt", "t5", "llama" */
    int64_t hidden_size;             /* d_model */
    int64_t embed_dim;               /* width of token embeddings and of a soft prompt
                                        (OPT: word_embed_proj_dim; others: hidden_size) */
    int64_t vocab_size;              /* rows of the embedding table */
    int num_layers;                  /* decoder layers (T5: decoder stack) */
    int num_encoder_layers;          /* T5 only, else 0 */
    int is_encoder_decoder;
    int32_t bos_id, eos_id, pad_id, decoder_start_id; /* -1 when the family has none */
} gr_lm_info;

typedef struct gr_lm_inputs {
    uint32_t struct_size;
    int64_t batch;
    /* Text (decoder-only: the sequence after the prefix; T5: the encoder text). Either ids
     * (host, [batch, seq]) or inputs_embeds ([batch, seq, embed_dim]) is given. */
    int64_t seq;
    const int32_t *ids;
    gr_tensor *inputs_embeds;
    const int32_t *mask;             /* [batch, seq], 1 = real token; NULL = all real */
    /* Soft prompt put in front of the text (decoder-only: before the token embeddings;
     * T5: at the front of the encoder input), always attended. May be NULL. */
    gr_tensor *prefix;               /* [batch, P, embed_dim] */
    /* Labels. Decoder-only: [batch, seq] aligned with the text (-100 ignored; shifted inside,
     * prefix positions ignored). T5: decoder targets [batch, label_len]; the decoder reads
     * them shifted right (decoder_start_id, -100 -> pad). NULL: no loss. */
    const int32_t *labels;
    int64_t label_len;
    int want_hidden_states;          /* fill outputs.hidden_states */
} gr_lm_inputs;

typedef struct gr_lm_outputs {
    uint32_t struct_size;
    gr_tensor *logits;               /* [batch, positions, vocab] (decoder positions) */
    gr_tensor *loss;                 /* scalar, HF's loss, or NULL without labels */
    gr_tensor *last_hidden_state;    /* decoder output after final norm (/ project_out) */
    gr_tensor *encoder_last_hidden_state; /* T5 */
    gr_tensor **hidden_states;       /* HF output_hidden_states: decoder stack (L+1 entries) */
    int num_hidden_states;
    gr_tensor **encoder_hidden_states; /* T5 encoder stack */
    int num_encoder_hidden_states;
} gr_lm_outputs;

typedef struct gr_lm_iface {
    uint32_t struct_size;
    gr_status (*open)(gr_ctx *ctx, const gr_model_source *src, gr_lm **out);
    void (*close)(gr_lm *lm, gr_ctx *ctx);
    void (*info)(const gr_lm *lm, gr_lm_info *out);
    /* All parameters, HF names without prefix. */
    void (*params)(gr_lm *lm, gr_param_list *out);
    /* The input embedding table [vocab, embed_dim] (stored dtype). */
    gr_tensor *(*input_embeddings)(gr_lm *lm);
    /* Forward (recorded on the tape when grads are enabled). Output tensors are transient. */
    gr_status (*forward)(gr_lm *lm, gr_ctx *ctx, const gr_lm_inputs *in, gr_lm_outputs *out);
    /* Run only these decoder layers, in this order (the surrogate keeps some layers and a
     * translator); NULL/0 restores all. Indices are into the loaded stack. */
    gr_status (*set_layers)(gr_lm *lm, const int *layers, int count);
    /* Incremental decoding with a KV cache. begin() consumes the prompt (prefix + text, left
     * padded in batches) and returns the logits of the last position [batch, vocab];
     * step() appends one token per row and returns the next logits. reorder() gathers cache
     * rows (beam search). Caches hold their own device memory until cache_free(). */
    gr_status (*generate_begin)(gr_lm *lm, gr_ctx *ctx, const gr_lm_inputs *prompt,
                                gr_lm_cache **cache, gr_tensor **logits);
    gr_status (*generate_step)(gr_lm *lm, gr_ctx *ctx, gr_lm_cache *cache,
                               const int32_t *next_ids, gr_tensor **logits);
    gr_status (*cache_reorder)(gr_lm *lm, gr_ctx *ctx, gr_lm_cache *cache,
                               const int32_t *rows, int64_t count);
    void (*cache_free)(gr_lm *lm, gr_ctx *ctx, gr_lm_cache *cache);
} gr_lm_iface;

/* ------------------------------------------------------------- vision encoder ---- */
/* Image towers (clip-vit, blip2-vit) take pixels [B, 3, H, W]; the Q-Former (qformer) takes
 * another encoder's features [B, N, enc_dim] and returns its query outputs [B, Q, hidden]. */

typedef struct gr_vision gr_vision;

typedef struct gr_vision_info {
    uint32_t struct_size;
    const char *family;              /* "clip-vit", "blip2-vit", "qformer" */
    int64_t hidden_size;             /* width of last_hidden_state */
    int64_t input_dim;               /* qformer: encoder_hidden_size; towers: channels (3) */
    int64_t image_size, patch_size;  /* towers */
    int64_t num_tokens;              /* rows of last_hidden_state (towers: patches + 1; qformer: Q) */
    int num_layers;
} gr_vision_info;

typedef struct gr_vision_outputs {
    uint32_t struct_size;
    gr_tensor *last_hidden_state;    /* what the next module consumes (blip2-vit: post-LN) */
    gr_tensor *pooler_output;        /* towers: post_layernorm(CLS); qformer: NULL */
    gr_tensor **hidden_states;       /* HF output_hidden_states (layers + 1) */
    int num_hidden_states;
} gr_vision_outputs;

typedef struct gr_vision_iface {
    uint32_t struct_size;
    gr_status (*open)(gr_ctx *ctx, const gr_model_source *src, gr_vision **out);
    void (*close)(gr_vision *v, gr_ctx *ctx);
    void (*info)(const gr_vision *v, gr_vision_info *out);
    void (*params)(gr_vision *v, gr_param_list *out);
    gr_status (*forward)(gr_vision *v, gr_ctx *ctx, gr_tensor *input, int want_hidden_states,
                         gr_vision_outputs *out);
} gr_vision_iface;

/* ------------------------------------------------------------------ projector ---- */

typedef struct gr_projector gr_projector;

typedef struct gr_projector_spec {
    uint32_t struct_size;
    int64_t in_dim, out_dim;
    int64_t hidden_dim;              /* mlp only (0: out_dim) */
    gr_unary_op act;                 /* mlp only */
} gr_projector_spec;

typedef struct gr_projector_iface {
    uint32_t struct_size;
    /* With src->weights, reads "<prefix>weight"/"<prefix>bias" style names (linear:
     * language_projection.*); otherwise random init from spec. */
    gr_status (*open)(gr_ctx *ctx, const gr_model_source *src, const gr_projector_spec *spec,
                      gr_projector **out);
    void (*close)(gr_projector *p, gr_ctx *ctx);
    void (*params)(gr_projector *p, gr_param_list *out);
    gr_status (*forward)(gr_projector *p, gr_ctx *ctx, gr_tensor *x, gr_tensor **y);
} gr_projector_iface;

#ifdef __cplusplus
}
#endif
#endif
