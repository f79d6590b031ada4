/* Element-wise, reduction, copy and optimizer kernels of the CPU backend. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"

#define GRAIN 16384 /* elements worth waking a thread for */

static cpu_pool *POOL(void *b) { return ((cpu_backend *)b)->pool; }

static gr_status need(const gr_tensor *t, gr_dtype dt, const char *k)
{
    if (t->dtype != dt)
        return gr_fail(GR_ERR_INVALID, "cpu %s: %s tensor where %s is required", k, gr_dtype_name(t->dtype),
                       gr_dtype_name(dt));
    return GR_OK;
}
#define NEED(t, dt, k)                                      \
    do {                                                    \
        gr_status s_ = need((t), (dt), (k));                \
        if (s_ != GR_OK) return s_;                         \
    } while (0)

/* ---------------------------------------------------------------- fill ---- */

typedef struct { void *p; float v; int is_int; } fill_job;
static void fill_task(void *arg, int64_t b, int64_t e)
{
    fill_job *j = arg;
    if (j->is_int) {
        int32_t v = (int32_t)j->v, *p = j->p;
        for (int64_t i = b; i < e; i++) p[i] = v;
    } else {
        float *p = j->p;
        for (int64_t i = b; i < e; i++) p[i] = j->v;
    }
}

gr_status cpu_fill(void *bk, const gr_tensor *t, float value)
{
    if (t->dtype != GR_F32 && t->dtype != GR_I32)
        return gr_fail(GR_ERR_INVALID, "cpu fill: %s tensor (F32 or I32)", gr_dtype_name(t->dtype));
    fill_job j = {cpu_ptr(t), value, t->dtype == GR_I32};
    cpu_pool_run(POOL(bk), gr_numel(t), GRAIN, fill_task, &j);
    return GR_OK;
}

/* ---------------------------------------------------------------- binary ---- */

typedef struct {
    gr_binary_op op;
    float *o;
    const float *a, *b;
    int nd;
    int64_t shape[GR_MAX_DIMS], as[GR_MAX_DIMS], bs[GR_MAX_DIMS];
    int64_t inner;
} bin_job;

static inline void bin_row(gr_binary_op op, float *o, const float *a, int64_t sa, const float *b, int64_t sb, int64_t n)
{
#define LOOP(EXPR)                                                                         \
    if (sa == 1 && sb == 1) for (int64_t i = 0; i < n; i++) { float x = a[i], y = b[i]; o[i] = EXPR; } \
    else if (sa == 1) { float y = b[0]; for (int64_t i = 0; i < n; i++) { float x = a[i]; o[i] = EXPR; } } \
    else if (sb == 1) { float x = a[0]; for (int64_t i = 0; i < n; i++) { float y = b[i]; o[i] = EXPR; } } \
    else { float x = a[0], y = b[0]; for (int64_t i = 0; i < n; i++) o[i] = EXPR; }
    switch (op) {
    case GR_BIN_ADD: LOOP(x + y); break;
    case GR_BIN_SUB: LOOP(x - y); break;
    case GR_BIN_MUL: LOOP(x * y); break;
    }
#undef LOOP
}

static void bin_task(void *arg, int64_t rb, int64_t re)
{
    bin_job *j = arg;
    int last = j->nd - 1;
    int64_t n = j->inner;
    for (int64_t r = rb; r < re; r++) {
        /* r indexes all dims but the last */
        int64_t rem = r, ao = 0, bo = 0;
        for (int d = last - 1; d >= 0; d--) {
            int64_t i = rem % j->shape[d];
            rem /= j->shape[d];
            ao += i * j->as[d];
            bo += i * j->bs[d];
        }
        bin_row(j->op, j->o + r * n, j->a + ao, j->as[last], j->b + bo, j->bs[last], n);
    }
}

typedef struct { gr_binary_op op; float *o; const float *a, *b; } flat_bin_job;
static void flat_bin_task(void *arg, int64_t b, int64_t e)
{
    flat_bin_job *j = arg;
    bin_row(j->op, j->o + b, j->a + b, 1, j->b + b, 1, e - b);
}

