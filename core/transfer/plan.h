/* The cost planner behind `graft plan` (docs/planning.md): before any training, the FLOPs of
 * scratch vs TaS/TaT vs surrogate grafting for given models, data size and epochs, from the
 * analytic model of flops.h (exact for graft's plugins), and a time estimate from a quick
 * measurement of the backend's matmul speed on the target LM's shapes.
 *
 * Every strategy is a list of stages; a stage is `epochs` passes over `samples` examples of one
 * training step on one VLM with some parts trainable. Costs are per sample and summed; the
 * converter of TaS/TaT (host BLAS, text only) and the source VPG's own training (VPGTrans reuses
 * it: reported separately, "including the source") are extra lines. */
#ifndef GRAFT_CORE_TRANSFER_PLAN_H
#define GRAFT_CORE_TRANSFER_PLAN_H

#include "graft/backend.h"
#include "transfer/flops.h"
#include "transfer/surrogate.h"

/* The shapes of one VLM: optional tower, optional Q-Former, projector, LM. */
typedef struct gr_plan_vlm {
    int has_vision, has_qformer;
    gr_vit_shape vit;
    gr_qformer_shape qformer;
    int mlp;                   /* projector kind */
    int64_t proj_hidden;       /* mlp hidden width (0: out) */
    gr_lm_shape lm;
} gr_plan_vlm;

/* From a BLIP-2 directory (blip2_dir) or parts: vision_dir (clip/blip-2 tower config), qformer_dir
 * (blip_2_qformer config, num_query_tokens there or 32), lm_dir. Empty/NULL parts are absent
 * (the LM is required). */
gr_status gr_plan_vlm_open(const char *blip2_dir, const char *vision_dir, const char *qformer_dir,
                           const char *lm_dir, int mlp, gr_plan_vlm *out);
/* The same VLM with the LM reduced to a surrogate layout (layers and their count). */
void gr_plan_vlm_surrogate(const gr_plan_vlm *target, const gr_surrogate_layout *layout, gr_plan_vlm *out);

/* What a training step trains. */
typedef struct gr_plan_step {
    int vpg;                   /* Q-Former + query tokens (or, without a Q-Former, nothing) */
    int projector;
    int vision_last;           /* last N tower layers */
    const gr_surrogate_layout *layout; /* LM run as a surrogate (NULL: all layers) */
    int train_translators;     /* the layout's translators are trainable */
    int train_lm;              /* every LM parameter (decoder fine-tuning) */
} gr_plan_step;

/* FLOPs of one training step on one sample with `text_tokens` tokens (tower forward excluded
 * when cached_features: it is paid once per image, see gr_plan_tower). */
void gr_plan_step_flops(const gr_plan_vlm *v, const gr_plan_step *st, int64_t text_tokens, int cached_features,
                        gr_flop_count *out);
/* Forward of the frozen tower on one image (0 without a tower). */
double gr_plan_tower(const gr_plan_vlm *v);

typedef struct gr_plan_inputs {
    gr_plan_vlm target;
    int has_source;
    gr_plan_vlm source;        /* TaS/TaT */
    int same_family;           /* converter epochs 5 (same tokenizer) or 8 */
    int n_ranges;
    const gr_surrogate_range *ranges; /* surrogate (n_ranges 0: no surrogate line) */
    int64_t samples;           /* training examples per epoch */
    int64_t text_tokens;       /* tokens per example (caption + BOS/EOS) */
    int cached_features;       /* frozen tower outputs computed once */
    int epochs;                /* scratch epochs */
    int source_epochs;         /* the source VPG's own training (0: not counted) */
    int tas_stage2_epochs;     /* after the 1-epoch warm-up */
    int sur_stage1_epochs, sur_stage2_epochs, sur_stage3_epochs;
    int sur_encoder_layers;    /* tower layers trained in surrogate stage 2 (paper: 8 of 24) */
} gr_plan_inputs;

#define GR_PLAN_MAX_LINES 24
typedef struct gr_plan_line {
    char strategy[16];         /* "scratch", "tas", "tat", "surrogate" */
    char stage[64];
    double epochs;
    gr_flop_count per_sample;  /* one step on one sample */
    double flops;              /* stage total */
} gr_plan_line;

typedef struct gr_plan {
    gr_plan_line line[GR_PLAN_MAX_LINES];
    int n;
    double total_scratch, total_transfer, total_transfer_with_source, total_surrogate;
    double source_vpg;         /* the source VPG's training (VPGTrans reuses it) */
    int surrogate_layers;      /* of the target's */
} gr_plan;

gr_status gr_plan_compute(const gr_plan_inputs *in, gr_plan *out);

/* Matmul speed of the backend on the LM's shapes (q/k/v/o, feed-forward, rows = `rows`), in
 * FLOP/s, timed for at least min_seconds. */
gr_status gr_plan_measure(gr_backend *be, const gr_lm_shape *lm, int64_t rows, double min_seconds, double *flops_per_s);

#endif
