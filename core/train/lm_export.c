/* A pretrained LM as a Hugging Face directory: config.json and generation_config.json as
 * transformers 4.41's save_pretrained writes them, model.safetensors, tokenizer files.
 *
 * save_pretrained writes config.to_diff_dict() with sorted keys: every key of the model's own
 * config class, plus the PretrainedConfig keys whose value differs from the base default
 * (bos/eos/pad ids, architectures, torch_dtype, is_encoder_decoder, decoder_start_token_id;
 * tie_word_embeddings when it differs from the base default true or from the class default —
 * so a tied Llama says "tie_word_embeddings": true, a tied OPT or T5 says nothing). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fsutil.h"
#include "train/task_lm.h"

#define HF_VERSION "4.41.2"

static void set_int(json_t *o, const char *k, int64_t v) { json_object_set_new(o, k, json_integer(v)); }
static void set_str(json_t *o, const char *k, const char *v) { json_object_set_new(o, k, json_string(v)); }
static void set_real(json_t *o, const char *k, double v) { json_object_set_new(o, k, json_real(v)); }
static void set_bool(json_t *o, const char *k, int v) { json_object_set_new(o, k, json_boolean(v)); }
static void set_id(json_t *o, const char *k, int32_t v)
{
    if (v >= 0) set_int(o, k, v);
}

gr_status gr_lm_hf_config(const gr_lm_arch *a, json_t **out)
{
    *out = NULL;
    json_t *c = json_object();
    if (!c) return gr_fail(GR_ERR_NOMEM, "config.json: out of memory");
    if (strcmp(a->family, "opt") == 0) {
        set_bool(c, "_remove_final_layer_norm", 0);
        set_real(c, "activation_dropout", 0.0);
        set_str(c, "activation_function", "relu");
        json_object_set_new(c, "architectures", json_pack("[s]", "OPTForCausalLM"));
        set_real(c, "attention_dropout", 0.0);
        set_id(c, "bos_token_id", a->bos_id);
        set_bool(c, "do_layer_norm_before", 1);
        set_real(c, "dropout", 0.1);
        set_bool(c, "enable_bias", 1);
        set_id(c, "eos_token_id", a->eos_id);
        set_int(c, "ffn_dim", a->ffn_dim);
        set_int(c, "hidden_size", a->hidden_size);
        set_real(c, "init_std", 0.02);
        set_bool(c, "layer_norm_elementwise_affine", 1);
        set_real(c, "layerdrop", 0.0);
        set_int(c, "max_position_embeddings", a->max_positions);
        set_str(c, "model_type", "opt");
        set_int(c, "num_attention_heads", a->heads);
        set_int(c, "num_hidden_layers", a->layers);
        set_id(c, "pad_token_id", a->pad_id);
        if (!a->tie_embeddings) set_bool(c, "tie_word_embeddings", 0);
        set_str(c, "torch_dtype", "float32");
        set_str(c, "transformers_version", HF_VERSION);
        set_bool(c, "use_cache", 1);
        set_int(c, "vocab_size", a->vocab_size);
        set_int(c, "word_embed_proj_dim", a->hidden_size);
    } else if (strcmp(a->family, "llama") == 0) {
        json_object_set_new(c, "architectures", json_pack("[s]", "LlamaForCausalLM"));
        set_bool(c, "attention_bias", 0);
        set_real(c, "attention_dropout", 0.0);
        set_id(c, "bos_token_id", a->bos_id);
        set_id(c, "eos_token_id", a->eos_id);
        set_str(c, "hidden_act", "silu");
        set_int(c, "hidden_size", a->hidden_size);
        set_real(c, "initializer_range", 0.02);
        set_int(c, "intermediate_size", a->ffn_dim);
        set_int(c, "max_position_embeddings", a->max_positions);
        set_bool(c, "mlp_bias", 0);
        set_str(c, "model_type", "llama");
        set_int(c, "num_attention_heads", a->heads);
        set_int(c, "num_hidden_layers", a->layers);
        set_int(c, "num_key_value_heads", a->kv_heads);
        set_id(c, "pad_token_id", a->pad_id);
        set_int(c, "pretraining_tp", 1);
        set_real(c, "rms_norm_eps", 1e-6);
        json_object_set_new(c, "rope_scaling", json_null());
        set_real(c, "rope_theta", 10000.0);
        set_bool(c, "tie_word_embeddings", a->tie_embeddings); /* differs from the base or the class default */
        set_str(c, "torch_dtype", "float32");
        set_str(c, "transformers_version", HF_VERSION);
        set_bool(c, "use_cache", 1);
        set_int(c, "vocab_size", a->vocab_size);
    } else if (strcmp(a->family, "t5") == 0) {
        const char *ff = a->t5_ff && a->t5_ff[0] ? a->t5_ff : "relu";
        int gated = strncmp(ff, "gated-", 6) == 0;
        const char *act = gated ? ff + 6 : ff;
        if (strcmp(act, "gelu") == 0 && gated) act = "gelu_new"; /* T5Config's own rewrite of "gated-gelu" */
        json_object_set_new(c, "architectures", json_pack("[s]", "T5ForConditionalGeneration"));
        set_real(c, "classifier_dropout", 0.0);
        set_int(c, "d_ff", a->ffn_dim);
        set_int(c, "d_kv", a->d_kv);
        set_int(c, "d_model", a->hidden_size);
        set_id(c, "decoder_start_token_id", a->decoder_start_id);
        set_str(c, "dense_act_fn", act);
        set_real(c, "dropout_rate", 0.1);
        set_id(c, "eos_token_id", a->eos_id);
        set_str(c, "feed_forward_proj", ff);
        set_real(c, "initializer_factor", 1.0);
        set_bool(c, "is_encoder_decoder", 1);
        set_bool(c, "is_gated_act", gated);
        set_real(c, "layer_norm_epsilon", 1e-6);
        set_str(c, "model_type", "t5");
        set_int(c, "num_decoder_layers", a->decoder_layers);
        set_int(c, "num_heads", a->heads);
        set_int(c, "num_layers", a->layers);
        set_id(c, "pad_token_id", a->pad_id);
        set_int(c, "relative_attention_max_distance", 128);
        set_int(c, "relative_attention_num_buckets", 32);
        if (!a->tie_embeddings) set_bool(c, "tie_word_embeddings", 0);
        set_str(c, "torch_dtype", "float32");
        set_str(c, "transformers_version", HF_VERSION);
        set_bool(c, "use_cache", 1);
        set_int(c, "vocab_size", a->vocab_size);
    } else {
        json_decref(c);
        return gr_fail(GR_ERR_INVALID, "pretrain.family '%s': expected opt, llama or t5", a->family);
    }
    *out = c;
    return GR_OK;
}

