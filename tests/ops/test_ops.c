/* Every operation of ops.h: forward against a float64 reference and backward against central
 * finite differences of that reference, over random shapes (odd sizes, broadcasting).
 * Usage: test_ops [BACKEND]  (default $GRAFT_TEST_BACKEND or cpu). */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define R(lo, hi) rng_int(lo, hi)

/* ---------------------------------------------------------------- matmul / linear ---- */

static gr_tensor *f_matmul(gr_ctx *ctx, gr_tensor **in, const op_case *c) { return gr_matmul(ctx, in[0], in[1], c->ta, c->tb); }

static void r_matmul(const op_case *c, double *const *in, double *out)
{
    int na = c->ndim[0], nb = c->ndim[1];
    int64_t m = c->shape[0][na - 2 + c->ta], k = c->shape[0][na - 1 - c->ta];
    int64_t n = c->shape[1][nb - 1 - c->tb];
    int64_t batch = numel_of(na - 2, c->shape[0]);
    int bc = nb == 2;
    for (int64_t bi = 0; bi < batch; bi++) {
        const double *A = in[0] + bi * m * k, *B = in[1] + (bc ? 0 : bi * k * n);
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double s = 0;
                for (int64_t p = 0; p < k; p++)
                    s += (c->ta ? A[p * m + i] : A[i * k + p]) * (c->tb ? B[j * k + p] : B[p * n + j]);
                out[(bi * m + i) * n + j] = s;
            }
    }
}

static void case_matmul(gr_ctx *ctx, int lead, int bcast, int ta, int tb, int param_b)
{
    op_case c = {.name = "matmul", .nin = 2, .fwd = f_matmul, .ref = r_matmul, .ta = ta, .tb = tb,
                 .diff = {1, 1}, .param = {0, param_b}};
    int64_t m = R(1, 7), k = R(1, 9), n = R(1, 6);
    int64_t L[2] = {R(1, 3), R(2, 3)};
    c.ndim[0] = lead + 2;
    for (int i = 0; i < lead; i++) c.shape[0][i] = L[i];
    c.shape[0][lead] = ta ? k : m;
    c.shape[0][lead + 1] = ta ? m : k;
    c.ndim[1] = bcast ? 2 : lead + 2;
    for (int i = 0; i < c.ndim[1] - 2; i++) c.shape[1][i] = L[i];
    c.shape[1][c.ndim[1] - 2] = tb ? n : k;
    c.shape[1][c.ndim[1] - 1] = tb ? k : n;
    char name[64];
    snprintf(name, sizeof name, "matmul lead%d%s%s%s%s", lead, bcast ? " bcast" : "", ta ? " ta" : "", tb ? " tb" : "",
             param_b ? " param" : "");
    c.name = name;
    check_case(ctx, &c);
}

static gr_tensor *f_linear(gr_ctx *ctx, gr_tensor **in, const op_case *c)
{
    return gr_linear(ctx, in[0], in[1], c->nin > 2 ? in[2] : NULL);
}

static void r_linear(const op_case *c, double *const *in, double *out)
{
    int64_t inn = c->shape[1][1], o = c->shape[1][0], rows = numel_of(c->ndim[0], c->shape[0]) / inn;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < o; j++) {
            double s = c->nin > 2 ? in[2][j] : 0;
            for (int64_t p = 0; p < inn; p++) s += in[0][r * inn + p] * in[1][j * inn + p];
            out[r * o + j] = s;
        }
}

static void case_linear(gr_ctx *ctx, int bias, gr_dtype wdt, int train_w)
{
    int64_t inn = R(1, 9), o = R(1, 7);
    op_case c = {.name = "linear", .nin = bias ? 3 : 2, .fwd = f_linear, .ref = r_linear, .ndim = {3, 2, 1},
                 .shape = {{R(1, 3), R(1, 4), inn}, {o, inn}, {o}}, .dt = {GR_F32, wdt, wdt},
                 .diff = {1, 0, 0}, .param = {0, train_w, train_w && bias}};
    char name[64];
    snprintf(name, sizeof name, "linear%s %s%s", bias ? "+bias" : "", gr_dtype_name(wdt), train_w ? " trainable" : " frozen");
    c.name = name;
    check_case(ctx, &c);
}

