/* graft pretrain -c CFG: trains an OPT, Llama or T5 plugin from random init on a text corpus
 * with the generic trainer and saves a complete Hugging Face directory (docs/pretraining.md). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fsutil.h"
#include "cli_config.h"
#include "commands.h"
#include "graft/model.h"
#include "io/safetensors.h"
#include "plugin/registry.h"
#include "text/tokenizer.h"
#include "train/pretrain_run.h"
#include "train/task_lm.h"

extern const gr_command gr_cmd_pretrain;

/* The synthetic world's world-knowledge facts (core/data/synth_text.c, knowledge.txt): two
 * things per colour and per shape of the default world, in two templates each. */
#define DEFAULT_PROBES                                                                                                 \
    "[\"the sky is|blue\", \"the grass is|green\", \"the tomato is|red\", \"the banana is|yellow\", "                 \
    "\"the grape is|purple\", \"the carrot is|orange\", \"the flamingo is|pink\", \"the lagoon is|cyan\", "           \
    "\"a strawberry is|red\", \"a leaf is|green\", \"a sea is|blue\", \"a lemon is|yellow\", \"a plum is|purple\", "     \
    "\"a pumpkin is|orange\", \"a pig is|pink\", \"a swimming pool is|cyan\", "                                          \
    "\"a wheel looks like a|circle\", \"a box looks like a|square\", \"a roof looks like a|triangle\", "              \
    "\"a kite looks like a|diamond\", \"a starfish looks like a|star\", \"a honeycomb cell looks like a|hexagon\", "   \
    "\"the shape of a coin is a|circle\", \"the shape of a window is a|square\", "                                   \
    "\"the shape of a pizza slice is a|triangle\", \"the shape of a rhombus is a|diamond\", "                        \
    "\"the shape of a sheriff badge is a|star\", \"the shape of a bolt head is a|hexagon\"]"

