/* `graft bench step`: the frozen-LM training step of VPG transfer on an OPT-125M-shaped model.
 *
 * The bench writes a real HF directory (config.json + model.safetensors, random weights) and
 * opens it through the opt plugin, as a user's checkpoint. One step = forward of 32 soft-prompt
 * vectors + 64 text tokens per row (batch 4), HF's causal loss on the text, backward to the
 * soft prompt only (every LM weight frozen: no parameter gradient is formed). Throughput is
 * reported against the sgemm ceiling measured in the same process (bench matmul's plain
 * cblas_sgemm on the same layer shapes), before and after the steps; the higher of the two
 * is used, so machine noise can only make the reported ratio smaller. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fsutil.h"
#include "bench.h"
#include "bench_profile.h"
#include "graft/rng.h"
#include "io/safetensors.h"

typedef struct {
    gr_bench_lm shape;
    int64_t batch, prefix, seq;
    int steps, warmup, profile;
    double min_time;
    const char *dir, *keep;
} step_opts;

static int parse_i64(const char *flag, const char *v, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    long long x = strtoll(v, &end, 10);
    if (*end || end == v || x < lo || x > hi) {
        fprintf(stderr, "graft: bench step: %s '%s' is not an integer in [%lld, %lld]\n", flag, v, (long long)lo,
                (long long)hi);
        return 0;
    }
    *out = x;
    return 1;
}

static int parse(int argc, char **argv, step_opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t x;
        if (!strcmp(a, "--profile")) { o->profile = 1; continue; }
        if (!v) {
            fprintf(stderr, "graft: bench step: unexpected argument '%s'\n", a);
            return 0;
        }
        i++;
#define INT(flag, lo, hi, dst) else if (!strcmp(a, flag)) { if (!parse_i64(flag, v, lo, hi, &x)) return 0; dst = x; }
        if (0) {}
        INT("--layers", 1, 1000, o->shape.layers)
        INT("--hidden", 1, 1 << 16, o->shape.hidden)
        INT("--heads", 1, 1 << 12, o->shape.heads)
        INT("--ffn", 1, 1 << 18, o->shape.ffn)
        INT("--vocab", 2, 1 << 22, o->shape.vocab)
        INT("--batch", 1, 1 << 16, o->batch)
        INT("--prefix", 0, 1 << 16, o->prefix)
        INT("--seq", 2, 1 << 16, o->seq)
        INT("--steps", 1, 10000, o->steps)
        INT("--warmup", 0, 100, o->warmup)
#undef INT
        else if (!strcmp(a, "--min-time")) {
            char *end;
            o->min_time = strtod(v, &end);
            if (*end || !(o->min_time >= 0) || o->min_time > 60) {
                fprintf(stderr, "graft: bench step: --min-time '%s' is not seconds in [0, 60]\n", v);
                return 0;
            }
        } else if (!strcmp(a, "--dtype")) {
            int dt = gr_dtype_parse(v);
            if (dt != GR_F32 && dt != GR_F16 && dt != GR_BF16) {
                fprintf(stderr, "graft: bench step: --dtype '%s' is not F32, F16 or BF16\n", v);
                return 0;
            }
            o->shape.dtype = (gr_dtype)dt;
        } else if (!strcmp(a, "--dir")) o->dir = v;
        else if (!strcmp(a, "--keep")) o->keep = v;
        else {
            fprintf(stderr, "graft: bench step: unexpected argument '%s'\n", a);
            return 0;
        }
    }
    if (o->shape.hidden % o->shape.heads) {
        fprintf(stderr, "graft: bench step: --hidden %lld is not a multiple of --heads %lld\n",
                (long long)o->shape.hidden, (long long)o->shape.heads);
        return 0;
    }
    if (o->prefix + o->seq > o->shape.max_pos) o->shape.max_pos = o->prefix + o->seq;
    return 1;
}

/* The step's inputs, made on the host once: soft prompt [B, P, d] (same scale as the token
 * embeddings), text ids [B, T], labels = ids (HF shifts them inside). */
typedef struct {
    float *prefix;
    int32_t *ids;
    int64_t B, P, T, d;
} step_inputs;

static gr_status make_inputs(const step_opts *o, step_inputs *in)
{
    in->B = o->batch;
    in->P = o->prefix;
    in->T = o->seq;
    in->d = o->shape.hidden;
    size_t np = (size_t)(in->B * in->P * in->d), nt = (size_t)(in->B * in->T);
    in->prefix = malloc((np ? np : 1) * sizeof *in->prefix);
    in->ids = malloc(nt * sizeof *in->ids);
    if (!in->prefix || !in->ids) return gr_fail(GR_ERR_NOMEM, "bench step: out of memory");
    gr_rng rng;
    gr_rng_seed_stream(&rng, o->shape.seed, 1000001);
    for (size_t i = 0; i < np; i++) in->prefix[i] = (float)(0.02 * gr_rng_normal(&rng));
    for (size_t i = 0; i < nt; i++) in->ids[i] = (int32_t)gr_rng_below(&rng, (uint64_t)o->shape.vocab);
    return GR_OK;
}

