/* Language-model plugins beyond `graft verify`: the KV-cache path against the full forward,
 * left padding in generation, beam reordering, the soft-prompt prefix (outputs and gradient
 * against the fixture's embeds.* references), set_layers, random init, and malformed configs
 * and checkpoints (one-line errors naming the file and the key or tensor).
 * Usage: test_lm FIXTURES_DIR */
#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fsutil.h"
#include "graft/model.h"
#include "io/safetensors.h"
#include "plugin/registry.h"

static int failures, checks;
static const char *fixtures;
static gr_backend *backend;

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

typedef struct model {
    gr_ctx *ctx;
    const gr_lm_iface *lm;
    gr_lm *m;
    gr_lm_info info;
    json_t *config;
    gr_weights *w, *cases;
    char dir[512], config_path[600];
    gr_model_source src;
} model;

static gr_status open_model_at(model *M, const char *family, const char *dir, json_t *config, int random_init)
{
    memset(M, 0, sizeof *M);
    snprintf(M->dir, sizeof M->dir, "%s", dir);
    snprintf(M->config_path, sizeof M->config_path, "%s/config.json", dir);
    const void *iface;
    gr_status s = gr_plugin_iface(GR_PLUGIN_LANGUAGE_MODEL, family, &iface);
    if (s) return s;
    M->lm = iface;
    M->config = config;
    if (!random_init && (s = gr_weights_open(dir, &M->w))) return s;
    M->ctx = gr_ctx_create(backend);
    M->src.struct_size = sizeof M->src;
    M->src.dir = M->dir;
    M->src.config = config;
    M->src.config_path = M->config_path;
    M->src.weights = M->w;
    M->src.prefix = "";
    M->src.seed = 1234;
    if ((s = M->lm->open(M->ctx, &M->src, &M->m))) return s;
    M->info.struct_size = sizeof M->info;
    M->lm->info(M->m, &M->info);
    return GR_OK;
}

static gr_status open_fixture(model *M, const char *family, const char *name)
{
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/%s", fixtures, name);
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_error_t e;
    json_t *cfg = json_load_file(path, 0, &e);
    if (!cfg) return gr_fail(GR_ERR_FORMAT, "%s: %s", path, e.text);
    gr_status s = open_model_at(M, family, dir, cfg, 0);
    if (s == GR_OK) {
        snprintf(path, sizeof path, "%s/case.safetensors", dir);
        s = gr_weights_open(path, &M->cases);
    }
    return s;
}

static void close_model(model *M)
{
    if (M->m) M->lm->close(M->m, M->ctx);
    if (M->ctx) gr_ctx_destroy(M->ctx);
    gr_weights_close(M->w);
    gr_weights_close(M->cases);
    json_decref(M->config);
    memset(M, 0, sizeof *M);
}

/* Case tensor as malloc'd int32 / float arrays. */
static int32_t *case_i32(model *M, const char *name, int64_t *d0, int64_t *d1)
{
    const gr_weight_info *w = gr_weights_find(M->cases, name);
    if (!w) return NULL;
    int64_t n = w->shape[0] * w->shape[1];
    int32_t *v = malloc((size_t)n * sizeof *v);
    for (int64_t i = 0; i < n; i++) { int64_t x; memcpy(&x, (const char *)w->data + 8 * i, 8); v[i] = (int32_t)x; }
    *d0 = w->shape[0];
    *d1 = w->shape[1];
    return v;
}

static const float *case_f32(model *M, const char *name) { return gr_weights_find(M->cases, name)->data; }

static float *host(model *M, gr_tensor *t)
{
    if (!t) return NULL;
    float *v = malloc((size_t)gr_numel(t) * sizeof *v);
    if (gr_to_host_f32(M->ctx, t, v)) { free(v); return NULL; }
    return v;
}