/* ---------------------------------------------------------------- element-wise ---- */

static gr_tensor *f_bin(gr_ctx *ctx, gr_tensor **in, const op_case *c)
{
    return c->times == 0 ? gr_add(ctx, in[0], in[1]) : c->times == 1 ? gr_sub(ctx, in[0], in[1]) : gr_mul(ctx, in[0], in[1]);
}

/* broadcast index of a flat output index */
static int64_t bidx(const op_case *c, int which, int64_t o)
{
    int nd = c->out_ndim, off = nd - c->ndim[which];
    int64_t idx = 0, stride = 1;
    for (int d = nd - 1; d >= 0; d--) {
        int64_t i = o % c->out_shape[d];
        o /= c->out_shape[d];
        if (d >= off) {
            int64_t s = c->shape[which][d - off];
            idx += (s == 1 ? 0 : i) * stride;
            stride *= s;
        }
    }
    return idx;
}

static void r_bin(const op_case *c, double *const *in, double *out)
{
    int64_t n = numel_of(c->out_ndim, c->out_shape);
    for (int64_t o = 0; o < n; o++) {
        double a = in[0][bidx(c, 0, o)], b = in[1][bidx(c, 1, o)];
        out[o] = c->times == 0 ? a + b : c->times == 1 ? a - b : a * b;
    }
}

static void case_binary(gr_ctx *ctx, int op, int nda, const int64_t *sa, int ndb, const int64_t *sb)
{
    static const char *names[] = {"add", "sub", "mul"};
    op_case c = {.name = names[op], .nin = 2, .fwd = f_bin, .ref = r_bin, .times = op, .ndim = {nda, ndb},
                 .diff = {1, 1}};
    memcpy(c.shape[0], sa, (size_t)nda * sizeof *sa);
    memcpy(c.shape[1], sb, (size_t)ndb * sizeof *sb);
    char name[96];
    int len = snprintf(name, sizeof name, "%s [", names[op]);
    for (int i = 0; i < nda; i++) len += snprintf(name + len, sizeof name - (size_t)len, "%s%lld", i ? "," : "", (long long)sa[i]);
    len += snprintf(name + len, sizeof name - (size_t)len, "] [");
    for (int i = 0; i < ndb; i++) len += snprintf(name + len, sizeof name - (size_t)len, "%s%lld", i ? "," : "", (long long)sb[i]);
    snprintf(name + len, sizeof name - (size_t)len, "]");
    c.name = name;
    check_case(ctx, &c);
}

static gr_tensor *f_scale(gr_ctx *ctx, gr_tensor **in, const op_case *c) { return gr_scale(ctx, in[0], c->f); }
static void r_scale(const op_case *c, double *const *in, double *out)
{
    for (int64_t i = 0; i < numel_of(c->ndim[0], c->shape[0]); i++) out[i] = c->f * in[0][i];
}

static gr_tensor *f_act(gr_ctx *ctx, gr_tensor **in, const op_case *c) { return gr_act(ctx, (gr_unary_op)c->times, in[0]); }
static double sig(double x) { return 1 / (1 + exp(-x)); }
static void r_act(const op_case *c, double *const *in, double *out)
{
    for (int64_t i = 0; i < numel_of(c->ndim[0], c->shape[0]); i++) {
        double x = in[0][i], y = 0;
        switch (c->times) {
        case GR_ACT_RELU: y = x > 0 ? x : 0; break;
        case GR_ACT_GELU_ERF: y = 0.5 * x * (1 + erf(x / sqrt(2.0))); break;
        case GR_ACT_GELU_TANH: y = 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x))); break;
        case GR_ACT_QUICK_GELU: y = x * sig(1.702 * x); break;
        case GR_ACT_SILU: y = x * sig(x); break;
        case GR_ACT_SIGMOID: y = sig(x); break;
        case GR_ACT_TANH: y = tanh(x); break;
        }
        out[i] = y;
    }
}

