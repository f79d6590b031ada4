/* `graft inspect MODEL_DIR`: what a checkpoint is, read from config.json and the safetensors
 * headers only (nothing is loaded, so it is instant on a 7B checkpoint): family, dimensions,
 * parameter count, stored dtypes, tied head, and the memory an inference pass and a frozen-LM
 * training step need (weights stay in their stored dtype, activations are F32). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json_file.h"
#include "base/fsutil.h"
#include "commands.h"
#include "graft/weights.h"

typedef struct lm_dims {
    const char *family;
    int64_t d, heads, kv_heads, head_dim, ffn, vocab, layers, enc_layers, embed_dim;
    int tied, ffn_mats;    /* matrices in the feed-forward: 2 (fc1/fc2) or 3 (gated) */
} lm_dims;

static int64_t geti(const json_t *o, const char *k, int64_t def)
{
    const json_t *v = json_object_get(o, k);
    if (json_is_integer(v)) return json_integer_value(v);
    if (json_is_real(v)) return (int64_t)json_real_value(v);
    return def;
}

static int getb(const json_t *o, const char *k, int def)
{
    const json_t *v = json_object_get(o, k);
    return json_is_boolean(v) ? json_is_true(v) : def;
}

static const char *gets(const json_t *o, const char *k, const char *def)
{
    const json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : def;
}

/* HF defaults of each family (see docs/models.md); 0 when the model type is not a known LM. */
static int lm_dims_of(const json_t *c, const gr_weights *w, const char *prefix, lm_dims *m)
{
    memset(m, 0, sizeof *m);
    const char *mt = gets(c, "model_type", "");
    if (strcmp(mt, "opt") == 0) {
        m->family = "opt";
        m->d = geti(c, "hidden_size", 768);
        m->heads = geti(c, "num_attention_heads", 12);
        m->kv_heads = m->heads;
        m->ffn = geti(c, "ffn_dim", 3072);
        m->vocab = geti(c, "vocab_size", 50272);
        m->layers = geti(c, "num_hidden_layers", 12);
        m->embed_dim = geti(c, "word_embed_proj_dim", m->d);
        m->tied = getb(c, "tie_word_embeddings", 1);
        m->ffn_mats = 2;
    } else if (strcmp(mt, "llama") == 0) {
        m->family = "llama";
        m->d = geti(c, "hidden_size", 4096);
        m->heads = geti(c, "num_attention_heads", 32);
        m->kv_heads = geti(c, "num_key_value_heads", m->heads);
        m->head_dim = geti(c, "head_dim", 0);
        m->ffn = geti(c, "intermediate_size", 11008);
        m->vocab = geti(c, "vocab_size", 32000);
        m->layers = geti(c, "num_hidden_layers", 32);
        m->embed_dim = m->d;
        m->tied = getb(c, "tie_word_embeddings", 0);
        m->ffn_mats = 3;
    } else if (strcmp(mt, "t5") == 0) {
        m->family = "t5";
        m->d = geti(c, "d_model", 512);
        m->heads = geti(c, "num_heads", 8);
        m->kv_heads = m->heads;
        m->head_dim = geti(c, "d_kv", 64);
        m->ffn = geti(c, "d_ff", 2048);
        m->vocab = geti(c, "vocab_size", 32128);
        m->enc_layers = geti(c, "num_layers", 6);
        m->layers = geti(c, "num_decoder_layers", m->enc_layers);
        m->embed_dim = m->d;
        const char *ffp = gets(c, "feed_forward_proj", "relu");
        m->ffn_mats = getb(c, "is_gated_act", strncmp(ffp, "gated-", 6) == 0) ? 3 : 2;
        if (json_object_get(c, "scale_decoder_outputs")) {
            char name[256];
            snprintf(name, sizeof name, "%slm_head.weight", prefix);
            m->tied = !(w && gr_weights_find(w, name));
        } else {
            m->tied = getb(c, "tie_word_embeddings", 1);
        }
    } else {
        return 0;
    }
    if (m->head_dim == 0 && m->heads) m->head_dim = m->d / m->heads;
    return 1;
}

static void human(double bytes, char *buf, size_t cap)
{
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (bytes >= 1024 && i < 4) { bytes /= 1024; i++; }
    snprintf(buf, cap, i ? "%.1f %s" : "%.0f %s", bytes, u[i]);
}

/* F32 activation floats a frozen-LM training step keeps per token and layer for the backward
 * pass (inputs of every matmul, norm and activation, attention probabilities), and what the
 * widest live forward temporaries need. Estimates, stated as such. */
static void print_lm(const lm_dims *m, double weight_bytes, int64_t batch, int64_t seq)
{
    int64_t qd = m->heads * m->head_dim, kd = m->kv_heads * m->head_dim;
    printf("family:          %s\n", m->family);
    printf("hidden size:     %lld (embedding width %lld)\n", (long long)m->d, (long long)m->embed_dim);
    printf("layers:          %lld%s\n", (long long)m->layers, m->enc_layers ? " decoder" : "");
    if (m->enc_layers) printf("encoder layers:  %lld\n", (long long)m->enc_layers);
    printf("heads:           %lld query, %lld key/value, head dim %lld\n", (long long)m->heads, (long long)m->kv_heads,
           (long long)m->head_dim);
    printf("feed-forward:    %lld (%s)\n", (long long)m->ffn, m->ffn_mats == 3 ? "gated" : "two matrices");
    printf("vocabulary:      %lld\n", (long long)m->vocab);
    printf("tied head:       %s\n", m->tied ? "yes" : "no");
    int64_t layers = m->layers + m->enc_layers, tok = batch * seq;
    double per_layer = 6.0 * m->d + 2.0 * qd + 2.0 * kd + (double)m->ffn * (m->ffn_mats + 1) +
                       2.0 * m->heads * (double)seq;
    double saved = 4.0 * per_layer * (double)tok * (double)layers;
    double logits = 4.0 * (double)tok * (double)m->vocab * 2; /* logits + their gradient */
    double kv = 4.0 * 2.0 * (double)kd * (double)tok * (double)layers;
    double live = 4.0 * (double)tok * (3.0 * m->d + m->ffn * 2.0 + 2.0 * m->heads * (double)seq);
    char a[32], b[32], c[32];
    human(weight_bytes + kv + live + 4.0 * tok * m->vocab, a, sizeof a);
    human(kv, b, sizeof b);
    printf("inference:       %s (batch %lld x %lld tokens; KV cache %s)\n", a, (long long)batch, (long long)seq, b);
    human(weight_bytes + saved + logits + live, a, sizeof a);
    human(saved, c, sizeof c);
    printf("training step:   %s (frozen LM, batch %lld x %lld tokens; saved activations %s; no weight gradients)\n",
           a, (long long)batch, (long long)seq, c);
}