static double rel_err(const float *a, const float *ref, int64_t n)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        num += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
        den += (double)ref[i] * ref[i];
    }
    if (!isfinite(num) || !isfinite(den)) return INFINITY; /* a NaN must not pass as "no error" */
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* ------------------------------------------------------------ KV cache vs full forward ---- */

/* Decoder-only: the logits of each generation step equal the full forward's logits at that
 * position (row 0 of input_ids, no padding), and a left-padded copy in the same batch gets the
 * same logits (generation positions follow the mask). Then beam reordering swaps rows. */
static void test_decode_causal(const char *family, const char *name)
{
    model M;
    gr_status s = open_fixture(&M, family, name);
    CHECK(s == GR_OK, "%s: open: %s", name, gr_last_error());
    if (s) { close_model(&M); return; }
    int64_t B, T;
    int32_t *ids = case_i32(&M, "input_ids", &B, &T);
    int32_t *mask = case_i32(&M, "attention_mask", &B, &T);
    /* Row 1 of the case is right-padded: its real tokens, used unpadded. */
    int64_t n = 0;
    while (n < T && mask[T + n]) n++;
    int32_t *toks = ids + T;
    int64_t V = M.info.vocab_size;
    /* Full forward of the unpadded sequence. */
    gr_lm_inputs in = {.struct_size = sizeof in, .batch = 1, .seq = n, .ids = toks};
    gr_lm_outputs out = {.struct_size = sizeof out};
    gr_ctx_set_grad_enabled(M.ctx, 0);
    s = M.lm->forward(M.m, M.ctx, &in, &out);
    float *full = host(&M, out.logits);
    CHECK(s == GR_OK && full, "%s: forward: %s", name, gr_last_error());
    /* Batch of two, P prompt positions each: row 0 = toks[0..P), row 1 = k pads + toks[0..P-k). */
    int64_t k = 2, P = 4;
    int32_t pids[2 * 6], pmask[2 * 6];
    for (int64_t t = 0; t < P; t++) {
        pids[t] = toks[t];
        pmask[t] = 1;
        pids[P + t] = t < k ? (M.info.pad_id >= 0 ? M.info.pad_id : 0) : toks[t - k];
        pmask[P + t] = t >= k;
    }
    gr_lm_inputs prompt = {.struct_size = sizeof prompt, .batch = 2, .seq = P, .ids = pids, .mask = pmask};
    gr_lm_cache *cache = NULL;
    gr_tensor *logits = NULL;
    s = M.lm->generate_begin(M.m, M.ctx, &prompt, &cache, &logits);
    CHECK(s == GR_OK, "%s: generate_begin: %s", name, gr_last_error());
    /* Row 0 has seen P tokens, row 1 P-k: both are fed their next tokens in lockstep. The
     * transient tensors are reset between steps: the cache must not depend on them. */
    int64_t pos0 = P, pos1 = P - k;
    double worst0 = 0, worst1 = 0;
    int steps = 0;
    while (s == GR_OK) {
        float *l = host(&M, logits);
        double e0 = rel_err(l, full + (pos0 - 1) * V, V), e1 = rel_err(l + V, full + (pos1 - 1) * V, V);
        if (e0 > worst0) worst0 = e0;
        if (e1 > worst1) worst1 = e1;
        free(l);
        if (pos0 == n) break;
        gr_ctx_reset(M.ctx);
        int32_t next[2] = {toks[pos0], toks[pos1]};
        s = M.lm->generate_step(M.m, M.ctx, cache, next, &logits);
        pos0++;
        pos1++;
        steps++;
    }
    CHECK(s == GR_OK && steps > 0, "%s: decode: %s", name, gr_last_error());
    CHECK(worst0 < 1e-5, "%s: KV-cache logits differ from the full forward: %.3e", name, worst0);
    CHECK(worst1 < 1e-5, "%s: left-padded row differs from the unpadded sequence: %.3e", name, worst1);
    printf("ok   %-26s KV cache vs full forward %.1e, left-padded row %.1e (%d steps)\n", name, worst0, worst1, steps);
    /* Beam reorder: rows swapped -> next logits swapped. */
    if (s == GR_OK) {
        int32_t rows[2] = {1, 0}, next[2] = {toks[1], toks[2]};
        gr_tensor *a = NULL;
        gr_lm_cache *c2 = NULL;
        gr_tensor *l2;
        s = M.lm->generate_begin(M.m, M.ctx, &prompt, &c2, &l2);
        if (s == GR_OK) s = M.lm->generate_step(M.m, M.ctx, c2, next, &a);
        float *before = host(&M, a);
        int32_t swapped[2] = {toks[2], toks[1]};
        if (s == GR_OK) s = M.lm->cache_reorder(M.m, M.ctx, cache, rows, 2);
        M.lm->cache_free(M.m, M.ctx, cache);
        cache = NULL;
        gr_lm_cache *c3 = NULL;
        if (s == GR_OK) s = M.lm->generate_begin(M.m, M.ctx, &prompt, &c3, &l2);
        if (s == GR_OK) s = M.lm->cache_reorder(M.m, M.ctx, c3, rows, 2);
        if (s == GR_OK) s = M.lm->generate_step(M.m, M.ctx, c3, swapped, &a);
        float *after = host(&M, a);
        CHECK(s == GR_OK && before && after && rel_err(after, before + V, V) < 1e-6 && rel_err(after + V, before, V) < 1e-6,
              "%s: cache_reorder does not swap rows: %s", name, gr_last_error());
        free(before);
        free(after);
        M.lm->cache_free(M.m, M.ctx, c2);
        M.lm->cache_free(M.m, M.ctx, c3);
    }
    if (cache) M.lm->cache_free(M.m, M.ctx, cache);
    free(full);
    free(ids);
    free(mask);
    close_model(&M);
}

