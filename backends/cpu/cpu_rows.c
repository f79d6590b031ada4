/* Row kernels of the CPU backend: norms, softmax, RoPE, cross-entropy. Threads split rows;
 * parameter gradients (dw, db) are column sums done in a second, column-split pass, so no
 * two threads ever write the same element and results do not depend on the thread count. */
#include <math.h>
#include <string.h>

#include "cpu.h"

#define GRAIN 16384

static cpu_pool *POOL(void *b) { return ((cpu_backend *)b)->pool; }
static int64_t rows_of(const gr_tensor *t) { return t->shape[0]; }
static int64_t cols_of(const gr_tensor *t) { return t->ndim > 1 ? t->shape[t->ndim - 1] : 1; }
static int64_t row_grain(int64_t d) { return GRAIN / (d + 1) + 1; }

static gr_status f32s(const char *k, const gr_tensor *a, const gr_tensor *b, const gr_tensor *c, const gr_tensor *d)
{
    const gr_tensor *t[4] = {a, b, c, d};
    for (int i = 0; i < 4; i++)
        if (t[i] && t[i]->dtype != GR_F32)
            return gr_fail(GR_ERR_INVALID, "cpu %s: %s operand where F32 is required", k, gr_dtype_name(t[i]->dtype));
    return GR_OK;
}
#define CHECK(k, a, b, c, d)                               \
    do {                                                   \
        gr_status s_ = f32s((k), (a), (b), (c), (d));      \
        if (s_ != GR_OK) return s_;                        \
    } while (0)

/* ---------------------------------------------------------------- layernorm ---- */

typedef struct {
    float *out, *mean, *rstd, *dx, *dw, *db;
    const float *x, *w, *b, *dy, *cmean, *crstd;
    int64_t rows, d;
    float eps;
} norm_job;

static void ln_task(void *arg, int64_t rb, int64_t re)
{
    norm_job *j = arg;
    int64_t d = j->d;
    for (int64_t r = rb; r < re; r++) {
        const float *x = j->x + r * d;
        float *o = j->out + r * d;
        double s = 0, ss = 0;
        for (int64_t i = 0; i < d; i++) s += x[i];
        double mu = s / (double)d;
        for (int64_t i = 0; i < d; i++) {
            double c = x[i] - mu;
            ss += c * c;
        }
        float m = (float)mu, rs = (float)(1.0 / sqrt(ss / (double)d + (double)j->eps));
        j->mean[r] = m;
        j->rstd[r] = rs;
        for (int64_t i = 0; i < d; i++) {
            float v = (x[i] - m) * rs;
            if (j->w) v *= j->w[i];
            if (j->b) v += j->b[i];
            o[i] = v;
        }
    }
}

gr_status cpu_layernorm(void *bk, const gr_tensor *out, const gr_tensor *mean, const gr_tensor *rstd,
                        const gr_tensor *x, const gr_tensor *w, const gr_tensor *b, float eps)
{
    CHECK("layernorm", out, mean, rstd, x);
    CHECK("layernorm", w, b, NULL, NULL);
    norm_job j = {.out = cpu_f32(out), .mean = cpu_f32(mean), .rstd = cpu_f32(rstd), .x = cpu_f32(x),
                  .w = w ? cpu_f32(w) : NULL, .b = b ? cpu_f32(b) : NULL, .rows = rows_of(x), .d = cols_of(x), .eps = eps};
    cpu_pool_run(POOL(bk), j.rows, row_grain(j.d), ln_task, &j);
    return GR_OK;
}

static void ln_bwd_dx_task(void *arg, int64_t rb, int64_t re)
{
    norm_job *j = arg;
    int64_t d = j->d;
    for (int64_t r = rb; r < re; r++) {
        const float *x = j->x + r * d, *dy = j->dy + r * d;
        float m = j->cmean[r], rs = j->crstd[r];
        double sg = 0, sgx = 0;
        for (int64_t i = 0; i < d; i++) {
            float g = j->w ? dy[i] * j->w[i] : dy[i];
            float xh = (x[i] - m) * rs;
            sg += g;
            sgx += (double)g * xh;
        }
        float mg = (float)(sg / (double)d), mgx = (float)(sgx / (double)d);
        float *dx = j->dx + r * d;
        for (int64_t i = 0; i < d; i++) {
            float g = j->w ? dy[i] * j->w[i] : dy[i];
            float xh = (x[i] - m) * rs;
            dx[i] = rs * (g - mg - xh * mgx);
        }
    }
}