gr_status cpu_binary(void *bk, gr_binary_op op, const gr_tensor *out, const gr_tensor *a, const gr_tensor *b)
{
    NEED(out, GR_F32, "binary");
    NEED(a, GR_F32, "binary");
    NEED(b, GR_F32, "binary");
    if (a->ndim != out->ndim || b->ndim != out->ndim)
        return gr_fail(GR_ERR_INVALID, "cpu binary: operands of %d and %d dims for a %d-dim output", a->ndim, b->ndim,
                       out->ndim);
    int64_t n = gr_numel(out);
    if (n == 0) return GR_OK;
    if (gr_numel(a) == n && gr_numel(b) == n) {
        flat_bin_job fj = {op, cpu_f32(out), cpu_f32(a), cpu_f32(b)};
        cpu_pool_run(POOL(bk), n, GRAIN, flat_bin_task, &fj);
        return GR_OK;
    }
    bin_job j = {.op = op, .o = cpu_f32(out), .a = cpu_f32(a), .b = cpu_f32(b)};
    /* Merge dims so the inner loop is as long as possible: drop size-1 dims, then fuse
     * neighbours that broadcast the same way. */
    int64_t sa = 1, sb = 1, as[GR_MAX_DIMS], bs[GR_MAX_DIMS];
    for (int d = out->ndim - 1; d >= 0; d--) {
        if (a->shape[d] != out->shape[d] && a->shape[d] != 1) return gr_fail(GR_ERR_INVALID, "cpu binary: bad broadcast");
        if (b->shape[d] != out->shape[d] && b->shape[d] != 1) return gr_fail(GR_ERR_INVALID, "cpu binary: bad broadcast");
        as[d] = a->shape[d] == 1 ? 0 : sa;
        bs[d] = b->shape[d] == 1 ? 0 : sb;
        sa *= a->shape[d];
        sb *= b->shape[d];
    }
    int nd = 0;
    for (int d = 0; d < out->ndim; d++) {
        if (out->shape[d] == 1) continue;
        if (nd > 0 && j.as[nd - 1] == as[d] * out->shape[d] && j.bs[nd - 1] == bs[d] * out->shape[d]) {
            j.shape[nd - 1] *= out->shape[d];
            j.as[nd - 1] = as[d];
            j.bs[nd - 1] = bs[d];
            continue;
        }
        j.shape[nd] = out->shape[d];
        j.as[nd] = as[d];
        j.bs[nd] = bs[d];
        nd++;
    }
    if (nd == 0) {
        j.shape[0] = 1;
        j.as[0] = j.bs[0] = 0;
        nd = 1;
    }
    j.nd = nd;
    j.inner = j.shape[nd - 1];
    int64_t rows = n / j.inner;
    cpu_pool_run(POOL(bk), rows, GRAIN / j.inner + 1, bin_task, &j);
    return GR_OK;
}

/* ---------------------------------------------------------------- scale ---- */

typedef struct { float *o; const float *x; float alpha; int acc; } scale_job;
static void scale_task(void *arg, int64_t b, int64_t e)
{
    scale_job *j = arg;
    float *o = j->o;
    const float *x = j->x;
    float al = j->alpha;
    if (j->acc) for (int64_t i = b; i < e; i++) o[i] += al * x[i];
    else if (al == 1.0f) { if (o != x) memmove(o + b, x + b, (size_t)(e - b) * sizeof *o); }
    else for (int64_t i = b; i < e; i++) o[i] = al * x[i];
}

gr_status cpu_scale(void *bk, const gr_tensor *out, const gr_tensor *in, float alpha, int accumulate)
{
    NEED(out, GR_F32, "scale");
    NEED(in, GR_F32, "scale");
    if (gr_numel(out) != gr_numel(in)) return gr_fail(GR_ERR_INVALID, "cpu scale: sizes differ");
    scale_job j = {cpu_f32(out), cpu_f32(in), alpha, accumulate};
    cpu_pool_run(POOL(bk), gr_numel(out), GRAIN, scale_task, &j);
    return GR_OK;
}