/* T5: decoder step t (fed labels[t-1] after the start token) equals forward logits[:, t]. */
static void test_decode_t5(const char *name)
{
    model M;
    gr_status s = open_fixture(&M, "t5", name);
    CHECK(s == GR_OK, "%s: open: %s", name, gr_last_error());
    if (s) { close_model(&M); return; }
    int64_t B, S, L;
    int32_t *ids = case_i32(&M, "input_ids", &B, &S), *mask = case_i32(&M, "attention_mask", &B, &S);
    int32_t *labels = case_i32(&M, "labels", &B, &L);
    int64_t V = M.info.vocab_size;
    gr_ctx_set_grad_enabled(M.ctx, 0);
    gr_lm_inputs in = {.struct_size = sizeof in, .batch = B, .seq = S, .ids = ids, .mask = mask, .labels = labels,
                       .label_len = L};
    gr_lm_outputs out = {.struct_size = sizeof out};
    s = M.lm->forward(M.m, M.ctx, &in, &out);
    float *full = host(&M, out.logits);
    gr_lm_inputs prompt = {.struct_size = sizeof prompt, .batch = B, .seq = S, .ids = ids, .mask = mask};
    gr_lm_cache *cache = NULL;
    gr_tensor *logits;
    if (s == GR_OK) s = M.lm->generate_begin(M.m, M.ctx, &prompt, &cache, &logits);
    double worst = 0;
    int64_t t = 0;
    while (s == GR_OK) {
        float *l = host(&M, logits);
        for (int64_t b = 0; b < B; b++) {
            double e = rel_err(l + b * V, full + (b * L + t) * V, V);
            if (e > worst) worst = e;
        }
        free(l);
        if (++t == L) break;
        int32_t next[8];
        for (int64_t b = 0; b < B; b++) next[b] = labels[b * L + t - 1] == -100 ? M.info.pad_id : labels[b * L + t - 1];
        s = M.lm->generate_step(M.m, M.ctx, cache, next, &logits);
    }
    CHECK(s == GR_OK && t == L, "%s: decode: %s", name, gr_last_error());
    CHECK(worst < 1e-5, "%s: T5 KV-cache logits differ from the full forward: %.3e", name, worst);
    printf("ok   %-26s T5 KV cache vs full forward %.1e (%lld steps)\n", name, worst, (long long)L);
    M.lm->cache_free(M.m, M.ctx, cache);
    free(full);
    free(ids);
    free(mask);
    free(labels);
    close_model(&M);
}

