/* `graft bench matmul`: the backend's matmul against a plain cblas_sgemm on the matmuls of an
 * OPT-125M layer at 384 rows (batch 4 x 96 tokens), in the three orientations of a training
 * step. This is the ceiling later speed targets are measured against. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

typedef struct { const char *what; int ta, tb; int64_t m, n, k; float beta; } mm_case;

double gr_bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double gr_bench_median(double *v, int n)
{
    if (n <= 0) return 0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

typedef struct {
    const gr_backend *be;
    gr_tensor a, b, c;
    float *ha, *hb, *hc;
} operands;

static gr_status run_backend(operands *o, const mm_case *mc)
{
    gr_matmul_args args = {&o->a, &o->b, &o->c, mc->ta, mc->tb, mc->m, mc->n, mc->k, 1,
                           mc->ta ? mc->m : mc->k, mc->tb ? mc->k : mc->n, mc->n, 0, 0, 0, 1.0f, mc->beta};
    return o->be->iface->matmul(o->be->ctx, &args);
}

static void run_sgemm(operands *o, const mm_case *mc)
{
    cblas_sgemm(CblasRowMajor, mc->ta ? CblasTrans : CblasNoTrans, mc->tb ? CblasTrans : CblasNoTrans, (int)mc->m,
                (int)mc->n, (int)mc->k, 1.0f, o->ha, mc->ta ? (int)mc->m : (int)mc->k, o->hb,
                mc->tb ? (int)mc->k : (int)mc->n, mc->beta, o->hc, (int)mc->n);
}

/* Seconds per call: one warm-up, then calls until min_time has passed (at least 3 calls,
 * 1 when min_time is 0). */
static gr_status time_calls(operands *o, const mm_case *mc, int backend, double min_time, double *sec)
{
    const gr_backend *be = o->be;
    gr_status s = GR_OK;
    int iters = 0;
    if (backend) s = run_backend(o, mc);
    else run_sgemm(o, mc);
    if (s == GR_OK && backend) s = be->iface->synchronize(be->ctx);
    double t0 = gr_bench_now(), t = t0;
    while (s == GR_OK && (iters < (min_time > 0 ? 3 : 1) || t - t0 < min_time)) {
        if (backend) s = run_backend(o, mc);
        else run_sgemm(o, mc);
        iters++;
        if (backend && s == GR_OK) s = be->iface->synchronize(be->ctx);
        t = gr_bench_now();
    }
    *sec = (t - t0) / iters;
    return s;
}