/* ---------------------------------------------------------------- reductions ---- */

typedef struct {
    float *o;
    const float *x;
    int64_t outer, inner;  /* [outer, inner] layouts */
    int nd;                /* general case */
    int64_t shape[GR_MAX_DIMS], xs[GR_MAX_DIMS], os[GR_MAX_DIMS], red[GR_MAX_DIMS];
    double *partial;
} red_job;

/* [R, K] -> [K]: each thread owns a column range and walks the rows. */
static void red_cols_task(void *arg, int64_t b, int64_t e)
{
    red_job *j = arg;
    float *o = j->o;
    for (int64_t c = b; c < e; c++) o[c] = 0.0f;
    for (int64_t r = 0; r < j->outer; r++) {
        const float *x = j->x + r * j->inner;
        for (int64_t c = b; c < e; c++) o[c] += x[c];
    }
}

/* [K, R] -> [K]: contiguous row sums in double. */
static void red_rows_task(void *arg, int64_t b, int64_t e)
{
    red_job *j = arg;
    for (int64_t r = b; r < e; r++) {
        const float *x = j->x + r * j->inner;
        double s = 0;
        for (int64_t c = 0; c < j->inner; c++) s += x[c];
        j->o[r] = (float)s;
    }
}

/* one total over n elements split into per-thread partial sums */
static void red_all_task(void *arg, int64_t b, int64_t e)
{
    red_job *j = arg;
    int64_t chunk = (j->inner + j->outer - 1) / j->outer;
    for (int64_t t = b; t < e; t++) {
        int64_t lo = t * chunk, hi = lo + chunk < j->inner ? lo + chunk : j->inner;
        double s = 0;
        for (int64_t i = lo; i < hi; i++) s += j->x[i];
        j->partial[t] = s;
    }
}

/* General: every output element sums its reduced sub-space with an odometer. */
static void red_general_task(void *arg, int64_t b, int64_t e)
{
    red_job *j = arg;
    int64_t nred = 1;
    for (int d = 0; d < j->nd; d++)
        if (j->red[d]) nred *= j->shape[d];
    for (int64_t o = b; o < e; o++) {
        int64_t rem = o, base = 0;
        for (int d = j->nd - 1; d >= 0; d--) {
            if (j->red[d]) continue;
            int64_t i = rem % j->shape[d];
            rem /= j->shape[d];
            base += i * j->xs[d];
        }
        int64_t idx[GR_MAX_DIMS] = {0}, off = 0;
        double s = 0;
        for (int64_t k = 0; k < nred; k++) {
            s += j->x[base + off];
            for (int d = j->nd - 1; d >= 0; d--) {
                if (!j->red[d]) continue;
                if (++idx[d] < j->shape[d]) {
                    off += j->xs[d];
                    break;
                }
                off -= (idx[d] - 1) * j->xs[d];
                idx[d] = 0;
            }
        }
        j->o[o] = (float)s;
    }
}

