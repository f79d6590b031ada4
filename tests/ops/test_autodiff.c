/* The autodiff rules: frozen tensors get no gradient and cost no weight-gradient matmul,
 * gradients accumulate until gr_zero_grad, activations are released during backward, sticky
 * one-line errors, masks (fully masked rows), padding_idx, AdamW, RoPE tables, BF16 weights
 * converted into temporaries. Usage: test_autodiff [BACKEND]. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static float *rand_vec(int64_t n, float lo, float hi)
{
    float *v = malloc((size_t)n * sizeof *v);
    for (int64_t i = 0; i < n; i++) v[i] = (float)rng_uniform(lo, hi);
    return v;
}

static gr_tensor *param(gr_ctx *ctx, const char *name, int64_t r, int64_t c, int trainable)
{
    int64_t s[2] = {r, c};
    float *v = rand_vec(r * c, -0.5f, 0.5f);
    gr_tensor *t = gr_param_new(ctx, name, GR_F32, 2, s);
    gr_upload(ctx, t, v);
    free(v);
    gr_set_trainable(t, trainable);
    return t;
}

static int64_t matmul_flops(const gr_flops *f) { return f->matmuls; }

/* x -> linear(W1) -> gelu -> linear(W2) -> sum, returning dL/dx on the host */
static void mlp_step(gr_ctx *ctx, gr_tensor *w1, gr_tensor *w2, const float *xv, float *dx, gr_flops *fl)
{
    int64_t xs[2] = {4, 6};
    gr_ctx_reset(ctx);
    gr_ctx_reset_flops(ctx);
    gr_tensor *x = gr_from_host(ctx, GR_F32, 2, xs, xv);
    gr_requires_grad(x);
    gr_tensor *y = gr_sum(ctx, gr_linear(ctx, gr_act(ctx, GR_ACT_GELU_ERF, gr_linear(ctx, x, w1, NULL)), w2, NULL));
    gr_backward(ctx, y, NULL);
    if (gr_grad(x)) gr_to_host_f32(ctx, gr_grad(x), dx);
    gr_ctx_flops(ctx, fl);
}

static void test_frozen(gr_ctx *ctx)
{
    gr_tensor *w1 = param(ctx, "w1", 5, 6, 0), *w2 = param(ctx, "w2", 3, 5, 0);
    float *xv = rand_vec(24, -1, 1), dx0[24] = {0}, dx1[24] = {0};
    gr_flops f;
    mlp_step(ctx, w1, w2, xv, dx0, &f);
    expect(gr_ctx_status(ctx) == GR_OK, "frozen MLP: backward ran (%s)", gr_ctx_error(ctx));
    expect(f.param_grad_matmuls == 0 && gr_grad(w1) == NULL && gr_grad(w2) == NULL,
           "frozen weights: no gradient, %lld weight-gradient matmuls (want 0)", (long long)f.param_grad_matmuls);
    expect(matmul_flops(&f) == 4 && f.backward_param == 0 && f.forward_trainable > 0,
           "frozen weights: %lld matmul launches (2 forward + 2 dL/dx), backward_param flops %.0f", (long long)f.matmuls,
           f.backward_param);
    gr_set_trainable(w1, 1);
    gr_set_trainable(w2, 1);
    mlp_step(ctx, w1, w2, xv, dx1, &f);
    expect(f.param_grad_matmuls == 2 && gr_grad(w1) && gr_grad(w2) && f.backward_param == 2.0 * 4 * (5 * 6 + 3 * 5),
           "trainable weights: %lld weight-gradient matmuls (want 2), param flops %.0f", (long long)f.param_grad_matmuls,
           f.backward_param);
    expect(memcmp(dx0, dx1, sizeof dx0) == 0, "dL/dx identical with frozen and trainable weights");
    /* accumulation across backward calls until gr_zero_grad */
    float g1[30], g2[30];
    gr_to_host_f32(ctx, gr_grad(w1), g1);
    mlp_step(ctx, w1, w2, xv, dx1, &f);
    gr_to_host_f32(ctx, gr_grad(w1), g2);
    int doubled = 1;
    for (int i = 0; i < 30; i++) doubled &= fabsf(g2[i] - 2 * g1[i]) <= 1e-6f * (1 + fabsf(g1[i]));
    expect(doubled, "parameter gradients accumulate across two backward calls");
    gr_zero_grad(ctx, w1);
    expect(gr_grad(w1) == NULL, "gr_zero_grad: no gradient until the next backward");
    mlp_step(ctx, w1, w2, xv, dx1, &f);
    gr_to_host_f32(ctx, gr_grad(w1), g2);
    expect(memcmp(g1, g2, sizeof g1) == 0, "after gr_zero_grad the next backward overwrites");
    /* nothing trainable: no tape, backward refuses with a message */
    gr_ctx_reset(ctx);
    gr_set_trainable(w1, 0);
    int64_t xs[2] = {4, 6};
    gr_tensor *y = gr_sum(ctx, gr_linear(ctx, gr_from_host(ctx, GR_F32, 2, xs, xv), w1, NULL));
    expect(gr_backward(ctx, y, NULL) != GR_OK && strstr(gr_last_error(), "does not depend on any trainable"),
           "backward without trainable inputs fails: %s", gr_last_error());
    gr_ctx_reset(ctx);
    gr_tensor_free(ctx, w1);
    gr_tensor_free(ctx, w2);
    free(xv);
}