/* ------------------------------------------------------------ soft-prompt prefix ---- */

/* The first 4 rows of embeds.inputs_embeds as `prefix`, the token ids as text: outputs equal
 * the fixture's embeds.* references and the prefix gradient equals the first rows of
 * embeds.grad.inputs_embeds (so gradients flow through the prefix). */
static void test_prefix(const char *family, const char *name)
{
    model M;
    gr_status s = open_fixture(&M, family, name);
    CHECK(s == GR_OK, "%s: open: %s", name, gr_last_error());
    if (s) { close_model(&M); return; }
    int enc = M.info.is_encoder_decoder;
    int64_t B, T, B2, T2, L = 0;
    int32_t *ids = case_i32(&M, "input_ids", &B, &T), *mask = case_i32(&M, "attention_mask", &B, &T);
    int32_t *elabels = case_i32(&M, "embeds.labels", &B2, &T2);
    const gr_weight_info *ei = gr_weights_find(M.cases, "embeds.inputs_embeds");
    int64_t P = ei->shape[1] - T, E = ei->shape[2];
    const float *emb = ei->data;
    float *pre = malloc((size_t)(B * P * E) * sizeof *pre);
    for (int64_t b = 0; b < B; b++) memcpy(pre + b * P * E, emb + b * (P + T) * E, (size_t)(P * E) * sizeof *pre);
    int64_t ps[3] = {B, P, E};
    gr_tensor *prefix = gr_from_host(M.ctx, GR_F32, 3, ps, pre);
    gr_requires_grad(prefix);
    int32_t *labels;
    if (enc) {
        labels = elabels;
        L = T2;
    } else {
        labels = malloc((size_t)(B * T) * sizeof *labels); /* text labels = embeds.labels without the prompt */
        for (int64_t b = 0; b < B; b++) memcpy(labels + b * T, elabels + b * T2 + P, (size_t)T * sizeof *labels);
    }
    gr_lm_inputs in = {.struct_size = sizeof in, .batch = B, .seq = T, .ids = ids, .mask = mask, .prefix = prefix,
                       .labels = labels, .label_len = L};
    gr_lm_outputs out = {.struct_size = sizeof out};
    s = M.lm->forward(M.m, M.ctx, &in, &out);
    CHECK(s == GR_OK, "%s: prefix forward: %s", name, gr_last_error());
    if (s == GR_OK) {
        int64_t nl = gr_numel(out.logits);
        float *lg = host(&M, out.logits), loss;
        gr_to_host_f32(M.ctx, out.loss, &loss);
        double el = rel_err(lg, case_f32(&M, "embeds.logits"), nl);
        double eloss = fabs(loss - case_f32(&M, "embeds.loss")[0]) / fabs(case_f32(&M, "embeds.loss")[0]);
        s = gr_backward(M.ctx, out.loss, NULL);
        float *g = host(&M, gr_grad(prefix));
        const float *gref = case_f32(&M, "embeds.grad.inputs_embeds");
        float *gr = malloc((size_t)(B * P * E) * sizeof *gr);
        for (int64_t b = 0; b < B; b++) memcpy(gr + b * P * E, gref + b * (P + T) * E, (size_t)(P * E) * sizeof *gr);
        double eg = g ? rel_err(g, gr, B * P * E) : INFINITY;
        CHECK(el < 1e-4 && eloss < 1e-4 && eg < 1e-3, "%s: prefix path: logits %.2e loss %.2e grad %.2e", name, el, eloss, eg);
        printf("ok   %-26s prefix: logits %.1e, loss %.1e, prefix gradient %.1e\n", name, el, eloss, eg);
        free(lg);
        free(g);
        free(gr);
    }
    if (!enc) free(labels);
    free(elabels);
    free(pre);
    free(ids);
    free(mask);
    gr_ctx_reset(M.ctx);
    close_model(&M);
}