gr_status cpu_reduce_to(void *bk, const gr_tensor *out, const gr_tensor *in)
{
    NEED(out, GR_F32, "reduce_to");
    NEED(in, GR_F32, "reduce_to");
    if (out->ndim != in->ndim) return gr_fail(GR_ERR_INVALID, "cpu reduce_to: %d vs %d dims", out->ndim, in->ndim);
    /* Canonical form: drop size-1 input dims, fuse neighbours of the same kind. */
    int64_t shape[GR_MAX_DIMS];
    int kind[GR_MAX_DIMS], nd = 0;
    for (int d = 0; d < in->ndim; d++) {
        if (out->shape[d] != in->shape[d] && out->shape[d] != 1)
            return gr_fail(GR_ERR_INVALID, "cpu reduce_to: dim %d: %lld to %lld", d, (long long)in->shape[d],
                           (long long)out->shape[d]);
        if (in->shape[d] == 1) continue;
        int k = out->shape[d] == 1;
        if (nd && kind[nd - 1] == k) shape[nd - 1] *= in->shape[d];
        else {
            shape[nd] = in->shape[d];
            kind[nd++] = k;
        }
    }
    int64_t nout = gr_numel(out), nin = gr_numel(in);
    red_job j = {.o = cpu_f32(out), .x = cpu_f32(in)};
    cpu_pool *p = POOL(bk);
    if (nin == 0) {
        memset(j.o, 0, (size_t)nout * sizeof(float));
    } else if (nd == 0 || (nd == 1 && !kind[0])) {
        memmove(j.o, j.x, (size_t)nout * sizeof(float));
    } else if (nd == 1) {
        int nt = cpu_pool_threads(p);
        double part[64];
        if (nt > 64) nt = 64;
        if (nin < (int64_t)GRAIN * 2) nt = 1;
        j.outer = nt;
        j.inner = nin;
        j.partial = part;
        cpu_pool_run(p, nt, 1, red_all_task, &j);
        double s = 0;
        for (int t = 0; t < nt; t++) s += part[t];
        j.o[0] = (float)s;
    } else if (nd == 2 && kind[0]) {
        j.outer = shape[0];
        j.inner = shape[1];
        cpu_pool_run(p, j.inner, GRAIN / (j.outer + 1) + 64, red_cols_task, &j);
    } else if (nd == 2) {
        j.outer = shape[0];
        j.inner = shape[1];
        cpu_pool_run(p, j.outer, GRAIN / (j.inner + 1) + 1, red_rows_task, &j);
    } else {
        j.nd = nd;
        int64_t s = 1;
        for (int d = nd - 1; d >= 0; d--) {
            j.shape[d] = shape[d];
            j.red[d] = kind[d];
            j.xs[d] = s;
            s *= shape[d];
        }
        cpu_pool_run(p, nout, GRAIN / (nin / nout + 1) + 1, red_general_task, &j);
    }
    return GR_OK;
}

typedef struct { const float *x; int64_t n, chunk; double *partial; } sq_job;
static void sq_task(void *arg, int64_t b, int64_t e)
{
    sq_job *j = arg;
    for (int64_t t = b; t < e; t++) {
        int64_t lo = t * j->chunk, hi = lo + j->chunk < j->n ? lo + j->chunk : j->n;
        double s = 0;
        for (int64_t i = lo; i < hi; i++) s += (double)j->x[i] * j->x[i];
        j->partial[t] = s;
    }
}

gr_status cpu_sum_squares(void *bk, const gr_tensor *out, const gr_tensor *in)
{
    NEED(out, GR_F32, "sum_squares");
    NEED(in, GR_F32, "sum_squares");
    int nt = cpu_pool_threads(POOL(bk));
    if (nt > 64) nt = 64;
    double part[64] = {0};
    int64_t n = gr_numel(in);
    sq_job j = {cpu_f32(in), n, (n + nt - 1) / nt, part};
    cpu_pool_run(POOL(bk), nt, n < GRAIN * 2 ? nt : 1, sq_task, &j);
    double s = 0;
    for (int t = 0; t < nt; t++) s += part[t];
    cpu_f32(out)[0] = (float)s;
    return GR_OK;
}

/* ---------------------------------------------------------------- activations ---- */

#define SQRT_2_OVER_PI 0.7978845608028654f
#define INV_SQRT_2 0.7071067811865476f
#define INV_SQRT_2PI 0.3989422804014327f

static inline float sigm(float x) { return 1.0f / (1.0f + expf(-x)); }