static void ln_bwd_dw_task(void *arg, int64_t cb, int64_t ce)
{
    norm_job *j = arg;
    int64_t d = j->d;
    for (int64_t c = cb; c < ce; c++) {
        if (j->dw) j->dw[c] = 0;
        if (j->db) j->db[c] = 0;
    }
    for (int64_t r = 0; r < j->rows; r++) {
        const float *x = j->x + r * d, *dy = j->dy + r * d;
        float m = j->cmean[r], rs = j->crstd[r];
        if (j->dw)
            for (int64_t c = cb; c < ce; c++) j->dw[c] += dy[c] * ((x[c] - m) * rs);
        if (j->db)
            for (int64_t c = cb; c < ce; c++) j->db[c] += dy[c];
    }
}

gr_status cpu_layernorm_backward(void *bk, const gr_tensor *dx, const gr_tensor *dw, const gr_tensor *db,
                                 const gr_tensor *dy, const gr_tensor *x, const gr_tensor *w, const gr_tensor *mean,
                                 const gr_tensor *rstd)
{
    CHECK("layernorm_backward", dx, dw, db, dy);
    CHECK("layernorm_backward", x, w, mean, rstd);
    norm_job j = {.dx = dx ? cpu_f32(dx) : NULL, .dw = dw ? cpu_f32(dw) : NULL, .db = db ? cpu_f32(db) : NULL,
                  .dy = cpu_f32(dy), .x = cpu_f32(x), .w = w ? cpu_f32(w) : NULL, .cmean = cpu_f32(mean),
                  .crstd = cpu_f32(rstd), .rows = rows_of(x), .d = cols_of(x)};
    if (j.dx) cpu_pool_run(POOL(bk), j.rows, row_grain(j.d), ln_bwd_dx_task, &j);
    if (j.dw || j.db) cpu_pool_run(POOL(bk), j.d, 64 + GRAIN / (j.rows + 1), ln_bwd_dw_task, &j);
    return GR_OK;
}

/* ---------------------------------------------------------------- rmsnorm ---- */

static void rms_task(void *arg, int64_t rb, int64_t re)
{
    norm_job *j = arg;
    int64_t d = j->d;
    for (int64_t r = rb; r < re; r++) {
        const float *x = j->x + r * d;
        float *o = j->out + r * d;
        double ss = 0;
        for (int64_t i = 0; i < d; i++) ss += (double)x[i] * x[i];
        float rs = (float)(1.0 / sqrt(ss / (double)d + (double)j->eps));
        j->rstd[r] = rs;
        for (int64_t i = 0; i < d; i++) o[i] = j->w ? j->w[i] * (x[i] * rs) : x[i] * rs;
    }
}

gr_status cpu_rmsnorm(void *bk, const gr_tensor *out, const gr_tensor *rstd, const gr_tensor *x, const gr_tensor *w,
                      float eps)
{
    CHECK("rmsnorm", out, rstd, x, w);
    norm_job j = {.out = cpu_f32(out), .rstd = cpu_f32(rstd), .x = cpu_f32(x), .w = w ? cpu_f32(w) : NULL,
                  .rows = rows_of(x), .d = cols_of(x), .eps = eps};
    cpu_pool_run(POOL(bk), j.rows, row_grain(j.d), rms_task, &j);
    return GR_OK;
}

static void rms_bwd_dx_task(void *arg, int64_t rb, int64_t re)
{
    norm_job *j = arg;
    int64_t d = j->d;
    for (int64_t r = rb; r < re; r++) {
        const float *x = j->x + r * d, *dy = j->dy + r * d;
        float rs = j->crstd[r];
        double sgx = 0;
        for (int64_t i = 0; i < d; i++) sgx += (double)(j->w ? dy[i] * j->w[i] : dy[i]) * x[i];
        float k = (float)(sgx / (double)d) * rs * rs * rs;
        float *dx = j->dx + r * d;
        for (int64_t i = 0; i < d; i++) dx[i] = rs * (j->w ? dy[i] * j->w[i] : dy[i]) - x[i] * k;
    }
}

static void rms_bwd_dw_task(void *arg, int64_t cb, int64_t ce)
{
    norm_job *j = arg;
    int64_t d = j->d;
    for (int64_t c = cb; c < ce; c++) j->dw[c] = 0;
    for (int64_t r = 0; r < j->rows; r++) {
        const float *x = j->x + r * d, *dy = j->dy + r * d;
        float rs = j->crstd[r];
        for (int64_t c = cb; c < ce; c++) j->dw[c] += dy[c] * (x[c] * rs);
    }
}

