/* Vision plugins and the VLM composite, beyond what `graft verify` checks on the fixtures:
 * config errors (one line naming the key), missing/mis-shaped tensors, HF random init, the
 * mlp projector's math, a VLM assembled from parts, parameter names and trainability, the
 * checkpoint names a VLM reports, and the ABI rule for structs a plugin fills.
 *
 * usage: test_vision FIXTURES_DIR (tests/fixtures) */
#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graft/model.h"
#include "graft/weights.h"
#include "plugin/registry.h"
#include "vlm/vlm.h"

static int failures, checks;

#define CHECK(cond, ...)                                                                       \
    do {                                                                                   \
        checks++;                                                                          \
        if (!(cond)) {                                                                     \
            failures++;                                                                    \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                           \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fprintf(stderr, "\n");                                                         \
        }                                                                                  \
    } while (0)

static const char *fixtures;
static gr_ctx *ctx;

static const void *iface(gr_plugin_kind kind, const char *name)
{
    const void *p = NULL;
    if (gr_plugin_iface(kind, name, &p)) {
        fprintf(stderr, "FAIL: plugin %s: %s\n", name, gr_last_error());
        exit(1);
    }
    return p;
}

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j) { fprintf(stderr, "FAIL: bad test JSON: %s\n", e.text); exit(1); }
    return j;
}

/* Opening `plugin` with this config must fail with a one-line message holding `needle`. */
static void expect_vision_error(const char *plugin, const char *config, const char *needle)
{
    const gr_vision_iface *vi = iface(GR_PLUGIN_VISION_ENCODER, plugin);
    json_t *cfg = parse(config);
    gr_model_source src = {.struct_size = sizeof src, .dir = "mem", .config = cfg,
                           .config_path = "cfg.json", .prefix = "", .seed = 1};
    gr_vision *v = NULL;
    gr_status st = vi->open(ctx, &src, &v);
    const char *msg = gr_last_error();
    CHECK(st != GR_OK && !v, "%s accepted %s", plugin, config);
    CHECK(strstr(msg, needle) && !strchr(msg, '\n'), "%s: message '%s' lacks '%s'", plugin, msg, needle);
    printf("  %s refuses %s: %s\n", plugin, config, msg);
    if (v) vi->close(v, ctx);
    json_decref(cfg);
    gr_ctx_reset(ctx);
}

