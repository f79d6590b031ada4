/* The plugin templates of sdk/templates are working plugins, not just code that compiles:
 * each is loaded through the registry (ABI checks included) and driven through its interface
 * on the CPU backend.
 *   projector:      output shape; d(loss)/d(proj.weight) against central finite differences
 *   vision-encoder: output shape; last_hidden_state = host LayerNorm of the embeddings;
 *                   a wrong image size is a shape error
 *   language-model: logits and loss shapes; the loss equals the mean CE recomputed on the
 *                   host from the logits; d(loss)/d(prefix) against finite differences;
 *                   generation (begin, reorder, step) on a left-padded batch equals the
 *                   full forward pass
 *   backend:        buffers round-trip; matmul against a host product; a TODO kernel fails
 *                   with an error naming it
 * usage: test_templates DIR (the folder with the templates built as modules) */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graft/model.h"
#include "plugin/registry.h"

static int failures, checks;

#define CHECK(cond, ...)                                                                       \
    do {                                                                                       \
        checks++;                                                                              \
        if (!(cond)) {                                                                         \
            failures++;                                                                        \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                        \
            printf(__VA_ARGS__);                                                               \
            printf(" (%s)\n", gr_last_error());                                                \
        }                                                                                      \
    } while (0)

static const void *load(const char *dir, const char *file, gr_plugin_kind kind)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    const gr_plugin *p = NULL;
    gr_status s = gr_plugin_load_file(path, &p);
    CHECK(s == GR_OK && p->desc->kind == (uint32_t)kind, "loading %s", path);
    return s == GR_OK ? p->desc->iface : NULL;
}

static void fill_random(float *x, int64_t n, uint32_t seed)
{
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)((seed >> 8) / 16777216.0 * 2.0 - 1.0);
    }
}

static int close_to(double a, double b, double tol) { return fabs(a - b) <= tol * (1 + fabs(b)); }

/* ------------------------------------------------------------------ projector ---- */

/* loss = sum(projector(x) * r) for fixed x, r: linear in the output, so finite differences of
 * it are exact up to rounding. */
static double proj_loss(const gr_projector_iface *it, gr_projector *p, gr_ctx *ctx,
                        const float *x, const float *r, int backward)
{
    gr_tensor *xt = gr_from_host(ctx, GR_F32, 3, (int64_t[]){2, 3, 8}, x);
    gr_tensor *y = NULL;
    if (it->forward(p, ctx, xt, &y) != GR_OK) return NAN;
    gr_tensor *rt = gr_from_host(ctx, GR_F32, 3, (int64_t[]){2, 3, 4}, r);
    gr_tensor *loss = gr_sum(ctx, gr_mul(ctx, y, rt));
    float v = NAN;
    if (!loss || gr_to_host_f32(ctx, loss, &v) != GR_OK) return NAN;
    if (backward && gr_backward(ctx, loss, NULL) != GR_OK) return NAN;
    return v;
}