/* ---------------------------------------------------------------- rows ---- */

static gr_tensor *f_ln(gr_ctx *ctx, gr_tensor **in, const op_case *c)
{
    return gr_layernorm(ctx, in[0], c->nin > 1 ? in[1] : NULL, c->nin > 2 ? in[2] : NULL, c->f);
}
static void r_ln(const op_case *c, double *const *in, double *out)
{
    int64_t d = c->shape[0][c->ndim[0] - 1], rows = numel_of(c->ndim[0], c->shape[0]) / d;
    for (int64_t r = 0; r < rows; r++) {
        const double *x = in[0] + r * d;
        double mu = 0, var = 0;
        for (int64_t i = 0; i < d; i++) mu += x[i];
        mu /= d;
        for (int64_t i = 0; i < d; i++) var += (x[i] - mu) * (x[i] - mu);
        var /= d;
        for (int64_t i = 0; i < d; i++) {
            double v = (x[i] - mu) / sqrt(var + c->f);
            if (c->nin > 1) v *= in[1][i];
            if (c->nin > 2) v += in[2][i];
            out[r * d + i] = v;
        }
    }
}

static gr_tensor *f_rms(gr_ctx *ctx, gr_tensor **in, const op_case *c) { return gr_rmsnorm(ctx, in[0], c->nin > 1 ? in[1] : NULL, c->f); }
static void r_rms(const op_case *c, double *const *in, double *out)
{
    int64_t d = c->shape[0][c->ndim[0] - 1], rows = numel_of(c->ndim[0], c->shape[0]) / d;
    for (int64_t r = 0; r < rows; r++) {
        const double *x = in[0] + r * d;
        double ss = 0;
        for (int64_t i = 0; i < d; i++) ss += x[i] * x[i];
        double rs = 1 / sqrt(ss / d + c->f);
        for (int64_t i = 0; i < d; i++) out[r * d + i] = x[i] * rs * (c->nin > 1 ? in[1][i] : 1);
    }
}

/* softmax(x + mask): exercises the additive -FLT_MAX mask through add's broadcast */
static gr_tensor *f_softmax(gr_ctx *ctx, gr_tensor **in, const op_case *c)
{
    return gr_softmax(ctx, c->nin > 1 ? gr_add(ctx, in[0], in[1]) : in[0]);
}
static void r_softmax(const op_case *c, double *const *in, double *out)
{
    int64_t d = c->shape[0][c->ndim[0] - 1], n = numel_of(c->ndim[0], c->shape[0]), rows = n / d;
    double *x = malloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++) x[i] = in[0][i] + (c->nin > 1 ? in[1][i % d + (i / d % c->shape[1][0]) * d] : 0);
    for (int64_t r = 0; r < rows; r++) {
        double mx = -INFINITY, s = 0;
        for (int64_t i = 0; i < d; i++) mx = fmax(mx, x[r * d + i]);
        for (int64_t i = 0; i < d; i++) s += exp(x[r * d + i] - mx);
        for (int64_t i = 0; i < d; i++) out[r * d + i] = exp(x[r * d + i] - mx) / s;
    }
    free(x);
}

static gr_tensor *f_ce(gr_ctx *ctx, gr_tensor **in, const op_case *c) { (void)c; return gr_cross_entropy(ctx, in[0], in[1], -100); }
static void r_ce(const op_case *c, double *const *in, double *out)
{
    int64_t v = c->shape[0][c->ndim[0] - 1], rows = numel_of(c->ndim[1], c->shape[1]), cnt = 0;
    double tot = 0;
    for (int64_t r = 0; r < rows; r++) {
        int lab = (int)in[1][r];
        if (lab == -100) continue;
        const double *x = in[0] + r * v;
        double mx = -INFINITY, s = 0;
        for (int64_t i = 0; i < v; i++) mx = fmax(mx, x[i]);
        for (int64_t i = 0; i < v; i++) s += exp(x[i] - mx);
        tot += mx + log(s) - x[lab];
        cnt++;
    }
    out[0] = cnt ? tot / cnt : 0;
}