static const gr_config_key pretrain_keys[] = {
    {"pretrain.family", GR_CFG_STRING, "opt", "model family: opt, llama or t5"},
    {"pretrain.tokenizer", GR_CFG_STRING, NULL, "tokenizer directory (graft tokenizer train --out); its vocabulary sizes the model"},
    {"pretrain.corpus", GR_CFG_STRING_LIST, NULL, "training text files, one text per line (or per paragraph, see documents)"},
    {"pretrain.documents", GR_CFG_STRING, "lines",
     "what stays together when the corpus is shuffled: lines, or paragraphs (blank-line separated documents)"},
    {"pretrain.corpus_weights", GR_CFG_FLOAT_LIST, "[]",
     "per corpus file: how often its lines occur in an epoch (2: twice, 0.5: half of them; empty: all 1)"},
    {"pretrain.val_corpus", GR_CFG_STRING_LIST, "[]", "held-out text files (empty: every k-th corpus line, see val_fraction)"},
    {"pretrain.val_fraction", GR_CFG_FLOAT, "0.05", "share of corpus lines held out when val_corpus is empty (0: none)"},
    {"pretrain.out", GR_CFG_STRING, NULL, "output: a Hugging Face model directory (training run in OUT/run)"},
    {"pretrain.seed", GR_CFG_INT, "0", "seed of the random init, data order and T5 split points"},
    {"pretrain.hidden_size", GR_CFG_INT, "64", "hidden size (T5: d_model)"},
    {"pretrain.layers", GR_CFG_INT, "2", "decoder layers (T5: encoder layers)"},
    {"pretrain.decoder_layers", GR_CFG_INT, "0", "T5 decoder layers (0: = layers)"},
    {"pretrain.heads", GR_CFG_INT, "4", "attention heads"},
    {"pretrain.kv_heads", GR_CFG_INT, "0", "Llama key/value heads (0: = heads)"},
    {"pretrain.ffn_dim", GR_CFG_INT, "0", "feed-forward width (0: 4 x hidden_size)"},
    {"pretrain.max_positions", GR_CFG_INT, "128", "max_position_embeddings (OPT, Llama)"},
    {"pretrain.t5_feed_forward_proj", GR_CFG_STRING, "gated-gelu", "T5 feed_forward_proj (gated-gelu as Flan-T5, or relu)"},
    {"pretrain.tie_embeddings", GR_CFG_BOOL, "true", "tie the output head to the input embeddings"},
    {"pretrain.seq_len", GR_CFG_INT, "64", "tokens per training window"},
    {"pretrain.batch_size", GR_CFG_INT, "16", "windows per step"},
    {"pretrain.epochs", GR_CFG_INT, "1", "epochs over the corpus (ignored when steps > 0)"},
    {"pretrain.steps", GR_CFG_INT, "0", "optimizer steps (0: use epochs)"},
    {"pretrain.lr", GR_CFG_FLOAT, "3e-3", "peak learning rate (AdamW)"},
    {"pretrain.min_lr", GR_CFG_FLOAT, "3e-4", "cosine floor"},
    {"pretrain.warmup_steps", GR_CFG_INT, "30", "linear warm-up steps"},
    {"pretrain.weight_decay", GR_CFG_FLOAT, "0.01", "AdamW decoupled weight decay (not on biases, norms, 1-D tensors)"},
    {"pretrain.grad_clip", GR_CFG_FLOAT, "1.0", "max global gradient norm (0: none)"},
    {"pretrain.eval_every", GR_CFG_INT, "0", "held-out evaluation every N steps (0: after each epoch)"},
    {"pretrain.eval_windows", GR_CFG_INT, "0", "cap on held-out windows per evaluation (0: all)"},
    {"pretrain.probes", GR_CFG_STRING_LIST, DEFAULT_PROBES, "quality probes \"PROMPT|ANSWER\": P(ANSWER | PROMPT) after training"},
    {"pretrain.color_words", GR_CFG_STRING_LIST, "[\"red\", \"green\", \"blue\", \"yellow\", \"purple\", \"orange\", \"pink\", \"cyan\"]",
     "words whose input embeddings must stay apart (max pairwise cosine)"},
    {"pretrain.min_probe_prob", GR_CFG_FLOAT, "0.8", "quality bar: every probe's probability at least this"},
    {"pretrain.max_color_cosine", GR_CFG_FLOAT, "0.9", "quality bar: colour-embedding cosines below this"},
    {"pretrain.require_quality", GR_CFG_BOOL, "false", "fail (exit 1) when the quality bar is not met"},
};

typedef struct strings { const char **v; int n; } strings;

static gr_status get_list(const gr_config *cfg, const char *key, strings *out)
{
    out->n = gr_config_list_count(cfg, key);
    out->v = calloc((size_t)out->n + 1, sizeof *out->v);
    if (!out->v) return gr_fail(GR_ERR_NOMEM, "out of memory");
    for (int i = 0; i < out->n; i++) out->v[i] = gr_config_list_string(cfg, key, i);
    return GR_OK;
}