static void test_projector(const char *dir, gr_ctx *ctx)
{
    const gr_projector_iface *it = load(dir, "graft-my-projector.so", GR_PLUGIN_PROJECTOR);
    if (!it) return;
    gr_model_source src = {.struct_size = sizeof src, .dir = "test", .prefix = "", .seed = 7};
    gr_projector_spec spec = {.struct_size = sizeof spec, .in_dim = 8, .out_dim = 4};
    gr_projector *p;
    if (it->open(ctx, &src, &spec, &p) != GR_OK) { CHECK(0, "projector open"); return; }
    gr_param_list pl;
    it->params(p, &pl);
    CHECK(pl.count == 4 && strcmp(pl.items[2]->name, "proj.weight") == 0, "projector params");
    gr_tensor *w = pl.items[2];
    gr_set_trainable(w, 1);
    float x[48], r[24], wh[32], g[32];
    fill_random(x, 48, 1);
    fill_random(r, 24, 2);
    proj_loss(it, p, ctx, x, r, 1);
    gr_tensor *gt = gr_grad(w);
    CHECK(gt && gr_to_host_f32(ctx, gt, g) == GR_OK, "projector weight gradient");
    gr_ctx_reset(ctx);
    gr_to_host_f32(ctx, w, wh);
    int bad = 0;
    for (int i = 0; i < 32; i += 5) {
        float keep = wh[i];
        wh[i] = keep + 1e-2f;
        gr_upload(ctx, w, wh);
        double up = proj_loss(it, p, ctx, x, r, 0);
        gr_ctx_reset(ctx);
        wh[i] = keep - 1e-2f;
        gr_upload(ctx, w, wh);
        double down = proj_loss(it, p, ctx, x, r, 0);
        gr_ctx_reset(ctx);
        wh[i] = keep;
        gr_upload(ctx, w, wh);
        double fd = (up - down) / 2e-2;
        if (!close_to(g[i], fd, 1e-3)) {
            printf("projector dW[%d] = %g, finite difference %g\n", i, g[i], fd);
            bad++;
        }
    }
    CHECK(bad == 0, "projector gradient matches finite differences");
    it->close(p, ctx);
}

/* -------------------------------------------------------------- vision encoder ---- */

static void test_vision(const char *dir, gr_ctx *ctx)
{
    const gr_vision_iface *it = load(dir, "graft-my-vision-encoder.so", GR_PLUGIN_VISION_ENCODER);
    if (!it) return;
    json_t *cfg = json_pack("{s:i, s:i, s:i}", "hidden_size", 8, "image_size", 8, "patch_size", 4);
    gr_model_source src = {.struct_size = sizeof src, .dir = "test", .config = cfg,
                           .config_path = "test/config.json", .prefix = "", .seed = 3};
    gr_vision *v;
    gr_status s = it->open(ctx, &src, &v);
    json_decref(cfg);
    if (s != GR_OK) { CHECK(0, "vision open"); return; }
    gr_vision_info info = {.struct_size = sizeof info};
    it->info(v, &info);
    CHECK(info.hidden_size == 8 && info.num_tokens == 4 && info.image_size == 8, "vision info");
    float px[2 * 3 * 8 * 8];
    fill_random(px, 2 * 3 * 64, 5);
    gr_tensor *pt = gr_from_host(ctx, GR_F32, 4, (int64_t[]){2, 3, 8, 8}, px);
    gr_vision_outputs out = {.struct_size = sizeof out};
    s = it->forward(v, ctx, pt, 1, &out);
    CHECK(s == GR_OK && out.last_hidden_state && out.last_hidden_state->ndim == 3 &&
              out.last_hidden_state->shape[1] == 4 && out.last_hidden_state->shape[2] == 8 &&
              out.num_hidden_states == 1, "vision outputs");
    if (s == GR_OK) {
        /* last_hidden_state = LayerNorm(hidden_states[0]) with fresh weights 1 and 0, eps 1e-6. */
        float h[64], pre[64];
        gr_to_host_f32(ctx, out.last_hidden_state, h);
        gr_to_host_f32(ctx, out.hidden_states[0], pre);
        int bad = 0;
        for (int row = 0; row < 8; row++) {
            double m = 0, var = 0;
            for (int j = 0; j < 8; j++) m += pre[row * 8 + j] / 8.0;
            for (int j = 0; j < 8; j++) var += (pre[row * 8 + j] - m) * (pre[row * 8 + j] - m) / 8.0;
            for (int j = 0; j < 8; j++) {
                double want = (pre[row * 8 + j] - m) / sqrt(var + 1e-6);
                if (!close_to(h[row * 8 + j], want, 1e-4)) {
                    printf("row %d col %d: %g, host layernorm %g\n", row, j, h[row * 8 + j], want);
                    bad++;
                }
            }
        }
        CHECK(bad == 0, "vision rows are layer-normalised");
    }
    /* A wrong image size is an error naming the expected shape, not a crash. */
    gr_ctx_reset(ctx);
    gr_tensor *wrong = gr_zeros(ctx, GR_F32, 4, (int64_t[]){1, 3, 4, 4});
    s = it->forward(v, ctx, wrong, 0, &out);
    CHECK(s == GR_ERR_SHAPE && strstr(gr_ctx_error(ctx), "[B, 3, 8, 8]"), "vision wrong size");
    gr_ctx_reset(ctx);
    it->close(v, ctx);
}

