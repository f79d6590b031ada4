/* The generic trainer: one training stage over any task (VLM captioning / VQA, LM pretraining).
 *
 * A task produces micro-batch losses and (optionally) evaluations; the trainer owns everything
 * else: AdamW in parameter groups (train/optimizer.h), the learning-rate schedule
 * (train/schedule.h), gradient accumulation, global-norm clipping, the non-finite guard, FLOP
 * accounting per step (gr_ctx_flops, split frozen/trainable), the run log (run/runlog.h), the
 * progress display, periodic evaluation, checkpoints (train/checkpoint.h), exact resume and a
 * clean stop on SIGINT/SIGTERM.
 *
 * Determinism and exact resume. The trainer keeps no random state. A task must make batch
 * `index` of epoch `epoch` a pure function of (its seed, epoch, index) — data order from
 * (seed, epoch), per-sample randomness from (seed, epoch, sample id) — so that a checkpoint
 * needs only the position (step, epoch, next micro-batch) besides tensors and optimizer
 * moments. Resuming from a checkpoint then reproduces the uninterrupted run bit for bit on the
 * same backend and thread count (tests/train kills a run with SIGKILL and compares curves).
 *
 * Steps. One optimizer step consumes `accum` consecutive micro-batches of one epoch (the last
 * step of an epoch may take fewer; the gradient is averaged over the micro-batches it took).
 * `step` counts steps of this stage; the run log is written with `step_offset + step` so
 * several stages share one log with steps that keep increasing, and with fractional epochs
 * `epoch_offset + epoch + done/batches`.
 *
 * Typical use (a task `t` over a model whose trainable tensors are `params`):
 *
 *     gr_trainer_config tc;
 *     gr_trainer_config_defaults(&tc);
 *     tc.stage = "scratch"; tc.params = params; tc.count = n; tc.max_epochs = 10;
 *     tc.lr.kind = GR_LR_COSINE; tc.lr.base_lr = 1e-4; tc.lr.min_lr = 1e-5; ...
 *     gr_trainer *tr;
 *     gr_trainer_create(ctx, &tc, &t, log, &tr);
 *     if (resuming) gr_trainer_restore(tr, ckpt_dir);   // tensors, moments, position
 *     gr_status s = gr_trainer_run(tr, &result);          // GR_ERR_INTERRUPTED: saved, stop
 *     gr_trainer_free(tr);
 */
#ifndef GRAFT_CORE_TRAINER_H
#define GRAFT_CORE_TRAINER_H

#include <stdint.h>

#include "graft/ops.h"
#include "run/progress.h"
#include "run/runlog.h"
#include "train/optimizer.h"
#include "train/schedule.h"

/* ------------------------------------------------------------------------------ task ---- */

/* What one micro-batch produced. */
typedef struct gr_task_loss {
    gr_tensor *loss;   /* scalar F32 in ctx (mean over the batch's label tokens); the trainer
                          reads it, then calls gr_backward on it unless it is non-finite */
    int64_t tokens;    /* label tokens in the batch (tokens/s; may be 0) */
    int64_t examples;  /* examples in the batch */
} gr_task_loss;

/* Metrics of one evaluation: the task fills up to GR_TASK_MAX_METRICS entries. Names must be
 * unique, non-empty and live until the next call into the task. */
#define GR_TASK_MAX_METRICS 16
typedef struct gr_task_eval {
    const char *split;                       /* "val", "test", ... (set by the task) */
    gr_metric metrics[GR_TASK_MAX_METRICS];
    int count;
} gr_task_eval;

typedef struct gr_task {
    void *user;
    /* Number of micro-batches in epoch `epoch` (>= 1). Pure and cheap: the trainer may ask
     * more than once (e.g. epoch 0's count sizes the schedule of an epoch-based stage). */
    gr_status (*epoch_batches)(void *user, int64_t epoch, int64_t *count);
    /* Forward of micro-batch `index` of `epoch` into ctx with gradients enabled. Within an
     * epoch indices are asked for in increasing order, but the first one need not be 0 (a
     * resumed run starts mid-epoch): the batch must not depend on which batches came before.
     * The trainer resets ctx (gr_ctx_reset) after each micro-batch's backward. */
    gr_status (*forward)(void *user, gr_ctx *ctx, int64_t epoch, int64_t index, gr_task_loss *out);
    /* Optional (NULL: no evaluation): evaluates the current parameters. The trainer resets ctx
     * before and after, disables gradients around it and keeps its FLOPs out of the step
     * records. */
    gr_status (*evaluate)(void *user, gr_ctx *ctx, gr_task_eval *out);
    /* Optional: called after each epoch's last step (e.g. to drop per-epoch caches). */
    void (*end_epoch)(void *user, int64_t epoch);
} gr_task;

/* --------------------------------------------------------------------------- trainer ---- */