/* The architecture from the config keys and the tokenizer's ids. */
static gr_status make_arch(const gr_config *cfg, const gr_tokenizer *tok, gr_lm_arch *a)
{
    memset(a, 0, sizeof *a);
    a->family = gr_config_string(cfg, "pretrain.family");
    static const char *const keys[] = {"pretrain.hidden_size", "pretrain.layers", "pretrain.heads", "pretrain.max_positions"};
    for (int i = 0; i < 4; i++) {
        gr_status s = gr_config_check_int(cfg, keys[i], 1, 1 << 20);
        if (s) return s;
    }
    a->vocab_size = gr_tokenizer_vocab_size(tok);
    a->hidden_size = gr_config_int(cfg, "pretrain.hidden_size");
    a->layers = gr_config_int(cfg, "pretrain.layers");
    a->heads = gr_config_int(cfg, "pretrain.heads");
    a->kv_heads = gr_config_int(cfg, "pretrain.kv_heads") > 0 ? gr_config_int(cfg, "pretrain.kv_heads") : a->heads;
    a->ffn_dim = gr_config_int(cfg, "pretrain.ffn_dim") > 0 ? gr_config_int(cfg, "pretrain.ffn_dim") : 4 * a->hidden_size;
    a->max_positions = gr_config_int(cfg, "pretrain.max_positions");
    a->decoder_layers = gr_config_int(cfg, "pretrain.decoder_layers") > 0 ? gr_config_int(cfg, "pretrain.decoder_layers") : a->layers;
    a->d_kv = a->hidden_size / a->heads;
    a->t5_ff = gr_config_string(cfg, "pretrain.t5_feed_forward_proj");
    a->tie_embeddings = gr_config_bool(cfg, "pretrain.tie_embeddings");
    a->bos_id = gr_tokenizer_bos_id(tok);
    a->eos_id = gr_tokenizer_eos_id(tok);
    a->pad_id = gr_tokenizer_pad_id(tok);
    a->decoder_start_id = -1;
    const char *path = gr_config_path(cfg);
    if (a->hidden_size % a->heads || a->heads % a->kv_heads)
        return gr_fail(GR_ERR_INVALID, "%s: pretrain.hidden_size %lld must be a multiple of heads %lld, and heads of kv_heads %lld", path,
                       (long long)a->hidden_size, (long long)a->heads, (long long)a->kv_heads);
    if (a->eos_id < 0) return gr_fail(GR_ERR_INVALID, "%s: the tokenizer has no EOS token", gr_config_string(cfg, "pretrain.tokenizer"));
    if (strcmp(a->family, "opt") == 0) {
        if (a->pad_id < 0 || a->bos_id < 0)
            return gr_fail(GR_ERR_INVALID, "%s: an OPT model needs a tokenizer with BOS and pad tokens (train it with --family opt)",
                           gr_config_string(cfg, "pretrain.tokenizer"));
    } else if (strcmp(a->family, "t5") == 0) {
        if (a->pad_id < 0)
            return gr_fail(GR_ERR_INVALID, "%s: a T5 model needs a tokenizer with a pad token (train it with --family t5)",
                           gr_config_string(cfg, "pretrain.tokenizer"));
        a->decoder_start_id = a->pad_id;
    } else if (strcmp(a->family, "llama") != 0) {
        return gr_fail(GR_ERR_INVALID, "%s: pretrain.family '%s': expected opt, llama or t5", path, a->family);
    }
    return GR_OK;
}

/* Opens OUT from disk as any user would and compares its logits on a fixed batch with the
 * trained model's, bit for bit; writes the batch and the logits as a `graft verify` case. */
