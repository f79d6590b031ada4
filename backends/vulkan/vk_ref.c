/* Host reference of every kernel, written for clarity, not speed: plain loops, reductions in
 * double. It runs on "host tensors" whose buffer pointer is plain memory (data = (char *)
 * buffer + offset). debug_check recomputes each op with it; the tests compare against it. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vk_internal.h"

static void *data(const gr_tensor *t) { return (char *)t->buffer + t->offset; }
static float *fd(const gr_tensor *t) { return data(t); }
static int32_t *id(const gr_tensor *t) { return data(t); }

static gr_status ref_fill(void *ctx, const gr_tensor *t, float value)
{
    (void)ctx;
    int64_t n = gr_numel(t);
    for (int64_t i = 0; i < n; i++) {
        if (t->dtype == GR_I32) id(t)[i] = (int32_t)value;
        else fd(t)[i] = value;
    }
    return GR_OK;
}

static gr_status ref_matmul(void *ctx, const gr_matmul_args *a)
{
    (void)ctx;
    for (int64_t b = 0; b < a->batch; b++) {
        const float *A = fd(a->a) + b * a->stride_a, *B = fd(a->b) + b * a->stride_b;
        float *C = fd(a->c) + b * a->stride_c;
        for (int64_t i = 0; i < a->m; i++)
            for (int64_t j = 0; j < a->n; j++) {
                double s = 0;
                for (int64_t p = 0; p < a->k; p++) {
                    float x = a->trans_a ? A[p * a->lda + i] : A[i * a->lda + p];
                    float y = a->trans_b ? B[j * a->ldb + p] : B[p * a->ldb + j];
                    s += (double)x * y;
                }
                double r = a->alpha * s;
                if (a->beta != 0.0f) r += (double)a->beta * C[i * a->ldc + j];
                C[i * a->ldc + j] = (float)r;
            }
    }
    return GR_OK;
}

/* Offset of linear index i of `out`'s shape inside t (broadcast dims have stride 0). */
static int64_t bcast_index(const gr_tensor *out, const gr_tensor *t, int64_t i)
{
    int64_t off = 0, stride = 1;
    for (int d = out->ndim - 1; d >= 0; d--) {
        int64_t k = i % out->shape[d];
        i /= out->shape[d];
        if (t->shape[d] != 1) off += k * stride;
        stride *= t->shape[d];
    }
    return off;
}

static gr_status ref_binary(void *ctx, gr_binary_op op, const gr_tensor *out, const gr_tensor *a, const gr_tensor *b)
{
    (void)ctx;
    int64_t n = gr_numel(out);
    for (int64_t i = 0; i < n; i++) {
        float x = fd(a)[bcast_index(out, a, i)], y = fd(b)[bcast_index(out, b, i)];
        fd(out)[i] = op == GR_BIN_ADD ? x + y : op == GR_BIN_SUB ? x - y : x * y;
    }
    return GR_OK;
}

static gr_status ref_scale(void *ctx, const gr_tensor *out, const gr_tensor *in, float alpha, int acc)
{
    (void)ctx;
    int64_t n = gr_numel(out);
    for (int64_t i = 0; i < n; i++) fd(out)[i] = alpha * fd(in)[i] + (acc ? fd(out)[i] : 0.0f);
    return GR_OK;
}

static gr_status ref_reduce_to(void *ctx, const gr_tensor *out, const gr_tensor *in)
{
    (void)ctx;
    int64_t no = gr_numel(out), ni = gr_numel(in);
    double *acc = calloc((size_t)(no ? no : 1), sizeof *acc);
    if (!acc) return gr_fail(GR_ERR_NOMEM, "reference: out of memory");
    for (int64_t i = 0; i < ni; i++) acc[bcast_index(in, out, i)] += fd(in)[i];
    for (int64_t i = 0; i < no; i++) fd(out)[i] = (float)acc[i];
    free(acc);
    return GR_OK;
}

static gr_status ref_sum_squares(void *ctx, const gr_tensor *out, const gr_tensor *in)
{
    (void)ctx;
    double s = 0;
    int64_t n = gr_numel(in);
    for (int64_t i = 0; i < n; i++) s += (double)fd(in)[i] * fd(in)[i];
    fd(out)[0] = (float)s;
    return GR_OK;
}