gr_status cpu_rmsnorm_backward(void *bk, const gr_tensor *dx, const gr_tensor *dw, const gr_tensor *dy,
                               const gr_tensor *x, const gr_tensor *w, const gr_tensor *rstd)
{
    CHECK("rmsnorm_backward", dx, dw, dy, x);
    CHECK("rmsnorm_backward", w, rstd, NULL, NULL);
    norm_job j = {.dx = dx ? cpu_f32(dx) : NULL, .dw = dw ? cpu_f32(dw) : NULL, .dy = cpu_f32(dy), .x = cpu_f32(x),
                  .w = w ? cpu_f32(w) : NULL, .crstd = cpu_f32(rstd), .rows = rows_of(x), .d = cols_of(x)};
    if (j.dx) cpu_pool_run(POOL(bk), j.rows, row_grain(j.d), rms_bwd_dx_task, &j);
    if (j.dw) cpu_pool_run(POOL(bk), j.d, 64 + GRAIN / (j.rows + 1), rms_bwd_dw_task, &j);
    return GR_OK;
}

/* ---------------------------------------------------------------- softmax ---- */

static void softmax_task(void *arg, int64_t rb, int64_t re)
{
    norm_job *j = arg;
    int64_t d = j->d;
    for (int64_t r = rb; r < re; r++) {
        const float *x = j->x + r * d;
        float *o = j->out + r * d;
        float mx = cpu_max(x, d);
        cpu_exp_shift(o, x, mx, 1.0f, d);
        float inv = (float)(1.0 / cpu_sum_f64(o, d));
        for (int64_t i = 0; i < d; i++) o[i] *= inv;
    }
}

gr_status cpu_softmax(void *bk, const gr_tensor *out, const gr_tensor *in)
{
    CHECK("softmax", out, in, NULL, NULL);
    norm_job j = {.out = cpu_f32(out), .x = cpu_f32(in), .rows = gr_numel(in) / cols_of(in), .d = cols_of(in)};
    if (in->ndim == 1) j.rows = 1, j.d = in->shape[0];
    cpu_pool_run(POOL(bk), j.rows, row_grain(j.d), softmax_task, &j);
    return GR_OK;
}

static void softmax_bwd_task(void *arg, int64_t rb, int64_t re)
{
    norm_job *j = arg;
    int64_t d = j->d;
    for (int64_t r = rb; r < re; r++) {
        const float *y = j->x + r * d, *dy = j->dy + r * d;
        float *dx = j->dx + r * d;
        double s = 0;
        for (int64_t i = 0; i < d; i++) s += (double)dy[i] * y[i];
        float fs = (float)s;
        for (int64_t i = 0; i < d; i++) dx[i] = y[i] * (dy[i] - fs);
    }
}

gr_status cpu_softmax_backward(void *bk, const gr_tensor *dx, const gr_tensor *y, const gr_tensor *dy)
{
    CHECK("softmax_backward", dx, y, dy, NULL);
    norm_job j = {.dx = cpu_f32(dx), .x = cpu_f32(y), .dy = cpu_f32(dy), .rows = gr_numel(y) / cols_of(y),
                  .d = cols_of(y)};
    if (y->ndim == 1) j.rows = 1, j.d = y->shape[0];
    cpu_pool_run(POOL(bk), j.rows, row_grain(j.d), softmax_bwd_task, &j);
    return GR_OK;
}

/* ---------------------------------------------------------------- rope ---- */

typedef struct {
    float *o;
    const float *x, *c, *s;
    int64_t T, H, D;
    int rot;
    float sign;
} rope_job;

static void rope_task(void *arg, int64_t rb, int64_t re)
{
    rope_job *j = arg;
    int h2 = j->rot / 2;
    for (int64_t bt = rb; bt < re; bt++) {
        const float *c = j->c + bt * h2, *s = j->s + bt * h2;
        for (int64_t h = 0; h < j->H; h++) {
            const float *x = j->x + (bt * j->H + h) * j->D;
            float *o = j->o + (bt * j->H + h) * j->D;
            for (int i = 0; i < h2; i++) {
                float a = x[i], b = x[i + h2], si = j->sign * s[i];
                o[i] = a * c[i] - b * si;
                o[i + h2] = b * c[i] + a * si;
            }
            for (int64_t i = j->rot; i < j->D; i++) o[i] = x[i];
        }
    }
}