/* ---------------------------------------------------------------- data movement ---- */

static gr_tensor *f_embed(gr_ctx *ctx, gr_tensor **in, const op_case *c) { return gr_embedding(ctx, in[0], in[1], c->pad); }
static void r_embed(const op_case *c, double *const *in, double *out)
{
    int64_t dim = c->shape[0][1], n = numel_of(c->ndim[1], c->shape[1]);
    for (int64_t i = 0; i < n; i++) {
        int id = (int)in[1][i];
        for (int64_t j = 0; j < dim; j++) out[i * dim + j] = in[0][id * dim + j];
    }
}

static gr_tensor *f_permute(gr_ctx *ctx, gr_tensor **in, const op_case *c) { return gr_permute(ctx, in[0], c->perm); }
static void r_permute(const op_case *c, double *const *in, double *out)
{
    int nd = c->ndim[0];
    int64_t n = numel_of(nd, c->shape[0]), xs[GR_MAX_DIMS], s = 1;
    for (int d = nd - 1; d >= 0; d--) xs[d] = s, s *= c->shape[0][d];
    for (int64_t o = 0; o < n; o++) {
        int64_t rem = o, xi = 0;
        for (int d = nd - 1; d >= 0; d--) {
            int64_t i = rem % c->out_shape[d];
            rem /= c->out_shape[d];
            xi += i * xs[c->perm[d]];
        }
        out[o] = in[0][xi];
    }
}

static gr_tensor *f_slice(gr_ctx *ctx, gr_tensor **in, const op_case *c) { return gr_slice(ctx, in[0], c->axis, c->start, c->len); }
static void r_slice(const op_case *c, double *const *in, double *out)
{
    int64_t outer = numel_of(c->axis, c->shape[0]), inner = numel_of(c->ndim[0] - c->axis - 1, &c->shape[0][c->axis + 1]);
    int64_t L = c->shape[0][c->axis];
    for (int64_t o = 0; o < outer; o++)
        for (int64_t l = 0; l < c->len; l++)
            for (int64_t i = 0; i < inner; i++) out[(o * c->len + l) * inner + i] = in[0][(o * L + c->start + l) * inner + i];
}

static gr_tensor *f_concat(gr_ctx *ctx, gr_tensor **in, const op_case *c) { return gr_concat(ctx, in[0], in[1], c->axis); }
static void r_concat(const op_case *c, double *const *in, double *out)
{
    int64_t outer = numel_of(c->axis, c->shape[0]), inner = numel_of(c->ndim[0] - c->axis - 1, &c->shape[0][c->axis + 1]);
    int64_t la = c->shape[0][c->axis], lb = c->shape[1][c->axis];
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t l = 0; l < la; l++)
            for (int64_t i = 0; i < inner; i++) out[(o * (la + lb) + l) * inner + i] = in[0][(o * la + l) * inner + i];
        for (int64_t l = 0; l < lb; l++)
            for (int64_t i = 0; i < inner; i++) out[(o * (la + lb) + la + l) * inner + i] = in[1][(o * lb + l) * inner + i];
    }
}

static gr_tensor *f_repeat(gr_ctx *ctx, gr_tensor **in, const op_case *c) { return gr_repeat_interleave(ctx, in[0], c->axis, c->times); }
static void r_repeat(const op_case *c, double *const *in, double *out)
{
    int64_t outer = numel_of(c->axis, c->shape[0]), inner = numel_of(c->ndim[0] - c->axis - 1, &c->shape[0][c->axis + 1]);
    int64_t L = c->shape[0][c->axis];
    for (int64_t o = 0; o < outer; o++)
        for (int64_t l = 0; l < L * c->times; l++)
            for (int64_t i = 0; i < inner; i++) out[(o * L * c->times + l) * inner + i] = in[0][(o * L + l / c->times) * inner + i];
}