static void test_release(gr_ctx *ctx)
{
    gr_ctx_reset(ctx);
    int64_t n = 64, s[2] = {n, n};
    gr_tensor *w = param(ctx, "w", n, n, 1);
    size_t base = gr_ctx_bytes_in_use(ctx);
    float *xv = rand_vec(n * n, -1, 1);
    gr_tensor *x = gr_from_host(ctx, GR_F32, 2, s, xv), *h = x, *mid = NULL, *kept = NULL;
    for (int i = 0; i < 12; i++) {
        h = gr_act(ctx, GR_ACT_TANH, gr_linear(ctx, h, w, NULL));
        if (i == 5) mid = h;
        if (i == 6) kept = h;
    }
    gr_keep(kept);
    gr_tensor *loss = gr_mean(ctx, h);
    size_t fwd = gr_ctx_bytes_in_use(ctx);
    gr_backward(ctx, loss, NULL);
    size_t after = gr_ctx_bytes_in_use(ctx), tensor = (size_t)(n * n) * 4;
    expect(gr_ctx_status(ctx) == GR_OK && fwd - base >= 24 * tensor,
           "forward holds its activations: %zu KiB over the parameters", (fwd - base) >> 10);
    /* left: the weight gradient, the kept tensor, the scalar loss */
    expect(after - base <= 2 * tensor + 1024, "after backward only the gradient and kept tensors remain: %zu KiB",
           (after - base) >> 10);
    float v = 0;
    gr_status ls = gr_to_host_f32(ctx, loss, &v);
    expect(ls == GR_OK && v != 0.0f, "the backward output stays readable (loss %g)", v);
    float *kv = malloc((size_t)(n * n) * sizeof *kv);
    expect(gr_to_host_f32(ctx, kept, kv) == GR_OK, "a gr_keep tensor stays readable");
    gr_status st = gr_to_host_f32(ctx, mid, kv);
    expect(st != GR_OK && strstr(gr_last_error(), "released by gr_backward"), "a released activation is refused: %s",
           gr_last_error());
    free(kv);
    free(xv);
    gr_ctx_reset(ctx);
    gr_tensor_free(ctx, w);
}

