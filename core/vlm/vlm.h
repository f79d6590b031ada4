/* A vision-language model assembled from plugins: image encoder -> optional Q-Former ->
 * projector -> language model. The projected queries (the soft prompt) go in front of the text:
 * before the token embeddings of a decoder-only LM, at the front of the encoder input of T5.
 *
 * Open it from one HF BLIP-2 directory (model_type "blip-2": HF tensor names and prefixes), or
 * assemble it from separate parts (VPGTrans: a trained encoder + Q-Former, a fresh projector,
 * another LM). This is what the training engine drives: forward with pixels + text + labels
 * gives the soft prompt, the logits and the LM loss; gr_backward on the loss fills the
 * gradients of whatever parameters were made trainable.
 *
 * Parameter names are those of Blip2ForConditionalGeneration: vision_model.*, query_tokens,
 * qformer.*, language_projection.* (the projector, whatever its plugin), language_model.*. */
#ifndef GRAFT_CORE_VLM_H
#define GRAFT_CORE_VLM_H

#include <jansson.h>

#include "graft/model.h"

typedef struct gr_vlm gr_vlm;

/* One part: the plugin (by name) and where its weights come from (src.weights NULL: random
 * init, as HF initialises a fresh module, from src.seed). src.config is the config the plugin
 * reads; the strings and objects must outlive gr_vlm_open_parts only (plugins copy what they
 * keep), weights must outlive the model. */
typedef struct gr_vlm_part {
    const char *plugin;             /* NULL: no such part (only the Q-Former is optional) */
    gr_model_source src;
} gr_vlm_part;

typedef struct gr_vlm_parts {
    uint32_t struct_size;
    gr_vlm_part vision;             /* "clip-vit", "blip2-vit" */
    gr_vlm_part qformer;            /* "qformer" or plugin NULL (encoder features go straight
                                       to the projector) */
    gr_vlm_part projector;          /* "linear", "mlp" */
    gr_projector_spec projector_spec; /* in_dim/out_dim 0: derived (features -> LM embed_dim);
                                       mlp: hidden_dim 0 = out_dim, act (GELU by default) */
    gr_vlm_part lm;                 /* "opt", "t5", "llama" */
} gr_vlm_parts;

/* Opens a BLIP-2 directory: DIR/config.json (model_type "blip-2") and its weights. The model
 * owns the config and the weights. */
gr_status gr_vlm_open_dir(gr_ctx *ctx, const char *dir, gr_vlm **out);
/* Same from an already parsed config and opened checkpoint (both must outlive the model). */
gr_status gr_vlm_open_blip2(gr_ctx *ctx, const char *dir, const json_t *config,
                            const char *config_path, const gr_weights *weights, gr_vlm **out);
gr_status gr_vlm_open_parts(gr_ctx *ctx, const gr_vlm_parts *parts, gr_vlm **out);
void gr_vlm_close(gr_vlm *m, gr_ctx *ctx);

typedef struct gr_vlm_info {
    uint32_t struct_size;
    gr_vision_info vision;
    gr_vision_info qformer;         /* zeroed without a Q-Former */
    int has_qformer;
    gr_lm_info lm;
    int64_t prompt_len;             /* soft-prompt rows per image (queries, or encoder tokens) */
    int64_t prompt_dim;             /* = lm.embed_dim */
    const char *vision_plugin, *qformer_plugin, *projector_plugin, *lm_plugin;
} gr_vlm_info;
void gr_vlm_get_info(const gr_vlm *m, gr_vlm_info *out);

/* Parameters with their full names, in a stable order: vision, Q-Former, projector, LM. */
int gr_vlm_param_count(const gr_vlm *m);
gr_tensor *gr_vlm_param_at(const gr_vlm *m, int i, const char **name);
gr_tensor *gr_vlm_param_find(const gr_vlm *m, const char *name);
/* Sets trainable on every parameter whose full name matches the fnmatch(3) pattern
 * ("qformer.*", "query_tokens", "language_projection.*"); returns how many matched. */
int gr_vlm_set_trainable(gr_vlm *m, const char *pattern, int trainable);

/* The parts, for callers that drive one directly (generation, the surrogate's set_layers). */
gr_lm *gr_vlm_lm(gr_vlm *m);
const gr_lm_iface *gr_vlm_lm_iface(const gr_vlm *m);

typedef struct gr_vlm_inputs {
    uint32_t struct_size;
    gr_tensor *pixel_values;        /* [B, 3, H, W] F32, or NULL when image_embeds is given */
    gr_tensor *image_embeds;        /* precomputed encoder output [B, N, D] (frozen tower) */
    /* Text as gr_lm_inputs takes it (ids [B, seq]; mask; labels: decoder-only [B, seq]
     * aligned with the text, T5 decoder targets [B, label_len]). ids NULL: image only (the
     * forward stops after the soft prompt). */
    int64_t seq;
    const int32_t *ids;
    const int32_t *mask;
    const int32_t *labels;
    int64_t label_len;
    /* Record the loss gradients of the stage outputs: after gr_backward, read them with
     * gr_grad(out.image_embeds_tap) and gr_grad(out.prompt_tap) (an exact +0 leaf is added at
     * each stage, so its gradient is the stage's). */
    int tap_stage_grads;
} gr_vlm_inputs;

typedef struct gr_vlm_outputs {
    uint32_t struct_size;
    gr_tensor *image_embeds;        /* encoder last_hidden_state (blip2-vit: post-LN) */
    gr_tensor *vision_pooler;       /* encoder pooler_output (NULL if image_embeds was given) */
    gr_tensor *query_output;        /* Q-Former last_hidden_state (NULL without Q-Former) */
    gr_tensor *soft_prompt;         /* projected: HF language_model_inputs [B, P, embed_dim] */
    gr_lm_outputs lm;               /* logits, loss, last_hidden_state, ... */
    gr_tensor *image_embeds_tap, *prompt_tap; /* with tap_stage_grads */
} gr_vlm_outputs;

/* Runs encoder -> Q-Former -> projector -> LM. Outputs are transient (gr_ctx_reset). */
gr_status gr_vlm_forward(gr_vlm *m, gr_ctx *ctx, const gr_vlm_inputs *in, gr_vlm_outputs *out);

#endif