/* For tests/bench/torch_step.py: the same inputs, so both programs run the identical step. */
static gr_status save_inputs(const char *dir, const step_inputs *in)
{
    char *path = gr_path_join(dir, "inputs.safetensors");
    if (!path) return gr_fail(GR_ERR_NOMEM, "bench step: out of memory");
    gr_st_entry e[2] = {
        {.name = "prefix", .dtype = GR_F32, .ndim = 3, .shape = {in->B, in->P, in->d}, .data = in->prefix},
        {.name = "input_ids", .dtype = GR_I32, .ndim = 2, .shape = {in->B, in->T}, .data = in->ids},
    };
    gr_status s = gr_st_write_entries(path, e, 2, NULL);
    free(path);
    return s;
}

typedef struct {
    double loss, grad_norm;
} step_result;

/* One training step; the context is reset afterwards (steady state: buffers come from the
 * context's cache, nothing is allocated). */
static gr_status run_step(gr_ctx *ctx, gr_bench_model *m, const step_inputs *si, step_result *r)
{
    int64_t ps[3] = {si->B, si->P, si->d};
    gr_tensor *prefix = si->P ? gr_from_host(ctx, GR_F32, 3, ps, si->prefix) : NULL;
    if (prefix) gr_requires_grad(prefix);
    gr_lm_inputs in = {.struct_size = sizeof in, .batch = si->B, .seq = si->T, .ids = si->ids, .prefix = prefix,
                       .labels = si->ids};
    gr_lm_outputs out = {.struct_size = sizeof(gr_lm_outputs)};
    gr_status s = gr_ctx_status(ctx);
    if (s == GR_OK) s = m->iface->forward(m->lm, ctx, &in, &out);
    if (s == GR_OK) s = gr_backward(ctx, out.loss, NULL);
    if (s == GR_OK && r) {
        float l = 0;
        s = gr_to_host_f32(ctx, out.loss, &l);
        r->loss = l;
        r->grad_norm = 0;
        gr_tensor *g = prefix ? gr_grad(prefix) : NULL;
        if (s == GR_OK && g) {
            double ss = 0;
            s = gr_sum_squares(ctx, g, &ss);
            r->grad_norm = sqrt(ss);
        }
    }
    if (s != GR_OK && gr_ctx_status(ctx) != GR_OK) gr_fail(s, "%s", gr_ctx_error(ctx));
    gr_ctx_reset(ctx);
    return s;
}

static double load_average(void)
{
    double la[1] = {-1};
    return getloadavg(la, 1) == 1 ? la[0] : -1;
}