static void test_errors(gr_ctx *ctx)
{
    gr_ctx_reset(ctx);
    int64_t a[2] = {2, 3}, b[1] = {4};
    gr_tensor *ta = gr_zeros(ctx, GR_F32, 2, a), *tb = gr_zeros(ctx, GR_F32, 1, b);
    gr_tensor *r = gr_add(ctx, ta, tb);
    const char *m = gr_ctx_error(ctx);
    expect(!r && gr_ctx_status(ctx) == GR_ERR_SHAPE && strstr(m, "gr_add") && strstr(m, "[2, 3]") && strstr(m, "[4]") &&
               !strchr(m, '\n'),
           "shape mismatch: one line naming op and shapes: %s", m);
    gr_tensor *r2 = gr_scale(ctx, ta, 2.0f);
    gr_tensor *r3 = gr_matmul(ctx, ta, ta, 0, 0);
    expect(!r2 && !r3 && strstr(gr_ctx_error(ctx), "gr_add"), "sticky: later ops return NULL, first failure wins");
    expect(gr_act(ctx, GR_ACT_RELU, NULL) == NULL, "NULL propagates");
    gr_ctx_reset(ctx);
    expect(gr_ctx_status(ctx) == GR_OK, "gr_ctx_reset clears the error");
    ta = gr_zeros(ctx, GR_F32, 2, a);
    r3 = gr_matmul(ctx, ta, ta, 0, 0);
    expect(!r3 && strstr(gr_ctx_error(ctx), "gr_matmul") && strstr(gr_ctx_error(ctx), "[2, 3]"), "matmul mismatch: %s",
           gr_ctx_error(ctx));
    gr_ctx_reset(ctx);
    int64_t ts[2] = {5, 3}, is[1] = {3};
    int32_t ids[3] = {0, 7, 1};
    gr_tensor *emb = gr_embedding(ctx, gr_zeros(ctx, GR_F32, 2, ts), gr_from_host(ctx, GR_I32, 1, is, ids), -1);
    expect(!emb && strstr(gr_ctx_error(ctx), "id 7"), "embedding id out of range: %s", gr_ctx_error(ctx));
    gr_ctx_reset(ctx);
    int64_t ls[2] = {2, 4}, lb[1] = {2};
    int32_t labs[2] = {1, 9};
    gr_tensor *ce = gr_cross_entropy(ctx, gr_zeros(ctx, GR_F32, 2, ls), gr_from_host(ctx, GR_I32, 1, lb, labs), -100);
    expect(!ce && strstr(gr_ctx_error(ctx), "label 9"), "cross-entropy label out of range: %s", gr_ctx_error(ctx));
    gr_ctx_reset(ctx);
}

static void test_masks(gr_ctx *ctx)
{
    gr_ctx_reset(ctx);
    int32_t km[2 * 5] = {1, 1, 1, 1, 0, 0, 0, 1, 1, 1};
    gr_tensor *mask = gr_attention_mask(ctx, 2, 3, 5, km, 1);
    float mv[30];
    gr_to_host_f32(ctx, mask, mv);
    int ok = mask && mask->ndim == 4 && mask->shape[1] == 1;
    for (int b = 0; b < 2; b++)
        for (int q = 0; q < 3; q++)
            for (int k = 0; k < 5; k++) {
                int see = km[b * 5 + k] && k <= q + 2;
                ok &= mv[(b * 3 + q) * 5 + k] == (see ? 0.0f : -FLT_MAX);
            }
    expect(ok, "attention mask: causal with cache offset and key padding, -FLT_MAX where hidden");
    /* left-padded row whose first query sees nothing: uniform weights, not NaN */
    int32_t km2[4] = {0, 0, 1, 1};
    gr_tensor *m2 = gr_attention_mask(ctx, 1, 4, 4, km2, 1);
    int64_t ss[4] = {1, 2, 4, 4};
    float *sv = rand_vec(32, -3, 3);
    gr_tensor *scores = gr_from_host(ctx, GR_F32, 4, ss, sv);
    gr_requires_grad(scores);
    gr_tensor *p = gr_softmax(ctx, gr_add(ctx, scores, m2));
    float pv[32];
    gr_to_host_f32(ctx, p, pv);
    int uni = 1, finite = 1;
    /* queries 0 and 1 see only padded keys: uniform; query 2 sees key 2 alone */
    for (int h = 0; h < 2; h++) {
        for (int q = 0; q < 2; q++)
            for (int k = 0; k < 4; k++) uni &= fabsf(pv[h * 16 + q * 4 + k] - 0.25f) < 1e-7f;
        for (int k = 0; k < 4; k++) uni &= pv[h * 16 + 8 + k] == (k == 2 ? 1.0f : 0.0f);
        uni &= pv[h * 16 + 12] == 0.0f && pv[h * 16 + 13] == 0.0f;
    }
    gr_tensor *seed = gr_from_host(ctx, GR_F32, 4, ss, sv);
    gr_backward(ctx, p, seed);
    float gv[32];
    gr_to_host_f32(ctx, gr_grad(scores), gv);
    for (int i = 0; i < 32; i++) finite &= isfinite(gv[i]);
    int zero = 1;
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < 4; k++) zero &= gv[h * 16 + 8 + k] == 0.0f && (k >= 2 || gv[h * 16 + 12 + k] == 0.0f);
    expect(uni, "fully masked softmax rows: uniform weights (0.25 each); masked keys get weight 0");
    expect(finite && zero, "masked softmax backward: finite gradients, zero where the weight is zero");
    free(sv);
    gr_ctx_reset(ctx);
}

