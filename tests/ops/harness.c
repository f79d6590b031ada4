/* See harness.h. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "plugin/registry.h"

int g_failures;
gr_backend *g_backend;
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

uint64_t rng_next(void)
{
    /* splitmix64: reproducible across platforms */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
double rng_uniform(double lo, double hi) { return lo + (hi - lo) * (double)(rng_next() >> 11) / 9007199254740992.0; }
int64_t rng_int(int64_t lo, int64_t hi) { return lo + (int64_t)(rng_next() % (uint64_t)(hi - lo + 1)); }

int64_t numel_of(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

void expect(int cond, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s ", cond ? "ok  " : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    if (!cond) g_failures++;
}

gr_ctx *harness_open(int argc, char **argv, const char *prog)
{
    const char *name = argc > 1 ? argv[1] : getenv("GRAFT_TEST_BACKEND");
    if (!name || !name[0]) name = "cpu";
    gr_backend_options opt = {sizeof opt, 2, "", 0, "", 0};
    gr_status s = gr_plugins_scan();
    if (s == GR_OK) s = gr_backend_open(name, &opt, &g_backend);
    if (s == GR_ERR_UNSUPPORTED) {
        /* The backend exists but this machine cannot run it (no Vulkan device): a visible
         * ctest SKIP, not a failure. */
        printf("SKIP: %s: backend %s unavailable: %s\n", prog, name, gr_last_error());
        gr_plugins_unload_all();
        exit(77);
    }
    if (s != GR_OK) {
        fprintf(stderr, "%s: %s\n", prog, gr_last_error());
        return NULL;
    }
    printf("%s: backend %s\n", prog, name);
    gr_ctx *ctx = gr_ctx_create(g_backend);
    if (!ctx) fprintf(stderr, "%s: %s\n", prog, gr_last_error());
    return ctx;
}

void harness_close(gr_ctx *ctx)
{
    gr_ctx_destroy(ctx);
    gr_backend_close(g_backend);
    gr_plugins_unload_all();
}

double rel_err_fd(const float *a, const double *b, int64_t n)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        num += d * d;
        den += b[i] * b[i];
    }
    if (den < 1e-30) return sqrt(num);
    return sqrt(num / den);
}

static double loss_of(const op_case *c, double *const *in, const double *w, double *out, int64_t nout)
{
    c->ref(c, in, out);
    double s = 0;
    for (int64_t i = 0; i < nout; i++) s += w[i] * out[i];
    return s;
}

