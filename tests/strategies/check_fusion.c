/* Through the plugin path: the projector a tas/tat run initialised (RUN/converter.safetensors,
 * written by the strategy) is the composition of the trained converter after the source run's
 * projector, and that source projector is byte for byte the source run's trained one.
 *   check_fusion RUN_DIR/converter.safetensors SOURCE_RUN/checkpoints/.../trainable.safetensors */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "graft/weights.h"

static const float *get(const gr_weights *w, const char *name, int64_t r, int64_t c)
{
    const gr_weight_info *i = gr_weights_find(w, name);
    if (!i || i->dtype != GR_F32 || i->shape[0] != r || (c && (i->ndim != 2 || i->shape[1] != c))) {
        printf("FAIL %s missing or of another shape\n", name);
        return NULL;
    }
    return i->data;
}

int main(int argc, char **argv)
{
    if (argc != 3) { fprintf(stderr, "usage: check_fusion CONVERTER.safetensors SOURCE.safetensors\n"); return 2; }
    gr_weights *cv = NULL, *src = NULL;
    if (gr_weights_open(argv[1], &cv) != GR_OK || gr_weights_open(argv[2], &src) != GR_OK) {
        printf("FAIL %s\n", gr_last_error());
        return 1;
    }
    const gr_weight_info *wi = gr_weights_find(cv, "converter.weight"), *si = gr_weights_find(cv, "source_projection.weight");
    if (!wi || !si) { printf("FAIL converter.safetensors lacks converter.weight / source_projection.weight\n"); return 1; }
    int64_t dt = wi->shape[0], ds = wi->shape[1], din = si->shape[1];
    const float *Ww = get(cv, "converter.weight", dt, ds), *bw = get(cv, "converter.bias", dt, 0);
    const float *Ws = get(cv, "source_projection.weight", ds, din), *bs = get(cv, "source_projection.bias", ds, 0);
    const float *Wt = get(cv, "language_projection.weight", dt, din), *bt = get(cv, "language_projection.bias", dt, 0);
    if (!Ww || !bw || !Ws || !bs || !Wt || !bt) return 1;
    int fails = 0;
    /* 1. the source projector is the source run's, byte for byte */
    const gr_weight_info *rw = gr_weights_find(src, "language_projection.weight"), *rb = gr_weights_find(src, "language_projection.bias");
    int same = rw && rb && rw->nbytes == si->nbytes && memcmp(rw->data, Ws, si->nbytes) == 0 &&
               rb->nbytes == sizeof(float) * (size_t)ds && memcmp(rb->data, bs, rb->nbytes) == 0;
    printf("%s source projector equals the source run's trained projector byte for byte\n", same ? "ok  " : "FAIL");
    fails += !same;
    /* 2. fused(x) == W_w (W_s x + b_s) + b_w for basis vectors and x = 0 (covers every entry) */
    double worst = 0;
    for (int64_t j = -1; j < din; j++) {
        for (int64_t i = 0; i < dt; i++) {
            double want = bw[i], got = bt[i] + (j >= 0 ? Wt[i * din + j] : 0.0);
            for (int64_t k = 0; k < ds; k++) want += (double)Ww[i * ds + k] * ((double)bs[k] + (j >= 0 ? Ws[k * din + j] : 0.0));
            double err = fabs(got - want) / (1e-3 + fabs(want));
            if (err > worst) worst = err;
        }
    }
    printf("%s fused projector equals the converter applied after the source projector (max rel. error %.2g, %lldx%lld <- %lldx%lld)\n",
           worst < 1e-4 ? "ok  " : "FAIL", worst, (long long)dt, (long long)ds, (long long)ds, (long long)din);
    fails += !(worst < 1e-4);
    gr_weights_close(cv);
    gr_weights_close(src);
    return fails ? 1 : 0;
}
