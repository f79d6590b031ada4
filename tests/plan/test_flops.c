/* The analytic FLOP model (core/transfer/flops.c) against the matmul FLOPs the core measures
 * (gr_ctx_flops) when the real plugins run on the fixtures: equal, in all four parts (frozen /
 * trainable forward, backward to inputs, weight gradients), for
 *   - every LM fixture: inference; a frozen LM under a trainable soft prompt; full fine-tuning;
 *     a layer subset (set_layers, a surrogate) with one trainable translator layer;
 *   - BLIP-2 compositions (CLIP and BLIP-2 towers, Q-Former, linear projector, OPT and T5): the
 *     scratch step (Q-Former + projector trained), TaS stage 1 (projector only), and the surrogate
 *     recipe's encoder stage (last tower layer trained too).
 * Usage: test_flops FIXTURES_DIR */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graft/model.h"
#include "plugin/registry.h"
#include "transfer/flops.h"
#include "transfer/plan.h"
#include "vlm/vlm.h"

static int failures, checks;
static gr_backend *backend;
static const char *fixtures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                            \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
        }                                                                                          \
    } while (0)

static int same(const gr_flops *m, const gr_flop_count *p)
{
    return m->forward_frozen == p->forward_frozen && m->forward_trainable == p->forward_trainable &&
           m->backward_input == p->backward_input && m->backward_param == p->backward_param;
}

static void show(const char *what, const gr_flops *m, const gr_flop_count *p)
{
    printf("     %-40s measured %.0f/%.0f/%.0f/%.0f  model %.0f/%.0f/%.0f/%.0f\n", what, m->forward_frozen,
           m->forward_trainable, m->backward_input, m->backward_param, p->forward_frozen, p->forward_trainable,
           p->backward_input, p->backward_param);
}

static void expect(const char *label, const char *what, gr_ctx *ctx, const gr_flop_count *p)
{
    gr_flops m;
    gr_ctx_flops(ctx, &m);
    int ok = same(&m, p) && gr_flop_total(p) > 0;
    CHECK(ok, "%s: %s: measured and modelled FLOPs differ", label, what);
    if (!ok) show(what, &m, p);
}

static void fill_random(float *v, int64_t n, unsigned seed)
{
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        v[i] = ((float)(seed >> 9) / (float)(1u << 23) - 0.5f) * 0.2f;
    }
}

/* ------------------------------------------------------------------ LMs ---- */