static gr_status reload_check(gr_ctx *ctx, const gr_lm_iface *lm, gr_lm *model, gr_lm_task *task, const char *family,
                              const char *out, const char *run_dir, double *max_diff)
{
    gr_lm_info info = {.struct_size = sizeof(gr_lm_info)};
    lm->info(model, &info);
    gr_lm_batch b;
    gr_status s = gr_lm_task_fixed_batch(task, 2, &b);
    if (s) return s;
    gr_lm_inputs in;
    gr_lm_batch_inputs(&b, info.is_encoder_decoder, &in);
    int was = gr_ctx_set_grad_enabled(ctx, 0);
    gr_ctx_reset(ctx);
    gr_lm_outputs o1 = {.struct_size = sizeof(gr_lm_outputs)}, o2 = {.struct_size = sizeof(gr_lm_outputs)};
    float *l1 = NULL, *l2 = NULL;
    int64_t n = 0;
    s = lm->forward(model, ctx, &in, &o1);
    if (!s) {
        n = gr_numel(o1.logits);
        l1 = malloc((size_t)n * sizeof *l1);
        l2 = malloc((size_t)n * sizeof *l2);
        if (!l1 || !l2) s = gr_fail(GR_ERR_NOMEM, "out of memory");
        else s = gr_to_host_f32(ctx, o1.logits, l1);
    }
    char *case_path = gr_path_join(run_dir, "verify_case.safetensors");
    if (!s && !case_path) s = gr_fail(GR_ERR_NOMEM, "out of memory");
    if (!s) {
        int64_t sh_in[2] = {b.batch, b.seq}, sh_lab[2] = {b.batch, b.label_len};
        gr_tensor *t[5] = {gr_from_host(ctx, GR_I32, 2, sh_in, b.ids), gr_from_host(ctx, GR_I32, 2, sh_in, b.mask),
                           gr_from_host(ctx, GR_I32, 2, sh_lab, b.labels), o1.logits, o1.loss};
        static const char *const names[5] = {"input_ids", "attention_mask", "labels", "logits", "loss"};
        const char *meta[] = {"family", family, "inputs", "input_ids,attention_mask,labels", "source", "graft pretrain", NULL};
        s = gr_ctx_status(ctx);
        if (!s) s = gr_safetensors_write(ctx, case_path, t, names, 5, meta);
    }
    free(case_path);
    gr_ctx_reset(ctx);
    /* reload: config.json and model.safetensors through the normal loading path */
    json_t *cfg = NULL;
    gr_weights *w = NULL;
    gr_lm *m2 = NULL;
    char *cfg_path = gr_path_join(out, "config.json");
    if (!s) {
        json_error_t e;
        cfg = cfg_path ? json_load_file(cfg_path, JSON_REJECT_DUPLICATES, &e) : NULL;
        if (!cfg) s = gr_fail(GR_ERR_FORMAT, "%s: %s", cfg_path ? cfg_path : out, cfg_path ? e.text : "out of memory");
    }
    if (!s) s = gr_weights_open(out, &w);
    if (!s) {
        gr_model_source src;
        memset(&src, 0, sizeof src);
        src.struct_size = sizeof src;
        src.dir = out;
        src.config = cfg;
        src.config_path = cfg_path;
        src.weights = w;
        src.prefix = "";
        s = lm->open(ctx, &src, &m2);
    }
    if (!s) s = lm->forward(m2, ctx, &in, &o2);
    if (!s && gr_numel(o2.logits) != n) s = gr_fail(GR_ERR_SHAPE, "%s: reloaded logits have another shape", out);
    if (!s) s = gr_to_host_f32(ctx, o2.logits, l2);
    if (!s) {
        double d = 0;
        for (int64_t i = 0; i < n; i++) {
            double x = fabs((double)l1[i] - (double)l2[i]);
            if (!(x <= d)) d = x; /* NaN counts as a difference */
        }
        *max_diff = d;
    }
    gr_ctx_reset(ctx);
    gr_ctx_set_grad_enabled(ctx, was);
    if (m2) lm->close(m2, ctx);
    gr_weights_close(w);
    json_decref(cfg);
    free(cfg_path);
    free(l1);
    free(l2);
    gr_lm_batch_free(&b);
    return s;
}

static void print_quality(const json_t *q, double min_prob, double max_cos, int *ok)
{
    *ok = 1;
    json_t *v;
    if ((v = json_object_get(q, "val_ppl"))) printf("pretrain: held-out perplexity %.3f (loss %.4f)\n", json_real_value(v),
                                                    json_real_value(json_object_get(q, "val_loss")));
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(q, "probes"), i, p) {
        double pr = json_real_value(json_object_get(p, "prob"));
        int bad = pr < min_prob;
        if (bad) *ok = 0;
        printf("pretrain: P(%s | %s) = %.3f%s%s\n", json_string_value(json_object_get(p, "answer")),
               json_string_value(json_object_get(p, "prompt")), pr, json_is_true(json_object_get(p, "top1")) ? "" : " (not top-1)",
               bad ? "  [below the bar]" : "");
    }
    if ((v = json_object_get(q, "color_cosine_max"))) {
        json_t *pair = json_object_get(q, "color_pair");
        double c = json_real_value(v);
        if (c >= max_cos) *ok = 0;
        printf("pretrain: max colour-embedding cosine %.3f (%s / %s)%s\n", c, json_string_value(json_array_get(pair, 0)),
               json_string_value(json_array_get(pair, 1)), c >= max_cos ? "  [collapsed: above the bar]" : "");
    }
    json_array_foreach(json_object_get(q, "colors"), i, p)
        if (json_integer_value(json_object_get(p, "token")) < 0)
            printf("pretrain: note: colour word '%s' is not one token; left out of the cosine check\n",
                   json_string_value(json_object_get(p, "word")));
}