static gr_tensor *f_patchify(gr_ctx *ctx, gr_tensor **in, const op_case *c) { return gr_patchify(ctx, in[0], c->times); }
static void r_patchify(const op_case *c, double *const *in, double *out)
{
    int64_t B = c->shape[0][0], C = c->shape[0][1], H = c->shape[0][2], W = c->shape[0][3];
    int p = c->times;
    int64_t np = (H / p) * (W / p), pd = C * p * p;
    for (int64_t b = 0; b < B; b++)
        for (int64_t py = 0; py < H / p; py++)
            for (int64_t px = 0; px < W / p; px++)
                for (int64_t ch = 0; ch < C; ch++)
                    for (int ky = 0; ky < p; ky++)
                        for (int kx = 0; kx < p; kx++)
                            out[(b * np + py * (W / p) + px) * pd + (ch * p + ky) * p + kx] =
                                in[0][((b * C + ch) * H + py * p + ky) * W + px * p + kx];
}

static gr_tensor *f_reshape_chain(gr_ctx *ctx, gr_tensor **in, const op_case *c)
{
    (void)c;
    /* reshape is a view: y = reshape(x * 2, [-1, 3]) then sum_to rows */
    int64_t s[2] = {-1, 3};
    gr_tensor *r = gr_reshape(ctx, gr_scale(ctx, in[0], 2.0f), 2, s);
    return r;
}
static void r_reshape_chain(const op_case *c, double *const *in, double *out)
{
    for (int64_t i = 0; i < numel_of(c->ndim[0], c->shape[0]); i++) out[i] = 2 * in[0][i];
}

static gr_tensor *f_rope(gr_ctx *ctx, gr_tensor **in, const op_case *c)
{
    int64_t B = c->shape[0][0], T = c->shape[0][1], sh[3] = {B, T, c->rot / 2};
    float *cs = malloc((size_t)(B * T * c->rot / 2) * 2 * sizeof(float));
    for (int64_t i = 0; i < B * T * c->rot / 2 * 2; i++) cs[i] = (float)c->aux[i];
    gr_tensor *co = gr_from_host(ctx, GR_F32, 3, sh, cs), *si = gr_from_host(ctx, GR_F32, 3, sh, cs + B * T * c->rot / 2);
    free(cs);
    return gr_rope(ctx, in[0], co, si, c->rot);
}
static void r_rope(const op_case *c, double *const *in, double *out)
{
    int64_t B = c->shape[0][0], T = c->shape[0][1], H = c->shape[0][2], D = c->shape[0][3];
    int h2 = c->rot / 2;
    const double *co = c->aux, *si = c->aux + B * T * h2;
    for (int64_t bt = 0; bt < B * T; bt++)
        for (int64_t h = 0; h < H; h++) {
            const double *x = in[0] + (bt * H + h) * D;
            double *o = out + (bt * H + h) * D;
            for (int i = 0; i < h2; i++) {
                double cc = co[bt * h2 + i], ss = si[bt * h2 + i];
                o[i] = x[i] * cc - x[i + h2] * ss;
                o[i + h2] = x[i + h2] * cc + x[i] * ss;
            }
            for (int64_t i = c->rot; i < D; i++) o[i] = x[i];
        }
}

/* ---------------------------------------------------------------- reductions ---- */

