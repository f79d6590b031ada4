/* A timing shim around a backend for `graft bench step --profile`: every kernel slot forwards
 * to the real backend and adds its wall time (after a synchronize, so asynchronous backends
 * are charged per kernel too) to a per-kernel total. Matmuls are split by shape class: batched
 * products (attention) apart from single large ones (linear layers, the LM head). */
#include <stdio.h>
#include <string.h>

#include "bench_profile.h"

enum {
    K_MATMUL, K_MATMUL_BATCHED, K_FILL, K_BINARY, K_SCALE, K_REDUCE, K_UNARY, K_UNARY_BWD, K_GATHER, K_SCATTER,
    K_LN, K_LN_BWD, K_RMS, K_RMS_BWD, K_SOFTMAX, K_SOFTMAX_BWD, K_ROPE, K_COPY, K_CONVERT, K_CE, K_CE_BWD,
    K_ALLOC, K_COUNT
};
static const char *knames[K_COUNT] = {
    "matmul", "matmul batched", "fill", "binary", "scale", "reduce_to", "unary", "unary_backward", "gather_rows",
    "scatter_add_rows", "layernorm", "layernorm_backward", "rmsnorm", "rmsnorm_backward", "softmax",
    "softmax_backward", "rope", "copy_strided", "convert", "cross_entropy", "cross_entropy_backward", "buffer_alloc",
};

static const gr_backend_iface *real;
static gr_backend_iface timed;
static double total[K_COUNT], flops[K_COUNT];
static long calls[K_COUNT];

static double t_begin(void) { return gr_bench_now(); }
static gr_status t_end(void *b, int k, double t0, gr_status s)
{
    if (s == GR_OK && real->synchronize) s = real->synchronize(b);
    total[k] += gr_bench_now() - t0;
    calls[k]++;
    return s;
}

#define SHIM(NAME, K, PARAMS, ARGS)                       \
    static gr_status t_##NAME PARAMS                      \
    {                                                     \
        double t0 = t_begin();                            \
        return t_end(b, K, t0, real->NAME ARGS);          \
    }

SHIM(fill, K_FILL, (void *b, const gr_tensor *t, float v), (b, t, v))
SHIM(binary, K_BINARY, (void *b, gr_binary_op op, const gr_tensor *o, const gr_tensor *x, const gr_tensor *y),
     (b, op, o, x, y))
SHIM(scale, K_SCALE, (void *b, const gr_tensor *o, const gr_tensor *i, float a, int acc), (b, o, i, a, acc))
SHIM(reduce_to, K_REDUCE, (void *b, const gr_tensor *o, const gr_tensor *i), (b, o, i))
SHIM(unary, K_UNARY, (void *b, gr_unary_op op, const gr_tensor *o, const gr_tensor *i), (b, op, o, i))
SHIM(unary_backward, K_UNARY_BWD, (void *b, gr_unary_op op, const gr_tensor *dx, const gr_tensor *x,
                                   const gr_tensor *dy), (b, op, dx, x, dy))
SHIM(gather_rows, K_GATHER, (void *b, const gr_tensor *o, const gr_tensor *t, const gr_tensor *ids), (b, o, t, ids))
SHIM(scatter_add_rows, K_SCATTER, (void *b, const gr_tensor *dt, const gr_tensor *ids, const gr_tensor *d, int32_t sk),
     (b, dt, ids, d, sk))
SHIM(layernorm, K_LN, (void *b, const gr_tensor *o, const gr_tensor *m, const gr_tensor *r, const gr_tensor *x,
                       const gr_tensor *w, const gr_tensor *bi, float eps), (b, o, m, r, x, w, bi, eps))
SHIM(layernorm_backward, K_LN_BWD, (void *b, const gr_tensor *dx, const gr_tensor *dw, const gr_tensor *db,
                                    const gr_tensor *dy, const gr_tensor *x, const gr_tensor *w, const gr_tensor *m,
                                    const gr_tensor *r), (b, dx, dw, db, dy, x, w, m, r))
SHIM(rmsnorm, K_RMS, (void *b, const gr_tensor *o, const gr_tensor *r, const gr_tensor *x, const gr_tensor *w,
                      float eps), (b, o, r, x, w, eps))