static double act(gr_unary_op op, double x)
{
    switch (op) {
    case GR_ACT_RELU: return x > 0 ? x : 0;
    case GR_ACT_GELU_ERF: return 0.5 * x * (1 + erf(x / sqrt(2.0)));
    case GR_ACT_GELU_TANH: return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    case GR_ACT_QUICK_GELU: return x / (1 + exp(-1.702 * x));
    case GR_ACT_SILU: return x / (1 + exp(-x));
    case GR_ACT_SIGMOID: return 1 / (1 + exp(-x));
    default: return tanh(x);
    }
}

static double act_grad(gr_unary_op op, double x)
{
    switch (op) {
    case GR_ACT_RELU: return x > 0 ? 1 : 0;
    case GR_ACT_GELU_ERF: return 0.5 * (1 + erf(x / sqrt(2.0))) + x * exp(-0.5 * x * x) / sqrt(2 * M_PI);
    case GR_ACT_GELU_TANH: {
        double k = sqrt(2 / M_PI), t = tanh(k * (x + 0.044715 * x * x * x));
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x);
    }
    case GR_ACT_QUICK_GELU: { double s = 1 / (1 + exp(-1.702 * x)); return s + 1.702 * x * s * (1 - s); }
    case GR_ACT_SILU: { double s = 1 / (1 + exp(-x)); return s + x * s * (1 - s); }
    case GR_ACT_SIGMOID: { double s = 1 / (1 + exp(-x)); return s * (1 - s); }
    default: { double t = tanh(x); return 1 - t * t; }
    }
}

static gr_status ref_unary(void *ctx, gr_unary_op op, const gr_tensor *out, const gr_tensor *in)
{
    (void)ctx;
    int64_t n = gr_numel(out);
    for (int64_t i = 0; i < n; i++) fd(out)[i] = (float)act(op, fd(in)[i]);
    return GR_OK;
}

static gr_status ref_unary_backward(void *ctx, gr_unary_op op, const gr_tensor *dx, const gr_tensor *x,
                                    const gr_tensor *dy)
{
    (void)ctx;
    int64_t n = gr_numel(dx);
    for (int64_t i = 0; i < n; i++) fd(dx)[i] = (float)(fd(dy)[i] * act_grad(op, fd(x)[i]));
    return GR_OK;
}

static float load_any(const gr_tensor *t, int64_t i)
{
    float f;
    gr_convert_to_f32(&f, (const char *)data(t) + i * (int64_t)gr_dtype_size(t->dtype), t->dtype, 1);
    return f;
}

static gr_status ref_gather_rows(void *ctx, const gr_tensor *out, const gr_tensor *table, const gr_tensor *ids)
{
    (void)ctx;
    int64_t rows = table->shape[0], dim = table->shape[1], n = gr_numel(ids);
    for (int64_t i = 0; i < n; i++) {
        int32_t r = id(ids)[i];
        if (r < 0 || r >= rows)
            return gr_fail(GR_ERR_INVALID, "gather_rows: id %d at position %lld is outside [0, %lld)", r,
                           (long long)i, (long long)rows);
        for (int64_t j = 0; j < dim; j++) fd(out)[i * dim + j] = load_any(table, r * dim + j);
    }
    return GR_OK;
}

static gr_status ref_scatter_add_rows(void *ctx, const gr_tensor *dtable, const gr_tensor *ids, const gr_tensor *dout,
                                      int32_t skip_id)
{
    (void)ctx;
    int64_t rows = dtable->shape[0], dim = dtable->shape[1], n = gr_numel(ids);
    for (int64_t i = 0; i < n; i++) {
        int32_t r = id(ids)[i];
        if (r == skip_id) continue;
        if (r < 0 || r >= rows)
            return gr_fail(GR_ERR_INVALID, "scatter_add_rows: id %d at position %lld is outside [0, %lld)", r,
                           (long long)i, (long long)rows);
        for (int64_t j = 0; j < dim; j++) fd(dtable)[r * dim + j] += fd(dout)[i * dim + j];
    }
    return GR_OK;
}

static void rows_of(const gr_tensor *x, int64_t *rows, int64_t *d)
{
    *d = x->shape[x->ndim - 1];
    *rows = *d ? gr_numel(x) / *d : 0;
}

static gr_status ref_layernorm(void *ctx, const gr_tensor *out, const gr_tensor *mean, const gr_tensor *rstd,
                               const gr_tensor *x, const gr_tensor *w, const gr_tensor *b, float eps)
{
    (void)ctx;
    int64_t rows, d;
    rows_of(x, &rows, &d);
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = fd(x) + r * d;
        double mu = 0, var = 0;
        for (int64_t j = 0; j < d; j++) mu += xr[j];
        mu /= (double)d;
        for (int64_t j = 0; j < d; j++) var += (xr[j] - mu) * (xr[j] - mu);
        double rs = 1 / sqrt(var / (double)d + eps);
        for (int64_t j = 0; j < d; j++)
            fd(out)[r * d + j] = (float)((xr[j] - mu) * rs * (w ? fd(w)[j] : 1) + (b ? fd(b)[j] : 0));
        fd(mean)[r] = (float)mu;
        fd(rstd)[r] = (float)rs;
    }
    return GR_OK;
}