gr_status cpu_rope(void *bk, const gr_tensor *out, const gr_tensor *x, const gr_tensor *cos, const gr_tensor *sin,
                   int rot_dim, int inverse)
{
    CHECK("rope", out, x, cos, sin);
    if (x->ndim != 4 || rot_dim <= 0 || rot_dim % 2 || rot_dim > x->shape[3])
        return gr_fail(GR_ERR_INVALID, "cpu rope: bad shapes");
    rope_job j = {cpu_f32(out), cpu_f32(x), cpu_f32(cos), cpu_f32(sin), x->shape[1], x->shape[2], x->shape[3],
                  rot_dim, inverse ? -1.0f : 1.0f};
    int64_t bt = x->shape[0] * x->shape[1];
    cpu_pool_run(POOL(bk), bt, row_grain(j.H * j.D), rope_task, &j);
    return GR_OK;
}

/* ---------------------------------------------------------------- cross-entropy ---- */

typedef struct {
    float *loss, *dl;
    const float *x;
    const int32_t *lab;
    int64_t v;
    int32_t ignore;
    float scale;
} ce_job;

static double row_lse(const float *x, int64_t v, float *mx_out)
{
    float mx = cpu_max(x, v), buf[1024];
    /* exp of a non-positive argument, accurate to an ulp or two; the sum is kept in double. */
    double s = 0;
    for (int64_t i = 0; i < v; i += 1024) {
        int64_t n = v - i < 1024 ? v - i : 1024;
        cpu_exp_shift(buf, x + i, mx, 1.0f, n);
        s += cpu_sum_f64(buf, n);
    }
    *mx_out = mx;
    return s;
}

static void ce_task(void *arg, int64_t rb, int64_t re)
{
    ce_job *j = arg;
    for (int64_t r = rb; r < re; r++) {
        if (j->lab[r] == j->ignore) {
            j->loss[r] = 0.0f;
            continue;
        }
        const float *x = j->x + r * j->v;
        float mx;
        double s = row_lse(x, j->v, &mx);
        j->loss[r] = (float)((double)mx + log(s) - (double)x[j->lab[r]]);
    }
}

static void ce_bwd_task(void *arg, int64_t rb, int64_t re)
{
    ce_job *j = arg;
    for (int64_t r = rb; r < re; r++) {
        float *d = j->dl + r * j->v;
        if (j->lab[r] == j->ignore) {
            memset(d, 0, (size_t)j->v * sizeof *d);
            continue;
        }
        const float *x = j->x + r * j->v;
        float mx;
        double s = row_lse(x, j->v, &mx);
        float k = (float)((double)j->scale / s);
        cpu_exp_shift(d, x, mx, k, j->v);
        d[j->lab[r]] -= j->scale;
    }
}

static gr_status ce_labels(const int32_t *lab, int64_t n, int64_t v, int32_t ignore)
{
    for (int64_t i = 0; i < n; i++)
        if (lab[i] != ignore && (lab[i] < 0 || lab[i] >= v))
            return gr_fail(GR_ERR_INVALID, "cross_entropy: label %d at row %lld is outside [0, %lld)", lab[i],
                           (long long)i, (long long)v);
    return GR_OK;
}

gr_status cpu_cross_entropy(void *bk, const gr_tensor *loss, const gr_tensor *logits, const gr_tensor *labels,
                            int32_t ignore_index)
{
    CHECK("cross_entropy", loss, logits, NULL, NULL);
    if (labels->dtype != GR_I32) return gr_fail(GR_ERR_INVALID, "cpu cross_entropy: labels must be I32");
    int64_t n = rows_of(logits), v = cols_of(logits);
    gr_status s = ce_labels(cpu_ptr(labels), n, v, ignore_index);
    if (s != GR_OK) return s;
    ce_job j = {.loss = cpu_f32(loss), .x = cpu_f32(logits), .lab = cpu_ptr(labels), .v = v, .ignore = ignore_index};
    cpu_pool_run(POOL(bk), n, row_grain(v), ce_task, &j);
    return GR_OK;
}

gr_status cpu_cross_entropy_backward(void *bk, const gr_tensor *dlogits, const gr_tensor *logits,
                                     const gr_tensor *labels, int32_t ignore_index, float scale)
{
    CHECK("cross_entropy_backward", dlogits, logits, NULL, NULL);
    if (labels->dtype != GR_I32) return gr_fail(GR_ERR_INVALID, "cpu cross_entropy_backward: labels must be I32");
    int64_t n = rows_of(logits), v = cols_of(logits);
    gr_status s = ce_labels(cpu_ptr(labels), n, v, ignore_index);
    if (s != GR_OK) return s;
    ce_job j = {.dl = cpu_f32(dlogits), .x = cpu_f32(logits), .lab = cpu_ptr(labels), .v = v, .ignore = ignore_index,
                .scale = scale};
    cpu_pool_run(POOL(bk), n, row_grain(v), ce_bwd_task, &j);
    return GR_OK;
}