static gr_status make(const gr_backend *be, gr_tensor *t, float **host, int64_t r, int64_t c, gr_buffer **buf)
{
    size_t bytes = (size_t)(r * c) * sizeof(float);
    *host = malloc(bytes);
    if (!*host) return gr_fail(GR_ERR_NOMEM, "bench: out of memory");
    for (int64_t i = 0; i < r * c; i++) (*host)[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
    gr_status s = be->iface->buffer_alloc(be->ctx, bytes, buf);
    if (s == GR_OK) s = be->iface->upload(be->ctx, *buf, 0, *host, bytes);
    *t = (gr_tensor){.dtype = GR_F32, .ndim = 2, .shape = {r, c}, .buffer = *buf};
    return s;
}

gr_status gr_bench_matmul_measure(const gr_backend *be, int threads, double min_time, int print,
                                  double *g_backend, double *g_sgemm)
{
    if (threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (int)n : 1;
    }
    /* The backend may have set the same count; plain sgemm gets it too, for a fair ceiling. */
    openblas_set_num_threads(threads);
    const int64_t rows = 384;
    const int64_t dims[3][2] = {{768, 768}, {768, 3072}, {3072, 768}}; /* weight [in -> out] */
    if (print) printf("%-12s %-16s %10s %10s %7s\n", "weight", "product", "backend", "sgemm", "ratio");
    double flops_total = 0, t_backend = 0, t_sgemm = 0;
    gr_status s = GR_OK;
    for (int d = 0; d < 3 && s == GR_OK; d++) {
        int64_t in = dims[d][0], out = dims[d][1];
        mm_case cases[3] = {
            {"y = x W^T", 0, 1, rows, out, in, 0.0f},
            {"dx = dy W", 0, 0, rows, in, out, 0.0f},
            {"dW += dy^T x", 1, 0, out, in, rows, 1.0f},
        };
        for (int c = 0; c < 3 && s == GR_OK; c++) {
            const mm_case *mc = &cases[c];
            operands o = {.be = be};
            gr_buffer *ba = NULL, *bb = NULL, *bc = NULL;
            int64_t ar = mc->ta ? mc->k : mc->m, ac = mc->ta ? mc->m : mc->k;
            int64_t br = mc->tb ? mc->n : mc->k, bcn = mc->tb ? mc->k : mc->n;
            s = make(be, &o.a, &o.ha, ar, ac, &ba);
            if (s == GR_OK) s = make(be, &o.b, &o.hb, br, bcn, &bb);
            if (s == GR_OK) s = make(be, &o.c, &o.hc, mc->m, mc->n, &bc);
            double tb = 0, ts = 0;
            if (s == GR_OK) s = time_calls(&o, mc, 1, min_time, &tb);
            if (s == GR_OK) s = time_calls(&o, mc, 0, min_time, &ts);
            if (s == GR_OK) {
                double fl = 2.0 * (double)mc->m * (double)mc->n * (double)mc->k;
                char wname[32];
                snprintf(wname, sizeof wname, "%lldx%lld", (long long)in, (long long)out);
                if (print) printf("%-12s %-16s %10.1f %10.1f %7.2f\n", wname, mc->what, fl / tb * 1e-9, fl / ts * 1e-9, ts / tb);
                flops_total += fl;
                t_backend += tb;
                t_sgemm += ts;
            }
            if (ba) be->iface->buffer_free(be->ctx, ba);
            if (bb) be->iface->buffer_free(be->ctx, bb);
            if (bc) be->iface->buffer_free(be->ctx, bc);
            free(o.ha);
            free(o.hb);
            free(o.hc);
        }
    }
    if (s != GR_OK) return s;
    *g_backend = flops_total / t_backend * 1e-9;
    *g_sgemm = flops_total / t_sgemm * 1e-9;
    return GR_OK;
}

int gr_bench_matmul(const gr_bench_env *env, int argc, char **argv)
{
    double min_time = 0.25;
    for (int i = 1; i < argc; i++) {
        char *end = NULL;
        if (strcmp(argv[i], "--min-time") == 0 && i + 1 < argc) {
            min_time = strtod(argv[++i], &end);
            if (*end || !(min_time >= 0) || min_time > 60) {
                fprintf(stderr, "graft: bench matmul: --min-time '%s' is not seconds in [0, 60]\n", argv[i]);
                return 2;
            }
            continue;
        }
        fprintf(stderr, "graft: bench matmul: unexpected argument '%s'\n", argv[i]);
        return 2;
    }
    const gr_backend *be = env->backend;
    char info[512] = "";
    be->iface->describe(be->ctx, info, sizeof info);
    for (char *p = info; *p; p++)
        if (*p == '\n') *p = ' ';
    int threads = env->threads;
    if (threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (int)n : 1;
    }
    printf("backend %s (%s), sgemm on %d OpenBLAS threads, 384 rows\n", env->backend_name, info, threads);
    double g, c;
    if (gr_bench_matmul_measure(be, threads, min_time, 1, &g, &c) != GR_OK) {
        fprintf(stderr, "graft: bench matmul: %s\n", gr_last_error());
        return 1;
    }
    printf("bench matmul: %.1f GFLOP/s, %.1f GFLOP/s sgemm, %.2f ratio\n", g, c, g / c);
    return 0;
}