typedef struct gr_trainer_config {
    const char *stage;            /* stage name in logs and checkpoints ("scratch", "tas-1") */
    /* Trainable tensors (persistent F32 parameters marked trainable), their checkpoint names
     * (NULL: tensor->name; the HF/LAVIS names a PyTorch user expects) and learning-rate
     * multipliers (NULL: all 1). One AdamW group per distinct multiplier. */
    gr_tensor *const *params;
    const char *const *names;
    const double *lr_scale;
    int count;
    /* Tensors checkpointed with the trainable ones but not optimised (e.g. trained by an
     * earlier stage and frozen now), so a checkpoint restores the whole changed state. */
    gr_tensor *const *extra;
    const char *const *extra_names;
    int extra_count;

    gr_adamw_config adamw;        /* betas, eps, weight decay (LAVIS rule), grad_clip */
    gr_lr_schedule lr;            /* total_steps / max_epochs 0: derived from the stage length */
    int accum;                    /* micro-batches per step (>= 1) */
    int64_t max_epochs;           /* stage length in epochs ... */
    int64_t max_steps;            /* ... or in steps (> 0 wins; epochs then run on as needed) */
    int64_t eval_every_steps;     /* 0: never by steps */
    int eval_every_epoch;         /* evaluate after each epoch */
    int eval_at_start;            /* evaluate before the first step (not on resume) */
    int64_t ckpt_every_steps;     /* 0: only at epoch ends, at the end and when stopped */
    int ckpt_every_epoch;         /* checkpoint after each epoch (default 1) */
    int ckpt_keep;                /* newest checkpoints kept (>= 1) */
    int max_nonfinite;            /* K non-finite steps in a row stop the run (saved) */

    int64_t step_offset;          /* global step of this stage's step 0 (run log) */
    double epoch_offset;          /* epochs before this stage (run log) */
    const char *state_extra;      /* JSON object text stored in state.json as "extra" (the
                                     engine's stage bookkeeping); NULL: {} */
    const char *config_text;      /* resolved configuration, stored in state.json */
    gr_progress_opts progress;    /* total_steps filled in by the trainer */
} gr_trainer_config;

/* AdamW (0.9, 0.999, 1e-8), weight decay 0.05, no clipping; constant lr 1e-4; accum 1;
 * 1 epoch; eval and checkpoint every epoch, keep 2; stop after 5 non-finite steps in a row. */
void gr_trainer_config_defaults(gr_trainer_config *cfg);

typedef struct gr_trainer_result {
    int64_t steps;                /* steps of this stage completed (skipped ones included) */
    int64_t skipped;              /* non-finite steps skipped */
    double epochs;                /* fractional epochs completed */
    double last_loss;             /* loss of the last finite step (NaN if none) */
    double flops_total;           /* cumulative FLOPs of the whole run log after the stage */
    gr_task_eval last_eval;       /* the last evaluation (count 0 if none); names are the
                                     task's and live as long as the task */
    char *last_checkpoint;        /* malloc'd path of the newest checkpoint, or NULL */
    int stop_reason;              /* GR_TRAIN_DONE / _INTERRUPTED / _NONFINITE */
} gr_trainer_result;

enum { GR_TRAIN_DONE = 0, GR_TRAIN_INTERRUPTED = 1, GR_TRAIN_NONFINITE = 2 };

typedef struct gr_trainer gr_trainer;

/* `log` must be open (new or resumed, truncated to the checkpoint); the run directory for
 * checkpoints is gr_runlog_dir(log). The configuration's arrays must outlive the trainer. */
gr_status gr_trainer_create(gr_ctx *ctx, const gr_trainer_config *cfg, const gr_task *task,
                            gr_runlog *log, gr_trainer **out);
/* Loads a checkpoint written by a trainer of the same stage: tensors (trainable and extra),
 * optimizer moments and position. Errors name the file and tensor. */
gr_status gr_trainer_restore(gr_trainer *tr, const char *ckpt_dir);
/* Runs the stage to its end. GR_ERR_INTERRUPTED after a stop request (state saved),
 * GR_ERR_NUMERIC after max_nonfinite bad steps in a row (state saved). The result is filled
 * in every case (free it with gr_trainer_result_free). */
gr_status gr_trainer_run(gr_trainer *tr, gr_trainer_result *res);
void gr_trainer_free(gr_trainer *tr);
void gr_trainer_result_free(gr_trainer_result *res);

/* Reads state.json of a checkpoint: stage name (malloc'd), global step and the "extra" JSON
 * text (malloc'd; "{}" when none). Any out-pointer may be NULL. */
gr_status gr_checkpoint_read_state(const char *ckpt_dir, char **stage, int64_t *global_step,
                                   char **extra);

/* ------------------------------------------------------------------------ stopping ---- */

/* Installs SIGINT/SIGTERM handlers that request a stop: the trainer finishes the current
 * step, saves a checkpoint and returns GR_ERR_INTERRUPTED. A second signal restores the
 * default action (so a stuck run still dies on the next Ctrl-C). */
void gr_train_install_signal_handlers(void);
void gr_train_request_stop(void);
int gr_train_stop_requested(void);
void gr_train_clear_stop(void);

#endif