static void test_lm(const char *name)
{
    char dir[600], path[700];
    snprintf(dir, sizeof dir, "%s/%s", fixtures, name);
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_t *cfg = json_load_file(path, 0, NULL);
    const char *family = json_string_value(json_object_get(cfg, "model_type"));
    gr_lm_shape shape;
    gr_status s = gr_lm_shape_from_config(cfg, path, &shape);
    const void *vi = NULL;
    if (s == GR_OK) s = gr_plugin_iface(GR_PLUGIN_LANGUAGE_MODEL, family, &vi);
    gr_weights *w = NULL;
    if (s == GR_OK) s = gr_weights_open(dir, &w);
    const gr_lm_iface *lm = vi;
    gr_ctx *ctx = gr_ctx_create(backend);
    gr_model_source src = {.struct_size = sizeof src, .dir = dir, .config = cfg, .config_path = path, .weights = w,
                           .prefix = ""};
    gr_lm *m = NULL;
    if (s == GR_OK) s = lm->open(ctx, &src, &m);
    CHECK(s == GR_OK, "%s: open: %s", name, gr_last_error());
    if (s) { gr_ctx_destroy(ctx); gr_weights_close(w); json_decref(cfg); return; }
    gr_lm_info info = {.struct_size = sizeof info};
    lm->info(m, &info);
    int t5 = info.is_encoder_decoder;
    enum { B = 2, T = 7, P = 3, LL = 5 };
    int32_t ids[B * T], labels[B * (T > LL ? T : LL)];
    for (int i = 0; i < B * T; i++) ids[i] = 3 + (i * 7) % (int)(info.vocab_size - 3);
    for (int i = 0; i < B * (t5 ? LL : T); i++) labels[i] = 3 + (i * 5) % (int)(info.vocab_size - 3);
    gr_lm_inputs in = {.struct_size = sizeof in, .batch = B, .seq = T, .ids = ids, .labels = labels,
                       .label_len = t5 ? LL : T};
    gr_lm_outputs out = {.struct_size = sizeof out};
    gr_lm_pass pass = {.batch = B, .seq = T, .label_len = t5 ? LL : 0};
    gr_flop_count want;

    /* 1. inference */
    gr_ctx_set_grad_enabled(ctx, 0);
    gr_ctx_reset_flops(ctx);
    s = lm->forward(m, ctx, &in, &out);
    gr_flops_lm(&shape, &pass, &want);
    CHECK(s == GR_OK, "%s: forward: %s", name, gr_last_error());
    expect(name, "inference", ctx, &want);
    gr_ctx_reset(ctx);
    gr_ctx_set_grad_enabled(ctx, 1);

    /* 2. frozen LM, trainable soft prompt (the VLM training step) */
    int64_t pshape[3] = {B, P, info.embed_dim};
    float *pv = malloc((size_t)(B * P * info.embed_dim) * sizeof *pv);
    fill_random(pv, B * P * info.embed_dim, 1);
    gr_tensor *prefix = gr_from_host(ctx, GR_F32, 3, pshape, pv);
    gr_requires_grad(prefix);
    in.prefix = prefix;
    gr_ctx_reset_flops(ctx);
    s = lm->forward(m, ctx, &in, &out);
    if (s == GR_OK) s = gr_backward(ctx, out.loss, NULL);
    pass.prefix = P;
    pass.prefix_grad = 1;
    pass.want_loss = 1;
    gr_flops_lm(&shape, &pass, &want);
    CHECK(s == GR_OK, "%s: prefix step: %s", name, gr_last_error());
    expect(name, "frozen LM + trainable prefix", ctx, &want);
    gr_ctx_reset(ctx);
    in.prefix = NULL;
    pass.prefix = 0;
    pass.prefix_grad = 0;

    /* 3. full fine-tuning */
    gr_param_list pl;
    lm->params(m, &pl);
    for (int i = 0; i < pl.count; i++) gr_set_trainable(pl.items[i], 1);
    gr_ctx_reset_flops(ctx);
    s = lm->forward(m, ctx, &in, &out);
    if (s == GR_OK) s = gr_backward(ctx, out.loss, NULL);
    pass.train_all = 1;
    gr_flops_lm(&shape, &pass, &want);
    CHECK(s == GR_OK, "%s: fine-tune step: %s", name, gr_last_error());
    expect(name, "full fine-tuning", ctx, &want);
    gr_ctx_reset(ctx);
    for (int i = 0; i < pl.count; i++) {
        gr_set_trainable(pl.items[i], 0);
        gr_zero_grad(ctx, pl.items[i]);
    }
    pass.train_all = 0;

    /* 4. a surrogate: the last layer, then layer 0 as a trainable translator (text only). */
    int L = info.num_layers, order[2] = {L - 1, 0};
    unsigned char train[2] = {0, 1};
    char pat[64];
    snprintf(pat, sizeof pat, t5 ? "decoder.block.%d." : "layers.%d.", 0);
    int n_tr = 0;
    for (int i = 0; i < pl.count; i++)
        if (strstr(pl.items[i]->name, pat) && (!t5 || strncmp(pl.items[i]->name, "decoder.", 8) == 0)) {
            gr_set_trainable(pl.items[i], 1);
            n_tr++;
        }
    CHECK(n_tr > 0, "%s: no parameter of layer 0 found", name);
    s = lm->set_layers(m, order, L > 1 ? 2 : 1);
    gr_ctx_reset_flops(ctx);
    if (s == GR_OK) s = lm->forward(m, ctx, &in, &out);
    if (s == GR_OK) s = gr_backward(ctx, out.loss, NULL);
    pass.layers = L > 1 ? order : order + 1;
    pass.num_layers = L > 1 ? 2 : 1;
    pass.train_layer = L > 1 ? train : train + 1;
    pass.want_loss = 1;
    gr_flops_lm(&shape, &pass, &want);
    CHECK(s == GR_OK, "%s: translator step: %s", name, gr_last_error());
    expect(name, "surrogate with a trainable translator", ctx, &want);
    gr_ctx_reset(ctx);
    lm->set_layers(m, NULL, 0);
    free(pv);
    lm->close(m, ctx);
    gr_ctx_destroy(ctx);
    gr_weights_close(w);
    json_decref(cfg);
    printf("ok   %-26s inference, soft-prompt step, fine-tuning, translator\n", name);
}

/* ------------------------------------------------------------------ BLIP-2 ---- */