typedef struct { gr_unary_op op; float *o; const float *x, *dy; } un_job;
static void unary_task(void *arg, int64_t b, int64_t e)
{
    un_job *j = arg;
    float *o = j->o;
    const float *x = j->x;
    switch (j->op) {
    case GR_ACT_RELU: for (int64_t i = b; i < e; i++) o[i] = x[i] > 0.0f ? x[i] : 0.0f; break;
    case GR_ACT_GELU_ERF: for (int64_t i = b; i < e; i++) o[i] = 0.5f * x[i] * (1.0f + erff(x[i] * INV_SQRT_2)); break;
    case GR_ACT_GELU_TANH:
        for (int64_t i = b; i < e; i++) {
            float v = x[i];
            o[i] = 0.5f * v * (1.0f + tanhf(SQRT_2_OVER_PI * (v + 0.044715f * v * v * v)));
        }
        break;
    case GR_ACT_QUICK_GELU: for (int64_t i = b; i < e; i++) o[i] = x[i] * sigm(1.702f * x[i]); break;
    case GR_ACT_SILU: for (int64_t i = b; i < e; i++) o[i] = x[i] * sigm(x[i]); break;
    case GR_ACT_SIGMOID: for (int64_t i = b; i < e; i++) o[i] = sigm(x[i]); break;
    case GR_ACT_TANH: for (int64_t i = b; i < e; i++) o[i] = tanhf(x[i]); break;
    default: break;
    }
}

static void unary_bwd_task(void *arg, int64_t b, int64_t e)
{
    un_job *j = arg;
    float *o = j->o;
    const float *x = j->x, *dy = j->dy;
    for (int64_t i = b; i < e; i++) {
        float v = x[i], d;
        switch (j->op) {
        case GR_ACT_RELU: d = v > 0.0f ? 1.0f : 0.0f; break;
        case GR_ACT_GELU_ERF: d = 0.5f * (1.0f + erff(v * INV_SQRT_2)) + v * INV_SQRT_2PI * expf(-0.5f * v * v); break;
        case GR_ACT_GELU_TANH: {
            float t = tanhf(SQRT_2_OVER_PI * (v + 0.044715f * v * v * v));
            d = 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * SQRT_2_OVER_PI * (1.0f + 3.0f * 0.044715f * v * v);
            break;
        }
        case GR_ACT_QUICK_GELU: {
            float s = sigm(1.702f * v);
            d = s + 1.702f * v * s * (1.0f - s);
            break;
        }
        case GR_ACT_SILU: {
            float s = sigm(v);
            d = s * (1.0f + v * (1.0f - s));
            break;
        }
        case GR_ACT_SIGMOID: {
            float s = sigm(v);
            d = s * (1.0f - s);
            break;
        }
        case GR_ACT_TANH: {
            float t = tanhf(v);
            d = 1.0f - t * t;
            break;
        }
        default: d = 0.0f;
        }
        o[i] = dy[i] * d;
    }
}

gr_status cpu_unary(void *bk, gr_unary_op op, const gr_tensor *out, const gr_tensor *in)
{
    NEED(out, GR_F32, "unary");
    NEED(in, GR_F32, "unary");
    if ((unsigned)op >= GR_ACT_COUNT) return gr_fail(GR_ERR_INVALID, "cpu unary: unknown op %d", (int)op);
    un_job j = {op, cpu_f32(out), cpu_f32(in), NULL};
    cpu_pool_run(POOL(bk), gr_numel(out), GRAIN / 4, unary_task, &j);
    return GR_OK;
}

gr_status cpu_unary_backward(void *bk, gr_unary_op op, const gr_tensor *dx, const gr_tensor *x, const gr_tensor *dy)
{
    NEED(dx, GR_F32, "unary_backward");
    NEED(x, GR_F32, "unary_backward");
    NEED(dy, GR_F32, "unary_backward");
    if ((unsigned)op >= GR_ACT_COUNT) return gr_fail(GR_ERR_INVALID, "cpu unary_backward: unknown op %d", (int)op);
    un_job j = {op, cpu_f32(dx), cpu_f32(x), cpu_f32(dy)};
    cpu_pool_run(POOL(bk), gr_numel(dx), GRAIN / 4, unary_bwd_task, &j);
    return GR_OK;
}

/* ---------------------------------------------------------------- copies ---- */

