#include <math.h>
#include <string.h>

#include "train/schedule.h"

static double warmup(const gr_lr_schedule *s, int64_t step)
{
    /* LAVIS warmup_lr_schedule: min(max_lr, init + (max - init) * step / max(max_step, 1)). */
    double lr = s->warmup_lr + (s->base_lr - s->warmup_lr) * (double)step /
                                   (double)(s->warmup_steps > 1 ? s->warmup_steps : 1);
    return lr < s->base_lr ? lr : s->base_lr;
}

double gr_lr_at(const gr_lr_schedule *s, int64_t step, int64_t epoch, int64_t iter)
{
    if (s->kind == GR_LR_CONSTANT) {
        if (s->warmup_steps > 0 && step < s->warmup_steps) return warmup(s, step);
        return s->base_lr;
    }
    if (s->per_epoch) {
        if (epoch == 0 && s->warmup_steps > 0) return warmup(s, iter);
        double e = (double)epoch, m = (double)(s->max_epochs > 0 ? s->max_epochs : 1);
        return (s->base_lr - s->min_lr) * 0.5 * (1.0 + cos(M_PI * e / m)) + s->min_lr;
    }
    if (s->warmup_steps > 0 && step < s->warmup_steps) return warmup(s, step);
    int64_t span = s->total_steps - s->warmup_steps;
    if (span <= 0) return s->min_lr;
    double t = (double)(step - s->warmup_steps) / (double)span;
    if (t > 1.0) t = 1.0;
    return s->min_lr + (s->base_lr - s->min_lr) * 0.5 * (1.0 + cos(M_PI * t));
}

gr_status gr_lr_kind_parse(const char *name, gr_lr_kind *out)
{
    if (strcmp(name, "constant") == 0) { *out = GR_LR_CONSTANT; return GR_OK; }
    if (strcmp(name, "cosine") == 0) { *out = GR_LR_COSINE; return GR_OK; }
    return gr_fail(GR_ERR_INVALID, "unknown learning-rate schedule '%s' (constant or cosine)", name);
}
