/* `graft bench memory`: peak resident memory of a forward pass against the checkpoint size.
 *
 * Writes a Llama-7B-shaped BF16 checkpoint (32 layers, hidden 4096, ffn 11008, 32 heads,
 * vocab 32000: ~13.5 GB) into a temporary directory, opens it through the llama plugin and
 * runs the forward of one short sequence without gradients. Weights are mmap'd and stay BF16;
 * each matmul converts its weight into an F32 temporary freed right after, so the peak should
 * be the mapping plus one converted matrix plus activations. The peak is the kernel's VmHWM,
 * reset (via /proc/self/clear_refs) after the checkpoint was written, so it covers exactly
 * opening + forward. If the file system lacks room, the largest layer count that fits is used
 * and the output says so. The directory is deleted afterwards. */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "graft/rng.h"

/* kB of a /proc/self/status field ("VmHWM", "VmRSS"), -1 if unavailable. */
static long status_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, n) && line[n] == ':') v = strtol(line + n + 1, NULL, 10);
    fclose(f);
    return v;
}

/* Resets VmHWM to the current RSS (Linux >= 4.0). */
static int reset_peak(void)
{
    int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    int ok = write(fd, "5", 1) == 1;
    close(fd);
    return ok;
}

int gr_bench_memory(const gr_bench_env *env, int argc, char **argv)
{
    gr_bench_lm sh = {.llama = 1, .layers = 32, .hidden = 4096, .heads = 32, .ffn = 11008, .vocab = 32000,
                      .max_pos = 4096, .dtype = GR_BF16, .seed = 7};
    const char *parent = NULL;
    int64_t tokens = 16;
    double limit = 1.2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        long long x = v ? strtoll(v, &end, 10) : 0;
        int is_int = v && end != v && !*end && x > 0 && x < (1LL << 22);
        if (!v) {
            fprintf(stderr, "graft: bench memory: unexpected argument '%s'\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--dir")) parent = v;
        else if (!strcmp(a, "--limit")) {
            limit = strtod(v, &end);
            if (*end || !(limit > 0)) {
                fprintf(stderr, "graft: bench memory: --limit '%s' is not a positive ratio\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--dtype")) {
            int dt = gr_dtype_parse(v);
            if (dt != GR_F32 && dt != GR_F16 && dt != GR_BF16) {
                fprintf(stderr, "graft: bench memory: --dtype '%s' is not F32, F16 or BF16\n", v);
                return 2;
            }
            sh.dtype = (gr_dtype)dt;
        } else if (!is_int) {
            fprintf(stderr, "graft: bench memory: %s '%s' is not a positive integer\n", a, v);
            return 2;
        } else if (!strcmp(a, "--layers")) sh.layers = (int)x;
        else if (!strcmp(a, "--hidden")) sh.hidden = x;
        else if (!strcmp(a, "--heads")) sh.heads = x;
        else if (!strcmp(a, "--ffn")) sh.ffn = x;
        else if (!strcmp(a, "--vocab")) sh.vocab = x;
        else if (!strcmp(a, "--tokens")) tokens = x;
        else {
            fprintf(stderr, "graft: bench memory: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    if (sh.hidden % sh.heads || (sh.hidden / sh.heads) % 2) {
        fprintf(stderr, "graft: bench memory: --hidden / --heads must be an even head size\n");
        return 2;
    }
    if (tokens > sh.max_pos) sh.max_pos = tokens;
    char dir[4096];
    gr_status s = gr_bench_tmpdir(parent, dir, sizeof dir);
    if (s != GR_OK) {
        fprintf(stderr, "graft: bench memory: %s\n", gr_last_error());
        return 1;
    }
    /* Room for the file plus 1 GB; else the largest layer count that fits. */
    int64_t avail = gr_bench_free_bytes(dir), margin = (int64_t)1 << 30;
    int wanted = sh.layers;
    while (avail >= 0 && sh.layers > 1 && gr_bench_lm_bytes(&sh) + margin > avail) sh.layers--;
    int64_t bytes = gr_bench_lm_bytes(&sh);
    if (avail >= 0 && bytes + margin > avail) {
        fprintf(stderr, "graft: bench memory: %s: %.1f GB free, not enough for even one layer\n", dir, avail / 1e9);
        gr_bench_rmdir(dir);
        return 1;
    }
    printf("model: Llama-shaped, %d layers, hidden %lld, %lld heads, ffn %lld, vocab %lld, %s, %.2f GB in %s "
           "(%.1f GB free)\n", sh.layers, (long long)sh.hidden, (long long)sh.heads, (long long)sh.ffn,
           (long long)sh.vocab, gr_dtype_name(sh.dtype), bytes / 1e9, dir, avail / 1e9);
    if (sh.layers != wanted)
        printf("note: %d layers requested but only %d fit on this file system\n", wanted, sh.layers);
    fflush(stdout);
    double t0 = gr_bench_now();
    s = gr_bench_write_lm(dir, &sh);
    double t_write = gr_bench_now() - t0;
    int reset = reset_peak();
    long rss0 = status_kb("VmRSS");
    gr_ctx *ctx = NULL;
    gr_bench_model m = {0};
    if (s == GR_OK && !(ctx = gr_ctx_create(env->backend)))
        s = gr_fail(GR_ERR_NOMEM, "bench memory: cannot create a context");
    t0 = gr_bench_now();
    if (s == GR_OK) s = gr_bench_open_lm(ctx, dir, &m);
    double t_open = gr_bench_now() - t0;
    int32_t *ids = malloc((size_t)tokens * sizeof *ids);
    if (s == GR_OK && !ids) s = gr_fail(GR_ERR_NOMEM, "bench memory: out of memory");
    gr_rng rng;
    gr_rng_seed(&rng, 1);
    for (int64_t i = 0; ids && i < tokens; i++) ids[i] = (int32_t)gr_rng_below(&rng, (uint64_t)sh.vocab);
    float *last = malloc((size_t)sh.vocab * sizeof *last);
    if (s == GR_OK && !last) s = gr_fail(GR_ERR_NOMEM, "bench memory: out of memory");
    double t_fwd = 0;
    if (s == GR_OK) {
        gr_ctx_set_grad_enabled(ctx, 0);
        gr_lm_inputs in = {.struct_size = sizeof in, .batch = 1, .seq = tokens, .ids = ids};
        gr_lm_outputs out = {.struct_size = sizeof(gr_lm_outputs)};
        t0 = gr_bench_now();
        s = m.iface->forward(m.lm, ctx, &in, &out);
        gr_tensor *l = s == GR_OK ? gr_slice(ctx, gr_reshape(ctx, out.logits, 2, (int64_t[2]){tokens, sh.vocab}), 0,
                                             tokens - 1, 1) : NULL;
        if (s == GR_OK && !l) s = gr_ctx_status(ctx);
        if (s == GR_OK) s = gr_to_host_f32(ctx, l, last);
        if (s != GR_OK && gr_ctx_status(ctx)) gr_fail(s, "%s", gr_ctx_error(ctx));
        t_fwd = gr_bench_now() - t0;
    }
    for (int64_t i = 0; s == GR_OK && i < sh.vocab; i++)
        if (!isfinite(last[i])) s = gr_fail(GR_ERR_INVALID, "bench memory: logit %lld is not finite", (long long)i);
    long peak = status_kb("VmHWM");
    if (ctx) {
        gr_ctx_reset(ctx);
        gr_bench_close_lm(ctx, &m);
        gr_ctx_destroy(ctx);
    }
    free(ids);
    free(last);
    gr_bench_rmdir(dir);
    if (s != GR_OK) {
        fprintf(stderr, "graft: bench memory: %s\n", gr_last_error());
        return 1;
    }
    if (peak < 0) {
        fprintf(stderr, "graft: bench memory: /proc/self/status has no VmHWM\n");
        return 1;
    }
    double ratio = (double)peak * 1024.0 / (double)bytes;
    printf("written in %.1f s; opened in %.2f s; forward of %lld tokens (no gradients) in %.2f s\n", t_write, t_open,
           (long long)tokens, t_fwd);
    printf("RSS before opening %.2f GB; peak RSS (VmHWM%s) %.2f GB; file %.2f GB\n", rss0 * 1024.0 / 1e9,
           reset ? ", reset after writing" : ", since process start", peak * 1024.0 / 1e9, bytes / 1e9);
    printf("growth over the RSS before opening: %.3f x file size\n", (double)(peak - rss0) * 1024.0 / (double)bytes);
    printf("bench memory: peak RSS %.2f GB, %.3f x file size (limit %.2f)\n", peak * 1024.0 / 1e9, ratio, limit);
    if (ratio >= limit) {
        fprintf(stderr, "graft: bench memory: peak RSS is %.3f x the file size, over the limit %.2f\n", ratio, limit);
        return 1;
    }
    return 0;
}