static inline float load_f(const void *p, gr_dtype dt, int64_t i)
{
    switch (dt) {
    case GR_F32: return ((const float *)p)[i];
    case GR_F16: return gr_f16_to_f32(((const uint16_t *)p)[i]);
    case GR_BF16: return gr_bf16_to_f32(((const uint16_t *)p)[i]);
    default: return 0.0f;
    }
}

typedef struct {
    char *dst;
    const char *src;
    gr_dtype ddt, sdt;
    size_t es;
    int nd, acc, convert;
    int64_t shape[GR_MAX_DIMS], ds[GR_MAX_DIMS], ss[GR_MAX_DIMS];
} copy_job;

static void copy_task(void *arg, int64_t rb, int64_t re)
{
    copy_job *j = arg;
    int last = j->nd - 1;
    int64_t n = j->shape[last], dsl = j->ds[last], ssl = j->ss[last];
    for (int64_t r = rb; r < re; r++) {
        int64_t rem = r, doff = 0, soff = 0;
        for (int d = last - 1; d >= 0; d--) {
            int64_t i = rem % j->shape[d];
            rem /= j->shape[d];
            doff += i * j->ds[d];
            soff += i * j->ss[d];
        }
        if (j->convert || j->acc) {
            float *o = (float *)j->dst + doff;
            if (j->acc) for (int64_t i = 0; i < n; i++) o[i * dsl] += load_f(j->src, j->sdt, soff + i * ssl);
            else for (int64_t i = 0; i < n; i++) o[i * dsl] = load_f(j->src, j->sdt, soff + i * ssl);
        } else if (dsl == 1 && ssl == 1) {
            memcpy(j->dst + (size_t)doff * j->es, j->src + (size_t)soff * j->es, (size_t)n * j->es);
        } else if (j->es == 4) {
            uint32_t *o = (uint32_t *)j->dst + doff;
            const uint32_t *s = (const uint32_t *)j->src + soff;
            for (int64_t i = 0; i < n; i++) o[i * dsl] = s[i * ssl];
        } else if (j->es == 2) {
            uint16_t *o = (uint16_t *)j->dst + doff;
            const uint16_t *s = (const uint16_t *)j->src + soff;
            for (int64_t i = 0; i < n; i++) o[i * dsl] = s[i * ssl];
        } else {
            for (int64_t i = 0; i < n; i++)
                memcpy(j->dst + (size_t)(doff + i * dsl) * j->es, j->src + (size_t)(soff + i * ssl) * j->es, j->es);
        }
    }
}

gr_status cpu_copy_strided(void *bk, const gr_copy_args *a)
{
    const gr_tensor *dst = a->dst, *src = a->src;
    int isf = src->dtype == GR_F32 || src->dtype == GR_F16 || src->dtype == GR_BF16;
    copy_job j = {.dst = cpu_ptr(dst), .src = cpu_ptr(src), .ddt = dst->dtype, .sdt = src->dtype,
                  .es = gr_dtype_size(dst->dtype), .acc = a->accumulate};
    if (dst->dtype != src->dtype && !(dst->dtype == GR_F32 && isf))
        return gr_fail(GR_ERR_INVALID, "cpu copy_strided: %s to %s", gr_dtype_name(src->dtype), gr_dtype_name(dst->dtype));
    if (a->accumulate && dst->dtype != GR_F32)
        return gr_fail(GR_ERR_INVALID, "cpu copy_strided: accumulate into %s", gr_dtype_name(dst->dtype));
    j.convert = dst->dtype != src->dtype;
    if (a->ndim < 0 || a->ndim > GR_MAX_DIMS) return gr_fail(GR_ERR_INVALID, "cpu copy_strided: %d dims", a->ndim);
    /* Drop size-1 dims and fuse dims that are contiguous in both tensors. */
    int nd = 0;
    int64_t total = 1;
    for (int d = 0; d < a->ndim; d++) {
        total *= a->shape[d];
        if (a->shape[d] == 1) continue;
        if (nd && j.ds[nd - 1] == a->dst_strides[d] * a->shape[d] && j.ss[nd - 1] == a->src_strides[d] * a->shape[d]) {
            j.shape[nd - 1] *= a->shape[d];
            j.ds[nd - 1] = a->dst_strides[d];
            j.ss[nd - 1] = a->src_strides[d];
            continue;
        }
        j.shape[nd] = a->shape[d];
        j.ds[nd] = a->dst_strides[d];
        j.ss[nd] = a->src_strides[d];
        nd++;
    }
    if (total == 0) return GR_OK;
    if (nd == 0) {
        j.shape[0] = 1;
        j.ds[0] = j.ss[0] = 1;
        nd = 1;
    }
    j.nd = nd;
    int64_t inner = j.shape[nd - 1];
    cpu_pool_run(POOL(bk), total / inner, GRAIN / inner + 1, copy_task, &j);
    return GR_OK;
}