static gr_status ref_layernorm_backward(void *ctx, const gr_tensor *dx, const gr_tensor *dw, const gr_tensor *db,
                                        const gr_tensor *dy, const gr_tensor *x, const gr_tensor *w,
                                        const gr_tensor *mean, const gr_tensor *rstd)
{
    (void)ctx;
    int64_t rows, d;
    rows_of(x, &rows, &d);
    double *gw = calloc((size_t)(2 * d + 1), sizeof *gw), *gb = gw + d;
    if (!gw) return gr_fail(GR_ERR_NOMEM, "reference: out of memory");
    for (int64_t r = 0; r < rows; r++) {
        double mu = fd(mean)[r], rs = fd(rstd)[r], mg = 0, mgx = 0;
        for (int64_t j = 0; j < d; j++) {
            double g = fd(dy)[r * d + j] * (w ? fd(w)[j] : 1), xh = (fd(x)[r * d + j] - mu) * rs;
            mg += g;
            mgx += g * xh;
            gw[j] += fd(dy)[r * d + j] * xh;
            gb[j] += fd(dy)[r * d + j];
        }
        mg /= (double)d;
        mgx /= (double)d;
        if (dx)
            for (int64_t j = 0; j < d; j++) {
                double g = fd(dy)[r * d + j] * (w ? fd(w)[j] : 1), xh = (fd(x)[r * d + j] - mu) * rs;
                fd(dx)[r * d + j] = (float)(rs * (g - mg - xh * mgx));
            }
    }
    for (int64_t j = 0; j < d; j++) {
        if (dw) fd(dw)[j] = (float)gw[j];
        if (db) fd(db)[j] = (float)gb[j];
    }
    free(gw);
    return GR_OK;
}

static gr_status ref_rmsnorm(void *ctx, const gr_tensor *out, const gr_tensor *rstd, const gr_tensor *x,
                             const gr_tensor *w, float eps)
{
    (void)ctx;
    int64_t rows, d;
    rows_of(x, &rows, &d);
    for (int64_t r = 0; r < rows; r++) {
        double s = 0;
        for (int64_t j = 0; j < d; j++) s += (double)fd(x)[r * d + j] * fd(x)[r * d + j];
        double rs = 1 / sqrt(s / (double)d + eps);
        for (int64_t j = 0; j < d; j++) fd(out)[r * d + j] = (float)(fd(x)[r * d + j] * rs * (w ? fd(w)[j] : 1));
        fd(rstd)[r] = (float)rs;
    }
    return GR_OK;
}

static gr_status ref_rmsnorm_backward(void *ctx, const gr_tensor *dx, const gr_tensor *dw, const gr_tensor *dy,
                                      const gr_tensor *x, const gr_tensor *w, const gr_tensor *rstd)
{
    (void)ctx;
    int64_t rows, d;
    rows_of(x, &rows, &d);
    double *gw = calloc((size_t)(d + 1), sizeof *gw);
    if (!gw) return gr_fail(GR_ERR_NOMEM, "reference: out of memory");
    for (int64_t r = 0; r < rows; r++) {
        double rs = fd(rstd)[r], mgx = 0;
        for (int64_t j = 0; j < d; j++) {
            double xh = fd(x)[r * d + j] * rs;
            mgx += fd(dy)[r * d + j] * (w ? fd(w)[j] : 1) * xh;
            gw[j] += fd(dy)[r * d + j] * xh;
        }
        mgx /= (double)d;
        if (dx)
            for (int64_t j = 0; j < d; j++) {
                double g = fd(dy)[r * d + j] * (w ? fd(w)[j] : 1);
                fd(dx)[r * d + j] = (float)(rs * (g - fd(x)[r * d + j] * rs * mgx));
            }
    }
    if (dw)
        for (int64_t j = 0; j < d; j++) fd(dw)[j] = (float)gw[j];
    free(gw);
    return GR_OK;
}

