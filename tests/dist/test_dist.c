/* core/dist and the tape's gradient-ready hook. Runs as one process (world of one: every call
 * is a no-op that succeeds, the hook still fires) and under `mpirun -np 2` (the bucketed
 * all-reduce against a host reference, buckets launched during backward, accumulation, tensors
 * used on one rank only, broadcast, the replica check, frozen tensors refused).
 * Usage: test_dist EXPECTED_WORLD */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/dist.h"
#include "plugin/registry.h"

static int failures, checks;
static gr_backend *backend;
static int rank, world;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            printf("FAIL rank %d %s:%d: ", rank, __FILE__, __LINE__);                              \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
        }                                                                                          \
    } while (0)

/* ------------------------------------------------------------ a small deep model ---- */

#define L 6    /* layers */
#define D 24   /* width: 576 floats per weight, bucket of 1 KiB holds one tensor */
#define B 5    /* rows per rank */

typedef struct model {
    gr_ctx *ctx;
    gr_tensor *w[L], *bias[L];
    gr_tensor *spare;   /* trainable, used by rank 1 only */
    gr_tensor *unused;  /* trainable, used by nobody */
    gr_tensor *frozen;
} model;

static float val(uint64_t a, uint64_t b)
{
    uint64_t h = (a * 0x9e3779b97f4a7c15ULL) ^ (b + 0x632be59bd9b4e019ULL);
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 32;
    return (float)((double)(h % 20001) / 10000.0 - 1.0);
}

static gr_tensor *param(gr_ctx *ctx, const char *name, int64_t r, int64_t c, uint64_t seed, int trainable)
{
    float *v = malloc(sizeof(float) * (size_t)(r * c));
    for (int64_t i = 0; i < r * c; i++) v[i] = 0.3f * val(seed, (uint64_t)i);
    gr_tensor *t = gr_param_new(ctx, name, GR_F32, c > 1 ? 2 : 1, c > 1 ? (int64_t[]){r, c} : (int64_t[]){r});
    if (t) gr_upload(ctx, t, v);
    if (t) gr_set_trainable(t, trainable);
    free(v);
    return t;
}

static void model_init(model *m)
{
    m->ctx = gr_ctx_create(backend);
    char nm[32];
    for (int l = 0; l < L; l++) {
        snprintf(nm, sizeof nm, "layer%d.weight", l);
        m->w[l] = param(m->ctx, nm, D, D, 100 + (uint64_t)l, 1);
        snprintf(nm, sizeof nm, "layer%d.bias", l);
        m->bias[l] = param(m->ctx, nm, D, 1, 200 + (uint64_t)l, 1);
    }
    m->spare = param(m->ctx, "spare", D, 1, 300, 1);
    m->unused = param(m->ctx, "unused", D, 1, 301, 1);
    m->frozen = param(m->ctx, "frozen.weight", D, D, 302, 0);
}

/* The registration order the reducer sees: w0, b0, w1, b1, ..., spare, unused. */
static int model_params(model *m, gr_tensor **out)
{
    int n = 0;
    for (int l = 0; l < L; l++) {
        out[n++] = m->w[l];
        out[n++] = m->bias[l];
    }
    out[n++] = m->spare;
    out[n++] = m->unused;
    return n;
}

/* Loss of rank r's micro-batch k: a frozen layer, then L trainable tanh layers, mean square. */
static gr_tensor *model_loss(model *m, int r, int k)
{
    float x[B * D];
    for (int i = 0; i < B * D; i++) x[i] = val(1000 + (uint64_t)r * 17 + (uint64_t)k, (uint64_t)i);
    gr_tensor *h = gr_from_host(m->ctx, GR_F32, 2, (int64_t[]){B, D}, x);
    h = gr_linear(m->ctx, h, m->frozen, NULL);
    if (r == 1) h = gr_add(m->ctx, h, m->spare);
    for (int l = 0; l < L; l++) h = gr_act(m->ctx, GR_ACT_GELU_TANH, gr_linear(m->ctx, h, m->w[l], m->bias[l]));
    return gr_mean(m->ctx, gr_mul(m->ctx, h, h));
}