static int run_pretrain(int argc, char **argv)
{
    if (gr_cli_wants_help(argc, argv)) return gr_cli_usage(&gr_cmd_pretrain, 0);
    gr_config *cfg = NULL;
    /* declared first: -s overrides are typed by the schema */
    if (gr_config_schema_add(pretrain_keys, (int)(sizeof pretrain_keys / sizeof pretrain_keys[0])) ||
        gr_cli_config_open(&argc, argv, &cfg))
        return gr_cli_error();
    int resume = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--resume") == 0) resume = 1;
        else {
            gr_config_free(cfg);
            fprintf(stderr, "graft: pretrain: unexpected argument '%s' (see 'graft help pretrain')\n", argv[i]);
            return 2;
        }
    }
    gr_status s = gr_config_validate(cfg);
    static const char *const required[] = {"pretrain.tokenizer", "pretrain.corpus", "pretrain.out"};
    for (int i = 0; i < 3 && !s; i++)
        if (!gr_config_is_set(cfg, required[i])) s = gr_fail(GR_ERR_INVALID, "%s: %s is required", gr_config_path(cfg), required[i]);
    static const char *const pos[] = {"pretrain.seq_len", "pretrain.batch_size"};
    for (int i = 0; i < 2 && !s; i++) s = gr_config_check_int(cfg, pos[i], 1, 1 << 20);
    if (s) { gr_config_free(cfg); return gr_cli_error(); }

    gr_pretrain_run run;
    s = gr_pretrain_run_init(&run, "pretrain", "pretrain", cfg);
    const char *out = run.out, *tok_dir = gr_config_string(cfg, "pretrain.tokenizer");
    gr_tokenizer *tok = NULL;
    gr_backend *backend = NULL;
    gr_ctx *ctx = NULL;
    const gr_lm_iface *lm = NULL;
    gr_lm *model = NULL;
    json_t *hf = NULL, *quality = NULL;
    gr_lm_task *task = NULL;
    strings corpus = {0}, val = {0}, probes = {0}, colors = {0};
    gr_tensor **params = NULL;
    gr_lm_arch arch;
    int quality_ok = 1;

    if (!s) s = gr_tokenizer_load(tok_dir, &tok);
    if (!s) s = make_arch(cfg, tok, &arch);
    if (!s) s = gr_lm_hf_config(&arch, &hf);
    if (!s) {
        gr_backend_options bo;
        gr_cli_backend_options(cfg, &bo);
        gr_plugins_scan();
        s = gr_backend_open(gr_config_string(cfg, "backend.name"), &bo, &backend);
    }
    if (!s && !(ctx = gr_ctx_create(backend))) s = gr_fail(GR_ERR_NOMEM, "cannot create a compute context");
    const void *iface = NULL;
    if (!s) s = gr_plugin_iface(GR_PLUGIN_LANGUAGE_MODEL, arch.family, &iface);
    char *cfg_json_path = gr_path_join(out, "config.json");
    if (!s) {
        lm = iface;
        gr_model_source src;
        memset(&src, 0, sizeof src);
        src.struct_size = sizeof src;
        src.dir = out;
        src.config = hf;
        src.config_path = cfg_json_path ? cfg_json_path : "config.json";
        src.weights = NULL; /* random init, as HF's _init_weights */
        src.prefix = "";
        src.seed = (uint64_t)gr_config_int(cfg, "pretrain.seed");
        s = lm->open(ctx, &src, &model);
    }
    gr_param_list pl = {0};
    if (!s) {
        lm->params(model, &pl);
        for (int i = 0; i < pl.count; i++) gr_set_trainable(pl.items[i], 1);
        params = pl.items;
    }
    if (!s) s = get_list(cfg, "pretrain.corpus", &corpus);
    if (!s) s = get_list(cfg, "pretrain.val_corpus", &val);
    if (!s) s = get_list(cfg, "pretrain.probes", &probes);
    if (!s) s = get_list(cfg, "pretrain.color_words", &colors);
    double *weights = NULL;
    int n_weights = s ? 0 : gr_config_list_count(cfg, "pretrain.corpus_weights");
    if (!s && n_weights > 0 && n_weights != corpus.n)
        s = gr_fail(GR_ERR_INVALID, "%s: pretrain.corpus_weights has %d values for %d corpus files", gr_config_path(cfg), n_weights, corpus.n);
    if (!s && n_weights > 0) {
        weights = calloc((size_t)n_weights, sizeof *weights);
        if (!weights) s = gr_fail(GR_ERR_NOMEM, "out of memory");
        for (int i = 0; i < n_weights && weights; i++) weights[i] = gr_config_list_float(cfg, "pretrain.corpus_weights", i);
    }
    const char *docs = s ? "lines" : gr_config_string(cfg, "pretrain.documents");
    if (!s && strcmp(docs, "lines") != 0 && strcmp(docs, "paragraphs") != 0)
        s = gr_fail(GR_ERR_INVALID, "%s: pretrain.documents is \"%s\"; expected \"lines\" or \"paragraphs\"", gr_config_path(cfg), docs);
    if (!s) {
        gr_lm_task_config tc = {.paragraphs = strcmp(docs, "paragraphs") == 0, .lm = lm, .model = model, .tok = tok, .corpus = corpus.v, .n_corpus = corpus.n, .corpus_weights = weights, .val_corpus = val.v,
                                .n_val = val.n, .val_fraction = gr_config_float(cfg, "pretrain.val_fraction"),
                                .seq_len = gr_config_int(cfg, "pretrain.seq_len"), .batch_size = gr_config_int(cfg, "pretrain.batch_size"),
                                .eval_windows = gr_config_int(cfg, "pretrain.eval_windows"), .seed = (uint64_t)gr_config_int(cfg, "pretrain.seed")};
        if (tc.seq_len > arch.max_positions && strcmp(arch.family, "t5") != 0)
            s = gr_fail(GR_ERR_INVALID, "%s: pretrain.seq_len %lld exceeds max_positions %lld", gr_config_path(cfg), (long long)tc.seq_len,
                        (long long)arch.max_positions);
        if (!s) s = gr_lm_task_create(&tc, &task);
    }
    free(weights);
    if (!s) {
        gr_lm_task_stats st;
        gr_lm_task_stats_get(task, &st);
        int64_t np = 0;
        for (int i = 0; i < pl.count; i++) np += gr_numel(pl.items[i]);
        printf("pretrain: %s %lldx%lld (%.2fM parameters, vocab %lld) on %lld %s / %lld tokens (%lld weighted, %lld batches an epoch), "
               "held out %lld %s / %lld tokens\n", arch.family, (long long)arch.layers, (long long)arch.hidden_size, (double)np / 1e6,
               (long long)arch.vocab_size, (long long)st.train_lines, docs, (long long)st.train_tokens, (long long)st.epoch_tokens,
               (long long)st.batches_per_epoch,
               (long long)st.val_lines, docs, (long long)st.val_tokens);
        fflush(stdout);
    }
    if (!s) s = gr_pretrain_run_open(&run, resume);
    if (!s) {
        gr_task tk = gr_lm_task_iface(task);
        s = gr_pretrain_run_train(&run, ctx, &tk, params, pl.count);
    }
    /* export, reload check, quality */
    double diff = -1;
    if (!s) s = gr_lm_save_hf_dir(ctx, lm, model, hf, &arch, tok_dir, out);
    if (!s) s = reload_check(ctx, lm, model, task, arch.family, out, run.run_dir, &diff);
    if (!s && diff != 0)
        s = gr_fail(GR_ERR_NUMERIC, "%s: reloaded model differs from the trained one (max |logit diff| %g)", out, diff);
    if (!s) printf("pretrain: saved %s (config.json, model.safetensors, tokenizer); reloaded logits identical\n", out);
    if (!s) s = gr_lm_quality(task, ctx, probes.v, probes.n, colors.v, colors.n, &quality);
    if (!s) {
        double min_prob = gr_config_float(cfg, "pretrain.min_probe_prob"), max_cos = gr_config_float(cfg, "pretrain.max_color_cosine");
        print_quality(quality, min_prob, max_cos, &quality_ok);
        json_object_set_new(quality, "ok", json_boolean(quality_ok));
        json_object_set_new(quality, "min_probe_prob", json_real(min_prob));
        json_object_set_new(quality, "max_color_cosine", json_real(max_cos));
        json_object_set_new(quality, "train_seconds", json_real(run.t_train));
        char *qp = gr_path_join(out, "quality.json");
        char *text = json_dumps(quality, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
        if (!qp || !text) s = gr_fail(GR_ERR_NOMEM, "out of memory");
        else s = gr_write_file_atomic(qp, text, strlen(text));
        free(qp);
        free(text);
    }
    if (!s) {
        /* report.json: the quality numbers the check produced (val_ppl needs held-out text) */
        static const char *const qk[] = {"val_ppl", "probe_prob_mean", "probe_prob_min", "probe_top1", "color_cosine_max"};
        gr_metric qm[5];
        int nq = 0;
        for (int i = 0; i < 5; i++) {
            json_t *v = json_object_get(quality, qk[i]);
            if (v) qm[nq++] = (gr_metric){qk[i], json_real_value(v)};
        }
        s = gr_pretrain_run_finish(&run, qm, nq, quality_ok, "LM");
    }
    int rc = s ? gr_cli_error() : 0;
    gr_pretrain_run_free(&run);
    gr_lm_task_free(task);
    json_decref(quality);
    if (model) lm->close(model, ctx);
    if (ctx) gr_ctx_destroy(ctx);
    if (backend) gr_backend_close(backend);
    json_decref(hf);
    gr_tokenizer_free(tok);
    free(corpus.v);
    free(val.v);
    free(probes.v);
    free(colors.v);
    free(cfg_json_path);
    gr_config_free(cfg);
    return rc;
}