static gr_status ref_softmax(void *ctx, const gr_tensor *out, const gr_tensor *in)
{
    (void)ctx;
    int64_t rows, n;
    rows_of(in, &rows, &n);
    for (int64_t r = 0; r < rows; r++) {
        const float *x = fd(in) + r * n;
        float m = -FLT_MAX;
        for (int64_t j = 0; j < n; j++) m = x[j] > m ? x[j] : m;
        double s = 0;
        for (int64_t j = 0; j < n; j++) s += exp((double)x[j] - m);
        for (int64_t j = 0; j < n; j++) fd(out)[r * n + j] = (float)(exp((double)x[j] - m) / s);
    }
    return GR_OK;
}

static gr_status ref_softmax_backward(void *ctx, const gr_tensor *dx, const gr_tensor *y, const gr_tensor *dy)
{
    (void)ctx;
    int64_t rows, n;
    rows_of(y, &rows, &n);
    for (int64_t r = 0; r < rows; r++) {
        double dot = 0;
        for (int64_t j = 0; j < n; j++) dot += (double)fd(dy)[r * n + j] * fd(y)[r * n + j];
        for (int64_t j = 0; j < n; j++) fd(dx)[r * n + j] = (float)(fd(y)[r * n + j] * (fd(dy)[r * n + j] - dot));
    }
    return GR_OK;
}

static gr_status ref_rope(void *ctx, const gr_tensor *out, const gr_tensor *x, const gr_tensor *cos,
                          const gr_tensor *sin, int rot_dim, int inverse)
{
    (void)ctx;
    int64_t BT = x->shape[0] * x->shape[1], H = x->shape[2], D = x->shape[3], h = rot_dim / 2;
    for (int64_t r = 0; r < BT; r++)
        for (int64_t hh = 0; hh < H; hh++) {
            const float *xi = fd(x) + (r * H + hh) * D;
            float *o = fd(out) + (r * H + hh) * D;
            float tmp[2];
            for (int64_t e = 0; e < h; e++) {
                double c = fd(cos)[r * h + e], s = fd(sin)[r * h + e] * (inverse ? -1 : 1);
                tmp[0] = (float)(xi[e] * c - xi[e + h] * s);
                tmp[1] = (float)(xi[e + h] * c + xi[e] * s);
                o[e] = tmp[0];
                o[e + h] = tmp[1];
            }
            for (int64_t e = rot_dim; e < D; e++) o[e] = xi[e];
        }
    return GR_OK;
}

static gr_status ref_copy_strided(void *ctx, const gr_copy_args *a)
{
    (void)ctx;
    int64_t n = 1;
    for (int k = 0; k < a->ndim; k++) n *= a->shape[k];
    size_t ds = gr_dtype_size(a->dst->dtype), ss = gr_dtype_size(a->src->dtype);
    for (int64_t i = 0; i < n; i++) {
        int64_t rem = i, di = 0, si = 0;
        for (int k = a->ndim - 1; k >= 0; k--) {
            int64_t q = rem % a->shape[k];
            rem /= a->shape[k];
            di += q * a->dst_strides[k];
            si += q * a->src_strides[k];
        }
        char *dp = (char *)data(a->dst) + di * (int64_t)ds;
        const char *sp = (const char *)data(a->src) + si * (int64_t)ss;
        gr_dtype dt = a->dst->dtype;
        if (!a->accumulate && dt == a->src->dtype) {
            memcpy(dp, sp, ds);
        } else if (dt == GR_F32) {
            float v;
            gr_convert_to_f32(&v, sp, a->src->dtype, 1);
            *(float *)dp = a->accumulate ? *(float *)dp + v : v;
        } else if (dt == GR_I32) {
            *(int32_t *)dp += *(const int32_t *)sp;
        } else if (dt == GR_F16 || dt == GR_BF16) {
            float x, y;
            gr_convert_to_f32(&x, dp, dt, 1);
            gr_convert_to_f32(&y, sp, dt, 1);
            uint16_t h = dt == GR_F16 ? gr_f32_to_f16(x + y) : gr_f32_to_bf16(x + y);
            memcpy(dp, &h, 2);
        } else if (dt == GR_U8) {
            *(uint8_t *)dp = (uint8_t)(*(uint8_t *)dp + *(const uint8_t *)sp);
        } else if (dt == GR_I64) {
            *(int64_t *)dp = (int64_t)((uint64_t) * (int64_t *)dp + (uint64_t) * (const int64_t *)sp);
        } else if (dt == GR_F64) {
            *(double *)dp += *(const double *)sp;
        }
    }
    return GR_OK;
}