static void grads_to_host(model *m, gr_tensor **ps, int n, double *out, size_t stride)
{
    float tmp[D * D];
    for (int i = 0; i < n; i++) {
        gr_tensor *g = gr_grad(ps[i]);
        int64_t ne = gr_numel(ps[i]);
        if (g) gr_to_host_f32(m->ctx, g, tmp);
        for (int64_t j = 0; j < ne; j++) out[(size_t)i * stride + (size_t)j] += g ? tmp[j] : 0.0;
    }
}

/* ---------------------------------------------------------------- tape hook ---- */

typedef struct hook_log {
    gr_tensor *seen[64];
    float first[64];   /* gr_grad(seen)[0] when the hook ran */
    int had_grad[64];
    int n;
    gr_ctx *ctx;
} hook_log;

static void on_ready(void *u, gr_tensor *t)
{
    hook_log *h = u;
    if (h->n == 64) return;
    gr_tensor *g = gr_grad(t);
    float v[D * D] = {0};
    if (g) gr_to_host_f32(h->ctx, g, v);
    h->had_grad[h->n] = g != NULL;
    h->first[h->n] = v[0];
    h->seen[h->n++] = t;
}

static void test_hook(void)
{
    model m;
    model_init(&m);
    hook_log h = {.ctx = m.ctx};
    gr_ctx_set_grad_ready_hook(m.ctx, on_ready, &h);
    gr_tensor *loss = model_loss(&m, 1, 0);
    CHECK(gr_backward(m.ctx, loss, NULL) == GR_OK, "backward: %s", gr_last_error());
    gr_ctx_set_grad_ready_hook(m.ctx, NULL, NULL);
    /* spare, w0..w5, b0..b5 once each; frozen and unused never */
    CHECK(h.n == 2 * L + 1, "hook fired %d times, want %d", h.n, 2 * L + 1);
    int dup = 0, bad = 0;
    for (int i = 0; i < h.n; i++) {
        for (int j = 0; j < i; j++) dup += h.seen[i] == h.seen[j];
        bad += h.seen[i] == m.frozen || h.seen[i] == m.unused;
        /* the gradient was final when the hook ran */
        float v[D * D];
        gr_to_host_f32(m.ctx, gr_grad(h.seen[i]), v);
        CHECK(h.had_grad[i] && h.first[i] == v[0], "%s: gradient at hook time %g, final %g", h.seen[i]->name,
              (double)h.first[i], (double)v[0]);
    }
    CHECK(!dup && !bad, "hook: %d duplicates, %d frozen/unused", dup, bad);
    /* backward order: the last layer's tensors come before the first layer's */
    int i_last = -1, i_first = -1;
    for (int i = 0; i < h.n; i++) {
        if (h.seen[i] == m.w[L - 1]) i_last = i;
        if (h.seen[i] == m.w[0]) i_first = i;
    }
    CHECK(i_last >= 0 && i_first > i_last, "hook order: layer%d.weight at %d, layer0.weight at %d", L - 1, i_last,
          i_first);
    /* no hook: the next backward runs as before and calls nothing */
    int before = h.n;
    gr_ctx_reset(m.ctx);
    loss = model_loss(&m, 0, 0);
    CHECK(gr_backward(m.ctx, loss, NULL) == GR_OK && h.n == before, "hook removed");
    gr_ctx_destroy(m.ctx);
}

/* ---------------------------------------------------------------- reducer ---- */