/* ------------------------------------------------------------ set_layers, random init ---- */

static void test_layers_and_init(const char *family, const char *name)
{
    model M;
    gr_status s = open_fixture(&M, family, name);
    if (s) { CHECK(0, "%s: open: %s", name, gr_last_error()); close_model(&M); return; }
    int64_t B, T;
    int32_t *ids = case_i32(&M, "input_ids", &B, &T), *labels = case_i32(&M, "labels", &B, &T);
    int64_t L = M.info.is_encoder_decoder ? T : 0;
    if (M.info.is_encoder_decoder) { free(labels); labels = case_i32(&M, "labels", &B, &L); }
    gr_ctx_set_grad_enabled(M.ctx, 0);
    gr_lm_inputs in = {.struct_size = sizeof in, .batch = B, .seq = T, .ids = ids, .labels = labels, .label_len = L,
                       .want_hidden_states = 1};
    gr_lm_outputs out = {.struct_size = sizeof out};
    s = M.lm->forward(M.m, M.ctx, &in, &out);
    float *all = host(&M, out.logits);
    int64_t n = gr_numel(out.logits);
    int nl = M.info.num_layers;
    int order[2] = {0, 1}, one[1] = {nl - 1}, bad[1] = {nl};
    s = M.lm->set_layers(M.m, order, nl < 2 ? 1 : 2);
    if (s == GR_OK) s = M.lm->forward(M.m, M.ctx, &in, &out);
    float *same = host(&M, out.logits);
    CHECK(s == GR_OK && same && rel_err(same, all, n) == 0, "%s: set_layers(all, in order) changed the output", name);
    s = M.lm->set_layers(M.m, one, 1);
    if (s == GR_OK) s = M.lm->forward(M.m, M.ctx, &in, &out);
    float *sub = host(&M, out.logits);
    CHECK(s == GR_OK && out.num_hidden_states == 2 && sub && rel_err(sub, all, n) > 1e-3,
          "%s: set_layers(one layer): %s", name, gr_last_error());
    gr_clear_error();
    CHECK(M.lm->set_layers(M.m, bad, 1) != GR_OK && strstr(gr_last_error(), "layer"), "%s: set_layers out of range accepted",
          name);
    M.lm->set_layers(M.m, NULL, 0);
    free(all);
    free(same);
    free(sub);
    gr_ctx_reset(M.ctx);
    printf("ok   %-26s set_layers\n", name);

    /* Random init (weights NULL): HF's distribution for the embedding, ones for norms. */
    model R;
    json_t *cfg = json_deep_copy(M.config);
    s = open_model_at(&R, family, M.dir, cfg, 1);
    CHECK(s == GR_OK, "%s: random init: %s", name, gr_last_error());
    if (s == GR_OK) {
        gr_tensor *e = R.lm->input_embeddings(R.m);
        float *v = host(&R, e);
        int64_t ne = gr_numel(e);
        double sum = 0, sq = 0;
        for (int64_t i = 0; i < ne; i++) { sum += v[i]; sq += (double)v[i] * v[i]; }
        double sd = sqrt(sq / ne - (sum / ne) * (sum / ne));
        double want = M.info.is_encoder_decoder ? 1.0 : 0.02; /* T5: factor * 1.0; others: init std 0.02 */
        CHECK(fabs(sd / want - 1) < 0.05, "%s: random embedding std %.4f, HF uses %.4f", name, sd, want);
        gr_lm_outputs ro = {.struct_size = sizeof ro};
        gr_ctx_set_grad_enabled(R.ctx, 0);
        s = R.lm->forward(R.m, R.ctx, &in, &ro);
        float loss = NAN;
        if (s == GR_OK) gr_to_host_f32(R.ctx, ro.loss, &loss);
        CHECK(s == GR_OK && isfinite(loss), "%s: random-init forward: %s", name, gr_last_error());
        printf("ok   %-26s random init: embedding std %.4f, loss %.3f\n", name, sd, loss);
        free(v);
        gr_ctx_reset(R.ctx);
    }
    close_model(&R);
    free(ids);
    free(labels);
    close_model(&M);
}