typedef struct { void *o; const void *x; gr_dtype od, xd; } conv_job;
static void conv_task(void *arg, int64_t b, int64_t e)
{
    conv_job *j = arg;
    if (j->xd == GR_I64) {
        const int64_t *x = j->x;
        int32_t *o = j->o;
        for (int64_t i = b; i < e; i++) o[i] = (int32_t)x[i];
        return;
    }
    if (j->od == GR_F32) {
        float *o = j->o;
        if (j->xd == GR_BF16) {
            const uint16_t *x = j->x;
            for (int64_t i = b; i < e; i++) {
                uint32_t u = (uint32_t)x[i] << 16;
                memcpy(o + i, &u, 4);
            }
        } else {
            for (int64_t i = b; i < e; i++) o[i] = load_f(j->x, j->xd, i);
        }
        return;
    }
    uint16_t *o = j->o;
    for (int64_t i = b; i < e; i++) {
        float v = load_f(j->x, j->xd, i);
        o[i] = j->od == GR_F16 ? gr_f32_to_f16(v) : gr_f32_to_bf16(v);
    }
}

gr_status cpu_convert(void *bk, const gr_tensor *out, const gr_tensor *in)
{
    int fo = out->dtype == GR_F32 || out->dtype == GR_F16 || out->dtype == GR_BF16;
    int fi = in->dtype == GR_F32 || in->dtype == GR_F16 || in->dtype == GR_BF16;
    if (!((fo && fi) || (in->dtype == GR_I64 && out->dtype == GR_I32)) || gr_numel(out) != gr_numel(in))
        return gr_fail(GR_ERR_INVALID, "cpu convert: %s to %s", gr_dtype_name(in->dtype), gr_dtype_name(out->dtype));
    if (in->dtype == out->dtype) {
        memmove(cpu_ptr(out), cpu_ptr(in), gr_nbytes(in));
        return GR_OK;
    }
    conv_job j = {cpu_ptr(out), cpu_ptr(in), out->dtype, in->dtype};
    cpu_pool_run(POOL(bk), gr_numel(out), GRAIN, conv_task, &j);
    return GR_OK;
}

/* ---------------------------------------------------------------- AdamW ---- */

typedef struct { const gr_adamw_args *a; float *p, *m, *v; const float *g; } adam_job;
static void adam_task(void *arg, int64_t b, int64_t e)
{
    adam_job *j = arg;
    const gr_adamw_args *a = j->a;
    float decay = 1.0f - a->lr * a->weight_decay;
    float step = (float)((double)a->lr / (double)a->bias_correction1);
    float bc2s = sqrtf(a->bias_correction2);
    for (int64_t i = b; i < e; i++) {
        float g = j->g[i] * a->grad_scale;
        float p = j->p[i] * decay;
        float m = j->m[i] + (1.0f - a->beta1) * (g - j->m[i]);
        float v = j->v[i] * a->beta2 + (1.0f - a->beta2) * g * g;
        float denom = sqrtf(v) / bc2s + a->eps;
        j->p[i] = p - step * (m / denom);
        j->m[i] = m;
        j->v[i] = v;
    }
}