static gr_status ref_convert(void *ctx, const gr_tensor *out, const gr_tensor *in)
{
    (void)ctx;
    int64_t n = gr_numel(out);
    for (int64_t i = 0; i < n; i++) {
        if (in->dtype == GR_I64) {
            id(out)[i] = (int32_t)((const int64_t *)data(in))[i];
            continue;
        }
        if (in->dtype == out->dtype) {
            size_t s = gr_dtype_size(in->dtype);
            memcpy((char *)data(out) + i * (int64_t)s, (const char *)data(in) + i * (int64_t)s, s);
            continue;
        }
        float f = load_any(in, i);
        if (out->dtype == GR_F32) fd(out)[i] = f;
        else ((uint16_t *)data(out))[i] = out->dtype == GR_F16 ? gr_f32_to_f16(f) : gr_f32_to_bf16(f);
    }
    return GR_OK;
}

static gr_status ce(const gr_tensor *out, const gr_tensor *logits, const gr_tensor *labels, int32_t ignore,
                    float scale, int bwd)
{
    int64_t n = logits->shape[0], v = logits->shape[1];
    for (int64_t r = 0; r < n; r++) {
        const float *x = fd(logits) + r * v;
        int32_t y = id(labels)[r];
        if (y == ignore) {
            if (bwd) memset(fd(out) + r * v, 0, (size_t)v * 4);
            else fd(out)[r] = 0;
            continue;
        }
        if (y < 0 || y >= v)
            return gr_fail(GR_ERR_INVALID, "%s: label %d at position %lld is outside [0, %lld)",
                           bwd ? "cross_entropy_backward" : "cross_entropy", y, (long long)r, (long long)v);
        float m = -FLT_MAX;
        for (int64_t j = 0; j < v; j++) m = x[j] > m ? x[j] : m;
        double s = 0;
        for (int64_t j = 0; j < v; j++) s += exp((double)x[j] - m);
        if (!bwd) {
            fd(out)[r] = (float)(m + log(s) - x[y]);
        } else {
            for (int64_t j = 0; j < v; j++)
                fd(out)[r * v + j] = (float)(scale * (exp((double)x[j] - m) / s - (j == y ? 1.0 : 0.0)));
        }
    }
    return GR_OK;
}

static gr_status ref_cross_entropy(void *ctx, const gr_tensor *loss, const gr_tensor *logits, const gr_tensor *labels,
                                   int32_t ignore_index)
{
    (void)ctx;
    return ce(loss, logits, labels, ignore_index, 1.0f, 0);
}

static gr_status ref_cross_entropy_backward(void *ctx, const gr_tensor *dlogits, const gr_tensor *logits,
                                            const gr_tensor *labels, int32_t ignore_index, float scale)
{
    (void)ctx;
    return ce(dlogits, logits, labels, ignore_index, scale, 1);
}

static gr_status ref_adamw(void *ctx, const gr_adamw_args *a)
{
    (void)ctx;
    int64_t n = gr_numel(a->param);
    float *p = fd(a->param), *m = fd(a->m), *v = fd(a->v);
    const float *g = fd(a->grad);
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i] * a->grad_scale;
        float pi = p[i] - a->lr * a->weight_decay * p[i];
        m[i] = a->beta1 * m[i] + (1 - a->beta1) * gi;
        v[i] = a->beta2 * v[i] + (1 - a->beta2) * gi * gi;
        p[i] = pi - a->lr * (m[i] / a->bias_correction1) / (sqrtf(v[i] / a->bias_correction2) + a->eps);
    }
    return GR_OK;
}

const gr_backend_iface vk_ref_iface = {
    .struct_size = sizeof(gr_backend_iface),
    .fill = ref_fill,
    .matmul = ref_matmul,
    .binary = ref_binary,
    .scale = ref_scale,
    .reduce_to = ref_reduce_to,
    .sum_squares = ref_sum_squares,
    .unary = ref_unary,
    .unary_backward = ref_unary_backward,
    .gather_rows = ref_gather_rows,
    .scatter_add_rows = ref_scatter_add_rows,
    .layernorm = ref_layernorm,
    .layernorm_backward = ref_layernorm_backward,
    .rmsnorm = ref_rmsnorm,
    .rmsnorm_backward = ref_rmsnorm_backward,
    .softmax = ref_softmax,
    .softmax_backward = ref_softmax_backward,
    .rope = ref_rope,
    .copy_strided = ref_copy_strided,
    .convert = ref_convert,
    .cross_entropy = ref_cross_entropy,
    .cross_entropy_backward = ref_cross_entropy_backward,
    .adamw = ref_adamw,
};