SHIM(rmsnorm_backward, K_RMS_BWD, (void *b, const gr_tensor *dx, const gr_tensor *dw, const gr_tensor *dy,
                                   const gr_tensor *x, const gr_tensor *w, const gr_tensor *r), (b, dx, dw, dy, x, w, r))
SHIM(softmax, K_SOFTMAX, (void *b, const gr_tensor *o, const gr_tensor *i), (b, o, i))
SHIM(softmax_backward, K_SOFTMAX_BWD, (void *b, const gr_tensor *dx, const gr_tensor *y, const gr_tensor *dy),
     (b, dx, y, dy))
SHIM(rope, K_ROPE, (void *b, const gr_tensor *o, const gr_tensor *x, const gr_tensor *c, const gr_tensor *s, int r,
                    int inv), (b, o, x, c, s, r, inv))
SHIM(copy_strided, K_COPY, (void *b, const gr_copy_args *a), (b, a))
SHIM(convert, K_CONVERT, (void *b, const gr_tensor *o, const gr_tensor *i), (b, o, i))
SHIM(cross_entropy, K_CE, (void *b, const gr_tensor *l, const gr_tensor *x, const gr_tensor *lab, int32_t ig),
     (b, l, x, lab, ig))
SHIM(cross_entropy_backward, K_CE_BWD, (void *b, const gr_tensor *d, const gr_tensor *x, const gr_tensor *lab,
                                        int32_t ig, float sc), (b, d, x, lab, ig, sc))
SHIM(buffer_alloc, K_ALLOC, (void *b, size_t bytes, gr_buffer **out), (b, bytes, out))

static gr_status t_matmul(void *b, const gr_matmul_args *a)
{
    int k = a->batch > 1 ? K_MATMUL_BATCHED : K_MATMUL;
    flops[k] += 2.0 * (double)a->m * (double)a->n * (double)a->k * (double)a->batch;
    double t0 = t_begin();
    return t_end(b, k, t0, real->matmul(b, a));
}

void gr_bench_profile_wrap(gr_backend *be, gr_backend *out)
{
    real = be->iface;
    timed = *real;
    timed.fill = t_fill;
    timed.matmul = t_matmul;
    timed.binary = t_binary;
    timed.scale = t_scale;
    timed.reduce_to = t_reduce_to;
    timed.unary = t_unary;
    timed.unary_backward = t_unary_backward;
    timed.gather_rows = t_gather_rows;
    timed.scatter_add_rows = t_scatter_add_rows;
    timed.layernorm = t_layernorm;
    timed.layernorm_backward = t_layernorm_backward;
    timed.rmsnorm = t_rmsnorm;
    timed.rmsnorm_backward = t_rmsnorm_backward;
    timed.softmax = t_softmax;
    timed.softmax_backward = t_softmax_backward;
    timed.rope = t_rope;
    timed.copy_strided = t_copy_strided;
    timed.convert = t_convert;
    timed.cross_entropy = t_cross_entropy;
    timed.cross_entropy_backward = t_cross_entropy_backward;
    timed.buffer_alloc = t_buffer_alloc;
    *out = *be;
    out->iface = &timed;
    gr_bench_profile_reset();
}

void gr_bench_profile_reset(void)
{
    memset(total, 0, sizeof total);
    memset(flops, 0, sizeof flops);
    memset(calls, 0, sizeof calls);
}

void gr_bench_profile_print(int steps, double step_seconds)
{
    double sum = 0;
    for (int k = 0; k < K_COUNT; k++) sum += total[k];
    if (steps < 1) steps = 1;
    printf("profile per step (kernel wall time; %.1f ms of %.1f ms step in kernels):\n", 1e3 * sum / steps,
           1e3 * step_seconds);
    printf("  %-24s %8s %9s %6s %10s\n", "kernel", "calls", "ms", "share", "GFLOP/s");
    for (int k = 0; k < K_COUNT; k++) {
        if (!calls[k]) continue;
        char gf[16] = "";
        if (flops[k] > 0) snprintf(gf, sizeof gf, "%.1f", flops[k] / total[k] * 1e-9);
        printf("  %-24s %8ld %9.2f %5.1f%% %10s\n", knames[k], calls[k] / steps, 1e3 * total[k] / steps,
               100.0 * total[k] / (step_seconds * steps), gf);
    }
}