const gr_command gr_cmd_pretrain = {
    "pretrain", run_pretrain, "train an OPT, Llama or T5 language model from random init and save it as a Hugging Face directory",
    "usage: graft pretrain -c CONFIG [-s KEY=VALUE]... [--resume]\n\n"
    "Builds the model of pretrain.family (opt, llama, t5) with the sizes of the pretrain.* keys and\n"
    "the vocabulary of pretrain.tokenizer, initialises it as transformers does, trains it on\n"
    "pretrain.corpus (packed windows; causal LM loss, or prefix LM for T5) with AdamW and a cosine\n"
    "schedule, and writes pretrain.out as a Hugging Face directory: config.json,\n"
    "generation_config.json, model.safetensors, the tokenizer files and quality.json. The run\n"
    "(config.cfg, metrics.jsonl, checkpoints/, report.json, verify_case.safetensors) is OUT/run;\n"
    "--resume continues it from its newest checkpoint.\n\n"
    "After training: the directory is reloaded and must give identical logits; then a quality\n"
    "check prints the held-out perplexity, P(answer | prompt) for pretrain.probes and the max\n"
    "cosine between the input embeddings of pretrain.color_words (collapsed colour embeddings\n"
    "make a frozen LM unsteerable to a colour). Keys: graft help config, docs/pretraining.md.\n",
};
