/* `graft tokenizer train` + `graft pretrain` end to end for OPT (tied), Llama (untied, GQA) and T5
 * (prefix LM): the HF directory's files, config.json keys, safetensors names (tied weights once),
 * `graft verify` of the saved case, the loss falling, the quality report, bit-identical reruns,
 * and one-line errors. Usage: test_pretrain GRAFT_BIN DATA_DIR TMP_DIR */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "base/fsutil.h"
#include "graft/weights.h"
#include "run/runlog.h"
#include "text/tokenizer.h"

static int failures;
#define CHECK(cond, ...) do { if (!(cond)) { failures++; printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

static const char *graft, *data, *tmp;

/* Runs a shell command; returns its exit status (stdout+stderr into LOG). */
static int sh(const char *log, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int sh(const char *log, const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd - 64, fmt, ap);
    va_end(ap);
    snprintf(cmd + n, sizeof cmd - (size_t)n, " > '%s' 2>&1", log);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *cat2(const char *a, const char *b)
{
    char *p = gr_path_join(a, b);
    if (!p) { printf("FAIL out of memory\n"); exit(1); }
    return p;
}

static void show(const char *log)
{
    char *t;
    if (gr_read_file(log, &t, NULL) == GR_OK) { printf("---- %s\n%s----\n", log, t); free(t); }
}

typedef struct fam {
    const char *name, *type, *tfam;
    int tie;
    int32_t bos, eos, pad;
    const char *model_type, *arch, *embed, *extra_cfg;
} fam;

static void write_cfg(const char *path, const fam *f, const char *tok, const char *out, const char *extra)
{
    FILE *c = fopen(path, "w");
    if (!c) { printf("FAIL cannot write %s\n", path); failures++; return; }
    fprintf(c, "pretrain: {\n  family = \"%s\";\n  tokenizer = \"%s\";\n  corpus = [\"%s/corpus.txt\"];\n  out = \"%s\";\n"
               "  hidden_size = 32; layers = 1; heads = 2; ffn_dim = 64; max_positions = 64;\n"
               "  seq_len = 32; batch_size = 8; steps = 30; warmup_steps = 5; lr = 5e-3; min_lr = 5e-4;\n"
               "  tie_embeddings = %s;\n%s%s};\nbackend: { threads = 1; };\n",
            f->name, tok, data, out, f->tie ? "true" : "false", f->extra_cfg, extra ? extra : "");
    fclose(c);
}

static int64_t jint(json_t *o, const char *k) { json_t *v = json_object_get(o, k); return json_is_integer(v) ? json_integer_value(v) : -999; }

static void check_family(const fam *f)
{
    char *dir = cat2(tmp, f->name);
    char *tok = cat2(dir, "tok"), *out = cat2(dir, "model"), *cfg = cat2(dir, "p.cfg"), *log = cat2(dir, "log.txt");
    gr_mkdirs(dir);
    int rc = sh(log, "'%s' tokenizer train --corpus '%s/corpus.txt' --vocab-size 400 --type %s --family %s --out '%s'", graft, data,
                f->type, f->tfam, tok);
    CHECK(rc == 0, "%s: tokenizer train exit %d", f->name, rc);
    if (rc) show(log);
    write_cfg(cfg, f, tok, out, NULL);
    rc = sh(log, "'%s' pretrain -c '%s'", graft, cfg);
    CHECK(rc == 0, "%s: pretrain exit %d", f->name, rc);
    if (rc) { show(log); goto done; }
    static const char *const files[] = {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                                        "tokenizer_config.json", "special_tokens_map.json", "quality.json", "run/report.json",
                                        "run/metrics.jsonl", "run/config.cfg", "run/verify_case.safetensors"};
    for (int i = 0; i < 11; i++) {
        char *p = cat2(out, files[i]);
        CHECK(gr_path_exists(p), "%s: %s missing", f->name, files[i]);
        free(p);
    }
    /* config.json: the family's keys and the tokenizer's ids */
    char *cp = cat2(out, "config.json");
    json_error_t e;
    json_t *c = json_load_file(cp, 0, &e);
    free(cp);
    gr_tokenizer *t = NULL;
    CHECK(gr_tokenizer_load(out, &t) == GR_OK, "%s: tokenizer reload: %s", f->name, gr_last_error());
    if (c && t) {
        CHECK(strcmp(json_string_value(json_object_get(c, "model_type")), f->model_type) == 0, "%s: model_type", f->name);
        CHECK(strcmp(json_string_value(json_array_get(json_object_get(c, "architectures"), 0)), f->arch) == 0, "%s: architectures", f->name);
        CHECK(jint(c, "vocab_size") == gr_tokenizer_vocab_size(t), "%s: vocab_size %lld vs tokenizer %d", f->name, (long long)jint(c, "vocab_size"),
              gr_tokenizer_vocab_size(t));
        CHECK(strcmp(json_string_value(json_object_get(c, "torch_dtype")), "float32") == 0, "%s: torch_dtype", f->name);
        CHECK(jint(c, "eos_token_id") == f->eos && (f->bos < 0 ? !json_object_get(c, "bos_token_id") : jint(c, "bos_token_id") == f->bos) &&
                  (f->pad < 0 ? !json_object_get(c, "pad_token_id") : jint(c, "pad_token_id") == f->pad),
              "%s: bos/eos/pad ids", f->name);
        json_t *tie = json_object_get(c, "tie_word_embeddings");
        /* to_diff_dict: false is written when untied; true only where the class default is false (Llama) */
        if (!f->tie) CHECK(json_is_false(tie), "%s: tie_word_embeddings should be false", f->name);
        else if (strcmp(f->name, "llama") == 0) CHECK(json_is_true(tie), "%s: tie_word_embeddings should be true", f->name);
        else CHECK(tie == NULL, "%s: tie_word_embeddings should be left out (default true)", f->name);
        if (strcmp(f->name, "t5") == 0) CHECK(jint(c, "decoder_start_token_id") == f->pad && json_is_true(json_object_get(c, "is_encoder_decoder")),
                                              "t5: decoder_start_token_id / is_encoder_decoder");
    }
    CHECK(c != NULL, "%s: config.json: %s", f->name, e.text);
    json_decref(c);
    gr_tokenizer_free(t);
    /* model.safetensors: F32, HF names, the tied head stored once */
    gr_weights *w = NULL;
    CHECK(gr_weights_open(out, &w) == GR_OK, "%s: weights: %s", f->name, gr_last_error());
    if (w) {
        int all_f32 = 1;
        for (int i = 0; i < gr_weights_count(w); i++) all_f32 &= gr_weights_at(w, i)->dtype == GR_F32;
        CHECK(all_f32, "%s: every tensor F32", f->name);
        CHECK(gr_weights_find(w, f->embed) != NULL, "%s: %s missing", f->name, f->embed);
        CHECK((gr_weights_find(w, "lm_head.weight") != NULL) == !f->tie, "%s: lm_head.weight %s", f->name, f->tie ? "stored although tied" : "missing");
        CHECK(!gr_weights_find(w, "encoder.embed_tokens.weight") && !gr_weights_find(w, "decoder.embed_tokens.weight"),
              "%s: T5 copies of shared.weight stored", f->name);
        const char *fmt = gr_weights_metadata(w, "format");
        CHECK(fmt && strcmp(fmt, "pt") == 0, "%s: metadata format=pt", f->name);
        gr_weights_close(w);
    }
    /* graft verify on the saved directory with the case pretrain wrote */
    rc = sh(log, "'%s' verify '%s' '%s/run/verify_case.safetensors'", graft, out, out);
    CHECK(rc == 0, "%s: graft verify exit %d", f->name, rc);
    if (rc) show(log);
    /* the loss fell: first step vs final held-out loss (log V ~ 6 at init) */
    gr_run_data *d = NULL;
    char *rd = cat2(out, "run");
    CHECK(gr_run_data_read(rd, &d) == GR_OK, "%s: metrics: %s", f->name, gr_last_error());
    if (d) {
        const gr_series *vl = gr_run_data_series(d, "val", "loss");
        double first = d->step_count ? d->steps[0].loss : NAN, last = vl && vl->count ? vl->value[vl->count - 1] : NAN;
        CHECK(d->step_count == 30 && vl && first > 5.0 && last < first - 1.0, "%s: %zu steps, loss %.3f -> held-out %.3f", f->name,
              d->step_count, first, last);
        printf("ok   %s: 30 steps, loss %.3f -> held-out %.3f\n", f->name, first, last);
        gr_run_data_free(d);
    }
    free(rd);
    /* quality.json */
    char *qp = cat2(out, "quality.json");
    json_t *q = json_load_file(qp, 0, &e);
    free(qp);
    CHECK(q && isfinite(json_real_value(json_object_get(q, "val_ppl"))) && json_array_size(json_object_get(q, "probes")) == 28 &&
              json_is_real(json_object_get(q, "color_cosine_max")) && json_is_boolean(json_object_get(q, "ok")),
          "%s: quality.json fields", f->name);
    json_decref(q);
done:
    free(dir); free(tok); free(out); free(cfg); free(log);
}

static int same_file(const char *a, const char *b)
{
    char *x, *y;
    size_t nx, ny;
    if (gr_read_file(a, &x, &nx)) return 0;
    if (gr_read_file(b, &y, &ny)) { free(x); return 0; }
    int same = nx == ny && memcmp(x, y, nx) == 0;
    free(x);
    free(y);
    return same;
}

static int contains(const char *path, const char *needle)
{
    char *t;
    if (gr_read_file(path, &t, NULL)) return 0;
    int r = strstr(t, needle) != NULL;
    free(t);
    return r;
}

int main(int argc, char **argv)
{
    if (argc != 4) { fprintf(stderr, "usage: test_pretrain GRAFT_BIN DATA_DIR TMP_DIR\n"); return 2; }
    graft = argv[1];
    data = argv[2];
    tmp = argv[3];
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0 || gr_mkdirs(tmp)) { printf("FAIL cannot reset %s\n", tmp); return 1; }
    static const fam fams[] = {
        {"opt", "bytelevel", "opt", 1, 2, 2, 1, "opt", "OPTForCausalLM", "model.decoder.embed_tokens.weight", ""},
        {"llama", "metaspace", "llama", 0, 1, 2, -1, "llama", "LlamaForCausalLM", "model.embed_tokens.weight", "  kv_heads = 1;\n"},
        {"t5", "metaspace", "t5", 1, -1, 1, 0, "t5", "T5ForConditionalGeneration", "shared.weight", ""},
    };
    for (int i = 0; i < 3; i++) check_family(&fams[i]);

    /* a rerun writes the same model bit for bit (one thread) */
    char *tok = cat2(tmp, "opt/tok"), *out2 = cat2(tmp, "opt_again"), *cfg = cat2(tmp, "again.cfg"), *log = cat2(tmp, "again.txt");
    write_cfg(cfg, &fams[0], tok, out2, NULL);
    int rc = sh(log, "'%s' pretrain -c '%s'", graft, cfg);
    char *m1 = cat2(tmp, "opt/model/model.safetensors"), *m2 = cat2(out2, "model.safetensors");
    CHECK(rc == 0 && same_file(m1, m2), "rerun: exit %d, model.safetensors %s", rc, same_file(m1, m2) ? "same" : "differs");
    if (!failures) printf("ok   a rerun gives the same model.safetensors bytes\n");

    /* errors: one line naming the key / the tokenizer */
    char *bad = cat2(tmp, "bad.cfg"), *blog = cat2(tmp, "bad.txt");
    FILE *b = fopen(bad, "w");
    if (b) { fprintf(b, "pretrain: { corpus = [\"x.txt\"]; out = \"%s/nowhere\"; };\n", tmp); fclose(b); }
    rc = sh(blog, "'%s' pretrain -c '%s'", graft, bad);
    CHECK(rc == 1 && contains(blog, "pretrain.tokenizer is required"), "missing key: exit %d", rc);
    char *llama_tok = cat2(tmp, "llama/tok");
    rc = sh(blog, "'%s' pretrain -c '%s' -s pretrain.tokenizer='\"%s\"' -s pretrain.out='\"%s/x\"'", graft, cfg, llama_tok, tmp);
    CHECK(rc == 1 && contains(blog, "OPT model needs a tokenizer with BOS and pad"), "OPT with a Llama tokenizer: exit %d", rc);
    if (rc != 1) show(blog);
    rc = sh(blog, "'%s' pretrain -c '%s' -s pretrain.seq_len=100", graft, cfg);
    CHECK(rc == 1 && contains(blog, "exceeds max_positions"), "seq_len > positions: exit %d", rc);
    printf("ok   errors name the key or the tokenizer\n");
    free(tok); free(out2); free(cfg); free(log); free(m1); free(m2); free(bad); free(blog); free(llama_tok);
    printf("%s: %d failure(s)\n", failures ? "FAILED" : "passed", failures);
    return failures ? 1 : 0;
}
