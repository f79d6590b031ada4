/* graft — the training engine as strategy plugins see it.
 *
 * A strategy (scratch, inherit, TaS, TaT, surrogate) is a recipe: it opens the VLMs it needs
 * from the configuration's model roles, decides what is trainable and at which learning rates,
 * and runs named stages. The engine does the rest: data, batches, the trainer (AdamW groups,
 * schedules, accumulation, clipping, non-finite guard), FLOP accounting, the run log,
 * checkpoints, exact resume and evaluation.
 *
 * Resume: `graft train --resume RUN_DIR` re-runs the strategy from the start on an engine that
 * knows which stages are finished. gr_engine_run_stage() of a finished stage only restores its
 * result (the trained tensors are in the checkpoint, loaded when the model is opened); the
 * stage in progress continues from its checkpoint. A strategy therefore runs the same calls in
 * the same order and must not skip or reorder stages depending on anything but configuration.
 *
 * Model roles are configuration sections `model.<role>.*` ("target", "source"): a BLIP-2 HF
 * directory, or parts (vision tower, Q-Former, projector, language model), each a directory
 * with config.json and optional weights (absent: random init from model.<role>.seed). */
#ifndef GRAFT_ENGINE_H
#define GRAFT_ENGINE_H

#include <stdint.h>

#include "graft/config.h"
#include "graft/ops.h"
#include "graft/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gr_engine gr_engine;
typedef struct gr_engine_model gr_engine_model;

/* The run's resolved configuration (strategy keys included). */
const gr_config *gr_engine_config(const gr_engine *e);
/* The run directory. */
const char *gr_engine_run_dir(const gr_engine *e);

/* Opens the VLM of a configured role ("target", "source"). The engine owns it (freed with the
 * engine); opening a role twice returns the same model. */
gr_status gr_engine_open_model(gr_engine *e, const char *role, gr_engine_model **out);

/* Parameters by full HF name (vision_model.*, query_tokens, qformer.*, language_projection.*,
 * language_model.*). */
int gr_engine_model_param_count(const gr_engine_model *m);
gr_tensor *gr_engine_model_param(const gr_engine_model *m, int i, const char **name);
gr_tensor *gr_engine_model_find(const gr_engine_model *m, const char *name);
gr_ctx *gr_engine_model_ctx(const gr_engine_model *m);

/* Copies every parameter whose name matches the fnmatch(3) pattern from one model to another
 * (shapes must match; e.g. a VPG inherited from the source VLM). Returns the count in *copied. */
gr_status gr_engine_copy_params(gr_engine_model *dst, const gr_engine_model *src, const char *pattern,
                                int *copied);
/* Loads matching parameters from a safetensors file or a run directory (its latest
 * checkpoint's trainable tensors); names absent from the file are an error. */
gr_status gr_engine_load_params(gr_engine_model *m, const char *path, const char *pattern, int *loaded);

/* ------------------------------------------------------------------------- stages ---- */

typedef struct gr_stage_spec {
    uint32_t struct_size;
    const char *name;                /* unique within the run ("scratch", "warmup", "finetune") */
    const char *task;                /* "caption" or "vqa" */
    /* fnmatch patterns of trainable tensors; every other tensor is frozen for the stage */
    const char *const *trainable;
    int n_trainable;
    /* learning-rate multipliers: the first matching pattern gives a tensor's multiplier (1) */
    const char *const *lr_mult_patterns;
    const double *lr_mults;
    int n_lr_mults;
    const char *schedule;            /* "constant" or "cosine" */
    double lr, min_lr, warmup_lr;
    int64_t warmup_steps;
    int per_epoch;                   /* cosine stepped per epoch (LAVIS) */
    double weight_decay, grad_clip;
    double beta1, beta2, eps;
    int accum;
    int64_t epochs, steps;           /* steps > 0 wins */
    int64_t batch_size;
    int64_t eval_every_steps;
    int eval_every_epoch;
    int eval_at_start;
} gr_stage_spec;

/* A stage spec from the `train.*` keys (the defaults every strategy starts from). The strings
 * live as long as the engine. */
void gr_engine_stage_defaults(const gr_engine *e, gr_stage_spec *spec);

typedef struct gr_stage_result {
    uint32_t struct_size;
    int64_t steps;                   /* of this stage */
    double epochs;
    double last_loss;
    double flops;                    /* FLOPs of this stage (training steps) */
    double flops_total;              /* of the run so far */
    int n_metrics;                   /* last evaluation */
    const char *metric_names[16];
    double metric_values[16];
} gr_stage_result;

/* Runs (or, on resume, restores / continues) a stage on a model. GR_ERR_INTERRUPTED: a stop was
 * requested and the state is saved; the strategy must return it unchanged. */
gr_status gr_engine_run_stage(gr_engine *e, gr_engine_model *m, const gr_stage_spec *spec,
                              gr_stage_result *res);

/* Evaluates a model on the configured evaluation split ("val" or "test") with the task's
 * metrics, logs the record at the current step and fills res (n_metrics, names, values). */
gr_status gr_engine_evaluate(gr_engine *e, gr_engine_model *m, const char *task, const char *split,
                             gr_stage_result *res);

/* report.json of the run: numbers by dotted path ("speedup.epochs"). Written at the end. */
gr_status gr_engine_report_number(gr_engine *e, const char *path, double value);
gr_status gr_engine_report_string(gr_engine *e, const char *path, const char *value);
/* A free-form event in the run log. */
gr_status gr_engine_event(gr_engine *e, const char *event, const char *message);

#ifdef __cplusplus
}
#endif
#endif