void check_case(gr_ctx *ctx, op_case *c)
{
    gr_tensor *in[MAXIN] = {0};
    double *hin[MAXIN] = {0};
    float *fin[MAXIN] = {0};
    int64_t n[MAXIN] = {0};
    char line[256];
    int ok = 1;
    gr_ctx_reset(ctx);
    for (int i = 0; i < c->nin; i++) {
        n[i] = numel_of(c->ndim[i], c->shape[i]);
        hin[i] = calloc((size_t)n[i] + 1, sizeof(double));
        if (c->dt[i] == GR_I32) {
            for (int64_t k = 0; k < n[i]; k++) hin[i][k] = c->idata[i][k];
            in[i] = gr_from_host(ctx, GR_I32, c->ndim[i], c->shape[i], c->idata[i]);
            continue;
        }
        float lo = c->lo[i], hi = c->hi[i];
        if (lo == 0 && hi == 0) lo = -1, hi = 1;
        fin[i] = calloc((size_t)n[i] + 1, sizeof(float));
        for (int64_t k = 0; k < n[i]; k++) {
            float v = (float)rng_uniform(lo, hi);
            /* F16/BF16 inputs: the reference sees the rounded values */
            if (c->dt[i] == GR_BF16) v = gr_bf16_to_f32(gr_f32_to_bf16(v));
            if (c->dt[i] == GR_F16) v = gr_f16_to_f32(gr_f32_to_f16(v));
            fin[i][k] = v;
            hin[i][k] = v;
        }
        const void *data = fin[i];
        uint16_t *half = NULL;
        if (c->dt[i] == GR_BF16 || c->dt[i] == GR_F16) {
            half = malloc((size_t)n[i] * 2 + 2);
            for (int64_t k = 0; k < n[i]; k++)
                half[k] = c->dt[i] == GR_BF16 ? gr_f32_to_bf16(fin[i][k]) : gr_f32_to_f16(fin[i][k]);
            data = half;
        }
        if (c->param[i]) {
            in[i] = gr_param_new(ctx, "test.param", c->dt[i], c->ndim[i], c->shape[i]);
            if (in[i]) gr_upload(ctx, in[i], data);
            gr_set_trainable(in[i], 1);
        } else {
            in[i] = gr_from_host(ctx, c->dt[i], c->ndim[i], c->shape[i], data);
            if (c->diff[i]) gr_requires_grad(in[i]);
        }
        free(half);
    }
    gr_tensor *y = gr_ctx_status(ctx) == GR_OK ? c->fwd(ctx, in, c) : NULL;
    if (!y || gr_ctx_status(ctx) != GR_OK) {
        expect(0, "%s: forward failed: %s", c->name, gr_ctx_error(ctx));
        goto out;
    }
    c->out_ndim = y->ndim;
    memcpy(c->out_shape, y->shape, sizeof c->out_shape);
    int64_t nout = gr_numel(y);
    float *fy = malloc(((size_t)nout + 1) * sizeof *fy);
    double *ref = malloc(((size_t)nout + 1) * sizeof *ref), *w = malloc(((size_t)nout + 1) * sizeof *w);
    float *fw = malloc(((size_t)nout + 1) * sizeof *fw);
    gr_to_host_f32(ctx, y, fy);
    c->ref(c, hin, ref);
    double fe = rel_err_fd(fy, ref, nout);
    double tol = c->fwd_tol > 0 ? c->fwd_tol : 2e-5;
    int fwd_ok = fe < tol;
    ok &= fwd_ok;
    int len = snprintf(line, sizeof line, "%s: forward %s rel %.1e", c->name, gr_shape_str(y, (char[64]){0}, 64), fe);

    int any_diff = 0;
    for (int i = 0; i < c->nin; i++) any_diff |= c->diff[i] || c->param[i];
    if (any_diff) {
        for (int64_t k = 0; k < nout; k++) {
            fw[k] = (float)rng_uniform(-1, 1);
            w[k] = fw[k];
        }
        gr_tensor *seed = gr_from_host(ctx, GR_F32, y->ndim, y->shape, fw);
        if (gr_backward(ctx, y, seed) != GR_OK) {
            expect(0, "%s: backward failed: %s", c->name, gr_ctx_error(ctx));
            ok = 0;
        } else {
            double *tmp = malloc(((size_t)nout + 1) * sizeof *tmp);
            for (int i = 0; i < c->nin; i++) {
                if (!(c->diff[i] || c->param[i])) continue;
                gr_tensor *g = gr_grad(in[i]);
                if (!g) {
                    ok = 0;
                    len += snprintf(line + len, sizeof line - (size_t)len, ", in%d: NO GRADIENT", i);
                    continue;
                }
                float *fg = malloc(((size_t)n[i] + 1) * sizeof *fg);
                double *fd = malloc(((size_t)n[i] + 1) * sizeof *fd);
                gr_to_host_f32(ctx, g, fg);
                for (int64_t k = 0; k < n[i]; k++) {
                    double x0 = hin[i][k], h = 1e-6 * (fabs(x0) > 1 ? fabs(x0) : 1);
                    hin[i][k] = x0 + h;
                    double lp = loss_of(c, hin, w, tmp, nout);
                    hin[i][k] = x0 - h;
                    double lm = loss_of(c, hin, w, tmp, nout);
                    hin[i][k] = x0;
                    fd[k] = (lp - lm) / (2 * h);
                }
                double ge = rel_err_fd(fg, fd, n[i]);
                int gok = ge < 1e-3;
                ok &= gok;
                len += snprintf(line + len, sizeof line - (size_t)len, ", d%d rel %.1e%s", i, ge, gok ? "" : " (>1e-3)");
                free(fg);
                free(fd);
            }
            free(tmp);
        }
    }
    expect(ok, "%s", line);
    free(fy);
    free(ref);
    free(w);
    free(fw);
out:
    for (int i = 0; i < c->nin; i++) {
        if (c->param[i] && in[i]) gr_tensor_free(ctx, in[i]);
        free(hin[i]);
        free(fin[i]);
    }
    gr_ctx_reset(ctx);
}