/* ------------------------------------------------------------ ABI: filled structs ---- */

/* plugin.h: info and outputs arrive with the host's struct_size; the plugin writes no byte
 * past it (a host built against an older, smaller struct), and 0 means the whole struct. */
static void test_abi_sizes(const char *family, const char *name)
{
    model M;
    gr_status s = open_fixture(&M, family, name);
    if (s) { CHECK(0, "%s: open: %s", name, gr_last_error()); close_model(&M); return; }
    union { gr_lm_info i; unsigned char b[sizeof(gr_lm_info)]; } info;
    size_t cut = offsetof(gr_lm_info, num_layers);
    memset(&info, 0xAB, sizeof info);
    info.i.struct_size = (uint32_t)cut;
    M.lm->info(M.m, &info.i);
    int past = 0;
    for (size_t k = cut; k < sizeof info; k++) past += info.b[k] != 0xAB;
    CHECK(past == 0 && info.i.struct_size == cut && info.i.vocab_size == M.info.vocab_size,
          "%s: info wrote %d bytes past struct_size %zu", name, past, cut);
    gr_lm_info zero = {0};
    M.lm->info(M.m, &zero);
    CHECK(zero.struct_size == sizeof zero && zero.eos_id == M.info.eos_id, "%s: struct_size 0 is the whole struct", name);
    int64_t B, T, L = 0;
    int32_t *ids = case_i32(&M, "input_ids", &B, &T), *labels = case_i32(&M, "labels", &B, &L);
    gr_lm_inputs in = {.struct_size = sizeof in, .batch = B, .seq = T, .ids = ids, .labels = labels,
                       .label_len = M.info.is_encoder_decoder ? L : 0, .want_hidden_states = 1};
    union { gr_lm_outputs o; unsigned char b[sizeof(gr_lm_outputs)]; } out;
    cut = offsetof(gr_lm_outputs, last_hidden_state);
    memset(&out, 0xAB, sizeof out);
    out.o.struct_size = (uint32_t)cut;
    gr_ctx_set_grad_enabled(M.ctx, 0);
    s = M.lm->forward(M.m, M.ctx, &in, &out.o);
    past = 0;
    for (size_t k = cut; k < sizeof out; k++) past += out.b[k] != 0xAB;
    CHECK(s == GR_OK && past == 0 && out.o.logits && out.o.loss, "%s: forward wrote %d bytes past struct_size %zu: %s",
          name, past, cut, gr_last_error());
    printf("ok   %-26s info and outputs stop at the host's struct_size\n", name);
    free(ids);
    free(labels);
    gr_ctx_reset(M.ctx);
    close_model(&M);
}

/* ------------------------------------------------------------ malformed configs / weights ---- */

static char tmpdir[512];

/* Copies fixture `name` to tmpdir/sub with config edits (key=JSON-value, NULL-terminated; a
 * value of NULL deletes the key) and weights filtered: drop = tensor to leave out, reshape =
 * tensor written with its dims reversed. Then opening must fail naming needle1 and needle2. */