/* -------------------------------------------------------------- language model ---- */

enum { B = 2, P = 3, S = 5, E = 8, V = 11 };

static gr_status lm_run(const gr_lm_iface *it, gr_lm *lm, gr_ctx *ctx, const float *prefix,
                        const int32_t *ids, const int32_t *mask, const int32_t *labels,
                        int grad, gr_lm_outputs *out, gr_tensor **pt)
{
    gr_tensor *pre = gr_from_host(ctx, GR_F32, 3, (int64_t[]){B, P, E}, prefix);
    if (grad && pre) gr_requires_grad(pre);
    if (pt) *pt = pre;
    gr_lm_inputs in = {.struct_size = sizeof in, .batch = B, .seq = S, .ids = ids, .mask = mask,
                       .prefix = pre, .labels = labels};
    out->struct_size = sizeof *out;
    return it->forward(lm, ctx, &in, out);
}

static void test_lm(const char *dir, gr_ctx *ctx)
{
    const gr_lm_iface *it = load(dir, "graft-my-language-model.so", GR_PLUGIN_LANGUAGE_MODEL);
    if (!it) return;
    json_t *cfg = json_pack("{s:i, s:i, s:i, s:i}", "vocab_size", V, "hidden_size", E,
                            "num_attention_heads", 2, "eos_token_id", 2);
    gr_model_source src = {.struct_size = sizeof src, .dir = "test", .config = cfg,
                           .config_path = "test/config.json", .prefix = "", .seed = 11};
    gr_lm *lm;
    gr_status s = it->open(ctx, &src, &lm);
    json_decref(cfg);
    if (s != GR_OK) { CHECK(0, "lm open"); return; }
    gr_lm_info info = {.struct_size = sizeof info};
    it->info(lm, &info);
    CHECK(info.vocab_size == V && info.embed_dim == E && info.eos_id == 2 && info.bos_id == -1,
          "lm info");

    float prefix[B * P * E];
    fill_random(prefix, B * P * E, 9);
    const int32_t ids[B * S] = {1, 4, 5, 6, 7, 0, 0, 3, 9, 10};    /* row 1 left-padded by 2 */
    const int32_t mask[B * S] = {1, 1, 1, 1, 1, 0, 0, 1, 1, 1};
    const int32_t labels[B * S] = {1, 4, 5, 6, 7, -100, -100, 3, 9, 10};

    /* Loss = mean over supervised positions of the host cross-entropy of the logits. */
    gr_lm_outputs out = {.struct_size = sizeof out};
    gr_tensor *pre;
    s = lm_run(it, lm, ctx, prefix, ids, mask, labels, 1, &out, &pre);
    CHECK(s == GR_OK && out.logits && out.logits->shape[1] == P + S && out.logits->shape[2] == V &&
              out.loss, "lm forward");
    if (s != GR_OK) { it->close(lm, ctx); return; }
    float logits[B * (P + S) * V], loss;
    gr_to_host_f32(ctx, out.logits, logits);
    gr_to_host_f32(ctx, out.loss, &loss);
    double sum = 0;
    int n = 0;
    for (int b = 0; b < B; b++)
        for (int t = P - 1; t < P + S - 1; t++) {
            int32_t y = labels[b * S + t + 1 - P];
            if (y < 0) continue;
            const float *l = logits + (b * (P + S) + t) * V;
            double mx = l[0], z = 0;
            for (int v = 1; v < V; v++) mx = l[v] > mx ? l[v] : mx;
            for (int v = 0; v < V; v++) z += exp(l[v] - mx);
            sum += log(z) + mx - l[y];
            n++;
        }
    CHECK(close_to(loss, sum / n, 1e-5), "lm loss %g, host cross-entropy %g", loss, sum / n);

    /* d(loss)/d(prefix) against central differences. */
    s = gr_backward(ctx, out.loss, NULL);
    float g[B * P * E];
    CHECK(s == GR_OK && gr_grad(pre) && gr_to_host_f32(ctx, gr_grad(pre), g) == GR_OK,
          "lm prefix gradient");
    gr_ctx_reset(ctx);
    int bad = 0;
    for (int i = 0; i < B * P * E; i += 7) {
        float keep = prefix[i];
        float lu, ld;
        prefix[i] = keep + 1e-2f;
        lm_run(it, lm, ctx, prefix, ids, mask, labels, 0, &out, NULL);
        gr_to_host_f32(ctx, out.loss, &lu);
        gr_ctx_reset(ctx);
        prefix[i] = keep - 1e-2f;
        lm_run(it, lm, ctx, prefix, ids, mask, labels, 0, &out, NULL);
        gr_to_host_f32(ctx, out.loss, &ld);
        gr_ctx_reset(ctx);
        prefix[i] = keep;
        double fd = ((double)lu - ld) / 2e-2;
        if (fabs(g[i] - fd) > 2e-3 + 2e-2 * fabs(fd)) {
            printf("lm dprefix[%d] = %g, finite difference %g\n", i, g[i], fd);
            bad++;
        }
    }
    CHECK(bad == 0, "lm prefix gradient matches finite differences");

    /* Generation equals the full forward: begin on the first 4 text tokens, step the 5th. */
    int gr_prev = gr_ctx_set_grad_enabled(ctx, 0);
    float full[B * (P + S) * V];
    lm_run(it, lm, ctx, prefix, ids, mask, NULL, 0, &out, NULL);
    gr_to_host_f32(ctx, out.logits, full);
    gr_ctx_reset(ctx);
    int32_t ids4[B * 4], mask4[B * 4], next[B];
    for (int b = 0; b < B; b++) {
        memcpy(ids4 + b * 4, ids + b * S, 4 * sizeof *ids);
        memcpy(mask4 + b * 4, mask + b * S, 4 * sizeof *mask);
        next[b] = ids[b * S + 4];
    }
    gr_tensor *pt = gr_from_host(ctx, GR_F32, 3, (int64_t[]){B, P, E}, prefix);
    gr_lm_inputs prompt = {.struct_size = sizeof prompt, .batch = B, .seq = 4, .ids = ids4,
                           .mask = mask4, .prefix = pt};
    gr_lm_cache *cache = NULL;
    gr_tensor *lt = NULL;
    s = it->generate_begin(lm, ctx, &prompt, &cache, &lt);
    float got[B * V];
    CHECK(s == GR_OK && lt && gr_to_host_f32(ctx, lt, got) == GR_OK, "generate_begin");
    double worst = 0;
    for (int b = 0; s == GR_OK && b < B; b++)
        for (int v = 0; v < V; v++)
            worst = fmax(worst, fabs(got[b * V + v] - full[(b * (P + S) + P + 3) * V + v]));
    CHECK(s == GR_OK && worst < 1e-4, "generate_begin logits equal forward (max diff %g)", worst);
    /* Swap the rows, step with the swapped next tokens: row 0 is now the old row 1. */
    const int32_t swap[B] = {1, 0};
    const int32_t next_swapped[B] = {next[1], next[0]};
    if (s == GR_OK) s = it->cache_reorder(lm, ctx, cache, swap, B);
    if (s == GR_OK) s = it->generate_step(lm, ctx, cache, next_swapped, &lt);
    CHECK(s == GR_OK && gr_to_host_f32(ctx, lt, got) == GR_OK, "reorder + generate_step");
    worst = 0;
    for (int b = 0; s == GR_OK && b < B; b++)
        for (int v = 0; v < V; v++)
            worst = fmax(worst, fabs(got[b * V + v] - full[((1 - b) * (P + S) + P + 4) * V + v]));
    CHECK(s == GR_OK && worst < 1e-4, "generate_step logits equal forward (max diff %g)", worst);
    it->cache_free(lm, ctx, cache);
    gr_ctx_reset(ctx);
    gr_ctx_set_grad_enabled(ctx, gr_prev);

    const int bad_layer[1] = {3};
    CHECK(it->set_layers(lm, bad_layer, 1) == GR_ERR_INVALID &&
              strstr(gr_last_error(), "layer 3"), "set_layers refuses a missing layer");
    it->close(lm, ctx);
}