static void test_reducer(void)
{
    model m;
    model_init(&m);
    gr_tensor *ps[2 * L + 2];
    int n = model_params(&m, ps);
    size_t stride = D * D;
    /* Reference on every rank: the sum over ranks of two micro-batches' gradients, computed
     * locally one rank's data at a time. */
    double *ref = calloc((size_t)n * stride, sizeof *ref), *got = calloc((size_t)n * stride, sizeof *got);
    for (int r = 0; r < world; r++) {
        for (int k = 0; k < 2; k++) {
            gr_ctx_reset(m.ctx);
            gr_tensor *loss = model_loss(&m, r, k);
            CHECK(gr_backward(m.ctx, loss, NULL) == GR_OK, "reference backward: %s", gr_last_error());
        }
        grads_to_host(&m, ps, n, ref, stride);
        for (int i = 0; i < n; i++) gr_zero_grad(m.ctx, ps[i]);
    }
    gr_ctx_reset(m.ctx);

    gr_dist_reducer *red = NULL;
    CHECK(gr_dist_reducer_create(m.ctx, ps, n, 1024 * sizeof(float), &red) == GR_OK, "reducer: %s", gr_last_error());
    if (!red) return;
    gr_dist_reducer_stats st;
    gr_dist_reducer_get_stats(red, &st);
    /* 1024 floats a bucket (a weight slot is 577 floats, a bias 25): in reverse registration
     * order {unused, spare, b5, w5, b4}, {w4, b3}, ..., {w0} */
    CHECK(st.buckets == L, "%d buckets, want %d", st.buckets, L);
    CHECK(st.floats == L * (D * D + 1) + (L + 2) * (D + 1), "%lld floats", (long long)st.floats);
    int64_t early[2] = {0, 0};
    for (int round = 0; round < 2; round++) {
        /* two micro-batches: only the last backward is reduced */
        gr_tensor *loss = model_loss(&m, rank, 0);
        CHECK(gr_backward(m.ctx, loss, NULL) == GR_OK, "backward: %s", gr_last_error());
        gr_ctx_reset(m.ctx);
        gr_dist_reducer_begin(red);
        loss = model_loss(&m, rank, 1);
        CHECK(gr_backward(m.ctx, loss, NULL) == GR_OK, "backward: %s", gr_last_error());
        gr_ctx_reset(m.ctx);
        CHECK(gr_dist_reducer_finish(red) == GR_OK, "finish: %s", gr_last_error());
        memset(got, 0, (size_t)n * stride * sizeof *got);
        grads_to_host(&m, ps, n, got, stride);
        double worst = 0;
        int worst_i = 0;
        for (int i = 0; i < n; i++)
            for (int64_t j = 0; j < gr_numel(ps[i]); j++) {
                double e = fabs(got[(size_t)i * stride + (size_t)j] - ref[(size_t)i * stride + (size_t)j]) /
                           (1e-6 + fabs(ref[(size_t)i * stride + (size_t)j]));
                if (e > worst) { worst = e; worst_i = i; }
            }
        CHECK(worst < 1e-5, "round %d: reduced gradient of %s off by %g (relative)", round, ps[worst_i]->name, worst);
        /* spare: used by rank 1 only, so every rank of a 2-rank world holds rank 1's gradient */
        CHECK((gr_grad(m.spare) != NULL) == (world > 1), "spare has %s gradient", gr_grad(m.spare) ? "a" : "no");
        CHECK(gr_grad(m.unused) == NULL, "a tensor no rank touched keeps no gradient");
        CHECK(gr_grad(m.frozen) == NULL, "frozen tensor has no gradient");
        for (int i = 0; i < n; i++) gr_zero_grad(m.ctx, ps[i]);
        gr_dist_reducer_get_stats(red, &st);
        early[round] = st.early - (round ? early[0] : 0);
    }
    if (world > 1) {
        CHECK(st.reductions == 2 && st.launched == 2 * st.buckets, "%lld reductions, %lld launches",
              (long long)st.reductions, (long long)st.launched);
        /* Round 0: the first bucket holds `unused`, never ready, and buckets leave in order: all
         * wait for finish. Then the buckets follow rank 0's observed order ({w5, b5}, ...,
         * {w0, b0, unused, spare}) and all but the last leave while backward still runs. */
        CHECK(early[0] == 0, "round 0: %lld buckets launched early", (long long)early[0]);
        CHECK(st.buckets == L && early[1] == L - 1, "round 1: %lld of %d buckets launched during backward",
              (long long)early[1], st.buckets);
        printf("rank %d: %d buckets; launched during backward: %lld (first step), %lld (after re-bucketing)\n",
               rank, st.buckets, (long long)early[0], (long long)early[1]);
    } else {
        CHECK(st.reductions == 0 && st.launched == 0, "world of one: nothing reduced");
    }
    gr_dist_reducer_free(red);

    /* refusals name the tensor */
    gr_tensor *bad[2] = {m.w[0], m.frozen};
    CHECK(gr_dist_reducer_create(m.ctx, bad, 2, 0, &red) == GR_ERR_INVALID && strstr(gr_last_error(), "frozen.weight") &&
              strstr(gr_last_error(), "never cross"), "frozen refused by the reducer: %s", gr_last_error());
    CHECK(gr_dist_broadcast(m.ctx, bad, 2) == GR_ERR_INVALID && strstr(gr_last_error(), "frozen.weight"),
          "frozen refused by broadcast: %s", gr_last_error());
    gr_tensor *twice[2] = {m.w[1], m.w[1]};
    CHECK(gr_dist_reducer_create(m.ctx, twice, 2, 0, &red) == GR_ERR_INVALID && strstr(gr_last_error(), "layer1.weight"),
          "duplicate refused: %s", gr_last_error());
    free(ref);
    free(got);
    gr_ctx_destroy(m.ctx);
}