json_t *gr_lm_hf_generation_config(const gr_lm_arch *a)
{
    json_t *g = json_object();
    if (!g) return NULL;
    set_bool(g, "_from_model_config", 1);
    set_id(g, "bos_token_id", a->bos_id);
    set_id(g, "decoder_start_token_id", strcmp(a->family, "t5") == 0 ? a->decoder_start_id : -1);
    set_id(g, "eos_token_id", a->eos_id);
    set_id(g, "pad_token_id", a->pad_id);
    set_str(g, "transformers_version", HF_VERSION);
    return g;
}

static gr_status write_json(const char *dir, const char *name, const json_t *root)
{
    char *path = gr_path_join(dir, name);
    char *text = root ? json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(15)) : NULL;
    gr_status s = GR_OK;
    char *buf = NULL;
    if (!path || !text) s = gr_fail(GR_ERR_NOMEM, "%s/%s: out of memory", dir, name);
    else {
        size_t n = strlen(text);
        buf = malloc(n + 2);
        if (!buf) s = gr_fail(GR_ERR_NOMEM, "%s: out of memory", path);
        else {
            memcpy(buf, text, n);
            buf[n] = '\n';
            s = gr_write_file_atomic(path, buf, n + 1);
        }
    }
    free(buf);
    free(path);
    free(text);
    return s;
}

static gr_status copy_file(const char *src_dir, const char *dst_dir, const char *name, int required)
{
    char *src = gr_path_join(src_dir, name), *dst = gr_path_join(dst_dir, name);
    gr_status s = GR_OK;
    if (!src || !dst) s = gr_fail(GR_ERR_NOMEM, "out of memory");
    else if (!gr_path_exists(src)) s = required ? gr_fail(GR_ERR_NOT_FOUND, "%s: missing (the tokenizer directory needs it)", src) : GR_OK;
    else {
        char *data;
        size_t len;
        s = gr_read_file(src, &data, &len);
        if (!s) {
            s = gr_write_file_atomic(dst, data, len);
            free(data);
        }
    }
    free(src);
    free(dst);
    return s;
}

gr_status gr_lm_save_hf_dir(gr_ctx *ctx, const gr_lm_iface *lm, gr_lm *model, const json_t *config, const gr_lm_arch *a,
                            const char *tokenizer_dir, const char *dir)
{
    gr_status s = gr_mkdirs(dir);
    if (s) return s;
    if ((s = write_json(dir, "config.json", config))) return s;
    json_t *g = gr_lm_hf_generation_config(a);
    if (!g) return gr_fail(GR_ERR_NOMEM, "%s: out of memory", dir);
    s = write_json(dir, "generation_config.json", g);
    json_decref(g);
    if (s) return s;
    gr_param_list pl;
    lm->params(model, &pl);
    char *path = gr_path_join(dir, "model.safetensors");
    if (!path) return gr_fail(GR_ERR_NOMEM, "%s: out of memory", dir);
    static const char *const meta[] = {"format", "pt", NULL};
    s = gr_safetensors_write(ctx, path, pl.items, NULL, pl.count, meta);
    free(path);
    if (s) return s;
    static const char *const tok_files[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                            "vocab.json", "merges.txt", "tokenizer.model", "spiece.model"};
    int have_any = 0;
    for (int i = 0; i < 7 && !s; i++) {
        char *p = gr_path_join(tokenizer_dir, tok_files[i]);
        if (!p) return gr_fail(GR_ERR_NOMEM, "out of memory");
        int exists = gr_path_exists(p);
        free(p);
        if (!exists) continue;
        have_any = 1;
        s = copy_file(tokenizer_dir, dir, tok_files[i], 0);
    }
    if (!s && !have_any) s = gr_fail(GR_ERR_NOT_FOUND, "%s: no tokenizer files to copy", tokenizer_dir);
    (void)a;
    return s;
}