/* --------------------------------------------------------------------- backend ---- */

static void test_backend(const char *dir)
{
    const gr_backend_iface *it = load(dir, "graft-my-backend.so", GR_PLUGIN_BACKEND);
    if (!it) return;
    gr_backend_options opt = {.struct_size = sizeof opt, .threads = 1};
    void *bc;
    if (it->create(&opt, &bc) != GR_OK) { CHECK(0, "backend create"); return; }
    const float a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {1, -1, 2, 0.5f, -3, 4}; /* [2,3] x [3,2] */
    gr_buffer *buf;
    CHECK(it->buffer_alloc(bc, 64 * sizeof(float), &buf) == GR_OK, "backend alloc");
    it->upload(bc, buf, 0, a, sizeof a);
    it->upload(bc, buf, 8 * sizeof(float), b, sizeof b);
    gr_tensor ta = {.dtype = GR_F32, .ndim = 2, .shape = {2, 3}, .buffer = buf, .offset = 0};
    gr_tensor tb = {.dtype = GR_F32, .ndim = 2, .shape = {3, 2}, .buffer = buf, .offset = 32};
    gr_tensor tc = {.dtype = GR_F32, .ndim = 2, .shape = {2, 2}, .buffer = buf, .offset = 64};
    gr_matmul_args mm = {.a = &ta, .b = &tb, .c = &tc, .m = 2, .n = 2, .k = 3, .batch = 1,
                         .lda = 3, .ldb = 2, .ldc = 2, .alpha = 1, .beta = 0};
    float c[4] = {0};
    CHECK(it->matmul(bc, &mm) == GR_OK && it->download(bc, buf, 64, c, sizeof c) == GR_OK,
          "backend matmul");
    const float want[4] = {1 * 1 + 2 * 2 + 3 * -3, 1 * -1 + 2 * 0.5f + 3 * 4,
                           4 * 1 + 5 * 2 + 6 * -3, 4 * -1 + 5 * 0.5f + 6 * 4};
    CHECK(memcmp(c, want, sizeof c) == 0, "backend matmul values %g %g %g %g", c[0], c[1], c[2], c[3]);
    float back[6];
    CHECK(it->download(bc, buf, 0, back, sizeof back) == GR_OK && memcmp(back, a, sizeof a) == 0,
          "backend round trip");
    CHECK(it->download(bc, buf, 60 * sizeof(float), back, sizeof back) == GR_ERR_INVALID,
          "backend refuses a download past the buffer");
    CHECK(it->softmax(bc, &tc, &tc) == GR_ERR_UNSUPPORTED && strstr(gr_last_error(), "'softmax'"),
          "backend TODO kernel names itself");
    it->buffer_free(bc, buf);
    it->destroy(bc);
}

int main(int argc, char **argv)
{
    if (argc != 2) { fprintf(stderr, "usage: test_templates DIR\n"); return 2; }
    gr_plugins_scan();
    gr_backend *be;
    if (gr_backend_open("cpu", NULL, &be) != GR_OK) {
        printf("FAIL: cpu backend: %s\n", gr_last_error());
        return 1;
    }
    gr_ctx *ctx = gr_ctx_create(be);
    test_projector(argv[1], ctx);
    test_vision(argv[1], ctx);
    test_lm(argv[1], ctx);
    test_backend(argv[1]);
    gr_ctx_destroy(ctx);
    gr_backend_close(be);
    gr_plugins_unload_all();
    printf("templates: %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