static void expect_open_error(const char *family, const char *name, const char *sub, const char *const *edits,
                              const char *drop, const char *reshape, const char *needle1, const char *needle2)
{
    char src[512], dst[600], path[700];
    snprintf(src, sizeof src, "%s/%s", fixtures, name);
    snprintf(dst, sizeof dst, "%s/%s", tmpdir, sub);
    gr_mkdirs(dst);
    snprintf(path, sizeof path, "%s/config.json", src);
    json_t *cfg = json_load_file(path, 0, NULL);
    for (int i = 0; edits && edits[i]; i += 2) {
        if (!edits[i + 1]) { json_object_del(cfg, edits[i]); continue; }
        json_t *v = json_loads(edits[i + 1], JSON_DECODE_ANY, NULL);
        json_object_set_new(cfg, edits[i], v);
    }
    snprintf(path, sizeof path, "%s/config.json", dst);
    json_dump_file(cfg, path, 0);
    gr_weights *w = NULL;
    gr_weights_open(src, &w);
    int n = gr_weights_count(w), k = 0;
    gr_st_entry *e = calloc((size_t)n, sizeof *e);
    for (int i = 0; i < n; i++) {
        const gr_weight_info *t = gr_weights_at(w, i);
        if (drop && strcmp(t->name, drop) == 0) continue;
        e[k].name = t->name;
        e[k].dtype = t->dtype;
        e[k].ndim = t->ndim;
        for (int d = 0; d < t->ndim; d++)
            e[k].shape[d] = (reshape && strcmp(t->name, reshape) == 0) ? t->shape[t->ndim - 1 - d] : t->shape[d];
        e[k].data = t->data;
        k++;
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dst);
    gr_st_write_entries(path, e, k, NULL);
    free(e);
    gr_weights_close(w);
    model M;
    gr_clear_error();
    gr_status s = open_model_at(&M, family, dst, cfg, 0);
    const char *msg = gr_last_error();
    CHECK(s != GR_OK && !strchr(msg, '\n') && strstr(msg, needle1) && strstr(msg, needle2),
          "%s: expected an error naming '%s' and '%s', got: %s", sub, needle1, needle2, s ? msg : "success");
    if (s != GR_OK) printf("ok   %-26s graft: %s\n", sub, msg);
    M.config = NULL; /* cfg is freed below */
    close_model(&M);
    json_decref(cfg);
}