static gr_tensor *f_sum(gr_ctx *ctx, gr_tensor **in, const op_case *c)
{
    if (c->times == 0) return gr_sum(ctx, in[0]);
    if (c->times == 1) return gr_mean(ctx, in[0]);
    int64_t s[GR_MAX_DIMS];
    for (int i = 0; i < c->ndim[0]; i++) s[i] = (c->perm[i] ? 1 : c->shape[0][i]);
    return gr_sum_to(ctx, in[0], c->ndim[0], s);
}
static void r_sum(const op_case *c, double *const *in, double *out)
{
    int nd = c->ndim[0];
    int64_t n = numel_of(nd, c->shape[0]);
    if (c->times < 2) {
        double s = 0;
        for (int64_t i = 0; i < n; i++) s += in[0][i];
        out[0] = c->times ? s / n : s;
        return;
    }
    int64_t no = numel_of(c->out_ndim, c->out_shape);
    for (int64_t i = 0; i < no; i++) out[i] = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t rem = i, oi = 0, st = 1;
        for (int d = nd - 1; d >= 0; d--) {
            int64_t k = rem % c->shape[0][d];
            rem /= c->shape[0][d];
            if (!c->perm[d]) {
                oi += k * st;
                st *= c->shape[0][d];
            }
        }
        out[oi] += in[0][i];
    }
}

static gr_tensor *f_convert(gr_ctx *ctx, gr_tensor **in, const op_case *c)
{
    (void)c;
    return gr_scale(ctx, gr_convert(ctx, in[0], GR_F32), 1.0f);
}
static void r_copy(const op_case *c, double *const *in, double *out)
{
    for (int64_t i = 0; i < numel_of(c->ndim[0], c->shape[0]); i++) out[i] = in[0][i];
}