static void test_padding_idx(gr_ctx *ctx)
{
    gr_ctx_reset(ctx);
    int64_t is[2] = {2, 4};
    int32_t ids[8] = {1, 2, 2, 5, 0, 2, 1, 3};
    gr_tensor *table = param(ctx, "embed", 6, 3, 1);
    gr_tensor *y = gr_sum(ctx, gr_embedding(ctx, table, gr_from_host(ctx, GR_I32, 2, is, ids), 2));
    gr_backward(ctx, y, NULL);
    float g[18];
    gr_to_host_f32(ctx, gr_grad(table), g);
    int cnt[6] = {0}, ok = 1;
    for (int i = 0; i < 8; i++) cnt[ids[i]]++;
    for (int r = 0; r < 6; r++)
        for (int c = 0; c < 3; c++) ok &= g[r * 3 + c] == (r == 2 ? 0.0f : (float)cnt[r]);
    expect(ok, "embedding padding_idx: the padding row gets no gradient, repeated ids accumulate");
    gr_ctx_reset(ctx);
    gr_tensor_free(ctx, table);
}

static void test_adamw(gr_ctx *ctx)
{
    gr_ctx_reset(ctx);
    int64_t n = 37, s[1] = {n};
    float *pv = rand_vec(n, -1, 1), *cv = rand_vec(n, -2, 2);
    gr_tensor *p = gr_param_new(ctx, "p", GR_F32, 1, s), *m = gr_param_new(ctx, "m", GR_F32, 1, s),
              *v = gr_param_new(ctx, "v", GR_F32, 1, s);
    gr_upload(ctx, p, pv);
    float z[37] = {0};
    gr_upload(ctx, m, z);
    gr_upload(ctx, v, z);
    gr_set_trainable(p, 1);
    double P[37], M[37] = {0}, V[37] = {0};
    for (int i = 0; i < n; i++) P[i] = pv[i];
    double lr = 1e-2, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.05, gs = 0.5;
    for (int step = 1; step <= 3; step++) {
        gr_ctx_reset(ctx);
        gr_zero_grad(ctx, p);
        /* L = sum(p * c * step) so dL/dp = c * step */
        gr_tensor *c = gr_from_host(ctx, GR_F32, 1, s, cv);
        gr_backward(ctx, gr_sum(ctx, gr_scale(ctx, gr_mul(ctx, p, c), (float)step)), NULL);
        gr_adamw_update(ctx, p, m, v, step, (float)lr, (float)b1, (float)b2, (float)eps, (float)wd, (float)gs);
        double bc1 = 1 - pow(b1, step), bc2 = 1 - pow(b2, step);
        for (int i = 0; i < n; i++) {
            double g = (double)cv[i] * step * gs;
            P[i] *= 1 - lr * wd;
            M[i] = b1 * M[i] + (1 - b1) * g;
            V[i] = b2 * V[i] + (1 - b2) * g * g;
            P[i] -= lr / bc1 * M[i] / (sqrt(V[i]) / sqrt(bc2) + eps);
        }
    }
    float out[37];
    gr_to_host_f32(ctx, p, out);
    double e = rel_err_fd(out, P, n);
    expect(gr_ctx_status(ctx) == GR_OK && e < 1e-6, "AdamW: 3 steps match torch's formula in float64 (rel %.1e)", e);
    gr_ctx_reset(ctx);
    gr_tensor_free(ctx, p);
    gr_tensor_free(ctx, m);
    gr_tensor_free(ctx, v);
    free(pv);
    free(cv);
}