extern const gr_command gr_cmd_inspect;

static int run_inspect(int argc, char **argv)
{
    const char *dir = NULL;
    int64_t batch = 1, seq = 512;
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "--seq") == 0 || strcmp(argv[i], "--batch") == 0) && i + 1 < argc) {
            long long v = atoll(argv[i + 1]);
            if (v <= 0) { fprintf(stderr, "graft: inspect: %s needs a positive number\n", argv[i]); return 2; }
            if (argv[i][2] == 's') seq = v; else batch = v;
            i++;
        } else if (argv[i][0] == '-' || dir) {
            return gr_cli_usage(&gr_cmd_inspect, 2);
        } else {
            dir = argv[i];
        }
    }
    if (!dir) return gr_cli_usage(&gr_cmd_inspect, 2);
    char *cpath = gr_path_join(dir, "config.json");
    if (!cpath) { gr_fail(GR_ERR_NOMEM, "out of memory"); return gr_cli_error(); }
    json_t *cfg;
    if (gr_json_load_object(cpath, 0, &cfg) != GR_OK) {
        free(cpath);
        return gr_cli_error();
    }
    gr_weights *w = NULL;
    if (gr_weights_open(dir, &w) != GR_OK) { json_decref(cfg); free(cpath); return gr_cli_error(); }
    double params = 0, bytes = 0, by_dtype[GR_DTYPE_COUNT + 1] = {0};
    for (int i = 0; i < gr_weights_count(w); i++) {
        const gr_weight_info *t = gr_weights_at(w, i);
        double n = 1;
        for (int d = 0; d < t->ndim; d++) n *= (double)t->shape[d];
        params += n;
        bytes += (double)t->nbytes;
        by_dtype[t->dtype <= GR_DTYPE_COUNT ? t->dtype : GR_DTYPE_COUNT] += n;
    }
    printf("model:           %s (model_type %s)\n", dir, gets(cfg, "model_type", "?"));
    printf("tensors:         %d\n", gr_weights_count(w));
    printf("parameters:      %.0f (%.2f M)\n", params, params / 1e6);
    printf("stored dtype:   ");
    for (int d = 0; d <= GR_DTYPE_COUNT; d++)
        if (by_dtype[d] > 0)
            printf(" %s %.1f%%", d < GR_DTYPE_COUNT ? gr_dtype_name((gr_dtype)d) : "other", 100.0 * by_dtype[d] / params);
    char hb[32];
    human(bytes, hb, sizeof hb);
    printf(" (%s on disk, mapped not copied)\n", hb);
    lm_dims m;
    const char *mt = gets(cfg, "model_type", "");
    if (lm_dims_of(cfg, w, "", &m)) {
        print_lm(&m, bytes, batch, seq);
    } else if (strcmp(mt, "blip-2") == 0 && json_is_object(json_object_get(cfg, "text_config"))) {
        const json_t *vc = json_object_get(cfg, "vision_config"), *qc = json_object_get(cfg, "qformer_config");
        printf("composite:       vision %s -> qformer (%lld query tokens) -> language_projection -> %s\n",
               gets(vc, "model_type", "blip_2_vision_model"), (long long)geti(cfg, "num_query_tokens", 32),
               gets(json_object_get(cfg, "text_config"), "model_type", "?"));
        printf("vision:          hidden %lld, %lld layers, image %lld, patch %lld\n", (long long)geti(vc, "hidden_size", 1408),
               (long long)geti(vc, "num_hidden_layers", 39), (long long)geti(vc, "image_size", 224),
               (long long)geti(vc, "patch_size", 14));
        printf("qformer:         hidden %lld, %lld layers\n", (long long)geti(qc, "hidden_size", 768),
               (long long)geti(qc, "num_hidden_layers", 12));
        if (lm_dims_of(json_object_get(cfg, "text_config"), w, "language_model.", &m)) print_lm(&m, bytes, batch, seq);
    } else {
        printf("family:          %s (no language-model summary for this model type)\n", mt[0] ? mt : "unknown");
    }
    gr_weights_close(w);
    json_decref(cfg);
    free(cpath);
    return 0;
}

const gr_command gr_cmd_inspect = {
    "inspect", run_inspect, "describe a model directory: family, sizes, dtype, memory needs",
    "usage: graft inspect MODEL_DIR [--seq N] [--batch B]\n\n"
    "Reads config.json and the safetensors headers (nothing is loaded) and prints the family,\n"
    "dimensions, parameter count, stored dtypes, whether the output head is tied, and estimates\n"
    "of the memory for inference (weights + KV cache + live activations) and for a frozen-LM\n"
    "training step (weights + activations saved for the backward pass) at batch B (1) x N (512)\n"
    "tokens.\n",
};
