/* The run around a pretraining command's task (`graft pretrain`, `graft pretrain-vision`):
 * OUT/run opened new (resolved config written) or resumed from its newest checkpoint, one
 * AdamW + warm-up/cosine stage from the command's PREFIX.* keys (lr, min_lr, warmup_steps,
 * weight_decay, grad_clip, epochs, steps, eval_every) run with SIGINT/SIGTERM handling, and
 * the end: report.json, the summary line and PREFIX.require_quality. The command keeps its
 * model, task, export, reload check and quality.json.
 *
 *     gr_pretrain_run r;
 *     s = gr_pretrain_run_init(&r, "pretrain", "pretrain", cfg);
 *     ... model, task, params ...
 *     if (!s) s = gr_pretrain_run_open(&r, resume);
 *     if (!s) s = gr_pretrain_run_train(&r, ctx, &task, params, count);
 *     ... export, quality ...
 *     if (!s) s = gr_pretrain_run_finish(&r, quality, n, ok, "LM");
 *     gr_pretrain_run_free(&r);
 */
#ifndef GRAFT_CORE_TRAIN_PRETRAIN_RUN_H
#define GRAFT_CORE_TRAIN_PRETRAIN_RUN_H

#include "graft/config.h"
#include "run/runlog.h"
#include "train/trainer.h"

typedef struct gr_pretrain_run {
    const char *name;        /* the command: message prefix and stage name ("pretrain-vision") */
    const char *prefix;      /* its keys' prefix ("pretrain_vision") */
    const gr_config *cfg;
    const char *out;         /* PREFIX.out; the run is OUT/run */
    char *run_dir;
    char *ckpt;              /* the checkpoint resumed from; NULL for a new run */
    gr_runlog *log;
    gr_trainer *tr;
    gr_trainer_result res;   /* of the stage: steps, FLOPs */
    double t_start, t_train; /* monotonic start of the command; seconds in the trainer */
} gr_pretrain_run;

/* Zeroes r, starts the clock and derives OUT and OUT/run; r must be freed in every case. */
gr_status gr_pretrain_run_init(gr_pretrain_run *r, const char *name, const char *prefix, const gr_config *cfg);
/* A new run (refused if OUT/run holds one; writes config.cfg) or, with resume, the existing
 * one cut back to its newest checkpoint ("NAME: resuming from CKPT"). */
gr_status gr_pretrain_run_open(gr_pretrain_run *r, int resume);
/* Trains params[0..count) on task to the end of the stage (restored from r->ckpt if any);
 * GR_ERR_INTERRUPTED after SIGINT/SIGTERM, with the state checkpointed. */
gr_status gr_pretrain_run_train(gr_pretrain_run *r, gr_ctx *ctx, const gr_task *task, gr_tensor *const *params, int count);
/* Writes report.json (the log's totals and final/best values, timings, output, and
 * quality.NAME for each of quality[0..n)), prints "NAME: S steps in ...; quality ok|BELOW THE
 * BAR -> OUT/quality.json" and fails when the bar is missed and PREFIX.require_quality is set
 * (`what` names the model: "the pretrained WHAT misses the quality bar"). */
gr_status gr_pretrain_run_finish(gr_pretrain_run *r, const gr_metric *quality, int n, int quality_ok, const char *what);
void gr_pretrain_run_free(gr_pretrain_run *r);

#endif