static gr_flop_count vlm_model(const json_t *cfg, const char *path, int64_t B, int64_t T, int train_qformer,
                               int vit_train_last, int *ok)
{
    gr_vit_shape vs;
    gr_qformer_shape qs;
    gr_lm_shape ls;
    gr_flop_count total = {0}, part;
    const json_t *vc = json_object_get(cfg, "vision_config");
    *ok = gr_vit_shape_from_config(vc, path, &vs) == GR_OK &&
          gr_qformer_shape_from_config(json_object_get(cfg, "qformer_config"), path, vs.d,
                                       json_integer_value(json_object_get(cfg, "num_query_tokens")), &qs) == GR_OK &&
          gr_lm_shape_from_config(json_object_get(cfg, "text_config"), path, &ls) == GR_OK;
    if (!*ok) return total;
    int64_t grid = vs.image / vs.patch, tokens = grid * grid + 1;
    gr_flops_vit(&vs, B, vit_train_last, 1, &part);
    gr_flop_add(&total, &part, 1);
    gr_flops_qformer(&qs, B, tokens, vit_train_last > 0, train_qformer, 1, &part);
    gr_flop_add(&total, &part, 1);
    gr_flops_projector(B * qs.queries, qs.d, 0, ls.embed_dim, 0, train_qformer || vit_train_last > 0, 1, 1, &part);
    gr_flop_add(&total, &part, 1);
    gr_lm_pass lp = {.batch = B, .prefix = qs.queries, .seq = ls.arch == GR_LM_T5 ? T : T, .label_len = T,
                     .prefix_grad = 1, .want_loss = 1};
    gr_flops_lm(&ls, &lp, &part);
    gr_flop_add(&total, &part, 1);
    return total;
}