/* ------------------------------------------------------- broadcast, scalars, check ---- */

static void test_broadcast(void)
{
    model m;
    model_init(&m);
    gr_tensor *ps[2 * L + 2];
    int n = model_params(&m, ps);
    /* make rank-specific values: the replica check must see them */
    float v[D * D];
    for (int i = 0; i < D * D; i++) v[i] = (float)rank + 0.5f * (float)i;
    gr_upload(m.ctx, m.w[2], v);
    gr_status s = gr_dist_check_equal(m.ctx, ps, n, "test");
    if (world > 1) CHECK(s == GR_ERR_NUMERIC && strstr(gr_last_error(), "layer2.weight"), "divergence found: %s", gr_last_error());
    else CHECK(s == GR_OK, "world of one is always consistent");
    CHECK(gr_dist_broadcast(m.ctx, ps, n) == GR_OK, "broadcast: %s", gr_last_error());
    CHECK(gr_dist_check_equal(m.ctx, ps, n, "test") == GR_OK, "after broadcast: %s", gr_last_error());
    gr_to_host_f32(m.ctx, m.w[2], v);
    CHECK(v[0] == 0.0f && v[3] == 1.5f, "rank 0's values everywhere (%g %g)", (double)v[0], (double)v[3]);

    double a[2] = {(double)rank + 1.0, -(double)rank};
    CHECK(gr_dist_sum_f64(a, 2) == GR_OK && a[0] == world * (world + 1) / 2.0 && a[1] == -world * (world - 1) / 2.0,
          "sum: %g %g", a[0], a[1]);
    double b[1] = {(double)rank};
    CHECK(gr_dist_max_f64(b, 1) == GR_OK && b[0] == world - 1, "max: %g", b[0]);
    CHECK(gr_dist_barrier() == GR_OK, "barrier");
    gr_ctx_destroy(m.ctx);
}

int main(int argc, char **argv)
{
    if (argc != 2) { fprintf(stderr, "usage: test_dist EXPECTED_WORLD\n"); return 2; }
    if (gr_dist_init() != GR_OK) {
        printf("FAIL init: %s\n", gr_last_error());
        return 1;
    }
    rank = gr_dist_rank();
    world = gr_dist_world();
    CHECK(world == atoi(argv[1]), "world %d, expected %s (launcher '%s')", world, argv[1], gr_dist_launcher());
    CHECK(gr_dist_is_root() == (rank == 0), "root");
    if (gr_backend_open("cpu", &(gr_backend_options){.struct_size = sizeof(gr_backend_options), .threads = 1}, &backend)) {
        printf("FAIL cannot open cpu backend: %s\n", gr_last_error());
        return 1;
    }
    test_hook();
    test_reducer();
    test_broadcast();
    gr_backend_close(backend);
    printf("rank %d/%d: %s: %d checks, %d failures\n", rank, world, failures ? "FAIL" : "ok", checks, failures);
    double f = failures;
    gr_dist_sum_f64(&f, 1); /* a failure on any rank fails every rank */
    gr_dist_finalize();
    return f > 0 ? 1 : 0;
}
