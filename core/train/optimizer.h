/* AdamW over the trainable tensors, in parameter groups, with global-norm clipping and a
 * non-finite guard. Moments live on the backend next to the parameters. */
#ifndef GRAFT_CORE_OPTIMIZER_H
#define GRAFT_CORE_OPTIMIZER_H

#include "graft/ops.h"

typedef struct gr_adamw_config {
    double beta1, beta2, eps;
    double weight_decay;     /* for tensors that decay (see gr_param_decays) */
    double grad_clip;        /* max global L2 norm; <= 0: no clipping */
} gr_adamw_config;

typedef struct gr_optimizer gr_optimizer;

/* LAVIS's rule: no weight decay on biases, norms and any tensor with fewer than 2 dims. */
int gr_param_decays(const gr_tensor *t);

/* One group per distinct lr_scale; params[i] must be trainable and persistent. */
gr_status gr_optimizer_create(gr_ctx *ctx, const gr_adamw_config *cfg, gr_tensor *const *params,
                              const double *lr_scale, int count, gr_optimizer **out);
void gr_optimizer_free(gr_optimizer *opt);

typedef struct gr_step_result {
    double grad_norm;        /* global norm after averaging over accumulated micro-batches */
    int skipped;             /* non-finite gradient: no update was made */
    double clip_coef;        /* 1 when not clipped */
} gr_step_result;

/* Applies one update with learning rate lr (scaled per group). Gradients are the sums over
 * `accum` micro-batches; they are averaged, clipped, applied and then zeroed. A non-finite
 * norm skips the update (gradients are zeroed all the same). */
gr_status gr_optimizer_step(gr_optimizer *opt, double lr, int accum, gr_step_result *res);
/* Zeroes every gradient (also after a skipped micro-batch). */
void gr_optimizer_zero_grad(gr_optimizer *opt);

int64_t gr_optimizer_steps(const gr_optimizer *opt);
/* State for checkpoints: per param, its m and v tensors, plus the step count. */
int gr_optimizer_count(const gr_optimizer *opt);
gr_tensor *gr_optimizer_param(const gr_optimizer *opt, int i);
gr_tensor *gr_optimizer_m(const gr_optimizer *opt, int i);
gr_tensor *gr_optimizer_v(const gr_optimizer *opt, int i);
void gr_optimizer_set_steps(gr_optimizer *opt, int64_t steps);

#endif