int gr_bench_step(const gr_bench_env *env, int argc, char **argv)
{
    step_opts o = {
        .shape = {.llama = 0, .layers = 12, .hidden = 768, .heads = 12, .ffn = 3072, .vocab = 50272,
                  .max_pos = 2048, .dtype = GR_F32, .seed = 125},
        .batch = 4, .prefix = 32, .seq = 64, .steps = 5, .warmup = 1, .min_time = 0.25,
    };
    if (!parse(argc, argv, &o)) return 2;
    int threads = env->threads;
    if (threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (int)n : 1;
    }
    char dir[4096];
    gr_status s;
    if (o.keep) {
        snprintf(dir, sizeof dir, "%s", o.keep);
        s = gr_mkdirs(dir);
    } else {
        s = gr_bench_tmpdir(o.dir, dir, sizeof dir);
    }
    int made_dir = s == GR_OK && !o.keep;
    step_inputs si = {0};
    gr_bench_model m = {0};
    gr_backend timed, *be = env->backend;
    if (o.profile) {
        gr_bench_profile_wrap(env->backend, &timed);
        be = &timed;
    }
    gr_ctx *ctx = NULL;
    double t0 = gr_bench_now();
    if (s == GR_OK) s = gr_bench_write_lm(dir, &o.shape);
    double t_write = gr_bench_now() - t0;
    if (s == GR_OK) s = make_inputs(&o, &si);
    if (s == GR_OK && o.keep) s = save_inputs(dir, &si);
    if (s == GR_OK && !(ctx = gr_ctx_create(be))) s = gr_fail(GR_ERR_NOMEM, "bench step: cannot create a context");
    if (s == GR_OK) s = gr_bench_open_lm(ctx, dir, &m);

    char info[512] = "";
    env->backend->iface->describe(env->backend->ctx, info, sizeof info);
    for (char *p = info; *p; p++)
        if (*p == '\n') *p = ' ';
    if (s == GR_OK) {
        const gr_bench_lm *sh = &o.shape;
        printf("backend %s (%s)\n", env->backend_name, info);
        printf("machine: %d threads requested, load average %.2f (1 min) at start\n", threads, load_average());
        printf("model: OPT-shaped, %d layers, hidden %lld, %lld heads, ffn %lld, vocab %lld, %s weights, %.1f MB "
               "written in %.1f s\n", sh->layers, (long long)sh->hidden, (long long)sh->heads, (long long)sh->ffn,
               (long long)sh->vocab, gr_dtype_name(sh->dtype), (double)gr_bench_lm_bytes(sh) / 1e6, t_write);
        printf("step: batch %lld x (%lld soft-prompt + %lld text) tokens, loss on the text, gradient to the soft "
               "prompt only\n", (long long)o.batch, (long long)o.prefix, (long long)o.seq);
    }
    double c_before = 0, c_after = 0, g_unused;
    if (s == GR_OK) s = gr_bench_matmul_measure(env->backend, threads, o.min_time, 0, &g_unused, &c_before);
    step_result res = {0};
    for (int i = 0; s == GR_OK && i < o.warmup; i++) s = run_step(ctx, &m, &si, NULL);
    double *times = calloc((size_t)o.steps, sizeof *times);
    if (s == GR_OK && !times) s = gr_fail(GR_ERR_NOMEM, "bench step: out of memory");
    gr_flops fl = {0};
    double load_mid = load_average();
    if (s == GR_OK) {
        gr_ctx_reset_flops(ctx);
        if (o.profile) gr_bench_profile_reset();
    }
    for (int i = 0; s == GR_OK && i < o.steps; i++) {
        double a = gr_bench_now();
        s = run_step(ctx, &m, &si, i == o.steps - 1 ? &res : NULL);
        times[i] = gr_bench_now() - a;
    }
    if (s == GR_OK) gr_ctx_flops(ctx, &fl);
    double total_time = 0;
    for (int i = 0; s == GR_OK && i < o.steps; i++) total_time += times[i];
    if (s == GR_OK) s = gr_bench_matmul_measure(env->backend, threads, o.min_time, 0, &g_unused, &c_after);
    if (s == GR_OK && !(isfinite(res.loss) && res.loss > 0 && (o.prefix == 0 || (isfinite(res.grad_norm) && res.grad_norm > 0))))
        s = gr_fail(GR_ERR_INVALID, "bench step: implausible result: loss %g, soft-prompt gradient norm %g", res.loss,
                    res.grad_norm);
    if (s == GR_OK && fl.param_grad_matmuls != 0)
        s = gr_fail(GR_ERR_INVALID, "bench step: %lld parameter-gradient matmuls in a frozen-LM step",
                    (long long)fl.param_grad_matmuls);

    int rc = 0;
    if (s != GR_OK) {
        fprintf(stderr, "graft: bench step: %s\n", gr_last_error());
        rc = 1;
    } else {
        int n = o.steps;
        double per_step = (fl.forward_frozen + fl.forward_trainable + fl.backward_input + fl.backward_param) / n;
        printf("FLOPs counted (gr_ctx_flops): matmul FLOPs only, 2mnk per product, of the forward (%.2f G) and of "
               "the backward to activations (%.2f G); no parameter gradient is formed (0 of %lld matmul launches); "
               "norms, softmax, GELU/ReLU, cross-entropy are not counted: %.2f GFLOP per step\n",
               (fl.forward_frozen + fl.forward_trainable) / n * 1e-9, (fl.backward_input + fl.backward_param) / n * 1e-9,
               (long long)(fl.matmuls / n), per_step * 1e-9);
        printf("matmul FLOPs per step: %.0f forward + %.0f backward = %.0f\n",
               (fl.forward_frozen + fl.forward_trainable) / n, (fl.backward_input + fl.backward_param) / n, per_step);
        printf("step times (s):");
        for (int i = 0; i < n; i++) printf(" %.3f", times[i]);
        double mean = total_time / n;
        double med = gr_bench_median(times, n);
        printf("  (median %.3f, mean %.3f)\n", med, mean);
        printf("loss %.4f, soft-prompt gradient norm %.4g\n", res.loss, res.grad_norm);
        if (o.profile) gr_bench_profile_print(n, mean);
        double ceiling = c_before > c_after ? c_before : c_after;
        double g = per_step / med * 1e-9;
        printf("sgemm ceiling (plain cblas_sgemm, bench matmul shapes, %d threads): %.1f GFLOP/s before, %.1f after "
               "the steps; using %.1f\n", threads, c_before, c_after, ceiling);
        printf("load average %.2f during, %.2f after (1 min)\n", load_mid, load_average());
        printf("tokens/s: %.1f (%lld tokens per step)\n", (double)(o.batch * (o.prefix + o.seq)) / med,
               (long long)(o.batch * (o.prefix + o.seq)));
        printf("bench step: %.1f GFLOP/s, %.1f%% of sgemm ceiling\n", g, 100.0 * g / ceiling);
    }
    free(times);
    if (ctx) {
        gr_bench_close_lm(ctx, &m);
        gr_ctx_destroy(ctx);
    }
    free(si.prefix);
    free(si.ids);
    if (made_dir) gr_bench_rmdir(dir);
    return rc;
}
