/* Learning-rate schedules, as LAVIS (and so BLIP-2 / VPGTrans) and the zero code step them. */
#ifndef GRAFT_CORE_SCHEDULE_H
#define GRAFT_CORE_SCHEDULE_H

#include <stdint.h>

#include "graft/status.h"

typedef enum gr_lr_kind {
    GR_LR_CONSTANT = 0,  /* base_lr throughout (after an optional linear warm-up) */
    GR_LR_COSINE = 1     /* cosine from base_lr to min_lr */
} gr_lr_kind;

typedef struct gr_lr_schedule {
    gr_lr_kind kind;
    double base_lr, min_lr;
    double warmup_lr;        /* start of the linear warm-up */
    int64_t warmup_steps;    /* 0: none */
    /* Cosine stepping: per_epoch = 1 follows LAVIS's LinearWarmupCosineLRScheduler (warm-up in
     * epoch 0 by iteration, then lr(epoch) = min + (base-min)(1+cos(pi*epoch/max_epochs))/2);
     * per_epoch = 0 steps per iteration over total_steps after warm-up (zero's schedule). */
    int per_epoch;
    int64_t max_epochs;
    int64_t total_steps;
} gr_lr_schedule;

/* Learning rate for global step `step` (0-based) that lies in epoch `epoch` (0-based) at
 * iteration `iter` within that epoch. */
double gr_lr_at(const gr_lr_schedule *s, int64_t step, int64_t epoch, int64_t iter);

/* Parses "constant" / "cosine". */
gr_status gr_lr_kind_parse(const char *name, gr_lr_kind *out);

#endif