static void test_blip2(const char *name)
{
    char dir[600], path[700];
    snprintf(dir, sizeof dir, "%s/%s", fixtures, name);
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_t *cfg = json_load_file(path, 0, NULL);
    gr_ctx *ctx = gr_ctx_create(backend);
    gr_vlm *v = NULL;
    gr_status s = gr_vlm_open_dir(ctx, dir, &v);
    CHECK(s == GR_OK && cfg, "%s: open: %s", name, gr_last_error());
    if (s) { gr_ctx_destroy(ctx); json_decref(cfg); return; }
    gr_vlm_info info = {.struct_size = sizeof info};
    gr_vlm_get_info(v, &info);
    enum { B = 2, T = 5 };
    char last_layer[64];
    snprintf(last_layer, sizeof last_layer, "vision_model.encoder.layers.%d.*", info.vision.num_layers - 1);
    int64_t px[4] = {B, 3, info.vision.image_size, info.vision.image_size};
    int64_t npx = B * 3 * px[2] * px[3];
    float *pix = malloc((size_t)npx * sizeof *pix);
    fill_random(pix, npx, 9);
    int32_t ids[B * T], labels[B * T];
    for (int i = 0; i < B * T; i++) {
        ids[i] = 3 + (i * 7) % (int)(info.lm.vocab_size - 3);
        labels[i] = 3 + (i * 3) % (int)(info.lm.vocab_size - 3);
    }
    struct { const char *what; const char *patterns[4]; int qformer, vit_last; } cases[] = {
        {"scratch step (Q-Former + projector)", {"qformer.*", "query_tokens", "language_projection.*", NULL}, 1, 0},
        {"TaS stage 1 (projector only)", {"language_projection.*", NULL}, 0, 0},
        {"encoder stage (+ last tower layer)", {"qformer.*", "query_tokens", "language_projection.*", last_layer}, 1, 1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int matched = 0;
        for (int i = 0; i < gr_vlm_param_count(v); i++) {
            const char *nm;
            gr_set_trainable(gr_vlm_param_at(v, i, &nm), 0);
        }
        for (int k = 0; k < 4 && cases[c].patterns[k]; k++) {
            int n = gr_vlm_set_trainable(v, cases[c].patterns[k], 1);
            CHECK(n > 0, "%s: pattern %s matched nothing", name, cases[c].patterns[k]);
            matched += n;
        }
        gr_tensor *pt = gr_from_host(ctx, GR_F32, 4, px, pix);
        gr_vlm_inputs in = {.struct_size = sizeof in, .pixel_values = pt, .seq = T, .ids = ids, .labels = labels,
                            .label_len = T};
        gr_vlm_outputs out = {.struct_size = sizeof(gr_vlm_outputs)};
        gr_ctx_reset_flops(ctx);
        s = gr_vlm_forward(v, ctx, &in, &out);
        if (s == GR_OK) s = gr_backward(ctx, out.lm.loss, NULL);
        CHECK(s == GR_OK, "%s: %s: %s", name, cases[c].what, gr_last_error());
        int ok;
        gr_flop_count want = vlm_model(cfg, path, B, T, cases[c].qformer, cases[c].vit_last, &ok);
        CHECK(ok, "%s: shapes: %s", name, gr_last_error());
        expect(name, cases[c].what, ctx, &want);
        /* The planner's per-sample step is the same step at batch 1 (FLOPs are linear in the
         * batch; decoder-only LMs, where the planner's text split is the test's). */
        gr_plan_vlm pv;
        if (info.lm.is_encoder_decoder == 0 && gr_plan_vlm_open(dir, NULL, NULL, NULL, 0, &pv) == GR_OK) {
            gr_plan_step st = {.vpg = cases[c].qformer, .projector = 1, .vision_last = cases[c].vit_last};
            gr_flop_count one;
            gr_plan_step_flops(&pv, &st, T, 0, &one);
            gr_flops m;
            gr_ctx_flops(ctx, &m);
            CHECK(one.forward_frozen * B == m.forward_frozen && one.forward_trainable * B == m.forward_trainable &&
                      one.backward_input * B == m.backward_input && one.backward_param * B == m.backward_param,
                  "%s: %s: the planner's step differs from the measured one", name, cases[c].what);
        }
        gr_ctx_reset(ctx);
        for (int i = 0; i < gr_vlm_param_count(v); i++) {
            const char *nm;
            gr_zero_grad(ctx, gr_vlm_param_at(v, i, &nm));
        }
    }
    free(pix);
    gr_vlm_close(v, ctx);
    gr_ctx_destroy(ctx);
    json_decref(cfg);
    printf("ok   %-26s BLIP-2: scratch step, TaS stage 1, encoder stage\n", name);
}

/* The planner's input: config errors are one line naming the file. */
static void test_shape_errors(void)
{
    json_t *c = json_pack("{s:s,s:i}", "model_type", "llama", "hidden_size", 0);
    gr_lm_shape s;
    CHECK(gr_lm_shape_from_config(c, "x/config.json", &s) == GR_ERR_INVALID && strstr(gr_last_error(), "x/config.json"),
          "zero hidden size: %s", gr_last_error());
    json_decref(c);
    c = json_pack("{s:s}", "model_type", "bert");
    CHECK(gr_lm_shape_from_config(c, "y/config.json", &s) == GR_ERR_UNSUPPORTED && strstr(gr_last_error(), "bert"),
          "bert: %s", gr_last_error());
    json_decref(c);
    /* Defaults are HF's: Llama-2-7B's shape from an almost empty config. */
    c = json_pack("{s:s}", "model_type", "llama");
    CHECK(gr_lm_shape_from_config(c, "z", &s) == GR_OK && s.d == 4096 && s.layers == 32 && s.ffn == 11008 &&
              s.vocab == 32000 && fabs(gr_lm_shape_params(&s) - 6.74e9) < 0.01e9,
          "llama defaults: %.4g params", gr_lm_shape_params(&s));
    json_decref(c);
    printf("ok   shape errors and defaults\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) { fprintf(stderr, "usage: test_flops FIXTURES_DIR\n"); return 2; }
    fixtures = argv[1];
    gr_plugins_scan();
    if (gr_backend_open("cpu", NULL, &backend) != GR_OK) {
        printf("FAIL: cpu backend: %s\n", gr_last_error());
        return 1;
    }
    const char *lms[] = {"opt_prenorm", "opt_postln_project", "llama_gqa2_llama3rope", "llama_rope_parameters_v5",
                         "llama_gqa4_linear_tied", "t5_gated_gelu_untied", "t5_v5_config_untied", "t5_v10_relu_tied"};
    for (size_t i = 0; i < sizeof lms / sizeof *lms; i++) test_lm(lms[i]);
    const char *vlms[] = {"blip2_clip_qformer_opt", "blip2_hf_vision_opt", "blip2_hf_vision_t5",
                          "vx_blip2_nobias_freq1_opt_f16", "vx_blip2_clip_t5relu_bf16"};
    for (size_t i = 0; i < sizeof vlms / sizeof *vlms; i++) test_blip2(vlms[i]);
    test_shape_errors();
    gr_backend_close(backend);
    gr_plugins_unload_all();
    printf("flops: %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