static void test_rope_tables(gr_ctx *ctx)
{
    gr_ctx_reset(ctx);
    gr_rope_config rc = {.rot_dim = 128, .theta = 500000.0, .type = GR_ROPE_LLAMA3, .factor = 8.0f,
                         .low_freq_factor = 1.0f, .high_freq_factor = 4.0f, .original_max_position = 8192};
    float inv[64];
    gr_rope_inv_freq(&rc, inv);
    int regions[3] = {0}, ok = 1;
    for (int i = 0; i < 64; i++) {
        double f = 1.0 / pow(500000.0, 2.0 * i / 128.0), wl = 2 * M_PI / f, want;
        if (wl < 8192.0 / 4) want = f, regions[0]++;
        else if (wl > 8192.0) want = f / 8, regions[2]++;
        else {
            double sm = (8192.0 / wl - 1) / (4 - 1);
            want = (1 - sm) * f / 8 + sm * f;
            regions[1]++;
        }
        ok &= fabs(inv[i] - want) <= 2e-6 * want;
    }
    expect(ok && regions[0] && regions[1] && regions[2],
           "llama3 RoPE frequencies (high %d / smoothed %d / low %d) match Meta's formula", regions[0], regions[1],
           regions[2]);
    gr_rope_config rd = {.rot_dim = 8, .theta = 10000.0};
    int32_t pos[6] = {0, 1, 2, 5, 6, 7};
    gr_tensor *c, *s;
    gr_rope_tables(ctx, &rd, 2, 3, pos, &c, &s);
    float cv[24], sv[24];
    gr_to_host_f32(ctx, c, cv);
    gr_to_host_f32(ctx, s, sv);
    ok = c && c->ndim == 3 && c->shape[2] == 4;
    for (int t = 0; t < 6; t++)
        for (int i = 0; i < 4; i++) {
            double a = pos[t] * (1.0 / pow(10000.0, 2.0 * i / 8.0));
            ok &= fabs(cv[t * 4 + i] - cos(a)) < 2e-6 && fabs(sv[t * 4 + i] - sin(a)) < 2e-6;
        }
    expect(ok, "RoPE tables for explicit positions");
    gr_ctx_reset(ctx);
}

/* A BF16 weight is converted per use into a temporary freed at once: after a no-grad forward
 * only the output and input remain, and the result equals the F32 computation on the rounded
 * weights. */
static void test_bf16_weights(gr_ctx *ctx)
{
    gr_ctx_reset(ctx);
    int64_t ws[2] = {96, 64}, xs[2] = {8, 64};
    float *wv = rand_vec(96 * 64, -1, 1), *xv = rand_vec(8 * 64, -1, 1);
    uint16_t *wb = malloc(96 * 64 * 2);
    for (int i = 0; i < 96 * 64; i++) {
        wb[i] = gr_f32_to_bf16(wv[i]);
        wv[i] = gr_bf16_to_f32(wb[i]);
    }
    gr_tensor *w = gr_param_from_host(ctx, "w.bf16", GR_BF16, 2, ws, wb);
    gr_tensor *w32 = gr_param_from_host(ctx, "w.f32", GR_F32, 2, ws, wv);
    gr_ctx_set_grad_enabled(ctx, 0);
    size_t before = gr_ctx_bytes_in_use(ctx);
    gr_tensor *x = gr_from_host(ctx, GR_F32, 2, xs, xv);
    gr_tensor *y = gr_linear(ctx, x, w, NULL);
    size_t after = gr_ctx_bytes_in_use(ctx);
    gr_tensor *y32 = gr_linear(ctx, x, w32, NULL);
    float a[8 * 96], b[8 * 96];
    gr_to_host_f32(ctx, y, a);
    gr_to_host_f32(ctx, y32, b);
    expect(memcmp(a, b, sizeof a) == 0, "BF16 weight: same result as F32 on the rounded values");
    expect(after - before <= (8 * 64 + 8 * 96) * 4 + 1024, "BF16 weight: no F32 copy kept (%zu bytes held, weight is %d)",
           after - before, 96 * 64 * 4);
    gr_ctx_set_grad_enabled(ctx, 1);
    gr_ctx_reset(ctx);
    gr_tensor_free(ctx, w);
    gr_tensor_free(ctx, w32);
    free(wb);
    free(wv);
    free(xv);
}

int main(int argc, char **argv)
{
    gr_ctx *ctx = harness_open(argc, argv, "test_autodiff");
    if (!ctx) return 1;
    test_frozen(ctx);
    test_release(ctx);
    test_errors(ctx);
    test_masks(ctx);
    test_padding_idx(ctx);
    test_adamw(ctx);
    test_rope_tables(ctx);
    test_bf16_weights(ctx);
    harness_close(ctx);
    printf("test_autodiff: %d failure%s\n", g_failures, g_failures == 1 ? "" : "s");
    return g_failures ? 1 : 0;
}