gr_status cpu_adamw(void *bk, const gr_adamw_args *a)
{
    NEED(a->param, GR_F32, "adamw");
    NEED(a->grad, GR_F32, "adamw");
    NEED(a->m, GR_F32, "adamw");
    NEED(a->v, GR_F32, "adamw");
    adam_job j = {a, cpu_f32(a->param), cpu_f32(a->m), cpu_f32(a->v), cpu_f32(a->grad)};
    cpu_pool_run(POOL(bk), gr_numel(a->param), GRAIN, adam_task, &j);
    return GR_OK;
}

/* ---------------------------------------------------------------- rows ---- */

typedef struct { float *o; const void *t; gr_dtype dt; const int32_t *ids; int64_t dim; } gather_job;
static void gather_task(void *arg, int64_t b, int64_t e)
{
    gather_job *j = arg;
    for (int64_t r = b; r < e; r++) {
        float *o = j->o + r * j->dim;
        int64_t base = (int64_t)j->ids[r] * j->dim;
        if (j->dt == GR_F32) memcpy(o, (const float *)j->t + base, (size_t)j->dim * sizeof *o);
        else for (int64_t c = 0; c < j->dim; c++) o[c] = load_f(j->t, j->dt, base + c);
    }
}

static gr_status check_ids(const int32_t *ids, int64_t n, int64_t rows, int32_t skip, const char *k)
{
    for (int64_t i = 0; i < n; i++)
        if ((ids[i] < 0 || ids[i] >= rows) && ids[i] != skip)
            return gr_fail(GR_ERR_INVALID, "%s: id %d at position %lld is outside [0, %lld)", k, ids[i], (long long)i,
                           (long long)rows);
    return GR_OK;
}

gr_status cpu_gather_rows(void *bk, const gr_tensor *out, const gr_tensor *table, const gr_tensor *ids)
{
    NEED(out, GR_F32, "gather_rows");
    NEED(ids, GR_I32, "gather_rows");
    if (table->dtype != GR_F32 && table->dtype != GR_F16 && table->dtype != GR_BF16)
        return gr_fail(GR_ERR_INVALID, "cpu gather_rows: %s table", gr_dtype_name(table->dtype));
    int64_t n = gr_numel(ids), dim = table->shape[1];
    gr_status s = check_ids(ids->buffer->ptr ? (const int32_t *)cpu_ptr(ids) : NULL, n, table->shape[0], INT32_MIN,
                            "embedding");
    if (s != GR_OK) return s;
    gather_job j = {cpu_f32(out), cpu_ptr(table), table->dtype, cpu_ptr(ids), dim};
    cpu_pool_run(POOL(bk), n, GRAIN / (dim + 1) + 1, gather_task, &j);
    return GR_OK;
}

typedef struct { float *t; const float *d; const int32_t *ids; int64_t n, dim; int32_t skip; } scatter_job;
/* Threads own column ranges, so rows with the same id never race. */
static void scatter_task(void *arg, int64_t b, int64_t e)
{
    scatter_job *j = arg;
    for (int64_t r = 0; r < j->n; r++) {
        if (j->ids[r] == j->skip) continue;
        float *t = j->t + (int64_t)j->ids[r] * j->dim;
        const float *d = j->d + r * j->dim;
        for (int64_t c = b; c < e; c++) t[c] += d[c];
    }
}

gr_status cpu_scatter_add_rows(void *bk, const gr_tensor *dtable, const gr_tensor *ids, const gr_tensor *dout,
                               int32_t skip_id)
{
    NEED(dtable, GR_F32, "scatter_add_rows");
    NEED(ids, GR_I32, "scatter_add_rows");
    NEED(dout, GR_F32, "scatter_add_rows");
    int64_t n = gr_numel(ids), dim = dtable->shape[1];
    gr_status s = check_ids(cpu_ptr(ids), n, dtable->shape[0], skip_id, "embedding backward");
    if (s != GR_OK) return s;
    scatter_job j = {cpu_f32(dtable), cpu_f32(dout), cpu_ptr(ids), n, dim, skip_id};
    cpu_pool_run(POOL(bk), dim, 64 + GRAIN / (n + 1), scatter_task, &j);
    return GR_OK;
}