static void test_config_errors(void)
{
    printf("config errors\n");
    expect_vision_error("clip-vit", "{\"hidden_size\": 50, \"num_attention_heads\": 4}",
                        "cfg.json: num_attention_heads");
    expect_vision_error("clip-vit", "{\"hidden_act\": \"gelu_fast\"}", "cfg.json: hidden_act");
    expect_vision_error("clip-vit", "{\"image_size\": \"big\"}", "image_size");
    expect_vision_error("clip-vit", "{\"model_type\": \"blip_2_vision_model\"}", "model_type");
    expect_vision_error("blip2-vit", "{\"model_type\": \"blip-2\", \"vision_config\": "
                        "{\"layer_norm_eps\": -1}}", "cfg.json: vision_config.layer_norm_eps");
    expect_vision_error("qformer", "{\"position_embedding_type\": \"relative_key\"}",
                        "cfg.json: position_embedding_type");
    expect_vision_error("qformer", "{\"model_type\": \"blip-2\", \"qformer_config\": "
                        "{\"cross_attention_frequency\": 0}}",
                        "cfg.json: qformer_config.cross_attention_frequency");

    /* BLIP-2 composite: unknown towers and language models name their key. */
    const char *bad[][2] = {
        {"{\"model_type\": \"blip-2\", \"text_config\": {\"model_type\": \"gpt2\"}}",
         "text_config.model_type"},
        {"{\"model_type\": \"blip-2\", \"vision_config\": {\"model_type\": \"siglip_vision_model\"}, "
         "\"text_config\": {}}", "vision_config.model_type"},
        {"{\"model_type\": \"blip-2\"}", "text_config"},
        {"{\"model_type\": \"llava\", \"text_config\": {}}", "model_type"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *cfg = parse(bad[i][0]);
        gr_vlm *m = NULL;
        gr_status st = gr_vlm_open_blip2(ctx, "mem", cfg, "cfg.json", NULL, &m);
        CHECK(st != GR_OK && !m && strstr(gr_last_error(), bad[i][1]),
              "blip-2 config %s: '%s'", bad[i][0], gr_last_error());
        printf("  vlm refuses %s: %s\n", bad[i][0], gr_last_error());
        json_decref(cfg);
        gr_ctx_reset(ctx);
    }
}

static json_t *load_config(const char *dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s/config.json", fixtures, dir);
    json_error_t e;
    json_t *j = json_load_file(path, 0, &e);
    if (!j) { fprintf(stderr, "FAIL: %s: %s\n", path, e.text); exit(1); }
    return j;
}

static gr_weights *load_weights(const char *dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", fixtures, dir);
    gr_weights *w;
    if (gr_weights_open(path, &w)) { fprintf(stderr, "FAIL: %s\n", gr_last_error()); exit(1); }
    return w;
}

/* A checkpoint that does not fit the config: the error names the tensor. */
static void test_checkpoint_errors(void)
{
    printf("checkpoint errors\n");
    const gr_vision_iface *vi = iface(GR_PLUGIN_VISION_ENCODER, "clip-vit");
    gr_weights *w = load_weights("clip_vision_quickgelu");
    json_t *cfg = load_config("clip_vision_quickgelu");
    gr_model_source src = {.struct_size = sizeof src, .dir = "clip", .config = cfg,
                           .config_path = "cfg.json", .weights = w, .prefix = ""};
    gr_vision *v = NULL;

    json_object_set_new(cfg, "num_hidden_layers", json_integer(3));
    CHECK(vi->open(ctx, &src, &v) == GR_ERR_NOT_FOUND && !v, "3 layers from a 2-layer file");
    CHECK(strstr(gr_last_error(), "vision_model.encoder.layers.2.layer_norm1.weight") != NULL,
          "missing tensor not named: %s", gr_last_error());
    printf("  %s\n", gr_last_error());

    json_object_set_new(cfg, "num_hidden_layers", json_integer(2));
    json_object_set_new(cfg, "intermediate_size", json_integer(64));
    CHECK(vi->open(ctx, &src, &v) == GR_ERR_SHAPE && !v, "intermediate 64 vs stored 96");
    CHECK(strstr(gr_last_error(), "mlp.fc1.weight") && strstr(gr_last_error(), "[96, 48]"),
          "shape error: %s", gr_last_error());
    printf("  %s\n", gr_last_error());

    /* Extra keys HF ignores (position_ids buffers) do not matter; the real config opens. */
    json_object_set_new(cfg, "intermediate_size", json_integer(96));
    CHECK(vi->open(ctx, &src, &v) == GR_OK && v, "fixture config: %s", gr_last_error());
    if (v) {
        gr_vision_info info = {.struct_size = sizeof info};
        vi->info(v, &info);
        CHECK(info.num_tokens == 17 && info.hidden_size == 48 && info.num_layers == 2,
              "info %lld tokens, %lld hidden", (long long)info.num_tokens, (long long)info.hidden_size);
        /* A wrong image size is a one-line error, not a crash. */
        gr_tensor *px = gr_zeros(ctx, GR_F32, 4, (int64_t[]){1, 3, 24, 24});
        gr_vision_outputs out = {.struct_size = sizeof out};
        CHECK(vi->forward(v, ctx, px, 0, &out) == GR_ERR_SHAPE, "24x24 image accepted");
        CHECK(strstr(gr_last_error(), "[1, 3, 24, 24]") != NULL, "msg: %s", gr_last_error());
        printf("  %s\n", gr_last_error());
        gr_ctx_reset(ctx);
        vi->close(v, ctx);
    }
    json_decref(cfg);
    gr_weights_close(w);
}

static void moments(gr_tensor *t, double *mean, double *std, double *maxabs)
{
    int64_t n = gr_numel(t);
    float *h = malloc((size_t)n * sizeof *h);
    gr_to_host_f32(ctx, t, h);
    double s = 0, s2 = 0, m = 0;
    for (int64_t i = 0; i < n; i++) {
        s += h[i];
        s2 += (double)h[i] * h[i];
        if (fabs(h[i]) > m) m = fabs(h[i]);
    }
    *mean = s / (double)n;
    *std = sqrt(s2 / (double)n - *mean * *mean);
    *maxabs = m;
    free(h);
}

static gr_tensor *param_named(gr_param_list *pl, const char *name)
{
    for (int i = 0; i < pl->count; i++)
        if (strcmp(pl->items[i]->name, name) == 0) return pl->items[i];
    return NULL;
}

/* HF init: Linear N(0, initializer_range) with zero bias, LayerNorm 1/0, query tokens
 * N(0, initializer_range); deterministic per seed. */
static void test_random_init(void)
{
    printf("random init\n");
    const gr_vision_iface *qi = iface(GR_PLUGIN_VISION_ENCODER, "qformer");
    json_t *cfg = parse("{\"model_type\": \"blip-2\", \"num_query_tokens\": 32, \"initializer_range\": 0.05,"
                        " \"vision_config\": {\"hidden_size\": 64}, \"qformer_config\": {\"hidden_size\": 96,"
                        " \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"intermediate_size\": 128}}");
    gr_model_source src = {.struct_size = sizeof src, .dir = "mem", .config = cfg,
                           .config_path = "cfg.json", .prefix = "", .seed = 42};
    gr_vision *a = NULL, *b = NULL, *c = NULL;
    CHECK(qi->open(ctx, &src, &a) == GR_OK, "qformer random: %s", gr_last_error());
    CHECK(qi->open(ctx, &src, &b) == GR_OK, "qformer random: %s", gr_last_error());
    src.seed = 43;
    CHECK(qi->open(ctx, &src, &c) == GR_OK, "qformer random: %s", gr_last_error());
    if (!a || !b || !c) return;
    gr_vision_info info = {.struct_size = sizeof info};
    qi->info(a, &info);
    CHECK(info.input_dim == 64 && info.hidden_size == 96 && info.num_tokens == 32,
          "encoder_hidden_size must follow vision_config.hidden_size (got %lld)", (long long)info.input_dim);
    gr_param_list pa, pb, pc;
    qi->params(a, &pa);
    qi->params(b, &pb);
    qi->params(c, &pc);
    /* 2 layers: layer 0 with cross-attention (10 tensors more), both with self-attention. */
    CHECK(pa.count == 3 + 2 * (10 + 6) + 10, "qformer has %d parameters", pa.count);
    double mean, std, mx;
    const char *normal[] = {"query_tokens", "qformer.encoder.layer.0.crossattention.attention.key.weight",
                            "qformer.encoder.layer.1.intermediate_query.dense.weight"};
    for (size_t i = 0; i < 3; i++) {
        gr_tensor *t = param_named(&pa, normal[i]);
        CHECK(t != NULL, "no parameter %s", normal[i]);
        if (!t) continue;
        moments(t, &mean, &std, &mx);
        printf("  %s: mean %.4f std %.4f\n", normal[i], mean, std);
        CHECK(fabs(std - 0.05) < 0.005 && fabs(mean) < 0.005, "%s std %g", normal[i], std);
    }
    gr_tensor *key = param_named(&pa, "qformer.encoder.layer.0.crossattention.attention.key.weight");
    CHECK(key && key->shape[0] == 96 && key->shape[1] == 64, "cross key must be [96, 64]");
    const char *ones = "qformer.encoder.layer.1.output_query.LayerNorm.weight";
    const char *zeros[] = {"qformer.layernorm.bias", "qformer.encoder.layer.0.attention.attention.query.bias"};
    moments(param_named(&pa, ones), &mean, &std, &mx);
    CHECK(mean == 1.0 && std == 0.0, "%s not ones", ones);
    for (int i = 0; i < 2; i++) {
        moments(param_named(&pa, zeros[i]), &mean, &std, &mx);
        CHECK(mx == 0.0, "%s not zeros", zeros[i]);
    }
    /* Same seed, same values; another seed, other values. */
    int64_t n = gr_numel(pa.items[0]);
    float *ha = malloc((size_t)n * 4), *hb = malloc((size_t)n * 4), *hc = malloc((size_t)n * 4);
    gr_to_host_f32(ctx, param_named(&pa, "query_tokens"), ha);
    gr_to_host_f32(ctx, param_named(&pb, "query_tokens"), hb);
    gr_to_host_f32(ctx, param_named(&pc, "query_tokens"), hc);
    CHECK(memcmp(ha, hb, (size_t)n * 4) == 0, "same seed gave different query tokens");
    CHECK(memcmp(ha, hc, (size_t)n * 4) != 0, "another seed gave the same query tokens");
    free(ha); free(hb); free(hc);
    qi->close(a, ctx);
    qi->close(b, ctx);
    qi->close(c, ctx);
    json_decref(cfg);
}

static double gelu(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }

/* mlp = fc2(gelu(fc1(x))), with names 0.* and 2.*, against a host computation. */
static void test_mlp_projector(void)
{
    printf("mlp projector\n");
    const gr_projector_iface *pi = iface(GR_PLUGIN_PROJECTOR, "mlp");
    gr_model_source src = {.struct_size = sizeof src, .dir = "mem", .prefix = "", .seed = 5};
    gr_projector_spec spec = {.struct_size = sizeof spec, .in_dim = 5, .out_dim = 3, .hidden_dim = 7,
                              .act = GR_ACT_GELU_ERF};
    gr_projector *p = NULL;
    CHECK(pi->open(ctx, &src, &spec, &p) == GR_OK, "mlp open: %s", gr_last_error());
    if (!p) return;
    gr_param_list pl;
    pi->params(p, &pl);
    CHECK(pl.count == 4 && param_named(&pl, "0.weight") && param_named(&pl, "2.bias"),
          "mlp parameter names");
    float w0[35], b0[7], w2[21], b2[3], x[10], y[6];
    for (int i = 0; i < 35; i++) w0[i] = (float)sin(i + 1.0);
    for (int i = 0; i < 7; i++) b0[i] = (float)(0.1 * i - 0.3);
    for (int i = 0; i < 21; i++) w2[i] = (float)cos(2.0 * i);
    for (int i = 0; i < 3; i++) b2[i] = (float)(0.5 - 0.2 * i);
    for (int i = 0; i < 10; i++) x[i] = (float)(0.3 * i - 1.2);
    gr_upload(ctx, param_named(&pl, "0.weight"), w0);
    gr_upload(ctx, param_named(&pl, "0.bias"), b0);
    gr_upload(ctx, param_named(&pl, "2.weight"), w2);
    gr_upload(ctx, param_named(&pl, "2.bias"), b2);
    gr_tensor *xt = gr_from_host(ctx, GR_F32, 2, (int64_t[]){2, 5}, x), *yt = NULL;
    CHECK(pi->forward(p, ctx, xt, &yt) == GR_OK && yt && yt->shape[0] == 2 && yt->shape[1] == 3,
          "mlp forward: %s", gr_last_error());
    if (yt) {
        gr_to_host_f32(ctx, yt, y);
        double err = 0;
        for (int r = 0; r < 2; r++)
            for (int o = 0; o < 3; o++) {
                double acc = b2[o];
                for (int h = 0; h < 7; h++) {
                    double z = b0[h];
                    for (int i = 0; i < 5; i++) z += (double)w0[h * 5 + i] * x[r * 5 + i];
                    acc += (double)w2[o * 7 + h] * gelu(z);
                }
                err = fmax(err, fabs(acc - y[r * 3 + o]) / (1.0 + fabs(acc)));
            }
        printf("  max rel err vs host %.2e\n", err);
        CHECK(err < 1e-5, "mlp output off by %g", err);
    }
    /* Wrong input width: one-line error. */
    gr_tensor *bad = gr_zeros(ctx, GR_F32, 2, (int64_t[]){2, 4});
    CHECK(pi->forward(p, ctx, bad, &yt) == GR_ERR_SHAPE, "mlp took width 4");
    gr_ctx_reset(ctx);
    pi->close(p, ctx);
}

/* VPGTrans-style assembly: trained tower + Q-Former from a BLIP-2 directory, a fresh linear
 * projector, the LM from the same file; forward, names, trainability, gradients. */
static void test_vlm_parts(void)
{
    printf("vlm from parts\n");
    gr_weights *w = load_weights("blip2_hf_vision_opt");
    json_t *cfg = load_config("blip2_hf_vision_opt");
    gr_vlm_parts parts = {.struct_size = sizeof parts};
    gr_model_source whole = {.struct_size = sizeof whole, .dir = "blip2", .config = cfg,
                             .config_path = "config.json", .weights = w, .prefix = ""};
    parts.vision.plugin = "blip2-vit";
    parts.vision.src = whole;
    parts.qformer.plugin = "qformer";
    parts.qformer.src = whole;
    parts.projector.plugin = "linear";
    parts.projector.src = (gr_model_source){.struct_size = sizeof whole, .dir = "fresh", .seed = 9};
    parts.lm.plugin = "opt";
    parts.lm.src = whole;
    parts.lm.src.config = json_object_get(cfg, "text_config");
    parts.lm.src.prefix = "language_model.";
    gr_vlm *m = NULL;
    CHECK(gr_vlm_open_parts(ctx, &parts, &m) == GR_OK, "open parts: %s", gr_last_error());
    if (!m) goto out;
    gr_vlm_info info = {.struct_size = sizeof(gr_vlm_info)};
    gr_vlm_get_info(m, &info);
    CHECK(info.prompt_len == 4 && info.prompt_dim == 48 && info.has_qformer, "vlm info");
    gr_tensor *pw = gr_vlm_param_find(m, "language_projection.weight");
    CHECK(pw && pw->shape[0] == 48 && pw->shape[1] == 32 && pw->dtype == GR_F32, "fresh projection weight");
    CHECK(gr_vlm_param_find(m, "query_tokens") && gr_vlm_param_find(m, "vision_model.post_layernorm.bias") &&
          gr_vlm_param_find(m, "language_model.model.decoder.embed_tokens.weight"),
          "full HF names");
    int nq = gr_vlm_set_trainable(m, "qformer.*", 1);
    int nt = gr_vlm_set_trainable(m, "query_tokens", 1) + gr_vlm_set_trainable(m, "language_projection.*", 1);
    CHECK(nq == 3 * 16 + 2 * 10 + 2 && nt == 3, "trainable: %d qformer tensors, %d others", nq, nt);

    float pix[2 * 3 * 16 * 16];
    for (int i = 0; i < 2 * 3 * 16 * 16; i++) pix[i] = (float)sin(0.37 * i);
    int32_t ids[2 * 5] = {2, 10, 11, 12, 13, 2, 20, 21, 1, 1};
    int32_t mask[2 * 5] = {1, 1, 1, 1, 1, 1, 1, 1, 0, 0};
    int32_t labels[2 * 5] = {-100, 10, 11, 12, 13, -100, 20, 21, -100, -100};
    gr_vlm_inputs in = {.struct_size = sizeof in, .seq = 5, .ids = ids, .mask = mask, .labels = labels};
    in.pixel_values = gr_from_host(ctx, GR_F32, 4, (int64_t[]){2, 3, 16, 16}, pix);
    gr_vlm_outputs out = {.struct_size = sizeof(gr_vlm_outputs)};
    CHECK(gr_vlm_forward(m, ctx, &in, &out) == GR_OK, "vlm forward: %s", gr_last_error());
    CHECK(out.soft_prompt && out.soft_prompt->shape[1] == 4 && out.soft_prompt->shape[2] == 48, "soft prompt");
    CHECK(out.lm.loss && out.lm.logits, "loss and logits");
    if (out.lm.loss) {
        float loss;
        gr_to_host_f32(ctx, out.lm.loss, &loss);
        printf("  loss %.4f\n", loss);
        CHECK(isfinite(loss) && loss > 0, "loss %g", loss);
        CHECK(gr_backward(ctx, out.lm.loss, NULL) == GR_OK, "backward: %s", gr_last_error());
        CHECK(gr_grad(pw) != NULL, "no gradient for the fresh projector");
        CHECK(gr_grad(gr_vlm_param_find(m, "query_tokens")) != NULL, "no gradient for query_tokens");
        gr_tensor *frozen = gr_vlm_param_find(m, "vision_model.encoder.layers.0.mlp.fc1.weight");
        CHECK(gr_grad(frozen) == NULL, "a frozen tower weight got a gradient");
    }
    gr_ctx_reset(ctx);
    gr_vlm_close(m, ctx);
out:
    json_decref(cfg);
    gr_weights_close(w);
}

/* Every parameter name a VLM reports is a tensor of its checkpoint with that shape (HF/LAVIS
 * names: query_tokens, qformer.*, language_projection.*, language_model.*); the parts report
 * names without their source prefix; gr_weights_param loads prefix + name as `name`. */
static void test_names(void)
{
    printf("checkpoint names\n");
    char dir[600];
    snprintf(dir, sizeof dir, "%s/blip2_hf_vision_opt", fixtures);
    gr_vlm *m = NULL;
    CHECK(gr_vlm_open_dir(ctx, dir, &m) == GR_OK, "open %s: %s", dir, gr_last_error());
    if (!m) return;
    gr_weights *w = load_weights("blip2_hf_vision_opt");
    int n = gr_vlm_param_count(m), bad = 0, seen = 0;
    for (int i = 0; i < n; i++) {
        const char *name;
        gr_tensor *t = gr_vlm_param_at(m, i, &name);
        const gr_weight_info *wi = gr_weights_find(w, name);
        int same = wi && wi->ndim == t->ndim;
        for (int d = 0; same && d < t->ndim; d++) same = wi->shape[d] == t->shape[d];
        if (!same && bad++ < 3) fprintf(stderr, "  not a checkpoint tensor: %s\n", name);
        seen += strcmp(name, "query_tokens") == 0 || strcmp(name, "qformer.layernorm.weight") == 0 ||
                strcmp(name, "language_projection.weight") == 0 ||
                strcmp(name, "language_model.model.decoder.embed_tokens.weight") == 0;
    }
    CHECK(n > 0 && bad == 0 && seen == 4, "%d of %d VLM names are not checkpoint tensors (%d landmarks)", bad, n, seen);
    gr_param_list pl;
    gr_vlm_lm_iface(m)->params(gr_vlm_lm(m), &pl);
    int prefixed = 0;
    for (int i = 0; i < pl.count; i++) prefixed += strncmp(pl.items[i]->name, "language_model.", 15) == 0;
    CHECK(pl.count > 0 && prefixed == 0, "%d LM parameter names carry the source prefix", prefixed);
    printf("  %d names, all in the checkpoint; the LM reports %d without its prefix\n", n, pl.count);
    gr_vlm_close(m, ctx);

    gr_tensor *t = NULL;
    int64_t shape[1] = {32};
    gr_status st = gr_weights_param(ctx, w, "language_projection.", "bias", 1, (int64_t[]){48}, &t);
    CHECK(st == GR_OK && t && strcmp(t->name, "bias") == 0, "gr_weights_param name: %s", t ? t->name : gr_last_error());
    gr_tensor_free(ctx, t);
    st = gr_weights_param(ctx, w, "language_projection.", "bias", 1, shape, &t);
    CHECK(st == GR_ERR_SHAPE && !t && strstr(gr_last_error(), "language_projection.bias") &&
          gr_ctx_status(ctx) == GR_OK, "wrong shape: %s", gr_last_error());
    st = gr_weights_param(ctx, w, NULL, "language_projection.nope", 1, shape, &t);
    CHECK(st == GR_ERR_NOT_FOUND && !t && gr_ctx_status(ctx) == GR_OK, "missing: %s", gr_last_error());
    gr_weights_close(w);
}

/* plugin.h: a struct the plugin fills arrives with the host's struct_size and the plugin
 * writes no byte past it (an older host's smaller struct); 0 means the whole struct. */
static void test_abi_sizes(void)
{
    printf("ABI: filled structs\n");
    const char *plugins[] = {"clip-vit", "blip2-vit", "qformer"};
    const char *fx[] = {"clip_vision_quickgelu", "blip2_hf_vision_opt", "blip2_hf_vision_opt"};
    for (int p = 0; p < 3; p++) {
        const gr_vision_iface *vi = iface(GR_PLUGIN_VISION_ENCODER, plugins[p]);
        gr_weights *w = load_weights(fx[p]);
        json_t *cfg = load_config(fx[p]);
        gr_model_source src = {.struct_size = sizeof src, .dir = "abi", .config = cfg,
                               .config_path = "config.json", .weights = w, .prefix = ""};
        gr_vision *v = NULL;
        CHECK(vi->open(ctx, &src, &v) == GR_OK, "%s: %s", plugins[p], gr_last_error());
        if (!v) { json_decref(cfg); gr_weights_close(w); continue; }
        union { gr_vision_info i; unsigned char b[sizeof(gr_vision_info)]; } info;
        size_t cut = offsetof(gr_vision_info, num_tokens);
        memset(&info, 0xAB, sizeof info);
        info.i.struct_size = (uint32_t)cut;
        vi->info(v, &info.i);
        int past = 0;
        for (size_t k = cut; k < sizeof info; k++) past += info.b[k] != 0xAB;
        CHECK(past == 0 && info.i.struct_size == cut && info.i.hidden_size > 0,
              "%s: info wrote %d bytes past struct_size %zu", plugins[p], past, cut);
        gr_vision_info full = {0};
        vi->info(v, &full);
        CHECK(full.struct_size == sizeof full && full.num_layers > 0, "%s: struct_size 0 is the whole struct", plugins[p]);

        gr_vision_info any = {.struct_size = sizeof any};
        vi->info(v, &any);
        gr_tensor *x = p == 2 ? gr_zeros(ctx, GR_F32, 3, (int64_t[]){1, 5, any.input_dim})
                              : gr_zeros(ctx, GR_F32, 4, (int64_t[]){1, any.input_dim, any.image_size, any.image_size});
        union { gr_vision_outputs o; unsigned char b[sizeof(gr_vision_outputs)]; } out;
        cut = offsetof(gr_vision_outputs, pooler_output);
        memset(&out, 0xAB, sizeof out);
        out.o.struct_size = (uint32_t)cut;
        CHECK(vi->forward(v, ctx, x, 1, &out.o) == GR_OK, "%s forward: %s", plugins[p], gr_last_error());
        past = 0;
        for (size_t k = cut; k < sizeof out; k++) past += out.b[k] != 0xAB;
        CHECK(past == 0 && out.o.last_hidden_state, "%s: forward wrote %d bytes past struct_size %zu", plugins[p], past,
              cut);
        printf("  %s: info and outputs stop at the host's struct_size\n", plugins[p]);
        gr_ctx_reset(ctx);
        vi->close(v, ctx);
        json_decref(cfg);
        gr_weights_close(w);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) { fprintf(stderr, "usage: test_vision FIXTURES_DIR\n"); return 2; }
    fixtures = argv[1];
    gr_backend *be;
    if (gr_backend_open("cpu", NULL, &be)) { fprintf(stderr, "FAIL: %s\n", gr_last_error()); return 1; }
    ctx = gr_ctx_create(be);
    test_config_errors();
    test_checkpoint_errors();
    test_random_init();
    test_mlp_projector();
    test_vlm_parts();
    test_names();
    test_abi_sizes();
    gr_ctx_destroy(ctx);
    gr_backend_close(be);
    printf("vision: %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