static void test_malformed(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/graft-lm-XXXXXX", base && base[0] ? base : "/tmp");
    if (!mkdtemp(tmpdir)) { CHECK(0, "mkdtemp"); return; }
    expect_open_error("opt", "opt_prenorm", "opt_missing_key", NULL, "model.decoder.layers.1.fc2.weight", NULL,
                      "model.decoder.layers.1.fc2.weight", "opt_missing_key");
    expect_open_error("opt", "opt_prenorm", "opt_wrong_shape", NULL, NULL, "model.decoder.layers.0.fc1.weight",
                      "model.decoder.layers.0.fc1.weight", "[64, 128]");
    expect_open_error("opt", "opt_prenorm", "opt_ffn_dim", (const char *[]){"ffn_dim", "96", NULL}, NULL, NULL,
                      "model.decoder.layers.0.fc1.weight", "config.json");
    expect_open_error("opt", "opt_prenorm", "opt_activation", (const char *[]){"activation_function", "\"gelu_fast\"", NULL},
                      NULL, NULL, "activation_function", "config.json");
    expect_open_error("opt", "opt_prenorm", "opt_heads", (const char *[]){"num_attention_heads", "5", NULL}, NULL, NULL,
                      "num_attention_heads", "config.json");
    expect_open_error("opt", "opt_prenorm", "opt_bad_type", (const char *[]){"hidden_size", "\"64\"", NULL}, NULL, NULL,
                      "hidden_size", "config.json");
    expect_open_error("llama", "llama_gqa2_llama3rope", "llama_rope_yarn",
                      (const char *[]){"rope_scaling", "{\"rope_type\": \"yarn\", \"factor\": 4.0}", NULL}, NULL, NULL,
                      "rope_type", "yarn");
    expect_open_error("llama", "llama_rope_parameters_v5", "llama_rope_no_type",
                      (const char *[]){"rope_parameters", "{\"rope_theta\": 10000.0, \"factor\": 4.0}", NULL}, NULL, NULL,
                      "rope_parameters", "config.json");
    expect_open_error("llama", "llama_gqa2_llama3rope", "llama_llama3_missing",
                      (const char *[]){"rope_scaling", "{\"rope_type\": \"llama3\", \"factor\": 8.0}", NULL}, NULL, NULL,
                      "low_freq_factor", "config.json");
    expect_open_error("llama", "llama_gqa2_llama3rope", "llama_gqa", (const char *[]){"num_key_value_heads", "3", NULL},
                      NULL, NULL, "num_key_value_heads", "config.json");
    expect_open_error("llama", "llama_gqa2_llama3rope", "llama_missing_head", NULL, "lm_head.weight", NULL,
                      "lm_head.weight", "llama_missing_head");
    expect_open_error("t5", "t5_gated_gelu_untied", "t5_ffp", (const char *[]){"feed_forward_proj", "\"gated-gelu-x\"", NULL},
                      NULL, NULL, "feed_forward_proj", "config.json");
    expect_open_error("t5", "t5_gated_gelu_untied", "t5_missing_bias", NULL,
                      "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", NULL,
                      "relative_attention_bias", "t5_missing_bias");
    /* A 4.x untied T5 without lm_head.weight stored: the head is missing. */
    expect_open_error("t5", "t5_gated_gelu_untied", "t5_untied_no_head", NULL, "lm_head.weight", NULL, "lm_head.weight",
                      "t5_untied_no_head");
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) printf("note: could not remove %s\n", tmpdir);
}

int main(int argc, char **argv)
{
    if (argc < 2) { fprintf(stderr, "usage: test_lm FIXTURES_DIR [BACKEND]\n"); return 2; }
    fixtures = argv[1];
    /* With a backend other than cpu only the KV-cache paths run (the device-side cache). */
    const char *be = argc > 2 ? argv[2] : "cpu";
    gr_plugins_scan();
    if (gr_backend_open(be, NULL, &backend) != GR_OK) {
        printf("%s: %s\n", strcmp(be, "cpu") ? "SKIP" : "FAIL", gr_last_error());
        gr_plugins_unload_all();
        return strcmp(be, "cpu") ? 77 : 1;
    }
    test_decode_causal("opt", "opt_prenorm");
    test_decode_causal("llama", "llama_gqa2_llama3rope");
    test_decode_causal("llama", "llama_rope_parameters_v5");
    test_decode_t5("t5_gated_gelu_untied");
    test_decode_t5("t5_v5_config_untied");
    test_decode_causal("opt", "opt_postln_project");
    test_decode_causal("llama", "llama_gqa4_linear_tied");
    test_decode_t5("t5_v10_relu_tied");
    if (strcmp(be, "cpu") == 0) {
        test_prefix("opt", "opt_postln_project");
        test_prefix("t5", "t5_v10_relu_tied");
        test_prefix("opt", "opt_prenorm");
        test_prefix("llama", "llama_gqa2_llama3rope");
        test_prefix("t5", "t5_gated_gelu_untied");
        test_layers_and_init("opt", "opt_prenorm");
        test_layers_and_init("llama", "llama_rope_parameters_v5");
        test_layers_and_init("t5", "t5_v5_config_untied");
        test_abi_sizes("opt", "opt_prenorm");
        test_abi_sizes("llama", "llama_gqa4_linear_tied");
        test_abi_sizes("t5", "t5_v10_relu_tied");
        test_malformed();
    }
    gr_backend_close(backend);
    gr_plugins_unload_all();
    printf("lm (%s): %d checks, %d failed\n", be, checks, failures);
    return failures ? 1 : 0;
}
