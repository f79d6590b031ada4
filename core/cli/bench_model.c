/* Synthetic Hugging Face checkpoints for the benchmarks: config.json + model.safetensors of an
 * OPT- or Llama-shaped decoder with random weights, written tensor by tensor (one tensor of
 * scratch memory at a time, so even a 13 GB checkpoint is written in a few hundred MB), and
 * opened back through the model plugin exactly as a user's directory would be. */
#include <errno.h>
#include <stdarg.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "base/fsutil.h"
#include "bench.h"
#include "graft/rng.h"
#include "io/safetensors.h"
#include "plugin/registry.h"

typedef struct {
    uint64_t seed;
    const char **names;
    unsigned char *ones;   /* per entry: 1 = norm weight (all ones), else uniform random */
    gr_dtype dtype;
    float amp;             /* uniform in [-amp, amp): std = amp / sqrt(3) */
} fill_ctx;

/* Uniform random values from 24-bit draws, two per 64-bit word: the distribution does not
 * matter for speed or memory, and this writes ~1 GB/s where Box-Muller would not. */
static gr_status fill(void *user, int index, void *dst, size_t nbytes)
{
    fill_ctx *f = user;
    size_t es = gr_dtype_size(f->dtype), n = nbytes / es;
    gr_rng rng;
    gr_rng_seed_stream(&rng, f->seed, (uint64_t)index);
    const float scale = 2.0f * f->amp / 16777216.0f;
    for (size_t i = 0; i < n; i += 2) {
        uint64_t r = gr_rng_next(&rng);
        float v[2] = {(float)(int32_t)((r >> 40) & 0xffffff) * scale - f->amp,
                      (float)(int32_t)((r >> 8) & 0xffffff) * scale - f->amp};
        for (size_t k = 0; k < 2 && i + k < n; k++) {
            float x = f->ones[index] ? 1.0f : v[k];
            if (f->dtype == GR_F32) ((float *)dst)[i + k] = x;
            else if (f->dtype == GR_BF16) ((uint16_t *)dst)[i + k] = gr_f32_to_bf16(x);
            else ((uint16_t *)dst)[i + k] = gr_f32_to_f16(x);
        }
    }
    return GR_OK;
}

typedef struct {
    gr_st_entry *e;
    const char **names;
    unsigned char *ones;
    int n, cap;
    gr_dtype dtype;
    gr_status s;
} entries;