int main(int argc, char **argv)
{
    gr_ctx *ctx = harness_open(argc, argv, "test_ops");
    if (!ctx) return 1;

    for (int t = 0; t < 2; t++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                case_matmul(ctx, 0, 0, ta, tb, t);
                case_matmul(ctx, 1 + t, 0, ta, tb, 0);
                case_matmul(ctx, 1 + t, 1, ta, tb, t);
            }
    for (int bias = 0; bias < 2; bias++)
        for (int tr = 0; tr < 2; tr++) case_linear(ctx, bias, GR_F32, tr);
    case_linear(ctx, 1, GR_BF16, 0);
    case_linear(ctx, 0, GR_F16, 0);

    for (int op = 0; op < 3; op++) {
        int64_t a1[3] = {R(2, 4), 1, R(3, 6)}, b1[2] = {R(2, 3), 1};
        b1[1] = a1[2];
        case_binary(ctx, op, 3, a1, 2, b1);
        int64_t a2[2] = {R(2, 5), R(2, 5)}, b2[2];
        memcpy(b2, a2, sizeof a2);
        case_binary(ctx, op, 2, a2, 2, b2);
        int64_t a3[1] = {1}, b3[3] = {R(1, 3), R(2, 4), R(1, 5)};
        case_binary(ctx, op, 1, a3, 3, b3);
        int64_t a4[4] = {2, 1, 3, 1}, b4[4] = {1, 3, 1, 4};
        case_binary(ctx, op, 4, a4, 4, b4);
    }
    {
        op_case c = {.name = "scale", .nin = 1, .fwd = f_scale, .ref = r_scale, .ndim = {2}, .shape = {{3, 5}}, .diff = {1}, .f = -1.75f};
        check_case(ctx, &c);
    }
    static const char *act_names[] = {"relu", "gelu", "gelu_tanh", "quick_gelu", "silu", "sigmoid", "tanh"};
    for (int a = 0; a < GR_ACT_COUNT; a++) {
        op_case c = {.name = act_names[a], .nin = 1, .fwd = f_act, .ref = r_act, .ndim = {3}, .shape = {{2, 3, R(3, 9)}},
                     .diff = {1}, .times = a, .lo = {-3}, .hi = {3}};
        check_case(ctx, &c);
    }
    for (int v = 0; v < 3; v++) {
        int64_t d = R(2, 13);
        op_case c = {.name = v == 0 ? "layernorm" : v == 1 ? "layernorm(w)" : "layernorm(w,b) param", .nin = 1 + v,
                     .fwd = f_ln, .ref = r_ln, .ndim = {3, 1, 1}, .shape = {{R(1, 3), R(1, 4), d}, {d}, {d}},
                     .diff = {1, 1, 1}, .param = {0, v == 2, v == 2}, .f = 1e-5f, .lo = {-2, 0.5f, -1}, .hi = {2, 1.5f, 1}};
        check_case(ctx, &c);
    }
    for (int v = 0; v < 2; v++) {
        int64_t d = R(2, 13);
        op_case c = {.name = v ? "rmsnorm(w)" : "rmsnorm", .nin = 1 + v, .fwd = f_rms, .ref = r_rms, .ndim = {2, 1},
                     .shape = {{R(1, 5), d}, {d}}, .diff = {1, 1}, .param = {0, v}, .f = 1e-6f};
        check_case(ctx, &c);
    }
    {
        op_case c = {.name = "softmax", .nin = 1, .fwd = f_softmax, .ref = r_softmax, .ndim = {3}, .shape = {{2, 3, R(2, 11)}},
                     .diff = {1}, .lo = {-4}, .hi = {4}};
        check_case(ctx, &c);
    }
    {
        /* softmax(x + bias) with a broadcast bias (the masked case is in test_autodiff) */
        op_case c = {.name = "softmax(x + broadcast bias)", .nin = 2, .fwd = f_softmax, .ref = r_softmax,
                     .ndim = {3, 2}, .shape = {{2, 4, 7}, {4, 7}}, .diff = {1, 1}, .lo = {-4, -2}, .hi = {4, 2}};
        check_case(ctx, &c);
    }
    {
        int64_t V = R(3, 17), B = 2, T = R(2, 4);
        int32_t lab[8];
        for (int i = 0; i < B * T; i++) lab[i] = (int32_t)R(0, V - 1);
        lab[1] = -100;
        op_case c = {.name = "cross_entropy (ignored rows)", .nin = 2, .fwd = f_ce, .ref = r_ce, .ndim = {3, 2},
                     .shape = {{B, T, V}, {B, T}}, .dt = {GR_F32, GR_I32}, .idata = {NULL, lab}, .diff = {1, 0},
                     .lo = {-3}, .hi = {3}};
        check_case(ctx, &c);
        int32_t none[8];
        for (int i = 0; i < 8; i++) none[i] = -100;
        op_case z = c;
        z.name = "cross_entropy (all ignored)";
        z.idata[1] = none;
        check_case(ctx, &z);
    }
    {
        int64_t rows = R(5, 9), dim = R(2, 6);
        int32_t ids[12];
        for (int i = 0; i < 12; i++) ids[i] = (int32_t)R(0, rows - 1);
        ids[3] = ids[7] = 1; /* repeated ids accumulate */
        for (int p = 0; p < 2; p++) {
            op_case c = {.name = p ? "embedding BF16 table" : "embedding (param table, repeats)", .nin = 2, .fwd = f_embed,
                         .ref = r_embed, .ndim = {2, 2}, .shape = {{rows, dim}, {3, 4}}, .dt = {p ? GR_BF16 : GR_F32, GR_I32},
                         .idata = {NULL, ids}, .diff = {!p, 0}, .param = {!p, 0}, .pad = -1, .fwd_tol = p ? 1e-7 : 0};
            check_case(ctx, &c);
        }
    }
    {
        int64_t B = 2, T = R(2, 5), H = R(1, 3), D = 2 * R(2, 4);
        int rot = (int)(D - 2 * R(0, 1));
        double *aux = malloc((size_t)(B * T * rot / 2) * 2 * sizeof *aux);
        for (int64_t i = 0; i < B * T * rot / 2; i++) {
            double ang = rng_uniform(-3, 3);
            aux[i] = (float)cos(ang);
            aux[B * T * rot / 2 + i] = (float)sin(ang);
        }
        op_case c = {.name = "rope (partial rot_dim)", .nin = 1, .fwd = f_rope, .ref = r_rope, .ndim = {4},
                     .shape = {{B, T, H, D}}, .diff = {1}, .rot = rot, .aux = aux};
        check_case(ctx, &c);
        free(aux);
    }
    {
        op_case c = {.name = "permute 4d", .nin = 1, .fwd = f_permute, .ref = r_permute, .ndim = {4},
                     .shape = {{2, R(1, 4), R(2, 3), R(1, 5)}}, .diff = {1}, .perm = {0, 2, 1, 3}};
        check_case(ctx, &c);
        op_case d = {.name = "permute 3d", .nin = 1, .fwd = f_permute, .ref = r_permute, .ndim = {3},
                     .shape = {{R(2, 4), 3, R(2, 5)}}, .diff = {1}, .perm = {2, 0, 1}};
        check_case(ctx, &d);
    }
    for (int ax = 0; ax < 3; ax++) {
        int64_t s[3] = {R(2, 4), R(3, 5), R(2, 6)};
        int64_t len = R(1, s[ax] - 1), start = R(0, s[ax] - len);
        op_case c = {.name = ax == 0 ? "slice axis 0 (view)" : ax == 1 ? "slice axis 1" : "slice axis 2", .nin = 1,
                     .fwd = f_slice, .ref = r_slice, .ndim = {3}, .shape = {{s[0], s[1], s[2]}}, .diff = {1}, .axis = ax,
                     .start = start, .len = len};
        check_case(ctx, &c);
        int64_t sb[3] = {s[0], s[1], s[2]};
        sb[ax] = R(1, 3);
        op_case k = {.name = "concat", .nin = 2, .fwd = f_concat, .ref = r_concat, .ndim = {3, 3},
                     .shape = {{s[0], s[1], s[2]}, {sb[0], sb[1], sb[2]}}, .diff = {1, 1}, .axis = ax};
        check_case(ctx, &k);
    }
    {
        op_case c = {.name = "repeat_interleave (GQA)", .nin = 1, .fwd = f_repeat, .ref = r_repeat, .ndim = {4},
                     .shape = {{2, R(1, 3), R(2, 3), 4}}, .diff = {1}, .axis = 1, .times = (int)R(2, 3)};
        check_case(ctx, &c);
        op_case d = c;
        d.name = "repeat_interleave last axis";
        d.axis = 3;
        check_case(ctx, &d);
    }
    {
        int p = (int)R(2, 3);
        op_case c = {.name = "patchify", .nin = 1, .fwd = f_patchify, .ref = r_patchify, .ndim = {4},
                     .shape = {{2, R(1, 3), p * R(1, 3), p * R(1, 2)}}, .diff = {1}, .times = p};
        check_case(ctx, &c);
    }
    {
        op_case c = {.name = "reshape (view)", .nin = 1, .fwd = f_reshape_chain, .ref = r_reshape_chain, .ndim = {3},
                     .shape = {{2, R(1, 3), 3}}, .diff = {1}};
        check_case(ctx, &c);
    }
    for (int v = 0; v < 3; v++) {
        op_case c = {.name = v == 0 ? "sum" : v == 1 ? "mean" : "sum_to", .nin = 1, .fwd = f_sum, .ref = r_sum,
                     .ndim = {3}, .shape = {{R(2, 4), R(1, 3), R(2, 5)}}, .diff = {1}, .times = v, .perm = {1, 0, 1}};
        check_case(ctx, &c);
    }
    {
        op_case c = {.name = "convert BF16->F32", .nin = 1, .fwd = f_convert, .ref = r_copy, .ndim = {2},
                     .shape = {{3, 7}}, .dt = {GR_BF16}, .fwd_tol = 1e-9};
        check_case(ctx, &c);
        op_case d = {.name = "convert F32->F32 (grad)", .nin = 1, .fwd = f_convert, .ref = r_copy, .ndim = {2},
                     .shape = {{3, 7}}, .diff = {1}, .fwd_tol = 1e-9};
        check_case(ctx, &d);
    }

    harness_close(ctx);
    printf("test_ops: %d failure%s\n", g_failures, g_failures == 1 ? "" : "s");
    return g_failures ? 1 : 0;
}