static void add(entries *es, int ones, int ndim, int64_t d0, int64_t d1, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static void add(entries *es, int ones, int ndim, int64_t d0, int64_t d1, const char *fmt, ...)
{
    if (es->s != GR_OK) return;
    if (es->n == es->cap) {
        int cap = es->cap ? 2 * es->cap : 64;
        gr_st_entry *e = realloc(es->e, (size_t)cap * sizeof *e);
        if (e) es->e = e;
        const char **nm = e ? realloc(es->names, (size_t)cap * sizeof *nm) : NULL;
        if (nm) es->names = nm;
        unsigned char *o = nm ? realloc(es->ones, (size_t)cap) : NULL;
        if (!o) {
            es->s = gr_fail(GR_ERR_NOMEM, "bench: out of memory");
            return;
        }
        es->ones = o;
        es->cap = cap;
    }
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    char *name = strdup(buf);
    if (!name) {
        es->s = gr_fail(GR_ERR_NOMEM, "bench: out of memory");
        return;
    }
    es->names[es->n] = name;
    es->ones[es->n] = (unsigned char)ones;
    es->e[es->n] = (gr_st_entry){.name = name, .dtype = es->dtype, .ndim = ndim, .shape = {d0, d1}};
    es->n++;
}

static void opt_entries(entries *es, const gr_bench_lm *m)
{
    const char *p = "model.decoder.";
    int64_t d = m->hidden, f = m->ffn;
    add(es, 0, 2, m->vocab, d, "%sembed_tokens.weight", p);
    add(es, 0, 2, m->max_pos + 2, d, "%sembed_positions.weight", p);
    for (int i = 0; i < m->layers; i++) {
        static const char *lin[4] = {"q_proj", "k_proj", "v_proj", "out_proj"};
        add(es, 1, 1, d, 0, "%slayers.%d.self_attn_layer_norm.weight", p, i);
        add(es, 0, 1, d, 0, "%slayers.%d.self_attn_layer_norm.bias", p, i);
        for (int k = 0; k < 4; k++) {
            add(es, 0, 2, d, d, "%slayers.%d.self_attn.%s.weight", p, i, lin[k]);
            add(es, 0, 1, d, 0, "%slayers.%d.self_attn.%s.bias", p, i, lin[k]);
        }
        add(es, 1, 1, d, 0, "%slayers.%d.final_layer_norm.weight", p, i);
        add(es, 0, 1, d, 0, "%slayers.%d.final_layer_norm.bias", p, i);
        add(es, 0, 2, f, d, "%slayers.%d.fc1.weight", p, i);
        add(es, 0, 1, f, 0, "%slayers.%d.fc1.bias", p, i);
        add(es, 0, 2, d, f, "%slayers.%d.fc2.weight", p, i);
        add(es, 0, 1, d, 0, "%slayers.%d.fc2.bias", p, i);
    }
    add(es, 1, 1, d, 0, "%sfinal_layer_norm.weight", p);
    add(es, 0, 1, d, 0, "%sfinal_layer_norm.bias", p);
}

static void llama_entries(entries *es, const gr_bench_lm *m)
{
    int64_t d = m->hidden, f = m->ffn;
    add(es, 0, 2, m->vocab, d, "model.embed_tokens.weight");
    for (int i = 0; i < m->layers; i++) {
        static const char *att[4] = {"q_proj", "k_proj", "v_proj", "o_proj"};
        add(es, 1, 1, d, 0, "model.layers.%d.input_layernorm.weight", i);
        for (int k = 0; k < 4; k++) add(es, 0, 2, d, d, "model.layers.%d.self_attn.%s.weight", i, att[k]);
        add(es, 1, 1, d, 0, "model.layers.%d.post_attention_layernorm.weight", i);
        add(es, 0, 2, f, d, "model.layers.%d.mlp.gate_proj.weight", i);
        add(es, 0, 2, f, d, "model.layers.%d.mlp.up_proj.weight", i);
        add(es, 0, 2, d, f, "model.layers.%d.mlp.down_proj.weight", i);
    }
    add(es, 1, 1, d, 0, "model.norm.weight");
    add(es, 0, 2, m->vocab, d, "lm_head.weight");
}

static json_t *config_json(const gr_bench_lm *m)
{
    const char *dt = m->dtype == GR_BF16 ? "bfloat16" : m->dtype == GR_F16 ? "float16" : "float32";
    if (m->llama)
        return json_pack("{s:s, s:[s], s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:b, s:s, s:s, s:I, s:I}",
                         "model_type", "llama", "architectures", "LlamaForCausalLM", "hidden_size",
                         (json_int_t)m->hidden, "intermediate_size", (json_int_t)m->ffn, "num_hidden_layers",
                         (json_int_t)m->layers, "num_attention_heads", (json_int_t)m->heads, "num_key_value_heads",
                         (json_int_t)m->heads, "vocab_size", (json_int_t)m->vocab, "rms_norm_eps", 1e-6,
                         "rope_theta", 10000.0, "tie_word_embeddings", 0, "hidden_act", "silu", "torch_dtype", dt,
                         "max_position_embeddings", (json_int_t)m->max_pos, "bos_token_id", (json_int_t)1);
    return json_pack("{s:s, s:[s], s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:s, s:s, s:I, s:I, s:I}", "model_type",
                     "opt", "architectures", "OPTForCausalLM", "hidden_size", (json_int_t)m->hidden, "ffn_dim",
                     (json_int_t)m->ffn, "num_hidden_layers", (json_int_t)m->layers, "num_attention_heads",
                     (json_int_t)m->heads, "vocab_size", (json_int_t)m->vocab, "max_position_embeddings",
                     (json_int_t)m->max_pos, "word_embed_proj_dim", (json_int_t)m->hidden, "do_layer_norm_before", 1,
                     "activation_function", "relu", "torch_dtype", dt, "pad_token_id", (json_int_t)1,
                     "bos_token_id", (json_int_t)2, "eos_token_id", (json_int_t)2);
}

int64_t gr_bench_lm_bytes(const gr_bench_lm *m)
{
    int64_t d = m->hidden, f = m->ffn, n;
    if (m->llama) n = 2 * m->vocab * d + m->layers * (4 * d * d + 3 * d * f + 2 * d) + d;
    else n = (m->vocab + m->max_pos + 2) * d + m->layers * (4 * d * d + 2 * d * f + 9 * d + f) + 2 * d;
    return n * (int64_t)gr_dtype_size(m->dtype);
}

gr_status gr_bench_write_lm(const char *dir, const gr_bench_lm *m)
{
    entries es = {.dtype = m->dtype};
    if (m->llama) llama_entries(&es, m);
    else opt_entries(&es, m);
    gr_status s = es.s;
    fill_ctx fc = {m->seed, es.names, es.ones, m->dtype, 0.02f * 1.7320508f};
    for (int i = 0; i < es.n; i++) {
        es.e[i].fill = fill;
        es.e[i].user = &fc;
    }
    char *cfg_path = gr_path_join(dir, "config.json"), *st_path = gr_path_join(dir, "model.safetensors");
    json_t *cfg = config_json(m);
    char *text = cfg ? json_dumps(cfg, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    if (s == GR_OK && (!cfg_path || !st_path || !text)) s = gr_fail(GR_ERR_NOMEM, "bench: out of memory");
    if (s == GR_OK) s = gr_write_file_atomic(cfg_path, text, strlen(text));
    if (s == GR_OK) s = gr_st_write_entries(st_path, es.e, es.n, NULL);
    free(text);
    json_decref(cfg);
    free(cfg_path);
    free(st_path);
    for (int i = 0; i < es.n; i++) free((char *)es.names[i]);
    free(es.e);
    free(es.names);
    free(es.ones);
    return s;
}

gr_status gr_bench_tmpdir(const char *parent, char *out, size_t cap)
{
    if (!parent || !*parent) parent = getenv("TMPDIR");
    if (!parent || !*parent) parent = "/tmp";
    if ((size_t)snprintf(out, cap, "%s/graft-bench-XXXXXX", parent) >= cap)
        return gr_fail(GR_ERR_INVALID, "%s: path too long", parent);
    if (!mkdtemp(out)) return gr_fail(GR_ERR_IO, "%s: cannot create a temporary directory: %s", out, strerror(errno));
    return GR_OK;
}

void gr_bench_rmdir(const char *dir)
{
    static const char *files[] = {"config.json", "model.safetensors", "inputs.safetensors"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char *p = gr_path_join(dir, files[i]);
        if (p) unlink(p);
        free(p);
    }
    rmdir(dir);
}

int64_t gr_bench_free_bytes(const char *dir)
{
    struct statvfs sv;
    if (statvfs(dir, &sv) != 0) return -1;
    return (int64_t)sv.f_bavail * (int64_t)sv.f_frsize;
}

gr_status gr_bench_open_lm(gr_ctx *ctx, const char *dir, gr_bench_model *out)
{
    memset(out, 0, sizeof *out);
    char *cfg_path = gr_path_join(dir, "config.json");
    if (!cfg_path) return gr_fail(GR_ERR_NOMEM, "bench: out of memory");
    json_error_t jerr;
    out->config = json_load_file(cfg_path, JSON_REJECT_DUPLICATES, &jerr);
    if (!out->config) {
        gr_status s = gr_fail(GR_ERR_FORMAT, "%s: line %d: %s", cfg_path, jerr.line, jerr.text);
        free(cfg_path);
        return s;
    }
    const char *family = json_string_value(json_object_get(out->config, "model_type"));
    gr_status s = family ? GR_OK : gr_fail(GR_ERR_INVALID, "%s: key 'model_type' is missing", cfg_path);
    const void *iface = NULL;
    if (s == GR_OK) s = gr_plugin_iface(GR_PLUGIN_LANGUAGE_MODEL, family, &iface);
    if (s == GR_OK) s = gr_weights_open(dir, &out->weights);
    if (s == GR_OK) {
        out->iface = iface;
        gr_model_source src = {.struct_size = sizeof src, .dir = dir, .config = out->config,
                               .config_path = cfg_path, .weights = out->weights, .prefix = ""};
        s = out->iface->open(ctx, &src, &out->lm);
    }
    free(cfg_path);
    if (s != GR_OK) {
        char keep[1024];
        snprintf(keep, sizeof keep, "%s", gr_last_error());
        gr_bench_close_lm(ctx, out);
        gr_fail(s, "%s", keep);
    }
    return s;
}

void gr_bench_close_lm(gr_ctx *ctx, gr_bench_model *m)
{
    if (m->lm) m->iface->close(m->lm, ctx);
    if (m->weights) gr_weights_close(m->weights);
    if (m->config) json_decref(m->config);
    memset(m, 0, sizeof *m);
}
